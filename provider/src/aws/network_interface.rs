//! The stack's persistent network interface (`persistent_network_interface`): an ENI in the
//! stack's subnet whose private IP and MAC address never change, carrying the Elastic IP. The
//! attachment Lambda attaches it to every replacement as device 1; the provider creates,
//! finds, re-groups and deletes it.
//!
//! Why device 1 from the Lambda, not the launch template's primary interface: EC2 Auto Scaling
//! accepts a launch template whose interface names an existing `NetworkInterfaceId` (the Auto
//! Scaling User Guide's AWS CLI example "attach an existing network interface"), but then a
//! launch while the old instance still shuts down (minutes for a hung guest) fails with
//! `InvalidNetworkInterface.InUse`, and the group retries with its launch back-off: the heal
//! waits on the back-off, not on the release. Attached from the lifecycle hook, the new
//! instance boots while the old one lets go, exactly as for the data volume. The price: the
//! persistent MAC is the instance's second interface (`eth1`/`ens6`), which the application's
//! licence must be bound to.

use aws_sdk_ec2::types::ResourceType;

use super::context::{OpContext, Poll};
use super::error::AwsError;
use super::tags::{ec2_spec, from_ec2, Tags};

/// The device index the Lambda attaches the interface at (the handler's constant).
pub const DEVICE_INDEX: i32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub network_interface_id: String,
    pub subnet_id: String,
    pub availability_zone: String,
    pub private_ip: String,
    pub mac_address: String,
    /// `available`, `in-use`, `attaching`, `detaching`, ...
    pub status: String,
    pub security_group_ids: Vec<String>,
    /// (instance id, attachment id, attachment status) while attached.
    pub attachment: Option<(String, String, String)>,
    pub tags: Tags,
}

impl InterfaceInfo {
    /// The instance the interface is attached to (or attaching, or detaching from).
    pub fn instance_id(&self) -> Option<&str> {
        self.attachment.as_ref().map(|(i, _, _)| i.as_str())
    }
}

fn info(n: &aws_sdk_ec2::types::NetworkInterface) -> InterfaceInfo {
    InterfaceInfo {
        network_interface_id: n.network_interface_id().unwrap_or_default().to_string(),
        subnet_id: n.subnet_id().unwrap_or_default().to_string(),
        availability_zone: n.availability_zone().unwrap_or_default().to_string(),
        private_ip: n.private_ip_address().unwrap_or_default().to_string(),
        mac_address: n.mac_address().unwrap_or_default().to_string(),
        status: n
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        security_group_ids: n
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect(),
        attachment: n.attachment().and_then(|a| {
            Some((
                a.instance_id()?.to_string(),
                a.attachment_id().unwrap_or_default().to_string(),
                a.status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ))
        }),
        tags: from_ec2(n.tag_set()),
    }
}

/// Creates the interface in `subnet_id` with `security_group_ids`.
pub async fn create(
    ctx: &OpContext,
    subnet_id: &str,
    security_group_ids: &[String],
    description: &str,
    tags: &Tags,
) -> Result<InterfaceInfo, AwsError> {
    // CreateNetworkInterface has a ClientToken: a retry with the same token returns the
    // interface the lost attempt made instead of making a second one.
    let token = super::context::unique_token();
    let out = ctx
        .call("ec2:CreateNetworkInterface", &[], || {
            ctx.clients
                .ec2
                .create_network_interface()
                .subnet_id(subnet_id)
                .set_groups(Some(security_group_ids.to_vec()))
                .description(description)
                .client_token(&token)
                .tag_specifications(ec2_spec(ResourceType::NetworkInterface, tags))
                .send()
        })
        .await?;
    let made = out.network_interface().map(info).ok_or_else(|| {
        AwsError::other("ec2:CreateNetworkInterface", "no interface in the answer")
    })?;
    tracing::info!(
        network_interface_id = made.network_interface_id,
        private_ip = made.private_ip,
        mac_address = made.mac_address,
        "created network interface"
    );
    Ok(made)
}

pub async fn find(ctx: &OpContext, id: &str) -> Result<Option<InterfaceInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeNetworkInterfaces", || {
            ctx.clients
                .ec2
                .describe_network_interfaces()
                .network_interface_ids(id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| o.network_interfaces().first().map(info)))
}

