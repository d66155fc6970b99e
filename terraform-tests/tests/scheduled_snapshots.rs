//! Acceptance tests of `snapshot_interval` and `snapshot_retention` (docs/zone-failover.md,
//! section 1): the real Terraform CLI, the real provider and the real attachment Lambda
//! against the local AWS on its realistic profile, where EventBridge fires schedule rules on
//! the scaled clock, snapshots stay `pending` for a virtual minute before they complete, and
//! every call the function makes is evaluated against its role as IAM would (so the function
//! can only do what the provider's inline policy allows: CreateSnapshot of its own volume
//! with the scheduled tag, DeleteSnapshot of scheduled snapshots EBS records as taken of
//! that volume).
//!
//! What is checked is what an operator sees: the rule and its rate (EventBridge), the
//! snapshots and their tags (EC2), the retention applied to completed snapshots only, the
//! function's metric lines, the state's `last_snapshot_id` / `last_snapshot_time` after a
//! refresh, in-place updates, repair of a deleted rule, import, turning the schedule off
//! (the rule and the permission go, the snapshots stay) and destroy (the snapshots stay).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};
use terraform_tests::local_aws::control::Fault;
use terraform_tests::local_aws::helpers::{self, emf_records, function_logs, wait_until, Check};
use terraform_tests::local_aws::Clients;
use terraform_tests::saved_plan::plan_saved;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import, refresh, resource_values, World,
};
use terraform_tests::sweeper::{Kind, Sweeper};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

/// A virtual 15 minutes (the shortest interval) pass in 9 s; a snapshot completes in 0.6 s.
const CLOCK_SCALE: f64 = 0.01;
/// Long enough for several scheduled runs.
const RUNS_WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// A scheduled snapshot as EC2 shows it.
#[derive(Clone, Debug)]
struct Snap {
    id: String,
    volume_id: String,
    state: String,
    encrypted: bool,
    tags: BTreeMap<String, String>,
}

/// The stack's scheduled snapshots, as [`Snap`]s.
async fn scheduled_snapshots(c: &Clients, name: &str) -> anyhow::Result<Vec<Snap>> {
    Ok(helpers::scheduled_snapshots(&c.ec2, name)
        .await?
        .iter()
        .map(|s| Snap {
            id: s.snapshot_id().unwrap_or_default().to_string(),
            volume_id: s.volume_id().unwrap_or_default().to_string(),
            state: s
                .state()
                .map(|x| x.as_str().to_string())
                .unwrap_or_default(),
            encrypted: s.encrypted().unwrap_or(false),
            tags: s
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        })
        .collect())
}

