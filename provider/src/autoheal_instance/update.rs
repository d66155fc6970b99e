//! Update in place: repairs parts deleted out of band (read set their ids to null), then
//! applies the changed settings, each with the call AWS offers for it:
//!
//! - tags (tags_all) on every object, the group's propagated to instances;
//! - the volume's size, type, IOPS, throughput (ModifyVolume);
//! - SSH ingress; grace period; hook timeout; log retention;
//! - the function's settings, code and reserved concurrency;
//! - what the launch template holds (`ami`, `instance_type`, `key_name`, `user_data`, device,
//!   mount point, filesystem): a new template version, then a rolling replacement through the
//!   heal path (the old instance is terminated first; the new one gets volume and address),
//!   waiting until it is InService.
//!
//! The address, log group, role and its policy, rule, function with its target and
//! permission, security group and hook go through the same per-object steps as create
//! (`converge`), so a repair makes an object exactly as a create does.

use crate::aws::{
    address, autoscaling_group, ec2_tags, launch_template, network_interface, tags as aws_tags,
    volume, OpContext,
};
use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::resource::ApplyResponse;
use crate::plugin::value::Value;

use super::converge::{Converger, Presence};
use super::create::{self, record_interface, template_data, wait_served, Served};
use super::names;
use super::plan::ROLLING_ATTRIBUTES;
use super::spec::Spec;
use super::stack::{nullify_unknowns, Stack};
use super::steps::{self, StepError, StepResult};
use super::tagging::{object_tags, stack_tags, volume_tags};

pub async fn update(ctx: &OpContext, prior: Value, planned: Value) -> ApplyResponse {
    let old = Spec::from_value(&prior);
    let new = Spec::from_value(&planned);
    let mut stack = Stack::from_value(&prior);
    let mut warnings = Vec::new();
    let result = run(ctx, &prior, &planned, &old, &new, &mut stack, &mut warnings).await;
    let mut diagnostics = Diagnostics::new();
    for (summary, detail) in warnings {
        diagnostics.warning(summary, detail);
    }
    let mut state = match &result {
        Ok(()) => planned,
        // What was not applied keeps its prior value.
        Err(_) => prior,
    };
    stack.write(&mut state);
    nullify_unknowns(&mut state);
    if let Err(e) = result {
        steps::report(
            &mut diagnostics,
            &[e],
            "The changes before this step were applied; run `terraform apply` again once the \
             cause is fixed.",
        );
    }
    ApplyResponse {
        new_state: state,
        diagnostics,
    }
}

/// Every zone the stack may serve from and its subnet: the home zone's and the failover
/// zones' (the provider's, as made by now, or the user's).
pub fn serving_subnets(spec: &Spec, stack: &Stack) -> std::collections::BTreeMap<String, String> {
    let mut subnets = if spec.creates_network() {
        stack.failover_subnet_ids.clone()
    } else {
        spec.failover_subnet_ids.clone()
    };
    if let Some(home) = &stack.subnet_id {
        subnets.insert(spec.availability_zone.clone(), home.clone());
    }
    subnets
}

fn changed(prior: &Value, planned: &Value, attr: &str) -> bool {
    prior.attr(attr) != planned.attr(attr)
}

