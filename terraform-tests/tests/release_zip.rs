//! The release packaging (`tools/release`) as a user meets it: the SHA256SUMS file checks the
//! zip and the manifest (and catches a changed byte), the same binary packs to the same bytes,
//! and Terraform installs the zip from a filesystem mirror of its own, both unpacked (the
//! layout `terraform providers mirror` writes and users make by hand) and packed (the zip as
//! downloaded), then plans with the installed provider. Nothing here uses the project's own
//! mirror in `.tools/`, and no AWS call is made: every endpoint points at a local listener.
//!
//! `tools/release --no-build` packs the binary already in target/release, which `tools/test`
//! builds before it runs the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use terraform_tests::process::{run_with_timeout, Captured};
use terraform_tests::{
    terraform_versions, workspace_root, CommandOutput, ConnectionCounter, Terraform,
    TerraformBinary, PROVIDER_ADDRESS, PROVIDER_SOURCE,
};

/// The workspace version, which tools/release reads from Cargo.toml too.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PLATFORM: &str = "linux_amd64";
const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The three files of a release, by the names the registry expects.
struct Artifacts {
    zip: PathBuf,
    manifest: PathBuf,
    sums: PathBuf,
}

fn zip_name() -> String {
    format!("terraform-provider-autoheal_{VERSION}_{PLATFORM}.zip")
}

/// The name Terraform looks for inside the zip and in an unpacked mirror.
fn binary_name() -> String {
    format!("terraform-provider-autoheal_v{VERSION}")
}

fn checked(what: &str, captured: anyhow::Result<Captured>) -> Captured {
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

/// `tools/release --no-build --out DIR`; checks that it names the three artifacts on stdout.
fn release_into(dir: &Path) -> Artifacts {
    // tools/release prints the directory's real path.
    std::fs::create_dir_all(dir).unwrap();
    let dir = &dir.canonicalize().unwrap();
    let script = workspace_root().join("tools/release");
    let out = checked(
        "tools/release --no-build",
        run_with_timeout(
            Command::new(&script)
                .arg("--no-build")
                .arg("--out")
                .arg(dir),
            RELEASE_TIMEOUT,
        ),
    );
    let artifacts = Artifacts {
        zip: dir.join(zip_name()),
        manifest: dir.join(format!(
            "terraform-provider-autoheal_{VERSION}_manifest.json"
        )),
        sums: dir.join(format!("terraform-provider-autoheal_{VERSION}_SHA256SUMS")),
    };
    let listed: Vec<PathBuf> = out.stdout.lines().map(PathBuf::from).collect();
    assert_eq!(
        listed,
        [
            artifacts.zip.clone(),
            artifacts.manifest.clone(),
            artifacts.sums.clone()
        ],
        "tools/release should print the artifacts' paths:\n{}",
        out.stderr
    );
    for path in &listed {
        assert!(path.is_file(), "{} missing", path.display());
    }
    assert!(
        out.stderr.contains("linux_arm64 not packed") && out.stderr.contains(".sig not written"),
        "tools/release should say what it does not produce:\n{}",
        out.stderr
    );
    artifacts
}

/// `sha256sum --check --strict SUMS` in the directory of SUMS.
fn sha256sum_check(sums: &Path) -> Captured {
    run_with_timeout(
        Command::new("sha256sum")
            .args(["--check", "--strict"])
            .arg(sums.file_name().unwrap())
            .current_dir(sums.parent().unwrap()),
        TOOL_TIMEOUT,
    )
    .expect("running sha256sum")
}

/// The SHA-256 of a file, in hex, by coreutils (the tool users check releases with).
fn sha256_hex(path: &Path) -> String {
    let out = checked(
        "sha256sum",
        run_with_timeout(Command::new("sha256sum").arg(path), TOOL_TIMEOUT),
    );
    out.stdout.split_whitespace().next().unwrap().to_string()
}

/// The `h1:` hash Terraform records in `.terraform.lock.hcl` for a provider package: the
/// SHA-256 of the `sha256sum`-style lines ("HEX  NAME\n", by name) of the package's files,
/// base64-encoded (Go's dirhash.Hash1). Our package has one file.
fn h1_hash(package_dir: &Path, file: &str) -> String {
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

/// Unpacks the zip's single entry into DIR with the entry's Unix mode, as `unzip` would, and
/// returns the entry's name. Python's zipfile reads it (python3 is needed by tools/ anyway);
/// Terraform's own unpacking is tested with the packed layout.
fn unpack(zip: &Path, dir: &Path) -> String {
    const UNPACK: &str = r#"
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    entries = z.infolist()
    if len(entries) != 1:
        sys.exit("expected one entry, found %s" % [e.filename for e in entries])
    (e,) = entries
    path = os.path.join(sys.argv[2], e.filename)
    with open(path, "wb") as f:
        f.write(z.read(e))
    os.chmod(path, (e.external_attr >> 16) & 0o7777)
    print(e.filename)
"#;
    std::fs::create_dir_all(dir).unwrap();
    let out = checked(
        "unpacking the release zip",
        run_with_timeout(
            Command::new("python3")
                .arg("-c")
                .arg(UNPACK)
                .arg(zip)
                .arg(dir),
            TOOL_TIMEOUT,
        ),
    );
    out.stdout.trim().to_string()
}

fn hcl_path(path: &Path) -> String {
    let s = path.to_str().expect("temp paths are UTF-8");
    assert!(
        !s.contains(['"', '\\', '$', '%']),
        "path needs escaping in HCL: {s}"
    );
    format!("\"{s}\"")
}

/// A CLI config that installs providers from MIRROR only (no registry, no other mirror).
fn write_cli_config(dir: &Path, mirror: &Path) -> PathBuf {
    let path = dir.join("terraformrc");
    std::fs::write(
        &path,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = {}\n    include = [\"{PROVIDER_ADDRESS}\"]\n  }}\n}}\n",
            hcl_path(mirror)
        ),
    )
    .unwrap();
    path
}

/// A one-resource configuration that pins the released version.
fn write_config(dir: &Path, counter: &ConnectionCounter) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("main.tf"),
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
  name              = "release-check"
  availability_zone = "ap-southeast-2a"
  ami               = "ami-0720cb7af233b0529"
  instance_type     = "t3.micro"
}}
"#,
            endpoints = counter.endpoints_block(&[]),
        ),
    )
    .unwrap();
    config
}

