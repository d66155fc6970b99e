//! The Auto Scaling group of one instance and its launch lifecycle hook.
//!
//! The group is created at size 0 with the hook given in the same call, so no instance can
//! launch before the hook exists; the resource scales it to 1 only when everything the hook
//! relies on (function, rule, target, permission) exists.

use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, LifecycleHookSpecification};

use super::context::{OpContext, Poll};
use super::error::AwsError;
use super::tags::{autoscaling, Tags};

pub const LAUNCH_TRANSITION: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInstance {
    pub instance_id: String,
    pub lifecycle_state: String,
    pub health_status: String,
    /// The launch template version the instance was launched from, which lags the group's
    /// until the instance is replaced.
    pub launch_template_version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub arn: String,
    pub launch_template_id: Option<String>,
    pub launch_template_version: Option<String>,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub health_check_grace_period: i32,
    pub subnets: Vec<String>,
    pub instances: Vec<GroupInstance>,
    pub tags: Tags,
    pub deleting: bool,
}

impl GroupInfo {
    pub fn in_service(&self) -> Vec<&GroupInstance> {
        self.instances
            .iter()
            .filter(|i| i.lifecycle_state == "InService")
            .collect()
    }

    /// The instance the stack's `instance_id` names: the one in service, else the one being
    /// launched (held by the hook while the heal runs). Read and update agree on it, so a
    /// refresh during a heal and the apply after it report the same instance.
    pub fn current_instance(&self) -> Option<&GroupInstance> {
        self.in_service()
            .first()
            .copied()
            .or_else(|| self.instances.first())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookInfo {
    pub heartbeat_timeout: i32,
    pub default_result: String,
    pub transition: String,
}

pub struct NewGroup<'a> {
    pub name: &'a str,
    pub launch_template_id: &'a str,
    pub launch_template_version: i64,
    pub subnet_id: &'a str,
    pub health_check_grace_period: i32,
    pub hook_name: &'a str,
    pub hook_timeout: i32,
}

fn template(id: &str, version: i64) -> LaunchTemplateSpecification {
    LaunchTemplateSpecification::builder()
        .launch_template_id(id)
        .version(version.to_string())
        .build()
}

/// Creates the group at size 0 with its launch hook (default result ABANDON: an instance the
/// function never served is not put in service) and enables group metrics.
/// `tags` propagate to the instances it launches, `own_tags` stay on the group.
/// `created` hears when the group exists, before the metrics call that may fail.
pub async fn create(
    ctx: &OpContext,
    g: &NewGroup<'_>,
    tags: &Tags,
    own_tags: &Tags,
    created: impl FnOnce(),
) -> Result<(), AwsError> {
    let hook = LifecycleHookSpecification::builder()
        .lifecycle_hook_name(g.hook_name)
        .lifecycle_transition(LAUNCH_TRANSITION)
        .heartbeat_timeout(g.hook_timeout)
        .default_result("ABANDON")
        .build();
    // The token stays on the group (not propagated): it tells the group this create made
    // from any other when its answer was lost.
    let (own_tags, token) = super::context::with_create_token(own_tags);
    let own_tags = &own_tags;
    ctx.create(
        "autoscaling:CreateAutoScalingGroup",
        &[],
        || async {
            Ok(find(ctx, g.name)
                .await?
                .filter(|found| super::context::made_by(&found.tags, &token))
                .map(|_| ()))
        },
        || async {
            ctx.clients
                .autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(g.name)
                .launch_template(template(g.launch_template_id, g.launch_template_version))
                .min_size(0)
                .max_size(0)
                .desired_capacity(0)
                .vpc_zone_identifier(g.subnet_id)
                .health_check_type("EC2")
                .health_check_grace_period(g.health_check_grace_period)
                .lifecycle_hook_specification_list(hook.clone())
                .set_tags(Some(group_tags(g.name, tags, own_tags)))
                .send()
                .await
                .map(|_| ())
        },
    )
    .await?;
    tracing::info!(
        group = g.name,
        hook = g.hook_name,
        "created Auto Scaling group at size 0 with its launch hook"
    );
    created();
    enable_metrics(ctx, g.name).await
}

/// The group's tags: `tags` propagated at launch, `own_tags` not.
fn group_tags(group: &str, tags: &Tags, own_tags: &Tags) -> Vec<aws_sdk_autoscaling::types::Tag> {
    let mut all = autoscaling(group, tags);
    all.extend(autoscaling(group, own_tags).into_iter().map(|mut t| {
        t.propagate_at_launch = Some(false);
        t
    }));
    all
}

/// Turns on the group's CloudWatch metrics (idempotent).
pub async fn enable_metrics(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    ctx.call("autoscaling:EnableMetricsCollection", &[], || {
        ctx.clients
            .autoscaling
            .enable_metrics_collection()
            .auto_scaling_group_name(name)
            .granularity("1Minute")
            .send()
    })
    .await?;
    Ok(())
}

pub async fn find(ctx: &OpContext, name: &str) -> Result<Option<GroupInfo>, AwsError> {
    let out = ctx
        .call("autoscaling:DescribeAutoScalingGroups", &[], || {
            ctx.clients
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
        })
        .await?;
    Ok(out.auto_scaling_groups().first().map(|g| {
        let lt = g.launch_template();
        GroupInfo {
            name: name.to_string(),
            arn: g.auto_scaling_group_arn().unwrap_or_default().to_string(),
            launch_template_id: lt.and_then(|t| t.launch_template_id()).map(str::to_string),
            launch_template_version: lt.and_then(|t| t.version()).map(str::to_string),
            min: g.min_size().unwrap_or_default(),
            max: g.max_size().unwrap_or_default(),
            desired: g.desired_capacity().unwrap_or_default(),
            health_check_grace_period: g.health_check_grace_period().unwrap_or_default(),
            subnets: g
                .vpc_zone_identifier()
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            instances: g
                .instances()
                .iter()
                .map(|i| GroupInstance {
                    instance_id: i.instance_id().unwrap_or_default().to_string(),
                    lifecycle_state: i
                        .lifecycle_state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    health_status: i.health_status().unwrap_or_default().to_string(),
                    launch_template_version: i
                        .launch_template()
                        .and_then(|t| t.version())
                        .map(str::to_string),
                })
                .collect(),
            tags: g
                .tags()
                .iter()
                .filter_map(|t| {
                    Some((
                        t.key()?.to_string(),
                        t.value().unwrap_or_default().to_string(),
                    ))
                })
                .collect(),
            deleting: g.status().is_some_and(|s| s.contains("Delete")),
        }
    }))
}

pub async fn find_hook(
    ctx: &OpContext,
    group: &str,
    hook: &str,
) -> Result<Option<HookInfo>, AwsError> {
    let out = ctx
        .find("autoscaling:DescribeLifecycleHooks", || {
            ctx.clients
                .autoscaling
                .describe_lifecycle_hooks()
                .auto_scaling_group_name(group)
                .lifecycle_hook_names(hook)
                .send()
        })
        .await;
    let out = match out {
        Ok(o) => o,
        // Auto Scaling answers ValidationError for a group that does not exist.
        Err(e) if e.is_code(&["ValidationError"]) => None,
        Err(e) => return Err(e),
    };
    Ok(out.and_then(|o| {
        o.lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
            .map(|h| HookInfo {
                heartbeat_timeout: h.heartbeat_timeout().unwrap_or_default(),
                default_result: h.default_result().unwrap_or_default().to_string(),
                transition: h.lifecycle_transition().unwrap_or_default().to_string(),
            })
    }))
}

/// Creates or updates the launch hook (PutLifecycleHook is an upsert).
pub async fn put_hook(
    ctx: &OpContext,
    group: &str,
    hook: &str,
    timeout: i32,
) -> Result<(), AwsError> {
    ctx.call("autoscaling:PutLifecycleHook", &[], || {
        ctx.clients
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(hook)
            .lifecycle_transition(LAUNCH_TRANSITION)
            .heartbeat_timeout(timeout)
            .default_result("ABANDON")
            .send()
    })
    .await?;
    tracing::info!(group, hook, timeout, "launch hook written");
    Ok(())
}

/// Sets min = max = desired = `n`.
pub async fn set_size(ctx: &OpContext, name: &str, n: i32) -> Result<(), AwsError> {
    ctx.call("autoscaling:UpdateAutoScalingGroup", &[], || {
        ctx.clients
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .min_size(n)
            .max_size(n)
            .desired_capacity(n)
            .send()
    })
    .await?;
    tracing::info!(group = name, size = n, "group size set");
    Ok(())
}

/// Points the group at a launch template version and sets the grace period.
pub async fn update(
    ctx: &OpContext,
    name: &str,
    launch_template: Option<(&str, i64)>,
    health_check_grace_period: Option<i32>,
) -> Result<(), AwsError> {
    ctx.call("autoscaling:UpdateAutoScalingGroup", &[], || {
        ctx.clients
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .set_launch_template(launch_template.map(|(id, v)| template(id, v)))
            .set_health_check_grace_period(health_check_grace_period)
            .send()
    })
    .await?;
    Ok(())
}

/// Points the group at `subnet` (its VPCZoneIdentifier): the next launch goes there.
pub async fn set_subnet(ctx: &OpContext, name: &str, subnet: &str) -> Result<(), AwsError> {
    ctx.call("autoscaling:UpdateAutoScalingGroup", &[], || {
        ctx.clients
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(name)
            .vpc_zone_identifier(subnet)
            .send()
    })
    .await?;
    tracing::info!(group = name, subnet, "group subnet set");
    Ok(())
}

pub async fn set_tags(
    ctx: &OpContext,
    name: &str,
    set: &Tags,
    remove: &[String],
) -> Result<(), AwsError> {
    if !remove.is_empty() {
        let gone: Tags = remove.iter().map(|k| (k.clone(), String::new())).collect();
        ctx.call("autoscaling:DeleteTags", &[], || {
            ctx.clients
                .autoscaling
                .delete_tags()
                .set_tags(Some(autoscaling(name, &gone)))
                .send()
        })
        .await?;
    }
    if !set.is_empty() {
        ctx.call("autoscaling:CreateOrUpdateTags", &[], || {
            ctx.clients
                .autoscaling
                .create_or_update_tags()
                .set_tags(Some(autoscaling(name, set)))
                .send()
        })
        .await?;
    }
    Ok(())
}

/// Terminates the group's instance without lowering the desired size: the group launches a
/// replacement, which goes through the launch hook (the heal path).
pub async fn replace_instance(ctx: &OpContext, instance_id: &str) -> Result<(), AwsError> {
    let result = ctx
        .call(
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            &[],
            || {
                ctx.clients
                    .autoscaling
                    .terminate_instance_in_auto_scaling_group()
                    .instance_id(instance_id)
                    .should_decrement_desired_capacity(false)
                    .send()
            },
        )
        .await;
    match result {
        Ok(_) => {}
        // The group no longer manages it ("No managed instance found for instance ID"): it is
        // already on its way out (an attempt whose answer was lost, or a heal); the
        // replacement comes all the same, and the caller waits for it.
        Err(e) if e.is_code(&["ValidationError"]) && e.message.contains("No managed instance") => {
            tracing::info!(instance_id, "the group had already let the instance go");
        }
        Err(e) => return Err(e),
    }
    tracing::info!(instance_id, "instance terminated for a rolling replacement");
    Ok(())
}

/// A launch Auto Scaling tried and failed (a `Failed` scaling activity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedLaunch {
    pub activity_id: String,
    /// AWS's StatusMessage ("The image id '[ami-..]' does not exist. Launching EC2 instance
    /// failed.").
    pub message: String,
}

