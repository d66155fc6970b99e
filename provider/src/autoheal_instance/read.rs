//! Read (refresh) and import.
//!
//! Read describes every object of the stack at once and writes back what AWS says: the
//! instance serving now, the settings that can drift (volume size and type, SSH rules, grace
//! period, hook timeout, function settings and code, log retention, tags, launch template
//! version). An object deleted out of band has its id set to null, so the next plan shows an
//! update and the apply recreates that part alone (see [`super::update`]). Two exceptions:
//! a missing *data volume* is an error that says how to restore it, never quietly replaced by
//! an empty one; and a stack of which nothing is left is gone (null state), so Terraform plans
//! to create it again.

use std::collections::BTreeMap;

use base64::Engine;

use crate::aws::{
    address, alarm, autoscaling_group, event_rule, iam_role, lambda_function, launch_template,
    log_group, network_interface, security_group, volume, OpContext,
};
use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::resource::{ImportResponse, ReadResponse};
use crate::plugin::schema::Schema;
use crate::plugin::value::Value;

use super::names::{self, NAME_TAG, RESERVED_TAG_PREFIXES, STACK_TAG};
use super::policy::{SNAPSHOT_KIND_SCHEDULED, SNAPSHOT_KIND_TAG};
use super::spec::{SnapshotSchedule, Spec};
use super::stack::Stack;
use super::tagging::{FINAL_SNAPSHOT_TAG, LINEAGE_LIVE};

