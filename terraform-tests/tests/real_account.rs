//! The acceptance tests that need no control of the local AWS, against a **real AWS account**
//! when one is configured explicitly, and the pieces that make that safe, tested here without
//! AWS (`terraform_tests::real_account` says how the opt-in works; CONTRIBUTING.md, "Running
//! against a real account", what a run costs).
//!
//! Run against a real account (each skipped here, with one line on stderr saying how to run
//! it, and "real account: not configured" in the tools/test summary):
//!
//! * [`real_account_basic_lifecycle`] (stack `<prefix>-life`): the real-account part of
//!   `instance_acceptance.rs`'s `basic_stack_applies_updates_imports_and_destroys_with_every_terraform`:
//!   apply; through the SDK, every object exists and carries the `autoheal:stack` tag, the
//!   volume is encrypted, in the zone and attached to the one instance in service, the
//!   address is associated with it (the first launch goes through the real hook, EventBridge
//!   and the attachment Lambda); the plan is empty; a tag update applies in place and reaches
//!   the instance; a second configuration with the same name is refused and creates nothing;
//!   destroy leaves exactly the final snapshot; the sweeper deletes it. Left out: what reads
//!   the local AWS's control API (the Lambda invocation records, the call log), the rolling
//!   instance-type replacement and import (minutes more each, for code the local AWS runs).
//! * [`real_account_bad_config_fails_at_plan_and_creates_nothing`]: a configuration error
//!   (a `name` over 32 characters) fails at plan, pointing at the attribute, with real
//!   credentials, and nothing of the stack exists afterwards. `bad_config.rs` and
//!   `examples.rs` need no AWS at all and run in full on every `cargo test`.
//!
//! Need no control of the local AWS either (no fault, no transient state, no call log: only
//! its scaled clock, for speed), but not ported, each another stack's minutes and cents:
//! `instance_acceptance.rs`'s `several_stacks_in_an_existing_subnet_with_a_users_volume_and_address`,
//! `replacing_the_stack_restores_the_volume_from_its_final_snapshot`,
//! `a_used_volume_gets_its_final_snapshot_even_when_its_template_is_gone`,
//! `a_new_volume_continues_its_lineage_unless_a_snapshot_is_newly_set`,
//! `a_planted_volume_is_not_adopted_by_its_tag_alone`,
//! `what_others_add_to_the_stacks_objects_is_reported_and_removed`, and `launch_failures.rs`'s
//! `a_launch_that_can_never_succeed_ends_the_apply_with_aws_message_and_the_attribute`.
//! Everything else drives faults, transient states, the clock or the call log.
//!
//! Run here, without AWS: the opt-in's parsing (none, all, partial, invalid, an endpoint
//! override), the strict scope's matching (tag and prefix, both required), and
//! [`the_prefix_sweeper_deletes_a_leftover_stack_and_nothing_else`]: a stack applied with the
//! real-account fixture and left behind (as by a crashed run) in a local AWS, next to decoys
//! that miss the tag or the prefix, is listed by a dry run without deleting anything, then
//! deleted to the last object, and every decoy survives.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use serde_json::Value as Json;
use terraform_tests::local_aws::helpers::{wait_until, Check, AMI, STACK_TAG};
use terraform_tests::local_aws::Clients;
use terraform_tests::real_account::{
    fixture_options, parse, parse_for_sweep, RealAccount, RealWorld, SweepGuard, AMI_VAR, AZ_VAR,
    ENABLE_VAR, PREFIX_VAR, REGION_VAR,
};
use terraform_tests::stack_world::{served_instance, World};
use terraform_tests::sweeper::{Kind, Leftover, Match, Scope, SweepOptions, Sweeper};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

fn newest() -> TerraformBinary {
    terraform_versions().last().unwrap().clone()
}

/// The `stacks` output: name -> attributes.
fn stacks(t: &Terraform) -> BTreeMap<String, Json> {
    let out = t.output("stacks").expect("output stacks");
    out.as_object()
        .expect("stacks is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn ids(leftovers: &[Leftover], kind: Kind) -> Vec<&str> {
    leftovers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.id.as_str())
        .collect()
}

fn kinds(leftovers: &[Leftover]) -> BTreeSet<Kind> {
    leftovers.iter().map(|l| l.kind).collect()
}

