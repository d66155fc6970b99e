//! Running the command-line tools a test leans on (sha256sum, python3, gpg, openssl,
//! tools/release) when they must succeed.
//!
//! Such a tool is the test's instrument, not what it checks: when it fails, the test cannot
//! go on, and the failure message must show what the tool printed, or the reason is lost.
//! Each run gets a deadline ([`crate::process::run_with_timeout`]) so a hung tool fails the
//! test instead of hanging the suite.

use std::process::Command;
use std::time::Duration;

use crate::process::{run_with_timeout, Captured};

/// The deadline for one run of a local tool: each takes well under a second here, so a run
/// this long is a hang.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The output of a run that must have succeeded: panics, naming it `what` and showing both
/// output streams, when it could not run, timed out or exited non-zero.
pub fn checked(what: &str, captured: anyhow::Result<Captured>) -> Captured {
    let out = captured.unwrap_or_else(|e| panic!("{what}: {e:#}"));
    assert!(
        out.status.success(),
        "{what} exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// Runs `cmd` within [`TOOL_TIMEOUT`]; it must succeed (see [`checked`]).
pub fn run_checked(what: &str, cmd: &mut Command) -> Captured {
    checked(what, run_with_timeout(cmd, TOOL_TIMEOUT))
}
