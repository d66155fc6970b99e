//! The instance's security group. It holds exactly the rules the configuration says: SSH
//! (TCP 22) from `ssh_ingress_cidrs`, the application's `ingress` rules, and EC2's default
//! egress (all traffic to 0.0.0.0/0: the instance needs the internet or VPC endpoints).
//! Anything else found in it (added by hand, or left in a group adopted by name) is
//! [`SecurityGroupInfo::unmanaged`] and revoked by [`set_rules`].
//!
//! A rule is compared flattened: one direction, protocol, port range and peer (IPv4 or IPv6
//! CIDR, another group, a prefix list), as EC2 evaluates it; descriptions are not compared
//! (EC2 refuses a second rule that differs only in its description).

use std::collections::BTreeSet;
use std::fmt;

use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, UserIdGroupPair,
};

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{ec2_spec, Tags};

pub const SSH_PORT: i32 = 22;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// Where a rule lets traffic come from (ingress) or go to (egress).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Ipv4(String),
    Ipv6(String),
    Group(String),
    PrefixList(String),
}

/// One flattened rule. `protocol` is EC2's name (`tcp`, `udp`, `icmp`, `icmpv6`) or number,
/// `-1` for all traffic (whose ports are then -1: EC2 ignores them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub direction: Direction,
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

/// The description a new rule gets (EC2 keeps it; it is not compared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRule {
    pub rule: Rule,
    pub description: Option<String>,
}

impl Rule {
    /// Protocol names as EC2 reports them: numbers of the four named protocols become names,
    /// and all-traffic ports become -1.
    pub fn new(direction: Direction, protocol: &str, from: i32, to: i32, peer: Peer) -> Rule {
        let protocol = match protocol.to_ascii_lowercase().as_str() {
            "6" => "tcp".to_string(),
            "17" => "udp".to_string(),
            "1" => "icmp".to_string(),
            "58" => "icmpv6".to_string(),
            "all" => "-1".to_string(),
            p => p.to_string(),
        };
        let (from_port, to_port) = if protocol == "-1" {
            (-1, -1)
        } else {
            (from, to)
        };
        Rule {
            direction,
            protocol,
            from_port,
            to_port,
            peer,
        }
    }

    pub fn ssh(cidr: &str) -> Rule {
        Rule::new(
            Direction::Ingress,
            "tcp",
            SSH_PORT,
            SSH_PORT,
            Peer::Ipv4(cidr.to_string()),
        )
    }

    /// EC2's default egress rule, the only egress the provider keeps.
    pub fn default_egress() -> Rule {
        Rule::new(
            Direction::Egress,
            "-1",
            -1,
            -1,
            Peer::Ipv4("0.0.0.0/0".into()),
        )
    }

    /// The SSH CIDR this rule opens, if it is exactly an SSH rule from an IPv4 CIDR.
    pub fn ssh_cidr(&self) -> Option<&str> {
        match &self.peer {
            Peer::Ipv4(c)
                if self.direction == Direction::Ingress
                    && self.protocol == "tcp"
                    && self.from_port == SSH_PORT
                    && self.to_port == SSH_PORT =>
            {
                Some(c)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    /// For diagnostics and the `unmanaged_security_group_rules` attribute, e.g.
    /// `ingress tcp 3306-3306 from 0.0.0.0/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dir, prep) = match self.direction {
            Direction::Ingress => ("ingress", "from"),
            Direction::Egress => ("egress", "to"),
        };
        let proto = if self.protocol == "-1" {
            "all traffic".to_string()
        } else {
            format!("{} {}-{}", self.protocol, self.from_port, self.to_port)
        };
        let peer = match &self.peer {
            Peer::Ipv4(c) | Peer::Ipv6(c) => c.clone(),
            Peer::Group(g) => format!("security group {g}"),
            Peer::PrefixList(p) => format!("prefix list {p}"),
        };
        write!(f, "{dir} {proto} {prep} {peer}")
    }
}

/// What the provider manages of a security group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    pub group_id: String,
    pub vpc_id: String,
    /// Every rule, flattened.
    pub rules: BTreeSet<Rule>,
    /// Each rule's description, as found (for an import that rebuilds `ingress`).
    pub descriptions: Vec<(Rule, Option<String>)>,
}

