//! AWS helpers for the local-AWS tests: polling with a deadline, what a group's instances,
//! volumes and addresses look like, a function's logs, and [`Stack`]: the whole autoheal
//! pattern created through the SDK, for tests that do not go through Terraform.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use aws_sdk_autoscaling::types::{
    LaunchTemplateSpecification, LifecycleHookSpecification, Tag as AsgTag,
};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    DomainType, Filter, RequestLaunchTemplateData, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use serde_json::json;

use super::Clients;

/// The tag every object a [`Stack`] creates carries, with the stack's name as its value; the
/// [`crate::sweeper::Sweeper`] looks for it.
pub const STACK_TAG: &str = "autoheal:stack";
/// The AMI and instance type of the tests' launch templates.
pub const AMI: &str = "ami-0720cb7af233b0529";
pub const INSTANCE_TYPE: &str = "t3.micro";
/// The detail-type of the event a launch lifecycle hook emits.
pub const LAUNCH_ACTION_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
/// How long [`wait_until`] waits unless told otherwise, and how often it looks.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(20);
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The message of an SDK error with its code and cause (the SDK's `Display` says only
/// "service error").
pub fn err_text<E: std::error::Error>(e: &E) -> String {
    aws_sdk_ec2::error::DisplayErrorContext(e).to_string()
}

// --- waiting -------------------------------------------------------------------------------

/// What one look at the world found: done (with a value), or not yet (and what it saw).
pub enum Check<T> {
    Done(T),
    NotYet(String),
}

/// Looks at the world with `check` every `interval` until it says [`Check::Done`], for at
/// most `timeout`. What it saw is logged on stderr whenever it changes (with the elapsed
/// time), so a slow or stuck chain shows where it was. An `Err` from `check` counts as "not
/// yet" (AWS calls may be throttled on purpose) and is reported if the wait times out.
pub async fn wait_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Check<T>>>,
{
    let started = Instant::now();
    let mut last_seen: Option<String> = None;
    let mut last_error: Option<String> = None;
    let mut polls = 0u32;
    loop {
        polls += 1;
        match check().await {
            Ok(Check::Done(value)) => {
                eprintln!(
                    "[{:>6.2}s] {what}: done after {polls} look(s)",
                    started.elapsed().as_secs_f64()
                );
                return Ok(value);
            }
            Ok(Check::NotYet(seen)) => {
                if last_seen.as_deref() != Some(seen.as_str()) {
                    eprintln!(
                        "[{:>6.2}s] waiting for {what}: {seen}",
                        started.elapsed().as_secs_f64()
                    );
                    last_seen = Some(seen);
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                if last_error.as_deref() != Some(text.as_str()) {
                    eprintln!(
                        "[{:>6.2}s] waiting for {what}: error: {text}",
                        started.elapsed().as_secs_f64()
                    );
                    last_error = Some(text);
                }
            }
        }
        if started.elapsed() >= timeout {
            bail!(
                "timed out after {timeout:?} ({polls} looks) waiting for {what}; last seen: {}; \
                 last error: {}",
                last_seen.as_deref().unwrap_or("nothing"),
                last_error.as_deref().unwrap_or("none")
            );
        }
        tokio::time::sleep(interval).await;
    }
}

/// [`wait_until`] with [`WAIT_TIMEOUT`] and [`POLL_INTERVAL`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Check<T>>>,
{
    wait_until(what, WAIT_TIMEOUT, POLL_INTERVAL, check).await
}

// --- instances -------------------------------------------------------------------------------

/// An instance of an Auto Scaling group, as DescribeAutoScalingGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInstance {
    pub id: String,
    /// `Pending:Wait`, `InService`, `Terminating`, ...
    pub lifecycle_state: String,
    pub health_status: String,
    pub availability_zone: String,
}

impl fmt::Display for GroupInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.lifecycle_state)
    }
}

/// The instances of `group` (empty if there is no such group).
pub async fn group_instances(
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
) -> anyhow::Result<Vec<GroupInstance>> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeAutoScalingGroups {group}: {}", err_text(&e)))?;
    let Some(g) = out.auto_scaling_groups().first() else {
        return Ok(Vec::new());
    };
    Ok(g.instances()
        .iter()
        .map(|i| GroupInstance {
            id: i.instance_id().unwrap_or_default().to_string(),
            lifecycle_state: i
                .lifecycle_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            health_status: i.health_status().unwrap_or_default().to_string(),
            availability_zone: i.availability_zone().unwrap_or_default().to_string(),
        })
        .collect())
}

