//! Failing back after a zone failover (docs/zone-failover.md, "Failback"): the operator's
//! act, `active_availability_zone = availability_zone` in the configuration, applied in place
//! by `update`.
//!
//! After a failover the stack serves from a volume the failover function restored in another
//! zone. Failing back brings that data home with nothing lost: not from a scheduled snapshot
//! (older than the last write) but from one taken while nothing can write:
//! 1. the serving volume must hold the stack's data, proven from EBS's records
//!    (`provenance`): the group's tag is only a pointer;
//! 2. the group is scaled to 0 and the serving volume waited for until it is detached;
//! 3. it is snapshotted, and the snapshot waited for until it completes;
//! 4. the snapshot is restored into the home zone, shaped and keyed as the serving volume;
//! 5. commit: the new volume becomes the stack's data volume (`volume_id`), the volume left
//!    behind is tagged `autoheal:superseded-by`, the failover's pointer tags leave the group
//!    and the group points at the home subnet.
//!
//! The rest of the update then converges the function's environment, both roles' policies
//! and a launch template version on the new volume, and scales the group back to 1: the heal
//! attaches the new volume and the Elastic IP as for any launch. The stack is then as if it
//! had been created on that volume, so a later zone loss fails it over again.
//!
//! A failure before the commit deletes the volume step 4 made (its data is the snapshot's and
//! the serving volume's, both kept) and scales the group back to 1 where it was: a failed
//! failback leaves the stack serving in the failover zone. The snapshot is kept, tagged.

use crate::aws::tags::Tags;
use crate::aws::{autoscaling_group, ec2_tags, volume, OpContext};
use crate::plugin::value::Value;

use super::active::{ACTIVE_VOLUME_TAG, ACTIVE_ZONE_TAG};
use super::names::{NAME_TAG, STACK_TAG};
use super::policy::{SNAPSHOT_KIND_TAG, SUPERSEDED_BY_TAG};
use super::spec::Spec;
use super::stack::Stack;
use super::steps::{StepError, StepResult};
use super::tagging::volume_tags;

/// [`SNAPSHOT_KIND_TAG`]'s value on the snapshot a failback takes (never pruned by the
/// scheduled snapshots' function, which deletes only its own kind).
pub const SNAPSHOT_KIND_FAILBACK: &str = "failback";

/// Whether the change from `prior` to `planned` fails the stack back: the configured
/// `active_availability_zone` (validation allows only the home zone) differs from the zone
/// the last refresh found it serving from.
pub fn failing_back(prior: &Value, planned: &Value) -> bool {
    match (
        prior.attr("active_availability_zone").as_str(),
        planned.attr("active_availability_zone").as_str(),
    ) {
        (Some(from), Some(to)) => from != to,
        _ => false,
    }
}

/// What a failback did.
pub struct FailedBack {
    /// The stack's data volume from now on.
    pub volume_id: String,
    /// The warning the user gets about the volumes left behind (kept, never deleted by the
    /// provider), if any: (summary, detail).
    pub kept: Option<(String, String)>,
}

