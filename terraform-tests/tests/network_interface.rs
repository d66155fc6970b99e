//! Acceptance tests of `persistent_network_interface`: the real Terraform CLI and provider
//! against the local AWS on its realistic profile (instances pending 8 s, shutting down 45 s
//! holding their volumes and interfaces, IAM propagation and evaluation), with the real
//! attachment Lambda. The stack's ENI (in its subnet, with its security groups, tagged
//! `autoheal:stack`) carries the Elastic IP and is attached by the Lambda to every new
//! instance at device index 1, so its MAC address and private IP never change.
//!
//! As for the volume: apply and heal (the same ENI on the replacement), a kill during the
//! heal, destroy (nothing left but the final snapshot), drift (address off the interface,
//! its groups changed, the interface deleted), import, and turning the interface on and off
//! in place.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value as Json;
use terraform_tests::local_aws::helpers::{
    address_status, group_instances, instance_interfaces, network_interface_status,
    subnet_network_interfaces, wait_for, wait_until, Check, InterfaceStatus, POLL_INTERVAL,
};
use terraform_tests::local_aws::Clients;
use terraform_tests::output::planned_attribute;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import_output, refresh, resource_values, served_instance, World,
};
use terraform_tests::sweeper::{Kind, Sweeper};
use terraform_tests::{terraform_versions, CommandOutput, Terraform, TerraformBinary};

/// The local AWS's clock: 0.02 makes the 45 s shutdown 0.9 s and the hook's 300 s heartbeat
/// 6 s.
const CLOCK_SCALE: f64 = 0.02;

/// How long a heal may take (real seconds): the replacement waits for the old instance to
/// let go of the interface.
const HEAL_TIMEOUT: Duration = Duration::from_secs(60);

// --- shared helpers ----------------------------------------------------------------------

/// Stack `name`'s entry of the fixture's `stacks` output, with `name_hint` = `name`.
fn stack(t: &Terraform, name: &str) -> Json {
    let out = t.output("stacks").expect("output stacks");
    let mut v = out[name].clone();
    assert!(v.is_object(), "no stack {name} in the output: {out}");
    v["name_hint"] = Json::String(name.into());
    v
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

/// The plan is an in-place update of the stack (not a replacement) and shows `attr` as
/// known only after apply.
fn assert_plans_update_in_place(t: &Terraform, attr: &str, what: &str) -> CommandOutput {
    let plan = t.plan().unwrap();
    assert_eq!(
        plan.exit_code, 2,
        "{what}: the plan must show a change:\n{plan}"
    );
    assert!(
        plan.stdout.contains("update in-place") && !plan.stdout.contains("must be replaced"),
        "{what}: an update in place, not a replacement:\n{plan}"
    );
    assert!(
        plan.stdout.contains("0 to add") && plan.stdout.contains("0 to destroy"),
        "{what}: nothing added or destroyed:\n{plan}"
    );
    let planned = planned_attribute(&plan.stdout, attr);
    assert!(
        planned
            .as_deref()
            .is_some_and(|v| v.ends_with("(known after apply)")),
        "{what}: {attr} known after apply, planned {planned:?}:\n{plan}"
    );
    plan
}

fn newest(tf_versions: &[TerraformBinary]) -> TerraformBinary {
    tf_versions.last().unwrap().clone()
}

fn set_interface(t: &Terraform, on: bool) {
    t.set_var("persistent_network_interface", on.to_string());
}

/// The stack's network interface as EC2 shows it (it must exist).
async fn interface(c: &Clients, eni: &str) -> InterfaceStatus {
    network_interface_status(&c.ec2, eni)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("network interface {eni} does not exist"))
}

/// The instance serving `stack` with the interface: [`served_instance`] (one InService
/// instance with the volume and the address) whose interface at device index 1 is the
/// stack's, attached, and the address on that interface. `None` otherwise (for polling).
async fn served_with_interface(c: &Clients, stack: &Json) -> Option<String> {
    let name = s(stack, "name_hint");
    let eni = s(stack, "network_interface_id");
    let id = served_instance(c, name, stack).await?;
    let n = network_interface_status(&c.ec2, eni).await.ok()??;
    let a = address_status(&c.ec2, s(stack, "allocation_id"))
        .await
        .ok()?;
    let attached = n
        .attachment
        .as_ref()
        .is_some_and(|x| x.instance_id == id && x.device_index == 1 && x.state == "attached");
    (attached && a.network_interface_id.as_deref() == Some(eni)).then_some(id)
}

