//! The VPC the provider creates when no `subnet_id` is given: VPC (DNS support and hostnames),
//! one subnet, an internet gateway, a route table with a default route, its association.
//! Also the finders for a user's subnets (their VPC and zone), and the subnets of a VPC (the
//! failover zones' subnets, `failover_zones`, live beside the home one).

use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, InternetGateway, ResourceType};

use super::context::with_create_token;
use super::context::{OpContext, Poll};
use super::ec2_tags::find_created;
use super::error::AwsError;
use super::gate::Gate;
use super::tags::{ec2_spec, Tags};

/// What the provider needs to know about a subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub subnet_id: String,
    pub vpc_id: String,
    pub availability_zone: String,
    pub cidr: String,
    pub tags: Tags,
}

impl SubnetInfo {
    fn of(s: &aws_sdk_ec2::types::Subnet) -> SubnetInfo {
        SubnetInfo {
            subnet_id: s.subnet_id().unwrap_or_default().to_string(),
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            cidr: s.cidr_block().unwrap_or_default().to_string(),
            tags: super::tags::from_ec2(s.tags()),
        }
    }
}

/// The network objects of one stack, as far as they exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub internet_gateway_id: Option<String>,
    pub route_table_id: Option<String>,
}

pub async fn find_subnet(ctx: &OpContext, subnet_id: &str) -> Result<Option<SubnetInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeSubnets", || {
            ctx.clients
                .ec2
                .describe_subnets()
                .subnet_ids(subnet_id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| o.subnets().first().map(SubnetInfo::of)))
}

/// The subnets `filter` selects (every page): the one place that lists subnets.
async fn subnets(ctx: &OpContext, filter: Filter) -> Result<Vec<SubnetInfo>, AwsError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .call("ec2:DescribeSubnets", &[], || {
                ctx.clients
                    .ec2
                    .describe_subnets()
                    .filters(filter.clone())
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        found.extend(out.subnets().iter().map(SubnetInfo::of));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(found),
        }
    }
}

/// The subnets of a VPC.
pub async fn subnets_in(ctx: &OpContext, vpc_id: &str) -> Result<Vec<SubnetInfo>, AwsError> {
    subnets(ctx, vpc_filter(vpc_id)).await
}

/// The subnets of `ids` that exist (by filter, so one that does not is left out rather than
/// failing the whole call with InvalidSubnetID.NotFound).
pub async fn find_subnets(ctx: &OpContext, ids: &[String]) -> Result<Vec<SubnetInfo>, AwsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    subnets(
        ctx,
        Filter::builder()
            .name("subnet-id")
            .set_values(Some(ids.to_vec()))
            .build(),
    )
    .await
}

/// What the provider reads of a VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcInfo {
    pub cidr: String,
    pub tags: super::tags::Tags,
}

/// The VPC's CIDR block and tags, `None` when the VPC is gone.
pub async fn find_vpc(ctx: &OpContext, vpc_id: &str) -> Result<Option<VpcInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeVpcs", || {
            ctx.clients.ec2.describe_vpcs().vpc_ids(vpc_id).send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.vpcs().first().map(|v| VpcInfo {
            cidr: v.cidr_block().unwrap_or_default().to_string(),
            tags: super::tags::from_ec2(v.tags()),
        })
    }))
}