/// What one stack is made of, each kind listed by the strict sweeper (so: tagged and named).
const STACK_KINDS: [Kind; 18] = [
    Kind::Vpc,
    Kind::Subnet,
    Kind::InternetGateway,
    Kind::RouteTable,
    Kind::SecurityGroup,
    Kind::Volume,
    Kind::Address,
    Kind::LaunchTemplate,
    Kind::AutoScalingGroup,
    Kind::Instance,
    Kind::Role,
    Kind::RolePolicy,
    Kind::Function,
    Kind::FunctionPermission,
    Kind::Rule,
    Kind::RuleTarget,
    Kind::LifecycleHook,
    Kind::LogGroup,
];

/// Every object of `stack` (its `stacks` output) is listed: exists, and carries the tag.
fn assert_every_object_listed(listed: &[Leftover], stack: &Json) {
    let missing: Vec<Kind> = STACK_KINDS
        .iter()
        .copied()
        .filter(|k| !kinds(listed).contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "not found with the tag and the prefix: {missing:?}; listed: {listed:#?}"
    );
    for (kind, key) in [
        (Kind::Vpc, "vpc_id"),
        (Kind::Subnet, "subnet_id"),
        (Kind::SecurityGroup, "security_group_id"),
        (Kind::Volume, "volume_id"),
        (Kind::Address, "allocation_id"),
        (Kind::LaunchTemplate, "launch_template_id"),
        (Kind::LogGroup, "log_group_name"),
    ] {
        assert!(
            ids(listed, kind).contains(&s(stack, key)),
            "{kind} {} not listed: {:?}",
            s(stack, key),
            ids(listed, kind)
        );
    }
}

// --- the opt-in, without AWS ----------------------------------------------------------------

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FULL: [(&str, &str); 4] = [
    (ENABLE_VAR, "1"),
    (REGION_VAR, "eu-west-1"),
    (PREFIX_VAR, "ahci"),
    (AMI_VAR, "ami-0123456789abcdef0"),
];

fn full_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: BTreeMap<String, String> = env(&FULL).into_iter().collect();
    for (k, v) in extra {
        all.insert(k.to_string(), v.to_string());
    }
    all.into_iter().collect()
}

#[test]
fn opt_in_none_is_not_configured() {
    assert_eq!(parse(env(&[])), Ok(None));
    // Other AWS settings alone (credentials, even a local endpoint) opt nobody in.
    let unrelated = env(&[
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ("AWS_PROFILE", "dev"),
    ]);
    assert_eq!(parse(unrelated), Ok(None));
    // Empty values are unset; 0 turns it off whatever else is set.
    assert_eq!(parse(env(&[(ENABLE_VAR, ""), (REGION_VAR, "")])), Ok(None));
    assert_eq!(parse(full_with(&[(ENABLE_VAR, "0")])), Ok(None));
}

#[test]
fn opt_in_all_set_names_the_account() {
    let account = parse(env(&FULL)).unwrap().unwrap();
    assert_eq!(
        account,
        RealAccount {
            region: "eu-west-1".into(),
            prefix: "ahci".into(),
            ami: "ami-0123456789abcdef0".into(),
            availability_zone: "eu-west-1a".into(),
        }
    );
    assert_eq!(account.stack_name("life"), "ahci-life");
    let scope = account.scope();
    assert_eq!(
        (
            scope.matching,
            scope.tag_key.as_str(),
            scope.tag_value.as_str()
        ),
        (Match::Strict, STACK_TAG, "ahci-")
    );
    let zone = parse(full_with(&[(AZ_VAR, "eu-west-1c")]))
        .unwrap()
        .unwrap();
    assert_eq!(zone.availability_zone, "eu-west-1c");
    // The sweeper needs neither the AMI nor the zone.
    let sweep = parse_for_sweep(env(&FULL[..3])).unwrap().unwrap();
    assert_eq!(
        (sweep.region.as_str(), sweep.prefix.as_str()),
        ("eu-west-1", "ahci")
    );
}

