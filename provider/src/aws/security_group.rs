//! The instance's security group: SSH (TCP 22) from `ssh_ingress_cidrs` only, nothing else
//! inbound; EC2's default egress (the instance needs the internet or VPC endpoints).

use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{ec2_spec, Tags};

const SSH_PORT: i32 = 22;

/// What the provider manages of a security group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    pub group_id: String,
    pub vpc_id: String,
    /// CIDRs allowed to TCP 22, sorted.
    pub ssh_cidrs: Vec<String>,
    /// Inbound rules other than SSH from a CIDR (someone added them by hand).
    pub other_ingress: usize,
}

fn ssh_permission(cidrs: &[String]) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(SSH_PORT)
        .to_port(SSH_PORT)
        .set_ip_ranges(Some(
            cidrs
                .iter()
                .map(|c| IpRange::builder().cidr_ip(c).description("SSH").build())
                .collect(),
        ))
        .build()
}

pub async fn create(
    ctx: &OpContext,
    name: &str,
    vpc_id: &str,
    ssh_cidrs: &[String],
    tags: &Tags,
    created: impl FnOnce(&str),
) -> Result<String, AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    let id = ctx
        .create(
            "ec2:CreateSecurityGroup",
            &["InvalidVpcID.NotFound"],
            || super::ec2_tags::find_created(ctx, &token),
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_security_group()
                    .group_name(name)
                    .description("autoheal instance: SSH only from ssh_ingress_cidrs")
                    .vpc_id(vpc_id)
                    .tag_specifications(ec2_spec(ResourceType::SecurityGroup, &tags))
                    .send()
                    .await?;
                Ok(out.group_id().map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:CreateSecurityGroup", "no group id in the answer"))?;
    tracing::info!(security_group_id = id, "created security group");
    // Recorded before the ingress call, which may fail.
    created(&id);
    if !ssh_cidrs.is_empty() {
        authorize_ssh(ctx, &id, ssh_cidrs).await?;
    }
    Ok(id)
}

async fn authorize_ssh(ctx: &OpContext, group_id: &str, cidrs: &[String]) -> Result<(), AwsError> {
    match ctx
        .call(
            "ec2:AuthorizeSecurityGroupIngress",
            &["InvalidGroup.NotFound"],
            || {
                ctx.clients
                    .ec2
                    .authorize_security_group_ingress()
                    .group_id(group_id)
                    .ip_permissions(ssh_permission(cidrs))
                    .send()
            },
        )
        .await
    {
        // The rules are there: an attempt whose answer was lost added them.
        Err(e) if e.is_code(&["InvalidPermission.Duplicate"]) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// The id of the security group named `name` in VPC `vpc_id` (group names are unique in a
/// VPC) whose tag `tag.0` is `tag.1`, if there is one.
pub async fn find_by_name(
    ctx: &OpContext,
    vpc_id: &str,
    name: &str,
    tag: (&str, &str),
) -> Result<Option<String>, AwsError> {
    let filter = |n: &str, v: &str| {
        aws_sdk_ec2::types::Filter::builder()
            .name(n)
            .values(v)
            .build()
    };
    let out = ctx
        .call("ec2:DescribeSecurityGroups", &[], || {
            ctx.clients
                .ec2
                .describe_security_groups()
                .filters(filter("vpc-id", vpc_id))
                .filters(filter("group-name", name))
                .filters(filter(&format!("tag:{}", tag.0), tag.1))
                .send()
        })
        .await?;
    Ok(out
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
        .map(str::to_string))
}

pub async fn find(ctx: &OpContext, group_id: &str) -> Result<Option<SecurityGroupInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeSecurityGroups", || {
            ctx.clients
                .ec2
                .describe_security_groups()
                .group_ids(group_id)
                .send()
        })
        .await?;
    let Some(group) = out.as_ref().and_then(|o| o.security_groups().first()) else {
        return Ok(None);
    };
    let mut ssh_cidrs = Vec::new();
    let mut other_ingress = 0;
    for perm in group.ip_permissions() {
        let is_ssh = perm.ip_protocol() == Some("tcp")
            && perm.from_port() == Some(SSH_PORT)
            && perm.to_port() == Some(SSH_PORT);
        if is_ssh {
            ssh_cidrs.extend(
                perm.ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_string)),
            );
            other_ingress += perm.ipv6_ranges().len() + perm.user_id_group_pairs().len();
        } else {
            other_ingress += 1;
        }
    }
    ssh_cidrs.sort();
    ssh_cidrs.dedup();
    Ok(Some(SecurityGroupInfo {
        group_id: group_id.to_string(),
        vpc_id: group.vpc_id().unwrap_or_default().to_string(),
        ssh_cidrs,
        other_ingress,
    }))
}

/// Makes TCP 22 open to exactly `wanted`: revokes the CIDRs no longer wanted, authorizes new.
pub async fn set_ssh_cidrs(
    ctx: &OpContext,
    group_id: &str,
    current: &[String],
    wanted: &[String],
) -> Result<(), AwsError> {
    let revoke: Vec<String> = current
        .iter()
        .filter(|c| !wanted.contains(c))
        .cloned()
        .collect();
    let add: Vec<String> = wanted
        .iter()
        .filter(|c| !current.contains(c))
        .cloned()
        .collect();
    if !revoke.is_empty() {
        ctx.call("ec2:RevokeSecurityGroupIngress", &[], || {
            ctx.clients
                .ec2
                .revoke_security_group_ingress()
                .group_id(group_id)
                .ip_permissions(ssh_permission(&revoke))
                .send()
        })
        .await?;
    }
    if !add.is_empty() {
        authorize_ssh(ctx, group_id, &add).await?;
    }
    tracing::info!(security_group_id = group_id, ?wanted, "SSH ingress updated");
    Ok(())
}

/// Deletes the group; DependencyViolation (network interfaces of a terminated instance still
/// referencing it) is retried until the deadline.
pub async fn delete(ctx: &OpContext, group_id: &str) -> Result<(), AwsError> {
    ctx.delete("ec2:DeleteSecurityGroup", &["DependencyViolation"], || {
        ctx.clients
            .ec2
            .delete_security_group()
            .group_id(group_id)
            .send()
    })
    .await?;
    tracing::info!(security_group_id = group_id, "deleted security group");
    Ok(())
}
