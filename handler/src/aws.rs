//! The thin AWS layer: one function per API call, each turning the SDK's answer into the plain
//! facts of `decide.rs` or an [`AwsError`]. No decisions here, no retries (see `heal.rs`).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_autoscaling::Client as AsgClient;
use aws_sdk_ec2::Client as Ec2Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::decide::{
    AddressFacts, Attachment, AttachmentState, InstanceState, InterfaceAttachment, InterfaceFacts,
    InterfaceStatus, VolumeFacts, VolumeState, INTERFACE_DEVICE_INDEX,
};
use crate::errors::{AwsError, INTERFACE_NOT_FOUND};

/// A single attempt may take this long; the heal's own retry loop does the rest.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The two service clients, built once per execution environment.
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: Ec2Client,
    pub autoscaling: AsgClient,
}

impl Clients {
    /// Clients from an SDK configuration (endpoint, region, credentials), with the SDK's own
    /// retries turned off: the heal retries with its backoff and within the invocation's
    /// deadline, which the SDK's attempt counter knows nothing about.
    pub fn new(config: &SdkConfig) -> Clients {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .build();
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts.clone())
            .build();
        let autoscaling = aws_sdk_autoscaling::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        Clients {
            ec2: Ec2Client::from_conf(ec2),
            autoscaling: AsgClient::from_conf(autoscaling),
        }
    }

    /// aws-config's normal loading: region and credentials from the Lambda environment,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL_AUTO_SCALING` honoured
    /// (that is how the tests point the function at a local AWS).
    pub async fn from_env() -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Clients::new(&config)
    }
}

fn aws_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transport = matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    );
    AwsError {
        operation,
        code: err.code().map(str::to_string),
        message: err
            .message()
            .map(str::to_string)
            .or_else(|| Some(DisplayErrorContext(&err).to_string())),
        http_status: err.raw_response().map(|r| r.status().as_u16()),
        transport,
    }
}

/// What DescribeInstances says about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    pub state: InstanceState,
    pub availability_zone: Option<String>,
    /// The `aws:autoscaling:groupName` tag.
    pub group_tag: Option<String>,
}

pub const GROUP_TAG: &str = "aws:autoscaling:groupName";

/// `Ok(None)`: EC2 does not list the instance (yet).
pub async fn describe_instance(
    ec2: &Ec2Client,
    instance_id: &str,
) -> Result<Option<InstanceFacts>, AwsError> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| aws_error("DescribeInstances", e))?;
    let instance = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id));
    Ok(instance.map(|i| InstanceFacts {
        state: InstanceState::parse(i.state().and_then(|s| s.name()).map_or("", |n| n.as_str())),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_string),
        group_tag: i
            .tags()
            .iter()
            .find(|t| t.key() == Some(GROUP_TAG))
            .and_then(|t| t.value())
            .map(str::to_string),
    }))
}

/// The group Auto Scaling places the instance in, if any.
pub async fn instance_group(
    asg: &AsgClient,
    instance_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = asg
        .describe_auto_scaling_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAutoScalingInstances", e))?;
    Ok(out
        .auto_scaling_instances()
        .iter()
        .find(|i| i.instance_id() == Some(instance_id))
        .and_then(|i| i.auto_scaling_group_name())
        .map(str::to_string))
}

pub async fn describe_volume(ec2: &Ec2Client, volume_id: &str) -> Result<VolumeFacts, AwsError> {
    let out = ec2
        .describe_volumes()
        .volume_ids(volume_id)
        .send()
        .await
        .map_err(|e| aws_error("DescribeVolumes", e))?;
    let v = out
        .volumes()
        .iter()
        .find(|v| v.volume_id() == Some(volume_id))
        .ok_or_else(|| missing("DescribeVolumes", "InvalidVolume.NotFound", volume_id))?;
    Ok(VolumeFacts {
        volume_id: volume_id.to_string(),
        state: VolumeState::parse(v.state().map_or("", |s| s.as_str())),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        attachments: v
            .attachments()
            .iter()
            .filter_map(|a| {
                Some(Attachment {
                    instance_id: a.instance_id()?.to_string(),
                    state: AttachmentState::parse(a.state().map_or("", |s| s.as_str())),
                    device: a.device().map(str::to_string),
                })
            })
            .collect(),
        tags: v
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
    })
}

