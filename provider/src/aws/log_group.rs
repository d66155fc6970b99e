//! The Lambda function's CloudWatch Logs group, created by the provider (not by Lambda on
//! first write) so it has a retention and tags, and is deleted with the stack.

use super::context::OpContext;
use super::error::AwsError;
use super::tags::Tags;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGroupInfo {
    pub name: String,
    pub arn: Option<String>,
    pub retention_days: Option<i32>,
}

/// Creates the group and sets its retention. `created` hears when the group exists, before
/// the retention call that may fail.
pub async fn create(
    ctx: &OpContext,
    name: &str,
    retention_days: i32,
    tags: &Tags,
    created: impl FnOnce(),
) -> Result<(), AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    ctx.create(
        "logs:CreateLogGroup",
        &[],
        || async {
            // Made by the attempt whose answer was lost: it carries this create's token.
            let Some(arn) = find(ctx, name).await?.and_then(|l| l.arn) else {
                return Ok(None);
            };
            Ok(super::context::made_by(&self::tags(ctx, &arn).await?, &token).then_some(()))
        },
        || async {
            ctx.clients
                .logs
                .create_log_group()
                .log_group_name(name)
                .set_tags(Some(tags.clone().into_iter().collect()))
                .send()
                .await
                .map(|_| ())
        },
    )
    .await?;
    tracing::info!(log_group = name, "created log group");
    created();
    set_retention(ctx, name, retention_days).await
}

pub async fn set_retention(ctx: &OpContext, name: &str, days: i32) -> Result<(), AwsError> {
    ctx.call("logs:PutRetentionPolicy", &[], || {
        ctx.clients
            .logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(days)
            .send()
    })
    .await?;
    Ok(())
}

/// The ARN of log group `name` in the account and region of `function_arn`, a Lambda
/// function's ARN (`arn:<partition>:lambda:<region>:<account>:function:<name>`):
/// `arn:<partition>:logs:<region>:<account>:log-group:<name>`, the form the tag API takes
/// (Service Authorization Reference, CloudWatch Logs, resource type `log-group`). A stack that
/// knows its function's ARN tags its log group without a DescribeLogGroups first. `None` for
/// anything that is not a function ARN.
pub fn arn_beside_function(function_arn: &str, name: &str) -> Option<String> {
    match function_arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, "lambda", region, account, "function", ..]
            if !partition.is_empty() && !region.is_empty() && !account.is_empty() =>
        {
            Some(format!(
                "arn:{partition}:logs:{region}:{account}:log-group:{name}"
            ))
        }
        _ => None,
    }
}

pub async fn find(ctx: &OpContext, name: &str) -> Result<Option<LogGroupInfo>, AwsError> {
    let out = ctx
        .call("logs:DescribeLogGroups", &[], || {
            ctx.clients
                .logs
                .describe_log_groups()
                .log_group_name_prefix(name)
                .send()
        })
        .await?;
    Ok(out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .map(|g| LogGroupInfo {
            name: name.to_string(),
            arn: g.arn().map(str::to_string),
            retention_days: g.retention_in_days(),
        }))
}

pub async fn tags(ctx: &OpContext, arn: &str) -> Result<Tags, AwsError> {
    // The tag API wants the ARN without the trailing `:*` DescribeLogGroups gives.
    let arn = arn.trim_end_matches(":*");
    let out = ctx
        .call("logs:ListTagsForResource", &[], || {
            ctx.clients
                .logs
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
        })
        .await?;
    Ok(out
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect())
}

pub async fn set_tags(
    ctx: &OpContext,
    arn: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    let arn = arn.trim_end_matches(":*");
    if !remove.is_empty() {
        ctx.call("logs:UntagResource", &[], || {
            ctx.clients
                .logs
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("logs:TagResource", &[], || {
            ctx.clients
                .logs
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(set.clone().into_iter().collect()))
                .send()
        })
        .await?;
    }
    Ok(())
}

pub async fn delete(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    ctx.delete("logs:DeleteLogGroup", &[], || {
        ctx.clients
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
    })
    .await?;
    tracing::info!(log_group = name, "deleted log group");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_group_arn_takes_the_partition_region_and_account_of_the_function() {
        assert_eq!(
            arn_beside_function(
                "arn:aws-cn:lambda:cn-north-1:111122223333:function:web-attach",
                "/aws/lambda/web-attach"
            )
            .as_deref(),
            Some("arn:aws-cn:logs:cn-north-1:111122223333:log-group:/aws/lambda/web-attach")
        );
        // A qualified ARN (version or alias) names the same account.
        assert!(
            arn_beside_function("arn:aws:lambda:us-east-1:111122223333:function:f:3", "g")
                .is_some()
        );
        for not_a_function in [
            "",
            "arn:aws:iam::111122223333:role/r",
            "arn:aws:lambda:us-east-1::function:f",
            "arn:aws:lambda:us-east-1:111122223333:layer:l",
        ] {
            assert_eq!(
                arn_beside_function(not_a_function, "g"),
                None,
                "{not_a_function}"
            );
        }
    }
}