/// One line for logs: `i-1 InService, i-2 Pending:Wait`.
pub fn describe_instances(instances: &[GroupInstance]) -> String {
    if instances.is_empty() {
        return "no instances".into();
    }
    instances
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until `group` has exactly one instance and it is in `state` (and, if given, is not
/// `not`): the usual question for a group of one.
pub async fn wait_for_single_instance(
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
    state: &str,
    not: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<GroupInstance> {
    wait_until(
        &format!("one instance of {group} in {state}"),
        timeout,
        POLL_INTERVAL,
        || async {
            let instances = group_instances(autoscaling, group).await?;
            match instances.as_slice() {
                [one] if one.lifecycle_state == state && Some(one.id.as_str()) != not => {
                    Ok(Check::Done(one.clone()))
                }
                _ => Ok(Check::NotYet(describe_instances(&instances))),
            }
        },
    )
    .await
}

/// The EC2 state of an instance (`pending`, `running`, `terminated`, ...), `None` if EC2 does
/// not know it.
pub async fn instance_state(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> anyhow::Result<Option<String>> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeInstances {instance_id}: {}", err_text(&e)))?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .and_then(|i| i.state())
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string()))
}

// --- volumes and addresses ------------------------------------------------------------------

/// A volume and its attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeStatus {
    pub volume_id: String,
    /// `available`, `in-use`, ...
    pub state: String,
    pub availability_zone: String,
    /// The instance it is attached to (or attaching, detaching), if any.
    pub attachment: Option<VolumeAttachment>,
    /// The snapshot it was created from, if any.
    pub snapshot_id: Option<String>,
    pub tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeAttachment {
    pub instance_id: String,
    /// `attaching`, `attached`, `detaching`, ...
    pub state: String,
    pub device: String,
}

impl fmt::Display for VolumeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.volume_id, self.state)?;
        if let Some(a) = &self.attachment {
            write!(f, " ({} to {} as {})", a.state, a.instance_id, a.device)?;
        }
        Ok(())
    }
}

pub async fn volume_status(
    ec2: &aws_sdk_ec2::Client,
    volume_id: &str,
) -> anyhow::Result<VolumeStatus> {
    let out = ec2
        .describe_volumes()
        .volume_ids(volume_id)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeVolumes {volume_id}: {}", err_text(&e)))?;
    let v = out
        .volumes()
        .first()
        .with_context(|| format!("DescribeVolumes {volume_id}: no such volume"))?;
    Ok(VolumeStatus {
        volume_id: volume_id.to_string(),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        attachment: v.attachments().first().map(|a| VolumeAttachment {
            instance_id: a.instance_id().unwrap_or_default().to_string(),
            state: a
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            device: a.device().unwrap_or_default().to_string(),
        }),
        snapshot_id: v
            .snapshot_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        tags: v
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

/// An Elastic IP and its association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressStatus {
    pub allocation_id: String,
    pub public_ip: String,
    pub instance_id: Option<String>,
    pub association_id: Option<String>,
    /// The network interface it is associated with (an instance's primary one too).
    pub network_interface_id: Option<String>,
}

/// The tags of Auto Scaling group `group` (empty when it does not exist).
pub async fn group_tags(
    autoscaling: &aws_sdk_autoscaling::Client,
    group: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "DescribeAutoScalingGroups: {}",
                aws_sdk_autoscaling::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .flat_map(|g| g.tags())
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

pub async fn address_status(
    ec2: &aws_sdk_ec2::Client,
    allocation_id: &str,
) -> anyhow::Result<AddressStatus> {
    let out = ec2
        .describe_addresses()
        .allocation_ids(allocation_id)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeAddresses {allocation_id}: {}", err_text(&e)))?;
    let a = out
        .addresses()
        .first()
        .with_context(|| format!("DescribeAddresses {allocation_id}: no such address"))?;
    Ok(AddressStatus {
        allocation_id: allocation_id.to_string(),
        public_ip: a.public_ip().unwrap_or_default().to_string(),
        instance_id: a
            .instance_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        association_id: a
            .association_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        network_interface_id: a
            .network_interface_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}

// --- network interfaces ----------------------------------------------------------------------

/// A network interface and its attachment, as DescribeNetworkInterfaces shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub network_interface_id: String,
    pub subnet_id: String,
    /// `available`, `in-use`, ...
    pub status: String,
    pub private_ip: String,
    pub mac_address: String,
    /// Sorted.
    pub security_group_ids: Vec<String>,
    pub attachment: Option<InterfaceAttachment>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAttachment {
    pub instance_id: String,
    pub attachment_id: String,
    pub device_index: i32,
    /// `attaching`, `attached`, `detaching`, ...
    pub state: String,
}

impl fmt::Display for InterfaceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.network_interface_id, self.status)?;
        if let Some(a) = &self.attachment {
            write!(
                f,
                " ({} to {} at {})",
                a.state, a.instance_id, a.device_index
            )?;
        }
        Ok(())
    }
}

fn interface_status(n: &aws_sdk_ec2::types::NetworkInterface) -> InterfaceStatus {
    let mut security_group_ids: Vec<String> = n
        .groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_string))
        .collect();
    security_group_ids.sort();
    InterfaceStatus {
        network_interface_id: n.network_interface_id().unwrap_or_default().to_string(),
        subnet_id: n.subnet_id().unwrap_or_default().to_string(),
        status: n
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        private_ip: n.private_ip_address().unwrap_or_default().to_string(),
        mac_address: n.mac_address().unwrap_or_default().to_string(),
        security_group_ids,
        attachment: n.attachment().and_then(|a| {
            Some(InterfaceAttachment {
                instance_id: a.instance_id()?.to_string(),
                attachment_id: a.attachment_id().unwrap_or_default().to_string(),
                device_index: a.device_index().unwrap_or(-1),
                state: a
                    .status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            })
        }),
        tags: n
            .tag_set()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    }
}