/// Checks everything the interface promises on the serving instance of `stack` (an entry of
/// the `stacks` output): the volume attached, the instance's own primary interface at index
/// 0 and the stack's at index 1, the interface in the stack's subnet with the stack's
/// security group and tags, the address on the interface (and so on the instance), and the
/// state's MAC and private IP those of EC2. Returns the serving instance.
async fn assert_interface_served(c: &Clients, stack: &Json) -> String {
    let name = s(stack, "name_hint");
    let eni = s(stack, "network_interface_id");
    let id = served_instance(c, name, stack).await.unwrap_or_else(|| {
        panic!("stack {name} is not served (one instance InService with the volume and the address): {stack}")
    });
    let on_instance = instance_interfaces(&c.ec2, &id).await.unwrap();
    assert_eq!(
        on_instance
            .iter()
            .map(|n| n.device_index)
            .collect::<Vec<_>>(),
        vec![0, 1],
        "the instance's own interface and the stack's: {on_instance:?}"
    );
    assert_ne!(
        on_instance[0].network_interface_id, eni,
        "the stack's interface is not the primary: {on_instance:?}"
    );
    assert_eq!(
        on_instance[1].network_interface_id, eni,
        "the stack's interface at device index 1: {on_instance:?}"
    );
    let n = interface(c, eni).await;
    let attachment = n.attachment.as_ref().expect("the interface is attached");
    assert_eq!(
        (
            attachment.instance_id.as_str(),
            attachment.device_index,
            attachment.state.as_str()
        ),
        (id.as_str(), 1, "attached"),
        "{n}"
    );
    assert_eq!(n.status, "in-use", "{n}");
    assert_eq!(n.subnet_id, s(stack, "subnet_id"), "in the stack's subnet");
    assert_eq!(
        n.security_group_ids,
        vec![s(stack, "security_group_id").to_string()],
        "the stack's security group"
    );
    assert_eq!(n.tags.get("autoheal:stack").map(String::as_str), Some(name));
    assert_eq!(
        n.tags.get("Name").cloned(),
        Some(format!("{name}-eni")),
        "{:?}",
        n.tags
    );
    assert_eq!(
        (
            stack["network_interface_ip"].as_str(),
            stack["network_interface_mac"].as_str()
        ),
        (Some(n.private_ip.as_str()), Some(n.mac_address.as_str())),
        "the state's private IP and MAC are EC2's: {stack}"
    );
    assert_eq!(
        (
            on_instance[1].private_ip.as_str(),
            on_instance[1].mac_address.as_str()
        ),
        (n.private_ip.as_str(), n.mac_address.as_str())
    );
    let a = address_status(&c.ec2, s(stack, "allocation_id"))
        .await
        .unwrap();
    assert_eq!(
        (a.network_interface_id.as_deref(), a.instance_id.as_deref()),
        (Some(eni), Some(id.as_str())),
        "the address is on the interface, so on the serving instance: {a:?}"
    );
    id
}

/// The function's environment names the interface (or not).
async fn function_interface(c: &Clients, name: &str) -> Option<String> {
    let f = c
        .lambda
        .get_function_configuration()
        .function_name(format!("{name}-attach"))
        .send()
        .await
        .unwrap();
    f.environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get("AUTOHEAL_NETWORK_INTERFACE_ID").cloned())
}

/// Terminates `first`, the serving instance of `stack`, through EC2 and waits until its
/// replacement is served with the interface. Checks that the old instance still held the
/// interface while it shut down (the replacement had to wait for it). Returns the
/// replacement's id.
fn heal(world: &World, stack: &Json, first: &str) -> String {
    let c = &world.clients;
    let eni = s(stack, "network_interface_id");
    world.block(async {
        c.ec2
            .terminate_instances()
            .instance_ids(first)
            .send()
            .await
            .unwrap();
        let held = interface(c, eni).await;
        assert_eq!(
            held.attachment.as_ref().map(|a| a.instance_id.as_str()),
            Some(first),
            "the shutting-down instance still holds the interface: {held}"
        );
        wait_until(
            "the replacement to be served with the interface",
            HEAL_TIMEOUT,
            POLL_INTERVAL,
            || async {
                let id = served_with_interface(c, stack).await;
                Ok(match id.filter(|i| i != first) {
                    Some(i) => Check::Done(i),
                    None => Check::NotYet(describe(c, stack).await),
                })
            },
        )
        .await
        .unwrap()
    })
}

