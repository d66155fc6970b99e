//! Acceptance tests of `autoheal_instance`: the real Terraform CLI and the real provider
//! against the local AWS, with the real attachment Lambda (the handler zip the provider
//! ships) running behind the local AWS's Runtime API emulator.
//!
//! Each test starts its own local AWS and copies `fixtures/stack` (one `autoheal_instance`
//! per name in `var.names`, every setting a variable). After each destroy the sweeper lists
//! what is left of the stack: nothing but the final snapshot that `volume_on_destroy =
//! "snapshot"` promises.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use terraform_tests::local_aws::control::{Fault, Outcome, Transient};
use terraform_tests::local_aws::helpers::{
    address_status, group_instances, volume_status, wait_for, Check,
};
use terraform_tests::local_aws::Clients;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import, refresh, resource_values, served_instance, World,
};
use terraform_tests::sweeper::Sweeper;
use terraform_tests::{terraform_versions, CommandOutput, Terraform, TerraformBinary};

/// The local AWS's clock: 0.02 makes the hook's heartbeat (300 s default) 6 s and Lambda's
/// retries 1.2 s / 2.4 s.
const CLOCK_SCALE: f64 = 0.02;

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

fn assert_empty_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 0, "{what}: the plan must be empty:\n{plan}");
}

fn with_var(t: &Terraform, name: &str, value: &str) {
    t.set_var(name, value);
}

/// Checks the serving instance of `stack` has the volume attached and the address.
async fn assert_served(clients: &Clients, stack: &Json) -> String {
    let group = format!("{}-asg", s(stack, "name_hint"));
    let instances = group_instances(&clients.autoscaling, &group).await.unwrap();
    let serving: Vec<_> = instances
        .iter()
        .filter(|i| i.lifecycle_state == "InService")
        .collect();
    assert_eq!(serving.len(), 1, "one instance in service: {instances:?}");
    let id = serving[0].id.clone();
    let v = volume_status(&clients.ec2, s(stack, "volume_id"))
        .await
        .unwrap();
    assert_eq!(
        v.attachment
            .as_ref()
            .map(|a| (a.instance_id.as_str(), a.state.as_str())),
        Some((id.as_str(), "attached")),
        "volume attached to the serving instance: {v:?}"
    );
    let a = address_status(&clients.ec2, s(stack, "allocation_id"))
        .await
        .unwrap();
    assert_eq!(
        a.instance_id.as_deref(),
        Some(id.as_str()),
        "address on the serving instance: {a:?}"
    );
    id
}

fn named(mut stack: Json, name: &str) -> Json {
    stack["name_hint"] = Json::String(name.into());
    stack
}

