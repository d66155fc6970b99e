//! The real attachment Lambda against the local AWS: the `bootstrap` that tools/build-handler
//! zips (`target/handler/x86_64/bootstrap.zip`, or `$AUTOHEAL_HANDLER_ZIP`) is deployed as a
//! `provided.al2023` function with the environment the provider gives it, and runs natively
//! behind the local AWS's Runtime API emulator whenever the group's launch hook emits its
//! EventBridge event. Nothing here calls the handler's code directly.
//!
//! Each test has its own local AWS (clock scale 0.01: AWS's waits are 100 times shorter; the
//! function's own timeout and the handler's backoff stay in real time) and checks the outcome
//! the way an operator would: the group's lifecycle states, where the volume and the address
//! are, which AWS calls were made (the server's call log), the Lambda invocation records, and
//! the function's log lines (its JSON logs and its CloudWatch EMF metric line).
//!
//! How the awkward states are produced, faithfully:
//!
//! * a volume still detaching: the `volume_detaching` transient, set on the volume while it is
//!   attached to the old instance, then the old instance is terminated;
//! * an instance still pending: the function is throttled (reserved concurrency 0) when the
//!   group launches, so the rule's delivery waits in Lambda's retry queue as it would on AWS;
//!   the test then marks the new instance `pending` for its next polls and lifts the limit;
//! * a second delivery of an event: the recorded event is invoked again, unchanged;
//! * a late delivery (for the heartbeat): the recorded event, with its `time` moved back, as
//!   when a delivery reaches the function long after the hook started waiting.
//!
//! `AUTOHEAL_HANDLER_ZIP` is also what the provider's build embeds: setting it for `cargo test`
//! makes cargo rebuild the provider with that zip. The harness ([`Heal`]: the server, the
//! stack, the waits and checks) is `terraform_tests::heal_world`, shared with tests/arm64.rs.

use std::time::Duration;

use serde_json::{json, Value};
use terraform_tests::heal_world::{create_stack, handler_zip, response, Heal, DEVICE, STEP};
use terraform_tests::local_aws::control::{Call, Fault, Invocation, Outcome, Transient};
use terraform_tests::local_aws::helpers::{
    address_status, emf_records, group_instances, instance_state, json_log_records, parse_report,
    parse_utc, volume_status, wait_for, wait_for_single_instance, wait_until, Check,
    HANDLER_HOOK_TIMEOUT_SECONDS, HANDLER_VOLUME_ID, POLL_INTERVAL,
};

/// The handler's first backoff delays (handler/src/backoff.rs): 50, 75, 112 ms. Three polls
/// that see a state cost at least their sum.
const THREE_POLLS: Duration = Duration::from_millis(50 + 75 + 112);

/// Does a call's key parameter `name` equal `value` (or, for a list, contain it)?
fn has_param(call: &Call, name: &str, value: &str) -> bool {
    match call.params.get(name) {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|v| v == value),
        _ => false,
    }
}

/// The steps' durations in the handler's response (`stepsMs`).
fn step_ms(response: &Value, step: &str) -> u64 {
    response["stepsMs"][step]
        .as_u64()
        .unwrap_or_else(|| panic!("no stepsMs.{step} in {response}"))
}

/// The JSON log lines of one invocation (the handler's heal span carries the request id).
fn log_records_of(lines: &[String], request_id: &str) -> Vec<Value> {
    json_log_records(lines)
        .into_iter()
        .filter(|r| {
            r["span"]["request_id"] == json!(request_id) || r["requestId"] == json!(request_id)
        })
        .collect()
}

fn assert_emf(emf: &Value, outcome: &str, healed: u8, permanent: u8) {
    assert_eq!(emf["outcome"], outcome, "{emf}");
    assert_eq!(emf["Healed"], healed, "{emf}");
    assert_eq!(emf["PermanentFailure"], permanent, "{emf}");
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Autoheal",
        "{emf}"
    );
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["AutoScalingGroupName"]]),
        "{emf}"
    );
    assert_eq!(emf.get("HealSeconds").is_some(), healed == 1, "{emf}");
}

// --- 1. first launch ------------------------------------------------------------------------

#[tokio::test]
async fn first_launch_gets_the_volume_and_the_address_then_goes_in_service() {
    let h = Heal::new("first", |b| b).await;
    let started = std::time::Instant::now();
    let instance = h.first_launch().await;
    eprintln!("scaled 0 -> 1 and healed in {:?}", started.elapsed());
    assert_eq!(instance.availability_zone, h.stack.availability_zone);

    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;
    assert!(h.control().lifecycle_actions().await.unwrap().is_empty());

    // One attempt, delivered by the rule, which healed.
    let inv = h.invocation(&instance.id, |_| true).await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert_eq!(inv.attempt, 1);
    assert_eq!(inv.rule_arn.as_deref(), Some(h.stack.rule_arn.as_str()));
    let r = response(&inv);
    assert_eq!(r["outcome"], "healed", "{r}");
    assert_eq!(r["instance"], instance.id.as_str());
    assert_eq!(r["volume"], h.stack.volume_id.as_str());
    assert_eq!(r["allocation"], h.stack.allocation_id.as_str());
    assert_eq!(r["publicIp"], h.stack.public_ip.as_str());
    for step in [
        "wait_running",
        "attach_volume",
        "associate_address",
        "complete",
    ] {
        step_ms(&r, step);
    }

    // Each mutating call once, for this instance, in order; the address verified after.
    let attach = h.calls_of("AttachVolume").await;
    assert_eq!(attach.len(), 1, "{attach:?}");
    assert!(attach[0].succeeded());
    assert!(has_param(&attach[0], "VolumeId", &h.stack.volume_id));
    assert!(has_param(&attach[0], "InstanceId", &instance.id));
    assert!(has_param(&attach[0], "Device", DEVICE));
    let associate = h.calls_of("AssociateAddress").await;
    assert_eq!(associate.len(), 1, "{associate:?}");
    assert!(has_param(
        &associate[0],
        "AllocationId",
        &h.stack.allocation_id
    ));
    assert!(has_param(&associate[0], "InstanceId", &instance.id));
    let complete = h.calls_of("CompleteLifecycleAction").await;
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].status, 200);
    assert_eq!(complete[0].param("LifecycleActionResult"), Some("CONTINUE"));
    assert_eq!(complete[0].param("InstanceId"), Some(instance.id.as_str()));
    assert!(attach[0].seq < associate[0].seq && associate[0].seq < complete[0].seq);
    let verified = h
        .calls_of("DescribeAddresses")
        .await
        .iter()
        .any(|c| c.seq > associate[0].seq && c.seq < complete[0].seq);
    assert!(verified, "the association is verified before CONTINUE");
    assert!(h
        .calls_of("RecordLifecycleActionHeartbeat")
        .await
        .is_empty());

    // Logs: JSON lines with each step's duration, one EMF line, Lambda's REPORT line.
    let lines = h.logs().await;
    let records = log_records_of(&lines, &inv.request_id);
    for step in [
        "wait_running",
        "attach_volume",
        "associate_address",
        "complete",
    ] {
        let line = records
            .iter()
            .find(|r| r["step"] == step)
            .unwrap_or_else(|| panic!("no log line for step {step}:\n{}", lines.join("\n")));
        assert!(line["duration_ms"].is_u64(), "{line}");
        assert_eq!(line["span"]["instance"], instance.id.as_str(), "{line}");
        assert_eq!(line["span"]["volume"], h.stack.volume_id.as_str(), "{line}");
    }
    let emf = h.emf_of(&inv.request_id).await;
    assert_emf(&emf, "healed", 1, 0);
    assert_eq!(emf["instance"], instance.id.as_str());
    assert_eq!(emf["AutoScalingGroupName"], h.stack.group_name.as_str());
    let heal_seconds = emf["HealSeconds"].as_f64().unwrap();
    assert!(heal_seconds > 0.0 && heal_seconds < 5.0, "{emf}");
    let report = lines
        .iter()
        .filter_map(|l| parse_report(l))
        .find(|r| r.request_id == inv.request_id)
        .expect("a REPORT line");
    assert!(report.init_duration_ms.is_some(), "{report:?}");
}

