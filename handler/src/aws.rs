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
    /// The [`ACTIVE_VOLUME_TAG`] the group propagated to it at launch: after a failover, the
    /// restored volume to attach instead of the home one. A pointer, not proof
    /// (`crate::provenance` checks the volume itself).
    pub active_volume: Option<String>,
}

pub const GROUP_TAG: &str = "aws:autoscaling:groupName";
/// The group's tag (propagated at launch) naming the volume the stack serves from after a
/// failover; absent: the home volume (docs/zone-failover.md, section 2).
pub const ACTIVE_VOLUME_TAG: &str = "autoheal:active-volume";

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
        active_volume: i
            .tags()
            .iter()
            .find(|t| t.key() == Some(ACTIVE_VOLUME_TAG))
            .and_then(|t| t.value())
            .filter(|v| !v.is_empty())
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

// --- zone failover (crate::failover, crate::provenance) ------------------------------------

/// What DescribeVolumes says about a volume's origin and shape: what a restore copies and
/// what the heal's provenance check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeOrigin {
    pub volume_id: String,
    pub state: String,
    pub availability_zone: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    /// The snapshot EBS made it from (EBS's record, not a tag).
    pub snapshot_id: Option<String>,
    pub volume_type: Option<String>,
    pub size_gib: Option<i32>,
    pub iops: Option<i32>,
    pub throughput: Option<i32>,
    pub tags: Vec<(String, String)>,
}

fn tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> Vec<(String, String)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

fn origin_of(v: &aws_sdk_ec2::types::Volume) -> Option<VolumeOrigin> {
    Some(VolumeOrigin {
        volume_id: v.volume_id()?.to_string(),
        state: v.state().map_or("", |s| s.as_str()).to_string(),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        snapshot_id: v
            .snapshot_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        volume_type: v.volume_type().map(|t| t.as_str().to_string()),
        size_gib: v.size(),
        iops: v.iops(),
        throughput: v.throughput(),
        tags: tags_of(v.tags()),
    })
}

/// `Ok(None)`: EBS does not know the volume.
pub async fn describe_volume_origin(
    ec2: &Ec2Client,
    volume_id: &str,
) -> Result<Option<VolumeOrigin>, AwsError> {
    match ec2.describe_volumes().volume_ids(volume_id).send().await {
        Ok(out) => Ok(out
            .volumes()
            .iter()
            .filter(|v| v.volume_id() == Some(volume_id))
            .find_map(origin_of)),
        Err(e) if e.code() == Some("InvalidVolume.NotFound") => Ok(None),
        Err(e) => Err(aws_error("DescribeVolumes", e)),
    }
}

/// What DescribeSnapshots says about one snapshot of this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOrigin {
    pub snapshot_id: String,
    pub state: String,
    /// The volume EBS took it of (EBS's record, not a tag).
    pub volume_id: String,
    pub start_time_ms: u64,
}

/// `Ok(None)`: no such snapshot owned by this account (the owner filter keeps out public and
/// shared snapshots: a restore must come from the stack's own data).
pub async fn describe_own_snapshot(
    ec2: &Ec2Client,
    snapshot_id: &str,
) -> Result<Option<SnapshotOrigin>, AwsError> {
    match ec2
        .describe_snapshots()
        .owner_ids("self")
        .snapshot_ids(snapshot_id)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .snapshots()
            .iter()
            .find(|s| s.snapshot_id() == Some(snapshot_id))
            .map(|s| SnapshotOrigin {
                snapshot_id: snapshot_id.to_string(),
                state: s.state().map_or("", |st| st.as_str()).to_string(),
                volume_id: s.volume_id().unwrap_or_default().to_string(),
                start_time_ms: s
                    .start_time()
                    .and_then(|t| t.to_millis().ok())
                    .and_then(|ms| u64::try_from(ms).ok())
                    .unwrap_or(0),
            })),
        Err(e) if e.code() == Some("InvalidSnapshot.NotFound") => Ok(None),
        Err(e) => Err(aws_error("DescribeSnapshots", e)),
    }
}