/// Fails the stack back home (module documentation). `home` is the stack's data volume
/// before the failback.
pub async fn fail_back(
    ctx: &OpContext,
    spec: &Spec,
    stack: &mut Stack,
    group: &str,
    home: &str,
) -> Result<FailedBack, StepError> {
    let object = || format!("Auto Scaling group {group}");
    let g = autoscaling_group::find(ctx, group)
        .await
        .step("find", object())?
        .ok_or_else(|| StepError::problem("fail back", object(), "the group does not exist"))?;
    let serving = super::active::volume_to_serve(home, &g.tags);
    let home_subnet = stack.subnet_id.clone().ok_or_else(|| {
        StepError::problem("fail back", object(), "the state names no home subnet")
    })?;
    if serving == home {
        // Nothing to bring home: the pointer is all that is left of a failover.
        tracing::info!(group, "failing back: the stack serves from its own volume");
        commit_pointer(ctx, group, &g.tags, &home_subnet).await?;
        return Ok(FailedBack {
            volume_id: home.to_string(),
            kept: None,
        });
    }

    // 1. The serving volume must hold the stack's data.
    let what = || format!("serving volume {serving}");
    let proven = super::provenance::prove(ctx, &serving, home, group)
        .await
        .step("prove the origin of", what())?;
    if let Err(why) = proven {
        return Err(StepError::problem(
            "fail back from",
            what(),
            format!(
                "the group's {ACTIVE_VOLUME_TAG} tag names it, but EBS's records do not prove \
                 it holds this stack's data ({why}); nothing was changed. Find the volume that \
                 does and set the tag to it, or restore from a snapshot yourself."
            ),
        ));
    }
    let source = volume::find(ctx, &serving)
        .await
        .step("find", what())?
        .ok_or_else(|| StepError::problem("fail back from", what(), "it no longer exists"))?;
    tracing::info!(
        serving,
        zone = source.availability_zone,
        home_zone = spec.availability_zone,
        "failing back: scaling the group to 0 so nothing writes to the serving volume"
    );

    // 2. Nothing writes any more.
    autoscaling_group::drain(ctx, group)
        .await
        .step("scale to 0", object())?;
    let mut made: Option<String> = None;
    let restored: Result<(String, String), StepError> = async {
        volume::wait_detached(ctx, &serving, false)
            .await
            .step("wait for the detach of", what())?;
        // 3. The snapshot of everything written.
        let snapshot = volume::snapshot(
            ctx,
            &serving,
            &format!("autoheal {}: failback of {serving}", spec.name),
            &snapshot_tags(spec),
        )
        .await
        .step("snapshot", what())?;
        // 4. Its restore in the home zone.
        let id = volume::create(
            ctx,
            &volume::NewVolume {
                availability_zone: &spec.availability_zone,
                size: source.size,
                volume_type: &source.volume_type,
                iops: source.iops,
                throughput: source.throughput,
                kms_key_id: source.kms_key_id.as_deref(),
                snapshot_id: Some(&snapshot),
            },
            &volume_tags(spec, &source.tags),
            |id| made = Some(id.to_string()),
        )
        .await
        .step(
            "restore",
            format!("snapshot {snapshot} in {}", spec.availability_zone),
        )?;
        Ok((snapshot, id))
    }
    .await;
    let (snapshot, new_volume) = match restored {
        Ok(done) => done,
        Err(e) => return Err(back_out(ctx, group, made.as_deref(), e).await),
    };

    // 5. Commit.
    if let Err(e) = ec2_tags::set(
        ctx,
        std::slice::from_ref(&serving),
        &Tags::from([(SUPERSEDED_BY_TAG.to_string(), new_volume.clone())]),
        &[],
    )
    .await
    {
        return Err(back_out(
            ctx,
            group,
            Some(&new_volume),
            StepError::aws("tag", what(), e),
        )
        .await);
    }
    stack.volume_id = Some(new_volume.clone());
    stack.volume_source_snapshot_id = Some(snapshot.clone());
    stack.last_snapshot_id = None;
    stack.last_snapshot_time = None;
    commit_pointer(ctx, group, &g.tags, &home_subnet).await?;
    tracing::info!(
        new_volume,
        snapshot,
        superseded = serving,
        "failed back: the new data volume is home; the group scales up once the stack follows it"
    );
    let kept = (
        format!("Failed back: volumes {home} and {serving} kept"),
        format!(
            "The stack's data now lives in {new_volume}, in {zone}, restored from snapshot \
             {snapshot} of {serving} taken after the group was scaled to 0 (nothing could \
             write to it). Kept, never deleted by the provider, tagged autoheal:superseded-by: \
             {home}, the volume the zone failover superseded, which may hold writes made after \
             the scheduled snapshot the failover restored (recover them, then delete it \
             yourself); and {serving}, whose data {new_volume} holds (delete it when you no \
             longer need it).",
            zone = spec.availability_zone
        ),
    );
    Ok(FailedBack {
        volume_id: new_volume,
        kept: Some(kept),
    })
}

