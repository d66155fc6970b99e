//! Deleting what a [`Match::Strict`] scope lists, in dependency order: the Auto Scaling groups
//! (forced: their instances and lifecycle hooks go with them) and stray instances first, then
//! the EventBridge rules (targets first), Lambda functions (their permissions go with them),
//! log groups, IAM roles (inline and attached policies, instance profiles first), launch
//! templates, Elastic IPs (disassociated first), volumes, snapshots, security groups, subnets,
//! route tables (associations first), internet gateways (detached first) and VPCs.
//!
//! AWS frees things slowly (a terminated instance holds its network interface and volumes for
//! a while; a deleted group terminates its instances first), so one pass deletes what it can,
//! notes what AWS refused, and the next pass, after [`SweepOptions::interval`], lists again and
//! tries again, until nothing is left or [`SweepOptions::deadline`] has passed. Only what the
//! listing returned is ever deleted: the listing is the check of tag and prefix.

use std::time::{Duration, Instant};

use anyhow::bail;
use aws_sdk_ec2::error::ProvideErrorMetadata;

use super::{Kind, Leftover, Match, Sweeper};
use crate::local_aws::helpers::err_text;

/// How [`Sweeper::delete_all`] runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// List only: nothing is deleted.
    pub dry_run: bool,
    /// How long the passes may go on.
    pub deadline: Duration,
    /// The pause between passes.
    pub interval: Duration,
}

impl SweepOptions {
    /// What a real account needs: 15 minutes (a group's instances take minutes to terminate
    /// and to free their volumes and network interfaces), a pass every 10 s.
    pub fn real_account() -> Self {
        Self {
            dry_run: false,
            deadline: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(10),
        }
    }

    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }
}

/// What [`Sweeper::delete_all`] found (and, unless a dry run, deleted).
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Everything the first listing found.
    pub found: Vec<Leftover>,
    /// How many passes it took.
    pub passes: usize,
}

/// Whether an AWS error says the object is already gone (a delete that raced another).
fn gone(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        c.ends_with(".NotFound")
            || matches!(
                c,
                "NoSuchEntity"
                    | "ResourceNotFoundException"
                    | "InvalidAllocationID.NotFound"
                    | "InvalidAssociationID.NotFound"
            )
    })
}

/// The outcome of one delete call: `Ok` when done or already gone, `Err(text)` otherwise.
fn outcome<T, E>(what: &str, r: Result<T, aws_sdk_ec2::error::SdkError<E>>) -> Result<(), String>
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match r {
        Ok(_) => Ok(()),
        Err(e) if gone(e.code()) => Ok(()),
        // AWS's code and message say it; the whole context (the raw response) would bury it.
        Err(e) => match (e.code(), e.message()) {
            (Some(code), message) => Err(format!("{what}: {code}: {}", message.unwrap_or(""))),
            (None, _) => Err(format!("{what}: {}", err_text(&e))),
        },
    }
}