/// A Terraform working copy of a fresh configuration that installs from MIRROR only.
fn terraform_with_mirror(
    tf: &TerraformBinary,
    scratch: &Path,
    mirror: &Path,
    counter: &ConnectionCounter,
) -> Terraform {
    std::fs::create_dir_all(scratch).unwrap();
    let cli_config = write_cli_config(scratch, mirror);
    let options = tf
        .options(write_config(scratch, counter))
        .with_envs(counter.aws_env())
        .with_env("TF_CLI_CONFIG_FILE", cli_config.to_str().unwrap())
        // A plugin cache from the caller's environment would be a second source.
        .with_env("TF_PLUGIN_CACHE_DIR", "");
    Terraform::new(options).unwrap()
}

/// init and plan from MIRROR; returns the `h1:` hash recorded in the lock file.
fn install_and_plan(tf: &TerraformBinary, layout: &str, terraform: &Terraform) -> String {
    let init = terraform
        .init()
        .unwrap_or_else(|e| panic!("{} ({layout}): init failed: {e:#}", tf.name));
    let installed = format!("Installed {PROVIDER_SOURCE} v{VERSION}");
    assert!(
        init.stdout.contains(&installed),
        "{} ({layout}): init should report {installed:?}:\n{init}",
        tf.name
    );
    let plan: CommandOutput = terraform
        .plan()
        .unwrap_or_else(|e| panic!("{} ({layout}): plan failed: {e:#}", tf.name));
    assert!(
        plan.plan_has_changes()
            && plan
                .stdout
                .contains("# autoheal_instance.app will be created")
            && plan
                .stdout
                .contains("Plan: 1 to add, 0 to change, 0 to destroy."),
        "{} ({layout}): the installed provider should plan the instance:\n{plan}",
        tf.name
    );
    let lock = std::fs::read_to_string(terraform.working_dir().join(".terraform.lock.hcl"))
        .unwrap_or_else(|e| panic!("{} ({layout}): no lock file: {e}", tf.name));
    let hashes: Vec<&str> = lock
        .split('"')
        .filter(|s| s.starts_with("h1:") || s.starts_with("zh:"))
        .collect();
    let h1: Vec<&str> = hashes
        .iter()
        .copied()
        .filter(|h| h.starts_with("h1:"))
        .collect();
    assert_eq!(
        h1.len(),
        1,
        "{} ({layout}): one h1 hash expected in the lock file:\n{lock}",
        tf.name
    );
    eprintln!("{} ({layout}): lock file hashes {hashes:?}", tf.name);
    h1[0].to_string()
}

