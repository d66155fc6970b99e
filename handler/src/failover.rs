//! Zone failover: the stack's failover function (docs/zone-failover.md, section 3).
//!
//! A schedule rule invokes the failover function every minute. Each run, from AWS's records
//! only (stateless: a run that dies is simply repeated a minute later), decides whether the
//! zone the stack serves from is lost, and if so moves the stack to another zone:
//!
//! **Detection** needs all three signals ([`verdict`]):
//! 1. the group's launches into the serving zone have all failed with a zone-level capacity
//!    error naming that zone, the first of them at least the detection window ago, with no
//!    launch getting further since ([`launch_signal`]);
//! 2. the serving volume is `impaired` (DescribeVolumeStatus);
//! 3. the group has no InService instance.
//!
//! (1) alone is a capacity shortage of one instance type, which ends; (2) alone is a volume
//! fault AWS's own recovery handles while the instance may still serve; (3) alone is every
//! heal. A killed instance (its replacement launches), a slow shutdown (no launch fails, the
//! volume is fine) or one failed launch (no window) never satisfies all three.
//!
//! **Time** is AWS's: "now" is the newest of the event's `time` and the activities' own
//! timestamps, never the function's clock, so the window is measured on the same clock as the
//! records it judges. The event's time is the scheduled moment, at most about a minute before
//! the run: detection can only be late by that much, never early.
//!
//! **Action** ([`Healer::failover_check`]), each step idempotent and found again by EBS's
//! records when a run is repeated:
//! 1. the newest completed scheduled snapshot of the serving volume (EBS's `VolumeId`, not a
//!    tag); none: blocked (no empty volume is ever served);
//! 2. the target zone: the first other zone of the stack (sorted) with no zone-level launch
//!    failure in the window; none: blocked;
//! 3. a volume restored from that snapshot in that zone: found (an earlier run's), else
//!    CreateVolume shaped and keyed as the serving one, tagged with its lineage,
//!    [`RESTORED_FOR_TAG`] and [`RESTORED_FROM_TAG`]; waits until it is `available` (a run
//!    that runs out of time leaves it, and the next run finds it);
//! 4. the serving volume is tagged [`SUPERSEDED_BY_TAG`] (best effort: EBS may refuse while
//!    its zone is out; the group's [`SUPERSEDED_VOLUME_TAG`] says it either way). It is never
//!    deleted: it holds the writes made after the snapshot;
//! 5. the group's tags: [`crate::aws::ACTIVE_VOLUME_TAG`] (propagated at launch, so the heal
//!    function reads it from the new instance), [`ACTIVE_ZONE_TAG`], [`FAILOVER_STARTED_TAG`];
//!    then, with the group's `Launch` process suspended, UpdateAutoScalingGroup to the target
//!    zone's subnet, and `Launch` resumed. The group launches there, the hook holds the
//!    instance, and the heal function attaches the restored volume (after its provenance
//!    check) and the Elastic IP, as for any heal.
//!
//! **Why suspend and resume `Launch` around the move:** a group whose launches kept failing
//! retries on a back-off that grows to minutes, and a move alone (UpdateAutoScalingGroup)
//! starts no launch: the first launch in the new zone waited for the rest of the step (a
//! median 224 s, up to 267 s, in BENCHMARKS.md's failover runs before this). Resuming `Launch`
//! makes the group launch what it is missing at once ([`aws::resume_launch`]). The suspension
//! is written after the group's failover tags, so a run that dies between suspend and resume
//! leaves a failover in progress ([`FAILOVER_STARTED_TAG`] without
//! [`FAILOVER_COMPLETED_TAG`]) with `Launch` suspended: the next run resumes it first
//! ([`launch_left_suspended`]). A suspension an operator made outside a failover is theirs
//! and is left alone.
//!
//! A later run that finds an InService instance in the new zone records the failover's
//! duration (from [`FAILOVER_STARTED_TAG`] to the end of that instance's launch activity) once,
//! tagging the group [`FAILOVER_COMPLETED_TAG`].

use serde_json::{json, Value};
use tracing::{info, warn};

use crate::aws::{self, ActivityFacts, GroupFacts, VolumeOrigin, ACTIVE_VOLUME_TAG};
use crate::errors::AwsError;
use crate::event::RuleFiring;
use crate::heal::Healer;
use crate::settings::FailoverSettings;
use crate::snapshot::{KIND_SCHEDULED, KIND_TAG};

