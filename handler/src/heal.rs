//! The heal of one launch: wait for the instance to run, check it belongs to the group,
//! attach the data volume, attach the persistent network interface (only with
//! `AUTOHEAL_NETWORK_INTERFACE_ID`), associate the Elastic IP, complete the lifecycle action.
//!
//! Steps, as named in the report and the logs: `wait_running`, `attach_volume`,
//! `attach_interface` (interface mode only), `associate_address`, `complete`. Without an
//! interface the address is associated with the instance, and may be associated early
//! ("egress first") while the volume's departing holder lets go; with one, the address
//! belongs on the interface (it follows the interface from instance to instance): the heal
//! attaches the interface at device index 1, waits for the attachment, then makes sure the
//! address is on the interface, and never takes the address early.
//!
//! What runs at the same time, and why that is safe (each group says more where it runs):
//!
//! * the first look (`Healer::first_look`): the new instance's first poll beside the first
//!   reads of the volume, the address and the interface. Reads only; nothing changes before
//!   the instance is confirmed in the group and running, as before.
//! * then three lanes (`Healer::heal_steps`): the volume, the interface (interface mode)
//!   and the address. The volume and the interface each keep their own holder rules; the
//!   address lane moves the address only when the [`AddressGate`] the other two lanes open
//!   allows it, so a live holder never loses its address, and the address goes on the
//!   interface only once the interface is attached here.
//! * `complete` only after all three lanes are done; a lane that stops (abandon, out of time
//!   while a holder goes away, the action gone) stops the others where they are.
//!
//! Every decision is made by `decide.rs` from facts `aws.rs` observed; this file only
//! sequences the calls, waits with [`Backoff`] inside the invocation's deadline, retries
//! throttling/5xx, and keeps the lifecycle hook alive with heartbeats when the work may outlast
//! it. Nothing mutating (attach, associate, heartbeat, complete) is ever called for an instance
//! not confirmed to be in the group.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_ec2::Client as Ec2Client;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::aws::{self, ActionRef, Clients, InstanceFacts, ACTIVE_VOLUME_TAG};
use crate::backoff::Backoff;
use crate::deadline::{epoch_ms, heartbeat_due, hook_remaining, sleep_within, work_deadline};
use crate::decide::{
    address_place, instance_step, membership_from_group, membership_from_tag, next_address_action,
    next_interface_action, next_volume_action, AddressAction, AddressFacts, AddressGate,
    AddressPlace, AddressTarget, Failure, Holder, InstanceStep, InterfaceAction, InterfaceFacts,
    LifecycleResult, Membership, Target, VolumeAction, VolumeFacts, VolumeProgress,
    INTERFACE_DEVICE_INDEX,
};
use crate::errors::{classify, AwsError, ErrorKind};
use crate::event::LaunchAction;
use crate::metrics::Outcome;
use crate::provenance;
use crate::settings::{Config, Features, Settings};

/// How long a just-launched instance may stay invisible to DescribeInstances before the id is
/// treated as bogus (EC2 is eventually consistent, but not for this long).
pub const NOT_FOUND_GRACE: Duration = Duration::from_secs(20);
/// Used when the hook's timeout cannot be read: the smallest AWS allows, so heartbeats are
/// sent early rather than late.
pub const FALLBACK_HOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// Re-associations tolerated when something else keeps moving the address away.
const MAX_ASSOCIATIONS: u32 = 3;
/// How long one call keeps retrying an access refusal before it counts as permanent. IAM is
/// eventually consistent: a policy the deploy just put may not be in force for seconds
/// ("Changes that I make are not always immediately visible", IAM User Guide); a refusal
/// that outlasts this is a real gap in the role's policy.
pub const ACCESS_REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// What a heal did, for the logs, the metric and the function's response.
#[derive(Debug, Clone, PartialEq)]
pub struct HealReport {
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub public_ip: Option<String>,
    /// Each finished step and how long it took.
    pub steps: Vec<(&'static str, Duration)>,
    /// The volume the heal served: the home volume, or after a failover the restored one
    /// (`None` when the heal stopped before choosing).
    pub volume_id: Option<String>,
}

/// The function's state across invocations: clients, settings and features (built once at
/// init) and the hook timeout once read.
#[derive(Debug)]
pub struct Healer {
    pub clients: Clients,
    pub settings: Settings,
    pub features: Features,
    hook_timeout: OnceLock<Duration>,
}

/// Why the heal stopped before CONTINUE.
#[derive(Debug)]
enum Stop {
    /// Give up: ABANDON (if the instance was confirmed a member).
    Abandon(Failure),
    /// Not ours: no call at all.
    NotMember(String),
    /// The lifecycle action vanished (heartbeat said so): nothing left to complete.
    ActionGone,
    /// The instance, confirmed ours, is shutting down or terminated: nothing to heal.
    InstanceGone(String),
    /// Out of this invocation's time while the holder of the volume (or of the network
    /// interface) is still going away: the instance can be healed, only later. The hook gets
    /// a heartbeat and the invocation fails, so Lambda delivers the event again (one and two
    /// minutes later, as many times as the function's event-invoke configuration allows)
    /// instead of a healthy instance being abandoned.
    Waiting(String),
}

/// What a wait does when the invocation runs out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenOutOfTime {
    /// Give up on the instance (ABANDON).
    Abandon,
    /// Keep the hook and hand over to Lambda's next delivery ([`Stop::Waiting`]).
    YieldToRetry,
}

