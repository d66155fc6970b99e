//! The heal's decisions, as pure functions of what was observed. The AWS layer (`aws.rs`)
//! turns API answers into these facts and `heal.rs` carries out the returned action, so every
//! rule here is unit-tested without AWS and without mocks.

use std::fmt;

/// EC2 instance states (`InstanceStateName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
    Other(String),
}

impl InstanceState {
    pub fn parse(s: &str) -> InstanceState {
        match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            other => InstanceState::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Other(s) => s,
        }
    }
}

impl InstanceState {
    /// Shutting down or terminated: the instance will never run again, and its lifecycle
    /// action ends with it.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the heal gives up: the lifecycle action is completed with ABANDON, and the metric
/// counts a permanent failure (the group then replaces the instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
}

impl Failure {
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
        }
    }
}

// --- The new instance ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceStep {
    /// Not running yet: poll again.
    Wait,
    /// Running: go on.
    Ready,
    /// Shutting down or terminated: nothing to heal, and no failure of the heal.
    Gone(String),
    /// It will never run (stopping, stopped, or a state we do not know).
    Abandon(Failure),
}

/// What to do given the new instance's state.
pub fn instance_step(instance_id: &str, state: &InstanceState) -> InstanceStep {
    match state {
        InstanceState::Pending => InstanceStep::Wait,
        InstanceState::Running => InstanceStep::Ready,
        gone if gone.is_gone() => InstanceStep::Gone(format!(
            "instance {instance_id} is {gone} (terminated before it was healed)"
        )),
        other => InstanceStep::Abandon(Failure::new(format!(
            "instance {instance_id} is {other}, not pending or running"
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Member,
    NotMember(String),
    /// No `aws:autoscaling:groupName` tag: ask Auto Scaling (DescribeAutoScalingInstances).
    Unknown,
}

/// Membership from the instance's `aws:autoscaling:groupName` tag. Tags with the `aws:` prefix
/// are reserved to AWS, so a present tag is trustworthy.
pub fn membership_from_tag(tag: Option<&str>, group: &str) -> Membership {
    match tag {
        Some(g) if g == group => Membership::Member,
        Some(g) => Membership::NotMember(format!("the instance belongs to group {g:?}")),
        None => Membership::Unknown,
    }
}

/// Membership from DescribeAutoScalingInstances (`None`: Auto Scaling does not know it).
pub fn membership_from_group(actual: Option<&str>, group: &str) -> Membership {
    match actual {
        Some(g) if g == group => Membership::Member,
        Some(g) => {
            Membership::NotMember(format!("Auto Scaling places the instance in group {g:?}"))
        }
        None => Membership::NotMember("the instance is in no Auto Scaling group".into()),
    }
}

// --- The data volume -------------------------------------------------------------------

/// EC2 volume states (`VolumeState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
    Other(String),
}

impl VolumeState {
    pub fn parse(s: &str) -> VolumeState {
        match s {
            "creating" => VolumeState::Creating,
            "available" => VolumeState::Available,
            "in-use" => VolumeState::InUse,
            "deleting" => VolumeState::Deleting,
            "deleted" => VolumeState::Deleted,
            "error" => VolumeState::Error,
            other => VolumeState::Other(other.to_string()),
        }
    }
}

/// EC2 attachment states (`VolumeAttachmentState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
    Detached,
    Busy,
    Other(String),
}

impl AttachmentState {
    pub fn parse(s: &str) -> AttachmentState {
        match s {
            "attaching" => AttachmentState::Attaching,
            "attached" => AttachmentState::Attached,
            "detaching" => AttachmentState::Detaching,
            "detached" => AttachmentState::Detached,
            "busy" => AttachmentState::Busy,
            other => AttachmentState::Other(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub instance_id: String,
    pub state: AttachmentState,
    pub device: Option<String>,
}

/// What DescribeVolumes said about the data volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFacts {
    pub volume_id: String,
    pub state: VolumeState,
    pub availability_zone: String,
    pub attachments: Vec<Attachment>,
    /// The volume's tags (the stack's lineage, which its snapshots carry on).
    pub tags: Vec<(String, String)>,
}

/// The instance being healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance_id: String,
    pub availability_zone: String,
}

/// The state of the instance that holds the volume (or the network interface), as looked up
/// after a [`VolumeAction::CheckHolder`] (or [`InterfaceAction::CheckHolder`]). `None` state:
/// EC2 no longer knows the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub instance_id: String,
    pub state: Option<InstanceState>,
}

impl Holder {
    /// Going away: shutting-down, terminated, stopping, stopped, or gone from EC2. What it
    /// holds will be let go (a stopped holder keeps its volumes and interfaces until it is
    /// terminated, which is how Auto Scaling replaces it), so it is worth waiting for. Any
    /// other state (pending, running, one we do not know) is a live machine, which is never
    /// forced to let go.
    pub fn is_departing(&self) -> bool {
        matches!(
            self.state,
            None | Some(
                InstanceState::ShuttingDown
                    | InstanceState::Terminated
                    | InstanceState::Stopping
                    | InstanceState::Stopped
            )
        )
    }

    /// The state for messages: "gone" when EC2 no longer knows the instance.
    pub fn state_name(&self) -> &str {
        self.state.as_ref().map_or("gone", InstanceState::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeAction {
    /// Attached to the target already: nothing to do (a repeated event, or done before).
    AttachedHere,
    /// Available: call AttachVolume.
    Attach,
    /// Something is in progress (attach here, creation, EC2's views settling): poll.
    Wait(String),
    /// Another instance still holds the volume and is going away (shutting down, stopped,
    /// or its attachment detaching): poll, for as long as it takes — across invocations if
    /// need be — since the new instance can be healed once it lets go. `known_departing`:
    /// the holder itself was seen going away (not only its attachment detaching), so its
    /// address may be taken over now.
    WaitForHolder {
        why: String,
        known_departing: bool,
    },
    /// Attached to this other instance: look up its state, then decide again with it.
    CheckHolder(String),
    Abandon(Failure),
}

/// The next step for the data volume.
///
/// A volume attached to another instance is waited for only while that instance is going
/// away (shutting-down, terminated, stopping, stopped — a stopped holder keeps its volumes
/// until it is terminated, which is how Auto Scaling replaces it) or while the attachment is
/// detaching. A running or pending holder is never forced off: that would yank a mounted
/// filesystem from a live machine; the heal is abandoned with the reason instead.
pub fn next_volume_action(
    vol: &VolumeFacts,
    target: &Target,
    holder: Option<&Holder>,
) -> VolumeAction {
    if vol.availability_zone != target.availability_zone {
        return VolumeAction::Abandon(Failure::new(format!(
            "volume {} is in {} but instance {} is in {}: EBS volumes attach only within their \
             availability zone (InvalidVolume.ZoneMismatch)",
            vol.volume_id, vol.availability_zone, target.instance_id, target.availability_zone
        )));
    }
    match &vol.state {
        VolumeState::Deleting | VolumeState::Deleted | VolumeState::Error => {
            return VolumeAction::Abandon(Failure::new(format!(
                "volume {} is {:?}",
                vol.volume_id, vol.state
            )));
        }
        VolumeState::Other(s) => {
            return VolumeAction::Abandon(Failure::new(format!(
                "volume {} is in unknown state {s:?}",
                vol.volume_id
            )));
        }
        VolumeState::Creating | VolumeState::Available | VolumeState::InUse => {}
    }
    if let Some(here) = vol
        .attachments
        .iter()
        .find(|a| a.instance_id == target.instance_id)
    {
        return match &here.state {
            AttachmentState::Attached => VolumeAction::AttachedHere,
            AttachmentState::Attaching | AttachmentState::Busy => {
                VolumeAction::Wait("attaching to this instance".into())
            }
            AttachmentState::Detaching | AttachmentState::Detached => {
                VolumeAction::Wait("detaching from this instance; will attach again".into())
            }
            AttachmentState::Other(s) => VolumeAction::Wait(format!("attachment here is {s:?}")),
        };
    }
    for other in &vol.attachments {
        match &other.state {
            AttachmentState::Detaching | AttachmentState::Detached => continue,
            _ => {}
        }
        let Some(holder) = holder.filter(|h| h.instance_id == other.instance_id) else {
            return VolumeAction::CheckHolder(other.instance_id.clone());
        };
        let state = holder.state_name();
        if holder.is_departing() {
            return VolumeAction::WaitForHolder {
                why: format!(
                    "held by instance {} which is {state}: waiting for the volume to be released",
                    other.instance_id
                ),
                known_departing: true,
            };
        }
        return VolumeAction::Abandon(Failure::new(format!(
            "volume {} is attached to instance {} which is {state}; it is never forced \
             off a live instance (detach it, or terminate that instance, then let the \
             group launch again)",
            vol.volume_id, other.instance_id
        )));
    }
    if !vol.attachments.is_empty() {
        let who: Vec<&str> = vol
            .attachments
            .iter()
            .map(|a| a.instance_id.as_str())
            .collect();
        return VolumeAction::WaitForHolder {
            why: format!("detaching from {}", who.join(", ")),
            known_departing: false,
        };
    }
    match vol.state {
        VolumeState::Available => VolumeAction::Attach,
        VolumeState::Creating => VolumeAction::Wait("the volume is being created".into()),
        // in-use with no attachment listed: EC2's views have not converged yet.
        _ => VolumeAction::Wait("in-use without an attachment (settling)".into()),
    }
}

// --- The persistent network interface (opt-in) -----------------------------------------

/// The device index the persistent interface is attached at: the first one after the
/// instance's own primary interface (index 0).
pub const INTERFACE_DEVICE_INDEX: i32 = 1;

/// EC2 network interface statuses (`NetworkInterfaceStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceStatus {
    Available,
    Attaching,
    InUse,
    Detaching,
    /// A branch interface of a trunk (ENI trunking): never one the provider creates.
    Associated,
    Other(String),
}

impl InterfaceStatus {
    pub fn parse(s: &str) -> InterfaceStatus {
        match s {
            "available" => InterfaceStatus::Available,
            "attaching" => InterfaceStatus::Attaching,
            "in-use" => InterfaceStatus::InUse,
            "detaching" => InterfaceStatus::Detaching,
            "associated" => InterfaceStatus::Associated,
            other => InterfaceStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InterfaceStatus::Available => "available",
            InterfaceStatus::Attaching => "attaching",
            InterfaceStatus::InUse => "in-use",
            InterfaceStatus::Detaching => "detaching",
            InterfaceStatus::Associated => "associated",
            InterfaceStatus::Other(s) => s,
        }
    }
}

/// The interface's attachment (`NetworkInterfaceAttachment`); its states are the volume's
/// (`attaching`, `attached`, `detaching`, `detached`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAttachment {
    /// `None`: EC2 names no instance (an attachment it has not filled in yet).
    pub instance_id: Option<String>,
    pub state: AttachmentState,
    pub device_index: Option<i32>,
}

/// What DescribeNetworkInterfaces said about the persistent interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceFacts {
    pub interface_id: String,
    pub status: InterfaceStatus,
    pub availability_zone: String,
    pub private_ip: Option<String>,
    pub mac_address: Option<String>,
    pub attachment: Option<InterfaceAttachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceAction {
    /// Attached to the target already (a repeated event, or done before). At any device
    /// index: the interface, its address and its IP are on this instance, which is what the
    /// heal is for; `heal.rs` logs an index other than [`INTERFACE_DEVICE_INDEX`].
    AttachedHere {
        device_index: Option<i32>,
    },
    /// Available: call AttachNetworkInterface (device index [`INTERFACE_DEVICE_INDEX`]).
    Attach,
    /// Something is in progress (attach here, EC2's views settling): poll.
    Wait(String),
    /// Another instance still holds the interface and is going away, or the attachment is
    /// detaching: poll, across invocations if need be, as for the volume.
    WaitForHolder(String),
    /// Attached to this other instance: look up its state, then decide again with it.
    CheckHolder(String),
    Abandon(Failure),
}

/// The next step for the persistent network interface; `None` facts: EC2 does not know
/// `interface_id` (InvalidNetworkInterfaceID.NotFound).
///
/// The volume's rules ([`next_volume_action`]): an interface attached to another instance is
/// waited for only while that instance is going away ([`Holder::is_departing`]) or while the
/// attachment is detaching; a running or pending holder is never forced off (its traffic,
/// and the address that follows the interface, would be cut from a live machine): the heal
/// is abandoned with the reason instead. An interface lives in one subnet, so it attaches
/// only to instances in that subnet's availability zone.
pub fn next_interface_action(
    eni: Option<&InterfaceFacts>,
    interface_id: &str,
    target: &Target,
    holder: Option<&Holder>,
) -> InterfaceAction {
    let Some(eni) = eni else {
        return InterfaceAction::Abandon(Failure::new(format!(
            "network interface {interface_id} does not exist \
             (InvalidNetworkInterfaceID.NotFound): was it deleted outside Terraform?"
        )));
    };
    if eni.availability_zone != target.availability_zone {
        return InterfaceAction::Abandon(Failure::new(format!(
            "network interface {} is in {} but instance {} is in {}: a network interface \
             attaches only to instances in its subnet's availability zone",
            eni.interface_id, eni.availability_zone, target.instance_id, target.availability_zone
        )));
    }
    match &eni.status {
        InterfaceStatus::Associated | InterfaceStatus::Other(_) => {
            return InterfaceAction::Abandon(Failure::new(format!(
                "network interface {} is {:?}, which no instance can attach",
                eni.interface_id,
                eni.status.as_str()
            )));
        }
        InterfaceStatus::Available
        | InterfaceStatus::Attaching
        | InterfaceStatus::InUse
        | InterfaceStatus::Detaching => {}
    }
    // A detached attachment still listed on an available interface is history: attach.
    let attachment = eni.attachment.as_ref().filter(|a| {
        !(a.state == AttachmentState::Detached && eni.status == InterfaceStatus::Available)
    });
    let Some(att) = attachment else {
        return match eni.status {
            InterfaceStatus::Available => InterfaceAction::Attach,
            // in-use, attaching or detaching with no attachment listed: EC2's views have not
            // converged yet.
            _ => InterfaceAction::Wait(format!(
                "{} without an attachment (settling)",
                eni.status.as_str()
            )),
        };
    };
    let Some(holder_id) = att.instance_id.as_deref() else {
        return InterfaceAction::Wait(format!(
            "an attachment that names no instance ({:?}; settling)",
            att.state
        ));
    };
    if holder_id == target.instance_id {
        return match &att.state {
            AttachmentState::Attached => InterfaceAction::AttachedHere {
                device_index: att.device_index,
            },
            AttachmentState::Attaching | AttachmentState::Busy => {
                InterfaceAction::Wait("attaching to this instance".into())
            }
            AttachmentState::Detaching | AttachmentState::Detached => {
                InterfaceAction::Wait("detaching from this instance; will attach again".into())
            }
            AttachmentState::Other(s) => InterfaceAction::Wait(format!("attachment here is {s:?}")),
        };
    }
    // As for the volume: a detaching attachment is being let go, whoever the holder is.
    if matches!(
        att.state,
        AttachmentState::Detaching | AttachmentState::Detached
    ) {
        return InterfaceAction::WaitForHolder(format!("detaching from {holder_id}"));
    }
    let Some(holder) = holder.filter(|h| h.instance_id == holder_id) else {
        return InterfaceAction::CheckHolder(holder_id.to_string());
    };
    let state = holder.state_name();
    if holder.is_departing() {
        return InterfaceAction::WaitForHolder(format!(
            "held by instance {holder_id} which is {state}: waiting for the interface to be \
             released"
        ));
    }
    InterfaceAction::Abandon(Failure::new(format!(
        "network interface {} is attached to instance {holder_id} which is {state}; it is \
         never forced off a live instance (detach it, or terminate that instance, then let \
         the group launch again)",
        eni.interface_id
    )))
}

// --- The Elastic IP --------------------------------------------------------------------

/// What DescribeAddresses said about the Elastic IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFacts {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub instance_id: Option<String>,
    /// The interface the address is on. EC2 also names the interface's instance in
    /// `instance_id` while the interface is attached.
    pub network_interface_id: Option<String>,
    pub association_id: Option<String>,
}

/// Where the Elastic IP belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressTarget<'a> {
    /// The new instance (its primary interface): the default.
    Instance(&'a str),
    /// The persistent network interface (`AUTOHEAL_NETWORK_INTERFACE_ID`): the address
    /// follows the interface from instance to instance.
    Interface(&'a str),
}

/// Where the Elastic IP is, seen from where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPlace {
    Here,
    /// On another instance or interface (named).
    Elsewhere(String),
    /// Not associated (yet, when just associated: DescribeAddresses lags).
    Nowhere,
}

pub fn address_place(addr: &AddressFacts, target: AddressTarget<'_>) -> AddressPlace {
    match target {
        AddressTarget::Instance(id) => match addr.instance_id.as_deref() {
            Some(i) if i == id => AddressPlace::Here,
            Some(other) => AddressPlace::Elsewhere(format!("instance {other}")),
            None => AddressPlace::Nowhere,
        },
        // Only the interface counts: on the right instance through another of its
        // interfaces, the address would not follow the next hand-over.
        AddressTarget::Interface(eni) => {
            match (
                addr.network_interface_id.as_deref(),
                addr.instance_id.as_deref(),
            ) {
                (Some(n), _) if n == eni => AddressPlace::Here,
                (Some(other), _) => AddressPlace::Elsewhere(format!("network interface {other}")),
                (None, Some(i)) => AddressPlace::Elsewhere(format!("instance {i}")),
                (None, None) => AddressPlace::Nowhere,
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressAction {
    AssociatedHere,
    /// Unassociated, or associated elsewhere (the old instance, another interface):
    /// AssociateAddress with AllowReassociation, then verify.
    Associate,
}

pub fn next_address_action(addr: &AddressFacts, target: AddressTarget<'_>) -> AddressAction {
    if address_place(addr, target) == AddressPlace::Here {
        AddressAction::AssociatedHere
    } else {
        AddressAction::Associate
    }
}

/// Whether to associate the address while the volume's departing holder lets the volume go
/// ("egress first": the new instance can reach out during the hand-off). Only when the
/// address goes on the instance. With a persistent interface the address is on the
/// interface, which that same holder still has: the new instance gains nothing before the
/// interface comes over (the interface step then finds the address in place), and
/// associating it with the instance would pull it off the interface it must follow.
pub fn take_address_early(known_departing: bool, interface_mode: bool) -> bool {
    known_departing && !interface_mode
}

/// How far the volume's step has come, as far as the address is concerned. Ordered: a later
/// stage is more than an earlier one, and the heal only ever moves forward through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum VolumeProgress {
    /// Nothing known yet, or a holder not known to be going away: its state not looked up,
    /// its attachment merely detaching (it may be a live instance someone detached by hand),
    /// or a live instance (the heal then abandons).
    #[default]
    Unsettled,
    /// Another instance holds the volume and was seen going away
    /// ([`VolumeAction::WaitForHolder`] with `known_departing`).
    HolderDeparting,
    /// AttachVolume for this instance was accepted: EC2 gave the volume to this instance, so
    /// no other instance holds it.
    AttachAccepted,
    /// Attached to this instance.
    AttachedHere,
}

/// What the address step waits for before it may move the address (the volume and interface
/// steps, which run beside it, report into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressGate {
    pub volume: VolumeProgress,
    /// Interface mode: the persistent interface is attached to this instance.
    pub interface_attached: bool,
}

impl AddressGate {
    /// Moves the volume's progress forward to `to` (never back); whether it changed.
    pub fn advance(&mut self, to: VolumeProgress) -> bool {
        if to > self.volume {
            self.volume = to;
            true
        } else {
            false
        }
    }

    /// Whether AssociateAddress may now move the address to where it belongs (an address
    /// already there moves nowhere and waits for nothing).
    ///
    /// The address goes with the volume: it may leave another instance only once the volume
    /// shows that no live instance holds the stack, i.e. the volume's holder is going away
    /// (early, onto the instance only: [`take_address_early`]) or the volume is this
    /// instance's (AttachVolume accepted, or attached). A live holder never gets that far
    /// (the heal abandons instead), so it never loses its address. With a persistent
    /// interface the address goes on the interface, so also only once the interface is
    /// attached here: the interface's own holder rules have then let it come over.
    pub fn address_may_move(&self, interface_mode: bool) -> bool {
        match self.volume {
            VolumeProgress::Unsettled => false,
            VolumeProgress::HolderDeparting => take_address_early(true, interface_mode),
            VolumeProgress::AttachAccepted | VolumeProgress::AttachedHere => {
                !interface_mode || self.interface_attached
            }
        }
    }
}

// --- Completing the lifecycle action ---------------------------------------------------

/// Result sent with CompleteLifecycleAction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleResult {
    Continue,
    Abandon,
}

impl LifecycleResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleResult::Continue => "CONTINUE",
            LifecycleResult::Abandon => "ABANDON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "i-0000000000000000a";
    const OLD: &str = "i-0000000000000000b";

    fn target() -> Target {
        Target {
            instance_id: ME.into(),
            availability_zone: "eu-west-1a".into(),
        }
    }

    fn volume(state: &str, attachments: &[(&str, &str)]) -> VolumeFacts {
        VolumeFacts {
            volume_id: "vol-0123abcd".into(),
            state: VolumeState::parse(state),
            availability_zone: "eu-west-1a".into(),
            attachments: attachments
                .iter()
                .map(|(i, s)| Attachment {
                    instance_id: i.to_string(),
                    state: AttachmentState::parse(s),
                    device: Some("/dev/sdf".into()),
                })
                .collect(),
            tags: Vec::new(),
        }
    }

    fn holder(state: Option<&str>) -> Holder {
        Holder {
            instance_id: OLD.into(),
            state: state.map(InstanceState::parse),
        }
    }

    fn is_wait(a: &VolumeAction) -> bool {
        matches!(a, VolumeAction::Wait(_))
    }

    /// The wait that may outlast the invocation (and hands the address over first).
    fn is_wait_for_holder(a: &VolumeAction, departing: bool) -> bool {
        matches!(a, VolumeAction::WaitForHolder { known_departing, .. } if *known_departing == departing)
    }

    #[test]
    fn available_volume_is_attached() {
        assert_eq!(
            next_volume_action(&volume("available", &[]), &target(), None),
            VolumeAction::Attach
        );
    }

    #[test]
    fn attached_here_is_skipped() {
        let v = volume("in-use", &[(ME, "attached")]);
        assert_eq!(
            next_volume_action(&v, &target(), None),
            VolumeAction::AttachedHere
        );
        assert!(is_wait(&next_volume_action(
            &volume("in-use", &[(ME, "attaching")]),
            &target(),
            None
        )));
    }

    #[test]
    fn holder_is_looked_up_before_deciding() {
        let v = volume("in-use", &[(OLD, "attached")]);
        assert_eq!(
            next_volume_action(&v, &target(), None),
            VolumeAction::CheckHolder(OLD.into())
        );
        // A holder fact about some other instance does not count.
        let stale = Holder {
            instance_id: "i-0000000000000000c".into(),
            state: Some(InstanceState::Terminated),
        };
        assert_eq!(
            next_volume_action(&v, &target(), Some(&stale)),
            VolumeAction::CheckHolder(OLD.into())
        );
    }

    #[test]
    fn held_by_a_departing_instance_waits() {
        let v = volume("in-use", &[(OLD, "attached")]);
        for state in [
            Some("shutting-down"),
            Some("terminated"),
            Some("stopping"),
            Some("stopped"),
            None,
        ] {
            let a = next_volume_action(&v, &target(), Some(&holder(state)));
            assert!(is_wait_for_holder(&a, true), "{state:?}: {a:?}");
        }
    }

    #[test]
    fn detaching_waits_without_looking_up_the_holder() {
        for v in [
            volume("in-use", &[(OLD, "detaching")]),
            volume("in-use", &[(OLD, "detached")]),
        ] {
            let a = next_volume_action(&v, &target(), None);
            assert!(is_wait_for_holder(&a, false), "{a:?}");
        }
    }

    #[test]
    fn a_live_holder_is_never_forced_off() {
        let v = volume("in-use", &[(OLD, "attached")]);
        for state in ["running", "pending"] {
            match next_volume_action(&v, &target(), Some(&holder(Some(state)))) {
                VolumeAction::Abandon(f) => {
                    assert!(
                        f.reason.contains(OLD) && f.reason.contains(state),
                        "{}",
                        f.reason
                    )
                }
                other => panic!("{state}: {other:?}"),
            }
        }
        // Also while it is still attaching there.
        let v = volume("in-use", &[(OLD, "attaching")]);
        assert!(matches!(
            next_volume_action(&v, &target(), Some(&holder(Some("running")))),
            VolumeAction::Abandon(_)
        ));
    }

    #[test]
    fn other_zone_is_abandoned() {
        let mut v = volume("available", &[]);
        v.availability_zone = "eu-west-1b".into();
        match next_volume_action(&v, &target(), None) {
            VolumeAction::Abandon(f) => assert!(f.reason.contains("ZoneMismatch"), "{}", f.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_or_settling_volumes() {
        for state in ["deleting", "deleted", "error", "exploded"] {
            let a = next_volume_action(&volume(state, &[]), &target(), None);
            assert!(matches!(a, VolumeAction::Abandon(_)), "{state}: {a:?}");
        }
        assert!(is_wait(&next_volume_action(
            &volume("creating", &[]),
            &target(),
            None
        )));
        assert!(is_wait(&next_volume_action(
            &volume("in-use", &[]),
            &target(),
            None
        )));
        // Detaching from this very instance: wait, then attach again.
        assert!(is_wait(&next_volume_action(
            &volume("in-use", &[(ME, "detaching")]),
            &target(),
            None
        )));
    }

    fn address(instance: Option<&str>, eni: Option<&str>) -> AddressFacts {
        AddressFacts {
            allocation_id: "eipalloc-0123abcd".into(),
            public_ip: Some("203.0.113.7".into()),
            instance_id: instance.map(str::to_string),
            network_interface_id: eni.map(str::to_string),
            association_id: (instance.is_some() || eni.is_some())
                .then(|| "eipassoc-0123abcd".to_string()),
        }
    }

    #[test]
    fn address_here_is_skipped_elsewhere_is_associated() {
        let here = AddressTarget::Instance(ME);
        let a = address(Some(ME), Some("eni-0000000a"));
        assert_eq!(next_address_action(&a, here), AddressAction::AssociatedHere);
        let a = address(Some(OLD), Some("eni-0000000b"));
        assert_eq!(next_address_action(&a, here), AddressAction::Associate);
        assert_eq!(
            address_place(&a, here),
            AddressPlace::Elsewhere(format!("instance {OLD}"))
        );
        let a = address(None, None);
        assert_eq!(next_address_action(&a, here), AddressAction::Associate);
        assert_eq!(address_place(&a, here), AddressPlace::Nowhere);
    }

    #[test]
    fn address_follows_the_interface_in_interface_mode() {
        let target = AddressTarget::Interface(ENI);
        // On the interface: done, whichever instance has the interface (or none).
        for instance in [Some(ME), Some(OLD), None] {
            let a = address(instance, Some(ENI));
            assert_eq!(
                address_place(&a, target),
                AddressPlace::Here,
                "{instance:?}"
            );
            assert_eq!(
                next_address_action(&a, target),
                AddressAction::AssociatedHere
            );
        }
        // On this very instance, but through its primary interface: not where it must be.
        let a = address(Some(ME), Some("eni-0000000a"));
        assert_eq!(
            address_place(&a, target),
            AddressPlace::Elsewhere("network interface eni-0000000a".into())
        );
        assert_eq!(next_address_action(&a, target), AddressAction::Associate);
        // An instance without an interface named: elsewhere too.
        let a = address(Some(OLD), None);
        assert_eq!(
            address_place(&a, target),
            AddressPlace::Elsewhere(format!("instance {OLD}"))
        );
        let a = address(None, None);
        assert_eq!(address_place(&a, target), AddressPlace::Nowhere);
        assert_eq!(next_address_action(&a, target), AddressAction::Associate);
    }

    #[test]
    fn the_address_is_taken_early_only_onto_the_instance() {
        assert!(take_address_early(true, false));
        assert!(!take_address_early(false, false));
        // The address is on the interface the departing holder still has.
        assert!(!take_address_early(true, true));
        assert!(!take_address_early(false, true));
    }

    fn gate(volume: VolumeProgress, interface_attached: bool) -> AddressGate {
        AddressGate {
            volume,
            interface_attached,
        }
    }

    #[test]
    fn the_address_waits_until_the_volume_has_no_live_holder() {
        use VolumeProgress::*;
        // Without an interface: from the moment the holder is seen going away.
        for (progress, open) in [
            (Unsettled, false),
            (HolderDeparting, true),
            (AttachAccepted, true),
            (AttachedHere, true),
        ] {
            for interface_attached in [false, true] {
                assert_eq!(
                    gate(progress, interface_attached).address_may_move(false),
                    open,
                    "{progress:?}"
                );
            }
        }
        // With one: only once the volume is this instance's and the interface is here.
        for (progress, attached, open) in [
            (Unsettled, false, false),
            (Unsettled, true, false),
            (HolderDeparting, false, false),
            (HolderDeparting, true, false),
            (AttachAccepted, false, false),
            (AttachAccepted, true, true),
            (AttachedHere, false, false),
            (AttachedHere, true, true),
        ] {
            assert_eq!(
                gate(progress, attached).address_may_move(true),
                open,
                "{progress:?}, interface attached: {attached}"
            );
        }
        assert_eq!(AddressGate::default(), gate(Unsettled, false));
    }

    #[test]
    fn the_gate_only_moves_forward() {
        use VolumeProgress::*;
        let mut g = AddressGate::default();
        assert!(g.advance(HolderDeparting));
        assert!(!g.advance(HolderDeparting));
        assert!(!g.advance(Unsettled));
        assert_eq!(g.volume, HolderDeparting);
        assert!(g.advance(AttachedHere));
        for earlier in [Unsettled, HolderDeparting, AttachAccepted] {
            assert!(!g.advance(earlier));
            assert_eq!(g.volume, AttachedHere);
        }
    }

    // --- The persistent network interface ---

    const ENI: &str = "eni-0123456789abcdef0";

    fn interface(status: &str, attachment: Option<(Option<&str>, &str, i32)>) -> InterfaceFacts {
        InterfaceFacts {
            interface_id: ENI.into(),
            status: InterfaceStatus::parse(status),
            availability_zone: "eu-west-1a".into(),
            private_ip: Some("10.0.1.10".into()),
            mac_address: Some("02:00:00:00:00:01".into()),
            attachment: attachment.map(|(instance, state, index)| InterfaceAttachment {
                instance_id: instance.map(str::to_string),
                state: AttachmentState::parse(state),
                device_index: Some(index),
            }),
        }
    }

    fn next_eni(eni: &InterfaceFacts, holder: Option<&Holder>) -> InterfaceAction {
        next_interface_action(Some(eni), ENI, &target(), holder)
    }

    fn abandon_reason(a: InterfaceAction) -> String {
        match a {
            InterfaceAction::Abandon(f) => f.reason,
            other => panic!("not abandoned: {other:?}"),
        }
    }

    #[test]
    fn available_interface_is_attached() {
        assert_eq!(
            next_eni(&interface("available", None), None),
            InterfaceAction::Attach
        );
        // A detached attachment still listed on an available interface is history.
        assert_eq!(
            next_eni(
                &interface("available", Some((Some(OLD), "detached", 1))),
                None
            ),
            InterfaceAction::Attach
        );
    }

    #[test]
    fn interface_attached_here_is_skipped_at_any_index() {
        for index in [INTERFACE_DEVICE_INDEX, 2] {
            assert_eq!(
                next_eni(
                    &interface("in-use", Some((Some(ME), "attached", index))),
                    None
                ),
                InterfaceAction::AttachedHere {
                    device_index: Some(index)
                }
            );
        }
        for state in ["attaching", "detaching"] {
            let a = next_eni(&interface("in-use", Some((Some(ME), state, 1))), None);
            assert!(matches!(a, InterfaceAction::Wait(_)), "{state}: {a:?}");
        }
    }

    #[test]
    fn interface_holder_is_looked_up_before_deciding() {
        let eni = interface("in-use", Some((Some(OLD), "attached", 1)));
        assert_eq!(
            next_eni(&eni, None),
            InterfaceAction::CheckHolder(OLD.into())
        );
        let stale = Holder {
            instance_id: "i-0000000000000000c".into(),
            state: Some(InstanceState::Terminated),
        };
        assert_eq!(
            next_eni(&eni, Some(&stale)),
            InterfaceAction::CheckHolder(OLD.into())
        );
    }

    #[test]
    fn interface_held_by_a_departing_instance_waits() {
        let eni = interface("in-use", Some((Some(OLD), "attached", 1)));
        for state in [
            Some("shutting-down"),
            Some("terminated"),
            Some("stopping"),
            Some("stopped"),
            None,
        ] {
            let a = next_eni(&eni, Some(&holder(state)));
            assert!(
                matches!(&a, InterfaceAction::WaitForHolder(why) if why.contains(OLD)),
                "{state:?}: {a:?}"
            );
        }
    }

    #[test]
    fn interface_detaching_waits_without_looking_up_the_holder() {
        for eni in [
            interface("detaching", Some((Some(OLD), "detaching", 1))),
            interface("in-use", Some((Some(OLD), "detached", 1))),
        ] {
            let a = next_eni(&eni, None);
            assert!(matches!(a, InterfaceAction::WaitForHolder(_)), "{a:?}");
        }
    }

    #[test]
    fn a_live_interface_holder_is_never_forced_off() {
        for (state, attachment) in [
            ("running", "attached"),
            ("pending", "attached"),
            ("running", "attaching"),
        ] {
            let eni = interface("in-use", Some((Some(OLD), attachment, 1)));
            let reason = abandon_reason(next_eni(&eni, Some(&holder(Some(state)))));
            assert!(
                reason.contains(OLD) && reason.contains(state) && reason.contains(ENI),
                "{reason}"
            );
        }
    }

    #[test]
    fn interface_in_another_zone_is_abandoned() {
        let mut eni = interface("available", None);
        eni.availability_zone = "eu-west-1b".into();
        let reason = abandon_reason(next_eni(&eni, None));
        assert!(
            reason.contains("eu-west-1b") && reason.contains("availability zone"),
            "{reason}"
        );
    }

    #[test]
    fn missing_interface_is_abandoned_naming_it() {
        let reason = abandon_reason(next_interface_action(None, ENI, &target(), None));
        assert!(
            reason.contains(ENI) && reason.contains("InvalidNetworkInterfaceID.NotFound"),
            "{reason}"
        );
    }

    #[test]
    fn broken_or_settling_interfaces() {
        for status in ["associated", "exploded"] {
            let reason = abandon_reason(next_eni(&interface(status, None), None));
            assert!(reason.contains(status), "{reason}");
        }
        for eni in [
            interface("in-use", None),
            interface("attaching", None),
            interface("in-use", Some((None, "attached", 1))),
        ] {
            let a = next_eni(&eni, None);
            assert!(matches!(a, InterfaceAction::Wait(_)), "{eni:?}: {a:?}");
        }
    }

    #[test]
    fn departing_holders() {
        for (state, departing) in [
            (Some("shutting-down"), true),
            (Some("terminated"), true),
            (Some("stopping"), true),
            (Some("stopped"), true),
            (None, true),
            (Some("pending"), false),
            (Some("running"), false),
            (Some("weird"), false),
        ] {
            assert_eq!(holder(state).is_departing(), departing, "{state:?}");
        }
        assert_eq!(holder(None).state_name(), "gone");
    }

    #[test]
    fn the_new_instance_is_waited_for_until_running() {
        assert_eq!(
            instance_step(ME, &InstanceState::Pending),
            InstanceStep::Wait
        );
        assert_eq!(
            instance_step(ME, &InstanceState::Running),
            InstanceStep::Ready
        );
        for s in ["shutting-down", "terminated"] {
            assert!(
                matches!(
                    instance_step(ME, &InstanceState::parse(s)),
                    InstanceStep::Gone(reason) if reason.contains(s) && reason.contains(ME)
                ),
                "{s}"
            );
        }
        for s in ["stopping", "stopped", "weird"] {
            assert!(
                matches!(
                    instance_step(ME, &InstanceState::parse(s)),
                    InstanceStep::Abandon(_)
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn membership() {
        assert_eq!(membership_from_tag(Some("web"), "web"), Membership::Member);
        assert!(matches!(
            membership_from_tag(Some("db"), "web"),
            Membership::NotMember(_)
        ));
        assert_eq!(membership_from_tag(None, "web"), Membership::Unknown);
        assert_eq!(
            membership_from_group(Some("web"), "web"),
            Membership::Member
        );
        assert!(matches!(
            membership_from_group(Some("db"), "web"),
            Membership::NotMember(_)
        ));
        assert!(matches!(
            membership_from_group(None, "web"),
            Membership::NotMember(_)
        ));
    }

    #[test]
    fn state_names_round_trip() {
        for s in [
            "pending",
            "running",
            "shutting-down",
            "terminated",
            "stopping",
            "stopped",
            "x",
        ] {
            assert_eq!(InstanceState::parse(s).as_str(), s);
        }
        assert_eq!(LifecycleResult::Continue.as_str(), "CONTINUE");
        assert_eq!(LifecycleResult::Abandon.as_str(), "ABANDON");
    }
}
