//! The attachment Lambda: create (retrying IAM's propagation delay), find, update
//! configuration and code, reserved concurrency, the permission that lets the EventBridge rule
//! invoke it, delete.

use std::collections::BTreeMap;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::context::{OpContext, Poll};
use super::error::AwsError;
use super::retry::{classify_sdk_error, Retry};
use super::tags::Tags;

/// The runtime of the shipped handler: a `bootstrap` executable on Amazon Linux 2023.
pub const RUNTIME: &str = "provided.al2023";

/// How Lambda says a role is not usable *yet* (IAM is eventually consistent: a new role, or a
/// new policy, takes seconds to reach Lambda). Matched on the message: the error code,
/// InvalidParameterValueException, also means genuinely bad input.
const IAM_PROPAGATION_MESSAGES: &[&str] = &[
    "cannot be assumed by Lambda",
    "execution role does not have permissions",
    "role defined for the function",
    // The grant on the environment variables' KMS key names the role's principal, which a
    // role made a moment ago may not be yet: "Lambda was unable to configure access to your
    // environment variables because the KMS key is invalid for CreateGrant. ... KMS Message:
    // ARN does not refer to a valid principal" (CreateFunction, UpdateFunctionConfiguration;
    // terraform-provider-aws retries it the same way).
    "unable to configure access to your environment variables",
];

/// Whether Lambda's answer says the function's role (or its KMS grant) has not propagated
/// yet: InvalidParameterValueException with one of [`IAM_PROPAGATION_MESSAGES`].
fn is_propagation(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("InvalidParameterValueException")
        && message.is_some_and(|m| IAM_PROPAGATION_MESSAGES.iter().any(|p| m.contains(p)))
}

/// Retries throttling and 5xx as usual, plus IAM propagation (by message) and
/// ResourceConflictException (an update still in progress).
fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Retry {
    // ResourceConflictException is transient while an update is in progress ("The operation
    // cannot be performed at this time"), final for a name in use ("Function already exist"),
    // which no wait fixes: read by its message.
    if let SdkError::ServiceError(ctx) = err {
        let e = ctx.err();
        if e.code() == Some("ResourceConflictException")
            && e.message().is_some_and(|m| m.contains("already exist"))
        {
            return Retry::Permanent;
        }
    }
    let generic = classify_sdk_error(err, &["ResourceConflictException"]);
    if generic.is_retryable() {
        return generic;
    }
    if let SdkError::ServiceError(ctx) = err {
        let e = ctx.err();
        if is_propagation(e.code(), e.message()) {
            return Retry::retryable("the IAM role is still propagating to Lambda");
        }
    }
    Retry::Permanent
}

/// The function's settings, as created and as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSettings {
    pub role_arn: String,
    pub memory_size: i32,
    pub timeout: i32,
    pub architecture: String,
    pub environment: BTreeMap<String, String>,
    pub log_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    pub arn: String,
    pub settings: FunctionSettings,
    /// Lambda's CodeSha256: base64 of the zip's SHA-256.
    pub code_sha256: String,
    pub reserved_concurrency: Option<i32>,
    pub tags: Tags,
}

fn environment(env: &BTreeMap<String, String>) -> Environment {
    Environment::builder()
        .set_variables(Some(env.clone().into_iter().collect()))
        .build()
}

