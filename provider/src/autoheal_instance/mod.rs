//! The `autoheal_instance` resource: the whole EC2 autoheal pattern as one Terraform resource.
//!
//! One resource stands up a stack of AWS objects around a single EC2 instance so that the
//! instance can die and come back with the same data and the same address:
//!
//! - a VPC with an internet gateway and a public subnet, unless `subnet_id` names an existing
//!   subnet;
//! - a security group (SSH only from `ssh_ingress_cidrs`, if any);
//! - an encrypted EBS data volume (or the user's `existing_volume_id`), created from the
//!   snapshot [`lineage`] picks: the newest final snapshot of a previous stack of the same
//!   name, or a newly set `volume_snapshot_id`;
//! - an Elastic IP (or the user's `existing_allocation_id`);
//! - an IAM role and a Rust Lambda function (the attachment handler) with its log group;
//! - an EventBridge rule that invokes the function on launch lifecycle actions;
//! - a launch template and an Auto Scaling group of exactly one instance, with a launch
//!   lifecycle hook.
//!
//! When the group launches an instance (at create, after a failed health check, or when an
//! update rolls the instance), the hook holds it in `Pending:Wait`; the function detaches the
//! volume and the address from the old instance, attaches them to the new one and completes
//! the lifecycle action; the boot script mounts the volume and runs `user_data`.
//!
//! Layout: [`schema`] declares the attributes (their descriptions are the documentation),
//! [`validate`] checks a configuration, [`plan`] holds the plan rules, [`names`] derives the
//! AWS names from `name`, [`duration`] parses the `timeouts` values. [`spec`] types a planned
//! state, [`stack`] holds the ids of the stack's objects; [`create`], [`read`] (and import),
//! [`update`] and [`delete`] order the AWS operations of [`crate::aws`]; [`tagging`],
//! [`policy`] and [`user_data`] build what goes into the objects; [`steps`] turns a failed
//! step into the diagnostic the user sees.

pub mod active;
pub mod adopt;
pub mod alarms;
pub mod converge;
pub mod create;
pub mod delete;
pub mod duration;
pub mod failback;
pub mod failover_subnets;
pub mod lineage;
pub mod names;
pub mod plan;
pub mod policy;
pub mod provenance;
pub mod read;
pub mod retry_budget;
pub mod schema;
pub mod security_rules;
pub mod spec;
pub mod stack;
pub mod state_upgrade;
pub mod steps;
pub mod tagging;
pub mod update;
pub mod user_data;
pub mod validate;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::aws::{Clients, OpContext};
use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::resource::{
    ApplyRequest, ApplyResponse, ImportResponse, PlanRequest, PlanResponse, ReadResponse, Resource,
    ValidateContext,
};
use crate::plugin::schema::Schema;
use crate::plugin::value::Value;
use crate::provider::ProviderHandle;

pub use duration::parse_go_duration;

use spec::Spec;
use stack::{nullify_unknowns, Stack};

/// The Terraform type name of the resource.
pub const TYPE_NAME: &str = "autoheal_instance";

/// Budget of a read or an import (they only describe objects).
const READ_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The `autoheal_instance` resource.
pub struct AutohealInstance {
    schema: Schema,
    provider: ProviderHandle,
}

impl AutohealInstance {
    pub fn new(provider: ProviderHandle) -> Self {
        AutohealInstance {
            schema: schema::schema(),
            provider,
        }
    }

    /// The context of one operation: clients (the SDK configuration is loaded on first use),
    /// the provider's retry policy, the operation's deadline and Terraform's stop signal.
    async fn context(
        &self,
        budget: Duration,
        cancel: CancellationToken,
    ) -> Result<OpContext, Diagnostics> {
        let Some(aws) = self.provider.aws() else {
            return Err(Diagnostics::from_error(
                "The provider is not configured",
                "Terraform did not configure the autoheal provider before this operation.",
            ));
        };
        let clients = Clients::new(&aws)
            .await
            .map_err(|e| Diagnostics::from_error("Cannot connect to AWS", format!("{e:#}")))?;
        Ok(OpContext::new(clients, aws.retry_policy(), budget, cancel))
    }

