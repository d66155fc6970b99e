//! The contract between the plugin layer and a provider's resources, after
//! terraform-plugin-framework: a resource is a schema plus validate, plan, apply (create,
//! update, delete), read and import. Nothing here knows about protobuf or about AWS.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::diagnostics::{AttributePath, Diagnostics};
use super::schema::Schema;
use super::value::Value;

/// What a resource may know at validation time. Terraform calls `ValidateResourceConfig`
/// before `ConfigureProvider` in `terraform validate`, so provider facts are optional.
#[derive(Clone, Debug, Default)]
pub struct ValidateContext {
    /// The AWS region, when the provider has been configured with one (or the environment
    /// names one). `None` means "not known yet", and region-dependent checks are skipped.
    pub region: Option<String>,
    /// The provider's `default_tags`, merged under every resource's own tags (empty when the
    /// provider has none or is not configured yet).
    pub default_tags: std::collections::BTreeMap<String, String>,
    /// True when the provider's `default_tags` depend on values known only after apply.
    pub default_tags_unknown: bool,
}

/// A plan request after the generic planning (defaults, computed unknowns, replace rules)
/// has run; the resource refines `planned` and `requires_replace`.
pub struct PlanRequest<'a> {
    pub prior_state: &'a Value,
    pub config: &'a Value,
    pub proposed_new_state: &'a Value,
    pub context: &'a ValidateContext,
}

pub struct PlanResponse {
    pub planned_state: Value,
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Diagnostics,
}

pub struct ApplyRequest {
    pub prior_state: Value,
    pub planned_state: Value,
    pub config: Value,
    /// Cancelled when Terraform sends StopProvider (Ctrl-C): long waits must end promptly.
    pub cancel: CancellationToken,
}

/// New state after apply. On failure the state still holds every object created so far, so
/// the next apply or destroy can clean up; `Value::Null` means "nothing exists".
pub struct ApplyResponse {
    pub new_state: Value,
    pub diagnostics: Diagnostics,
}

pub struct ReadResponse {
    /// `Value::Null` tells Terraform the resource is gone and must be recreated.
    pub new_state: Value,
    pub diagnostics: Diagnostics,
}

pub struct ImportResponse {
    pub state: Value,
    pub diagnostics: Diagnostics,
}

#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// The Terraform type name, e.g. `autoheal_instance`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> &Schema;
    /// Checks a configuration (unknown values possible) and reports attribute diagnostics.
    fn validate(&self, config: &Value, context: &ValidateContext) -> Diagnostics;
    /// Resource-specific plan rules, run after the generic planner.
    fn modify_plan(&self, request: PlanRequest<'_>, response: &mut PlanResponse);
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse;
    async fn read(&self, state: Value, cancel: CancellationToken) -> ReadResponse;
    async fn import(&self, id: &str, cancel: CancellationToken) -> ImportResponse;
    /// A stored state of schema `version`, older than the schema's own (the server decodes
    /// states of the current version itself), as JSON exactly as Terraform keeps it, read as
    /// a value of the current schema. A resource whose schema never changed version has no
    /// such state to read, hence the default.
    fn upgrade_state(&self, version: i64, _raw_json: &[u8]) -> Result<Value, Diagnostics> {
        Err(Diagnostics::from_error(
            "Unknown state version",
            format!(
                "The stored state of this {} has schema version {version}, and this provider \
                 has no upgrade from it to version {}.",
                self.type_name(),
                self.schema().version
            ),
        ))
    }
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's type name (the prefix of its resource types), e.g. `autoheal`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> &Schema;
    fn validate_config(&self, config: &Value) -> Diagnostics;
    /// Stores the configuration. Makes no remote call: the first operation that needs AWS does.
    async fn configure(&self, config: &Value, terraform_version: &str) -> Diagnostics;
    /// Facts resources may use during validation and planning.
    fn validate_context(&self) -> ValidateContext;
    fn resources(&self) -> Vec<std::sync::Arc<dyn Resource>>;
}
