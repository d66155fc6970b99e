//! The release as `tools/release` packs it, for the tests that install or check it
//! (tests/release_zip.rs, tests/network_mirror.rs): the artifacts' names, running
//! `tools/release --no-build`, the hashes users and Terraform check the artifacts by, and a
//! configuration that requires exactly the released version.
//!
//! The names are the ones the Terraform Registry and `terraform providers mirror` expect
//! (`terraform-provider-autoheal_VERSION_linux_amd64.zip`, `..._SHA256SUMS`, ...), written out
//! here once: a test that spelled one differently from tools/release would look for a file
//! that does not exist and fail for the wrong reason.
//!
//! The hashes are computed independently of Terraform (coreutils' `sha256sum`, Python's
//! zipfile and hashlib), so comparing them with what Terraform recorded checks Terraform's
//! verdict instead of repeating it.
//!
//! `--no-build` packs the binaries already built (target/release's, which tools/test builds
//! before it runs the tests, and an arm64 build when one exists); without it tools/release
//! would build the provider for both platforms, a cold arm64 build of the SDKs, inside a test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;

use crate::process::{run_with_timeout, Captured};
use crate::tool::{checked, run_checked};
use crate::{workspace_root, ConnectionCounter, PROVIDER_SOURCE};

/// The workspace version, which tools/release reads from Cargo.toml too.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The platform of the provider that tools/release always packs (this machine's).
pub const PLATFORM: &str = "linux_amd64";
/// The platform tools/release packs only when an arm64 build exists (see [`arm64_binary`]).
pub const ARM64_PLATFORM: &str = "linux_arm64";
/// The deadline for one `tools/release --no-build`: zipping and hashing, a few seconds.
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// The zip for `platform`, as the registry and mirrors name it.
pub fn zip_name_for(platform: &str) -> String {
    format!("terraform-provider-autoheal_{VERSION}_{platform}.zip")
}

/// The linux_amd64 zip's name.
pub fn zip_name() -> String {
    zip_name_for(PLATFORM)
}

/// The registry manifest's name (the plugin protocol versions).
pub fn manifest_name() -> String {
    format!("terraform-provider-autoheal_{VERSION}_manifest.json")
}

/// The name of the SHA256SUMS file, which names the zips and the manifest.
pub fn sums_name() -> String {
    format!("terraform-provider-autoheal_{VERSION}_SHA256SUMS")
}

/// The name Terraform looks for inside the zip and in an unpacked mirror.
pub fn binary_name() -> String {
    format!("terraform-provider-autoheal_v{VERSION}")
}

/// Where tools/release writes the signature of SUMS (`SUMS.sig`, the registry's name).
pub fn signature_path(sums: &Path) -> PathBuf {
    let mut name = sums.file_name().unwrap().to_os_string();
    name.push(".sig");
    sums.with_file_name(name)
}

/// The files of a release in one directory, by the names the registry expects. Which of them
/// exist depends on the run: see [`run_release`].
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The directory, by its real path (which tools/release prints).
    pub dir: PathBuf,
    /// The linux_amd64 zip.
    pub zip: PathBuf,
    /// The manifest.
    pub manifest: PathBuf,
    /// The SHA256SUMS file.
    pub sums: PathBuf,
}

impl Artifacts {
    /// The release's files in `dir`.
    pub fn in_dir(dir: &Path) -> Artifacts {
        Artifacts {
            dir: dir.to_path_buf(),
            zip: dir.join(zip_name()),
            manifest: dir.join(manifest_name()),
            sums: dir.join(sums_name()),
        }
    }

    /// The linux_arm64 zip, packed only when an arm64 build exists.
    pub fn arm64_zip(&self) -> PathBuf {
        self.dir.join(zip_name_for(ARM64_PLATFORM))
    }

    /// The signature of the sums, written only with `--sign`.
    pub fn signature(&self) -> PathBuf {
        signature_path(&self.sums)
    }
}

/// `tools/release --no-build --out DIR`, not yet run: for a caller that expects it to fail.
pub fn release_command(dir: &Path) -> Command {
    let mut command = Command::new(workspace_root().join("tools/release"));
    command.arg("--no-build").arg("--out").arg(dir);
    command
}

