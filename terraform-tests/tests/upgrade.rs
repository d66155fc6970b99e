//! Upgrading the provider rolls and replaces nothing.
//!
//! Each test takes the provider of an earlier commit that `tools/build-previous-provider`
//! built beforehand (a git worktree built into this workspace's target directory, cached
//! under `.tools/previous-provider/<commit>/`; run it first, outside `cargo test`), puts it
//! into a filesystem mirror of its own next to the current provider (`AUTOHEAL_PROVIDER`),
//! applies the stack fixture as it was at that commit with the old provider against the
//! local AWS (realistic profile), then switches the configuration to the current fixture and
//! provider (`terraform init -upgrade`, as a user bumping the version constraint) and plans:
//!
//! - from b06d38b, the previous release (schema version 0): the plan changes no resource
//!   (the current fixture's `stacks` output may only add, as null, the keys of attributes
//!   b06d38b lacked: Terraform 1.0.3 plans that output change), a refresh-only apply stores
//!   schema version 1, the next plan is empty; when
//!   this build ships another attachment Lambda than b06d38b did, the plan is one in-place
//!   update whose only change is `handler_sha256` (the function's new code), and the apply
//!   stores schema version 1;
//! - from 9fbb21f (before `ingress` and the other access attributes, with `device_name`
//!   defaulting to `/dev/xvdb`): the state upgrade keeps the device name, and the plan is
//!   one in-place update that repairs what the provider now guards (the Lambda role moves
//!   under `/autoheal/`, the template maps the root device encrypted): nothing replaced, no
//!   instance rolled; after the apply the plan is empty.
//!
//! In both, the SDK shows the same instance serving with the same volume and address as
//! before the upgrade, and destroy leaves only the final snapshot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use terraform_tests::heal_world::handler_zip_path;
use terraform_tests::process::run_with_timeout;
use terraform_tests::release::sha256_hex;
use terraform_tests::stack_world::{
    served_instance, stack_fixture, World, DEFAULT_STACK_COMMAND_TIMEOUT,
};
use terraform_tests::{
    provider_binary, provider_version, terraform_versions, workspace_root, CommandOutput,
    Terraform, TerraformBinary, PROVIDER_ADDRESS, PROVIDER_SOURCE,
};

