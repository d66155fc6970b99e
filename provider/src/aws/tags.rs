//! Tags in each service's own shape. The resource decides *which* tags an object gets
//! (`tags_all` plus the provider's `Name` and `autoheal:stack`); this module only converts.

use std::collections::BTreeMap;

/// Tag key -> value.
pub type Tags = BTreeMap<String, String>;

pub fn ec2(tags: &Tags) -> Vec<aws_sdk_ec2::types::Tag> {
    tags.iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// A TagSpecification for a create call of `resource_type`.
pub fn ec2_spec(
    resource_type: aws_sdk_ec2::types::ResourceType,
    tags: &Tags,
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(resource_type)
        .set_tags(Some(ec2(tags)))
        .build()
}

pub fn from_ec2(tags: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

pub fn iam(tags: &Tags) -> Vec<aws_sdk_iam::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

pub fn events(tags: &Tags) -> Vec<aws_sdk_eventbridge::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_eventbridge::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// Auto Scaling tags of group `group`, propagated to the instances it launches.
pub fn autoscaling(group: &str, tags: &Tags) -> Vec<aws_sdk_autoscaling::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        })
        .collect()
}

/// Differences between the tags an object has and the tags it should have: keys to set (new
/// or changed values) and keys to remove.
pub fn diff(current: &Tags, wanted: &Tags) -> (Tags, Vec<String>) {
    let set = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove = current
        .keys()
        .filter(|k| !wanted.contains_key(*k) && !k.starts_with("aws:"))
        .cloned()
        .collect();
    (set, remove)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn diff_sets_changed_and_new_and_removes_stale_but_never_aws_tags() {
        let current = tags(&[("a", "1"), ("b", "2"), ("aws:cloudformation", "x")]);
        let wanted = tags(&[("a", "1"), ("b", "3"), ("c", "4")]);
        let (set, remove) = diff(&current, &wanted);
        assert_eq!(set, tags(&[("b", "3"), ("c", "4")]));
        assert!(remove.is_empty());
        let (set, remove) = diff(&wanted, &tags(&[("a", "1")]));
        assert!(set.is_empty());
        assert_eq!(remove, vec!["b".to_string(), "c".to_string()]);
    }
}