/// One line of what the group and the interface look like (for the wait logs).
async fn describe(c: &Clients, stack: &Json) -> String {
    let group = format!("{}-asg", s(stack, "name_hint"));
    let instances = group_instances(&c.autoscaling, &group)
        .await
        .map(|i| {
            i.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|e| format!("{e:#}"));
    let eni = match stack["network_interface_id"].as_str() {
        Some(eni) => match network_interface_status(&c.ec2, eni).await {
            Ok(Some(n)) => n.to_string(),
            Ok(None) => format!("{eni} gone"),
            Err(e) => format!("{e:#}"),
        },
        None => "no interface".into(),
    };
    format!("[{instances}] interface {eni}")
}

/// Waits until the subnet's interfaces are exactly `expected` (the terminated instances' own
/// interfaces go at `terminated`), and the stack's tagged interfaces exactly `tagged`.
fn assert_no_interface_leaked(world: &World, stack: &Json, serving: &str, tagged: &[&str]) {
    let c = &world.clients;
    let name = s(stack, "name_hint");
    let subnet = s(stack, "subnet_id");
    world.block(async {
        let on_instance = instance_interfaces(&c.ec2, serving).await.unwrap();
        let mut expected: BTreeSet<String> = on_instance
            .iter()
            .map(|n| n.network_interface_id.clone())
            .collect();
        expected.extend(tagged.iter().map(|t| t.to_string()));
        wait_for(
            "only the serving instance's and the stack's interfaces",
            || {
                let expected = expected.clone();
                async move {
                    let all: BTreeSet<String> = subnet_network_interfaces(&c.ec2, subnet)
                        .await?
                        .into_iter()
                        .map(|n| n.network_interface_id)
                        .collect();
                    Ok(if all == expected {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("{all:?}, expected {expected:?}"))
                    })
                }
            },
        )
        .await
        .unwrap();
        let left = Sweeper::for_stack(c, name).leftovers().await.unwrap();
        let enis: BTreeSet<&str> = left
            .iter()
            .filter(|l| l.kind == Kind::NetworkInterface)
            .map(|l| l.id.as_str())
            .collect();
        assert_eq!(
            enis,
            tagged.iter().copied().collect::<BTreeSet<_>>(),
            "the stack's tagged interfaces"
        );
    });
}

/// Destroys and checks that nothing is left but the final snapshot, and (`with_interface`)
/// that the interface was deleted (once EC2 released it) before the security group that it
/// used.
fn destroy_and_sweep(world: &World, t: &Terraform, name: &str, with_interface: bool) {
    let control = world.aws.control();
    world.block(control.clear_calls()).unwrap();
    t.destroy().unwrap();
    world.sweep(name, true).expect("final snapshot");
    let calls = world.block(control.calls()).unwrap();
    let seq_of = |op: &str| {
        calls
            .iter()
            .filter(|c| c.operation == op && c.succeeded())
            .map(|c| c.seq)
            .max()
    };
    let (eni, sg) = (
        seq_of("DeleteNetworkInterface"),
        seq_of("DeleteSecurityGroup"),
    );
    if !with_interface {
        assert_eq!(eni, None, "no interface to delete");
        return;
    }
    assert!(
        eni.is_some() && sg.is_some() && eni < sg,
        "the interface deleted (call {eni:?}) before the security group (call {sg:?})"
    );
}

// --- 1. apply, heal, refresh, destroy ------------------------------------------------------

