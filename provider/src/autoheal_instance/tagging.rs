//! Which tags each AWS object of a stack gets: the user's `tags_all`, a `Name` of its own and
//! `autoheal:stack = <name>`, by which import, the sweeper and the next stack of the same name
//! (for the final snapshot) find it.

use crate::aws::tags::Tags;

use super::names::{DerivedName, FINAL_SNAPSHOT_NAME_TAG, NAME_TAG, STACK_TAG, VOLUME_NAME_TAG};
use super::spec::Spec;

/// Tag key of a final snapshot: [`LINEAGE_LIVE`] while a new stack of the same name may
/// restore its volume from it, [`LINEAGE_ENDED`] once a destroy has ended the lineage
/// (`volume_on_destroy = "delete"` or `"retain"`).
pub const FINAL_SNAPSHOT_TAG: &str = "autoheal:final-snapshot";

/// On a final snapshot: the volume it was taken of, which EBS also records (its `VolumeId`);
/// the two must agree for the snapshot to be restored (see `lineage::restorable`).
pub const SOURCE_VOLUME_TAG: &str = "autoheal:volume-id";

/// [`FINAL_SNAPSHOT_TAG`]'s value on a final snapshot a new stack of the name may restore.
pub const LINEAGE_LIVE: &str = "true";

/// [`FINAL_SNAPSHOT_TAG`]'s value on the final snapshots of a lineage a destroy ended: kept
/// (the provider never deletes a snapshot) but never restored on its own again.
pub const LINEAGE_ENDED: &str = "ended";

/// Tag key, on the data volume and carried onto its final snapshot, of the
/// `volume_snapshot_id` the configuration held when the volume was created (or
/// [`NO_CONFIGURED_SNAPSHOT`]): how a later create tells a `volume_snapshot_id` the user newly
/// set or changed (it wins) from one the lineage already went past (the lineage continues).
/// See `lineage`.
pub const CONFIGURED_SNAPSHOT_TAG: &str = "autoheal:volume-snapshot-id";

/// [`CONFIGURED_SNAPSHOT_TAG`]'s value when no `volume_snapshot_id` was configured.
pub const NO_CONFIGURED_SNAPSHOT: &str = "none";

/// Tag key of the proof that no instance has used the data volume: put on the volume when
/// the create makes it (value: the stack's name), removed just before the group first scales
/// up, never put back. Only a volume that still carries it may be deleted by a destroy
/// without a final snapshot; anything that removes it (a scale-up, an update rewriting the
/// volume's tags, a user) makes the destroy take the snapshot, which is the safe side.
pub const UNUSED_TAG: &str = "autoheal:unused";

/// Tag key of the marker every object carries while the create that made it is unfinished;
/// its value is the stack's name, so one EC2 DescribeTags finds the EC2 objects of an
/// interrupted create. Removed from every object once the create has finished. An object
/// carrying it was made by a create that never returned (the provider was killed): the next
/// create of the same name adopts it instead of making a second one (see `adopt`).
pub const CREATING_TAG: &str = "autoheal:creating";

/// `tags` plus the unfinished-create marker: what a create tags a new object with.
pub fn creating(spec: &Spec, mut tags: Tags) -> Tags {
    tags.insert(CREATING_TAG.to_string(), spec.name.clone());
    tags
}

/// Whether an object's tags carry the unfinished-create marker of stack `name`.
pub fn is_creating(tags: &Tags, name: &str) -> bool {
    tags.get(CREATING_TAG).is_some_and(|v| v == name)
}

/// Tag key, on the data volume and on its final snapshot, of the token a destroy gives the
/// snapshot it takes: a destroy interrupted after starting the snapshot is finished with it,
/// not with a second one.
pub const FINAL_SNAPSHOT_TOKEN_TAG: &str = "autoheal:final-snapshot-token";

/// The tags of one object named `<name><suffix>`.
pub fn object_tags(spec: &Spec, name_tag: DerivedName) -> Tags {
    let mut tags = spec.tags_all.clone();
    tags.insert(NAME_TAG.to_string(), name_tag.for_stack(&spec.name));
    tags.insert(STACK_TAG.to_string(), spec.name.clone());
    tags
}

/// The tags of objects without a `Name` of their own (IAM role, function, rule, log group,
/// group: their name says it).
pub fn stack_tags(spec: &Spec) -> Tags {
    let mut tags = spec.tags_all.clone();
    tags.insert(STACK_TAG.to_string(), spec.name.clone());
    tags
}

/// The tags of a new data volume: the object's, the configured `volume_snapshot_id` of its
/// lineage and the unused marker.
pub fn new_volume_tags(spec: &Spec) -> Tags {
    let mut tags = object_tags(spec, VOLUME_NAME_TAG);
    tags.insert(
        CONFIGURED_SNAPSHOT_TAG.to_string(),
        spec.volume_snapshot_id
            .clone()
            .unwrap_or_else(|| NO_CONFIGURED_SNAPSHOT.to_string()),
    );
    tags.insert(UNUSED_TAG.to_string(), spec.name.clone());
    tags
}

/// The tags an existing data volume should have: the object's, and its lineage's configured
/// `volume_snapshot_id` as it was written at its creation (an update never rewrites it:
/// changing `volume_snapshot_id` only matters for the next volume).
pub fn volume_tags(spec: &Spec, current: &Tags) -> Tags {
    let mut tags = object_tags(spec, VOLUME_NAME_TAG);
    if let Some(configured) = current.get(CONFIGURED_SNAPSHOT_TAG) {
        tags.insert(CONFIGURED_SNAPSHOT_TAG.to_string(), configured.clone());
    }
    tags
}

/// The tags of the final snapshot of a volume tagged `volume_tags`: the lineage's configured
/// `volume_snapshot_id` is carried over.
pub fn final_snapshot_tags(spec: &Spec, volume_id: &str, volume_tags: &Tags) -> Tags {
    let mut tags = object_tags(spec, FINAL_SNAPSHOT_NAME_TAG);
    tags.insert(FINAL_SNAPSHOT_TAG.to_string(), LINEAGE_LIVE.to_string());
    tags.insert(SOURCE_VOLUME_TAG.to_string(), volume_id.to_string());
    if let Some(configured) = volume_tags.get(CONFIGURED_SNAPSHOT_TAG) {
        tags.insert(CONFIGURED_SNAPSHOT_TAG.to_string(), configured.clone());
    }
    tags
}
