//! A GnuPG home of a test's own, with throwaway keys: to sign a release as its publisher does
//! (the Terraform Registry and `terraform providers mirror` check a detached signature of the
//! SHA256SUMS file) and to verify a signature as a user does, with only the keys that user
//! holds.
//!
//! Why a home of its own: the user's keyring must neither lend a key to a test (a signature
//! that verifies only because of it) nor receive the test's keys, and two homes in one test
//! are two parties (publisher and user) that share nothing but what the test hands over.
//!
//! Why under /tmp, with a short name: gpg talks to its agent through a Unix socket, in the
//! home itself where there is no /run/user/UID (as in containers), and a socket's path must
//! fit in a `sockaddr_un` (108 bytes); in a home deep in a temp directory it may not.
//!
//! Why the agent is stopped on drop: gpg starts a `gpg-agent` for the home and leaves it
//! running; without `gpgconf --kill`, every test run would leave agents behind, holding
//! sockets in deleted directories.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::process::{run_with_timeout, Captured};
use crate::tool::{checked, TOOL_TIMEOUT};

/// A throwaway GnuPG home (mode 0700, as gpg wants it) in `/tmp/gpgXXXXXX`, removed when
/// dropped, after its agent is stopped.
pub struct GnupgHome {
    dir: tempfile::TempDir,
}

impl GnupgHome {
    /// A new, empty home.
    pub fn create() -> GnupgHome {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        GnupgHome { dir }
    }

    /// The home's directory: `GNUPGHOME` for another program that should use it
    /// (tools/release --sign).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `gpg --batch --homedir HOME ARGS`, whatever its exit status: for the runs whose
    /// failure the test checks (a signature that must not verify, say).
    pub fn gpg(&self, args: &[&str]) -> Captured {
        run_with_timeout(&mut self.command(args), TOOL_TIMEOUT).expect("running gpg")
    }

    /// As [`GnupgHome::gpg`], for a run that must succeed.
    fn gpg_checked(&self, args: &[&str]) -> Captured {
        checked(
            &format!("gpg {}", args.join(" ")),
            run_with_timeout(&mut self.command(args), TOOL_TIMEOUT),
        )
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("gpg");
        command
            .arg("--batch")
            .arg("--homedir")
            .arg(self.path())
            .args(args);
        command
    }

    /// Generates a signing key without a passphrase for `user_id` (`algorithm` and `expires`
    /// as `gpg --quick-generate-key` takes them: "rsa3072", "never", "1d") and returns its
    /// fingerprint. Use RSA: the Registry takes RSA and DSA keys, and the OpenPGP library in
    /// Terraform 1.0.3 verifies RSA signatures for sure.
    pub fn generate_key(&self, user_id: &str, algorithm: &str, expires: &str) -> String {
        self.gpg_checked(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-generate-key",
            user_id,
            algorithm,
            "sign",
            expires,
        ]);
        let listing = self.gpg_checked(&["--with-colons", "--fingerprint", user_id]);
        listing
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| !f.is_empty()))
            .unwrap_or_else(|| panic!("no fingerprint in {listing:?}"))
            .to_string()
    }

    /// The long key id (16 hex digits) of `key`, as the registry protocol's `key_id` gives it.
    pub fn key_id(&self, key: &str) -> String {
        let out = self.gpg_checked(&["--with-colons", "--list-keys", key]);
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("pub:"))
            .and_then(|rest| rest.split(':').nth(3))
            .unwrap_or_else(|| panic!("no public key listed:\n{}", out.stdout))
            .to_string()
    }

    /// The public key of `key`, ASCII-armored: what the publisher hands to the Registry and
    /// to users.
    pub fn armored_public_key(&self, key: &str) -> String {
        self.gpg_checked(&["--armor", "--export", key]).stdout
    }

    /// `gpg --import KEY_FILE`, whatever its exit status.
    pub fn import(&self, key_file: &Path) -> Captured {
        self.gpg(&["--import", key_file.to_str().unwrap()])
    }

    /// Writes a binary detached signature of `file` to `signature`, as the registry serves
    /// `SHA256SUMS.sig`, with the home's (only) secret key.
    pub fn detach_sign(&self, file: &Path, signature: &Path) {
        self.gpg_checked(&[
            "--detach-sign",
            "--output",
            signature.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
    }

    /// `gpg --verify SIG FILE` with machine-readable status lines on stdout (`VALIDSIG FPR`,
    /// `BADSIG`, `NO_PUBKEY`), whatever its exit status.
    pub fn verify(&self, sig: &Path, file: &Path) -> Captured {
        self.gpg(&[
            "--status-fd",
            "1",
            "--verify",
            sig.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    }
}

impl Drop for GnupgHome {
    /// Stops the home's agent (and any other daemon gpg started for it), and only those:
    /// `gpgconf --homedir` finds them by the home. Then the directory is removed.
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
