//! The provider's proof that a volume the group's tag names holds the stack's data, from
//! EBS's records (the same rule as the heal's, handler/src/provenance.rs): the volume is
//! encrypted, restored for this group, made (EBS's `SnapshotId`) from a snapshot of this
//! account that EBS took (its `VolumeId`) of the home volume, or of a volume that itself
//! passes this check, at most [`MAX_LINKS`] restores deep.
//!
//! A tag is a pointer anyone allowed to tag can move: a destroy takes the final snapshot of,
//! and a failback makes the new home of, only a volume proven here.

use crate::aws::{volume, AwsError, OpContext};

use super::policy::RESTORED_FOR_TAG;

/// How many restores may separate the home volume from the one proven.
pub const MAX_LINKS: usize = 8;

/// `Ok(Ok(()))`: `candidate` holds the stack's data; `Ok(Err(why))`: it is not proven;
/// `Err`: a call failed.
pub async fn prove(
    ctx: &OpContext,
    candidate: &str,
    home: &str,
    group: &str,
) -> Result<Result<(), String>, AwsError> {
    let mut volume_id = candidate.to_string();
    for _ in 0..MAX_LINKS {
        if volume_id == home {
            return Ok(Ok(()));
        }
        let Some(v) = volume::find(ctx, &volume_id).await? else {
            return Ok(Err(format!("volume {volume_id} does not exist")));
        };
        if !v.encrypted {
            return Ok(Err(format!("volume {volume_id} is not encrypted")));
        }
        if v.tags.get(RESTORED_FOR_TAG).map(String::as_str) != Some(group) {
            return Ok(Err(format!(
                "volume {volume_id} is not tagged {RESTORED_FOR_TAG} = {group}"
            )));
        }
        let Some(snapshot) = v.snapshot_id else {
            return Ok(Err(format!(
                "volume {volume_id} was not made from a snapshot (EBS records none)"
            )));
        };
        let Some(parent) = volume::snapshot_parent(ctx, &snapshot).await? else {
            return Ok(Err(format!(
                "snapshot {snapshot} is not this account's (or no longer exists)"
            )));
        };
        volume_id = parent;
    }
    if volume_id == home {
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "{candidate} is more than {MAX_LINKS} restores from the home volume {home}"
    )))
}