/// Apply, check every object through the SDK, empty plan, update tags and instance type
/// (a rolling replacement through the heal path), import and compare, destroy, sweep.
fn basic_lifecycle(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let t = world.terraform(tf, &["acc"]);
    let _guard = t.destroy_guard();
    with_var(&t, "tags", r#"{Team = "storage"}"#);
    with_var(&t, "ssh_ingress_cidrs", r#"["203.0.113.0/24"]"#);
    t.apply()
        .unwrap_or_else(|e| panic!("{}: apply: {e:#}", tf.name));
    let stack = named(stacks(&t)["acc"].clone(), "acc");
    let first = world.block(assert_served(c, &stack));
    assert_eq!(s(&stack, "instance_id"), first);

    world.block(async {
        // Volume: encrypted, in the zone.
        let v = c
            .ec2
            .describe_volumes()
            .volume_ids(s(&stack, "volume_id"))
            .send()
            .await
            .unwrap();
        let v = &v.volumes()[0];
        assert_eq!(v.encrypted(), Some(true));
        assert_eq!(v.availability_zone(), Some("ap-southeast-2a"));
        // AWS's gp3 baseline, in the state the create wrote (the output is read with no
        // refresh in between), so the first refresh shows no change.
        assert_eq!(
            (
                stack["volume_iops"].as_i64(),
                stack["volume_throughput"].as_i64()
            ),
            (v.iops().map(i64::from), v.throughput().map(i64::from)),
            "{stack}"
        );
        assert!(v.iops().is_some(), "{v:?}");
        // Launch template: IMDSv2 required, hop limit 1, the security group.
        let lt = c
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(s(&stack, "launch_template_id"))
            .versions("1")
            .send()
            .await
            .unwrap();
        let data = lt.launch_template_versions()[0]
            .launch_template_data()
            .unwrap();
        let md = data.metadata_options().unwrap();
        assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
        assert_eq!(md.http_put_response_hop_limit(), Some(1));
        assert_eq!(
            data.security_group_ids(),
            [s(&stack, "security_group_id").to_string()]
        );
        assert!(data.iam_instance_profile().is_none(), "no instance role");
        // Security group: SSH from the given CIDR only.
        let sg = c
            .ec2
            .describe_security_groups()
            .group_ids(s(&stack, "security_group_id"))
            .send()
            .await
            .unwrap();
        let perms = sg.security_groups()[0].ip_permissions();
        assert_eq!(perms.len(), 1, "{perms:?}");
        assert_eq!(perms[0].from_port(), Some(22));
        assert_eq!(perms[0].ip_ranges()[0].cidr_ip(), Some("203.0.113.0/24"));
        // Group: one instance, the hook holding launches, default ABANDON.
        let g = c
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names("acc-asg")
            .send()
            .await
            .unwrap();
        let g = &g.auto_scaling_groups()[0];
        assert_eq!(
            (g.min_size(), g.max_size(), g.desired_capacity()),
            (Some(1), Some(1), Some(1))
        );
        let hooks = c
            .autoscaling
            .describe_lifecycle_hooks()
            .auto_scaling_group_name("acc-asg")
            .send()
            .await
            .unwrap();
        let hook = &hooks.lifecycle_hooks()[0];
        assert_eq!(
            hook.lifecycle_transition(),
            Some("autoscaling:EC2_INSTANCE_LAUNCHING")
        );
        assert_eq!(hook.default_result(), Some("ABANDON"));
        assert_eq!(hook.heartbeat_timeout(), Some(300));
        // Rule: launch actions of exactly this group, to the function, with the permission.
        let rule = c
            .eventbridge
            .describe_rule()
            .name("acc-launch")
            .send()
            .await
            .unwrap();
        let pattern: Json = serde_json::from_str(rule.event_pattern().unwrap()).unwrap();
        assert_eq!(
            pattern["detail"]["AutoScalingGroupName"],
            serde_json::json!(["acc-asg"])
        );
        assert_eq!(pattern["source"], serde_json::json!(["aws.autoscaling"]));
        let policy = c
            .lambda
            .get_policy()
            .function_name("acc-attach")
            .send()
            .await
            .unwrap();
        let policy: Json = serde_json::from_str(policy.policy().unwrap()).unwrap();
        assert!(
            policy.to_string().contains(s(&stack, "event_rule_arn")),
            "permission scoped to the rule: {policy}"
        );
        // Function: the handler's environment names this stack's objects.
        let f = c
            .lambda
            .get_function_configuration()
            .function_name("acc-attach")
            .send()
            .await
            .unwrap();
        let env = f.environment().unwrap().variables().unwrap();
        assert_eq!(env["AUTOHEAL_VOLUME_ID"], s(&stack, "volume_id"));
        assert_eq!(env["AUTOHEAL_ALLOCATION_ID"], s(&stack, "allocation_id"));
        assert_eq!(env["AUTOHEAL_GROUP_NAME"], "acc-asg");
        assert_eq!(f.runtime().map(|r| r.as_str()), Some("provided.al2023"));
        // Role policy: no `*` on a mutating action.
        let role = c
            .iam
            .get_role_policy()
            .role_name("acc-ap-southeast-2-attach")
            .policy_name("acc-attach-policy")
            .send()
            .await
            .unwrap();
        let doc = urlencoding_decode(role.policy_document());
        let doc: Json = serde_json::from_str(&doc).unwrap();
        for st in doc["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = match &st["Action"] {
                Json::String(a) => vec![a.as_str()],
                Json::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                _ => vec![],
            };
            let star = st["Resource"] == "*"
                || st["Resource"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == "*"));
            if star {
                assert!(
                    actions.iter().all(|a| a.contains(":Describe")),
                    "`*` only on Describe: {st}"
                );
            }
        }
        assert!(doc.to_string().contains(s(&stack, "volume_id")));
        assert!(doc.to_string().contains(s(&stack, "allocation_id")));
        // The first instance got the volume and the address through the Lambda.
        let inv = world
            .aws
            .control()
            .invocations_of("acc-attach")
            .await
            .unwrap();
        assert!(
            inv.iter()
                .any(|i| i.outcome == terraform_tests::local_aws::control::Outcome::Success),
            "{inv:?}"
        );
    });

    assert_empty_plan(&t, "after create");

    // Update: tags in place; instance type rolls the instance through the heal path.
    with_var(&t, "tags", r#"{Team = "storage", Tier = "gold"}"#);
    with_var(&t, "instance_type", "t3.small");
    t.apply()
        .unwrap_or_else(|e| panic!("{}: update: {e:#}", tf.name));
    let updated = named(stacks(&t)["acc"].clone(), "acc");
    let second = world.block(assert_served(c, &updated));
    assert_ne!(first, second, "instance_type rolls the instance");
    assert_eq!(updated["launch_template_version"], 2);
    assert_eq!(s(&updated, "volume_id"), s(&stack, "volume_id"));
    assert_eq!(s(&updated, "public_ip"), s(&stack, "public_ip"));
    world.block(async {
        let r = c
            .ec2
            .describe_instances()
            .instance_ids(&second)
            .send()
            .await
            .unwrap();
        let i = &r.reservations()[0].instances()[0];
        assert_eq!(i.instance_type().map(|t| t.as_str()), Some("t3.small"));
        let tags: BTreeMap<_, _> = i
            .tags()
            .iter()
            .map(|t| (t.key().unwrap(), t.value().unwrap()))
            .collect();
        assert_eq!(
            tags.get("Tier"),
            Some(&"gold"),
            "tags propagate to the instance: {tags:?}"
        );
    });
    assert_empty_plan(&t, "after update");

    // A second configuration with the same name is refused, and creates nothing.
    let twin = world.terraform(tf, &["acc"]);
    let calls_before = world.block(world.aws.control().calls()).unwrap().len();
    let out = twin.apply_output().unwrap();
    assert_eq!(out.exit_code, 1, "a second stack of the same name: {out}");
    assert!(out.combined().contains("already exists"), "{out}");
    let creates: Vec<_> = world
        .block(world.aws.control().calls())
        .unwrap()
        .into_iter()
        .skip(calls_before)
        .filter(|c| {
            ["Create", "Put", "Allocate", "Add"]
                .iter()
                .any(|p| c.operation.starts_with(p))
        })
        .map(|c| c.operation)
        .collect();
    assert!(
        creates.is_empty(),
        "nothing created next to it: {creates:?}"
    );

    // Import into a fresh state: the same attributes as the created one.
    let state_before = t.run(&["show", "-json"], false).unwrap();
    let imp = world.terraform(tf, &["acc"]);
    with_var(&imp, "tags", r#"{Team = "storage", Tier = "gold"}"#);
    with_var(&imp, "instance_type", "t3.small");
    with_var(&imp, "ssh_ingress_cidrs", r#"["203.0.113.0/24"]"#);
    import(&imp, "acc");
    let state_after = imp.run(&["show", "-json"], false).unwrap();
    compare_imported(&state_before, &state_after);
    assert_import_plans_no_change(&imp);

    t.destroy()
        .unwrap_or_else(|e| panic!("{}: destroy: {e:#}", tf.name));
    let snapshot = world.sweep("acc", true).expect("final snapshot");
    eprintln!("{}: final snapshot {snapshot}", tf.name);
}

fn compare_imported(created: &CommandOutput, imported: &CommandOutput) {
    let a = resource_values(created);
    let b = resource_values(imported);
    // Configuration-only fields that import cannot know.
    let config_only = [
        "timeouts",
        "force_detach",
        "volume_on_destroy",
        "handler_zip",
    ];
    for (k, v) in &a {
        if config_only.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(Some(v), b.get(k), "imported {k} differs");
    }
}

fn urlencoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("d={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[test]
fn basic_stack_applies_updates_imports_and_destroys_with_every_terraform() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        basic_lifecycle(&tf);
    }
}

/// Terminates `first`, the serving instance of `stack`, and waits until the group's
/// replacement is served (the volume and the address moved by the Lambda). Returns its id.
fn heal(world: &World, stack: &Json, first: &str) -> String {
    let c = &world.clients;
    world.block(async {
        c.ec2
            .terminate_instances()
            .instance_ids(first)
            .send()
            .await
            .unwrap();
        wait_for("the replacement to be served", || async {
            let id = served_instance(c, s(stack, "name_hint"), stack).await;
            Ok(match id.filter(|i| *i != first) {
                Some(i) => Check::Done(i),
                None => Check::NotYet("no replacement served yet".into()),
            })
        })
        .await
        .unwrap()
    })
}

fn newest(tf_versions: &[TerraformBinary]) -> TerraformBinary {
    tf_versions.last().unwrap().clone()
}

/// Terminate the instance: the group replaces it and the Lambda moves volume and address;
/// a refresh shows the new instance. Then destroy with the volume held `detaching`, and a new
/// stack of the same name restores the final snapshot; `volume_on_destroy = "delete"` leaves
/// nothing at all.
#[test]
fn heal_destroy_with_a_slow_detach_and_restore_from_the_final_snapshot() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let t = world.terraform(&tf, &["heal"]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let stack = named(stacks(&t)["heal"].clone(), "heal");
    let first = world.block(assert_served(c, &stack));

    heal(&world, &stack, &first);
    refresh(&t);
    let healed = named(stacks(&t)["heal"].clone(), "heal");
    assert_ne!(
        s(&healed, "instance_id"),
        first,
        "refresh shows the serving instance"
    );

    // Destroy while the volume answers `detaching` for several polls.
    let volume = s(&stack, "volume_id").to_string();
    world
        .block(
            world
                .aws
                .control()
                .add_transient(&Transient::volume_detaching(&volume, 4)),
        )
        .unwrap();
    t.destroy().unwrap();
    let snapshot = world.sweep("heal", true).expect("final snapshot");

    // The same name again: restored from that snapshot.
    t.apply().unwrap();
    let again = named(stacks(&t)["heal"].clone(), "heal");
    world.block(async {
        let v = c
            .ec2
            .describe_volumes()
            .volume_ids(s(&again, "volume_id"))
            .send()
            .await
            .unwrap();
        assert_eq!(v.volumes()[0].snapshot_id(), Some(snapshot.as_str()));
    });
    with_var(&t, "volume_on_destroy", "delete");
    t.apply().unwrap();
    t.destroy().unwrap();
    // The first final snapshot is still there (it belongs to the user); nothing else.
    let left = world
        .block(Sweeper::for_stack(c, "heal").leftovers())
        .unwrap();
    assert_eq!(left.len(), 1, "only the first final snapshot: {left:?}");
    assert_eq!(left[0].id, snapshot);
}

/// Delete the Elastic IP and the rule by hand: the plan shows the repair, the apply repairs
/// (a new address on the serving instance, named by the function and the policy); then the
/// Lambda's invoke permission removed by hand is found and put back.
#[test]
fn drift_of_the_address_and_the_rule_is_repaired() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let t = world.terraform(&tf, &["drift"]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let stack = named(stacks(&t)["drift"].clone(), "drift");
    world.block(async {
        let a = address_status(&c.ec2, s(&stack, "allocation_id"))
            .await
            .unwrap();
        c.ec2
            .disassociate_address()
            .association_id(a.association_id.unwrap())
            .send()
            .await
            .unwrap();
        c.ec2
            .release_address()
            .allocation_id(s(&stack, "allocation_id"))
            .send()
            .await
            .unwrap();
        c.eventbridge
            .remove_targets()
            .rule("drift-launch")
            .ids("drift-attach")
            .send()
            .await
            .unwrap();
        c.eventbridge
            .delete_rule()
            .name("drift-launch")
            .send()
            .await
            .unwrap();
    });
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 2, "the plan must show the repair: {plan}");
    assert!(plan.stdout.contains("allocation_id"), "{plan}");
    assert!(plan.stdout.contains("event_rule_arn"), "{plan}");
    t.apply().unwrap();
    let repaired = named(stacks(&t)["drift"].clone(), "drift");
    assert_ne!(s(&repaired, "allocation_id"), s(&stack, "allocation_id"));
    world.block(assert_served(c, &repaired));
    world.block(async {
        let rule = c
            .eventbridge
            .describe_rule()
            .name("drift-launch")
            .send()
            .await
            .unwrap();
        assert_eq!(rule.arn(), Some(s(&repaired, "event_rule_arn")));
        let targets = c
            .eventbridge
            .list_targets_by_rule()
            .rule("drift-launch")
            .send()
            .await
            .unwrap();
        assert_eq!(targets.targets().len(), 1);
        let f = c
            .lambda
            .get_function_configuration()
            .function_name("drift-attach")
            .send()
            .await
            .unwrap();
        assert_eq!(
            f.environment().unwrap().variables().unwrap()["AUTOHEAL_ALLOCATION_ID"],
            s(&repaired, "allocation_id")
        );
    });
    assert_empty_plan(&t, "after the repair");

    // The invoke permission removed by hand: EventBridge could no longer start the Lambda.
    // The plan shows the rule's repair, which puts the permission back.
    world.block(async {
        c.lambda
            .remove_permission()
            .function_name("drift-attach")
            .statement_id("drift-events")
            .send()
            .await
            .unwrap();
    });
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 2, "the plan must show the repair: {plan}");
    assert!(plan.stdout.contains("event_rule_arn"), "{plan}");
    t.apply().unwrap();
    world.block(async {
        let policy = c
            .lambda
            .get_policy()
            .function_name("drift-attach")
            .send()
            .await
            .unwrap();
        let policy: Json = serde_json::from_str(policy.policy().unwrap()).unwrap();
        let statement = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["Sid"] == "drift-events")
            .unwrap_or_else(|| panic!("the permission is back: {policy}"));
        assert_eq!(
            statement["Condition"]["ArnLike"]["AWS:SourceArn"].as_str(),
            Some(s(&repaired, "event_rule_arn")),
            "{statement}"
        );
    });
    assert_empty_plan(&t, "after the permission's repair");

    // The role deleted by hand (its inline policy first, as IAM requires): the apply makes it
    // again and writes the function's configuration, so Lambda's grant on the environment
    // variables names the new role (the local AWS, like Lambda, fails the function at init
    // with KMSAccessDeniedException until then); a heal afterwards works.
    let role = format!("drift-{}-attach", "ap-southeast-2");
    world.block(async {
        let policies = c
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        for p in policies.policy_names() {
            c.iam
                .delete_role_policy()
                .role_name(&role)
                .policy_name(p)
                .send()
                .await
                .unwrap();
        }
        c.iam.delete_role().role_name(&role).send().await.unwrap();
    });
    let plan = t.plan().unwrap();
    assert_eq!(
        plan.exit_code, 2,
        "the plan must show the role's repair: {plan}"
    );
    t.apply().unwrap();
    assert_empty_plan(&t, "after the role's repair");
    let served = named(stacks(&t)["drift"].clone(), "drift");
    let before = world.block(assert_served(c, &served));
    heal(&world, &served, &before);
    let failed_inits: Vec<_> = world
        .block(world.aws.control().invocations_of("drift-attach"))
        .unwrap()
        .into_iter()
        .filter(|i| i.outcome != Outcome::Success)
        .collect();
    assert!(
        failed_inits.is_empty(),
        "no attempt failed after the role was made again: {failed_inits:?}"
    );

    // Imported into a fresh state (this stack has no SSH rule: an empty list to read back),
    // the configuration plans no change but the configuration-only `timeouts` block.
    let imp = world.terraform(&tf, &["drift"]);
    import(&imp, "drift");
    assert_import_plans_no_change(&imp);
    t.destroy().unwrap();
    world.sweep("drift", true);
}

