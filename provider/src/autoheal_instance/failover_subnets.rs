//! The failover zones' subnets (`failover_zones`) of a network the provider owns: which of the
//! VPC's subnets are the stack's failover subnets, which to keep, delete or make, and the CIDR
//! block each new one takes. Pure decisions; `converge` makes the calls.
//!
//! A subnet counts as the failover subnet of zone Z only if it is in the stack's own VPC (the
//! state names it; the provider made it), in zone Z, is not the home subnet, and carries the
//! stack tag and the name `<name>-subnet-Z`: the tags say which role it has, the VPC that it
//! is the stack's to delete. Anything else in the VPC is left alone (and its CIDR block
//! avoided). The role is in the `Name` tag rather than a tag of its own so that a failover
//! subnet carries no more provider tags than the other objects (`names::PROVIDER_TAG_COUNT`,
//! which bounds the user's tags).

use std::collections::BTreeMap;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::aws::network::SubnetInfo;

use super::names;

/// The `Name` tag of the stack's failover subnet in `zone`.
pub fn subnet_name(stack: &str, zone: &str) -> String {
    format!("{}-{zone}", names::SUBNET_NAME_TAG.for_stack(stack))
}

/// What to do with the VPC's subnets for the wanted failover zones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Zone -> the existing subnet kept for it.
    pub keep: BTreeMap<String, String>,
    /// Subnets of the stack's that no wanted zone needs (a zone no longer listed, or a second
    /// one for the same zone, left by an interrupted update).
    pub delete: Vec<String>,
    /// Zone -> the CIDR block of the subnet to make for it.
    pub make: BTreeMap<String, String>,
    /// Zones for which no block of `subnet_cidr`'s size is free in the VPC.
    pub no_room: Vec<String>,
}

/// Decides, from the VPC's subnets, what makes `zones` each have one failover subnet.
pub fn plan(
    stack: &str,
    home_subnet_id: &str,
    vpc_cidr: &str,
    subnet_cidr: &str,
    zones: &[String],
    subnets: &[SubnetInfo],
) -> Plan {
    let mut plan = Plan::default();
    for s in subnets {
        let Some(zone) = failover_zone_of(stack, home_subnet_id, s) else {
            continue;
        };
        if zones.contains(&zone) && !plan.keep.contains_key(&zone) {
            plan.keep.insert(zone, s.subnet_id.clone());
        } else {
            plan.delete.push(s.subnet_id.clone());
        }
    }
    // Blocks taken by every subnet that stays (the stack's kept ones, the home one, anything
    // else in the VPC): a deleted one's block is not reused in the same run, since its delete
    // may still be retrying.
    let used: Vec<Ipv4Net> = subnets
        .iter()
        .filter_map(|s| Ipv4Net::from_str(&s.cidr).ok())
        .collect();
    let mut free = free_blocks(vpc_cidr, subnet_cidr, &used).into_iter();
    for zone in zones {
        if plan.keep.contains_key(zone) {
            continue;
        }
        match free.next() {
            Some(block) => {
                plan.make.insert(zone.clone(), block.to_string());
            }
            None => plan.no_room.push(zone.clone()),
        }
    }
    plan
}

/// The stack's failover subnets among `subnets` (a VPC's), zone -> subnet id: what refresh
/// and import report.
pub fn found(
    stack: &str,
    home_subnet_id: &str,
    subnets: &[SubnetInfo],
) -> BTreeMap<String, String> {
    subnets
        .iter()
        .filter_map(|s| {
            Some((
                failover_zone_of(stack, home_subnet_id, s)?,
                s.subnet_id.clone(),
            ))
        })
        .collect()
}

/// The zone `s` is the stack's failover subnet for, if it is one.
pub fn failover_zone_of(stack: &str, home_subnet_id: &str, s: &SubnetInfo) -> Option<String> {
    if s.subnet_id == home_subnet_id
        || s.tags.get(names::STACK_TAG).map(String::as_str) != Some(stack)
    {
        return None;
    }
    let named = s.tags.get(names::NAME_TAG)?;
    (named == &subnet_name(stack, &s.availability_zone)).then(|| s.availability_zone.clone())
}

/// The blocks of `subnet_cidr`'s prefix length inside `vpc_cidr` that overlap none of
/// `used`, lowest first. Empty when either CIDR does not parse (validation refuses those).
pub fn free_blocks(vpc_cidr: &str, subnet_cidr: &str, used: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let (Ok(vpc), Ok(home)) = (Ipv4Net::from_str(vpc_cidr), Ipv4Net::from_str(subnet_cidr)) else {
        return Vec::new();
    };
    let Ok(blocks) = vpc.subnets(home.prefix_len()) else {
        return Vec::new();
    };
    blocks
        .filter(|b| !used.iter().any(|u| u.contains(b) || b.contains(u)))
        .collect()
}

