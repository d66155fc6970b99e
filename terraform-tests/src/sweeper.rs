//! Finds every AWS object a test left behind in the local AWS.
//!
//! A test picks a [`Scope`]: a tag (key and value) that it puts on everything taggable, and a
//! name prefix that every other name starts with. The sweeper lists:
//!
//! * by tag: VPCs, subnets, internet gateways, route tables, security groups, EBS volumes,
//!   Elastic IPs, network interfaces, launch templates, Auto Scaling groups, EBS snapshots,
//!   and instances that are not terminated (a group's tags propagate to its instances);
//! * by name prefix, for what cannot be tagged (or is not by the pattern): IAM roles and their
//!   inline policies, Lambda functions and permissions (resource-policy statements), EventBridge
//!   rules and their targets, lifecycle hooks, CloudWatch Logs groups (`PREFIX...` or
//!   `/aws/lambda/PREFIX...`), CloudWatch alarms (their tags asked for in a strict scope).
//!
//! Tags are compared here rather than with EC2 `tag:` filters, so the answer does not depend
//! on which filters the emulator implements. [`Sweeper::assert_nothing_left`] fails listing
//! every survivor, except (when asked) the one snapshot tagged [`FINAL_SNAPSHOT_TAG`] =
//! `true`, which a destroy that keeps a final snapshot must leave, and whose id it returns.
//!
//! # A real account: [`Match::Strict`]
//!
//! The rules above suit a test's own local AWS, where nothing else lives. In a real account
//! ([`Scope::real_account`], used by [`crate::real_account`]) an object is the tests' only if
//! it carries [`STACK_TAG`] with a value that starts with `<prefix>-` **and** its name starts
//! with `<prefix>-` (its AWS name; for EC2 objects that have none, its `Name` tag; a log
//! group's name after `/aws/lambda/`); IAM roles must also be under the provider's path
//! `/autoheal/`. Tags of what EC2 and Auto Scaling do not return with the object (roles,
//! functions, rules, log groups) are asked for, for the objects whose name matches. Only a
//! strict scope can delete ([`Sweeper::delete_all`], in `sweeper/delete.rs`): what is not
//! listed cannot be deleted, so nothing that misses the tag or the prefix ever is.

use std::fmt;

use anyhow::anyhow;

use crate::local_aws::helpers::{err_text, STACK_TAG};
use crate::local_aws::Clients;

mod delete;

pub use delete::{SweepOptions, SweepReport};

/// The path of the IAM roles the provider creates (`ROLE_PATH` in provider/src/aws/iam_role.rs).
pub const ROLE_PATH: &str = "/autoheal/";

/// The tag (value `true`) of the snapshot a destroy keeps of the data volume.
pub const FINAL_SNAPSHOT_TAG: &str = "autoheal:final-snapshot";

/// What kind of AWS object a [`Leftover`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Volume,
    Address,
    LaunchTemplate,
    AutoScalingGroup,
    Snapshot,
    Instance,
    Role,
    /// `ROLE/POLICY`
    RolePolicy,
    Function,
    /// `FUNCTION/STATEMENT_ID`
    FunctionPermission,
    Rule,
    /// `RULE/TARGET_ID`
    RuleTarget,
    /// `GROUP/HOOK`
    LifecycleHook,
    LogGroup,
    NetworkInterface,
    Alarm,
}

impl Kind {
    pub const ALL: [Kind; 21] = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::InternetGateway,
        Kind::RouteTable,
        Kind::SecurityGroup,
        Kind::Volume,
        Kind::Address,
        Kind::LaunchTemplate,
        Kind::AutoScalingGroup,
        Kind::Snapshot,
        Kind::Instance,
        Kind::Role,
        Kind::RolePolicy,
        Kind::Function,
        Kind::FunctionPermission,
        Kind::Rule,
        Kind::RuleTarget,
        Kind::LifecycleHook,
        Kind::LogGroup,
        Kind::NetworkInterface,
        Kind::Alarm,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet gateway",
            Kind::RouteTable => "route table",
            Kind::SecurityGroup => "security group",
            Kind::Volume => "volume",
            Kind::Address => "elastic ip",
            Kind::LaunchTemplate => "launch template",
            Kind::AutoScalingGroup => "auto scaling group",
            Kind::Snapshot => "snapshot",
            Kind::Instance => "instance",
            Kind::Role => "iam role",
            Kind::RolePolicy => "iam role policy",
            Kind::Function => "lambda function",
            Kind::FunctionPermission => "lambda permission",
            Kind::Rule => "eventbridge rule",
            Kind::RuleTarget => "eventbridge target",
            Kind::LifecycleHook => "lifecycle hook",
            Kind::LogGroup => "log group",
            Kind::NetworkInterface => "network interface",
            Kind::Alarm => "cloudwatch alarm",
        };
        f.write_str(s)
    }
}