/// Creates the function and waits until it is Active.
pub async fn create(
    ctx: &OpContext,
    name: &str,
    settings: &FunctionSettings,
    zip: &[u8],
    tags: &Tags,
    created: impl FnOnce(&str),
) -> Result<String, AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    let tags = &tags;
    let arn = ctx
        .create_with(
            "lambda:CreateFunction",
            classify,
            || async {
                // Made by the attempt whose answer was lost: it carries this create's token.
                Ok(find(ctx, name)
                    .await?
                    .filter(|f| super::context::made_by(&f.tags, &token))
                    .map(|f| Some(f.arn)))
            },
            || async {
                let mut req = ctx
                    .clients
                    .lambda
                    .create_function()
                    .function_name(name)
                    .runtime(Runtime::from(RUNTIME))
                    .handler("bootstrap")
                    .role(&settings.role_arn)
                    .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
                    .memory_size(settings.memory_size)
                    .timeout(settings.timeout)
                    .architectures(Architecture::from(settings.architecture.as_str()))
                    .environment(environment(&settings.environment))
                    .description(
                        "autoheal: attaches the data volume and the Elastic IP to a new instance",
                    )
                    .set_tags(Some(tags.clone().into_iter().collect()));
                if let Some(group) = &settings.log_group {
                    req = req.logging_config(
                        aws_sdk_lambda::types::LoggingConfig::builder()
                            .log_group(group)
                            .build(),
                    );
                }
                let out = req.send().await?;
                Ok(out.function_arn().map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("lambda:CreateFunction", "no function ARN in the answer"))?;
    tracing::info!(function = name, arn, "created Lambda function");
    // Recorded before the wait: a failed wait must not lose the function.
    created(&arn);
    wait_ready(ctx, name).await?;
    Ok(arn)
}

/// Waits until the function is Active and its last update finished.
pub async fn wait_ready(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    ctx.wait_for(&format!("Lambda function {name} to be ready"), || async {
        let out = ctx
            .find("lambda:GetFunctionConfiguration", || {
                ctx.clients
                    .lambda
                    .get_function_configuration()
                    .function_name(name)
                    .send()
            })
            .await?;
        let Some(cfg) = out else {
            return Ok(Poll::Waiting("not listed yet".into()));
        };
        let state = cfg.state().map(|s| s.as_str().to_string());
        let update = cfg.last_update_status().map(|s| s.as_str().to_string());
        if matches!(state.as_deref(), Some("Failed")) || matches!(update.as_deref(), Some("Failed"))
        {
            return Err(AwsError::other(
                "lambda:GetFunctionConfiguration",
                format!(
                    "function {name} failed: {}",
                    cfg.state_reason()
                        .or(cfg.last_update_status_reason())
                        .unwrap_or("no reason given")
                ),
            ));
        }
        let active = matches!(state.as_deref(), None | Some("Active"));
        let updated = matches!(update.as_deref(), None | Some("Successful"));
        Ok(if active && updated {
            Poll::Ready(())
        } else {
            Poll::Waiting(format!(
                "state {}, last update {}",
                state.as_deref().unwrap_or("-"),
                update.as_deref().unwrap_or("-")
            ))
        })
    })
    .await
}

pub async fn find(ctx: &OpContext, name: &str) -> Result<Option<FunctionInfo>, AwsError> {
    let Some(out) = ctx
        .find("lambda:GetFunction", || {
            ctx.clients.lambda.get_function().function_name(name).send()
        })
        .await?
    else {
        return Ok(None);
    };
    let Some(cfg) = out.configuration() else {
        return Ok(None);
    };
    let environment = cfg
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Some(FunctionInfo {
        arn: cfg.function_arn().unwrap_or_default().to_string(),
        settings: FunctionSettings {
            role_arn: cfg.role().unwrap_or_default().to_string(),
            memory_size: cfg.memory_size().unwrap_or_default(),
            timeout: cfg.timeout().unwrap_or_default(),
            architecture: cfg
                .architectures()
                .first()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| "x86_64".into()),
            environment,
            log_group: cfg
                .logging_config()
                .and_then(|l| l.log_group())
                .map(str::to_string),
        },
        code_sha256: cfg.code_sha256().unwrap_or_default().to_string(),
        reserved_concurrency: out
            .concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        tags: out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }))
}

pub async fn update_configuration(
    ctx: &OpContext,
    name: &str,
    settings: &FunctionSettings,
) -> Result<(), AwsError> {
    ctx.call_with("lambda:UpdateFunctionConfiguration", classify, || {
        ctx.clients
            .lambda
            .update_function_configuration()
            .function_name(name)
            .role(&settings.role_arn)
            .memory_size(settings.memory_size)
            .timeout(settings.timeout)
            .environment(environment(&settings.environment))
            .send()
    })
    .await?;
    tracing::info!(function = name, "function configuration updated");
    wait_ready(ctx, name).await
}

pub async fn update_code(
    ctx: &OpContext,
    name: &str,
    zip: &[u8],
    architecture: &str,
) -> Result<(), AwsError> {
    ctx.call_with("lambda:UpdateFunctionCode", classify, || {
        ctx.clients
            .lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(zip))
            .architectures(Architecture::from(architecture))
            .send()
    })
    .await?;
    tracing::info!(function = name, "function code updated");
    wait_ready(ctx, name).await
}

/// The function's event-invoke configuration: how often and for how long Lambda retries an
/// asynchronous invocation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    pub maximum_retry_attempts: i32,
    pub maximum_event_age_seconds: i32,
}