    async fn create(&self, planned: Value, cancel: CancellationToken) -> ApplyResponse {
        let spec = Spec::from_value(&planned);
        let zip = match create::handler_zip(&spec) {
            Ok(z) => z,
            Err(e) => {
                return ApplyResponse {
                    new_state: Value::Null,
                    diagnostics: Diagnostics::from_error("Cannot read the handler", e),
                }
            }
        };
        let ctx = match self.context(spec.create_timeout, cancel).await {
            Ok(c) => c,
            Err(diagnostics) => {
                return ApplyResponse {
                    new_state: Value::Null,
                    diagnostics,
                }
            }
        };
        tracing::info!(stack = spec.name, timeout = ?spec.create_timeout, "creating the stack");
        let mut creator = create::Creator::new(&ctx, &spec, &zip);
        let result = creator.run().await;
        let stack = creator.snapshot();
        if result.is_err() && stack == Stack::default() {
            // Nothing was made: no state, so nothing for a destroy to (wrongly) delete.
            let mut diagnostics = Diagnostics::new();
            if let Err(errors) = &result {
                steps::report(&mut diagnostics, errors, "Nothing was created in AWS.");
            }
            return ApplyResponse {
                new_state: Value::Null,
                diagnostics,
            };
        }
        let mut state = planned;
        stack.write(&mut state);
        // Left unknown by the plan when AWS picks the baseline: EBS's answer, not null (a
        // null here would show as a change at the first refresh).
        if let Some((iops, throughput)) = creator.volume_performance() {
            for (name, value) in [("volume_iops", iops), ("volume_throughput", throughput)] {
                if state.attr(name).is_unknown() {
                    state.set_attr(
                        name,
                        value.map_or(Value::Null, |v| Value::from(i64::from(v))),
                    );
                }
            }
        }
        nullify_unknowns(&mut state);
        let mut diagnostics = Diagnostics::new();
        for (summary, detail) in ctx.take_warnings() {
            diagnostics.warning(summary, detail);
        }
        if let Err(errors) = result {
            steps::report(
                &mut diagnostics,
                &errors,
                "The objects created so far are saved in the state: run `terraform apply` again \
                 to replace the stack, or `terraform destroy` to delete them.",
            );
        } else {
            tracing::info!(
                stack = spec.name,
                instance = stack.instance_id,
                "stack created"
            );
        }
        ApplyResponse {
            new_state: state,
            diagnostics,
        }
    }

