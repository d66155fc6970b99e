//! Destroy: takes the stack down in the order AWS needs, and never loses data silently.
//!
//! 1. The group to size 0, and a wait until its instance is terminated (the volume and the
//!    address are then released by AWS).
//! 2. At once, each branch in the order AWS needs: the group itself (its hook goes with it),
//!    then the launch template; the data volume (wait for the detach; then final snapshot
//!    and delete, or retain, or delete, per `volume_on_destroy`; a user's volume is only
//!    waited for); the address (released, or only disassociated when it is the user's), then
//!    the persistent network interface (once its instance has let it go); beside them the
//!    security group (DependencyViolation retried while network interfaces linger) and the
//!    network the provider created (a user's subnet is left), which wait for the address only
//!    where EC2 does (the gateway's detach, and with a persistent interface the subnet and
//!    the group), and the VPC for the group; the Lambda side (rules with their targets:
//!    the launch rule, and the snapshot schedule when there is one, whose snapshots stay;
//!    function with its permissions, log group, role with its policy, each apart); the
//!    alarms. A branch that fails stops there; the others go on, and what is left stays in
//!    the state.
//!
//! Every deleter treats "not found" as done, so destroying again, or after parts were deleted
//! by hand, succeeds. A failed final snapshot stops the volume's deletion: the volume stays,
//! and so does its state entry.
//!
//! The final snapshot is skipped only on a durable proof that it would save nothing: the
//! volume still carries [`UNUSED_TAG`], which the create puts on it and removes before the
//! group first scales up (and its source snapshot, if any, still exists). Nothing in the
//! state decides it: a refresh or an import can lose any id. `delete` and `retain` end the
//! lineage of the stack's final snapshots (see `lineage`).

use crate::aws::gate::gate;
use crate::aws::tags::Tags;
use crate::aws::{
    address, alarm, autoscaling_group, ec2_tags, event_rule, iam_role, lambda_function,
    launch_template, log_group, network, network_interface, security_group, volume, AwsError,
    OpContext,
};

use super::names;
use super::spec::Spec;
use super::stack::Stack;
use super::steps::{StepError, StepResult};
use super::tagging::{
    final_snapshot_tags, FINAL_SNAPSHOT_TAG, FINAL_SNAPSHOT_TOKEN_TAG, LINEAGE_ENDED, LINEAGE_LIVE,
    UNUSED_TAG,
};

/// What a destroy left behind on purpose, for the user to know.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The final snapshot taken (`volume_on_destroy = "snapshot"`).
    pub final_snapshot: Option<String>,
    /// A volume kept (`retain`, or the user's own).
    pub kept_volume: Option<String>,
    /// The home volume a zone failover superseded: kept, never deleted by the provider.
    pub superseded_volume: Option<String>,
}

/// The restored volume the stack serves from after a zone failover, `None` when it serves
/// from its home volume. The group's tag names it; it counts only when EBS's records prove
/// it holds the stack's data (`provenance`: a tag alone moves no data into a final snapshot
/// and deletes nothing).
async fn serving_volume(
    ctx: &OpContext,
    spec: &Spec,
    stack: &Stack,
    group: &str,
) -> Result<Option<String>, StepError> {
    let Some(home) = &stack.volume_id else {
        return Ok(None);
    };
    if !spec.has_failover() && stack.failover_function_arn.is_none() {
        return Ok(None);
    }
    let Some(g) = autoscaling_group::find(ctx, group)
        .await
        .step("find", format!("Auto Scaling group {group}"))?
    else {
        return Ok(None);
    };
    let Some(active) = g
        .tags
        .get(super::active::ACTIVE_VOLUME_TAG)
        .filter(|v| !v.is_empty() && *v != home)
    else {
        return Ok(None);
    };
    let proven = super::provenance::prove(ctx, active, home, group)
        .await
        .step("prove the origin of", format!("restored volume {active}"))?;
    match proven {
        Ok(()) => {
            tracing::warn!(
                restored = active,
                home,
                "the stack serves from a volume a zone failover restored: it gets the final snapshot; the home volume is kept"
            );
            Ok(Some(active.clone()))
        }
        Err(why) => {
            tracing::warn!(
                volume = active,
                why,
                "the group names a serving volume that was not restored from this stack's volume: ignored"
            );
            Ok(None)
        }
    }
}