/// Lambda reports CodeSha256 in base64; state holds the hex digest (what plan computes).
pub fn lambda_sha_to_hex(b64: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The user's security groups of a template version: all but the stack's own, which the
/// provider puts first.
fn user_security_groups(ids: &[String]) -> Vec<String> {
    ids.iter().skip(1).cloned().collect()
}

/// The user's tags from an object's tags: without the provider's own (`Name` and the
/// reserved `autoheal:` keys) and AWS's.
fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| *k != NAME_TAG && !RESERVED_TAG_PREFIXES.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn set_str(state: &mut Value, attr: &str, v: Option<String>) {
    state.set_attr(attr, Value::from(v));
}

fn set_int(state: &mut Value, attr: &str, v: Option<i32>) {
    state.set_attr(attr, v.map_or(Value::Null, |n| Value::from(i64::from(n))));
}

pub async fn read(ctx: &OpContext, state: Value) -> ReadResponse {
    match refresh(ctx, state.clone()).await {
        Ok(new_state) => ReadResponse {
            new_state,
            diagnostics: Diagnostics::new(),
        },
        Err(diagnostics) => ReadResponse {
            new_state: state,
            diagnostics,
        },
    }
}

/// Whether the launch template or the VPC the provider made for the stack still exists.
async fn rest_left(
    ctx: &OpContext,
    spec: &Spec,
    stack: &Stack,
) -> Result<bool, crate::aws::AwsError> {
    if let Some(id) = &stack.launch_template_id {
        let version = stack.launch_template_version.unwrap_or(1);
        if launch_template::find_version(ctx, id, version)
            .await?
            .is_some()
        {
            return Ok(true);
        }
    }
    match &stack.vpc_id {
        Some(vpc) if spec.creates_network() => {
            Ok(crate::aws::network::find_vpc(ctx, vpc).await?.is_some())
        }
        _ => Ok(false),
    }
}

/// The refreshed state, `Null` when nothing of the stack is left.
pub async fn refresh(ctx: &OpContext, mut state: Value) -> Result<Value, Diagnostics> {
    let spec = Spec::from_value(&state);
    let stack = Stack::from_value(&state);
    let aws_err = |e: crate::aws::AwsError| {
        Diagnostics::from_error(format!("Failed to read stack {}", spec.name), e.to_string())
    };
    let group_name = names::AUTOSCALING_GROUP.for_stack(&spec.name);
    let hook_name = names::LIFECYCLE_HOOK.for_stack(&spec.name);
    let function_name = names::LAMBDA_FUNCTION.for_stack(&spec.name);
    let rule_name = names::EVENT_RULE.for_stack(&spec.name);
    let log_name = names::LOG_GROUP.for_stack(&spec.name);
    let role_name = names::lambda_role_name(&spec.name, ctx.region());

    let permission_sid = names::LAMBDA_PERMISSION_SID.for_stack(&spec.name);

    let opt = |id: &Option<String>| id.clone();
    let (group, hook, function, permission, rule, logs, role) = tokio::join!(
        autoscaling_group::find(ctx, &group_name),
        autoscaling_group::find_hook(ctx, &group_name, &hook_name),
        lambda_function::find(ctx, &function_name),
        lambda_function::find_policy(ctx, &function_name, &permission_sid),
        event_rule::find(ctx, &rule_name),
        log_group::find(ctx, &log_name),
        iam_role::find(ctx, &role_name),
    );
    let (group, hook, function, permission, rule, logs, role) = (
        group.map_err(aws_err)?,
        hook.map_err(aws_err)?,
        function.map_err(aws_err)?,
        permission.map_err(aws_err)?,
        rule.map_err(aws_err)?,
        logs.map_err(aws_err)?,
        role.map_err(aws_err)?,
    );
    let our_policy = names::LAMBDA_POLICY.for_stack(&spec.name);
    let alarm_names = super::alarms::all_names(&spec.name);
    // The snapshot schedule, for a stack that has (or had) one: its rule, the function's
    // permission for it, and the newest completed scheduled snapshot.
    let schedule_name = names::SNAPSHOT_RULE.for_stack(&spec.name);
    let schedule_sid = names::SNAPSHOT_PERMISSION_SID.for_stack(&spec.name);
    let wants_schedule = spec.snapshot_schedule.is_some()
        || stack.snapshot_rule_arn.is_some()
        || stack.last_snapshot_id.is_some();
    let schedule = async {
        if !wants_schedule {
            return Ok((None, None, None));
        }
        let (rule, policy, newest) = tokio::join!(
            event_rule::find(ctx, &schedule_name),
            lambda_function::find_policy(ctx, &function_name, &schedule_sid),
            async {
                match &stack.volume_id {
                    Some(id) => {
                        volume::newest_completed_snapshot_of(
                            ctx,
                            id,
                            (SNAPSHOT_KIND_TAG, SNAPSHOT_KIND_SCHEDULED),
                        )
                        .await
                    }
                    None => Ok(None),
                }
            },
        );
        Ok::<_, crate::aws::AwsError>((rule?, Some(policy?), newest?))
    };
    // The failover zones' subnets, for a stack that has (or had) some: those of the provider's
    // network found in its VPC (see `failover_subnets`), or the user's that still exist.
    let failover = async {
        if !spec.has_failover_zones() && stack.failover_subnet_ids.is_empty() {
            return Ok(None);
        }
        let found = match (&stack.vpc_id, &stack.subnet_id) {
            (Some(vpc), Some(home)) if spec.creates_network() => {
                let subnets = crate::aws::network::subnets_in(ctx, vpc).await?;
                super::failover_subnets::found(&spec.name, home, &subnets)
            }
            _ => {
                let ids: Vec<String> = stack.failover_subnet_ids.values().cloned().collect();
                let there = crate::aws::network::find_subnets(ctx, &ids).await?;
                stack
                    .failover_subnet_ids
                    .iter()
                    .filter(|(_, id)| there.iter().any(|s| &s.subnet_id == *id))
                    .map(|(z, id)| (z.clone(), id.clone()))
                    .collect()
            }
        };
        Ok::<_, crate::aws::AwsError>(Some(found))
    };
    let (vol, addr, sg, role_policies, role_policy, eni, alarms, schedule, failover) = tokio::join!(
        async {
            match opt(&stack.volume_id) {
                Some(id) => volume::find(ctx, &id).await,
                None => Ok(None),
            }
        },
        async {
            match opt(&stack.allocation_id) {
                Some(id) => address::find(ctx, &id).await,
                None => Ok(None),
            }
        },
        async {
            match opt(&stack.security_group_id) {
                Some(id) => security_group::find(ctx, &id).await,
                None => Ok(None),
            }
        },
        // Asked whether or not the role exists (a missing role answers NoSuchEntity, read as
        // none): in this round rather than after the role's, which would add two to the chain.
        iam_role::policies(ctx, &role_name),
        iam_role::get_policy(ctx, &role_name, &our_policy),
        async {
            match opt(&stack.network_interface_id) {
                Some(id) => network_interface::find(ctx, &id).await,
                None => Ok(None),
            }
        },
        async {
            // Asked only for a stack that has (or had) alarms: one call fewer for the others.
            if spec.has_alarms()
                || stack.heal_failure_alarm_arn.is_some()
                || stack.no_in_service_alarm_arn.is_some()
            {
                alarm::find(ctx, &alarm_names).await
            } else {
                Ok(Vec::new())
            }
        },
        schedule,
        failover,
    );
    let (schedule_rule, schedule_permission, newest_snapshot) = schedule.map_err(aws_err)?;
    if let Some(found) = failover.map_err(aws_err)? {
        let found: BTreeMap<String, String> = found;
        state.set_attr("failover_subnet_ids", super::spec::string_map_value(&found));
    }
    let (vol, addr, sg, role_policies, role_policy, eni, alarms) = (
        vol.map_err(aws_err)?,
        addr.map_err(aws_err)?,
        sg.map_err(aws_err)?,
        role_policies.map_err(aws_err)?,
        role_policy.map_err(aws_err)?,
        eni.map_err(aws_err)?,
        alarms.map_err(aws_err)?,
    );

    // Gone only when nothing of it is left, down to the network: a destroy interrupted in its
    // last steps leaves the template, the security group or the VPC, which the next destroy
    // must still find in the state.
    let nothing_named_left = group.is_none()
        && function.is_none()
        && rule.is_none()
        && logs.is_none()
        && role.is_none()
        && vol.is_none()
        && addr.is_none()
        && sg.is_none()
        && eni.is_none()
        && alarms.is_empty();
    if nothing_named_left && !rest_left(ctx, &spec, &stack).await.map_err(aws_err)? {
        tracing::info!(
            stack = spec.name,
            "nothing of the stack is left: it will be created again"
        );
        return Ok(Value::Null);
    }

    // The data volume.
    match (&stack.volume_id, &vol) {
        (Some(id), None) => {
            let snapshot = volume::newest_final_snapshot(
                ctx,
                STACK_TAG,
                &spec.name,
                (FINAL_SNAPSHOT_TAG, LINEAGE_LIVE),
            )
            .await
            .ok()
            .flatten();
            // A destroy that stopped midway (its group is already gone) deleted the volume
            // after its final snapshot, or by `volume_on_destroy = "delete"`: nothing is lost,
            // and the next destroy must be able to finish.
            let destroyed = group.is_none()
                && (spec.volume_on_destroy == "delete"
                    || snapshot.as_ref().is_some_and(|s| s.volume_id == *id));
            if destroyed {
                tracing::info!(
                    volume_id = id,
                    final_snapshot = snapshot.as_ref().map(|s| s.snapshot_id.as_str()),
                    "the data volume was deleted by an unfinished destroy"
                );
                set_str(&mut state, "volume_id", None);
            } else {
                return Err(Diagnostics::from_error(
                    format!(
                        "The data volume {id} of stack {} no longer exists",
                        spec.name
                    ),
                    format!(
                    "The provider does not replace a data volume with an empty one. To restore \
                     the data, create a volume in {} from the volume's newest snapshot{} (EC2 \
                     console: Snapshots, or `aws ec2 describe-snapshots --owner-ids self \
                     --filters Name=volume-id,Values={id}`), then either import it as \
                     `existing_volume_id` in a new stack, or remove this resource from the state \
                     (`terraform state rm`) and import the stack again.",
                    spec.availability_zone,
                    snapshot
                        .map(|s| format!(
                            " (the newest final snapshot of this stack is {})",
                            s.snapshot_id
                        ))
                        .unwrap_or_default()
                ),
                ));
            }
        }
        (_, Some(v)) => {
            set_str(
                &mut state,
                "volume_source_snapshot_id",
                v.snapshot_id.clone(),
            );
            set_int(&mut state, "volume_size", Some(v.size));
            set_str(&mut state, "volume_type", Some(v.volume_type.clone()));
            set_int(&mut state, "volume_iops", v.iops);
            set_int(&mut state, "volume_throughput", v.throughput);
        }
        _ => {}
    }

    // The address.
    match &addr {
        Some(a) => set_str(&mut state, "public_ip", Some(a.public_ip.clone())),
        None => {
            set_str(&mut state, "allocation_id", None);
            set_str(&mut state, "public_ip", None);
        }
    }

    // The persistent network interface: gone (the id goes null: the next apply makes a new
    // one), or there with the wrong groups or without the address (its private IP goes
    // null: the next apply converges it, keeping the interface).
    if stack.network_interface_id.is_some() {
        match &eni {
            None => super::create::record_interface_in_state(&mut state, None),
            Some(n) => {
                let mut wanted: Vec<String> = stack
                    .security_group_id
                    .iter()
                    .cloned()
                    .chain(spec.security_group_ids.iter().cloned())
                    .collect();
                let mut have = n.security_group_ids.clone();
                wanted.sort();
                have.sort();
                let addressed = addr
                    .as_ref()
                    .and_then(|a| a.network_interface_id.as_deref())
                    == Some(n.network_interface_id.as_str());
                let whole = have == wanted && (addressed || addr.is_none());
                if !whole {
                    tracing::warn!(
                        network_interface_id = n.network_interface_id,
                        security_groups = ?have,
                        addressed,
                        "the network interface is not what the stack writes; the next apply repairs it"
                    );
                }
                super::create::record_interface_in_state(&mut state, Some(n));
                if !whole {
                    set_str(&mut state, "network_interface_private_ip", None);
                }
            }
        }
    }

    // The alarms: each one that is missing or differs from the definition has its ARN null,
    // so the next apply writes it; a stack without `alarm_actions` reports what exists (to
    // be deleted).
    let wanted_alarms = super::alarms::wanted(&spec);
    for (attr, name) in [
        ("heal_failure_alarm_arn", &alarm_names[0]),
        ("no_in_service_alarm_arn", &alarm_names[1]),
    ] {
        let found = alarms.iter().find(|a| a.spec.name == *name);
        let ok = match wanted_alarms.iter().find(|w| w.name == *name) {
            Some(w) => found.is_some_and(|f| super::alarms::matches(&f.spec, w)),
            None => true,
        };
        if found.is_some() && !ok {
            tracing::warn!(
                alarm = name,
                "the alarm differs from what the stack writes; the next apply rewrites it"
            );
        }
        set_str(
            &mut state,
            attr,
            found.filter(|_| ok).map(|a| a.arn.clone()),
        );
    }

    // Security group: the configured rules that are there, and what else is.
    match &sg {
        Some(g) => {
            let (ingress, ssh, unmanaged) = super::security_rules::refreshed(&state, &spec, g);
            state.set_attr("ingress", ingress);
            let prior: Vec<String> = state
                .attr("ssh_ingress_cidrs")
                .elements()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let mut sorted = prior.clone();
            sorted.sort();
            sorted.dedup();
            // Keep the user's order when the set is the same (a list attribute). A null (an
            // import's state) takes AWS's list even when it is empty, or the plan would add `[]`.
            if sorted != ssh || state.attr("ssh_ingress_cidrs").is_null() {
                state.set_attr(
                    "ssh_ingress_cidrs",
                    Value::List(ssh.iter().map(|c| Value::from(c.as_str())).collect()),
                );
            }
            if !unmanaged.is_empty() {
                tracing::warn!(
                    security_group_id = g.group_id,
                    ?unmanaged,
                    "the security group holds rules the configuration does not; the next apply revokes them"
                );
            }
            state.set_attr(
                "unmanaged_security_group_rules",
                Value::List(unmanaged.into_iter().map(Value::from).collect()),
            );
        }
        None => set_str(&mut state, "security_group_id", None),
    }

    // Where the stack serves: the home zone and volume, or where a zone failover moved it
    // (the failover function's tags on the group; the group's subnet is not compared with
    // the configuration, so the plan stays calm after a failover). Null without the
    // failover unless the group serves away from home (see `active`).
    let (zone, volume) = super::active::serving(
        &spec,
        stack.volume_id.as_deref(),
        group.as_ref().map(|g| &g.tags),
    );
    set_str(&mut state, "active_availability_zone", zone);
    set_str(&mut state, "active_volume_id", volume);
    // The zone failover's function, role and rule, for a stack that has (or had) them: each
    // ARN null when its object is gone or not what the stack writes (the plan repairs it).
    if spec.has_failover() || stack.failover_function_arn.is_some() {
        let (function, role, rule, permission) =
            failover_objects(ctx, &spec, stack.volume_id.as_deref())
                .await
                .map_err(aws_err)?;
        set_str(&mut state, "failover_function_arn", function);
        set_str(&mut state, "failover_role_arn", role);
        set_str(&mut state, "failover_rule_arn", rule.filter(|_| permission));
    }

    // The group, its instance and its launch template.
    match &group {
        Some(g) => {
            let serving = g.in_service().first().copied();
            set_str(
                &mut state,
                "instance_id",
                g.current_instance().map(|i| i.instance_id.clone()),
            );
            set_int(
                &mut state,
                "health_check_grace_period",
                Some(g.health_check_grace_period),
            );
            let version = g
                .launch_template_version
                .as_deref()
                .and_then(|v| v.parse::<i64>().ok());
            state.set_attr(
                "launch_template_version",
                version.map_or(Value::Null, Value::from),
            );
            // What the serving instance runs: the version it was launched from. After an
            // update that moved the group to a new version but died before replacing the
            // instance, the group's version would claim the new settings while the old
            // instance still serves; this way the next plan rolls it. An instance's version
            // deleted by hand falls back to the group's; only a missing group version marks
            // the template for repair.
            let serving_version = serving
                .and_then(|i| i.launch_template_version.as_deref())
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| Some(*v) != version);
            if let (Some(id), Some(group_version)) = (&g.launch_template_id, version) {
                let mut template = None;
                for v in serving_version.into_iter().chain([group_version]) {
                    template = launch_template::find_version(ctx, id, v)
                        .await
                        .map_err(aws_err)?;
                    if template.is_some() {
                        break;
                    }
                }
                match template {
                    Some(t) => {
                        set_str(&mut state, "ami", Some(t.image_id));
                        set_str(&mut state, "instance_type", Some(t.instance_type));
                        set_str(&mut state, "key_name", t.key_name);
                        set_str(&mut state, "iam_instance_profile", t.iam_instance_profile);
                        let extra = user_security_groups(&t.security_group_ids);
                        // An empty list and null both say "none": keep the state's form.
                        if !(extra.is_empty()
                            && state.attr("security_group_ids").elements().is_empty())
                        {
                            state.set_attr(
                                "security_group_ids",
                                Value::List(extra.into_iter().map(Value::from).collect()),
                            );
                        }
                    }
                    None => set_str(&mut state, "launch_template_id", None),
                }
            }
            let tags = user_tags(&g.tags);
            state.set_attr(
                "tags_all",
                Value::Map(
                    tags.into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                ),
            );
        }
        None => {
            set_str(&mut state, "autoscaling_group_name", None);
            set_str(&mut state, "instance_id", None);
        }
    }
    match &hook {
        Some(h) => set_int(
            &mut state,
            "lifecycle_hook_timeout",
            Some(h.heartbeat_timeout),
        ),
        None => set_str(&mut state, "lifecycle_hook_name", None),
    }

    // The Lambda side.
    match &function {
        Some(f) => {
            set_str(&mut state, "lambda_function_arn", Some(f.arn.clone()));
            set_int(
                &mut state,
                "lambda_memory_size",
                Some(f.settings.memory_size),
            );
            set_int(&mut state, "lambda_timeout", Some(f.settings.timeout));
            set_str(
                &mut state,
                "lambda_architecture",
                Some(f.settings.architecture.clone()),
            );
            set_int(
                &mut state,
                "lambda_reserved_concurrency",
                f.reserved_concurrency,
            );
            set_str(
                &mut state,
                "handler_sha256",
                lambda_sha_to_hex(&f.code_sha256),
            );
            // The function must name this stack's volume and address; if not (a recreated
            // address), the id goes unknown-by-null so the plan repairs it.
            let env = &f.settings.environment;
            if env.get("AUTOHEAL_ALLOCATION_ID") != stack.allocation_id.as_ref()
                || env.get("AUTOHEAL_VOLUME_ID") != stack.volume_id.as_ref()
                || env.get(super::create::NETWORK_INTERFACE_ENV)
                    != stack.network_interface_id.as_ref()
                || env.get(super::create::SNAPSHOT_RULE_ENV)
                    != spec.snapshot_schedule.as_ref().map(|_| &schedule_name)
            {
                set_str(&mut state, "lambda_function_arn", None);
            }
            // The retention lives in the function's configuration: what it says is what the
            // state says.
            if let (Some(_), Some(r)) = (
                &spec.snapshot_schedule,
                env.get(super::create::SNAPSHOT_RETENTION_ENV)
                    .and_then(|r| r.parse::<i64>().ok()),
            ) {
                if Some(r) != state.attr("snapshot_retention").as_i64()
                    && !(state.attr("snapshot_retention").is_null()
                        && r == super::schema::DEFAULT_SNAPSHOT_RETENTION)
                {
                    state.set_attr("snapshot_retention", r.into());
                }
            }
        }
        None => set_str(&mut state, "lambda_function_arn", None),
    }
    // The rule is whole when it matches this group's launches, targets the function, and
    // the function lets EventBridge invoke it from this rule (without that permission the
    // rule fires into a denial and no instance heals). Any gap nulls the rule's ARN, and the
    // update that repairs it writes the rule, its target and the permission.
    // Only our target and only our statement: another target would receive this group's
    // launch events, another statement would let someone else invoke the function.
    let target_id = names::EVENT_TARGET_ID.for_stack(&spec.name);
    let rule_ok = rule.as_ref().is_some_and(|r| {
        r.enabled
            && r.pattern == event_rule::launch_pattern(&group_name)
            && function.as_ref().is_some_and(|f| {
                r.targets.len() == 1 && r.targets[0] == (target_id.clone(), f.arn.clone())
            })
            && permission.ours.as_ref().is_some_and(|p| p.grants(&r.arn))
            && permission
                .other_sids
                .iter()
                .all(|sid| spec.snapshot_schedule.is_some() && *sid == schedule_sid)
    });
    if rule.is_some() && !rule_ok {
        tracing::warn!(
            rule = rule_name,
            targets = ?rule.as_ref().map(|r| &r.targets),
            other_statements = ?permission.other_sids,
            "the rule, its target or the function's permission is not what the stack writes; the next apply repairs it"
        );
    }
    set_str(
        &mut state,
        "event_rule_arn",
        rule.as_ref().filter(|_| rule_ok).map(|r| r.arn.clone()),
    );
    // The snapshot schedule: whole when it is enabled at a rate, targets only the function,
    // and the function lets EventBridge invoke it from this rule. Its rate is the state's
    // `snapshot_interval` (the configuration's spelling kept while the duration is the
    // same); a gap nulls its ARN and the next apply repairs it; a rule the configuration no
    // longer has is reported, so the plan deletes it.
    if wants_schedule {
        let schedule_ok = schedule_rule.as_ref().is_some_and(|r| {
            r.enabled
                && r.schedule_expression
                    .as_deref()
                    .and_then(SnapshotSchedule::interval_of_rule)
                    .is_some()
                && function.as_ref().is_some_and(|f| {
                    r.targets.len() == 1 && r.targets[0] == (target_id.clone(), f.arn.clone())
                })
                && schedule_permission
                    .as_ref()
                    .and_then(|p| p.ours.as_ref())
                    .is_some_and(|p| p.grants(&r.arn))
        });
        if let Some(r) = &schedule_rule {
            let found = r
                .schedule_expression
                .as_deref()
                .and_then(SnapshotSchedule::interval_of_rule);
            let configured = spec.snapshot_schedule.as_ref().map(|s| s.interval);
            if let Some(interval) = found.filter(|i| Some(*i) != configured) {
                state.set_attr(
                    "snapshot_interval",
                    format!("{}m", interval.as_secs() / 60).into(),
                );
            }
            if !schedule_ok {
                tracing::warn!(
                    rule = schedule_name,
                    expression = r.schedule_expression,
                    targets = ?r.targets,
                    "the snapshot schedule, its target or the function's permission is not what the stack writes; the next apply repairs it"
                );
            }
        }
        set_str(
            &mut state,
            "snapshot_rule_arn",
            schedule_rule
                .as_ref()
                .filter(|_| schedule_ok || spec.snapshot_schedule.is_none())
                .map(|r| r.arn.clone()),
        );
        set_str(
            &mut state,
            "last_snapshot_id",
            newest_snapshot.as_ref().map(|(id, _)| id.clone()),
        );
        set_str(
            &mut state,
            "last_snapshot_time",
            newest_snapshot.map(|(_, time)| time),
        );
    }
    match &logs {
        Some(l) => set_int(&mut state, "log_retention_days", l.retention_days),
        None => set_str(&mut state, "log_group_name", None),
    }
    // The role must be exactly what the stack makes: under its path, trusted by Lambda only,
    // with the configured boundary, our inline policy as written and nothing else.
    let role_ok = match &role {
        Some(r) => {
            let problems = role_problems(
                ctx.region(),
                &spec,
                &stack,
                r,
                vol.as_ref(),
                &role_policies,
                role_policy.as_ref(),
            );
            if !problems.is_empty() {
                tracing::warn!(
                    role = role_name,
                    ?problems,
                    "the role is not what the stack writes; the next apply repairs it"
                );
            }
            problems.is_empty()
        }
        None => false,
    };
    set_str(
        &mut state,
        "lambda_role_arn",
        role.filter(|_| role_ok).map(|r| r.arn),
    );
    Ok(state)
}