// --- 2. heal after terminate, volume still detaching ------------------------------------------

#[tokio::test]
async fn heal_after_terminate_waits_while_the_volume_is_still_detaching() {
    const DETACHING_POLLS: u32 = 3;
    let h = Heal::new("detaching", |b| b).await;
    let old = h.first_launch().await;
    h.assert_volume_attached_to(&old.id).await;

    // From now on the next polls of the volume show it detaching from the old instance; the
    // test itself does not describe the volume until the heal is over.
    h.control().clear_calls().await.unwrap();
    h.control()
        .add_transient(&Transient::volume_detaching(
            &h.stack.volume_id,
            DETACHING_POLLS,
        ))
        .await
        .unwrap();
    h.clients
        .ec2
        .terminate_instances()
        .instance_ids(&old.id)
        .send()
        .await
        .unwrap();

    let new = wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        Some(&old.id),
        STEP,
    )
    .await
    .unwrap();
    let inv = h.invocation(&new.id, |_| true).await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert_eq!(inv.attempt, 1, "healed by the first attempt");
    let r = response(&inv);
    assert_eq!(r["outcome"], "healed", "{r}");

    // The handler polled through every detaching answer and only then attached: no
    // AttachVolume while the volume was busy.
    let left: Vec<_> = h
        .control()
        .transients()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.id == h.stack.volume_id)
        .collect();
    assert!(left.iter().all(|t| t.polls == 0), "{left:?}");
    let attach = h.calls_of("AttachVolume").await;
    assert_eq!(attach.len(), 1, "{attach:?}");
    assert!(attach[0].succeeded(), "{attach:?}");
    assert!(has_param(&attach[0], "InstanceId", &new.id));
    let polls_before = h
        .calls_of("DescribeVolumes")
        .await
        .iter()
        .filter(|c| c.seq < attach[0].seq && has_param(c, "VolumeId", &h.stack.volume_id))
        .count();
    assert!(
        polls_before > DETACHING_POLLS as usize,
        "{polls_before} DescribeVolumes before AttachVolume"
    );
    assert!(
        step_ms(&r, "attach_volume") >= THREE_POLLS.as_millis() as u64,
        "{r}"
    );
    let lines = h.logs().await;
    let waited = log_records_of(&lines, &inv.request_id)
        .into_iter()
        .any(|l| {
            l["message"] == "waiting on the volume"
                && l["waiting_for"]
                    .as_str()
                    .is_some_and(|w| w.contains("detaching") && w.contains(&old.id))
        });
    assert!(
        waited,
        "the handler logs that it waits for the detach from {}:\n{}",
        old.id,
        lines.join("\n")
    );

    h.assert_volume_attached_to(&new.id).await;
    h.assert_address_on(&new.id).await;
    assert_eq!(
        instance_state(&h.clients.ec2, &old.id)
            .await
            .unwrap()
            .as_deref(),
        Some("terminated")
    );
    assert_emf(&h.emf_of(&inv.request_id).await, "healed", 1, 0);
}

// --- 3. instance still pending --------------------------------------------------------------

#[tokio::test]
async fn an_instance_still_pending_is_polled_until_it_runs() {
    const PENDING_POLLS: u32 = 3;
    let h = Heal::new("pending", |b| b).await;
    // The delivery waits in Lambda's queue (throttled) while the test marks the new instance
    // pending for its next polls; then the function may run.
    h.stack.hold_function(&h.clients).await.unwrap();
    h.scale_to(1).await;
    let instance = h.wait_launched(None).await;
    assert_eq!(instance.lifecycle_state, "Pending:Wait");
    h.control()
        .add_transient(&Transient::instance_pending(&instance.id, PENDING_POLLS))
        .await
        .unwrap();
    let throttled = wait_for("a throttled delivery", || async {
        let all = h.control().invocations_of(&h.stack.function_name).await?;
        Ok(if all.iter().any(|i| i.outcome == Outcome::Throttled) {
            Check::Done(())
        } else {
            Check::NotYet(format!("{} attempt(s)", all.len()))
        })
    })
    .await;
    assert!(throttled.is_ok(), "{throttled:?}");
    h.stack.release_function(&h.clients).await.unwrap();

    let healed = wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();
    assert_eq!(healed.id, instance.id);
    let inv = h
        .invocation(&instance.id, |i| i.outcome != Outcome::Throttled)
        .await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    let r = response(&inv);
    assert_eq!(r["outcome"], "healed", "{r}");
    // It saw `pending` PENDING_POLLS times, waited with backoff each time, and did nothing
    // else until the instance ran.
    let polls: Vec<Call> = h
        .calls_of("DescribeInstances")
        .await
        .into_iter()
        .filter(|c| has_param(c, "InstanceId", &instance.id))
        .collect();
    assert!(polls.len() > PENDING_POLLS as usize, "{polls:?}");
    let first_attach = h.calls_of("AttachVolume").await[0].seq;
    assert!(polls[PENDING_POLLS as usize].seq < first_attach);
    assert!(
        step_ms(&r, "wait_running") >= THREE_POLLS.as_millis() as u64,
        "{r}"
    );
    let left = h.control().transients().await.unwrap();
    assert!(
        left.iter()
            .filter(|t| t.id == instance.id)
            .all(|t| t.polls == 0),
        "{left:?}"
    );
    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;
    assert_emf(&h.emf_of(&inv.request_id).await, "healed", 1, 0);
}

// --- 4. duplicate event ---------------------------------------------------------------------