/// Creates the VPC and waits until it is available, then turns on DNS support and hostnames
/// (one attribute per call: EC2's rule).
pub async fn create_vpc(
    ctx: &OpContext,
    cidr: &str,
    tags: &Tags,
    created: impl FnOnce(&str),
) -> Result<String, AwsError> {
    let (tags, token) = with_create_token(tags);
    let vpc_id = ctx
        .create(
            "ec2:CreateVpc",
            &[],
            || find_created(ctx, &token),
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(ec2_spec(ResourceType::Vpc, &tags))
                    .send()
                    .await?;
                Ok(out.vpc().and_then(|v| v.vpc_id()).map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:CreateVpc", "no VPC id in the answer"))?;
    tracing::info!(vpc_id, cidr, "created VPC");
    // Recorded before the wait, which may fail.
    created(&vpc_id);
    ctx.wait_for(&format!("VPC {vpc_id} to be available"), || async {
        let out = ctx
            .find("ec2:DescribeVpcs", || {
                ctx.clients.ec2.describe_vpcs().vpc_ids(&vpc_id).send()
            })
            .await?;
        let state = out
            .and_then(|o| o.vpcs().first().and_then(|v| v.state().cloned()))
            .map(|s| s.as_str().to_string());
        Ok(match state.as_deref() {
            Some("available") => Poll::Ready(()),
            other => Poll::Waiting(format!("state {}", other.unwrap_or("not listed yet"))),
        })
    })
    .await?;
    Ok(vpc_id)
}

/// DNS support and hostnames on (two calls: EC2 takes one attribute per
/// ModifyVpcAttribute), at once: they are independent of each other and of the subnet, the
/// gateway and the route table made meanwhile.
pub async fn enable_dns(ctx: &OpContext, vpc_id: &str) -> Result<(), AwsError> {
    let modify = |op: &'static str, support: bool| async move {
        ctx.call(
            &format!("ec2:ModifyVpcAttribute ({op})"),
            &["InvalidVpcID.NotFound"],
            || {
                let on = AttributeBooleanValue::builder().value(true).build();
                let req = ctx.clients.ec2.modify_vpc_attribute().vpc_id(vpc_id);
                if support {
                    req.enable_dns_support(on).send()
                } else {
                    req.enable_dns_hostnames(on).send()
                }
            },
        )
        .await
        .map(|_| ())
    };
    let (support, hostnames) = tokio::join!(
        modify("EnableDnsSupport", true),
        modify("EnableDnsHostnames", false)
    );
    support.and(hostnames)
}

pub async fn create_subnet(
    ctx: &OpContext,
    vpc_id: &str,
    cidr: &str,
    availability_zone: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    let (tags, token) = with_create_token(tags);
    let id = ctx
        .create(
            "ec2:CreateSubnet",
            &["InvalidVpcID.NotFound"],
            || find_created(ctx, &token),
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block(cidr)
                    .availability_zone(availability_zone)
                    .tag_specifications(ec2_spec(ResourceType::Subnet, &tags))
                    .send()
                    .await?;
                Ok(out.subnet().and_then(|s| s.subnet_id()).map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:CreateSubnet", "no subnet id in the answer"))?;
    tracing::info!(
        subnet_id = id,
        vpc_id,
        cidr,
        availability_zone,
        "created subnet"
    );
    Ok(id)
}

/// A new internet gateway, not attached to anything yet ([`attach_internet_gateway`]): it
/// needs its VPC only for the attachment, so a create makes it beside the VPC.
pub async fn create_internet_gateway(ctx: &OpContext, tags: &Tags) -> Result<String, AwsError> {
    let (tags, token) = with_create_token(tags);
    let id = ctx
        .create(
            "ec2:CreateInternetGateway",
            &[],
            || find_created(ctx, &token),
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(ec2_spec(ResourceType::InternetGateway, &tags))
                    .send()
                    .await?;
                Ok(out
                    .internet_gateway()
                    .and_then(|g| g.internet_gateway_id())
                    .map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| {
            AwsError::other("ec2:CreateInternetGateway", "no gateway id in the answer")
        })?;
    tracing::info!(internet_gateway_id = id, "created internet gateway");
    Ok(id)
}

/// Attaches gateway `id` to `vpc_id`.
pub async fn attach_internet_gateway(
    ctx: &OpContext,
    id: &str,
    vpc_id: &str,
) -> Result<(), AwsError> {
    match ctx
        .call(
            "ec2:AttachInternetGateway",
            &["InvalidInternetGatewayID.NotFound", "InvalidVpcID.NotFound"],
            || {
                ctx.clients
                    .ec2
                    .attach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc_id)
                    .send()
            },
        )
        .await
    {
        Ok(_) => {}
        // An attempt whose answer was lost attached it already (EC2: "resource igw-.. is
        // already attached to network vpc-.."): checked, not assumed.
        Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => {
            if find_network(ctx, vpc_id)
                .await?
                .internet_gateway_id
                .as_deref()
                != Some(id)
            {
                return Err(e);
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A route table in the VPC (its route and subnet come with [`route_to_gateway`] and
/// [`associate_route_table`], which need the gateway and the subnet: the table is made
/// meanwhile).
pub async fn create_route_table(
    ctx: &OpContext,
    vpc_id: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    // One token for this create, kept across its retries: a repeat returns the first table.
    let token = super::context::unique_token();
    let out = ctx
        .call("ec2:CreateRouteTable", &["InvalidVpcID.NotFound"], || {
            ctx.clients
                .ec2
                .create_route_table()
                .vpc_id(vpc_id)
                .client_token(&token)
                .tag_specifications(ec2_spec(ResourceType::RouteTable, tags))
                .send()
        })
        .await?;
    let id = out
        .route_table()
        .and_then(|r| r.route_table_id())
        .ok_or_else(|| AwsError::other("ec2:CreateRouteTable", "no route table id in the answer"))?
        .to_string();
    tracing::info!(route_table_id = id, "created route table");
    Ok(id)
}

// Both on a table and a subnet only this create has: "already there" after a retry is the
// answer of an attempt that was lost, not somebody else's object.

/// The default route of `route_table_id` to the gateway (attached: EC2 refuses a route to a
/// gateway that is not attached to the table's VPC).
pub async fn route_to_gateway(
    ctx: &OpContext,
    route_table_id: &str,
    internet_gateway_id: &str,
) -> Result<(), AwsError> {
    let route = ctx
        .call(
            "ec2:CreateRoute",
            &[
                "InvalidRouteTableID.NotFound",
                "InvalidInternetGatewayID.NotFound",
            ],
            || {
                ctx.clients
                    .ec2
                    .create_route()
                    .route_table_id(route_table_id)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(internet_gateway_id)
                    .send()
            },
        )
        .await;
    match route {
        Err(e) if !e.is_code(&["RouteAlreadyExists"]) => Err(e),
        _ => Ok(()),
    }
}

/// `route_table_id` as the subnet's table.
pub async fn associate_route_table(
    ctx: &OpContext,
    route_table_id: &str,
    subnet_id: &str,
) -> Result<(), AwsError> {
    let association = ctx
        .call(
            "ec2:AssociateRouteTable",
            &["InvalidRouteTableID.NotFound", "InvalidSubnetID.NotFound"],
            || {
                ctx.clients
                    .ec2
                    .associate_route_table()
                    .route_table_id(route_table_id)
                    .subnet_id(subnet_id)
                    .send()
            },
        )
        .await;
    match association {
        Err(e) if !e.is_code(&["Resource.AlreadyAssociated"]) => Err(e),
        _ => Ok(()),
    }
}

fn vpc_filter(vpc_id: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc_id).build()
}

/// The filter for the internet gateways attached to a VPC.
fn attached_to(vpc_id: &str) -> Filter {
    Filter::builder()
        .name("attachment.vpc-id")
        .values(vpc_id)
        .build()
}

/// The internet gateways `filter` selects: the one place that lists them.
async fn internet_gateways(
    ctx: &OpContext,
    filter: Filter,
) -> Result<Vec<InternetGateway>, AwsError> {
    let out = ctx
        .call("ec2:DescribeInternetGateways", &[], || {
            ctx.clients
                .ec2
                .describe_internet_gateways()
                .filters(filter.clone())
                .send()
        })
        .await?;
    Ok(out.internet_gateways.unwrap_or_default())
}

/// The gateway and route table of a VPC the provider created (found through the VPC, so state
/// needs only the VPC and subnet ids).
pub async fn find_network(ctx: &OpContext, vpc_id: &str) -> Result<Network, AwsError> {
    let igws = internet_gateways(ctx, attached_to(vpc_id)).await?;
    let tables = ctx
        .call("ec2:DescribeRouteTables", &[], || {
            ctx.clients
                .ec2
                .describe_route_tables()
                .filters(vpc_filter(vpc_id))
                .send()
        })
        .await?;
    let route_table_id = tables
        .route_tables()
        .iter()
        .find(|t| !t.associations().iter().any(|a| a.main() == Some(true)))
        .and_then(|t| t.route_table_id())
        .map(str::to_string);
    Ok(Network {
        vpc_id: Some(vpc_id.to_string()),
        subnet_id: None,
        internet_gateway_id: igws
            .first()
            .and_then(|g| g.internet_gateway_id())
            .map(str::to_string),
        route_table_id,
    })
}

/// Deletes a VPC the provider created and everything in it that the provider created: the
/// gateway (detached first), the non-main route tables (disassociated first), the subnets.
/// DependencyViolation is retried: network interfaces of a terminated instance linger.
/// Gateways tagged `owner_tag` that are attached to nothing go too: one made but never
/// attached, or detached by a delete that stopped before deleting it, is no longer in the VPC.
///
/// What the caller deletes at the same time in the VPC orders two steps: the gateway is
/// detached and the subnets deleted only once `unmapped` opens (EC2 refuses the detach while
/// an Elastic IP is mapped in the VPC, "Network vpc-.. has some mapped public address(es).
/// Please unmap those public address(es) before detaching the gateway.", and a subnet while a
/// network interface is in it), and the VPC only once `emptied` opens (its security group
/// gone). Returns false when a gate closed: what waits behind it was not attempted.
pub async fn delete_vpc(
    ctx: &OpContext,
    vpc_id: &str,
    owner_tag: (&str, &str),
    unmapped: &Gate,
    emptied: &Gate,
) -> Result<bool, AwsError> {
    // What only AWS's dependencies order runs at once: the stack's gateways that are not
    // attached (an interrupted create's: not in the VPC) beside the VPC's own parts; in the
    // VPC, its gateway (detached and deleted) beside its route tables and subnets (a subnet
    // after its table lets it go: EC2 deletes a subnet's association with it, and a table
    // with associations is refused as DependencyViolation); the VPC last (EC2 refuses it,
    // DependencyViolation, while any of them is there). Each deleter retries
    // DependencyViolation within the operation's timeout.
    let unattached = delete_unattached_gateways(
        ctx,
        Filter::builder()
            .name(format!("tag:{}", owner_tag.0))
            .values(owner_tag.1)
            .build(),
    );
    // The VPC is looked up beside its parts, not before them: the parts are found by a
    // `vpc-id` filter, which finds none of a VPC that is gone.
    let parts = async {
        let (vpc, gateways, tables_and_subnets) = tokio::join!(
            find_vpc(ctx, vpc_id),
            delete_attached_gateways(ctx, vpc_id, unmapped),
            async {
                // The subnets are looked up beside the tables' disassociation; only their
                // deletion comes after it.
                let (tables, subnets) = tokio::join!(
                    disassociate_route_tables(ctx, vpc_id),
                    subnets_in(ctx, vpc_id)
                );
                let (tables, subnets) = (tables?, subnets?);
                let (t, s) = tokio::join!(
                    delete_route_tables(ctx, &tables),
                    delete_subnets(ctx, &subnets, unmapped)
                );
                t?;
                s
            }
        );
        let (gateways, tables_and_subnets) = (gateways?, tables_and_subnets?);
        if vpc?.is_none() {
            return Ok(None);
        }
        Ok::<Option<bool>, AwsError>(Some(gateways && tables_and_subnets))
    };
    let (unattached, parts) = tokio::join!(unattached, parts);
    unattached?;
    match parts? {
        None => return Ok(true),
        Some(false) => return Ok(false),
        Some(true) => {}
    }
    if !emptied.passed().await {
        return Ok(false);
    }
    ctx.delete("ec2:DeleteVpc", &["DependencyViolation"], || {
        ctx.clients.ec2.delete_vpc().vpc_id(vpc_id).send()
    })
    .await?;
    tracing::info!(vpc_id, "deleted VPC");
    Ok(true)
}

/// Deletes the gateways `filter` finds that are attached to nothing (one attached to a VPC
/// is that network's, whatever its tags say).
async fn delete_unattached_gateways(ctx: &OpContext, filter: Filter) -> Result<(), AwsError> {
    for igw in internet_gateways(ctx, filter).await? {
        if let (Some(id), true) = (igw.internet_gateway_id(), igw.attachments().is_empty()) {
            delete_internet_gateway(ctx, id, None).await?;
        }
    }
    Ok(())
}

/// Deletes those of gateways `ids` that are attached to nothing (an interrupted create's,
/// made beside a VPC that never came).
pub async fn delete_unattached_gateways_of(
    ctx: &OpContext,
    ids: &[String],
) -> Result<(), AwsError> {
    if ids.is_empty() {
        return Ok(());
    }
    delete_unattached_gateways(
        ctx,
        Filter::builder()
            .name("internet-gateway-id")
            .set_values(Some(ids.to_vec()))
            .build(),
    )
    .await
}

/// The gateways attached to the VPC, detached (once `unmapped` opens) and deleted; false
/// when the gate closed.
async fn delete_attached_gateways(
    ctx: &OpContext,
    vpc_id: &str,
    unmapped: &Gate,
) -> Result<bool, AwsError> {
    let gateways = internet_gateways(ctx, attached_to(vpc_id)).await?;
    if gateways.is_empty() {
        return Ok(true);
    }
    if !unmapped.passed().await {
        return Ok(false);
    }
    for igw in gateways {
        let Some(id) = igw.internet_gateway_id() else {
            continue;
        };
        delete_internet_gateway(ctx, id, Some(vpc_id)).await?;
    }
    Ok(true)
}

/// Takes every subnet off the VPC's route tables but its main one (deleted with the VPC);
/// returns those tables' ids.
async fn disassociate_route_tables(ctx: &OpContext, vpc_id: &str) -> Result<Vec<String>, AwsError> {
    let tables = ctx
        .call("ec2:DescribeRouteTables", &[], || {
            ctx.clients
                .ec2
                .describe_route_tables()
                .filters(vpc_filter(vpc_id))
                .send()
        })
        .await?;
    let mut ids = Vec::new();
    for table in tables.route_tables() {
        if table.associations().iter().any(|a| a.main() == Some(true)) {
            continue; // deleted with the VPC
        }
        let Some(id) = table.route_table_id() else {
            continue;
        };
        for assoc in table.associations() {
            if let Some(assoc_id) = assoc.route_table_association_id() {
                ctx.delete("ec2:DisassociateRouteTable", &[], || {
                    ctx.clients
                        .ec2
                        .disassociate_route_table()
                        .association_id(assoc_id)
                        .send()
                })
                .await?;
            }
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

async fn delete_route_tables(ctx: &OpContext, ids: &[String]) -> Result<(), AwsError> {
    for id in ids {
        ctx.delete("ec2:DeleteRouteTable", &["DependencyViolation"], || {
            ctx.clients
                .ec2
                .delete_route_table()
                .route_table_id(id)
                .send()
        })
        .await?;
        tracing::info!(route_table_id = id, "deleted route table");
    }
    Ok(())
}

/// The VPC's subnets (`subnets`, as found), deleted once `unmapped` opens; false when it
/// closed.
async fn delete_subnets(
    ctx: &OpContext,
    subnets: &[SubnetInfo],
    unmapped: &Gate,
) -> Result<bool, AwsError> {
    if subnets.is_empty() {
        return Ok(true);
    }
    if !unmapped.passed().await {
        return Ok(false);
    }
    for subnet in subnets {
        delete_subnet(ctx, &subnet.subnet_id).await?;
    }
    Ok(true)
}

/// Deletes a subnet (idempotent); DependencyViolation is retried within the operation's
/// timeout (network interfaces of a terminated instance linger).
pub async fn delete_subnet(ctx: &OpContext, subnet_id: &str) -> Result<(), AwsError> {
    ctx.delete("ec2:DeleteSubnet", &["DependencyViolation"], || {
        ctx.clients.ec2.delete_subnet().subnet_id(subnet_id).send()
    })
    .await?;
    tracing::info!(subnet_id, "deleted subnet");
    Ok(())
}

/// Deletes an internet gateway, detaching it from `attached_to` first (idempotent).
pub async fn delete_internet_gateway(
    ctx: &OpContext,
    id: &str,
    attached_to: Option<&str>,
) -> Result<(), AwsError> {
    if let Some(vpc_id) = attached_to {
        match ctx
            .call(
                "ec2:DetachInternetGateway",
                &["DependencyViolation"],
                || {
                    ctx.clients
                        .ec2
                        .detach_internet_gateway()
                        .internet_gateway_id(id)
                        .vpc_id(vpc_id)
                        .send()
                },
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.is_code(&["Gateway.NotAttached"]) => {}
            Err(e) => return Err(e),
        }
    }
    ctx.delete(
        "ec2:DeleteInternetGateway",
        &["DependencyViolation"],
        || {
            ctx.clients
                .ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
        },
    )
    .await?;
    tracing::info!(internet_gateway_id = id, "deleted internet gateway");
    Ok(())
}