/// What differs between the role found and the one the stack makes (empty: none).
/// `policies`: its inline policy names and attached policy ARNs; `ours`: our inline policy's
/// document as found.
fn role_problems(
    region: &str,
    spec: &Spec,
    stack: &Stack,
    role: &iam_role::RoleInfo,
    volume: Option<&volume::VolumeInfo>,
    policies: &(Vec<String>, Vec<String>),
    ours_found: Option<&serde_json::Value>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if role.path != iam_role::ROLE_PATH {
        problems.push(format!(
            "path {} instead of {}",
            role.path,
            iam_role::ROLE_PATH
        ));
    }
    if role.trust_policy.as_ref() != Some(&super::policy::lambda_trust_policy()) {
        problems.push("its trust policy was changed".to_string());
    }
    if role.permissions_boundary != spec.lambda_role_permissions_boundary {
        problems.push(format!(
            "permissions boundary {:?} instead of {:?}",
            role.permissions_boundary, spec.lambda_role_permissions_boundary
        ));
    }
    let ours = names::LAMBDA_POLICY.for_stack(&spec.name);
    let (inline, attached) = policies;
    problems.extend(
        inline
            .iter()
            .filter(|p| **p != ours)
            .map(|p| format!("inline policy {p} the stack does not write")),
    );
    problems.extend(
        attached
            .iter()
            .map(|a| format!("managed policy {a} attached")),
    );
    // Our policy's text, when the objects it names are known.
    if let (Some(v), Some(alloc)) = (volume, &stack.allocation_id) {
        let expected = super::create::policy_scope(
            &role.arn,
            region,
            spec,
            v,
            alloc,
            stack.network_interface_id.as_deref(),
        )
        .ok()
        .map(|scope| super::policy::attach_policy(&scope));
        if expected.is_some() && ours_found != expected.as_ref() {
            problems.push(format!(
                "inline policy {ours} differs from what the stack writes"
            ));
        }
    }
    problems
}

