//! Property tests of `autoheal_instance`'s validation and planning over arbitrary
//! configurations, hostile ones included: huge and unicode strings, control characters,
//! negative, huge and fractional numbers, NaN, nulls and unknowns anywhere, too many tags,
//! and bytes that are not a configuration at all.
//!
//! The properties, through the entry points Terraform calls (the tfplugin6 service's
//! ValidateResourceConfig and PlanResourceChange, called in-process) and through the
//! resource's `validate` directly:
//! - nothing panics, and no call ends in a gRPC error: every problem is a diagnostic;
//! - every diagnostic about a configuration carries an attribute path, rooted at an
//!   attribute or block of the schema;
//! - a plan without errors encodes to a state of the schema's type, and keeps every value
//!   the configuration sets (Terraform rejects a plan that changes a configured value).
//!
//! Case counts are bounded so the whole file runs in a few seconds in release.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use autoheal_provider::autoheal_instance::schema::schema;
use autoheal_provider::autoheal_instance::AutohealInstance;
use autoheal_provider::plugin::diagnostics::{Diagnostics, PathStep};
use autoheal_provider::plugin::proto::tfplugin6 as pb;
use autoheal_provider::plugin::proto::tfplugin6::provider_server::Provider as _;
use autoheal_provider::plugin::resource::{Resource, ValidateContext};
use autoheal_provider::plugin::schema::{Mode, Schema};
use autoheal_provider::plugin::server::ProviderServer;
use autoheal_provider::plugin::value::{Number, Type, Value};
use autoheal_provider::provider::{AutohealProvider, ProviderHandle};
use proptest::prelude::*;
use tonic::Request;

const TYPE_NAME: &str = "autoheal_instance";

// ---------------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------------

/// Values that pass validation for the attribute `name`, so that a good share of the
/// generated configurations gets past validation into the plan rules.
fn valid_strings(name: &str) -> &'static [&'static str] {
    match name {
        "name" => &["web", "a", "db-1", "x123456789"],
        "availability_zone" => &["ap-southeast-2a", "us-east-1-bos-1a", "us-gov-west-1b"],
        "subnet_id" => &["subnet-0123456789abcdef0", "subnet-0123abcd"],
        "vpc_cidr" => &["10.0.0.0/16", "172.16.0.0/20", "10.1.0.0/28"],
        "subnet_cidr" => &["10.0.1.0/24", "172.16.0.0/24", "10.1.0.0/28"],
        "existing_allocation_id" => &["eipalloc-0123456789abcdef0"],
        "existing_volume_id" => &["vol-0123456789abcdef0", "vol-0123abcd"],
        "volume_snapshot_id" => &["snap-0123456789abcdef0"],
        "ami" => &["ami-0123456789abcdef0"],
        "instance_type" => &["t3.micro", "m7g.large", "u-6tb1.metal"],
        "key_name" => &["ops", "my key"],
        "user_data" => &["#!/bin/sh\necho hi\n", ""],
        "volume_type" => &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"],
        "volume_kms_key_id" => &[
            "alias/data",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ],
        "device_name" => &["/dev/xvdf", "/dev/sdf", "/dev/xvdz"],
        "mount_point" => &["/data", "/srv/app-data"],
        "filesystem" => &["ext4", "xfs"],
        "volume_on_destroy" => &["snapshot", "retain", "delete"],
        "lambda_architecture" => &["x86_64", "arm64"],
        "handler_zip" => &["missing/bootstrap.zip"],
        "ssh_ingress_cidrs" => &["203.0.113.0/24", "0.0.0.0/0", "198.51.100.7/32"],
        "create" | "update" | "delete" => &["30m", "1h30m", "90s", "0.5h"],
        _ => &["x"],
    }
}