/// What a failed launch means for a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaunchFailure {
    /// AWS is out of this capacity for now; the group retries with back-off and usually
    /// succeeds later ("We currently do not have sufficient t3.micro capacity ...").
    Capacity,
    /// The launch configuration itself is wrong (missing AMI, architectures that do not
    /// match, a type the zone does not offer, ...): every retry fails the same way.
    Permanent,
}

/// Capacity shortages by AWS's StatusMessage (the error code, InsufficientInstanceCapacity,
/// is not part of it); anything else fails every retry alike.
pub fn launch_failure(message: &str) -> LaunchFailure {
    const CAPACITY: &[&str] = &[
        "do not have sufficient",
        "InsufficientInstanceCapacity",
        "Insufficient capacity",
    ];
    if CAPACITY.iter().any(|c| message.contains(c)) {
        LaunchFailure::Capacity
    } else {
        LaunchFailure::Permanent
    }
}

/// The ids of the group's newest scaling activities (the page [`failed_launches`] reads).
pub async fn activity_ids(
    ctx: &OpContext,
    name: &str,
) -> Result<std::collections::BTreeSet<String>, AwsError> {
    Ok(newest_activities(ctx, name)
        .await?
        .activities()
        .iter()
        .filter_map(|a| a.activity_id().map(str::to_string))
        .collect())
}

