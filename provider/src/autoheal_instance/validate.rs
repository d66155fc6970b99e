//! Configuration checks of `autoheal_instance`.
//!
//! Runs on the raw configuration, where omitted attributes are null (defaults are only filled
//! in at plan time) and values computed from other resources are unknown: every check skips
//! unknown values, and checks that combine attributes use the default for an omitted one.
//! Each problem is an error on the attribute concerned, with a short summary and a detail
//! that says what is allowed and what was given. [`validate`] runs both from
//! `ValidateResourceConfig` and again at plan time, when the provider's region is known and
//! more values are.

use std::collections::HashSet;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::plugin::diagnostics::{AttributePath, Diagnostics};
use crate::plugin::resource::ValidateContext;
use crate::plugin::value::Value;

use super::duration::parse_go_duration;
use super::names::{AWS_MAX_TAGS, NAME_MAX_LEN, PROVIDER_TAG_COUNT, RESERVED_TAG_PREFIXES};
use super::schema::{
    DEFAULT_LAMBDA_TIMEOUT, DEFAULT_LIFECYCLE_HOOK_TIMEOUT, DEFAULT_SUBNET_CIDR,
    DEFAULT_VOLUME_SIZE, DEFAULT_VOLUME_TYPE, DEFAULT_VPC_CIDR, FILESYSTEMS, LAMBDA_ARCHITECTURES,
    LOG_RETENTION_DAYS, MAX_ALARM_ACTIONS, MAX_ALARM_NO_IN_SERVICE_MINUTES,
    MAX_FAILOVER_DETECTION_WINDOW, MAX_SNAPSHOT_INTERVAL, MAX_SNAPSHOT_RETENTION,
    MIN_FAILOVER_DETECTION_WINDOW, MIN_SNAPSHOT_INTERVAL, USER_DATA_MAX_BYTES, VOLUME_ON_DESTROY,
    VOLUME_TYPES,
};

/// VPC and subnet CIDR prefix lengths AWS accepts.
const VPC_PREFIX_RANGE: (u8, u8) = (16, 28);

/// Directories the data volume must not be mounted over: the system would stop working (or
/// cloud-init, which lives in /var/lib/cloud, would lose its state).
const SYSTEM_DIRECTORIES: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var",
];

/// Attributes that describe a data volume the provider creates, refused with
/// `existing_volume_id`.
const CREATED_VOLUME_ATTRIBUTES: &[&str] = &[
    "volume_snapshot_id",
    "volume_size",
    "volume_type",
    "volume_iops",
    "volume_throughput",
    "volume_kms_key_id",
    "volume_on_destroy",
];

/// Checks a configuration of `autoheal_instance`.
pub fn validate(config: &Value, ctx: &ValidateContext) -> Diagnostics {
    let mut v = Validator {
        config,
        diags: Diagnostics::new(),
    };
    if !matches!(config, Value::Object(_)) {
        return v.diags;
    }
    v.name();
    v.availability_zone(ctx);
    v.network();
    v.failover_zones(ctx);
    v.aws_ids();
    v.instance();
    v.access();
    v.volume();
    v.lambda();
    v.operators();
    v.snapshots();
    v.timeouts();
    v.tags();
    v.diags
}

struct Validator<'a> {
    config: &'a Value,
    diags: Diagnostics,
}

/// `arn:<partition>:sns:<region>:<12-digit account>:<topic>`, the topic name as SNS allows
/// (1 to 256 letters, digits, `-`, `_`; a FIFO topic ends in `.fifo`).
pub fn is_sns_topic_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "sns", region, account, topic] = parts.as_slice() else {
        return false;
    };
    let base = topic.strip_suffix(".fifo").unwrap_or(topic);
    partition.starts_with("aws")
        && !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && (1..=256).contains(&base.len())
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn root(name: &str) -> AttributePath {
    AttributePath::root(name)
}

fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<prefix>` followed by 8 or 17 lowercase hexadecimal digits, the form of EC2 ids.
fn is_aws_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parses an IPv4 CIDR block with no host bits set.
fn parse_cidr(value: &str) -> Result<Ipv4Net, String> {
    let net = Ipv4Net::from_str(value).map_err(|_| {
        format!(
            "{value:?} is not an IPv4 CIDR block such as \"10.0.0.0/16\" (address/prefix length)."
        )
    })?;
    if net.addr() != net.network() {
        return Err(format!(
            "{value:?} has host bits set: the address must be the first of its block, \
             here \"{}\".",
            net.trunc()
        ));
    }
    Ok(net)
}

/// The region of an Availability Zone name, or `None` when it does not look like one.
/// Accepts regional zones (`ap-southeast-2a`, `us-gov-west-1b`) and Local Zones
/// (`us-east-1-bos-1a`).
pub fn zone_region(zone: &str) -> Option<&str> {
    if !zone
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let parts: Vec<&str> = zone.split('-').collect();
    let alpha = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    // Digits followed by one letter: "2a".
    let digits_letter = |p: &str| {
        p.len() >= 2 && digits(&p[..p.len() - 1]) && p.as_bytes()[p.len() - 1].is_ascii_lowercase()
    };
    if parts.len() < 3 || parts[0].len() != 2 || !alpha(parts[0]) {
        return None;
    }
    // The first part after the region's words that starts with a digit.
    let i = parts
        .iter()
        .position(|p| p.as_bytes().first().is_some_and(u8::is_ascii_digit))?;
    if i < 2 || !parts[1..i].iter().all(|p| alpha(p)) {
        return None;
    }
    if i == parts.len() - 1 && digits_letter(parts[i]) {
        // Regional zone: the region is the name without its last letter.
        return Some(&zone[..zone.len() - 1]);
    }
    let local = &parts[i + 1..];
    if digits(parts[i])
        && local.len() >= 2
        && local[..local.len() - 1].iter().all(|p| alpha(p))
        && digits_letter(local[local.len() - 1])
    {
        let region_len = parts[..=i].iter().map(|p| p.len() + 1).sum::<usize>() - 1;
        return Some(&zone[..region_len]);
    }
    None
}

impl Validator<'_> {
    fn attr(&self, name: &str) -> &Value {
        self.config.attr(name)
    }

    /// True when the configuration sets the attribute (to a known or unknown value).
    fn is_set(&self, name: &str) -> bool {
        !self.attr(name).is_null()
    }

    /// Set to a known value. Conflict checks use this: at validate time a value that comes
    /// from a variable or another resource is unknown and may well turn out null, so only
    /// known values conflict (plan validates again with the values known then).
    fn is_known_set(&self, name: &str) -> bool {
        let v = self.attr(name);
        !v.is_null() && !v.is_unknown()
    }

    fn known_str(&self, name: &str) -> Option<&str> {
        self.attr(name).as_str()
    }

    /// The configured string, or `default` when omitted; `None` when unknown.
    fn str_or<'s>(&'s self, name: &str, default: &'s str) -> Option<&'s str> {
        match self.attr(name) {
            Value::Null => Some(default),
            v => v.as_str(),
        }
    }

    fn error(&mut self, path: AttributePath, summary: &str, detail: impl Into<String>) {
        self.diags.attribute_error(path, summary, detail);
    }

    /// A whole number from a number value; reports an error for a fraction.
    fn whole_number(&mut self, path: AttributePath, value: &Value) -> Option<i64> {
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Some(i),
                None => {
                    self.error(
                        path.clone(),
                        "Not a whole number",
                        format!("`{path}` must be a whole number; got {n}."),
                    );
                    None
                }
            },
            _ => None,
        }
    }

    /// The configured whole number, or `default` when omitted; `None` when unknown or not
    /// whole (reported).
    fn int_or(&mut self, name: &str, default: i64) -> Option<i64> {
        let value = self.attr(name).clone();
        match value {
            Value::Null => Some(default),
            v => self.whole_number(root(name), &v),
        }
    }

    /// The configured whole number; `None` when omitted, unknown or not whole (reported).
    fn int(&mut self, name: &str) -> Option<i64> {
        let value = self.attr(name).clone();
        self.whole_number(root(name), &value)
    }

    fn range(&mut self, name: &str, min: i64, max: i64, unit: &str) {
        if let Some(n) = self.int(name) {
            if n < min || n > max {
                self.error(
                    root(name),
                    "Value out of range",
                    format!("`{name}` must be from {min} to {max}{unit}; got {n}."),
                );
            }
        }
    }

    fn one_of(&mut self, name: &str, allowed: &[&str]) {
        if let Some(s) = self.known_str(name) {
            if !allowed.contains(&s) {
                let detail = format!(
                    "`{name}` must be one of {}; got {s:?}.",
                    quoted_list(allowed)
                );
                self.error(root(name), &format!("Invalid {name}"), detail);
            }
        }
    }

    fn name(&mut self) {
        let Some(name) = self.known_str("name") else {
            return;
        };
        let problem = if name.is_empty() || name.chars().count() > NAME_MAX_LEN {
            Some(format!(
                "it has {} characters; it must have 1 to {NAME_MAX_LEN}, so that every AWS \
                 name derived from it (such as \"<name>-<region>-attach\" for the IAM role) fits \
                 AWS's 64-character limits",
                name.chars().count()
            ))
        } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            Some("it must start with a letter".to_string())
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            Some(format!(
                "it contains {c:?}; only letters, digits and hyphens are allowed"
            ))
        } else if name.ends_with('-') {
            Some("it must not end with a hyphen".to_string())
        } else if name.contains("--") {
            Some("it must not contain two hyphens in a row".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                root("name"),
                "Invalid name",
                format!("The name {name:?} cannot be used: {problem}."),
            );
        }
    }

    fn availability_zone(&mut self, ctx: &ValidateContext) {
        let Some(zone) = self.known_str("availability_zone") else {
            return;
        };
        let Some(zone_region) = zone_region(zone) else {
            self.error(
                root("availability_zone"),
                "Invalid Availability Zone",
                format!(
                    "`availability_zone` must be an Availability Zone name such as \
                     \"ap-southeast-2a\" (or a Local Zone such as \"us-east-1-bos-1a\"), not \
                     a zone id such as \"apse2-az1\"; got {zone:?}."
                ),
            );
            return;
        };
        if let Some(region) = ctx.region.as_deref() {
            if zone_region != region {
                self.error(
                    root("availability_zone"),
                    "Availability Zone not in the provider's region",
                    format!(
                        "{zone:?} is in region {zone_region:?}, but the provider is configured \
                         for region {region:?}. Use a zone of {region:?} (such as \
                         \"{region}a\") or configure the provider for {zone_region:?}."
                    ),
                );
            }
        }
    }

    fn network(&mut self) {
        if self.is_known_set("subnet_id") {
            for name in ["vpc_cidr", "subnet_cidr"] {
                if self.is_known_set(name) {
                    self.error(
                        root(name),
                        "Conflicting network settings",
                        format!(
                            "`{name}` describes the VPC the provider creates when `subnet_id` \
                             is omitted. With `subnet_id` the instance goes into that existing \
                             subnet, so remove `{name}` (or remove `subnet_id`)."
                        ),
                    );
                }
            }
        } else {
            let vpc = self.vpc_cidr("vpc_cidr", DEFAULT_VPC_CIDR);
            let subnet = self.vpc_cidr("subnet_cidr", DEFAULT_SUBNET_CIDR);
            if let (Some(vpc), Some(subnet)) = (vpc, subnet) {
                if !vpc.contains(&subnet) {
                    let (path, detail) = if self.is_set("subnet_cidr") {
                        (
                            "subnet_cidr",
                            format!(
                                "`subnet_cidr` \"{subnet}\" must lie inside `vpc_cidr` \"{vpc}\"."
                            ),
                        )
                    } else {
                        (
                            "vpc_cidr",
                            format!(
                                "The default `subnet_cidr` \"{subnet}\" is not inside `vpc_cidr` \
                                 \"{vpc}\": set `subnet_cidr` to a block inside \"{vpc}\"."
                            ),
                        )
                    };
                    self.error(root(path), "Subnet outside the VPC", detail);
                }
            }
        }

        let cidrs = self.attr("ssh_ingress_cidrs").clone();
        let mut seen = HashSet::new();
        for (i, item) in cidrs.elements().iter().enumerate() {
            let Some(s) = item.as_str() else { continue };
            let path = root("ssh_ingress_cidrs").index(i as i64);
            match parse_cidr(s) {
                Ok(net) => {
                    if !seen.insert(net) {
                        self.error(
                            path,
                            "Duplicate CIDR block",
                            format!(
                                "\"{net}\" appears more than once in `ssh_ingress_cidrs`; AWS \
                                 refuses duplicate security group rules."
                            ),
                        );
                    }
                }
                Err(detail) => self.error(path, "Invalid CIDR block", detail),
            }
        }
    }

    /// `failover_zones` and `failover_subnet_ids`: zones of the region other than the home
    /// one; the provider's VPC has room for a subnet per zone; with `subnet_id`, one of the
    /// user's subnets per zone, and only then.
    fn failover_zones(&mut self, ctx: &ValidateContext) {
        let zones: Vec<String> = self
            .attr("failover_zones")
            .elements()
            .iter()
            .filter_map(|z| z.as_str().map(str::to_string))
            .collect();
        let home = self.known_str("availability_zone").map(str::to_string);
        for zone in &zones {
            let detail = match zone_region(zone) {
                None => Some(format!(
                    "Each of `failover_zones` must be an Availability Zone name such as \
                     \"ap-southeast-2b\", not a zone id such as \"apse2-az2\"; got {zone:?}."
                )),
                Some(r) if ctx.region.as_deref().is_some_and(|region| region != r) => {
                    Some(format!(
                        "{zone:?} is in region {r:?}, but the provider is configured for region \
                         {:?}: a failover zone must be in the stack's region (the Elastic IP \
                         and the snapshots are regional).",
                        ctx.region.as_deref().unwrap_or_default()
                    ))
                }
                Some(_) if home.as_deref() == Some(zone.as_str()) => Some(format!(
                    "{zone:?} is `availability_zone`, the home zone: a failover zone must be \
                     another one."
                )),
                Some(_) => None,
            };
            if let Some(detail) = detail {
                self.error(root("failover_zones"), "Invalid failover zone", detail);
            }
        }
        if !zones.is_empty() && self.attr("snapshot_interval").is_null() {
            self.error(
                root("failover_zones"),
                "Failover zones need scheduled snapshots",
                "A zone failover restores the newest completed scheduled snapshot of the data \
                 volume into the failover zone: without `snapshot_interval` there is none, and \
                 the stack would fail over to nothing. Set `snapshot_interval` (the recovery \
                 point objective, e.g. \"1h\"), or remove `failover_zones`.",
            );
        }
        if let Some(w) = self
            .known_str("failover_detection_window")
            .map(str::to_string)
        {
            let problem = match parse_go_duration(&w) {
                Err(e) => Some(e.to_string()),
                Ok(d) if d.as_secs() % 60 != 0 || d.subsec_nanos() != 0 => {
                    Some("the window is in whole minutes".to_string())
                }
                Ok(d) if d < MIN_FAILOVER_DETECTION_WINDOW || d > MAX_FAILOVER_DETECTION_WINDOW => {
                    Some("it must be from 5 minutes to 24 hours: shorter mistakes a brief capacity shortage for a lost zone".to_string())
                }
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                self.error(
                    root("failover_detection_window"),
                    "Invalid failover detection window",
                    format!(
                        "`failover_detection_window` must be a duration in whole minutes from \
                         5m to 24h, such as \"10m\"; got {w:?}: {problem}."
                    ),
                );
            }
            if zones.is_empty() {
                self.diags.attribute_warning(
                    root("failover_detection_window"),
                    "No failover to detect",
                    "`failover_detection_window` only applies with `failover_zones`.",
                );
            }
        }
        if let Some(active) = self
            .known_str("active_availability_zone")
            .map(str::to_string)
        {
            let detail = if zones.is_empty() || self.attr("snapshot_interval").is_null() {
                Some(
                    "`active_availability_zone` is set only to fail back after a zone \
                     failover, which needs `failover_zones` and `snapshot_interval`."
                        .to_string(),
                )
            } else if home.as_deref().is_some_and(|h| h != active) {
                Some(format!(
                    "`active_availability_zone` may only be `availability_zone` ({:?}): \
                     setting it fails the stack back home; moving to a failover zone is the \
                     failover function's, when the serving zone is lost. Got {active:?}.",
                    home.as_deref().unwrap_or_default()
                ))
            } else {
                None
            };
            if let Some(detail) = detail {
                self.error(
                    root("active_availability_zone"),
                    "Invalid active availability zone",
                    detail,
                );
            }
        }
        if !zones.is_empty() && self.attr("persistent_network_interface").as_bool() == Some(true) {
            self.error(
                root("failover_zones"),
                "Failover zones need no persistent network interface",
                "A network interface lives in one subnet, so in one zone: with \
                 `persistent_network_interface` the instance could never serve from a \
                 failover zone. Remove one of `failover_zones` and \
                 `persistent_network_interface`.",
            );
        }
        let ids = self.attr("failover_subnet_ids").clone();
        let users_network = self.is_known_set("subnet_id");
        if !users_network {
            if self.is_known_set("failover_subnet_ids") && self.attr("subnet_id").is_null() {
                self.error(
                    root("failover_subnet_ids"),
                    "failover_subnet_ids is only for your own subnets",
                    "Without `subnet_id` the provider creates the network, with a subnet in \
                     each of `failover_zones`, and reports them in `failover_subnet_ids`. \
                     Remove `failover_subnet_ids`, or give `subnet_id` and name one of your \
                     subnets per failover zone.",
                );
            }
            // Counting the room enumerates the VPC's blocks: only where zones need it (the
            // blocks are not even read otherwise).
            let known_cidrs = || {
                Some((
                    self.str_or("vpc_cidr", DEFAULT_VPC_CIDR)?.to_string(),
                    self.str_or("subnet_cidr", DEFAULT_SUBNET_CIDR)?.to_string(),
                ))
            };
            if let Some((vpc, subnet)) = (!zones.is_empty()).then(known_cidrs).flatten() {
                let room = super::failover_subnets::room(&vpc, &subnet);
                if parse_cidr(&vpc).is_ok() && parse_cidr(&subnet).is_ok() && zones.len() > room {
                    self.error(
                        root("failover_zones"),
                        "No room for the failover subnets",
                        format!(
                            "Each failover zone gets a subnet of `subnet_cidr`'s size \
                             (\"{subnet}\") inside `vpc_cidr` (\"{vpc}\"), which has room for \
                             {room} beside the home subnet; {} failover zones are configured. \
                             Use a larger `vpc_cidr` or a smaller `subnet_cidr`.",
                            zones.len()
                        ),
                    );
                }
            }
            return;
        }
        // The user's network: one of their subnets per failover zone.
        let zones_known = self.attr("failover_zones").is_wholly_known();
        match ids.entries() {
            // At `failover_zones`: the attribute the configuration has (Terraform points at
            // the resource's first line for one it lacks).
            None if !zones.is_empty() && zones_known && ids.is_null() => self.error(
                root("failover_zones"),
                "Missing failover subnets",
                format!(
                    "With `subnet_id` the provider creates no network: name one of your \
                     subnets for each of `failover_zones` ({}), as a map from zone to subnet \
                     id, e.g. failover_subnet_ids = {{ \"{}\" = \"subnet-...\" }}.",
                    quoted_list(&zones.iter().map(String::as_str).collect::<Vec<_>>()),
                    zones[0]
                ),
            ),
            Some(entries) if zones_known => {
                let entries = entries.clone();
                for zone in &zones {
                    if !entries.contains_key(zone) {
                        self.error(
                            root("failover_subnet_ids"),
                            "Missing failover subnet",
                            format!(
                                "{zone:?} is in `failover_zones` but `failover_subnet_ids` \
                                 names no subnet for it."
                            ),
                        );
                    }
                }
                for (zone, id) in &entries {
                    let path = root("failover_subnet_ids").key(zone);
                    if !zones.contains(zone) {
                        self.error(
                            path,
                            "Subnet for a zone that is not a failover zone",
                            format!(
                                "`failover_subnet_ids` names a subnet for {zone:?}, which is \
                                 not in `failover_zones`: add the zone there or remove the \
                                 entry."
                            ),
                        );
                    } else if let Some(id) = id.as_str() {
                        if !is_aws_id(id, "subnet-") {
                            self.error(
                                path,
                                "Invalid failover subnet id",
                                format!(
                                    "Each of `failover_subnet_ids` must be a subnet id: \
                                     \"subnet-\" followed by 8 or 17 lowercase hexadecimal \
                                     digits; got {id:?}."
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Parses a VPC or subnet CIDR (configured, or its default) and checks its prefix length.
    fn vpc_cidr(&mut self, name: &str, default: &str) -> Option<Ipv4Net> {
        let value = self.str_or(name, default)?.to_string();
        match parse_cidr(&value) {
            Ok(net) => {
                let (min, max) = VPC_PREFIX_RANGE;
                if net.prefix_len() < min || net.prefix_len() > max {
                    self.error(
                        root(name),
                        "CIDR block size not allowed",
                        format!(
                            "AWS allows VPC and subnet blocks from /{min} (65,536 addresses) to \
                             /{max} (16 addresses); `{name}` \"{net}\" is a /{}.",
                            net.prefix_len()
                        ),
                    );
                    return None;
                }
                Some(net)
            }
            Err(detail) => {
                self.error(root(name), "Invalid CIDR block", detail);
                None
            }
        }
    }

    fn aws_ids(&mut self) {
        for (name, prefix, what) in [
            ("subnet_id", "subnet-", "a subnet id"),
            (
                "existing_allocation_id",
                "eipalloc-",
                "an Elastic IP allocation id",
            ),
            ("existing_volume_id", "vol-", "an EBS volume id"),
            ("volume_snapshot_id", "snap-", "an EBS snapshot id"),
            ("ami", "ami-", "an AMI id"),
        ] {
            let Some(value) = self.known_str(name) else {
                continue;
            };
            if !is_aws_id(value, prefix) {
                let detail = format!(
                    "`{name}` must be {what}: \"{prefix}\" followed by 8 or 17 lowercase \
                     hexadecimal digits, such as \"{prefix}0123456789abcdef0\"; got {value:?}."
                );
                self.error(root(name), &format!("Invalid {name}"), detail);
            }
        }
    }

    /// The instance's access: `ingress` rules, `security_group_ids`, `iam_instance_profile`,
    /// `lambda_role_permissions_boundary`.
    fn access(&mut self) {
        let ingress = self.attr("ingress").clone();
        let mut seen = HashSet::new();
        for rule in ingress.elements() {
            self.ingress_rule(rule, &mut seen);
        }
        let groups = self.attr("security_group_ids").clone();
        let mut seen_groups = HashSet::new();
        for (i, g) in groups.elements().iter().enumerate() {
            let Some(id) = g.as_str() else { continue };
            let path = root("security_group_ids").index(i as i64);
            if !is_aws_id(id, "sg-") {
                self.error(
                    path,
                    "Invalid security group id",
                    format!(
                        "Each of `security_group_ids` must be a security group id: \"sg-\" \
                         followed by 8 or 17 lowercase hexadecimal digits; got {id:?}."
                    ),
                );
            } else if !seen_groups.insert(id.to_string()) {
                self.error(
                    path,
                    "Duplicate security group",
                    format!("{id:?} appears more than once in `security_group_ids`."),
                );
            }
        }
        if let Some(profile) = self.known_str("iam_instance_profile") {
            let name_ok = |n: &str| {
                !n.is_empty()
                    && n.len() <= 128
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
            };
            let ok = match profile.strip_prefix("arn:") {
                Some(rest) => {
                    let parts: Vec<&str> = rest.splitn(5, ':').collect();
                    matches!(parts.as_slice(), [_, "iam", "", account, res]
                        if account.len() == 12
                            && account.bytes().all(|b| b.is_ascii_digit())
                            && res.strip_prefix("instance-profile/")
                                .and_then(|p| p.rsplit('/').next())
                                .is_some_and(name_ok))
                }
                None => name_ok(profile),
            };
            if !ok {
                self.error(
                    root("iam_instance_profile"),
                    "Invalid instance profile",
                    format!(
                        "`iam_instance_profile` must be an instance profile name (up to 128 of \
                         letters, digits and +=,.@_-) or its ARN \
                         (arn:aws:iam::123456789012:instance-profile/NAME); got {profile:?}."
                    ),
                );
            }
        }
        if let Some(boundary) = self.known_str("lambda_role_permissions_boundary") {
            let parts: Vec<&str> = boundary.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", _, "iam", "", account, res]
                if (*account == "aws" || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
                    && res.strip_prefix("policy/").is_some_and(|p| !p.is_empty()));
            if !ok {
                self.error(
                    root("lambda_role_permissions_boundary"),
                    "Invalid permissions boundary",
                    format!(
                        "`lambda_role_permissions_boundary` must be the ARN of a managed \
                         policy, such as \"arn:aws:iam::123456789012:policy/autoheal-lambda-boundary\"; \
                         got {boundary:?}."
                    ),
                );
            }
        }
    }

    /// One `ingress` block. Set elements have no index, so diagnostics point at `ingress`
    /// and name the rule.
    fn ingress_rule(&mut self, rule: &Value, seen: &mut HashSet<String>) {
        let path = root("ingress");
        let proto = rule.attr("protocol").as_str().map(str::to_ascii_lowercase);
        let from = rule.attr("from_port").as_i64();
        let to = rule.attr("to_port").as_i64();
        let what = format!(
            "the `ingress` rule {} {}-{}",
            proto.as_deref().unwrap_or("?"),
            from.map_or("?".into(), |n| n.to_string()),
            to.map_or("?".into(), |n| n.to_string())
        );
        if let Some(p) = &proto {
            let named = ["tcp", "udp", "icmp", "icmpv6", "-1"].contains(&p.as_str());
            let number = p.parse::<u8>().is_ok();
            if !named && !number {
                self.error(
                    path.clone(),
                    "Invalid protocol",
                    format!(
                        "In {what}: `protocol` must be \"tcp\", \"udp\", \"icmp\", \"icmpv6\", \
                         \"-1\" (all traffic) or a protocol number 0-255; got {p:?}."
                    ),
                );
            }
            if let (Some(f), Some(t)) = (from, to) {
                let icmp = p == "icmp" || p == "icmpv6" || p == "1" || p == "58";
                let (lo, hi) = if icmp { (-1, 255) } else { (0, 65535) };
                let bad_range =
                    p != "-1" && (f < lo || t > hi || t < lo || f > hi || (!icmp && f > t));
                if bad_range {
                    self.error(
                        path.clone(),
                        "Invalid port range",
                        format!(
                            "In {what}: ports must lie in {lo}..{hi}, with `from_port` no more \
                             than `to_port`."
                        ),
                    );
                }
            }
            if p == "tcp"
                && from == Some(22)
                && to == Some(22)
                && !rule.attr("cidr_blocks").elements().is_empty()
            {
                self.error(
                    path.clone(),
                    "SSH belongs in ssh_ingress_cidrs",
                    format!(
                        "In {what}: SSH from IPv4 blocks is configured with \
                         `ssh_ingress_cidrs`, so that both cannot disagree."
                    ),
                );
            }
        }
        let v4 = rule.attr("cidr_blocks").elements().to_vec();
        let v6 = rule.attr("ipv6_cidr_blocks").elements().to_vec();
        if rule.attr("cidr_blocks").is_wholly_known()
            && rule.attr("ipv6_cidr_blocks").is_wholly_known()
            && v4.is_empty()
            && v6.is_empty()
        {
            self.error(
                path.clone(),
                "Rule without a source",
                format!("In {what}: set `cidr_blocks`, `ipv6_cidr_blocks` or both."),
            );
        }
        for c in v4.iter().filter_map(|c| c.as_str()) {
            match parse_cidr(c) {
                Ok(net) => {
                    if !seen.insert(format!("{what} {net}")) {
                        self.error(
                            path.clone(),
                            "Duplicate rule",
                            format!("{what} from \"{net}\" appears more than once; AWS refuses duplicate rules."),
                        );
                    }
                }
                Err(detail) => self.error(
                    path.clone(),
                    "Invalid CIDR block",
                    format!("In {what}: {detail}"),
                ),
            }
        }
        for c in v6.iter().filter_map(|c| c.as_str()) {
            match ipnet::Ipv6Net::from_str(c) {
                Ok(net) if net.addr() == net.network() => {
                    if !seen.insert(format!("{what} {net}")) {
                        self.error(
                            path.clone(),
                            "Duplicate rule",
                            format!("{what} from \"{net}\" appears more than once; AWS refuses duplicate rules."),
                        );
                    }
                }
                Ok(net) => self.error(
                    path.clone(),
                    "Invalid IPv6 CIDR block",
                    format!(
                        "In {what}: {c:?} has host bits set; the block starts at \"{}\".",
                        net.trunc()
                    ),
                ),
                Err(_) => self.error(
                    path.clone(),
                    "Invalid IPv6 CIDR block",
                    format!(
                        "In {what}: {c:?} is not an IPv6 CIDR block such as \"2001:db8::/32\"."
                    ),
                ),
            }
        }
        if let Some(d) = rule.attr("description").as_str() {
            // EC2's rule: up to 255 characters of a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*
            let allowed =
                |c: char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c);
            if d.chars().count() > 255 || !d.chars().all(allowed) {
                self.error(
                    path,
                    "Invalid rule description",
                    format!(
                        "In {what}: `description` may have up to 255 characters of letters, \
                         digits, spaces and ._-:/()#,@[]+=&;{{}}!$* (EC2's rule); got {d:?}."
                    ),
                );
            }
        }
    }

    fn instance(&mut self) {
        if let Some(t) = self.known_str("instance_type") {
            let valid = t.split_once('.').is_some_and(|(family, size)| {
                let ok = |p: &str| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                };
                ok(family)
                    && ok(size)
                    && family.starts_with(|c: char| c.is_ascii_lowercase())
                    && !size.contains('.')
            });
            if !valid {
                self.error(
                    root("instance_type"),
                    "Invalid instance type",
                    format!(
                        "`instance_type` must be an EC2 instance type written family.size in \
                         lowercase, such as \"t3.micro\" or \"m7g.large\"; got {t:?}."
                    ),
                );
            }
        }
        if let Some(key) = self.known_str("key_name") {
            let len = key.chars().count();
            if len == 0 || len > 255 {
                self.error(
                    root("key_name"),
                    "Invalid key pair name",
                    format!("`key_name` must have 1 to 255 characters; it has {len}."),
                );
            }
        }
        if let Some(user_data) = self.known_str("user_data") {
            if user_data.len() > USER_DATA_MAX_BYTES {
                self.error(
                    root("user_data"),
                    "User data too long",
                    format!(
                        "`user_data` may have at most {USER_DATA_MAX_BYTES} bytes (EC2 allows \
                         16 KiB, and the provider's mount script needs the rest); it has {}. \
                         Fetch larger scripts from S3 in a short `user_data` instead.",
                        user_data.len()
                    ),
                );
            }
        }
        // Only a configured value is checked: a stack created before /dev/xvdb..e were
        // refused keeps its name from the state (see `plan`), which is not validated here.
        if let Some(device) = self.known_str("device_name") {
            let letter = device
                .strip_prefix("/dev/sd")
                .or_else(|| device.strip_prefix("/dev/xvd"))
                .filter(|l| l.len() == 1);
            match letter {
                Some(l) if ("f"..="z").contains(&l) => {}
                Some(l) if device.starts_with("/dev/xvd") && ("b"..="e").contains(&l) => {
                    self.error(
                        root("device_name"),
                        "Device name can be instance store",
                        format!(
                            "`device_name` {device:?} is refused: on Xen instance types (t2, \
                             m4, c4, r4, ...) \"/dev/xvdb\" to \"/dev/xvde\" are the names \
                             instance store volumes get, so the boot script could take an \
                             instance store disk for the data volume. Use \"/dev/sdf\" (the \
                             default) to \"/dev/sdz\", or \"/dev/xvdf\" to \"/dev/xvdz\". A \
                             stack created with {device:?} keeps it when `device_name` is \
                             removed from the configuration, without rolling its instance."
                        ),
                    );
                }
                _ => self.error(
                    root("device_name"),
                    "Invalid device name",
                    format!(
                        "`device_name` must be one of AWS's recommended device names for EBS \
                         data volumes on Linux: \"/dev/sdf\" to \"/dev/sdz\" or \"/dev/xvdf\" to \
                         \"/dev/xvdz\" (\"/dev/sda1\" and \"/dev/xvda\" are root devices, \
                         \"/dev/sdb\" to \"/dev/sde\" and \"/dev/xvdb\" to \"/dev/xvde\" can be \
                         instance store); got {device:?}."
                    ),
                ),
            }
        }
        if let Some(mount) = self.known_str("mount_point") {
            let problem = if !mount.starts_with('/') {
                Some("it must be an absolute path (start with \"/\")".to_string())
            } else if mount == "/" {
                Some("it cannot be the root directory \"/\"".to_string())
            } else if let Some(c) = mount
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
            {
                Some(format!(
                    "it contains {c:?}; only letters, digits, \".\", \"_\", \"-\" and \"/\" are \
                     allowed, because it is written into the boot script"
                ))
            } else if mount.ends_with('/') || mount.contains("//") {
                Some("it must not contain empty components (\"//\" or a trailing \"/\")".into())
            } else if mount.split('/').any(|c| c == "." || c == "..") {
                Some("it must not contain \".\" or \"..\" components".to_string())
            } else if SYSTEM_DIRECTORIES.contains(&mount) {
                Some(format!(
                    "mounting over the system directory {mount:?} would break the instance"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.error(
                    root("mount_point"),
                    "Invalid mount point",
                    format!("`mount_point` {mount:?} cannot be used: {problem}."),
                );
            }
        }
        self.one_of("filesystem", FILESYSTEMS);
        self.range("health_check_grace_period", 0, 7200, " seconds");
    }

    fn volume(&mut self) {
        self.one_of("volume_on_destroy", VOLUME_ON_DESTROY);
        if self.is_known_set("existing_volume_id") {
            for name in CREATED_VOLUME_ATTRIBUTES {
                if self.is_known_set(name) {
                    self.error(
                        root(name),
                        "Conflicts with existing_volume_id",
                        format!(
                            "`{name}` describes the data volume the provider creates. With \
                             `existing_volume_id` your volume is used as it is (and never \
                             snapshotted or deleted), so remove `{name}` (or remove \
                             `existing_volume_id`)."
                        ),
                    );
                }
            }
            return;
        }

        if let Some(key) = self.known_str("volume_kms_key_id") {
            let uuid = |s: &str| {
                s.len() == 36
                    && s.char_indices().all(|(i, c)| {
                        if matches!(i, 8 | 13 | 18 | 23) {
                            c == '-'
                        } else {
                            c.is_ascii_hexdigit()
                        }
                    })
            };
            let multi_region = |s: &str| {
                s.strip_prefix("mrk-")
                    .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            };
            let valid = !key.contains(char::is_whitespace)
                && ((key.starts_with("arn:") && key.contains(":kms:"))
                    || key.strip_prefix("alias/").is_some_and(|a| !a.is_empty())
                    || uuid(key)
                    || multi_region(key));
            if !valid {
                self.error(
                    root("volume_kms_key_id"),
                    "Invalid KMS key",
                    format!(
                        "`volume_kms_key_id` must be a KMS key id \
                         (\"1234abcd-12ab-34cd-56ef-1234567890ab\" or \"mrk-...\"), a key ARN, \
                         an alias name (\"alias/...\") or an alias ARN; got {key:?}."
                    ),
                );
            }
        }

        let vtype = match self.str_or("volume_type", DEFAULT_VOLUME_TYPE) {
            Some(t) if VOLUME_TYPES.contains(&t) => Some(t.to_string()),
            Some(_) => {
                self.one_of("volume_type", VOLUME_TYPES);
                None
            }
            None => None,
        };
        let size_configured = self.is_set("volume_size");
        let size = self.int_or("volume_size", DEFAULT_VOLUME_SIZE);
        let iops_configured = self.is_set("volume_iops");
        let iops = self.int("volume_iops");
        let throughput_configured = self.is_set("volume_throughput");
        let throughput = self.int("volume_throughput");
        let Some(vtype) = vtype else { return };
        let vtype = vtype.as_str();

        let (min_size, max_size) = match vtype {
            "gp2" | "gp3" => (1, 16_384),
            "io1" => (4, 16_384),
            // All new io2 volumes are io2 Block Express, up to 64 TiB.
            "io2" => (4, 65_536),
            "st1" | "sc1" => (125, 16_384),
            _ => (1, 1_024), // standard (magnetic)
        };
        if let Some(size) = size {
            if size < min_size || size > max_size {
                let given = if size_configured {
                    format!("got {size}")
                } else {
                    format!("the default is {size}, so set `volume_size`")
                };
                self.error(
                    root("volume_size"),
                    "Volume size out of range",
                    format!(
                        "`{vtype}` volumes must be from {min_size} to {max_size} GiB; {given}."
                    ),
                );
            }
        }

        // (min, max, max per GiB, free baseline allowed at any size)
        let iops_limits = match vtype {
            "gp3" => Some((3_000, 16_000, 500, 3_000)),
            "io1" => Some((100, 64_000, 50, 0)),
            "io2" => Some((100, 256_000, 1_000, 0)),
            _ => None,
        };
        match iops_limits {
            None if iops_configured => self.error(
                root("volume_iops"),
                "IOPS not supported for this volume type",
                format!(
                    "`volume_iops` can only be set for \"gp3\", \"io1\" and \"io2\" volumes; \
                     `volume_type` is {vtype:?}. Remove `volume_iops`."
                ),
            ),
            None => {}
            // The missing attribute has no line in the configuration: point at the volume type
            // that requires it, so Terraform shows the user the line to look at.
            Some(_) if !iops_configured && (vtype == "io1" || vtype == "io2") => self.error(
                root("volume_type"),
                "IOPS required",
                format!(
                    "{vtype:?} volumes are provisioned-IOPS volumes: set `volume_iops` (100 to {}).",
                    if vtype == "io1" { 64_000 } else { 256_000 }
                ),
            ),
            Some((min, max, per_gib, baseline)) => {
                if let Some(iops) = iops {
                    if iops < min || iops > max {
                        self.error(
                            root("volume_iops"),
                            "IOPS out of range",
                            format!(
                                "`volume_iops` for {vtype:?} volumes must be from {min} to \
                                 {max}; got {iops}."
                            ),
                        );
                    } else if let Some(size) = size.filter(|s| *s > 0) {
                        // Saturating: a huge `volume_size` must not wrap into a bogus limit.
                        let allowed = i64::saturating_mul(per_gib, size);
                        if iops > baseline && iops > allowed {
                            self.error(
                                root("volume_iops"),
                                "Too many IOPS for the volume size",
                                format!(
                                    "{vtype:?} volumes allow at most {per_gib} IOPS per GiB: \
                                     {} IOPS for {size} GiB; got {iops}. Lower `volume_iops` \
                                     or raise `volume_size` to at least {} GiB.",
                                    allowed,
                                    (iops + per_gib - 1) / per_gib
                                ),
                            );
                        }
                    }
                }
            }
        }

        if throughput_configured && vtype != "gp3" {
            self.error(
                root("volume_throughput"),
                "Throughput not supported for this volume type",
                format!(
                    "`volume_throughput` can only be set for \"gp3\" volumes; `volume_type` is \
                     {vtype:?}. Remove `volume_throughput`."
                ),
            );
        } else if let Some(tp) = throughput {
            if !(125..=1_000).contains(&tp) {
                self.error(
                    root("volume_throughput"),
                    "Throughput out of range",
                    format!("`volume_throughput` must be from 125 to 1000 MiB/s; got {tp}."),
                );
            } else if let Some(iops) = iops.filter(|i| tp * 4 > *i) {
                self.error(
                    root("volume_throughput"),
                    "Throughput too high for the IOPS",
                    format!(
                        "gp3 volumes allow at most 0.25 MiB/s per provisioned IOPS: {} MiB/s \
                         with `volume_iops` {iops}; got {tp}. Raise `volume_iops` to at least \
                         {} or lower `volume_throughput`.",
                        iops / 4,
                        tp * 4
                    ),
                );
            }
        }
    }

    /// `alarm_actions` and `alarm_no_in_service_minutes`.
    fn operators(&mut self) {
        self.range(
            "alarm_no_in_service_minutes",
            1,
            MAX_ALARM_NO_IN_SERVICE_MINUTES,
            " minutes",
        );
        let actions = self.attr("alarm_actions").clone();
        let elements = actions.elements();
        if elements.len() > MAX_ALARM_ACTIONS {
            self.error(
                root("alarm_actions"),
                "Too many alarm actions",
                format!(
                    "CloudWatch accepts at most {MAX_ALARM_ACTIONS} actions per alarm state; \
                     `alarm_actions` has {}.",
                    elements.len()
                ),
            );
        }
        for arn in elements.iter().filter_map(Value::as_str) {
            if !is_sns_topic_arn(arn) {
                self.error(
                    root("alarm_actions"),
                    "Invalid alarm action",
                    format!(
                        "`alarm_actions` takes Amazon SNS topic ARNs, \
                         `arn:aws:sns:<region>:<account id>:<topic name>`; got {arn:?}."
                    ),
                );
            }
        }
        if self.is_known_set("alarm_no_in_service_minutes")
            && (actions.is_null() || (!actions.is_unknown() && elements.is_empty()))
        {
            self.diags.attribute_warning(
                root("alarm_no_in_service_minutes"),
                "No alarm to configure",
                "`alarm_no_in_service_minutes` only sets the `<name>-no-in-service` alarm, \
                 which exists only with `alarm_actions`.",
            );
        }
    }

    /// `snapshot_interval` and `snapshot_retention`.
    fn snapshots(&mut self) {
        self.range(
            "snapshot_retention",
            1,
            MAX_SNAPSHOT_RETENTION,
            " snapshots",
        );
        if let Some(s) = self.known_str("snapshot_interval").map(str::to_string) {
            let problem = match parse_go_duration(&s) {
                Err(e) => Some(e.to_string()),
                Ok(d) if d.as_secs() % 60 != 0 || d.subsec_nanos() != 0 => {
                    Some("EventBridge schedules run in whole minutes".to_string())
                }
                Ok(d) if d < MIN_SNAPSHOT_INTERVAL || d > MAX_SNAPSHOT_INTERVAL => Some(format!(
                    "it must be from {} to {} minutes",
                    MIN_SNAPSHOT_INTERVAL.as_secs() / 60,
                    MAX_SNAPSHOT_INTERVAL.as_secs() / 60
                )),
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                self.error(
                    root("snapshot_interval"),
                    "Invalid snapshot interval",
                    format!(
                        "`snapshot_interval` must be a duration in whole minutes from 15m to \
                         24h, such as \"1h\" or \"30m\"; got {s:?}: {problem}."
                    ),
                );
            }
        }
        if self.is_known_set("snapshot_retention") && self.attr("snapshot_interval").is_null() {
            self.diags.attribute_warning(
                root("snapshot_retention"),
                "No scheduled snapshots to keep",
                "`snapshot_retention` only applies to the scheduled snapshots, which exist only \
                 with `snapshot_interval`.",
            );
        }
    }

    fn lambda(&mut self) {
        self.range("lifecycle_hook_timeout", 30, 7200, " seconds");
        self.range("lambda_memory_size", 128, 10_240, " MiB");
        self.range("lambda_timeout", 1, 900, " seconds");
        self.one_of("lambda_architecture", LAMBDA_ARCHITECTURES);
        if let Some(n) = self.int("lambda_reserved_concurrency") {
            if n < 0 {
                self.error(
                    root("lambda_reserved_concurrency"),
                    "Value out of range",
                    format!("`lambda_reserved_concurrency` must be 0 or more; got {n}."),
                );
            } else if n == 0 {
                self.diags.attribute_warning(
                    root("lambda_reserved_concurrency"),
                    "The Lambda function will never run",
                    "A reserved concurrency of 0 throttles every invocation: new instances \
                     would never get the data volume and the Elastic IP. Omit the attribute \
                     unless this is what you want.",
                );
            }
        }
        if let Some(days) = self.int("log_retention_days") {
            if !LOG_RETENTION_DAYS.contains(&days) {
                self.error(
                    root("log_retention_days"),
                    "Invalid log retention",
                    format!(
                        "`log_retention_days` must be one of the periods CloudWatch Logs \
                         accepts: {}; got {days}.",
                        LOG_RETENTION_DAYS
                            .iter()
                            .map(i64::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        let lambda_timeout = self.attr("lambda_timeout").clone();
        let hook_timeout = self.attr("lifecycle_hook_timeout").clone();
        let lambda = match lambda_timeout {
            Value::Null => Some(DEFAULT_LAMBDA_TIMEOUT),
            v => v.as_i64(),
        };
        let hook = match hook_timeout {
            Value::Null => Some(DEFAULT_LIFECYCLE_HOOK_TIMEOUT),
            v => v.as_i64(),
        };
        if let (Some(lambda), Some(hook)) = (lambda, hook) {
            if lambda > hook {
                self.diags.attribute_warning(
                    root("lambda_timeout"),
                    "Lambda timeout longer than the lifecycle hook",
                    format!(
                        "`lambda_timeout` ({lambda} s) is longer than `lifecycle_hook_timeout` \
                         ({hook} s): the hook may give up on a new instance while the function \
                         is still attaching the volume."
                    ),
                );
            }
        }
        if let Some(zip) = self.known_str("handler_zip") {
            if !zip.to_ascii_lowercase().ends_with(".zip") || zip.len() <= 4 {
                self.error(
                    root("handler_zip"),
                    "Invalid handler zip path",
                    format!(
                        "`handler_zip` must be the path of a .zip file holding the Lambda \
                         `bootstrap` executable; got {zip:?}."
                    ),
                );
            }
        }
    }

    fn timeouts(&mut self) {
        let timeouts = self.attr("timeouts").clone();
        for op in ["create", "update", "delete"] {
            let Some(s) = timeouts.attr(op).as_str() else {
                continue;
            };
            let problem = match parse_go_duration(s) {
                Ok(d) if d.is_zero() => Some("it must be longer than zero".to_string()),
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if let Some(problem) = problem {
                self.error(
                    root("timeouts").attr(op),
                    "Invalid timeout",
                    format!(
                        "`timeouts.{op}` must be a positive Go duration such as \"30m\", \
                         \"1h30m\" or \"90s\" (units h, m, s, ms, us, ns); got {s:?}: {problem}."
                    ),
                );
            }
        }
    }

    fn tags(&mut self) {
        let tags = self.attr("tags").clone();
        let Some(entries) = tags.entries() else {
            return;
        };
        let max = AWS_MAX_TAGS - PROVIDER_TAG_COUNT;
        if entries.len() > max {
            self.error(
                root("tags"),
                "Too many tags",
                format!(
                    "AWS allows {AWS_MAX_TAGS} tags per object and the provider adds \
                     {PROVIDER_TAG_COUNT}, so `tags` may have at most {max}; it has {}.",
                    entries.len()
                ),
            );
        }
        for (key, value) in entries {
            let path = root("tags").key(key);
            let len = key.chars().count();
            if len == 0 || len > 128 {
                self.error(
                    path,
                    "Invalid tag key",
                    format!("Tag keys must have 1 to 128 characters; {key:?} has {len}."),
                );
                continue;
            }
            let lower = key.to_ascii_lowercase();
            if let Some(prefix) = RESERVED_TAG_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
                let owner = if *prefix == "aws:" {
                    "AWS reserves it"
                } else {
                    "the provider uses it to find a stack's final snapshots"
                };
                self.error(
                    path,
                    "Reserved tag key",
                    format!("Tag keys may not start with {prefix:?} ({owner}); got {key:?}."),
                );
                continue;
            }
            if let Some(v) = value.as_str() {
                let len = v.chars().count();
                if len > 256 {
                    self.error(
                        path,
                        "Tag value too long",
                        format!(
                            "Tag values may have at most 256 characters; the value of {key:?} \
                             has {len}."
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoheal_instance::schema::schema;
    use crate::plugin::diagnostics::Severity;
    use crate::plugin::value::Number;
    use std::collections::BTreeMap;

    fn base() -> Value {
        let mut v = Value::null_object(&schema().value_type());
        v.set_attr("name", "web".into());
        v.set_attr("availability_zone", "ap-southeast-2a".into());
        v.set_attr("ami", "ami-0123456789abcdef0".into());
        v
    }

    fn with(pairs: &[(&str, Value)]) -> Value {
        let mut v = base();
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    fn strings(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::from(*s)).collect())
    }

    fn map(pairs: &[(&str, &str)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn timeouts(pairs: &[(&str, &str)]) -> Value {
        let crate::plugin::value::Type::Object(attrs) = schema().value_type() else {
            unreachable!()
        };
        let mut t = Value::null_object(&attrs["timeouts"]);
        for (k, x) in pairs {
            t.set_attr(k, (*x).into());
        }
        t
    }

    fn ap2() -> ValidateContext {
        ValidateContext {
            region: Some("ap-southeast-2".into()),
            ..Default::default()
        }
    }

    fn errors(config: &Value) -> Vec<String> {
        validate(config, &ap2())
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    fn warnings(config: &Value) -> Vec<String> {
        validate(config, &ap2())
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    /// Asserts that `config` fails with exactly one error, at `path`.
    #[track_caller]
    fn fails_at(config: &Value, path: &str) {
        let diags = validate(config, &ap2());
        let errs: Vec<_> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errs.len(), 1, "expected one error at {path}, got:\n{diags}");
        assert_eq!(
            errs[0]
                .attribute
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(path),
            "{diags}"
        );
        assert!(!errs[0].summary.is_empty() && !errs[0].detail.is_empty());
    }

    #[track_caller]
    fn passes(config: &Value) {
        let diags = validate(config, &ap2());
        assert!(diags.is_empty(), "unexpected diagnostics:\n{diags}");
    }

    fn rule(proto: &str, from: i64, to: i64, v4: &[&str], v6: &[&str]) -> Value {
        let list = |l: &[&str]| {
            if l.is_empty() {
                Value::Null
            } else {
                Value::List(l.iter().map(|c| Value::from(*c)).collect())
            }
        };
        Value::Object(
            [
                ("protocol", Value::from(proto)),
                ("from_port", Value::from(from)),
                ("to_port", Value::from(to)),
                ("cidr_blocks", list(v4)),
                ("ipv6_cidr_blocks", list(v6)),
                ("description", Value::Null),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
    }

    #[test]
    fn ingress_rules_are_checked_one_by_one() {
        let ingress = |rules: Vec<Value>| with(&[("ingress", Value::Set(rules))]);
        passes(&ingress(vec![
            rule("tcp", 443, 443, &["0.0.0.0/0"], &["::/0"]),
            rule("udp", 1194, 1194, &["10.0.0.0/8"], &[]),
            rule("icmp", -1, -1, &["10.0.0.0/8"], &[]),
            rule("-1", -1, -1, &["10.1.0.0/16"], &[]),
        ]));
        for bad in [
            rule("tcp", 443, 443, &[], &[]),
            rule("tcp", 443, 80, &["0.0.0.0/0"], &[]),
            rule("tcp", 0, 70000, &["0.0.0.0/0"], &[]),
            rule("tpc", 443, 443, &["0.0.0.0/0"], &[]),
            rule("tcp", 443, 443, &["10.0.0.1/8"], &[]),
            rule("tcp", 443, 443, &[], &["2001:db8::1/32"]),
            rule("tcp", 443, 443, &[], &["not-a-cidr"]),
            rule("tcp", 22, 22, &["0.0.0.0/0"], &[]),
        ] {
            fails_at(&ingress(vec![bad]), "ingress");
        }
        // The same rule twice, across blocks.
        fails_at(
            &ingress(vec![
                rule("tcp", 443, 443, &["0.0.0.0/0"], &[]),
                rule("tcp", 443, 443, &["0.0.0.0/0", "10.0.0.0/8"], &[]),
            ]),
            "ingress",
        );
    }

    #[test]
    fn access_ids_are_checked() {
        let groups = |ids: &[&str]| {
            with(&[(
                "security_group_ids",
                Value::List(ids.iter().map(|i| Value::from(*i)).collect()),
            )])
        };
        passes(&groups(&["sg-0123456789abcdef0", "sg-01234567"]));
        fails_at(&groups(&["sg-xyz"]), "security_group_ids[0]");
        fails_at(
            &groups(&["sg-01234567", "sg-01234567"]),
            "security_group_ids[1]",
        );
        for good in [
            "ssm-agent",
            "arn:aws:iam::123456789012:instance-profile/ssm-agent",
            "arn:aws:iam::123456789012:instance-profile/team/ssm",
        ] {
            passes(&with(&[("iam_instance_profile", good.into())]));
        }
        for bad in [
            "",
            "has space",
            "arn:aws:iam::123:instance-profile/x",
            "arn:aws:iam::123456789012:role/x",
        ] {
            fails_at(
                &with(&[("iam_instance_profile", bad.into())]),
                "iam_instance_profile",
            );
        }
        passes(&with(&[(
            "lambda_role_permissions_boundary",
            "arn:aws:iam::123456789012:policy/autoheal-lambda-boundary".into(),
        )]));
        for bad in [
            "autoheal-boundary",
            "arn:aws:iam::123456789012:role/x",
            "arn:aws:iam::123456789012:policy/",
        ] {
            fails_at(
                &with(&[("lambda_role_permissions_boundary", bad.into())]),
                "lambda_role_permissions_boundary",
            );
        }
    }

    #[test]
    fn minimal_and_full_configurations_pass() {
        passes(&base());
        passes(&with(&[
            ("name", "Web-server-01".into()),
            ("vpc_cidr", "172.16.0.0/20".into()),
            ("subnet_cidr", "172.16.4.0/24".into()),
            ("existing_allocation_id", "eipalloc-0123abcd".into()),
            ("volume_snapshot_id", "snap-0123456789abcdef0".into()),
            ("instance_type", "m7g.large".into()),
            ("key_name", "ops".into()),
            (
                "ssh_ingress_cidrs",
                strings(&["203.0.113.0/24", "0.0.0.0/0"]),
            ),
            ("user_data", "#!/bin/sh\necho hi\n".into()),
            ("volume_size", 200.into()),
            ("volume_type", "gp3".into()),
            ("volume_iops", 6000.into()),
            ("volume_throughput", 500.into()),
            ("volume_kms_key_id", "alias/data".into()),
            ("device_name", "/dev/sdf".into()),
            ("mount_point", "/srv/app-data".into()),
            ("filesystem", "xfs".into()),
            ("volume_on_destroy", "retain".into()),
            ("force_detach", true.into()),
            ("health_check_grace_period", 0.into()),
            ("lifecycle_hook_timeout", 900.into()),
            ("lambda_memory_size", 256.into()),
            ("lambda_timeout", 900.into()),
            ("lambda_architecture", "arm64".into()),
            ("lambda_reserved_concurrency", 2.into()),
            ("log_retention_days", 3653.into()),
            ("handler_zip", "build/handler.zip".into()),
            ("tags", map(&[("team", "ops"), ("Name", "web")])),
            (
                "timeouts",
                timeouts(&[("create", "1h30m"), ("update", "1.5h"), ("delete", "90s")]),
            ),
        ]));
        passes(&with(&[
            ("subnet_id", "subnet-0123456789abcdef0".into()),
            ("existing_volume_id", "vol-0123456789abcdef0".into()),
        ]));
    }

    #[test]
    fn unknown_values_are_not_checked() {
        let mut v = Value::null_object(&schema().value_type());
        for attr in schema()
            .block
            .attributes
            .iter()
            .filter(|a| !a.is_computed() || a.is_optional())
        {
            v.set_attr(&attr.name, Value::Unknown);
        }
        v.set_attr("timeouts", Value::Unknown);
        // Unknown subnet_id conflicts with unknown CIDRs: set means set, known or not.
        v.set_attr("vpc_cidr", Value::Null);
        v.set_attr("subnet_cidr", Value::Null);
        // Likewise an unknown existing_volume_id with unknown volume attributes.
        for a in CREATED_VOLUME_ATTRIBUTES {
            v.set_attr(a, Value::Null);
        }
        passes(&v);
        passes(&with(&[
            (
                "ssh_ingress_cidrs",
                Value::List(vec![Value::Unknown, "10.0.0.0/8".into()]),
            ),
            (
                "tags",
                Value::Map(BTreeMap::from([("k".to_string(), Value::Unknown)])),
            ),
            ("volume_type", Value::Unknown),
            ("volume_iops", 100_000.into()),
        ]));
    }

    #[test]
    fn name_rules() {
        passes(&with(&[("name", "a".into())]));
        passes(&with(&[("name", "a".repeat(NAME_MAX_LEN).into())]));
        for bad in [
            "", "1web", "-web", "web-", "web--app", "web_app", "web app", "wéb",
        ] {
            fails_at(&with(&[("name", bad.into())]), "name");
        }
        fails_at(
            &with(&[("name", "a".repeat(NAME_MAX_LEN + 1).into())]),
            "name",
        );
    }

    #[test]
    fn availability_zone_rules() {
        assert_eq!(zone_region("ap-southeast-2a"), Some("ap-southeast-2"));
        assert_eq!(zone_region("us-gov-west-1b"), Some("us-gov-west-1"));
        assert_eq!(zone_region("us-east-1-bos-1a"), Some("us-east-1"));
        for bad in [
            "apse2-az1",
            "ap-southeast-2",
            "ap-southeast-a",
            "AP-SOUTHEAST-2A",
            "a-b-1a",
        ] {
            assert_eq!(zone_region(bad), None, "{bad}");
            fails_at(
                &with(&[("availability_zone", bad.into())]),
                "availability_zone",
            );
        }
        // Region check only when the region is known.
        let other = with(&[("availability_zone", "us-east-1a".into())]);
        fails_at(&other, "availability_zone");
        let diags = validate(&other, &ValidateContext::default());
        assert!(diags.is_empty(), "{diags}");
        let d = validate(&other, &ap2());
        assert!(d
            .iter()
            .next()
            .unwrap()
            .detail
            .contains("\"ap-southeast-2\""));
        // A prefix of another region is not that region.
        let ctx = ValidateContext {
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let twelve = with(&[("availability_zone", "us-east-12a".into())]);
        assert!(validate(&twelve, &ctx).has_errors());
        let local = with(&[("availability_zone", "us-east-1-bos-1a".into())]);
        assert!(validate(&local, &ctx).is_empty());
    }

    #[test]
    fn cidr_rules() {
        fails_at(&with(&[("vpc_cidr", "10.0.0.1/16".into())]), "vpc_cidr");
        fails_at(&with(&[("vpc_cidr", "10.0.0.0".into())]), "vpc_cidr");
        fails_at(
            &with(&[
                ("vpc_cidr", "10.0.0.0/8".into()),
                ("subnet_cidr", "10.0.1.0/24".into()),
            ]),
            "vpc_cidr",
        );
        fails_at(&with(&[("vpc_cidr", "10.0.0.0/29".into())]), "vpc_cidr");
        fails_at(
            &with(&[("subnet_cidr", "10.1.0.0/24".into())]),
            "subnet_cidr",
        );
        fails_at(
            &with(&[("subnet_cidr", "10.0.1.0/30".into())]),
            "subnet_cidr",
        );
        fails_at(&with(&[("subnet_cidr", "fd00::/64".into())]), "subnet_cidr");
        // The default subnet_cidr does not fit a different VPC: reported on vpc_cidr.
        fails_at(&with(&[("vpc_cidr", "192.168.0.0/16".into())]), "vpc_cidr");
        passes(&with(&[
            ("vpc_cidr", "10.0.0.0/28".into()),
            ("subnet_cidr", "10.0.0.0/28".into()),
        ]));
        fails_at(
            &with(&[("ssh_ingress_cidrs", strings(&["10.0.0.0/8", "1.2.3.4/24"]))]),
            "ssh_ingress_cidrs[1]",
        );
        fails_at(
            &with(&[("ssh_ingress_cidrs", strings(&["1.2.3.4"]))]),
            "ssh_ingress_cidrs[0]",
        );
        fails_at(
            &with(&[(
                "ssh_ingress_cidrs",
                strings(&["10.0.0.0/8", "1.2.3.4/32", "10.0.0.0/8"]),
            )]),
            "ssh_ingress_cidrs[2]",
        );
        passes(&with(&[("ssh_ingress_cidrs", strings(&["1.2.3.4/32"]))]));
    }

    #[test]
    fn cidrs_conflict_with_subnet_id() {
        let subnet = ("subnet_id", Value::from("subnet-0123abcd"));
        fails_at(
            &with(&[subnet.clone(), ("vpc_cidr", "10.0.0.0/16".into())]),
            "vpc_cidr",
        );
        fails_at(
            &with(&[subnet.clone(), ("subnet_cidr", "10.0.1.0/24".into())]),
            "subnet_cidr",
        );
        // Terraform validates with input variables unknown, and a variable that defaults to
        // null is unknown then: only known values conflict (plan validates again).
        let unknown_subnet = with(&[
            ("subnet_id", Value::Unknown),
            ("vpc_cidr", "10.0.0.0/16".into()),
        ]);
        assert!(
            !validate(&unknown_subnet, &ValidateContext::default()).has_errors(),
            "an unknown subnet_id may be null"
        );
    }

    #[test]
    fn aws_id_formats() {
        for (attr, good, bad) in [
            ("subnet_id", "subnet-0123abcd", "subnet-123"),
            (
                "existing_allocation_id",
                "eipalloc-0123456789abcdef0",
                "eip-0123abcd",
            ),
            ("existing_volume_id", "vol-0123abcd", "vol-0123ABCD"),
            ("volume_snapshot_id", "snap-0123abcd", "snapshot-0123abcd"),
            ("ami", "ami-0123abcd", "ami-0123456789abcdef"),
        ] {
            passes(&with(&[(attr, good.into())]));
            fails_at(&with(&[(attr, bad.into())]), attr);
        }
    }

    #[test]
    fn existing_volume_conflicts() {
        let vol = ("existing_volume_id", Value::from("vol-0123abcd"));
        for (attr, value) in [
            ("volume_snapshot_id", Value::from("snap-0123abcd")),
            ("volume_size", 10.into()),
            ("volume_type", "gp3".into()),
            ("volume_iops", 3000.into()),
            ("volume_throughput", 125.into()),
            ("volume_kms_key_id", "alias/aws/ebs".into()),
            ("volume_on_destroy", "delete".into()),
        ] {
            fails_at(&with(&[vol.clone(), (attr, value)]), attr);
        }
    }

    #[test]
    fn volume_size_per_type() {
        let cfg =
            |t: &str, size: i64| with(&[("volume_type", t.into()), ("volume_size", size.into())]);
        for (t, min, max) in [
            ("gp2", 1, 16_384),
            ("st1", 125, 16_384),
            ("sc1", 125, 16_384),
            ("standard", 1, 1_024),
        ] {
            passes(&cfg(t, min));
            passes(&cfg(t, max));
            fails_at(&cfg(t, min - 1), "volume_size");
            fails_at(&cfg(t, max + 1), "volume_size");
        }
        fails_at(&cfg("gp3", 0), "volume_size");
        fails_at(&cfg("gp3", 16_385), "volume_size");
        let io = |t: &str, size: i64| {
            with(&[
                ("volume_type", t.into()),
                ("volume_size", size.into()),
                ("volume_iops", 100.into()),
            ])
        };
        fails_at(&io("io1", 3), "volume_size");
        fails_at(&io("io1", 16_385), "volume_size");
        passes(&io("io2", 65_536));
        fails_at(&io("io2", 65_537), "volume_size");
        // The default size (10) is too small for st1: still reported on volume_size.
        fails_at(&with(&[("volume_type", "st1".into())]), "volume_size");
        fails_at(&with(&[("volume_type", "gp4".into())]), "volume_type");
        let half = Value::Number(Number::Float(10.5));
        fails_at(&with(&[("volume_size", half)]), "volume_size");
    }

    #[test]
    fn iops_and_throughput() {
        let cfg = |pairs: &[(&str, Value)]| with(pairs);
        fails_at(&cfg(&[("volume_type", "io1".into())]), "volume_type");
        fails_at(&cfg(&[("volume_type", "io2".into())]), "volume_type");
        fails_at(
            &cfg(&[("volume_type", "gp2".into()), ("volume_iops", 3000.into())]),
            "volume_iops",
        );
        fails_at(
            &cfg(&[
                ("volume_type", "st1".into()),
                ("volume_size", 500.into()),
                ("volume_iops", 500.into()),
            ]),
            "volume_iops",
        );
        fails_at(&cfg(&[("volume_iops", 2999.into())]), "volume_iops");
        fails_at(
            &cfg(&[("volume_iops", 16_001.into()), ("volume_size", 100.into())]),
            "volume_iops",
        );
        // gp3: 3000 is the baseline at any size; beyond it, 500 per GiB.
        passes(&cfg(&[
            ("volume_iops", 3000.into()),
            ("volume_size", 1.into()),
        ]));
        passes(&cfg(&[("volume_iops", 5000.into())]));
        fails_at(&cfg(&[("volume_iops", 5001.into())]), "volume_iops");
        // io1: 50 per GiB.
        passes(&cfg(&[
            ("volume_type", "io1".into()),
            ("volume_size", 100.into()),
            ("volume_iops", 5000.into()),
        ]));
        fails_at(
            &cfg(&[
                ("volume_type", "io1".into()),
                ("volume_size", 100.into()),
                ("volume_iops", 5001.into()),
            ]),
            "volume_iops",
        );
        fails_at(
            &cfg(&[
                ("volume_type", "io1".into()),
                ("volume_size", 4000.into()),
                ("volume_iops", 64_001.into()),
            ]),
            "volume_iops",
        );
        passes(&cfg(&[
            ("volume_type", "io2".into()),
            ("volume_size", 1000.into()),
            ("volume_iops", 256_000.into()),
        ]));
        fails_at(
            &cfg(&[
                ("volume_type", "io2".into()),
                ("volume_size", 1000.into()),
                ("volume_iops", 256_001.into()),
            ]),
            "volume_iops",
        );
        // Throughput: gp3 only, 125-1000, at most iops/4.
        fails_at(
            &cfg(&[
                ("volume_type", "gp2".into()),
                ("volume_throughput", 125.into()),
            ]),
            "volume_throughput",
        );
        fails_at(
            &cfg(&[("volume_throughput", 124.into())]),
            "volume_throughput",
        );
        fails_at(
            &cfg(&[
                ("volume_throughput", 1001.into()),
                ("volume_iops", 5000.into()),
            ]),
            "volume_throughput",
        );
        fails_at(
            &cfg(&[
                ("volume_throughput", 1000.into()),
                ("volume_iops", 3999.into()),
                ("volume_size", 100.into()),
            ]),
            "volume_throughput",
        );
        passes(&cfg(&[
            ("volume_throughput", 1000.into()),
            ("volume_iops", 4000.into()),
            ("volume_size", 100.into()),
        ]));
        fails_at(
            &cfg(&[("volume_kms_key_id", "my key".into())]),
            "volume_kms_key_id",
        );
        passes(&cfg(&[(
            "volume_kms_key_id",
            "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
        )]));
        passes(&cfg(&[(
            "volume_kms_key_id",
            "arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
        )]));
        fails_at(
            &cfg(&[("volume_on_destroy", "keep".into())]),
            "volume_on_destroy",
        );
    }

    #[test]
    fn instance_rules() {
        for good in [
            "t3.micro",
            "m7g.large",
            "u-6tb1.metal",
            "m7i.metal-24xl",
            "c7gn.16xlarge",
        ] {
            passes(&with(&[("instance_type", good.into())]));
        }
        for bad in ["t3", "T3.micro", "t3.", ".micro", "t3.micro.x", "3t.micro"] {
            fails_at(&with(&[("instance_type", bad.into())]), "instance_type");
        }
        for good in ["/dev/sdf", "/dev/sdz", "/dev/xvdf", "/dev/xvdz"] {
            passes(&with(&[("device_name", good.into())]));
        }
        for bad in [
            "/dev/sda1",
            "/dev/sdb",
            "/dev/sde",
            "/dev/xvda",
            "/dev/xvdba",
            "/dev/xvdf1",
            "/dev/nvme1n1",
            "xvdb",
        ] {
            fails_at(&with(&[("device_name", bad.into())]), "device_name");
        }
        // Instance store names on Xen types: refused with why and what to use instead.
        for xen_instance_store in ["/dev/xvdb", "/dev/xvdc", "/dev/xvdd", "/dev/xvde"] {
            let config = with(&[("device_name", xen_instance_store.into())]);
            fails_at(&config, "device_name");
            let diags = validate(&config, &ap2());
            let d = diags.iter().next().unwrap();
            assert_eq!(d.summary, "Device name can be instance store");
            assert!(
                d.detail.contains("instance store") && d.detail.contains("\"/dev/sdf\""),
                "{}",
                d.detail
            );
        }
        for bad in [
            "data",
            "/",
            "/data/",
            "/my data",
            "/data;reboot",
            "/a//b",
            "/a/../etc",
            "/etc",
            "/var",
        ] {
            fails_at(&with(&[("mount_point", bad.into())]), "mount_point");
        }
        passes(&with(&[("mount_point", "/var/lib/postgresql".into())]));
        fails_at(&with(&[("filesystem", "btrfs".into())]), "filesystem");
        fails_at(&with(&[("key_name", "".into())]), "key_name");
        fails_at(
            &with(&[("user_data", "x".repeat(USER_DATA_MAX_BYTES + 1).into())]),
            "user_data",
        );
        fails_at(
            &with(&[("health_check_grace_period", 7201.into())]),
            "health_check_grace_period",
        );
        fails_at(
            &with(&[("health_check_grace_period", (-1).into())]),
            "health_check_grace_period",
        );
    }

    #[test]
    fn lambda_rules() {
        fails_at(
            &with(&[("lifecycle_hook_timeout", 29.into())]),
            "lifecycle_hook_timeout",
        );
        fails_at(
            &with(&[
                ("lifecycle_hook_timeout", 7201.into()),
                ("lambda_timeout", 60.into()),
            ]),
            "lifecycle_hook_timeout",
        );
        fails_at(
            &with(&[("lambda_memory_size", 127.into())]),
            "lambda_memory_size",
        );
        fails_at(
            &with(&[("lambda_memory_size", 10_241.into())]),
            "lambda_memory_size",
        );
        fails_at(&with(&[("lambda_timeout", 0.into())]), "lambda_timeout");
        fails_at(
            &with(&[
                ("lambda_timeout", 901.into()),
                ("lifecycle_hook_timeout", 1000.into()),
            ]),
            "lambda_timeout",
        );
        fails_at(
            &with(&[("lambda_architecture", "aarch64".into())]),
            "lambda_architecture",
        );
        fails_at(
            &with(&[("lambda_reserved_concurrency", (-1).into())]),
            "lambda_reserved_concurrency",
        );
        fails_at(
            &with(&[("log_retention_days", 2.into())]),
            "log_retention_days",
        );
        fails_at(
            &with(&[("handler_zip", "handler.tar.gz".into())]),
            "handler_zip",
        );
        fails_at(&with(&[("handler_zip", ".zip".into())]), "handler_zip");
        // Warnings, not errors.
        let zero = with(&[("lambda_reserved_concurrency", 0.into())]);
        assert!(errors(&zero).is_empty());
        assert_eq!(warnings(&zero), ["lambda_reserved_concurrency"]);
        let slow = with(&[("lambda_timeout", 600.into())]);
        assert!(errors(&slow).is_empty());
        assert_eq!(warnings(&slow), ["lambda_timeout"]);
    }

    #[test]
    fn failover_zone_rules() {
        let zones = |z: &[&str]| Value::Set(z.iter().map(|s| Value::from(*s)).collect());
        // Without the scheduled snapshots a failover restores: refused at failover_zones.
        fails_at(
            &with(&[("failover_zones", zones(&["ap-southeast-2b"]))]),
            "failover_zones",
        );
        // Below, every case has them.
        let with = |pairs: &[(&str, Value)]| {
            let mut v = with(pairs);
            v.set_attr("snapshot_interval", "1h".into());
            v
        };
        passes(&with(&[
            ("failover_zones", zones(&["ap-southeast-2b"])),
            ("failover_detection_window", "10m".into()),
        ]));
        for bad in ["4m", "25h", "90s", "soon"] {
            fails_at(
                &with(&[
                    ("failover_zones", zones(&["ap-southeast-2b"])),
                    ("failover_detection_window", bad.into()),
                ]),
                "failover_detection_window",
            );
        }
        passes(&with(&[(
            "failover_zones",
            zones(&["ap-southeast-2b", "ap-southeast-2c"]),
        )]));
        // Failing back: only to the home zone, only with the failover; also on the user's
        // volume (its data comes home as a new volume, which the stack then keeps as it
        // keeps the user's).
        passes(&with(&[
            ("failover_zones", zones(&["ap-southeast-2b"])),
            ("active_availability_zone", "ap-southeast-2a".into()),
        ]));
        passes(&with(&[
            ("failover_zones", zones(&["ap-southeast-2b"])),
            ("active_availability_zone", "ap-southeast-2a".into()),
            ("existing_volume_id", "vol-0123456789abcdef0".into()),
        ]));
        for bad in [
            with(&[
                ("failover_zones", zones(&["ap-southeast-2b"])),
                ("active_availability_zone", "ap-southeast-2b".into()),
            ]),
            with(&[("active_availability_zone", "ap-southeast-2a".into())]),
        ] {
            fails_at(&bad, "active_availability_zone");
        }
        for bad in ["ap-southeast-2a", "us-east-1b", "apse2-az2"] {
            fails_at(
                &with(&[("failover_zones", zones(&[bad]))]),
                "failover_zones",
            );
        }
        fails_at(
            &with(&[
                ("failover_zones", zones(&["ap-southeast-2b"])),
                ("persistent_network_interface", true.into()),
            ]),
            "failover_zones",
        );
        // The provider's VPC must have room: a /28 VPC holds only its /28 subnet.
        fails_at(
            &with(&[
                ("failover_zones", zones(&["ap-southeast-2b"])),
                ("vpc_cidr", "10.0.0.0/28".into()),
                ("subnet_cidr", "10.0.0.0/28".into()),
            ]),
            "failover_zones",
        );
        // Without subnet_id the provider makes (and reports) the subnets.
        fails_at(
            &with(&[
                ("failover_zones", zones(&["ap-southeast-2b"])),
                (
                    "failover_subnet_ids",
                    map(&[("ap-southeast-2b", "subnet-12345678")]),
                ),
            ]),
            "failover_subnet_ids",
        );
        // With subnet_id: one of the user's subnets per zone, no more, well formed.
        let users = |extra: &[(&str, Value)]| {
            let mut pairs = vec![
                ("subnet_id", Value::from("subnet-0123456789abcdef0")),
                ("failover_zones", zones(&["ap-southeast-2b"])),
            ];
            pairs.extend(extra.iter().cloned());
            with(&pairs)
        };
        passes(&users(&[(
            "failover_subnet_ids",
            map(&[("ap-southeast-2b", "subnet-12345678")]),
        )]));
        fails_at(&users(&[]), "failover_zones");
        // Missing for 2b (at the attribute), and 2c not a failover zone (at its key).
        let wrong = users(&[(
            "failover_subnet_ids",
            map(&[("ap-southeast-2c", "subnet-12345678")]),
        )]);
        assert_eq!(
            errors(&wrong),
            [
                "failover_subnet_ids",
                "failover_subnet_ids[\"ap-southeast-2c\"]"
            ]
        );
        fails_at(
            &users(&[(
                "failover_subnet_ids",
                map(&[
                    ("ap-southeast-2b", "subnet-12345678"),
                    ("ap-southeast-2c", "subnet-87654321"),
                ]),
            )]),
            "failover_subnet_ids[\"ap-southeast-2c\"]",
        );
        fails_at(
            &users(&[("failover_subnet_ids", map(&[("ap-southeast-2b", "sn-1")]))]),
            "failover_subnet_ids[\"ap-southeast-2b\"]",
        );
    }

    #[test]
    fn snapshot_schedule_rules() {
        for bad in ["10m", "25h", "90s", "1h30s", "soon", "-1h", "15m30s"] {
            fails_at(
                &with(&[("snapshot_interval", bad.into())]),
                "snapshot_interval",
            );
        }
        for good in ["15m", "1h", "90m", "24h", "1h30m"] {
            passes(&with(&[("snapshot_interval", good.into())]));
        }
        for bad in [0, 1001] {
            fails_at(
                &with(&[
                    ("snapshot_interval", "1h".into()),
                    ("snapshot_retention", bad.into()),
                ]),
                "snapshot_retention",
            );
        }
        passes(&with(&[
            ("snapshot_interval", "1h".into()),
            ("snapshot_retention", 1000.into()),
        ]));
        // A retention without a schedule is a warning, not an error.
        let lone = with(&[("snapshot_retention", 3.into())]);
        assert!(errors(&lone).is_empty());
        assert_eq!(warnings(&lone), ["snapshot_retention"]);
    }

    #[test]
    fn timeout_rules() {
        for (op, bad) in [
            ("create", "30"),
            ("update", "0s"),
            ("delete", "-5m"),
            ("create", "1d"),
        ] {
            fails_at(
                &with(&[("timeouts", timeouts(&[(op, bad)]))]),
                &format!("timeouts.{op}"),
            );
        }
        passes(&with(&[("timeouts", timeouts(&[("create", "45m")]))]));
    }

    #[test]
    fn tag_rules() {
        fails_at(&with(&[("tags", map(&[("", "x")]))]), "tags[\"\"]");
        let long_key = "k".repeat(129);
        fails_at(
            &with(&[("tags", map(&[(long_key.as_str(), "x")]))]),
            &format!("tags[{long_key:?}]"),
        );
        fails_at(
            &with(&[("tags", map(&[("aws:cost", "x")]))]),
            "tags[\"aws:cost\"]",
        );
        fails_at(
            &with(&[("tags", map(&[("AWS:cost", "x")]))]),
            "tags[\"AWS:cost\"]",
        );
        fails_at(
            &with(&[("tags", map(&[("autoheal:stack", "x")]))]),
            "tags[\"autoheal:stack\"]",
        );
        let long_value = "v".repeat(257);
        fails_at(
            &with(&[("tags", map(&[("k", long_value.as_str())]))]),
            "tags[\"k\"]",
        );
        let many: Vec<(String, String)> = (0..49).map(|i| (format!("k{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        fails_at(&with(&[("tags", map(&many))]), "tags");
        passes(&with(&[(
            "tags",
            map(&many[..AWS_MAX_TAGS - PROVIDER_TAG_COUNT]),
        )]));
    }

    #[test]
    fn alarm_settings_are_checked() {
        let set = |arns: &[&str]| Value::Set(arns.iter().map(|a| Value::from(*a)).collect());
        // The detail of each error, to check it names what was given.
        let details = |config: &Value| -> Vec<String> {
            validate(config, &ap2())
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(|d| d.detail.clone())
                .collect()
        };
        let ok = "arn:aws:sns:ap-southeast-2:123456789012:ops";
        assert!(errors(&with(&[("alarm_actions", set(&[ok]))])).is_empty());
        let fifo = "arn:aws-us-gov:sns:us-gov-west-1:123456789012:ops.fifo";
        assert!(errors(&with(&[("alarm_actions", set(&[fifo]))])).is_empty());
        for bad in [
            "arn:aws:sqs:ap-southeast-2:123456789012:ops",
            "arn:aws:sns:ap-southeast-2:1234:ops",
            "arn:aws:sns:ap-southeast-2:123456789012:",
            "arn:aws:sns:ap-southeast-2:123456789012:a/b",
            "ops",
        ] {
            let config = with(&[("alarm_actions", set(&[bad]))]);
            assert_eq!(errors(&config), vec!["alarm_actions".to_string()], "{bad}");
            assert!(details(&config)[0].contains(bad), "{bad}");
        }
        let six: Vec<String> = (0..6)
            .map(|i| format!("arn:aws:sns:ap-southeast-2:123456789012:t{i}"))
            .collect();
        let six: Vec<&str> = six.iter().map(String::as_str).collect();
        let config = with(&[("alarm_actions", set(&six))]);
        assert_eq!(errors(&config), vec!["alarm_actions".to_string()]);
        assert!(details(&config)[0].contains("at most 5"));
        for minutes in [0, 1441] {
            let config = with(&[
                ("alarm_actions", set(&[ok])),
                ("alarm_no_in_service_minutes", Value::from(minutes)),
            ]);
            assert_eq!(
                errors(&config),
                vec!["alarm_no_in_service_minutes".to_string()],
                "{minutes}"
            );
        }
        assert!(errors(&with(&[
            ("alarm_actions", set(&[ok])),
            ("alarm_no_in_service_minutes", Value::from(1440)),
        ]))
        .is_empty());
    }
}