/// A failure injected at each create step in turn: apply fails with a diagnostic naming the
/// object and AWS's error; destroy then leaves nothing (the state held every object made).
#[test]
fn a_failure_at_any_create_step_is_reported_and_destroy_leaves_nothing() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let steps: &[(&str, &str)] = &[
        ("CreateVpc", "VPC"),
        ("CreateSubnet", "subnet"),
        ("CreateInternetGateway", "internet gateway"),
        // The gateway is made beside the VPC and attached once the VPC is there: failing
        // either way, it is in no state, and what deletes it is tested here.
        ("AttachInternetGateway", "internet gateway"),
        ("CreateRouteTable", "route table"),
        ("CreateSecurityGroup", "security group"),
        ("CreateVolume", "data volume"),
        ("AllocateAddress", "Elastic IP"),
        ("CreateLogGroup", "log group"),
        ("CreateRole", "IAM role"),
        ("PutRule", "EventBridge rule"),
        ("PutRolePolicy", "inline policy"),
        ("CreateLaunchTemplate", "launch template"),
        ("CreateFunction", "Lambda function"),
        ("PutTargets", "EventBridge rule"),
        ("AddPermission", "Lambda function"),
        ("CreateAutoScalingGroup", "Auto Scaling group"),
        ("UpdateAutoScalingGroup", "Auto Scaling group"),
    ];
    for (i, (operation, object)) in steps.iter().enumerate() {
        let name = format!("fail{i}");
        eprintln!("=== failure at {operation}");
        let t = world.terraform(&tf, &[&name]);
        world
            .block(
                world.aws.control().add_fault(
                    &Fault::error(operation, "UnauthorizedOperation")
                        .status(403)
                        .message("injected: not allowed"),
                ),
            )
            .unwrap();
        let out = t.apply_output().unwrap();
        world.block(world.aws.control().clear_faults()).unwrap();
        assert_eq!(out.exit_code, 1, "{operation}: apply must fail: {out}");
        let text = out.combined();
        assert!(
            text.contains(object),
            "{operation}: the diagnostic names the {object}: {text}"
        );
        assert!(
            text.contains("UnauthorizedOperation"),
            "{operation}: AWS's error code: {text}"
        );
        // The volume is proven unused (its autoheal:unused marker) until the create removes
        // the marker just before scaling the group up (UpdateAutoScalingGroup): destroy
        // deletes it without a snapshot only until then.
        let show = t.run(&["show", "-json"], false).unwrap();
        let volume = resource_values(&show)["volume_id"]
            .as_str()
            .map(str::to_string);
        if let Some(volume) = &volume {
            let v = world
                .block(volume_status(&world.clients.ec2, volume))
                .unwrap();
            assert_eq!(
                v.tags.contains_key("autoheal:unused"),
                *operation != "UpdateAutoScalingGroup",
                "{operation}: the unused marker on {volume}: {v:?}"
            );
        }
        let expect_snapshot = *operation == "UpdateAutoScalingGroup";
        t.destroy()
            .unwrap_or_else(|e| panic!("{operation}: destroy: {e:#}"));
        let kept = world.sweep(&name, expect_snapshot);
        assert_eq!(
            kept.is_some(),
            expect_snapshot,
            "{operation}: final snapshot {kept:?}"
        );
    }

    // A region's quotas (AWS's default 5 VPCs, 5 Elastic IPs): the diagnostic names the
    // quota and what to change, with AWS's own error.
    for (name, operation, code, message, says) in [
        (
            "quotavpc",
            "CreateVpc",
            "VpcLimitExceeded",
            "The maximum number of VPCs has been reached.",
            "subnet_id",
        ),
        (
            "quotaeip",
            "AllocateAddress",
            "AddressLimitExceeded",
            "The maximum number of addresses has been reached.",
            "existing_allocation_id",
        ),
    ] {
        let t = world.terraform(&tf, &[name]);
        world
            .block(
                world
                    .aws
                    .control()
                    .add_fault(&Fault::error(operation, code).message(message)),
            )
            .unwrap();
        let out = t.apply_output().unwrap();
        world.block(world.aws.control().clear_faults()).unwrap();
        let text = out.combined().replace('\n', " ");
        assert_eq!(out.exit_code, 1, "{operation}: {out}");
        assert!(
            text.contains(code) && text.contains("Service Quotas") && text.contains(says),
            "{code}: the quota and what to change: {text}"
        );
        t.destroy().unwrap();
        world.sweep(name, false);
    }
}

