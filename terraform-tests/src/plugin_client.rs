//! Starts the provider binary the way Terraform does and talks to it over gRPC.
//!
//! Terraform (through HashiCorp's go-plugin) starts a provider with a magic cookie, the
//! protocol versions it speaks, a port range, and a fresh self-signed client certificate in the
//! environment. The provider prints one handshake line on stdout:
//!
//! ```text
//! 1|6|unix|/tmp/plugin123/plugin.sock|grpc|MIIB...   (core version|protocol|network|address|grpc|cert)
//! ```
//!
//! and Terraform dials that address with mutual TLS: its client certificate, trusting exactly
//! the server certificate from the line, for the name "localhost". [`PluginProcess::launch`]
//! does the same and returns clients for the services Terraform uses.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use base64::Engine;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{aws_lc_rs, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint, Uri};

use autoheal_provider::plugin::proto::plugin::grpc_controller_client::GrpcControllerClient;
use autoheal_provider::plugin::proto::tfplugin6::provider_client::ProviderClient;
use tonic_health::pb::health_client::HealthClient;

/// go-plugin's magic cookie for Terraform providers.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// The name Terraform expects the server certificate to be valid for.
pub const SERVER_NAME: &str = "localhost";

/// How long the provider may take to print its handshake line.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Terraform's side of AutoMTLS: a throwaway self-signed certificate, like go-plugin makes
/// (ECDSA P-521 with SHA-512, CN and SAN "localhost", a CA certificate used for both client
/// and server authentication).
pub struct ClientCert {
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
    /// The certificate as PEM: the value of PLUGIN_CLIENT_CERT.
    pub cert_pem: String,
}

impl ClientCert {
    pub fn generate() -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512)?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, SERVER_NAME);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "HashiCorp");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let now = std::time::SystemTime::now();
        params.not_before = (now - Duration::from_secs(30)).into();
        params.not_after = (now + Duration::from_secs(24 * 60 * 60)).into();
        let cert = params.self_signed(&key)?;
        Ok(ClientCert {
            cert_der: cert.der().to_vec(),
            key_pkcs8_der: key.serialize_der(),
            cert_pem: cert.pem(),
        })
    }
}

/// The handshake line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeLine {
    /// go-plugin's core protocol version: always 1.
    pub core_version: u32,
    /// The Terraform plugin protocol version the provider chose.
    pub protocol_version: u32,
    /// "unix" or "tcp".
    pub network: String,
    /// A socket path, or host:port.
    pub address: String,
    /// "grpc" (go-plugin's other protocol, net/rpc, is not used by Terraform 0.12+).
    pub protocol: String,
    /// The server certificate, DER (the line carries it as unpadded standard base64).
    pub server_cert_der: Vec<u8>,
}

impl HandshakeLine {
    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let line = line.trim_end_matches(['\r', '\n']);
        let fields: Vec<&str> = line.split('|').collect();
        ensure!(
            fields.len() == 6,
            "handshake line {line:?} has {} fields, expected 6 \
             (core|protocol|network|address|grpc|cert)",
            fields.len()
        );
        let number = |i: usize, what: &str| -> anyhow::Result<u32> {
            fields[i]
                .parse()
                .with_context(|| format!("{what} {:?} in {line:?} is not a number", fields[i]))
        };
        let cert = fields[5];
        ensure!(
            !cert.is_empty(),
            "handshake line {line:?} has no certificate (AutoMTLS is required)"
        );
        let server_cert_der = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(cert)
            .with_context(|| {
                format!("the certificate in {line:?} is not unpadded standard base64")
            })?;
        Ok(HandshakeLine {
            core_version: number(0, "core version")?,
            protocol_version: number(1, "protocol version")?,
            network: fields[2].to_string(),
            address: fields[3].to_string(),
            protocol: fields[4].to_string(),
            server_cert_der,
        })
    }
}

