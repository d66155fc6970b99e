//! Acceptance test of the zone failover (issue 19, points 3, 4 and the computed half of 5;
//! docs/zone-failover.md, section 3): the real Terraform CLI, the real provider and the real
//! functions (attachment and failover, the same zip) against the local AWS on its realistic
//! profile, where every call the functions make is evaluated against their roles as IAM
//! would, schedule rules fire on the scaled clock, snapshots and restored volumes take time,
//! and a zone outage makes launches there fail with EC2's zone-level capacity error, its
//! instances impaired then terminated, its volumes `impaired`.
//!
//! What is checked is what an operator sees:
//! - an instance killed in the home zone heals in the home zone, and the failover function,
//!   which looks every minute, starts no failover (its three signals never all hold);
//! - the home zone lost: after the detection window the stack serves again from the failover
//!   zone, with its Elastic IP and a volume restored (encrypted, with the home volume's key)
//!   from the newest scheduled snapshot that had completed, exactly one failover, its
//!   duration reported once in the failover function's metric line;
//! - the home volume is kept, tagged as superseded (it may hold writes made after the
//!   snapshot); the scheduled snapshots go on, of the restored volume;
//! - refresh reports `active_availability_zone` and `active_volume_id`, and the plan is empty
//!   (nothing proposes to replace the stack because its home zone differs);
//! - failing back once the zone returns (`active_availability_zone` = the home zone, the
//!   operator's explicit act): the group drains, the restored volume is snapshotted only
//!   after its last instance left it (the local AWS's own log orders the two), the snapshot
//!   comes home as the new data volume, a new instance serves it in the home zone with the
//!   same address, the volumes left behind are kept and named, and the plan is empty again;
//! - destroy takes the final snapshot of that data volume; or, in a run that does not fail
//!   back (where the failing-over run's ResumeProcesses is refused once, and the next run
//!   resumes the group's Launch), import while failed over plans no change (home is not the
//!   group's moved subnet),
//!   and destroy while the stack serves from the failover zone takes the final snapshot of
//!   the restored volume and keeps the home volume;
//! - with the user's own volume (`existing_volume_id`), the same failover and failback, and
//!   destroy keeps every volume (the user's, the restored one, the failback's) unsnapshotted.

use std::time::Duration;

use serde_json::Value as Json;
use terraform_tests::local_aws::control::Fault;
use terraform_tests::local_aws::helpers::{self, emf_records, function_logs, wait_until, Check};
use terraform_tests::local_aws::Clients;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import, refresh, served_instance, World,
};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

/// A virtual minute (one failover check) passes in 0.6 s, the 5-minute window in 3 s.
const CLOCK_SCALE: f64 = 0.01;
const HOME: &str = "ap-southeast-2a";
const ZONE_B: &str = "ap-southeast-2b";
const POLL: Duration = Duration::from_millis(250);
/// Outage start to service in zone B: the outage's terminations (3 s), the window (3 s), the
/// next check, the restore, a boot and a heal, with room for a loaded machine.
const FAILOVER_WAIT: Duration = Duration::from_secs(240);

fn stack(t: &Terraform, name: &str) -> Json {
    t.output("stacks").unwrap()[name].clone()
}

fn assert_empty_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 0, "{what}: the plan must be empty:\n{plan}");
}

/// Waits until stack `name` (as output `s` describes it) is served, by an instance other
/// than `not` when given; returns that instance.
fn wait_served(world: &World, name: &str, s: &Json, not: Option<&str>, what: &str) -> String {
    world
        .block(wait_until(what, FAILOVER_WAIT, POLL, || async {
            Ok(match served_instance(&world.clients, name, s).await {
                Some(i) if Some(i.as_str()) != not => Check::Done(i),
                other => Check::NotYet(format!("served by {other:?}")),
            })
        }))
        .unwrap()
}