/// The group no longer points away from home: the failover's pointer tags go, its subnet is
/// the home one.
async fn commit_pointer(
    ctx: &OpContext,
    group: &str,
    tags: &Tags,
    home_subnet: &str,
) -> Result<(), StepError> {
    let object = || format!("Auto Scaling group {group}");
    let remove: Vec<String> = [ACTIVE_VOLUME_TAG, ACTIVE_ZONE_TAG]
        .iter()
        .filter(|k| tags.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    autoscaling_group::set_tags(ctx, group, &Tags::new(), &remove)
        .await
        .step("untag", object())?;
    autoscaling_group::set_subnet(ctx, group, home_subnet)
        .await
        .step("move home", object())
}

/// A failback that failed before its commit: the volume it made goes (its data is in the
/// snapshot and in the serving volume, both kept) and the group serves again where it was.
/// Returns `error`, with what the back-out could not do.
async fn back_out(ctx: &OpContext, group: &str, made: Option<&str>, error: StepError) -> StepError {
    let mut left = Vec::new();
    if let Some(id) = made {
        if let Err(e) = volume::delete(ctx, id).await {
            left.push(format!("volume {id} (delete it: {e})"));
        }
    }
    if let Err(e) = autoscaling_group::set_size(ctx, group, 1).await {
        left.push(format!("group {group} at 0 instances (scale it to 1: {e})"));
    }
    tracing::warn!(?left, "failback failed before its commit: backed out");
    if left.is_empty() {
        error
    } else {
        let detail = format!(
            "{}\n\nThe failback was backed out except for: {}.",
            error.detail(),
            left.join("; ")
        );
        StepError::problem(error.action, error.object, detail)
    }
}

/// The failback snapshot's tags: the stack's, a name of its own and its kind.
fn snapshot_tags(spec: &Spec) -> Tags {
    let mut tags = spec.tags_all.clone();
    tags.insert(NAME_TAG.to_string(), format!("{}-failback", spec.name));
    tags.insert(STACK_TAG.to_string(), spec.name.clone());
    tags.insert(
        SNAPSHOT_KIND_TAG.to_string(),
        SNAPSHOT_KIND_FAILBACK.to_string(),
    );
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::null_object(&super::super::schema::schema().value_type());
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    #[test]
    fn failing_back_is_a_configured_zone_other_than_the_refreshed_one() {
        let away = state(&[("active_availability_zone", "ap-southeast-2b".into())]);
        let home = state(&[("active_availability_zone", "ap-southeast-2a".into())]);
        assert!(failing_back(&away, &home));
        assert!(!failing_back(&home, &home));
        assert!(!failing_back(&away, &away));
        // Not reported before (failover just turned on, or an upgraded state), or not known
        // yet: nothing to fail back from.
        assert!(!failing_back(&state(&[]), &home));
        assert!(!failing_back(
            &away,
            &state(&[("active_availability_zone", Value::Unknown)])
        ));
    }

    #[test]
    fn the_failback_snapshot_is_the_stacks_and_of_its_own_kind() {
        let mut v = state(&[("name", "web".into())]);
        v.set_attr(
            "tags_all",
            Value::Map([("team".to_string(), Value::from("ops"))].into()),
        );
        let tags = snapshot_tags(&Spec::from_value(&v));
        assert_eq!(tags.get(STACK_TAG).map(String::as_str), Some("web"));
        assert_eq!(tags.get(NAME_TAG).map(String::as_str), Some("web-failback"));
        assert_eq!(tags.get("team").map(String::as_str), Some("ops"));
        assert_eq!(
            tags.get(SNAPSHOT_KIND_TAG).map(String::as_str),
            Some(SNAPSHOT_KIND_FAILBACK)
        );
    }
}