/// A call that failed for good, or ran out of time while retrying.
#[derive(Debug)]
enum CallError {
    Aws(AwsError, ErrorKind),
    OutOfTime(Option<AwsError>),
}

impl CallError {
    fn failure(self, doing: &str) -> Failure {
        match self {
            CallError::Aws(e, _) => Failure::new(format!("{doing}: {e}")),
            CallError::OutOfTime(Some(e)) => {
                Failure::new(format!("{doing}: out of time retrying; last error {e}"))
            }
            CallError::OutOfTime(None) => Failure::new(format!("{doing}: out of time")),
        }
    }

    fn stop(self, doing: &str) -> Stop {
        Stop::Abandon(self.failure(doing))
    }
}

/// Calls `f` until it succeeds, fails with something other than throttling/5xx/transport
/// trouble, or the deadline comes. Each attempt is cut off at the deadline. An access
/// refusal is retried like throttling for [`ACCESS_REFUSAL_WINDOW`], then returned.
async fn call<T, F, Fut>(deadline: Instant, mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut backoff = Backoff::new();
    let mut refused_since: Option<Instant> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(CallError::OutOfTime(None));
        }
        let err = match tokio::time::timeout(remaining, f()).await {
            Err(_) => return Err(CallError::OutOfTime(None)),
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
        };
        let kind = classify(&err);
        if kind == ErrorKind::AccessRefused {
            let since = *refused_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= ACCESS_REFUSAL_WINDOW {
                return Err(CallError::Aws(err, kind));
            }
        } else if kind != ErrorKind::Retry {
            return Err(CallError::Aws(err, kind));
        }
        match sleep_within(Instant::now(), deadline, backoff.next_delay()) {
            Some(delay) => {
                warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "retrying");
                tokio::time::sleep(delay).await;
            }
            None => return Err(CallError::OutOfTime(Some(err))),
        }
    }
}

/// AssociateAddress onto `target`: the instance, or the persistent interface.
async fn associate(
    ec2: &Ec2Client,
    allocation_id: &str,
    target: AddressTarget<'_>,
) -> Result<Option<String>, AwsError> {
    match target {
        AddressTarget::Instance(id) => aws::associate_address(ec2, allocation_id, id).await,
        AddressTarget::Interface(eni) => {
            aws::associate_address_with_interface(ec2, allocation_id, eni).await
        }
    }
}

/// One heal's progress. Shared by the lanes that run at the same time (see
/// [`Healer::heal_steps`]), so what changes is behind a lock, which is never held across an
/// await.
struct Run<'a> {
    action: &'a LaunchAction,
    started: Instant,
    /// For waits and the heal's own calls; the rest of the invocation is kept for ABANDON.
    work_deadline: Instant,
    /// The invocation's deadline.
    deadline: Instant,
    state: Mutex<RunState>,
}

/// What a heal learns and records as it goes.
#[derive(Debug, Default)]
struct RunState {
    /// Confirmed to be an instance of the group: only then are mutating calls allowed.
    member: bool,
    hook_timeout: Option<Duration>,
    hook_expires: Option<Instant>,
    heartbeats_off: bool,
    steps: Vec<(&'static str, Duration)>,
    /// The volume chosen for this heal (home or restored).
    volume_id: Option<String>,
}

/// What the first look read beside the new instance's first poll, for each step's first
/// observation (`None`: not read, as the interface without interface mode).
#[derive(Debug, Default)]
struct FirstLook {
    volume: Option<Result<VolumeFacts, CallError>>,
    interface: Option<Result<Option<InterfaceFacts>, CallError>>,
    address: Option<Result<AddressFacts, CallError>>,
}

impl<'a> Run<'a> {
    fn state(&self) -> MutexGuard<'_, RunState> {
        // Nothing panics while holding it; were it poisoned, its plain data is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_member(&self) -> bool {
        self.state().member
    }

    /// Borrows the event, not the run, so the reference outlives any borrow of the run.
    fn action_ref(&self) -> ActionRef<'a> {
        let a: &'a LaunchAction = self.action;
        ActionRef {
            group: &a.group_name,
            hook: &a.hook_name,
            token: &a.token,
            instance_id: &a.instance_id,
        }
    }

    fn step_done(&self, step: &'static str, since: Instant, message: &str) {
        self.step_took(step, since.elapsed(), message);
    }

    fn step_took(&self, step: &'static str, took: Duration, message: &str) {
        self.state().steps.push((step, took));
        info!(step, duration_ms = took.as_millis() as u64, "{message}");
    }
}

impl Healer {
    pub fn new(clients: Clients, config: Config) -> Healer {
        Healer {
            clients,
            settings: config.settings,
            features: config.features,
            hook_timeout: OnceLock::new(),
        }
    }