/// One AWS object that is still there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Leftover {
    pub kind: Kind,
    pub id: String,
    /// Only snapshots: it carries [`FINAL_SNAPSHOT_TAG`] = `true` (or `ended`).
    pub final_snapshot: bool,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)?;
        if self.final_snapshot {
            write!(f, " (final snapshot)")?;
        }
        Ok(())
    }
}

/// How a [`Scope`] decides what is its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// A test's own local AWS: what carries the tag (value equal), and what is listed by name
    /// (see the module documentation) when its name starts with the prefix.
    Local,
    /// A real account: the tag's value starts with [`Scope::tag_value`] and the name starts
    /// with [`Scope::name_prefix`], both required ([`Scope::owns`]).
    Strict,
}

/// What belongs to a test: a tag and a name prefix.
#[derive(Debug, Clone)]
pub struct Scope {
    pub tag_key: String,
    /// The tag's value ([`Match::Local`]), or what it starts with ([`Match::Strict`]).
    pub tag_value: String,
    pub name_prefix: String,
    pub matching: Match,
}

impl Scope {
    /// Tag [`STACK_TAG`] = `name`, names starting with `name`: what
    /// [`crate::local_aws::helpers::Stack`] creates (and what a Terraform test that sets
    /// `default_tags { tags = { "autoheal:stack" = name } }` and names everything `name-...`
    /// creates).
    pub fn stack(name: &str) -> Self {
        Self {
            tag_key: STACK_TAG.to_string(),
            tag_value: name.to_string(),
            name_prefix: name.to_string(),
            matching: Match::Local,
        }
    }

    /// Everything the tests made in a real account under `prefix` (every stack they name is
    /// `<prefix>-<test>`): [`STACK_TAG`] with a value starting `<prefix>-` and a name starting
    /// `<prefix>-`, both required. An empty prefix matches nothing.
    pub fn real_account(prefix: &str) -> Self {
        if prefix.is_empty() {
            Self::strict("")
        } else {
            Self::strict(&format!("{prefix}-"))
        }
    }

    /// A [`Match::Strict`] scope: [`STACK_TAG`] with a value starting with `start` and a name
    /// starting with `start`, both required (one stack's: `start` = its name). An empty
    /// `start` matches nothing.
    pub fn strict(start: &str) -> Self {
        Self {
            tag_key: STACK_TAG.to_string(),
            tag_value: start.to_string(),
            name_prefix: start.to_string(),
            matching: Match::Strict,
        }
    }

    pub fn new(tag_key: &str, tag_value: &str, name_prefix: &str) -> Self {
        Self {
            tag_key: tag_key.to_string(),
            tag_value: tag_value.to_string(),
            name_prefix: name_prefix.to_string(),
            matching: Match::Local,
        }
    }

    fn has_name(&self, name: &str) -> bool {
        !self.name_prefix.is_empty() && name.starts_with(&self.name_prefix)
    }

    /// Whether the tags hold [`Scope::tag_key`] with the scope's value: equal to it
    /// ([`Match::Local`]) or starting with it ([`Match::Strict`], never with an empty one).
    pub fn has_tag<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let mut tags = tags.into_iter();
        match self.matching {
            Match::Local => tags.any(|(k, v)| k == self.tag_key && v == self.tag_value),
            Match::Strict => {
                !self.tag_value.is_empty()
                    && tags.any(|(k, v)| k == self.tag_key && v.starts_with(&self.tag_value))
            }
        }
    }

    /// Whether an object named `name` (`None`: it has none) with `tags` is the scope's: in a
    /// [`Match::Strict`] scope it must carry the tag **and** have the name; in a
    /// [`Match::Local`] one either is enough (the listing of a local scope applies this per
    /// kind, see the module documentation).
    pub fn owns<'a>(
        &self,
        name: Option<&str>,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> bool {
        let named = name.is_some_and(|n| self.has_name(n));
        match self.matching {
            Match::Strict => named && self.has_tag(tags),
            Match::Local => named || self.has_tag(tags),
        }
    }

    fn is_strict(&self) -> bool {
        self.matching == Match::Strict
    }
}