/// The network interface `id`; `None` when EC2 does not know it
/// (`InvalidNetworkInterfaceID.NotFound`: deleted).
pub async fn network_interface_status(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> anyhow::Result<Option<InterfaceStatus>> {
    match ec2
        .describe_network_interfaces()
        .network_interface_ids(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.network_interfaces().first().map(interface_status)),
        Err(e) if e.code() == Some("InvalidNetworkInterfaceID.NotFound") => Ok(None),
        Err(e) => bail!("DescribeNetworkInterfaces {id}: {}", err_text(&e)),
    }
}

/// Every network interface in `subnet_id` (the instances' own ones too).
pub async fn subnet_network_interfaces(
    ec2: &aws_sdk_ec2::Client,
    subnet_id: &str,
) -> anyhow::Result<Vec<InterfaceStatus>> {
    let out = ec2
        .describe_network_interfaces()
        .filters(
            Filter::builder()
                .name("subnet-id")
                .values(subnet_id)
                .build(),
        )
        .send()
        .await
        .map_err(|e| anyhow!("DescribeNetworkInterfaces in {subnet_id}: {}", err_text(&e)))?;
    Ok(out
        .network_interfaces()
        .iter()
        .map(interface_status)
        .collect())
}

/// An interface as DescribeInstances lists it on its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInterface {
    pub network_interface_id: String,
    pub device_index: i32,
    pub private_ip: String,
    pub mac_address: String,
}

/// The network interfaces DescribeInstances shows on `instance_id`, by device index.
pub async fn instance_interfaces(
    ec2: &aws_sdk_ec2::Client,
    instance_id: &str,
) -> anyhow::Result<Vec<InstanceInterface>> {
    let out = ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeInstances {instance_id}: {}", err_text(&e)))?;
    let instance = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(instance_id))
        .with_context(|| format!("DescribeInstances {instance_id}: no such instance"))?;
    let mut list: Vec<InstanceInterface> = instance
        .network_interfaces()
        .iter()
        .map(|n| InstanceInterface {
            network_interface_id: n.network_interface_id().unwrap_or_default().to_string(),
            device_index: n.attachment().and_then(|a| a.device_index()).unwrap_or(-1),
            private_ip: n.private_ip_address().unwrap_or_default().to_string(),
            mac_address: n.mac_address().unwrap_or_default().to_string(),
        })
        .collect();
    list.sort_by_key(|n| n.device_index);
    Ok(list)
}

// --- logs ----------------------------------------------------------------------------------

/// The log group of a Lambda function.
pub fn function_log_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

/// The scheduled snapshots of stack `stack` (this account's snapshots tagged
/// `autoheal:snapshot = scheduled` and `autoheal:stack = stack`): they outlive the stack.
pub async fn scheduled_snapshots(
    ec2: &aws_sdk_ec2::Client,
    stack: &str,
) -> anyhow::Result<Vec<aws_sdk_ec2::types::Snapshot>> {
    snapshots_of_kind(ec2, stack, "scheduled").await
}

/// This account's snapshots of stack `stack` whose `autoheal:snapshot` tag is `kind`
/// (`scheduled`, `failback`).
pub async fn snapshots_of_kind(
    ec2: &aws_sdk_ec2::Client,
    stack: &str,
    kind: &str,
) -> anyhow::Result<Vec<aws_sdk_ec2::types::Snapshot>> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("tag:autoheal:snapshot")
                .values(kind)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("tag:autoheal:stack")
                .values(stack)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "DescribeSnapshots: {}",
                aws_sdk_ec2::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out.snapshots().to_vec())
}

/// Deletes stack `stack`'s scheduled snapshots (data a destroy keeps by design), with the
/// caller's credentials, so a test can then look for leftovers.
pub async fn delete_scheduled_snapshots(
    ec2: &aws_sdk_ec2::Client,
    stack: &str,
) -> anyhow::Result<()> {
    delete_snapshots_of_kind(ec2, stack, "scheduled").await
}

/// Deletes the snapshots [`snapshots_of_kind`] lists.
pub async fn delete_snapshots_of_kind(
    ec2: &aws_sdk_ec2::Client,
    stack: &str,
    kind: &str,
) -> anyhow::Result<()> {
    for s in snapshots_of_kind(ec2, stack, kind).await? {
        ec2.delete_snapshot()
            .snapshot_id(s.snapshot_id().unwrap_or_default())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "DeleteSnapshot: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(&e)
                )
            })?;
    }
    Ok(())
}

/// The volumes (EBS's `VolumeId`) of this account's live final snapshots
/// (`autoheal:final-snapshot = true`).
pub async fn final_snapshot_volumes(ec2: &aws_sdk_ec2::Client) -> anyhow::Result<Vec<String>> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            Filter::builder()
                .name("tag:autoheal:final-snapshot")
                .values("true")
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "DescribeSnapshots: {}",
                aws_sdk_ec2::error::DisplayErrorContext(&e)
            )
        })?;
    Ok(out
        .snapshots()
        .iter()
        .filter_map(|s| s.volume_id().map(str::to_string))
        .collect())
}

