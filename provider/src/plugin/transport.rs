//! Where the plugin listens, chosen the way go-plugin's `serverListener` chooses (server.go):
//! on Windows loopback TCP in Terraform's port range (`serverListener_tcp`), everywhere else a
//! Unix socket (`serverListener_unix`). Terraform's client dials whichever network the
//! handshake line names, so the choice is ours, but a plugin that differs from go-plugin
//! would be the first to meet whatever Terraform does not expect.
//!
//! One deliberate difference: go-plugin fails when the Unix socket cannot be made; we then
//! fall back to loopback TCP, which Terraform dials just as well. A socket fails where TCP
//! works when the temp directory is full or read-only, or when the socket's path is longer
//! than `sun_path` (104 bytes on macOS, whose per-user `$TMPDIR` alone is about 50).
//!
//! The choice is a pure function of the platform family so both answers are unit-tested on
//! Linux; binding a Unix socket is compiled only where tokio has `UnixListener` (`cfg(unix)`).

use std::path::PathBuf;

use anyhow::Context;

use super::handshake::{Address, HandshakeEnv};

/// The platform families go-plugin tells apart for its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux, macOS, the BSDs, Solaris: anything with Unix sockets in tokio.
    Unix,
    /// Windows (and any other target without tokio's Unix sockets): TCP only. go-plugin
    /// tests `runtime.GOOS == "windows"`; Terraform ships for no other non-Unix OS.
    Windows,
}

impl Platform {
    /// The family this binary was compiled for.
    pub const fn current() -> Self {
        if cfg!(unix) {
            Platform::Unix
        } else {
            Platform::Windows
        }
    }
}

/// A way to listen, named by the handshake line's network field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A socket in a private temporary directory under `PLUGIN_UNIX_SOCKET_DIR` or the
    /// system temp dir.
    UnixSocket,
    /// 127.0.0.1 on the first free port of `PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT`.
    LoopbackTcp,
}

impl Transport {
    /// The transports to try on this platform, best first.
    pub const fn preferred() -> &'static [Transport] {
        Transport::preferred_for(Platform::current())
    }

    /// The transports to try on `platform`, best first. On Windows that is TCP alone, and
    /// `PLUGIN_UNIX_SOCKET_DIR` is ignored, as go-plugin ignores it there.
    pub const fn preferred_for(platform: Platform) -> &'static [Transport] {
        match platform {
            Platform::Unix => &[Transport::UnixSocket, Transport::LoopbackTcp],
            Platform::Windows => &[Transport::LoopbackTcp],
        }
    }

    /// The handshake line's network field (Go's `net.Addr.Network()`).
    pub const fn network(self) -> &'static str {
        match self {
            Transport::UnixSocket => "unix",
            Transport::LoopbackTcp => "tcp",
        }
    }
}

/// A bound listener. The Unix variant exists only where tokio has Unix sockets; it owns the
/// private directory the socket lives in, so socket and directory go when it is dropped (as
/// go-plugin's `rmListener` removes its socket on close).
pub enum Listening {
    #[cfg(unix)]
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        dir: tempfile::TempDir,
    },
    Tcp(tokio::net::TcpListener),
}

impl Listening {
    /// Where Terraform must dial, for the handshake line.
    pub fn address(&self) -> std::io::Result<Address> {
        match self {
            #[cfg(unix)]
            Listening::Unix { path, .. } => Ok(Address::Unix(path.clone())),
            Listening::Tcp(l) => Ok(Address::Tcp(l.local_addr()?)),
        }
    }
}

/// Binds the first transport of `order` that works, logging each one that does not; the
/// error names every failure.
pub async fn listen(env: &HandshakeEnv, order: &[Transport]) -> anyhow::Result<Listening> {
    let mut failures = Vec::new();
    for (i, &transport) in order.iter().enumerate() {
        let result = match transport {
            Transport::UnixSocket => bind_unix(env.unix_socket_dir.clone()),
            Transport::LoopbackTcp => bind_tcp(env.min_port, env.max_port)
                .await
                .map(Listening::Tcp)
                .with_context(|| {
                    format!(
                        "no free loopback TCP port in {}..={} (PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT)",
                        env.min_port, env.max_port
                    )
                }),
        };
        match result {
            Ok(listening) => return Ok(listening),
            Err(e) => {
                if let Some(next) = order.get(i + 1) {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "{} listener unavailable, trying {}",
                        transport.network(),
                        next.network()
                    );
                }
                failures.push(format!("{}: {e:#}", transport.network()));
            }
        }
    }
    anyhow::bail!("could not listen for Terraform ({})", failures.join("; "))
}

/// A Unix socket `plugin.sock` in a fresh private (0700) directory `plugin*` under `base`
/// or the temp dir. go-plugin puts the socket itself, `plugin*`, straight into that
/// directory; the private directory is stricter, as nobody else can even reach the socket.
/// `PLUGIN_UNIX_SOCKET_GROUP` (go-plugin's group-writable socket, for plugins run by a
/// service under another user) is not honoured: Terraform never sets it, and a group lookup
/// by name would need libc.
#[cfg(unix)]
fn bind_unix(base: Option<PathBuf>) -> anyhow::Result<Listening> {
    use std::os::unix::fs::PermissionsExt;
    let base = base.unwrap_or_else(std::env::temp_dir);
    // tempfile makes directories 0777 minus the umask (0755 as a rule) unless told otherwise.
    let dir = tempfile::Builder::new()
        .prefix("plugin")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .with_context(|| format!("creating a socket directory in {}", base.display()))?;
    let path = dir.path().join("plugin.sock");
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("binding {}", path.display()))?;
    Ok(Listening::Unix {
        listener,
        path,
        dir,
    })
}