/// The `Name` tag among EC2 tags.
fn name_tag(tags: &[aws_sdk_ec2::types::Tag]) -> Option<&str> {
    tags.iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
}

/// EC2 tags as (key, value) pairs.
fn ec2_pairs(tags: &[aws_sdk_ec2::types::Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))))
}

/// Lists what a [`Scope`] left in an AWS account.
pub struct Sweeper {
    clients: Clients,
    scope: Scope,
}

/// `true` if a list of (key, value) tags holds `key` = `value`.
fn tagged<'a>(
    mut tags: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
    key: &str,
    value: &str,
) -> bool {
    tags.any(|(k, v)| k == Some(key) && v == Some(value))
}

/// Whether an EC2 object is the scope's: by its tag ([`Match::Local`]), or by its tag and its
/// name (its `Name` tag unless `$name` gives its AWS name) ([`Match::Strict`]).
macro_rules! ec2_tagged {
    ($item:expr, $scope:expr) => {
        ec2_tagged!($item, $scope, name_tag($item.tags()))
    };
    ($item:expr, $scope:expr, $name:expr) => {
        if $scope.is_strict() {
            $scope.owns($name, ec2_pairs($item.tags()))
        } else {
            tagged(
                $item.tags().iter().map(|t| (t.key(), t.value())),
                &$scope.tag_key,
                &$scope.tag_value,
            )
        }
    };
}

impl Sweeper {
    pub fn new(clients: &Clients, scope: Scope) -> Self {
        Self {
            clients: clients.clone(),
            scope,
        }
    }

