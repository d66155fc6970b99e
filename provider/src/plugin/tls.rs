//! AutoMTLS as go-plugin does it: each side makes a throwaway self-signed certificate,
//! Terraform hands us its own in `PLUGIN_CLIENT_CERT`, and we print ours on the handshake line.
//! Trust is pinning, not a CA chain: we accept exactly the certificate Terraform gave us.
//!
//! Why a custom client verifier instead of rustls' WebPKI one: Terraform's certificate is a
//! self-signed CA certificate (CA:TRUE) used as the end entity, which WebPKI rejects, and it is
//! ECDSA P-521/SHA-512, which only the aws-lc-rs crypto provider verifies. Pinning the exact DER
//! is also the stricter check.
//!
//! Why two crypto libraries: everything that needs randomness (our key, the certificate's
//! signature, the handshake's key exchange) uses ring, because aws-lc seeds its random
//! generator on first use, which measured 40-65 ms here, on every one of the 3-5 launches
//! Terraform makes per command. Verifying a signature needs no randomness, so aws-lc does
//! only that: the P-521 check ring lacks.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, ring as ring_provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, ServerConfig, SignatureScheme};

/// Our side of the exchange: the certificate printed on the handshake line, and the
/// TLS configuration that serves it.
pub struct ServerTls {
    pub certificate_der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// Builds the TLS server configuration for the client certificate Terraform sent (PEM).
pub fn server_tls(client_cert_pem: &str) -> anyhow::Result<ServerTls> {
    let client_der = parse_single_pem_cert(client_cert_pem)?;
    let (cert_der, key_der) = generate_server_certificate()?;
    let provider = crypto_provider();
    let verifier = Arc::new(PinnedClientCert {
        pinned: client_der,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )?;
    // gRPC runs over HTTP/2; recent grpc-go clients insist on ALPN "h2".
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        certificate_der: cert_der,
        config: Arc::new(config),
    })
}

/// Reads exactly one certificate from PEM text.
pub fn parse_single_pem_cert(pem: &str) -> anyhow::Result<Vec<u8>> {
    let mut reader = pem.as_bytes();
    let certs: Vec<_> = rustls_pemfile::certs(&mut reader).collect::<Result<_, _>>()?;
    match certs.as_slice() {
        [one] => Ok(one.as_ref().to_vec()),
        [] => anyhow::bail!("PLUGIN_CLIENT_CERT holds no PEM certificate"),
        _ => anyhow::bail!(
            "PLUGIN_CLIENT_CERT holds {} certificates, expected one",
            certs.len()
        ),
    }
}

/// A fresh self-signed certificate for "localhost" (the name Terraform dials), returned as
/// (certificate DER, PKCS#8 key DER). P-256 rather than go-plugin's P-521: Terraform trusts
/// whatever certificate we print, and P-256 keys are generated and used much faster.
pub fn generate_server_certificate() -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let key = RingP256Key::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "HashiCorp");
    // go-plugin's own certificates are CA certificates trusted directly; Go accepts a
    // certificate found in its root pool as the whole chain, so mirror that shape.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(30)).into();
    params.not_after = (now + std::time::Duration::from_secs(60 * 60 * 24 * 30)).into();
    let cert = params.self_signed(&key)?;
    Ok((cert.der().to_vec(), key.pkcs8))
}

/// A P-256 key made and used by ring, for rcgen to sign our certificate with. rcgen's own
/// `KeyPair` would use aws-lc whenever that feature is on anywhere in the workspace (the
/// tests need it for P-521), and with it aws-lc's slow first random draw.
struct RingP256Key {
    pkcs8: Vec<u8>,
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl RingP256Key {
    fn generate() -> anyhow::Result<Self> {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING as ALG};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &rng)
            .map_err(|_| anyhow::anyhow!("P-256 key generation failed"))?
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ALG, &pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("P-256 key rejected: {e}"))?;
        Ok(RingP256Key { pkcs8, key, rng })
    }
}

impl rcgen::PublicKeyData for RingP256Key {
    fn der_bytes(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for RingP256Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// Accepts exactly one client certificate, byte for byte, and checks the handshake
/// signature with the aws-lc-rs algorithms (P-521/SHA-512 included).
#[derive(Debug)]
struct PinnedClientCert {
    pinned: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if end_entity.as_ref() == self.pinned.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// ring's provider with aws-lc's signature verification algorithms (see the module docs).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        signature_verification_algorithms: aws_lc_rs::default_provider()
            .signature_verification_algorithms,
        ..ring_provider::default_provider()
    })
}

/// `der` as PEM text with `label` ("CERTIFICATE", "PRIVATE KEY"), 64 columns as Go writes it:
/// what tests hand over as PLUGIN_CLIENT_CERT and to a TLS client.
#[cfg(test)]
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p521_sha512_is_verifiable() {
        let algs = crypto_provider().signature_verification_algorithms;
        assert!(algs
            .supported_schemes()
            .contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
    }

    #[test]
    fn pem_with_two_certificates_is_refused() {
        let (der, _) = generate_server_certificate().unwrap();
        let pem = pem("CERTIFICATE", &der);
        assert_eq!(parse_single_pem_cert(&pem).unwrap(), der);
        assert!(parse_single_pem_cert(&format!("{pem}{pem}")).is_err());
        assert!(parse_single_pem_cert("garbage").is_err());
    }

    #[test]
    fn only_the_pinned_certificate_is_accepted() {
        let (a, _) = generate_server_certificate().unwrap();
        let (b, _) = generate_server_certificate().unwrap();
        let v = PinnedClientCert {
            pinned: a.clone(),
            algorithms: aws_lc_rs::default_provider().signature_verification_algorithms,
        };
        let now = UnixTime::now();
        assert!(v
            .verify_client_cert(&CertificateDer::from(a), &[], now)
            .is_ok());
        assert!(v
            .verify_client_cert(&CertificateDer::from(b), &[], now)
            .is_err());
    }
}
