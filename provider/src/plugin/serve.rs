//! Running as a go-plugin server: check the handshake environment, listen (a Unix socket, or
//! loopback TCP on Windows: transport.rs), print the handshake line, serve gRPC (over mutual
//! TLS when Terraform asks for it) until Terraform calls Shutdown.

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
use super::handshake::{handshake_line, HandshakeEnv};
use super::proto::plugin::{
    grpc_broker_server::GrpcBrokerServer, grpc_controller_server::GrpcControllerServer,
    grpc_stdio_server::GrpcStdioServer,
};
use super::proto::tfplugin6::provider_server::ProviderServer as ProviderService;
use super::resource::Provider;
use super::server::ProviderServer;
use super::tls::server_tls;
use super::transport::{listen, Listening, Transport};

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
    // Terraform's Ctrl-C reaches every process of the group (the console's on Windows,
    // where tokio's ctrl_c listens for CTRL_C_EVENT). Like go-plugin servers we ignore it:
    // Terraform itself sends StopProvider and then Shutdown.
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            tracing::debug!("interrupt received; waiting for Terraform's StopProvider");
        }
    });
    match run(provider, env, Transport::preferred(), announce_on_stdout).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "plugin server failed");
            eprintln!("terraform-provider-autoheal: {e:#}");
            1
        }
    }
}

async fn run(
    provider: Arc<dyn Provider>,
    env: HandshakeEnv,
    transports: &[Transport],
    announce: impl FnOnce(&str),
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let router = router(provider, shutdown.clone()).await;
    let tls = match &env.client_cert_pem {
        Some(pem) => Some(server_tls(pem)?),
        None => None,
    };
    let cert = tls.as_ref().map(|t| t.certificate_der.clone());
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.config));

    let listening = listen(&env, transports).await?;
    announce(&handshake_line(
        env.protocol_version,
        &listening.address()?,
        cert.as_deref(),
    ));
    match listening {
        #[cfg(unix)]
        Listening::Unix { listener, dir, .. } => {
            let incoming = accept_loop(listener, acceptor, shutdown.clone());
            serve_until(router, incoming, shutdown).await?;
            // The socket and its private directory go only once nobody can connect.
            drop(dir);
        }
        Listening::Tcp(listener) => {
            let incoming = accept_loop(listener, acceptor, shutdown.clone());
            serve_until(router, incoming, shutdown).await?;
        }
    }
    Ok(())
}