fn apply_heal_destroy(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "eni";
    let t = world.terraform(tf, &[name]);
    let _guard = t.destroy_guard();
    set_interface(&t, true);
    t.apply()
        .unwrap_or_else(|e| panic!("{}: apply: {e:#}", tf.name));
    let created = stack(&t, name);
    let eni = s(&created, "network_interface_id").to_string();
    let first = world.block(assert_interface_served(c, &created));
    assert_eq!(s(&created, "instance_id"), first);
    assert_eq!(
        world.block(function_interface(c, name)).as_deref(),
        Some(eni.as_str()),
        "the function attaches the interface"
    );
    assert_empty_plan(&t, &format!("{}: after create", tf.name));

    // Heal: the replacement waits for the old instance to let go, then gets the same
    // interface (id, MAC, private IP), the volume and the address.
    let second = heal(&world, &created, &first);
    refresh(&t);
    let healed = stack(&t, name);
    assert_eq!(
        s(&healed, "instance_id"),
        second,
        "refresh shows the replacement"
    );
    for key in [
        "network_interface_id",
        "network_interface_ip",
        "network_interface_mac",
        "volume_id",
        "allocation_id",
        "public_ip",
    ] {
        assert_eq!(healed[key], created[key], "{key} survives the heal");
    }
    assert_eq!(world.block(assert_interface_served(c, &healed)), second);
    assert_no_interface_leaked(&world, &healed, &second, &[&eni]);
    assert_empty_plan(&t, &format!("{}: after the heal", tf.name));

    destroy_and_sweep(&world, &t, name, true);
}

/// Apply with the interface: the serving instance has it at device index 1 next to its own
/// primary, the address is on it, the state's MAC and IP are EC2's, the plan is empty. A heal
/// (the instance terminated through EC2, holding the interface while it shuts down) gives the
/// replacement the same interface, volume and address; a refresh plans nothing; destroy
/// leaves nothing but the final snapshot.
#[test]
fn the_interface_follows_the_instance_through_a_heal_with_every_terraform() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        apply_heal_destroy(&tf);
    }
}

// --- 2. kill during a heal -----------------------------------------------------------------

/// The serving instance terminated, and its replacement terminated too as soon as it appears
/// (Pending:Wait, its heal waiting on the interface the first still holds): in the end one
/// instance is served with the interface, the volume and the address, and no interface is
/// left over.
#[test]
fn killing_the_replacement_during_a_heal_leaves_one_served_instance_and_no_interface() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "enikill";
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    set_interface(&t, true);
    t.apply().unwrap();
    let created = stack(&t, name);
    let eni = s(&created, "network_interface_id").to_string();
    let first = world.block(assert_interface_served(c, &created));
    let group = format!("{name}-asg");

    let second = world.block(async {
        c.ec2
            .terminate_instances()
            .instance_ids(&first)
            .send()
            .await
            .unwrap();
        let second = wait_for("the replacement in Pending:Wait", || async {
            let instances = group_instances(&c.autoscaling, &group).await?;
            Ok(
                match instances
                    .iter()
                    .find(|i| i.id != first && i.lifecycle_state == "Pending:Wait")
                {
                    Some(i) => Check::Done(i.id.clone()),
                    None => Check::NotYet(format!("{instances:?}")),
                },
            )
        })
        .await
        .unwrap();
        c.ec2
            .terminate_instances()
            .instance_ids(&second)
            .send()
            .await
            .unwrap();
        second
    });

    let third = world
        .block(wait_until(
            "a third instance served with the interface",
            HEAL_TIMEOUT,
            POLL_INTERVAL,
            || async {
                let id = served_with_interface(c, &created).await;
                Ok(match id.filter(|i| *i != first && *i != second) {
                    Some(i) => Check::Done(i),
                    None => Check::NotYet(describe(c, &created).await),
                })
            },
        ))
        .unwrap();
    assert_eq!(world.block(assert_interface_served(c, &created)), third);
    assert_no_interface_leaked(&world, &created, &third, &[&eni]);
    // Neither killed instance kept the interface, the volume or the address.
    world.block(async {
        for gone in [&first, &second] {
            let state = terraform_tests::local_aws::helpers::instance_state(&c.ec2, gone)
                .await
                .unwrap();
            assert_eq!(state.as_deref(), Some("terminated"), "{gone}");
        }
    });

    refresh(&t);
    let healed = stack(&t, name);
    assert_eq!(s(&healed, "instance_id"), third);
    assert_eq!(s(&healed, "network_interface_id"), eni);
    assert_eq!(
        healed["network_interface_mac"],
        created["network_interface_mac"]
    );
    assert_empty_plan(&t, "after the heal");
    destroy_and_sweep(&world, &t, name, true);
}

