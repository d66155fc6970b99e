//! The tfplugin6 `Provider` gRPC service: decodes requests into [`Value`]s with the schema's
//! type, dispatches to the provider and its resources, and encodes the answers. Errors of any
//! kind come back as diagnostics; only a broken request (bytes we cannot decode) is also
//! a diagnostic, never a gRPC error or a panic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::diagnostics::{AttributePath, Diagnostics, PathStep, Severity};
use super::plan::plan_block;
use super::proto::tfplugin6 as pb;
use super::resource::{ApplyRequest, PlanRequest, PlanResponse, Provider, Resource};
use super::schema::{Attribute, Block, NestedBlock, Nesting, Schema};
use super::value::{Type, Value};

pub struct ProviderServer {
    provider: Arc<dyn Provider>,
    /// The provider configuration's value type, derived from its schema once.
    provider_type: Type,
    resources: BTreeMap<String, Served>,
    /// Cancelled by StopProvider; every long-running call gets a child of it.
    stop: Mutex<CancellationToken>,
}

/// A resource type and its value type, derived from its schema once: Terraform validates
/// and plans each resource of a configuration with calls of their own, and deriving the
/// type of a schema of about 80 attributes on each call cost more than decoding the request
/// (12 µs of 37 µs for a `ValidateResourceConfig`, measured in-process).
struct Served {
    resource: Arc<dyn Resource>,
    ty: Type,
}

impl ProviderServer {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        let resources = provider
            .resources()
            .into_iter()
            .map(|resource| {
                let ty = resource.schema().value_type();
                (resource.type_name().to_string(), Served { resource, ty })
            })
            .collect();
        ProviderServer {
            provider_type: provider.schema().value_type(),
            provider,
            resources,
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    fn cancel_token(&self) -> CancellationToken {
        self.stop.lock().expect("stop token lock").child_token()
    }

    /// The resource type `type_name` and its value type.
    fn resource(&self, type_name: &str) -> Result<(&Arc<dyn Resource>, &Type), Diagnostics> {
        self.resources
            .get(type_name)
            .map(|s| (&s.resource, &s.ty))
            .ok_or_else(|| {
                Diagnostics::from_error(
                    "Unknown resource type",
                    format!(
                        "The provider \"{}\" has no resource type \"{type_name}\".",
                        self.provider.type_name()
                    ),
                )
            })
    }
}

// ----- conversions between our types and protobuf -----

fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else {
        return Ok(Value::Null);
    };
    let result = if !dv.msgpack.is_empty() {
        Value::from_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        Value::from_json(&dv.json, ty)
    } else {
        Ok(Value::Null)
    };
    result.map_err(|e| {
        Diagnostics::from_error(
            format!("Invalid {what} from Terraform"),
            format!("The provider could not decode the {what}: {e}. This is a bug in the provider or Terraform."),
        )
    })
}

fn encode(v: &Value, ty: &Type, what: &str) -> Result<pb::DynamicValue, Diagnostics> {
    v.to_msgpack(ty)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostics::from_error(
                format!("Invalid {what}"),
                format!("The provider produced a {what} that does not match its schema: {e}. This is a bug in the provider."),
            )
        })
}

pub fn path_to_proto(p: &AttributePath) -> pb::AttributePath {
    use pb::attribute_path::{step::Selector, Step};
    pb::AttributePath {
        steps: p
            .0
            .iter()
            .map(|s| Step {
                selector: Some(match s {
                    PathStep::Attribute(a) => Selector::AttributeName(a.clone()),
                    PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                    PathStep::Index(i) => Selector::ElementKeyInt(*i),
                }),
            })
            .collect(),
    }
}

pub fn diagnostics_to_proto(d: &Diagnostics) -> Vec<pb::Diagnostic> {
    d.iter()
        .map(|d| pb::Diagnostic {
            severity: match d.severity {
                Severity::Error => pb::diagnostic::Severity::Error as i32,
                Severity::Warning => pb::diagnostic::Severity::Warning as i32,
            },
            summary: d.summary.clone(),
            detail: d.detail.clone(),
            attribute: d.attribute.as_ref().map(path_to_proto),
        })
        .collect()
}

