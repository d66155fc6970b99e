//! Acceptance tests of `failover_zones` and `failover_subnet_ids` (issue 19, point 2: the
//! network for the failover zones): the real Terraform CLI and provider against the local AWS
//! on its realistic profile.
//!
//! What is checked is what an operator sees in EC2 and Auto Scaling: a public subnet of the
//! stack's VPC in each failover zone, on the stack's route table (the default route to its
//! internet gateway), in the first free block of `subnet_cidr`'s size; the group launching
//! into the home subnet only (nothing runs in a failover zone while home serves); zones added
//! and removed in place, without touching the instance; a subnet deleted out of band made
//! again; import reading the zones back; destroy leaving nothing. With `subnet_id`, the
//! user's own subnets are checked (zone, VPC) and never changed or deleted.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use terraform_tests::local_aws::Clients;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import, refresh, served_instance, World,
};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

const CLOCK_SCALE: f64 = 0.01;
const HOME: &str = "ap-southeast-2a";
const ZONE_B: &str = "ap-southeast-2b";
const ZONE_C: &str = "ap-southeast-2c";

/// A subnet as EC2 shows it.
#[derive(Debug)]
struct Subnet {
    zone: String,
    vpc: String,
    cidr: String,
}

async fn subnet(c: &Clients, id: &str) -> Option<Subnet> {
    let out = c
        .ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("subnet-id")
                .values(id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.subnets().first().map(|s| Subnet {
        zone: s.availability_zone().unwrap_or_default().to_string(),
        vpc: s.vpc_id().unwrap_or_default().to_string(),
        cidr: s.cidr_block().unwrap_or_default().to_string(),
    })
}

/// The route table associated with `subnet_id` and whether its default route goes to an
/// internet gateway (a public subnet).
async fn public_route(c: &Clients, subnet_id: &str) -> Option<(String, bool)> {
    let out = c
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("association.subnet-id")
                .values(subnet_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let table = out.route_tables().first()?;
    let public = table.routes().iter().any(|r| {
        r.destination_cidr_block() == Some("0.0.0.0/0")
            && r.gateway_id().is_some_and(|g| g.starts_with("igw-"))
    });
    Some((table.route_table_id()?.to_string(), public))
}

/// The subnets the group launches into (its VPCZoneIdentifier).
async fn group_subnets(c: &Clients, name: &str) -> Vec<String> {
    let out = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{name}-asg"))
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()
        .first()
        .and_then(|g| g.vpc_zone_identifier())
        .map(|z| z.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

/// The scheduled snapshots outlive the stack by design (they are data; failover zones need
/// `snapshot_interval`): the test removes them with its own credentials before the sweep.
fn delete_scheduled_snapshots(world: &World, name: &str) {
    world
        .block(
            terraform_tests::local_aws::helpers::delete_scheduled_snapshots(
                &world.clients.ec2,
                name,
            ),
        )
        .unwrap();
}

fn stack(t: &Terraform, name: &str) -> Json {
    t.output("stacks").unwrap()[name].clone()
}

fn failover_ids(stack: &Json) -> BTreeMap<String, String> {
    stack["failover_subnet_ids"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The plan changes nothing. The stack takes scheduled snapshots every 15 AWS minutes (9 real
/// seconds here), so one may complete between an apply and this plan: refresh then reports
/// `last_snapshot_id`/`last_snapshot_time`, and the fixture's output shows them changed.
/// That is AWS's news, not a planned change; anything else is.
fn assert_empty_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    if plan.exit_code == 2 && !plan.stdout.contains("Plan:") {
        let changed: Vec<&str> = plan
            .stdout
            .split("Changes to Outputs:")
            .nth(1)
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(['+', '-', '~']))
            .filter(|l| !l.starts_with("~ stacks = {") && !l.ends_with("= {"))
            .collect();
        if !changed.is_empty()
            && changed
                .iter()
                .all(|l| l.contains("last_snapshot_id") || l.contains("last_snapshot_time"))
        {
            return;
        }
    }
    assert_eq!(plan.exit_code, 0, "{what}: the plan must be empty:\n{plan}");
}

fn assert_in_place_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 2, "{what}: a change is expected:\n{plan}");
    assert!(
        plan.stdout.contains("update in-place") && !plan.stdout.contains("must be replaced"),
        "{what}: an in-place update is expected:\n{plan}"
    );
}

/// The stack serves from its home subnet, and the group knows no other subnet.
fn assert_serves_from_home(world: &World, name: &str, stack: &Json) -> String {
    let c = &world.clients;
    let home = stack["subnet_id"].as_str().unwrap().to_string();
    let instance = world
        .block(served_instance(c, name, stack))
        .unwrap_or_else(|| panic!("{name} is not served: {stack}"));
    assert_eq!(
        world.block(group_subnets(c, name)),
        vec![home.clone()],
        "the group launches into the home subnet only"
    );
    let zone = world.block(async {
        c.ec2
            .describe_instances()
            .instance_ids(&instance)
            .send()
            .await
            .unwrap()
            .reservations()[0]
            .instances()[0]
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(zone, HOME, "the instance runs in the home zone");
    instance
}

/// The stack's failover subnets are as `zones` says: one per zone, in the stack's VPC, public
/// through the home subnet's route table.
fn assert_failover_subnets(
    world: &World,
    stack: &Json,
    zones: &[&str],
) -> BTreeMap<String, String> {
    let c = &world.clients;
    let ids = failover_ids(stack);
    assert_eq!(
        ids.keys().map(String::as_str).collect::<Vec<_>>(),
        zones,
        "failover_subnet_ids: {stack}"
    );
    let vpc = stack["vpc_id"].as_str().unwrap();
    let home = stack["subnet_id"].as_str().unwrap();
    let (home_table, home_public) = world.block(public_route(c, home)).unwrap();
    assert!(home_public);
    for (zone, id) in &ids {
        let s = world
            .block(subnet(c, id))
            .unwrap_or_else(|| panic!("failover subnet {id} does not exist"));
        assert_eq!(&s.zone, zone, "{id}: {s:?}");
        assert_eq!(s.vpc, vpc, "{id}: {s:?}");
        assert!(s.cidr.ends_with("/24"), "subnet_cidr's size: {s:?}");
        assert_eq!(
            world.block(public_route(c, id)),
            Some((home_table.clone(), true)),
            "{id} is public through the stack's route table"
        );
    }
    ids
}

fn providers_network(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "fonet";
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    // A failover restores a scheduled snapshot: failover zones need `snapshot_interval`.
    t.set_var("snapshot_interval", "15m");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.apply().unwrap();
    let s = stack(&t, name);
    let instance = assert_serves_from_home(&world, name, &s);
    let ids = assert_failover_subnets(&world, &s, &[ZONE_B]);
    // The first free block of the home subnet's size (the default home is 10.0.1.0/24).
    assert_eq!(
        world.block(subnet(c, &ids[ZONE_B])).unwrap().cidr,
        "10.0.0.0/24"
    );
    assert_empty_plan(&t, "after the create");

    // (1) A zone added and one removed, in place: the instance keeps serving, untouched.
    t.set_var("failover_zones", format!(r#"["{ZONE_B}", "{ZONE_C}"]"#));
    assert_in_place_plan(&t, "a failover zone added");
    t.apply().unwrap();
    let s = stack(&t, name);
    let both = assert_failover_subnets(&world, &s, &[ZONE_B, ZONE_C]);
    assert_eq!(both[ZONE_B], ids[ZONE_B], "the kept zone keeps its subnet");
    assert_eq!(assert_serves_from_home(&world, name, &s), instance);
    t.set_var("failover_zones", format!(r#"["{ZONE_C}"]"#));
    assert_in_place_plan(&t, "a failover zone removed");
    t.apply().unwrap();
    let s = stack(&t, name);
    let only_c = assert_failover_subnets(&world, &s, &[ZONE_C]);
    assert_eq!(only_c[ZONE_C], both[ZONE_C]);
    assert!(
        world.block(subnet(c, &both[ZONE_B])).is_none(),
        "the removed zone's subnet is deleted"
    );
    assert_eq!(assert_serves_from_home(&world, name, &s), instance);
    assert_empty_plan(&t, "after the updates");

    // (2) The subnet deleted out of band: refresh notices, the next apply makes it again.
    world.block(async {
        c.ec2
            .delete_subnet()
            .subnet_id(&only_c[ZONE_C])
            .send()
            .await
            .unwrap();
    });
    refresh(&t);
    assert_in_place_plan(&t, "a failover subnet deleted by hand");
    t.apply().unwrap();
    let s = stack(&t, name);
    let again = assert_failover_subnets(&world, &s, &[ZONE_C]);
    assert_ne!(again[ZONE_C], only_c[ZONE_C], "a new subnet");
    assert_empty_plan(&t, "after the repair");

    // (3) Import reads the failover zones back.
    let imp = world.terraform(tf, &[name]);
    imp.set_var("snapshot_interval", "15m");
    imp.set_var("failover_zones", format!(r#"["{ZONE_C}"]"#));
    import(&imp, name);
    assert_import_plans_no_change(&imp);
    drop(imp);

    // (4) Off: the subnets go; destroy leaves nothing but the final snapshot.
    t.unset_var("failover_zones");
    assert_in_place_plan(&t, "failover zones removed");
    t.apply().unwrap();
    assert!(world.block(subnet(c, &again[ZONE_C])).is_none());
    assert!(stack(&t, name)["failover_subnet_ids"].is_null());
    assert_empty_plan(&t, "without failover zones");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.apply().unwrap();
    let last = failover_ids(&stack(&t, name));
    t.destroy().unwrap();
    drop(guard);
    assert!(world.block(subnet(c, &last[ZONE_B])).is_none());
    delete_scheduled_snapshots(&world, name);
    // Nothing of the stack is left but its final snapshot (panics naming what is).
    world.sweep(name, true);
}

fn users_network(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "fouser";
    let (vpc, home, b, c_zone, other_vpc_b) = world.block(async {
        let new_vpc = |cidr: &'static str| async move {
            c.ec2
                .create_vpc()
                .cidr_block(cidr)
                .send()
                .await
                .unwrap()
                .vpc()
                .unwrap()
                .vpc_id()
                .unwrap()
                .to_string()
        };
        let new_subnet = |vpc: String, cidr: &'static str, zone: &'static str| async move {
            c.ec2
                .create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .availability_zone(zone)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string()
        };
        let vpc = new_vpc("10.8.0.0/16").await;
        let other = new_vpc("10.7.0.0/16").await;
        (
            vpc.clone(),
            new_subnet(vpc.clone(), "10.8.1.0/24", HOME).await,
            new_subnet(vpc.clone(), "10.8.2.0/24", ZONE_B).await,
            new_subnet(vpc, "10.8.3.0/24", ZONE_C).await,
            new_subnet(other, "10.7.2.0/24", ZONE_B).await,
        )
    });
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("subnet_id", &home);
    t.set_var("snapshot_interval", "15m");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.set_var(
        "failover_subnet_ids",
        format!(r#"{{ "{ZONE_B}" = "{b}" }}"#),
    );
    t.apply().unwrap();
    let s = stack(&t, name);
    assert_eq!(s["vpc_id"].as_str(), Some(vpc.as_str()));
    assert_eq!(
        failover_ids(&s),
        BTreeMap::from([(ZONE_B.to_string(), b.clone())])
    );
    let instance = assert_serves_from_home(&world, name, &s);
    assert_empty_plan(&t, "with the user's failover subnet");

    // A subnet in the wrong zone, or in another VPC: the apply says which and why, and the
    // stack is as it was.
    for (bad, why) in [
        (c_zone.as_str(), format!("is in {ZONE_C}, not {ZONE_B}")),
        (other_vpc_b.as_str(), "subnet_id's VPC".to_string()),
    ] {
        t.set_var(
            "failover_subnet_ids",
            format!(r#"{{ "{ZONE_B}" = "{bad}" }}"#),
        );
        let out = t.apply_output().unwrap();
        assert_ne!(out.exit_code, 0, "{out}");
        let text = out.to_string().replace('\n', " ");
        assert!(
            text.contains("failover_subnet_ids") && text.contains(&why),
            "the error names the attribute and says {why:?}:\n{out}"
        );
        assert_eq!(
            world.block(served_instance(c, name, &s)),
            Some(instance.clone())
        );
    }
    t.set_var(
        "failover_subnet_ids",
        format!(r#"{{ "{ZONE_B}" = "{b}" }}"#),
    );
    t.apply().unwrap();
    assert_empty_plan(&t, "back to the right subnet");
    t.destroy().unwrap();
    drop(guard);
    delete_scheduled_snapshots(&world, name);
    // Nothing of the stack is left but its final snapshot (panics naming what is).
    world.sweep(name, true);
    for id in [&home, &b, &c_zone, &other_vpc_b] {
        assert!(
            world.block(subnet(c, id)).is_some(),
            "the user's subnet {id} survives"
        );
    }
}

#[test]
fn failover_subnets_are_made_updated_repaired_imported_and_deleted() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        providers_network(&tf);
    }
}

#[test]
fn users_failover_subnets_are_checked_and_left_alone() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        users_network(&tf);
    }
}