/// Strings no attribute should choke on.
const HOSTILE: &[&str] = &[
    "",
    " ",
    "-",
    "--",
    "\0",
    "a\nb",
    "\u{202e}evil",
    "💥",
    "é",
    "ǅ",
    "İ",
    "ß",
    "\u{FEFF}web",
    "${aws:username}",
    "*",
    "?",
    "arn:",
    "arn:aws:kms:",
    "alias/",
    "mrk-",
    "vol-",
    "vol-ZZZZZZZZ",
    "10.0.0.0/33",
    "10.0.0.1/16",
    "::/0",
    "256.0.0.0/8",
    "0",
    "-1h",
    "1e400s",
    "9999999999999999999h",
    ".5.5s",
    "1µs",
    "/",
    "//",
    "/data/",
    "/data/../etc",
    "/var",
    "/dev/sda1",
    "/dev/xvda",
    // Not a regular file (a device that reads as empty). /dev/zero is not here on purpose:
    // should a plan ever read `handler_zip` unchecked again, it would eat the machine's
    // memory; `a_handler_zip_that_is_not_a_file_is_never_read` covers that case safely.
    "/dev/null",
    ".zip",
    "x.ZIP",
    "aws:autoscaling:groupName",
    "AWS:x",
    "autoheal:stack",
    "ap-southeast-2",
    "apse2-az1",
    "us-east-1-bos",
    "a-1-2",
];

fn string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(HOSTILE).prop_map(str::to_string),
        3 => any::<String>(),
        2 => "[a-z0-9./:-]{0,24}",
        // Huge: past every length limit (user_data's is 12 KiB).
        1 => (0usize..20_000, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-20i64..20_000).prop_map(Value::from),
        2 => any::<i64>().prop_map(Value::from),
        2 => any::<f64>().prop_map(|f| Value::Number(Number::Float(f))),
        1 => prop::sample::select(vec![
            i64::MIN, i64::MAX, i64::MAX / 2, -1, 0, 1, 4, 125, 128, 1_000, 3_000, 16_000,
            16_384, 65_536, 256_000,
        ])
        .prop_map(Value::from),
    ]
    .boxed()
}

/// A value of type `ty` for the attribute `name`: null, unknown, valid or hostile.
fn value(name: &str, ty: &Type) -> BoxedStrategy<Value> {
    let valid: Vec<String> = valid_strings(name).iter().map(|s| s.to_string()).collect();
    let known: BoxedStrategy<Value> = match ty {
        Type::String => prop_oneof![
            prop::sample::select(valid).prop_map(Value::String),
            string().prop_map(Value::String),
        ]
        .boxed(),
        Type::Number => number(),
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::List(et) | Type::Set(et) => {
            let set = matches!(ty, Type::Set(_));
            prop::collection::vec(value(name, et), 0..6)
                .prop_map(move |items| {
                    if set {
                        Value::Set(items)
                    } else {
                        Value::List(items)
                    }
                })
                .boxed()
        }
        Type::Map(et) => {
            let key = prop_oneof![
                3 => "[A-Za-z][A-Za-z0-9:_./-]{0,12}",
                1 => string(),
            ];
            // Up to past the tag limit (50 per object, less the provider's own).
            prop::collection::btree_map(key, value(name, et), 0..60)
                .prop_map(Value::Map)
                .boxed()
        }
        Type::Object(attrs) => object(attrs),
        Type::Tuple(_) | Type::Dynamic => Just(Value::Null).boxed(),
    };
    prop_oneof![
        3 => Just(Value::Null),
        1 => Just(Value::Unknown),
        6 => known,
    ]
    .boxed()
}

fn object(attrs: &BTreeMap<String, Type>) -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<(String, Value)>> = attrs
        .iter()
        .map(|(name, ty)| {
            let name = name.clone();
            value(&name, ty)
                .prop_map(move |v| (name.clone(), v))
                .boxed()
        })
        .collect();
    fields
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
        .boxed()
}