#[test]
fn opt_in_partly_set_is_refused_naming_what_is_missing() {
    // The opt-in without its region, prefix or AMI.
    for missing in [REGION_VAR, PREFIX_VAR, AMI_VAR] {
        let vars: Vec<_> = FULL
            .iter()
            .copied()
            .filter(|(k, _)| *k != missing)
            .collect();
        let e = parse(env(&vars)).unwrap_err();
        assert!(e.contains(missing) && e.contains("not set"), "{e}");
    }
    // The region and prefix without the opt-in: never by accident, never silently skipped.
    let e = parse(env(&FULL[1..])).unwrap_err();
    assert!(
        e.contains(REGION_VAR) && e.contains(&format!("not {ENABLE_VAR}=1")),
        "{e}"
    );
    let e = parse(env(&[(PREFIX_VAR, "ahci")])).unwrap_err();
    assert!(e.contains(PREFIX_VAR), "{e}");
    let e = parse(env(&[(AZ_VAR, "eu-west-1b")])).unwrap_err();
    assert!(e.contains(AZ_VAR), "{e}");
    // Only 1 opts in.
    let e = parse(full_with(&[(ENABLE_VAR, "yes")])).unwrap_err();
    assert!(e.contains("set it to 1"), "{e}");
}

#[test]
fn opt_in_with_an_invalid_prefix_region_ami_or_zone_is_refused() {
    for prefix in [
        "A",
        "a",
        "Ahci",
        "1ahci",
        "ahci-",
        "ah_ci",
        "ah ci",
        "ahci.x",
        "abcdefghijklmnop",
    ] {
        let e = parse(full_with(&[(PREFIX_VAR, prefix)])).unwrap_err();
        assert!(e.contains(PREFIX_VAR), "{prefix:?}: {e}");
    }
    for prefix in ["ah", "ahci", "a-1", "abcdefghijklmno"] {
        assert!(
            parse(full_with(&[(PREFIX_VAR, prefix)])).is_ok(),
            "{prefix:?} is a valid prefix"
        );
    }
    for region in ["eu", "EU-west-1", "eu-west", "eu-west-x", "eu--1"] {
        let e = parse(full_with(&[(REGION_VAR, region)])).unwrap_err();
        assert!(e.contains(REGION_VAR), "{region:?}: {e}");
    }
    for ami in ["ami-XYZ", "0123456789abcdef0", "ami-0123"] {
        let e = parse(full_with(&[(AMI_VAR, ami)])).unwrap_err();
        assert!(e.contains(AMI_VAR), "{ami:?}: {e}");
    }
    for az in ["us-east-1a", "eu-west-1", "eu-west-1ab"] {
        let e = parse(full_with(&[(AZ_VAR, az)])).unwrap_err();
        assert!(e.contains(AZ_VAR), "{az:?}: {e}");
    }
}

#[test]
fn opt_in_with_an_endpoint_override_is_refused() {
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_ENDPOINT_URL_LAMBDA",
    ] {
        let e = parse(full_with(&[(var, "http://127.0.0.1:4566")])).unwrap_err();
        assert!(e.contains(var) && e.contains("refused"), "{e}");
        let e = parse_for_sweep(full_with(&[(var, "http://127.0.0.1:4566")])).unwrap_err();
        assert!(e.contains(var), "{e}");
    }
}

// --- the strict scope's matching, without AWS -----------------------------------------------

#[test]
fn the_real_account_scope_requires_the_tag_and_the_prefix() {
    let scope = Scope::real_account("ahci");
    let tag = |v: &'static str| vec![(STACK_TAG, v)];
    // Both: a stack's objects.
    assert!(scope.owns(Some("ahci-life-asg"), tag("ahci-life")));
    assert!(scope.owns(
        Some("ahci-life"),
        vec![
            ("Team", "x"),
            (STACK_TAG, "ahci-life"),
            ("Name", "ahci-life")
        ]
    ));
    // The prefix without the tag, or with another stack's tag.
    assert!(!scope.owns(Some("ahci-life-asg"), Vec::new()));
    assert!(!scope.owns(Some("ahci-life-asg"), tag("prod-web")));
    assert!(!scope.owns(Some("ahci-life-asg"), vec![("Name", "ahci-life")]));
    // The tag under another key.
    assert!(!scope.owns(
        Some("ahci-life-asg"),
        vec![("autoheal:stackx", "ahci-life")]
    ));
    // The tag without the prefix, or without a name at all.
    assert!(!scope.owns(Some("prod-web-asg"), tag("ahci-life")));
    assert!(!scope.owns(None, tag("ahci-life")));
    // The prefix is a whole word: `ahci-`, not `ahci` (`ahcix-...` is someone else's).
    assert!(!scope.owns(Some("ahcix-life-asg"), tag("ahcix-life")));
    assert!(!scope.owns(Some("ahci"), tag("ahci")));
    // An empty prefix matches nothing.
    let empty = Scope::real_account("");
    assert!(!empty.owns(Some("anything"), tag("anything")));
    assert!(!empty.has_tag(tag("anything")));
    // One stack's scope: its own objects, not another stack's of the same prefix.
    let one = Scope::strict("ahci-life");
    assert!(one.owns(Some("ahci-life-asg"), tag("ahci-life")));
    assert!(!one.owns(Some("ahci-bad-asg"), tag("ahci-bad")));
}