/// A running provider process with gRPC clients connected to it. The process is killed when
/// this is dropped (use the controller's Shutdown for an orderly stop).
pub struct PluginProcess {
    pub handshake: HandshakeLine,
    pub provider: ProviderClient<Channel>,
    pub controller: GrpcControllerClient<Channel>,
    pub health: HealthClient<Channel>,
    pub child: Child,
    stderr: Arc<Mutex<String>>,
}

impl PluginProcess {
    /// Starts `binary` with Terraform's environment, reads its handshake line and connects.
    pub async fn launch(binary: &Path) -> anyhow::Result<Self> {
        let client = ClientCert::generate()?;
        let mut child = Command::new(binary)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env("PLUGIN_CLIENT_CERT", &client.cert_pem)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let mut pipe = child.stderr.take().expect("stderr is piped");
            let stderr = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }

        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, stdout.read_line(&mut line)).await;
        let stderr_now = || stderr.lock().unwrap().clone();
        match read {
            Err(_) => bail!(
                "{} printed no handshake line within {HANDSHAKE_TIMEOUT:?}; stderr:\n{}",
                binary.display(),
                stderr_now()
            ),
            Ok(Err(e)) => bail!("reading the handshake line: {e}; stderr:\n{}", stderr_now()),
            Ok(Ok(0)) => {
                // Let the stderr reader catch up with what the process said before exiting.
                tokio::time::sleep(Duration::from_millis(200)).await;
                bail!(
                    "{} closed stdout without a handshake line (exit: {:?}); stderr:\n{}",
                    binary.display(),
                    child.try_wait().ok().flatten(),
                    stderr_now()
                )
            }
            Ok(Ok(_)) => {}
        }
        // Anything printed after the handshake must not fill the pipe and block the plugin.
        tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            let _ = tokio::io::copy(&mut stdout, &mut sink).await;
        });

        let handshake = HandshakeLine::parse(&line)
            .with_context(|| format!("stderr of the provider:\n{}", stderr_now()))?;
        let channel = connect(&handshake, &client)
            .await
            .with_context(|| format!("stderr of the provider:\n{}", stderr_now()))?;
        Ok(PluginProcess {
            handshake,
            provider: ProviderClient::new(channel.clone()),
            controller: GrpcControllerClient::new(channel.clone()),
            health: HealthClient::new(channel),
            child,
            stderr,
        })
    }

    /// What the provider wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit; Err when it is still running after `within`.
    pub async fn wait_for_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!("the provider was still running after {within:?}"),
        }
    }
}