    /// Heals the launch `action` before `deadline` (the invocation's). Never panics and always
    /// ends with a report; `Outcome::CompletionFailed` is the only one worth an invocation
    /// error (a retry of the event may then complete it).
    pub async fn heal(&self, action: &LaunchAction, deadline: Instant) -> HealReport {
        let now = Instant::now();
        let run = Run {
            action,
            started: now,
            work_deadline: work_deadline(now, deadline),
            deadline,
            state: Mutex::new(RunState::default()),
        };
        let result = self.heal_steps(&run).await;
        let member = run.is_member();
        let (outcome, reason, public_ip) = match result {
            Ok(public_ip) => match self.complete(&run, LifecycleResult::Continue).await {
                Ok(true) => (Outcome::Healed, None, public_ip),
                // No action to complete: a repeated event, unless the instance died after
                // the heal's last look and its action ended with it.
                Ok(false) => match self.terminated(&run).await {
                    Some(reason) => (Outcome::InstanceTerminated, Some(reason), None),
                    None => (
                        Outcome::AlreadyCompleted,
                        Some(
                            "the lifecycle action was already completed (a repeated event)".into(),
                        ),
                        public_ip,
                    ),
                },
                Err(e) => (Outcome::CompletionFailed, Some(e), public_ip),
            },
            Err(Stop::Abandon(f)) if !member => {
                // Never confirmed as ours: no ABANDON either. The hook's timeout applies.
                error!(reason = %f.reason, "heal failed before the instance was confirmed; not completing");
                (Outcome::Failed, Some(f.reason), None)
            }
            Err(Stop::Abandon(f)) => {
                error!(reason = %f.reason, "abandoning: the group will replace the instance");
                match self.complete(&run, LifecycleResult::Abandon).await {
                    Ok(true) => (Outcome::Abandoned, Some(f.reason), None),
                    // The action had ended: if with the instance (terminated while a call
                    // failed on it), that is no failure of the heal.
                    Ok(false) => match self.terminated(&run).await {
                        Some(reason) => (
                            Outcome::InstanceTerminated,
                            Some(format!("{reason}; the heal had stopped on: {}", f.reason)),
                            None,
                        ),
                        None => (Outcome::Abandoned, Some(f.reason), None),
                    },
                    Err(e) => (
                        Outcome::CompletionFailed,
                        Some(format!("{}; then {e}", f.reason)),
                        None,
                    ),
                }
            }
            Err(Stop::NotMember(reason)) => {
                warn!(reason = %reason, "instance is not in this function's group: nothing done");
                (Outcome::NotMember, Some(reason), None)
            }
            Err(Stop::InstanceGone(reason)) => {
                warn!(reason = %reason, "the instance is going away: nothing to heal");
                // ABANDON ends a hold AWS may still keep on the dying instance; an action
                // already ended with it is just as good.
                if let Err(e) = self.complete(&run, LifecycleResult::Abandon).await {
                    warn!(error = %e, "could not abandon the dying instance's action");
                }
                (Outcome::InstanceTerminated, Some(reason), None)
            }
            Err(Stop::Waiting(reason)) => match self.keep_hook(&run).await {
                Ok(()) => {
                    warn!(reason = %reason, "out of time while the old holder goes away: the hook is kept, Lambda's retry goes on waiting");
                    (Outcome::Waiting, Some(reason), None)
                }
                Err(()) => (
                    Outcome::ActionGone,
                    Some(format!(
                        "no active lifecycle action any more (while waiting: {reason})"
                    )),
                    None,
                ),
            },
            Err(Stop::ActionGone) => {
                warn!("the lifecycle action is gone (timed out or completed elsewhere): stopping");
                (
                    Outcome::ActionGone,
                    Some("no active lifecycle action any more".into()),
                    None,
                )
            }
        };
        let state = run
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        HealReport {
            outcome,
            reason,
            public_ip,
            steps: state.steps,
            volume_id: state.volume_id,
        }
    }

    async fn heal_steps(&self, run: &Run<'_>) -> Result<Option<String>, Stop> {
        let t = Instant::now();
        let (zone, active_volume, mut first) = self.wait_running(run).await?;
        run.step_done("wait_running", t, "instance is running and in the group");

        // After a failover the group's tag, propagated to the instance, names the restored
        // volume to serve: attached only once EBS's records prove it holds the stack's data.
        let home = self.settings.volume_id.as_str();
        let volume_id = match active_volume.filter(|v| v != home) {
            None => home.to_string(),
            Some(restored) => {
                let t = Instant::now();
                let group = self.settings.group_name.as_str();
                let proven = call(run.work_deadline, || {
                    provenance::prove(&self.clients.ec2, &restored, home, Some(&zone), group)
                })
                .await
                .map_err(|e| e.stop("checking the restored volume's origin"))?;
                if let Err(why) = proven {
                    return Err(Stop::Abandon(Failure::new(format!(
                        "the instance's {ACTIVE_VOLUME_TAG} names {restored}, which fails the provenance check: {why}; nothing attached"
                    ))));
                }
                run.step_done("prove_restored_volume", t, "restored volume proven");
                // The first look read the home volume: not the one to attach.
                first.volume = None;
                restored
            }
        };
        run.state().volume_id = Some(volume_id.clone());

        // A read of the first look that failed is reported now, before anything is changed,
        // in the order the steps used to make them (volume, interface, address): the heal
        // could not have finished without it, and nothing is attached to an instance about to
        // be abandoned.
        let FirstLook {
            volume,
            interface,
            address,
        } = first;
        let volume = volume
            .transpose()
            .map_err(|e| e.stop("describing the volume"))?;
        let interface = interface
            .transpose()
            .map_err(|e| e.stop("describing the network interface"))?;
        let address = address
            .transpose()
            .map_err(|e| e.stop("describing the address"))?;

        let target = Target {
            instance_id: run.action.instance_id.clone(),
            availability_zone: zone,
        };
        // Three lanes at once: the volume, the interface (interface mode) and the address.
        // Why that is safe:
        // - the volume and the interface are separate objects with separate holder rules
        //   (decide.rs): each lane waits for its own departing holder, never forces a live one
        //   off and abandons another zone, exactly as when they ran one after the other. A
        //   lane that stops stops the heal: the other is dropped between or during its calls,
        //   as a deadline cuts a call off, and the next delivery looks again (every step is
        //   idempotent). The interface can only have come to this instance from nobody or
        //   from a departing holder, so attaching it while the volume lane fails costs no
        //   live instance anything.
        // - the address lane reads the address at once but moves it only when the gate the
        //   two other lanes open allows it (AddressGate::address_may_move): the volume's
        //   holder is seen going away (the former "egress first", onto the instance only) or
        //   the volume is this instance's, and in interface mode the interface is attached
        //   here. A live holder stops the volume lane before any of that, so the gate stays
        //   shut and the holder keeps its address. An address already where it belongs
        //   moves nowhere and waits for nothing.
        // - CONTINUE comes only after all three are done.
        let interface_id = self.features.network_interface_id.as_deref();
        let gate = watch::Sender::new(AddressGate::default());
        let volume_lane = async {
            let t = Instant::now();
            self.ensure_volume(run, &target, &volume_id, volume, &gate)
                .await?;
            // Also when it was attached here from the start: the gate then opens now.
            gate.send_if_modified(|g| g.advance(VolumeProgress::AttachedHere));
            run.step_done("attach_volume", t, "volume attached");
            Ok::<(), Stop>(())
        };
        let interface_lane = async {
            let Some(interface_id) = interface_id else {
                return Ok(());
            };
            let t = Instant::now();
            self.ensure_interface(run, &target, interface_id, interface)
                .await?;
            gate.send_if_modified(|g| !std::mem::replace(&mut g.interface_attached, true));
            run.step_done("attach_interface", t, "network interface attached");
            Ok(())
        };
        let address_lane = self.ensure_address(run, address, gate.subscribe());
        let ((), (), public_ip) = tokio::try_join!(volume_lane, interface_lane, address_lane)?;
        Ok(public_ip)
    }

