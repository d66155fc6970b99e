//! The autoheal chain in the local AWS, built through the SDK (no Terraform), with the
//! workspace's `test-function` as the Lambda:
//!
//! terminate the group's instance -> the group launches a replacement, held in `Pending:Wait`
//! by the launch hook -> `EC2 Instance-launch Lifecycle Action` event -> rule -> function ->
//! CompleteLifecycleAction -> `InService`; and what happens when the function abandons,
//! fails, times out or cannot start.
//!
//! Each test has its own local AWS (clock scale 0.01: Lambda's 60 s / 120 s retry delays
//! take 0.6 s / 1.2 s).

use std::time::Duration;

use terraform_tests::local_aws::control::{Fault, Outcome};
use terraform_tests::local_aws::helpers::{
    function_logs, group_instances, instance_state, parse_utc, wait_for, wait_for_single_instance,
    wait_until, Check, Stack, StackBuilder, LAUNCH_ACTION_DETAIL_TYPE, POLL_INTERVAL,
};
use terraform_tests::local_aws::zip::bootstrap_zip;
use terraform_tests::local_aws::{Clients, LocalAws};

const STEP: Duration = Duration::from_secs(20);

fn test_function_zip() -> Vec<u8> {
    bootstrap_zip(env!("CARGO_BIN_EXE_test-function")).expect("zipping the test function")
}

async fn start() -> (LocalAws, Clients) {
    let aws = LocalAws::start().expect("starting the local AWS");
    let clients = aws.clients().await;
    (aws, clients)
}

async fn stack(
    clients: &Clients,
    name: &str,
    configure: impl FnOnce(StackBuilder) -> StackBuilder,
) -> Stack {
    configure(Stack::builder(name, test_function_zip()))
        .create(clients)
        .await
        .unwrap_or_else(|e| panic!("creating stack {name}: {e:#}"))
}

