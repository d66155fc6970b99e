//! Scheduled snapshots of the data volume (docs/zone-failover.md, section 1).
//!
//! The stack's schedule rule invokes the function with a "Scheduled Event" every
//! `snapshot_interval` ([`crate::event::classify_scheduled`] accepts only that rule). One run:
//!
//! 1. lists the volume's scheduled snapshots (this account's, tagged
//!    [`KIND_TAG`] = [`KIND_SCHEDULED`]) and reports the age of the newest completed one;
//! 2. takes a snapshot, tagged with the volume's own tags (the stack's lineage) plus the kind,
//!    the source volume and the event's id, unless one already carries this event's id
//!    (EventBridge delivers at least once and Lambda retries a failed invocation);
//! 3. deletes the completed scheduled snapshots beyond the retention count, oldest first.
//!    Only completed ones count as kept, and only completed ones are deleted: a run of
//!    pending or failed snapshots never pushes a good one out.
//!
//! The decisions ([`plan`], [`snapshot_tags`]) are pure; [`Healer::snapshot`] makes the
//! calls. The role allows DeleteSnapshot only on snapshots EBS records as taken of
//! this volume (`ec2:ParentVolume`) that carry the scheduled kind: the final snapshots the
//! provider takes at destroy are not scheduled ones and can never be pruned here.

use tracing::{info, warn};

use crate::aws::{self, SnapshotFacts};
use crate::errors::AwsError;
use crate::event::ScheduledRun;
use crate::heal::Healer;

/// The tag that marks a scheduled snapshot (the IAM policy requires it on CreateSnapshot and
/// on DeleteSnapshot).
pub const KIND_TAG: &str = "autoheal:snapshot";
pub const KIND_SCHEDULED: &str = "scheduled";
/// The id of the event that took the snapshot: a repeated delivery takes no second one.
pub const EVENT_ID_TAG: &str = "autoheal:event-id";
/// The volume the snapshot was taken of (the provider's lineage checks compare it with EBS's
/// own record, `VolumeId`).
pub const SOURCE_VOLUME_TAG: &str = "autoheal:volume-id";
/// The volume's tags that say something about the volume only, not about its data.
const NOT_CARRIED: &[&str] = &[
    "autoheal:unused",
    "autoheal:creating",
    "autoheal:final-snapshot",
    "autoheal:final-snapshot-token",
    KIND_TAG,
    EVENT_ID_TAG,
    SOURCE_VOLUME_TAG,
];
/// EC2's limit of tags per resource.
const MAX_TAGS: usize = 50;

/// What one run does, decided from what DescribeSnapshots showed before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Take a snapshot now (false: this event already took one).
    pub take: bool,
    /// Completed scheduled snapshots beyond the retention count, oldest first.
    pub delete: Vec<String>,
    /// The newest completed scheduled snapshot before this run.
    pub newest_completed: Option<SnapshotFacts>,
}

/// Decides one run. `existing`: the volume's scheduled snapshots; `event_id`: this event's id.
/// The snapshot this run takes is pending, so it is not among the kept ones yet: the
/// `retention` newest completed ones are kept and the rest go.
pub fn plan(existing: &[SnapshotFacts], event_id: Option<&str>, retention: u32) -> Plan {
    let take = match event_id {
        Some(id) => !existing
            .iter()
            .any(|s| s.tags.iter().any(|(k, v)| k == EVENT_ID_TAG && v == id)),
        None => true,
    };
    let mut completed: Vec<&SnapshotFacts> =
        existing.iter().filter(|s| s.state == "completed").collect();
    // Newest first; ties broken by id so the choice is the same on every run.
    completed.sort_by(|a, b| {
        b.start_time_ms
            .cmp(&a.start_time_ms)
            .then_with(|| b.snapshot_id.cmp(&a.snapshot_id))
    });
    let newest_completed = completed.first().map(|s| (*s).clone());
    let mut delete: Vec<String> = completed
        .iter()
        .skip(retention as usize)
        .map(|s| s.snapshot_id.clone())
        .collect();
    delete.reverse();
    Plan {
        take,
        delete,
        newest_completed,
    }
}