pub async fn attach_volume(
    ec2: &Ec2Client,
    volume_id: &str,
    instance_id: &str,
    device: &str,
) -> Result<(), AwsError> {
    ec2.attach_volume()
        .volume_id(volume_id)
        .instance_id(instance_id)
        .device(device)
        .send()
        .await
        .map_err(|e| aws_error("AttachVolume", e))?;
    Ok(())
}

/// `Ok(None)`: EC2 does not know the interface (InvalidNetworkInterfaceID.NotFound, or an
/// answer without it).
pub async fn describe_network_interface(
    ec2: &Ec2Client,
    interface_id: &str,
) -> Result<Option<InterfaceFacts>, AwsError> {
    let out = match ec2
        .describe_network_interfaces()
        .network_interface_ids(interface_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = aws_error("DescribeNetworkInterfaces", e);
            if err.code.as_deref() == Some(INTERFACE_NOT_FOUND) {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let Some(n) = out
        .network_interfaces()
        .iter()
        .find(|n| n.network_interface_id() == Some(interface_id))
    else {
        return Ok(None);
    };
    Ok(Some(InterfaceFacts {
        interface_id: interface_id.to_string(),
        status: InterfaceStatus::parse(n.status().map_or("", |s| s.as_str())),
        availability_zone: n.availability_zone().unwrap_or_default().to_string(),
        private_ip: n.private_ip_address().map(str::to_string),
        mac_address: n.mac_address().map(str::to_string),
        attachment: n.attachment().map(|a| InterfaceAttachment {
            instance_id: a.instance_id().map(str::to_string),
            state: AttachmentState::parse(a.status().map_or("", |s| s.as_str())),
            device_index: a.device_index(),
        }),
    }))
}

/// AttachNetworkInterface at [`INTERFACE_DEVICE_INDEX`]; returns the attachment id.
pub async fn attach_network_interface(
    ec2: &Ec2Client,
    interface_id: &str,
    instance_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = ec2
        .attach_network_interface()
        .network_interface_id(interface_id)
        .instance_id(instance_id)
        .device_index(INTERFACE_DEVICE_INDEX)
        .send()
        .await
        .map_err(|e| aws_error("AttachNetworkInterface", e))?;
    Ok(out.attachment_id().map(str::to_string))
}

pub async fn describe_address(
    ec2: &Ec2Client,
    allocation_id: &str,
) -> Result<AddressFacts, AwsError> {
    let out = ec2
        .describe_addresses()
        .allocation_ids(allocation_id)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAddresses", e))?;
    let a = out
        .addresses()
        .iter()
        .find(|a| a.allocation_id() == Some(allocation_id))
        .ok_or_else(|| {
            missing(
                "DescribeAddresses",
                "InvalidAllocationID.NotFound",
                allocation_id,
            )
        })?;
    Ok(AddressFacts {
        allocation_id: allocation_id.to_string(),
        public_ip: a.public_ip().map(str::to_string),
        instance_id: a.instance_id().map(str::to_string),
        network_interface_id: a.network_interface_id().map(str::to_string),
        association_id: a.association_id().map(str::to_string),
    })
}

/// AssociateAddress with AllowReassociation: moves the address off the old instance.
pub async fn associate_address(
    ec2: &Ec2Client,
    allocation_id: &str,
    instance_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = ec2
        .associate_address()
        .allocation_id(allocation_id)
        .instance_id(instance_id)
        .allow_reassociation(true)
        .send()
        .await
        .map_err(|e| aws_error("AssociateAddress", e))?;
    Ok(out.association_id().map(str::to_string))
}

/// AssociateAddress with AllowReassociation onto the persistent interface: moves the address
/// off wherever it was (the old instance's primary interface, say); from then on it follows
/// the interface.
pub async fn associate_address_with_interface(
    ec2: &Ec2Client,
    allocation_id: &str,
    interface_id: &str,
) -> Result<Option<String>, AwsError> {
    let out = ec2
        .associate_address()
        .allocation_id(allocation_id)
        .network_interface_id(interface_id)
        .allow_reassociation(true)
        .send()
        .await
        .map_err(|e| aws_error("AssociateAddress", e))?;
    Ok(out.association_id().map(str::to_string))
}

/// The hook's HeartbeatTimeout in seconds.
pub async fn hook_timeout(
    asg: &AsgClient,
    group: &str,
    hook: &str,
) -> Result<Option<u64>, AwsError> {
    let out = asg
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(group)
        .lifecycle_hook_names(hook)
        .send()
        .await
        .map_err(|e| aws_error("DescribeLifecycleHooks", e))?;
    Ok(out
        .lifecycle_hooks()
        .iter()
        .find(|h| h.lifecycle_hook_name() == Some(hook))
        .and_then(|h| h.heartbeat_timeout())
        .and_then(|t| u64::try_from(t).ok()))
}

/// The lifecycle action being healed.
#[derive(Debug, Clone, Copy)]
pub struct ActionRef<'a> {
    pub group: &'a str,
    pub hook: &'a str,
    pub token: &'a str,
    pub instance_id: &'a str,
}

pub async fn heartbeat(asg: &AsgClient, a: ActionRef<'_>) -> Result<(), AwsError> {
    asg.record_lifecycle_action_heartbeat()
        .auto_scaling_group_name(a.group)
        .lifecycle_hook_name(a.hook)
        .lifecycle_action_token(a.token)
        .instance_id(a.instance_id)
        .send()
        .await
        .map_err(|e| aws_error("RecordLifecycleActionHeartbeat", e))?;
    Ok(())
}

pub async fn complete(asg: &AsgClient, a: ActionRef<'_>, result: &str) -> Result<(), AwsError> {
    asg.complete_lifecycle_action()
        .auto_scaling_group_name(a.group)
        .lifecycle_hook_name(a.hook)
        .lifecycle_action_token(a.token)
        .instance_id(a.instance_id)
        .lifecycle_action_result(result)
        .send()
        .await
        .map_err(|e| aws_error("CompleteLifecycleAction", e))?;
    Ok(())
}

/// A describe call that answered without the item asked for (EC2 normally errors instead).
fn missing(operation: &'static str, code: &str, id: &str) -> AwsError {
    AwsError {
        operation,
        code: Some(code.to_string()),
        message: Some(format!("{id} is not in the answer")),
        http_status: None,
        transport: false,
    }
}

// --- scheduled snapshots (crate::snapshot) -------------------------------------------------

/// What DescribeSnapshots says about one snapshot of the data volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    pub snapshot_id: String,
    /// `pending`, `completed`, `error`, ... as EBS says.
    pub state: String,
    /// StartTime, in milliseconds since the epoch (0 when EBS gives none).
    pub start_time_ms: u64,
    /// The snapshot's tags.
    pub tags: Vec<(String, String)>,
}

