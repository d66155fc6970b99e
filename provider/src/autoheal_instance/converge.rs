//! One step per AWS object, shared by create and update: each brings its object to what the
//! spec says, making it when it is missing. So what a step knows (how to adopt a leftover, what
//! to compare, which conflict is ours) lives in one place, and a fix to it holds for both.
//!
//! - Create calls a step with [`Presence::Absent`] for an object it is about to make, or with
//!   [`Presence::Unknown`] for one an interrupted create left (see `adopt`); the tags it
//!   writes carry the unfinished-create marker, which the create removes at its end.
//! - Update calls every step with [`Presence::Unknown`]: an object deleted out of band is made
//!   again (the repair), one that exists is converged (settings, tags).
//!
//! Finding, waiting and deleting stay in `crate::aws`, one module per service; this module
//! only decides what to call.

use crate::aws::tags::{self as aws_tags, Tags};
use crate::aws::{
    address, alarm, autoscaling_group, event_rule, iam_role, lambda_function, log_group,
    network_interface, security_group, volume, OpContext,
};

use super::alarms;
use super::create::{function_settings, policy_scope};
use super::failover_subnets;
use super::names;
use super::policy;
use super::retry_budget::retry_budget;
use super::security_rules;
use super::spec::Spec;
use super::steps::{first_failure, StepError, StepResult};
use super::tagging::{creating, object_tags, stack_tags};

/// Whether the object a step is asked for may exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Known not to exist: made without looking first (a create's new object).
    Absent,
    /// May exist: looked up first, then converged, or made when it is missing.
    Unknown,
}

/// The settings every step shares: where, for which stack, and whether a create is running
/// (its objects carry the unfinished-create marker).
pub struct Converger<'a> {
    pub ctx: &'a OpContext,
    pub spec: &'a Spec,
    pub creating: bool,
}

/// The failure messages' names of [`Converger::rule_permission`]'s two calls.
const INVOKE_STEPS: (&str, &str) = (
    "replace the invoke permission of",
    "add the invoke permission of",
);

/// The failover check's schedule: EventBridge's finest rate.
pub const FAILOVER_CHECK_RATE: &str = "rate(1 minute)";

/// What [`Converger::failover`] made or found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverObjects {
    pub function_arn: String,
    pub role_arn: String,
    pub rule_arn: String,
}

/// What [`Converger::address`] found or made.
pub struct Address {
    pub info: address::AddressInfo,
    /// Allocated now: an instance already serving does not have it yet.
    pub allocated: bool,
}

impl<'a> Converger<'a> {
    /// The tags an object should carry: `base`, plus the marker while a create runs.
    fn tags(&self, base: Tags) -> Tags {
        if self.creating {
            creating(self.spec, base)
        } else {
            base
        }
    }

    fn name(&self, d: names::DerivedName) -> String {
        d.for_stack(&self.spec.name)
    }

    /// The log group of the function, with its retention and tags.
    pub async fn log_group(
        &self,
        presence: Presence,
        created: impl FnOnce(),
    ) -> Result<(), StepError> {
        self.log_group_named(names::LOG_GROUP, presence, created)
            .await
    }

