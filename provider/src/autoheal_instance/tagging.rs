//! Which tags each AWS object of a stack gets: the user's `tags_all`, a `Name` of its own and
//! `autoheal:stack = <name>`, by which import, the sweeper and the next stack of the same name
//! (for the final snapshot) find it.

use crate::aws::tags::Tags;

use super::names::{DerivedName, FINAL_SNAPSHOT_NAME_TAG, NAME_TAG, STACK_TAG};
use super::spec::Spec;

/// Tag key of a final snapshot, with the stack's name: the snapshot a new stack of the same
/// name restores its volume from.
pub const FINAL_SNAPSHOT_TAG: &str = "autoheal:final-snapshot";

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

/// The tags of the final snapshot.
pub fn final_snapshot_tags(spec: &Spec) -> Tags {
    let mut tags = object_tags(spec, FINAL_SNAPSHOT_NAME_TAG);
    tags.insert(FINAL_SNAPSHOT_TAG.to_string(), "true".to_string());
    tags
}