#[tokio::test]
async fn a_second_delivery_of_the_same_event_changes_nothing_and_succeeds() {
    let h = Heal::new("duplicate", |b| b).await;
    let instance = h.first_launch().await;
    let first = h.invocation(&instance.id, |_| true).await;
    assert_eq!(response(&first)["outcome"], "healed");
    let association = h.assert_address_on(&instance.id).await;
    let event = h.launch_event(&instance.id).await;

    h.control().clear_calls().await.unwrap();
    let again = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(again.function_error, None, "{:?}", again.payload);
    assert_eq!(
        again.payload["outcome"], "already_completed",
        "{}",
        again.payload
    );
    assert_eq!(again.payload["instance"], instance.id.as_str());

    // No mutating EC2 call; one CompleteLifecycleAction, answered "No active Lifecycle
    // Action", and no retry of it.
    assert!(h.calls_of("AttachVolume").await.is_empty());
    assert!(h.calls_of("AssociateAddress").await.is_empty());
    let complete = h.calls_of("CompleteLifecycleAction").await;
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].status, 400);
    assert_eq!(complete[0].error_code.as_deref(), Some("ValidationError"));

    h.assert_volume_attached_to(&instance.id).await;
    assert_eq!(
        h.assert_address_on(&instance.id).await,
        association,
        "the address was not re-associated"
    );
    let now = group_instances(&h.clients.autoscaling, &h.stack.group_name)
        .await
        .unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(
        (now[0].id.as_str(), now[0].lifecycle_state.as_str()),
        (instance.id.as_str(), "InService")
    );
    let second = h
        .control()
        .invocations_of(&h.stack.function_name)
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.source.as_deref() == Some("Invoke"))
        .expect("the second delivery is recorded");
    assert_emf(
        &h.emf_of(&second.request_id).await,
        "already_completed",
        0,
        0,
    );
}

#[tokio::test]
async fn two_simultaneous_deliveries_heal_once() {
    let h = Heal::new("twice", |b| b).await;
    // The test delivers the event itself, twice at once.
    h.stack.remove_rule_target(&h.clients).await.unwrap();
    h.scale_to(1).await;
    let instance = h.wait_launched(None).await;
    let event = h.launch_event(&instance.id).await;
    let (a, b) = tokio::join!(
        h.stack.invoke(&h.clients, &event),
        h.stack.invoke(&h.clients, &event)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((&a.function_error, &b.function_error), (&None, &None));
    let mut outcomes = [
        a.payload["outcome"].as_str().unwrap_or("?").to_string(),
        b.payload["outcome"].as_str().unwrap_or("?").to_string(),
    ];
    outcomes.sort();
    assert_eq!(
        outcomes,
        ["already_completed", "healed"],
        "{} / {}",
        a.payload,
        b.payload
    );

    let attached: Vec<Call> = h
        .calls_of("AttachVolume")
        .await
        .into_iter()
        .filter(Call::succeeded)
        .collect();
    assert_eq!(attached.len(), 1, "{attached:?}");
    let completed: Vec<Call> = h
        .calls_of("CompleteLifecycleAction")
        .await
        .into_iter()
        .filter(Call::succeeded)
        .collect();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(
        completed[0].param("LifecycleActionResult"),
        Some("CONTINUE")
    );
    wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();
    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;
}

// --- 5. events that are not ours --------------------------------------------------------------

#[tokio::test]
async fn events_not_for_this_group_are_refused_without_any_mutating_call() {
    let h = Heal::new("mine", |b| b).await;
    // Another autoheal stack in the same account, healed by its own function.
    let other = create_stack(&h.clients, "theirs", handler_zip(), &[], |b| b).await;
    other.scale_to(&h.clients, 1).await.unwrap();
    let theirs = wait_for_single_instance(
        &h.clients.autoscaling,
        &other.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();
    let their_event = h.launch_event(&theirs.id).await;
    // Their function is done: from here on, every call is ours.
    wait_until("their function to finish", STEP, POLL_INTERVAL, || async {
        let all = h.control().invocations_of(&other.function_name).await?;
        Ok(if all.iter().any(|i| i.outcome == Outcome::Success) {
            Check::Done(())
        } else {
            Check::NotYet(format!("{} attempt(s)", all.len()))
        })
    })
    .await
    .unwrap();
    let ec2_or_asg = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.service != "lambda")
            .map(|c| format!("{} {}", c.service, c.operation))
            .collect()
    };

    // Their group's event, delivered to our function: refused with no AWS call at all.
    h.control().clear_calls().await.unwrap();
    let refused = h.stack.invoke(&h.clients, &their_event).await.unwrap();
    assert_eq!(refused.function_error, None, "{}", refused.payload);
    assert_eq!(refused.payload["outcome"], "refused", "{}", refused.payload);
    let reason = refused.payload["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&other.group_name), "{reason}");
    let calls = h.control().calls().await.unwrap();
    assert_eq!(ec2_or_asg(&calls), Vec::<String>::new(), "no AWS call");

    // Our group's name and hook, but their group's ARN in `resources` (or another account,
    // or another region): not an event of our group, refused with no AWS call at all.
    let our_group_arn = h
        .clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&h.stack.group_name)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .auto_scaling_group_arn()
        .unwrap()
        .to_string();
    let mut renamed = their_event.clone();
    renamed["detail"]["AutoScalingGroupName"] = json!(h.stack.group_name);
    renamed["detail"]["LifecycleHookName"] = json!(h.stack.hook_name);
    let mut other_account = renamed.clone();
    other_account["resources"] = json!([our_group_arn]);
    other_account["account"] = json!("210987654321");
    let mut other_region = renamed.clone();
    other_region["resources"] = json!([our_group_arn]);
    other_region["region"] = json!("us-east-1");
    for (event, why) in [
        (&renamed, "resources"),
        (&other_account, "account"),
        (&other_region, "region"),
    ] {
        h.control().clear_calls().await.unwrap();
        let out = h.stack.invoke(&h.clients, event).await.unwrap();
        assert_eq!(out.payload["outcome"], "refused", "{why}: {}", out.payload);
        let reason = out.payload["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with(why), "{why}: {reason}");
        let calls = h.control().calls().await.unwrap();
        assert_eq!(
            ec2_or_asg(&calls),
            Vec::<String>::new(),
            "{why}: no AWS call"
        );
    }

    // An event of our group (name, hook and ARN) but their instance (forged, or a stale
    // copy): only read calls, then refused as not ours.
    let mut forged = renamed.clone();
    forged["resources"] = json!([our_group_arn]);
    h.control().clear_calls().await.unwrap();
    let not_member = h.stack.invoke(&h.clients, &forged).await.unwrap();
    assert_eq!(not_member.function_error, None, "{}", not_member.payload);
    assert_eq!(
        not_member.payload["outcome"], "not_member",
        "{}",
        not_member.payload
    );
    let calls = h.control().calls().await.unwrap();
    let made = ec2_or_asg(&calls);
    assert!(
        made.iter()
            .all(|c| c.starts_with("ec2 Describe") || c.starts_with("autoscaling Describe")),
        "{made:?}"
    );

    // A malformed event: a clear error, not a crash.
    h.control().clear_calls().await.unwrap();
    let malformed = h
        .stack
        .invoke(
            &h.clients,
            &json!({"source": "aws.autoscaling", "detail-type": 42}),
        )
        .await
        .unwrap();
    assert_eq!(malformed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        malformed.payload["errorType"], "Autoheal.MalformedEvent",
        "{}",
        malformed.payload
    );
    assert_eq!(
        ec2_or_asg(&h.control().calls().await.unwrap()),
        Vec::<String>::new()
    );

    // Their instance kept its volume and address; every attempt of ours ended cleanly.
    let v = volume_status(&h.clients.ec2, &other.volume_id)
        .await
        .unwrap();
    assert_eq!(v.attachment.map(|a| a.instance_id), Some(theirs.id.clone()));
    let a = address_status(&h.clients.ec2, &other.allocation_id)
        .await
        .unwrap();
    assert_eq!(a.instance_id.as_deref(), Some(theirs.id.as_str()));
    let ours = h
        .control()
        .invocations_of(&h.stack.function_name)
        .await
        .unwrap();
    // Their event, the three of another group ARN, account or region, the forged one, the
    // malformed one.
    assert_eq!(ours.len(), 6, "{ours:?}");
    assert_eq!(
        ours.iter().map(|i| i.outcome).collect::<Vec<_>>(),
        [
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success,
            Outcome::Error
        ]
    );
    let lines = h.logs().await;
    for refused in &ours[..4] {
        assert_emf(&h.emf_of(&refused.request_id).await, "refused", 0, 0);
    }
    assert_emf(&h.emf_of(&ours[4].request_id).await, "not_member", 0, 0);
    assert_emf(&h.emf_of(&ours[5].request_id).await, "malformed", 0, 0);
    assert!(
        !lines.iter().any(|l| l.contains("panicked")),
        "{}",
        lines.join("\n")
    );
}

/// Events of another kind naming our group and hook (another detail-type, another source, the
/// terminate transition): refused before any AWS call. The unchanged event, delivered after
/// them, does make calls: the empty call logs are not the counter missing the handler's calls.
#[tokio::test]
async fn other_event_kinds_for_this_group_are_refused_without_any_aws_call() {
    let h = Heal::new("kinds", |b| b).await;
    let instance = h.first_launch().await;
    let event = h.launch_event(&instance.id).await;
    // The heal's own invocation is over, so every call from here on is one of ours.
    h.invocation(&instance.id, |i| i.outcome == Outcome::Success)
        .await;
    let aws_calls = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.service != "lambda")
            .map(|c| format!("{} {}", c.service, c.operation))
            .collect()
    };
    let kinds: [(&[&str], Value, &str); 4] = [
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
        (&["source"], json!("aws.ec2"), "source"),
        (
            &["detail", "LifecycleTransition"],
            json!("autoscaling:EC2_INSTANCE_TERMINATING"),
            "transition",
        ),
    ];
    for (path, value, reason_mentions) in kinds {
        let mut other = event.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut other;
        for key in parents {
            at = &mut at[*key];
        }
        at[*last] = value.clone();
        h.control().clear_calls().await.unwrap();
        let refused = h.stack.invoke(&h.clients, &other).await.unwrap();
        assert_eq!(
            refused.function_error, None,
            "{path:?}: {}",
            refused.payload
        );
        assert_eq!(
            refused.payload["outcome"], "refused",
            "{path:?}={value}: {}",
            refused.payload
        );
        let reason = refused.payload["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(reason_mentions), "{path:?}: {reason}");
        assert_eq!(
            aws_calls(&h.control().calls().await.unwrap()),
            Vec::<String>::new(),
            "{path:?}={value}: no AWS call"
        );
    }

    // The control: the same event unchanged is ours, and is looked into.
    h.control().clear_calls().await.unwrap();
    let again = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(
        again.payload["outcome"], "already_completed",
        "{}",
        again.payload
    );
    assert!(
        !aws_calls(&h.control().calls().await.unwrap()).is_empty(),
        "the call log saw none of the handler's calls"
    );
    h.assert_volume_attached_to(&instance.id).await;
}