/// How many failover subnets a VPC of `vpc_cidr` has room for beside the home `subnet_cidr`
/// (for validation, before anything exists).
pub fn room(vpc_cidr: &str, subnet_cidr: &str) -> usize {
    let Ok(home) = Ipv4Net::from_str(subnet_cidr) else {
        return 0;
    };
    free_blocks(vpc_cidr, subnet_cidr, &[home]).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, cidr: &str, tags: &[(&str, &str)]) -> SubnetInfo {
        SubnetInfo {
            subnet_id: id.into(),
            vpc_id: "vpc-1".into(),
            availability_zone: zone.into(),
            cidr: cidr.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn ours(id: &str, zone: &str, cidr: &str) -> SubnetInfo {
        subnet(
            id,
            zone,
            cidr,
            &[
                (names::STACK_TAG, "app"),
                (names::NAME_TAG, &subnet_name("app", zone)),
            ],
        )
    }

    fn zones(z: &[&str]) -> Vec<String> {
        z.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_new_stack_takes_the_blocks_after_the_home_one() {
        let home = subnet(
            "subnet-h",
            "z-a",
            "10.0.0.0/24",
            &[(names::STACK_TAG, "app")],
        );
        let p = plan(
            "app",
            "subnet-h",
            "10.0.0.0/16",
            "10.0.0.0/24",
            &zones(&["z-b", "z-c"]),
            &[home],
        );
        assert!(p.keep.is_empty() && p.delete.is_empty() && p.no_room.is_empty());
        assert_eq!(p.make["z-b"], "10.0.1.0/24");
        assert_eq!(p.make["z-c"], "10.0.2.0/24");
    }

    #[test]
    fn kept_deleted_and_made_by_zone() {
        let subnets = [
            subnet(
                "subnet-h",
                "z-a",
                "10.0.0.0/24",
                &[(names::STACK_TAG, "app")],
            ),
            ours("subnet-b", "z-b", "10.0.1.0/24"),
            ours("subnet-c", "z-c", "10.0.2.0/24"),
            // Someone else's subnet in the VPC: left alone, its block avoided.
            subnet("subnet-x", "z-d", "10.0.3.0/24", &[]),
        ];
        let p = plan(
            "app",
            "subnet-h",
            "10.0.0.0/16",
            "10.0.0.0/24",
            &zones(&["z-b", "z-d"]),
            &subnets,
        );
        assert_eq!(p.keep, BTreeMap::from([("z-b".into(), "subnet-b".into())]));
        assert_eq!(p.delete, vec!["subnet-c".to_string()]);
        // z-c's block is not reused while its subnet is being deleted.
        assert_eq!(p.make["z-d"], "10.0.4.0/24");
    }

    #[test]
    fn a_tag_alone_does_not_make_a_failover_subnet() {
        // Tagged for another stack, or for a zone it is not in, or the home subnet itself.
        let other = subnet(
            "subnet-1",
            "z-b",
            "10.0.1.0/24",
            &[
                (names::STACK_TAG, "other"),
                (names::NAME_TAG, &subnet_name("other", "z-b")),
            ],
        );
        let wrong_zone = subnet(
            "subnet-2",
            "z-c",
            "10.0.2.0/24",
            &[
                (names::STACK_TAG, "app"),
                (names::NAME_TAG, &subnet_name("app", "z-b")),
            ],
        );
        let home = ours("subnet-h", "z-b", "10.0.0.0/24");
        for s in [&other, &wrong_zone, &home] {
            assert_eq!(failover_zone_of("app", "subnet-h", s), None, "{s:?}");
        }
        let p = plan(
            "app",
            "subnet-h",
            "10.0.0.0/16",
            "10.0.0.0/24",
            &zones(&["z-b"]),
            &[other, wrong_zone, home],
        );
        assert!(p.delete.is_empty(), "never deletes what is not the stack's");
        assert_eq!(p.make["z-b"], "10.0.3.0/24");
    }

    #[test]
    fn a_second_subnet_for_a_zone_goes() {
        let p = plan(
            "app",
            "subnet-h",
            "10.0.0.0/16",
            "10.0.0.0/24",
            &zones(&["z-b"]),
            &[
                ours("subnet-1", "z-b", "10.0.1.0/24"),
                ours("subnet-2", "z-b", "10.0.2.0/24"),
            ],
        );
        assert_eq!(p.keep["z-b"], "subnet-1");
        assert_eq!(p.delete, vec!["subnet-2".to_string()]);
    }

    #[test]
    fn no_room_is_reported_per_zone() {
        let home = subnet("subnet-h", "z-a", "10.0.0.0/25", &[]);
        let p = plan(
            "app",
            "subnet-h",
            "10.0.0.0/24",
            "10.0.0.0/25",
            &zones(&["z-b", "z-c"]),
            &[home],
        );
        assert_eq!(p.make["z-b"], "10.0.0.128/25");
        assert_eq!(p.no_room, vec!["z-c".to_string()]);
        assert_eq!(room("10.0.0.0/24", "10.0.0.0/25"), 1);
        assert_eq!(room("10.0.0.0/16", "10.0.0.0/24"), 255);
        assert_eq!(room("10.0.0.0/28", "10.0.0.0/28"), 0);
    }
}
