//! The EventBridge rules of a stack, each with its one target on the function: the rule that
//! sends the group's launch lifecycle actions, and the schedule of the scheduled snapshots.

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{events, Tags};

/// The detail-type Auto Scaling gives a launch held by a lifecycle hook.
pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";

/// The pattern that matches launch lifecycle actions of exactly `group`.
pub fn launch_pattern(group: &str) -> serde_json::Value {
    serde_json::json!({
        "source": ["aws.autoscaling"],
        "detail-type": [LAUNCH_DETAIL_TYPE],
        "detail": {"AutoScalingGroupName": [group]},
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleInfo {
    pub arn: String,
    pub pattern: serde_json::Value,
    /// `rate(...)` or `cron(...)` of a schedule rule.
    pub schedule_expression: Option<String>,
    pub enabled: bool,
    /// (target id, target ARN)
    pub targets: Vec<(String, String)>,
}

/// What makes a rule fire: an event pattern, or a schedule expression (`rate(...)`, on the
/// default bus; EventBridge then sends a "Scheduled Event" to the targets).
#[derive(Clone, Copy, Debug)]
pub enum Trigger<'a> {
    Pattern(&'a serde_json::Value),
    Schedule(&'a str),
}

/// Creates (or overwrites: PutRule is an upsert) the rule, enabled. Returns its ARN.
pub async fn put(
    ctx: &OpContext,
    name: &str,
    trigger: Trigger<'_>,
    description: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    let out = ctx
        .call("events:PutRule", &[], || {
            let request = ctx
                .clients
                .events
                .put_rule()
                .name(name)
                .description(description)
                .state(aws_sdk_eventbridge::types::RuleState::Enabled)
                .set_tags(Some(events(tags)));
            match trigger {
                Trigger::Pattern(p) => request.event_pattern(p.to_string()),
                Trigger::Schedule(e) => request.schedule_expression(e),
            }
            .send()
        })
        .await?;
    let arn = out
        .rule_arn()
        .ok_or_else(|| AwsError::other("events:PutRule", "no rule ARN in the answer"))?
        .to_string();
    tracing::info!(rule = name, arn, ?trigger, "EventBridge rule written");
    Ok(arn)
}

pub async fn put_target(
    ctx: &OpContext,
    rule: &str,
    target_id: &str,
    function_arn: &str,
) -> Result<(), AwsError> {
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id(target_id)
        .arn(function_arn)
        .build()
        .map_err(|e| AwsError::other("events:PutTargets", e.to_string()))?;
    let out = ctx
        .call("events:PutTargets", &[], || {
            ctx.clients
                .events
                .put_targets()
                .rule(rule)
                .targets(target.clone())
                .send()
        })
        .await?;
    if let Some(failed) = out.failed_entries().first() {
        return Err(AwsError {
            code: failed.error_code().map(str::to_string),
            ..AwsError::other(
                "events:PutTargets",
                failed.error_message().unwrap_or("the target was not added"),
            )
        });
    }
    tracing::info!(rule, target_id, function_arn, "rule target set");
    Ok(())
}

/// Removes targets `ids` from the rule (targets the provider does not write).
pub async fn remove_targets(ctx: &OpContext, rule: &str, ids: &[String]) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    let out = ctx
        .call("events:RemoveTargets", &[], || {
            ctx.clients
                .events
                .remove_targets()
                .rule(rule)
                .set_ids(Some(ids.to_vec()))
                .send()
        })
        .await?;
    if let Some(failed) = out.failed_entries().first() {
        return Err(AwsError {
            code: failed.error_code().map(str::to_string),
            ..AwsError::other(
                "events:RemoveTargets",
                failed.error_message().unwrap_or("a target was not removed"),
            )
        });
    }
    tracing::info!(rule, ?ids, "removed targets the stack does not write");
    Ok(())
}

pub async fn find(ctx: &OpContext, name: &str) -> Result<Option<RuleInfo>, AwsError> {
    let Some(rule) = ctx
        .find("events:DescribeRule", || {
            ctx.clients.events.describe_rule().name(name).send()
        })
        .await?
    else {
        return Ok(None);
    };
    let targets = targets(ctx, name).await?;
    Ok(Some(RuleInfo {
        arn: rule.arn().unwrap_or_default().to_string(),
        pattern: rule
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_default(),
        schedule_expression: rule.schedule_expression().map(str::to_string),
        enabled: rule.state().map(|s| s.as_str()) == Some("ENABLED"),
        targets,
    }))
}

/// The rule's targets: (id, ARN) each; none when the rule is gone.
pub async fn targets(ctx: &OpContext, name: &str) -> Result<Vec<(String, String)>, AwsError> {
    let out = ctx
        .find("events:ListTargetsByRule", || {
            ctx.clients.events.list_targets_by_rule().rule(name).send()
        })
        .await?;
    Ok(out
        .iter()
        .flat_map(|t| t.targets())
        .map(|t| (t.id().to_string(), t.arn().to_string()))
        .collect())
}

pub async fn tags(ctx: &OpContext, arn: &str) -> Result<Tags, AwsError> {
    let out = ctx
        .call("events:ListTagsForResource", &[], || {
            ctx.clients
                .events
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
        })
        .await?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect())
}

pub async fn set_tags(
    ctx: &OpContext,
    arn: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if !remove.is_empty() {
        ctx.call("events:UntagResource", &[], || {
            ctx.clients
                .events
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("events:TagResource", &[], || {
            ctx.clients
                .events
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(events(set)))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Removes the rule's targets, then the rule (EventBridge refuses to delete a rule that has
/// targets).
pub async fn delete(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    let Some(rule) = find(ctx, name).await? else {
        return Ok(());
    };
    let ids: Vec<String> = rule.targets.into_iter().map(|(id, _)| id).collect();
    if !ids.is_empty() {
        ctx.delete("events:RemoveTargets", &[], || {
            ctx.clients
                .events
                .remove_targets()
                .rule(name)
                .set_ids(Some(ids.clone()))
                .send()
        })
        .await?;
    }
    ctx.delete("events:DeleteRule", &[], || {
        ctx.clients.events.delete_rule().name(name).send()
    })
    .await?;
    tracing::info!(rule = name, "deleted EventBridge rule");
    Ok(())
}
