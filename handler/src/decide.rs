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
}

/// The instance being healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance_id: String,
    pub availability_zone: String,
}

/// The state of the instance that holds the volume, as looked up after a
/// [`VolumeAction::CheckHolder`]. `None` state: EC2 no longer knows the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub instance_id: String,
    pub state: Option<InstanceState>,
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
        match &holder.state {
            None
            | Some(InstanceState::ShuttingDown)
            | Some(InstanceState::Terminated)
            | Some(InstanceState::Stopping)
            | Some(InstanceState::Stopped) => {
                let state = holder.state.as_ref().map_or("gone", InstanceState::as_str);
                return VolumeAction::WaitForHolder {
                    why: format!(
                        "held by instance {} which is {state}: waiting for the volume to be released",
                        other.instance_id
                    ),
                    known_departing: true,
                };
            }
            Some(state) => {
                return VolumeAction::Abandon(Failure::new(format!(
                    "volume {} is attached to instance {} which is {state}; it is never forced \
                     off a live instance (detach it, or terminate that instance, then let the \
                     group launch again)",
                    vol.volume_id, other.instance_id
                )));
            }
        }
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

// --- The Elastic IP --------------------------------------------------------------------

/// What DescribeAddresses said about the Elastic IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressFacts {
    pub allocation_id: String,
    pub public_ip: Option<String>,
    pub instance_id: Option<String>,
    pub association_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressAction {
    AssociatedHere,
    /// Unassociated, or associated elsewhere (the old instance): AssociateAddress with
    /// AllowReassociation, then verify.
    Associate,
}

pub fn next_address_action(addr: &AddressFacts, instance_id: &str) -> AddressAction {
    if addr.instance_id.as_deref() == Some(instance_id) {
        AddressAction::AssociatedHere
    } else {
        AddressAction::Associate
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

    #[test]
    fn address_here_is_skipped_elsewhere_is_associated() {
        let mut a = AddressFacts {
            allocation_id: "eipalloc-0123abcd".into(),
            public_ip: Some("203.0.113.7".into()),
            instance_id: Some(ME.into()),
            association_id: Some("eipassoc-0123abcd".into()),
        };
        assert_eq!(next_address_action(&a, ME), AddressAction::AssociatedHere);
        a.instance_id = Some(OLD.into());
        assert_eq!(next_address_action(&a, ME), AddressAction::Associate);
        a.instance_id = None;
        a.association_id = None;
        assert_eq!(next_address_action(&a, ME), AddressAction::Associate);
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