// --- 6. volume in another AZ ----------------------------------------------------------------

#[tokio::test]
async fn a_volume_in_another_zone_abandons_the_launch_and_the_group_tries_again() {
    let h = Heal::new("zone", |b| b).await;
    let zones = h
        .clients
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .unwrap();
    let elsewhere = zones
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name())
        .find(|z| *z != h.stack.availability_zone)
        .expect("a second availability zone")
        .to_string();
    let far_volume = h
        .clients
        .ec2
        .create_volume()
        .availability_zone(&elsewhere)
        .size(1)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    let mut env = h.stack.handler_env(DEVICE);
    env.insert(HANDLER_VOLUME_ID.into(), far_volume.clone());
    h.stack.set_function_env(&h.clients, &env).await.unwrap();

    h.scale_to(1).await;
    let first = h.wait_launched(None).await;
    let inv = h.invocation(&first.id, |_| true).await;
    // The group replaces the abandoned instance: a launch event for a second instance.
    let second = wait_for("a second launch", || async {
        let events = h.control().events().await?;
        Ok(
            match events
                .iter()
                .filter_map(|e| e.detail("EC2InstanceId"))
                .find(|id| *id != first.id)
            {
                Some(id) => Check::Done(id.to_string()),
                None => Check::NotYet(format!("{} event(s)", events.len())),
            },
        )
    })
    .await
    .unwrap();
    // Stop the loop (every instance would be abandoned for the same reason).
    h.scale_to(0).await;

    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    let r = response(&inv);
    assert_eq!(r["outcome"], "abandoned", "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("ZoneMismatch") && reason.contains(&elsewhere),
        "{reason}"
    );
    let abandon: Vec<Call> = h
        .calls_of("CompleteLifecycleAction")
        .await
        .into_iter()
        .filter(|c| c.param("InstanceId") == Some(first.id.as_str()))
        .collect();
    assert_eq!(abandon.len(), 1, "{abandon:?}");
    assert_eq!(abandon[0].param("LifecycleActionResult"), Some("ABANDON"));
    assert_eq!(abandon[0].status, 200);
    // Decided from DescribeVolumes: no attach attempt, no address move.
    assert!(h.calls_of("AttachVolume").await.is_empty());
    assert!(h.calls_of("AssociateAddress").await.is_empty());
    assert_ne!(second, first.id);
    let gone = wait_until(
        &format!("{} terminated", first.id),
        STEP,
        POLL_INTERVAL,
        || async {
            Ok(match instance_state(&h.clients.ec2, &first.id).await? {
                Some(s) if s == "terminated" => Check::Done(()),
                other => Check::NotYet(format!("{other:?}")),
            })
        },
    )
    .await;
    assert!(gone.is_ok(), "{gone:?}");

    let emf = h.emf_of(&inv.request_id).await;
    assert_emf(&emf, "abandoned", 0, 1);
    assert!(
        emf["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ZoneMismatch")),
        "{emf}"
    );
    let lines = h.logs().await;
    let logged = log_records_of(&lines, &inv.request_id)
        .into_iter()
        .any(|l| {
            l["level"] == "ERROR"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("abandoning"))
                && l["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("ZoneMismatch"))
        });
    assert!(logged, "the reason is logged:\n{}", lines.join("\n"));
}