/// The user data (the boot script) of the launch template version the group launches.
async fn group_boot_script(c: &Clients, name: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let out = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{name}-asg"))
        .send()
        .await?;
    let spec = out
        .auto_scaling_groups()
        .first()
        .and_then(|g| g.launch_template())
        .ok_or_else(|| anyhow::anyhow!("the group has no launch template"))?;
    let versions = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(spec.launch_template_id().unwrap_or_default())
        .versions(spec.version().unwrap_or("$Latest"))
        .send()
        .await?;
    let data = versions
        .launch_template_versions()
        .first()
        .and_then(|v| v.launch_template_data())
        .and_then(|d| d.user_data())
        .unwrap_or_default();
    Ok(
        String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(data)?)
            .into_owned(),
    )
}

/// The zone of instance `id`.
async fn instance_zone(c: &Clients, id: &str) -> anyhow::Result<String> {
    let out = c.ec2.describe_instances().instance_ids(id).send().await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find_map(|i| i.placement().and_then(|p| p.availability_zone()))
        .unwrap_or_default()
        .to_string())
}

/// A volume as EBS shows it: (zone, encrypted, KMS key, source snapshot, tags).
async fn volume(
    c: &Clients,
    id: &str,
) -> anyhow::Result<(
    String,
    bool,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
)> {
    let out = c.ec2.describe_volumes().volume_ids(id).send().await?;
    let v = out
        .volumes()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no volume {id}"))?;
    Ok((
        v.availability_zone().unwrap_or_default().to_string(),
        v.encrypted().unwrap_or(false),
        v.kms_key_id().map(str::to_string),
        v.snapshot_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        v.tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    ))
}

fn tag<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The failover function's metric lines (one per check).
async fn failover_runs(c: &Clients, name: &str) -> anyhow::Result<Vec<Json>> {
    let lines = function_logs(&c.logs, &format!("{name}-failover")).await?;
    Ok(emf_records(&lines)
        .into_iter()
        .filter(|r| r.get("FailoverStarted").is_some())
        .collect())
}

/// The completed scheduled snapshots of the stack: (id, start time in ms), newest first.
async fn completed_snapshots(c: &Clients, name: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let mut found: Vec<(String, i64)> = helpers::scheduled_snapshots(&c.ec2, name)
        .await?
        .iter()
        .filter(|s| s.state().map(|x| x.as_str()) == Some("completed"))
        .map(|s| {
            (
                s.snapshot_id().unwrap_or_default().to_string(),
                s.start_time().and_then(|t| t.to_millis().ok()).unwrap_or(0),
            )
        })
        .collect();
    found.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    Ok(found)
}

/// The local AWS refuses the next call of `operation` (from any caller) with `code`, as IAM
/// or EC2 refuse a call: HTTP 403, not retried by the SDKs.
fn refuse_once(world: &World, operation: &str, code: &str) {
    world
        .block(
            world
                .aws
                .control()
                .add_fault(&Fault::error(operation, code).status(403).count(1)),
        )
        .unwrap();
}

/// Waits until stack `name` (output `s`) serves from the volume the group's
/// `autoheal:active-volume` names (a failover's): (instance, that volume).
fn wait_failed_over(world: &World, name: &str, s: &Json) -> (String, String) {
    let c = &world.clients;
    world
        .block(wait_until(
            "service from the failover zone",
            FAILOVER_WAIT,
            POLL,
            || async {
                let tags = helpers::group_tags(&c.autoscaling, &format!("{name}-asg")).await?;
                let Some(active) = tags.get("autoheal:active-volume").cloned() else {
                    return Ok(Check::NotYet("no failover yet".into()));
                };
                let mut restored_stack = s.clone();
                restored_stack["volume_id"] = Json::from(active.clone());
                Ok(match served_instance(c, name, &restored_stack).await {
                    Some(i) => Check::Done((i, active)),
                    None => Check::NotYet(format!("failing over to {active}")),
                })
            },
        ))
        .unwrap()
}