async fn newest_activities(
    ctx: &OpContext,
    name: &str,
) -> Result<
    aws_sdk_autoscaling::operation::describe_scaling_activities::DescribeScalingActivitiesOutput,
    AwsError,
> {
    ctx.call("autoscaling:DescribeScalingActivities", &[], || {
        ctx.clients
            .autoscaling
            .describe_scaling_activities()
            .auto_scaling_group_name(name)
            .max_records(20)
            .send()
    })
    .await
}

/// The group's Failed scaling activities but those in `seen_before`, newest first
/// (DescribeScalingActivities lists the group's activities newest first).
pub async fn failed_launches(
    ctx: &OpContext,
    name: &str,
    seen_before: &std::collections::BTreeSet<String>,
) -> Result<Vec<FailedLaunch>, AwsError> {
    let out = newest_activities(ctx, name).await?;
    Ok(out
        .activities()
        .iter()
        .filter(|a| {
            a.status_code().map(|c| c.as_str()) == Some("Failed")
                && a.activity_id().is_some_and(|id| !seen_before.contains(id))
        })
        .map(|a| FailedLaunch {
            activity_id: a.activity_id().unwrap_or_default().to_string(),
            message: a
                .status_message()
                .or(a.description())
                .unwrap_or("no status message")
                .to_string(),
        })
        .collect())
}