/// Whole configurations. Computed-only attributes are mostly null, as Terraform sends them,
/// but not always: a hostile client may set them.
fn config() -> BoxedStrategy<Value> {
    let s = schema();
    let computed: Vec<String> = s
        .block
        .attributes
        .iter()
        .filter(|a| a.mode == Mode::Computed)
        .map(|a| a.name.clone())
        .collect();
    let Type::Object(attrs) = s.value_type() else {
        unreachable!("a resource's type is an object")
    };
    (object(&attrs), prop::bool::weighted(0.9))
        .prop_map(move |(mut v, realistic)| {
            if realistic {
                for name in &computed {
                    v.set_attr(name, Value::Null);
                }
            }
            v
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

fn server() -> &'static ProviderServer {
    static SERVER: OnceLock<ProviderServer> = OnceLock::new();
    SERVER.get_or_init(|| ProviderServer::new(Arc::new(AutohealProvider::new())))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
        })
        .block_on(f)
}

fn schema_roots(s: &Schema) -> Vec<String> {
    s.block
        .attributes
        .iter()
        .map(|a| a.name.clone())
        .chain(s.block.blocks.iter().map(|b| b.type_name.clone()))
        .collect()
}

/// Every diagnostic names an attribute of the schema (checked on our own type).
fn check_paths(d: &Diagnostics, roots: &[String]) -> Result<(), TestCaseError> {
    for diag in d.iter() {
        let path = diag
            .attribute
            .as_ref()
            .ok_or_else(|| TestCaseError::fail(format!("diagnostic without a path: {diag:?}")))?;
        match path.0.first() {
            Some(PathStep::Attribute(a)) if roots.contains(a) => {}
            _ => return Err(TestCaseError::fail(format!("bad root in {diag:?}"))),
        }
    }
    Ok(())
}

/// The same on the wire: every diagnostic's attribute path starts at a schema attribute.
fn check_proto_paths(d: &[pb::Diagnostic], roots: &[String]) -> Result<(), TestCaseError> {
    use pb::attribute_path::step::Selector;
    for diag in d {
        let first = diag
            .attribute
            .as_ref()
            .and_then(|p| p.steps.first())
            .and_then(|s| s.selector.as_ref());
        match first {
            Some(Selector::AttributeName(a)) if roots.contains(a) => {}
            _ => return Err(TestCaseError::fail(format!("no schema path: {diag:?}"))),
        }
    }
    Ok(())
}

fn has_error(d: &[pb::Diagnostic]) -> bool {
    d.iter()
        .any(|d| d.severity == pb::diagnostic::Severity::Error as i32)
}

fn dv(v: &Value, ty: &Type) -> pb::DynamicValue {
    pb::DynamicValue {
        msgpack: v.to_msgpack(ty).expect("generated values fit the schema"),
        json: Vec::new(),
    }
}

/// Terraform's proposed new state: the configuration, with the prior value of every
/// computed attribute the configuration leaves null.
fn proposed(s: &Schema, prior: &Value, config: &Value) -> Value {
    let mut p = config.clone();
    for a in &s.block.attributes {
        if a.mode != Mode::Required && a.mode != Mode::Optional && config.attr(&a.name).is_null() {
            p.set_attr(&a.name, prior.attr(&a.name).clone());
        }
    }
    p
}

/// Replaces unknowns with plausible known values of their type: what a state looks like
/// after an apply.
fn known(v: &Value, ty: &Type) -> Value {
    match (v, ty) {
        (Value::Unknown, Type::String) => Value::from("applied"),
        (Value::Unknown, Type::Number) => Value::from(1),
        (Value::Unknown, Type::Bool) => Value::Bool(false),
        (Value::Unknown, Type::List(_)) => Value::List(Vec::new()),
        (Value::Unknown, Type::Set(_)) => Value::Set(Vec::new()),
        (Value::Unknown, Type::Map(_)) => Value::Map(BTreeMap::new()),
        (Value::Unknown, _) => Value::Null,
        (Value::Object(m), Type::Object(attrs)) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), attrs.get(k).map_or(Value::Null, |t| known(x, t))))
                .collect(),
        ),
        _ => v.clone(),
    }
}

