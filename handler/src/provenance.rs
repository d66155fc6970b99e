//! The heal's check of a restored volume (docs/zone-failover.md, section 2).
//!
//! After a failover the group's instances carry [`crate::aws::ACTIVE_VOLUME_TAG`]: the volume
//! to attach instead of the home one. A tag is a pointer anyone allowed to tag can change, so
//! the heal attaches such a volume only when EBS's own records prove where its data came
//! from: it is encrypted, in the instance's zone, restored for this group, and was made
//! ([`VolumeOrigin::snapshot_id`]) from a completed snapshot of this account that EBS took
//! ([`SnapshotOrigin::volume_id`]) of the home volume, or of a volume that itself passes
//! this check (a second failover, a failback), at most [`MAX_LINKS`] links deep.
//!
//! IAM narrows what can be attached (the role allows AttachVolume on restored volumes only
//! with `aws:ResourceTag/autoheal:restored-for` = the group); this check proves the data.

use crate::aws::{self, SnapshotOrigin, VolumeOrigin};
use crate::errors::AwsError;
use crate::failover::RESTORED_FOR_TAG;

/// How many restores a chain may have between the home volume and the one attached.
pub const MAX_LINKS: usize = 8;

/// The checks on a volume of the chain; returns the snapshot it was made from.
/// `zone`: the instance's zone (only for the volume to attach).
pub fn check_volume<'v>(
    v: &'v VolumeOrigin,
    zone: Option<&str>,
    group: &str,
) -> Result<&'v str, String> {
    let id = &v.volume_id;
    if !v.encrypted {
        return Err(format!("volume {id} is not encrypted"));
    }
    if let Some(zone) = zone {
        if v.availability_zone != zone {
            return Err(format!(
                "volume {id} is in {}, the instance in {zone}",
                v.availability_zone
            ));
        }
    }
    if !v
        .tags
        .iter()
        .any(|(k, val)| k == RESTORED_FOR_TAG && val == group)
    {
        return Err(format!(
            "volume {id} is not tagged {RESTORED_FOR_TAG} = {group}"
        ));
    }
    v.snapshot_id
        .as_deref()
        .ok_or_else(|| format!("volume {id} was not made from a snapshot (EBS records none)"))
}

/// The checks on a snapshot of the chain; returns the volume EBS took it of.
pub fn check_snapshot<'s>(
    s: Option<&'s SnapshotOrigin>,
    snapshot_id: &str,
) -> Result<&'s str, String> {
    let Some(s) = s else {
        return Err(format!(
            "snapshot {snapshot_id} is not this account's (or no longer exists)"
        ));
    };
    if s.state != "completed" {
        return Err(format!(
            "snapshot {snapshot_id} is {}, not completed",
            s.state
        ));
    }
    if s.volume_id.is_empty() {
        return Err(format!("EBS records no volume for snapshot {snapshot_id}"));
    }
    Ok(&s.volume_id)
}

/// Proves that `candidate` holds the stack's data (module docs); `zone`: the instance's, which
/// the volume must be in (`None`: no instance, a snapshot run). `Ok(Err(reason))`: it does
/// not; `Err`: a call failed (the caller retries or gives up as for any call).
pub async fn prove(
    ec2: &aws_sdk_ec2::Client,
    candidate: &str,
    home: &str,
    zone: Option<&str>,
    group: &str,
) -> Result<Result<(), String>, AwsError> {
    let mut volume_id = candidate.to_string();
    let mut chain = vec![volume_id.clone()];
    let mut seen = vec![volume_id.clone()];
    for link in 0..MAX_LINKS {
        let Some(v) = aws::describe_volume_origin(ec2, &volume_id).await? else {
            return Ok(Err(format!("volume {volume_id} does not exist")));
        };
        let snapshot_id = match check_volume(&v, zone.filter(|_| link == 0), group) {
            Ok(s) => s.to_string(),
            Err(why) => return Ok(Err(why)),
        };
        let snapshot = aws::describe_own_snapshot(ec2, &snapshot_id).await?;
        let parent = match check_snapshot(snapshot.as_ref(), &snapshot_id) {
            Ok(p) => p.to_string(),
            Err(why) => return Ok(Err(why)),
        };
        chain.push(format!("{snapshot_id} of {parent}"));
        if parent == home {
            tracing::info!(
                chain = chain.join(" <- "),
                "restored volume proven to come from the home volume"
            );
            return Ok(Ok(()));
        }
        if seen.contains(&parent) {
            return Ok(Err(format!("the chain loops at {parent}")));
        }
        seen.push(parent.clone());
        volume_id = parent;
    }
    Ok(Err(format!(
        "no link to the home volume {home} within {MAX_LINKS} restores: {}",
        chain.join(" <- ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(encrypted: bool, zone: &str, tag: Option<&str>, snap: Option<&str>) -> VolumeOrigin {
        VolumeOrigin {
            volume_id: "vol-0new".into(),
            state: "available".into(),
            availability_zone: zone.into(),
            encrypted,
            kms_key_id: None,
            snapshot_id: snap.map(str::to_string),
            volume_type: Some("gp3".into()),
            size_gib: Some(8),
            iops: None,
            throughput: None,
            tags: tag
                .map(|g| vec![(RESTORED_FOR_TAG.to_string(), g.to_string())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn a_restored_volume_must_be_encrypted_here_ours_and_from_a_snapshot() {
        let z = "ap-southeast-2b";
        let good = volume(true, z, Some("g"), Some("snap-1"));
        assert_eq!(check_volume(&good, Some(z), "g"), Ok("snap-1"));
        // Links further up the chain are not checked against the instance's zone.
        assert_eq!(check_volume(&good, None, "g"), Ok("snap-1"));
        for (bad, what) in [
            (volume(false, z, Some("g"), Some("snap-1")), "not encrypted"),
            (
                volume(true, "ap-southeast-2a", Some("g"), Some("snap-1")),
                "is in",
            ),
            (volume(true, z, Some("other"), Some("snap-1")), "not tagged"),
            (volume(true, z, None, Some("snap-1")), "not tagged"),
            (volume(true, z, Some("g"), None), "not made from a snapshot"),
        ] {
            let why = check_volume(&bad, Some(z), "g").unwrap_err();
            assert!(why.contains(what), "{why}");
        }
    }

    #[test]
    fn only_a_completed_snapshot_of_this_account_links_to_its_volume() {
        let snap = |state: &str, vol: &str| SnapshotOrigin {
            snapshot_id: "snap-1".into(),
            state: state.into(),
            volume_id: vol.into(),
            start_time_ms: 0,
        };
        assert_eq!(
            check_snapshot(Some(&snap("completed", "vol-home")), "snap-1"),
            Ok("vol-home")
        );
        assert!(check_snapshot(None, "snap-1")
            .unwrap_err()
            .contains("not this account's"));
        assert!(check_snapshot(Some(&snap("pending", "vol-home")), "snap-1")
            .unwrap_err()
            .contains("pending"));
        assert!(check_snapshot(Some(&snap("completed", "")), "snap-1").is_err());
    }
}
