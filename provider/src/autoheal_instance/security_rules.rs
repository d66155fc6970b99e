//! Which rules the stack's security group holds: the one place that turns the configuration
//! (`ssh_ingress_cidrs`, `ingress` blocks, the default egress) into EC2 rules, and EC2's rules
//! back into state (what of the configuration is there, and what is not the configuration's).

use std::collections::BTreeSet;

use crate::aws::security_group::{Direction, Peer, Rule, SecurityGroupInfo, WantedRule};
use crate::plugin::value::Value;

use super::spec::{IngressRule, Spec};

/// The rules of one `ingress` block, flattened (one per CIDR).
fn block_rules(b: &IngressRule) -> Vec<Rule> {
    let rule = |peer| {
        Rule::new(
            Direction::Ingress,
            &b.protocol,
            b.from_port,
            b.to_port,
            peer,
        )
    };
    b.cidr_blocks
        .iter()
        .map(|c| rule(Peer::Ipv4(c.clone())))
        .chain(
            b.ipv6_cidr_blocks
                .iter()
                .map(|c| rule(Peer::Ipv6(c.clone()))),
        )
        .collect()
}

/// Every rule the group must hold, with the description a new one gets.
pub fn wanted(spec: &Spec) -> Vec<WantedRule> {
    let mut out: Vec<WantedRule> = spec
        .ssh_ingress_cidrs
        .iter()
        .map(|c| WantedRule {
            rule: Rule::ssh(c),
            description: Some("SSH".into()),
        })
        .collect();
    for b in &spec.ingress {
        for rule in block_rules(b) {
            if !out.iter().any(|w| w.rule == rule) {
                out.push(WantedRule {
                    rule,
                    description: b.description.clone(),
                });
            }
        }
    }
    out.push(WantedRule {
        rule: Rule::default_egress(),
        description: None,
    });
    out
}

pub fn wanted_set(spec: &Spec) -> BTreeSet<Rule> {
    wanted(spec).into_iter().map(|w| w.rule).collect()
}

/// What refresh writes for the group: (`ingress`, `ssh_ingress_cidrs`,
/// `unmanaged_security_group_rules`).
///
/// - `ingress`: the state's blocks whose every rule is in the group (a block missing a rule
///   drops out, so the plan adds it back). With no `ingress` in the state (an import, or a
///   state written before the attribute existed) the group's non-SSH inbound rules become
///   blocks, one per protocol, port range and description.
/// - `ssh_ingress_cidrs`: the group's SSH CIDRs.
/// - unmanaged: every rule the resulting configuration does not hold.
pub fn refreshed(
    state: &Value,
    spec: &Spec,
    group: &SecurityGroupInfo,
) -> (Value, Vec<String>, Vec<String>) {
    // The state's own values are kept as they are: re-rendering them could differ from the
    // configuration in form only (null versus empty) and show a change that is none.
    let (blocks, values): (Vec<IngressRule>, Vec<Value>) = if state.attr("ingress").is_null() {
        let blocks = rebuilt_blocks(group);
        let values = blocks.iter().map(block_value).collect();
        (blocks, values)
    } else {
        state
            .attr("ingress")
            .elements()
            .iter()
            .map(|v| (IngressRule::from_value(v), v.clone()))
            .filter(|(b, _)| block_rules(b).iter().all(|r| group.rules.contains(r)))
            .unzip()
    };
    let ssh = group.ssh_cidrs();
    let seen = Spec {
        ingress: blocks,
        ssh_ingress_cidrs: ssh.clone(),
        ..spec.clone()
    };
    let unmanaged = group
        .unmanaged(&wanted_set(&seen))
        .into_iter()
        .map(ToString::to_string)
        .collect();
    (Value::Set(values), ssh, unmanaged)
}

/// The group's inbound rules other than SSH from IPv4, grouped into blocks.
fn rebuilt_blocks(group: &SecurityGroupInfo) -> Vec<IngressRule> {
    let mut blocks: Vec<IngressRule> = Vec::new();
    for (rule, description) in &group.descriptions {
        if rule.direction != Direction::Ingress || rule.ssh_cidr().is_some() {
            continue;
        }
        let (v4, v6) = match &rule.peer {
            Peer::Ipv4(c) => (Some(c.clone()), None),
            Peer::Ipv6(c) => (None, Some(c.clone())),
            // Not expressible in `ingress`: stays unmanaged.
            Peer::Group(_) | Peer::PrefixList(_) => continue,
        };
        let same = |b: &&mut IngressRule| {
            b.protocol == rule.protocol
                && b.from_port == rule.from_port
                && b.to_port == rule.to_port
                && b.description == *description
        };
        let block = match blocks.iter_mut().find(|b| same(b)) {
            Some(b) => b,
            None => {
                blocks.push(IngressRule {
                    protocol: rule.protocol.clone(),
                    from_port: rule.from_port,
                    to_port: rule.to_port,
                    cidr_blocks: vec![],
                    ipv6_cidr_blocks: vec![],
                    description: description.clone(),
                });
                blocks.last_mut().expect("just pushed")
            }
        };
        block.cidr_blocks.extend(v4);
        block.ipv6_cidr_blocks.extend(v6);
    }
    blocks
}