fn attribute_to_proto(a: &Attribute) -> pb::schema::Attribute {
    pb::schema::Attribute {
        name: a.name.clone(),
        r#type: serde_json::to_vec(&a.ty.to_json()).expect("type JSON"),
        description: a.description.clone(),
        required: a.is_required(),
        optional: a.is_optional(),
        computed: a.is_computed(),
        sensitive: a.sensitive,
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: a.deprecated,
        nested_type: None,
        write_only: false,
    }
}

fn nested_block_to_proto(b: &NestedBlock) -> pb::schema::NestedBlock {
    use pb::schema::nested_block::NestingMode;
    pb::schema::NestedBlock {
        type_name: b.type_name.clone(),
        block: Some(block_to_proto(&b.block)),
        nesting: match b.nesting {
            Nesting::Single => NestingMode::Single,
            Nesting::List => NestingMode::List,
            Nesting::Set => NestingMode::Set,
        } as i32,
        min_items: b.min_items,
        max_items: b.max_items,
    }
}

fn block_to_proto(b: &Block) -> pb::schema::Block {
    pb::schema::Block {
        version: 0,
        attributes: b.attributes.iter().map(attribute_to_proto).collect(),
        block_types: b.blocks.iter().map(nested_block_to_proto).collect(),
        description: b.description.clone(),
        description_kind: pb::StringKind::Markdown as i32,
        deprecated: b.deprecated,
    }
}

pub fn schema_to_proto(s: &Schema) -> pb::Schema {
    pb::Schema {
        version: s.version,
        block: Some(block_to_proto(&s.block)),
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        // Destroy plans come to us too, so the plan can warn about what destroy will keep.
        plan_destroy: true,
        // Terraform (1.6 and later; older ones ignore it) may then answer later processes of
        // the same command from the schema it already has instead of calling
        // GetProviderSchema again: nothing here depends on that call having been made (every
        // handler reads the schema from code), and a plan starts the provider three times
        // (BENCHMARKS.md, "Where `terraform plan`'s time goes").
        get_provider_schema_optional: true,
        move_resource_state: false,
    }
}

/// One debug line per RPC, `rpc served` with the method and the microseconds from the
/// handler's start (the request decoded by tonic) to its answer built, so that a
/// `TF_LOG=debug` log holds Terraform's view of each call and the provider's own time side
/// by side (tools/bench-plugin reads both). At the default level (warn) nothing is timed
/// and nothing written: `tracing::enabled!` is a cached per-callsite check.
struct RpcTimer {
    method: &'static str,
    start: Option<Instant>,
}

impl RpcTimer {
    fn start(method: &'static str) -> Self {
        RpcTimer {
            method,
            start: tracing::enabled!(tracing::Level::DEBUG).then(Instant::now),
        }
    }
}

impl Drop for RpcTimer {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            let elapsed_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
            tracing::debug!(rpc = self.method, elapsed_us, "rpc served");
        }
    }
}

/// Unwraps a decode result or returns the response built from its diagnostics.
macro_rules! try_decode {
    ($expr:expr, $resp:expr) => {
        match $expr {
            Ok(v) => v,
            Err(d) => return Ok(Response::new($resp(d))),
        }
    };
}

