//! arm64: what the provider ships for `lambda_architecture = "arm64"` runs, on this x86_64
//! machine, through qemu-user (`.tools/qemu`, tools/install-tools; no binfmt_misc here, so
//! every arm64 program is started as `qemu-aarch64-static -L SYSROOT PROGRAM`, see
//! `terraform_tests::aarch64`). On an AArch64 machine the same tests run it natively.
//!
//! 1. The arm64 attachment Lambda (`tools/build-handler --arch arm64`:
//!    `target/handler/arm64/bootstrap.zip`, or `$AUTOHEAL_HANDLER_ZIP_ARM64`) deployed as an
//!    `Architectures: ["arm64"]` function heals a launch end to end: the local AWS, started with
//!    `--aarch64-emulator`, runs its bootstrap through qemu (and would refuse x86_64 code in
//!    that function as Lambda does, with `Runtime.InvalidEntrypoint`, exec format error).
//!
//! 2. The linux_arm64 provider (`tools/release` builds it:
//!    `target/aarch64-unknown-linux-gnu/release/terraform-provider-autoheal`) answers both
//!    Terraform versions: handshake with AutoMTLS, GetProviderSchema, validation and a plan of
//!    an arm64-Lambda stack. Terraform starts it through a CLI `dev_overrides` entry naming a
//!    directory whose `terraform-provider-autoheal` is a script exec'ing qemu on the binary.
//!    tools/test does not build it (a second cold build of the SDKs, see CONTRIBUTING,
//!    Releasing), so in CI this one reports a skip unless a release build is present.
//!
//! Each test skips, saying so (the tools/test summary lists it), when qemu or the arm64 build
//! is missing, or when `AUTOHEAL_NO_ARM64_HANDLER` gives a reason: tools/test sets it when it
//! did not build the arm64 handler, so that a zip left by an earlier build is not tested as
//! this code's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use aws_sdk_lambda::types::Architecture;
use serde_json::json;
use terraform_tests::aarch64::{elf_machine, host_is_aarch64, Qemu, EM_AARCH64};
use terraform_tests::heal_world::{handler_zip_path, response, Heal};
use terraform_tests::local_aws::control::Outcome;
use terraform_tests::local_aws::helpers::{emf_records, parse_report};
use terraform_tests::local_aws::Options;
use terraform_tests::{
    report_skip, terraform_versions, workspace_root, ConnectionCounter, Terraform,
    PROVIDER_ADDRESS, PROVIDER_SOURCE,
};

/// How this machine runs arm64 code: `Some(None)` natively, `Some(Some(qemu))` through qemu;
/// `None` (after reporting the skip of `what`) when it cannot.
fn arm64_runner_or_skip(what: &str) -> Option<Option<Qemu>> {
    if host_is_aarch64() {
        return Some(None);
    }
    match Qemu::find() {
        Ok(qemu) => Some(Some(qemu)),
        Err(why) => {
            report_skip(&format!("{what}: {why}"));
            None
        }
    }
}

/// The ELF machine of the `bootstrap` in a Lambda zip (read with the venv's Python, whose
/// zipfile inflates it; the tests have no zip reader of their own).
fn zipped_bootstrap_machine(zip: &Path) -> Option<u16> {
    let python = terraform_tests::local_aws::venv_python().expect("the local AWS's venv");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).open('bootstrap').read(64))",
        ])
        .arg(zip)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "reading {}: {}",
        zip.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    elf_machine(&out.stdout)
}

// --- 1. the arm64 Lambda heals a launch ---------------------------------------------------------

