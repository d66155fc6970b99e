//! The EventBridge event the function is invoked with, and the decision whether to act on it.
//!
//! Auto Scaling sends "EC2 Instance-launch Lifecycle Action" events (source `aws.autoscaling`)
//! when a launch hook puts an instance into `Pending:Wait`:
//!
//! ```json
//! { "version": "0", "id": "…", "detail-type": "EC2 Instance-launch Lifecycle Action",
//!   "source": "aws.autoscaling", "account": "123456789012", "time": "2024-05-01T12:00:00Z",
//!   "region": "eu-west-1", "resources": ["arn:aws:autoscaling:…"],
//!   "detail": { "LifecycleActionToken": "…", "AutoScalingGroupName": "…",
//!               "LifecycleHookName": "…", "EC2InstanceId": "i-…",
//!               "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
//!               "Origin": "EC2", "Destination": "AutoScalingGroup" } }
//! ```
//!
//! [`classify`] makes no AWS call: anything that is not a launch of our group through our hook
//! is refused with a reason (logged by the caller); anything malformed is an error.

use serde::Deserialize;
use serde_json::Value;

use crate::deadline::parse_rfc3339_ms;
use crate::settings::{is_ec2_id, FailoverSettings, Settings, SnapshotSettings};

pub const SOURCE: &str = "aws.autoscaling";
pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
/// Launches into a warm pool have this other destination; they are not served here.
pub const DESTINATION_GROUP: &str = "AutoScalingGroup";

/// The EventBridge envelope; `detail` is parsed only once source and type are ours.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    pub source: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub detail: Value,
}

/// The function's own account and region, from the ARN Lambda invoked it by
/// (`arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub region: String,
}