#[test]
fn release_sums_match_the_files_catch_a_changed_byte_and_packing_is_reproducible() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = release_into(a.path());
    let second = release_into(b.path());

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&first.manifest).unwrap()).unwrap();
    assert_eq!(
        manifest,
        serde_json::json!({"version": 1, "metadata": {"protocol_versions": ["6.0"]}})
    );

    // The sums name exactly the zip and the manifest, as HashiCorp's releases do.
    let sums = std::fs::read_to_string(&first.sums).unwrap();
    let mut named: Vec<(String, String)> = sums
        .lines()
        .map(|line| {
            let (hex, name) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
            (name.to_string(), hex.to_string())
        })
        .collect();
    named.sort();
    let expected_names = [
        first.zip.file_name().unwrap().to_str().unwrap(),
        first.manifest.file_name().unwrap().to_str().unwrap(),
    ];
    assert_eq!(
        named.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        expected_names,
        "{sums}"
    );
    for (name, hex) in &named {
        assert_eq!(
            *hex,
            sha256_hex(&a.path().join(name)),
            "the sum of {name} in {sums}"
        );
    }
    let check = sha256sum_check(&first.sums);
    assert!(check.status.success(), "sha256sum --check: {check:?}");

    // The same binary packs to the same bytes.
    for (x, y) in [
        (&first.zip, &second.zip),
        (&first.manifest, &second.manifest),
        (&first.sums, &second.sums),
    ] {
        assert!(
            std::fs::read(x).unwrap() == std::fs::read(y).unwrap(),
            "{} and {} differ: the packing is not reproducible",
            x.display(),
            y.display()
        );
    }

    // One changed byte in the zip fails the check, naming the zip.
    let mut bytes = std::fs::read(&second.zip).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&second.zip, bytes).unwrap();
    let tampered = sha256sum_check(&second.sums);
    assert!(
        !tampered.status.success(),
        "sha256sum --check must fail on a changed zip: {tampered:?}"
    );
    assert!(
        tampered.stdout.contains(&format!("{}: FAILED", zip_name())),
        "{tampered:?}"
    );
}

#[test]
fn terraform_installs_the_release_zip_from_a_filesystem_mirror_and_plans() {
    let scratch = tempfile::tempdir().unwrap();
    let artifacts = release_into(&scratch.path().join("release"));
    let check = sha256sum_check(&artifacts.sums);
    assert!(check.status.success(), "sha256sum --check: {check:?}");

    // Unpacked layout: HOSTNAME/NAMESPACE/TYPE/VERSION/TARGET/terraform-provider-TYPE_vVERSION.
    let unpacked_mirror = scratch.path().join("mirror-unpacked");
    let package_dir = unpacked_mirror
        .join(PROVIDER_ADDRESS)
        .join(VERSION)
        .join(PLATFORM);
    let entry = unpack(&artifacts.zip, &package_dir);
    assert_eq!(entry, binary_name(), "the binary's name inside the zip");
    let expected_h1 = h1_hash(&package_dir, &entry);

    // Packed layout: HOSTNAME/NAMESPACE/TYPE/terraform-provider-TYPE_VERSION_TARGET.zip, which
    // Terraform unpacks itself.
    let packed_mirror = scratch.path().join("mirror-packed");
    let packed_dir = packed_mirror.join(PROVIDER_ADDRESS);
    std::fs::create_dir_all(&packed_dir).unwrap();
    std::fs::copy(&artifacts.zip, packed_dir.join(zip_name())).unwrap();

    for tf in terraform_versions() {
        let slug = tf.name.replace(' ', "-");
        for (layout, mirror) in [
            ("unpacked mirror", &unpacked_mirror),
            ("packed mirror", &packed_mirror),
        ] {
            eprintln!("=== {}: installing the release from the {layout}", tf.name);
            let counter = ConnectionCounter::start().unwrap();
            let work = scratch
                .path()
                .join(format!("{slug}-{}", layout.replace(' ', "-")));
            let terraform = terraform_with_mirror(&tf, &work, mirror, &counter);
            let h1 = install_and_plan(&tf, layout, &terraform);
            assert_eq!(
                h1, expected_h1,
                "{} ({layout}): the lock file should record the released binary's hash",
                tf.name
            );
            assert_eq!(
                counter.connections(),
                0,
                "{} ({layout}): init and plan need no AWS call, but these were made: {:?}",
                tf.name,
                counter.requests()
            );
        }
    }
}

#[test]
fn an_empty_mirror_installs_nothing() {
    // The counterpart of the test above: with the same CLI config pointing at a mirror without
    // the release, init fails, so the provider above came from the release's mirror and from
    // nowhere else (not from .tools/mirror, not from a registry).
    let scratch = tempfile::tempdir().unwrap();
    let empty = scratch.path().join("mirror-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let tf = &terraform_versions()[0];
    let counter = ConnectionCounter::start().unwrap();
    let terraform = terraform_with_mirror(tf, &scratch.path().join("work"), &empty, &counter);
    let init = terraform
        .run(&["init", "-no-color", "-input=false"], false)
        .unwrap();
    assert_ne!(
        init.exit_code, 0,
        "{}: init from an empty mirror: {init}",
        tf.name
    );
    assert!(
        init.combined().contains(PROVIDER_SOURCE),
        "{}: the error should name the provider: {init}",
        tf.name
    );
}
