//! Tags of EC2 objects of any kind (VPC, subnet, gateway, route table, security group,
//! volume, Elastic IP, launch template): EC2 tags them all through one API, so one place
//! changes them and one call finds every object carrying a given tag.

use aws_sdk_ec2::types::Filter;

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{ec2, Tags};

/// The id of the EC2 object made by the create with `token`, if there is one (the lookup of
/// `OpContext::create`, shaped as the create's own answer).
pub async fn find_created(
    ctx: &OpContext,
    token: &str,
) -> Result<Option<Option<String>>, AwsError> {
    Ok(find_tagged(ctx, super::context::CREATE_TOKEN_TAG, token)
        .await?
        .into_iter()
        .next()
        .map(|t| Some(t.id)))
}

/// Sets `set` and removes the keys `remove` on every object of `ids` (one call each way:
/// EC2 takes many resources per call).
pub async fn set(
    ctx: &OpContext,
    ids: &[String],
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    if !remove.is_empty() {
        ctx.call("ec2:DeleteTags", &[], || {
            ctx.clients
                .ec2
                .delete_tags()
                .set_resources(Some(ids.to_vec()))
                .set_tags(Some(
                    remove
                        .iter()
                        .map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build())
                        .collect(),
                ))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("ec2:CreateTags", &[], || {
            ctx.clients
                .ec2
                .create_tags()
                .set_resources(Some(ids.to_vec()))
                .set_tags(Some(ec2(set)))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// One EC2 object carrying a tag: its kind as DescribeTags names it (`vpc`, `subnet`,
/// `internet-gateway`, `route-table`, `security-group`, `volume`, `elastic-ip`,
/// `launch-template`, `instance`, ...) and its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tagged {
    pub kind: String,
    pub id: String,
}

/// Every EC2 object of the region carrying the tag `key = value`, all kinds in one listing.
pub async fn find_tagged(ctx: &OpContext, key: &str, value: &str) -> Result<Vec<Tagged>, AwsError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .call("ec2:DescribeTags", &[], || {
                ctx.clients
                    .ec2
                    .describe_tags()
                    .filters(Filter::builder().name("key").values(key).build())
                    .filters(Filter::builder().name("value").values(value).build())
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        found.extend(out.tags().iter().filter_map(|t| {
            Some(Tagged {
                kind: t
                    .resource_type()
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_default(),
                id: t.resource_id()?.to_string(),
            })
        }));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(found),
        }
    }
}

/// Whether the EC2 object `id` (any kind a stack creates, told by its id's prefix) still
/// exists. A tag listing alone proves nothing: DescribeTags can still list the tags of an
/// object deleted a moment ago (and the local AWS keeps them, as moto does), so what it
/// names is looked up by id before anything is built on it. Unknown prefixes: `true`.
pub async fn still_exists(ctx: &OpContext, id: &str) -> Result<bool, AwsError> {
    // Kinds with a finder of their own use it; the others (never looked up elsewhere by id)
    // are asked here.
    let found = match id.split('-').next().unwrap_or_default() {
        "vpc" => super::network::find_vpc(ctx, id).await?.is_some(),
        "subnet" => super::network::find_subnet(ctx, id).await?.is_some(),
        "sg" => super::security_group::find(ctx, id).await?.is_some(),
        "vol" => super::volume::find(ctx, id)
            .await?
            .is_some_and(|v| !matches!(v.state.as_str(), "deleting" | "deleted")),
        "eipalloc" => super::address::find(ctx, id).await?.is_some(),
        "eni" => super::network_interface::find(ctx, id).await?.is_some(),
        "igw" => ctx
            .find("ec2:DescribeInternetGateways", || {
                ctx.clients
                    .ec2
                    .describe_internet_gateways()
                    .internet_gateway_ids(id)
                    .send()
            })
            .await?
            .is_some_and(|o| !o.internet_gateways().is_empty()),
        "rtb" => ctx
            .find("ec2:DescribeRouteTables", || {
                ctx.clients
                    .ec2
                    .describe_route_tables()
                    .route_table_ids(id)
                    .send()
            })
            .await?
            .is_some_and(|o| !o.route_tables().is_empty()),
        "lt" => ctx
            .find("ec2:DescribeLaunchTemplates", || {
                ctx.clients
                    .ec2
                    .describe_launch_templates()
                    .launch_template_ids(id)
                    .send()
            })
            .await?
            .is_some_and(|o| !o.launch_templates().is_empty()),
        _ => true,
    };
    Ok(found)
}
