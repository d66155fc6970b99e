//! Launches that fail, through Terraform: the realistic local AWS records a Failed scaling
//! activity with AWS's StatusMessage for each launch it cannot make and retries with
//! back-off, as Auto Scaling does. A launch that can never succeed (an arm64 instance type
//! for an x86_64 AMI) must end the apply soon, with AWS's message and the attribute to
//! change, and leave every object it made in the state; a capacity shortage must not end it,
//! only warn, because the group's retries succeed once capacity returns.

use std::time::Instant;

use serde_json::json;
use terraform_tests::stack_world::World;
use terraform_tests::sweeper::Sweeper;
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

/// 0.02: Auto Scaling's launch back-off (10 s, doubling) passes in 0.2 s, 0.4 s, ...
const CLOCK_SCALE: f64 = 0.02;
/// "Within about a minute of AWS time" (the bound), in AWS seconds.
const PERMANENT_FAILURE_BOUND_AWS_S: f64 = 60.0;

fn newest() -> TerraformBinary {
    terraform_versions().last().unwrap().clone()
}

fn destroy_and_sweep(world: &World, t: &Terraform, name: &str) {
    let out = t.destroy().expect("terraform destroy ran");
    assert_eq!(out.exit_code, 0, "destroy: {out}");
    world.sweep(name, true);
}

#[test]
fn a_launch_that_can_never_succeed_ends_the_apply_with_aws_message_and_the_attribute() {
    let tf = newest();
    let world = World::start(CLOCK_SCALE);
    let name = "archmix";
    let t = world.terraform(&tf, &[name]);
    // The fixture's AMI is x86_64; t4g is Graviton (arm64).
    t.set_var("instance_type", "t4g.micro");
    let started = Instant::now();
    let out = t.apply_output().expect("terraform apply ran");
    let took = started.elapsed();
    assert_ne!(out.exit_code, 0, "the apply must fail: {out}");
    let text = out.words();
    assert!(
        text.contains("The architecture 'arm64' of the specified instance type does not match")
            && text.contains("`instance_type`"),
        "AWS's message and the attribute to change: {out}"
    );
    // Ended by the first Failed activity, not by the create timeout: the whole apply,
    // provider start and every create step included, stays within the bound.
    let bound = PERMANENT_FAILURE_BOUND_AWS_S * CLOCK_SCALE;
    let failures = world.block(async {
        world
            .clients
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(format!("{name}-asg"))
            .send()
            .await
            .unwrap()
            .activities()
            .iter()
            .filter(|a| a.status_code().map(|c| c.as_str()) == Some("Failed"))
            .count()
    });
    assert!(failures >= 1, "a Failed activity was recorded");
    // The back-off doubles from 10 s: a minute of AWS time holds at most 3 attempts
    // (0, 10, 30 s); more means the apply waited on retries that could not succeed.
    assert!(
        failures <= 3,
        "{failures} failed launches before the apply ended (bound {bound:.1} s of AWS time \
         {PERMANENT_FAILURE_BOUND_AWS_S} s); the apply took {took:?}"
    );

    // Everything made is in the state: fixing the attribute converges, destroy leaves
    // nothing but the final snapshot.
    t.set_var("instance_type", "t3.micro");
    let fixed = t.apply_output().expect("terraform apply ran");
    assert_eq!(fixed.exit_code, 0, "after the fix: {fixed}");
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 0, "empty plan after the fix: {plan}");
    let out = t.destroy().expect("terraform destroy ran");
    assert_eq!(out.exit_code, 0, "destroy: {out}");
    // Left: final snapshots only, two of them. The failed create's stack was replaced (a
    // failed create is tainted); its volume had lost its `autoheal:unused` marker at the
    // scale-up, and a launch that failed proves nothing durable about the volume, so its
    // destroy kept a final snapshot (fail safe), which the new volume continued from.
    let left = world.block(Sweeper::for_stack(&world.clients, name).leftovers());
    let left = left.expect("listing what is left");
    assert!(
        left.len() == 2 && left.iter().all(|l| l.final_snapshot),
        "only the two final snapshots are left: {left:?}"
    );
}

#[test]
fn a_capacity_shortage_warns_and_the_apply_waits_for_the_groups_retry() {
    let tf = newest();
    let world = World::start(CLOCK_SCALE);
    let name = "capacity";
    world
        .block(world.aws.control().add_launch_failure(&json!({
            "group": format!("{name}-asg"),
            "error": "InsufficientInstanceCapacity",
            "count": 2,
        })))
        .unwrap();
    let t = world.terraform(&tf, &[name]);
    let out = t.apply_output().expect("terraform apply ran");
    assert_eq!(out.exit_code, 0, "the apply waits out the shortage: {out}");
    let text = out.words();
    assert!(
        text.contains("could not launch its instance yet")
            && text.contains("We currently do not have sufficient t3.micro capacity"),
        "a warning with AWS's message: {out}"
    );
    destroy_and_sweep(&world, &t, name);
}
