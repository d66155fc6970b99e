//! The attachment Lambda shipped with the provider (built by tools/build-handler, embedded
//! by build.rs), and the digest that tells Terraform whether the deployed code is current.

use std::sync::OnceLock;

/// The `bootstrap` zip for provided.al2023 on x86_64.
pub static HANDLER_ZIP_X86_64: &[u8] = include_bytes!(env!("AUTOHEAL_HANDLER_ZIP_X86_64"));

/// Lowercase hex SHA-256 of `bytes`, the form `handler_sha256` takes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The shipped x86_64 handler's digest, computed once per process.
pub fn shipped_sha256() -> &'static str {
    static DIGEST: OnceLock<String> = OnceLock::new();
    DIGEST.get_or_init(|| sha256_hex(HANDLER_ZIP_X86_64))
}

/// The zip for an architecture, if this build ships one. Only x86_64 is built here: the
/// aarch64 standard library is not installed on the build machines.
pub fn shipped(architecture: &str) -> Option<&'static [u8]> {
    (architecture == "x86_64").then_some(HANDLER_ZIP_X86_64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_zip_is_a_real_zip_with_a_bootstrap() {
        assert!(HANDLER_ZIP_X86_64.starts_with(b"PK\x03\x04"));
        // The single entry's name sits right after the 30-byte local file header.
        assert_eq!(&HANDLER_ZIP_X86_64[30..39], b"bootstrap");
        assert!(shipped("arm64").is_none());
    }

    #[test]
    fn digest_is_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(shipped_sha256().len(), 64);
    }
}
