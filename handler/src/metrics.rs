//! One CloudWatch Embedded Metric Format line per invocation. Lambda sends stdout to
//! CloudWatch Logs, which turns a log event holding this JSON object into metrics: no
//! PutMetricData call, no extra permission, no latency.
//!
//! Namespace `Autoheal`, dimension `AutoScalingGroupName`; metrics `HealSeconds` (Seconds,
//! only for successful heals), `Healed` and `PermanentFailure` (Count); `outcome`, the ids
//! (`instance`, `volume`, `allocation`, and `networkInterface` only when
//! `AUTOHEAL_NETWORK_INTERFACE_ID` is set), `publicIp`, `reason` and `elapsedSeconds` are plain
//! properties (searchable in Logs Insights, not dimensions). A heal's steps are not in the
//! line: they are in the function's response (`stepsMs`: `wait_running`, `attach_volume`,
//! `attach_interface` in interface mode, `associate_address`, `complete`) and the logs.

use std::io::Write;

use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "Autoheal";

/// What the invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Volume, interface (when configured) and address in place, CONTINUE sent.
    Healed,
    /// Everything was in place and the action was already completed (a repeated event).
    AlreadyCompleted,
    /// ABANDON sent: the group replaces the instance.
    Abandoned,
    /// The lifecycle action disappeared (timed out or completed elsewhere) while healing.
    ActionGone,
    /// The instance was terminated (or is shutting down) before its action was completed: the
    /// action ended with it and the group launches another. Not a failure of the heal, so
    /// neither `Healed` nor `PermanentFailure` counts it (a relaunch-loop alarm must not fire
    /// because someone terminated an instance mid-heal).
    InstanceTerminated,
    /// Not our group / hook / transition / source: nothing done.
    Refused,
    /// The instance is not a member of our group (or never became visible): nothing done.
    NotMember,
    /// The event could not be parsed.
    Malformed,
    /// The heal needed to complete the action but could not reach Auto Scaling.
    CompletionFailed,
    /// Out of time while the previous holder of the volume (or of the network interface) was
    /// still going away: the hook got a heartbeat and the invocation failed so that Lambda
    /// delivers the event again. Neither a heal nor a permanent failure.
    Waiting,
    /// The heal failed before the instance was confirmed as the group's (say, no permission
    /// to describe it): nothing was completed, the hook's default result applies.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Healed => "healed",
            Outcome::AlreadyCompleted => "already_completed",
            Outcome::Abandoned => "abandoned",
            Outcome::ActionGone => "action_gone",
            Outcome::InstanceTerminated => "instance_terminated",
            Outcome::Refused => "refused",
            Outcome::NotMember => "not_member",
            Outcome::Malformed => "malformed",
            Outcome::CompletionFailed => "completion_failed",
            Outcome::Failed => "failed",
            Outcome::Waiting => "waiting",
        }
    }

    pub fn healed(self) -> bool {
        self == Outcome::Healed
    }

    /// Failures that retrying the same event cannot fix.
    pub fn permanent_failure(self) -> bool {
        matches!(
            self,
            Outcome::Abandoned | Outcome::CompletionFailed | Outcome::Failed
        )
    }
}

#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub timestamp_ms: u64,
    pub group_name: &'a str,
    pub outcome: Outcome,
    /// From the start of the invocation to CONTINUE; `None` unless the outcome is `Healed`,
    /// so the statistic is the time a successful heal takes (failures are counted apart).
    pub heal_seconds: Option<f64>,
    /// Extra properties: instance, volume, allocation, request id, reason.
    pub properties: Vec<(&'static str, Value)>,
}