/// The failover's objects as found: (function ARN, role ARN, rule ARN, whether the function's
/// permission lets the rule invoke it). The function counts only as the failover function
/// (its check rule and the home volume `home` in its configuration), the rule only at `rate(1 minute)` with the function
/// as its one target.
async fn failover_objects(
    ctx: &OpContext,
    spec: &Spec,
    home: Option<&str>,
) -> Result<(Option<String>, Option<String>, Option<String>, bool), crate::aws::AwsError> {
    let function_name = names::FAILOVER_FUNCTION.for_stack(&spec.name);
    let rule_name = names::FAILOVER_RULE.for_stack(&spec.name);
    let sid = names::FAILOVER_PERMISSION_SID.for_stack(&spec.name);
    let role_name = names::failover_role_name(&spec.name, ctx.region());
    let (function, role, rule, policy) = tokio::join!(
        lambda_function::find(ctx, &function_name),
        iam_role::find(ctx, &role_name),
        event_rule::find(ctx, &rule_name),
        lambda_function::find_policy(ctx, &function_name, &sid),
    );
    let function = function?.filter(|f| {
        f.settings.environment.get("AUTOHEAL_FAILOVER_RULE") == Some(&rule_name)
            && f.settings
                .environment
                .get("AUTOHEAL_VOLUME_ID")
                .map(String::as_str)
                == home
    });
    let rule = rule?.filter(|r| {
        r.schedule_expression.as_deref() == Some(super::converge::FAILOVER_CHECK_RATE)
            && function
                .as_ref()
                .is_some_and(|f| r.targets.len() == 1 && r.targets[0].1 == f.arn)
    });
    let permission = match (&rule, policy) {
        (Some(r), Ok(p)) => p.ours.as_ref().is_some_and(|p| p.grants(&r.arn)),
        (_, Err(e)) if function.is_some() => return Err(e),
        _ => false,
    };
    Ok((
        function.map(|f| f.arn),
        role?.map(|r| r.arn),
        rule.map(|r| r.arn),
        permission,
    ))
}