/// Runs `tools/release --no-build --out DIR ARGS` with `envs` added to its environment, within
/// [`RELEASE_TIMEOUT`]; it must succeed. Creates DIR first. Returns the artifacts by name, in
/// DIR's real path as tools/release prints it, and what it printed (the artifacts' paths on
/// stdout, its log on stderr), which the caller checks against what it expects of the run.
pub fn run_release(dir: &Path, args: &[&str], envs: &[(&str, &Path)]) -> (Artifacts, Captured) {
    std::fs::create_dir_all(dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let out = checked(
        "tools/release --no-build",
        run_with_timeout(
            release_command(&dir).args(args).envs(envs.iter().copied()),
            RELEASE_TIMEOUT,
        ),
    );
    (Artifacts::in_dir(&dir), out)
}

/// The linux_arm64 provider, when a tools/release build left one (tools/release packs the
/// arm64 zip from it; only tools/release without --no-build builds it).
pub fn arm64_binary() -> Option<PathBuf> {
    let bin = cargo_target_dir()
        .join("aarch64-unknown-linux-gnu/release")
        .join("terraform-provider-autoheal");
    bin.is_file().then_some(bin)
}

/// The workspace's target directory, as tools/release finds it (CARGO_TARGET_DIR or target/).
pub fn cargo_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The SHA-256 of a file, in hex, by coreutils (the tool users check releases with).
pub fn sha256_hex(path: &Path) -> String {
    let out = run_checked("sha256sum", Command::new("sha256sum").arg(path));
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// The `h1:` hash Terraform records in `.terraform.lock.hcl` for a provider package whose one
/// file is `package_dir/file` (an unpacked mirror's layout): the SHA-256 of the
/// `sha256sum`-style lines ("HEX  NAME\n", by name) of the package's files, base64-encoded
/// (Go's dirhash.Hash1). Computed with coreutils from the unpacked file, independently of
/// Terraform and of [`h1_of_zip`].
pub fn h1_of_unpacked(package_dir: &Path, file: &str) -> String {
    let summary = format!("{}  {file}\n", sha256_hex(&package_dir.join(file)));
    let scratch = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(scratch.path(), summary).unwrap();
    let digest = hex_bytes(&sha256_hex(scratch.path()));
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The same `h1:` hash (see [`h1_of_unpacked`]), over all files of a packed provider zip,
/// computed from the zip's entries by Python (python3 is needed by tools/ anyway): what a
/// network mirror's `VERSION.json` lists for the zip, without unpacking it.
pub fn h1_of_zip(zip: &Path) -> String {
    const H1: &str = r#"
import base64, hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = sorted(n for n in z.namelist() if not n.endswith("/"))
    summary = "".join("%s  %s\n" % (hashlib.sha256(z.read(n)).hexdigest(), n) for n in names)
print("h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode())
"#;
    let out = run_checked(
        "computing the zip's h1 hash",
        Command::new("python3").arg("-c").arg(H1).arg(zip),
    );
    out.stdout.trim().to_string()
}

/// Writes `dir/main.tf`: a configuration that requires exactly the released version (so
/// Terraform installs this release, no other version) and plans one instance named `instance_name` with every
/// AWS endpoint pointing at `counter` (so a plan that called AWS shows up). Returns `dir`.
pub fn write_pinned_config(
    dir: &Path,
    counter: &ConnectionCounter,
    instance_name: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    autoheal = {{
      source  = "{PROVIDER_SOURCE}"
      version = "= {VERSION}"
    }}
  }}
}}

provider "autoheal" {{
  region = "ap-southeast-2"
{endpoints}}}

resource "autoheal_instance" "app" {{
  name              = "{instance_name}"
  availability_zone = "ap-southeast-2a"
  ami               = "ami-0720cb7af233b0529"
  instance_type     = "t3.micro"
}}
"#,
            endpoints = counter.endpoints_block(&[]),
        ),
    )
    .unwrap();
    dir.to_path_buf()
}