/// Deletes everything in `stack`. On error, returns what is still there (the objects whose
/// deletion failed or was not reached) with the errors.
pub async fn delete(
    ctx: &OpContext,
    spec: &Spec,
    stack: &Stack,
) -> Result<Outcome, (Stack, Vec<StepError>)> {
    let mut left = stack.clone();
    let mut outcome = Outcome::default();
    // 1. The instance. The objects named after the stack are deleted by name even when the
    // state lost their ids (a refresh nulls the id of a part that is broken, so the plan
    // repairs it): a state exists only for a stack this configuration created or imported
    // (create refuses a name already in use and then saves no state).
    let group = names::AUTOSCALING_GROUP.for_stack(&spec.name);
    // After a zone failover the stack serves from a restored volume: that one holds the
    // newest data and gets the final snapshot (per `volume_on_destroy`); the home volume it
    // superseded is kept (it may hold writes made after the restored snapshot).
    let active = match serving_volume(ctx, spec, stack, &group).await {
        Ok(a) => a,
        Err(e) => return Err((left, vec![e])),
    };
    if let Err(e) = autoscaling_group::drain(ctx, &group).await.step(
        "terminate the instance of",
        format!("Auto Scaling group {group}"),
    ) {
        return Err((left, vec![e]));
    }
    left.instance_id = None;

    // 2. With no instance (and the group at size 0: none launches), what only AWS's own
    // dependencies order runs at once, each branch stopping at its first error:
    // - the group (its hook goes with it), then its launch template;
    // - the volume (final snapshot first, per `volume_on_destroy`);
    // - the address, then the persistent interface, beside the security group and the
    //   network (gated below where EC2 orders them after the address or the group);
    // - the Lambda side (rule, function, log group and role, each apart);
    // - the alarms.
    let group_and_template = async {
        autoscaling_group::delete(ctx, &group)
            .await
            .step("delete", format!("Auto Scaling group {group}"))?;
        if let Some(id) = &stack.launch_template_id {
            launch_template::delete(ctx, id)
                .await
                .step("delete", format!("launch template {id}"))?;
        }
        Ok::<(), StepError>(())
    };
    // The network side, in three lanes that AWS orders only at two points: the address
    // (released, or disassociated when it is the user's), then the persistent interface (once
    // its instance has let it go); the security group; the network the provider created (a
    // user's subnet is left). EC2 refuses to detach the gateway while an Elastic IP is
    // mapped in the VPC, and a subnet or a security group while an interface (the persistent
    // one) is in it or uses it: those wait for the address lane. The VPC itself waits for
    // the security group (the caller's part in it). A lane whose gate closed stops there.
    let (addressed, unmapped) = gate();
    let (group_deleted, emptied) = gate();
    let addressing = async {
        release_address(ctx, spec, stack).await?;
        delete_interface(ctx, spec, stack).await?;
        addressed.open();
        Ok::<(), StepError>(())
    };
    let security_group = async {
        if stack.network_interface_id.is_some() && !unmapped.passed().await {
            return Ok(false);
        }
        if let Some(id) = &stack.security_group_id {
            security_group::delete(ctx, id)
                .await
                .step("delete", format!("security group {id}"))?;
        }
        group_deleted.open();
        Ok::<bool, StepError>(true)
    };
    let vpc = async {
        let (Some(vpc), true) = (&stack.vpc_id, spec.creates_network()) else {
            return Ok(true);
        };
        network::delete_vpc(
            ctx,
            vpc,
            (names::STACK_TAG, &spec.name),
            &unmapped,
            &emptied,
        )
        .await
        .step(
            "delete",
            format!("VPC {vpc} and its subnet, gateway and routes"),
        )
    };
    let network_side = async {
        let (addressing, security_group, vpc) = tokio::join!(addressing, security_group, vpc);
        // A lane stopped at a closed gate adds no error: the lane that closed it has one.
        let (addressing_done, security_group_done) =
            (addressing.is_ok(), matches!(security_group, Ok(true)));
        let vpc_done = matches!(vpc, Ok(true));
        let errors: Vec<StepError> = [addressing.err(), security_group.err(), vpc.err()]
            .into_iter()
            .flatten()
            .collect();
        (addressing_done, security_group_done, vpc_done, errors)
    };
    let volume_stack = match &active {
        Some(restored) => Stack {
            volume_id: Some(restored.clone()),
            ..stack.clone()
        },
        None => stack.clone(),
    };
    let (group_and_template, vol, network_side, lambda, alarms) = tokio::join!(
        group_and_template,
        delete_volume(ctx, spec, &volume_stack),
        network_side,
        delete_lambda_side(ctx, spec, stack),
        delete_alarms(ctx, spec, stack),
    );
    let mut errors = Vec::new();
    match group_and_template {
        Ok(()) => {
            left.autoscaling_group_name = None;
            left.lifecycle_hook_name = None;
            left.launch_template_id = None;
            left.launch_template_version = None;
        }
        Err(e) => errors.push(e),
    }
    match vol {
        Ok((snapshot, kept)) => {
            outcome.final_snapshot = snapshot;
            outcome.kept_volume = kept;
            if active.is_some() {
                outcome.superseded_volume = stack.volume_id.clone();
            }
            left.volume_id = None;
            left.volume_source_snapshot_id = None;
        }
        Err(e) => errors.push(e),
    }
    let (addressing_done, security_group_done, vpc_done, network_error) = network_side;
    if addressing_done {
        left.allocation_id = None;
        left.public_ip = None;
        super::create::record_interface(&mut left, None);
    }
    if security_group_done {
        left.security_group_id = None;
    }
    if vpc_done && addressing_done && security_group_done {
        left.vpc_id = None;
        left.subnet_id = None;
    }
    errors.extend(network_error);
    match alarms {
        Ok(()) => {
            left.heal_failure_alarm_arn = None;
            left.no_in_service_alarm_arn = None;
        }
        Err(e) => errors.push(e),
    }
    match lambda {
        Ok(()) => {
            left.event_rule_arn = None;
            left.snapshot_rule_arn = None;
            left.lambda_function_arn = None;
            left.log_group_name = None;
            left.lambda_role_arn = None;
            left.handler_sha256 = None;
            left.failover_function_arn = None;
            left.failover_role_arn = None;
            left.failover_rule_arn = None;
        }
        Err(e) => errors.push(e),
    }
    if errors.is_empty() {
        Ok(outcome)
    } else {
        Err((left, errors))
    }
}