    /// The sweeper of a [`Scope::stack`].
    pub fn for_stack(clients: &Clients, name: &str) -> Self {
        Self::new(clients, Scope::stack(name))
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Everything of the scope that still exists, sorted by kind and id.
    pub async fn leftovers(&self) -> anyhow::Result<Vec<Leftover>> {
        let mut found = Vec::new();
        self.ec2(&mut found).await?;
        self.autoscaling(&mut found).await?;
        self.iam(&mut found).await?;
        self.lambda(&mut found).await?;
        self.eventbridge(&mut found).await?;
        self.log_groups(&mut found).await?;
        self.alarms(&mut found).await?;
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// `Ok(None)` when nothing is left and `except_final_snapshot` is false; `Ok(Some(id))`
    /// when the only thing left is the final snapshot and it was expected; otherwise an
    /// `Err` that lists the survivors (or says the final snapshot is missing).
    pub async fn check_nothing_left(
        &self,
        except_final_snapshot: bool,
    ) -> anyhow::Result<Result<Option<String>, String>> {
        let leftovers = self.leftovers().await?;
        let (finals, others): (Vec<_>, Vec<_>) = leftovers
            .into_iter()
            .partition(|l| l.kind == Kind::Snapshot && l.final_snapshot);
        let mut problems = Vec::new();
        let mut kept = None;
        if except_final_snapshot {
            match finals.as_slice() {
                [one] => kept = Some(one.id.clone()),
                [] => problems.push(format!(
                    "no final snapshot (a snapshot tagged {}={} and {FINAL_SNAPSHOT_TAG}=true)",
                    self.scope.tag_key, self.scope.tag_value
                )),
                many => problems.push(format!(
                    "{} final snapshots, expected one: {}",
                    many.len(),
                    many.iter()
                        .map(|l| l.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        let survivors: Vec<&Leftover> = if except_final_snapshot {
            others.iter().collect()
        } else {
            others.iter().chain(finals.iter()).collect()
        };
        if !survivors.is_empty() {
            problems.push(format!(
                "{} object(s) survived:\n{}",
                survivors.len(),
                survivors
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        if problems.is_empty() {
            Ok(Ok(kept))
        } else {
            Ok(Err(format!(
                "leftovers of {}={} / names {}*: {}",
                self.scope.tag_key,
                self.scope.tag_value,
                self.scope.name_prefix,
                problems.join("; ")
            )))
        }
    }

    /// Panics listing what survived. With `except_final_snapshot`, exactly one snapshot
    /// tagged [`FINAL_SNAPSHOT_TAG`] = `true` must be left, and its id is returned.
    pub async fn assert_nothing_left(&self, except_final_snapshot: bool) -> Option<String> {
        match self.check_nothing_left(except_final_snapshot).await {
            Ok(Ok(kept)) => kept,
            Ok(Err(message)) => panic!("{message}"),
            Err(e) => panic!("listing leftovers failed: {e:#}"),
        }
    }

    async fn ec2(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let ec2 = &self.clients.ec2;
        let s = &self.scope;
        let mut push = |kind: Kind, id: Option<&str>| {
            found.push(Leftover {
                kind,
                id: id.unwrap_or("?").to_string(),
                final_snapshot: false,
            })
        };

        let vpcs = ec2
            .describe_vpcs()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeVpcs: {}", err_text(&e)))?;
        for v in vpcs.iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::Vpc, v.vpc_id());
        }
        let subnets = ec2
            .describe_subnets()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeSubnets: {}", err_text(&e)))?;
        for v in subnets.iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::Subnet, v.subnet_id());
        }
        let igws = ec2
            .describe_internet_gateways()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeInternetGateways: {}", err_text(&e)))?;
        for v in igws.iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::InternetGateway, v.internet_gateway_id());
        }
        let tables = ec2
            .describe_route_tables()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeRouteTables: {}", err_text(&e)))?;
        for v in tables.iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::RouteTable, v.route_table_id());
        }
        let groups = ec2
            .describe_security_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeSecurityGroups: {}", err_text(&e)))?;
        for v in groups.iter().filter(|v| ec2_tagged!(v, s, v.group_name())) {
            push(Kind::SecurityGroup, v.group_id());
        }
        let volumes = ec2
            .describe_volumes()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeVolumes: {}", err_text(&e)))?;
        for v in volumes.iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::Volume, v.volume_id());
        }
        let addresses = ec2
            .describe_addresses()
            .send()
            .await
            .map_err(|e| anyhow!("DescribeAddresses: {}", err_text(&e)))?;
        for v in addresses.addresses().iter().filter(|v| ec2_tagged!(v, s)) {
            push(Kind::Address, v.allocation_id().or(v.public_ip()));
        }
        let interfaces = ec2
            .describe_network_interfaces()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeNetworkInterfaces: {}", err_text(&e)))?;
        for v in interfaces.iter().filter(|v| {
            if s.is_strict() {
                s.owns(name_tag(v.tag_set()), ec2_pairs(v.tag_set()))
            } else {
                tagged(
                    v.tag_set().iter().map(|t| (t.key(), t.value())),
                    &s.tag_key,
                    &s.tag_value,
                )
            }
        }) {
            push(Kind::NetworkInterface, v.network_interface_id());
        }
        let templates = ec2
            .describe_launch_templates()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeLaunchTemplates: {}", err_text(&e)))?;
        for v in templates
            .iter()
            .filter(|v| ec2_tagged!(v, s, v.launch_template_name()))
        {
            push(Kind::LaunchTemplate, v.launch_template_id());
        }
        let reservations = ec2
            .describe_instances()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeInstances: {}", err_text(&e)))?;
        for v in reservations
            .iter()
            .flat_map(|r| r.instances())
            .filter(|v| ec2_tagged!(v, s))
        {
            let state = v
                .state()
                .and_then(|st| st.name())
                .map(|n| n.as_str())
                .unwrap_or("");
            if state != "terminated" && state != "shutting-down" {
                push(Kind::Instance, v.instance_id());
            }
        }
        // The tag filter narrows the answer server-side (the tags are still compared here,
        // so the answer does not depend on which filters the emulator implements).
        // A strict scope's value is a prefix: the filter asks for the key only.
        let filter = if s.is_strict() {
            aws_sdk_ec2::types::Filter::builder()
                .name("tag-key")
                .values(&s.tag_key)
                .build()
        } else {
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{}", s.tag_key))
                .values(&s.tag_value)
                .build()
        };
        let snapshots = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeSnapshots: {}", err_text(&e)))?;
        for v in snapshots.iter().filter(|v| ec2_tagged!(v, s)) {
            // A live final snapshot ("true") or one of a lineage a destroy ended ("ended"):
            // both are data the provider keeps on purpose.
            let is_final = ["true", "ended"].iter().any(|value| {
                tagged(
                    v.tags().iter().map(|t| (t.key(), t.value())),
                    FINAL_SNAPSHOT_TAG,
                    value,
                )
            });
            found.push(Leftover {
                kind: Kind::Snapshot,
                id: v.snapshot_id().unwrap_or("?").to_string(),
                final_snapshot: is_final,
            });
        }
        Ok(())
    }