#[test]
fn the_local_scope_still_takes_either() {
    let scope = Scope::stack("acc");
    assert_eq!(scope.matching, Match::Local);
    assert!(scope.owns(Some("acc-asg"), Vec::new()));
    assert!(scope.owns(None, vec![(STACK_TAG, "acc")]));
    // The tag's value is compared whole.
    assert!(!scope.has_tag(vec![(STACK_TAG, "acc-2")]));
}

#[test]
fn a_local_scope_cannot_delete() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Never reached: the scope is refused before any call.
        let clients = Clients::new("http://127.0.0.1:9", "eu-west-1").await;
        let e = Sweeper::for_stack(&clients, "acc")
            .delete_all(&SweepOptions::real_account())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("strict scope"), "{e:#}");
    });
}

// --- the prefix sweeper against the local AWS ------------------------------------------------

fn ec2_tags(resource: ResourceType, tags: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(resource);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

/// Objects that miss the tag or the prefix, none of which the sweeper may touch: their ids.
async fn make_decoys(c: &Clients) -> Vec<(Kind, String)> {
    let mut made = Vec::new();
    for tags in [
        // The tag, another name.
        &[(STACK_TAG, "rt-decoy"), ("Name", "prod-vpc")][..],
        // The name, another stack's tag.
        &[(STACK_TAG, "prod"), ("Name", "rt-decoy-vpc")][..],
        // The name, no tag.
        &[("Name", "rt-decoy-vpc")][..],
        // The prefix without its dash.
        &[(STACK_TAG, "rtx-decoy"), ("Name", "rtx-decoy-vpc")][..],
    ] {
        let vpc = c
            .ec2
            .create_vpc()
            .cidr_block("10.77.0.0/16")
            .tag_specifications(ec2_tags(ResourceType::Vpc, tags))
            .send()
            .await
            .unwrap();
        made.push((Kind::Vpc, vpc.vpc().unwrap().vpc_id().unwrap().to_string()));
    }
    let volume = c
        .ec2
        .create_volume()
        .availability_zone(format!("{}a", c.config.region().unwrap()))
        .size(1)
        .tag_specifications(ec2_tags(
            ResourceType::Volume,
            &[(STACK_TAG, "prod-db"), ("Name", "rt-left-data")],
        ))
        .send()
        .await
        .unwrap();
    made.push((Kind::Volume, volume.volume_id().unwrap().to_string()));
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    for (name, path, tag) in [
        // The name and the tag, outside the provider's path.
        ("rt-decoy-outside", "/", Some("rt-decoy")),
        // The name and the path, no tag.
        ("rt-decoy-untagged", "/autoheal/", None),
    ] {
        let mut create = c
            .iam
            .create_role()
            .role_name(name)
            .path(path)
            .assume_role_policy_document(trust);
        if let Some(value) = tag {
            create = create.tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(STACK_TAG)
                    .value(value)
                    .build()
                    .unwrap(),
            );
        }
        create.send().await.unwrap();
        made.push((Kind::Role, name.to_string()));
    }
    c.logs
        .create_log_group()
        .log_group_name("/aws/lambda/rt-decoy-attach")
        .send()
        .await
        .unwrap();
    made.push((Kind::LogGroup, "/aws/lambda/rt-decoy-attach".into()));
    made
}