/// Waits for a completed scheduled snapshot of stack `name`.
fn wait_completed_snapshot(world: &World, name: &str) {
    let c = &world.clients;
    world
        .block(wait_until(
            "a completed scheduled snapshot",
            FAILOVER_WAIT,
            POLL,
            || async {
                let found = completed_snapshots(c, name).await?;
                Ok(if found.is_empty() {
                    Check::NotYet("none completed".into())
                } else {
                    Check::Done(())
                })
            },
        ))
        .unwrap();
}

/// `fail_back`: after the failover, fail back then destroy; otherwise destroy while the
/// stack serves from the failover zone.
fn failover(tf: &TerraformBinary, fail_back: bool) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let control = world.aws.control();
    let name = "zonefo";
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("snapshot_interval", "15m");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.set_var("failover_detection_window", "5m");
    t.apply().unwrap();
    let s = stack(&t, name);
    let home_volume = s["volume_id"].as_str().unwrap().to_string();
    let allocation = s["allocation_id"].as_str().unwrap().to_string();
    assert!(s["failover_function_arn"].is_string(), "{s}");
    assert!(s["failover_rule_arn"].is_string(), "{s}");
    assert_eq!(s["active_zone"].as_str(), Some(HOME), "{s}");
    assert_eq!(s["active_volume_id"].as_str(), Some(home_volume.as_str()));
    assert_empty_plan(&t, "after the create");

    // An instance killed in the home zone: a heal in the home zone, no failover.
    let first = wait_served(&world, name, &s, None, "the stack to serve");
    world.block(async {
        c.ec2
            .terminate_instances()
            .instance_ids(&first)
            .send()
            .await
            .unwrap()
    });
    let healed = wait_served(&world, name, &s, Some(&first), "the heal in the home zone");
    assert_eq!(world.block(instance_zone(c, &healed)).unwrap(), HOME);

    // A completed scheduled snapshot to restore (13 virtual minutes: 8 s).
    wait_completed_snapshot(&world, name);
    let runs = world.block(failover_runs(c, name)).unwrap();
    assert!(
        runs.len() >= 5,
        "the failover check runs every minute: {} runs",
        runs.len()
    );
    assert!(
        runs.iter().all(|r| r["FailoverStarted"] == 0),
        "no failover for a killed instance: {runs:#?}"
    );

    // In the run that does not fail back, the failing-over run's ResumeProcesses is refused
    // once (as if the run died between suspending the group's Launch and resuming it): the
    // next run must resume it, or the group never launches in zone B.
    if !fail_back {
        refuse_once(&world, "ResumeProcesses", "AccessDenied");
    }

    // The home zone goes out.
    let outage = world.block(control.start_zone_outage(HOME)).unwrap();
    let outage_ms = outage["since_ms"].as_i64().unwrap();
    let (mut instance, restored_volume) = wait_failed_over(&world, name, &s);
    if !fail_back {
        let lines = world
            .block(function_logs(&c.logs, &format!("{name}-failover")))
            .unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("left the group's Launch process suspended")),
            "the run after the refused resume resumed Launch: {lines:#?}"
        );
    }
    assert_eq!(world.block(instance_zone(c, &instance)).unwrap(), ZONE_B);
    assert_ne!(restored_volume, home_volume);

    // The restored volume: in zone B, encrypted with the home volume's key, from the newest
    // scheduled snapshot that had completed when the stack failed over, restored for this
    // group. The home volume: kept, marked superseded.
    let (zone, encrypted, key, source, tags) = world.block(volume(c, &restored_volume)).unwrap();
    let (_, _, home_key, _, home_tags) = world.block(volume(c, &home_volume)).unwrap();
    assert_eq!(zone, ZONE_B);
    assert!(encrypted);
    assert_eq!(key, home_key, "the same KMS key");
    assert_eq!(
        tag(&tags, "autoheal:restored-for"),
        Some(format!("{name}-asg").as_str())
    );
    assert_eq!(
        tag(&tags, "autoheal:stack"),
        Some(name),
        "the lineage is carried"
    );
    let snapshots = world.block(completed_snapshots(c, name)).unwrap();
    let source = source.expect("restored from a snapshot");
    let (_, source_start) = snapshots
        .iter()
        .find(|(id, _)| *id == source)
        .unwrap_or_else(|| panic!("{source} is not a completed scheduled snapshot: {snapshots:?}"));
    assert!(
        snapshots
            .iter()
            .all(|(_, start)| start <= source_start || *start > outage_ms),
        "the newest snapshot completed before the outage is the one restored: {source} of {snapshots:?}"
    );
    assert_eq!(
        tag(&home_tags, "autoheal:superseded-by"),
        Some(restored_volume.as_str())
    );
    let address = world
        .block(helpers::address_status(&c.ec2, &allocation))
        .unwrap();
    assert_eq!(address.instance_id.as_deref(), Some(instance.as_str()));
    eprintln!(
        "recovery point: {} AWS s before the outage",
        (outage_ms - source_start) / 1000
    );

    // Exactly one failover, its duration reported once.
    let runs = world
        .block(wait_until(
            "the failover's duration",
            FAILOVER_WAIT,
            POLL,
            || async {
                let runs = failover_runs(c, name).await?;
                Ok(
                    if runs
                        .iter()
                        .any(|r| r.get("FailoverDurationSeconds").is_some())
                    {
                        Check::Done(runs)
                    } else {
                        Check::NotYet(format!("{} runs", runs.len()))
                    },
                )
            },
        ))
        .unwrap();
    let started: Vec<&Json> = runs.iter().filter(|r| r["FailoverStarted"] == 1).collect();
    assert_eq!(started.len(), 1, "one failover: {started:#?}");
    assert_eq!(started[0]["targetZone"], ZONE_B);
    assert_eq!(started[0]["snapshotId"].as_str(), Some(source.as_str()));
    let durations: Vec<&Json> = runs
        .iter()
        .filter_map(|r| r.get("FailoverDurationSeconds"))
        .collect();
    assert_eq!(durations.len(), 1, "{durations:?}");
    eprintln!("failover duration: {} AWS s", durations[0]);

    // The scheduled snapshots now protect the restored volume (EBS's VolumeId).
    world
        .block(wait_until(
            "a scheduled snapshot of the restored volume",
            FAILOVER_WAIT,
            POLL,
            || async {
                let found = helpers::scheduled_snapshots(&c.ec2, name).await?;
                Ok(
                    if found
                        .iter()
                        .any(|s| s.volume_id() == Some(restored_volume.as_str()))
                    {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("{} scheduled snapshots, none of it", found.len()))
                    },
                )
            },
        ))
        .unwrap();

    // Terraform stays calm: refresh reports where the stack serves, the plan is empty.
    refresh(&t);
    let s = stack(&t, name);
    assert_eq!(s["active_zone"].as_str(), Some(ZONE_B), "{s}");
    assert_eq!(
        s["active_volume_id"].as_str(),
        Some(restored_volume.as_str())
    );
    assert_eq!(s["volume_id"].as_str(), Some(home_volume.as_str()));
    assert_empty_plan(&t, "after the failover");

    if !fail_back {
        // Import while failed over: the home zone and subnet come from the home volume and
        // the failover function's record, not from the group's moved subnet, so nothing is
        // replaced.
        let imp = world.terraform(tf, &[name]);
        imp.set_var("snapshot_interval", "15m");
        imp.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
        imp.set_var("failover_detection_window", "5m");
        import(&imp, name);
        assert_import_plans_no_change(&imp);
        drop(imp);
        // The zone returns; destroy: the final snapshot of the restored volume, the home volume
        // kept (it may hold the writes after the snapshot).
        world.block(control.end_zone_outage(HOME)).unwrap();
        let out = t.destroy().unwrap();
        let text = out.to_string().replace('\n', " ");
        assert!(
            text.contains(&format!("Superseded data volume {home_volume} kept")),
            "{out}"
        );
        drop(guard);
        world.block(async {
            let of = helpers::final_snapshot_volumes(&c.ec2).await.unwrap();
            assert_eq!(
                of,
                [restored_volume.as_str()],
                "the final snapshot is of the restored volume"
            );
            // What the test itself removes: the kept home volume and the scheduled snapshots
            // (data, kept by design); then nothing else may be left.
            c.ec2
                .delete_volume()
                .volume_id(&home_volume)
                .send()
                .await
                .unwrap();
            helpers::delete_scheduled_snapshots(&c.ec2, name)
                .await
                .unwrap();
        });
        world.sweep(name, true);
        return;
    }

    // The zone returns and the operator fails back (`active_availability_zone` = home): the
    // restored volume's data comes home as a new data volume, snapshotted only after its
    // last writer left, and a new instance serves it there with the same address.
    world.block(control.end_zone_outage(HOME)).unwrap();
    t.set_var("active_availability_zone", HOME);
    let apply = |what: &str| {
        let mut args = vec!["apply", "-no-color", "-input=false", "-auto-approve"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(t.var_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = t.run(&args, false).unwrap();
        eprintln!("{what}: exit {}", out.exit_code);
        out
    };
    let restored_stack = {
        let mut r = s.clone();
        r["volume_id"] = Json::from(restored_volume.clone());
        r
    };

    // First a failback whose restore is refused (before its commit): it backs out, and the
    // stack serves from zone B again, from the same restored volume.
    refuse_once(&world, "CreateVolume", "UnauthorizedOperation");
    let out = apply("failback, CreateVolume refused");
    assert_ne!(
        out.exit_code, 0,
        "the refused restore fails the apply: {out}"
    );
    instance = wait_served(
        &world,
        name,
        &restored_stack,
        None,
        "service back in zone B",
    );
    assert_eq!(world.block(instance_zone(c, &instance)).unwrap(), ZONE_B);
    assert_eq!(
        world
            .block(helpers::group_tags(&c.autoscaling, &format!("{name}-asg")))
            .unwrap()
            .get("autoheal:active-volume"),
        Some(&restored_volume),
        "the group still points at the restored volume"
    );

    // Then one that fails after its commit (the launch template version refused): the next
    // apply finishes it, with a template whose boot script names the new volume.
    refuse_once(
        &world,
        "CreateLaunchTemplateVersion",
        "UnauthorizedOperation",
    );
    let out = apply("failback, CreateLaunchTemplateVersion refused");
    assert_ne!(
        out.exit_code, 0,
        "the refused version fails the apply: {out}"
    );
    let text = out.to_string().replace('\n', " ");
    assert!(
        text.contains(&format!(
            "Failed back: volumes {home_volume} and {restored_volume} kept"
        )),
        "the failback names the volumes it keeps: {out}"
    );
    let out = apply("the apply after");
    assert_eq!(out.exit_code, 0, "{out}");
    let s = stack(&t, name);
    let script = world.block(group_boot_script(c, name)).unwrap();
    assert!(
        script.contains(&format!(
            "VOLUME_ID='{}'",
            s["volume_id"].as_str().unwrap_or_default()
        )),
        "the group's template version waits for the new volume: {s}\n{script}"
    );
    let new_volume = s["volume_id"].as_str().unwrap().to_string();
    assert!(
        new_volume != home_volume && new_volume != restored_volume,
        "a new data volume: {s}"
    );
    assert_eq!(s["active_zone"].as_str(), Some(HOME), "{s}");
    assert_eq!(s["active_volume_id"].as_str(), Some(new_volume.as_str()));
    let back = wait_served(&world, name, &s, None, "service at home after the failback");
    assert_eq!(world.block(instance_zone(c, &back)).unwrap(), HOME);
    let address = world
        .block(helpers::address_status(&c.ec2, &allocation))
        .unwrap();
    assert_eq!(address.instance_id.as_deref(), Some(back.as_str()));
    let (zone, encrypted, key, source, _) = world.block(volume(c, &new_volume)).unwrap();
    assert_eq!(zone, HOME);
    assert!(encrypted);
    assert_eq!(key, home_key, "the same KMS key");
    let failback_snapshot = source.expect("restored from a snapshot");
    let failback_snapshots = world
        .block(helpers::snapshots_of_kind(&c.ec2, name, "failback"))
        .unwrap();
    assert!(
        failback_snapshots
            .iter()
            .any(|s| s.snapshot_id() == Some(failback_snapshot.as_str())
                && s.volume_id() == Some(restored_volume.as_str())),
        "{new_volume} comes from a failback snapshot of {restored_volume}: {failback_snapshots:?}"
    );
    // No write lost: the local AWS saw the restored volume leave its last instance (the one
    // serving in zone B) before the snapshot started.
    let log = std::fs::read_to_string(world.aws.log_path()).unwrap();
    let detached = log.find(&format!(
        "volume {restored_volume} detaching from {instance}"
    ));
    let snapped = log.find(&format!(
        "snapshot {failback_snapshot} of {restored_volume} pending"
    ));
    assert!(
        matches!((detached, snapped), (Some(d), Some(s)) if d < s),
        "the failback snapshot starts after {restored_volume} left {instance}: detach at {detached:?}, snapshot at {snapped:?}"
    );
    let (_, _, _, _, restored_tags) = world.block(volume(c, &restored_volume)).unwrap();
    assert_eq!(
        tag(&restored_tags, "autoheal:superseded-by"),
        Some(new_volume.as_str())
    );
    refresh(&t);
    assert_empty_plan(&t, "after the failback");

    // Destroy: the final snapshot of the new data volume; the volumes the failover and the
    // failback left are kept (data, by design).
    t.destroy().unwrap();
    drop(guard);
    world.block(async {
        let of = helpers::final_snapshot_volumes(&c.ec2).await.unwrap();
        assert_eq!(
            of,
            [new_volume.as_str()],
            "the final snapshot is of the data volume the failback made"
        );
        // What the test itself removes: the kept volumes and the scheduled and failback
        // snapshots (data, kept by design); then nothing else may be left.
        for kept in [&home_volume, &restored_volume] {
            c.ec2.delete_volume().volume_id(kept).send().await.unwrap();
        }
        for kind in ["scheduled", "failback"] {
            helpers::delete_snapshots_of_kind(&c.ec2, name, kind)
                .await
                .unwrap();
        }
    });
    world.sweep(name, true);
}

/// A forged pointer: the group's `autoheal:active-volume` names a volume that carries every
/// tag a restored one has but was made from a snapshot of another volume. The attachment
/// function's provenance check (EBS's SnapshotId -> VolumeId chain) refuses it: the heal
/// abandons, nothing is attached to it; destroy's own check ignores it too and takes the
/// final snapshot of the home volume.
fn forged_pointer(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "zoneforge";
    let group = format!("{name}-asg");
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("snapshot_interval", "15m");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.apply().unwrap();
    let s = stack(&t, name);
    let home_volume = s["volume_id"].as_str().unwrap().to_string();
    let first = wait_served(&world, name, &s, None, "the stack to serve");
    // Another volume's snapshot, and a volume from it in the home zone dressed as restored.
    let forged = world.block(async {
        let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
        let other = c
            .ec2
            .create_volume()
            .availability_zone(HOME)
            .size(1)
            .encrypted(true)
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string();
        let snap = c
            .ec2
            .create_snapshot()
            .volume_id(&other)
            .send()
            .await
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_string();
        wait_until("the other snapshot", FAILOVER_WAIT, POLL, || async {
            let out = c
                .ec2
                .describe_snapshots()
                .snapshot_ids(&snap)
                .send()
                .await?;
            Ok(
                match out
                    .snapshots()
                    .first()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str())
                {
                    Some("completed") => Check::Done(()),
                    other => Check::NotYet(format!("{other:?}")),
                },
            )
        })
        .await
        .unwrap();
        let forged = c
            .ec2
            .create_volume()
            .availability_zone(HOME)
            .snapshot_id(&snap)
            .encrypted(true)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                    .tags(tag("autoheal:restored-for", &group))
                    .tags(tag("autoheal:restored-from", &snap))
                    .tags(tag("autoheal:stack", name))
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string();
        c.autoscaling
            .create_or_update_tags()
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .resource_id(&group)
                    .resource_type("auto-scaling-group")
                    .key("autoheal:active-volume")
                    .value(&forged)
                    .propagate_at_launch(true)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        c.ec2
            .terminate_instances()
            .instance_ids(&first)
            .send()
            .await
            .unwrap();
        (forged, other, snap)
    });
    let (forged, other, snap) = forged;
    // The replacement's heal refuses the pointer: abandoned, naming the check.
    let refused = world
        .block(wait_until(
            "the heal to refuse the forged volume",
            FAILOVER_WAIT,
            POLL,
            || async {
                let lines = function_logs(&c.logs, &format!("{name}-attach")).await?;
                Ok(
                    match emf_records(&lines).into_iter().find(|r| {
                        r["outcome"] == "abandoned"
                            && r["reason"]
                                .as_str()
                                .is_some_and(|x| x.contains("provenance"))
                    }) {
                        Some(r) => Check::Done(r),
                        None => Check::NotYet("no refusal yet".into()),
                    },
                )
            },
        ))
        .unwrap();
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains(&forged) && reason.contains(&other),
        "the refusal names the pointer and where its chain leads (a volume not restored for the group): {refused}"
    );
    let attachments = world.block(async {
        c.ec2
            .describe_volumes()
            .volume_ids(&forged)
            .send()
            .await
            .unwrap()
            .volumes()[0]
            .attachments()
            .len()
    });
    assert_eq!(attachments, 0, "the forged volume is never attached");
    // Destroy ignores the pointer too: the final snapshot is of the home volume.
    t.destroy().unwrap();
    drop(guard);
    world.block(async {
        let of = helpers::final_snapshot_volumes(&c.ec2).await.unwrap();
        assert_eq!(of, [home_volume.as_str()]);
        for v in [&forged, &other] {
            c.ec2.delete_volume().volume_id(v).send().await.unwrap();
        }
        c.ec2
            .delete_snapshot()
            .snapshot_id(&snap)
            .send()
            .await
            .unwrap();
        helpers::delete_scheduled_snapshots(&c.ec2, name)
            .await
            .unwrap();
    });
    world.sweep(name, true);
}

