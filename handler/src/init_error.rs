//! Reporting an init failure to the Lambda Runtime API
//! (`POST /2018-06-01/runtime/init/error`), so the invocation fails with our message instead of
//! a bare "Runtime exited". lambda_runtime has no public call for it, and the hyper client it
//! uses is not worth wiring up for one request at process start: this is a blocking HTTP/1.1
//! request over `std::net::TcpStream`, with short timeouts, made before the async runtime exists.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::json;

pub const PATH: &str = "/2018-06-01/runtime/init/error";
/// The Runtime API's address in the environment (`127.0.0.1:9001` in Lambda).
pub const RUNTIME_API_ENV: &str = "AWS_LAMBDA_RUNTIME_API";
const TIMEOUT: Duration = Duration::from_secs(2);

/// The complete request: headers and the `{"errorMessage","errorType"}` body.
pub fn request_bytes(host: &str, error_type: &str, message: &str) -> Vec<u8> {
    let body =
        json!({"errorMessage": message, "errorType": error_type, "stackTrace": []}).to_string();
    // The header value must be one line of visible ASCII.
    let header_type: String = error_type
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect();
    let mut req = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Lambda-Runtime-Function-Error-Type: {header_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    req
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 202 Accepted`).
pub fn parse_status(response: &[u8]) -> Option<u16> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

/// Posts the init error to the Runtime API at `runtime_api` (`host:port`); returns the HTTP
/// status the API answered (202 when accepted).
pub fn report(runtime_api: &str, error_type: &str, message: &str) -> io::Result<u16> {
    let addr = runtime_api
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(&request_bytes(runtime_api, error_type, message))?;
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    // The status line is all we need; stop at the end of the headers or of the stream.
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    parse_status(&response).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no HTTP status line in the answer",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn request_format() {
        let req = String::from_utf8(request_bytes(
            "127.0.0.1:9001",
            "Autoheal.InvalidSettings",
            "bad \"x\"",
        ))
        .unwrap();
        let (head, body) = req.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "POST /2018-06-01/runtime/init/error HTTP/1.1");
        assert!(lines.contains(&"Host: 127.0.0.1:9001"));
        assert!(lines.contains(&"Lambda-Runtime-Function-Error-Type: Autoheal.InvalidSettings"));
        assert!(lines.contains(&format!("Content-Length: {}", body.len()).as_str()));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errorMessage"], "bad \"x\"");
        assert_eq!(v["errorType"], "Autoheal.InvalidSettings");
    }

    #[test]
    fn status_line() {
        assert_eq!(parse_status(b"HTTP/1.1 202 Accepted\r\n\r\n"), Some(202));
        assert_eq!(parse_status(b"HTTP/1.0 500 Oops\r\n"), Some(500));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status(b""), None);
    }

    #[test]
    fn posts_to_a_local_runtime_api() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = conn.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        break;
                    }
                }
            }
            conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        assert_eq!(
            report(
                &addr,
                "Autoheal.InvalidSettings",
                "AUTOHEAL_VOLUME_ID is not set"
            )
            .unwrap(),
            202
        );
        let got = server.join().unwrap();
        assert!(
            got.starts_with("POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"),
            "{got}"
        );
        assert!(
            got.ends_with(r#""errorType":"Autoheal.InvalidSettings","stackTrace":[]}"#),
            "{got}"
        );
    }

    #[test]
    fn unreachable_api_is_an_error_not_a_hang() {
        // Bind then drop: nothing listens on the port any more.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        assert!(report(&addr, "T", "m").is_err());
    }
}