#[tokio::test]
async fn the_arm64_handler_heals_a_launch() {
    const WHAT: &str = "arm64 heal (tests/arm64.rs)";
    if let Some(why) = std::env::var("AUTOHEAL_NO_ARM64_HANDLER")
        .ok()
        .filter(|v| !v.is_empty())
    {
        report_skip(&format!("{WHAT}: no arm64 handler: {why}"));
        return;
    }
    let zip_path = handler_zip_path("arm64");
    if !zip_path.is_file() {
        report_skip(&format!(
            "{WHAT}: no arm64 handler zip at {} (tools/build-handler --arch arm64)",
            zip_path.display()
        ));
        return;
    }
    let Some(qemu) = arm64_runner_or_skip(WHAT) else {
        return;
    };
    // What is deployed is arm64 code: an x86_64 bootstrap here would be refused by the local
    // AWS as by Lambda, and must not pass for the arm64 build either.
    assert_eq!(
        zipped_bootstrap_machine(&zip_path),
        Some(EM_AARCH64),
        "{} holds no AArch64 bootstrap",
        zip_path.display()
    );
    let zip = std::fs::read(&zip_path).unwrap();

    let options = Options {
        aarch64_emulator: qemu.as_ref().map(Qemu::emulator_command_line),
        ..Options::default()
    };
    let h = Heal::start("arm", options, zip, &[], |b| b.architecture("arm64")).await;
    let config = h
        .clients
        .lambda
        .get_function_configuration()
        .function_name(&h.stack.function_name)
        .send()
        .await
        .unwrap();
    assert_eq!(config.architectures(), [Architecture::Arm64]);

    let started = Instant::now();
    let instance = h.first_launch().await;
    eprintln!(
        "scaled 0 -> 1 and healed by the arm64 handler in {:?}",
        started.elapsed()
    );
    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;
    assert!(h.control().lifecycle_actions().await.unwrap().is_empty());

    // One attempt, delivered by the rule, run as arm64 code (through qemu here), which healed.
    let inv = h.invocation(&instance.id, |_| true).await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert_eq!(inv.attempt, 1, "{inv:?}");
    assert_eq!(inv.architecture.as_deref(), Some("arm64"), "{inv:?}");
    match &qemu {
        Some(qemu) => {
            let emulator = inv.emulator.as_deref().unwrap_or_default();
            assert!(
                emulator.contains(&*qemu.program.to_string_lossy()),
                "the bootstrap ran through {}: {inv:?}",
                qemu.program.display()
            );
        }
        None => assert_eq!(inv.emulator, None, "natively on this AArch64 host: {inv:?}"),
    }
    let r = response(&inv);
    assert_eq!(r["outcome"], "healed", "{r}");
    assert_eq!(r["instance"], instance.id.as_str());
    assert_eq!(r["volume"], h.stack.volume_id.as_str());
    assert_eq!(r["allocation"], h.stack.allocation_id.as_str());

    // The attachment, the association and the CONTINUE were made by that arm64 attempt: each
    // call was signed with the credentials the local AWS issued to it.
    for (operation, instance_param) in [
        ("AttachVolume", "InstanceId"),
        ("AssociateAddress", "InstanceId"),
        ("CompleteLifecycleAction", "InstanceId"),
    ] {
        let calls: Vec<_> = h
            .calls_of(operation)
            .await
            .into_iter()
            .filter(|c| c.succeeded())
            .collect();
        assert_eq!(calls.len(), 1, "{operation}: {calls:?}");
        let call = &calls[0];
        assert_eq!(call.param(instance_param), Some(instance.id.as_str()));
        assert_eq!(
            call.request_id.as_deref(),
            Some(inv.request_id.as_str()),
            "{call:?}"
        );
        assert_eq!(
            call.function.as_deref(),
            Some(h.stack.function_name.as_str())
        );
    }

    // The function's logs: its EMF line says healed; Lambda's REPORT line closes the attempt
    // (its Max Memory Used is the emulator process's peak RSS under qemu, not the program's).
    let lines = h.logs().await;
    let emf: Vec<_> = emf_records(&lines)
        .into_iter()
        .filter(|r| r["requestId"] == json!(inv.request_id))
        .collect();
    assert_eq!(emf.len(), 1, "{}", lines.join("\n"));
    assert_eq!(emf[0]["outcome"], "healed", "{}", emf[0]);
    let report = lines
        .iter()
        .filter_map(|l| parse_report(l))
        .find(|r| r.request_id == inv.request_id)
        .unwrap_or_else(|| panic!("a REPORT line:\n{}", lines.join("\n")));
    eprintln!(
        "arm64 attempt: {:.0} ms, init {:?} ms, max memory {:?} MB ({})",
        report.duration_ms,
        report.init_duration_ms,
        report.max_memory_used_mb,
        if qemu.is_some() {
            "qemu's peak RSS"
        } else {
            "native"
        }
    );
}

/// The linux_arm64 provider, which only `tools/release` (without --no-build) builds.
fn arm64_provider() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target
        .join("aarch64-unknown-linux-gnu/release")
        .join("terraform-provider-autoheal");
    bin.is_file().then_some(bin)
}