    /// The first poll of the new instance and, at the same time, the first reads of the volume,
    /// the address and (interface mode) the interface.
    ///
    /// Concurrent because none of these reads depends on another, and they are reads: nothing
    /// is attached, associated or completed before the instance is confirmed in the group and
    /// running, as when they were made one after the other. A forged instance id costs two
    /// more reads (three with an interface) and nothing else; each read retries on its own.
    async fn first_look(
        &self,
        run: &Run<'_>,
    ) -> (Result<Option<InstanceFacts>, CallError>, FirstLook) {
        let ec2 = &self.clients.ec2;
        let id = run.action.instance_id.as_str();
        let volume_id = self.settings.volume_id.as_str();
        let allocation_id = self.settings.allocation_id.as_str();
        let interface = async {
            match self.features.network_interface_id.as_deref() {
                Some(eni) => Some(
                    call(run.work_deadline, || {
                        aws::describe_network_interface(ec2, eni)
                    })
                    .await,
                ),
                None => None,
            }
        };
        let (instance, volume, address, interface) = tokio::join!(
            call(run.work_deadline, || aws::describe_instance(ec2, id)),
            call(run.work_deadline, || aws::describe_volume(ec2, volume_id)),
            call(run.work_deadline, || aws::describe_address(
                ec2,
                allocation_id
            )),
            interface,
        );
        let look = FirstLook {
            volume: Some(volume),
            interface,
            address: Some(address),
        };
        (instance, look)
    }

    /// Polls the instance until it runs; checks membership on the first sight of it.
    /// Returns its availability zone, and the first look's other reads when the very first
    /// poll found it running (a round trip older than reads made after it would be; after a
    /// wait they are stale, dropped, and each step reads again).
    async fn wait_running(
        &self,
        run: &Run<'_>,
    ) -> Result<(String, Option<String>, FirstLook), Stop> {
        let ec2 = &self.clients.ec2;
        let id = run.action.instance_id.as_str();
        let give_up_unseen = (run.started + NOT_FOUND_GRACE).min(run.work_deadline);
        let mut backoff = Backoff::new();
        let mut first = true;
        loop {
            let (instance, look) = if std::mem::take(&mut first) {
                self.first_look(run).await
            } else {
                let instance = call(run.work_deadline, || aws::describe_instance(ec2, id)).await;
                (instance, FirstLook::default())
            };
            let waiting_for = match instance {
                Ok(Some(facts)) => {
                    if !run.is_member() {
                        self.check_membership(run, facts.group_tag.as_deref())
                            .await?;
                        run.state().member = true;
                    }
                    match instance_step(id, &facts.state) {
                        InstanceStep::Ready => {
                            return match facts.availability_zone {
                                Some(zone) => Ok((zone, facts.active_volume, look)),
                                None => Err(Stop::Abandon(Failure::new(format!(
                                    "instance {id} has no availability zone"
                                )))),
                            }
                        }
                        InstanceStep::Gone(reason) => return Err(Stop::InstanceGone(reason)),
                        InstanceStep::Abandon(f) => return Err(Stop::Abandon(f)),
                        InstanceStep::Wait => {
                            format!("instance {id} to run (it is {})", facts.state)
                        }
                    }
                }
                Ok(None) | Err(CallError::Aws(_, ErrorKind::NotFoundYet)) => {
                    if !run.is_member() && Instant::now() >= give_up_unseen {
                        return Err(Stop::NotMember(format!(
                            "instance {id} is unknown to EC2 {}s after the invocation started",
                            NOT_FOUND_GRACE.as_secs()
                        )));
                    }
                    format!("instance {id} to be visible")
                }
                Err(e) => return Err(e.stop("describing the new instance")),
            };
            self.pause(run, &mut backoff, &waiting_for).await?;
        }
    }