/// The persistent network interface, once its instance has let it go (EC2 detaches an
/// interface it did not create when the instance terminates; one attached to another live
/// instance is detached only with `force_detach`, else waited for until the deadline).
async fn delete_interface(ctx: &OpContext, spec: &Spec, stack: &Stack) -> Result<(), StepError> {
    let Some(id) = &stack.network_interface_id else {
        return Ok(());
    };
    let object = || format!("network interface {id}");
    network_interface::wait_available(ctx, id, spec.force_detach)
        .await
        .step("wait for the release of", object())?;
    network_interface::delete(ctx, id)
        .await
        .step("delete", object())
}

/// The stack's alarms, when it has (or had) any.
async fn delete_alarms(ctx: &OpContext, spec: &Spec, stack: &Stack) -> Result<(), StepError> {
    if !spec.has_alarms()
        && stack.heal_failure_alarm_arn.is_none()
        && stack.no_in_service_alarm_arn.is_none()
    {
        return Ok(());
    }
    alarm::delete(ctx, &super::alarms::all_names(&spec.name))
        .await
        .step("delete", "the stack's CloudWatch alarms")
}

/// Returns (final snapshot, kept volume).
async fn delete_volume(
    ctx: &OpContext,
    spec: &Spec,
    stack: &Stack,
) -> Result<(Option<String>, Option<String>), StepError> {
    let Some(id) = &stack.volume_id else {
        return Ok((None, None));
    };
    let object = || format!("data volume {id}");
    let Some(info) = volume::find(ctx, id).await.step("find", object())? else {
        return Ok((None, None));
    };
    tracing::info!(
        volume_id = id,
        state = info.state,
        "waiting for the data volume to be detached"
    );
    volume::wait_detached(ctx, id, spec.force_detach)
        .await
        .step("detach", object())?;
    if let Some(own) = &spec.existing_volume_id {
        // After a zone failover or a failback the stack serves the user's data from a
        // volume restored from it (`own` is superseded and kept): that one is kept as the
        // user's volume would be.
        if own == id {
            tracing::info!(
                volume_id = id,
                "the data volume is the user's: detached, kept"
            );
        } else {
            tracing::info!(
                volume_id = id,
                existing_volume_id = own,
                "the data volume holds the data of the user's volume (a failover or failback \
                 restored it from that volume): detached, kept"
            );
        }
        return Ok((None, Some(id.clone())));
    }
    // Asked only where it decides something: `volume_on_destroy = "snapshot"`.
    let unused = !matches!(spec.volume_on_destroy.as_str(), "retain" | "delete")
        && never_used(ctx, spec, &info)
            .await
            .step("check the use of", object())?;
    if matches!(spec.volume_on_destroy.as_str(), "retain" | "delete") {
        // The data goes with the volume, or stays in it: never back to an older snapshot.
        end_lineage(ctx, spec).await.step(
            "end the final-snapshot lineage of",
            format!("stack {}", spec.name),
        )?;
    }
    match spec.volume_on_destroy.as_str() {
        "retain" => {
            tracing::info!(
                volume_id = id,
                "volume_on_destroy = retain: the data volume is kept; a new stack of this name \
                 starts from volume_snapshot_id or empty (give it existing_volume_id = this \
                 volume to go on with its data)"
            );
            Ok((None, Some(id.clone())))
        }
        "delete" => {
            tracing::info!(
                volume_id = id,
                "volume_on_destroy = delete: deleting the data volume with no snapshot"
            );
            volume::delete(ctx, id).await.step("delete", object())?;
            Ok((None, None))
        }
        _ if unused => {
            tracing::info!(
                volume_id = id,
                source_snapshot = info.snapshot_id,
                "the data volume still carries {UNUSED_TAG}: no instance ever used it (the \
                 group never scaled up), so it holds nothing its source does not; deleted \
                 without a final snapshot"
            );
            volume::delete(ctx, id).await.step("delete", object())?;
            Ok((None, None))
        }
        _ => {
            let snapshot = final_snapshot(ctx, spec, id, &info.tags)
                .await
                .step("take the final snapshot of", object())?;
            tracing::info!(
                snapshot_id = snapshot,
                volume_id = id,
                stack = spec.name,
                "final snapshot taken; deleting the data volume"
            );
            volume::delete(ctx, id).await.step("delete", object())?;
            Ok((Some(snapshot), None))
        }
    }
}

