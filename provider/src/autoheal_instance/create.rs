//! Create: stands up the whole stack.
//!
//! Order (independent parts run concurrently; every object is recorded in the [`Stack`] as
//! soon as AWS returns its id, so a failure leaves a state that destroy can clean up):
//!
//! 1. at once: network (VPC, subnet, gateway, routes; or the user's subnet) then the security
//!    group; the data volume (restored from the newest final snapshot of a stack of the same
//!    name, else `volume_snapshot_id`); the Elastic IP; the log group; the IAM role; the
//!    EventBridge rule (its pattern needs only the group's name);
//! 2. the role's inline policy (it names the volume and the address) and the launch template
//!    (its user data names the volume);
//! 3. the Lambda function, then the rule's target and the invoke permission; meanwhile the
//!    group at size 0 with its launch hook;
//! 4. last, the group at size 1, and a wait until its instance is InService with the volume
//!    attached and the address associated.
//!
//! No instance can launch before step 4, so none escapes the hook, the rule or the function.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::aws::{
    address, autoscaling_group, event_rule, iam_role, lambda_function, launch_template, log_group,
    network, security_group, volume, OpContext,
};

use super::names::{self, DerivedName};
use super::policy::{self, PolicyScope};
use super::spec::Spec;
use super::stack::Stack;
use super::steps::{StepError, StepResult};
use super::tagging::{object_tags, stack_tags, FINAL_SNAPSHOT_TAG};
use super::user_data::{user_data_base64, MountParams};

/// The settings and shared record of one create.
pub struct Creator<'a> {
    pub ctx: &'a OpContext,
    pub spec: &'a Spec,
    /// The handler zip to deploy.
    pub zip: &'a [u8],
    pub stack: Mutex<Stack>,
}

fn derived(d: DerivedName, spec: &Spec) -> String {
    d.for_stack(&spec.name)
}

impl<'a> Creator<'a> {
    pub fn new(ctx: &'a OpContext, spec: &'a Spec, zip: &'a [u8]) -> Self {
        Creator {
            ctx,
            spec,
            zip,
            stack: Mutex::new(Stack::default()),
        }
    }