/// The local AWS's clock (as in instance_acceptance.rs).
const CLOCK_SCALE: f64 = 0.02;
/// The previous release: main before schema versions (what users run).
const PREVIOUS_RELEASE: &str = "b06d38b";
/// An older commit, before the access attributes and the device name's new default.
const BEFORE_ACCESS: &str = "9fbb21f";
/// The script only looks into its cache here (git rev-parse, a lock).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tools/build-previous-provider --no-build COMMIT`: the cache directory holding the old
/// provider and the old stack fixture. Not a build: a cargo build started from a test waits
/// for ever on the lock `cargo test` holds, so tools/test (or the developer) builds first.
///
/// `None` (after reporting the skip) when tools/test could not build it because this clone
/// lacks the commit (a shallow clone): it says so in `AUTOHEAL_NO_PREVIOUS_PROVIDER`.
fn previous_provider(commit: &str) -> Option<PathBuf> {
    if let Some(why) = std::env::var_os("AUTOHEAL_NO_PREVIOUS_PROVIDER").filter(|v| !v.is_empty()) {
        terraform_tests::report_skip(&format!(
            "upgrading from {commit}: {}",
            why.to_string_lossy()
        ));
        return None;
    }
    let script = workspace_root().join("tools/build-previous-provider");
    let out = run_with_timeout(
        Command::new(&script).args(["--no-build", commit]),
        SCRIPT_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", script.display()));
    assert!(
        out.status.success(),
        "the provider of {commit} is not built: run `tools/build-previous-provider {commit}` \
         first (tools/test does; about 4 minutes for both, once per machine):\n{}",
        out.stderr
    );
    eprint!("{}", out.stderr);
    let dir = PathBuf::from(out.stdout.trim());
    assert!(
        dir.join("terraform-provider-autoheal").is_file() && dir.join("stack/main.tf").is_file(),
        "{} lacks the binary or the fixture",
        dir.display()
    );
    Some(dir)
}

/// The version the old provider gets in the test's mirror: a pre-release of 0.0.1, so only
/// a constraint naming it exactly selects it.
fn previous_version(commit: &str) -> String {
    format!("0.0.1-g{commit}")
}

/// Places `binary` in `mirror` as version `version` (unpacked layout), hard-linked when it
/// can be (the same file system), copied otherwise.
fn publish(mirror: &Path, version: &str, binary: &Path) {
    let dir = mirror
        .join(PROVIDER_ADDRESS)
        .join(version)
        .join("linux_amd64");
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join(format!("terraform-provider-autoheal_v{version}"));
    if std::fs::hard_link(binary, &dest).is_err() {
        std::fs::copy(binary, &dest).unwrap();
    }
}

/// A CLI config that installs our provider from `mirror` only.
fn write_cli_config(dir: &Path, mirror: &Path) -> PathBuf {
    let mirror = mirror.to_str().expect("temp paths are UTF-8");
    assert!(!mirror.contains(['"', '\\', '$', '%']), "{mirror}");
    let path = dir.join("terraformrc");
    std::fs::write(
        &path,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{mirror}\"\n    \
             include = [\"{PROVIDER_ADDRESS}\"]\n  }}\n  direct {{\n    exclude = \
             [\"{PROVIDER_ADDRESS}\"]\n  }}\n}}\n"
        ),
    )
    .unwrap();
    path
}

/// `fixture` (a stack fixture's main.tf) with the provider pinned to exactly `version`.
fn pinned(fixture: &Path, version: &str) -> String {
    let text = std::fs::read_to_string(fixture).unwrap();
    let source = format!("source = \"{PROVIDER_SOURCE}\"");
    assert_eq!(text.matches(&source).count(), 1, "{}", fixture.display());
    text.replace(
        &source,
        &format!("{source}\n      version = \"= {version}\""),
    )
}

/// The resource instances of the working directory's state: (schema_version, attributes).
fn stored_instances(t: &Terraform) -> Vec<(i64, Json)> {
    let path = t.working_dir().join("terraform.tfstate");
    let state: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    state["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["type"] == "autoheal_instance")
        .flat_map(|r| r["instances"].as_array().cloned().unwrap_or_default())
        .map(|i| {
            (
                i["schema_version"].as_i64().expect("schema_version"),
                i["attributes"].clone(),
            )
        })
        .collect()
}

fn schema_versions(t: &Terraform) -> Vec<i64> {
    stored_instances(t).into_iter().map(|(v, _)| v).collect()
}

fn stack(t: &Terraform) -> Json {
    t.output("stacks").expect("output stacks")["acc"].clone()
}

/// The ids that must survive an upgrade: a changed one is a replaced object.
fn ids(stack: &Json) -> [(&'static str, String); 5] {
    [
        "instance_id",
        "volume_id",
        "allocation_id",
        "launch_template_id",
        "security_group_id",
    ]
    .map(|k| {
        let v = stack[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} missing in {stack}"));
        (k, v.to_string())
    })
}

/// What the plan after the upgrade may be.
enum Expect {
    /// No change at all.
    Empty,
    /// The new build ships another attachment Lambda: its code is updated in place, and
    /// `handler_sha256` (to this digest) is the only attribute that changes. No default, no
    /// object, no instance.
    NewHandler(String),
    /// One resource updated in place, no replacement, no rolled instance; these attributes
    /// become known only after the apply (repairs of what the provider now guards).
    InPlaceRepair(&'static [&'static str]),
}

/// The keys of the `stacks` output's objects in a stack fixture's main.tf (`key = v.attr`).
fn output_keys(fixture: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(fixture).unwrap();
    let block = text
        .split("output \"stacks\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{}: no output \"stacks\"", fixture.display()));
    block
        .lines()
        .map(str::trim)
        .take_while(|l| *l != "}")
        .filter_map(|l| l.split_once(" = v."))
        .map(|(k, _)| k.trim().to_string())
        .collect()
}