    async fn destroy(&self, prior: Value, cancel: CancellationToken) -> ApplyResponse {
        let spec = Spec::from_value(&prior);
        let stack = Stack::from_value(&prior);
        let ctx = match self.context(spec.delete_timeout, cancel).await {
            Ok(c) => c,
            Err(diagnostics) => {
                return ApplyResponse {
                    new_state: prior,
                    diagnostics,
                }
            }
        };
        tracing::info!(stack = spec.name, timeout = ?spec.delete_timeout, "destroying the stack");
        match delete::delete(&ctx, &spec, &stack).await {
            Ok(outcome) => {
                let mut diagnostics = Diagnostics::new();
                if let Some(snapshot) = outcome.final_snapshot {
                    diagnostics.warning(
                        format!("Final snapshot {snapshot} kept"),
                        format!(
                            "The data volume of stack {:?} was deleted after its final snapshot \
                             {snapshot} (tagged autoheal:stack = {:?}). A new stack of the same \
                             name restores its volume from it; delete the snapshot when the data \
                             is no longer needed.",
                            spec.name, spec.name
                        ),
                    );
                }
                if let Some(volume) = outcome.superseded_volume {
                    diagnostics.warning(
                        format!("Superseded data volume {volume} kept"),
                        "A zone failover moved the stack to a volume restored from a scheduled \
                         snapshot; that volume got the final snapshot. The home volume it \
                         superseded is kept, never deleted by the provider: it may hold writes \
                         made after that snapshot. Recover them, then delete it yourself.",
                    );
                }
                if let Some(volume) = outcome.kept_volume {
                    diagnostics.warning(
                        format!("Data volume {volume} kept"),
                        "The data volume was detached and kept (it is the user's, or \
                         volume_on_destroy = \"retain\").",
                    );
                }
                tracing::info!(stack = spec.name, "stack destroyed");
                ApplyResponse {
                    new_state: Value::Null,
                    diagnostics,
                }
            }
            Err((left, errors)) => {
                let mut state = prior;
                left.write(&mut state);
                let mut diagnostics = Diagnostics::new();
                steps::report(
                    &mut diagnostics,
                    &errors,
                    "The objects not yet deleted stay in the state: run `terraform destroy` again \
                     once the cause is fixed.",
                );
                ApplyResponse {
                    new_state: state,
                    diagnostics,
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Resource for AutohealInstance {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value, context: &ValidateContext) -> Diagnostics {
        validate::validate(config, context)
    }

    fn modify_plan(&self, request: PlanRequest<'_>, response: &mut PlanResponse) {
        plan::modify_plan(&self.schema, request, response);
    }

    fn upgrade_state(&self, version: i64, raw_json: &[u8]) -> Result<Value, Diagnostics> {
        state_upgrade::upgrade(version, raw_json, &self.schema.value_type())
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        if request.planned_state.is_null() {
            self.destroy(request.prior_state, request.cancel).await
        } else if request.prior_state.is_null() {
            self.create(request.planned_state, request.cancel).await
        } else {
            let spec = Spec::from_value(&request.planned_state);
            match self.context(spec.update_timeout, request.cancel).await {
                Ok(ctx) => {
                    let mut response =
                        update::update(&ctx, request.prior_state, request.planned_state).await;
                    for (summary, detail) in ctx.take_warnings() {
                        response.diagnostics.warning(summary, detail);
                    }
                    response
                }
                Err(diagnostics) => ApplyResponse {
                    new_state: request.prior_state,
                    diagnostics,
                },
            }
        }
    }

    async fn read(&self, state: Value, cancel: CancellationToken) -> ReadResponse {
        match self.context(READ_TIMEOUT, cancel).await {
            Ok(ctx) => read::read(&ctx, state).await,
            Err(diagnostics) => ReadResponse {
                new_state: state,
                diagnostics,
            },
        }
    }

    async fn import(&self, id: &str, cancel: CancellationToken) -> ImportResponse {
        match self.context(READ_TIMEOUT, cancel).await {
            Ok(ctx) => read::import(&ctx, &self.schema, id).await,
            Err(diagnostics) => ImportResponse {
                state: Value::Null,
                diagnostics,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn identity() {
        let r = AutohealInstance::new(ProviderHandle::default());
        assert_eq!(r.type_name(), "autoheal_instance");
        assert!(r.schema().block.get_attribute("name").is_some());
        assert!(r.schema().block.get_block("timeouts").is_some());
    }

    #[test]
    fn unconfigured_provider_is_a_diagnostic_not_a_panic() {
        let r = AutohealInstance::new(ProviderHandle::default());
        let mut planned = Value::null_object(&r.schema().value_type());
        planned.set_attr("name", "web".into());
        let request = |prior: Value, planned: Value| ApplyRequest {
            prior_state: prior,
            planned_state: planned.clone(),
            config: planned,
            cancel: CancellationToken::new(),
        };
        let updated = block_on(r.apply(request(planned.clone(), planned.clone())));
        assert_eq!(updated.new_state, planned);
        assert!(updated.diagnostics.has_errors());
        let destroyed = block_on(r.apply(request(planned.clone(), Value::Null)));
        assert_eq!(destroyed.new_state, planned);
        assert!(destroyed.diagnostics.to_string().contains("not configured"));
        let read = block_on(r.read(planned.clone(), CancellationToken::new()));
        assert_eq!(read.new_state, planned);
        assert!(read.diagnostics.has_errors());
    }

    #[test]
    fn validate_goes_through_the_trait() {
        let r = AutohealInstance::new(ProviderHandle::default());
        let mut config = Value::null_object(&r.schema().value_type());
        config.set_attr("name", "-bad".into());
        let d = Resource::validate(&r, &config, &ValidateContext::default());
        assert!(d.has_errors());
    }
}