/// The group as the failover reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    /// VPCZoneIdentifier, split.
    pub subnets: Vec<String>,
    /// (instance id, lifecycle state, zone) of each instance.
    pub instances: Vec<(String, String, String)>,
    pub tags: Vec<(String, String)>,
    /// Whether the group's `Launch` process is suspended (SuspendedProcesses).
    pub launch_suspended: bool,
}

impl GroupFacts {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `Ok(None)`: no such group.
pub async fn describe_group(asg: &AsgClient, group: &str) -> Result<Option<GroupFacts>, AwsError> {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| aws_error("DescribeAutoScalingGroups", e))?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(group))
        .map(|g| GroupFacts {
            subnets: g
                .vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            instances: g
                .instances()
                .iter()
                .map(|i| {
                    (
                        i.instance_id().unwrap_or_default().to_string(),
                        i.lifecycle_state().map_or("", |s| s.as_str()).to_string(),
                        i.availability_zone().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            tags: g
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                .collect(),
            launch_suspended: g
                .suspended_processes()
                .iter()
                .any(|p| p.process_name() == Some(LAUNCH_PROCESS)),
        }))
}

/// One scaling activity of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityFacts {
    /// `Successful`, `Failed`, `InProgress`, `MidLifecycleAction`, ...
    pub status: String,
    pub description: String,
    pub status_message: String,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    /// The `Details` JSON (`{"Subnet ID": .., "Availability Zone": ..}`), as text.
    pub details: String,
}

fn ms(t: Option<&aws_smithy_types::DateTime>) -> Option<u64> {
    t.and_then(|t| t.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
}

/// The group's newest scaling activities (one page of up to 100: a detection window of at
/// most a day holds far fewer launch attempts at Auto Scaling's back-off).
pub async fn describe_activities(
    asg: &AsgClient,
    group: &str,
) -> Result<Vec<ActivityFacts>, AwsError> {
    let out = asg
        .describe_scaling_activities()
        .auto_scaling_group_name(group)
        .max_records(100)
        .send()
        .await
        .map_err(|e| aws_error("DescribeScalingActivities", e))?;
    Ok(out
        .activities()
        .iter()
        .map(|a| ActivityFacts {
            status: a.status_code().map_or("", |s| s.as_str()).to_string(),
            description: a.description().unwrap_or_default().to_string(),
            status_message: a.status_message().unwrap_or_default().to_string(),
            start_ms: ms(a.start_time()).unwrap_or(0),
            end_ms: ms(a.end_time()),
            details: a.details().unwrap_or_default().to_string(),
        })
        .collect())
}

/// Whether DescribeVolumeStatus reports the volume `impaired` (EBS User Guide, "Amazon EBS
/// volume status checks": I/O disabled, `io-enabled` failed).
pub async fn volume_impaired(ec2: &Ec2Client, volume_id: &str) -> Result<bool, AwsError> {
    let out = ec2
        .describe_volume_status()
        .volume_ids(volume_id)
        .send()
        .await
        .map_err(|e| aws_error("DescribeVolumeStatus", e))?;
    Ok(out.volume_statuses().iter().any(|s| {
        s.volume_id() == Some(volume_id)
            && s.volume_status()
                .and_then(|v| v.status())
                .is_some_and(|st| st.as_str() == "impaired")
    }))
}

/// Volumes made by an earlier run of the same restore: in `zone`, made from `snapshot_id`
/// (EBS's record, checked by the caller), carrying `restored_for_tag = group`.
pub async fn find_restored_volumes(
    ec2: &Ec2Client,
    (restored_for_tag, group): (&str, &str),
    snapshot_id: &str,
    zone: &str,
) -> Result<Vec<VolumeOrigin>, AwsError> {
    use aws_sdk_ec2::types::Filter;
    let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    let out = ec2
        .describe_volumes()
        .filters(filter(&format!("tag:{restored_for_tag}"), group))
        .filters(filter("snapshot-id", snapshot_id))
        .filters(filter("availability-zone", zone))
        .send()
        .await
        .map_err(|e| aws_error("DescribeVolumes", e))?;
    Ok(out.volumes().iter().filter_map(origin_of).collect())
}

/// CreateVolume from `snapshot_id` in `zone`, shaped as `like` (type, size, IOPS, throughput)
/// and encrypted with its key, tagged at creation. Returns the new volume's id.
pub async fn create_volume_from(
    ec2: &Ec2Client,
    like: &VolumeOrigin,
    snapshot_id: &str,
    zone: &str,
    tags: &[(String, String)],
) -> Result<String, AwsError> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification, VolumeType};
    let spec = TagSpecification::builder()
        .resource_type(ResourceType::Volume)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build();
    let volume_type = like.volume_type.as_deref().map(VolumeType::from);
    // IOPS only where the type takes them (gp3, io1, io2), throughput only for gp3.
    let takes_iops = matches!(like.volume_type.as_deref(), Some("gp3" | "io1" | "io2"));
    let takes_throughput = like.volume_type.as_deref() == Some("gp3");
    let out = ec2
        .create_volume()
        .snapshot_id(snapshot_id)
        .availability_zone(zone)
        .set_volume_type(volume_type)
        .set_size(like.size_gib)
        .set_iops(like.iops.filter(|_| takes_iops))
        .set_throughput(like.throughput.filter(|_| takes_throughput))
        .encrypted(true)
        .set_kms_key_id(like.kms_key_id.clone())
        .tag_specifications(spec)
        .send()
        .await
        .map_err(|e| aws_error("CreateVolume", e))?;
    out.volume_id()
        .map(str::to_string)
        .ok_or_else(|| missing("CreateVolume", "MissingVolumeId", snapshot_id))
}