    async fn check_membership(&self, run: &Run<'_>, tag: Option<&str>) -> Result<(), Stop> {
        let group = self.settings.group_name.as_str();
        let id = run.action.instance_id.as_str();
        let membership = match membership_from_tag(tag, group) {
            Membership::Unknown => {
                let asg = &self.clients.autoscaling;
                match call(run.work_deadline, || aws::instance_group(asg, id)).await {
                    Ok(actual) => membership_from_group(actual.as_deref(), group),
                    Err(e) => return Err(e.stop("checking the instance's group")),
                }
            }
            known => known,
        };
        match membership {
            Membership::Member => Ok(()),
            Membership::NotMember(reason) => Err(Stop::NotMember(reason)),
            Membership::Unknown => Err(Stop::NotMember("membership unknown".into())),
        }
    }

    /// Attaches the data volume by its holder rules; `first`: the first look's facts, if still
    /// fresh. Reports its progress to the address lane through `gate`.
    async fn ensure_volume(
        &self,
        run: &Run<'_>,
        target: &Target,
        volume_id: &str,
        mut first: Option<VolumeFacts>,
        gate: &watch::Sender<AddressGate>,
    ) -> Result<(), Stop> {
        let ec2 = &self.clients.ec2;
        let device = self.settings.device_name.as_str();
        let mut backoff = Backoff::new();
        let mut last_wait = String::new();
        let mut looked_after_attach = false;
        loop {
            let facts = match first.take() {
                Some(facts) => facts,
                None => call(run.work_deadline, || aws::describe_volume(ec2, volume_id))
                    .await
                    .map_err(|e| e.stop("describing the volume"))?,
            };
            let mut holder: Option<Holder> = None;
            let action = loop {
                match next_volume_action(&facts, target, holder.as_ref()) {
                    VolumeAction::CheckHolder(holder_id) if holder.is_none() => {
                        holder = Some(self.look_up_holder(run, holder_id, "the volume").await?);
                    }
                    other => break other,
                }
            };
            // Only a holder that is going away is worth waiting for past this invocation.
            let mut out_of_time = WhenOutOfTime::Abandon;
            match action {
                VolumeAction::AttachedHere => return Ok(()),
                VolumeAction::Attach => {
                    let t = Instant::now();
                    match call(run.work_deadline, || {
                        aws::attach_volume(ec2, volume_id, &target.instance_id, device)
                    })
                    .await
                    {
                        Ok(()) => {
                            info!(
                                step = "attach_call",
                                device,
                                duration_ms = t.elapsed().as_millis() as u64,
                                "AttachVolume accepted"
                            );
                            // EC2 gave this instance the volume: no other instance holds it,
                            // so the address may come over while the attachment completes.
                            gate.send_if_modified(|g| g.advance(VolumeProgress::AttachAccepted));
                            // Look once at once: an attach often completes within the call's
                            // round trip, and the first backoff delay would only add to the
                            // heal. (Only after an accepted call: a conflict always pauses.)
                            if !looked_after_attach {
                                looked_after_attach = true;
                                last_wait = "the attachment to complete".into();
                                continue;
                            }
                        }
                        // Someone else (a concurrent delivery) got there first, or the state
                        // moved: look again.
                        Err(CallError::Aws(e, ErrorKind::Conflict)) => {
                            info!(error = %e, "AttachVolume conflicted; observing again")
                        }
                        Err(e) => return Err(e.stop("attaching the volume")),
                    }
                    last_wait = "the attachment to complete".into();
                }
                VolumeAction::Wait(why) => {
                    if why != last_wait {
                        info!(waiting_for = %why, "waiting on the volume");
                    }
                    last_wait = why;
                }
                VolumeAction::WaitForHolder {
                    why,
                    known_departing,
                } => {
                    if why != last_wait {
                        info!(waiting_for = %why, "waiting on the volume");
                    }
                    // Egress first: the holder is going away (its address goes with it), so
                    // the address lane may give the new instance its address while the volume
                    // is let go. Never while the holder's state is unknown: a running holder
                    // keeps its address. Never with a persistent interface (the gate asks
                    // take_address_early).
                    if known_departing {
                        gate.send_if_modified(|g| g.advance(VolumeProgress::HolderDeparting));
                    }
                    last_wait = why;
                    out_of_time = WhenOutOfTime::YieldToRetry;
                }
                VolumeAction::CheckHolder(id) => {
                    // Only after a lookup that did not settle it: treat as still held.
                    last_wait = format!("instance {id} to release the volume");
                }
                VolumeAction::Abandon(f) => return Err(Stop::Abandon(f)),
            }
            self.pause_or(
                run,
                &mut backoff,
                &format!("volume {volume_id}: {last_wait}"),
                out_of_time,
            )
            .await?;
        }
    }

    /// The state of the instance `holder_id` that holds `what`; `None` state when EC2 no
    /// longer knows it.
    async fn look_up_holder(
        &self,
        run: &Run<'_>,
        holder_id: String,
        what: &str,
    ) -> Result<Holder, Stop> {
        let ec2 = &self.clients.ec2;
        let state = match call(run.work_deadline, || {
            aws::describe_instance(ec2, &holder_id)
        })
        .await
        {
            Ok(facts) => facts.map(|f| f.state),
            Err(CallError::Aws(_, ErrorKind::NotFoundYet)) => None,
            Err(e) => return Err(e.stop(&format!("describing the instance holding {what}"))),
        };
        Ok(Holder {
            instance_id: holder_id,
            state,
        })
    }