/// The new snapshot's tags: the volume's own (minus `aws:` ones, which nobody may set, and
/// those about the volume alone), then the kind, the source volume and the event's id. When
/// that would pass EC2's 50, the volume's tags are cut (the stack's `autoheal:` ones and
/// `Name` are kept first), never ours.
pub fn snapshot_tags(
    volume_tags: &[(String, String)],
    volume_id: &str,
    event_id: Option<&str>,
) -> Vec<(String, String)> {
    let mut ours = vec![
        (KIND_TAG.to_string(), KIND_SCHEDULED.to_string()),
        (SOURCE_VOLUME_TAG.to_string(), volume_id.to_string()),
    ];
    if let Some(id) = event_id {
        ours.push((EVENT_ID_TAG.to_string(), id.to_string()));
    }
    carried_with(volume_tags, NOT_CARRIED, ours)
}

/// A volume's tags carried over to a snapshot or a volume made from it, then `ours`: the
/// volume's own minus `aws:` ones (nobody may set them) and `not_carried` (about the volume
/// alone). When that would pass EC2's 50, the volume's tags are cut (the stack's
/// `autoheal:` ones and `Name` are kept first), never ours.
pub fn carried_with(
    volume_tags: &[(String, String)],
    not_carried: &[&str],
    ours: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut carried: Vec<(String, String)> = volume_tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !not_carried.contains(&k.as_str()))
        .cloned()
        .collect();
    // The stack's own tags and the name first, then the user's, each by key.
    carried.sort_by_key(|(k, _)| (!(k.starts_with("autoheal:") || k == "Name"), k.clone()));
    carried.truncate(MAX_TAGS - ours.len());
    carried.extend(ours);
    carried
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    pub outcome: SnapshotOutcome,
    /// The snapshot taken by this run.
    pub taken: Option<String>,
    /// Scheduled snapshots deleted by this run.
    pub deleted: Vec<String>,
    /// The newest completed scheduled snapshot before this run: (id, start time in ms).
    pub newest_completed: Option<(String, u64)>,
    pub reason: Option<String>,
    /// The volume snapshotted: the home one, or after a zone failover the restored one.
    pub volume: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOutcome {
    /// A snapshot was requested (and the retention applied).
    Taken,
    /// This event had taken one already: only the retention applied.
    AlreadyTaken,
    /// A call failed; the invocation fails, and Lambda delivers the event again.
    Failed,
}

impl SnapshotOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotOutcome::Taken => "snapshot_taken",
            SnapshotOutcome::AlreadyTaken => "snapshot_already_taken",
            SnapshotOutcome::Failed => "snapshot_failed",
        }
    }
}

/// DeleteSnapshot of a snapshot that is already gone (a retried run deleted it).
const SNAPSHOT_NOT_FOUND: &str = "InvalidSnapshot.NotFound";
/// DeleteSnapshot of a snapshot an AMI uses: "The snapshot snap-... is currently in use by
/// ami-..." (EC2 API Reference, error codes). Someone registered an image from it; it is
/// left alone (and keeps counting against nothing: it is past the retention already).
const SNAPSHOT_IN_USE: &str = "InvalidSnapshot.InUse";

impl Healer {
    /// The volume the stack serves from: after a zone failover the group's
    /// `autoheal:active-volume`, once EBS's records prove it was restored from the home
    /// volume for this group (`crate::provenance`); else the home volume.
    async fn serving_volume(&self) -> Result<String, AwsError> {
        let home = self.settings.volume_id.as_str();
        let group = self.settings.group_name.as_str();
        let Some(g) = aws::describe_group(&self.clients.autoscaling, group).await? else {
            return Ok(home.to_string());
        };
        let Some(active) = g
            .tag(aws::ACTIVE_VOLUME_TAG)
            .filter(|v| !v.is_empty() && *v != home)
        else {
            return Ok(home.to_string());
        };
        match crate::provenance::prove(&self.clients.ec2, active, home, None, group).await? {
            Ok(()) => {
                info!(
                    volume = active,
                    home, "the stack serves from a restored volume: snapshotting it"
                );
                Ok(active.to_string())
            }
            Err(why) => {
                warn!(pointer = active, reason = %why, "the group's active-volume fails the provenance check: snapshotting the home volume");
                Ok(home.to_string())
            }
        }
    }