/// The EMF lines of the function's scheduled runs (`outcome` `snapshot_*`).
async fn snapshot_runs(c: &Clients, name: &str) -> anyhow::Result<Vec<Json>> {
    let lines = function_logs(&c.logs, &format!("{name}-attach")).await?;
    Ok(emf_records(&lines)
        .into_iter()
        .filter(|r| {
            r["outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with("snapshot_"))
        })
        .collect())
}

/// Waits until the function has made `runs` scheduled runs that took a snapshot.
fn wait_for_runs(world: &World, name: &str, runs: usize) -> Vec<Json> {
    world.block(async {
        wait_until(
            &format!("{runs} scheduled snapshot runs of {name}"),
            RUNS_WAIT,
            POLL,
            || async {
                let found = snapshot_runs(&world.clients, name).await?;
                let taken = found
                    .iter()
                    .filter(|r| r["outcome"] == "snapshot_taken")
                    .count();
                Ok(if taken >= runs {
                    Check::Done(found)
                } else {
                    Check::NotYet(format!("{taken} taken: {found:?}"))
                })
            },
        )
        .await
        .unwrap()
    })
}

/// The schedule rule's expression and its targets (`None`: no rule).
async fn schedule_rule(c: &Clients, name: &str) -> Option<(String, Vec<String>)> {
    let rule = format!("{name}-snapshot");
    let found = c
        .eventbridge
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .ok()?;
    let targets = c
        .eventbridge
        .list_targets_by_rule()
        .rule(&rule)
        .send()
        .await
        .unwrap();
    Some((
        found.schedule_expression().unwrap_or_default().to_string(),
        targets
            .targets()
            .iter()
            .map(|t| t.arn().to_string())
            .collect(),
    ))
}

/// The statement ids of the function's resource policy.
async fn permission_sids(c: &Clients, name: &str) -> Vec<String> {
    let Ok(out) = c
        .lambda
        .get_policy()
        .function_name(format!("{name}-attach"))
        .send()
        .await
    else {
        return Vec::new();
    };
    let doc: Json = serde_json::from_str(out.policy().unwrap_or("{}")).unwrap();
    doc["Statement"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["Sid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn state_values(t: &Terraform) -> serde_json::Map<String, Json> {
    let show = t.run(&["show", "-json"], false).unwrap();
    assert_eq!(show.exit_code, 0, "{show}");
    resource_values(&show)
}

/// The plan changes nothing of the stack. Not "the plan is empty": the schedule keeps
/// taking snapshots (one every 9 s here), so the refresh a plan makes can find a newer one
/// than the state holds, and the fixture's output, which shows `last_snapshot_id` and
/// `last_snapshot_time`, then changes; that is the attribute doing its job, not a diff.
fn assert_no_stack_change(t: &Terraform, what: &str) {
    let plan = plan_saved(t).unwrap();
    let actions = plan
        .change(r#"autoheal_instance.this["snaps"]"#)
        .map(|c| c["actions"].clone())
        .unwrap_or_else(|| panic!("{what}: the stack is not in the plan"));
    assert_eq!(
        actions,
        serde_json::json!(["no-op"]),
        "{what}: the plan changes the stack"
    );
}

/// A plan that updates the stack in place (exit code 2, no replacement).
fn assert_in_place_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 2, "{what}: a change is expected:\n{plan}");
    assert!(
        plan.stdout.contains("update in-place") && !plan.stdout.contains("must be replaced"),
        "{what}: an in-place update is expected:\n{plan}"
    );
}

fn lifecycle(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "snaps";
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("snapshot_interval", "15m");
    t.set_var("snapshot_retention", "2");
    t.apply().unwrap();
    let stacks = t.output("stacks").unwrap();
    let stack = &stacks[name];
    let volume = stack["volume_id"].as_str().unwrap().to_string();
    let function_arn = stack["function_arn"].as_str().unwrap().to_string();
    let rule_arn = stack["snapshot_rule_arn"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot_rule_arn: {stack}"))
        .to_string();
    assert!(
        rule_arn.ends_with(&format!(":rule/{name}-snapshot")),
        "{rule_arn}"
    );
    assert_eq!(
        world.block(schedule_rule(c, name)),
        Some(("rate(13 minutes)".to_string(), vec![function_arn.clone()]))
    );
    assert!(
        world
            .block(permission_sids(c, name))
            .contains(&format!("{name}-snapshot-events")),
        "the function lets the schedule invoke it"
    );

    // (1) Runs: each takes a snapshot; with retention 2 the oldest completed ones go.
    let runs = wait_for_runs(&world, name, 4);
    let snaps = world.block(scheduled_snapshots(c, name)).unwrap();
    let completed: Vec<&Snap> = snaps.iter().filter(|s| s.state == "completed").collect();
    assert!(
        !completed.is_empty() && completed.len() <= 2,
        "retention 2 keeps at most two completed snapshots: {snaps:#?}"
    );
    assert!(
        runs.iter().any(|r| r["deletedSnapshots"]
            .as_array()
            .is_some_and(|d| !d.is_empty())),
        "a run deleted an old snapshot: {runs:#?}"
    );
    for s in &snaps {
        assert_eq!(s.volume_id, volume, "{s:?}");
        assert!(s.encrypted, "{s:?}");
        assert_eq!(s.tags.get("autoheal:stack").map(String::as_str), Some(name));
        assert_eq!(s.tags.get("autoheal:volume-id"), Some(&volume), "{s:?}");
        assert!(s.tags.contains_key("autoheal:event-id"), "{s:?}");
        assert!(!s.tags.contains_key("autoheal:final-snapshot"), "{s:?}");
    }
    // Every run was allowed (the realistic profile evaluates the role): none failed, and
    // after the first completed snapshot the runs report its age.
    assert!(
        runs.iter().all(|r| r["SnapshotFailed"] == 0),
        "a run failed: {runs:#?}"
    );
    assert!(
        runs.iter().any(|r| r["SnapshotAgeSeconds"].is_u64()),
        "no run reported SnapshotAgeSeconds: {runs:#?}"
    );

    // (2) A refresh reports the newest completed snapshot; the plan stays empty.
    refresh(&t);
    let state = state_values(&t);
    let last = state["last_snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no last_snapshot_id after refresh: {state:?}"));
    let now = world.block(scheduled_snapshots(c, name)).unwrap();
    assert!(
        now.iter().any(|s| s.id == last && s.state == "completed")
            || !now.iter().any(|s| s.id == last),
        "last_snapshot_id {last} is a completed scheduled snapshot (or one pruned since): {now:#?}"
    );
    let time = state["last_snapshot_time"].as_str().unwrap_or_default();
    assert!(
        time.len() >= 20 && time.contains('T') && time.ends_with('Z'),
        "last_snapshot_time {time:?}"
    );
    assert_no_stack_change(&t, "after a refresh");

    // (3) In place: another rate and retention.
    t.set_var("snapshot_interval", "30m");
    t.set_var("snapshot_retention", "1");
    assert_in_place_plan(&t, "a new rate and retention");
    t.apply().unwrap();
    assert_eq!(
        world.block(schedule_rule(c, name)).map(|(e, _)| e),
        Some("rate(28 minutes)".to_string())
    );
    let env = world.block(async {
        c.lambda
            .get_function_configuration()
            .function_name(format!("{name}-attach"))
            .send()
            .await
            .unwrap()
    });
    let vars = env
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        vars.get("AUTOHEAL_SNAPSHOT_RETENTION").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        vars.get("AUTOHEAL_SNAPSHOT_RULE"),
        Some(&format!("{name}-snapshot"))
    );
    assert_no_stack_change(&t, "after the in-place update");

    // (4) The rule deleted out of band: a refresh notices, the next apply makes it again.
    world.block(async {
        let rule = format!("{name}-snapshot");
        let ids: Vec<String> = c
            .eventbridge
            .list_targets_by_rule()
            .rule(&rule)
            .send()
            .await
            .unwrap()
            .targets()
            .iter()
            .map(|t| t.id().to_string())
            .collect();
        c.eventbridge
            .remove_targets()
            .rule(&rule)
            .set_ids(Some(ids))
            .send()
            .await
            .unwrap();
        c.eventbridge
            .delete_rule()
            .name(&rule)
            .send()
            .await
            .unwrap();
    });
    assert_in_place_plan(&t, "the schedule rule deleted by hand");
    t.apply().unwrap();
    assert_eq!(
        world.block(schedule_rule(c, name)),
        Some(("rate(28 minutes)".to_string(), vec![function_arn.clone()]))
    );
    assert_no_stack_change(&t, "after the repair");

    // (5) Import reads back the rate and the retention.
    let imp = world.terraform(tf, &[name]);
    imp.set_var("snapshot_interval", "30m");
    imp.set_var("snapshot_retention", "1");
    import(&imp, name);
    let imported = state_values(&imp);
    assert_eq!(imported["snapshot_interval"], "30m", "{imported:?}");
    assert_eq!(imported["snapshot_retention"], 1, "{imported:?}");
    assert_eq!(
        imported["snapshot_rule_arn"].as_str(),
        Some(rule_arn.as_str())
    );
    assert_import_plans_no_change(&imp);
    drop(imp);

    // (6) Off: the rule and the permission go, the snapshots stay.
    let before_off: Vec<String> = world
        .block(scheduled_snapshots(c, name))
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!before_off.is_empty());
    t.unset_var("snapshot_interval");
    t.unset_var("snapshot_retention");
    assert_in_place_plan(&t, "the schedule turned off");
    t.apply().unwrap();
    assert_eq!(world.block(schedule_rule(c, name)), None);
    assert!(
        !world
            .block(permission_sids(c, name))
            .contains(&format!("{name}-snapshot-events")),
        "the schedule's permission is gone"
    );
    let after_off = world.block(scheduled_snapshots(c, name)).unwrap();
    for id in &before_off {
        assert!(
            after_off.iter().any(|s| s.id == *id),
            "snapshot {id} was deleted when the schedule was turned off"
        );
    }
    let state = state_values(&t);
    assert!(state["snapshot_rule_arn"].is_null(), "{state:?}");
    assert_no_stack_change(&t, "after turning the schedule off");

    // (7) Destroy: the final snapshot and the scheduled ones are all that is left.
    t.destroy().unwrap();
    drop(guard);
    let kept: Vec<String> = world
        .block(scheduled_snapshots(c, name))
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        !kept.is_empty(),
        "the scheduled snapshots survive a destroy"
    );
    let left = world
        .block(Sweeper::for_stack(c, name).leftovers())
        .unwrap();
    let finals = left
        .iter()
        .filter(|l| l.kind == Kind::Snapshot && l.final_snapshot)
        .count();
    assert_eq!(finals, 1, "one final snapshot: {left:?}");
    let others: Vec<_> = left
        .iter()
        .filter(|l| !(l.kind == Kind::Snapshot && (l.final_snapshot || kept.contains(&l.id))))
        .collect();
    assert!(
        others.is_empty(),
        "only snapshots survive a destroy: {others:?}"
    );
}