// --- 7. address still on the old instance -----------------------------------------------------

#[tokio::test]
async fn an_address_still_on_the_old_instance_is_moved_and_verified() {
    let h = Heal::new("address", |b| b).await;
    // The old instance, still running and holding the Elastic IP (outside the group, as after
    // a manual recovery, or an instance the group let go of).
    let old = h
        .clients
        .ec2
        .run_instances()
        .image_id(terraform_tests::local_aws::helpers::AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .subnet_id(&h.stack.subnet_id)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    h.clients
        .ec2
        .associate_address()
        .allocation_id(&h.stack.allocation_id)
        .instance_id(&old)
        .send()
        .await
        .unwrap();
    let old_association = h.assert_address_on(&old).await;

    h.control().clear_calls().await.unwrap();
    let new = h.first_launch().await;
    let new_association = h.assert_address_on(&new.id).await;
    assert_ne!(new_association, old_association);
    assert_eq!(
        instance_state(&h.clients.ec2, &old)
            .await
            .unwrap()
            .as_deref(),
        Some("running"),
        "the old instance itself is left alone"
    );

    let inv = h.invocation(&new.id, |_| true).await;
    let r = response(&inv);
    assert_eq!(r["outcome"], "healed", "{r}");
    assert_eq!(r["publicIp"], h.stack.public_ip.as_str());
    let associate = h.calls_of("AssociateAddress").await;
    assert_eq!(associate.len(), 1, "{associate:?}");
    assert!(has_param(&associate[0], "InstanceId", &new.id));
    let describes = h.calls_of("DescribeAddresses").await;
    assert!(
        describes.iter().any(|c| c.seq < associate[0].seq),
        "looked before moving: {describes:?}"
    );
    assert!(
        describes.iter().any(|c| c.seq > associate[0].seq),
        "verified after moving: {describes:?}"
    );
    let lines = h.logs().await;
    let moved = log_records_of(&lines, &inv.request_id)
        .into_iter()
        .any(|l| l["message"] == "associating the address" && l["previous_instance"] == json!(old));
    assert!(moved, "the move is logged:\n{}", lines.join("\n"));
    h.assert_volume_attached_to(&new.id).await;
}

// --- 8. throttling during attach ------------------------------------------------------------

#[tokio::test]
async fn throttled_attach_calls_are_retried_and_the_heal_succeeds_in_time() {
    const THROTTLES: u32 = 3;
    const TIMEOUT_S: i32 = 10;
    let h = Heal::new("throttled", |b| b.function_timeout(TIMEOUT_S)).await;
    let fault = h
        .control()
        .add_fault(
            &Fault::error("AttachVolume", "RequestLimitExceeded")
                .status(503)
                .message("Request limit exceeded.")
                .count(THROTTLES),
        )
        .await
        .unwrap();
    let instance = h.first_launch().await;
    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;

    let attach = h.calls_of("AttachVolume").await;
    assert_eq!(attach.len(), THROTTLES as usize + 1, "{attach:?}");
    for c in &attach[..THROTTLES as usize] {
        assert_eq!(c.status, 503, "{c:?}");
        assert_eq!(c.error_code.as_deref(), Some("RequestLimitExceeded"));
        assert_eq!(c.fault.as_deref(), Some(fault.as_str()));
    }
    assert!(attach[THROTTLES as usize].succeeded());
    let rules = h.control().faults().await.unwrap();
    assert_eq!(rules[0].fired, u64::from(THROTTLES));

    // One attempt, well inside the function's timeout. (The record is written when the
    // function has answered, which may be just after the heal is visible.)
    let inv = &h.invocation(&instance.id, |_| true).await;
    let all = h
        .control()
        .invocations_of(&h.stack.function_name)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert!(inv.duration_ms < f64::from(TIMEOUT_S) * 1000.0, "{inv:?}");
    assert_eq!(response(inv)["outcome"], "healed");
    let lines = h.logs().await;
    let retries = log_records_of(&lines, &inv.request_id)
        .into_iter()
        .filter(|l| {
            l["message"] == "retrying"
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("RequestLimitExceeded"))
        })
        .count();
    assert_eq!(retries, THROTTLES as usize, "{}", lines.join("\n"));
    assert_emf(&h.emf_of(&inv.request_id).await, "healed", 1, 0);
}

// --- 9. work longer than the function or the hook --------------------------------------------

#[tokio::test]
async fn a_function_timeout_shorter_than_the_work_ends_in_a_clean_abandon() {
    const TIMEOUT_S: i32 = 3;
    let h = Heal::new("short", |b| {
        b.function_timeout(TIMEOUT_S).maximum_retry_attempts(0)
    })
    .await;
    // The first instance never runs (pending for every poll); its successor is normal.
    h.stack.hold_function(&h.clients).await.unwrap();
    h.scale_to(1).await;
    let stuck = h.wait_launched(None).await;
    h.control()
        .add_transient(&Transient::instance_pending(&stuck.id, 100_000))
        .await
        .unwrap();
    h.stack.release_function(&h.clients).await.unwrap();

    let inv = h
        .invocation(&stuck.id, |i| i.outcome != Outcome::Throttled)
        .await;
    // The function ended by itself before Lambda's timeout, having completed the action.
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert!(inv.duration_ms < f64::from(TIMEOUT_S) * 1000.0, "{inv:?}");
    let r = response(&inv);
    assert_eq!(r["outcome"], "abandoned", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|s| s.contains("out of time") && s.contains("pending")),
        "{r}"
    );
    let abandon: Vec<Call> = h
        .calls_of("CompleteLifecycleAction")
        .await
        .into_iter()
        .filter(|c| c.param("InstanceId") == Some(stuck.id.as_str()))
        .collect();
    assert_eq!(abandon.len(), 1, "{abandon:?}");
    assert_eq!(abandon[0].param("LifecycleActionResult"), Some("ABANDON"));
    assert_eq!(abandon[0].status, 200);
    assert_emf(&h.emf_of(&inv.request_id).await, "abandoned", 0, 1);

    // The group's next instance is healed normally.
    let next = wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        Some(&stuck.id),
        STEP,
    )
    .await
    .unwrap();
    h.assert_volume_attached_to(&next.id).await;
    h.assert_address_on(&next.id).await;
    let timeouts: Vec<Invocation> = h
        .control()
        .invocations_of(&h.stack.function_name)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.outcome == Outcome::Timeout)
        .collect();
    assert!(timeouts.is_empty(), "{timeouts:?}");
}

