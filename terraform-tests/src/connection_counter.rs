//! A TCP listener on 127.0.0.1 that stands in for every AWS endpoint and counts the
//! connections made to it. Tests point the provider's `endpoints` block and `AWS_ENDPOINT_URL`
//! at it, run Terraform, and assert how many connections arrived: zero proves that no AWS call
//! was made (a call needs a connection, and no other address is reachable).
//!
//! It never answers: each connection is read from briefly (so the start of the request can be
//! shown in a failure message) and closed, which AWS SDKs see as a network error.

use std::collections::HashSet;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The services in the provider's `endpoints` block.
pub const AWS_SERVICES: [&str; 8] = [
    "ec2",
    "autoscaling",
    "iam",
    "lambda",
    "events",
    "logs",
    "cloudwatch",
    "sts",
];

pub struct ConnectionCounter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    thread: Option<thread::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    /// Every accepted connection: the client's address and, once read, what it sent first.
    accepted: Vec<(SocketAddr, Option<String>)>,
    /// Client addresses of our own marker connections (see `settle`), which do not count.
    markers: HashSet<SocketAddr>,
}

impl State {
    fn counted(&self) -> impl Iterator<Item = &(SocketAddr, Option<String>)> {
        self.accepted
            .iter()
            .filter(|(peer, _)| !self.markers.contains(peer))
    }
}

impl ConnectionCounter {
    /// Listens on 127.0.0.1 at a port the OS picks.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let stop = stop.clone();
            let state = state.clone();
            thread::Builder::new()
                .name(format!("connection-counter-{}", addr.port()))
                .spawn(move || accept_loop(listener, stop, state))?
        };
        Ok(ConnectionCounter {
            addr,
            stop,
            state,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, for endpoint settings.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Environment for Terraform (and so for the provider it starts) that sends every AWS SDK
    /// call here and can find no real credentials: dummy keys, no instance metadata, no shared
    /// config or credentials files (paths that do not exist), and no retries, so an unexpected
    /// call fails fast.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        let none = |f: &str| format!("/nonexistent/autoheal-terraform-tests/{f}");
        [
            ("AWS_ENDPOINT_URL", self.url()),
            ("AWS_ACCESS_KEY_ID", "AKIAAUTOHEALTESTKEY0".to_string()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "autoheal-test-secret-not-a-real-key".to_string(),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", none("no-aws-config")),
            ("AWS_SHARED_CREDENTIALS_FILE", none("no-aws-credentials")),
            ("AWS_MAX_ATTEMPTS", "1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The provider's `endpoints` block with every service pointing here, indented for the
    /// inside of a `provider` block. `overrides` replaces single services' values (HCL
    /// expressions), e.g. `[("ec2", "\"not a url\"")]`.
    pub fn endpoints_block(&self, overrides: &[(&str, &str)]) -> String {
        let mut out = String::from("  endpoints {\n");
        for service in AWS_SERVICES {
            let value = overrides
                .iter()
                .find(|(s, _)| *s == service)
                .map(|(_, v)| v.to_string())
                .unwrap_or_else(|| format!("\"{}\"", self.url()));
            out.push_str(&format!("    {service:<11} = {value}\n"));
        }
        out.push_str("  }\n");
        out
    }

    /// How many connections were made so far, including any still waiting in the listen
    /// backlog (see `settle`).
    pub fn connections(&self) -> usize {
        self.settle();
        self.state.lock().unwrap().counted().count()
    }

    /// The first bytes received on each connection (e.g. an HTTP request line and headers),
    /// for failure messages.
    pub fn requests(&self) -> Vec<String> {
        self.settle();
        // Give the readers a moment to fill in what the connections sent.
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let state = self.state.lock().unwrap();
            let done = state.counted().all(|(_, head)| head.is_some());
            if done || Instant::now() > deadline {
                return state
                    .counted()
                    .map(|(peer, head)| {
                        format!(
                            "{peer}: {}",
                            head.as_deref().unwrap_or("<nothing read yet>")
                        )
                    })
                    .collect();
            }
            drop(state);
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every connection made before this call has been accepted: the kernel
    /// queues connections before we accept them, and accepts them in order, so once our own
    /// marker connection has been accepted, everything before it has been too.
    fn settle(&self) {
        let Ok(marker) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)) else {
            return;
        };
        let Ok(me) = marker.local_addr() else {
            return;
        };
        self.state.lock().unwrap().markers.insert(me);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self
                .state
                .lock()
                .unwrap()
                .accepted
                .iter()
                .any(|(peer, _)| *peer == me)
            {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn accept_loop(listener: TcpListener, stop: Arc<AtomicBool>, state: Arc<Mutex<State>>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let index = {
            let mut s = state.lock().unwrap();
            s.accepted.push((peer, None));
            s.accepted.len() - 1
        };
        let state = state.clone();
        // Read on another thread so a silent client cannot delay the next accept.
        thread::spawn(move || {
            let head = first_bytes(stream);
            state.lock().unwrap().accepted[index].1 = Some(head);
        });
    }
}

/// Up to 512 bytes of what the client sent first, waiting at most 200 ms for it; then the
/// connection is closed.
fn first_bytes(mut stream: TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    let head: Vec<&str> = text.lines().take(6).collect();
    if head.is_empty() {
        "<connection, nothing sent>".to_string()
    } else {
        head.join(" | ")
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_connections_and_keeps_what_they_sent() {
        let counter = ConnectionCounter::start().unwrap();
        assert!(counter.url().starts_with("http://127.0.0.1:"));
        assert_eq!(counter.connections(), 0);
        let mut s = TcpStream::connect(counter.addr()).unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: ec2.ap-southeast-2.amazonaws.com\r\n\r\n")
            .unwrap();
        drop(s);
        let _silent = TcpStream::connect(counter.addr()).unwrap();
        // No waiting: connections() accounts for the ones still in the backlog.
        assert_eq!(counter.connections(), 2);
        assert_eq!(counter.connections(), 2, "counting does not count itself");
        let requests = counter.requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(
            requests[0].contains(": POST / HTTP/1.1 | Host: ec2."),
            "{requests:?}"
        );
        assert!(requests[1].contains("nothing sent"), "{requests:?}");
    }

    #[test]
    fn endpoints_block_points_every_service_here() {
        let counter = ConnectionCounter::start().unwrap();
        let block = counter.endpoints_block(&[("ec2", "\"not a url\"")]);
        assert!(block.contains("ec2         = \"not a url\""), "{block}");
        let url = format!("\"{}\"", counter.url());
        assert_eq!(
            block.matches(&url).count(),
            AWS_SERVICES.len() - 1,
            "{block}"
        );
        let env = counter.aws_env();
        assert!(env.contains(&("AWS_ENDPOINT_URL".to_string(), counter.url())));
    }
}