/// Whether the destroy may skip the final snapshot: only on the provider's own proof that no
/// instance ever used the volume ([`UNUSED_TAG`], removed before the group first scales up).
/// Anything else (no marker, a refresh that lost the launch template, an import) means a
/// snapshot. An unused volume restored from a snapshot holds just that snapshot's data, which
/// survives only while that snapshot does: so the source must still exist too.
async fn never_used(
    ctx: &OpContext,
    spec: &Spec,
    info: &volume::VolumeInfo,
) -> Result<bool, AwsError> {
    if info.tags.get(UNUSED_TAG) != Some(&spec.name) {
        return Ok(false);
    }
    match &info.snapshot_id {
        None => Ok(true),
        Some(source) => {
            let exists = volume::snapshot_exists(ctx, source).await?;
            if !exists {
                tracing::info!(
                    volume_id = info.volume_id,
                    source_snapshot = source,
                    "the unused data volume's source snapshot is gone: it is the only copy of \
                     that data, so it gets a final snapshot"
                );
            }
            Ok(exists)
        }
    }
}

/// Ends the final-snapshot lineage of the stack's name: its final snapshots are re-tagged
/// [`LINEAGE_ENDED`], so a later stack of the name does not silently restore older data
/// (they are kept: the provider never deletes a snapshot). Done before the volume goes, so a
/// destroy interrupted in between ends it on its next run.
async fn end_lineage(ctx: &OpContext, spec: &Spec) -> Result<(), AwsError> {
    let live = volume::final_snapshots(
        ctx,
        names::STACK_TAG,
        &spec.name,
        (FINAL_SNAPSHOT_TAG, LINEAGE_LIVE),
    )
    .await?;
    let ids: Vec<String> = live.into_iter().map(|s| s.snapshot_id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut ended = Tags::new();
    ended.insert(FINAL_SNAPSHOT_TAG.to_string(), LINEAGE_ENDED.to_string());
    ec2_tags::set(ctx, &ids, &ended, &[]).await?;
    tracing::info!(
        stack = spec.name,
        snapshots = ?ids,
        "the lineage of this stack's final snapshots ended; they are kept, and a later stack \
         of this name no longer restores them on its own"
    );
    Ok(())
}

/// The final snapshot of volume `id`. A destroy tags the volume with a token before it
/// starts the snapshot, and the snapshot with the same token, so a destroy that was
/// interrupted after starting it is finished with that snapshot, not a second one. Any update
/// of the stack removes the token from the volume (it is not among the tags the volume
/// should have), so once the volume may have been written again a new snapshot is taken.
async fn final_snapshot(
    ctx: &OpContext,
    spec: &Spec,
    id: &str,
    tags: &Tags,
) -> Result<String, AwsError> {
    if let Some(token) = tags.get(FINAL_SNAPSHOT_TOKEN_TAG) {
        if let Some(snapshot) =
            volume::find_snapshot(ctx, id, FINAL_SNAPSHOT_TOKEN_TAG, token).await?
        {
            tracing::info!(
                snapshot_id = snapshot,
                volume_id = id,
                "an interrupted destroy already started the final snapshot: finishing with it"
            );
            volume::wait_snapshot(ctx, &snapshot, id).await?;
            return Ok(snapshot);
        }
    }
    let token = format!(
        "{:x}-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
        std::process::id()
    );
    let mut token_tag = Tags::new();
    token_tag.insert(FINAL_SNAPSHOT_TOKEN_TAG.to_string(), token);
    ec2_tags::set(ctx, &[id.to_string()], &token_tag, &[]).await?;
    let mut snapshot_tags = final_snapshot_tags(spec, id, tags);
    snapshot_tags.extend(token_tag);
    volume::snapshot(
        ctx,
        id,
        &format!(
            "autoheal final snapshot of stack {} (volume {id})",
            spec.name
        ),
        &snapshot_tags,
    )
    .await
}

async fn release_address(ctx: &OpContext, spec: &Spec, stack: &Stack) -> Result<(), StepError> {
    let Some(id) = &stack.allocation_id else {
        return Ok(());
    };
    if spec.existing_allocation_id.is_some() {
        address::disassociate(ctx, id)
            .await
            .step("disassociate", format!("Elastic IP {id}"))
    } else {
        address::release(ctx, id)
            .await
            .step("release", format!("Elastic IP {id}"))
    }
}

/// Rule (targets first), function (its permission goes with it), log group, role (policies
/// first), by the names derived from the stack's name; the four at once: AWS orders none of
/// them after another (a rule may target a function that is gone, a function's role may be
/// deleted under it), and with the group drained nothing invokes the function any more.
async fn delete_lambda_side(ctx: &OpContext, spec: &Spec, stack: &Stack) -> Result<(), StepError> {
    let rule = names::EVENT_RULE.for_stack(&spec.name);
    let schedule = names::SNAPSHOT_RULE.for_stack(&spec.name);
    let function = names::LAMBDA_FUNCTION.for_stack(&spec.name);
    let logs = names::LOG_GROUP.for_stack(&spec.name);
    let role = names::lambda_role_name(&spec.name, ctx.region());
    // The snapshot schedule, when the stack has (or had) one; its snapshots stay.
    let has_schedule = spec.snapshot_schedule.is_some() || stack.snapshot_rule_arn.is_some();
    let has_failover = spec.has_failover() || stack.failover_function_arn.is_some();
    let (r, f, l, i, o) = tokio::join!(
        async {
            event_rule::delete(ctx, &rule)
                .await
                .step("delete", format!("EventBridge rule {rule}"))?;
            if has_schedule {
                event_rule::delete(ctx, &schedule)
                    .await
                    .step("delete", format!("EventBridge rule {schedule}"))?;
            }
            Ok(())
        },
        async {
            lambda_function::delete(ctx, &function)
                .await
                .step("delete", format!("Lambda function {function}"))
        },
        async {
            log_group::delete(ctx, &logs)
                .await
                .step("delete", format!("log group {logs}"))
        },
        async {
            iam_role::delete(ctx, &role)
                .await
                .step("delete", format!("IAM role {role}"))
        },
        async {
            if !has_failover {
                return Ok(());
            }
            super::converge::Converger {
                ctx,
                spec,
                creating: false,
            }
            .delete_failover()
            .await
        },
    );
    r.and(f).and(l).and(i).and(o)
}