/// The plan has no resource change. Its only other changes may be outputs: keys of
/// `new_outputs` (those the new fixture adds to `stacks`) shown as added with the value
/// `null` (attributes the old provider lacked, empty in the upgraded state). Terraform 1.0.3
/// plans such an output-only change with exit code 2 ("Changes to Outputs"), which is the
/// user's new configuration, not the provider; a resource change or another output change
/// fails.
fn assert_no_resource_change(plan: &CommandOutput, new_outputs: &BTreeSet<String>, what: &str) {
    if plan.exit_code == 0 {
        return;
    }
    assert_eq!(plan.exit_code, 2, "{what}: plan failed:\n{plan}");
    for never in [
        "will perform the following actions",
        "Plan:",
        "will be updated",
        "must be replaced",
    ] {
        assert!(
            !plan.stdout.contains(never),
            "{what}: the plan must change no resource ({never:?}):\n{plan}"
        );
    }
    let outputs = plan
        .stdout
        .split("Changes to Outputs:")
        .nth(1)
        .unwrap_or_else(|| panic!("{what}: a change that is neither resource nor output:\n{plan}"));
    let changed: Vec<&str> = outputs
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("~ ") || l.starts_with("+ ") || l.starts_with("- "))
        // The output and its map entry, both `~` when an element inside changes.
        .filter(|l| *l != "~ stacks = {" && *l != "~ acc = {")
        .collect();
    assert!(!changed.is_empty(), "{what}: no change found in:\n{plan}");
    for line in changed {
        let added_null = line
            .strip_prefix("+ ")
            .and_then(|l| l.split_once(" = "))
            .filter(|(k, v)| new_outputs.contains(k.trim()) && v.trim() == "null");
        assert!(
            added_null.is_some(),
            "{what}: {line:?} is not a key the new fixture adds, shown null:\n{plan}"
        );
    }
}

/// The plan must be exactly `expect`; with `Expect::Empty`, outputs of `new_outputs` may
/// be added as null (see `assert_no_resource_change`). Returns the plan.
fn assert_plan(
    t: &Terraform,
    expect: &Expect,
    new_outputs: &BTreeSet<String>,
    what: &str,
) -> CommandOutput {
    let plan = t.plan().unwrap_or_else(|e| panic!("{what}: plan: {e:#}"));
    match expect {
        Expect::Empty => assert_no_resource_change(&plan, new_outputs, what),
        Expect::NewHandler(digest) => {
            let words = plan.words();
            assert!(
                words.contains("Plan: 0 to add, 1 to change, 0 to destroy."),
                "{what}: one in-place update expected:\n{plan}"
            );
            // Every changed attribute of the resource: exactly the handler's digest.
            let resource = plan
                .stdout
                .split("will be updated in-place")
                .nth(1)
                .and_then(|r| r.split("Plan:").next())
                .unwrap_or_default();
            let changed: Vec<&str> = resource
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("~ ") || l.starts_with("+ ") || l.starts_with("- "))
                .filter(|l| !l.starts_with("~ resource "))
                .collect();
            assert_eq!(
                changed.len(),
                1,
                "{what}: only the handler changes:\n{plan}"
            );
            assert!(
                changed[0].starts_with("~ handler_sha256 ")
                    && changed[0].ends_with(&format!("-> \"{digest}\"")),
                "{what}: the new handler's digest {digest}:\n{plan}"
            );
        }
        Expect::InPlaceRepair(attrs) => {
            let words = plan.words();
            assert!(
                plan.plan_has_changes()
                    && words.contains("Plan: 0 to add, 1 to change, 0 to destroy.")
                    && words.contains("will be updated in-place"),
                "{what}: one in-place update expected:\n{plan}"
            );
            // A rolled instance shows as `instance_id` known after apply; a replacement as
            // "must be replaced" / "forces replacement".
            for never in ["instance_id", "must be replaced", "forces replacement"] {
                assert!(
                    !words.contains(never),
                    "{what}: {never:?} in the plan:\n{plan}"
                );
            }
            // The resource's changes only, not the outputs' (`stacks` repeats the ids). A
            // value that a refresh found gone (the role outside /autoheal/) shows as added.
            let resource = words.split("Plan:").next().unwrap_or_default();
            for attr in *attrs {
                assert!(
                    resource.contains(&format!("~ {attr} = "))
                        || resource.contains(&format!("+ {attr} = ")),
                    "{what}: {attr} should change:\n{plan}"
                );
            }
        }
    }
    plan
}