/// Connects to the address on the handshake line with mutual TLS, as Terraform does.
pub async fn connect(handshake: &HandshakeLine, client: &ClientCert) -> anyhow::Result<Channel> {
    ensure!(
        handshake.protocol == "grpc",
        "handshake protocol {:?}, expected grpc",
        handshake.protocol
    );
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(
        &handshake.server_cert_der,
        client,
    )?));
    let network = handshake.network.clone();
    let address = handshake.address.clone();
    ensure!(
        network == "unix" || network == "tcp",
        "unknown network {network:?} on the handshake line"
    );
    let connector = tower::service_fn(move |_: Uri| {
        let tls = tls.clone();
        let network = network.clone();
        let address = address.clone();
        async move {
            let stream: Box<dyn Io> = if network == "unix" {
                Box::new(tokio::net::UnixStream::connect(&address).await?)
            } else {
                Box::new(tokio::net::TcpStream::connect(&address).await?)
            };
            let name = ServerName::try_from(SERVER_NAME).expect("a valid DNS name");
            let stream = tls.connect(name, stream).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    // The URI is only a placeholder: the connector above decides where to connect.
    let endpoint = Endpoint::try_from("http://[::]:50051")?;
    let channel = tokio::time::timeout(
        Duration::from_secs(30),
        endpoint.connect_with_connector(connector),
    )
    .await
    .context("connecting to the provider timed out")?
    .with_context(|| {
        format!(
            "could not connect to the provider at {} {}",
            handshake.network, handshake.address
        )
    })?;
    Ok(channel)
}

/// Any stream TLS can run over (a unix socket or a TCP connection).
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The client's TLS configuration: our certificate for client authentication, and trust in
/// exactly one server certificate.
pub fn tls_client_config(
    server_cert_der: &[u8],
    client: &ClientCert,
) -> anyhow::Result<ClientConfig> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = PinnedServerCert {
        pinned: server_cert_der.to_vec(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(
            vec![CertificateDer::from(client.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_pkcs8_der.clone())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The DNS names in a certificate's subjectAltName extension.
pub fn certificate_dns_names(der: &[u8]) -> anyhow::Result<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not a DER X.509 certificate: {e}"))?;
    let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("bad subjectAltName: {e}"))?
    else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect())
}

/// Go's crypto/tls with a one-certificate root pool and ServerName "localhost", which is what
/// Terraform uses: the server must present exactly the pinned certificate, and it must be
/// valid for the name. (rustls' WebPKI verifier cannot be used: go-plugin's certificates are
/// CA certificates used as end-entity certificates, which WebPKI rejects.)
#[derive(Debug)]
struct PinnedServerCert {
    pinned: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() != self.pinned.as_slice() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        }
        let ServerName::DnsName(name) = server_name else {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        };
        let names = certificate_dns_names(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name.as_ref())) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_looks_like_go_plugins() {
        let c = ClientCert::generate().unwrap();
        assert!(c.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(certificate_dns_names(&c.cert_der).unwrap(), ["localhost"]);
        let (_, cert) = x509_parser::parse_x509_certificate(&c.cert_der).unwrap();
        assert!(cert.is_ca());
        // ecdsa-with-SHA512
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.4"
        );
    }

    #[test]
    fn parses_a_handshake_line() {
        let c = ClientCert::generate().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&c.cert_der);
        let h =
            HandshakeLine::parse(&format!("1|6|unix|/tmp/plugin1/p.sock|grpc|{b64}\n")).unwrap();
        assert_eq!(h.core_version, 1);
        assert_eq!(h.protocol_version, 6);
        assert_eq!(h.network, "unix");
        assert_eq!(h.address, "/tmp/plugin1/p.sock");
        assert_eq!(h.protocol, "grpc");
        assert_eq!(h.server_cert_der, c.cert_der);
    }

    #[test]
    fn rejects_malformed_handshake_lines() {
        for bad in [
            "",
            "This binary is a plugin",
            "1|6|unix|/tmp/p.sock|grpc",
            "1|6|unix|/tmp/p.sock|grpc|",
            "x|6|unix|/tmp/p.sock|grpc|AAAA",
            "1|6|unix|/tmp/p.sock|grpc|not base64!",
            // Padded base64 is not what go-plugin's RawStdEncoding reads.
            "1|6|unix|/tmp/p.sock|grpc|AA==",
        ] {
            assert!(HandshakeLine::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn trusts_only_the_pinned_certificate_for_localhost() {
        let a = ClientCert::generate().unwrap();
        let b = ClientCert::generate().unwrap();
        let v = PinnedServerCert {
            pinned: a.cert_der.clone(),
            algorithms: aws_lc_rs::default_provider().signature_verification_algorithms,
        };
        let localhost = ServerName::try_from("localhost").unwrap();
        let other = ServerName::try_from("example.com").unwrap();
        let now = UnixTime::now();
        let der_a = CertificateDer::from(a.cert_der.clone());
        let der_b = CertificateDer::from(b.cert_der.clone());
        assert!(v
            .verify_server_cert(&der_a, &[], &localhost, &[], now)
            .is_ok());
        assert!(v
            .verify_server_cert(&der_b, &[], &localhost, &[], now)
            .is_err());
        assert!(v.verify_server_cert(&der_a, &[], &other, &[], now).is_err());
        assert!(tls_client_config(&a.cert_der, &b).is_ok());
    }
}