impl Identity {
    pub fn from_function_arn(arn: &str) -> Option<Identity> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", region, account, "function", ..]
                if !region.is_empty() && account.len() == 12 =>
            {
                Some(Identity {
                    account: account.to_string(),
                    region: region.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// Whether `arn` is the ARN of Auto Scaling group `group` in `identity`'s account and
/// region (`arn:PARTITION:autoscaling:REGION:ACCOUNT:autoScalingGroup:UUID:autoScalingGroupName/NAME`).
fn is_own_group_arn(arn: &str, identity: &Identity, group: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(8, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", _, "autoscaling", region, account, "autoScalingGroup", _, name]
            if *region == identity.region
                && *account == identity.account
                && name.strip_prefix("autoScalingGroupName/") == Some(group)
    )
}

/// `detail` of a lifecycle action event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleDetail {
    pub lifecycle_action_token: String,
    pub auto_scaling_group_name: String,
    pub lifecycle_hook_name: String,
    #[serde(rename = "EC2InstanceId")]
    pub ec2_instance_id: String,
    pub lifecycle_transition: String,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
}

/// A launch this function must heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchAction {
    pub instance_id: String,
    pub token: String,
    pub group_name: String,
    pub hook_name: String,
    /// When Auto Scaling emitted the event (≈ when the hook's timer started), if known.
    pub event_time_ms: Option<u64>,
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    Accept(LaunchAction),
    Refuse(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not valid JSON: {0}")]
    Json(String),
    #[error("the event is not an EventBridge event: {0}")]
    Envelope(String),
    #[error("the lifecycle action detail is malformed: {0}")]
    Detail(String),
    #[error("the event's EC2InstanceId {0:?} is not an instance id")]
    InstanceId(String),
    #[error("the event has an empty LifecycleActionToken")]
    Token,
}

/// Parses `text` as JSON, then [`classify`]s it.
pub fn classify_json(text: &str, settings: &Settings) -> Result<Classification, EventError> {
    let value: Value = serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
    classify(&value, settings)
}

/// Decides whether `event` is a launch of our group through our hook, without knowing the
/// function's own account and region (see [`classify_for`]).
pub fn classify(event: &Value, settings: &Settings) -> Result<Classification, EventError> {
    classify_for(event, settings, None)
}

/// Decides whether `event` is a launch of our group through our hook; with `identity` (the
/// function's own account and region), also that the event comes from that account and
/// region and names our group's ARN: a group of the same name elsewhere (an event bus shared
/// across accounts, a rule copied to another region) is not ours.
pub fn classify_for(
    event: &Value,
    settings: &Settings,
    identity: Option<&Identity>,
) -> Result<Classification, EventError> {
    let envelope = Envelope::deserialize(event).map_err(|e| EventError::Envelope(e.to_string()))?;
    if envelope.source != SOURCE {
        return Ok(Classification::Refuse(format!(
            "source {:?} is not {SOURCE:?}",
            envelope.source
        )));
    }
    if envelope.detail_type != LAUNCH_DETAIL_TYPE {
        return Ok(Classification::Refuse(format!(
            "detail-type {:?} is not {LAUNCH_DETAIL_TYPE:?}",
            envelope.detail_type
        )));
    }
    let detail = LifecycleDetail::deserialize(&envelope.detail)
        .map_err(|e| EventError::Detail(e.to_string()))?;
    if detail.auto_scaling_group_name != settings.group_name {
        return Ok(Classification::Refuse(format!(
            "group {:?} is not this function's group {:?}",
            detail.auto_scaling_group_name, settings.group_name
        )));
    }
    if detail.lifecycle_hook_name != settings.hook_name {
        return Ok(Classification::Refuse(format!(
            "hook {:?} is not this function's hook {:?}",
            detail.lifecycle_hook_name, settings.hook_name
        )));
    }
    if let Some(me) = identity {
        if envelope.account.as_deref() != Some(me.account.as_str()) {
            return Ok(Classification::Refuse(format!(
                "account {:?} is not this function's account {:?}",
                envelope.account, me.account
            )));
        }
        if envelope.region.as_deref() != Some(me.region.as_str()) {
            return Ok(Classification::Refuse(format!(
                "region {:?} is not this function's region {:?}",
                envelope.region, me.region
            )));
        }
        if !envelope
            .resources
            .iter()
            .any(|arn| is_own_group_arn(arn, me, &settings.group_name))
        {
            return Ok(Classification::Refuse(format!(
                "resources {:?} do not name group {:?} of account {} in {}",
                envelope.resources, settings.group_name, me.account, me.region
            )));
        }
    }
    if detail.lifecycle_transition != LAUNCHING {
        return Ok(Classification::Refuse(format!(
            "transition {:?} is not {LAUNCHING:?}",
            detail.lifecycle_transition
        )));
    }
    if let Some(dest) = detail.destination.as_deref() {
        if dest != DESTINATION_GROUP {
            return Ok(Classification::Refuse(format!(
                "destination {dest:?} is not {DESTINATION_GROUP:?} (warm pools are not served)"
            )));
        }
    }
    if !is_ec2_id(&detail.ec2_instance_id, "i-") {
        return Err(EventError::InstanceId(detail.ec2_instance_id));
    }
    if detail.lifecycle_action_token.trim().is_empty() {
        return Err(EventError::Token);
    }
    Ok(Classification::Accept(LaunchAction {
        instance_id: detail.ec2_instance_id,
        token: detail.lifecycle_action_token,
        group_name: detail.auto_scaling_group_name,
        hook_name: detail.lifecycle_hook_name,
        event_time_ms: envelope.time.as_deref().and_then(parse_rfc3339_ms),
        event_id: envelope.id,
    }))
}

/// The source and detail-type of the events an EventBridge schedule rule sends (EventBridge
/// User Guide, "Creating a rule that runs on a schedule": `"source": "aws.events"`,
/// `"detail-type": "Scheduled Event"`, `"resources": [<the rule's ARN>]`, `"detail": {}`).
pub const SCHEDULE_SOURCE: &str = "aws.events";
pub const SCHEDULED_DETAIL_TYPE: &str = "Scheduled Event";

/// A scheduled snapshot run this function must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    /// The event's id: a second delivery of the same event takes no second snapshot.
    pub event_id: Option<String>,
    /// The scheduled time, if the event has a readable one.
    pub event_time_ms: Option<u64>,
    /// The schedule the event is a run of: a run exists only with the function's settings,
    /// so the snapshot code never has to ask whether there are any.
    pub settings: SnapshotSettings,
}

/// What to do with an event, as far as schedules are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    /// Not a scheduled event: the launch classification decides.
    NotScheduled,
    Run(ScheduledRun),
    Refuse(String),
}

/// Whether `rule_arn` is rule `name` on the default bus of `identity`'s account and region
/// (`arn:PARTITION:events:REGION:ACCOUNT:rule/NAME`); without `identity`, any account and
/// region.
fn is_own_rule_arn(rule_arn: &str, identity: Option<&Identity>, name: &str) -> bool {
    let parts: Vec<&str> = rule_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "events", region, account, resource] => {
            resource.strip_prefix("rule/") == Some(name)
                && identity.is_none_or(|me| *region == me.region && *account == me.account)
        }
        _ => false,
    }
}

/// A firing of one named schedule rule of the function's own account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFiring {
    /// The event's id (EventBridge delivers at least once: repeats carry the same id).
    pub event_id: Option<String>,
    /// The scheduled time, if the event has a readable one.
    pub event_time_ms: Option<u64>,
}