async fn run(
    ctx: &OpContext,
    prior: &Value,
    planned: &Value,
    old: &Spec,
    new: &Spec,
    stack: &mut Stack,
    warnings: &mut Vec<(String, String)>,
) -> Result<(), StepError> {
    let name = &new.name;
    let group = names::AUTOSCALING_GROUP.for_stack(name);
    let logs = names::LOG_GROUP.for_stack(name);

    let mut volume_id = stack.volume_id.clone().ok_or_else(|| {
        StepError::problem("find", "the data volume", "the state names no data volume")
    })?;
    // Failing back first: the serving volume's data comes home as a new data volume, which
    // everything below then follows (see `failback`).
    if super::failback::failing_back(prior, planned) {
        let done = super::failback::fail_back(ctx, new, stack, &group, &volume_id).await?;
        volume_id = done.volume_id;
        warnings.extend(done.kept);
    }
    let volume = volume::find(ctx, &volume_id)
        .await
        .step("find", format!("data volume {volume_id}"))?
        .ok_or_else(|| {
            StepError::problem(
                "find",
                format!("data volume {volume_id}"),
                "it no longer exists",
            )
        })?;

    // Each object through the step create uses (see `converge`): made again when it was
    // deleted out of band, converged otherwise. The address first: the policy and the
    // function name it; the rule before the function, whose permission names it.
    let steps = Converger {
        ctx,
        spec: new,
        creating: false,
    };
    let address = steps.address(stack.allocation_id.as_deref()).await?;
    let allocation_id = address.info.allocation_id.clone();
    stack.allocation_id = Some(allocation_id.clone());
    stack.public_ip = Some(address.info.public_ip.clone());
    // Security group (made again if deleted out of band; the template then needs a version),
    // before the interface that carries it.
    let vpc_id = stack.vpc_id.clone().unwrap_or_default();
    let known = stack.security_group_id.clone();
    let (sg_id, sg_made) = steps
        .security_group(known.as_deref(), &vpc_id, |id| {
            stack.security_group_id = Some(id.to_string())
        })
        .await?;
    stack.security_group_id = Some(sg_id.clone());
    // The failover zones' subnets, when the stack has or had some: made, checked or deleted.
    if new.has_failover_zones() || old.has_failover_zones() || !stack.failover_subnet_ids.is_empty()
    {
        let home = stack.subnet_id.clone().unwrap_or_default();
        let mut made = Vec::new();
        let ids = steps
            .failover_subnets(&vpc_id, &home, |zone, id| {
                made.push((zone.to_string(), id.to_string()))
            })
            .await;
        stack.failover_subnet_ids.extend(made);
        stack.failover_subnet_ids = ids?;
    }

    // The persistent network interface: made (or made again) when the spec has one, with the
    // address on it; one the spec no longer has is let go below, once the function no
    // longer attaches it.
    let old_interface = stack.network_interface_id.clone();
    let subnet_id = stack.subnet_id.clone().unwrap_or_default();
    let groups: Vec<String> = std::iter::once(sg_id.clone())
        .chain(new.security_group_ids.iter().cloned())
        .collect();
    let interface = steps
        .network_interface(old_interface.as_deref(), &subnet_id, &groups, |n| {
            record_interface(stack, Some(n))
        })
        .await?;
    record_interface(stack, interface.as_ref());
    let interface_id = interface.as_ref().map(|n| n.network_interface_id.clone());
    if let Some(eni) = &interface_id {
        if address.info.network_interface_id.as_deref() != Some(eni.as_str()) || address.allocated {
            address::associate(ctx, &allocation_id, address::Holder::Interface(eni))
                .await
                .step(
                    "associate",
                    format!("Elastic IP {allocation_id} with network interface {eni}"),
                )?;
        }
    }

    steps.log_group(Presence::Unknown, || {}).await?;
    stack.log_group_name = Some(logs.clone());
    let (role_arn, role_made) = steps.role(Presence::Unknown).await?;
    stack.lambda_role_arn = Some(role_arn.clone());
    steps
        .role_policy(&role_arn, &volume, &allocation_id, interface_id.as_deref())
        .await?;
    let rule_arn = steps.rule(Presence::Unknown).await?;
    stack.event_rule_arn = Some(rule_arn.clone());
    let zip =
        create::handler_zip(new).map_err(|e| StepError::problem("read", "the handler zip", e))?;
    let function_arn = steps
        .function(
            Presence::Unknown,
            &zip,
            &role_arn,
            role_made,
            &volume_id,
            &allocation_id,
            interface_id.as_deref(),
            &rule_arn,
            |_| {},
        )
        .await?;
    // The snapshot schedule, when the stack has or had one.
    if new.snapshot_schedule.is_some()
        || old.snapshot_schedule.is_some()
        || stack.snapshot_rule_arn.is_some()
    {
        stack.snapshot_rule_arn = steps
            .snapshot_schedule(Presence::Unknown, &function_arn)
            .await?;
    }
    stack.lambda_function_arn = Some(function_arn);
    stack.handler_sha256 = Some(crate::handler_zip::sha256_hex(&zip));
    // The zone failover's function, role and rule, when the stack has or had them.
    if new.has_failover() || old.has_failover() || stack.failover_function_arn.is_some() {
        let subnets = serving_subnets(new, stack);
        let objects = steps
            .failover(&zip, &volume, &allocation_id, &subnets)
            .await?;
        stack.failover_function_arn = objects.as_ref().map(|o| o.function_arn.clone());
        stack.failover_role_arn = objects.as_ref().map(|o| o.role_arn.clone());
        stack.failover_rule_arn = objects.map(|o| o.rule_arn);
    }

    // Volume.
    if new.existing_volume_id.is_none() {
        let size = (new.volume_size != volume.size).then_some(new.volume_size);
        let vtype = (new.volume_type != volume.volume_type).then_some(new.volume_type.as_str());
        let iops = new.volume_iops.filter(|i| Some(*i) != volume.iops);
        let throughput = new
            .volume_throughput
            .filter(|t| Some(*t) != volume.throughput);
        if size.is_some() || vtype.is_some() || iops.is_some() || throughput.is_some() {
            volume::modify(ctx, &volume_id, size, vtype, iops, throughput)
                .await
                .step("modify", format!("data volume {volume_id}"))?;
        }
        let (set, remove) = aws_tags::diff(&volume.tags, &volume_tags(new, &volume.tags));
        ec2_tags::set(ctx, std::slice::from_ref(&volume_id), &set, &remove)
            .await
            .step("tag", format!("data volume {volume_id}"))?;
    }
    // Network tags (the objects the provider created).
    if changed(prior, planned, "tags_all") && new.creates_network() {
        if let Some(vpc) = &stack.vpc_id {
            let net = crate::aws::network::find_network(ctx, vpc)
                .await
                .step("find", format!("VPC {vpc}"))?;
            let objects = [
                (Some(vpc.clone()), names::VPC_NAME_TAG),
                (stack.subnet_id.clone(), names::SUBNET_NAME_TAG),
                (net.internet_gateway_id, names::INTERNET_GATEWAY_NAME_TAG),
                (net.route_table_id, names::ROUTE_TABLE_NAME_TAG),
            ];
            let old_keys: Vec<String> = old
                .tags_all
                .keys()
                .filter(|k| !new.tags_all.contains_key(*k))
                .cloned()
                .collect();
            for (id, tag) in objects {
                if let Some(id) = id {
                    ec2_tags::set(
                        ctx,
                        std::slice::from_ref(&id),
                        &object_tags(new, tag),
                        &old_keys,
                    )
                    .await
                    .step("tag", id.clone())?;
                }
            }
        }
    }

    // Failover turned on or off: the template enables instance tags in the metadata service
    // (or stops): a new version for the next launch, the serving instance stays.
    // (A failback names a new volume: the check of the version's boot script below writes
    // its version, as for any repair.)
    let mut template_needs_version = sg_made || old.has_failover() != new.has_failover();

    // Launch template and group.
    let rolls = ROLLING_ATTRIBUTES
        .iter()
        .any(|a| changed(prior, planned, a));
    let current = match &stack.launch_template_id {
        Some(id) => {
            launch_template::find_version(ctx, id, stack.launch_template_version.unwrap_or(1))
                .await
                .step("find", format!("launch template {id}"))?
        }
        None => None,
    };
    // A version written by an older provider leaves the root volume as the AMI has it
    // (possibly unencrypted): a new version fixes the next launch, without rolling the
    // serving instance, whenever the plan let the version change (a repair: the first apply
    // after an upgrade re-creates the role under its new path, which is one).
    let version_may_change = planned.attr("launch_template_version").is_unknown();
    if version_may_change
        && current
            .as_ref()
            .is_some_and(|v| !v.root_volume_encrypted.as_ref().is_some_and(|(_, e)| *e))
    {
        tracing::info!("the launch template's root volume is not encrypted: writing a version that encrypts it (the serving instance stays)");
        template_needs_version = true;
    }
    // A version whose boot script is not the one for the stack's volume (an update that
    // failed after a failback's commit, before its version was written: the boot script
    // would wait for the old volume): a new one, without rolling, whenever the plan let the
    // version change (a repair; the failed-back group at 0 is one).
    if version_may_change
        && current.as_ref().is_some_and(|v| {
            create::template_user_data(new, &volume_id)
                .is_ok_and(|wanted| wanted != v.user_data_base64)
        })
    {
        tracing::info!("the launch template's boot script is not the one for the data volume: writing a version");
        template_needs_version = true;
    }
    let (template_id, mut version) = match (&stack.launch_template_id, &current) {
        (Some(id), Some(_)) => (id.clone(), stack.launch_template_version.unwrap_or(1)),
        _ => {
            template_needs_version = false;
            let data = template_data(ctx, new, &sg_id, &volume_id).await?;
            let (id, v) = launch_template::create(
                ctx,
                &names::LAUNCH_TEMPLATE.for_stack(name),
                &data,
                &object_tags(new, names::LAUNCH_TEMPLATE),
            )
            .await
            .step("create", "launch template (it was deleted out of band)")?;
            (id, v)
        }
    };
    if rolls || template_needs_version {
        let data = template_data(ctx, new, &sg_id, &volume_id).await?;
        version = launch_template::create_version(ctx, &template_id, &data)
            .await
            .step(
                "create a version of",
                format!("launch template {template_id}"),
            )?;
    }
    stack.launch_template_id = Some(template_id.clone());
    stack.launch_template_version = Some(version);

    let Some(g) = autoscaling_group::find(ctx, &group)
        .await
        .step("find", format!("Auto Scaling group {group}"))?
    else {
        return Err(StepError::problem(
            "find",
            format!("Auto Scaling group {group}"),
            "the group was deleted out of band; destroy and re-create the stack (`terraform apply -replace`), which keeps the data through the final snapshot",
        ));
    };
    // Where the stack serves: the failover's tags on the group, which this update keeps;
    // reported or null as the failover is turned on or off (see `active`).
    (stack.active_availability_zone, stack.active_volume_id) =
        super::active::serving(new, Some(&volume_id), Some(&g.tags));
    let lt_changed = g.launch_template_id.as_deref() != Some(template_id.as_str())
        || g.launch_template_version.as_deref() != Some(version.to_string().as_str());
    let grace_changed = g.health_check_grace_period != new.health_check_grace_period;
    if lt_changed || grace_changed {
        autoscaling_group::update(
            ctx,
            &group,
            lt_changed.then_some((template_id.as_str(), version)),
            grace_changed.then_some(new.health_check_grace_period),
        )
        .await
        .step("update", format!("Auto Scaling group {group}"))?;
    }
    let mut group_tags = stack_tags(new);
    group_tags.insert(
        names::NAME_TAG.to_string(),
        names::INSTANCE_NAME_TAG.for_stack(name),
    );
    // The failover function's record of where the stack serves is kept as it is: it is not
    // the configuration's to change (failing back is not built yet).
    for key in super::policy::FAILOVER_GROUP_TAGS {
        if let Some(v) = g.tags.get(*key) {
            group_tags.insert(key.to_string(), v.clone());
        }
    }
    let (set, remove) = aws_tags::diff(&g.tags, &group_tags);
    autoscaling_group::set_tags(ctx, &group, &set, &remove)
        .await
        .step("tag", format!("Auto Scaling group {group}"))?;
    steps.hook().await?;
    stack.lifecycle_hook_name = Some(names::LIFECYCLE_HOOK.for_stack(name));
    stack.autoscaling_group_name = Some(group.clone());

    // Instances launched from here on carry the new tags; the serving one gets them too.
    let serving = g.in_service().first().map(|i| i.instance_id.clone());
    // What read reports (and the plan kept): the serving instance, or the one a heal is
    // bringing in.
    let current = g.current_instance().map(|i| i.instance_id.clone());
    if let Some(i) = &current {
        // The instance's own tags are not read back: set all of the group's, and remove
        // only the user's tags that left `tags_all` (EC2 keeps aws:* and launch tags).
        let removed: Vec<String> = old
            .tags_all
            .keys()
            .filter(|k| !new.tags_all.contains_key(*k))
            .cloned()
            .collect();
        ec2_tags::set(ctx, std::slice::from_ref(i), &group_tags, &removed)
            .await
            .step("tag", format!("instance {i}"))?;
    }

    // A group at 0 (a failback drained it; or it was scaled down out of band) serves again:
    // back to one instance, which the heal path serves.
    let scaled_up = g.desired == 0 || g.max == 0;
    if scaled_up {
        tracing::info!(group, "the group has no instance: scaling it back to 1");
        autoscaling_group::set_size(ctx, &group, 1)
            .await
            .step("scale to 1", format!("Auto Scaling group {group}"))?;
    }
    if rolls || scaled_up {
        if let Some(old_instance) = serving.as_ref().filter(|_| rolls) {
            tracing::info!(old_instance, version, "rolling the instance: terminating it; its replacement gets the volume and the address through the heal path");
            autoscaling_group::replace_instance(ctx, old_instance)
                .await
                .step("replace", format!("instance {old_instance}"))?;
        }
        // After a failover the replacement gets the restored volume the group names (the
        // attachment function proves its origin before attaching it).
        let active = super::active::volume_to_serve(&volume_id, &g.tags);
        let served = Served {
            volume_id: &active,
            allocation_id: &allocation_id,
            interface: interface_id.as_deref(),
        };
        let instance = wait_served(ctx, &group, serving.as_deref(), &served)
            .await
            .step("wait for", format!("the replacement instance of {group}"))?;
        tracing::info!(
            instance,
            "replacement in service with the data volume and the Elastic IP"
        );
        stack.instance_id = Some(instance);
    } else {
        if let (Some(eni), Some(i)) = (&interface, &serving) {
            // A new interface (turned on, or made again) joins the serving instance now; a
            // heal attaches it to every later one.
            if eni.instance_id() != Some(i.as_str()) {
                network_interface::attach(ctx, &eni.network_interface_id, i)
                    .await
                    .step(
                        "attach",
                        format!(
                            "network interface {} to instance {i}",
                            eni.network_interface_id
                        ),
                    )?;
            }
        } else if let (Some(i), true) = (&serving, address.allocated || old_interface.is_some()) {
            // The serving instance lost its address, or the address leaves the interface
            // that goes: it goes to the instance itself.
            address::associate(ctx, &allocation_id, address::Holder::Instance(i))
                .await
                .step("associate", format!("Elastic IP {allocation_id}"))?;
        }
        stack.instance_id = current;
    }
    // An interface the spec no longer has, now that nothing attaches it and the address is
    // elsewhere.
    if let (Some(old), None) = (&old_interface, &interface_id) {
        let object = || format!("network interface {old}");
        network_interface::wait_available(ctx, old, true)
            .await
            .step("detach", object())?;
        network_interface::delete(ctx, old)
            .await
            .step("delete", object())?;
        record_interface(stack, None);
    }

    // The alarms, when the stack has or had them.
    if new.has_alarms()
        || stack.heal_failure_alarm_arn.is_some()
        || stack.no_in_service_alarm_arn.is_some()
    {
        let (heal, serve) = steps.alarms().await?;
        stack.heal_failure_alarm_arn = heal;
        stack.no_in_service_alarm_arn = serve;
    }
    Ok(())
}