impl SecurityGroupInfo {
    /// CIDRs allowed to TCP 22, sorted.
    pub fn ssh_cidrs(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|r| r.ssh_cidr().map(str::to_string))
            .collect()
    }

    /// The rules found that `wanted` does not hold, sorted.
    pub fn unmanaged<'a>(&'a self, wanted: &'a BTreeSet<Rule>) -> Vec<&'a Rule> {
        self.rules.difference(wanted).collect()
    }
}

/// The rules of EC2's permission lists, flattened.
fn flatten(direction: Direction, perms: &[IpPermission]) -> Vec<(Rule, Option<String>)> {
    let mut out = Vec::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("-1");
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        let rule = |peer| Rule::new(direction, proto, from, to, peer);
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                out.push((rule(Peer::Ipv4(c.into())), r.description().map(Into::into)));
            }
        }
        for r in p.ipv6_ranges() {
            if let Some(c) = r.cidr_ipv6() {
                out.push((rule(Peer::Ipv6(c.into())), r.description().map(Into::into)));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.push((
                    rule(Peer::Group(id.into())),
                    g.description().map(Into::into),
                ));
            }
        }
        for l in p.prefix_list_ids() {
            if let Some(id) = l.prefix_list_id() {
                out.push((
                    rule(Peer::PrefixList(id.into())),
                    l.description().map(Into::into),
                ));
            }
        }
    }
    out
}

/// One EC2 permission per rule (EC2 takes lists; one each keeps a refusal's message about
/// one rule, and a stack has a handful).
fn permission(r: &WantedRule) -> IpPermission {
    let rule = &r.rule;
    let mut b = IpPermission::builder().ip_protocol(&rule.protocol);
    if rule.protocol != "-1" {
        b = b.from_port(rule.from_port).to_port(rule.to_port);
    }
    let d = r.description.clone();
    match &rule.peer {
        Peer::Ipv4(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).set_description(d).build()),
        Peer::Ipv6(c) => {
            b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).set_description(d).build())
        }
        Peer::Group(g) => b.user_id_group_pairs(
            UserIdGroupPair::builder()
                .group_id(g)
                .set_description(d)
                .build(),
        ),
        Peer::PrefixList(p) => b.prefix_list_ids(
            PrefixListId::builder()
                .prefix_list_id(p)
                .set_description(d)
                .build(),
        ),
    }
    .build()
}

/// Creates the group, revokes EC2's default egress if it is not wanted, and authorizes the
/// wanted rules. `created` is told the id before the rules are set (which may fail).
pub async fn create(
    ctx: &OpContext,
    name: &str,
    vpc_id: &str,
    wanted: &[WantedRule],
    tags: &Tags,
    created: impl FnOnce(&str),
) -> Result<String, AwsError> {
    let (tags, token) = super::context::with_create_token(tags);
    let id = ctx
        .create(
            "ec2:CreateSecurityGroup",
            &["InvalidVpcID.NotFound"],
            || super::ec2_tags::find_created(ctx, &token),
            || async {
                let out = ctx
                    .clients
                    .ec2
                    .create_security_group()
                    .group_name(name)
                    .description("autoheal instance: the rules of its autoheal_instance only")
                    .vpc_id(vpc_id)
                    .tag_specifications(ec2_spec(ResourceType::SecurityGroup, &tags))
                    .send()
                    .await?;
                Ok(out.group_id().map(str::to_string))
            },
        )
        .await?
        .ok_or_else(|| AwsError::other("ec2:CreateSecurityGroup", "no group id in the answer"))?;
    tracing::info!(security_group_id = id, "created security group");
    // Recorded before the rule calls, which may fail.
    created(&id);
    // A new group in a VPC has EC2's default egress rule and nothing else.
    let current = BTreeSet::from([Rule::default_egress()]);
    set_rules(ctx, &id, &current, wanted).await?;
    Ok(id)
}