/// Every line in `/aws/lambda/FUNCTION` (all streams, by time); empty if there is no such
/// group yet.
pub async fn function_logs(
    logs: &aws_sdk_cloudwatchlogs::Client,
    function: &str,
) -> anyhow::Result<Vec<String>> {
    let group = function_log_group(function);
    let mut lines = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = match logs
            .filter_log_events()
            .log_group_name(&group)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => bail!("FilterLogEvents {group}: {}", err_text(&e)),
        };
        lines.extend(
            out.events()
                .iter()
                .filter_map(|e| e.message().map(str::to_string)),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(lines),
        }
    }
}

// --- the pattern through the SDK ------------------------------------------------------------

/// What the autoheal pattern is made of, created through the SDK (see [`StackBuilder`]).
/// Every taggable object carries [`STACK_TAG`] = `name`; every other name starts with
/// `name`, so [`crate::sweeper::Sweeper::for_stack`] finds all of it.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub availability_zone: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub volume_id: String,
    pub allocation_id: String,
    pub public_ip: String,
    pub launch_template_id: String,
    pub group_name: String,
    pub hook_name: String,
    pub role_name: String,
    pub role_arn: String,
    pub policy_name: String,
    pub function_name: String,
    pub function_arn: String,
    pub rule_name: String,
    pub rule_arn: String,
    pub target_id: String,
    pub statement_id: String,
}

/// Builds a [`Stack`]: VPC, subnet (in one AZ), EBS volume, Elastic IP, launch template,
/// an Auto Scaling group of 0 with a launch lifecycle hook, an IAM role, the Lambda function
/// (`provided.al2023`, the given zip and environment), an EventBridge rule for the group's
/// launch lifecycle actions with the function as target and the permission for the rule to
/// invoke it; then the group is scaled to 1 (unless told otherwise).
#[derive(Debug, Clone)]
pub struct StackBuilder {
    name: String,
    zip: Vec<u8>,
    availability_zone: Option<String>,
    heartbeat_timeout: i32,
    default_result: String,
    env: BTreeMap<String, String>,
    function_timeout: i32,
    maximum_retry_attempts: Option<i32>,
    desired_capacity: i32,
    architecture: Option<String>,
}

impl Stack {
    /// A stack called `name` (a prefix of every name in it) whose function runs `zip`.
    pub fn builder(name: &str, zip: Vec<u8>) -> StackBuilder {
        StackBuilder {
            name: name.to_string(),
            zip,
            availability_zone: None,
            heartbeat_timeout: 300,
            default_result: "ABANDON".into(),
            env: BTreeMap::new(),
            function_timeout: 10,
            maximum_retry_attempts: None,
            desired_capacity: 1,
            architecture: None,
        }
    }

    /// The EventBridge pattern of the rule: this group's launch lifecycle actions.
    pub fn event_pattern(group: &str) -> String {
        json!({
            "source": ["aws.autoscaling"],
            "detail-type": [LAUNCH_ACTION_DETAIL_TYPE],
            "detail": {"AutoScalingGroupName": [group]},
        })
        .to_string()
    }

    /// Sets the group's min/max/desired capacity to `n`.
    pub async fn scale_to(&self, clients: &Clients, n: i32) -> anyhow::Result<()> {
        clients
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(&self.group_name)
            .min_size(n)
            .max_size(n)
            .desired_capacity(n)
            .send()
            .await
            .map_err(|e| anyhow!("UpdateAutoScalingGroup to {n}: {}", err_text(&e)))?;
        Ok(())
    }

    /// Deletes everything the stack created (the group with its instances first), so that a
    /// sweeper finds nothing. Errors are collected, not fatal, so one failure does not keep
    /// the rest alive.
    pub async fn delete(&self, clients: &Clients) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        let mut note = |what: &str, r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(format!("{what}: {e}"));
            }
        };
        let ec2 = &clients.ec2;
        // Whatever holds the address or the volume goes with the group's instances.
        let r = clients
            .autoscaling
            .delete_auto_scaling_group()
            .auto_scaling_group_name(&self.group_name)
            .force_delete(true)
            .send()
            .await;
        note(
            "DeleteAutoScalingGroup",
            r.map(|_| ()).map_err(|e| err_text(&e)),
        );
        let r = ec2
            .delete_launch_template()
            .launch_template_id(&self.launch_template_id)
            .send()
            .await;
        note(
            "DeleteLaunchTemplate",
            r.map(|_| ()).map_err(|e| err_text(&e)),
        );
        let r = clients
            .eventbridge
            .remove_targets()
            .rule(&self.rule_name)
            .ids(&self.target_id)
            .send()
            .await;
        note("RemoveTargets", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = clients
            .eventbridge
            .delete_rule()
            .name(&self.rule_name)
            .send()
            .await;
        note("DeleteRule", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = clients
            .lambda
            .delete_function()
            .function_name(&self.function_name)
            .send()
            .await;
        note("DeleteFunction", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = clients
            .logs
            .delete_log_group()
            .log_group_name(function_log_group(&self.function_name))
            .send()
            .await;
        match r {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            r => note("DeleteLogGroup", r.map(|_| ()).map_err(|e| err_text(&e))),
        }
        let r = clients
            .iam
            .delete_role_policy()
            .role_name(&self.role_name)
            .policy_name(&self.policy_name)
            .send()
            .await;
        note("DeleteRolePolicy", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = clients
            .iam
            .delete_role()
            .role_name(&self.role_name)
            .send()
            .await;
        note("DeleteRole", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = ec2
            .release_address()
            .allocation_id(&self.allocation_id)
            .send()
            .await;
        note("ReleaseAddress", r.map(|_| ()).map_err(|e| err_text(&e)));
        // A volume still attached to a terminated instance takes a moment to detach.
        let deleted = wait_until(
            &format!("deleting {}", self.volume_id),
            Duration::from_secs(10),
            POLL_INTERVAL,
            || async {
                match ec2.delete_volume().volume_id(&self.volume_id).send().await {
                    Ok(_) => Ok(Check::Done(())),
                    Err(e) if e.code() == Some("VolumeInUse") => {
                        Ok(Check::NotYet("VolumeInUse".into()))
                    }
                    Err(e) => Err(anyhow!(err_text(&e))),
                }
            },
        )
        .await;
        note("DeleteVolume", deleted.map_err(|e| format!("{e:#}")));
        let r = ec2.delete_subnet().subnet_id(&self.subnet_id).send().await;
        note("DeleteSubnet", r.map(|_| ()).map_err(|e| err_text(&e)));
        let r = ec2.delete_vpc().vpc_id(&self.vpc_id).send().await;
        note("DeleteVpc", r.map(|_| ()).map_err(|e| err_text(&e)));
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("deleting stack {}: {}", self.name, errors.join("; "))
        }
    }
}

/// EC2 tag specifications with [`STACK_TAG`] = `name` (and `Name`) for one resource type.
fn ec2_tags(resource: ResourceType, name: &str) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key(STACK_TAG).value(name).build())
        .tags(Tag::builder().key("Name").value(name).build())
        .build()
}