    /// One scheduled run (module docs). Never fails the invocation itself: the report's
    /// outcome says whether it should (then Lambda delivers the event again, and the event
    /// id keeps the retry from taking a second snapshot).
    pub async fn snapshot(&self, run: &ScheduledRun) -> SnapshotReport {
        let mut report = SnapshotReport {
            outcome: SnapshotOutcome::Failed,
            taken: None,
            deleted: Vec::new(),
            newest_completed: None,
            reason: None,
            volume: None,
        };
        match self.snapshot_steps(run, &mut report).await {
            Ok(outcome) => report.outcome = outcome,
            Err(e) => {
                warn!(error = %e, "scheduled snapshot run failed");
                report.reason = Some(e.to_string());
            }
        }
        report
    }

    async fn snapshot_steps(
        &self,
        run: &ScheduledRun,
        report: &mut SnapshotReport,
    ) -> Result<SnapshotOutcome, AwsError> {
        let ec2 = &self.clients.ec2;
        let volume_id = self.serving_volume().await?;
        let volume_id = volume_id.as_str();
        let home = volume_id == self.settings.volume_id;
        report.volume = Some(volume_id.to_string());
        let (existing, volume) = tokio::join!(
            aws::describe_snapshots(ec2, volume_id, (KIND_TAG, KIND_SCHEDULED)),
            aws::describe_volume(ec2, volume_id),
        );
        let existing = existing?;
        let decided = plan(&existing, run.event_id.as_deref(), run.settings.retention);
        report.newest_completed = decided
            .newest_completed
            .as_ref()
            .map(|s| (s.snapshot_id.clone(), s.start_time_ms));
        info!(
            volume = volume_id,
            scheduled_snapshots = existing.len(),
            newest_completed = decided
                .newest_completed
                .as_ref()
                .map(|s| s.snapshot_id.as_str()),
            take = decided.take,
            to_delete = decided.delete.len(),
            "scheduled snapshot run"
        );
        let outcome = if decided.take {
            let tags = snapshot_tags(&volume?.tags, volume_id, run.event_id.as_deref());
            let description = format!(
                "autoheal scheduled snapshot of {volume_id} ({})",
                self.settings.group_name
            );
            let id = aws::create_snapshot(ec2, volume_id, &description, &tags).await?;
            info!(
                volume = volume_id,
                snapshot = id,
                "scheduled snapshot requested"
            );
            report.taken = Some(id);
            SnapshotOutcome::Taken
        } else {
            info!(
                volume = volume_id,
                event_id = run.event_id.as_deref(),
                "this event already took its snapshot: only the retention applies"
            );
            SnapshotOutcome::AlreadyTaken
        };
        if !home && !decided.delete.is_empty() {
            // The role may delete only snapshots EBS records as taken of the home volume
            // (ec2:ParentVolume names one volume, written before this one existed; deleting
            // by tag alone is not allowed): after a failover the retention is not applied.
            warn!(
                volume = volume_id,
                beyond_retention = decided.delete.len(),
                "serving a restored volume: its snapshots beyond the retention are kept (pruned only on the home volume)"
            );
            return Ok(outcome);
        }
        for id in &decided.delete {
            match aws::delete_snapshot(ec2, id).await {
                Ok(()) => {
                    info!(
                        snapshot = id,
                        retention = run.settings.retention,
                        "old scheduled snapshot deleted"
                    );
                    report.deleted.push(id.clone());
                }
                Err(e) if e.code.as_deref() == Some(SNAPSHOT_NOT_FOUND) => {
                    info!(snapshot = id, "old scheduled snapshot already gone");
                }
                Err(e) if e.code.as_deref() == Some(SNAPSHOT_IN_USE) => {
                    warn!(snapshot = id, error = %e, "old scheduled snapshot is in use (an AMI?): kept");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, state: &str, start: u64, event: Option<&str>) -> SnapshotFacts {
        SnapshotFacts {
            snapshot_id: id.into(),
            state: state.into(),
            start_time_ms: start,
            tags: event
                .map(|e| vec![(EVENT_ID_TAG.to_string(), e.to_string())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn keeps_the_newest_completed_and_deletes_the_oldest_beyond_retention() {
        let existing = [
            snap("snap-1", "completed", 1_000, Some("e1")),
            snap("snap-4", "completed", 4_000, Some("e4")),
            snap("snap-2", "completed", 2_000, Some("e2")),
            snap("snap-3", "completed", 3_000, Some("e3")),
            snap("snap-5", "pending", 5_000, Some("e5")),
            snap("snap-0", "error", 500, Some("e0")),
        ];
        let p = plan(&existing, Some("e6"), 2);
        assert!(p.take);
        // Kept: snap-4, snap-3 (the pending and the failed one are not counted, not deleted).
        assert_eq!(p.delete, ["snap-1", "snap-2"]);
        assert_eq!(p.newest_completed.unwrap().snapshot_id, "snap-4");
        // Retention larger than what exists: nothing goes.
        let p = plan(&existing, Some("e6"), 10);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn pending_or_failed_snapshots_never_push_out_a_completed_one() {
        let existing = [
            snap("snap-1", "completed", 1_000, None),
            snap("snap-2", "pending", 2_000, None),
            snap("snap-3", "error", 3_000, None),
            snap("snap-4", "pending", 4_000, None),
        ];
        let p = plan(&existing, None, 1);
        assert!(p.delete.is_empty());
        assert_eq!(p.newest_completed.unwrap().snapshot_id, "snap-1");
    }

    #[test]
    fn a_repeated_event_takes_no_second_snapshot() {
        let existing = [snap("snap-1", "pending", 1_000, Some("e1"))];
        assert!(!plan(&existing, Some("e1"), 3).take);
        assert!(plan(&existing, Some("e2"), 3).take);
        // No id to compare: take it (a second snapshot is cheaper than a missing one).
        assert!(plan(&existing, None, 3).take);
        assert!(plan(&[], Some("e1"), 3).newest_completed.is_none());
    }

    #[test]
    fn snapshots_carry_the_volumes_lineage_but_not_its_markers() {
        let volume = [
            ("autoheal:stack".to_string(), "app".to_string()),
            ("Name".to_string(), "app-data".to_string()),
            ("team".to_string(), "billing".to_string()),
            ("autoheal:unused".to_string(), "true".to_string()),
            ("aws:cloudformation:stack-name".to_string(), "x".to_string()),
            (KIND_TAG.to_string(), "forged".to_string()),
        ];
        let tags = snapshot_tags(&volume, "vol-0123abcd", Some("e1"));
        let get = |k: &str| {
            tags.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("autoheal:stack"), Some("app"));
        assert_eq!(get("team"), Some("billing"));
        assert_eq!(get("Name"), Some("app-data"));
        assert_eq!(get("autoheal:unused"), None);
        assert_eq!(get("aws:cloudformation:stack-name"), None);
        assert_eq!(get(KIND_TAG), Some(KIND_SCHEDULED));
        assert_eq!(get(SOURCE_VOLUME_TAG), Some("vol-0123abcd"));
        assert_eq!(get(EVENT_ID_TAG), Some("e1"));
        assert_eq!(tags.iter().filter(|(k, _)| k == KIND_TAG).count(), 1);
    }

    #[test]
    fn never_more_than_fifty_tags_and_ours_always_present() {
        let mut volume: Vec<(String, String)> = (0..60)
            .map(|i| (format!("user-{i:02}"), "v".to_string()))
            .collect();
        volume.push(("autoheal:stack".into(), "app".into()));
        let tags = snapshot_tags(&volume, "vol-0123abcd", Some("e1"));
        assert_eq!(tags.len(), 50);
        for key in ["autoheal:stack", KIND_TAG, SOURCE_VOLUME_TAG, EVENT_ID_TAG] {
            assert!(tags.iter().any(|(k, _)| k == key), "{key} missing");
        }
    }
}