/// The id of the security group named `name` in VPC `vpc_id` (group names are unique in a
/// VPC) whose tag `tag.0` is `tag.1`, if there is one.
pub async fn find_by_name(
    ctx: &OpContext,
    vpc_id: &str,
    name: &str,
    tag: (&str, &str),
) -> Result<Option<String>, AwsError> {
    let filter = |n: &str, v: &str| {
        aws_sdk_ec2::types::Filter::builder()
            .name(n)
            .values(v)
            .build()
    };
    let out = ctx
        .call("ec2:DescribeSecurityGroups", &[], || {
            ctx.clients
                .ec2
                .describe_security_groups()
                .filters(filter("vpc-id", vpc_id))
                .filters(filter("group-name", name))
                .filters(filter(&format!("tag:{}", tag.0), tag.1))
                .send()
        })
        .await?;
    Ok(out
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
        .map(str::to_string))
}

pub async fn find(ctx: &OpContext, group_id: &str) -> Result<Option<SecurityGroupInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeSecurityGroups", || {
            ctx.clients
                .ec2
                .describe_security_groups()
                .group_ids(group_id)
                .send()
        })
        .await?;
    let Some(group) = out.as_ref().and_then(|o| o.security_groups().first()) else {
        return Ok(None);
    };
    let mut descriptions = flatten(Direction::Ingress, group.ip_permissions());
    descriptions.extend(flatten(Direction::Egress, group.ip_permissions_egress()));
    Ok(Some(SecurityGroupInfo {
        group_id: group_id.to_string(),
        vpc_id: group.vpc_id().unwrap_or_default().to_string(),
        rules: descriptions.iter().map(|(r, _)| r.clone()).collect(),
        descriptions,
    }))
}

/// Makes the group hold exactly `wanted`: revokes every other rule (ingress and egress, IPv4
/// and IPv6, group and prefix-list peers), then authorizes the missing ones. `current` is
/// what [`find`] read.
pub async fn set_rules(
    ctx: &OpContext,
    group_id: &str,
    current: &BTreeSet<Rule>,
    wanted: &[WantedRule],
) -> Result<(), AwsError> {
    let wanted_rules: BTreeSet<&Rule> = wanted.iter().map(|w| &w.rule).collect();
    let revoke: Vec<WantedRule> = current
        .iter()
        .filter(|r| !wanted_rules.contains(r))
        .map(|r| WantedRule {
            rule: r.clone(),
            description: None,
        })
        .collect();
    let add: Vec<&WantedRule> = wanted
        .iter()
        .filter(|w| !current.contains(&w.rule))
        .collect();
    for r in &revoke {
        tracing::info!(security_group_id = group_id, rule = %r.rule, "revoking a rule the configuration does not hold");
        let perm = permission(r);
        // Gone already (an attempt whose answer was lost revoked it): what was wanted.
        let gone = ["InvalidPermission.NotFound"];
        let result = match r.rule.direction {
            Direction::Ingress => ctx
                .call("ec2:RevokeSecurityGroupIngress", &[], || {
                    ctx.clients
                        .ec2
                        .revoke_security_group_ingress()
                        .group_id(group_id)
                        .ip_permissions(perm.clone())
                        .send()
                })
                .await
                .map(|_| ()),
            Direction::Egress => ctx
                .call("ec2:RevokeSecurityGroupEgress", &[], || {
                    ctx.clients
                        .ec2
                        .revoke_security_group_egress()
                        .group_id(group_id)
                        .ip_permissions(perm.clone())
                        .send()
                })
                .await
                .map(|_| ()),
        };
        match result {
            Err(e) if e.is_code(&gone) => {}
            other => other?,
        }
    }
    for w in add {
        let perm = permission(w);
        // The rule is there: an attempt whose answer was lost added it.
        let there = ["InvalidPermission.Duplicate"];
        let result = match w.rule.direction {
            Direction::Ingress => ctx
                .call(
                    "ec2:AuthorizeSecurityGroupIngress",
                    &["InvalidGroup.NotFound"],
                    || {
                        ctx.clients
                            .ec2
                            .authorize_security_group_ingress()
                            .group_id(group_id)
                            .ip_permissions(perm.clone())
                            .send()
                    },
                )
                .await
                .map(|_| ()),
            Direction::Egress => ctx
                .call(
                    "ec2:AuthorizeSecurityGroupEgress",
                    &["InvalidGroup.NotFound"],
                    || {
                        ctx.clients
                            .ec2
                            .authorize_security_group_egress()
                            .group_id(group_id)
                            .ip_permissions(perm.clone())
                            .send()
                    },
                )
                .await
                .map(|_| ()),
        };
        match result {
            Err(e) if e.is_code(&there) => {}
            other => other?,
        }
        tracing::info!(security_group_id = group_id, rule = %w.rule, "authorized");
    }
    Ok(())
}

