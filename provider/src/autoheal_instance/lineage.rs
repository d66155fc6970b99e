//! Which data a new data volume starts from: one rule, the one the schema's
//! `volume_snapshot_id` and `volume_on_destroy` describe and docs/ repeats.
//!
//! A stack's data lives in a lineage: its volume, then that volume's final snapshot, then the
//! next stack of the same name restored from it, and so on. A create cannot see the prior
//! state (a replacement destroys first and creates with no memory), so the rule reads only
//! what AWS keeps: the newest live final snapshot of the name ([`LINEAGE_LIVE`]) and the
//! `volume_snapshot_id` its volume was created under ([`CONFIGURED_SNAPSHOT_TAG`], carried
//! from the volume onto its final snapshot).
//!
//! - A replacement continues its own lineage: never empty, never older data.
//! - A `volume_snapshot_id` the user newly set or changed (it differs from the one the
//!   lineage's newest final snapshot was created under) wins. Changing it in place touches
//!   no volume; it only decides the next one.
//! - A destroy with `volume_on_destroy = "delete"` (or `"retain"`, whose volume holds the
//!   newest data) ends the lineage: its final snapshots are re-tagged [`LINEAGE_ENDED`] and a
//!   later stack of the name starts from `volume_snapshot_id`, or empty.
//!
//! [`LINEAGE_LIVE`]: super::tagging::LINEAGE_LIVE
//! [`LINEAGE_ENDED`]: super::tagging::LINEAGE_ENDED

use crate::aws::volume::{FinalSnapshot, VolumeInfo};

use super::names::STACK_TAG;
use super::tagging::{CONFIGURED_SNAPSHOT_TAG, SOURCE_VOLUME_TAG};

/// EBS's `VolumeId` of a snapshot that was not taken of a volume of this account (a copy,
/// or an import): "vol-ffffffff" (EC2 API reference, Snapshot: "snapshots created by the
/// CopySnapshot action have an arbitrary volume ID that should not be used for any purpose").
const ARBITRARY_VOLUME_ID: &str = "vol-ffffffff";

/// Whether a snapshot tagged as a final snapshot of stack `name` is one, from what EBS itself
/// records rather than from its tags alone (which anyone who may tag snapshots can write):
/// it is encrypted (every data volume is, so every final snapshot is), it was taken of a real
/// volume (not a copy or an import), that volume is the one our tag names, and if that
/// volume still exists it is this stack's. `source` is that volume, if it still exists.
/// (`final_snapshots` already asks for snapshots owned by this account only.)
pub fn restorable(
    snapshot: &FinalSnapshot,
    name: &str,
    source: Option<&VolumeInfo>,
) -> Result<(), String> {
    if !snapshot.encrypted {
        return Err("it is not encrypted, and every final snapshot is".into());
    }
    if snapshot.volume_id == ARBITRARY_VOLUME_ID || !snapshot.volume_id.starts_with("vol-") {
        return Err(format!(
            "EBS records no source volume ({:?}): a copied or imported snapshot",
            snapshot.volume_id
        ));
    }
    match snapshot.tags.get(SOURCE_VOLUME_TAG) {
        Some(tagged) if *tagged != snapshot.volume_id => {
            return Err(format!(
                "it is tagged as a snapshot of {tagged} but EBS says it was taken of {}",
                snapshot.volume_id
            ))
        }
        _ => {}
    }
    if let Some(v) = source {
        if v.tags.get(STACK_TAG).map(String::as_str) != Some(name) {
            return Err(format!(
                "it was taken of {}, which still exists and is not this stack's volume",
                v.volume_id
            ));
        }
    }
    Ok(())
}

/// Where a new data volume's data comes from, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The snapshot to create it from; `None` = an empty volume.
    pub snapshot_id: Option<String>,
    /// Why, for the create's log.
    pub reason: String,
}

