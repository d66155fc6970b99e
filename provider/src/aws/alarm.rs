//! CloudWatch metric alarms: put (create or overwrite), find, tag, delete.
//!
//! PutMetricAlarm creates or replaces the whole alarm, so an update is the same call as a
//! create ("If you are updating an existing alarm, its previous configuration is completely
//! overwritten", CloudWatch API Reference); the state of an overwritten alarm is kept.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};

use super::context::OpContext;
use super::error::AwsError;
use super::tags::Tags;

/// One alarm on one metric, as the stack defines it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric_name: String,
    /// (name, value) pairs.
    pub dimensions: Vec<(String, String)>,
    /// CloudWatch's statistic name: `Sum`, `Minimum`, ...
    pub statistic: String,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    /// CloudWatch's operator name, e.g. `GreaterThanThreshold`.
    pub comparison: String,
    /// `missing`, `notBreaching`, `breaching` or `ignore`.
    pub treat_missing_data: String,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
}

/// What DescribeAlarms reports of an alarm: the definition as [`AlarmSpec`], its ARN and state.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmInfo {
    pub arn: String,
    pub spec: AlarmSpec,
    pub state: String,
}

pub async fn put(ctx: &OpContext, alarm: &AlarmSpec, tags: &Tags) -> Result<(), AwsError> {
    let dims: Vec<Dimension> = alarm
        .dimensions
        .iter()
        .map(|(n, v)| Dimension::builder().name(n).value(v).build())
        .collect();
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    ctx.call("cloudwatch:PutMetricAlarm", &[], || {
        ctx.clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm.name)
            .alarm_description(&alarm.description)
            .namespace(&alarm.namespace)
            .metric_name(&alarm.metric_name)
            .set_dimensions(Some(dims.clone()))
            .statistic(Statistic::from(alarm.statistic.as_str()))
            .period(alarm.period_seconds)
            .evaluation_periods(alarm.evaluation_periods)
            .threshold(alarm.threshold)
            .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
            .treat_missing_data(&alarm.treat_missing_data)
            .actions_enabled(true)
            .set_alarm_actions(Some(alarm.alarm_actions.clone()))
            .set_ok_actions(Some(alarm.ok_actions.clone()))
            // Tags apply only when the alarm is created; an existing alarm's are set below.
            .set_tags(Some(tags.clone()))
            .send()
    })
    .await?;
    tracing::info!(alarm = alarm.name, "put metric alarm");
    Ok(())
}

/// The alarms named `names` that exist (DescribeAlarms answers only those).
pub async fn find(ctx: &OpContext, names: &[String]) -> Result<Vec<AlarmInfo>, AwsError> {
    let out = ctx
        .call("cloudwatch:DescribeAlarms", &[], || {
            ctx.clients
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(names.to_vec()))
                .send()
        })
        .await?;
    Ok(out
        .metric_alarms()
        .iter()
        .map(|a| AlarmInfo {
            arn: a.alarm_arn().unwrap_or_default().to_string(),
            state: a
                .state_value()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            spec: AlarmSpec {
                name: a.alarm_name().unwrap_or_default().to_string(),
                description: a.alarm_description().unwrap_or_default().to_string(),
                namespace: a.namespace().unwrap_or_default().to_string(),
                metric_name: a.metric_name().unwrap_or_default().to_string(),
                dimensions: a
                    .dimensions()
                    .iter()
                    .map(|d| {
                        (
                            d.name().unwrap_or_default().to_string(),
                            d.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                statistic: a
                    .statistic()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                period_seconds: a.period().unwrap_or_default(),
                evaluation_periods: a.evaluation_periods().unwrap_or_default(),
                threshold: a.threshold().unwrap_or_default(),
                comparison: a
                    .comparison_operator()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
                treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
                alarm_actions: a.alarm_actions().to_vec(),
                ok_actions: a.ok_actions().to_vec(),
            },
        })
        .collect())
}

pub async fn tags(ctx: &OpContext, arn: &str) -> Result<Tags, AwsError> {
    let out = ctx
        .call("cloudwatch:ListTagsForResource", &[], || {
            ctx.clients
                .cloudwatch
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
        })
        .await?;
    Ok(out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect())
}

pub async fn set_tags(
    ctx: &OpContext,
    arn: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if !remove.is_empty() {
        ctx.call("cloudwatch:UntagResource", &[], || {
            ctx.clients
                .cloudwatch
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        let tags: Vec<Tag> = set
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        ctx.call("cloudwatch:TagResource", &[], || {
            ctx.clients
                .cloudwatch
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Deletes the alarms; names that do not exist are ignored by CloudWatch.
pub async fn delete(ctx: &OpContext, names: &[String]) -> Result<(), AwsError> {
    if names.is_empty() {
        return Ok(());
    }
    ctx.delete("cloudwatch:DeleteAlarms", &[], || {
        ctx.clients
            .cloudwatch
            .delete_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
    })
    .await?;
    tracing::info!(?names, "deleted alarms");
    Ok(())
}