/// Waits until the group has exactly one instance, InService, for which `ready` (volume and
/// address checks) holds, and no other instance. Returns its id. `not` excludes an instance
/// being replaced.
///
/// While no launch has produced an instance yet, the group's scaling activities are read: a
/// launch that failed for good ends the wait with AWS's message (each retry would fail the
/// same way), a capacity shortage becomes a warning and the wait goes on.
pub async fn wait_in_service<F, Fut>(
    ctx: &OpContext,
    name: &str,
    not: Option<&str>,
    ready: F,
) -> Result<String, AwsError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, AwsError>>,
{
    // The activities listed before the wait are not reported: an older failure was fixed or
    // is not ours to report. Compared by id, not by time: AWS's clock is not the provider's.
    // A launch of this wait that failed for good before the wait began is reported at its
    // next retry (each retry is a new activity).
    let seen_before = activity_ids(ctx, name).await?;
    let reported = std::sync::Mutex::new(std::collections::BTreeSet::<String>::new());
    ctx.wait_for(
        &format!("group {name} to have its instance in service"),
        || async {
            let Some(group) = find(ctx, name).await? else {
                return Err(AwsError::other(
                    "autoscaling:DescribeAutoScalingGroups",
                    format!("group {name} disappeared"),
                ));
            };
            let states: Vec<String> = group
                .instances
                .iter()
                .map(|i| format!("{} {}", i.instance_id, i.lifecycle_state))
                .collect();
            let serving: Vec<_> = group
                .in_service()
                .into_iter()
                .filter(|i| Some(i.instance_id.as_str()) != not)
                .collect();
            if serving.len() == 1 && group.instances.len() == 1 {
                let id = serving[0].instance_id.clone();
                return Ok(match ready(id.clone()).await? {
                    None => Poll::Ready(id),
                    Some(missing) => Poll::Waiting(format!("{id} InService, {missing}")),
                });
            }
            let launched = group
                .instances
                .iter()
                .any(|i| Some(i.instance_id.as_str()) != not);
            if !launched {
                for failed in failed_launches(ctx, name, &seen_before).await? {
                    let new = reported
                        .lock()
                        .is_ok_and(|mut r| r.insert(failed.activity_id.clone()));
                    match launch_failure(&failed.message) {
                        LaunchFailure::Permanent => {
                            return Err(AwsError::launch_failed(name, &failed.message));
                        }
                        LaunchFailure::Capacity if new => ctx.warn(
                            format!("Group {name} could not launch its instance yet"),
                            format!(
                                "Auto Scaling reports: {}\n\nThe group retries with back-off; \
                                 the apply keeps waiting within its timeout.",
                                failed.message
                            ),
                        ),
                        LaunchFailure::Capacity => {}
                    }
                }
            }
            Ok(Poll::Waiting(if states.is_empty() {
                "no instance yet".into()
            } else {
                states.join(", ")
            }))
        },
    )
    .await
}