/// The rule (see the module documentation). `configured` is `volume_snapshot_id`; `newest`
/// the newest completed live final snapshot of the stack's name.
pub fn choose(configured: Option<&str>, newest: Option<&FinalSnapshot>) -> Source {
    let source = |id: &str, reason: String| Source {
        snapshot_id: Some(id.to_string()),
        reason,
    };
    match (configured, newest) {
        (None, None) => Source {
            snapshot_id: None,
            reason: "no volume_snapshot_id and no live final snapshot of this stack's name: \
                     an empty volume"
                .into(),
        },
        (Some(wanted), None) => source(
            wanted,
            "volume_snapshot_id (no live final snapshot of this stack's name)".into(),
        ),
        (None, Some(last)) => source(
            &last.snapshot_id,
            "the lineage continues: the newest final snapshot of this stack's name".into(),
        ),
        (Some(wanted), Some(last)) => match last.tags.get(CONFIGURED_SNAPSHOT_TAG) {
            Some(before) if before == wanted => source(
                &last.snapshot_id,
                format!(
                    "the lineage continues: volume_snapshot_id {wanted} is the one this lineage \
                     was already created under, so the newest final snapshot of this stack's \
                     name has newer data"
                ),
            ),
            Some(before) => source(
                wanted,
                format!(
                    "volume_snapshot_id was newly set or changed (the lineage's newest final \
                     snapshot {} was created under {before}): it wins over the lineage",
                    last.snapshot_id
                ),
            ),
            // A final snapshot from a provider version that did not record it: whether
            // `wanted` is new cannot be told, and going back to older data is the one thing
            // the rule never does silently.
            None => source(
                &last.snapshot_id,
                format!(
                    "the lineage continues: the newest final snapshot of this stack's name does \
                     not record the volume_snapshot_id it was created under, so {wanted} cannot \
                     be told to be new and the newer data is kept (to start from {wanted}, \
                     tag that final snapshot {CONFIGURED_SNAPSHOT_TAG} = something else, or \
                     delete it)"
                ),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::tags::Tags;

    fn final_snapshot(id: &str, configured: Option<&str>) -> FinalSnapshot {
        let mut tags = Tags::new();
        if let Some(c) = configured {
            tags.insert(CONFIGURED_SNAPSHOT_TAG.to_string(), c.to_string());
        }
        FinalSnapshot {
            snapshot_id: id.into(),
            volume_id: "vol-1".into(),
            state: "completed".into(),
            start_time: (1, 0),
            tags,
            encrypted: true,
        }
    }

    fn volume(id: &str, stack: Option<&str>) -> VolumeInfo {
        let mut tags = Tags::new();
        if let Some(s) = stack {
            tags.insert(STACK_TAG.to_string(), s.to_string());
        }
        VolumeInfo {
            volume_id: id.into(),
            state: "available".into(),
            availability_zone: "z".into(),
            size: 1,
            volume_type: "gp3".into(),
            iops: None,
            throughput: None,
            encrypted: true,
            kms_key_id: None,
            snapshot_id: None,
            tags,
            attachments: vec![],
        }
    }

    #[test]
    fn only_a_snapshot_ebs_says_was_taken_of_this_stacks_volume_is_restored() {
        let ours = final_snapshot("snap-f", None);
        assert_eq!(restorable(&ours, "web", None), Ok(()));
        // Its volume still exists (a destroy that stopped after the snapshot): ours.
        assert_eq!(
            restorable(&ours, "web", Some(&volume("vol-1", Some("web")))),
            Ok(())
        );
        // Planted: a snapshot of someone else's volume, tagged as ours.
        assert!(restorable(&ours, "web", Some(&volume("vol-1", Some("db")))).is_err());
        assert!(restorable(&ours, "web", Some(&volume("vol-1", None))).is_err());
        // A copy: EBS records no source volume.
        let copy = FinalSnapshot {
            volume_id: "vol-ffffffff".into(),
            ..final_snapshot("snap-c", None)
        };
        assert!(restorable(&copy, "web", None).is_err());
        // Unencrypted: never one of ours.
        let plain = FinalSnapshot {
            encrypted: false,
            ..final_snapshot("snap-p", None)
        };
        assert!(restorable(&plain, "web", None).is_err());
        // Tagged with another volume than EBS records.
        let mut forged = final_snapshot("snap-x", None);
        forged.tags.insert(SOURCE_VOLUME_TAG.into(), "vol-2".into());
        assert!(restorable(&forged, "web", None).is_err());
        forged.tags.insert(SOURCE_VOLUME_TAG.into(), "vol-1".into());
        assert_eq!(restorable(&forged, "web", None), Ok(()));
    }

    fn chosen(configured: Option<&str>, newest: Option<&FinalSnapshot>) -> Option<String> {
        choose(configured, newest).snapshot_id
    }

    #[test]
    fn nothing_configured_and_no_lineage_is_an_empty_volume() {
        assert_eq!(chosen(None, None), None);
    }

    #[test]
    fn a_configured_snapshot_starts_a_new_stack() {
        assert_eq!(chosen(Some("snap-u"), None).as_deref(), Some("snap-u"));
    }

    #[test]
    fn a_replacement_continues_its_lineage() {
        let last = final_snapshot("snap-f", Some("none"));
        assert_eq!(chosen(None, Some(&last)).as_deref(), Some("snap-f"));
        // Created under snap-u, still configured: the final snapshot has the newer data.
        let last = final_snapshot("snap-f2", Some("snap-u"));
        assert_eq!(
            chosen(Some("snap-u"), Some(&last)).as_deref(),
            Some("snap-f2")
        );
    }

    #[test]
    fn a_newly_set_or_changed_snapshot_wins() {
        let last = final_snapshot("snap-f", Some("none"));
        assert_eq!(
            chosen(Some("snap-u"), Some(&last)).as_deref(),
            Some("snap-u")
        );
        let last = final_snapshot("snap-f", Some("snap-u"));
        let s = choose(Some("snap-v"), Some(&last));
        assert_eq!(s.snapshot_id.as_deref(), Some("snap-v"));
        assert!(s.reason.contains("newly set or changed"), "{}", s.reason);
    }

    #[test]
    fn an_unrecorded_lineage_keeps_the_newer_data_and_says_how_to_override() {
        let last = final_snapshot("snap-f", None);
        let s = choose(Some("snap-u"), Some(&last));
        assert_eq!(s.snapshot_id.as_deref(), Some("snap-f"));
        assert!(s.reason.contains(CONFIGURED_SNAPSHOT_TAG), "{}", s.reason);
    }
}