/// The home subnet of a stack whose group a zone failover moved (the group carries the
/// failover's zone tag): the group now launches into a failover zone, so its subnet says
/// nothing of home. The failover function records every zone's subnet
/// (`AUTOHEAL_FAILOVER_SUBNETS`, home included); home is the home volume's zone. `None`: not
/// moved, or nothing to tell home by (the group's subnet is used).
async fn moved_home_subnet(
    ctx: &OpContext,
    name: &str,
    group: &autoscaling_group::GroupInfo,
    home_volume: Option<&str>,
) -> Result<Option<String>, crate::aws::AwsError> {
    let moved = group
        .tags
        .get(super::active::ACTIVE_ZONE_TAG)
        .is_some_and(|z| !z.is_empty());
    let Some(home_volume) = home_volume.filter(|_| moved) else {
        return Ok(None);
    };
    let failover_function = names::FAILOVER_FUNCTION.for_stack(name);
    let (function, volume) = tokio::join!(
        lambda_function::find(ctx, &failover_function),
        volume::find(ctx, home_volume),
    );
    let (Some(function), Some(volume)) = (function?, volume?) else {
        return Ok(None);
    };
    Ok(function
        .settings
        .environment
        .get("AUTOHEAL_FAILOVER_SUBNETS")
        .and_then(|list| {
            list.split(',')
                .filter_map(|pair| pair.split_once('='))
                .find(|(zone, _)| *zone == volume.availability_zone)
                .map(|(_, subnet)| subnet.to_string())
        }))
}