    async fn autoscaling(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let asg = &self.clients.autoscaling;
        let s = &self.scope;
        let groups = asg
            .describe_auto_scaling_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeAutoScalingGroups: {}", err_text(&e)))?;
        for g in &groups {
            let name = g.auto_scaling_group_name().unwrap_or("?");
            let pairs = g
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value().unwrap_or(""))));
            let ours = s.owns(Some(name), pairs);
            if ours {
                found.push(leftover(Kind::AutoScalingGroup, name));
            } else if s.is_strict() {
                // Hooks are deleted with their group: only an owned group's are listed.
                continue;
            }
            let hooks = asg
                .describe_lifecycle_hooks()
                .auto_scaling_group_name(name)
                .send()
                .await
                .map_err(|e| anyhow!("DescribeLifecycleHooks {name}: {}", err_text(&e)))?;
            for h in hooks.lifecycle_hooks() {
                let hook = h.lifecycle_hook_name().unwrap_or("?");
                if ours || s.has_name(hook) {
                    found.push(leftover(Kind::LifecycleHook, &format!("{name}/{hook}")));
                }
            }
        }
        Ok(())
    }

    async fn iam(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let iam = &self.clients.iam;
        let roles = iam
            .list_roles()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("ListRoles: {}", err_text(&e)))?;
        for role in roles.iter().filter(|r| self.scope.has_name(r.role_name())) {
            let name = role.role_name();
            if self.scope.is_strict() {
                if role.path() != ROLE_PATH {
                    continue;
                }
                let tags = iam
                    .list_role_tags()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| anyhow!("ListRoleTags {name}: {}", err_text(&e)))?;
                let pairs = tags.tags().iter().map(|t| (t.key(), t.value()));
                if !self.scope.owns(Some(name), pairs) {
                    continue;
                }
            }
            found.push(leftover(Kind::Role, name));
            let policies = iam
                .list_role_policies()
                .role_name(name)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| anyhow!("ListRolePolicies {name}: {}", err_text(&e)))?;
            for p in policies {
                found.push(leftover(Kind::RolePolicy, &format!("{name}/{p}")));
            }
        }
        Ok(())
    }

    async fn lambda(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let lambda = &self.clients.lambda;
        let functions = lambda
            .list_functions()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("ListFunctions: {}", err_text(&e)))?;
        for f in &functions {
            let name = f.function_name().unwrap_or("?");
            let mut ours = self.scope.has_name(name);
            if self.scope.is_strict() {
                if !ours {
                    continue;
                }
                let arn = f.function_arn().unwrap_or(name);
                let tags = lambda
                    .list_tags()
                    .resource(arn)
                    .send()
                    .await
                    .map_err(|e| anyhow!("ListTags {name}: {}", err_text(&e)))?;
                let pairs = tags
                    .tags()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                ours = self.scope.owns(Some(name), pairs);
                if !ours {
                    continue;
                }
            }
            if ours {
                found.push(leftover(Kind::Function, name));
            }
            let policy = match lambda.get_policy().function_name(name).send().await {
                Ok(p) => p.policy().unwrap_or_default().to_string(),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(anyhow!("GetPolicy {name}: {}", err_text(&e))),
            };
            let doc: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
            let statements = match doc.get("Statement") {
                Some(serde_json::Value::Array(a)) => a.clone(),
                Some(one) => vec![one.clone()],
                None => Vec::new(),
            };
            for st in statements {
                let sid = st.get("Sid").and_then(|v| v.as_str()).unwrap_or("?");
                if ours || self.scope.has_name(sid) {
                    found.push(leftover(Kind::FunctionPermission, &format!("{name}/{sid}")));
                }
            }
        }
        Ok(())
    }

    async fn eventbridge(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let events = &self.clients.eventbridge;
        let mut token: Option<String> = None;
        loop {
            let out = events
                .list_rules()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| anyhow!("ListRules: {}", err_text(&e)))?;
            for rule in out.rules() {
                let name = rule.name().unwrap_or("?");
                if !self.scope.has_name(name) {
                    continue;
                }
                if self.scope.is_strict() {
                    let arn = rule.arn().unwrap_or(name);
                    let tags = events
                        .list_tags_for_resource()
                        .resource_arn(arn)
                        .send()
                        .await
                        .map_err(|e| anyhow!("ListTagsForResource {name}: {}", err_text(&e)))?;
                    let pairs = tags.tags().iter().map(|t| (t.key(), t.value()));
                    if !self.scope.owns(Some(name), pairs) {
                        continue;
                    }
                }
                found.push(leftover(Kind::Rule, name));
                let targets = events
                    .list_targets_by_rule()
                    .rule(name)
                    .send()
                    .await
                    .map_err(|e| anyhow!("ListTargetsByRule {name}: {}", err_text(&e)))?;
                for t in targets.targets() {
                    found.push(leftover(Kind::RuleTarget, &format!("{name}/{}", t.id())));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(()),
            }
        }
    }

    async fn log_groups(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let groups = self
            .clients
            .logs
            .describe_log_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| anyhow!("DescribeLogGroups: {}", err_text(&e)))?;
        let lambda_prefix = format!("/aws/lambda/{}", self.scope.name_prefix);
        for g in &groups {
            let name = g.log_group_name().unwrap_or("?");
            if self.scope.is_strict() {
                // Only the provider's: `/aws/lambda/<function>`.
                let Some(function) = name.strip_prefix("/aws/lambda/") else {
                    continue;
                };
                if !self.scope.has_name(function) {
                    continue;
                }
                let arn = match (g.log_group_arn(), g.arn()) {
                    (Some(arn), _) => arn.to_string(),
                    (None, Some(arn)) => arn.trim_end_matches(":*").to_string(),
                    (None, None) => continue,
                };
                let tags = self
                    .clients
                    .logs
                    .list_tags_for_resource()
                    .resource_arn(arn)
                    .send()
                    .await
                    .map_err(|e| anyhow!("ListTagsForResource {name}: {}", err_text(&e)))?;
                let pairs = tags
                    .tags()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                if self.scope.owns(Some(function), pairs) {
                    found.push(leftover(Kind::LogGroup, name));
                }
            } else if self.scope.has_name(name)
                || (!self.scope.name_prefix.is_empty() && name.starts_with(&lambda_prefix))
            {
                found.push(leftover(Kind::LogGroup, name));
            }
        }
        Ok(())
    }
}