// --- 3. drift ------------------------------------------------------------------------------

/// (a) The address moved off the interface by hand: the refresh marks the interface for
/// repair, the plan is an update in place, the apply puts the address back on it. (b) The
/// interface's security groups changed by hand: the same, the apply puts the stack's group
/// back. (c) The interface detached and deleted by hand: the plan makes a new one (its id
/// known after apply), the apply attaches it to the serving instance (no roll) with the
/// address, the function attaches the new one from then on (a heal proves it).
#[test]
fn drift_of_the_interface_is_repaired_in_place() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "enidrift";
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    set_interface(&t, true);
    t.apply().unwrap();
    let created = stack(&t, name);
    let eni = s(&created, "network_interface_id").to_string();
    let allocation = s(&created, "allocation_id").to_string();
    let serving = world.block(assert_interface_served(c, &created));

    // (a) The address off the interface.
    world.block(async {
        let a = address_status(&c.ec2, &allocation).await.unwrap();
        c.ec2
            .disassociate_address()
            .association_id(a.association_id.expect("associated"))
            .send()
            .await
            .unwrap();
        let a = address_status(&c.ec2, &allocation).await.unwrap();
        assert_eq!(a.network_interface_id, None, "{a:?}");
    });
    refresh(&t);
    let refreshed = stack(&t, name);
    assert_eq!(s(&refreshed, "network_interface_id"), eni, "{refreshed}");
    assert!(
        refreshed["network_interface_ip"].is_null(),
        "the refresh marks the interface for repair: {refreshed}"
    );
    assert_plans_update_in_place(&t, "network_interface_private_ip", "address off the ENI");
    t.apply().unwrap();
    let repaired = stack(&t, name);
    assert_eq!(world.block(assert_interface_served(c, &repaired)), serving);
    assert_eq!(
        repaired["network_interface_ip"],
        created["network_interface_ip"]
    );
    assert_eq!(
        repaired["network_interface_mac"],
        created["network_interface_mac"]
    );
    assert_empty_plan(&t, "after the address's repair");

    // (b) Another security group on the interface.
    let other = world.block(async {
        let sg = c
            .ec2
            .create_security_group()
            .group_name("not-the-stacks")
            .description("planted by the test")
            .vpc_id(s(&created, "vpc_id"))
            .send()
            .await
            .unwrap()
            .group_id()
            .unwrap()
            .to_string();
        c.ec2
            .modify_network_interface_attribute()
            .network_interface_id(&eni)
            .groups(&sg)
            .send()
            .await
            .unwrap();
        // Exactly the new group: an interface attached as device 1 has its own groups, not
        // its instance's (the local AWS's eniext.py, as AWS).
        let groups = interface(c, &eni).await.security_group_ids;
        assert_eq!(groups, vec![sg.clone()], "the hand change took");
        sg
    });
    refresh(&t);
    assert!(
        stack(&t, name)["network_interface_ip"].is_null(),
        "the refresh marks the interface for repair"
    );
    assert_plans_update_in_place(&t, "network_interface_private_ip", "groups of the ENI");
    world.block(world.aws.control().clear_calls()).unwrap();
    t.apply().unwrap();
    let modified: Vec<_> = world
        .block(
            world
                .aws
                .control()
                .calls_of("ModifyNetworkInterfaceAttribute"),
        )
        .unwrap()
        .into_iter()
        .filter(|c| c.succeeded() && c.function.is_none())
        .collect();
    assert_eq!(
        modified.len(),
        1,
        "the apply sets the interface's groups: {modified:?}"
    );
    assert!(
        modified[0].params.to_string().contains(&eni),
        "{:?}",
        modified[0].params
    );
    let repaired = stack(&t, name);
    assert_eq!(
        s(&repaired, "network_interface_id"),
        eni,
        "the same interface"
    );
    assert_eq!(world.block(assert_interface_served(c, &repaired)), serving);
    assert_empty_plan(&t, "after the groups' repair");
    world.block(async {
        c.ec2
            .delete_security_group()
            .group_id(&other)
            .send()
            .await
            .unwrap();
    });

    // (c) The interface detached and deleted by hand.
    world.block(async {
        let n = interface(c, &eni).await;
        let attachment = n.attachment.expect("attached");
        c.ec2
            .detach_network_interface()
            .attachment_id(&attachment.attachment_id)
            .send()
            .await
            .unwrap();
        wait_for("the interface to be available", || async {
            let n = interface(c, &eni).await;
            Ok(if n.status == "available" {
                Check::Done(())
            } else {
                Check::NotYet(n.to_string())
            })
        })
        .await
        .unwrap();
        c.ec2
            .delete_network_interface()
            .network_interface_id(&eni)
            .send()
            .await
            .unwrap();
        assert_eq!(network_interface_status(&c.ec2, &eni).await.unwrap(), None);
    });
    refresh(&t);
    let refreshed = stack(&t, name);
    assert!(
        refreshed["network_interface_id"].is_null(),
        "the refresh finds the interface gone: {refreshed}"
    );
    assert_plans_update_in_place(&t, "network_interface_id", "ENI deleted");
    t.apply().unwrap();
    let remade = stack(&t, name);
    let new_eni = s(&remade, "network_interface_id").to_string();
    assert_ne!(new_eni, eni, "a new interface");
    assert_eq!(
        world.block(assert_interface_served(c, &remade)),
        serving,
        "attached to the serving instance, which stays"
    );
    assert_eq!(s(&remade, "instance_id"), serving);
    assert_eq!(
        world.block(function_interface(c, name)).as_deref(),
        Some(new_eni.as_str()),
        "the function attaches the new interface"
    );
    assert_empty_plan(&t, "after the interface was made again");
    let next = heal(&world, &remade, &serving);
    refresh(&t);
    let healed = stack(&t, name);
    assert_eq!(s(&healed, "instance_id"), next);
    assert_eq!(s(&healed, "network_interface_id"), new_eni);
    assert_no_interface_leaked(&world, &healed, &next, &[&new_eni]);
    assert_empty_plan(&t, "after the heal");
    destroy_and_sweep(&world, &t, name, true);
}

