//! The Lambda function's IAM role and its one inline policy. No instance role exists: the
//! instance needs no AWS permissions.

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{iam, Tags};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    pub arn: String,
    pub tags: Tags,
}

pub async fn create(
    ctx: &OpContext,
    name: &str,
    trust_policy: &str,
    description: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    let arn = ctx
        .create(
            "iam:CreateRole",
            &[],
            || async {
                // Made by the attempt whose answer was lost: it carries this create's token.
                Ok(find(ctx, name)
                    .await?
                    .filter(|r| super::context::made_by(&r.tags, &token))
                    .map(|r| Some(r.arn)))
            },
            || async {
                let out = ctx
                    .clients
                    .iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(trust_policy)
                    .description(description)
                    .set_tags(Some(iam(&tags)))
                    .send()
                    .await?;
                Ok(out.role().map(|r| r.arn().to_string()))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("iam:CreateRole", "no role in the answer"))?;
    tracing::info!(role = name, arn, "created IAM role");
    Ok(arn)
}

pub async fn find(ctx: &OpContext, name: &str) -> Result<Option<RoleInfo>, AwsError> {
    let out = ctx
        .find("iam:GetRole", || {
            ctx.clients.iam.get_role().role_name(name).send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.role().map(|r| RoleInfo {
            arn: r.arn().to_string(),
            tags: r
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        })
    }))
}

pub async fn put_policy(
    ctx: &OpContext,
    role: &str,
    policy_name: &str,
    document: &str,
) -> Result<(), AwsError> {
    ctx.call("iam:PutRolePolicy", &["NoSuchEntity"], || {
        ctx.clients
            .iam
            .put_role_policy()
            .role_name(role)
            .policy_name(policy_name)
            .policy_document(document)
            .send()
    })
    .await?;
    tracing::info!(role, policy_name, "inline policy written");
    Ok(())
}

/// The inline policy's document (URL-decoded, as IAM returns it encoded), `None` if absent.
pub async fn get_policy(
    ctx: &OpContext,
    role: &str,
    policy_name: &str,
) -> Result<Option<serde_json::Value>, AwsError> {
    let out = ctx
        .find("iam:GetRolePolicy", || {
            ctx.clients
                .iam
                .get_role_policy()
                .role_name(role)
                .policy_name(policy_name)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| {
        let decoded = url::form_urlencoded::parse(format!("d={}", o.policy_document()).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        serde_json::from_str(&decoded)
            .or_else(|_| serde_json::from_str(o.policy_document()))
            .ok()
    }))
}

pub async fn set_tags(
    ctx: &OpContext,
    role: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if !remove.is_empty() {
        ctx.call("iam:UntagRole", &[], || {
            ctx.clients
                .iam
                .untag_role()
                .role_name(role)
                .set_tag_keys(Some(remove.to_vec()))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("iam:TagRole", &[], || {
            ctx.clients
                .iam
                .tag_role()
                .role_name(role)
                .set_tags(Some(iam(set)))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Deletes the role after its inline policies (IAM refuses to delete a role with policies).
pub async fn delete(ctx: &OpContext, role: &str) -> Result<(), AwsError> {
    let Some(policies) = ctx
        .find("iam:ListRolePolicies", || {
            ctx.clients.iam.list_role_policies().role_name(role).send()
        })
        .await?
    else {
        return Ok(());
    };
    for policy in policies.policy_names() {
        ctx.delete("iam:DeleteRolePolicy", &[], || {
            ctx.clients
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
        })
        .await?;
    }
    let attached = ctx
        .find("iam:ListAttachedRolePolicies", || {
            ctx.clients
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .send()
        })
        .await?;
    for policy in attached.iter().flat_map(|a| a.attached_policies()) {
        if let Some(arn) = policy.policy_arn() {
            ctx.delete("iam:DetachRolePolicy", &[], || {
                ctx.clients
                    .iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(arn)
                    .send()
            })
            .await?;
        }
    }
    ctx.delete("iam:DeleteRole", &["DeleteConflict"], || {
        ctx.clients.iam.delete_role().role_name(role).send()
    })
    .await?;
    tracing::info!(role, "deleted IAM role");
    Ok(())
}