/// Someone terminates the instance while the handler waits for it to run: that is no failure
/// of the heal (the group launches another), so the outcome says what happened and the
/// PermanentFailure metric a relaunch-loop alarm watches stays at 0. Nothing is attached to
/// or associated with the dying instance.
#[tokio::test]
async fn an_instance_terminated_mid_heal_is_reported_as_terminated_not_as_a_failure() {
    let h = Heal::new("gone", |b| b.maximum_retry_attempts(0)).await;
    h.stack.hold_function(&h.clients).await.unwrap();
    h.scale_to(1).await;
    let doomed = h.wait_launched(None).await;
    h.control()
        .add_transient(&Transient::instance_pending(&doomed.id, 100_000))
        .await
        .unwrap();
    h.stack.release_function(&h.clients).await.unwrap();

    // Terminate once the handler has seen it pending twice (it is waiting with back-off).
    wait_for("the handler polling the pending instance", || async {
        let polls = h
            .control()
            .calls_of("DescribeInstances")
            .await?
            .into_iter()
            .filter(|c| has_param(c, "InstanceId", &doomed.id))
            .count();
        Ok(if polls >= 2 {
            Check::Done(())
        } else {
            Check::NotYet(format!("{polls} poll(s)"))
        })
    })
    .await
    .unwrap();
    h.clients
        .ec2
        .terminate_instances()
        .instance_ids(&doomed.id)
        .send()
        .await
        .unwrap();

    let inv = h
        .invocation(&doomed.id, |i| i.outcome != Outcome::Throttled)
        .await;
    h.scale_to(0).await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    let r = response(&inv);
    assert_eq!(r["outcome"], "instance_terminated", "{r}");
    assert!(
        r["reason"]
            .as_str()
            .is_some_and(|s| s.contains(&doomed.id) && s.contains("terminated")),
        "{r}"
    );
    for op in ["AttachVolume", "AssociateAddress"] {
        let on_doomed: Vec<Call> = h
            .calls_of(op)
            .await
            .into_iter()
            .filter(|c| c.param("InstanceId") == Some(doomed.id.as_str()))
            .collect();
        assert!(
            on_doomed.is_empty(),
            "{op} on the dying instance: {on_doomed:?}"
        );
    }
    assert_emf(
        &h.emf_of(&inv.request_id).await,
        "instance_terminated",
        0,
        0,
    );
}

#[tokio::test]
async fn a_hook_that_would_expire_during_the_work_gets_a_heartbeat() {
    // The hook waits 3000 virtual seconds, 30 real ones at clock scale 0.01; the handler is
    // told so (AUTOHEAL_HOOK_TIMEOUT_SECONDS is read in real seconds).
    const HOOK_REAL_S: i64 = 30;
    const LATE_S: i64 = 25;
    let h = Heal::with_env("heartbeat", &[(HANDLER_HOOK_TIMEOUT_SECONDS, "30")], |b| {
        b.heartbeat_timeout((HOOK_REAL_S * 100) as i32)
    })
    .await;
    h.stack.remove_rule_target(&h.clients).await.unwrap();
    h.scale_to(1).await;
    let instance = h.wait_launched(None).await;
    h.control()
        .add_transient(&Transient::instance_pending(&instance.id, 3))
        .await
        .unwrap();
    // Delivered LATE_S seconds after the hook started: it has about 4 s left, less than the
    // work may take, so the handler must extend it before it waits.
    let mut event = h.launch_event(&instance.id).await;
    let emitted = terraform_tests::local_aws::helpers::parse_utc(event["time"].as_str().unwrap())
        .unwrap() as i64;
    event["time"] = json!(terraform_tests::local_aws::helpers::format_utc_seconds(
        emitted - LATE_S
    ));
    let out = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["outcome"], "healed", "{}", out.payload);

    let heartbeats = h.calls_of("RecordLifecycleActionHeartbeat").await;
    assert!(!heartbeats.is_empty(), "a heartbeat was sent");
    assert!(heartbeats.iter().all(Call::succeeded), "{heartbeats:?}");
    assert_eq!(
        heartbeats[0].param("InstanceId"),
        Some(instance.id.as_str())
    );
    let complete = h.calls_of("CompleteLifecycleAction").await;
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].param("LifecycleActionResult"), Some("CONTINUE"));
    assert!(heartbeats[0].seq < complete[0].seq);
    // Read from the settings: no DescribeLifecycleHooks call was needed.
    assert!(h.calls_of("DescribeLifecycleHooks").await.is_empty());
    let lines = h.logs().await;
    assert!(
        json_log_records(&lines)
            .iter()
            .any(|l| l["message"] == "lifecycle heartbeat sent" && l["hook_timeout_s"] == 30),
        "{}",
        lines.join("\n")
    );
    wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();
    h.assert_volume_attached_to(&instance.id).await;
}

// --- 10. a holder slow to go away -------------------------------------------------------------

/// The old instance takes three times the function's timeout to shut down, keeping the data
/// volume attached all along (the realistic profile's instance life with a hung guest). The
/// handler gives the new instance its address at once (egress during the hand-off), keeps the
/// hook alive and fails each invocation that runs out of time while the holder goes away, so
/// that Lambda's retries (one and two minutes later, scaled) go on waiting: the new instance
/// is healed by a later attempt, and no healthy instance is abandoned.
#[tokio::test]
async fn a_holder_slow_to_go_away_costs_no_healthy_instance() {
    // The function's timeout is real seconds while Lambda's retry delays (60 s, 120 s) run on
    // the scaled clock: at 0.1 they take 6 s and 12 s, twice the function's 3 s, about the
    // ratio of AWS's delays to the 20-30 s timeouts such functions have.
    const SCALE: f64 = 0.1;
    const FUNCTION_TIMEOUT_S: i32 = 3;
    // 3 x the function's timeout, in real seconds.
    const SHUTDOWN_REAL_S: f64 = 3.0 * FUNCTION_TIMEOUT_S as f64;
    // The hook outlives every retry delay: 400 virtual seconds, 40 real ones (the handler is
    // told in real seconds, as in the heartbeat test).
    const HOOK_REAL_S: f64 = 40.0;
    let h = Heal::with_clock(
        "slowholder",
        SCALE,
        &[(HANDLER_HOOK_TIMEOUT_SECONDS, "40")],
        |b| {
            b.function_timeout(FUNCTION_TIMEOUT_S)
                .heartbeat_timeout((HOOK_REAL_S / SCALE) as i32)
        },
    )
    .await;
    let old = h.first_launch().await;
    h.assert_volume_attached_to(&old.id).await;
    h.control()
        .set_profile(&json!({"shutdown_s": SHUTDOWN_REAL_S / SCALE}))
        .await
        .unwrap();
    h.control().clear_calls().await.unwrap();
    h.clients
        .ec2
        .terminate_instances()
        .instance_ids(&old.id)
        .send()
        .await
        .unwrap();

    let new = wait_for_single_instance(
        &h.clients.autoscaling,
        &h.stack.group_name,
        "InService",
        Some(&old.id),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    h.assert_volume_attached_to(&new.id).await;
    h.assert_address_on(&new.id).await;

    // Every attempt for the new instance: the early ones yielded to Lambda's retry, the last
    // healed; none abandoned it.
    let healed = h
        .invocation(&new.id, |i| i.outcome == Outcome::Success)
        .await;
    assert_eq!(response(&healed)["outcome"], "healed", "{healed:?}");
    let attempts: Vec<Invocation> = h
        .control()
        .invocations_of(&h.stack.function_name)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.event_id == healed.event_id)
        .collect();
    let waiting: Vec<&Invocation> = attempts
        .iter()
        .filter(|i| i.error_type.as_deref() == Some("Autoheal.StillWaiting"))
        .collect();
    assert!(
        !waiting.is_empty() && healed.attempt as usize == waiting.len() + 1,
        "attempts: {attempts:?}"
    );
    let abandons: Vec<Call> = h
        .calls_of("CompleteLifecycleAction")
        .await
        .into_iter()
        .filter(|c| c.param("LifecycleActionResult") == Some("ABANDON"))
        .collect();
    assert!(abandons.is_empty(), "abandoned: {abandons:?}");
    // Each yielding attempt sent a heartbeat first, so the retry found the action alive.
    let heartbeats = h.calls_of("RecordLifecycleActionHeartbeat").await;
    assert!(
        heartbeats.iter().filter(|c| c.succeeded()).count() >= waiting.len(),
        "{heartbeats:?}"
    );
    // Egress during the hand-off: the address moved to the new instance while the old one
    // still held the volume, before the volume could be attached.
    let associate = h
        .calls_of("AssociateAddress")
        .await
        .into_iter()
        .find(|c| c.succeeded() && has_param(c, "InstanceId", &new.id))
        .expect("AssociateAddress for the new instance");
    let attach = h
        .calls_of("AttachVolume")
        .await
        .into_iter()
        .find(|c| c.succeeded() && has_param(c, "InstanceId", &new.id))
        .expect("AttachVolume for the new instance");
    assert!(associate.seq < attach.seq, "{associate:?} {attach:?}");
    let first = attempts.iter().find(|i| i.attempt == 1).unwrap();
    assert_eq!(
        associate.request_id.as_deref(),
        Some(first.request_id.as_str()),
        "the address moved within the first attempt: {associate:?}"
    );
    // One metric line per attempt (Lambda keeps the request id across its retries): the
    // waiting ones count neither as heals nor as permanent failures.
    let lines = h.logs().await;
    let records: Vec<Value> = emf_records(&lines)
        .into_iter()
        .filter(|r| r["requestId"] == json!(healed.request_id))
        .collect();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("?"))
        .collect();
    let mut expected = vec!["waiting"; waiting.len()];
    expected.push("healed");
    assert_eq!(outcomes, expected, "{}", lines.join("\n"));
    for r in &records[..waiting.len()] {
        assert_emf(r, "waiting", 0, 0);
    }
    assert_emf(records.last().unwrap(), "healed", 1, 0);
}