/// Apply `commit`'s fixture with `commit`'s provider, upgrade to the current provider and
/// fixture, plan, and check the outcome; every command with Terraform `tf`.
fn upgrade_from(commit: &str, tf: &TerraformBinary, expect: Expect) {
    let what = format!("{commit} ({})", tf.name);
    let Some(previous) = previous_provider(commit) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mirror = scratch.path().join("mirror");
    let old_version = previous_version(commit);
    let new_version = provider_version();
    publish(
        &mirror,
        &old_version,
        &previous.join("terraform-provider-autoheal"),
    );
    publish(&mirror, &new_version, &provider_binary());
    let cli_config = write_cli_config(scratch.path(), &mirror);
    let config = scratch.path().join("stack");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("main.tf"),
        pinned(&previous.join("stack/main.tf"), &old_version),
    )
    .unwrap();

    let world = World::start(CLOCK_SCALE);
    let options = tf
        .options(&config)
        .with_var("names", r#"["acc"]"#)
        .with_env("AWS_ENDPOINT_URL", world.aws.endpoint())
        .with_env("AWS_REGION", world.aws.region())
        .with_env("AWS_ACCESS_KEY_ID", "test")
        .with_env("AWS_SECRET_ACCESS_KEY", "test")
        .with_env("AWS_EC2_METADATA_DISABLED", "true")
        .with_env("TF_CLI_CONFIG_FILE", cli_config.to_str().unwrap())
        // A plugin cache from the caller's environment would be a second source.
        .with_env("TF_PLUGIN_CACHE_DIR", "");
    let mut old = Terraform::new(options).unwrap();
    old.set_timeout(DEFAULT_STACK_COMMAND_TIMEOUT);
    let init = old.init().unwrap_or_else(|e| panic!("{what}: init: {e:#}"));
    assert!(
        init.stdout.contains(&format!("v{old_version}")),
        "{what}: the old provider should be installed:\n{init}"
    );
    let _guard = old.destroy_guard();
    old.apply()
        .unwrap_or_else(|e| panic!("{what}: apply with the old provider: {e:#}"));
    let stored = stored_instances(&old);
    assert_eq!(
        stored.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [0],
        "{what}: the old provider writes schema version 0"
    );
    // The stored state, for the unit tests' fixtures (provider/tests/fixtures).
    eprintln!(
        "{what}: state written by the old provider:\n{}",
        serde_json::json!({"schema_version": 0, "attributes": stored[0].1})
    );
    // The Lambda the new build ships: when it differs from the old one's, the plan updates
    // the function's code in place, and nothing else.
    let shipped = sha256_hex(&handler_zip_path("x86_64"));
    let expect = match expect {
        Expect::Empty if stored[0].1["handler_sha256"] != shipped.as_str() => {
            Expect::NewHandler(shipped)
        }
        other => other,
    };
    let before = stack(&old);
    let served = world
        .block(served_instance(&world.clients, "acc", &before))
        .unwrap_or_else(|| panic!("{what}: no instance serves the stack: {before}"));
    assert_eq!(served, ids(&before)[0].1);

    // The upgrade, as a user makes it: the current configuration pinned to the new version,
    // `init -upgrade`, in the same working directory (the same state).
    std::fs::write(
        old.working_dir().join("main.tf"),
        pinned(&stack_fixture().join("main.tf"), &new_version),
    )
    .unwrap();
    let upgrade = old
        .run(&["init", "-no-color", "-input=false", "-upgrade"], false)
        .unwrap();
    assert!(
        upgrade.exit_code == 0 && upgrade.stdout.contains(&format!("v{new_version}")),
        "{what}: init -upgrade should install {new_version}:\n{upgrade}"
    );

    // Keys the new fixture's `stacks` output adds: attributes the old provider lacked.
    let new_outputs: BTreeSet<String> = output_keys(&stack_fixture().join("main.tf"))
        .difference(&output_keys(&previous.join("stack/main.tf")))
        .cloned()
        .collect();
    let first = assert_plan(
        &old,
        &expect,
        &new_outputs,
        &format!("{what}: first plan after the upgrade"),
    );
    eprintln!("{what}: first plan after the upgrade:\n{}", first.stdout);
    match expect {
        Expect::Empty => {
            old.run(
                &[
                    "apply",
                    "-no-color",
                    "-input=false",
                    "-auto-approve",
                    "-refresh-only",
                ],
                true,
            )
            .map(|o| assert_eq!(o.exit_code, 0, "{what}: refresh-only apply:\n{o}"))
            .unwrap();
        }
        Expect::InPlaceRepair(_) | Expect::NewHandler(_) => {
            old.apply()
                .unwrap_or_else(|e| panic!("{what}: apply after the upgrade: {e:#}"));
        }
    }
    assert_eq!(
        schema_versions(&old),
        [1],
        "{what}: the state is stored at schema version 1 after an apply"
    );
    // After the apply (outputs saved too), nothing at all.
    let after_apply = assert_plan(
        &old,
        &Expect::Empty,
        &BTreeSet::new(),
        &format!("{what}: plan after the apply"),
    );
    assert_eq!(
        after_apply.exit_code, 0,
        "{what}: the plan after the apply must be empty:\n{after_apply}"
    );

    let after = stack(&old);
    assert_eq!(ids(&after), ids(&before), "{what}: an object was replaced");
    let serving = world
        .block(served_instance(&world.clients, "acc", &after))
        .unwrap_or_else(|| panic!("{what}: no instance serves the stack: {after}"));
    assert_eq!(serving, served, "{what}: the instance was rolled");
    let device = stored_instances(&old)[0].1["device_name"].clone();
    let stored_device = stored[0].1["device_name"].clone();
    assert_eq!(device, stored_device, "{what}: device_name changed");

    old.destroy()
        .unwrap_or_else(|e| panic!("{what}: destroy with the new provider: {e:#}"));
    world.sweep("acc", true);
}

#[test]
fn upgrading_from_the_previous_release_plans_nothing() {
    for tf in terraform_versions() {
        upgrade_from(PREVIOUS_RELEASE, &tf, Expect::Empty);
    }
}

#[test]
fn upgrading_from_9fbb21f_repairs_in_place_and_rolls_nothing() {
    // One Terraform: the stack's apply is the slow part, and the previous release's test
    // runs every version. The newest, as in the upgrade run by hand (RELIABILITY.md).
    let versions = terraform_versions();
    // (A new handler shows there too, as one more change of the same in-place update.)
    upgrade_from(
        BEFORE_ACCESS,
        versions.last().expect("at least Terraform 1.0.3"),
        Expect::InPlaceRepair(&["lambda_role_arn", "launch_template_version"]),
    );
}
