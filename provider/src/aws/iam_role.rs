//! The Lambda function's IAM role and its one inline policy. No instance role exists: the
//! instance needs no AWS permissions.
//!
//! The role lives under the path [`ROLE_PATH`], so a deployer's policy can be scoped to
//! `role/autoheal/*`; a path cannot be changed, so a role found elsewhere (made by an older
//! provider) is re-created.

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{iam, Tags};

/// The path of every role the provider makes.
pub const ROLE_PATH: &str = "/autoheal/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    pub arn: String,
    pub path: String,
    pub tags: Tags,
    /// The trust policy, parsed (`None` if IAM's answer does not parse).
    pub trust_policy: Option<serde_json::Value>,
    pub permissions_boundary: Option<String>,
}

pub async fn create(
    ctx: &OpContext,
    name: &str,
    trust_policy: &str,
    permissions_boundary: Option<&str>,
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
                    .path(ROLE_PATH)
                    .set_permissions_boundary(permissions_boundary.map(str::to_string))
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
            path: r.path().to_string(),
            tags: r
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            trust_policy: r.assume_role_policy_document().and_then(decode_document),
            permissions_boundary: r
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(str::to_string),
        })
    }))
}

/// A policy document as IAM returns it (URL-encoded), parsed.
fn decode_document(encoded: &str) -> Option<serde_json::Value> {
    let decoded = url::form_urlencoded::parse(format!("d={encoded}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(encoded))
        .ok()
}

/// Rewrites the trust policy (who may assume the role).
pub async fn set_trust_policy(ctx: &OpContext, role: &str, document: &str) -> Result<(), AwsError> {
    ctx.call("iam:UpdateAssumeRolePolicy", &["NoSuchEntity"], || {
        ctx.clients
            .iam
            .update_assume_role_policy()
            .role_name(role)
            .policy_document(document)
            .send()
    })
    .await?;
    tracing::info!(role, "trust policy rewritten");
    Ok(())
}

/// Sets the permissions boundary, or removes it (`None`).
pub async fn set_permissions_boundary(
    ctx: &OpContext,
    role: &str,
    boundary: Option<&str>,
) -> Result<(), AwsError> {
    match boundary {
        Some(arn) => {
            ctx.call("iam:PutRolePermissionsBoundary", &["NoSuchEntity"], || {
                ctx.clients
                    .iam
                    .put_role_permissions_boundary()
                    .role_name(role)
                    .permissions_boundary(arn)
                    .send()
            })
            .await?;
        }
        None => {
            ctx.call(
                "iam:DeleteRolePermissionsBoundary",
                &["NoSuchEntity"],
                || {
                    ctx.clients
                        .iam
                        .delete_role_permissions_boundary()
                        .role_name(role)
                        .send()
                },
            )
            .await?;
        }
    }
    tracing::info!(role, boundary, "permissions boundary set");
    Ok(())
}

/// The names of the role's inline policies, and the ARNs of its attached managed policies.
pub async fn policies(ctx: &OpContext, role: &str) -> Result<(Vec<String>, Vec<String>), AwsError> {
    let (inline, attached) = tokio::join!(
        ctx.find("iam:ListRolePolicies", || {
            ctx.clients.iam.list_role_policies().role_name(role).send()
        }),
        ctx.find("iam:ListAttachedRolePolicies", || {
            ctx.clients
                .iam
                .list_attached_role_policies()
                .role_name(role)
                .send()
        })
    );
    let inline = inline?
        .map(|o| o.policy_names().to_vec())
        .unwrap_or_default();
    let attached = attached?
        .map(|o| {
            o.attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((inline, attached))
}

/// Deletes an inline policy (gone already is fine).
pub async fn delete_policy(ctx: &OpContext, role: &str, policy: &str) -> Result<(), AwsError> {
    ctx.delete("iam:DeleteRolePolicy", &[], || {
        ctx.clients
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
    })
    .await?;
    tracing::info!(role, policy, "inline policy deleted");
    Ok(())
}

/// Detaches a managed policy (detached already is fine).
pub async fn detach_policy(ctx: &OpContext, role: &str, policy_arn: &str) -> Result<(), AwsError> {
    ctx.delete("iam:DetachRolePolicy", &[], || {
        ctx.clients
            .iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
    })
    .await?;
    tracing::info!(role, policy_arn, "managed policy detached");
    Ok(())
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
    Ok(out.and_then(|o| decode_document(o.policy_document())))
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

/// Deletes the role after its inline and attached policies (IAM refuses to delete a role
/// that has any).
pub async fn delete(ctx: &OpContext, role: &str) -> Result<(), AwsError> {
    let (inline, attached) = policies(ctx, role).await?;
    for policy in &inline {
        delete_policy(ctx, role, policy).await?;
    }
    for arn in &attached {
        detach_policy(ctx, role, arn).await?;
    }
    ctx.delete("iam:DeleteRole", &["DeleteConflict"], || {
        ctx.clients.iam.delete_role().role_name(role).send()
    })
    .await?;
    tracing::info!(role, "deleted IAM role");
    Ok(())
}