// --- 11. permissions still propagating ------------------------------------------------------

/// A policy was put on the function's role just before the launch, and IAM has not
/// propagated it yet (the local AWS refuses the function's calls with AWS's
/// UnauthorizedOperation / AccessDenied for `iam_propagation_s`). The handler retries an
/// access refusal for a bounded window before it treats it as permanent, so the launch heals
/// in the first attempt instead of being left to the hook's timeout or abandoned.
#[tokio::test]
async fn access_refused_while_the_policy_propagates_is_retried_not_final() {
    // 3 s real at clock scale 0.01: well inside the handler's 60 s window and its 10 s timeout.
    const WINDOW_AWS_S: f64 = 300.0;
    let h = Heal::new("propagating", |b| b.maximum_retry_attempts(0)).await;
    h.control()
        .set_profile(&json!({"iam_propagation_s": WINDOW_AWS_S}))
        .await
        .unwrap();
    // A deploy that has just put a policy on the role (a second one, say for logs): the
    // role's permissions are in flux until IAM has propagated the change.
    let extra = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}],
    });
    h.clients
        .iam
        .put_role_policy()
        .role_name(&h.stack.role_name)
        .policy_name("extra")
        .policy_document(extra.to_string())
        .send()
        .await
        .unwrap();
    h.control().clear_calls().await.unwrap();
    let instance = h.first_launch().await;

    let inv = h.invocation(&instance.id, |_| true).await;
    assert_eq!(inv.outcome, Outcome::Success, "{inv:?}");
    assert_eq!(inv.attempt, 1, "healed by the first attempt: {inv:?}");
    assert_eq!(response(&inv)["outcome"], "healed", "{inv:?}");
    let refused: Vec<Call> = h
        .control()
        .calls()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| {
            c.function.is_some()
                && matches!(
                    c.error_code.as_deref(),
                    Some("UnauthorizedOperation" | "AccessDenied")
                )
        })
        .collect();
    assert!(
        !refused.is_empty(),
        "the function's calls were refused while the policy propagated"
    );
    let abandons: Vec<Call> = h
        .calls_of("CompleteLifecycleAction")
        .await
        .into_iter()
        .filter(|c| c.param("LifecycleActionResult") == Some("ABANDON"))
        .collect();
    assert!(abandons.is_empty(), "{abandons:?}");
    h.assert_volume_attached_to(&instance.id).await;
    h.assert_address_on(&instance.id).await;
}

// --- 12. what a heal does at the same time --------------------------------------------------

/// When a call reached the server and when it was answered (seconds since the epoch, to the
/// millisecond): the call log records the answer's time and the call's duration.
fn span(c: &Call) -> (f64, f64) {
    let end = parse_utc(&c.time).unwrap_or_else(|e| panic!("{e:#}: {c:?}"));
    (end - c.duration_ms / 1000.0, end)
}

/// The function's own calls of `operation` (none of the test's) naming `param` = `value`, in
/// the order they reached the server.
async fn function_calls(h: &Heal, operation: &str, param: &str, value: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = h
        .calls_of(operation)
        .await
        .into_iter()
        .filter(|c| {
            c.function.as_deref() == Some(h.stack.function_name.as_str())
                && has_param(c, param, value)
        })
        .collect();
    calls.sort_by(|a, b| span(a).0.total_cmp(&span(b).0));
    calls
}

/// A launch held in `Pending:Wait` whose event the test delivers itself (the rule has no
/// target), the call log cleared: every call from here on is the test's or that delivery's.
async fn held_launch(h: &Heal, not: Option<&str>) -> (String, Value) {
    h.stack.remove_rule_target(&h.clients).await.unwrap();
    h.scale_to(if not.is_some() { 2 } else { 1 }).await;
    let instance = h.wait_launched(not).await;
    assert_eq!(instance.lifecycle_state, "Pending:Wait", "{instance:?}");
    let event = h.launch_event(&instance.id).await;
    h.control().clear_calls().await.unwrap();
    (instance.id, event)
}