/// `terraform import autoheal_instance.x NAME`: finds a stack this provider created by its
/// names and tags, and reads it.
pub async fn import(ctx: &OpContext, schema: &Schema, name: &str) -> ImportResponse {
    let fail = |summary: String, detail: String| ImportResponse {
        state: Value::Null,
        diagnostics: Diagnostics::from_error(summary, detail),
    };
    let group_name = names::AUTOSCALING_GROUP.for_stack(name);
    let function_name = names::LAMBDA_FUNCTION.for_stack(name);
    let (group, function) = tokio::join!(
        autoscaling_group::find(ctx, &group_name),
        lambda_function::find(ctx, &function_name),
    );
    let (group, function) = match (group, function) {
        (Ok(g), Ok(f)) => (g, f),
        (Err(e), _) | (_, Err(e)) => {
            return fail(format!("Failed to import stack {name}"), e.to_string())
        }
    };
    let (Some(group), Some(function)) = (group, function) else {
        return fail(
            format!("No autoheal stack named {name:?}"),
            format!(
                "Import looks for the Auto Scaling group {group_name} and the Lambda function \
                 {function_name} that this provider creates for a stack named {name:?}; at \
                 least one is missing in this account and region."
            ),
        );
    };
    if group.tags.get(STACK_TAG).map(String::as_str) != Some(name) {
        return fail(
            format!("{group_name} is not an autoheal stack"),
            format!("The group exists but has no tag {STACK_TAG} = {name:?}: this provider did not create it."),
        );
    }
    let env = &function.settings.environment;
    let mut state = Value::null_object(&schema.value_type());
    state.set_attr("id", name.into());
    state.set_attr("name", name.into());
    let home_volume = env.get("AUTOHEAL_VOLUME_ID").map(String::as_str);
    let home_subnet = match moved_home_subnet(ctx, name, &group, home_volume).await {
        Ok(moved) => moved.or_else(|| group.subnets.first().cloned()),
        Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
    };
    let stack = Stack {
        autoscaling_group_name: Some(group_name.clone()),
        lifecycle_hook_name: Some(names::LIFECYCLE_HOOK.for_stack(name)),
        launch_template_id: group.launch_template_id.clone(),
        subnet_id: home_subnet,
        volume_id: env.get("AUTOHEAL_VOLUME_ID").cloned(),
        allocation_id: env.get("AUTOHEAL_ALLOCATION_ID").cloned(),
        network_interface_id: env.get(super::create::NETWORK_INTERFACE_ENV).cloned(),
        lambda_function_arn: Some(function.arn.clone()),
        log_group_name: Some(names::LOG_GROUP.for_stack(name)),
        ..Stack::default()
    };
    stack.write(&mut state);
    state.set_attr(
        "device_name",
        env.get("AUTOHEAL_DEVICE_NAME").cloned().into(),
    );
    // The subnet's VPC and zone; whether the provider made the network (its VPC carries the
    // stack tag) decides `subnet_id` versus `vpc_cidr`/`subnet_cidr`.
    if let Some(subnet) = &stack.subnet_id {
        match crate::aws::network::find_subnet(ctx, subnet).await {
            Ok(Some(info)) => {
                state.set_attr("availability_zone", info.availability_zone.clone().into());
                state.set_attr("vpc_id", info.vpc_id.clone().into());
                // One DescribeVpcs answers both: whose VPC it is, and its CIDR.
                let ours = crate::aws::network::find_vpc(ctx, &info.vpc_id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|v| v.tags.get(STACK_TAG).map(String::as_str) == Some(name));
                if let Some(vpc) = ours {
                    state.set_attr("vpc_cidr", vpc.cidr.into());
                    state.set_attr("subnet_cidr", info.cidr.into());
                    // The failover zones: those of the stack's failover subnets in its VPC.
                    // (A user's own failover subnets carry nothing of the stack's: with
                    // `subnet_id` the configuration names them, and the plan after the
                    // import adds them in place.)
                    let failover = match crate::aws::network::subnets_in(ctx, &info.vpc_id).await {
                        Ok(subnets) => super::failover_subnets::found(name, subnet, &subnets),
                        Err(e) => {
                            return fail(format!("Failed to import stack {name}"), e.to_string())
                        }
                    };
                    if !failover.is_empty() {
                        state.set_attr(
                            "failover_zones",
                            Value::Set(failover.keys().map(|z| z.clone().into()).collect()),
                        );
                        state.set_attr(
                            "failover_subnet_ids",
                            super::spec::string_map_value(&failover),
                        );
                    }
                } else {
                    state.set_attr("subnet_id", subnet.clone().into());
                }
            }
            Ok(None) => {}
            Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
        }
    }
    // The security group, user data and key from the template version the group launches.
    if let (Some(id), Some(v)) = (
        &group.launch_template_id,
        group
            .launch_template_version
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok()),
    ) {
        if let Ok(Some(t)) = launch_template::find_version(ctx, id, v).await {
            state.set_attr(
                "security_group_id",
                t.security_group_ids.first().cloned().into(),
            );
            let extra = user_security_groups(&t.security_group_ids);
            if !extra.is_empty() {
                state.set_attr(
                    "security_group_ids",
                    Value::List(extra.into_iter().map(Value::from).collect()),
                );
            }
            state.set_attr(
                "iam_instance_profile",
                t.iam_instance_profile.clone().into(),
            );
            import_user_data(&mut state, &t.user_data_base64);
        }
    }
    // A template deleted by hand no longer names the security group: found by its name in
    // the stack's VPC (and its stack tag), so the state holds it and a destroy deletes it.
    let vpc = state.attr("vpc_id").as_str().map(str::to_string);
    if let (true, Some(vpc)) = (state.attr("security_group_id").is_null(), vpc) {
        match security_group::find_by_name(
            ctx,
            &vpc,
            &names::SECURITY_GROUP.for_stack(name),
            (STACK_TAG, name),
        )
        .await
        {
            Ok(id) => state.set_attr("security_group_id", id.into()),
            Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
        }
    }
    // Whether the volume and the address are the provider's or the user's: the provider's
    // carry the stack tag.
    if let Some(vol) = &stack.volume_id {
        if let Ok(Some(v)) = volume::find(ctx, vol).await {
            if v.tags.get(STACK_TAG).map(String::as_str) != Some(name) {
                state.set_attr("existing_volume_id", vol.clone().into());
            } else {
                state.set_attr(
                    "volume_on_destroy",
                    super::schema::DEFAULT_VOLUME_ON_DESTROY.into(),
                );
            }
            // `volume_kms_key_id` is not imported: the volume records a key ARN whether the
            // user named a key or the account's default was used, so it is left to the
            // configuration (it is a create-time setting).
        }
    }
    if let Some(alloc) = &stack.allocation_id {
        if let Ok(Some(a)) = address::find(ctx, alloc).await {
            if a.tags.get(STACK_TAG).map(String::as_str) != Some(name) {
                state.set_attr("existing_allocation_id", alloc.clone().into());
            }
        }
    }
    // The interface the function attaches: it must be in the stack's subnet and carry the
    // stack's tag (a variable alone proves nothing about the object it names).
    if let Some(eni) = &stack.network_interface_id {
        let ours = match network_interface::find(ctx, eni).await {
            Ok(Some(n)) => {
                n.tags.get(STACK_TAG).map(String::as_str) == Some(name)
                    && Some(&n.subnet_id) == stack.subnet_id.as_ref()
            }
            Ok(None) => false,
            Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
        };
        if !ours {
            return fail(
                format!("The network interface of stack {name:?} is not the stack's"),
                format!(
                    "The function {function_name} attaches network interface {eni}, which does \
                     not exist, is not in the group's subnet or lacks the tag {STACK_TAG} = \
                     {name:?}."
                ),
            );
        }
        state.set_attr("persistent_network_interface", true.into());
    }
    // The alarms, by their names: their topics are the stack's `alarm_actions`.
    match alarm::find(ctx, &super::alarms::all_names(name)).await {
        Ok(found) => {
            let heal = names::HEAL_FAILED_ALARM.for_stack(name);
            let serve = names::NO_IN_SERVICE_ALARM.for_stack(name);
            if let Some(a) = found.iter().find(|a| a.spec.name == heal) {
                let mut actions = a.spec.alarm_actions.clone();
                actions.sort();
                state.set_attr(
                    "alarm_actions",
                    Value::Set(actions.into_iter().map(Value::from).collect()),
                );
                state.set_attr("heal_failure_alarm_arn", a.arn.clone().into());
            }
            if let Some(a) = found.iter().find(|a| a.spec.name == serve) {
                let minutes = i64::from(a.spec.evaluation_periods);
                if minutes != super::schema::DEFAULT_ALARM_NO_IN_SERVICE_MINUTES {
                    state.set_attr("alarm_no_in_service_minutes", minutes.into());
                }
                state.set_attr("no_in_service_alarm_arn", a.arn.clone().into());
            }
        }
        Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
    }
    // The snapshot schedule, by its name: its rate is `snapshot_interval`, the function's
    // configuration holds the retention (refresh reads both from there).
    match event_rule::find(ctx, &names::SNAPSHOT_RULE.for_stack(name)).await {
        Ok(Some(r)) => {
            if let Some(interval) = r
                .schedule_expression
                .as_deref()
                .and_then(SnapshotSchedule::interval_of_rule)
            {
                state.set_attr(
                    "snapshot_interval",
                    format!("{}m", interval.as_secs() / 60).into(),
                );
                state.set_attr("snapshot_rule_arn", r.arn.into());
            }
        }
        Ok(None) => {}
        Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
    }
    // The failover's detection window, from its function's environment (null when it is the
    // default, as a configuration that leaves it out).
    match lambda_function::find(ctx, &names::FAILOVER_FUNCTION.for_stack(name)).await {
        Ok(Some(f)) => {
            let window = f
                .settings
                .environment
                .get("AUTOHEAL_FAILOVER_WINDOW_SECONDS")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s != super::schema::DEFAULT_FAILOVER_DETECTION_WINDOW.as_secs());
            if let Some(seconds) = window {
                state.set_attr(
                    "failover_detection_window",
                    format!("{}m", seconds / 60).into(),
                );
            }
        }
        Ok(None) => {}
        Err(e) => return fail(format!("Failed to import stack {name}"), e.to_string()),
    }
    state.set_attr("force_detach", false.into());
    state.set_attr("allow_unencrypted_volume", false.into());
    match refresh(ctx, state).await {
        Ok(Value::Null) => fail(
            format!("No autoheal stack named {name:?}"),
            "Nothing of the stack was found.".into(),
        ),
        Ok(mut state) => {
            let tags = state.attr("tags_all").clone();
            let empty = tags.entries().is_none_or(|m| m.is_empty());
            state.set_attr("tags", if empty { Value::Null } else { tags });
            ImportResponse {
                state,
                diagnostics: Diagnostics::new(),
            }
        }
        Err(diagnostics) => ImportResponse {
            state: Value::Null,
            diagnostics,
        },
    }
}

/// The mount settings and the user's own user data, recovered from the template's user data.
fn import_user_data(state: &mut Value, user_data_base64: &str) {
    if let Some(parsed) = super::user_data::parse_user_data_base64(user_data_base64) {
        state.set_attr("device_name", parsed.mount.device_name.into());
        state.set_attr("mount_point", parsed.mount.mount_point.into());
        state.set_attr("filesystem", parsed.mount.filesystem.into());
        state.set_attr("user_data", parsed.user_data.into());
    }
}
