//! go-plugin's handshake: Terraform starts us with a magic cookie and the protocol versions it
//! speaks; we answer with one line on stdout naming the protocol version, where we listen and
//! our TLS certificate. Everything else on stdout would corrupt that line, so logs go to stderr.

use std::path::PathBuf;

use base64::Engine;

/// The cookie Terraform sets so a plugin knows it is being run as a plugin.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// go-plugin's own handshake protocol version (the first field of the line).
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The only Terraform plugin protocol this provider speaks.
pub const PLUGIN_PROTOCOL_VERSION: u32 = 6;

/// What Terraform told us through the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeEnv {
    pub protocol_version: u32,
    pub client_cert_pem: Option<String>,
    /// `PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT`: where a TCP listener may bind.
    pub min_port: u16,
    pub max_port: u16,
    /// `PLUGIN_UNIX_SOCKET_DIR`: where a Unix socket goes (unused on Windows, which listens
    /// on TCP only, as go-plugin does there).
    pub unix_socket_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    #[error(
        "This binary is a plugin for Terraform and is not meant to be run directly.\n\
         Put it where Terraform finds providers (a filesystem mirror or the plugin cache), \n\
         declare `autoheal = {{ source = \"autoheal/autoheal\" }}` in required_providers, \n\
         and run `terraform init`. See the README for details."
    )]
    NotAPlugin,
    #[error(
        "Terraform offered plugin protocol versions {offered:?}; this provider speaks only \
         protocol {PLUGIN_PROTOCOL_VERSION} (Terraform 1.0 or later, or OpenTofu)"
    )]
    NoCommonVersion { offered: String },
    #[error("invalid {name}={value:?}: {reason}")]
    BadSetting {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl HandshakeEnv {
    /// Reads and checks the handshake environment through `get` (std::env::var in production).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, HandshakeError> {
        if get(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(HandshakeError::NotAPlugin);
        }
        let protocol_version = negotiate(get("PLUGIN_PROTOCOL_VERSIONS").as_deref())?;
        let port = |name: &'static str, default: u16| -> Result<u16, HandshakeError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|e: std::num::ParseIntError| {
                    HandshakeError::BadSetting {
                        name,
                        value: v.clone(),
                        reason: e.to_string(),
                    }
                }),
            }
        };
        // Unset means 0, as in go-plugin's serverListener_tcp: with neither set, port 0 lets
        // the OS pick; with only the minimum set, the range is empty and refused below.
        // Terraform always sets both (10000 and 25000).
        let min_port = port("PLUGIN_MIN_PORT", 0)?;
        let max_port = port("PLUGIN_MAX_PORT", 0)?;
        if min_port > max_port {
            return Err(HandshakeError::BadSetting {
                name: "PLUGIN_MIN_PORT",
                value: min_port.to_string(),
                reason: format!("greater than PLUGIN_MAX_PORT {max_port}"),
            });
        }
        Ok(HandshakeEnv {
            protocol_version,
            client_cert_pem: get("PLUGIN_CLIENT_CERT").filter(|s| !s.trim().is_empty()),
            min_port,
            max_port,
            unix_socket_dir: get("PLUGIN_UNIX_SOCKET_DIR")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// Picks the protocol version from Terraform's comma-separated offer. Absent means an old
/// client that only knows its single version; we cannot serve it.
pub fn negotiate(offered: Option<&str>) -> Result<u32, HandshakeError> {
    let offered = offered.unwrap_or("");
    let speaks_ours = offered
        .split(',')
        .filter_map(|v| v.trim().parse::<u32>().ok())
        .any(|v| v == PLUGIN_PROTOCOL_VERSION);
    if speaks_ours {
        Ok(PLUGIN_PROTOCOL_VERSION)
    } else {
        Err(HandshakeError::NoCommonVersion {
            offered: offered.to_string(),
        })
    }
}

/// Where the gRPC server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// The single line Terraform reads from our stdout:
/// `CORE|PROTOCOL|NETWORK|ADDRESS|grpc|CERT` with the certificate as unpadded standard base64
/// of its DER (go-plugin decodes it with RawStdEncoding). No certificate, no TLS.
pub fn handshake_line(protocol_version: u32, address: &Address, cert_der: Option<&[u8]>) -> String {
    let (network, addr) = match address {
        Address::Unix(p) => ("unix", p.display().to_string()),
        Address::Tcp(a) => ("tcp", a.to_string()),
    };
    let cert = cert_der
        .map(|d| base64::engine::general_purpose::STANDARD_NO_PAD.encode(d))
        .unwrap_or_default();
    format!("{CORE_PROTOCOL_VERSION}|{protocol_version}|{network}|{addr}|grpc|{cert}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn without_the_cookie_we_are_not_a_plugin() {
        assert_eq!(
            HandshakeEnv::from_env(env(&[])),
            Err(HandshakeError::NotAPlugin)
        );
        let wrong = env(&[(MAGIC_COOKIE_KEY, "nope")]);
        assert_eq!(
            HandshakeEnv::from_env(wrong),
            Err(HandshakeError::NotAPlugin)
        );
        assert!(HandshakeError::NotAPlugin
            .to_string()
            .contains("plugin for Terraform"));
    }

    #[test]
    fn negotiates_version_six_only() {
        assert_eq!(negotiate(Some("5,6")), Ok(6));
        assert_eq!(negotiate(Some(" 6 ")), Ok(6));
        assert!(negotiate(Some("4,5")).is_err());
        assert!(negotiate(None).is_err());
    }

    #[test]
    fn reads_terraform_environment() {
        let e = HandshakeEnv::from_env(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "5,6"),
            ("PLUGIN_MIN_PORT", "12000"),
            ("PLUGIN_MAX_PORT", "12010"),
            ("PLUGIN_CLIENT_CERT", "PEM"),
        ]))
        .unwrap();
        assert_eq!(e.protocol_version, 6);
        assert_eq!((e.min_port, e.max_port), (12000, 12010));
        assert_eq!(e.client_cert_pem.as_deref(), Some("PEM"));
        let bad = HandshakeEnv::from_env(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "6"),
            ("PLUGIN_MIN_PORT", "x"),
        ]));
        assert!(matches!(bad, Err(HandshakeError::BadSetting { .. })));
    }

    #[test]
    fn unset_ports_default_to_zero_like_go_plugin() {
        let base = [
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            ("PLUGIN_PROTOCOL_VERSIONS", "6"),
        ];
        let e = HandshakeEnv::from_env(env(&base)).unwrap();
        assert_eq!((e.min_port, e.max_port), (0, 0));
        let only_min =
            HandshakeEnv::from_env(env(&[base[0], base[1], ("PLUGIN_MIN_PORT", "12000")]));
        assert!(
            matches!(
                only_min,
                Err(HandshakeError::BadSetting {
                    name: "PLUGIN_MIN_PORT",
                    ..
                })
            ),
            "{only_min:?}"
        );
    }

    #[test]
    fn line_shape_matches_go_plugin() {
        let line = handshake_line(
            6,
            &Address::Unix("/tmp/p/plugin.sock".into()),
            Some(&[0xff, 0x00, 0x10]),
        );
        assert_eq!(line, "1|6|unix|/tmp/p/plugin.sock|grpc|/wAQ");
        let tcp = handshake_line(6, &Address::Tcp("127.0.0.1:10001".parse().unwrap()), None);
        assert_eq!(tcp, "1|6|tcp|127.0.0.1:10001|grpc|");
    }
}