impl Sweeper {
    /// CloudWatch alarms by name prefix; in a strict scope, only those whose tags say so.
    async fn alarms(&self, found: &mut Vec<Leftover>) -> anyhow::Result<()> {
        let cw = &self.clients.cloudwatch;
        let mut request = cw.describe_alarms();
        if !self.scope.name_prefix.is_empty() {
            request = request.alarm_name_prefix(&self.scope.name_prefix);
        }
        let out = request
            .send()
            .await
            .map_err(|e| anyhow!("DescribeAlarms: {}", err_text(&e)))?;
        for a in out.metric_alarms() {
            let name = a.alarm_name().unwrap_or("?");
            if !self.scope.has_name(name) {
                continue;
            }
            if self.scope.is_strict() {
                let tags = cw
                    .list_tags_for_resource()
                    .resource_arn(a.alarm_arn().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| anyhow!("ListTagsForResource {name}: {}", err_text(&e)))?;
                let pairs = tags
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?)));
                if !self.scope.owns(Some(name), pairs) {
                    continue;
                }
            }
            found.push(leftover(Kind::Alarm, name));
        }
        Ok(())
    }
}

fn leftover(kind: Kind, id: &str) -> Leftover {
    Leftover {
        kind,
        id: id.to_string(),
        final_snapshot: false,
    }
}