/// The interfaces carrying `key = value` (an interrupted create's, by its marker).
pub async fn find_tagged(
    ctx: &OpContext,
    key: &str,
    value: &str,
) -> Result<Vec<InterfaceInfo>, AwsError> {
    let out = ctx
        .call("ec2:DescribeNetworkInterfaces", &[], || {
            ctx.clients
                .ec2
                .describe_network_interfaces()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name(format!("tag:{key}"))
                        .values(value)
                        .build(),
                )
                .send()
        })
        .await?;
    Ok(out.network_interfaces().iter().map(info).collect())
}

/// Replaces the interface's security groups (ModifyNetworkInterfaceAttribute, in place).
pub async fn set_security_groups(
    ctx: &OpContext,
    id: &str,
    security_group_ids: &[String],
) -> Result<(), AwsError> {
    ctx.call("ec2:ModifyNetworkInterfaceAttribute", &[], || {
        ctx.clients
            .ec2
            .modify_network_interface_attribute()
            .network_interface_id(id)
            .set_groups(Some(security_group_ids.to_vec()))
            .send()
    })
    .await?;
    tracing::info!(
        network_interface_id = id,
        ?security_group_ids,
        "set the interface's security groups"
    );
    Ok(())
}

/// Attaches the interface to `instance_id` as [`DEVICE_INDEX`] (the provider does it when the
/// interface is added to a stack that already serves; heals are the Lambda's).
pub async fn attach(ctx: &OpContext, id: &str, instance_id: &str) -> Result<(), AwsError> {
    ctx.call("ec2:AttachNetworkInterface", &[], || {
        ctx.clients
            .ec2
            .attach_network_interface()
            .network_interface_id(id)
            .instance_id(instance_id)
            .device_index(DEVICE_INDEX)
            .send()
    })
    .await?;
    tracing::info!(
        network_interface_id = id,
        instance_id,
        "attached network interface"
    );
    Ok(())
}

/// Waits until the interface is `available`: its instance has terminated (EC2 detaches an
/// interface it did not create when the instance terminates) or a detach finished. With
/// `force`, an interface still attached to a live instance is detached (ForceDetach is not
/// used: the instance keeps running and its guest sees the interface go).
pub async fn wait_available(ctx: &OpContext, id: &str, detach: bool) -> Result<(), AwsError> {
    // Detached once at most: a second DetachNetworkInterface of the same attachment is
    // refused while the first is under way.
    let detached = &std::sync::atomic::AtomicBool::new(false);
    ctx.wait_for(
        &format!("network interface {id} to be released"),
        move || async move {
            let Some(n) = find(ctx, id).await? else {
                return Ok(Poll::Ready(()));
            };
            if n.status == "available" {
                return Ok(Poll::Ready(()));
            }
            if let (true, false, Some((instance, attachment, state))) = (
                detach,
                detached.load(std::sync::atomic::Ordering::Relaxed),
                n.attachment.as_ref(),
            ) {
                if state == "attached" {
                    ctx.call("ec2:DetachNetworkInterface", &[], || {
                        ctx.clients
                            .ec2
                            .detach_network_interface()
                            .attachment_id(attachment)
                            .send()
                    })
                    .await?;
                    tracing::info!(
                        network_interface_id = id,
                        instance,
                        "detaching network interface"
                    );
                    detached.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok(Poll::Waiting(format!(
                "it is {} (attached to {})",
                n.status,
                n.instance_id().unwrap_or("nothing")
            )))
        },
    )
    .await
}

/// Deletes the interface; one still in use (its instance terminating) is retried until the
/// deadline. Gone already is fine.
pub async fn delete(ctx: &OpContext, id: &str) -> Result<(), AwsError> {
    ctx.delete(
        "ec2:DeleteNetworkInterface",
        &["InvalidNetworkInterface.InUse"],
        || {
            ctx.clients
                .ec2
                .delete_network_interface()
                .network_interface_id(id)
                .send()
        },
    )
    .await?;
    tracing::info!(network_interface_id = id, "deleted network interface");
    Ok(())
}