#[tonic::async_trait]
impl pb::provider_server::Provider for ProviderServer {
    async fn get_metadata(
        &self,
        _request: Request<pb::get_metadata::Request>,
    ) -> Result<Response<pb::get_metadata::Response>, Status> {
        let _rpc = RpcTimer::start("GetMetadata");
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            diagnostics: vec![],
            data_sources: vec![],
            resources: self
                .resources
                .keys()
                .map(|t| pb::get_metadata::ResourceMetadata {
                    type_name: t.clone(),
                })
                .collect(),
            functions: vec![],
            ephemeral_resources: vec![],
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<pb::get_provider_schema::Request>,
    ) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        let _rpc = RpcTimer::start("GetProviderSchema");
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(schema_to_proto(self.provider.schema())),
            resource_schemas: self
                .resources
                .iter()
                .map(|(k, s)| (k.clone(), schema_to_proto(s.resource.schema())))
                .collect(),
            data_source_schemas: Default::default(),
            diagnostics: vec![],
            provider_meta: None,
            server_capabilities: Some(capabilities()),
            functions: Default::default(),
            ephemeral_resource_schemas: Default::default(),
        }))
    }

    async fn validate_provider_config(
        &self,
        request: Request<pb::validate_provider_config::Request>,
    ) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let _rpc = RpcTimer::start("ValidateProviderConfig");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::validate_provider_config::Response {
            diagnostics: diagnostics_to_proto(&d),
        };
        let ty = &self.provider_type;
        let config = try_decode!(
            decode(req.config.as_ref(), ty, "provider configuration"),
            respond
        );
        Ok(Response::new(respond(
            self.provider.validate_config(&config),
        )))
    }

    async fn validate_resource_config(
        &self,
        request: Request<pb::validate_resource_config::Request>,
    ) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let _rpc = RpcTimer::start("ValidateResourceConfig");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::validate_resource_config::Response {
            diagnostics: diagnostics_to_proto(&d),
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let config = try_decode!(
            decode(req.config.as_ref(), ty, "resource configuration"),
            respond
        );
        let context = self.provider.validate_context();
        Ok(Response::new(respond(resource.validate(&config, &context))))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<pb::validate_data_resource_config::Request>,
    ) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let _rpc = RpcTimer::start("ValidateDataResourceConfig");
        let req = request.into_inner();
        let d = Diagnostics::from_error(
            "Unknown data source",
            format!("The provider has no data source \"{}\".", req.type_name),
        );
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diagnostics_to_proto(&d),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<pb::upgrade_resource_state::Request>,
    ) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let _rpc = RpcTimer::start("UpgradeResourceState");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::upgrade_resource_state::Response {
            upgraded_state: None,
            diagnostics: diagnostics_to_proto(&d),
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let schema = resource.schema();
        if req.version > schema.version {
            return Ok(Response::new(respond(Diagnostics::from_error(
                "State written by a newer provider",
                format!(
                    "The state of this {} has schema version {}, but this provider knows \
                     version {} at most. Upgrade the provider.",
                    req.type_name, req.version, schema.version
                ),
            ))));
        }
        let raw = req.raw_state.unwrap_or_default();
        let state = if raw.json.is_empty() {
            Value::Null
        } else if req.version == schema.version {
            // The current layout: the stored JSON is already in shape.
            try_decode!(
                Value::from_json(&raw.json, ty).map_err(|e| Diagnostics::from_error(
                    "Unreadable stored state",
                    format!("The stored state does not match the schema: {e}."),
                )),
                respond
            )
        } else {
            // Written by an earlier provider: the resource knows what changed since.
            try_decode!(resource.upgrade_state(req.version, &raw.json), respond)
        };
        let upgraded = try_decode!(encode(&state, ty, "upgraded state"), respond);
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state: Some(upgraded),
            diagnostics: vec![],
        }))
    }

    async fn configure_provider(
        &self,
        request: Request<pb::configure_provider::Request>,
    ) -> Result<Response<pb::configure_provider::Response>, Status> {
        let _rpc = RpcTimer::start("ConfigureProvider");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::configure_provider::Response {
            diagnostics: diagnostics_to_proto(&d),
        };
        let ty = &self.provider_type;
        let config = try_decode!(
            decode(req.config.as_ref(), ty, "provider configuration"),
            respond
        );
        let d = self
            .provider
            .configure(&config, &req.terraform_version)
            .await;
        Ok(Response::new(respond(d)))
    }

    async fn read_resource(
        &self,
        request: Request<pb::read_resource::Request>,
    ) -> Result<Response<pb::read_resource::Response>, Status> {
        let _rpc = RpcTimer::start("ReadResource");
        let req = request.into_inner();
        let private = req.private.clone();
        let respond = |d: Diagnostics| pb::read_resource::Response {
            new_state: None,
            diagnostics: diagnostics_to_proto(&d),
            private: Vec::new(),
            deferred: None,
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let state = try_decode!(
            decode(req.current_state.as_ref(), ty, "current state"),
            respond
        );
        let out = resource.read(state, self.cancel_token()).await;
        let new_state = try_decode!(encode(&out.new_state, ty, "refreshed state"), respond);
        Ok(Response::new(pb::read_resource::Response {
            new_state: Some(new_state),
            diagnostics: diagnostics_to_proto(&out.diagnostics),
            private,
            deferred: None,
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<pb::plan_resource_change::Request>,
    ) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let _rpc = RpcTimer::start("PlanResourceChange");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::plan_resource_change::Response {
            planned_state: None,
            requires_replace: vec![],
            planned_private: Vec::new(),
            diagnostics: diagnostics_to_proto(&d),
            legacy_type_system: false,
            deferred: None,
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let schema = resource.schema();
        let prior = try_decode!(decode(req.prior_state.as_ref(), ty, "prior state"), respond);
        let proposed = try_decode!(
            decode(req.proposed_new_state.as_ref(), ty, "proposed new state"),
            respond
        );
        let config = try_decode!(decode(req.config.as_ref(), ty, "configuration"), respond);

        let generic = plan_block(&schema.block, &prior, &config, &proposed);
        let mut response = PlanResponse {
            planned_state: generic.planned,
            requires_replace: generic.requires_replace,
            diagnostics: Diagnostics::new(),
        };
        let context = self.provider.validate_context();
        resource.modify_plan(
            PlanRequest {
                prior_state: &prior,
                config: &config,
                proposed_new_state: &proposed,
                context: &context,
            },
            &mut response,
        );
        let planned = try_decode!(
            encode(&response.planned_state, ty, "planned state"),
            respond
        );
        Ok(Response::new(pb::plan_resource_change::Response {
            planned_state: Some(planned),
            requires_replace: response
                .requires_replace
                .iter()
                .map(path_to_proto)
                .collect(),
            planned_private: req.prior_private,
            diagnostics: diagnostics_to_proto(&response.diagnostics),
            legacy_type_system: false,
            deferred: None,
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<pb::apply_resource_change::Request>,
    ) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let _rpc = RpcTimer::start("ApplyResourceChange");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::apply_resource_change::Response {
            new_state: None,
            private: Vec::new(),
            diagnostics: diagnostics_to_proto(&d),
            legacy_type_system: false,
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let prior = try_decode!(decode(req.prior_state.as_ref(), ty, "prior state"), respond);
        let planned = try_decode!(
            decode(req.planned_state.as_ref(), ty, "planned state"),
            respond
        );
        let config = try_decode!(decode(req.config.as_ref(), ty, "configuration"), respond);
        let out = resource
            .apply(ApplyRequest {
                prior_state: prior,
                planned_state: planned,
                config,
                cancel: self.cancel_token(),
            })
            .await;
        let new_state = try_decode!(encode(&out.new_state, ty, "new state"), respond);
        Ok(Response::new(pb::apply_resource_change::Response {
            new_state: Some(new_state),
            private: req.planned_private,
            diagnostics: diagnostics_to_proto(&out.diagnostics),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<pb::import_resource_state::Request>,
    ) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let _rpc = RpcTimer::start("ImportResourceState");
        let req = request.into_inner();
        let respond = |d: Diagnostics| pb::import_resource_state::Response {
            imported_resources: vec![],
            diagnostics: diagnostics_to_proto(&d),
            deferred: None,
        };
        let (resource, ty) = try_decode!(self.resource(&req.type_name), respond);
        let out = resource.import(&req.id, self.cancel_token()).await;
        if out.diagnostics.has_errors() || out.state.is_null() {
            return Ok(Response::new(respond(out.diagnostics)));
        }
        let state = try_decode!(encode(&out.state, ty, "imported state"), respond);
        Ok(Response::new(pb::import_resource_state::Response {
            imported_resources: vec![pb::import_resource_state::ImportedResource {
                type_name: req.type_name,
                state: Some(state),
                private: Vec::new(),
            }],
            diagnostics: diagnostics_to_proto(&out.diagnostics),
            deferred: None,
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<pb::read_data_source::Request>,
    ) -> Result<Response<pb::read_data_source::Response>, Status> {
        let _rpc = RpcTimer::start("ReadDataSource");
        let req = request.into_inner();
        let d = Diagnostics::from_error(
            "Unknown data source",
            format!("The provider has no data source \"{}\".", req.type_name),
        );
        Ok(Response::new(pb::read_data_source::Response {
            diagnostics: diagnostics_to_proto(&d),
            ..Default::default()
        }))
    }

    async fn get_functions(
        &self,
        _request: Request<pb::get_functions::Request>,
    ) -> Result<Response<pb::get_functions::Response>, Status> {
        let _rpc = RpcTimer::start("GetFunctions");
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn stop_provider(
        &self,
        _request: Request<pb::stop_provider::Request>,
    ) -> Result<Response<pb::stop_provider::Response>, Status> {
        let _rpc = RpcTimer::start("StopProvider");
        // Cancel everything in flight; later calls get a fresh token (Terraform may still
        // ask us to persist what the cancelled calls managed to create).
        let mut guard = self.stop.lock().expect("stop token lock");
        tracing::warn!("StopProvider received: cancelling work in flight");
        guard.cancel();
        *guard = CancellationToken::new();
        Ok(Response::new(pb::stop_provider::Response {
            error: String::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::resource::{ApplyResponse, ImportResponse, ReadResponse, ValidateContext};
    use crate::plugin::schema::Attribute;
    use pb::provider_server::Provider as _;
    use std::time::Duration;

    struct SlowResource(Schema);

    #[async_trait::async_trait]
    impl Resource for SlowResource {
        fn type_name(&self) -> &'static str {
            "test_slow"
        }
        fn schema(&self) -> &Schema {
            &self.0
        }
        fn validate(&self, config: &Value, _: &ValidateContext) -> Diagnostics {
            let mut d = Diagnostics::new();
            if config.attr("name").as_str() == Some("bad") {
                d.attribute_error(AttributePath::root("name"), "Bad name", "no");
            }
            d
        }
        fn modify_plan(&self, _: PlanRequest<'_>, _: &mut PlanResponse) {}
        async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
            // Work that only ends when cancelled: StopProvider must end it.
            tokio::select! {
                _ = request.cancel.cancelled() => ApplyResponse {
                    new_state: request.prior_state,
                    diagnostics: Diagnostics::from_error("Cancelled", "stopped by Terraform"),
                },
                _ = tokio::time::sleep(Duration::from_secs(3600)) => unreachable!(),
            }
        }
        async fn read(&self, state: Value, _: CancellationToken) -> ReadResponse {
            ReadResponse {
                new_state: state,
                diagnostics: Diagnostics::new(),
            }
        }
        async fn import(&self, _: &str, _: CancellationToken) -> ImportResponse {
            ImportResponse {
                state: Value::Null,
                diagnostics: Diagnostics::from_error("no", "no"),
            }
        }
    }

    struct TestProvider(Schema, Arc<SlowResource>);

    #[async_trait::async_trait]
    impl Provider for TestProvider {
        fn type_name(&self) -> &'static str {
            "test"
        }
        fn schema(&self) -> &Schema {
            &self.0
        }
        fn validate_config(&self, _: &Value) -> Diagnostics {
            Diagnostics::new()
        }
        async fn configure(&self, _: &Value, _: &str) -> Diagnostics {
            Diagnostics::new()
        }
        fn validate_context(&self) -> ValidateContext {
            ValidateContext::default()
        }
        fn resources(&self) -> Vec<Arc<dyn Resource>> {
            vec![self.1.clone()]
        }
    }

    fn server() -> Arc<ProviderServer> {
        let rs = Schema {
            version: 0,
            block: Block::new("slow")
                .attribute(Attribute::required("name", Type::String, "n").requires_replace())
                .attribute(Attribute::computed("id", Type::String, "i").use_state_for_unknown()),
        };
        let p = TestProvider(Schema::default(), Arc::new(SlowResource(rs)));
        Arc::new(ProviderServer::new(Arc::new(p)))
    }

    fn dv(v: &Value, ty: &Type) -> Option<pb::DynamicValue> {
        Some(pb::DynamicValue {
            msgpack: v.to_msgpack(ty).unwrap(),
            json: vec![],
        })
    }

    #[tokio::test]
    async fn stop_provider_cancels_apply_in_flight() {
        let s = server();
        let ty = s.resources["test_slow"].ty.clone();
        let mut planned = Value::null_object(&ty);
        planned.set_attr("name", "a".into());
        let s2 = s.clone();
        let apply = tokio::spawn(async move {
            s2.apply_resource_change(Request::new(pb::apply_resource_change::Request {
                type_name: "test_slow".into(),
                prior_state: dv(&Value::Null, &ty),
                planned_state: dv(&planned, &ty),
                config: dv(&planned, &ty),
                ..Default::default()
            }))
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!apply.is_finished());
        s.stop_provider(Request::new(pb::stop_provider::Request {}))
            .await
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(5), apply)
            .await
            .expect("apply ended after StopProvider")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(resp.diagnostics[0].summary, "Cancelled");
    }

    #[tokio::test]
    async fn validation_diagnostics_carry_the_attribute_path() {
        let s = server();
        let ty = s.resources["test_slow"].ty.clone();
        let mut config = Value::null_object(&ty);
        config.set_attr("name", "bad".into());
        let resp = s
            .validate_resource_config(Request::new(pb::validate_resource_config::Request {
                type_name: "test_slow".into(),
                config: dv(&config, &ty),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        let path = resp.diagnostics[0].attribute.as_ref().unwrap();
        assert_eq!(path, &path_to_proto(&AttributePath::root("name")));
    }

    #[tokio::test]
    async fn undecodable_input_is_a_diagnostic_not_a_grpc_error() {
        let s = server();
        let resp = s
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "test_slow".into(),
                // A map announcing one entry and then ending: truncated input.
                config: Some(pb::DynamicValue {
                    msgpack: vec![0x81],
                    json: vec![],
                }),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.diagnostics[0].severity,
            pb::diagnostic::Severity::Error as i32
        );
        let resp = s
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "nope".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(resp.diagnostics[0].detail.contains("no resource type"));
    }

    #[tokio::test]
    async fn plan_reports_replacement_and_keeps_ids() {
        let s = server();
        let ty = s.resources["test_slow"].ty.clone();
        let mut prior = Value::null_object(&ty);
        prior.set_attr("name", "a".into());
        prior.set_attr("id", "a".into());
        let mut proposed = prior.clone();
        proposed.set_attr("name", "b".into());
        let mut config = Value::null_object(&ty);
        config.set_attr("name", "b".into());
        let resp = s
            .plan_resource_change(Request::new(pb::plan_resource_change::Request {
                type_name: "test_slow".into(),
                prior_state: dv(&prior, &ty),
                proposed_new_state: dv(&proposed, &ty),
                config: dv(&config, &ty),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.requires_replace,
            vec![path_to_proto(&AttributePath::root("name"))]
        );
        let planned = Value::from_msgpack(&resp.planned_state.unwrap().msgpack, &ty).unwrap();
        assert_eq!(planned.attr("id").as_str(), Some("a"));
    }

    /// The lines `terraform plan` logs at `level` while the server answers one RPC.
    async fn rpc_log_lines(level: tracing::Level) -> Vec<serde_json::Value> {
        let buf = crate::plugin::logging::tests::Buf::default();
        let b2 = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || b2.clone())
            .with_max_level(level)
            .event_format(crate::plugin::logging::HclogJson)
            .finish();
        let _guard = tracing::subscriber::set_default(sub);
        let s = server();
        s.get_metadata(Request::new(pb::get_metadata::Request {}))
            .await
            .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn each_rpc_logs_its_time_at_debug_only() {
        let lines = rpc_log_lines(tracing::Level::DEBUG).await;
        let served: Vec<_> = lines
            .iter()
            .filter(|j| j["@message"] == "rpc served")
            .collect();
        assert_eq!(served.len(), 1, "{lines:?}");
        assert_eq!(served[0]["@level"], "debug");
        assert_eq!(served[0]["rpc"], "GetMetadata");
        assert!(served[0]["elapsed_us"].is_u64(), "{lines:?}");
        assert!(rpc_log_lines(tracing::Level::INFO).await.is_empty());
    }
}