fn block_value(b: &IngressRule) -> Value {
    let list = |v: &[String]| {
        if v.is_empty() {
            Value::Null
        } else {
            Value::List(v.iter().map(|c| Value::from(c.as_str())).collect())
        }
    };
    Value::Object(
        [
            ("protocol", Value::from(b.protocol.as_str())),
            ("from_port", Value::from(i64::from(b.from_port))),
            ("to_port", Value::from(i64::from(b.to_port))),
            ("cidr_blocks", list(&b.cidr_blocks)),
            ("ipv6_cidr_blocks", list(&b.ipv6_cidr_blocks)),
            ("description", Value::from(b.description.clone())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::security_group::SSH_PORT;

    fn spec(ssh: &[&str], ingress: Vec<IngressRule>) -> Spec {
        let mut v = Value::null_object(&super::super::schema::schema().value_type());
        v.set_attr("name", "web".into());
        let mut s = Spec::from_value(&v);
        s.ssh_ingress_cidrs = ssh.iter().map(|c| c.to_string()).collect();
        s.ingress = ingress;
        s
    }

    fn https() -> IngressRule {
        IngressRule {
            protocol: "tcp".into(),
            from_port: 443,
            to_port: 443,
            cidr_blocks: vec!["0.0.0.0/0".into()],
            ipv6_cidr_blocks: vec!["::/0".into()],
            description: Some("web".into()),
        }
    }

    fn group(rules: &[Rule]) -> SecurityGroupInfo {
        SecurityGroupInfo {
            group_id: "sg-1".into(),
            vpc_id: "vpc-1".into(),
            rules: rules.iter().cloned().collect(),
            descriptions: rules.iter().map(|r| (r.clone(), None)).collect(),
        }
    }

    #[test]
    fn the_group_holds_ssh_the_application_rules_and_the_default_egress() {
        let wanted = wanted_set(&spec(&["10.0.0.0/8"], vec![https()]));
        let https = |p| Rule::new(Direction::Ingress, "tcp", 443, 443, p);
        assert_eq!(
            wanted,
            BTreeSet::from([
                Rule::new(
                    Direction::Ingress,
                    "tcp",
                    SSH_PORT,
                    SSH_PORT,
                    Peer::Ipv4("10.0.0.0/8".into())
                ),
                https(Peer::Ipv4("0.0.0.0/0".into())),
                https(Peer::Ipv6("::/0".into())),
                Rule::default_egress(),
            ])
        );
    }

    #[test]
    fn refresh_reports_what_is_not_configured_and_drops_blocks_that_lost_a_rule() {
        let s = spec(&[], vec![https()]);
        let mut state = Value::null_object(&super::super::schema::schema().value_type());
        state.set_attr("ingress", Value::Set(vec![block_value(&https())]));
        let stray = Rule::new(
            Direction::Egress,
            "tcp",
            25,
            25,
            Peer::Ipv4("198.51.100.0/24".into()),
        );
        // All configured rules there, plus a stray egress rule.
        let mut rules: Vec<Rule> = wanted_set(&s).into_iter().collect();
        rules.push(stray.clone());
        let (ingress, ssh, unmanaged) = refreshed(&state, &s, &group(&rules));
        assert_eq!(ingress.elements().len(), 1);
        assert!(ssh.is_empty());
        assert_eq!(unmanaged, vec![stray.to_string()]);
        // The IPv6 half of the block revoked by hand: the block drops out (the plan adds it
        // back), and its IPv4 half is then not the configuration's.
        let v4 = Rule::new(
            Direction::Ingress,
            "tcp",
            443,
            443,
            Peer::Ipv4("0.0.0.0/0".into()),
        );
        let (ingress, _, unmanaged) =
            refreshed(&state, &s, &group(&[v4.clone(), Rule::default_egress()]));
        assert!(ingress.elements().is_empty());
        assert_eq!(unmanaged, vec![v4.to_string()]);
    }

    #[test]
    fn an_import_rebuilds_the_blocks_from_the_groups_inbound_rules() {
        let s = spec(&[], vec![]);
        let state = Value::null_object(&super::super::schema::schema().value_type());
        let rules = [
            Rule::ssh("192.0.2.0/24"),
            Rule::new(
                Direction::Ingress,
                "tcp",
                443,
                443,
                Peer::Ipv4("0.0.0.0/0".into()),
            ),
            Rule::new(
                Direction::Ingress,
                "tcp",
                443,
                443,
                Peer::Ipv6("::/0".into()),
            ),
            Rule::new(
                Direction::Ingress,
                "tcp",
                5432,
                5432,
                Peer::Group("sg-2".into()),
            ),
            Rule::default_egress(),
        ];
        let (ingress, ssh, unmanaged) = refreshed(&state, &s, &group(&rules));
        assert_eq!(ssh, vec!["192.0.2.0/24".to_string()]);
        let blocks: Vec<IngressRule> = ingress
            .elements()
            .iter()
            .map(IngressRule::from_value)
            .collect();
        assert_eq!(
            blocks,
            vec![IngressRule {
                description: None,
                ..https()
            }]
        );
        // A group peer has no `ingress` form: it stays unmanaged, so the apply revokes it.
        assert_eq!(unmanaged, vec![rules[3].to_string()]);
    }
}