/// Scales the group to 0 and waits until it has no instance.
pub async fn drain(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    // Sized to 0 without a look first: this is the first call on a destroy's critical path,
    // a group already at 0 takes the update as a no-op, and one that is gone is answered
    // ValidationError "AutoScalingGroup name not found - ...".
    if let Err(e) = set_size(ctx, name, 0).await {
        if is_not_found(&e) {
            return Ok(());
        }
        // Refused for another reason (a group being deleted takes no update): fine if the
        // group is gone or at 0 already, else that is the error.
        match find(ctx, name).await? {
            None => return Ok(()),
            Some(g) if g.min == 0 && g.max == 0 && g.desired == 0 => {}
            Some(_) => return Err(e),
        }
    }
    ctx.wait_for(&format!("group {name} to have no instance"), || async {
        Ok(match find(ctx, name).await? {
            None => Poll::Ready(()),
            Some(g) if g.instances.is_empty() => Poll::Ready(()),
            Some(g) => Poll::Waiting(
                g.instances
                    .iter()
                    .map(|i| format!("{} {}", i.instance_id, i.lifecycle_state))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        })
    })
    .await
}

/// Auto Scaling's answer for a group that does not exist: ValidationError "AutoScalingGroup
/// name not found - ..." (UpdateAutoScalingGroup, DeleteAutoScalingGroup).
fn is_not_found(e: &AwsError) -> bool {
    e.is_code(&["ValidationError"]) && e.message.contains("not found")
}

/// Deletes the group (and with it its hook) and waits until it is gone.
pub async fn delete(ctx: &OpContext, name: &str) -> Result<(), AwsError> {
    if find(ctx, name).await?.is_none() {
        return Ok(());
    }
    match ctx
        .call(
            "autoscaling:DeleteAutoScalingGroup",
            &["ResourceInUse", "ScalingActivityInProgress"],
            || {
                ctx.clients
                    .autoscaling
                    .delete_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .send()
            },
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(e),
    }
    ctx.wait_for(&format!("group {name} to be deleted"), || async {
        Ok(match find(ctx, name).await? {
            None => Poll::Ready(()),
            Some(_) => Poll::Waiting("deleting".into()),
        })
    })
    .await?;
    tracing::info!(group = name, "deleted Auto Scaling group");
    Ok(())
}

#[cfg(test)]
mod launch_failure_tests {
    use super::*;

    #[test]
    fn capacity_shortages_are_told_from_permanent_failures() {
        let capacity = "We currently do not have sufficient t3.micro capacity in the \
            Availability Zone you requested (ap-southeast-2a). Our system will be working on \
            provisioning additional capacity. Launching EC2 instance failed.";
        assert_eq!(launch_failure(capacity), LaunchFailure::Capacity);
        for permanent in [
            "The image id '[ami-0123]' does not exist. Launching EC2 instance failed.",
            "The architecture 'arm64' of the specified instance type does not match the \
             architecture 'x86_64' of the specified AMI. Launching EC2 instance failed.",
            "Your requested instance type (t4g.nano) is not supported in your requested \
             Availability Zone (ap-southeast-2c). Launching EC2 instance failed.",
        ] {
            assert_eq!(
                launch_failure(permanent),
                LaunchFailure::Permanent,
                "{permanent}"
            );
        }
    }
}