// --- 4. import -----------------------------------------------------------------------------

/// A stack with the interface, imported into a fresh state: `persistent_network_interface`
/// true, the same interface id, MAC and IP, every attribute as created, and no change
/// planned. An interface without the stack's tag (a variable in the function proves nothing
/// about the object it names) refuses the import.
#[test]
fn a_stack_with_the_interface_imports() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "eniimp";
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    set_interface(&t, true);
    t.apply().unwrap();
    let created = stack(&t, name);
    let eni = s(&created, "network_interface_id").to_string();
    world.block(assert_interface_served(c, &created));
    let before = resource_values(&t.run(&["show", "-json"], false).unwrap());

    // Without the stack's tag the interface is not the stack's: no import.
    world.block(async {
        c.ec2
            .delete_tags()
            .resources(&eni)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("autoheal:stack")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let refused = world.terraform(&tf, &[name]);
    set_interface(&refused, true);
    let out = import_output(&refused, name);
    assert_ne!(
        out.exit_code, 0,
        "an untagged interface must refuse the import: {out}"
    );
    assert!(
        out.words().contains("is not the stack's") && out.words().contains(&eni),
        "the diagnostic names the interface: {out}"
    );
    world.block(async {
        c.ec2
            .create_tags()
            .resources(&eni)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("autoheal:stack")
                    .value(name)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });

    let imp = world.terraform(&tf, &[name]);
    set_interface(&imp, true);
    let out = import_output(&imp, name);
    assert_eq!(out.exit_code, 0, "import: {out}");
    let after = resource_values(&imp.run(&["show", "-json"], false).unwrap());
    assert_eq!(after["persistent_network_interface"], Json::Bool(true));
    assert_eq!(after["network_interface_id"].as_str(), Some(eni.as_str()));
    let config_only = [
        "timeouts",
        "force_detach",
        "volume_on_destroy",
        "handler_zip",
    ];
    for (k, v) in &before {
        if !config_only.contains(&k.as_str()) {
            assert_eq!(Some(v), after.get(k), "imported {k} differs");
        }
    }
    assert_import_plans_no_change(&imp);
    destroy_and_sweep(&world, &t, name, true);
}

// --- 5. on and off in place ----------------------------------------------------------------

/// A stack without the interface gets one in place: the plan is an update, the serving
/// instance (no roll) gets the interface at index 1 with the address on it. Turned off
/// again: the address back on the instance itself (its own primary interface), the
/// interface deleted, no roll; a heal afterwards works without it.
#[test]
fn the_interface_is_turned_on_and_off_in_place() {
    let tf = newest(&terraform_versions());
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "enitoggle";
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    t.apply().unwrap();
    let plain = stack(&t, name);
    assert!(plain["network_interface_id"].is_null(), "{plain}");
    let serving = world
        .block(served_instance(c, name, &plain))
        .expect("served");
    let primary = |instance: String| {
        world.block(async {
            let on = instance_interfaces(&c.ec2, &instance).await.unwrap();
            assert_eq!(on.len(), 1, "only the instance's own interface: {on:?}");
            assert_eq!(on[0].device_index, 0);
            on[0].network_interface_id.clone()
        })
    };
    let own = primary(serving.clone());

    // On.
    set_interface(&t, true);
    assert_plans_update_in_place(&t, "network_interface_id", "turning the interface on");
    t.apply().unwrap();
    let on = stack(&t, name);
    assert_eq!(
        world.block(assert_interface_served(c, &on)),
        serving,
        "the serving instance stays"
    );
    assert_eq!(s(&on, "instance_id"), serving);
    for key in ["volume_id", "allocation_id", "public_ip"] {
        assert_eq!(on[key], plain[key], "{key} stays");
    }
    let eni = s(&on, "network_interface_id").to_string();
    assert_eq!(
        world.block(function_interface(c, name)).as_deref(),
        Some(eni.as_str())
    );
    assert_empty_plan(&t, "after turning the interface on");

    // Off.
    set_interface(&t, false);
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 2, "turning it off is a change:\n{plan}");
    assert!(
        plan.stdout.contains("update in-place") && !plan.stdout.contains("must be replaced"),
        "turning the interface off is an update in place:\n{plan}"
    );
    t.apply().unwrap();
    let off = stack(&t, name);
    for key in [
        "network_interface_id",
        "network_interface_ip",
        "network_interface_mac",
    ] {
        assert!(off[key].is_null(), "{key} null: {off}");
    }
    assert_eq!(s(&off, "instance_id"), serving, "no roll");
    world.block(async {
        let a = address_status(&c.ec2, s(&off, "allocation_id"))
            .await
            .unwrap();
        assert_eq!(
            (a.instance_id.as_deref(), a.network_interface_id.as_deref()),
            (Some(serving.as_str()), Some(own.as_str())),
            "the address back on the instance's own interface: {a:?}"
        );
        assert_eq!(
            network_interface_status(&c.ec2, &eni).await.unwrap(),
            None,
            "the interface is deleted"
        );
        assert_eq!(function_interface(c, name).await, None);
    });
    assert_eq!(
        primary(serving.clone()),
        own,
        "only the instance's own interface"
    );
    assert_eq!(
        world.block(served_instance(c, name, &off)).as_deref(),
        Some(serving.as_str())
    );
    assert_empty_plan(&t, "after turning the interface off");

    // A heal without the interface: the address goes to the replacement itself.
    world.block(async {
        world.aws.control().clear_invocations().await.unwrap();
        c.ec2
            .terminate_instances()
            .instance_ids(&serving)
            .send()
            .await
            .unwrap();
    });
    let next = world
        .block(wait_until(
            "the replacement to be served",
            HEAL_TIMEOUT,
            POLL_INTERVAL,
            || async {
                let id = served_instance(c, name, &off).await;
                Ok(match id.filter(|i| *i != serving) {
                    Some(i) => Check::Done(i),
                    None => Check::NotYet(describe(c, &off).await),
                })
            },
        ))
        .unwrap();
    primary(next);
    let failed: Vec<_> = world
        .block(
            world
                .aws
                .control()
                .invocations_of(&format!("{name}-attach")),
        )
        .unwrap()
        .into_iter()
        .filter(|i| i.outcome != terraform_tests::local_aws::control::Outcome::Success)
        .collect();
    assert!(failed.is_empty(), "no attempt failed: {failed:?}");
    destroy_and_sweep(&world, &t, name, false);
}