    /// Attaches the persistent network interface to the instance at device index 1 and waits
    /// for the attachment to be `attached`: the volume's loop, with the interface's rules.
    /// `first`: the first look's facts, if still fresh.
    async fn ensure_interface(
        &self,
        run: &Run<'_>,
        target: &Target,
        interface_id: &str,
        mut first: Option<Option<InterfaceFacts>>,
    ) -> Result<(), Stop> {
        let ec2 = &self.clients.ec2;
        let mut backoff = Backoff::new();
        let mut last_wait = String::new();
        let mut looked_after_attach = false;
        loop {
            let facts = match first.take() {
                Some(facts) => facts,
                None => call(run.work_deadline, || {
                    aws::describe_network_interface(ec2, interface_id)
                })
                .await
                .map_err(|e| e.stop("describing the network interface"))?,
            };
            let mut holder: Option<Holder> = None;
            let action = loop {
                match next_interface_action(facts.as_ref(), interface_id, target, holder.as_ref()) {
                    InterfaceAction::CheckHolder(holder_id) if holder.is_none() => {
                        holder = Some(
                            self.look_up_holder(run, holder_id, "the network interface")
                                .await?,
                        );
                    }
                    other => break other,
                }
            };
            // Only a holder that is going away is worth waiting for past this invocation.
            let mut out_of_time = WhenOutOfTime::Abandon;
            match action {
                InterfaceAction::AttachedHere { device_index } => {
                    let (private_ip, mac) = facts.as_ref().map_or((None, None), |f| {
                        (f.private_ip.as_deref(), f.mac_address.as_deref())
                    });
                    if device_index == Some(INTERFACE_DEVICE_INDEX) {
                        info!(
                            device_index,
                            private_ip, mac, "network interface attached here"
                        );
                    } else {
                        // Attached here by someone else (by hand, say): the interface and its
                        // address are on this instance, which is what the heal is for, and
                        // moving it to index 1 would cut the instance's traffic through it.
                        warn!(
                            device_index,
                            expected_device_index = INTERFACE_DEVICE_INDEX,
                            private_ip,
                            mac,
                            "network interface attached here at another device index: kept"
                        );
                    }
                    return Ok(());
                }
                InterfaceAction::Attach => {
                    let t = Instant::now();
                    match call(run.work_deadline, || {
                        aws::attach_network_interface(ec2, interface_id, &target.instance_id)
                    })
                    .await
                    {
                        Ok(attachment) => {
                            info!(
                                step = "attach_interface_call",
                                device_index = INTERFACE_DEVICE_INDEX,
                                attachment = attachment.as_deref(),
                                duration_ms = t.elapsed().as_millis() as u64,
                                "AttachNetworkInterface accepted"
                            );
                            // Look once at once, as for the volume: the attachment is often
                            // complete within the call's round trip.
                            if !looked_after_attach {
                                looked_after_attach = true;
                                last_wait = "the attachment to complete".into();
                                continue;
                            }
                        }
                        // A concurrent delivery got there first, the old holder still has it
                        // (InvalidNetworkInterface.InUse), or the instance is not ready
                        // (IncorrectState): look again.
                        Err(CallError::Aws(e, ErrorKind::Conflict)) => {
                            info!(error = %e, "AttachNetworkInterface conflicted; observing again")
                        }
                        Err(e) => return Err(e.stop("attaching the network interface")),
                    }
                    last_wait = "the attachment to complete".into();
                }
                InterfaceAction::Wait(why) => {
                    if why != last_wait {
                        info!(waiting_for = %why, "waiting on the network interface");
                    }
                    last_wait = why;
                }
                InterfaceAction::WaitForHolder(why) => {
                    if why != last_wait {
                        info!(waiting_for = %why, "waiting on the network interface");
                    }
                    last_wait = why;
                    out_of_time = WhenOutOfTime::YieldToRetry;
                }
                InterfaceAction::CheckHolder(id) => {
                    // Only after a lookup that did not settle it: treat as still held.
                    last_wait = format!("instance {id} to release the network interface");
                }
                InterfaceAction::Abandon(f) => return Err(Stop::Abandon(f)),
            }
            self.pause_or(
                run,
                &mut backoff,
                &format!("network interface {interface_id}: {last_wait}"),
                out_of_time,
            )
            .await?;
        }
    }

    /// The address lane: [`Self::place_address`], recorded as the step `associate_address`,
    /// whose time leaves out the wait for the gate (the other lanes' time).
    async fn ensure_address(
        &self,
        run: &Run<'_>,
        first: Option<AddressFacts>,
        gate: watch::Receiver<AddressGate>,
    ) -> Result<Option<String>, Stop> {
        let t = Instant::now();
        let mut waited = Duration::ZERO;
        let public_ip = self.place_address(run, first, gate, &mut waited).await?;
        let took = t.elapsed().saturating_sub(waited);
        run.step_took("associate_address", took, "address associated");
        Ok(public_ip)
    }