pub async fn tag_volume(
    ec2: &Ec2Client,
    volume_id: &str,
    tags: &[(String, String)],
) -> Result<(), AwsError> {
    use aws_sdk_ec2::types::Tag;
    ec2.create_tags()
        .resources(volume_id)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| aws_error("CreateTags", e))?;
    Ok(())
}

/// CreateOrUpdateTags on the group: (key, value, propagate at launch).
pub async fn tag_group(
    asg: &AsgClient,
    group: &str,
    tags: &[(&str, String, bool)],
) -> Result<(), AwsError> {
    use aws_sdk_autoscaling::types::Tag;
    asg.create_or_update_tags()
        .set_tags(Some(
            tags.iter()
                .map(|(k, v, propagate)| {
                    Tag::builder()
                        .resource_id(group)
                        .resource_type("auto-scaling-group")
                        .key(*k)
                        .value(v)
                        .propagate_at_launch(*propagate)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| aws_error("CreateOrUpdateTags", e))?;
    Ok(())
}

/// The Auto Scaling process that adds instances (SuspendProcesses' `ScalingProcesses`).
pub const LAUNCH_PROCESS: &str = "Launch";

/// SuspendProcesses `Launch`: the group adds no instance until it is resumed.
pub async fn suspend_launch(asg: &AsgClient, group: &str) -> Result<(), AwsError> {
    asg.suspend_processes()
        .auto_scaling_group_name(group)
        .scaling_processes(LAUNCH_PROCESS)
        .send()
        .await
        .map_err(|e| aws_error("SuspendProcesses", e))?;
    Ok(())
}

/// ResumeProcesses `Launch`: the group launches what it is missing at once ("When you
/// resume the Launch process, Amazon EC2 Auto Scaling immediately replaces any instances
/// that it terminated during the time that Launch was suspended", Auto Scaling User Guide,
/// "How suspended processes affect other processes").
pub async fn resume_launch(asg: &AsgClient, group: &str) -> Result<(), AwsError> {
    asg.resume_processes()
        .auto_scaling_group_name(group)
        .scaling_processes(LAUNCH_PROCESS)
        .send()
        .await
        .map_err(|e| aws_error("ResumeProcesses", e))?;
    Ok(())
}

/// UpdateAutoScalingGroup: the group launches into `subnet` from now on.
pub async fn move_group(asg: &AsgClient, group: &str, subnet: &str) -> Result<(), AwsError> {
    asg.update_auto_scaling_group()
        .auto_scaling_group_name(group)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .map_err(|e| aws_error("UpdateAutoScalingGroup", e))?;
    Ok(())
}