#[tokio::test]
async fn terminating_the_instance_runs_the_whole_chain_to_a_replacement_in_service() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let stack = stack(&clients, "chain", |b| b.heartbeat_timeout(3600)).await;

    // The first launch goes through the same chain.
    let first = wait_for_single_instance(
        &clients.autoscaling,
        &stack.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();

    // Hold the function's CompleteLifecycleAction for a second, so that Pending:Wait is there
    // to be seen however fast the function is.
    let hold = control
        .add_fault(&Fault::latency("CompleteLifecycleAction", 1000))
        .await
        .unwrap();
    control.clear_events().await.unwrap();
    control.clear_invocations().await.unwrap();
    control.clear_calls().await.unwrap();

    clients
        .ec2
        .terminate_instances()
        .instance_ids(&first.id)
        .send()
        .await
        .unwrap();

    // 1. The group launches a replacement, held in Pending:Wait (EC2 state: running).
    let pending = wait_for_single_instance(
        &clients.autoscaling,
        &stack.group_name,
        "Pending:Wait",
        Some(&first.id),
        STEP,
    )
    .await
    .unwrap();
    assert_eq!(pending.availability_zone, stack.availability_zone);
    assert_eq!(
        instance_state(&clients.ec2, &pending.id)
            .await
            .unwrap()
            .as_deref(),
        Some("running"),
        "an instance in Pending:Wait runs"
    );
    assert_eq!(
        instance_state(&clients.ec2, &first.id)
            .await
            .unwrap()
            .as_deref(),
        Some("terminated")
    );
    let actions = control.lifecycle_actions().await.unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a.instance_id == pending.id && a.lifecycle_hook_name == stack.hook_name),
        "a lifecycle action waits for {}: {actions:?}",
        pending.id
    );

    // 2. The hook's event reaches the rule, which queues it for the function.
    let event = wait_for("the launch event of the replacement", || async {
        let events = control.events().await?;
        Ok(
            match events
                .into_iter()
                .find(|e| e.detail("EC2InstanceId") == Some(pending.id.as_str()))
            {
                Some(e) => Check::Done(e),
                None => Check::NotYet("no event yet".into()),
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(event.origin, "autoscaling");
    assert_eq!(event.source.as_deref(), Some("aws.autoscaling"));
    assert_eq!(
        event.detail_type.as_deref(),
        Some(LAUNCH_ACTION_DETAIL_TYPE)
    );
    assert_eq!(
        event.detail("AutoScalingGroupName"),
        Some(stack.group_name.as_str())
    );
    assert_eq!(
        event.detail("LifecycleHookName"),
        Some(stack.hook_name.as_str())
    );
    assert_eq!(
        event.detail("LifecycleTransition"),
        Some("autoscaling:EC2_INSTANCE_LAUNCHING")
    );
    assert!(event.detail("LifecycleActionToken").is_some());
    assert_eq!(event.matched_rules, vec![stack.rule_arn.clone()]);
    assert_eq!(event.deliveries.len(), 1, "{:?}", event.deliveries);
    assert_eq!(event.deliveries[0].target_arn, stack.function_arn);
    assert_eq!(event.deliveries[0].status.as_deref(), Some("queued"));

    // 3. The function completes the hook: the instance goes InService.
    let healed = wait_for_single_instance(
        &clients.autoscaling,
        &stack.group_name,
        "InService",
        Some(&first.id),
        STEP,
    )
    .await
    .unwrap();
    assert_eq!(healed.id, pending.id);

    // 4. One successful attempt, for that event, through that rule.
    let invocation = wait_for("the function's invocation record", || async {
        let all = control.invocations_of(&stack.function_name).await?;
        Ok(
            match all
                .into_iter()
                .find(|i| i.event_id.as_deref() == Some(&event.id))
            {
                Some(i) => Check::Done(i),
                None => Check::NotYet("not recorded yet".into()),
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(invocation.outcome, Outcome::Success, "{invocation:?}");
    assert_eq!(invocation.attempt, 1);
    assert_eq!(
        invocation.rule_arn.as_deref(),
        Some(stack.rule_arn.as_str())
    );
    let response = invocation.response_json().expect("a JSON response");
    assert_eq!(response["instance"], pending.id.as_str());
    assert_eq!(response["result"], "CONTINUE");

    // 5. The calls, in order: our TerminateInstances, then the function's
    // CompleteLifecycleAction for the replacement (delayed by the latency rule).
    let calls = control.calls().await.unwrap();
    let terminate = calls
        .iter()
        .find(|c| c.operation == "TerminateInstances")
        .expect("TerminateInstances is recorded");
    let completes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "CompleteLifecycleAction")
        .collect();
    assert_eq!(completes.len(), 1, "{completes:?}");
    let complete = completes[0];
    assert!(terminate.seq < complete.seq);
    assert_eq!(complete.service, "autoscaling");
    assert_eq!(complete.status, 200);
    assert_eq!(complete.param("InstanceId"), Some(pending.id.as_str()));
    assert_eq!(complete.param("LifecycleActionResult"), Some("CONTINUE"));
    assert_eq!(complete.fault.as_deref(), Some(hold.as_str()));
    assert!(complete.duration_ms >= 1000.0, "{complete:?}");
    assert!(calls.windows(2).all(|w| w[0].seq < w[1].seq));

    // 6. What the function printed is in its log group.
    let lines = function_logs(&clients.logs, &stack.function_name)
        .await
        .unwrap();
    let done = format!("test-function: completed {} with CONTINUE", pending.id);
    assert!(
        lines.iter().any(|l| l == &done),
        "{done:?} not in the function's logs:\n{}",
        lines.join("\n")
    );
    assert!(lines.iter().any(|l| l.starts_with("START RequestId: ")));
    assert!(lines.iter().any(|l| l.starts_with("REPORT RequestId: ")));
}

#[tokio::test]
async fn abandon_terminates_the_instance_and_the_group_launches_another() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let stack = stack(&clients, "abandon", |b| {
        b.env("TEST_FUNCTION_RESULT", "ABANDON")
            .heartbeat_timeout(3600)
    })
    .await;

    // The first instance is abandoned, terminated, and replaced by a second one, which is
    // abandoned in turn: two successful ABANDON completions of two different instances.
    let abandoned = wait_for("two instances abandoned", || async {
        let ok: Vec<_> = control
            .invocations_of(&stack.function_name)
            .await?
            .into_iter()
            .filter(|i| i.outcome == Outcome::Success)
            .collect();
        Ok(if ok.len() >= 2 {
            Check::Done(ok)
        } else {
            Check::NotYet(format!("{} successful invocation(s)", ok.len()))
        })
    })
    .await
    .unwrap();
    // Stop the loop.
    stack.scale_to(&clients, 0).await.unwrap();

    // In the order the attempts started, which is the order of the launches: a record is
    // written when its attempt ends, and the first attempt may end after the second began.
    let mut abandoned = abandoned;
    abandoned.sort_by(|a, b| a.started.cmp(&b.started));
    let instances: Vec<String> = abandoned
        .iter()
        .map(|i| {
            let r = i.response_json().expect("a JSON response");
            assert_eq!(r["result"], "ABANDON", "{i:?}");
            r["instance"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(instances[0], instances[1], "a replacement was launched");
    for id in &instances[..2] {
        let state = wait_until(&format!("{id} terminated"), STEP, POLL_INTERVAL, || async {
            Ok(match instance_state(&clients.ec2, id).await? {
                Some(s) if s == "terminated" => Check::Done(s),
                other => Check::NotYet(format!("{other:?}")),
            })
        })
        .await;
        assert!(state.is_ok(), "{state:?}");
    }
    let completes = control.calls_of("CompleteLifecycleAction").await.unwrap();
    assert!(completes
        .iter()
        .take(2)
        .all(|c| c.param("LifecycleActionResult") == Some("ABANDON") && c.status == 200));
    // Never InService.
    let events = control.events().await.unwrap();
    assert!(
        events.len() >= 2,
        "one launch event per instance: {events:?}"
    );
    let launched: Vec<_> = events
        .iter()
        .filter_map(|e| e.detail("EC2InstanceId"))
        .collect();
    assert_eq!(
        &launched[..2],
        &[instances[0].as_str(), instances[1].as_str()]
    );
}

#[tokio::test]
async fn a_failing_function_is_retried_twice_then_the_failure_is_recorded() {
    let (aws, clients) = start().await;
    let control = aws.control();
    // A long heartbeat: the instance waits in Pending:Wait for the whole test.
    let stack = stack(&clients, "failing", |b| {
        b.env("TEST_FUNCTION_MODE", "error").heartbeat_timeout(3600)
    })
    .await;

    let attempts = wait_for("three failed attempts", || async {
        let all = control.invocations_of(&stack.function_name).await?;
        Ok(if all.len() >= 3 {
            Check::Done(all)
        } else {
            Check::NotYet(format!(
                "attempts so far: {:?}",
                all.iter()
                    .map(|i| (i.attempt, i.outcome))
                    .collect::<Vec<_>>()
            ))
        })
    })
    .await
    .unwrap();
    let event_id = attempts[0]
        .event_id
        .clone()
        .expect("an EventBridge delivery");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a.attempt as usize, n + 1, "{a:?}");
        assert_eq!(a.outcome, Outcome::Error, "{a:?}");
        // The recorded error type is the error document's errorType (as Lambda reports it),
        // not lambda_runtime's `unhandled` header.
        assert_eq!(
            a.error_type.as_deref(),
            Some("TestFunction.Failed"),
            "{a:?}"
        );
        let error: serde_json::Value =
            serde_json::from_str(a.error.as_deref().expect("an error document")).unwrap();
        assert_eq!(error["errorType"], "TestFunction.Failed", "{a:?}");
        assert_eq!(
            error["errorMessage"],
            "failing on purpose (TEST_FUNCTION_MODE=error)"
        );
        assert_eq!(a.event_id.as_deref(), Some(event_id.as_str()));
        assert_eq!(a.rule_arn.as_deref(), Some(stack.rule_arn.as_str()));
    }
    // Lambda's delays before the retries, 60 s and 120 s, at clock scale 0.01.
    let t: Vec<f64> = attempts
        .iter()
        .map(|a| parse_utc(&a.started).unwrap())
        .collect();
    assert!(t[1] - t[0] >= 0.5, "first retry after {:.3}s", t[1] - t[0]);
    assert!(t[2] - t[1] >= 1.1, "second retry after {:.3}s", t[2] - t[1]);

    // No fourth attempt (it would come after 2.4 s at most), and nobody completed the hook.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        control
            .invocations_of(&stack.function_name)
            .await
            .unwrap()
            .len(),
        3
    );
    let instances = group_instances(&clients.autoscaling, &stack.group_name)
        .await
        .unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].lifecycle_state, "Pending:Wait");
    assert!(control
        .calls_of("CompleteLifecycleAction")
        .await
        .unwrap()
        .is_empty());
    let lines = function_logs(&clients.logs, &stack.function_name)
        .await
        .unwrap();
    let failures = lines
        .iter()
        .filter(|l| l.contains("failing on purpose (TEST_FUNCTION_MODE=error)"))
        .count();
    assert_eq!(failures, 3, "{}", lines.join("\n"));
}

#[tokio::test]
async fn a_function_that_runs_past_its_timeout_is_killed_and_recorded() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let stack = stack(&clients, "sleepy", |b| {
        b.env("TEST_FUNCTION_MODE", "sleep")
            .function_timeout(1)
            .maximum_retry_attempts(0)
            .heartbeat_timeout(3600)
    })
    .await;
    let attempt = wait_for("the timed-out attempt", || async {
        let all = control.invocations_of(&stack.function_name).await?;
        Ok(match all.into_iter().next() {
            Some(a) => Check::Done(a),
            None => Check::NotYet("no attempt yet".into()),
        })
    })
    .await
    .unwrap();
    assert_eq!(attempt.outcome, Outcome::Timeout, "{attempt:?}");
    assert_eq!(attempt.error_type.as_deref(), Some("Sandbox.Timedout"));
    assert!(attempt.duration_ms >= 900.0, "{attempt:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        control
            .invocations_of(&stack.function_name)
            .await
            .unwrap()
            .len(),
        1,
        "MaximumRetryAttempts 0: no retry"
    );
}

#[tokio::test]
async fn a_function_that_exits_before_taking_the_event_is_an_init_error() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let stack = stack(&clients, "noinit", |b| {
        b.env("TEST_FUNCTION_MODE", "init-error")
            .maximum_retry_attempts(0)
            .heartbeat_timeout(3600)
    })
    .await;
    let attempt = wait_for("the failed init", || async {
        let all = control.invocations_of(&stack.function_name).await?;
        Ok(match all.into_iter().next() {
            Some(a) => Check::Done(a),
            None => Check::NotYet("no attempt yet".into()),
        })
    })
    .await
    .unwrap();
    assert_eq!(attempt.outcome, Outcome::InitError, "{attempt:?}");
    assert!(attempt.error_type.is_some(), "{attempt:?}");
    let lines = function_logs(&clients.logs, &stack.function_name)
        .await
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("exiting before taking an event")),
        "{}",
        lines.join("\n")
    );
}