/// The function's event-invoke configuration (`None`: none set, Lambda's defaults apply).
pub async fn find_retry_budget(
    ctx: &OpContext,
    name: &str,
) -> Result<Option<RetryBudget>, AwsError> {
    let found = ctx
        .find("lambda:GetFunctionEventInvokeConfig", || {
            ctx.clients
                .lambda
                .get_function_event_invoke_config()
                .function_name(name)
                .send()
        })
        .await?;
    Ok(found.map(|c| RetryBudget {
        maximum_retry_attempts: c.maximum_retry_attempts().unwrap_or(2),
        maximum_event_age_seconds: c.maximum_event_age_in_seconds().unwrap_or(21600),
    }))
}

/// Sets the function's event-invoke configuration (replacing any: Put, not Update).
pub async fn set_retry_budget(
    ctx: &OpContext,
    name: &str,
    budget: RetryBudget,
) -> Result<(), AwsError> {
    ctx.call_with("lambda:PutFunctionEventInvokeConfig", classify, || {
        ctx.clients
            .lambda
            .put_function_event_invoke_config()
            .function_name(name)
            .maximum_retry_attempts(budget.maximum_retry_attempts)
            .maximum_event_age_in_seconds(budget.maximum_event_age_seconds)
            .send()
    })
    .await?;
    tracing::info!(
        function = name,
        retries = budget.maximum_retry_attempts,
        max_event_age_s = budget.maximum_event_age_seconds,
        "event-invoke configuration set"
    );
    Ok(())
}

