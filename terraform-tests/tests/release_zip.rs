//! The release packaging (`tools/release`) as a user meets it: the SHA256SUMS file checks the
//! zip and the manifest (and catches a changed byte), the same binary packs to the same bytes,
//! and Terraform installs the zip from a filesystem mirror of its own, both unpacked (the
//! layout `terraform providers mirror` writes and users make by hand) and packed (the zip as
//! downloaded), then plans with the installed provider. Nothing here uses the project's own
//! mirror in `.tools/`, and no AWS call is made: every endpoint points at a local listener.
//! Also: the signed sums verify with the publisher's public key and with no other key,
//! tools/release refuses a binary for the wrong machine or without the handler, and the arm64
//! zip (when an arm64 build exists) holds an AArch64 provider with both handlers.
//!
//! `tools/release --no-build` packs the binary already in target/release, which `tools/test`
//! builds before it runs the tests. The artifacts' names, the run of tools/release and the
//! hashes come from [`terraform_tests::release`]; the publisher's and the users' keyrings are
//! [`terraform_tests::gpg`] homes.

use std::path::{Path, PathBuf};
use std::process::Command;

use terraform_tests::gpg::GnupgHome;
use terraform_tests::process::{run_with_timeout, Captured};
use terraform_tests::release::{
    arm64_binary, binary_name, cargo_target_dir, h1_of_unpacked, release_command, run_release,
    sha256_hex, write_pinned_config, zip_name, zip_name_for, Artifacts, ARM64_PLATFORM, PLATFORM,
    RELEASE_TIMEOUT, VERSION,
};
use terraform_tests::tool::{run_checked, TOOL_TIMEOUT};
use terraform_tests::{
    terraform_versions, workspace_root, CommandOutput, ConnectionCounter, Terraform,
    TerraformBinary, PROVIDER_ADDRESS, PROVIDER_SOURCE,
};

/// `tools/release --no-build --out DIR [ARGS]`; checks that it names the artifacts on stdout:
/// the linux_amd64 zip, the linux_arm64 zip when an arm64 build exists (only tools/release
/// without --no-build makes one), the manifest, the sums, and the signature when signing.
fn release_into(dir: &Path) -> Artifacts {
    release_with(dir, &[], &[]).0
}

