//! Where a stack serves, as `active_availability_zone` and `active_volume_id` report it.
//!
//! The zone failover (handler/src/failover.rs) records a move on the Auto Scaling group's
//! tags; the home zone and volume need no tag. The two attributes are reported for a stack
//! with the zone failover, and for one whose group still serves away from home (the failover
//! was turned off after it moved); otherwise they are null, like the failover's other
//! attributes, so a stack without failover, or one upgraded from a release that had no such
//! attributes, refreshes and plans with no change. `plan` follows the same rule with the
//! prior state in place of the group's tags.

use crate::aws::tags::Tags;

use super::spec::Spec;

/// The group's tag naming the volume a failover restored and moved the stack to.
pub const ACTIVE_VOLUME_TAG: &str = "autoheal:active-volume";
/// The group's tag naming the zone a failover moved the stack to.
pub const ACTIVE_ZONE_TAG: &str = "autoheal:active-zone";

/// Where the stack serves: (zone, volume), each null when not reported (see the module
/// documentation). `home_volume` is the stack's data volume; `group_tags` the group's tags,
/// `None` when the group is gone.
pub fn serving(
    spec: &Spec,
    home_volume: Option<&str>,
    group_tags: Option<&Tags>,
) -> (Option<String>, Option<String>) {
    let tag = |key: &str| {
        group_tags
            .and_then(|t| t.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let zone = tag(ACTIVE_ZONE_TAG).filter(|z| *z != spec.availability_zone);
    let volume = tag(ACTIVE_VOLUME_TAG).filter(|v| Some(v.as_str()) != home_volume);
    if zone.is_none() && volume.is_none() && !spec.has_failover() {
        return (None, None);
    }
    (
        Some(zone.unwrap_or_else(|| spec.availability_zone.clone())),
        volume.or_else(|| home_volume.map(str::to_string)),
    )
}

/// The volume a replacement instance is to receive: the one a failover moved the group to,
/// or the home volume.
pub fn volume_to_serve(home_volume: &str, group_tags: &Tags) -> String {
    group_tags
        .get(ACTIVE_VOLUME_TAG)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| home_volume.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;
    use crate::plugin::value::Value;

    fn spec(failover: bool) -> Spec {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("name", "web".into());
        v.set_attr("availability_zone", "ap-southeast-2a".into());
        if failover {
            v.set_attr(
                "failover_zones",
                Value::Set(vec![Value::from("ap-southeast-2b")]),
            );
            v.set_attr("snapshot_interval", "1h".into());
        }
        Spec::from_value(&v)
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_failover_and_at_home_nothing_is_reported() {
        assert_eq!(
            serving(&spec(false), Some("vol-home"), Some(&Tags::new())),
            (None, None)
        );
        // A tag naming the home zone is not a move.
        let home = tags(&[(ACTIVE_ZONE_TAG, "ap-southeast-2a")]);
        assert_eq!(
            serving(&spec(false), Some("vol-home"), Some(&home)),
            (None, None)
        );
    }

    #[test]
    fn with_failover_the_home_zone_and_volume_until_a_move() {
        assert_eq!(
            serving(&spec(true), Some("vol-home"), Some(&Tags::new())),
            (
                Some("ap-southeast-2a".to_string()),
                Some("vol-home".to_string())
            )
        );
        assert_eq!(
            serving(&spec(true), Some("vol-home"), None),
            (
                Some("ap-southeast-2a".to_string()),
                Some("vol-home".to_string())
            )
        );
    }

    #[test]
    fn a_moved_group_is_reported_with_or_without_failover() {
        let moved = tags(&[
            (ACTIVE_ZONE_TAG, "ap-southeast-2b"),
            (ACTIVE_VOLUME_TAG, "vol-restored"),
        ]);
        for failover in [true, false] {
            assert_eq!(
                serving(&spec(failover), Some("vol-home"), Some(&moved)),
                (
                    Some("ap-southeast-2b".to_string()),
                    Some("vol-restored".to_string())
                ),
                "failover {failover}"
            );
        }
        assert_eq!(volume_to_serve("vol-home", &moved), "vol-restored");
        assert_eq!(volume_to_serve("vol-home", &Tags::new()), "vol-home");
    }
}