    fn record(&self, f: impl FnOnce(&mut Stack)) {
        f(&mut self.stack.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn snapshot(&self) -> Stack {
        self.stack.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the whole create. On error the record holds what exists.
    pub async fn run(&self) -> Result<(), Vec<StepError>> {
        self.refuse_existing_stack().await.map_err(|e| vec![e])?;

        // Step 1.
        let (net, vol, addr, logs, role, rule) = tokio::join!(
            self.network(),
            self.volume(),
            self.address(),
            self.log_group(),
            self.role(),
            self.rule(),
        );
        let mut errors: Vec<StepError> = Vec::new();
        let net = keep(net, &mut errors);
        let vol = keep(vol, &mut errors);
        let addr = keep(addr, &mut errors);
        keep(logs, &mut errors);
        let role = keep(role, &mut errors);
        let rule = keep(rule, &mut errors);
        let (
            Some((subnet_id, security_group_id)),
            Some(volume),
            Some(allocation_id),
            Some(role_arn),
            Some(rule_arn),
        ) = (net, vol, addr, role, rule)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }

        // Step 2.
        let (policy, template) = tokio::join!(
            self.role_policy(&role_arn, &volume, &allocation_id),
            self.launch_template(&security_group_id, &volume.volume_id),
        );
        let policy = keep(policy, &mut errors);
        let template = keep(template, &mut errors);
        let (Some(()), Some((template_id, version))) = (policy, template) else {
            return Err(errors);
        };

        // Step 3.
        let (function, group) = tokio::join!(
            self.function(&role_arn, &volume.volume_id, &allocation_id, &rule_arn),
            self.group(&template_id, version, &subnet_id),
        );
        keep(function, &mut errors);
        keep(group, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }

        // Step 4.
        self.scale_up_and_wait(&volume.volume_id, &allocation_id)
            .await
            .map_err(|e| vec![e])
    }

    /// A stack of this name (its group, function or role) already in the account: never
    /// taken over silently, and nothing is created next to it.
    async fn refuse_existing_stack(&self) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let group = derived(names::AUTOSCALING_GROUP, spec);
        let function = derived(names::LAMBDA_FUNCTION, spec);
        let role = names::lambda_role_name(&spec.name, ctx.region());
        let rule = derived(names::EVENT_RULE, spec);
        let (g, f, r, e) = tokio::join!(
            autoscaling_group::find(ctx, &group),
            lambda_function::find(ctx, &function),
            iam_role::find(ctx, &role),
            event_rule::find(ctx, &rule),
        );
        let object = format!("stack {:?}", spec.name);
        let mut found = Vec::new();
        if g.step("check for", object.clone())?.is_some() {
            found.push(format!("Auto Scaling group {group}"));
        }
        if f.step("check for", object.clone())?.is_some() {
            found.push(format!("Lambda function {function}"));
        }
        if r.step("check for", object.clone())?.is_some() {
            found.push(format!("IAM role {role}"));
        }
        if e.step("check for", object.clone())?.is_some() {
            found.push(format!("EventBridge rule {rule}"));
        }
        if found.is_empty() {
            return Ok(());
        }
        Err(StepError::problem(
            "create",
            object,
            format!(
                "A stack named {:?} already exists in this account and region ({}). Nothing \
                 was created. To manage it with this configuration, import it: `terraform \
                 import <address> {}`; to start a new stack, choose another `name`.",
                spec.name,
                found.join(", "),
                spec.name
            ),
        ))
    }

    /// Network and security group; returns (subnet id, security group id).
    async fn network(&self) -> Result<(String, String), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let (vpc_id, subnet_id) = match &spec.subnet_id {
            Some(subnet_id) => {
                let info = network::find_subnet(ctx, subnet_id)
                    .await
                    .step("find", format!("subnet {subnet_id}"))?
                    .ok_or_else(|| {
                        StepError::problem(
                            "use",
                            format!("subnet {subnet_id}"),
                            format!("subnet_id: subnet {subnet_id} does not exist in this account and region"),
                        )
                    })?;
                if info.availability_zone != spec.availability_zone {
                    return Err(StepError::problem(
                        "use",
                        format!("subnet {subnet_id}"),
                        format!(
                            "subnet_id: subnet {subnet_id} is in {}, but availability_zone is {}; \
                             they must match (the data volume lives in one zone)",
                            info.availability_zone, spec.availability_zone
                        ),
                    ));
                }
                self.record(|s| {
                    s.vpc_id = Some(info.vpc_id.clone());
                    s.subnet_id = Some(subnet_id.clone());
                });
                (info.vpc_id, subnet_id.clone())
            }
            None => {
                let vpc_id = network::create_vpc(
                    ctx,
                    &spec.vpc_cidr,
                    &object_tags(spec, names::VPC_NAME_TAG),
                    |id| self.record(|s| s.vpc_id = Some(id.to_string())),
                )
                .await
                .step("create", "VPC")?;
                let (subnet_tags, igw_tags) = (
                    object_tags(spec, names::SUBNET_NAME_TAG),
                    object_tags(spec, names::INTERNET_GATEWAY_NAME_TAG),
                );
                let (subnet, igw) = tokio::join!(
                    network::create_subnet(
                        ctx,
                        &vpc_id,
                        &spec.subnet_cidr,
                        &spec.availability_zone,
                        &subnet_tags,
                    ),
                    network::create_internet_gateway(ctx, &vpc_id, &igw_tags),
                );
                let subnet_id = subnet.step("create", "subnet")?;
                self.record(|s| s.subnet_id = Some(subnet_id.clone()));
                let igw = igw.step("create", "internet gateway")?;
                network::create_route_table(
                    ctx,
                    &vpc_id,
                    &subnet_id,
                    &igw,
                    &object_tags(spec, names::ROUTE_TABLE_NAME_TAG),
                )
                .await
                .step("create", "route table")?;
                (vpc_id, subnet_id)
            }
        };
        let sg_name = derived(names::SECURITY_GROUP, spec);
        let sg = security_group::create(
            ctx,
            &sg_name,
            &vpc_id,
            &spec.ssh_ingress_cidrs,
            &object_tags(spec, names::SECURITY_GROUP),
        )
        .await
        .step("create", format!("security group {sg_name}"))?;
        self.record(|s| s.security_group_id = Some(sg.clone()));
        Ok((subnet_id, sg))
    }