/// The snapshots of `volume_id` owned by this account and tagged `tag_key = tag_value`
/// (every page). The owner filter keeps out public and shared snapshots.
pub async fn describe_snapshots(
    ec2: &Ec2Client,
    volume_id: &str,
    (tag_key, tag_value): (&str, &str),
) -> Result<Vec<SnapshotFacts>, AwsError> {
    use aws_sdk_ec2::types::Filter;
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .values(volume_id)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name(format!("tag:{tag_key}"))
                    .values(tag_value)
                    .build(),
            )
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| aws_error("DescribeSnapshots", e))?;
        for s in out.snapshots() {
            let Some(id) = s.snapshot_id() else { continue };
            found.push(SnapshotFacts {
                snapshot_id: id.to_string(),
                state: s.state().map_or("", |st| st.as_str()).to_string(),
                start_time_ms: s
                    .start_time()
                    .and_then(|t| t.to_millis().ok())
                    .and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(0),
                tags: s
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            });
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(found),
        }
    }
}

/// CreateSnapshot of the volume, tagged at creation (so it is never untagged, and IAM can
/// require the tags). Returns the new snapshot's id.
pub async fn create_snapshot(
    ec2: &Ec2Client,
    volume_id: &str,
    description: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let out = ec2
        .create_snapshot()
        .volume_id(volume_id)
        .description(description)
        .tag_specifications(spec)
        .send()
        .await
        .map_err(|e| aws_error("CreateSnapshot", e))?;
    out.snapshot_id()
        .map(str::to_string)
        .ok_or_else(|| missing("CreateSnapshot", "MissingSnapshotId", volume_id))
}

pub async fn delete_snapshot(ec2: &Ec2Client, snapshot_id: &str) -> Result<(), AwsError> {
    ec2.delete_snapshot()
        .snapshot_id(snapshot_id)
        .send()
        .await
        .map_err(|e| aws_error("DeleteSnapshot", e))?;
    Ok(())
}