impl Sweeper {
    /// Lists what the scope owns and, unless `options.dry_run`, deletes it, pass after pass,
    /// until nothing is left: `Err` listing the survivors and AWS's last refusals when the
    /// deadline passes first. Refuses a [`Match::Local`] scope: only a strict scope (tag and
    /// prefix, both) may delete.
    pub async fn delete_all(&self, options: &SweepOptions) -> anyhow::Result<SweepReport> {
        if self.scope.matching != Match::Strict {
            bail!(
                "the sweeper deletes only with a strict scope (tag and name prefix both), \
                 not {:?}",
                self.scope
            );
        }
        let start = Instant::now();
        let found = self.leftovers().await?;
        let mut report = SweepReport {
            found: found.clone(),
            passes: 0,
        };
        if options.dry_run || found.is_empty() {
            return Ok(report);
        }
        let mut current = found;
        loop {
            report.passes += 1;
            let errors = self.delete_pass(&current).await;
            tokio::time::sleep(options.interval).await;
            current = self.leftovers().await?;
            if current.is_empty() {
                return Ok(report);
            }
            if start.elapsed() > options.deadline {
                bail!(
                    "after {} pass(es) in {:.0?}, {} object(s) of {} survive:\n{}\nAWS's last \
                     refusals:\n{}",
                    report.passes,
                    start.elapsed(),
                    current.len(),
                    self.scope.name_prefix,
                    current
                        .iter()
                        .map(|l| format!("  {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    errors
                        .iter()
                        .map(|e| format!("  {e}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            eprintln!(
                "sweeper: pass {} left {} object(s) of {}* ({} refusal(s)); trying again",
                report.passes,
                current.len(),
                self.scope.name_prefix,
                errors.len()
            );
        }
    }

    /// One pass: every deletion in dependency order; AWS's refusals are returned, not fatal.
    async fn delete_pass(&self, items: &[Leftover]) -> Vec<String> {
        let mut errors = Vec::new();
        let of = |kind: Kind| items.iter().filter(move |l| l.kind == kind);
        let c = &self.clients;
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                eprintln!("sweeper: {e}");
                errors.push(e);
            }
        };
        for l in of(Kind::AutoScalingGroup) {
            let r = c
                .autoscaling
                .delete_auto_scaling_group()
                .auto_scaling_group_name(&l.id)
                .force_delete(true)
                .send()
                .await;
            note(outcome(&format!("DeleteAutoScalingGroup {}", l.id), r));
        }
        let instances: Vec<String> = of(Kind::Instance).map(|l| l.id.clone()).collect();
        if !instances.is_empty() {
            let r = c
                .ec2
                .terminate_instances()
                .set_instance_ids(Some(instances.clone()))
                .send()
                .await;
            note(outcome(
                &format!("TerminateInstances {}", instances.join(" ")),
                r,
            ));
        }
        for l in of(Kind::RuleTarget) {
            let Some((rule, target)) = l.id.split_once('/') else {
                continue;
            };
            let r = c
                .eventbridge
                .remove_targets()
                .rule(rule)
                .ids(target)
                .send()
                .await;
            note(outcome(&format!("RemoveTargets {}", l.id), r));
        }
        for l in of(Kind::Rule) {
            let r = c.eventbridge.delete_rule().name(&l.id).send().await;
            note(outcome(&format!("DeleteRule {}", l.id), r));
        }
        for l in of(Kind::Function) {
            let r = c.lambda.delete_function().function_name(&l.id).send().await;
            note(outcome(&format!("DeleteFunction {}", l.id), r));
        }
        for l in of(Kind::LogGroup) {
            let r = c.logs.delete_log_group().log_group_name(&l.id).send().await;
            note(outcome(&format!("DeleteLogGroup {}", l.id), r));
        }
        for l in of(Kind::RolePolicy) {
            let Some((role, policy)) = l.id.split_once('/') else {
                continue;
            };
            let r = c
                .iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
                .await;
            note(outcome(&format!("DeleteRolePolicy {}", l.id), r));
        }
        for l in of(Kind::Role) {
            note(self.delete_role(&l.id).await);
        }
        for l in of(Kind::LaunchTemplate) {
            let r = c
                .ec2
                .delete_launch_template()
                .launch_template_id(&l.id)
                .send()
                .await;
            note(outcome(&format!("DeleteLaunchTemplate {}", l.id), r));
        }
        for l in of(Kind::Address) {
            note(self.release_address(&l.id).await);
        }
        // After the instances (an interface still attached answers InvalidParameterValue /
        // InvalidNetworkInterface.InUse until its instance has terminated: a later pass).
        for l in of(Kind::NetworkInterface) {
            let r = c
                .ec2
                .delete_network_interface()
                .network_interface_id(&l.id)
                .send()
                .await;
            note(outcome(&format!("DeleteNetworkInterface {}", l.id), r));
        }
        let alarms: Vec<String> = of(Kind::Alarm).map(|l| l.id.clone()).collect();
        if !alarms.is_empty() {
            let r = c
                .cloudwatch
                .delete_alarms()
                .set_alarm_names(Some(alarms.clone()))
                .send()
                .await;
            note(outcome(&format!("DeleteAlarms {}", alarms.join(" ")), r));
        }
        for l in of(Kind::Volume) {
            let r = c.ec2.delete_volume().volume_id(&l.id).send().await;
            note(outcome(&format!("DeleteVolume {}", l.id), r));
        }
        for l in of(Kind::Snapshot) {
            let r = c.ec2.delete_snapshot().snapshot_id(&l.id).send().await;
            note(outcome(&format!("DeleteSnapshot {}", l.id), r));
        }
        for l in of(Kind::SecurityGroup) {
            let r = c.ec2.delete_security_group().group_id(&l.id).send().await;
            note(outcome(&format!("DeleteSecurityGroup {}", l.id), r));
        }
        for l in of(Kind::Subnet) {
            let r = c.ec2.delete_subnet().subnet_id(&l.id).send().await;
            note(outcome(&format!("DeleteSubnet {}", l.id), r));
        }
        for l in of(Kind::RouteTable) {
            note(self.delete_route_table(&l.id).await);
        }
        for l in of(Kind::InternetGateway) {
            note(self.delete_internet_gateway(&l.id).await);
        }
        for l in of(Kind::Vpc) {
            let r = c.ec2.delete_vpc().vpc_id(&l.id).send().await;
            note(outcome(&format!("DeleteVpc {}", l.id), r));
        }
        errors
    }

    /// Managed policies detached and instance profiles left first (the provider makes
    /// neither, but a role with them cannot be deleted).
    async fn delete_role(&self, name: &str) -> Result<(), String> {
        let iam = &self.clients.iam;
        let attached = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| format!("ListAttachedRolePolicies {name}: {}", err_text(&e)))?;
        for p in attached.attached_policies() {
            let Some(arn) = p.policy_arn() else { continue };
            let r = iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await;
            outcome(&format!("DetachRolePolicy {name} {arn}"), r)?;
        }
        let profiles = iam
            .list_instance_profiles_for_role()
            .role_name(name)
            .send()
            .await
            .map_err(|e| format!("ListInstanceProfilesForRole {name}: {}", err_text(&e)))?;
        for p in profiles.instance_profiles() {
            let profile = p.instance_profile_name();
            let r = iam
                .remove_role_from_instance_profile()
                .role_name(name)
                .instance_profile_name(profile)
                .send()
                .await;
            outcome(
                &format!("RemoveRoleFromInstanceProfile {name} {profile}"),
                r,
            )?;
        }
        let r = iam.delete_role().role_name(name).send().await;
        outcome(&format!("DeleteRole {name}"), r)
    }

    async fn release_address(&self, allocation_id: &str) -> Result<(), String> {
        let ec2 = &self.clients.ec2;
        let out = ec2
            .describe_addresses()
            .allocation_ids(allocation_id)
            .send()
            .await;
        let out = match out {
            Err(e) if gone(e.code()) => return Ok(()),
            r => r.map_err(|e| format!("DescribeAddresses {allocation_id}: {}", err_text(&e)))?,
        };
        for a in out.addresses() {
            if let Some(association) = a.association_id() {
                let r = ec2
                    .disassociate_address()
                    .association_id(association)
                    .send()
                    .await;
                outcome(&format!("DisassociateAddress {allocation_id}"), r)?;
            }
        }
        let r = ec2
            .release_address()
            .allocation_id(allocation_id)
            .send()
            .await;
        outcome(&format!("ReleaseAddress {allocation_id}"), r)
    }

    async fn delete_route_table(&self, id: &str) -> Result<(), String> {
        let ec2 = &self.clients.ec2;
        let out = ec2.describe_route_tables().route_table_ids(id).send().await;
        let out = match out {
            Err(e) if gone(e.code()) => return Ok(()),
            r => r.map_err(|e| format!("DescribeRouteTables {id}: {}", err_text(&e)))?,
        };
        for t in out.route_tables() {
            for a in t.associations() {
                if a.main() == Some(true) {
                    continue;
                }
                let Some(association) = a.route_table_association_id() else {
                    continue;
                };
                let r = ec2
                    .disassociate_route_table()
                    .association_id(association)
                    .send()
                    .await;
                outcome(&format!("DisassociateRouteTable {id} {association}"), r)?;
            }
        }
        let r = ec2.delete_route_table().route_table_id(id).send().await;
        outcome(&format!("DeleteRouteTable {id}"), r)
    }

    async fn delete_internet_gateway(&self, id: &str) -> Result<(), String> {
        let ec2 = &self.clients.ec2;
        let out = ec2
            .describe_internet_gateways()
            .internet_gateway_ids(id)
            .send()
            .await;
        let out = match out {
            Err(e) if gone(e.code()) => return Ok(()),
            r => r.map_err(|e| format!("DescribeInternetGateways {id}: {}", err_text(&e)))?,
        };
        for g in out.internet_gateways() {
            for a in g.attachments() {
                let Some(vpc) = a.vpc_id() else { continue };
                let r = ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(vpc)
                    .send()
                    .await;
                outcome(&format!("DetachInternetGateway {id} {vpc}"), r)?;
            }
        }
        let r = ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await;
        outcome(&format!("DeleteInternetGateway {id}"), r)
    }
}