/// Deletes the group; DependencyViolation (network interfaces of a terminated instance still
/// referencing it) is retried until the deadline.
pub async fn delete(ctx: &OpContext, group_id: &str) -> Result<(), AwsError> {
    ctx.delete("ec2:DeleteSecurityGroup", &["DependencyViolation"], || {
        ctx.clients
            .ec2
            .delete_security_group()
            .group_id(group_id)
            .send()
    })
    .await?;
    tracing::info!(security_group_id = group_id, "deleted security group");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers_and_all_traffic_normalize_as_ec2_reports_them() {
        let p = || Peer::Ipv4("10.0.0.0/8".into());
        assert_eq!(
            Rule::new(Direction::Ingress, "6", 80, 80, p()),
            Rule::new(Direction::Ingress, "tcp", 80, 80, p())
        );
        assert_eq!(
            Rule::new(Direction::Egress, "-1", 0, 65535, p()),
            Rule::new(Direction::Egress, "all", -1, -1, p())
        );
        assert_ne!(
            Rule::new(Direction::Ingress, "tcp", 80, 80, p()),
            Rule::new(Direction::Egress, "tcp", 80, 80, p())
        );
    }

    #[test]
    fn unmanaged_rules_are_what_the_group_holds_beyond_the_wanted() {
        let wanted = BTreeSet::from([Rule::ssh("10.0.0.0/8"), Rule::default_egress()]);
        let stray = Rule::new(
            Direction::Ingress,
            "tcp",
            3306,
            3306,
            Peer::Ipv6("::/0".into()),
        );
        let info = SecurityGroupInfo {
            group_id: "sg-1".into(),
            vpc_id: "vpc-1".into(),
            rules: BTreeSet::from([Rule::ssh("10.0.0.0/8"), stray.clone()]),
            descriptions: vec![],
        };
        assert_eq!(info.unmanaged(&wanted), vec![&stray]);
        assert_eq!(info.ssh_cidrs(), vec!["10.0.0.0/8".to_string()]);
        assert_eq!(stray.to_string(), "ingress tcp 3306-3306 from ::/0");
        assert_eq!(
            Rule::default_egress().to_string(),
            "egress all traffic to 0.0.0.0/0"
        );
    }

    #[test]
    fn flattening_splits_every_peer_of_a_permission() {
        let perm = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(443)
            .to_port(443)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-2").build())
            .prefix_list_ids(PrefixListId::builder().prefix_list_id("pl-1").build())
            .build();
        let rules = flatten(Direction::Ingress, &[perm]);
        assert_eq!(rules.len(), 4);
        let back = permission(&WantedRule {
            rule: rules[1].0.clone(),
            description: None,
        });
        assert_eq!(back.ipv6_ranges()[0].cidr_ipv6(), Some("::/0"));
        assert_eq!(back.from_port(), Some(443));
    }
}