/// The group's tag naming the zone the stack serves from after a failover.
pub const ACTIVE_ZONE_TAG: &str = "autoheal:active-zone";
/// When the current failover started (AWS time, whole seconds since the epoch).
pub const FAILOVER_STARTED_TAG: &str = "autoheal:failover-started";
/// Set once the failover's first heal in the new zone was seen (same form).
pub const FAILOVER_COMPLETED_TAG: &str = "autoheal:failover-completed";
/// The group's record of the volume a failover left behind (EBS may refuse to tag it).
pub const SUPERSEDED_VOLUME_TAG: &str = "autoheal:superseded-volume";
/// On a restored volume: the group it was restored for (the heal's role may attach only
/// volumes carrying it; the provenance check proves the rest).
pub const RESTORED_FOR_TAG: &str = "autoheal:restored-for";
/// On a restored volume: the snapshot it was restored from (EBS's `SnapshotId` is the proof).
pub const RESTORED_FROM_TAG: &str = "autoheal:restored-from";
/// On a superseded volume: the volume that replaced it.
pub const SUPERSEDED_BY_TAG: &str = "autoheal:superseded-by";

/// Whether a failover run suspended the group's `Launch` and did not live to resume it: a
/// failover in progress (started, not completed) with `Launch` suspended (module docs).
pub fn launch_left_suspended(group: &GroupFacts) -> bool {
    group.launch_suspended
        && group
            .tag(FAILOVER_STARTED_TAG)
            .is_some_and(|t| !t.is_empty())
        && group.tag(FAILOVER_COMPLETED_TAG).is_none_or(str::is_empty)
}

/// The start of a launch activity's description (Auto Scaling: "Launching a new EC2
/// instance: i-.." or, failed, "Launching a new EC2 instance.  Status Reason: ..").
const LAUNCH_DESCRIPTION: &str = "Launching a new EC2 instance";
/// Two failed launches at least: one failure is never a zone loss, whatever the window.
const MIN_FAILED_LAUNCHES: usize = 2;
/// The volume's tags that describe that volume only, not its data.
const NOT_CARRIED: &[&str] = &[
    "autoheal:unused",
    "autoheal:creating",
    "autoheal:final-snapshot",
    "autoheal:final-snapshot-token",
    KIND_TAG,
    crate::snapshot::EVENT_ID_TAG,
    crate::snapshot::SOURCE_VOLUME_TAG,
    RESTORED_FOR_TAG,
    RESTORED_FROM_TAG,
    SUPERSEDED_BY_TAG,
];

/// Whether `a` is a launch into `zone` that failed with a zone-level capacity error: EC2's
/// `InsufficientInstanceCapacity` text names the zone ("We currently do not have sufficient
/// t3.micro capacity in the Availability Zone you requested (ap-southeast-2a). ...": Auto
/// Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling").
pub fn zone_level_failure(a: &ActivityFacts, zone: &str) -> bool {
    let needle = format!("capacity in the Availability Zone you requested ({zone})");
    a.status == "Failed"
        && a.description.starts_with(LAUNCH_DESCRIPTION)
        && (a.status_message.contains(&needle) || a.description.contains(&needle))
}

fn is_launch(a: &ActivityFacts) -> bool {
    a.description.starts_with(LAUNCH_DESCRIPTION)
}

/// The first signal: the newest launch activities, back to the first that is not a
/// zone-level failure in `zone`, are at least [`MIN_FAILED_LAUNCHES`] failures, the oldest
/// started `window_ms` or more before `now_ms`. Returns whether it holds and why.
pub fn launch_signal(
    activities: &[ActivityFacts],
    zone: &str,
    now_ms: u64,
    window_ms: u64,
) -> (bool, String) {
    let mut launches: Vec<&ActivityFacts> = activities.iter().filter(|a| is_launch(a)).collect();
    launches.sort_by_key(|a| std::cmp::Reverse(a.start_ms));
    let failed: Vec<&&ActivityFacts> = launches
        .iter()
        .take_while(|a| zone_level_failure(a, zone))
        .collect();
    let Some(oldest) = failed.last() else {
        return (
            false,
            match launches.first() {
                Some(a) => format!(
                    "the newest launch is not a zone-level failure in {zone} ({})",
                    a.status
                ),
                None => "no launch activity".into(),
            },
        );
    };
    let failing_for_s = now_ms.saturating_sub(oldest.start_ms) / 1000;
    let held = failed.len() >= MIN_FAILED_LAUNCHES && failing_for_s * 1000 >= window_ms;
    (
        held,
        format!(
            "{} launches in {zone} failed with zone-level capacity errors over the last {failing_for_s}s (window {}s)",
            failed.len(),
            window_ms / 1000
        ),
    )
}

/// The zones among `zones` with a zone-level launch failure that started within the window.
pub fn zones_failing(
    activities: &[ActivityFacts],
    zones: &[&str],
    now_ms: u64,
    window_ms: u64,
) -> Vec<String> {
    zones
        .iter()
        .filter(|z| {
            activities
                .iter()
                .any(|a| zone_level_failure(a, z) && now_ms.saturating_sub(a.start_ms) <= window_ms)
        })
        .map(|z| z.to_string())
        .collect()
}