    /// A function's log group (`which`: the attachment or the failover function's).
    async fn log_group_named(
        &self,
        which: names::DerivedName,
        presence: Presence,
        created: impl FnOnce(),
    ) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let name = self.name(which);
        let object = || format!("log group {name}");
        let wanted = self.tags(stack_tags(spec));
        let found = match presence {
            Presence::Absent => None,
            Presence::Unknown => log_group::find(ctx, &name).await.step("find", object())?,
        };
        let Some(found) = found else {
            return log_group::create(ctx, &name, spec.log_retention_days, &wanted, created)
                .await
                .step("create", object());
        };
        created();
        if found.retention_days != Some(spec.log_retention_days) {
            log_group::set_retention(ctx, &name, spec.log_retention_days)
                .await
                .step("set the retention of", object())?;
        }
        if let Some(arn) = &found.arn {
            let current = log_group::tags(ctx, arn)
                .await
                .step("read the tags of", object())?;
            let (set, remove) = aws_tags::diff(&current, &wanted);
            log_group::set_tags(ctx, arn, &set, &remove)
                .await
                .step("tag", object())?;
        }
        Ok(())
    }

    /// The function's IAM role; returns its ARN, and whether it was made now (a function
    /// that already exists must then have its configuration written again: see
    /// [`Converger::function`]).
    ///
    /// A role found by its name is not trusted for it: one outside [`iam_role::ROLE_PATH`]
    /// is deleted and made again (a path cannot change); otherwise its trust policy is
    /// rewritten if it differs, its boundary set, and every inline policy but ours and every
    /// attached managed policy removed (ours is written by [`Converger::role_policy`]).
    pub async fn role(&self, presence: Presence) -> Result<(String, bool), StepError> {
        let name = names::lambda_role_name(&self.spec.name, self.ctx.region());
        self.role_named(
            presence,
            &name,
            &self.name(names::LAMBDA_POLICY),
            "autoheal: the attachment Lambda of this stack",
        )
        .await
    }

    /// A function's role (`name`, keeping the inline policy `ours`): see [`Converger::role`].
    async fn role_named(
        &self,
        presence: Presence,
        name: &str,
        ours: &str,
        description: &str,
    ) -> Result<(String, bool), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let name = name.to_string();
        let object = || format!("IAM role {name}");
        let wanted = self.tags(stack_tags(spec));
        let trust = policy::lambda_trust_policy();
        let mut found = match presence {
            Presence::Absent => None,
            Presence::Unknown => iam_role::find(ctx, &name).await.step("find", object())?,
        };
        if let Some(role) = found.as_ref().filter(|r| r.path != iam_role::ROLE_PATH) {
            tracing::info!(
                role = name,
                path = role.path,
                "re-creating the role under {} (a role's path cannot change)",
                iam_role::ROLE_PATH
            );
            iam_role::delete(ctx, &name)
                .await
                .step("delete (to re-create under /autoheal/)", object())?;
            found = None;
        }
        let Some(role) = found else {
            return iam_role::create(
                ctx,
                &name,
                &trust.to_string(),
                spec.lambda_role_permissions_boundary.as_deref(),
                description,
                &wanted,
            )
            .await
            .step("create", object())
            .map(|arn| (arn, true));
        };
        if role.trust_policy.as_ref() != Some(&trust) {
            iam_role::set_trust_policy(ctx, &name, &trust.to_string())
                .await
                .step("rewrite the trust policy of", object())?;
        }
        if role.permissions_boundary != spec.lambda_role_permissions_boundary {
            iam_role::set_permissions_boundary(
                ctx,
                &name,
                spec.lambda_role_permissions_boundary.as_deref(),
            )
            .await
            .step("set the permissions boundary of", object())?;
        }
        let (inline, attached) = iam_role::policies(ctx, &name)
            .await
            .step("list the policies of", object())?;
        for other in inline.iter().filter(|p| p.as_str() != ours) {
            iam_role::delete_policy(ctx, &name, other).await.step(
                "delete an inline policy the stack does not write",
                format!("{other} of IAM role {name}"),
            )?;
        }
        for arn in &attached {
            iam_role::detach_policy(ctx, &name, arn).await.step(
                "detach a managed policy",
                format!("{arn} from IAM role {name}"),
            )?;
        }
        let (set, remove) = aws_tags::diff(&role.tags, &wanted);
        iam_role::set_tags(ctx, &name, &set, &remove)
            .await
            .step("tag", object())?;
        Ok((role.arn, false))
    }

    /// The role's inline policy, naming this stack's volume, address, group and log group.
    /// Written every time: it is one cheap call, and it follows a re-created address.
    pub async fn role_policy(
        &self,
        role_arn: &str,
        volume: &volume::VolumeInfo,
        allocation_id: &str,
        interface: Option<&str>,
    ) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let scope = policy_scope(
            role_arn,
            ctx.region(),
            spec,
            volume,
            allocation_id,
            interface,
        )?;
        let role = names::lambda_role_name(&spec.name, ctx.region());
        let policy_name = self.name(names::LAMBDA_POLICY);
        iam_role::put_policy(
            ctx,
            &role,
            &policy_name,
            &policy::attach_policy(&scope).to_string(),
        )
        .await
        .step(
            "write",
            format!("inline policy {policy_name} of IAM role {role}"),
        )
    }

    /// The EventBridge rule (PutRule is an upsert, so a leftover is simply rewritten; it
    /// ignores the tags of a rule that exists, so those are converged apart). Returns its ARN.
    pub async fn rule(&self, presence: Presence) -> Result<String, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let name = self.name(names::EVENT_RULE);
        let object = || format!("EventBridge rule {name}");
        let wanted = self.tags(stack_tags(spec));
        let arn = event_rule::put(
            ctx,
            &name,
            event_rule::Trigger::Pattern(&event_rule::launch_pattern(
                &self.name(names::AUTOSCALING_GROUP),
            )),
            "autoheal: launch lifecycle actions of this stack's group, to its attachment Lambda",
            &wanted,
        )
        .await
        .step("write", object())?;
        if presence == Presence::Unknown {
            let current = event_rule::tags(ctx, &arn)
                .await
                .step("read the tags of", object())?;
            let (set, remove) = aws_tags::diff(&current, &wanted);
            event_rule::set_tags(ctx, &arn, &set, &remove)
                .await
                .step("tag", object())?;
        }
        Ok(arn)
    }

    /// The function (settings, code, reserved concurrency, tags), the rule's target on it and
    /// its invoke permission for the rule. `created` is told the ARN as soon as it is known.
    /// Returns the ARN. `role_made`: the role was made (again) just now; an existing
    /// function's configuration is then written even if it reads the same, because Lambda's
    /// grant on its environment variables' key names the old role's principal, and the
    /// function fails at init ("unable to decrypt the environment variables because KMS
    /// access was denied") until its configuration is updated.
    #[allow(clippy::too_many_arguments)]
    pub async fn function(
        &self,
        presence: Presence,
        zip: &[u8],
        role_arn: &str,
        role_made: bool,
        volume_id: &str,
        allocation_id: &str,
        interface: Option<&str>,
        rule_arn: &str,
        created: impl FnOnce(&str),
    ) -> Result<String, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let name = self.name(names::LAMBDA_FUNCTION);
        let object = || format!("Lambda function {name}");
        let settings = function_settings(spec, role_arn, volume_id, allocation_id, interface);
        let wanted = self.tags(stack_tags(spec));
        let found = match presence {
            Presence::Absent => None,
            Presence::Unknown => lambda_function::find(ctx, &name)
                .await
                .step("find", object())?,
        };
        // (ARN, made now, its reserved concurrency: none on a new function).
        let (arn, new, concurrency) = match found {
            None => {
                let arn = lambda_function::create(ctx, &name, &settings, zip, &wanted, created)
                    .await
                    .step("create", object())?;
                (arn, true, None)
            }
            Some(f) => {
                created(&f.arn);
                self.existing_function(&name, &f, &settings, role_made, zip, &wanted)
                    .await?;
                (f.arn, false, f.reserved_concurrency)
            }
        };
        // What the function needs before the first launch, once it exists: its reserved
        // concurrency, its event-invoke configuration (the retry budget), the rule's target
        // and the permission for that rule. None needs another, so they run at once; Lambda
        // answers a change that overlaps another on the same function with
        // ResourceConflictException ("an update is in progress"), which `classify` waits out.
        let reserved = async {
            if concurrency == spec.lambda_reserved_concurrency {
                return Ok(());
            }
            lambda_function::set_reserved_concurrency(ctx, &name, spec.lambda_reserved_concurrency)
                .await
                .step("set the reserved concurrency of", object())
        };
        let event_invoke = async {
            let budget = retry_budget(
                i64::from(spec.lifecycle_hook_timeout),
                i64::from(spec.lambda_timeout),
            );
            let current = if new {
                None
            } else {
                lambda_function::find_retry_budget(ctx, &name)
                    .await
                    .step("read the event-invoke configuration of", object())?
            };
            if current == Some(budget) {
                return Ok(());
            }
            lambda_function::set_retry_budget(ctx, &name, budget)
                .await
                .step("set the event-invoke configuration of", object())
        };
        let target = async {
            let rule = self.name(names::EVENT_RULE);
            let target_id = self.name(names::EVENT_TARGET_ID);
            event_rule::put_target(ctx, &rule, &target_id, &arn)
                .await
                .step("set the target of", format!("EventBridge rule {rule}"))?;
            if presence == Presence::Unknown {
                // A rule found by its name keeps only our target: another would receive every
                // launch event of this group.
                self.only_our_target(&rule, &target_id).await?;
            }
            Ok(())
        };
        let (reserved, event_invoke, target, permission) = tokio::join!(
            reserved,
            event_invoke,
            target,
            self.permission(new, rule_arn)
        );
        first_failure([reserved, event_invoke, target, permission])?;
        Ok(arn)
    }

    /// A function found by its name brought to `settings`, the code of `zip` and `wanted`
    /// tags. `role_made`: see [`Converger::function`].
    async fn existing_function(
        &self,
        name: &str,
        f: &lambda_function::FunctionInfo,
        settings: &lambda_function::FunctionSettings,
        role_made: bool,
        zip: &[u8],
        wanted: &Tags,
    ) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let object = || format!("Lambda function {name}");
        // An interrupted create may have left it mid-update; Lambda refuses a second update
        // until the first is done.
        lambda_function::wait_ready(ctx, name)
            .await
            .step("wait for", object())?;
        if f.settings != *settings || role_made {
            lambda_function::update_configuration(ctx, name, settings)
                .await
                .step("update the configuration of", object())?;
        }
        let deployed = super::read::lambda_sha_to_hex(&f.code_sha256);
        if deployed.as_deref() != Some(crate::handler_zip::sha256_hex(zip).as_str())
            || f.settings.architecture != spec.lambda_architecture
        {
            lambda_function::update_code(ctx, name, zip, &spec.lambda_architecture)
                .await
                .step("update the code of", object())?;
        }
        let (set, remove) = aws_tags::diff(&f.tags, wanted);
        lambda_function::set_tags(ctx, &f.arn, &set, &remove)
            .await
            .step("tag", object())
    }

    /// Removes every target of `rule` but `target_id`: another would be invoked by every
    /// event of the rule.
    async fn only_our_target(&self, rule: &str, target_id: &str) -> Result<(), StepError> {
        let object = || format!("EventBridge rule {rule}");
        let others: Vec<String> = event_rule::targets(self.ctx, rule)
            .await
            .step("list the targets of", object())?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id != target_id)
            .collect();
        event_rule::remove_targets(self.ctx, rule, &others)
            .await
            .step("remove other targets of", object())
    }

    /// Statement `sid` of `function`'s resource policy granting `rule_arn`: kept when it
    /// does (`ours`: the statement found, if looked up), replaced when it grants anything
    /// else, added when missing.
    /// `steps`: what the replace and the add are called in a failure's message.
    async fn rule_permission(
        &self,
        function: &str,
        sid: &str,
        ours: Option<lambda_function::Permission>,
        rule_arn: &str,
        (replace_step, add_step): (&'static str, &'static str),
    ) -> Result<(), StepError> {
        let object = || format!("Lambda function {function}");
        match ours {
            Some(p) if p.grants(rule_arn) => return Ok(()),
            // Ours by its id, but granting something else (another rule, another principal
            // or action): replaced.
            Some(_) => lambda_function::remove_permission(self.ctx, function, sid)
                .await
                .step(replace_step, object())?,
            None => {}
        }
        lambda_function::add_permission(self.ctx, function, sid, rule_arn)
            .await
            .step(add_step, object())
    }

    /// The function's permission for `events.amazonaws.com` to invoke it from `rule_arn`: a
    /// statement of our id that grants anything else is replaced, and every other statement
    /// of the function's resource policy (the provider writes none) is removed.
    async fn permission(&self, new_function: bool, rule_arn: &str) -> Result<(), StepError> {
        let ctx = self.ctx;
        let function = self.name(names::LAMBDA_FUNCTION);
        let object = || format!("Lambda function {function}");
        let sid = self.name(names::LAMBDA_PERMISSION_SID);
        if !new_function {
            let current = lambda_function::find_policy(ctx, &function, &sid)
                .await
                .step("read the permissions of", object())?;
            // The snapshot schedule's statement is the stack's while it has a schedule
            // (`snapshot_schedule` keeps it); without one it goes like any other.
            let schedule_sid = self.name(names::SNAPSHOT_PERMISSION_SID);
            let keep = |sid: &String| self.spec.snapshot_schedule.is_some() && *sid == schedule_sid;
            for other in current.other_sids.iter().filter(|sid| !keep(sid)) {
                lambda_function::remove_permission(ctx, &function, other)
                    .await
                    .step(
                        "remove a permission the stack does not write from",
                        object(),
                    )?;
            }
            return self
                .rule_permission(&function, &sid, current.ours, rule_arn, INVOKE_STEPS)
                .await;
        }
        self.rule_permission(&function, &sid, None, rule_arn, INVOKE_STEPS)
            .await
    }

    /// The scheduled snapshots' schedule: with `snapshot_interval`, the rule `<name>-snapshot`
    /// at that rate, its one target on the function (`function_arn`) and the function's
    /// permission for that rule; without, none of them (the rule and the permission of an
    /// earlier setting are deleted; the snapshots stay: they are the data). Returns the
    /// rule's ARN, `None` without a schedule. `presence`: of the rule and the permission
    /// (`Absent` on a create's new function).
    pub async fn snapshot_schedule(
        &self,
        presence: Presence,
        function_arn: &str,
    ) -> Result<Option<String>, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let rule = self.name(names::SNAPSHOT_RULE);
        let function = self.name(names::LAMBDA_FUNCTION);
        let sid = self.name(names::SNAPSHOT_PERMISSION_SID);
        let object = || format!("EventBridge rule {rule}");
        let function_object = || format!("Lambda function {function}");
        let current = match presence {
            Presence::Absent => None,
            Presence::Unknown => Some(
                lambda_function::find_policy(ctx, &function, &sid)
                    .await
                    .step("read the permissions of", function_object())?,
            ),
        };
        let Some(schedule) = &spec.snapshot_schedule else {
            if presence == Presence::Unknown {
                // The permission first: nothing may invoke the function from a rule of that
                // name once it is gone.
                if current.is_some_and(|c| c.ours.is_some()) {
                    lambda_function::remove_permission(ctx, &function, &sid)
                        .await
                        .step("remove the schedule's permission from", function_object())?;
                }
                event_rule::delete(ctx, &rule)
                    .await
                    .step("delete", object())?;
            }
            return Ok(None);
        };
        let wanted = self.tags(stack_tags(spec));
        let arn = event_rule::put(
            ctx,
            &rule,
            event_rule::Trigger::Schedule(&schedule.expression()),
            "autoheal: scheduled snapshots of this stack's data volume, by its Lambda function",
            &wanted,
        )
        .await
        .step("write", object())?;
        let target_id = self.name(names::EVENT_TARGET_ID);
        event_rule::put_target(ctx, &rule, &target_id, function_arn)
            .await
            .step("set the target of", object())?;
        if presence == Presence::Unknown {
            let tags = event_rule::tags(ctx, &arn)
                .await
                .step("read the tags of", object())?;
            let (set, remove) = aws_tags::diff(&tags, &wanted);
            event_rule::set_tags(ctx, &arn, &set, &remove)
                .await
                .step("tag", object())?;
            // Only our target: another would be invoked at every run.
            self.only_our_target(&rule, &target_id).await?;
        }
        self.rule_permission(
            &function,
            &sid,
            current.and_then(|c| c.ours),
            &arn,
            (
                "replace the schedule's permission of",
                "add the schedule's permission to",
            ),
        )
        .await?;
        Ok(Some(arn))
    }

    /// The zone failover's objects (docs/zone-failover.md, section 3): with failover zones
    /// and scheduled snapshots, the function `<name>-failover` (the same zip as the
    /// attachment function), its log group, its role `<name>-<region>-failover` with its one
    /// inline policy, and the rule `<name>-failover-check` (`rate(1 minute)`) with its target
    /// and permission; without, none of them (those of an earlier setting are deleted).
    /// `subnets`: zone -> subnet of every zone the stack may serve from, home included.
    pub async fn failover(
        &self,
        zip: &[u8],
        volume: &volume::VolumeInfo,
        allocation_id: &str,
        subnets: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<FailoverObjects>, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        if !spec.has_failover() {
            self.delete_failover().await?;
            return Ok(None);
        }
        let function = self.name(names::FAILOVER_FUNCTION);
        let rule = self.name(names::FAILOVER_RULE);
        let role_name = names::failover_role_name(&spec.name, ctx.region());
        let policy_name = self.name(names::FAILOVER_POLICY);
        let function_object = || format!("Lambda function {function}");
        let rule_object = || format!("EventBridge rule {rule}");
        self.log_group_named(names::FAILOVER_LOG_GROUP, Presence::Unknown, || {})
            .await?;
        let (role_arn, role_made) = self
            .role_named(
                Presence::Unknown,
                &role_name,
                &policy_name,
                "autoheal: the zone-failover Lambda of this stack",
            )
            .await?;
        let scope = policy_scope(&role_arn, ctx.region(), spec, volume, allocation_id, None)?;
        let failover_scope = policy::FailoverScope {
            zones: subnets.keys().cloned().collect(),
            subnets: {
                let mut s: Vec<String> = subnets.values().cloned().collect();
                s.sort();
                s
            },
            log_group_name: self.name(names::FAILOVER_LOG_GROUP),
        };
        iam_role::put_policy(
            ctx,
            &role_name,
            &policy_name,
            &policy::failover_policy(&scope, &failover_scope).to_string(),
        )
        .await
        .step(
            "write",
            format!("inline policy {policy_name} of IAM role {role_name}"),
        )?;
        let settings = super::create::failover_function_settings(
            spec,
            &role_arn,
            &volume.volume_id,
            allocation_id,
            subnets,
        );
        let wanted = self.tags(stack_tags(spec));
        let (arn, concurrency) = match lambda_function::find(ctx, &function)
            .await
            .step("find", function_object())?
        {
            None => (
                lambda_function::create(ctx, &function, &settings, zip, &wanted, |_| {})
                    .await
                    .step("create", function_object())?,
                None,
            ),
            Some(f) => {
                self.existing_function(&function, &f, &settings, role_made, zip, &wanted)
                    .await?;
                (f.arn, f.reserved_concurrency)
            }
        };
        // One run at a time: two concurrent runs could each restore a volume.
        if concurrency != Some(1) {
            lambda_function::set_reserved_concurrency(ctx, &function, Some(1))
                .await
                .step("set the reserved concurrency of", function_object())?;
        }
        // No retries: the next minute's run looks again, from AWS's records.
        let budget = lambda_function::RetryBudget {
            maximum_retry_attempts: 0,
            maximum_event_age_seconds: 60,
        };
        if lambda_function::find_retry_budget(ctx, &function)
            .await
            .step("read the event-invoke configuration of", function_object())?
            != Some(budget)
        {
            lambda_function::set_retry_budget(ctx, &function, budget)
                .await
                .step("set the event-invoke configuration of", function_object())?;
        }
        let rule_arn = event_rule::put(
            ctx,
            &rule,
            event_rule::Trigger::Schedule(FAILOVER_CHECK_RATE),
            "autoheal: the zone-failover check of this stack, every minute",
            &wanted,
        )
        .await
        .step("write", rule_object())?;
        let tags = event_rule::tags(ctx, &rule_arn)
            .await
            .step("read the tags of", rule_object())?;
        let (set, remove) = aws_tags::diff(&tags, &wanted);
        event_rule::set_tags(ctx, &rule_arn, &set, &remove)
            .await
            .step("tag", rule_object())?;
        let target_id = self.name(names::EVENT_TARGET_ID);
        event_rule::put_target(ctx, &rule, &target_id, &arn)
            .await
            .step("set the target of", rule_object())?;
        self.only_our_target(&rule, &target_id).await?;
        let sid = self.name(names::FAILOVER_PERMISSION_SID);
        let current = lambda_function::find_policy(ctx, &function, &sid)
            .await
            .step("read the permissions of", function_object())?;
        for other in &current.other_sids {
            lambda_function::remove_permission(ctx, &function, other)
                .await
                .step(
                    "remove a permission the stack does not write from",
                    function_object(),
                )?;
        }
        self.rule_permission(&function, &sid, current.ours, &rule_arn, INVOKE_STEPS)
            .await?;
        Ok(Some(FailoverObjects {
            function_arn: arn,
            role_arn,
            rule_arn,
        }))
    }

    /// Deletes the failover's objects, each if it exists: the rule first (nothing invokes
    /// the function once it is gone), then the function, its log group and its role.
    pub async fn delete_failover(&self) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let rule = self.name(names::FAILOVER_RULE);
        event_rule::delete(ctx, &rule)
            .await
            .step("delete", format!("EventBridge rule {rule}"))?;
        let function = self.name(names::FAILOVER_FUNCTION);
        lambda_function::delete(ctx, &function)
            .await
            .step("delete", format!("Lambda function {function}"))?;
        let logs = self.name(names::FAILOVER_LOG_GROUP);
        log_group::delete(ctx, &logs)
            .await
            .step("delete", format!("log group {logs}"))?;
        let role = names::failover_role_name(&spec.name, ctx.region());
        iam_role::delete(ctx, &role)
            .await
            .step("delete", format!("IAM role {role}"))
    }

    /// The Elastic IP: the user's (`existing_allocation_id`), the one `known` names (the
    /// state's, or an interrupted create's; it must still exist), or a new one.
    pub async fn address(&self, known: Option<&str>) -> Result<Address, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let (id, gone) = match (&spec.existing_allocation_id, known) {
            (Some(id), _) => (
                id.as_str(),
                format!("existing_allocation_id: address {id} does not exist in this account and region"),
            ),
            (None, Some(id)) => (id, "the address no longer exists".to_string()),
            (None, None) => {
                let info = address::allocate(ctx, &self.tags(object_tags(spec, names::EIP_NAME_TAG)))
                    .await
                    .step("allocate", "Elastic IP")?;
                return Ok(Address {
                    info,
                    allocated: true,
                });
            }
        };
        let object = || format!("Elastic IP {id}");
        let info = address::find(ctx, id)
            .await
            .step("find", object())?
            .ok_or_else(|| StepError::problem("use", object(), gone))?;
        if spec.existing_allocation_id.is_none() {
            let wanted = self.tags(object_tags(spec, names::EIP_NAME_TAG));
            let (set, remove) = aws_tags::diff(&info.tags, &wanted);
            crate::aws::ec2_tags::set(
                ctx,
                std::slice::from_ref(&info.allocation_id),
                &set,
                &remove,
            )
            .await
            .step("tag", object())?;
        }
        Ok(Address {
            info,
            allocated: false,
        })
    }

    /// The instance's security group in `vpc_id`: the one `known` names, converged (its rules,
    /// tags), or a new one when there is none or it is gone. `created` is told a new
    /// group's id at once. Returns (id, made now).
    pub async fn security_group(
        &self,
        known: Option<&str>,
        vpc_id: &str,
        created: impl FnOnce(&str),
    ) -> Result<(String, bool), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let wanted = self.tags(object_tags(spec, names::SECURITY_GROUP));
        let found = match known {
            Some(id) => security_group::find(ctx, id)
                .await
                .step("find", format!("security group {id}"))?,
            None => None,
        };
        let wanted_rules = security_rules::wanted(spec);
        if let Some(g) = found {
            let object = || format!("security group {}", g.group_id);
            // Exactly the configured rules: what else is there (added by hand, or left in a
            // group adopted by name) goes, IPv4 and IPv6, ingress and egress.
            if g.rules != security_rules::wanted_set(spec) {
                security_group::set_rules(ctx, &g.group_id, &g.rules, &wanted_rules)
                    .await
                    .step("set the rules of", object())?;
            }
            // DescribeSecurityGroups' tags are not read back here: set them all (CreateTags
            // overwrites), removing none.
            crate::aws::ec2_tags::set(ctx, std::slice::from_ref(&g.group_id), &wanted, &[])
                .await
                .step("tag", object())?;
            return Ok((g.group_id, false));
        }
        let name = self.name(names::SECURITY_GROUP);
        let id = security_group::create(ctx, &name, vpc_id, &wanted_rules, &wanted, created)
            .await
            .step("create", format!("security group {name}"))?;
        Ok((id, true))
    }

    /// The failover zones' subnets (`failover_zones`), zone -> subnet id, in `vpc_id` beside
    /// `home_subnet_id`.
    ///
    /// - The provider's network: the VPC's subnets decide (`failover_subnets::plan`): the
    ///   stack's failover subnets of zones still listed are kept (and tagged as the spec says),
    ///   the others deleted; a missing one is made in the first free block of `subnet_cidr`'s
    ///   size and associated with the stack's route table. `created` is told each new one at
    ///   once. With no failover zones and none left, this lists the subnets once.
    /// - The user's subnets (`failover_subnet_ids`): each must exist, be in its zone and in
    ///   `vpc_id`; nothing is made or changed.
    pub async fn failover_subnets(
        &self,
        vpc_id: &str,
        home_subnet_id: &str,
        mut created: impl FnMut(&str, &str),
    ) -> Result<std::collections::BTreeMap<String, String>, StepError> {
        use crate::aws::network;
        let (ctx, spec) = (self.ctx, self.spec);
        if !spec.creates_network() {
            return self.users_failover_subnets(vpc_id).await;
        }
        let vpc = || format!("the subnets of VPC {vpc_id}");
        let subnets = network::subnets_in(ctx, vpc_id).await.step("list", vpc())?;
        let plan = failover_subnets::plan(
            &spec.name,
            home_subnet_id,
            &spec.vpc_cidr,
            &spec.subnet_cidr,
            &spec.failover_zones,
            &subnets,
        );
        if let Some(zone) = plan.no_room.first() {
            return Err(StepError::problem(
                "make",
                format!("the failover subnet in {zone}"),
                format!(
                    "failover_zones: VPC {vpc_id} ({}) has no free block of subnet_cidr's size \
                     ({}) left for {zone}",
                    spec.vpc_cidr, spec.subnet_cidr
                ),
            ));
        }
        for id in &plan.delete {
            tracing::info!(
                subnet_id = id,
                "deleting a failover subnet whose zone is no longer in failover_zones"
            );
            network::delete_subnet(ctx, id)
                .await
                .step("delete", format!("failover subnet {id}"))?;
        }
        let tags = |zone: &str| {
            let mut t = object_tags(spec, names::SUBNET_NAME_TAG);
            t.insert(
                names::NAME_TAG.to_string(),
                failover_subnets::subnet_name(&spec.name, zone),
            );
            self.tags(t)
        };
        let mut ids = plan.keep.clone();
        for (zone, id) in &plan.keep {
            let info = subnets.iter().find(|s| &s.subnet_id == id);
            let current = info.map(|s| s.tags.clone()).unwrap_or_default();
            let (set, remove) = aws_tags::diff(&current, &tags(zone));
            crate::aws::ec2_tags::set(ctx, std::slice::from_ref(id), &set, &remove)
                .await
                .step("tag", format!("failover subnet {id}"))?;
        }
        if plan.make.is_empty() {
            return Ok(ids);
        }
        let table = network::find_network(ctx, vpc_id)
            .await
            .step("find", format!("the route table of VPC {vpc_id}"))?
            .route_table_id
            .ok_or_else(|| {
                StepError::problem(
                    "find",
                    format!("the route table of VPC {vpc_id}"),
                    "the VPC has no route table of the stack's",
                )
            })?;
        for (zone, cidr) in &plan.make {
            let id = network::create_subnet(ctx, vpc_id, cidr, zone, &tags(zone))
                .await
                .step("create", format!("failover subnet in {zone}"))?;
            created(zone, &id);
            network::associate_route_table(ctx, &table, &id)
                .await
                .step("associate", format!("route table {table} with subnet {id}"))?;
            ids.insert(zone.clone(), id);
        }
        Ok(ids)
    }

    /// The user's failover subnets, checked: they exist, each in its zone and in `vpc_id`.
    async fn users_failover_subnets(
        &self,
        vpc_id: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, StepError> {
        let wanted = &self.spec.failover_subnet_ids;
        let ids: Vec<String> = wanted.values().cloned().collect();
        let found = crate::aws::network::find_subnets(self.ctx, &ids)
            .await
            .step("find", "the failover subnets")?;
        for (zone, id) in wanted {
            let object = || format!("subnet {id}");
            let Some(s) = found.iter().find(|s| &s.subnet_id == id) else {
                return Err(StepError::problem(
                    "use",
                    object(),
                    format!(
                        "failover_subnet_ids[\"{zone}\"]: subnet {id} does not exist in this \
                         account and region"
                    ),
                ));
            };
            if &s.availability_zone != zone {
                return Err(StepError::problem(
                    "use",
                    object(),
                    format!(
                        "failover_subnet_ids[\"{zone}\"]: subnet {id} is in {}, not {zone}",
                        s.availability_zone
                    ),
                ));
            }
            if s.vpc_id != vpc_id {
                return Err(StepError::problem(
                    "use",
                    object(),
                    format!(
                        "failover_subnet_ids[\"{zone}\"]: subnet {id} is in VPC {}, but \
                         subnet_id's VPC is {vpc_id}; the stack's security group lives in \
                         one VPC",
                        s.vpc_id
                    ),
                ));
            }
        }
        Ok(wanted.clone())
    }

    /// The persistent network interface (`persistent_network_interface`) in `subnet_id` with
    /// `security_group_ids`: the one `known` names, converged (its groups, tags), or a new one
    /// when there is none or it is gone (a new one has a new MAC and private IP: logged, since
    /// a licence bound to the old one no longer matches). `created` is told a new interface
    /// at once. `None` when the spec has none.
    ///
    /// A found interface is used only if it is in the stack's subnet: a tag or an id in the
    /// state proves nothing about where it is.
    pub async fn network_interface(
        &self,
        known: Option<&str>,
        subnet_id: &str,
        security_group_ids: &[String],
        created: impl FnOnce(&network_interface::InterfaceInfo),
    ) -> Result<Option<network_interface::InterfaceInfo>, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        if !spec.persistent_network_interface {
            return Ok(None);
        }
        let wanted = self.tags(object_tags(spec, names::NETWORK_INTERFACE_NAME_TAG));
        let found = match known {
            Some(id) => network_interface::find(ctx, id)
                .await
                .step("find", format!("network interface {id}"))?,
            None => None,
        };
        if let Some(n) = found {
            let object = || format!("network interface {}", n.network_interface_id);
            if n.subnet_id != subnet_id {
                return Err(StepError::problem(
                    "use",
                    object(),
                    format!(
                        "it is in subnet {}, not in the stack's subnet {subnet_id}; delete it or \
                         remove it from the state",
                        n.subnet_id
                    ),
                ));
            }
            let mut have = n.security_group_ids.clone();
            let mut want = security_group_ids.to_vec();
            have.sort();
            want.sort();
            if have != want {
                network_interface::set_security_groups(
                    ctx,
                    &n.network_interface_id,
                    security_group_ids,
                )
                .await
                .step("set the security groups of", object())?;
            }
            let (set, remove) = aws_tags::diff(&n.tags, &wanted);
            crate::aws::ec2_tags::set(
                ctx,
                std::slice::from_ref(&n.network_interface_id),
                &set,
                &remove,
            )
            .await
            .step("tag", object())?;
            return Ok(Some(n));
        }
        if let Some(gone) = known {
            tracing::warn!(
                network_interface_id = gone,
                "the stack's network interface no longer exists: making a new one, whose MAC \
                 address and private IP differ (a licence bound to the old ones must be moved)"
            );
        }
        let made = network_interface::create(
            ctx,
            subnet_id,
            security_group_ids,
            &format!(
                "autoheal: the persistent network interface of stack {}",
                spec.name
            ),
            &wanted,
        )
        .await
        .step("create", "network interface")?;
        created(&made);
        Ok(Some(made))
    }

    /// The stack's alarms: put when missing or different, tags converged; the alarms of a
    /// spec without `alarm_actions` deleted. Returns (heal failure ARN, no-in-service ARN).
    pub async fn alarms(&self) -> Result<(Option<String>, Option<String>), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let wanted = alarms::wanted(spec);
        let names = alarms::all_names(&spec.name);
        if wanted.is_empty() {
            alarm::delete(ctx, &names)
                .await
                .step("delete", "the stack's CloudWatch alarms")?;
            return Ok((None, None));
        }
        let tags = self.tags(stack_tags(spec));
        let found = alarm::find(ctx, &names)
            .await
            .step("find", "the stack's CloudWatch alarms")?;
        let mut made = false;
        for w in &wanted {
            let object = || format!("CloudWatch alarm {}", w.name);
            let existing = found.iter().find(|f| f.spec.name == w.name);
            if !existing.is_some_and(|f| alarms::matches(&f.spec, w)) {
                // PutMetricAlarm tags only a new alarm; an existing one's are converged below.
                let action = if existing.is_some() {
                    "write"
                } else {
                    "create"
                };
                alarm::put(ctx, w, &tags).await.step(action, object())?;
                made |= existing.is_none();
            }
            if let Some(f) = existing {
                let current = alarm::tags(ctx, &f.arn)
                    .await
                    .step("read the tags of", object())?;
                let (set, remove) = aws_tags::diff(&current, &tags);
                alarm::set_tags(ctx, &f.arn, &set, &remove)
                    .await
                    .step("tag", object())?;
            }
        }
        // The ARNs as CloudWatch reports them (a new alarm's: read back).
        let now = if made {
            alarm::find(ctx, &names)
                .await
                .step("find", "the stack's CloudWatch alarms")?
        } else {
            found
        };
        let arn = |name: &str| {
            now.iter()
                .find(|a| a.spec.name == name)
                .map(|a| a.arn.clone())
        };
        Ok((arn(&names[0]), arn(&names[1])))
    }

    /// The group's launch hook, with the configured heartbeat timeout (the group is made with
    /// it; an existing one is rewritten only when it differs).
    pub async fn hook(&self) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let group = self.name(names::AUTOSCALING_GROUP);
        let hook = self.name(names::LIFECYCLE_HOOK);
        let object = || format!("lifecycle hook {hook} of Auto Scaling group {group}");
        let current = autoscaling_group::find_hook(ctx, &group, &hook)
            .await
            .step("find", object())?;
        if current.map(|h| h.heartbeat_timeout) != Some(spec.lifecycle_hook_timeout) {
            autoscaling_group::put_hook(ctx, &group, &hook, spec.lifecycle_hook_timeout)
                .await
                .step("write", object())?;
        }
        Ok(())
    }
}
