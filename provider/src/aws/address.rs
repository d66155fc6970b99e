//! The Elastic IP: allocate, find, disassociate, release.

use aws_sdk_ec2::types::{DomainType, ResourceType};

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{ec2_spec, from_ec2, Tags};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressInfo {
    pub allocation_id: String,
    pub public_ip: String,
    pub instance_id: Option<String>,
    /// The network interface the address is on (an instance's primary one when it was
    /// associated with the instance, or the stack's persistent interface).
    pub network_interface_id: Option<String>,
    pub association_id: Option<String>,
    pub tags: Tags,
}

/// What an address is associated with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder<'a> {
    /// The instance (its primary network interface).
    Instance(&'a str),
    /// A network interface, whichever instance it is attached to (or none).
    Interface(&'a str),
}

pub async fn allocate(ctx: &OpContext, tags: &Tags) -> Result<AddressInfo, AwsError> {
    let (with_token, token) = super::context::with_create_token(tags);
    let (allocation_id, public_ip) = ctx
        .create(
            "ec2:AllocateAddress",
            &[],
            || async {
                // An address allocated by an attempt whose answer was lost: its IP from EC2.
                Ok(
                    match super::ec2_tags::find_created(ctx, &token).await?.flatten() {
                        Some(id) => find(ctx, &id)
                            .await?
                            .map(|a| Some((a.allocation_id, a.public_ip))),
                        None => None,
                    },
                )
            },
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .allocate_address()
                    .domain(DomainType::Vpc)
                    .tag_specifications(ec2_spec(ResourceType::ElasticIp, &with_token))
                    .send()
                    .await?;
                Ok(out.allocation_id().map(|id| {
                    (
                        id.to_string(),
                        out.public_ip().unwrap_or_default().to_string(),
                    )
                }))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:AllocateAddress", "no allocation id in the answer"))?;
    tracing::info!(allocation_id, public_ip, "allocated Elastic IP");
    Ok(AddressInfo {
        allocation_id,
        public_ip,
        instance_id: None,
        network_interface_id: None,
        association_id: None,
        tags: tags.clone(),
    })
}

pub async fn find(ctx: &OpContext, allocation_id: &str) -> Result<Option<AddressInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeAddresses", || {
            ctx.clients
                .ec2
                .describe_addresses()
                .allocation_ids(allocation_id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.addresses().first().map(|a| AddressInfo {
            allocation_id: allocation_id.to_string(),
            public_ip: a.public_ip().unwrap_or_default().to_string(),
            instance_id: a
                .instance_id()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            network_interface_id: a
                .network_interface_id()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            association_id: a
                .association_id()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            tags: from_ec2(a.tags()),
        })
    }))
}

/// Associates the address with `holder`, taking it from wherever it is.
pub async fn associate(
    ctx: &OpContext,
    allocation_id: &str,
    holder: Holder<'_>,
) -> Result<(), AwsError> {
    let (instance, interface) = match holder {
        Holder::Instance(i) => (Some(i), None),
        Holder::Interface(n) => (None, Some(n)),
    };
    ctx.call(
        "ec2:AssociateAddress",
        &["InvalidAllocationID.NotFound"],
        || {
            ctx.clients
                .ec2
                .associate_address()
                .allocation_id(allocation_id)
                .set_instance_id(instance.map(str::to_string))
                .set_network_interface_id(interface.map(str::to_string))
                .allow_reassociation(true)
                .send()
        },
    )
    .await?;
    tracing::info!(allocation_id, ?holder, "associated Elastic IP");
    Ok(())
}

/// Disassociates the address from whatever holds it (no-op when free or gone).
pub async fn disassociate(ctx: &OpContext, allocation_id: &str) -> Result<(), AwsError> {
    let Some(addr) = find(ctx, allocation_id).await? else {
        return Ok(());
    };
    if let Some(assoc) = &addr.association_id {
        ctx.delete("ec2:DisassociateAddress", &[], || {
            ctx.clients
                .ec2
                .disassociate_address()
                .association_id(assoc)
                .send()
        })
        .await?;
        tracing::info!(
            allocation_id,
            association_id = assoc,
            "disassociated Elastic IP"
        );
    }
    Ok(())
}

/// Releases an address the provider allocated (disassociating it first).
pub async fn release(ctx: &OpContext, allocation_id: &str) -> Result<(), AwsError> {
    disassociate(ctx, allocation_id).await?;
    ctx.delete("ec2:ReleaseAddress", &["InvalidIPAddress.InUse"], || {
        ctx.clients
            .ec2
            .release_address()
            .allocation_id(allocation_id)
            .send()
    })
    .await?;
    tracing::info!(allocation_id, "released Elastic IP");
    Ok(())
}