/// A subnet filter by id (for the default AZ lookup).
fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

impl StackBuilder {
    /// The AZ of the subnet and the volume (default: the region's first).
    pub fn availability_zone(mut self, az: &str) -> Self {
        self.availability_zone = Some(az.to_string());
        self
    }

    /// The launch hook's HeartbeatTimeout in seconds (default 300; scaled by the clock).
    pub fn heartbeat_timeout(mut self, seconds: i32) -> Self {
        self.heartbeat_timeout = seconds;
        self
    }

    /// The launch hook's DefaultResult (default ABANDON).
    pub fn default_result(mut self, result: &str) -> Self {
        self.default_result = result.to_string();
        self
    }

    /// An environment variable of the function.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// The function's Timeout in (real) seconds (default 10).
    pub fn function_timeout(mut self, seconds: i32) -> Self {
        self.function_timeout = seconds;
        self
    }

    /// MaximumRetryAttempts of the function's asynchronous invocations (Lambda's default: 2).
    pub fn maximum_retry_attempts(mut self, n: i32) -> Self {
        self.maximum_retry_attempts = Some(n);
        self
    }

    /// The capacity the group is scaled to once everything exists (default 1; 0 leaves it
    /// empty).
    pub fn desired_capacity(mut self, n: i32) -> Self {
        self.desired_capacity = n;
        self
    }

    /// The function's `Architectures` (`x86_64` or `arm64`); not sent by default, so Lambda's
    /// default, x86_64, applies.
    pub fn architecture(mut self, architecture: &str) -> Self {
        self.architecture = Some(architecture.to_string());
        self
    }

    pub async fn create(self, clients: &Clients) -> anyhow::Result<Stack> {
        let name = self.name.as_str();
        let ec2 = &clients.ec2;
        let az = match &self.availability_zone {
            Some(az) => az.clone(),
            None => {
                let region = clients
                    .config
                    .region()
                    .map(|r| r.to_string())
                    .unwrap_or_default();
                let out = ec2
                    .describe_availability_zones()
                    .filters(filter("region-name", &region))
                    .send()
                    .await
                    .map_err(|e| anyhow!("DescribeAvailabilityZones: {}", err_text(&e)))?;
                let mut zones: Vec<String> = out
                    .availability_zones()
                    .iter()
                    .filter_map(|z| z.zone_name().map(str::to_string))
                    .collect();
                zones.sort();
                zones
                    .into_iter()
                    .next()
                    .with_context(|| format!("no availability zone in {region}"))?
            }
        };

        let vpc_id = ec2
            .create_vpc()
            .cidr_block("10.40.0.0/16")
            .tag_specifications(ec2_tags(ResourceType::Vpc, name))
            .send()
            .await
            .map_err(|e| anyhow!("CreateVpc: {}", err_text(&e)))?
            .vpc()
            .and_then(|v| v.vpc_id())
            .context("CreateVpc: no VpcId")?
            .to_string();
        let subnet_id = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block("10.40.1.0/24")
            .availability_zone(&az)
            .tag_specifications(ec2_tags(ResourceType::Subnet, name))
            .send()
            .await
            .map_err(|e| anyhow!("CreateSubnet: {}", err_text(&e)))?
            .subnet()
            .and_then(|s| s.subnet_id())
            .context("CreateSubnet: no SubnetId")?
            .to_string();
        let volume_id = ec2
            .create_volume()
            .availability_zone(&az)
            .size(1)
            .volume_type(VolumeType::Gp3)
            .tag_specifications(ec2_tags(ResourceType::Volume, name))
            .send()
            .await
            .map_err(|e| anyhow!("CreateVolume: {}", err_text(&e)))?
            .volume_id()
            .context("CreateVolume: no VolumeId")?
            .to_string();
        let address = ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(ec2_tags(ResourceType::ElasticIp, name))
            .send()
            .await
            .map_err(|e| anyhow!("AllocateAddress: {}", err_text(&e)))?;
        let allocation_id = address
            .allocation_id()
            .context("AllocateAddress: no AllocationId")?
            .to_string();
        let public_ip = address.public_ip().unwrap_or_default().to_string();
        let launch_template_id = ec2
            .create_launch_template()
            .launch_template_name(format!("{name}-lt"))
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id(AMI)
                    .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                    .build(),
            )
            .tag_specifications(ec2_tags(ResourceType::LaunchTemplate, name))
            .send()
            .await
            .map_err(|e| anyhow!("CreateLaunchTemplate: {}", err_text(&e)))?
            .launch_template()
            .and_then(|t| t.launch_template_id())
            .context("CreateLaunchTemplate: no LaunchTemplateId")?
            .to_string();