    async fn volume(&self) -> Result<volume::VolumeInfo, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        if let Some(id) = &spec.existing_volume_id {
            let v = volume::find(ctx, id)
                .await
                .step("find", format!("volume {id}"))?
                .ok_or_else(|| {
                    StepError::problem(
                        "use",
                        format!("volume {id}"),
                        format!("existing_volume_id: volume {id} does not exist in this account and region"),
                    )
                })?;
            if v.availability_zone != spec.availability_zone {
                return Err(StepError::problem(
                    "use",
                    format!("volume {id}"),
                    format!(
                        "existing_volume_id: volume {id} is in {}, but availability_zone is {}; \
                         an EBS volume can only attach to instances in its own zone",
                        v.availability_zone, spec.availability_zone
                    ),
                ));
            }
            self.record(|s| s.volume_id = Some(id.clone()));
            return Ok(v);
        }
        // The data of a previous stack of the same name wins over `volume_snapshot_id`: a
        // replaced stack must never start empty.
        let previous = volume::newest_final_snapshot(
            ctx,
            names::STACK_TAG,
            &spec.name,
            (FINAL_SNAPSHOT_TAG, "true"),
        )
        .await
        .step("find", "final snapshot of a previous stack")?;
        let snapshot_id = match &previous {
            Some((id, _)) => {
                tracing::info!(
                    snapshot_id = id,
                    stack = spec.name,
                    "restoring the data volume from the newest final snapshot of this stack's name"
                );
                Some(id.as_str())
            }
            None => spec.volume_snapshot_id.as_deref(),
        };
        let new = volume::NewVolume {
            availability_zone: &spec.availability_zone,
            size: spec.volume_size,
            volume_type: &spec.volume_type,
            iops: spec.volume_iops,
            throughput: spec.volume_throughput,
            kms_key_id: spec.volume_kms_key_id.as_deref(),
            snapshot_id,
        };
        let id = volume::create(
            ctx,
            &new,
            &object_tags(spec, names::VOLUME_NAME_TAG),
            |id| self.record(|s| s.volume_id = Some(id.to_string())),
        )
        .await
        .step("create", "data volume")?;
        volume::find(ctx, &id)
            .await
            .step("find", format!("volume {id}"))?
            .ok_or_else(|| {
                StepError::problem(
                    "find",
                    format!("volume {id}"),
                    "the new volume is not listed",
                )
            })
    }

    async fn address(&self) -> Result<String, StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let info = match &spec.existing_allocation_id {
            Some(id) => address::find(ctx, id)
                .await
                .step("find", format!("Elastic IP {id}"))?
                .ok_or_else(|| {
                    StepError::problem(
                        "use",
                        format!("Elastic IP {id}"),
                        format!("existing_allocation_id: address {id} does not exist in this account and region"),
                    )
                })?,
            None => address::allocate(ctx, &object_tags(spec, names::EIP_NAME_TAG))
                .await
                .step("allocate", "Elastic IP")?,
        };
        self.record(|s| {
            s.allocation_id = Some(info.allocation_id.clone());
            s.public_ip = Some(info.public_ip.clone());
        });
        Ok(info.allocation_id)
    }

    async fn log_group(&self) -> Result<(), StepError> {
        let name = derived(names::LOG_GROUP, self.spec);
        log_group::create(
            self.ctx,
            &name,
            self.spec.log_retention_days,
            &stack_tags(self.spec),
            || self.record(|s| s.log_group_name = Some(name.clone())),
        )
        .await
        .step("create", format!("log group {name}"))
    }

    async fn role(&self) -> Result<String, StepError> {
        let name = names::lambda_role_name(&self.spec.name, self.ctx.region());
        let arn = iam_role::create(
            self.ctx,
            &name,
            &policy::lambda_trust_policy().to_string(),
            "autoheal: the attachment Lambda of this stack",
            &stack_tags(self.spec),
        )
        .await
        .step("create", format!("IAM role {name}"))?;
        self.record(|s| s.lambda_role_arn = Some(arn.clone()));
        Ok(arn)
    }

    async fn rule(&self) -> Result<String, StepError> {
        let name = derived(names::EVENT_RULE, self.spec);
        let group = derived(names::AUTOSCALING_GROUP, self.spec);
        let arn = event_rule::put(
            self.ctx,
            &name,
            &event_rule::launch_pattern(&group),
            "autoheal: launch lifecycle actions of this stack's group, to its attachment Lambda",
            &stack_tags(self.spec),
        )
        .await
        .step("create", format!("EventBridge rule {name}"))?;
        self.record(|s| s.event_rule_arn = Some(arn.clone()));
        Ok(arn)
    }

    async fn role_policy(
        &self,
        role_arn: &str,
        volume: &volume::VolumeInfo,
        allocation_id: &str,
    ) -> Result<(), StepError> {
        let spec = self.spec;
        let scope = policy_scope(role_arn, self.ctx.region(), spec, volume, allocation_id)?;
        let role = names::lambda_role_name(&spec.name, self.ctx.region());
        let policy_name = derived(names::LAMBDA_POLICY, spec);
        iam_role::put_policy(
            self.ctx,
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

    async fn launch_template(
        &self,
        security_group_id: &str,
        volume_id: &str,
    ) -> Result<(String, i64), StepError> {
        let name = derived(names::LAUNCH_TEMPLATE, self.spec);
        let data = template_data(self.spec, security_group_id, volume_id)?;
        let (id, version) = launch_template::create(
            self.ctx,
            &name,
            &data,
            &object_tags(self.spec, names::LAUNCH_TEMPLATE),
        )
        .await
        .step("create", format!("launch template {name}"))?;
        self.record(|s| {
            s.launch_template_id = Some(id.clone());
            s.launch_template_version = Some(version);
        });
        Ok((id, version))
    }

    async fn function(
        &self,
        role_arn: &str,
        volume_id: &str,
        allocation_id: &str,
        rule_arn: &str,
    ) -> Result<(), StepError> {
        let (ctx, spec) = (self.ctx, self.spec);
        let name = derived(names::LAMBDA_FUNCTION, spec);
        let settings = function_settings(spec, role_arn, volume_id, allocation_id);
        let sha = crate::handler_zip::sha256_hex(self.zip);
        let arn =
            lambda_function::create(ctx, &name, &settings, self.zip, &stack_tags(spec), |arn| {
                self.record(|s| {
                    s.lambda_function_arn = Some(arn.to_string());
                    s.handler_sha256 = Some(sha);
                })
            })
            .await
            .step("create", format!("Lambda function {name}"))?;
        if spec.lambda_reserved_concurrency.is_some() {
            lambda_function::set_reserved_concurrency(ctx, &name, spec.lambda_reserved_concurrency)
                .await
                .step(
                    "set reserved concurrency of",
                    format!("Lambda function {name}"),
                )?;
        }
        let rule = derived(names::EVENT_RULE, spec);
        event_rule::put_target(ctx, &rule, &derived(names::EVENT_TARGET_ID, spec), &arn)
            .await
            .step("add the target of", format!("EventBridge rule {rule}"))?;
        lambda_function::add_permission(
            ctx,
            &name,
            &derived(names::LAMBDA_PERMISSION_SID, spec),
            rule_arn,
        )
        .await
        .step(
            "add the invoke permission of",
            format!("Lambda function {name}"),
        )
    }

    async fn group(
        &self,
        template_id: &str,
        version: i64,
        subnet_id: &str,
    ) -> Result<(), StepError> {
        let spec = self.spec;
        let name = derived(names::AUTOSCALING_GROUP, spec);
        let hook = derived(names::LIFECYCLE_HOOK, spec);
        let mut tags = stack_tags(spec);
        tags.insert(
            names::NAME_TAG.to_string(),
            names::INSTANCE_NAME_TAG.for_stack(&spec.name),
        );
        autoscaling_group::create(
            self.ctx,
            &autoscaling_group::NewGroup {
                name: &name,
                launch_template_id: template_id,
                launch_template_version: version,
                subnet_id,
                health_check_grace_period: spec.health_check_grace_period,
                hook_name: &hook,
                hook_timeout: spec.lifecycle_hook_timeout,
            },
            &tags,
            || {
                self.record(|s| {
                    s.autoscaling_group_name = Some(name.clone());
                    s.lifecycle_hook_name = Some(hook.clone());
                })
            },
        )
        .await
        .step("create", format!("Auto Scaling group {name}"))
    }

    async fn scale_up_and_wait(
        &self,
        volume_id: &str,
        allocation_id: &str,
    ) -> Result<(), StepError> {
        let name = derived(names::AUTOSCALING_GROUP, self.spec);
        autoscaling_group::set_size(self.ctx, &name, 1)
            .await
            .step("scale up", format!("Auto Scaling group {name}"))?;
        tracing::info!(
            group = name,
            "waiting for the first instance to get the volume and the address"
        );
        let instance = wait_served(self.ctx, &name, None, volume_id, allocation_id)
            .await
            .step("wait for", format!("the first instance of {name}"))?;
        tracing::info!(
            instance,
            "instance in service with the data volume and the Elastic IP"
        );
        self.record(|s| s.instance_id = Some(instance));
        Ok(())
    }
}

fn keep<T>(r: Result<T, StepError>, errors: &mut Vec<StepError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Waits until the group's one instance is InService with the volume attached to it and the
/// address associated with it. Returns the instance id.
pub async fn wait_served(
    ctx: &OpContext,
    group: &str,
    not: Option<&str>,
    volume_id: &str,
    allocation_id: &str,
) -> Result<String, crate::aws::AwsError> {
    autoscaling_group::wait_in_service(ctx, group, not, |instance| async move {
        let v = volume::find(ctx, volume_id).await?;
        let attached = v.as_ref().is_some_and(|v| {
            v.attachments
                .iter()
                .any(|(i, state, _)| *i == instance && state == "attached")
        });
        if !attached {
            return Ok(Some(format!("volume {volume_id} not attached to it yet")));
        }
        let a = address::find(ctx, allocation_id).await?;
        if a.and_then(|a| a.instance_id).as_deref() != Some(instance.as_str()) {
            return Ok(Some(format!(
                "address {allocation_id} not associated with it yet"
            )));
        }
        Ok(None)
    })
    .await
}

/// The inline policy's scope. The account and partition come from the role's ARN (no STS
/// call needed).
pub fn policy_scope(
    role_arn: &str,
    region: &str,
    spec: &Spec,
    volume: &volume::VolumeInfo,
    allocation_id: &str,
) -> Result<PolicyScope, StepError> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let (partition, account) = match parts.as_slice() {
        ["arn", partition, "iam", "", account, _] => (partition.to_string(), account.to_string()),
        _ => {
            return Err(StepError::problem(
                "read",
                format!("IAM role ARN {role_arn}"),
                "unexpected ARN shape",
            ))
        }
    };
    Ok(PolicyScope {
        partition,
        region: region.to_string(),
        account_id: account,
        volume_id: volume.volume_id.clone(),
        allocation_id: allocation_id.to_string(),
        autoscaling_group_name: derived(names::AUTOSCALING_GROUP, spec),
        log_group_name: derived(names::LOG_GROUP, spec),
        // EBS records the key ARN on the volume whatever form the user gave (id, alias).
        kms_key_arn: spec
            .volume_kms_key_id
            .as_ref()
            .and(volume.kms_key_id.clone()),
    })
}

/// The launch template's data for this spec.
pub fn template_data(
    spec: &Spec,
    security_group_id: &str,
    volume_id: &str,
) -> Result<launch_template::TemplateData, StepError> {
    let mut tags = stack_tags(spec);
    tags.insert(
        names::NAME_TAG.to_string(),
        names::INSTANCE_NAME_TAG.for_stack(&spec.name),
    );
    let mount = MountParams::new(
        volume_id,
        &spec.device_name,
        &spec.mount_point,
        &spec.filesystem,
    );
    let user_data_base64 = user_data_base64(&mount, spec.user_data.as_deref())
        .map_err(|e| StepError::problem("build", "the user data", e.to_string()))?;
    Ok(launch_template::TemplateData {
        image_id: spec.ami.clone(),
        instance_type: spec.instance_type.clone(),
        key_name: spec.key_name.clone(),
        security_group_id: security_group_id.to_string(),
        user_data_base64,
        tags,
    })
}

/// The function's settings for this spec: the handler's environment names the stack's objects.
pub fn function_settings(
    spec: &Spec,
    role_arn: &str,
    volume_id: &str,
    allocation_id: &str,
) -> lambda_function::FunctionSettings {
    let env: BTreeMap<String, String> = [
        ("AUTOHEAL_VOLUME_ID", volume_id.to_string()),
        ("AUTOHEAL_ALLOCATION_ID", allocation_id.to_string()),
        ("AUTOHEAL_DEVICE_NAME", spec.device_name.clone()),
        (
            "AUTOHEAL_GROUP_NAME",
            derived(names::AUTOSCALING_GROUP, spec),
        ),
        ("AUTOHEAL_HOOK_NAME", derived(names::LIFECYCLE_HOOK, spec)),
        (
            "AUTOHEAL_HOOK_TIMEOUT_SECONDS",
            spec.lifecycle_hook_timeout.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    lambda_function::FunctionSettings {
        role_arn: role_arn.to_string(),
        memory_size: spec.lambda_memory_size,
        timeout: spec.lambda_timeout,
        architecture: spec.lambda_architecture.clone(),
        environment: env,
        log_group: Some(derived(names::LOG_GROUP, spec)),
    }
}

/// The handler zip this spec deploys: the user's `handler_zip`, else the shipped one.
pub fn handler_zip(spec: &Spec) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    match &spec.handler_zip {
        Some(path) => std::fs::read(path)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| format!("handler_zip: cannot read {path}: {e}")),
        None => crate::handler_zip::shipped(&spec.lambda_architecture)
            .map(std::borrow::Cow::Borrowed)
            .ok_or_else(|| {
                format!(
                    "lambda_architecture: no shipped handler for {}; set handler_zip",
                    spec.lambda_architecture
                )
            }),
    }
}