/// What to do with an event, as far as one schedule rule is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Not a scheduled event.
    NotScheduled,
    Run(RuleFiring),
    Refuse(String),
}

/// Decides whether `event` is a firing of the schedule rule `rule` (a "Scheduled Event" whose
/// only resource is that rule of the function's own account and region). `rule`: `None` when
/// the function has no such schedule (`what` says which, for the refusal). No AWS call:
/// anyone who may put a rule on the bus can target the function.
fn classify_rule(
    event: &Value,
    rule: Option<&str>,
    what: &str,
    identity: Option<&Identity>,
) -> Result<Fired, EventError> {
    let envelope = Envelope::deserialize(event).map_err(|e| EventError::Envelope(e.to_string()))?;
    if envelope.source != SCHEDULE_SOURCE || envelope.detail_type != SCHEDULED_DETAIL_TYPE {
        return Ok(Fired::NotScheduled);
    }
    let Some(rule) = rule else {
        return Ok(Fired::Refuse(format!(
            "a scheduled event, but this function has no {what}"
        )));
    };
    if envelope.resources.len() != 1 || !is_own_rule_arn(&envelope.resources[0], identity, rule) {
        return Ok(Fired::Refuse(format!(
            "resources {:?} are not exactly rule {:?}{}",
            envelope.resources,
            rule,
            identity
                .map(|me| format!(" of account {} in {}", me.account, me.region))
                .unwrap_or_default()
        )));
    }
    if let Some(me) = identity {
        if envelope.account.as_deref() != Some(me.account.as_str())
            || envelope.region.as_deref() != Some(me.region.as_str())
        {
            return Ok(Fired::Refuse(format!(
                "account {:?} / region {:?} are not this function's {} / {}",
                envelope.account, envelope.region, me.account, me.region
            )));
        }
    }
    Ok(Fired::Run(RuleFiring {
        event_id: envelope.id.filter(|id| !id.is_empty()),
        event_time_ms: envelope.time.as_deref().and_then(parse_rfc3339_ms),
    }))
}

/// Decides whether `event` is a run of this function's snapshot schedule: a "Scheduled Event"
/// whose only resource is the rule [`SnapshotSettings::rule_name`] of the function's own
/// account and region. Refused (no AWS call) when the function has no schedule, or the event
/// names another rule: anyone who may put a rule on the bus can target the function.
pub fn classify_scheduled(
    event: &Value,
    snapshots: Option<&SnapshotSettings>,
    identity: Option<&Identity>,
) -> Result<Scheduled, EventError> {
    let rule = snapshots.map(|s| s.rule_name.as_str());
    Ok(
        match classify_rule(event, rule, "snapshot schedule", identity)? {
            Fired::NotScheduled => Scheduled::NotScheduled,
            Fired::Refuse(reason) => Scheduled::Refuse(reason),
            Fired::Run(firing) => match snapshots {
                Some(settings) => Scheduled::Run(ScheduledRun {
                    event_id: firing.event_id,
                    event_time_ms: firing.event_time_ms,
                    settings: settings.clone(),
                }),
                None => Scheduled::Refuse("this function has no snapshot schedule".into()),
            },
        },
    )
}