/// Terraform (both versions) starts the arm64 provider through qemu, as a user on an arm64
/// machine starts it natively: the go-plugin handshake (with AutoMTLS), GetProviderSchema,
/// validation. Terraform finds it through a CLI `dev_overrides` entry naming a directory whose
/// `terraform-provider-autoheal` is a two-line script exec'ing qemu on the real binary.
#[test]
fn terraform_talks_to_the_arm64_provider_under_qemu() {
    let Some(binary) = arm64_provider() else {
        report_skip(
            "the arm64 provider under qemu: only `tools/release` (without --no-build) builds \
             target/aarch64-unknown-linux-gnu/release/terraform-provider-autoheal, a second \
             cold build of the AWS SDKs (see CONTRIBUTING, Releasing)",
        );
        return;
    };
    let Some(runner) = arm64_runner_or_skip("the arm64 provider under Terraform") else {
        return;
    };
    let bytes = std::fs::read(&binary).unwrap();
    assert_eq!(
        elf_machine(&bytes),
        Some(EM_AARCH64),
        "{} is not an AArch64 binary",
        binary.display()
    );
    if runner.is_some() {
        // The control: here it cannot run by itself, so whatever answers below ran in qemu.
        let direct = Command::new(&binary).output();
        assert!(
            matches!(&direct, Err(e) if e.raw_os_error() == Some(libc::ENOEXEC)),
            "an arm64 binary should not run natively on this host: {direct:?}"
        );
    }

    let scratch = tempfile::tempdir().unwrap();
    let bin_dir = scratch.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let starts = scratch.path().join("starts.log");
    let wrapper = bin_dir.join("terraform-provider-autoheal");
    let word = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    // Each start is logged, so the test knows Terraform went through this script.
    let exec = match &runner {
        Some(qemu) => format!(
            "exec {} -L {} {} \"$@\"",
            word(&qemu.program),
            word(&qemu.sysroot),
            word(&binary)
        ),
        None => format!("exec {} \"$@\"", word(&binary)),
    };
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho start >> {}\n{exec}\n", word(&starts)),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cli_config = scratch.path().join("terraformrc");
    std::fs::write(
        &cli_config,
        format!(
            "provider_installation {{\n  dev_overrides {{\n    \"{PROVIDER_SOURCE}\" = \"{}\"\n  }}\n}}\n",
            bin_dir.display()
        ),
    )
    .unwrap();
    // Validation and planning need no AWS call: every endpoint points at a counter.
    let counter = ConnectionCounter::start().unwrap();
    let config = scratch.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    autoheal = {{ source = "{PROVIDER_SOURCE}" }}
  }}
}}

provider "autoheal" {{
  region = "ap-southeast-2"
{endpoints}}}

resource "autoheal_instance" "app" {{
  name              = "arm64-check"
  availability_zone = "ap-southeast-2a"
  ami               = "ami-0720cb7af233b0529"
  instance_type     = "t4g.micro"
  lambda_architecture = "arm64"
}}
"#,
            endpoints = counter.endpoints_block(&[]),
        ),
    )
    .unwrap();

    for tf in terraform_versions() {
        let before = std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .count();
        let terraform = Terraform::new(
            tf.options(&config)
                .with_envs(counter.aws_env())
                .with_env("TF_CLI_CONFIG_FILE", cli_config.to_str().unwrap())
                .with_env("TF_PLUGIN_CACHE_DIR", ""),
        )
        .unwrap();
        let schema = terraform
            .providers_schema_json()
            .unwrap_or_else(|e| panic!("{}: providers schema -json: {e:#}", tf.name));
        let resource =
            &schema["provider_schemas"][PROVIDER_ADDRESS]["resource_schemas"]["autoheal_instance"];
        assert!(
            resource["block"]["attributes"]["lambda_architecture"].is_object(),
            "{}: the arm64 provider's schema should describe autoheal_instance: {schema}",
            tf.name
        );
        let validate = terraform
            .validate()
            .unwrap_or_else(|e| panic!("{}: validate: {e:#}", tf.name));
        assert!(
            validate.stdout.contains("The configuration is valid"),
            "{}: {validate}",
            tf.name
        );
        // The plan runs PlanResourceChange, where a provider without the arm64 handler would
        // refuse `lambda_architecture = "arm64"`.
        let plan = terraform
            .plan()
            .unwrap_or_else(|e| panic!("{}: plan: {e:#}", tf.name));
        assert!(
            plan.plans_only_the_creation_of("autoheal_instance.app"),
            "{}: the arm64 provider should plan the stack: {plan}",
            tf.name
        );
        let after = std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .count();
        assert!(
            after > before,
            "{}: Terraform should have started the provider through the qemu wrapper",
            tf.name
        );
        eprintln!(
            "{}: schema, validate and plan answered by the arm64 provider ({} starts)",
            tf.name,
            after - before
        );
    }
    assert_eq!(
        counter.connections(),
        0,
        "validation and planning need no AWS call, but these were made: {:?}",
        counter.requests()
    );
}