/// Never chosen by [`Transport::preferred`] here; the error keeps an explicit order honest.
#[cfg(not(unix))]
fn bind_unix(_base: Option<PathBuf>) -> anyhow::Result<Listening> {
    anyhow::bail!("Unix sockets are not available on this platform")
}

/// Binds 127.0.0.1 on the first free port of `min..=max`, scanning upwards from `min` as
/// go-plugin's `serverListener_tcp` does. `0..=0` (go-plugin's default when Terraform sets
/// no range) lets the OS pick a port.
pub async fn bind_tcp(min: u16, max: u16) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for port in min..=max {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "empty port range")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(min_port: u16, max_port: u16, unix_socket_dir: Option<PathBuf>) -> HandshakeEnv {
        HandshakeEnv {
            protocol_version: 6,
            client_cert_pem: None,
            min_port,
            max_port,
            unix_socket_dir,
        }
    }

    #[test]
    fn unix_prefers_a_socket_then_tcp_and_windows_uses_tcp_only() {
        assert_eq!(
            Transport::preferred_for(Platform::Unix),
            [Transport::UnixSocket, Transport::LoopbackTcp]
        );
        assert_eq!(
            Transport::preferred_for(Platform::Windows),
            [Transport::LoopbackTcp]
        );
        assert_eq!(Transport::UnixSocket.network(), "unix");
        assert_eq!(Transport::LoopbackTcp.network(), "tcp");
    }

    #[test]
    fn this_platform_uses_its_own_family() {
        let expected = if cfg!(unix) {
            Platform::Unix
        } else {
            Platform::Windows
        };
        assert_eq!(Platform::current(), expected);
        assert_eq!(Transport::preferred(), Transport::preferred_for(expected));
    }

    #[tokio::test]
    async fn tcp_binds_inside_the_range() {
        let blocker = bind_tcp(20000, 20100).await.unwrap();
        let taken = blocker.local_addr().unwrap().port();
        let next = bind_tcp(taken, taken + 50).await.unwrap();
        let port = next.local_addr().unwrap().port();
        assert!(
            port > taken && port <= taken + 50,
            "{port} not in ({taken}, {}]",
            taken + 50
        );
        assert!(next.local_addr().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn a_zero_range_lets_the_os_pick_a_port() {
        let l = bind_tcp(0, 0).await.unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[tokio::test]
    async fn the_windows_order_ignores_the_socket_dir() {
        let dir = tempfile::tempdir().unwrap();
        let l = listen(
            &env(10000, 25000, Some(dir.path().into())),
            Transport::preferred_for(Platform::Windows),
        )
        .await
        .unwrap();
        let Address::Tcp(addr) = l.address().unwrap() else {
            panic!("TCP expected")
        };
        assert!(addr.ip().is_loopback() && (10000..=25000).contains(&addr.port()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_unix_order_makes_a_private_socket_in_the_socket_dir() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let l = listen(
            &env(10000, 25000, Some(dir.path().into())),
            Transport::preferred_for(Platform::Unix),
        )
        .await
        .unwrap();
        let Address::Unix(path) = l.address().unwrap() else {
            panic!("a Unix socket expected")
        };
        let private = path.parent().unwrap();
        assert_eq!(private.parent().unwrap(), dir.path());
        let mode = std::fs::metadata(private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{private:?} has mode {mode:o}");
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
        drop(l);
        assert!(!private.exists(), "{private:?} outlived the listener");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn an_unusable_socket_dir_falls_back_to_tcp() {
        // A regular file where the directory should be, and a path longer than sun_path.
        let file = tempfile::NamedTempFile::new().unwrap();
        let deep = tempfile::tempdir().unwrap();
        let long = deep.path().join("d".repeat(120));
        std::fs::create_dir(&long).unwrap();
        for base in [file.path().to_path_buf(), long] {
            let l = listen(
                &env(10000, 25000, Some(base.clone())),
                Transport::preferred_for(Platform::Unix),
            )
            .await
            .unwrap();
            assert!(
                matches!(l.address().unwrap(), Address::Tcp(_)),
                "{base:?} should have fallen back to TCP"
            );
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn when_nothing_binds_the_error_names_each_transport() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let blocker = bind_tcp(20000, 20100).await.unwrap();
        let port = blocker.local_addr().unwrap().port();
        let err = listen(
            &env(port, port, Some(file.path().into())),
            Transport::preferred_for(Platform::Unix),
        )
        .await
        .err()
        .expect("neither transport can bind");
        let text = format!("{err:#}");
        assert!(text.contains("unix: creating a socket directory"), "{text}");
        assert!(
            text.contains(&format!(
                "tcp: no free loopback TCP port in {port}..={port}"
            )),
            "{text}"
        );
    }
}