/// Which decoys still exist.
async fn surviving(c: &Clients, decoys: &[(Kind, String)]) -> Vec<(Kind, String)> {
    let mut alive = Vec::new();
    for (kind, id) in decoys {
        let exists = match kind {
            Kind::Vpc => c
                .ec2
                .describe_vpcs()
                .vpc_ids(id)
                .send()
                .await
                .is_ok_and(|o| !o.vpcs().is_empty()),
            Kind::Volume => c
                .ec2
                .describe_volumes()
                .volume_ids(id)
                .send()
                .await
                .is_ok_and(|o| !o.volumes().is_empty()),
            Kind::Role => c.iam.get_role().role_name(id).send().await.is_ok(),
            Kind::LogGroup => c
                .logs
                .describe_log_groups()
                .log_group_name_prefix(id)
                .send()
                .await
                .is_ok_and(|o| {
                    o.log_groups()
                        .iter()
                        .any(|g| g.log_group_name() == Some(id))
                }),
            other => panic!("no decoy of kind {other}"),
        };
        if exists {
            alive.push((*kind, id.clone()));
        }
    }
    alive
}

#[test]
fn the_prefix_sweeper_deletes_a_leftover_stack_and_nothing_else() {
    let tf = newest();
    let world = World::start(0.02);
    let c = &world.clients;
    let region = world.aws.region().to_string();
    // The real-account fixture, against the local AWS: applied and never destroyed, as a run
    // that crashed leaves it.
    let options = fixture_options(&tf, &["rt-left"], &region, &format!("{region}a"), AMI)
        .with_env("AWS_ENDPOINT_URL", world.aws.endpoint())
        .with_env("AWS_ACCESS_KEY_ID", "test")
        .with_env("AWS_SECRET_ACCESS_KEY", "test")
        .with_env("AWS_EC2_METADATA_DISABLED", "true");
    let t = Terraform::new(options).expect("a copy of the real-account fixture");
    t.init()
        .unwrap_or_else(|e| panic!("{}: init: {e:#}", tf.name));
    t.set_var("tags", r#"{Team = "storage"}"#);
    t.apply()
        .unwrap_or_else(|e| panic!("{}: apply: {e:#}", tf.name));
    let stack = stacks(&t)["rt-left"].clone();
    let served = world.block(served_instance(c, "rt-left", &stack));
    assert!(served.is_some(), "the fixture's stack is served: {stack}");
    let decoys = world.block(make_decoys(c));

    let sweeper = Sweeper::new(c, Scope::real_account("rt"));
    let options = SweepOptions {
        dry_run: true,
        deadline: Duration::from_secs(120),
        interval: Duration::from_millis(500),
    };
    // Dry run: the whole stack, no decoy, nothing deleted.
    let listed = world.block(sweeper.delete_all(&options)).unwrap().found;
    assert_every_object_listed(&listed, &stack);
    let decoy_ids: BTreeSet<&str> = decoys.iter().map(|(_, id)| id.as_str()).collect();
    let wrongly: Vec<&Leftover> = listed
        .iter()
        .filter(|l| decoy_ids.contains(l.id.as_str()))
        .collect();
    assert!(wrongly.is_empty(), "decoys listed: {wrongly:?}");
    assert_eq!(
        world.block(sweeper.leftovers()).unwrap(),
        listed,
        "a dry run deletes nothing"
    );

    // Deleting: nothing of the stack is left, every decoy is.
    let report = world
        .block(sweeper.delete_all(&SweepOptions {
            dry_run: false,
            ..options
        }))
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("swept in {} pass(es): {:#?}", report.passes, report.found);
    assert_eq!(world.block(sweeper.leftovers()).unwrap(), Vec::new());
    world.sweep("rt-left", false);
    assert_eq!(
        world.block(surviving(c, &decoys)),
        decoys,
        "the sweeper deleted what misses the tag or the prefix"
    );
}

// --- against a real account ------------------------------------------------------------------

/// Apply, check through the SDK, empty plan, tag update, a refused twin, destroy, sweep.
#[test]
fn real_account_basic_lifecycle() {
    let Some(account) = RealAccount::for_test("real_account_basic_lifecycle") else {
        return;
    };
    let tf = newest();
    let world = RealWorld::start(account, "life");
    let _swept = SweepGuard(&world);
    let c = &world.clients;
    let name = world.stack.clone();
    let t = world.terraform(&tf);
    let _destroyed = t.destroy_guard();
    t.set_var("tags", r#"{Team = "storage"}"#);
    t.apply()
        .unwrap_or_else(|e| panic!("{}: apply: {e:#}", tf.name));
    let stack = stacks(&t)[&name].clone();

    // The first launch went through the hook, EventBridge and the Lambda: the instance in
    // service has the volume and the address (allow AWS a moment to show it).
    let instance = world
        .block(wait_until(
            &format!("{name} served"),
            Duration::from_secs(300),
            Duration::from_secs(5),
            || async {
                Ok(match served_instance(c, &name, &stack).await {
                    Some(id) => Check::Done(id),
                    None => Check::NotYet("not served yet".into()),
                })
            },
        ))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(s(&stack, "instance_id"), instance);
    let listed = world.block(world.sweeper().leftovers()).unwrap();
    assert_every_object_listed(&listed, &stack);
    world.block(async {
        let v = c
            .ec2
            .describe_volumes()
            .volume_ids(s(&stack, "volume_id"))
            .send()
            .await
            .unwrap();
        let v = &v.volumes()[0];
        assert_eq!(v.encrypted(), Some(true), "{v:?}");
        assert_eq!(
            v.availability_zone(),
            Some(world.account.availability_zone.as_str())
        );
    });
    let plan = t.plan().unwrap();
    assert_eq!(
        plan.exit_code, 0,
        "the plan after create must be empty:\n{plan}"
    );

    // Tags update in place and reach the instance.
    t.set_var("tags", r#"{Team = "storage", Tier = "gold"}"#);
    t.apply()
        .unwrap_or_else(|e| panic!("{}: update: {e:#}", tf.name));
    let updated = stacks(&t)[&name].clone();
    assert_eq!(
        s(&updated, "instance_id"),
        instance,
        "a tag update keeps the instance"
    );
    world.block(async {
        let r = c
            .ec2
            .describe_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap();
        let i = &r.reservations()[0].instances()[0];
        assert!(
            i.tags()
                .iter()
                .any(|t| t.key() == Some("Tier") && t.value() == Some("gold")),
            "the new tag on the instance: {:?}",
            i.tags()
        );
    });
    let plan = t.plan().unwrap();
    assert_eq!(
        plan.exit_code, 0,
        "the plan after the update must be empty:\n{plan}"
    );

    // A second configuration with the same name is refused and makes nothing.
    let before = world.block(world.sweeper().leftovers()).unwrap();
    let twin = world.terraform(&tf);
    let out = twin.apply_output().unwrap();
    assert_eq!(out.exit_code, 1, "a second stack of the same name: {out}");
    assert!(out.combined().contains("already exists"), "{out}");
    let after = world.block(world.sweeper().leftovers()).unwrap();
    let new: Vec<&Leftover> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(new.is_empty(), "the refused twin made: {new:?}");

    // Destroy keeps exactly the final snapshot; the sweeper (the guard) deletes it.
    t.destroy()
        .unwrap_or_else(|e| panic!("{}: destroy: {e:#}", tf.name));
    let kept = world
        .block(world.sweeper().check_nothing_left(true))
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: final snapshot {kept:?}, deleted by the sweeper");
    world.sweep();
    assert_eq!(
        world.block(world.sweeper().leftovers()).unwrap(),
        Vec::new()
    );
}

/// A configuration error fails at plan with real credentials, and nothing is made.
#[test]
fn real_account_bad_config_fails_at_plan_and_creates_nothing() {
    let Some(account) =
        RealAccount::for_test("real_account_bad_config_fails_at_plan_and_creates_nothing")
    else {
        return;
    };
    let tf = newest();
    let world = RealWorld::start(account, "bad");
    let _swept = SweepGuard(&world);
    // 33 characters or more: over the provider's limit on `name`.
    let long = format!("{}-{}", world.stack, "x".repeat(32));
    let options = world.account.terraform_options(&tf, &[long.as_str()]);
    let t = Terraform::new(options).expect("a copy of the real-account fixture");
    t.init()
        .unwrap_or_else(|e| panic!("{}: init: {e:#}", tf.name));
    let _destroyed = t.destroy_guard();
    let out = t.plan_expect_error().unwrap();
    assert_ne!(out.exit_code, 0, "{out}");
    assert!(
        out.combined().contains("name"),
        "the error names the attribute: {out}"
    );
    let left = world.block(world.sweeper().leftovers()).unwrap();
    assert!(left.is_empty(), "a failed plan made: {left:?}");
}