/// Whether the serving zone is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not lost: the reason names the signals that do not hold.
    Serving(String),
    /// Lost: the reason names all three signals.
    Lost(String),
}

/// All three signals, or no loss (module docs).
pub fn verdict(
    launches: (bool, String),
    volume_impaired: bool,
    in_service: usize,
    volume_id: &str,
) -> Verdict {
    let (launches_held, launches_why) = launches;
    let signals = [
        (launches_held, launches_why),
        (
            volume_impaired,
            format!(
                "volume {volume_id} is {}",
                if volume_impaired {
                    "impaired"
                } else {
                    "not impaired"
                }
            ),
        ),
        (
            in_service == 0,
            format!("{in_service} InService instance(s) in the group"),
        ),
    ];
    let text = signals
        .iter()
        .map(|(held, why)| format!("{}{why}", if *held { "" } else { "not: " }))
        .collect::<Vec<_>>()
        .join("; ");
    if signals.iter().all(|(held, _)| *held) {
        Verdict::Lost(text)
    } else {
        Verdict::Serving(text)
    }
}

/// The restored volume's tags: the serving volume's own (its lineage; minus `aws:` ones and
/// those about that volume alone), then ours ([`crate::snapshot::carried_with`]).
pub fn restored_tags(
    volume_tags: &[(String, String)],
    group: &str,
    snapshot_id: &str,
) -> Vec<(String, String)> {
    crate::snapshot::carried_with(
        volume_tags,
        NOT_CARRIED,
        vec![
            (RESTORED_FOR_TAG.to_string(), group.to_string()),
            (RESTORED_FROM_TAG.to_string(), snapshot_id.to_string()),
        ],
    )
}

/// "Now" on AWS's clock: the newest of the event's time and the activities' timestamps
/// (module docs). `None` when AWS gave no time at all.
pub fn aws_now_ms(event_time_ms: Option<u64>, activities: &[ActivityFacts]) -> Option<u64> {
    activities
        .iter()
        .flat_map(|a| [Some(a.start_ms), a.end_ms])
        .flatten()
        .filter(|ms| *ms > 0)
        .chain(event_time_ms)
        .max()
}

/// What one run decided and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverReport {
    pub outcome: FailoverOutcome,
    pub reason: String,
    /// The zone the stack served from when the run started.
    pub zone: Option<String>,
    pub target_zone: Option<String>,
    pub snapshot_id: Option<String>,
    /// The restored volume (made or found).
    pub restored_volume: Option<String>,
    /// Set once per failover: from its start to the end of the first launch in the new zone.
    pub duration_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverOutcome {
    /// The serving zone is not lost (or the run had nothing to judge).
    Serving,
    /// The zone is lost; the restored volume is not available yet (the next run continues).
    Restoring,
    /// The group was moved to the target zone.
    Started,
    /// The zone is lost and nothing can be done: no completed snapshot or no healthy zone.
    Blocked,
    /// A call failed: the invocation fails (Lambda retries; the next run repeats anyway).
    Failed,
}

impl FailoverOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverOutcome::Serving => "serving",
            FailoverOutcome::Restoring => "restoring",
            FailoverOutcome::Started => "failover_started",
            FailoverOutcome::Blocked => "failover_blocked",
            FailoverOutcome::Failed => "failover_check_failed",
        }
    }
}