    /// Puts the address where it belongs (the instance, or the persistent interface) once
    /// `gate` lets it move, and verifies it there; returns its public IP. `first`: the first
    /// look's facts, if still fresh. Adds the time spent waiting for the gate to `waited`.
    async fn place_address(
        &self,
        run: &Run<'_>,
        first: Option<AddressFacts>,
        mut gate: watch::Receiver<AddressGate>,
        waited: &mut Duration,
    ) -> Result<Option<String>, Stop> {
        let ec2 = &self.clients.ec2;
        let allocation_id = self.settings.allocation_id.as_str();
        let id = run.action.instance_id.clone();
        let interface_mode = self.features.network_interface_id.is_some();
        let target = match self.features.network_interface_id.as_deref() {
            Some(interface_id) => AddressTarget::Interface(interface_id),
            None => AddressTarget::Instance(&id),
        };
        let describe = || aws::describe_address(ec2, allocation_id);
        let facts = match first {
            Some(facts) => facts,
            None => call(run.work_deadline, describe)
                .await
                .map_err(|e| e.stop("describing the address"))?,
        };
        if next_address_action(&facts, target) == AddressAction::AssociatedHere {
            info!(
                public_ip = facts.public_ip.as_deref(),
                network_interface = facts.network_interface_id.as_deref(),
                "address already associated here"
            );
            return Ok(facts.public_ip);
        }
        // Moving it waits for the volume (and in interface mode the interface): see
        // AddressGate::address_may_move. The other lanes end, one way or the other, within the
        // work deadline, and a lane that stops ends this wait with the heal; a lane that
        // finishes has opened its part of the gate.
        let open_now = gate.borrow().address_may_move(interface_mode);
        if !open_now {
            info!(
                previous_instance = facts.instance_id.as_deref(),
                previous_interface = facts.network_interface_id.as_deref(),
                "the address waits until the volume's holder is known to be going away or the volume is this instance's"
            );
            let since = Instant::now();
            let opened = gate
                .wait_for(|g| g.address_may_move(interface_mode))
                .await
                .is_ok();
            *waited += since.elapsed();
            if !opened {
                return Err(Stop::Abandon(Failure::new(
                    "the volume's step ended without letting the address move",
                )));
            }
        }
        let mut backoff = Backoff::new();
        for attempt in 1..=MAX_ASSOCIATIONS {
            info!(
                previous_instance = facts.instance_id.as_deref(),
                previous_interface = facts.network_interface_id.as_deref(),
                attempt,
                "associating the address"
            );
            match call(run.work_deadline, || associate(ec2, allocation_id, target)).await {
                Ok(association) => info!(
                    association = association.as_deref(),
                    "AssociateAddress accepted"
                ),
                Err(CallError::Aws(e, ErrorKind::Conflict)) => {
                    info!(error = %e, "AssociateAddress conflicted; observing again")
                }
                Err(e) => return Err(e.stop("associating the address")),
            }
            // Verify: a reassociation can silently move the address again.
            loop {
                let now = call(run.work_deadline, describe)
                    .await
                    .map_err(|e| e.stop("verifying the address"))?;
                match address_place(&now, target) {
                    AddressPlace::Here => return Ok(now.public_ip),
                    AddressPlace::Elsewhere(other) => {
                        warn!(now_at = %other, "the address moved elsewhere; associating again");
                        break;
                    }
                    AddressPlace::Nowhere => {
                        self.pause(run, &mut backoff, "the address association to show")
                            .await?
                    }
                }
            }
        }
        let kept_moving = match target {
            AddressTarget::Instance(_) => "to other instances".to_string(),
            AddressTarget::Interface(eni) => format!("off network interface {eni}"),
        };
        Err(Stop::Abandon(Failure::new(format!(
            "address {allocation_id} kept moving {kept_moving} after {MAX_ASSOCIATIONS} associations"
        ))))
    }

    /// Sleeps the next backoff delay if the work deadline allows it (else gives up), sending a
    /// heartbeat first when the hook could expire before the work is done.
    async fn pause(
        &self,
        run: &Run<'_>,
        backoff: &mut Backoff,
        waiting_for: &str,
    ) -> Result<(), Stop> {
        self.pause_or(run, backoff, waiting_for, WhenOutOfTime::Abandon)
            .await
    }