/// Destroy runs the address, the security group and the network side by side, and waits
/// for the address only where EC2 does: when the address cannot be released, the gateway
/// stays attached and the subnet and VPC stay (the state keeps them and the address), while
/// the security group, which no longer depends on it, is deleted. The next destroy finishes.
#[test]
fn a_destroy_that_cannot_release_the_address_stops_only_what_waits_for_it() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let name = "norelease";
    let t = world.terraform(&tf, &[name]);
    t.apply().unwrap();
    let control = world.aws.control();
    world.block(control.clear_calls()).unwrap();
    world
        .block(
            control.add_fault(
                &Fault::error("ReleaseAddress", "UnauthorizedOperation")
                    .status(403)
                    .message("injected: not allowed"),
            ),
        )
        .unwrap();
    let out = t
        .run(
            &["destroy", "-no-color", "-input=false", "-auto-approve"],
            true,
        )
        .unwrap();
    world.block(control.clear_faults()).unwrap();
    assert_eq!(out.exit_code, 1, "the destroy must fail: {out}");
    let text = out.combined();
    assert!(
        text.contains("Elastic IP") && text.contains("UnauthorizedOperation"),
        "the diagnostic names the address and AWS's error: {text}"
    );
    let called = |op: &str| {
        world
            .block(control.calls_of(op))
            .unwrap()
            .iter()
            .filter(|c| c.succeeded())
            .count()
    };
    assert_eq!(called("DetachInternetGateway"), 0, "the gateway waits");
    assert_eq!(called("DeleteSubnet"), 0, "the subnet waits");
    assert_eq!(called("DeleteVpc"), 0, "the VPC waits");
    assert_eq!(called("DeleteSecurityGroup"), 1, "the group does not wait");
    assert_eq!(
        called("DeleteRouteTable"),
        1,
        "the route table does not wait"
    );
    let show = t.run(&["show", "-json"], false).unwrap();
    let left = resource_values(&show);
    for kept in ["allocation_id", "vpc_id", "subnet_id"] {
        assert!(
            left[kept].as_str().is_some_and(|v| !v.is_empty()),
            "{kept} stays in the state: {left:?}"
        );
    }
    assert!(
        left["security_group_id"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "the deleted group leaves the state: {left:?}"
    );
    t.destroy().unwrap();
    world.sweep(name, true);
}