/// Prints the handshake line on stdout, where Terraform reads it.
fn announce_on_stdout(line: &str) {
    use std::io::Write;
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

/// The kinds of listener we serve on (see transport.rs for which one, where).
trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_stream(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

#[cfg(unix)]
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

#[cfg(test)]
mod tests {
    //! The real server (the autoheal provider, as the binary serves it) in-process on each
    //! transport, with and without AutoMTLS, called over gRPC the way Terraform calls it.

    use std::path::{Path, PathBuf};

    use base64::Engine;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};

    use super::*;
    use crate::plugin::proto::plugin::grpc_controller_client::GrpcControllerClient;
    use crate::plugin::proto::plugin::Empty;
    use crate::plugin::proto::tfplugin6::get_provider_schema;
    use crate::plugin::proto::tfplugin6::provider_client::ProviderClient;
    use crate::plugin::tls::{crypto_provider, generate_server_certificate, pem};
    use crate::plugin::transport::Platform;
    use crate::provider::AutohealProvider;

    /// Every wait in these tests: far above what a loaded machine needs.
    const LIMIT: Duration = Duration::from_secs(20);

    /// Terraform's side of AutoMTLS. P-256 from our own generator rather than Terraform's
    /// P-521 (rcgen makes P-521 keys only with aws-lc, which this crate alone may not
    /// enable); terraform-tests' plugin_binary.rs covers P-521 against the binary.
    struct ClientCert {
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
    }

    impl ClientCert {
        fn generate() -> Self {
            let (cert_der, key_der) = generate_server_certificate().unwrap();
            ClientCert { cert_der, key_der }
        }
    }

    /// A server started by [`start`]: its handshake line's fields and its task.
    struct Served {
        network: String,
        address: String,
        server_cert: Vec<u8>,
        task: JoinHandle<anyhow::Result<()>>,
    }

    /// Runs the server as `serve` does, with `transports` and `PLUGIN_CLIENT_CERT` from
    /// `client` (none: AutoMTLS off), and reads its handshake line.
    async fn start(
        transports: &'static [Transport],
        client: Option<&ClientCert>,
        socket_dir: Option<PathBuf>,
    ) -> Served {
        let env = HandshakeEnv {
            protocol_version: 6,
            client_cert_pem: client.map(|c| pem("CERTIFICATE", &c.cert_der)),
            min_port: 10000,
            max_port: 25000,
            unix_socket_dir: socket_dir,
        };
        let (tx, rx) = oneshot::channel();
        let announce = move |line: &str| {
            let _ = tx.send(line.to_string());
        };
        let provider: Arc<dyn Provider> = Arc::new(AutohealProvider::new());
        let task = tokio::spawn(run(provider, env, transports, announce));
        let line = match tokio::time::timeout(LIMIT, rx).await {
            Ok(Ok(line)) => line,
            other => panic!(
                "no handshake line ({other:?}); server: {:?}",
                tokio::time::timeout(LIMIT, task).await
            ),
        };
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 6, "{line}");
        assert_eq!((f[0], f[1], f[4]), ("1", "6", "grpc"), "{line}");
        let server_cert = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(f[5])
            .unwrap();
        assert_eq!(server_cert.is_empty(), client.is_none(), "{line}");
        Served {
            network: f[2].to_string(),
            address: f[3].to_string(),
            server_cert,
            task,
        }
    }

    impl Served {
        /// Connects as Terraform would: TLS pinned to the announced certificate for
        /// "localhost", presenting `client`'s certificate (none: plaintext).
        async fn connect(&self, client: Option<&ClientCert>) -> anyhow::Result<Channel> {
            let tcp_address = match (self.network.as_str(), client) {
                ("tcp", _) => self.address.clone(),
                #[cfg(unix)]
                ("unix", None) => {
                    let endpoint = Endpoint::from_shared(format!("unix:{}", self.address))?;
                    return Ok(tokio::time::timeout(LIMIT, endpoint.connect()).await??);
                }
                #[cfg(unix)]
                ("unix", Some(_)) => relay_to_unix_socket(&self.address).await?,
                (other, _) => anyhow::bail!("unexpected network {other:?}"),
            };
            let endpoint = match client {
                None => Endpoint::from_shared(format!("http://{tcp_address}"))?,
                Some(c) => Endpoint::from_shared(format!("https://{tcp_address}"))?
                    .tls_config_with_verifier(
                        ClientTlsConfig::new().domain_name("localhost").identity(
                            Identity::from_pem(
                                pem("CERTIFICATE", &c.cert_der),
                                pem("PRIVATE KEY", &c.key_der),
                            ),
                        ),
                        Arc::new(PinnedServerCert(self.server_cert.clone())),
                    )?,
            };
            Ok(tokio::time::timeout(LIMIT, endpoint.connect()).await??)
        }

        /// GetProviderSchema, then Shutdown; the server must then stop cleanly.
        async fn schema_then_shutdown(self, channel: Channel) {
            let schema = tokio::time::timeout(
                LIMIT,
                ProviderClient::new(channel.clone())
                    .get_provider_schema(get_provider_schema::Request {}),
            )
            .await
            .expect("GetProviderSchema timed out")
            .expect("GetProviderSchema")
            .into_inner();
            assert!(schema.provider.is_some());
            assert!(
                schema.resource_schemas.contains_key("autoheal_instance"),
                "{:?}",
                schema.resource_schemas.keys()
            );
            assert!(schema.diagnostics.is_empty(), "{:?}", schema.diagnostics);
            tokio::time::timeout(LIMIT, GrpcControllerClient::new(channel).shutdown(Empty {}))
                .await
                .expect("Shutdown timed out")
                .expect("Shutdown");
            tokio::time::timeout(LIMIT, self.task)
                .await
                .expect("the server did not stop after Shutdown")
                .expect("server task")
                .expect("server result");
        }
    }

    /// tonic's own Unix-socket connector cannot carry TLS, and its custom-connector hook
    /// needs hyper types this crate does not depend on; so the TLS client speaks to a
    /// loopback relay that copies bytes to and from the socket. The server side, the part
    /// under test, is the real Unix listener, TLS handshake and gRPC.
    #[cfg(unix)]
    async fn relay_to_unix_socket(path: &str) -> std::io::Result<String> {
        let front = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = front.local_addr()?.to_string();
        let path = path.to_string();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = front.accept().await {
                let path = path.clone();
                tokio::spawn(async move {
                    if let Ok(mut unix) = tokio::net::UnixStream::connect(&path).await {
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                    }
                });
            }
        });
        Ok(address)
    }

    /// Trusts exactly the certificate on the handshake line, as Terraform does (Go's TLS with
    /// that certificate as the only root and ServerName "localhost").
    #[derive(Debug)]
    struct PinnedServerCert(Vec<u8>);

    impl ServerCertVerifier for PinnedServerCert {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if end_entity.as_ref() == self.0.as_slice() {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                ))
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = crypto_provider().signature_verification_algorithms;
            rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            let algorithms = crypto_provider().signature_verification_algorithms;
            rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            crypto_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    fn socket_dir_is_empty(dir: &Path) -> bool {
        std::fs::read_dir(dir)
            .map(|d| d.count() == 0)
            .unwrap_or(false)
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_a_unix_socket_with_and_without_mtls() {
        for client in [Some(ClientCert::generate()), None] {
            let dir = tempfile::tempdir().unwrap();
            let served = start(
                Transport::preferred_for(Platform::Unix),
                client.as_ref(),
                Some(dir.path().into()),
            )
            .await;
            assert_eq!(served.network, "unix");
            assert!(
                Path::new(&served.address).starts_with(dir.path()),
                "{} is not under PLUGIN_UNIX_SOCKET_DIR {:?}",
                served.address,
                dir.path()
            );
            let channel = served.connect(client.as_ref()).await.unwrap();
            served.schema_then_shutdown(channel).await;
            assert!(
                socket_dir_is_empty(dir.path()),
                "the socket's directory outlived the server"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_loopback_tcp_with_and_without_mtls() {
        for client in [Some(ClientCert::generate()), None] {
            let dir = tempfile::tempdir().unwrap();
            let served = start(
                Transport::preferred_for(Platform::Windows),
                client.as_ref(),
                Some(dir.path().into()),
            )
            .await;
            assert_eq!(served.network, "tcp");
            let addr: std::net::SocketAddr = served.address.parse().unwrap();
            assert!(addr.ip().is_loopback(), "{addr}");
            assert!((10000..=25000).contains(&addr.port()), "{addr}");
            let channel = served.connect(client.as_ref()).await.unwrap();
            served.schema_then_shutdown(channel).await;
            assert!(socket_dir_is_empty(dir.path()), "TCP made a socket");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_this_platforms_transport_as_the_binary_does() {
        let client = ClientCert::generate();
        let served = start(Transport::preferred(), Some(&client), None).await;
        assert_eq!(served.network, Transport::preferred()[0].network());
        let channel = served.connect(Some(&client)).await.unwrap();
        served.schema_then_shutdown(channel).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_with_another_certificate_is_refused() {
        let terraform = ClientCert::generate();
        let stranger = ClientCert::generate();
        let served = start(
            Transport::preferred_for(Platform::Windows),
            Some(&terraform),
            None,
        )
        .await;
        let refused = match served.connect(Some(&stranger)).await {
            Err(_) => true,
            Ok(channel) => ProviderClient::new(channel)
                .get_provider_schema(get_provider_schema::Request {})
                .await
                .is_err(),
        };
        assert!(
            refused,
            "a certificate other than PLUGIN_CLIENT_CERT got an answer"
        );
        let channel = served.connect(Some(&terraform)).await.unwrap();
        served.schema_then_shutdown(channel).await;
    }
}
