//! One invocation: classify the event, heal a launch or snapshot the volume if it is ours,
//! write the metric line, answer.

use std::time::{Instant, SystemTime};

use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{json, Map, Value};
use tracing::{error, info, info_span, Instrument};

use crate::deadline::{deadline_instant, epoch_ms};
use crate::event::{
    classify_failover_check, classify_for, classify_scheduled, Classification, EventError, Fired,
    Identity, RuleFiring, Scheduled, ScheduledRun,
};
use crate::failover::{failover_emf_line, FailoverOutcome};
use crate::heal::{HealReport, Healer};
use crate::metrics::{self, Outcome, Record};
use crate::settings::FailoverSettings;
use crate::snapshot::SnapshotOutcome;

/// An invocation that failed. Lambda reports it (and, for EventBridge's asynchronous
/// invocations, retries the event: harmless, the heal is idempotent).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("could not complete the lifecycle action of {instance}: {reason}")]
    Completion { instance: String, reason: String },
    /// Not a failure of the heal: the error makes Lambda deliver the event again.
    #[error("still waiting to heal {instance}: {reason}")]
    StillWaiting { instance: String, reason: String },
    /// A scheduled snapshot run failed: Lambda delivers the event again (the event's id keeps
    /// the retry from taking a second snapshot).
    #[error("scheduled snapshot of {volume} failed: {reason}")]
    Snapshot { volume: String, reason: String },
    /// A failover check's call failed (every step is idempotent: a retry, or the next
    /// minute's run, carries on).
    #[error("failover check of {group} failed: {reason}")]
    Failover { group: String, reason: String },
}

impl HandlerError {
    /// `errorType` in Lambda's error report (instead of a Rust type name).
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Event(_) => "Autoheal.MalformedEvent",
            HandlerError::Completion { .. } => "Autoheal.CompletionFailed",
            HandlerError::StillWaiting { .. } => "Autoheal.StillWaiting",
            HandlerError::Snapshot { .. } => "Autoheal.SnapshotFailed",
            HandlerError::Failover { .. } => "Autoheal.FailoverCheckFailed",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

impl Healer {
    /// The Lambda entry point: the deadline comes from the invocation's context.
    pub async fn invoke(&self, event: LambdaEvent<Value>) -> Result<Value, HandlerError> {
        let deadline = deadline_instant(event.context.deadline, SystemTime::now(), Instant::now());
        // Boxed: the SDK's futures nest deeply, and inlining them all into the runtime's
        // future overflows the compiler's layout query depth.
        let identity = Identity::from_function_arn(&event.context.invoked_function_arn);
        Box::pin(self.handle(
            &event.payload,
            deadline,
            &event.context.request_id,
            identity.as_ref(),
        ))
        .await
    }

    /// Handles `payload` before `deadline`: the whole invocation minus the Lambda runtime, so
    /// tests can drive it directly. `identity`: the function's own account and region (from
    /// the invoked function's ARN; events of another account, region or group ARN are refused).
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: Instant,
        request_id: &str,
        identity: Option<&Identity>,
    ) -> Result<Value, HandlerError> {
        let started = Instant::now();
        let group = self.settings.group_name.as_str();
        let record = |outcome, heal_seconds, properties| Record {
            timestamp_ms: epoch_ms(SystemTime::now()),
            group_name: group,
            outcome,
            heal_seconds,
            properties,
        };
        if let Some(failover) = &self.features.failover {
            // The failover function: its check rule's events only.
            let why = match classify_failover_check(payload, failover, identity) {
                Ok(Fired::Run(firing)) => {
                    return self.failover_run(&firing, failover, request_id).await
                }
                Ok(Fired::Refuse(reason)) => reason,
                Ok(Fired::NotScheduled) => {
                    "not a scheduled event: the failover function acts on its check rule only"
                        .into()
                }
                Err(e) => e.to_string(),
            };
            info!(request_id, reason = %why, "event refused by the failover function");
            metrics::emit(&record(
                Outcome::Refused,
                None,
                vec![("requestId", json!(request_id)), ("reason", json!(why))],
            ));
            return Ok(json!({"outcome": Outcome::Refused.as_str(), "reason": why}));
        }
        match classify_scheduled(payload, self.features.snapshots.as_ref(), identity) {
            Ok(Scheduled::NotScheduled) => {}
            Ok(Scheduled::Run(run)) => return self.scheduled_snapshot(&run, request_id).await,
            Ok(Scheduled::Refuse(reason)) => {
                info!(request_id, reason = %reason, "scheduled event refused: not this function's snapshot schedule");
                metrics::emit(&record(
                    Outcome::Refused,
                    None,
                    vec![("requestId", json!(request_id)), ("reason", json!(reason))],
                ));
                return Ok(json!({"outcome": Outcome::Refused.as_str(), "reason": reason}));
            }
            // Malformed envelopes are reported by the launch classification below.
            Err(_) => {}
        }
        let action = match classify_for(payload, &self.settings, identity) {
            Ok(Classification::Accept(action)) => action,
            Ok(Classification::Refuse(reason)) => {
                info!(request_id, reason = %reason, "event refused: not a launch of this group through this hook");
                metrics::emit(&record(
                    Outcome::Refused,
                    None,
                    vec![("requestId", json!(request_id)), ("reason", json!(reason))],
                ));
                return Ok(json!({"outcome": Outcome::Refused.as_str(), "reason": reason}));
            }
            Err(e) => {
                error!(request_id, error = %e, "malformed event");
                metrics::emit(&record(
                    Outcome::Malformed,
                    None,
                    vec![
                        ("requestId", json!(request_id)),
                        ("reason", json!(e.to_string())),
                    ],
                ));
                return Err(e.into());
            }
        };
        let span = info_span!(
            "heal",
            request_id,
            instance = %action.instance_id,
            volume = %self.settings.volume_id,
            allocation = %self.settings.allocation_id,
            // Only in interface mode (an unset field is left out of the log lines).
            network_interface = self.features.network_interface_id.as_deref(),
        );
        let report = async {
            info!(event_id = action.event_id.as_deref(), "healing launch");
            let report = self.heal(&action, deadline).await;
            info!(
                outcome = report.outcome.as_str(),
                reason = report.reason.as_deref(),
                total_ms = started.elapsed().as_millis() as u64,
                "heal finished"
            );
            report
        }
        .instrument(span)
        .await;
        let heal_seconds = started.elapsed().as_secs_f64();
        let response = self.response(&action.instance_id, &report, heal_seconds);
        let properties = [
            "instance",
            "volume",
            "allocation",
            "networkInterface",
            "reason",
            "publicIp",
        ]
        .into_iter()
        .map(|k| (k, response.get(k).cloned().unwrap_or(Value::Null)))
        .chain([
            ("requestId", json!(request_id)),
            // Also for failures, which the HealSeconds metric leaves out.
            (
                "elapsedSeconds",
                json!((heal_seconds * 1000.0).round() / 1000.0),
            ),
        ])
        .collect();
        let metric_seconds = report.outcome.healed().then_some(heal_seconds);
        metrics::emit(&record(report.outcome, metric_seconds, properties));
        match report.outcome {
            Outcome::CompletionFailed => {
                return Err(HandlerError::Completion {
                    instance: action.instance_id,
                    reason: report.reason.unwrap_or_default(),
                })
            }
            Outcome::Waiting => {
                return Err(HandlerError::StillWaiting {
                    instance: action.instance_id,
                    reason: report.reason.unwrap_or_default(),
                })
            }
            _ => {}
        }
        Ok(response)
    }