/// Sets reserved concurrency, or removes it with `None`.
pub async fn set_reserved_concurrency(
    ctx: &OpContext,
    name: &str,
    reserved: Option<i32>,
) -> Result<(), AwsError> {
    match reserved {
        Some(n) => {
            ctx.call_with("lambda:PutFunctionConcurrency", classify, || {
                ctx.clients
                    .lambda
                    .put_function_concurrency()
                    .function_name(name)
                    .reserved_concurrent_executions(n)
                    .send()
            })
            .await?;
        }
        None => {
            ctx.delete(
                "lambda:DeleteFunctionConcurrency",
                &["ResourceConflictException"],
                || {
                    ctx.clients
                        .lambda
                        .delete_function_concurrency()
                        .function_name(name)
                        .send()
                },
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn set_tags(
    ctx: &OpContext,
    arn: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if !remove.is_empty() {
        ctx.call("lambda:UntagResource", &[], || {
            ctx.clients
                .lambda
                .untag_resource()
                .resource(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("lambda:TagResource", &[], || {
            ctx.clients
                .lambda
                .tag_resource()
                .resource(arn)
                .set_tags(Some(set.clone().into_iter().collect()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// The principal the invoke permission is for.
const EVENTS_PRINCIPAL: &str = "events.amazonaws.com";
const INVOKE_ACTION: &str = "lambda:InvokeFunction";

/// One statement of the function's resource policy, as far as the provider reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub principal: String,
    pub action: String,
    /// The `AWS:SourceArn` condition (empty: none).
    pub source_arn: String,
}

impl Permission {
    /// Whether it lets EventBridge invoke the function from `rule_arn`, and only that.
    pub fn grants(&self, rule_arn: &str) -> bool {
        self.principal == EVENTS_PRINCIPAL
            && self.action == INVOKE_ACTION
            && self.source_arn == rule_arn
    }
}

/// Lets `events.amazonaws.com` invoke the function, only from `rule_arn`. A statement of that
/// id already there (AWS: ResourceConflictException, "The statement id (..) provided already
/// exists"; an attempt whose answer was lost) is accepted only when it grants exactly this:
/// a statement that grants anything else is reported, never taken for ours.
pub async fn add_permission(
    ctx: &OpContext,
    name: &str,
    statement_id: &str,
    rule_arn: &str,
) -> Result<(), AwsError> {
    // `classify`: "an update is in progress" is waited out; "already exists" is read below.
    match ctx
        .call_with("lambda:AddPermission", classify, || {
            ctx.clients
                .lambda
                .add_permission()
                .function_name(name)
                .statement_id(statement_id)
                .action(INVOKE_ACTION)
                .principal(EVENTS_PRINCIPAL)
                .source_arn(rule_arn)
                .send()
        })
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.is_code(&["ResourceConflictException"]) && e.message.contains("already exist") =>
        {
            match find_permission(ctx, name, statement_id).await? {
                Some(p) if p.grants(rule_arn) => {}
                other => {
                    return Err(AwsError::other(
                        "lambda:AddPermission",
                        format!(
                            "function {name} already has a statement {statement_id} that is not \
                             this stack's (events.amazonaws.com, lambda:InvokeFunction from \
                             {rule_arn}): {other:?}; remove it (aws lambda remove-permission) \
                             and apply again"
                        ),
                    ))
                }
            }
        }
        Err(e) => return Err(e),
    }
    tracing::info!(
        function = name,
        statement_id,
        rule_arn,
        "invoke permission added"
    );
    Ok(())
}

/// Removes permission statement `statement_id` (gone already is done).
pub async fn remove_permission(
    ctx: &OpContext,
    name: &str,
    statement_id: &str,
) -> Result<(), AwsError> {
    ctx.delete("lambda:RemovePermission", &[], || {
        ctx.clients
            .lambda
            .remove_permission()
            .function_name(name)
            .statement_id(statement_id)
            .send()
    })
    .await?;
    tracing::info!(function = name, statement_id, "invoke permission removed");
    Ok(())
}

/// The function's resource policy, as far as the provider reads it: the statement of our id,
/// and the ids of all others (which the provider does not write).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcePolicy {
    pub ours: Option<Permission>,
    pub other_sids: Vec<String>,
}

/// Reads the function's resource policy; `statement_id` is ours.
pub async fn find_policy(
    ctx: &OpContext,
    name: &str,
    statement_id: &str,
) -> Result<ResourcePolicy, AwsError> {
    let Some(out) = ctx
        .find("lambda:GetPolicy", || {
            ctx.clients.lambda.get_policy().function_name(name).send()
        })
        .await?
    else {
        return Ok(ResourcePolicy::default());
    };
    Ok(parse_policy(out.policy().unwrap_or_default(), statement_id))
}

fn parse_policy(policy: &str, statement_id: &str) -> ResourcePolicy {
    let doc: serde_json::Value = serde_json::from_str(policy).unwrap_or_default();
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let ours = statements
        .iter()
        .find(|s| s["Sid"] == statement_id)
        .map(|s| Permission {
            // `"Principal": {"Service": ".."}`, or a bare string.
            principal: s["Principal"]["Service"]
                .as_str()
                .or_else(|| s["Principal"].as_str())
                .unwrap_or_default()
                .to_string(),
            action: text(&s["Action"]),
            source_arn: text(&s["Condition"]["ArnLike"]["AWS:SourceArn"]),
        });
    let other_sids = statements
        .iter()
        .map(|s| text(&s["Sid"]))
        .filter(|sid| sid != statement_id)
        .collect();
    ResourcePolicy { ours, other_sids }
}

/// Statement `statement_id` of the function's resource policy, if it exists.
pub async fn find_permission(
    ctx: &OpContext,
    name: &str,
    statement_id: &str,
) -> Result<Option<Permission>, AwsError> {
    Ok(find_policy(ctx, name, statement_id).await?.ours)
}

pub async fn delete(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    ctx.delete(
        "lambda:DeleteFunction",
        &["ResourceConflictException"],
        || {
            ctx.clients
                .lambda
                .delete_function()
                .function_name(name)
                .send()
        },
    )
    .await?;
    tracing::info!(function = name, "deleted Lambda function");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_policy_tells_our_statement_from_the_others() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"ours","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},
             "Action":"lambda:InvokeFunction","Resource":"f",
             "Condition":{"ArnLike":{"AWS:SourceArn":"arn:rule"}}},
            {"Sid":"planted","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunction","Resource":"f"}]}"#;
        let p = parse_policy(policy, "ours");
        assert!(p.ours.expect("ours").grants("arn:rule"));
        assert_eq!(p.other_sids, vec!["planted".to_string()]);
        assert_eq!(parse_policy("", "ours"), ResourcePolicy::default());
    }

    #[test]
    fn propagation_messages_are_told_from_real_refusals() {
        let code = Some("InvalidParameterValueException");
        for message in [
            "The role defined for the function cannot be assumed by Lambda.",
            "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
            "Lambda was unable to configure access to your environment variables because the KMS \
             key is invalid for CreateGrant. Please check your KMS key settings. KMS Exception: \
             InvalidArnException KMS Message: ARN does not refer to a valid principal: \
             arn:aws:iam::123456789012:role/web-ap-southeast-2-attach",
        ] {
            assert!(is_propagation(code, Some(message)), "{message}");
        }
        assert!(!is_propagation(
            code,
            Some("Unzipped size must be smaller than 262144000 bytes")
        ));
        assert!(!is_propagation(
            Some("AccessDeniedException"),
            Some("The role defined for the function cannot be assumed by Lambda.")
        ));
        assert!(!is_propagation(code, None));
    }
}