struct Planned {
    planned: Option<Value>,
    diagnostics: Vec<pb::Diagnostic>,
}

fn plan(prior: &Value, config: &Value) -> Result<Planned, TestCaseError> {
    let s = schema();
    let ty = s.value_type();
    let request = pb::plan_resource_change::Request {
        type_name: TYPE_NAME.into(),
        prior_state: Some(dv(prior, &ty)),
        proposed_new_state: Some(dv(&proposed(&s, prior, config), &ty)),
        config: Some(dv(config, &ty)),
        ..Default::default()
    };
    let response = block_on(server().plan_resource_change(Request::new(request)))
        .map_err(|status| TestCaseError::fail(format!("gRPC error from plan: {status}")))?
        .into_inner();
    let planned = match &response.planned_state {
        Some(state) => Some(Value::from_msgpack(&state.msgpack, &ty).map_err(|e| {
            TestCaseError::fail(format!("the planned state does not fit the schema: {e}"))
        })?),
        None => None,
    };
    Ok(Planned {
        planned,
        diagnostics: response.diagnostics,
    })
}

/// A plan without errors has a state that keeps every configured value.
fn check_plan(p: &Planned, config: &Value, roots: &[String]) -> Result<(), TestCaseError> {
    check_proto_paths(&p.diagnostics, roots)?;
    if has_error(&p.diagnostics) {
        return Ok(());
    }
    let planned = p
        .planned
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no planned state and no error"))?;
    // Computed-only attributes are the provider's to set (Terraform refuses a configuration
    // that sets them before asking for a plan).
    let s = schema();
    let computed: Vec<&str> = s
        .block
        .attributes
        .iter()
        .filter(|a| a.mode == Mode::Computed)
        .map(|a| a.name.as_str())
        .collect();
    for name in roots.iter().filter(|n| !computed.contains(&n.as_str())) {
        let configured = config.attr(name);
        if !configured.is_null() {
            prop_assert_eq!(
                planned.attr(name),
                configured,
                "{} changed by the plan",
                name
            );
        }
    }
    Ok(())
}

/// A state after a successful create of a valid configuration, for update plans.
fn prior_state() -> Value {
    let s = schema();
    let mut config = Value::null_object(&s.value_type());
    config.set_attr("name", "web".into());
    config.set_attr("availability_zone", "ap-southeast-2a".into());
    config.set_attr("ami", "ami-0123456789abcdef0".into());
    let created = plan(&Value::Null, &config).expect("plan");
    assert!(
        !has_error(&created.diagnostics),
        "{:?}",
        created.diagnostics
    );
    known(&created.planned.expect("planned"), &s.value_type())
}

// ---------------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The resource's own validation, with and without a known region.
    #[test]
    fn validate_never_panics_and_points_at_attributes(config in config()) {
        let resource = AutohealInstance::new(ProviderHandle::default());
        let roots = schema_roots(resource.schema());
        for region in [None, Some("ap-southeast-2".to_string()), Some("us-gov-west-1".into())] {
            let ctx = ValidateContext { region, ..ValidateContext::default() };
            let d = resource.validate(&config, &ctx);
            check_paths(&d, &roots)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 250, ..ProptestConfig::default() })]

    /// ValidateResourceConfig, then a create plan and an update plan, over the wire.
    #[test]
    fn validate_and_plan_through_the_service(config in config()) {
        static PRIOR: OnceLock<Value> = OnceLock::new();
        let s = schema();
        let roots = schema_roots(&s);
        let request = pb::validate_resource_config::Request {
            type_name: TYPE_NAME.into(),
            config: Some(dv(&config, &s.value_type())),
            ..Default::default()
        };
        let validated = block_on(server().validate_resource_config(Request::new(request)))
            .map_err(|status| TestCaseError::fail(format!("gRPC error from validate: {status}")))?
            .into_inner();
        check_proto_paths(&validated.diagnostics, &roots)?;

        let created = plan(&Value::Null, &config)?;
        check_plan(&created, &config, &roots)?;

        let prior = PRIOR.get_or_init(prior_state);
        let updated = plan(prior, &config)?;
        check_plan(&updated, &config, &roots)?;
    }
}