        let role_name = format!("{name}-role");
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }],
        });
        let role_arn = clients
            .iam
            .create_role()
            .role_name(&role_name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .map_err(|e| anyhow!("CreateRole: {}", err_text(&e)))?
            .role()
            .map(|r| r.arn().to_string())
            .context("CreateRole: no Role")?;
        let policy_name = format!("{name}-policy");
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": [
                    "autoscaling:CompleteLifecycleAction",
                    "ec2:AttachVolume",
                    "ec2:AssociateAddress",
                    "ec2:Describe*",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                "Resource": "*",
            }],
        });
        clients
            .iam
            .put_role_policy()
            .role_name(&role_name)
            .policy_name(&policy_name)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|e| anyhow!("PutRolePolicy: {}", err_text(&e)))?;

        let function_name = format!("{name}-fn");
        let function_arn = clients
            .lambda
            .create_function()
            .function_name(&function_name)
            .runtime(Runtime::Providedal2023)
            .set_architectures(
                self.architecture
                    .as_deref()
                    .map(|a| vec![Architecture::from(a)]),
            )
            .handler("bootstrap")
            .role(&role_arn)
            .timeout(self.function_timeout)
            .memory_size(128)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(self.zip))
                    .build(),
            )
            .environment(
                Environment::builder()
                    .set_variables(Some(self.env.into_iter().collect()))
                    .build(),
            )
            .tags(STACK_TAG, name)
            .send()
            .await
            .map_err(|e| anyhow!("CreateFunction: {}", err_text(&e)))?
            .function_arn()
            .context("CreateFunction: no FunctionArn")?
            .to_string();
        if let Some(n) = self.maximum_retry_attempts {
            clients
                .lambda
                .put_function_event_invoke_config()
                .function_name(&function_name)
                .maximum_retry_attempts(n)
                .send()
                .await
                .map_err(|e| anyhow!("PutFunctionEventInvokeConfig: {}", err_text(&e)))?;
        }

        let group_name = format!("{name}-asg");
        let hook_name = format!("{name}-launch");
        let rule_name = format!("{name}-launch");
        let rule_arn = clients
            .eventbridge
            .put_rule()
            .name(&rule_name)
            .event_pattern(Stack::event_pattern(&group_name))
            .description(format!("{name}: launch lifecycle actions of {group_name}"))
            .send()
            .await
            .map_err(|e| anyhow!("PutRule: {}", err_text(&e)))?
            .rule_arn()
            .context("PutRule: no RuleArn")?
            .to_string();
        let target_id = "function".to_string();
        let out = clients
            .eventbridge
            .put_targets()
            .rule(&rule_name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id(&target_id)
                    .arn(&function_arn)
                    .build()
                    .map_err(|e| anyhow!("target: {e}"))?,
            )
            .send()
            .await
            .map_err(|e| anyhow!("PutTargets: {}", err_text(&e)))?;
        if out.failed_entry_count() != 0 {
            bail!("PutTargets: {:?}", out.failed_entries());
        }
        let statement_id = format!("{name}-events");
        clients
            .lambda
            .add_permission()
            .function_name(&function_name)
            .statement_id(&statement_id)
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .source_arn(&rule_arn)
            .send()
            .await
            .map_err(|e| anyhow!("AddPermission: {}", err_text(&e)))?;

        clients
            .autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(&group_name)
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .vpc_zone_identifier(&subnet_id)
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_id(&launch_template_id)
                    .version("$Latest")
                    .build(),
            )
            .lifecycle_hook_specification_list(
                LifecycleHookSpecification::builder()
                    .lifecycle_hook_name(&hook_name)
                    .lifecycle_transition("autoscaling:EC2_INSTANCE_LAUNCHING")
                    .heartbeat_timeout(self.heartbeat_timeout)
                    .default_result(&self.default_result)
                    .build(),
            )
            .tags(
                AsgTag::builder()
                    .key(STACK_TAG)
                    .value(name)
                    .propagate_at_launch(true)
                    .resource_id(&group_name)
                    .resource_type("auto-scaling-group")
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow!("CreateAutoScalingGroup: {}", err_text(&e)))?;

        let stack = Stack {
            name: name.to_string(),
            availability_zone: az,
            vpc_id,
            subnet_id,
            volume_id,
            allocation_id,
            public_ip,
            launch_template_id,
            group_name,
            hook_name,
            role_name,
            role_arn,
            policy_name,
            function_name,
            function_arn,
            rule_name,
            rule_arn,
            target_id,
            statement_id,
        };
        if self.desired_capacity > 0 {
            stack.scale_to(clients, self.desired_capacity).await?;
        }
        eprintln!(
            "stack {name}: group {} (hook {}), function {}, rule {}, volume {}, address {} ({})",
            stack.group_name,
            stack.hook_name,
            stack.function_name,
            stack.rule_name,
            stack.volume_id,
            stack.allocation_id,
            stack.public_ip
        );
        Ok(stack)
    }
}