    /// One run of the snapshot schedule: the snapshot, the retention, one metric line.
    async fn scheduled_snapshot(
        &self,
        run: &ScheduledRun,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        let span = info_span!("snapshot", request_id);
        let report = self.snapshot(run).instrument(span).await;
        let volume = report.volume.as_deref().unwrap_or(&self.settings.volume_id);
        let now_ms = epoch_ms(SystemTime::now());
        metrics::write_line(metrics::snapshot_emf_line(
            now_ms,
            run.event_time_ms.unwrap_or(now_ms),
            &self.settings.group_name,
            &report,
        ));
        if report.outcome == SnapshotOutcome::Failed {
            return Err(HandlerError::Snapshot {
                volume: volume.to_string(),
                reason: report.reason.unwrap_or_default(),
            });
        }
        Ok(json!({
            "outcome": report.outcome.as_str(),
            "volume": volume,
            "snapshotId": report.taken,
            "deletedSnapshots": report.deleted,
            "newestCompletedSnapshot": report.newest_completed.as_ref().map(|(id, _)| id),
            "eventId": run.event_id,
        }))
    }

    /// One run of the failover check: the decision, one metric line.
    async fn failover_run(
        &self,
        firing: &RuleFiring,
        settings: &FailoverSettings,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        let group = self.settings.group_name.as_str();
        let span = info_span!("failover_check", request_id, group);
        let report = self.failover_check(firing, settings).instrument(span).await;
        info!(
            request_id,
            outcome = report.outcome.as_str(),
            reason = %report.reason,
            "failover check finished"
        );
        metrics::write_line(failover_emf_line(
            epoch_ms(SystemTime::now()),
            group,
            &report,
        ));
        if report.outcome == FailoverOutcome::Failed {
            return Err(HandlerError::Failover {
                group: group.to_string(),
                reason: report.reason,
            });
        }
        Ok(json!({
            "outcome": report.outcome.as_str(),
            "reason": report.reason,
            "zone": report.zone,
            "targetZone": report.target_zone,
            "snapshotId": report.snapshot_id,
            "restoredVolume": report.restored_volume,
            "failoverSeconds": report.duration_s,
            "eventId": firing.event_id,
        }))
    }

    fn response(&self, instance: &str, report: &HealReport, heal_seconds: f64) -> Value {
        let steps: Map<String, Value> = report
            .steps
            .iter()
            .map(|(name, took)| (name.to_string(), json!(took.as_millis() as u64)))
            .collect();
        json!({
            "outcome": report.outcome.as_str(),
            "instance": instance,
            "volume": report.volume_id.as_deref().unwrap_or(&self.settings.volume_id),
            "allocation": self.settings.allocation_id,
            // null without AUTOHEAL_NETWORK_INTERFACE_ID (then also absent from the metric line).
            "networkInterface": self.features.network_interface_id,
            "publicIp": report.public_ip,
            "reason": report.reason,
            "stepsMs": steps,
            "healSeconds": heal_seconds,
        })
    }
}