/// A valid configuration's encoding, then damaged: bytes flipped, cut short or extended.
fn damaged_config() -> impl Strategy<Value = Vec<u8>> {
    let ty = schema().value_type();
    (
        config(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..4),
        any::<bool>(),
    )
        .prop_map(move |(c, flips, cut, tail, truncate)| {
            let mut bytes = c.to_msgpack(&ty).expect("generated values fit the schema");
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Bytes that are not a configuration: a diagnostic from every call, never a panic or
    /// a gRPC error. Raw decoding of any bytes returns a value or an error.
    #[test]
    fn undecodable_bytes_are_diagnostics(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            damaged_config(),
        ],
    ) {
        let ty = schema().value_type();
        let _ = Value::from_msgpack(&bytes, &ty);
        let _ = Value::from_json(&bytes, &ty);
        for msgpack in [true, false] {
            let value = if msgpack {
                pb::DynamicValue { msgpack: bytes.clone(), json: Vec::new() }
            } else {
                pb::DynamicValue { msgpack: Vec::new(), json: bytes.clone() }
            };
            let validated = block_on(server().validate_resource_config(Request::new(
                pb::validate_resource_config::Request {
                    type_name: TYPE_NAME.into(),
                    config: Some(value.clone()),
                    ..Default::default()
                },
            )))
            .map_err(|status| TestCaseError::fail(format!("gRPC error: {status}")))?
            .into_inner();
            let planned = block_on(server().plan_resource_change(Request::new(
                pb::plan_resource_change::Request {
                    type_name: TYPE_NAME.into(),
                    prior_state: None,
                    proposed_new_state: Some(value.clone()),
                    config: Some(value),
                    ..Default::default()
                },
            )))
            .map_err(|status| TestCaseError::fail(format!("gRPC error: {status}")))?
            .into_inner();
            // Bytes that happen to decode are an ordinary configuration; the others must
            // say so with an error.
            let decodes = if msgpack {
                Value::from_msgpack(&bytes, &ty).is_ok()
            } else {
                Value::from_json(&bytes, &ty).is_ok()
            };
            // (Empty bytes are no value at all, which Terraform sends for null.)
            if !decodes && !bytes.is_empty() {
                prop_assert!(has_error(&validated.diagnostics), "{:?}", validated);
                prop_assert!(has_error(&planned.diagnostics), "{:?}", planned);
                prop_assert!(planned.planned_state.is_none());
            }
        }
    }
}

/// Regression: the plan read `handler_zip` whatever it named, so a device (`/dev/zero`) was
/// read until memory ran out and a FIFO blocked the plan forever. A FIFO named like a zip
/// passes validation; the plan must answer at once with an error on `handler_zip`.
#[test]
fn a_handler_zip_that_is_not_a_file_is_never_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("bootstrap.zip");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let s = schema();
    let mut config = Value::null_object(&s.value_type());
    config.set_attr("name", "web".into());
    config.set_attr("availability_zone", "ap-southeast-2a".into());
    config.set_attr("ami", "ami-0123456789abcdef0".into());
    config.set_attr("handler_zip", fifo.display().to_string().into());
    // In a thread, so a regression fails after a while instead of hanging the suite (the
    // blocked thread ends with the test process).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(plan(&Value::Null, &config).map(|p| p.diagnostics));
    });
    let diagnostics = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the plan blocked reading a FIFO given as handler_zip")
        .expect("plan");
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.severity == pb::diagnostic::Severity::Error as i32)
        .map(|d| d.summary.as_str())
        .collect();
    assert_eq!(errors, ["Handler zip not found"]);
}