/// Throttling on a third of the calls and Lambda's IAM-propagation error at first: apply
/// still succeeds within its timeout.
#[test]
fn throttling_and_iam_propagation_are_retried() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let control = world.aws.control();
    world.block(async {
        control
            .add_fault(
                &Fault::error("CreateFunction", "InvalidParameterValueException")
                    .status(400)
                    .message("The role defined for the function cannot be assumed by Lambda.")
                    .count(3),
            )
            .await
            .unwrap();
        control
            .add_fault(
                &Fault::error("*", "Throttling")
                    .status(400)
                    .message("Rate exceeded")
                    .fraction(0.3),
            )
            .await
            .unwrap();
    });
    let t = world.terraform(&tf, &["retry"]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let stack = named(stacks(&t)["retry"].clone(), "retry");
    world.block(async {
        control.clear_faults().await.unwrap();
        assert_served(&world.clients, &stack).await;
        let creates = control.calls_of("CreateFunction").await.unwrap();
        assert!(
            creates.len() >= 4,
            "CreateFunction retried past the propagation errors: {}",
            creates.len()
        );
    });
    t.destroy().unwrap();
    world.sweep("retry", true);
}

/// Three stacks in one configuration (for_each), in a subnet the user brought, with the
/// user's own volume and address for one of them: all served; destroy leaves the user's
/// subnet, volume and address.
#[test]
fn several_stacks_in_an_existing_subnet_with_a_users_volume_and_address() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let (vpc, subnet) = world.block(async {
        let vpc = c
            .ec2
            .create_vpc()
            .cidr_block("10.9.0.0/16")
            .send()
            .await
            .unwrap();
        let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let sn = c
            .ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block("10.9.1.0/24")
            .availability_zone("ap-southeast-2a")
            .send()
            .await
            .unwrap();
        (vpc, sn.subnet().unwrap().subnet_id().unwrap().to_string())
    });
    let t = world.terraform(&tf, &["ea", "eb", "ec"]);
    let _guard = t.destroy_guard();
    with_var(&t, "subnet_id", &subnet);
    t.apply().unwrap();
    let all = stacks(&t);
    assert_eq!(all.len(), 3);
    for (name, stack) in &all {
        let stack = named(stack.clone(), name);
        world.block(assert_served(c, &stack));
        assert_eq!(s(&stack, "subnet_id"), subnet);
        assert_eq!(s(&stack, "vpc_id"), vpc);
    }
    assert_empty_plan(&t, "three stacks");
    t.destroy().unwrap();
    for name in ["ea", "eb", "ec"] {
        world.sweep(name, true);
    }
    world.block(async {
        let sn = c
            .ec2
            .describe_subnets()
            .subnet_ids(&subnet)
            .send()
            .await
            .unwrap();
        assert_eq!(sn.subnets().len(), 1, "the user's subnet survives");
    });

    // An unencrypted volume of the user's is refused before anything is made, unless the
    // configuration opts in.
    let plain = world.block(async {
        c.ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(5)
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string()
    });
    let t = world.terraform(&tf, &["plain"]);
    with_var(&t, "subnet_id", &subnet);
    with_var(&t, "existing_volume_id", &plain);
    let refused = t.apply_output().unwrap();
    let text = refused.words();
    assert!(
        refused.exit_code != 0
            && text.contains("is not encrypted")
            && text.contains("allow_unencrypted_volume")
            && text.contains("Nothing was created"),
        "an unencrypted volume is refused: {refused}"
    );
    world.sweep("plain", false);
    with_var(&t, "allow_unencrypted_volume", "true");
    t.apply().unwrap();
    assert_eq!(
        s(&named(stacks(&t)["plain"].clone(), "plain"), "volume_id"),
        plain
    );
    t.destroy().unwrap();
    world.sweep("plain", false);

    // Bring your own volume and address.
    let (volume, allocation) = world.block(async {
        let v = c
            .ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(5)
            .encrypted(true)
            .send()
            .await
            .unwrap();
        let a = c
            .ec2
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .send()
            .await
            .unwrap();
        (
            v.volume_id().unwrap().to_string(),
            a.allocation_id().unwrap().to_string(),
        )
    });
    let t = world.terraform(&tf, &["byo"]);
    with_var(&t, "subnet_id", &subnet);
    with_var(&t, "existing_volume_id", &volume);
    with_var(&t, "existing_allocation_id", &allocation);
    t.apply().unwrap();
    let stack = named(stacks(&t)["byo"].clone(), "byo");
    assert_eq!(s(&stack, "volume_id"), volume);
    world.block(assert_served(c, &stack));
    t.destroy().unwrap();
    world.sweep("byo", false);
    world.block(async {
        let v = volume_status(&c.ec2, &volume).await.unwrap();
        assert_eq!(v.state, "available", "the user's volume survives, detached");
        let a = address_status(&c.ec2, &allocation).await.unwrap();
        assert_eq!(
            a.instance_id, None,
            "the user's address survives, disassociated"
        );
    });
}

