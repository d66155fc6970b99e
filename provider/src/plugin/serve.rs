//! Running as a go-plugin server: check the handshake environment, listen, print the
//! handshake line, serve gRPC (over mutual TLS when Terraform asks for it) until Terraform
//! calls Shutdown.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, Router};
use tonic::transport::Server;

use super::go_plugin::{Broker, Controller, Stdio};
use super::handshake::{bind_tcp, handshake_line, Address, HandshakeEnv};
use super::proto::plugin::{
    grpc_broker_server::GrpcBrokerServer, grpc_controller_server::GrpcControllerServer,
    grpc_stdio_server::GrpcStdioServer,
};
use super::proto::tfplugin6::provider_server::ProviderServer as ProviderService;
use super::resource::Provider;
use super::server::ProviderServer;
use super::tls::server_tls;

/// How long Shutdown waits for open connections to close before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(300);

/// Serves `provider` as a Terraform plugin. Returns the process exit code.
pub async fn serve(provider: Arc<dyn Provider>) -> i32 {
    let env = match HandshakeEnv::from_env(|k| std::env::var(k).ok()) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match run(provider, env).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "plugin server failed");
            eprintln!("terraform-provider-autoheal: {e:#}");
            1
        }
    }
}

async fn run(provider: Arc<dyn Provider>, env: HandshakeEnv) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let router = router(provider, shutdown.clone()).await;
    let tls = match &env.client_cert_pem {
        Some(pem) => Some(server_tls(pem)?),
        None => None,
    };
    let cert = tls.as_ref().map(|t| t.certificate_der.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));

    // Terraform's Ctrl-C reaches every process of the group. Like go-plugin servers we
    // ignore it: Terraform itself sends StopProvider and then Shutdown.
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            tracing::debug!("interrupt received; waiting for Terraform's StopProvider");
        }
    });

    // A unix socket in a private temporary directory, as go-plugin does on Unix; loopback
    // TCP in Terraform's port range if the socket cannot be created.
    let socket_dir = socket_dir(&env)?;
    let socket_path = socket_dir.path().join("plugin.sock");
    match tokio::net::UnixListener::bind(&socket_path) {
        Ok(listener) => {
            announce(
                env.protocol_version,
                &Address::Unix(socket_path.clone()),
                cert.as_deref(),
            );
            let incoming = accept_loop(listener, acceptor, shutdown.clone());
            serve_until(router, incoming, shutdown).await?;
        }
        Err(e) => {
            tracing::warn!(error = %e, "unix socket unavailable, using loopback TCP");
            let listener = bind_tcp(env.min_port, env.max_port).await?;
            let addr = listener.local_addr()?;
            announce(env.protocol_version, &Address::Tcp(addr), cert.as_deref());
            let incoming = accept_loop(listener, acceptor, shutdown.clone());
            serve_until(router, incoming, shutdown).await?;
        }
    }
    drop(socket_dir);
    Ok(())
}

fn socket_dir(env: &HandshakeEnv) -> anyhow::Result<tempfile::TempDir> {
    let base: PathBuf = env
        .unix_socket_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    Ok(tempfile::Builder::new().prefix("plugin").tempdir_in(base)?)
}

fn announce(protocol_version: u32, address: &Address, cert: Option<&[u8]>) {
    use std::io::Write;
    let line = handshake_line(protocol_version, address, cert);
    let mut out = std::io::stdout().lock();
    // Terraform waits for exactly this line; if stdout is gone there is nobody to serve.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn router(provider: Arc<dyn Provider>, shutdown: CancellationToken) -> Router {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    Server::builder()
        .add_service(health_service)
        .add_service(ProviderService::new(ProviderServer::new(provider)))
        .add_service(GrpcControllerServer::new(Controller {
            shutdown: shutdown.clone(),
        }))
        .add_service(GrpcStdioServer::new(Stdio {
            shutdown: shutdown.clone(),
        }))
        .add_service(GrpcBrokerServer::new(Broker { shutdown }))
}

/// A connection from Terraform: mutual TLS (the normal case) or plain (AutoMTLS off).
/// Our own type because tonic needs `Connected`, which cannot be added to a foreign enum.
pub enum Conn<S> {
    Tls(Box<tokio_rustls::server::TlsStream<S>>),
    Plain(S),
}

impl<S> Connected for Conn<S> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tls(s) => s.is_write_vectored(),
            Conn::Plain(s) => s.is_write_vectored(),
        }
    }
}

/// The two kinds of listener we serve on.
trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        let (s, _) = self.accept().await?;
        // gRPC sends many small frames; Nagle's algorithm would delay them.
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

/// Accepts connections and completes each TLS handshake in its own task, so a slow or
/// failing client never holds up the next one.
fn accept_loop<L: Listener>(
    listener: L,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) -> ReceiverStream<std::io::Result<Conn<L::Stream>>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept_stream() => r,
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let tx = tx.clone();
            match acceptor.clone() {
                None => {
                    let _ = tx.send(Ok(Conn::Plain(stream))).await;
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => {
                                let _ = tx.send(Ok(Conn::Tls(Box::new(tls)))).await;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "TLS handshake with Terraform failed")
                            }
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

async fn serve_until<S>(
    router: Router,
    incoming: ReceiverStream<std::io::Result<Conn<S>>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let signal = shutdown.clone();
    let server = router.serve_with_incoming_shutdown(incoming, async move {
        signal.cancelled().await;
    });
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => r?,
        _ = shutdown.cancelled() => {
            // Let the Shutdown answer reach Terraform and connections close, but never
            // make Terraform wait for its 2 s kill.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await;
        }
    }
    Ok(())
}