/// The failover run's EMF line: `FailoverStarted`, `FailoverBlocked` (0 or 1 each run, so an
/// alarm on either has data every minute) and, once per failover, `FailoverDurationSeconds`.
pub fn failover_emf_line(timestamp_ms: u64, group: &str, report: &FailoverReport) -> String {
    let mut metrics = vec![
        json!({"Name": "FailoverStarted", "Unit": "Count"}),
        json!({"Name": "FailoverBlocked", "Unit": "Count"}),
    ];
    let mut root = serde_json::Map::new();
    root.insert(
        "FailoverStarted".into(),
        json!(u8::from(report.outcome == FailoverOutcome::Started)),
    );
    root.insert(
        "FailoverBlocked".into(),
        json!(u8::from(report.outcome == FailoverOutcome::Blocked)),
    );
    if let Some(d) = report.duration_s {
        metrics.push(json!({"Name": "FailoverDurationSeconds", "Unit": "Seconds"}));
        root.insert("FailoverDurationSeconds".into(), json!(d));
    }
    root.insert("AutoScalingGroupName".into(), json!(group));
    root.insert("outcome".into(), json!(report.outcome.as_str()));
    root.insert("reason".into(), json!(report.reason));
    for (k, v) in [
        ("zone", &report.zone),
        ("targetZone", &report.target_zone),
        ("snapshotId", &report.snapshot_id),
        ("restoredVolume", &report.restored_volume),
    ] {
        if let Some(v) = v {
            root.insert(k.into(), json!(v));
        }
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": crate::metrics::NAMESPACE,
                "Dimensions": [["AutoScalingGroupName"]],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// The zone the group launches into and the volume it serves from there.
struct Serving {
    zone: String,
    volume_id: String,
}

/// Where the stack serves from, by the group's subnet: the tags' volume when the tags name
/// that zone, the home volume in the home zone. `Err`: neither (the group was changed out of
/// band, or a failover's tags were half-written to a zone the group never reached).
fn serving(
    group: &GroupFacts,
    settings: &FailoverSettings,
    home_volume: &str,
    home_zone: &str,
) -> Result<Serving, String> {
    let [subnet] = group.subnets.as_slice() else {
        return Err(format!(
            "the group launches into {:?}, not one subnet",
            group.subnets
        ));
    };
    let Some(zone) = settings.zone_of_subnet(subnet) else {
        return Err(format!(
            "the group's subnet {subnet} is none of the stack's"
        ));
    };
    let volume_id = if group.tag(ACTIVE_ZONE_TAG) == Some(zone) {
        match group.tag(ACTIVE_VOLUME_TAG) {
            Some(v) => v.to_string(),
            None => home_volume.to_string(),
        }
    } else if zone == home_zone {
        home_volume.to_string()
    } else {
        return Err(format!(
            "the group launches into {zone}, but its tags name no volume there"
        ));
    };
    Ok(Serving {
        zone: zone.to_string(),
        volume_id,
    })
}

impl Healer {
    /// One run of the failover check (module docs). The report says what happened; only
    /// `Failed` should fail the invocation.
    pub async fn failover_check(
        &self,
        firing: &RuleFiring,
        settings: &FailoverSettings,
    ) -> FailoverReport {
        let mut report = FailoverReport {
            outcome: FailoverOutcome::Failed,
            reason: String::new(),
            zone: None,
            target_zone: None,
            snapshot_id: None,
            restored_volume: None,
            duration_s: None,
        };
        match self.failover_steps(firing, settings, &mut report).await {
            Ok((outcome, reason)) => {
                report.outcome = outcome;
                report.reason = reason;
            }
            Err(e) => {
                warn!(error = %e, "failover check failed");
                report.reason = e.to_string();
            }
        }
        report
    }

    async fn failover_steps(
        &self,
        firing: &RuleFiring,
        settings: &FailoverSettings,
        report: &mut FailoverReport,
    ) -> Result<(FailoverOutcome, String), AwsError> {
        let (ec2, asg) = (&self.clients.ec2, &self.clients.autoscaling);
        let group_name = self.settings.group_name.as_str();
        let home_volume = self.settings.volume_id.as_str();
        let (group, activities, home) = tokio::join!(
            aws::describe_group(asg, group_name),
            aws::describe_activities(asg, group_name),
            aws::describe_volume_origin(ec2, home_volume),
        );
        let Some(group) = group? else {
            return Ok((
                FailoverOutcome::Serving,
                format!("group {group_name} does not exist"),
            ));
        };
        let activities = activities?;
        let Some(home) = home? else {
            return Ok((
                FailoverOutcome::Serving,
                format!("the home volume {home_volume} does not exist"),
            ));
        };
        let serving = match serving(&group, settings, home_volume, &home.availability_zone) {
            Ok(s) => s,
            Err(why) => {
                warn!(reason = %why, "failover check: cannot tell where the stack serves from; nothing done");
                return Ok((FailoverOutcome::Serving, why));
            }
        };
        report.zone = Some(serving.zone.clone());
        if launch_left_suspended(&group) {
            warn!(
                group = group_name,
                "a failover run left the group's Launch process suspended: resuming it"
            );
            aws::resume_launch(asg, group_name).await?;
        }
        let Some(now_ms) = aws_now_ms(firing.event_time_ms, &activities) else {
            return Ok((
                FailoverOutcome::Serving,
                "no AWS time to judge by (no event time, no activity)".into(),
            ));
        };
        let window_ms = settings.window.as_millis() as u64;
        let in_service: Vec<&(String, String, String)> = group
            .instances
            .iter()
            .filter(|(_, state, _)| state == "InService")
            .collect();
        if !in_service.is_empty() {
            self.record_completion(&group, &activities, &serving, report)
                .await?;
            return Ok((
                FailoverOutcome::Serving,
                format!("{} serves in {}", in_service[0].0, in_service[0].2.as_str()),
            ));
        }
        let launches = launch_signal(&activities, &serving.zone, now_ms, window_ms);
        if !launches.0 {
            // The cheapest signal first: without it, no other call.
            return Ok((FailoverOutcome::Serving, launches.1));
        }
        let impaired = aws::volume_impaired(ec2, &serving.volume_id).await?;
        let lost = match verdict(launches, impaired, in_service.len(), &serving.volume_id) {
            Verdict::Serving(why) => return Ok((FailoverOutcome::Serving, why)),
            Verdict::Lost(why) => why,
        };
        warn!(zone = serving.zone, evidence = %lost, "zone declared lost: failing over");

        let zones: Vec<&str> = settings
            .subnets
            .iter()
            .map(|(z, _)| z.as_str())
            .filter(|z| *z != serving.zone)
            .collect();
        let failing = zones_failing(&activities, &zones, now_ms, window_ms);
        let Some(target) = zones.iter().find(|z| !failing.iter().any(|f| f == *z)) else {
            let why = format!("zone {} lost ({lost}), but every other zone of the stack had zone-level launch failures in the window: {failing:?}", serving.zone);
            warn!(reason = %why, "failover blocked");
            return Ok((FailoverOutcome::Blocked, why));
        };
        let target = target.to_string();
        let subnet = settings
            .subnet_of_zone(&target)
            .unwrap_or_default()
            .to_string();
        report.target_zone = Some(target.clone());

        let snapshots =
            aws::describe_snapshots(ec2, &serving.volume_id, (KIND_TAG, KIND_SCHEDULED)).await?;
        let newest = crate::snapshot::plan(&snapshots, None, 1).newest_completed;
        let Some(snapshot) = newest else {
            let why = format!(
                "zone {} lost ({lost}), but volume {} has no completed scheduled snapshot to restore: nothing is served rather than an empty volume",
                serving.zone, serving.volume_id
            );
            warn!(reason = %why, "failover blocked");
            return Ok((FailoverOutcome::Blocked, why));
        };
        report.snapshot_id = Some(snapshot.snapshot_id.clone());
        info!(
            snapshot = snapshot.snapshot_id,
            started_ms = snapshot.start_time_ms,
            target_zone = target,
            "restoring the newest completed scheduled snapshot"
        );

        let source = if serving.volume_id == home_volume {
            Some(home)
        } else {
            aws::describe_volume_origin(ec2, &serving.volume_id).await?
        };
        let Some(source) = source else {
            return Ok((
                FailoverOutcome::Blocked,
                format!("the serving volume {} does not exist", serving.volume_id),
            ));
        };
        let restored = self
            .restored_volume(&source, &snapshot.snapshot_id, &target)
            .await?;
        report.restored_volume = Some(restored.volume_id.clone());
        if restored.state != "available" {
            return Ok((
                FailoverOutcome::Restoring,
                format!(
                    "volume {} restored from {} in {target} is {}: the next run continues",
                    restored.volume_id, snapshot.snapshot_id, restored.state
                ),
            ));
        }

        if let Err(e) = aws::tag_volume(
            ec2,
            &serving.volume_id,
            &[(SUPERSEDED_BY_TAG.to_string(), restored.volume_id.clone())],
        )
        .await
        {
            warn!(volume = serving.volume_id, error = %e, "could not tag the superseded volume (its zone is out?): the group's tag records it");
        }
        let started_s = match (
            group.tag(ACTIVE_VOLUME_TAG),
            group.tag(FAILOVER_STARTED_TAG),
        ) {
            // A repeated run of the same failover keeps its start.
            (Some(v), Some(t)) if v == restored.volume_id => t.to_string(),
            _ => (now_ms / 1000).to_string(),
        };
        aws::tag_group(
            asg,
            group_name,
            &[
                (ACTIVE_VOLUME_TAG, restored.volume_id.clone(), true),
                (ACTIVE_ZONE_TAG, target.clone(), false),
                (FAILOVER_STARTED_TAG, started_s, false),
                (FAILOVER_COMPLETED_TAG, String::new(), false),
                (SUPERSEDED_VOLUME_TAG, serving.volume_id.clone(), false),
            ],
        )
        .await?;
        // A refused suspension (a role written by an older release lacks it until the next
        // apply) only costs the wait for the back-off: the move is made either way.
        let suspended = match aws::suspend_launch(asg, group_name).await {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "could not suspend the group's Launch process: the group launches in the new zone at its next launch retry");
                false
            }
        };
        let moved = aws::move_group(asg, group_name, &subnet).await;
        let mut still_suspended = None;
        if suspended {
            if let Err(e) = aws::resume_launch(asg, group_name).await {
                warn!(error = %e, "could not resume the group's Launch process: the next run resumes it");
                still_suspended = Some(e);
            }
        }
        moved?;
        let mut why = format!(
            "zone {} lost ({lost}); group moved to {target} ({subnet}) serving volume {} restored from {}; volume {} kept for the writes after the snapshot",
            serving.zone, restored.volume_id, snapshot.snapshot_id, serving.volume_id
        );
        // The failover is made (tags and move): the next run finishes it by resuming Launch.
        if let Some(e) = still_suspended {
            why.push_str(&format!(
                "; the group's Launch process is still suspended ({e}): the next run resumes it"
            ));
        }
        warn!(reason = %why, "failover started");
        Ok((FailoverOutcome::Started, why))
    }

    /// The restored volume in `zone` from `snapshot_id`: an earlier run's (by the tag, proven
    /// by EBS's `SnapshotId`), else a new one. Waits for it to be `available` within this
    /// run's time.
    async fn restored_volume(
        &self,
        source: &VolumeOrigin,
        snapshot_id: &str,
        zone: &str,
    ) -> Result<VolumeOrigin, AwsError> {
        let ec2 = &self.clients.ec2;
        let group = self.settings.group_name.as_str();
        let found = aws::find_restored_volumes(ec2, (RESTORED_FOR_TAG, group), snapshot_id, zone)
            .await?
            .into_iter()
            .filter(|v| {
                v.snapshot_id.as_deref() == Some(snapshot_id)
                    && matches!(v.state.as_str(), "creating" | "available")
            })
            .min_by(|a, b| a.volume_id.cmp(&b.volume_id));
        let mut volume = match found {
            Some(v) => {
                info!(
                    volume = v.volume_id,
                    state = v.state,
                    "restored volume found (an earlier run made it)"
                );
                v
            }
            None => {
                let tags = restored_tags(&source.tags, group, snapshot_id);
                let id = aws::create_volume_from(ec2, source, snapshot_id, zone, &tags).await?;
                info!(
                    volume = id,
                    snapshot = snapshot_id,
                    zone,
                    "CreateVolume accepted"
                );
                VolumeOrigin {
                    volume_id: id,
                    state: "creating".into(),
                    availability_zone: zone.to_string(),
                    ..source.clone()
                }
            }
        };
        // A few seconds at most, usually (EBS: a volume from a snapshot is available before
        // its blocks are; they load lazily). Bounded well inside the function's timeout.
        let mut delay = std::time::Duration::from_millis(200);
        for _ in 0..12 {
            if volume.state == "available" {
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 3 / 2).min(std::time::Duration::from_secs(3));
            match aws::describe_volume_origin(ec2, &volume.volume_id).await? {
                Some(v) => volume = v,
                None => break,
            }
        }
        Ok(volume)
    }

    /// After a failover: the first InService instance in the new zone ends it; its duration
    /// is recorded once (the group's [`FAILOVER_COMPLETED_TAG`]).
    async fn record_completion(
        &self,
        group: &GroupFacts,
        activities: &[ActivityFacts],
        serving: &Serving,
        report: &mut FailoverReport,
    ) -> Result<(), AwsError> {
        let Some(started_s) = group
            .tag(FAILOVER_STARTED_TAG)
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return Ok(());
        };
        if group
            .tag(FAILOVER_COMPLETED_TAG)
            .is_some_and(|t| !t.is_empty())
            || group.tag(ACTIVE_ZONE_TAG) != Some(serving.zone.as_str())
        {
            return Ok(());
        }
        let ended_ms = activities
            .iter()
            .filter(|a| {
                a.status == "Successful"
                    && is_launch(a)
                    && a.details.contains(serving.zone.as_str())
                    && a.start_ms / 1000 >= started_s
            })
            .filter_map(|a| a.end_ms)
            .max();
        let Some(ended_ms) = ended_ms else {
            return Ok(());
        };
        let duration = (ended_ms / 1000).saturating_sub(started_s);
        aws::tag_group(
            &self.clients.autoscaling,
            &self.settings.group_name,
            &[(FAILOVER_COMPLETED_TAG, (ended_ms / 1000).to_string(), false)],
        )
        .await?;
        info!(
            zone = serving.zone,
            duration_s = duration,
            "failover complete: the stack serves in the new zone"
        );
        report.duration_s = Some(duration);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "ap-southeast-2a";
    const MIN: u64 = 60_000;

    fn failed(zone: &str, start_ms: u64) -> ActivityFacts {
        let message = format!("We currently do not have sufficient t3.micro capacity in the Availability Zone you requested ({zone}). Our system will be working on provisioning additional capacity. Launching EC2 instance failed.");
        ActivityFacts {
            status: "Failed".into(),
            description: format!("Launching a new EC2 instance.  Status Reason: {message}"),
            status_message: message,
            start_ms,
            end_ms: Some(start_ms + 1000),
            details: format!("{{\"Availability Zone\": \"{zone}\"}}"),
        }
    }

    fn launched(zone: &str, start_ms: u64) -> ActivityFacts {
        ActivityFacts {
            status: "Successful".into(),
            description: "Launching a new EC2 instance: i-0123abcd".into(),
            status_message: String::new(),
            start_ms,
            end_ms: Some(start_ms + 30_000),
            details: format!("{{\"Availability Zone\": \"{zone}\"}}"),
        }
    }

    #[test]
    fn sustained_zone_level_failures_hold_after_the_window() {
        let acts = [
            launched(HOME, 0),
            failed(HOME, 10 * MIN),
            failed(HOME, 12 * MIN),
            failed(HOME, 16 * MIN),
        ];
        // 10 minutes window: from the first failure (minute 10) the window ends at minute 20.
        assert!(!launch_signal(&acts, HOME, 19 * MIN, 10 * MIN).0);
        let (held, why) = launch_signal(&acts, HOME, 20 * MIN, 10 * MIN);
        assert!(held, "{why}");
        assert!(why.contains("3 launches"), "{why}");
    }

    #[test]
    fn one_failure_a_success_since_or_another_cause_is_no_zone_loss() {
        // One failure, however old.
        assert!(!launch_signal(&[failed(HOME, 0)], HOME, 60 * MIN, 10 * MIN).0);
        // A launch that succeeded after the failures ends the run of failures.
        let acts = [
            failed(HOME, 0),
            failed(HOME, 2 * MIN),
            launched(HOME, 3 * MIN),
        ];
        assert!(!launch_signal(&acts, HOME, 60 * MIN, 10 * MIN).0);
        // Failures naming another zone, or another cause, are not this zone's loss.
        let acts = [failed("ap-southeast-2b", 0), failed("ap-southeast-2b", MIN)];
        assert!(!launch_signal(&acts, HOME, 60 * MIN, 10 * MIN).0);
        let mut ami = failed(HOME, 0);
        ami.status_message =
            "The image id '[ami-1]' does not exist. Launching EC2 instance failed.".into();
        ami.description = format!(
            "Launching a new EC2 instance.  Status Reason: {}",
            ami.status_message
        );
        let acts = [ami.clone(), {
            let mut a = ami;
            a.start_ms = 5 * MIN;
            a
        }];
        assert!(!launch_signal(&acts, HOME, 60 * MIN, 10 * MIN).0);
        assert!(!launch_signal(&[], HOME, 60 * MIN, 10 * MIN).0);
        // Other activities (terminations) neither break nor make the run.
        let mut term = launched(HOME, MIN);
        term.description = "Terminating EC2 instance: i-0123abcd".into();
        let acts = [failed(HOME, 0), term, failed(HOME, 5 * MIN)];
        assert!(launch_signal(&acts, HOME, 20 * MIN, 10 * MIN).0);
    }

    #[test]
    fn all_three_signals_or_no_loss() {
        let held = || (true, "launches failing".to_string());
        assert!(matches!(
            verdict(held(), true, 0, "vol-1"),
            Verdict::Lost(_)
        ));
        // An instance serving, a healthy volume or no failing launches: serving.
        for v in [
            verdict(held(), true, 1, "vol-1"),
            verdict(held(), false, 0, "vol-1"),
            verdict((false, "no".into()), true, 0, "vol-1"),
        ] {
            match v {
                Verdict::Serving(why) => assert!(why.contains("not: "), "{why}"),
                Verdict::Lost(why) => panic!("lost: {why}"),
            }
        }
    }

    #[test]
    fn zones_with_recent_zone_level_failures_are_not_targets() {
        let acts = [
            failed("ap-southeast-2b", 0),
            failed("ap-southeast-2c", 50 * MIN),
        ];
        assert_eq!(
            zones_failing(
                &acts,
                &["ap-southeast-2b", "ap-southeast-2c"],
                55 * MIN,
                10 * MIN
            ),
            ["ap-southeast-2c"]
        );
    }

    #[test]
    fn aws_time_is_the_newest_aws_timestamp() {
        let acts = [failed(HOME, 5 * MIN), launched(HOME, MIN)];
        assert_eq!(aws_now_ms(Some(4 * MIN), &acts), Some(5 * MIN + 1000));
        assert_eq!(aws_now_ms(Some(9 * MIN), &acts), Some(9 * MIN));
        assert_eq!(aws_now_ms(None, &[]), None);
    }

    #[test]
    fn restored_volumes_carry_the_lineage_and_their_origin() {
        let volume = [
            ("autoheal:stack".to_string(), "app".to_string()),
            ("Name".to_string(), "app-data".to_string()),
            (SUPERSEDED_BY_TAG.to_string(), "vol-old".to_string()),
            (RESTORED_FROM_TAG.to_string(), "snap-old".to_string()),
            ("aws:backup:x".to_string(), "y".to_string()),
        ];
        let tags = restored_tags(&volume, "app-autoheal", "snap-1");
        let get = |k: &str| {
            tags.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("autoheal:stack"), Some("app"));
        assert_eq!(get("Name"), Some("app-data"));
        assert_eq!(get(RESTORED_FOR_TAG), Some("app-autoheal"));
        assert_eq!(get(RESTORED_FROM_TAG), Some("snap-1"));
        assert_eq!(get(SUPERSEDED_BY_TAG), None);
        assert_eq!(get("aws:backup:x"), None);
        let many: Vec<(String, String)> =
            (0..70).map(|i| (format!("u{i:02}"), "v".into())).collect();
        assert_eq!(restored_tags(&many, "g", "snap-1").len(), 50);
    }

    #[test]
    fn the_serving_zone_and_volume_follow_the_groups_subnet() {
        let settings = FailoverSettings {
            rule_name: "r".into(),
            subnets: vec![
                (HOME.into(), "subnet-0aaaaaaa".into()),
                ("ap-southeast-2b".into(), "subnet-0bbbbbbb".into()),
            ],
            window: std::time::Duration::from_secs(600),
        };
        let group = |subnet: &str, tags: &[(&str, &str)]| GroupFacts {
            subnets: vec![subnet.to_string()],
            instances: vec![],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            launch_suspended: false,
        };
        let s = serving(&group("subnet-0aaaaaaa", &[]), &settings, "vol-home", HOME).unwrap();
        assert_eq!((s.zone.as_str(), s.volume_id.as_str()), (HOME, "vol-home"));
        // After a failover.
        let moved = group(
            "subnet-0bbbbbbb",
            &[
                (ACTIVE_ZONE_TAG, "ap-southeast-2b"),
                (ACTIVE_VOLUME_TAG, "vol-new"),
            ],
        );
        let s = serving(&moved, &settings, "vol-home", HOME).unwrap();
        assert_eq!(s.volume_id, "vol-new");
        // Tags written, the move not made yet (a run died between): still home.
        let half = group(
            "subnet-0aaaaaaa",
            &[
                (ACTIVE_ZONE_TAG, "ap-southeast-2b"),
                (ACTIVE_VOLUME_TAG, "vol-new"),
            ],
        );
        assert_eq!(
            serving(&half, &settings, "vol-home", HOME)
                .unwrap()
                .volume_id,
            "vol-home"
        );
        // Moved out of band to a zone the tags do not name, or to a foreign subnet.
        assert!(serving(&group("subnet-0bbbbbbb", &[]), &settings, "vol-home", HOME).is_err());
        assert!(serving(&group("subnet-0ccccccc", &[]), &settings, "vol-home", HOME).is_err());
    }

    #[test]
    fn only_a_launch_suspension_a_failover_left_is_resumed() {
        let group = |suspended: bool, tags: &[(&str, &str)]| GroupFacts {
            subnets: vec!["subnet-0bbbbbbb".into()],
            instances: vec![],
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            launch_suspended: suspended,
        };
        let started = [
            (FAILOVER_STARTED_TAG, "1700000000"),
            (FAILOVER_COMPLETED_TAG, ""),
        ];
        assert!(launch_left_suspended(&group(true, &started)));
        assert!(launch_left_suspended(&group(
            true,
            &[(FAILOVER_STARTED_TAG, "1700000000")]
        )));
        // Not suspended; or the failover completed; or none ever started: the operator's.
        assert!(!launch_left_suspended(&group(false, &started)));
        assert!(!launch_left_suspended(&group(
            true,
            &[
                (FAILOVER_STARTED_TAG, "1700000000"),
                (FAILOVER_COMPLETED_TAG, "1700000300")
            ]
        )));
        assert!(!launch_left_suspended(&group(true, &[])));
    }

    #[test]
    fn the_metric_line_counts_each_run() {
        let report = FailoverReport {
            outcome: FailoverOutcome::Started,
            reason: "lost".into(),
            zone: Some(HOME.into()),
            target_zone: Some("ap-southeast-2b".into()),
            snapshot_id: Some("snap-1".into()),
            restored_volume: Some("vol-2".into()),
            duration_s: None,
        };
        let v: Value = serde_json::from_str(&failover_emf_line(1_000, "g", &report)).unwrap();
        assert_eq!(v["FailoverStarted"], 1);
        assert_eq!(v["FailoverBlocked"], 0);
        assert!(v.get("FailoverDurationSeconds").is_none());
        assert_eq!(v["targetZone"], "ap-southeast-2b");
        let done = FailoverReport {
            outcome: FailoverOutcome::Serving,
            duration_s: Some(420),
            ..report
        };
        let v: Value = serde_json::from_str(&failover_emf_line(1_000, "g", &done)).unwrap();
        assert_eq!(v["FailoverStarted"], 0);
        assert_eq!(v["FailoverDurationSeconds"], 420);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][2]["Name"],
            "FailoverDurationSeconds"
        );
    }
}
