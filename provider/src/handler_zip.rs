//! The attachment Lambda shipped with the provider (built by tools/build-handler, embedded
//! by build.rs), and the digest that tells Terraform whether the deployed code is current.
//!
//! build.rs computes the shipped zips' digests, so no provider process hashes them: each
//! process Terraform starts to plan (one or more per command) used to hash the zip again.

/// The `bootstrap` zip for provided.al2023 on x86_64 (always embedded).
pub static HANDLER_ZIP_X86_64: &[u8] = include_bytes!(env!("AUTOHEAL_HANDLER_ZIP_X86_64"));
/// Its SHA-256 in lowercase hex, computed by build.rs from the same file.
const HANDLER_SHA256_X86_64: &str = env!("AUTOHEAL_HANDLER_ZIP_X86_64_SHA256");

/// The arm64 zip, when the build was given one (`AUTOHEAL_HANDLER_ZIP_ARM64`, which
/// tools/release sets after `tools/build-handler --arch all`). Development and test builds
/// leave it out: building the SDKs a second time for aarch64 costs as long as the first.
#[cfg(autoheal_arm64_handler)]
static HANDLER_ZIP_ARM64: Option<&[u8]> = Some(include_bytes!(env!("AUTOHEAL_HANDLER_ZIP_ARM64")));
#[cfg(not(autoheal_arm64_handler))]
static HANDLER_ZIP_ARM64: Option<&[u8]> = None;
#[cfg(autoheal_arm64_handler)]
const HANDLER_SHA256_ARM64: Option<&str> = Some(env!("AUTOHEAL_HANDLER_ZIP_ARM64_SHA256"));
#[cfg(not(autoheal_arm64_handler))]
const HANDLER_SHA256_ARM64: Option<&str> = None;

/// Lowercase hex SHA-256 of `bytes`, the form `handler_sha256` takes. For a shipped zip
/// itself (the embedded bytes, not a copy: apply passes them on as they are), the digest
/// build.rs computed; anything else, a user's `handler_zip` file included, is hashed.
pub fn sha256_hex(bytes: &[u8]) -> String {
    match ["x86_64", "arm64"]
        .into_iter()
        .find(|a| shipped(a).is_some_and(|zip| std::ptr::eq(zip, bytes)))
        .and_then(shipped_sha256)
    {
        Some(sha) => sha.to_string(),
        None => hash_hex(bytes),
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The zip for `architecture` (`lambda_architecture`'s values), if this build ships one.
pub fn shipped(architecture: &str) -> Option<&'static [u8]> {
    match architecture {
        "x86_64" => Some(HANDLER_ZIP_X86_64),
        "arm64" => HANDLER_ZIP_ARM64,
        _ => None,
    }
}

/// The shipped zip's digest for `architecture`, computed at build time.
pub fn shipped_sha256(architecture: &str) -> Option<&'static str> {
    match architecture {
        "x86_64" => Some(HANDLER_SHA256_X86_64),
        "arm64" => HANDLER_SHA256_ARM64,
        _ => None,
    }
}

/// The architectures this build ships a handler for, for diagnostics.
pub fn shipped_architectures() -> Vec<&'static str> {
    ["x86_64", "arm64"]
        .into_iter()
        .filter(|a| shipped(a).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_zip_is_a_real_zip_with_a_bootstrap() {
        assert!(HANDLER_ZIP_X86_64.starts_with(b"PK\x03\x04"));
        // The single entry's name sits right after the 30-byte local file header.
        assert_eq!(&HANDLER_ZIP_X86_64[30..39], b"bootstrap");
        // arm64 exactly when the build was given its zip, and then a real zip too.
        let asked = option_env!("AUTOHEAL_HANDLER_ZIP_ARM64").is_some_and(|p| !p.is_empty());
        assert_eq!(shipped("arm64").is_some(), asked);
        assert_eq!(cfg!(autoheal_arm64_handler), asked);
        if let Some(zip) = shipped("arm64") {
            assert_eq!(&zip[30..39], b"bootstrap");
            assert_ne!(zip, HANDLER_ZIP_X86_64);
        }
        assert!(shipped("sparc").is_none());
    }

    #[test]
    fn digest_is_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(shipped_sha256("x86_64").map(str::len), Some(64));
        assert_eq!(
            shipped_sha256("arm64").is_some(),
            shipped_architectures().contains(&"arm64")
        );
        assert!(shipped_sha256("sparc").is_none());
    }

    /// The build-time digests are those of the bytes the binary embeds (a zip rebuilt
    /// between build.rs reading it and `include_bytes!` would break this), and
    /// `sha256_hex` answers with them for the embedded zips only: a copy, or a part of the
    /// embedded bytes, is hashed.
    #[test]
    fn build_time_digest_is_the_embedded_zips() {
        for arch in shipped_architectures() {
            let zip = shipped(arch).unwrap();
            let sha = shipped_sha256(arch).unwrap();
            assert_eq!(sha, hash_hex(zip), "{arch}");
            assert_eq!(sha256_hex(zip), sha, "{arch}");
            let copy: Vec<u8> = zip.into();
            assert_eq!(sha256_hex(&copy), sha, "{arch}: a copy, hashed");
            let head = &zip[..zip.len() - 1];
            assert_eq!(sha256_hex(head), hash_hex(head), "{arch}");
            assert_ne!(sha256_hex(head), sha, "{arch}: not the whole zip");
        }
        assert_eq!(shipped_architectures().first(), Some(&"x86_64"));
    }
}