/// Decides whether `event` is a run of the failover function's check rule
/// ([`FailoverSettings::rule_name`]). Anything else, launches included, is not the failover
/// function's: `NotScheduled` and `Refuse` both mean "refuse".
pub fn classify_failover_check(
    event: &Value,
    failover: &FailoverSettings,
    identity: Option<&Identity>,
) -> Result<Fired, EventError> {
    classify_rule(
        event,
        Some(failover.rule_name.as_str()),
        "failover check",
        identity,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheduled(resources: Value) -> Value {
        json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2026-12-06T20:00:00Z",
            "region": "ap-southeast-2",
            "resources": resources,
            "detail": {}
        })
    }

    #[test]
    fn a_run_of_our_schedule_is_accepted_and_anything_else_refused() {
        let me = Identity {
            account: "123456789012".into(),
            region: "ap-southeast-2".into(),
        };
        let ours = SnapshotSettings {
            rule_name: "app-snapshot".into(),
            retention: 3,
        };
        let arn = "arn:aws:events:ap-southeast-2:123456789012:rule/app-snapshot";
        let run = classify_scheduled(&scheduled(json!([arn])), Some(&ours), Some(&me)).unwrap();
        assert_eq!(
            run,
            Scheduled::Run(ScheduledRun {
                event_id: Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa".into()),
                event_time_ms: parse_rfc3339_ms("2026-12-06T20:00:00Z"),
                settings: ours.clone(),
            })
        );
        // No schedule configured; another rule; another account; another region; two rules.
        for (event, snapshots) in [
            (scheduled(json!([arn])), None),
            (
                scheduled(json!([
                    "arn:aws:events:ap-southeast-2:123456789012:rule/other"
                ])),
                Some(&ours),
            ),
            (
                scheduled(json!([
                    "arn:aws:events:ap-southeast-2:210987654321:rule/app-snapshot"
                ])),
                Some(&ours),
            ),
            (
                scheduled(json!([
                    "arn:aws:events:us-east-1:123456789012:rule/app-snapshot"
                ])),
                Some(&ours),
            ),
            (
                scheduled(json!([
                    arn,
                    "arn:aws:events:ap-southeast-2:123456789012:rule/other"
                ])),
                Some(&ours),
            ),
            (scheduled(json!([])), Some(&ours)),
        ] {
            assert!(
                matches!(
                    classify_scheduled(&event, snapshots, Some(&me)).unwrap(),
                    Scheduled::Refuse(_)
                ),
                "{event}"
            );
        }
        // The envelope's account must match too.
        let mut forged = scheduled(json!([arn]));
        forged["account"] = json!("210987654321");
        assert!(matches!(
            classify_scheduled(&forged, Some(&ours), Some(&me)).unwrap(),
            Scheduled::Refuse(_)
        ));
        // A launch event is not scheduled: the launch classification decides.
        let mut launch = scheduled(json!([arn]));
        launch["source"] = json!("aws.autoscaling");
        assert_eq!(
            classify_scheduled(&launch, Some(&ours), Some(&me)).unwrap(),
            Scheduled::NotScheduled
        );
        assert!(classify_scheduled(&json!({"detail": 1}), Some(&ours), None).is_err());
    }

    fn settings() -> Settings {
        Settings {
            volume_id: "vol-0123abcd".into(),
            allocation_id: "eipalloc-0123abcd".into(),
            device_name: "/dev/sdf".into(),
            group_name: "web".into(),
            hook_name: "web-launch".into(),
            hook_timeout: None,
        }
    }

    fn launch() -> Value {
        json!({
            "version": "0",
            "id": "12345678-1234-1234-1234-123456789012",
            "detail-type": "EC2 Instance-launch Lifecycle Action",
            "source": "aws.autoscaling",
            "account": "123456789012",
            "time": "2024-05-01T12:00:00Z",
            "region": "eu-west-1",
            "resources": ["arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:0f1e2d3c-aaaa-bbbb-cccc-123456789012:autoScalingGroupName/web"],
            "detail": {
                "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
                "AutoScalingGroupName": "web",
                "LifecycleHookName": "web-launch",
                "EC2InstanceId": "i-0123456789abcdef0",
                "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                "NotificationMetadata": "x",
                "Origin": "EC2",
                "Destination": "AutoScalingGroup"
            }
        })
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut event = launch();
        let mut at = &mut event;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        event
    }

    fn refused(event: &Value) -> String {
        match classify(event, &settings()) {
            Ok(Classification::Refuse(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn own_group_launch_is_accepted() {
        let Classification::Accept(a) = classify(&launch(), &settings()).unwrap() else {
            panic!("refused")
        };
        assert_eq!(a.instance_id, "i-0123456789abcdef0");
        assert_eq!(a.token, "87654321-4321-4321-4321-210987654321");
        assert_eq!(a.group_name, "web");
        assert_eq!(a.hook_name, "web-launch");
        assert_eq!(a.event_time_ms, Some(1_714_564_800_000));
        assert_eq!(
            a.event_id.as_deref(),
            Some("12345678-1234-1234-1234-123456789012")
        );
        // Origin/Destination are optional (older events have neither); a warm pool's
        // instance entering the group (Origin WarmPool) is still a launch into the group.
        let mut e = launch();
        e["detail"].as_object_mut().unwrap().remove("Destination");
        e["detail"].as_object_mut().unwrap().remove("Origin");
        assert!(matches!(
            classify(&e, &settings()),
            Ok(Classification::Accept(_))
        ));
        let e = with(&["detail", "Origin"], json!("WarmPool"));
        assert!(matches!(
            classify(&e, &settings()),
            Ok(Classification::Accept(_))
        ));
    }

    #[test]
    fn classification_table() {
        let cases: &[(&[&str], Value, &str)] = &[
            (
                &["detail", "AutoScalingGroupName"],
                json!("other"),
                "group \"other\"",
            ),
            (&["source"], json!("aws.ec2"), "source \"aws.ec2\""),
            (&["source"], json!("my.app"), "source"),
            (
                &["detail-type"],
                json!("EC2 Instance-terminate Lifecycle Action"),
                "detail-type",
            ),
            (
                &["detail-type"],
                json!("EC2 Instance Launch Successful"),
                "detail-type",
            ),
            (
                &["detail", "LifecycleTransition"],
                json!("autoscaling:EC2_INSTANCE_TERMINATING"),
                "transition",
            ),
            (
                &["detail", "LifecycleHookName"],
                json!("other-hook"),
                "hook",
            ),
            (&["detail", "Destination"], json!("WarmPool"), "destination"),
        ];
        for (path, value, want) in cases {
            let reason = refused(&with(path, value.clone()));
            assert!(reason.contains(want), "{path:?}={value}: {reason}");
        }
    }

    #[test]
    fn refusals_do_not_need_a_valid_detail() {
        // Another source's event is refused on the envelope alone.
        let e = json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                       "detail": {"instance-id": "i-0123abcd", "state": "running"}});
        assert!(refused(&e).contains("source"));
    }

    #[test]
    fn malformed_events_are_errors() {
        let s = settings();
        assert!(matches!(
            classify_json("{not json", &s),
            Err(EventError::Json(_))
        ));
        assert!(matches!(classify_json("", &s), Err(EventError::Json(_))));
        for e in [
            json!("hello"),
            json!(null),
            json!([]),
            json!({}),
            json!({"source": 1}),
        ] {
            assert!(
                matches!(classify(&e, &s), Err(EventError::Envelope(_))),
                "{e}"
            );
        }
        let mut no_token = launch();
        no_token["detail"]
            .as_object_mut()
            .unwrap()
            .remove("LifecycleActionToken");
        assert!(matches!(
            classify(&no_token, &s),
            Err(EventError::Detail(_))
        ));
        let no_detail = with(&["detail"], json!(null));
        assert!(matches!(
            classify(&no_detail, &s),
            Err(EventError::Detail(_))
        ));
        let bad_instance = with(&["detail", "EC2InstanceId"], json!("i-XYZ; rm -rf"));
        assert!(matches!(
            classify(&bad_instance, &s),
            Err(EventError::InstanceId(_))
        ));
        let number_instance = with(&["detail", "EC2InstanceId"], json!(42));
        assert!(matches!(
            classify(&number_instance, &s),
            Err(EventError::Detail(_))
        ));
        let blank_token = with(&["detail", "LifecycleActionToken"], json!("  "));
        assert_eq!(classify(&blank_token, &s), Err(EventError::Token));
        let text = classify_json("{not json", &s).unwrap_err().to_string();
        assert!(text.contains("not valid JSON"), "{text}");
    }

    #[test]
    fn unparsable_time_is_unknown_not_an_error() {
        let e = with(&["time"], json!("yesterday"));
        let Classification::Accept(a) = classify(&e, &settings()).unwrap() else {
            panic!("refused")
        };
        assert_eq!(a.event_time_ms, None);
    }

    fn me() -> Identity {
        Identity::from_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:web-attach")
            .unwrap()
    }

    #[test]
    fn the_identity_comes_from_the_invoked_function_arn() {
        assert_eq!(
            me(),
            Identity {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            }
        );
        let qualified = Identity::from_function_arn(
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f:$LATEST",
        );
        assert_eq!(qualified.map(|i| i.region), Some("cn-north-1".to_string()));
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:eu-west-1:12:function:f",
        ] {
            assert_eq!(Identity::from_function_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_of_another_account_region_or_group_arn_are_refused() {
        let s = settings();
        assert!(matches!(
            classify_for(&launch(), &s, Some(&me())).unwrap(),
            Classification::Accept(_)
        ));
        let other_group_arn = "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:0f1e2d3c-aaaa-bbbb-cccc-123456789012:autoScalingGroupName/web-2";
        for (event, why) in [
            (with(&["account"], json!("210987654321")), "account"),
            (with(&["region"], json!("us-east-1")), "region"),
            (with(&["resources"], json!([other_group_arn])), "resources"),
            (with(&["resources"], json!([])), "resources"),
            (
                with(
                    &["resources"],
                    json!(["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:u:autoScalingGroupName/web"]),
                ),
                "resources",
            ),
        ] {
            match classify_for(&event, &s, Some(&me())).unwrap() {
                Classification::Refuse(reason) => assert!(reason.starts_with(why), "{reason}"),
                other => panic!("{why}: {other:?}"),
            }
            // Without the identity (unknown), only the group, hook and transition count.
            assert!(matches!(
                classify(&event, &s).unwrap(),
                Classification::Accept(_)
            ));
        }
    }
}
