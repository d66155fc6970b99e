//! The `autoheal_instance` resource: the whole EC2 autoheal pattern as one Terraform resource.
//!
//! One resource stands up a stack of AWS objects around a single EC2 instance so that the
//! instance can die and come back with the same data and the same address:
//!
//! - a VPC with an internet gateway and a public subnet, unless `subnet_id` names an existing
//!   subnet;
//! - a security group (SSH only from `ssh_ingress_cidrs`, if any);
//! - an encrypted EBS data volume (or the user's `existing_volume_id`), restored on creation
//!   from the newest final snapshot of a previous stack of the same name;
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
//! AWS names from `name`, and [`duration`] parses the `timeouts` values.
//!
//! This build validates and plans only: creating, reading, updating, deleting and importing
//! need the AWS layer, and return an error diagnostic saying so.

pub mod duration;
pub mod names;
pub mod plan;
pub mod policy;
pub mod schema;
pub mod user_data;
pub mod validate;

use tokio_util::sync::CancellationToken;

use crate::plugin::diagnostics::Diagnostics;
use crate::plugin::resource::{
    ApplyRequest, ApplyResponse, ImportResponse, PlanRequest, PlanResponse, ReadResponse, Resource,
    ValidateContext,
};
use crate::plugin::schema::Schema;
use crate::plugin::value::Value;

pub use duration::parse_go_duration;

/// The Terraform type name of the resource.
pub const TYPE_NAME: &str = "autoheal_instance";

/// The `autoheal_instance` resource.
pub struct AutohealInstance {
    schema: Schema,
}

impl AutohealInstance {
    pub fn new() -> Self {
        AutohealInstance {
            schema: schema::schema(),
        }
    }
}

impl Default for AutohealInstance {
    fn default() -> Self {
        Self::new()
    }
}

/// The error every AWS operation returns in this build.
fn not_implemented(operation: &str) -> Diagnostics {
    Diagnostics::from_error(
        "AWS operations are not implemented yet",
        format!(
            "This build of the autoheal provider can validate and plan {TYPE_NAME}, but it \
             cannot {operation} yet: the AWS operations (create, read, update, delete and \
             import) are not implemented in this build. Nothing was changed in AWS. Use a \
             release of the provider that implements them."
        ),
    )
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

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let operation = if request.planned_state.is_null() {
            "destroy the stack"
        } else if request.prior_state.is_null() {
            "create the stack"
        } else {
            "update the stack"
        };
        // Nothing was done, so the state stays what it was (`Null` on create).
        ApplyResponse {
            new_state: request.prior_state,
            diagnostics: not_implemented(operation),
        }
    }

    async fn read(&self, state: Value, _cancel: CancellationToken) -> ReadResponse {
        ReadResponse {
            new_state: state,
            diagnostics: not_implemented("read the stack from AWS"),
        }
    }

    async fn import(&self, id: &str, _cancel: CancellationToken) -> ImportResponse {
        ImportResponse {
            state: Value::Null,
            diagnostics: not_implemented(&format!("import the stack {id:?}")),
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

    fn assert_not_implemented(d: &Diagnostics, operation: &str) {
        assert!(d.has_errors());
        let diag = d.iter().next().expect("one diagnostic");
        assert!(diag.summary.contains("not implemented"), "{d}");
        assert!(diag.detail.contains(operation), "{d}");
    }

    #[test]
    fn identity() {
        let r = AutohealInstance::new();
        assert_eq!(r.type_name(), "autoheal_instance");
        assert!(r.schema().block.get_attribute("name").is_some());
        assert!(r.schema().block.get_block("timeouts").is_some());
    }

    #[test]
    fn aws_operations_fail_cleanly() {
        let r = AutohealInstance::new();
        let mut planned = Value::null_object(&r.schema().value_type());
        planned.set_attr("name", "web".into());
        let request = |prior: Value, planned: Value| ApplyRequest {
            prior_state: prior,
            planned_state: planned.clone(),
            config: planned,
            cancel: CancellationToken::new(),
        };

        let created = block_on(r.apply(request(Value::Null, planned.clone())));
        assert!(created.new_state.is_null());
        assert_not_implemented(&created.diagnostics, "create");

        let updated = block_on(r.apply(request(planned.clone(), planned.clone())));
        assert_eq!(updated.new_state, planned);
        assert_not_implemented(&updated.diagnostics, "update");

        let destroyed = block_on(r.apply(request(planned.clone(), Value::Null)));
        assert_eq!(destroyed.new_state, planned);
        assert_not_implemented(&destroyed.diagnostics, "destroy");

        let read = block_on(r.read(planned.clone(), CancellationToken::new()));
        assert_eq!(read.new_state, planned);
        assert_not_implemented(&read.diagnostics, "read");

        let imported = block_on(r.import("web", CancellationToken::new()));
        assert!(imported.state.is_null());
        assert_not_implemented(&imported.diagnostics, "import");
    }

    #[test]
    fn validate_goes_through_the_trait() {
        let r = AutohealInstance::new();
        let mut config = Value::null_object(&r.schema().value_type());
        config.set_attr("name", "-bad".into());
        let d = Resource::validate(&r, &config, &ValidateContext::default());
        assert!(d.has_errors());
    }
}
