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

use crate::aws::{
    address, autoscaling_group, ec2_tags, event_rule, iam_role, lambda_function, launch_template,
    log_group, security_group, tags as aws_tags, volume, AwsError, OpContext,
};
use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::resource::ApplyResponse;
use crate::plugin::value::Value;

use super::create::{self, function_settings, policy_scope, template_data, wait_served};
use super::names;
use super::plan::ROLLING_ATTRIBUTES;
use super::spec::Spec;
use super::stack::{nullify_unknowns, Stack};
use super::steps::{self, StepError, StepResult};
use super::tagging::{object_tags, stack_tags};

pub async fn update(ctx: &OpContext, prior: Value, planned: Value) -> ApplyResponse {
    let old = Spec::from_value(&prior);
    let new = Spec::from_value(&planned);
    let mut stack = Stack::from_value(&prior);
    let result = run(ctx, &prior, &planned, &old, &new, &mut stack).await;
    let mut diagnostics = Diagnostics::new();
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
) -> Result<(), StepError> {
    let name = &new.name;
    let group = names::AUTOSCALING_GROUP.for_stack(name);
    let function = names::LAMBDA_FUNCTION.for_stack(name);
    let rule = names::EVENT_RULE.for_stack(name);
    let role = names::lambda_role_name(name, ctx.region());
    let logs = names::LOG_GROUP.for_stack(name);

    let volume_id = stack.volume_id.clone().ok_or_else(|| {
        StepError::problem("find", "the data volume", "the state names no data volume")
    })?;
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

    // Repairs. The address first: the policy and the function name it.
    let mut address_recreated = false;
    if stack.allocation_id.is_none() {
        let info = match &new.existing_allocation_id {
            Some(id) => address::find(ctx, id)
                .await
                .step("find", format!("Elastic IP {id}"))?
                .ok_or_else(|| {
                    StepError::problem(
                        "use",
                        format!("Elastic IP {id}"),
                        "existing_allocation_id: the address no longer exists",
                    )
                })?,
            None => address::allocate(ctx, &object_tags(new, names::EIP_NAME_TAG))
                .await
                .step("allocate", "Elastic IP (it was deleted out of band)")?,
        };
        stack.allocation_id = Some(info.allocation_id.clone());
        stack.public_ip = Some(info.public_ip.clone());
        address_recreated = true;
    }
    let allocation_id = stack.allocation_id.clone().unwrap_or_default();
    if address::find(ctx, &allocation_id)
        .await
        .step("find", "Elastic IP")?
        .is_none()
    {
        return Err(StepError::problem(
            "find",
            format!("Elastic IP {allocation_id}"),
            "it no longer exists",
        ));
    }
    if log_group::find(ctx, &logs)
        .await
        .step("find", format!("log group {logs}"))?
        .is_none()
    {
        log_group::create(ctx, &logs, new.log_retention_days, &stack_tags(new), || {})
            .await
            .step("create", format!("log group {logs}"))?;
    }
    stack.log_group_name = Some(logs.clone());
    let role_arn = match iam_role::find(ctx, &role)
        .await
        .step("find", format!("IAM role {role}"))?
    {
        Some(r) => r.arn,
        None => iam_role::create(
            ctx,
            &role,
            &super::policy::lambda_trust_policy().to_string(),
            "autoheal: the attachment Lambda of this stack",
            &stack_tags(new),
        )
        .await
        .step("create", format!("IAM role {role}"))?,
    };
    stack.lambda_role_arn = Some(role_arn.clone());
    // The policy is rewritten on every update: it is cheap and follows a recreated address.
    let scope = policy_scope(&role_arn, ctx.region(), new, &volume, &allocation_id)?;
    let policy_name = names::LAMBDA_POLICY.for_stack(name);
    iam_role::put_policy(
        ctx,
        &role,
        &policy_name,
        &super::policy::attach_policy(&scope).to_string(),
    )
    .await
    .step("write", format!("inline policy {policy_name}"))?;

    let zip =
        create::handler_zip(new).map_err(|e| StepError::problem("read", "the handler zip", e))?;
    let settings = function_settings(new, &role_arn, &volume_id, &allocation_id);
    let function_arn = match lambda_function::find(ctx, &function)
        .await
        .step("find", format!("Lambda function {function}"))?
    {
        None => lambda_function::create(ctx, &function, &settings, &zip, &stack_tags(new), |_| {})
            .await
            .step("create", format!("Lambda function {function}"))?,
        Some(f) => {
            if f.settings != settings {
                lambda_function::update_configuration(ctx, &function, &settings)
                    .await
                    .step("update", format!("Lambda function {function}"))?;
            }
            let code_hex = super::read::lambda_sha_to_hex(&f.code_sha256);
            if code_hex.as_deref() != Some(crate::handler_zip::sha256_hex(&zip).as_str())
                || f.settings.architecture != new.lambda_architecture
            {
                lambda_function::update_code(ctx, &function, &zip, &new.lambda_architecture)
                    .await
                    .step("update the code of", format!("Lambda function {function}"))?;
            }
            if f.reserved_concurrency != new.lambda_reserved_concurrency {
                lambda_function::set_reserved_concurrency(
                    ctx,
                    &function,
                    new.lambda_reserved_concurrency,
                )
                .await
                .step(
                    "set reserved concurrency of",
                    format!("Lambda function {function}"),
                )?;
            }
            let (set, remove) = aws_tags::diff(&f.tags, &stack_tags(new));
            lambda_function::set_tags(ctx, &f.arn, &set, &remove)
                .await
                .step("tag", format!("Lambda function {function}"))?;
            f.arn
        }
    };
    stack.lambda_function_arn = Some(function_arn.clone());
    stack.handler_sha256 = Some(crate::handler_zip::sha256_hex(&zip));

    let rule_arn = event_rule::put(
        ctx,
        &rule,
        &event_rule::launch_pattern(&group),
        "autoheal: launch lifecycle actions of this stack's group, to its attachment Lambda",
        &stack_tags(new),
    )
    .await
    .step("write", format!("EventBridge rule {rule}"))?;
    event_rule::put_target(
        ctx,
        &rule,
        &names::EVENT_TARGET_ID.for_stack(name),
        &function_arn,
    )
    .await
    .step("set the target of", format!("EventBridge rule {rule}"))?;
    let sid = names::LAMBDA_PERMISSION_SID.for_stack(name);
    let permission = lambda_function::find_permission(ctx, &function, &sid)
        .await
        .step(
            "read the permissions of",
            format!("Lambda function {function}"),
        )?;
    if permission.as_deref() != Some(rule_arn.as_str()) {
        if permission.is_some() {
            remove_permission(ctx, &function, &sid).await.step(
                "replace the permission of",
                format!("Lambda function {function}"),
            )?;
        }
        lambda_function::add_permission(ctx, &function, &sid, &rule_arn)
            .await
            .step(
                "add the invoke permission of",
                format!("Lambda function {function}"),
            )?;
    }
    stack.event_rule_arn = Some(rule_arn.clone());
    let (set, remove) = aws_tags::diff(
        &event_rule::tags(ctx, &rule_arn)
            .await
            .step("read tags of", format!("rule {rule}"))?,
        &stack_tags(new),
    );
    event_rule::set_tags(ctx, &rule_arn, &set, &remove)
        .await
        .step("tag", format!("rule {rule}"))?;

    // Log group and role settings.
    if let Some(l) = log_group::find(ctx, &logs)
        .await
        .step("find", format!("log group {logs}"))?
    {
        if l.retention_days != Some(new.log_retention_days) {
            log_group::set_retention(ctx, &logs, new.log_retention_days)
                .await
                .step("set the retention of", format!("log group {logs}"))?;
        }
        if let Some(arn) = &l.arn {
            let current = log_group::tags(ctx, arn)
                .await
                .step("read tags of", format!("log group {logs}"))?;
            let (set, remove) = aws_tags::diff(&current, &stack_tags(new));
            log_group::set_tags(ctx, arn, &set, &remove)
                .await
                .step("tag", format!("log group {logs}"))?;
        }
    }
    if let Some(r) = iam_role::find(ctx, &role)
        .await
        .step("find", format!("IAM role {role}"))?
    {
        let (set, remove) = aws_tags::diff(&r.tags, &stack_tags(new));
        iam_role::set_tags(ctx, &role, &set, &remove)
            .await
            .step("tag", format!("IAM role {role}"))?;
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
        let (set, remove) = aws_tags::diff(&volume.tags, &object_tags(new, names::VOLUME_NAME_TAG));
        ec2_tags::set(ctx, std::slice::from_ref(&volume_id), &set, &remove)
            .await
            .step("tag", format!("data volume {volume_id}"))?;
    }
    if new.existing_allocation_id.is_none() {
        if let Some(a) = address::find(ctx, &allocation_id)
            .await
            .step("find", "Elastic IP")?
        {
            let (set, remove) = aws_tags::diff(&a.tags, &object_tags(new, names::EIP_NAME_TAG));
            ec2_tags::set(ctx, std::slice::from_ref(&allocation_id), &set, &remove)
                .await
                .step("tag", format!("Elastic IP {allocation_id}"))?;
        }
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

    // Security group (recreated if deleted out of band; the template then needs a version).
    let vpc_id = stack.vpc_id.clone().unwrap_or_default();
    let sg_name = names::SECURITY_GROUP.for_stack(name);
    let mut template_needs_version = false;
    let sg = match &stack.security_group_id {
        Some(id) => security_group::find(ctx, id)
            .await
            .step("find", format!("security group {id}"))?,
        None => None,
    };
    let sg_id = match sg {
        Some(g) => {
            if g.ssh_cidrs != new.ssh_ingress_cidrs {
                security_group::set_ssh_cidrs(
                    ctx,
                    &g.group_id,
                    &g.ssh_cidrs,
                    &new.ssh_ingress_cidrs,
                )
                .await
                .step(
                    "update the SSH rules of",
                    format!("security group {}", g.group_id),
                )?;
            }
            let (set, remove) = aws_tags::diff(
                &Default::default(),
                &object_tags(new, names::SECURITY_GROUP),
            );
            ec2_tags::set(ctx, std::slice::from_ref(&g.group_id), &set, &remove)
                .await
                .step("tag", format!("security group {}", g.group_id))?;
            g.group_id
        }
        None => {
            template_needs_version = true;
            security_group::create(
                ctx,
                &sg_name,
                &vpc_id,
                &new.ssh_ingress_cidrs,
                &object_tags(new, names::SECURITY_GROUP),
                |id| stack.security_group_id = Some(id.to_string()),
            )
            .await
            .step(
                "create",
                format!("security group {sg_name} (it was deleted out of band)"),
            )?
        }
    };
    stack.security_group_id = Some(sg_id.clone());

    // Launch template and group.
    let rolls = ROLLING_ATTRIBUTES
        .iter()
        .any(|a| changed(prior, planned, a));
    let data = template_data(new, &sg_id, &volume_id)?;
    let (template_id, mut version) = match &stack.launch_template_id {
        Some(id)
            if launch_template::find_version(
                ctx,
                id,
                stack.launch_template_version.unwrap_or(1),
            )
            .await
            .step("find", format!("launch template {id}"))?
            .is_some() =>
        {
            (id.clone(), stack.launch_template_version.unwrap_or(1))
        }
        _ => {
            template_needs_version = false;
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
    let (set, remove) = aws_tags::diff(&g.tags, &group_tags);
    autoscaling_group::set_tags(ctx, &group, &set, &remove)
        .await
        .step("tag", format!("Auto Scaling group {group}"))?;
    let hook = names::LIFECYCLE_HOOK.for_stack(name);
    let current_hook = autoscaling_group::find_hook(ctx, &group, &hook)
        .await
        .step("find", format!("lifecycle hook {hook}"))?;
    if current_hook.map(|h| h.heartbeat_timeout) != Some(new.lifecycle_hook_timeout) {
        autoscaling_group::put_hook(ctx, &group, &hook, new.lifecycle_hook_timeout)
            .await
            .step("write", format!("lifecycle hook {hook}"))?;
    }
    stack.lifecycle_hook_name = Some(hook);
    stack.autoscaling_group_name = Some(group.clone());

    // Instances launched from here on carry the new tags; the serving one gets them too.
    let serving = g.in_service().first().map(|i| i.instance_id.clone());
    if let Some(i) = &serving {
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

    if rolls {
        if let Some(old_instance) = &serving {
            tracing::info!(old_instance, version, "rolling the instance: terminating it; its replacement gets the volume and the address through the heal path");
            autoscaling_group::replace_instance(ctx, old_instance)
                .await
                .step("replace", format!("instance {old_instance}"))?;
        }
        let instance = wait_served(ctx, &group, serving.as_deref(), &volume_id, &allocation_id)
            .await
            .step("wait for", format!("the replacement instance of {group}"))?;
        tracing::info!(
            instance,
            "replacement in service with the data volume and the Elastic IP"
        );
        stack.instance_id = Some(instance);
    } else if address_recreated {
        // The serving instance lost its address; give it the new one.
        if let Some(i) = &serving {
            associate(ctx, &allocation_id, i)
                .await
                .step("associate", format!("Elastic IP {allocation_id}"))?;
        }
        stack.instance_id = serving;
    } else {
        stack.instance_id = serving;
    }
    Ok(())
}

async fn remove_permission(ctx: &OpContext, function: &str, sid: &str) -> Result<(), AwsError> {
    ctx.delete("lambda:RemovePermission", &[], || {
        ctx.clients
            .lambda
            .remove_permission()
            .function_name(function)
            .statement_id(sid)
            .send()
    })
    .await
}

async fn associate(ctx: &OpContext, allocation_id: &str, instance: &str) -> Result<(), AwsError> {
    ctx.call(
        "ec2:AssociateAddress",
        &["InvalidAllocationID.NotFound"],
        || {
            ctx.clients
                .ec2
                .associate_address()
                .allocation_id(allocation_id)
                .instance_id(instance)
                .allow_reassociation(true)
                .send()
        },
    )
    .await?;
    Ok(())
}