/// Waits until `check` holds of the stack's scheduled snapshots; returns them.
fn wait_for_snapshots(
    world: &World,
    name: &str,
    what: &str,
    check: impl Fn(&[Snap]) -> bool,
) -> Vec<Snap> {
    world.block(async {
        wait_until(what, RUNS_WAIT, POLL, || async {
            let snaps = scheduled_snapshots(&world.clients, name).await?;
            Ok(if check(&snaps) {
                Check::Done(snaps)
            } else {
                Check::NotYet(format!("{snaps:#?}"))
            })
        })
        .await
        .unwrap()
    })
}

fn in_state<'a>(snaps: &'a [Snap], state: &str) -> Vec<&'a Snap> {
    snaps.iter().filter(|s| s.state == state).collect()
}

/// Snapshots that EBS fails (state `error`, the local AWS's snapshot-failure fault) never
/// push out a completed one: with retention 1, the one good snapshot survives three failed
/// runs, refresh keeps reporting it, and only the next completed snapshot replaces it; the
/// failed ones are left (never deleted by the count). Then a destroy whose final snapshot
/// EC2 refuses twice with `SnapshotCreationPerVolumeRateExceeded` (a scheduled snapshot of the
/// same volume in the last 15 seconds) waits and takes it.
fn failures(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "snapfail";
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("snapshot_interval", "15m");
    t.set_var("snapshot_retention", "1");
    t.apply().unwrap();
    let volume = t.output("stacks").unwrap()[name]["volume_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = wait_for_snapshots(&world, name, "one completed snapshot", |s| {
        !in_state(s, "completed").is_empty()
    });
    let good = in_state(&first, "completed")[0].id.clone();
    world
        .block(
            world
                .aws
                .control()
                .add_snapshot_failure(&json!({"volume": volume, "count": 3})),
        )
        .unwrap();
    let failed = wait_for_snapshots(&world, name, "three failed snapshots", |s| {
        in_state(s, "error").len() >= 3
    });
    assert!(
        in_state(&failed, "completed").iter().any(|s| s.id == good),
        "failed snapshots pushed out the completed one {good}: {failed:#?}"
    );
    refresh(&t);
    assert_eq!(
        state_values(&t)["last_snapshot_id"].as_str(),
        Some(good.as_str()),
        "refresh reports the newest completed snapshot, not a failed one"
    );
    let after = wait_for_snapshots(&world, name, "a new completed snapshot", |s| {
        in_state(s, "completed").iter().any(|x| x.id != good)
    });
    let failed_ids: Vec<&str> = in_state(&failed, "error")
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    for id in &failed_ids {
        assert!(
            after.iter().any(|s| s.id == *id && s.state == "error"),
            "failed snapshot {id} is left for the operator: {after:#?}"
        );
    }
    let runs = world.block(snapshot_runs(c, name)).unwrap();
    assert!(
        runs.iter().all(|r| r["SnapshotFailed"] == 0),
        "CreateSnapshot itself never failed (EBS failed the snapshots later): {runs:#?}"
    );

    // The destroy's final snapshot: refused twice as too soon after another, then taken.
    world
        .block(
            world.aws.control().add_fault(
                &Fault::error("CreateSnapshot", "SnapshotCreationPerVolumeRateExceeded")
                    .count(2)
                    .matching("VolumeId", volume.clone())
                    .matching(
                        "Description",
                        format!("autoheal final snapshot of stack {name} (volume {volume})"),
                    ),
            ),
        )
        .unwrap();
    t.destroy().unwrap();
    drop(guard);
    let fired = world.block(world.aws.control().faults()).unwrap();
    assert_eq!(
        fired.iter().map(|f| f.fired).sum::<u64>(),
        2,
        "the final snapshot was refused twice: {fired:?}"
    );
    let left = world
        .block(Sweeper::for_stack(c, name).leftovers())
        .unwrap();
    assert_eq!(
        left.iter()
            .filter(|l| l.kind == Kind::Snapshot && l.final_snapshot)
            .count(),
        1,
        "one final snapshot: {left:?}"
    );
}

#[test]
fn failed_snapshots_never_push_out_a_completed_one_and_destroy_waits_out_the_rate_limit() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        failures(&tf);
    }
}

#[test]
fn scheduled_snapshots_are_taken_pruned_read_updated_repaired_imported_and_kept() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        lifecycle(&tf);
    }
}