/// The heal's first look sends the new instance's first poll and the first reads of the volume
/// and the address together (they are reads, none needs another's answer): each answer is
/// slowed down, and all three were under way at once. The address, on no instance and the
/// volume free, moves only once AttachVolume for the new instance was accepted: a slow
/// AttachVolume holds the AssociateAddress back.
#[tokio::test]
async fn the_first_look_reads_the_instance_the_volume_and_the_address_at_once() {
    const SLOW_MS: u64 = 400;
    let h = Heal::new("firstlook", |b| b).await;
    let (instance, event) = held_launch(&h, None).await;
    let (volume, allocation) = (&h.stack.volume_id, &h.stack.allocation_id);
    for (operation, param, value) in [
        ("DescribeInstances", "InstanceId", instance.as_str()),
        ("DescribeVolumes", "VolumeId", volume.as_str()),
        ("DescribeAddresses", "AllocationId", allocation.as_str()),
        ("AttachVolume", "InstanceId", instance.as_str()),
    ] {
        h.control()
            .add_fault(
                &Fault::latency(operation, SLOW_MS)
                    .matching(param, value)
                    .count(1),
            )
            .await
            .unwrap();
    }

    let out = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["outcome"], "healed", "{}", out.payload);
    h.assert_volume_attached_to(&instance).await;
    h.assert_address_on(&instance).await;

    let first_of = |calls: Vec<Call>, what: &str| -> Call {
        let first = calls
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {what} call by the function"));
        assert!(
            first.fault.is_some(),
            "the slowed call comes first: {first:?}"
        );
        first
    };
    let look = [
        first_of(
            function_calls(&h, "DescribeInstances", "InstanceId", &instance).await,
            "DescribeInstances",
        ),
        first_of(
            function_calls(&h, "DescribeVolumes", "VolumeId", volume).await,
            "DescribeVolumes",
        ),
        first_of(
            function_calls(&h, "DescribeAddresses", "AllocationId", allocation).await,
            "DescribeAddresses",
        ),
    ];
    for a in &look {
        for b in &look {
            let ((a_start, a_end), (b_start, b_end)) = (span(a), span(b));
            assert!(
                a_start < b_end && b_start < a_end,
                "{} and {} overlap:\n{a:?}\n{b:?}",
                a.operation,
                b.operation
            );
        }
    }

    let attach = function_calls(&h, "AttachVolume", "InstanceId", &instance).await;
    let associate = function_calls(&h, "AssociateAddress", "InstanceId", &instance).await;
    assert_eq!(attach.len(), 1, "{attach:?}");
    assert_eq!(associate.len(), 1, "{associate:?}");
    assert!(attach[0].succeeded() && associate[0].succeeded());
    // Sent once the slowed AttachVolume had been answered (to the log's millisecond).
    let (attach_end, associate_start) = (span(&attach[0]).1, span(&associate[0]).0);
    assert!(
        associate_start >= attach_end - 0.002,
        "AssociateAddress began {:.0} ms before AttachVolume was accepted",
        (attach_end - associate_start) * 1000.0
    );
}

/// A read of the first look that fails (here DescribeAddresses, refused for good) is what the
/// heal reports, although the instance and the volume were read at the same time; and it is
/// reported before anything is changed: no AttachVolume for an instance about to be
/// abandoned, no AssociateAddress.
#[tokio::test]
async fn a_read_that_fails_in_the_first_look_is_reported_before_anything_changes() {
    let h = Heal::new("lookfails", |b| b).await;
    let (instance, event) = held_launch(&h, None).await;
    h.control()
        .add_fault(
            &Fault::error("DescribeAddresses", "InvalidParameterValue")
                .message("injected by the test: the address cannot be read")
                .matching("AllocationId", h.stack.allocation_id.as_str())
                .count(1),
        )
        .await
        .unwrap();

    let out = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["outcome"], "abandoned", "{}", out.payload);
    let reason = out.payload["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("describing the address: DescribeAddresses: InvalidParameterValue")
            && reason.contains("injected by the test"),
        "{reason}"
    );

    // Both lookups happened, the failed one and the volume's beside it.
    let addresses = function_calls(
        &h,
        "DescribeAddresses",
        "AllocationId",
        &h.stack.allocation_id,
    )
    .await;
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert_eq!(
        addresses[0].error_code.as_deref(),
        Some("InvalidParameterValue")
    );
    let volumes = function_calls(&h, "DescribeVolumes", "VolumeId", &h.stack.volume_id).await;
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert!(volumes[0].succeeded(), "{volumes:?}");
    // Nothing changed but the ABANDON.
    for operation in ["AttachVolume", "AssociateAddress"] {
        let made = h.calls_of(operation).await;
        assert!(made.is_empty(), "{operation}: {made:?}");
    }
    let complete = h.calls_of("CompleteLifecycleAction").await;
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].param("InstanceId"), Some(instance.as_str()));
    assert_eq!(complete[0].param("LifecycleActionResult"), Some("ABANDON"));
    let v = volume_status(&h.clients.ec2, &h.stack.volume_id)
        .await
        .unwrap();
    assert!(v.attachment.is_none(), "{v}");
}

/// A launch while the serving instance still runs with the volume and the address (a second
/// instance in the group): the volume's holder is alive, so the heal abandons the newcomer,
/// and the address, read at once beside the volume, never leaves the running holder, even
/// while the look at that holder is slow.
#[tokio::test]
async fn a_live_holder_keeps_its_volume_and_its_address_while_the_newcomer_is_abandoned() {
    const SLOW_MS: u64 = 400;
    let h = Heal::new("liveholder", |b| b).await;
    let serving = h.first_launch().await;
    h.assert_volume_attached_to(&serving.id).await;
    let association = h.assert_address_on(&serving.id).await;
    let (newcomer, event) = held_launch(&h, Some(&serving.id)).await;
    h.control()
        .add_fault(
            &Fault::latency("DescribeInstances", SLOW_MS)
                .matching("InstanceId", serving.id.as_str())
                .count(1),
        )
        .await
        .unwrap();

    let out = h.stack.invoke(&h.clients, &event).await.unwrap();
    assert_eq!(out.function_error, None, "{}", out.payload);
    assert_eq!(out.payload["outcome"], "abandoned", "{}", out.payload);
    let reason = out.payload["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&serving.id)
            && reason.contains("running")
            && reason.contains("never forced off"),
        "{reason}"
    );
    // The holder was looked up (slowly) and the address read while that went on.
    let holder = function_calls(&h, "DescribeInstances", "InstanceId", &serving.id).await;
    assert!(
        holder.first().is_some_and(|c| c.fault.is_some()),
        "{holder:?}"
    );
    let read = function_calls(
        &h,
        "DescribeAddresses",
        "AllocationId",
        &h.stack.allocation_id,
    )
    .await;
    assert!(!read.is_empty(), "the address was looked at");
    for operation in ["AttachVolume", "AssociateAddress"] {
        let made = h.calls_of(operation).await;
        assert!(made.is_empty(), "{operation}: {made:?}");
    }
    let complete = h.calls_of("CompleteLifecycleAction").await;
    assert_eq!(complete.len(), 1, "{complete:?}");
    assert_eq!(complete[0].param("InstanceId"), Some(newcomer.as_str()));
    assert_eq!(complete[0].param("LifecycleActionResult"), Some("ABANDON"));
    h.assert_volume_attached_to(&serving.id).await;
    assert_eq!(
        h.assert_address_on(&serving.id).await,
        association,
        "the running holder kept its association"
    );
    assert_eq!(
        instance_state(&h.clients.ec2, &serving.id)
            .await
            .unwrap()
            .as_deref(),
        Some("running")
    );
}
