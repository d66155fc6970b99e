//! `test-function`: a stand-in Lambda for the local-AWS tests (zipped as `bootstrap` for a
//! `provided.al2023` function).
//!
//! On an `EC2 Instance-launch Lifecycle Action` event it completes the lifecycle action with
//! `CONTINUE`, or `ABANDON` when `TEST_FUNCTION_RESULT=ABANDON`. Other events are answered
//! without any AWS call. `TEST_FUNCTION_MODE` makes it misbehave on purpose:
//!
//! * `error`: every invocation returns an error (`TestFunction.Failed`);
//! * `sleep`: every invocation sleeps for an hour, i.e. past any function timeout;
//! * `init-error`: it exits before taking an event.
//!
//! Its AWS client comes from aws-config's normal loading, so the `AWS_ENDPOINT_URL`, region
//! and credentials the Lambda runner injects are honoured, as the real handler's would be. It
//! prints one line per step on stdout: the runner puts those in `/aws/lambda/NAME`.

use std::process::ExitCode;
use std::time::Duration;

use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::{json, Value};

const LAUNCH_ACTION: &str = "EC2 Instance-launch Lifecycle Action";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mode = std::env::var("TEST_FUNCTION_MODE").unwrap_or_default();
    let result = std::env::var("TEST_FUNCTION_RESULT").unwrap_or_else(|_| "CONTINUE".into());
    println!("test-function: init mode={mode:?} result={result}");
    if mode == "init-error" {
        println!("test-function: exiting before taking an event (TEST_FUNCTION_MODE=init-error)");
        return ExitCode::from(3);
    }
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let autoscaling = aws_sdk_autoscaling::Client::new(&config);
    let handler = service_fn(|event: LambdaEvent<Value>| {
        let autoscaling = autoscaling.clone();
        let mode = mode.clone();
        let result = result.clone();
        async move { handle(&autoscaling, &mode, &result, event.payload).await }
    });
    match lambda_runtime::run(handler).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("test-function: the runtime stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn handle(
    autoscaling: &aws_sdk_autoscaling::Client,
    mode: &str,
    result: &str,
    event: Value,
) -> Result<Value, Diagnostic> {
    let detail_type = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let field = |name: &str| detail.get(name).and_then(Value::as_str).map(str::to_owned);
    let instance = field("EC2InstanceId");
    println!("test-function: event {detail_type:?} instance={instance:?}");
    match mode {
        "error" => {
            println!("test-function: failing on purpose (TEST_FUNCTION_MODE=error)");
            return Err(Diagnostic {
                error_type: "TestFunction.Failed".into(),
                error_message: "failing on purpose (TEST_FUNCTION_MODE=error)".into(),
            });
        }
        "sleep" => {
            println!("test-function: sleeping past the timeout (TEST_FUNCTION_MODE=sleep)");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        _ => {}
    }
    if detail_type != LAUNCH_ACTION {
        println!("test-function: not a launch lifecycle action: ignored");
        return Ok(json!({ "ignored": detail_type }));
    }
    let (Some(group), Some(hook), Some(token), Some(instance)) = (
        field("AutoScalingGroupName"),
        field("LifecycleHookName"),
        field("LifecycleActionToken"),
        instance,
    ) else {
        return Err(Diagnostic {
            error_type: "TestFunction.BadEvent".into(),
            error_message: format!("the event lacks lifecycle action fields: {event}"),
        });
    };
    autoscaling
        .complete_lifecycle_action()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name(&hook)
        .lifecycle_action_token(&token)
        .instance_id(&instance)
        .lifecycle_action_result(result)
        .send()
        .await
        .map_err(|e| {
            let message = format!(
                "CompleteLifecycleAction failed: {}",
                aws_sdk_autoscaling::error::DisplayErrorContext(&e)
            );
            println!("test-function: {message}");
            Diagnostic {
                error_type: "TestFunction.CompleteFailed".into(),
                error_message: message,
            }
        })?;
    println!("test-function: completed {instance} with {result}");
    Ok(json!({ "instance": instance, "group": group, "hook": hook, "result": result }))
}