/// The EMF JSON object, as one line (no newline).
pub fn emf_line(r: &Record<'_>) -> String {
    let mut metrics = Vec::new();
    let mut root = Map::new();
    if let Some(secs) = r.heal_seconds {
        metrics.push(json!({"Name": "HealSeconds", "Unit": "Seconds"}));
        // Millisecond precision is plenty and keeps the line short.
        root.insert(
            "HealSeconds".into(),
            json!((secs * 1000.0).round() / 1000.0),
        );
    }
    metrics.push(json!({"Name": "Healed", "Unit": "Count"}));
    metrics.push(json!({"Name": "PermanentFailure", "Unit": "Count"}));
    root.insert("Healed".into(), json!(u8::from(r.outcome.healed())));
    root.insert(
        "PermanentFailure".into(),
        json!(u8::from(r.outcome.permanent_failure())),
    );
    root.insert("AutoScalingGroupName".into(), json!(r.group_name));
    root.insert("outcome".into(), json!(r.outcome.as_str()));
    for (k, v) in &r.properties {
        if !v.is_null() {
            root.insert((*k).into(), v.clone());
        }
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": r.timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["AutoScalingGroupName"]],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// The line of one scheduled snapshot run: `SnapshotAgeSeconds` (Seconds: the age of the
/// newest completed scheduled snapshot before the run, left out when there is none),
/// `SnapshotTaken` and `SnapshotFailed` (Count), same namespace and dimension as the heal's;
/// `outcome`, `snapshotId`, `deletedSnapshots` and `reason` as properties.
/// `aws_now_ms`: "now" on AWS's clock (the scheduled event's time, which is the run's
/// scheduled moment), against which the newest snapshot's StartTime is aged: the function's
/// own clock is not the one EBS stamped the snapshot with.
pub fn snapshot_emf_line(
    timestamp_ms: u64,
    aws_now_ms: u64,
    group_name: &str,
    report: &crate::snapshot::SnapshotReport,
) -> String {
    use crate::snapshot::SnapshotOutcome;
    let mut metrics = Vec::new();
    let mut root = Map::new();
    if let Some((_, started_ms)) = &report.newest_completed {
        metrics.push(json!({"Name": "SnapshotAgeSeconds", "Unit": "Seconds"}));
        let age_ms = aws_now_ms.saturating_sub(*started_ms);
        root.insert("SnapshotAgeSeconds".into(), json!(age_ms / 1000));
    }
    metrics.push(json!({"Name": "SnapshotTaken", "Unit": "Count"}));
    metrics.push(json!({"Name": "SnapshotFailed", "Unit": "Count"}));
    root.insert(
        "SnapshotTaken".into(),
        json!(u8::from(report.taken.is_some())),
    );
    root.insert(
        "SnapshotFailed".into(),
        json!(u8::from(report.outcome == SnapshotOutcome::Failed)),
    );
    root.insert("AutoScalingGroupName".into(), json!(group_name));
    root.insert("outcome".into(), json!(report.outcome.as_str()));
    if let Some(id) = &report.taken {
        root.insert("snapshotId".into(), json!(id));
    }
    root.insert("deletedSnapshots".into(), json!(report.deleted));
    if let Some(reason) = &report.reason {
        root.insert("reason".into(), json!(reason));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["AutoScalingGroupName"]],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root).to_string()
}

/// Writes the line to stdout in one write, so it never interleaves with a log line.
pub fn emit(r: &Record<'_>) {
    write_line(emf_line(r));
}

/// Writes one EMF line (see [`emit`]).
pub fn write_line(mut line: String) {
    line.push('\n');
    let mut out = std::io::stdout().lock();
    // Nothing sensible to do if stdout is gone; the invocation's result is unaffected.
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, secs: Option<f64>) -> Record<'static> {
        Record {
            timestamp_ms: 1_714_564_800_123,
            group_name: "web",
            outcome,
            heal_seconds: secs,
            properties: vec![("instance", json!("i-0123abcd")), ("reason", Value::Null)],
        }
    }

    #[test]
    fn snapshot_line_reports_the_age_of_the_newest_completed_snapshot() {
        use crate::snapshot::{SnapshotOutcome, SnapshotReport};
        let report = SnapshotReport {
            outcome: SnapshotOutcome::Taken,
            taken: Some("snap-2".into()),
            deleted: vec!["snap-0".into()],
            newest_completed: Some(("snap-1".into(), 1_000_000)),
            reason: None,
            volume: None,
        };
        let v: Value =
            serde_json::from_str(&snapshot_emf_line(4_601_500, 4_601_500, "web", &report)).unwrap();
        assert_eq!(v["SnapshotAgeSeconds"], 3_601);
        assert_eq!(
            (v["SnapshotTaken"].as_u64(), v["SnapshotFailed"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(v["outcome"], "snapshot_taken");
        assert_eq!(v["snapshotId"], "snap-2");
        assert_eq!(v["deletedSnapshots"], json!(["snap-0"]));
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Autoheal");
        for m in cw["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        // No completed snapshot yet: no age (not a zero that would look fresh); a failure counts.
        let failed = SnapshotReport {
            outcome: SnapshotOutcome::Failed,
            taken: None,
            deleted: vec![],
            newest_completed: None,
            reason: Some("CreateSnapshot: UnauthorizedOperation".into()),
            volume: None,
        };
        let v: Value =
            serde_json::from_str(&snapshot_emf_line(4_601_500, 4_601_500, "web", &failed)).unwrap();
        assert!(v.get("SnapshotAgeSeconds").is_none());
        assert_eq!(v["SnapshotFailed"], 1);
        assert_eq!(v["SnapshotTaken"], 0);
        assert_eq!(v["reason"], "CreateSnapshot: UnauthorizedOperation");
    }

    #[test]
    fn emf_shape() {
        let line = emf_line(&record(Outcome::Healed, Some(1.23456)));
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let aws = &v["_aws"];
        assert_eq!(aws["Timestamp"], 1_714_564_800_123u64);
        let cw = &aws["CloudWatchMetrics"];
        assert_eq!(cw.as_array().unwrap().len(), 1);
        assert_eq!(cw[0]["Namespace"], "Autoheal");
        assert_eq!(cw[0]["Dimensions"], json!([["AutoScalingGroupName"]]));
        assert_eq!(
            cw[0]["Metrics"],
            json!([
                {"Name": "HealSeconds", "Unit": "Seconds"},
                {"Name": "Healed", "Unit": "Count"},
                {"Name": "PermanentFailure", "Unit": "Count"}
            ])
        );
        // Every declared metric and dimension is a top-level member (EMF requires it).
        for m in cw[0]["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        assert_eq!(v["AutoScalingGroupName"], "web");
        assert_eq!(v["HealSeconds"], 1.235);
        assert_eq!(v["Healed"], 1);
        assert_eq!(v["PermanentFailure"], 0);
        assert_eq!(v["outcome"], "healed");
        assert_eq!(v["instance"], "i-0123abcd");
        assert!(v.get("reason").is_none(), "null properties are left out");
    }

    #[test]
    fn abandon_is_a_permanent_failure_and_refusals_have_no_duration() {
        let v: Value =
            serde_json::from_str(&emf_line(&record(Outcome::Abandoned, Some(3.0)))).unwrap();
        assert_eq!(
            (v["Healed"].as_u64(), v["PermanentFailure"].as_u64()),
            (Some(0), Some(1))
        );
        assert_eq!(v["outcome"], "abandoned");

        let v: Value = serde_json::from_str(&emf_line(&record(Outcome::Refused, None))).unwrap();
        assert!(v.get("HealSeconds").is_none());
        let names: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Healed", "PermanentFailure"]);
        assert_eq!(
            (v["Healed"].as_u64(), v["PermanentFailure"].as_u64()),
            (Some(0), Some(0))
        );
    }

    #[test]
    fn outcome_flags() {
        let all = [
            Outcome::Healed,
            Outcome::AlreadyCompleted,
            Outcome::Abandoned,
            Outcome::ActionGone,
            Outcome::InstanceTerminated,
            Outcome::Refused,
            Outcome::NotMember,
            Outcome::Malformed,
            Outcome::CompletionFailed,
            Outcome::Failed,
            Outcome::Waiting,
        ];
        let healed: Vec<_> = all.iter().filter(|o| o.healed()).collect();
        assert_eq!(healed, [&Outcome::Healed]);
        let permanent: Vec<_> = all.iter().filter(|o| o.permanent_failure()).collect();
        assert_eq!(
            permanent,
            [
                &Outcome::Abandoned,
                &Outcome::CompletionFailed,
                &Outcome::Failed
            ]
        );
    }
}