/// As `release_into`, with extra arguments and environment; also returns tools/release's
/// stderr (its log).
fn release_with(dir: &Path, args: &[&str], envs: &[(&str, &Path)]) -> (Artifacts, String) {
    let (artifacts, out) = run_release(dir, args, envs);
    let signed = args.contains(&"--sign");
    let mut expected = vec![artifacts.zip.clone()];
    if arm64_binary().is_some() {
        expected.push(artifacts.arm64_zip());
    } else {
        assert!(
            out.stderr.contains("linux_arm64 not packed"),
            "tools/release should say it packed no linux_arm64 zip:\n{}",
            out.stderr
        );
    }
    expected.extend([artifacts.manifest.clone(), artifacts.sums.clone()]);
    if signed {
        expected.push(artifacts.signature());
    } else {
        assert!(
            out.stderr.contains(".sig not written"),
            "tools/release should say it signed nothing:\n{}",
            out.stderr
        );
    }
    let listed: Vec<PathBuf> = out.stdout.lines().map(PathBuf::from).collect();
    assert_eq!(
        listed, expected,
        "tools/release should print the artifacts' paths:\n{}",
        out.stderr
    );
    for path in &listed {
        assert!(path.is_file(), "{} missing", path.display());
    }
    (artifacts, out.stderr)
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
    let out = run_checked(
        "unpacking the release zip",
        Command::new("python3")
            .arg("-c")
            .arg(UNPACK)
            .arg(zip)
            .arg(dir),
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
        .options(write_pinned_config(
            &scratch.join("config"),
            counter,
            "release-check",
        ))
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
        plan.plans_only_the_creation_of("autoheal_instance.app"),
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
    let arm64_zip = zip_name_for(ARM64_PLATFORM);
    let mut expected_names = vec![first.zip.file_name().unwrap().to_str().unwrap()];
    if arm64_binary().is_some() {
        expected_names.push(&arm64_zip);
    }
    expected_names.push(first.manifest.file_name().unwrap().to_str().unwrap());
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
    let expected_h1 = h1_of_unpacked(&package_dir, &entry);

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

#[test]
fn the_signed_sums_verify_with_the_publishers_public_key_only() {
    let publisher = GnupgHome::create();
    let fingerprint = publisher.generate_key(
        "autoheal release test <release@example.invalid>",
        "rsa3072",
        "never",
    );
    let scratch = tempfile::tempdir().unwrap();
    let (artifacts, log) = release_with(
        &scratch.path().join("release"),
        &["--sign", &fingerprint],
        &[("GNUPGHOME", publisher.path())],
    );
    assert!(
        log.contains(&format!("signed with {fingerprint}")),
        "tools/release should name the signing key:\n{log}"
    );
    let sig = artifacts.signature();
    let bytes = std::fs::read(&sig).unwrap();
    // A binary OpenPGP packet (the Registry's form), not an armored text block.
    assert!(
        !bytes.starts_with(b"-----BEGIN"),
        "the signature should be binary, not armored"
    );

    // What the Registry or a user holds: the public key alone, in a keyring of its own.
    let public = publisher.armored_public_key(&fingerprint);
    assert!(public.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{public}");
    let verifier = GnupgHome::create();
    let key_file = scratch.path().join("public.asc");
    std::fs::write(&key_file, &public).unwrap();
    let import = verifier.import(&key_file);
    assert!(import.status.success(), "gpg --import: {import:?}");
    let good = verifier.verify(&sig, &artifacts.sums);
    assert!(
        good.status.success() && good.stdout.contains(&format!("VALIDSIG {fingerprint}")),
        "the publisher's public key should verify the sums: {good:?}"
    );

    // One changed byte of the sums breaks the signature.
    let tampered = scratch.path().join("SHA256SUMS.changed");
    let mut sums = std::fs::read(&artifacts.sums).unwrap();
    sums[0] = if sums[0] == b'0' { b'1' } else { b'0' };
    std::fs::write(&tampered, sums).unwrap();
    let bad = verifier.verify(&sig, &tampered);
    assert!(
        !bad.status.success() && bad.stdout.contains("BADSIG"),
        "changed sums must not verify: {bad:?}"
    );

    // Someone else's key does not vouch for it.
    let stranger = GnupgHome::create();
    stranger.generate_key("someone else <other@example.invalid>", "rsa3072", "never");
    let unknown = stranger.verify(&sig, &artifacts.sums);
    assert!(
        !unknown.status.success() && unknown.stdout.contains("NO_PUBKEY"),
        "a keyring without the publisher's key must not verify: {unknown:?}"
    );
}

#[test]
fn release_refuses_a_binary_for_the_wrong_machine_or_without_the_handler() {
    let built = terraform_tests::provider_binary();
    let not_elf = workspace_root().join("Cargo.toml");
    // (what, the binaries as (directory under the target dir, file to copy there), the error)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a Path)], &'a str);
    let cases: [Case; 3] = [
        // An x86-64 ELF that is not the provider: no handler zip inside.
        (
            "no handler",
            &[("release", Path::new("/bin/true"))],
            "ships the handler for [], not for both",
        ),
        // The amd64 provider where the arm64 one belongs.
        (
            "wrong machine",
            &[
                ("release", built.as_path()),
                ("aarch64-unknown-linux-gnu/release", built.as_path()),
            ],
            "is not a linux_arm64 binary (AArch64)",
        ),
        // Not an ELF at all.
        (
            "not an ELF",
            &[("release", not_elf.as_path())],
            "is not an ELF file",
        ),
    ];
    for (what, binaries, expected) in cases {
        let fake_target = tempfile::tempdir().unwrap();
        for (dir, source) in binaries {
            let dest = fake_target.path().join(dir);
            std::fs::create_dir_all(&dest).unwrap();
            let bin = dest.join("terraform-provider-autoheal");
            std::fs::copy(source, &bin).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out_dir = tempfile::tempdir().unwrap();
        let out = run_with_timeout(
            release_command(out_dir.path()).env("CARGO_TARGET_DIR", fake_target.path()),
            RELEASE_TIMEOUT,
        )
        .unwrap();
        assert!(
            !out.status.success(),
            "{what}: tools/release must refuse it: {out:?}"
        );
        assert!(
            out.stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            out.stderr
        );
        let left: Vec<_> = std::fs::read_dir(out_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what}: nothing may be written: {left:?}");
    }
}

/// The bytes of NEEDLE appear in HAYSTACK.
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_arm64_zip_holds_an_aarch64_provider_with_both_handlers() {
    if arm64_binary().is_none() {
        terraform_tests::report_skip(
            "the linux_arm64 release zip: only `tools/release` (without --no-build) builds the \
             arm64 provider, a second cold build of the SDKs (see CONTRIBUTING, Releasing)",
        );
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let artifacts = release_into(&scratch.path().join("release"));
    let arm64_zip = artifacts.arm64_zip();
    let dir = scratch.path().join("arm64");
    let entry = unpack(&arm64_zip, &dir);
    assert_eq!(entry, binary_name());
    let binary = std::fs::read(dir.join(&entry)).unwrap();
    // ELF64, little-endian, e_machine 183 (EM_AARCH64).
    assert_eq!(&binary[..6], b"\x7fELF\x02\x01", "not a 64-bit LSB ELF");
    assert_eq!(
        u16::from_le_bytes([binary[18], binary[19]]),
        183,
        "not an AArch64 binary"
    );
    // tools/release builds the handler zips and then the provider, so the zips in
    // target/handler are the ones the binary embeds (provider/build.rs includes them whole).
    for arch in ["x86_64", "arm64"] {
        let zip = std::fs::read(
            cargo_target_dir()
                .join("handler")
                .join(arch)
                .join("bootstrap.zip"),
        )
        .unwrap_or_else(|e| panic!("the {arch} handler zip: {e}"));
        assert!(
            contains_bytes(&binary, &zip),
            "the arm64 provider does not embed target/handler/{arch}/bootstrap.zip"
        );
    }
}