// --- times ---------------------------------------------------------------------------------

/// Seconds since the Unix epoch of a UTC time as the local AWS writes it
/// (`2024-05-01T12:00:00.123Z` or without the fraction).
pub fn parse_utc(text: &str) -> anyhow::Result<f64> {
    let bad = || anyhow!("not a UTC time like 2024-05-01T12:00:00.123Z: {text:?}");
    let body = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = body.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, format!("0.{f}").parse::<f64>().map_err(|_| bad())?),
        None => (time, 0.0),
    };
    let t: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64 + fraction)
}

// --- the attachment Lambda ------------------------------------------------------------------

/// The function environment the attachment Lambda (`handler/`, `handler/src/settings.rs`)
/// reads. Spelled out here rather than imported: the tests drive the handler's zip from the
/// outside, as Lambda does, and do not link its crate.
pub const HANDLER_VOLUME_ID: &str = "AUTOHEAL_VOLUME_ID";
pub const HANDLER_ALLOCATION_ID: &str = "AUTOHEAL_ALLOCATION_ID";
pub const HANDLER_DEVICE_NAME: &str = "AUTOHEAL_DEVICE_NAME";
pub const HANDLER_GROUP_NAME: &str = "AUTOHEAL_GROUP_NAME";
pub const HANDLER_HOOK_NAME: &str = "AUTOHEAL_HOOK_NAME";
pub const HANDLER_HOOK_TIMEOUT_SECONDS: &str = "AUTOHEAL_HOOK_TIMEOUT_SECONDS";

/// What a synchronous Invoke answered.
#[derive(Debug, Clone)]
pub struct InvokeOutput {
    /// `X-Amz-Function-Error` (`Unhandled`) when the function returned an error.
    pub function_error: Option<String>,
    /// The function's response (or error document), as JSON; `Null` when empty or not JSON.
    pub payload: serde_json::Value,
}