/// The user's own volume (`existing_volume_id`): a zone loss fails the stack over to a volume
/// restored from it, and the failback brings the data home as a new volume; the plan is empty
/// after each. Destroy keeps the user's volume, as always, and the volumes restored from it,
/// as it would keep the user's: no final snapshot, nothing deleted.
fn own_volume(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let control = world.aws.control();
    let name = "ownfo";
    let own = world.block(async {
        c.ec2
            .create_volume()
            .availability_zone(HOME)
            .size(5)
            .encrypted(true)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                    .tags(
                        aws_sdk_ec2::types::Tag::builder()
                            .key("autoheal:stack")
                            .value(name)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string()
    });
    let t = world.terraform(tf, &[name]);
    let guard = t.destroy_guard();
    t.set_var("existing_volume_id", own.as_str());
    t.set_var("snapshot_interval", "15m");
    t.set_var("failover_zones", format!(r#"["{ZONE_B}"]"#));
    t.set_var("failover_detection_window", "5m");
    t.apply().unwrap();
    let s = stack(&t, name);
    assert_eq!(s["volume_id"].as_str(), Some(own.as_str()), "{s}");
    wait_served(&world, name, &s, None, "the stack to serve");
    assert_empty_plan(&t, "after the create");
    wait_completed_snapshot(&world, name);

    world.block(control.start_zone_outage(HOME)).unwrap();
    let (instance, restored) = wait_failed_over(&world, name, &s);
    assert_eq!(world.block(instance_zone(c, &instance)).unwrap(), ZONE_B);
    let (_, _, _, source, _) = world.block(volume(c, &restored)).unwrap();
    let snapshots = world.block(completed_snapshots(c, name)).unwrap();
    assert!(
        snapshots.iter().any(|(id, _)| Some(id) == source.as_ref()),
        "{restored} comes from a scheduled snapshot of {own}: {source:?} of {snapshots:?}"
    );
    refresh(&t);
    assert_empty_plan(&t, "after the failover");

    world.block(control.end_zone_outage(HOME)).unwrap();
    t.set_var("active_availability_zone", HOME);
    t.apply().unwrap();
    let s = stack(&t, name);
    let new_volume = s["volume_id"].as_str().unwrap().to_string();
    assert!(
        new_volume != own && new_volume != restored,
        "a new data volume: {s}"
    );
    let back = wait_served(&world, name, &s, None, "service at home after the failback");
    assert_eq!(world.block(instance_zone(c, &back)).unwrap(), HOME);
    let (zone, encrypted, _, _, _) = world.block(volume(c, &new_volume)).unwrap();
    assert!(zone == HOME && encrypted, "{new_volume} in {zone}");
    refresh(&t);
    assert_empty_plan(&t, "after the failback");

    // Destroy: every volume kept, none snapshotted.
    t.destroy().unwrap();
    drop(guard);
    world.block(async {
        assert!(
            helpers::final_snapshot_volumes(&c.ec2)
                .await
                .unwrap()
                .is_empty(),
            "no final snapshot of a volume kept as the user's"
        );
        for kept in [&own, &restored, &new_volume] {
            let found = c
                .ec2
                .describe_volumes()
                .volume_ids(kept.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(
                found
                    .volumes()
                    .first()
                    .and_then(|v| v.state())
                    .map(|s| s.as_str()),
                Some("available"),
                "{kept} is kept, detached"
            );
            c.ec2
                .delete_volume()
                .volume_id(kept.as_str())
                .send()
                .await
                .unwrap();
        }
        for kind in ["scheduled", "failback"] {
            helpers::delete_snapshots_of_kind(&c.ec2, name, kind)
                .await
                .unwrap();
        }
    });
    world.sweep(name, false);
}

/// The handler's and the provider's checks do not depend on Terraform's version: one run.
#[test]
fn a_forged_active_volume_pointer_is_never_attached_nor_snapshotted() {
    let tf = terraform_versions()
        .into_iter()
        .next()
        .expect("a Terraform");
    forged_pointer(&tf);
}

#[test]
fn a_lost_home_zone_fails_over_and_back_with_the_address_and_no_write_lost() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        failover(&tf, true);
    }
}

/// Destroy while failed over does not depend on Terraform's version: one run.
#[test]
fn destroy_while_failed_over_snapshots_the_restored_volume_and_keeps_home() {
    let tf = terraform_versions()
        .into_iter()
        .next()
        .expect("a Terraform");
    failover(&tf, false);
}

/// The user's own volume through a failover and a failback: the paths are the provider's and
/// the functions', not Terraform's: one run.
#[test]
fn the_users_own_volume_fails_over_and_back_and_every_volume_is_kept() {
    let tf = terraform_versions()
        .into_iter()
        .next()
        .expect("a Terraform");
    own_volume(&tf);
}