    /// [`Self::pause`], with what running out of time means for this wait.
    async fn pause_or(
        &self,
        run: &Run<'_>,
        backoff: &mut Backoff,
        waiting_for: &str,
        out_of_time: WhenOutOfTime,
    ) -> Result<(), Stop> {
        let Some(delay) = sleep_within(Instant::now(), run.work_deadline, backoff.next_delay())
        else {
            let why = format!(
                "out of time after {:.1}s waiting for {waiting_for}",
                run.started.elapsed().as_secs_f64()
            );
            return Err(match out_of_time {
                WhenOutOfTime::Abandon => Stop::Abandon(Failure::new(why)),
                WhenOutOfTime::YieldToRetry => Stop::Waiting(why),
            });
        };
        if run.is_member() {
            self.maybe_heartbeat(run).await?;
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// A heartbeat when the hook could expire before the work is done. The lanes pause at the
    /// same time: the first that finds one due claims it (moves the expiry before the call),
    /// so the others do not send a second.
    async fn maybe_heartbeat(&self, run: &Run<'_>) -> Result<(), Stop> {
        if run.state().heartbeats_off {
            return Ok(());
        }
        let timeout = self.hook_timeout(run).await;
        let now = Instant::now();
        {
            let mut state = run.state();
            let expires = *state.hook_expires.get_or_insert_with(|| {
                now + hook_remaining(
                    run.action.event_time_ms,
                    timeout,
                    epoch_ms(SystemTime::now()),
                )
            });
            let hook_left = expires.saturating_duration_since(now);
            let work_left = run.work_deadline.saturating_duration_since(now);
            if !heartbeat_due(hook_left, work_left, timeout) {
                return Ok(());
            }
            // Claimed; should the call fail, heartbeats stop for this invocation anyway.
            state.hook_expires = Some(now + timeout);
        }
        let asg = &self.clients.autoscaling;
        let action = run.action_ref();
        match call(run.work_deadline, || aws::heartbeat(asg, action)).await {
            Ok(()) => {
                info!(
                    hook_timeout_s = timeout.as_secs(),
                    "lifecycle heartbeat sent"
                );
                Ok(())
            }
            Err(CallError::Aws(_, ErrorKind::NoActiveLifecycleAction)) => Err(Stop::ActionGone),
            Err(e) => {
                let f = e.failure("RecordLifecycleActionHeartbeat");
                warn!(error = %f.reason, "heartbeat failed; no more heartbeats in this invocation");
                run.state().heartbeats_off = true;
                Ok(())
            }
        }
    }

    /// A heartbeat now, whatever the hook's expiry, so that Lambda's next delivery (a minute
    /// or two away) finds the action alive. `Err` when the action is gone.
    async fn keep_hook(&self, run: &Run<'_>) -> Result<(), ()> {
        let asg = &self.clients.autoscaling;
        let action = run.action_ref();
        match call(run.deadline, || aws::heartbeat(asg, action)).await {
            Ok(()) => {
                info!("lifecycle heartbeat sent before handing over to Lambda's retry");
                Ok(())
            }
            Err(CallError::Aws(_, ErrorKind::NoActiveLifecycleAction)) => Err(()),
            Err(e) => {
                // The retry still comes; the hook's own timeout may end the action first.
                let f = e.failure("RecordLifecycleActionHeartbeat");
                warn!(error = %f.reason, "heartbeat before the retry failed");
                Ok(())
            }
        }
    }

    /// The hook's heartbeat timeout: from the settings, else read once per execution
    /// environment with DescribeLifecycleHooks (falling back to the minimum on failure).
    async fn hook_timeout(&self, run: &Run<'_>) -> Duration {
        let known = run.state().hook_timeout;
        if let Some(t) = self.settings.hook_timeout.or(known) {
            return t;
        }
        if let Some(t) = self.hook_timeout.get() {
            return *t;
        }
        let asg = &self.clients.autoscaling;
        let (group, hook) = (&self.settings.group_name, &self.settings.hook_name);
        let t = match call(run.work_deadline, || aws::hook_timeout(asg, group, hook)).await {
            Ok(Some(secs)) => {
                let t = Duration::from_secs(secs);
                let _ = self.hook_timeout.set(t);
                t
            }
            Ok(None) => {
                warn!("DescribeLifecycleHooks does not list the hook; assuming a 30 s heartbeat timeout");
                FALLBACK_HOOK_TIMEOUT
            }
            Err(e) => {
                let f = e.failure("DescribeLifecycleHooks");
                warn!(error = %f.reason, "cannot read the hook's timeout; assuming 30 s");
                FALLBACK_HOOK_TIMEOUT
            }
        };
        run.state().hook_timeout = Some(t);
        t
    }

    /// Why the instance can no longer be healed, if it is shutting down, terminated or gone
    /// from EC2; `None` when it lives or cannot be described (then nothing is claimed).
    async fn terminated(&self, run: &Run<'_>) -> Option<String> {
        let ec2 = &self.clients.ec2;
        let id = run.action.instance_id.as_str();
        match call(run.deadline, || aws::describe_instance(ec2, id)).await {
            Ok(Some(facts)) if facts.state.is_gone() => Some(format!(
                "instance {id} is {}: its lifecycle action ended with it",
                facts.state
            )),
            Ok(None) => Some(format!(
                "instance {id} is gone from EC2: its lifecycle action ended with it"
            )),
            _ => None,
        }
    }

    /// CompleteLifecycleAction. `Ok(true)`: completed now; `Ok(false)`: it was already
    /// completed (or timed out), which is treated as done, never retried.
    async fn complete(&self, run: &Run<'_>, result: LifecycleResult) -> Result<bool, String> {
        let t = Instant::now();
        let asg = &self.clients.autoscaling;
        let action = run.action_ref();
        let r = call(run.deadline, || aws::complete(asg, action, result.as_str())).await;
        let took = t.elapsed();
        run.state().steps.push(("complete", took));
        let duration_ms = took.as_millis() as u64;
        match r {
            Ok(()) => {
                info!(
                    step = "complete",
                    result = result.as_str(),
                    duration_ms,
                    "lifecycle action completed"
                );
                Ok(true)
            }
            Err(CallError::Aws(_, ErrorKind::NoActiveLifecycleAction)) => {
                info!(
                    step = "complete",
                    result = result.as_str(),
                    duration_ms,
                    "no active lifecycle action: already completed"
                );
                Ok(false)
            }
            Err(e) => {
                let f = e.failure(&format!("CompleteLifecycleAction {}", result.as_str()));
                error!(step = "complete", error = %f.reason, duration_ms, "could not complete the lifecycle action");
                Err(f.reason)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lanes share the run through a lock, not a `RefCell`, so a heal stays a `Send`
    /// future: the handler runs it on a current-thread runtime today, and nothing should stop
    /// it from running on a multi-threaded one (Lambda's concurrent mode spawns handlers).
    /// Checked by the compiler; the future is never polled.
    #[test]
    fn a_heal_is_a_send_future() {
        fn send<T: Send>(_: &T) {}
        fn check(healer: &Healer, action: &LaunchAction) {
            send(&healer.heal(action, Instant::now()));
        }
        let _: fn(&Healer, &LaunchAction) = check;
    }
}
