//! Terratest-style acceptance tests for terraform-provider-autoheal.
//!
//! The tests in `tests/` drive the real Terraform CLI (1.0.3, and a newer version when the
//! machine has one) against the provider installed in the local filesystem mirror, and talk to
//! the provider binary over gRPC directly the way Terraform does. Everything they need is
//! described by `.tools/env.sh`, which `tools/install-tools` and `tools/install-provider`
//! write; `tools/test` sources it before running `cargo test`.
//!
//! * [`terraform`]: run Terraform commands in a throwaway copy of an example directory.
//! * [`plugin_client`]: start the provider like Terraform does (go-plugin handshake, AutoMTLS)
//!   and get gRPC clients for it.
//! * [`connection_counter`]: a loopback TCP listener that stands in for every AWS endpoint and
//!   counts the connections made to it, to prove that a command made no AWS call.
//! * [`output`]: read Terraform's diagnostics and plan text.
//! * [`process`]: run a command with a timeout and capture its output.
//! * [`local_aws`]: a local AWS (moto, extended, in its own process) per test, its control
//!   API, SDK clients pointed at it, and helpers (polling, the pattern built through the SDK).
//! * [`sweeper`]: what a test left behind in the local AWS, by tag and name prefix.
//! * [`stack_world`]: one stack test's local AWS, clients and copies of `fixtures/stack`.
//! * [`deployer`]: README's deployer (an IAM user with README's policy, the boundary) set up
//!   in a local AWS, whose calls the local AWS evaluates.
//! * [`real_account`]: the opt-in runs against a real AWS account (`AUTOHEAL_REAL_AWS=1`, a
//!   region and a name prefix), their clients, fixture and prefix sweeper.
//! * [`saved_plan`]: a plan as data (`plan -out`, then `show -json`).
//! * [`heal_world`]: one local AWS with one SDK-built stack whose function is the real
//!   attachment Lambda (tests/handler_heal.rs, tests/arm64.rs).
//! * [`aarch64`]: arm64 programs on this x86_64 machine through qemu-user (`.tools/qemu`).
//! * [`docs`]: docs/ generated from the provider's schema and the templates in docs/templates/
//!   (`tools/gen-docs`, checked by `tests/docs.rs`).
//! * [`release`]: the release `tools/release` packs: its artifacts' names, running it with
//!   `--no-build`, the `sha256`/`h1:` hashes they are checked by (tests/release_zip.rs,
//!   tests/network_mirror.rs).
//! * [`gpg`]: a throwaway GnuPG home under /tmp with its own keys, to sign and verify a
//!   release; its agent is stopped on drop.
//! * [`tool`]: run a command-line tool (sha256sum, python3, gpg, openssl) that must succeed.

pub mod aarch64;
pub mod connection_counter;
pub mod deployer;
pub mod docs;
pub mod gpg;
pub mod heal_world;
pub mod local_aws;
pub mod output;
pub mod plugin_client;
pub mod process;
pub mod real_account;
pub mod release;
pub mod saved_plan;
pub mod stack_world;
pub mod sweeper;
pub mod terraform;
pub mod tool;

use std::path::PathBuf;

pub use connection_counter::ConnectionCounter;
pub use terraform::{
    terraform_versions, CommandOutput, DestroyGuard, Options, Terraform, TerraformBinary,
};

/// The provider's source address, as Terraform spells it in `providers schema -json`.
pub const PROVIDER_ADDRESS: &str = "registry.terraform.io/autoheal/autoheal";
/// The provider's short source address, as users write it in `required_providers`.
pub const PROVIDER_SOURCE: &str = "autoheal/autoheal";
/// The only resource type the provider offers.
pub const RESOURCE_TYPE: &str = "autoheal_instance";

/// What to tell someone who ran `cargo test` without the environment the tests need.
pub const SETUP_HINT: &str = "run the tests through tools/test, or run \
     `tools/install-tools && tools/install-provider && . .tools/env.sh` first";

/// Says that a test checked less than its name says (a tool or capability missing here):
/// on stderr, and as a line of the tools/test summary (through `$AUTOHEAL_SKIP_FILE`), so a
/// skip never passes as a full check.
pub fn report_skip(what: &str) {
    eprintln!("NOT VERIFIED HERE: {what}");
    record_skip(what);
}

/// Adds `what` to the tools/test summary's list of what was checked less than its name says
/// (through `$AUTOHEAL_SKIP_FILE`; nothing outside tools/test), without printing it: for a
/// caller that says it on stderr in its own words. The summary lists a line once, however
/// many tests record it.
pub fn record_skip(what: &str) {
    if let Some(file) = std::env::var_os("AUTOHEAL_SKIP_FILE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(file) {
            let _ = writeln!(f, "{what}");
        }
    }
}

/// The root of the repository (the workspace).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("terraform-tests lives inside the workspace")
        .to_path_buf()
}

/// `examples/<name>` in the repository. Tests never run Terraform in there: [`Terraform::new`]
/// copies the directory first.
pub fn example_dir(name: &str) -> PathBuf {
    let dir = workspace_root().join("examples").join(name);
    assert!(
        dir.join("main.tf").is_file(),
        "{} has no main.tf",
        dir.display()
    );
    dir
}

/// The provider binary that `tools/install-provider` published to the filesystem mirror, i.e.
/// exactly what Terraform runs (`AUTOHEAL_PROVIDER` in `.tools/env.sh`).
pub fn provider_binary() -> PathBuf {
    let path = std::env::var_os("AUTOHEAL_PROVIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("AUTOHEAL_PROVIDER is not set: {SETUP_HINT}"));
    assert!(
        path.is_file(),
        "AUTOHEAL_PROVIDER={} does not exist: {SETUP_HINT}",
        path.display()
    );
    path
}

/// The provider version in the mirror (`AUTOHEAL_PROVIDER_VERSION`, written by
/// `tools/install-provider`), or the crate's version.
pub fn provider_version() -> String {
    std::env::var("AUTOHEAL_PROVIDER_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}