impl Stack {
    /// The attachment Lambda's environment for this stack: its volume, address, group and
    /// hook, and the device to attach the volume at.
    pub fn handler_env(&self, device: &str) -> BTreeMap<String, String> {
        [
            (HANDLER_VOLUME_ID, self.volume_id.as_str()),
            (HANDLER_ALLOCATION_ID, self.allocation_id.as_str()),
            (HANDLER_DEVICE_NAME, device),
            (HANDLER_GROUP_NAME, self.group_name.as_str()),
            (HANDLER_HOOK_NAME, self.hook_name.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Replaces the function's environment variables (UpdateFunctionConfiguration): the
    /// builder creates the function before the volume and address ids it needs are known.
    pub async fn set_function_env(
        &self,
        clients: &Clients,
        vars: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        clients
            .lambda
            .update_function_configuration()
            .function_name(&self.function_name)
            .environment(
                Environment::builder()
                    .set_variables(Some(vars.clone().into_iter().collect()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| anyhow!("UpdateFunctionConfiguration: {}", err_text(&e)))?;
        Ok(())
    }

    /// Reserved concurrency 0: the rule's deliveries are throttled and retried by Lambda's
    /// asynchronous queue (backoff from 1 s of virtual time, doubling) until
    /// [`Stack::release_function`]. Delays the function's start the way AWS would.
    pub async fn hold_function(&self, clients: &Clients) -> anyhow::Result<()> {
        clients
            .lambda
            .put_function_concurrency()
            .function_name(&self.function_name)
            .reserved_concurrent_executions(0)
            .send()
            .await
            .map_err(|e| anyhow!("PutFunctionConcurrency 0: {}", err_text(&e)))?;
        Ok(())
    }

    /// Removes the reserved concurrency set by [`Stack::hold_function`].
    pub async fn release_function(&self, clients: &Clients) -> anyhow::Result<()> {
        clients
            .lambda
            .delete_function_concurrency()
            .function_name(&self.function_name)
            .send()
            .await
            .map_err(|e| anyhow!("DeleteFunctionConcurrency: {}", err_text(&e)))?;
        Ok(())
    }

    /// Removes the rule's target: launch events are still emitted and recorded, but reach no
    /// function (a test then delivers them itself with [`Stack::invoke`]).
    pub async fn remove_rule_target(&self, clients: &Clients) -> anyhow::Result<()> {
        let out = clients
            .eventbridge
            .remove_targets()
            .rule(&self.rule_name)
            .ids(&self.target_id)
            .send()
            .await
            .map_err(|e| anyhow!("RemoveTargets: {}", err_text(&e)))?;
        if out.failed_entry_count() != 0 {
            bail!("RemoveTargets: {:?}", out.failed_entries());
        }
        Ok(())
    }

    /// Invokes the function synchronously (RequestResponse) with `payload`.
    pub async fn invoke(
        &self,
        clients: &Clients,
        payload: &serde_json::Value,
    ) -> anyhow::Result<InvokeOutput> {
        let out = clients
            .lambda
            .invoke()
            .function_name(&self.function_name)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| anyhow!("Invoke {}: {}", self.function_name, err_text(&e)))?;
        let payload = out
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .unwrap_or(serde_json::Value::Null);
        Ok(InvokeOutput {
            function_error: out.function_error().map(str::to_string),
            payload,
        })
    }
}

/// The JSON objects among a function's log lines (JSON-lines logs and EMF records alike);
/// other lines (START, REPORT, plain text) are skipped.
pub fn json_log_records(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(serde_json::Value::is_object)
        .collect()
}

/// The CloudWatch Embedded Metric Format records among a function's log lines: objects
/// with `_aws.CloudWatchMetrics`.
pub fn emf_records(lines: &[String]) -> Vec<serde_json::Value> {
    json_log_records(lines)
        .into_iter()
        .filter(|r| r.pointer("/_aws/CloudWatchMetrics").is_some())
        .collect()
}

/// What a Lambda `REPORT RequestId: ...` log line says, in milliseconds and megabytes.
#[derive(Debug, Clone, PartialEq)]
pub struct LambdaReport {
    pub request_id: String,
    pub duration_ms: f64,
    pub init_duration_ms: Option<f64>,
    pub max_memory_used_mb: Option<u64>,
}

/// Parses a `REPORT` line (`REPORT RequestId: ID\tDuration: 1.23 ms\t...`); `None` for any
/// other line.
pub fn parse_report(line: &str) -> Option<LambdaReport> {
    let rest = line.strip_prefix("REPORT RequestId: ")?;
    let mut fields = rest.split('\t');
    let request_id = fields.next()?.trim().to_string();
    let mut report = LambdaReport {
        request_id,
        duration_ms: f64::NAN,
        init_duration_ms: None,
        max_memory_used_mb: None,
    };
    for field in fields {
        let Some((key, value)) = field.split_once(": ") else {
            continue;
        };
        let number = value.split_whitespace().next().unwrap_or("");
        match key.trim() {
            "Duration" => report.duration_ms = number.parse().ok()?,
            "Init Duration" => report.init_duration_ms = number.parse().ok(),
            "Max Memory Used" => report.max_memory_used_mb = number.parse().ok(),
            _ => {}
        }
    }
    Some(report)
}

/// A UTC time as EventBridge writes an event's `time` (`2024-05-01T12:00:00Z`, whole
/// seconds): the inverse of [`parse_utc`] for whole seconds since the epoch.
pub fn format_utc_seconds(epoch_seconds: i64) -> String {
    let days = epoch_seconds.div_euclid(86_400);
    let secs = epoch_seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").unwrap(), 0.0);
        assert_eq!(parse_utc("2000-03-01T00:00:01.5Z").unwrap(), 951_868_801.5);
        let a = parse_utc("2026-12-31T23:59:59.900Z").unwrap();
        let b = parse_utc("2027-01-01T00:00:00.100Z").unwrap();
        assert!((b - a - 0.2).abs() < 1e-6, "{}", b - a);
        assert!(parse_utc("yesterday").is_err());
    }

    #[test]
    fn the_event_pattern_selects_the_groups_launch_actions() {
        let p: serde_json::Value = serde_json::from_str(&Stack::event_pattern("g")).unwrap();
        assert_eq!(p["source"], json!(["aws.autoscaling"]));
        assert_eq!(p["detail-type"], json!([LAUNCH_ACTION_DETAIL_TYPE]));
        assert_eq!(p["detail"]["AutoScalingGroupName"], json!(["g"]));
    }

    #[test]
    fn utc_seconds_round_trip() {
        assert_eq!(format_utc_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc_seconds(951_868_801), "2000-03-01T00:00:01Z");
        assert_eq!(format_utc_seconds(1_709_251_199), "2024-02-29T23:59:59Z");
        for t in [0, 86_399, 951_868_800, 1_714_564_800, 4_102_444_799] {
            assert_eq!(parse_utc(&format_utc_seconds(t)).unwrap(), t as f64);
        }
    }

    #[test]
    fn report_lines_parse() {
        let r = parse_report(
            "REPORT RequestId: abc\tDuration: 12.50 ms\tBilled Duration: 20 ms\t\
             Memory Size: 128 MB\tMax Memory Used: 9 MB\tInit Duration: 7.25 ms",
        )
        .unwrap();
        assert_eq!(r.request_id, "abc");
        assert_eq!(r.duration_ms, 12.5);
        assert_eq!(r.init_duration_ms, Some(7.25));
        assert_eq!(r.max_memory_used_mb, Some(9));
        assert_eq!(parse_report("START RequestId: abc Version: $LATEST"), None);
        let lines = vec![
            r#"{"level":"INFO","message":"x"}"#.to_string(),
            r#"{"_aws":{"CloudWatchMetrics":[]},"outcome":"healed"}"#.to_string(),
            "END RequestId: abc".to_string(),
        ];
        assert_eq!(json_log_records(&lines).len(), 2);
        assert_eq!(emf_records(&lines)[0]["outcome"], "healed");
    }
}