/// A change that replaces the stack (`subnet_cidr`): the destroy half keeps the final
/// snapshot and the create half restores the new volume from it.
#[test]
fn replacing_the_stack_restores_the_volume_from_its_final_snapshot() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let t = world.terraform(&tf, &["repl"]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let before = named(stacks(&t)["repl"].clone(), "repl");
    with_var(&t, "subnet_cidr", "10.0.2.0/24");
    let plan = t.plan().unwrap();
    assert!(
        plan.stdout.contains("must be replaced"),
        "subnet_cidr replaces the stack: {plan}"
    );
    t.apply().unwrap();
    let after = named(stacks(&t)["repl"].clone(), "repl");
    assert_ne!(s(&after, "volume_id"), s(&before, "volume_id"));
    world.block(async {
        let c = &world.clients;
        assert_served(c, &after).await;
        let snaps = c
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("volume-id")
                    .values(s(&before, "volume_id"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let final_snapshot = snaps.snapshots()[0].snapshot_id().unwrap().to_string();
        let v = c
            .ec2
            .describe_volumes()
            .volume_ids(s(&after, "volume_id"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            v.volumes()[0].snapshot_id(),
            Some(final_snapshot.as_str()),
            "the new volume comes from the old one's final snapshot"
        );
    });
    t.destroy().unwrap();
}

/// Apply, heal once (the volume has served two instances), delete the launch template by hand
/// and refresh (the state loses `launch_template_id`), then destroy: the final snapshot is
/// taken, because only the provider's marker on the volume, not the state, may prove a
/// volume unused. The same for a stack imported after its template was deleted.
#[test]
fn a_used_volume_gets_its_final_snapshot_even_when_its_template_is_gone() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    for imported in [false, true] {
        let name = if imported { "tplimp" } else { "tpl" };
        eprintln!("=== {name}");
        let t = world.terraform(&tf, &[name]);
        let _guard = t.destroy_guard();
        t.apply().unwrap();
        let stack = named(stacks(&t)[name].clone(), name);
        let first = world.block(assert_served(c, &stack));
        heal(&world, &stack, &first);
        let template = s(&stack, "launch_template_id").to_string();
        world.block(async {
            c.ec2
                .delete_launch_template()
                .launch_template_id(&template)
                .send()
                .await
                .unwrap();
        });
        let imp = imported.then(|| world.terraform(&tf, &[name]));
        let t = if let Some(imp) = &imp {
            import(imp, name);
            imp
        } else {
            refresh(&t);
            &t
        };
        let show = t.run(&["show", "-json"], false).unwrap();
        assert!(
            resource_values(&show)["launch_template_id"].is_null(),
            "{name}: the state lost the deleted template: {}",
            show.stdout
        );
        t.destroy().unwrap();
        let kept = world.sweep(name, true);
        assert!(
            kept.is_some(),
            "{name}: a final snapshot of the used volume"
        );
    }
}

/// Which data a new volume starts from (see provider/src/autoheal_instance/lineage.rs):
/// a `volume_snapshot_id` set in place touches no volume; the next replacement starts from
/// it (newly set wins over the lineage's final snapshot); the replacement after that
/// continues from its own final snapshot (not back to the older user snapshot); after a
/// destroy with `volume_on_destroy = "delete"` a new stack of the name starts empty.
#[test]
fn a_new_volume_continues_its_lineage_unless_a_snapshot_is_newly_set() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let t = world.terraform(&tf, &["lin"]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let first = named(stacks(&t)["lin"].clone(), "lin");
    assert!(first["volume_source"].is_null(), "starts empty: {first}");

    // A snapshot of the user's, of a volume outside the stack.
    let user_snapshot = world.block(async {
        let v = c
            .ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(8)
            .encrypted(true)
            .send()
            .await
            .unwrap();
        let snap = c
            .ec2
            .create_snapshot()
            .volume_id(v.volume_id().unwrap())
            .send()
            .await
            .unwrap();
        let id = snap.snapshot_id().unwrap().to_string();
        wait_for("the user's snapshot", || async {
            let out = c.ec2.describe_snapshots().snapshot_ids(&id).send().await?;
            let state = out.snapshots()[0].state().map(|s| s.as_str().to_string());
            Ok(match state.as_deref() {
                Some("completed") => Check::Done(()),
                other => Check::NotYet(format!("{other:?}")),
            })
        })
        .await
        .unwrap();
        id
    });

    // Set in place: the plan is an update, and the volume stays.
    with_var(&t, "volume_snapshot_id", &user_snapshot);
    let plan = t.plan().unwrap();
    assert!(
        plan.stdout.contains("update in-place") && !plan.stdout.contains("must be replaced"),
        "volume_snapshot_id changes in place: {plan}"
    );
    t.apply().unwrap();
    let updated = named(stacks(&t)["lin"].clone(), "lin");
    assert_eq!(s(&updated, "volume_id"), s(&first, "volume_id"));
    assert!(updated["volume_source"].is_null(), "{updated}");

    // A replacement: the newly set snapshot wins over the first volume's final snapshot.
    with_var(&t, "subnet_cidr", "10.0.2.0/24");
    t.apply().unwrap();
    let second = named(stacks(&t)["lin"].clone(), "lin");
    let final_of = |volume: &str| -> String {
        world.block(async {
            let out = c
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("volume-id")
                        .values(volume)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(out.snapshots().len(), 1, "one final snapshot of {volume}");
            out.snapshots()[0].snapshot_id().unwrap().to_string()
        })
    };
    let first_final = final_of(s(&first, "volume_id"));
    assert_eq!(
        second["volume_source"].as_str(),
        Some(user_snapshot.as_str()),
        "newly set wins over {first_final}: {second}"
    );
    let v = world
        .block(volume_status(&c.ec2, s(&second, "volume_id")))
        .unwrap();
    assert_eq!(
        v.snapshot_id.as_deref(),
        Some(user_snapshot.as_str()),
        "{v:?}"
    );

    // Replaced again with the same volume_snapshot_id: the lineage continues from the second
    // volume's final snapshot, not back to the user's snapshot.
    with_var(&t, "subnet_cidr", "10.0.3.0/24");
    t.apply().unwrap();
    let third = named(stacks(&t)["lin"].clone(), "lin");
    let second_final = final_of(s(&second, "volume_id"));
    assert_eq!(
        third["volume_source"].as_str(),
        Some(second_final.as_str()),
        "the lineage continues: {third}"
    );
    assert_empty_plan(&t, "after the replacements");

    // `delete` ends the lineage: a new stack of the name starts empty.
    with_var(&t, "volume_on_destroy", "delete");
    t.apply().unwrap();
    t.destroy().unwrap();
    t.unset_var("volume_snapshot_id");
    t.apply().unwrap();
    let fresh = named(stacks(&t)["lin"].clone(), "lin");
    assert!(
        fresh["volume_source"].is_null(),
        "after delete the lineage ended, no older snapshot is restored: {fresh}"
    );
    t.destroy().unwrap();
    // The two final snapshots are kept (tagged ended), nothing else of the stack.
    let mut left: Vec<String> = world
        .block(Sweeper::for_stack(c, "lin").leftovers())
        .unwrap()
        .into_iter()
        .map(|l| {
            assert!(l.final_snapshot, "only final snapshots are left: {l}");
            l.id
        })
        .collect();
    left.sort();
    let mut expected = vec![first_final, second_final];
    expected.sort();
    assert_eq!(left, expected);
}

/// A volume someone tagged as this stack's interrupted create (`autoheal:creating` and
/// `autoheal:stack` = the name) but unencrypted: the create does not adopt it (a tag proves
/// nothing about the object) and makes its own encrypted volume; the planted one is left as
/// it was, unattached.
#[test]
fn a_planted_volume_is_not_adopted_by_its_tag_alone() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let name = "planted";
    let c = &world.clients;
    let planted = world.block(async {
        let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
        c.ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(1)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                    .tags(tag("autoheal:creating", name))
                    .tags(tag("autoheal:stack", name))
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string()
    });
    let t = world.terraform(&tf, &[name]);
    t.apply().unwrap();
    let stack = named(stacks(&t)[name].clone(), name);
    assert_ne!(
        s(&stack, "volume_id"),
        planted,
        "the planted volume was adopted"
    );
    world.block(async {
        let v = volume_status(&c.ec2, &planted).await.unwrap();
        assert_eq!(
            v.state, "available",
            "the planted volume is left alone: {v:?}"
        );
        assert!(v.attachment.is_none(), "{v:?}");
        let ours = c
            .ec2
            .describe_volumes()
            .volume_ids(s(&stack, "volume_id"))
            .send()
            .await
            .unwrap();
        assert_eq!(ours.volumes()[0].encrypted(), Some(true));
    });
    t.destroy().unwrap();
    world.block(async {
        c.ec2
            .delete_volume()
            .volume_id(&planted)
            .send()
            .await
            .unwrap();
    });
    world.sweep(name, true);
}

/// Issue "Never lose data, never widen access", points 3 and 5: what someone else put into the
/// stack's objects, or planted beside them under the stack's tags, is not kept. Before the
/// create, a snapshot of a volume that is not the stack's is tagged as its final snapshot; after
/// it, the security group gets three rules by hand (IPv4, IPv6, egress), the rule a second
/// target, the function a second permission, the role a second inline policy, an attached
/// managed policy and a trust policy that lets EC2 assume it. A refresh must report every one
/// (the plan is not empty, the unmanaged rules listed), and one apply must remove them all.
#[test]
fn what_others_add_to_the_stacks_objects_is_reported_and_removed() {
    use aws_sdk_ec2::types::{
        IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification,
    };
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let name = "hostile";
    let c = &world.clients;
    let (foreign_volume, planted_snapshot) = world.block(async {
        let v = c
            .ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(1)
            .encrypted(true)
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string();
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let snap = c
            .ec2
            .create_snapshot()
            .volume_id(&v)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .tags(tag("autoheal:stack", name))
                    .tags(tag("autoheal:final-snapshot", "true"))
                    .tags(tag("autoheal:volume-id", &v))
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_string();
        (v, snap)
    });
    let t = world.terraform(&tf, &[name]);
    with_var(
        &t,
        "ingress",
        r#"[{protocol="tcp",from_port=443,to_port=443,cidr_blocks=["0.0.0.0/0"]}]"#,
    );
    t.apply().unwrap();
    let stack = named(stacks(&t)[name].clone(), name);
    assert!(
        stack["volume_source"].is_null(),
        "the planted snapshot {planted_snapshot} must not be restored: {stack}"
    );
    let sg = s(&stack, "security_group_id").to_string();
    let rules = |sg: String| async move {
        let g = c
            .ec2
            .describe_security_groups()
            .group_ids(&sg)
            .send()
            .await
            .unwrap()
            .security_groups()[0]
            .clone();
        let flat = |perms: &[IpPermission]| -> Vec<String> {
            let mut out: Vec<String> = perms
                .iter()
                .flat_map(|p| {
                    let head = format!(
                        "{} {}-{}",
                        p.ip_protocol().unwrap_or(""),
                        p.from_port().unwrap_or(-1),
                        p.to_port().unwrap_or(-1)
                    );
                    p.ip_ranges()
                        .iter()
                        .filter_map(|r| r.cidr_ip().map(str::to_string))
                        .chain(
                            p.ipv6_ranges()
                                .iter()
                                .filter_map(|r| r.cidr_ipv6().map(str::to_string)),
                        )
                        .map(move |c| format!("{head} {c}"))
                        .collect::<Vec<_>>()
                })
                .collect();
            out.sort();
            out
        };
        (flat(g.ip_permissions()), flat(g.ip_permissions_egress()))
    };
    let configured = (
        vec!["tcp 443-443 0.0.0.0/0".to_string()],
        vec!["-1 -1--1 0.0.0.0/0".to_string()],
    );
    assert_eq!(
        world.block(rules(sg.clone())),
        configured,
        "the configured rules"
    );
    // Every disk encrypted (point 4): the template maps the AMI's root device encrypted and
    // deleted with the instance, and the serving instance's root volume is encrypted.
    world.block(async {
        let template = s(&stack, "launch_template_id");
        let version = stack["launch_template_version"].to_string();
        let v = c
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(template)
            .versions(version)
            .send()
            .await
            .unwrap();
        let data = v.launch_template_versions()[0]
            .launch_template_data()
            .unwrap();
        let root = c
            .ec2
            .describe_images()
            .image_ids(data.image_id().unwrap())
            .send()
            .await
            .unwrap()
            .images()[0]
            .root_device_name()
            .unwrap()
            .to_string();
        let mapped: Vec<(Option<&str>, Option<bool>, Option<bool>)> = data
            .block_device_mappings()
            .iter()
            .map(|m| {
                (
                    m.device_name(),
                    m.ebs().and_then(|e| e.encrypted()),
                    m.ebs().and_then(|e| e.delete_on_termination()),
                )
            })
            .collect();
        assert_eq!(mapped, vec![(Some(root.as_str()), Some(true), Some(true))]);
        let volumes = c
            .ec2
            .describe_volumes()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("attachment.instance-id")
                    .values(s(&stack, "instance_id"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let unencrypted: Vec<_> = volumes
            .volumes()
            .iter()
            .filter(|v| v.encrypted() != Some(true))
            .map(|v| v.volume_id())
            .collect();
        assert!(
            volumes.volumes().len() >= 2,
            "root and data volume: {volumes:?}"
        );
        assert!(unencrypted.is_empty(), "unencrypted disks: {unencrypted:?}");
    });

    let role = s(&stack, "lambda_role_arn")
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let function = format!("{name}-attach");
    let rule = format!("{name}-launch");
    world.block(async {
        c.ec2
            .authorize_security_group_ingress()
            .group_id(&sg)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(3306)
                    .to_port(3306)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.ec2
            .authorize_security_group_egress()
            .group_id(&sg)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(25)
                    .to_port(25)
                    .ip_ranges(IpRange::builder().cidr_ip("198.51.100.0/24").build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.eventbridge
            .put_targets()
            .rule(&rule)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("planted")
                    .arn(s(&stack, "function_arn"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        c.lambda
            .add_permission()
            .function_name(&function)
            .statement_id("planted")
            .action("lambda:InvokeFunction")
            .principal("s3.amazonaws.com")
            .send()
            .await
            .unwrap();
        let admin = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        c.iam
            .put_role_policy()
            .role_name(&role)
            .policy_name("planted")
            .policy_document(admin)
            .send()
            .await
            .unwrap();
        let managed = c
            .iam
            .create_policy()
            .policy_name("planted-admin")
            .policy_document(admin)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .arn()
            .unwrap()
            .to_string();
        c.iam
            .attach_role_policy()
            .role_name(&role)
            .policy_arn(&managed)
            .send()
            .await
            .unwrap();
        c.iam
            .update_assume_role_policy()
            .role_name(&role)
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#,
            )
            .send()
            .await
            .unwrap();
    });

    refresh(&t);
    let refreshed = named(stacks(&t)[name].clone(), name);
    let mut unmanaged: Vec<&str> = refreshed["unmanaged_rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    unmanaged.sort();
    assert_eq!(
        unmanaged,
        vec![
            "egress tcp 25-25 to 198.51.100.0/24",
            "ingress tcp 3306-3306 from 0.0.0.0/0",
            "ingress tcp 3306-3306 from ::/0",
        ],
        "the refresh reports the rules added by hand"
    );
    assert!(
        refreshed["lambda_role_arn"].is_null() && refreshed["event_rule_arn"].is_null(),
        "the refresh marks the role and the rule for repair: {refreshed}"
    );
    let plan = t.plan().unwrap();
    assert!(
        plan.plan_has_changes(),
        "the plan shows the repair:\n{plan}"
    );

    t.apply().unwrap();
    assert_eq!(
        world.block(rules(sg.clone())),
        configured,
        "one apply leaves exactly the configured rules"
    );
    world.block(async {
        let targets = c
            .eventbridge
            .list_targets_by_rule()
            .rule(&rule)
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = targets.targets().iter().map(|t| t.id()).collect();
        assert_eq!(ids.len(), 1, "only the stack's target: {ids:?}");
        assert_ne!(ids[0], "planted");
        let policy = c
            .lambda
            .get_policy()
            .function_name(&function)
            .send()
            .await
            .unwrap();
        assert!(
            !policy.policy().unwrap_or_default().contains("planted"),
            "the planted permission is gone: {:?}",
            policy.policy()
        );
        let inline = c
            .iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        assert_eq!(
            inline.policy_names(),
            [format!("{name}-attach-policy")],
            "only the stack's inline policy"
        );
        let attached = c
            .iam
            .list_attached_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        assert!(attached.attached_policies().is_empty(), "nothing attached");
        let r = c.iam.get_role().role_name(&role).send().await.unwrap();
        let trust = urlencoding_decode(r.role().unwrap().assume_role_policy_document().unwrap());
        assert!(
            !trust.contains("ec2.amazonaws.com"),
            "trust rewritten: {trust}"
        );
        assert_eq!(r.role().unwrap().path(), "/autoheal/");
    });
    assert_empty_plan(&t, "after the repair");
    t.destroy().unwrap();
    world.block(async {
        c.ec2
            .delete_snapshot()
            .snapshot_id(&planted_snapshot)
            .send()
            .await
            .unwrap();
        c.ec2
            .delete_volume()
            .volume_id(&foreign_volume)
            .send()
            .await
            .unwrap();
    });
    world.sweep(name, true);
}
