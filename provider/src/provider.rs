//! The `autoheal` provider: its configuration schema, validation and configuration.
//!
//! Configuring the provider only records the settings: no AWS configuration is loaded, no
//! profile file, instance metadata or STS is consulted. Terraform configures providers for
//! `plan` too, and an offline plan must stay fast. The first AWS operation builds the SDK
//! configuration ([`AwsContext::sdk_config`]).

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{AwsContext, ProviderSettings, Service, DEFAULT_MAX_RETRIES, MAX_MAX_RETRIES};
use crate::plugin::diagnostics::{AttributePath, Diagnostics};
use crate::plugin::resource::{Provider, Resource, ValidateContext};
use crate::plugin::schema::{Attribute, Block, NestedBlock, Schema};
use crate::plugin::value::{Type, Value};

/// The provider's type name: resource types are `autoheal_*`.
pub const TYPE_NAME: &str = "autoheal";

/// The provider's configuration as resources see it, shared: empty until Terraform configures
/// the provider. Cloning shares the same state.
#[derive(Clone, Debug, Default)]
pub struct ProviderHandle(Arc<RwLock<Option<Arc<AwsContext>>>>);

impl ProviderHandle {
    /// The AWS context, `None` until the provider is configured.
    pub fn aws(&self) -> Option<Arc<AwsContext>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    pub fn settings(&self) -> Option<ProviderSettings> {
        self.aws().map(|ctx| ctx.settings().clone())
    }
    /// The provider's `default_tags` (empty until configured, or when none are set).
    pub fn default_tags(&self) -> BTreeMap<String, String> {
        self.aws()
            .map(|ctx| ctx.settings().default_tags.clone())
            .unwrap_or_default()
    }
    fn set(&self, ctx: AwsContext) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(ctx));
    }
}

pub struct AutohealProvider {
    schema: Schema,
    state: ProviderHandle,
    /// The region of the last configuration validated with a known region: `terraform
    /// validate` validates resources without configuring the provider.
    validated_region: RwLock<Option<String>>,
}

impl AutohealProvider {
    pub fn new() -> Self {
        AutohealProvider {
            schema: provider_schema(),
            state: ProviderHandle::default(),
            validated_region: RwLock::new(None),
        }
    }

    /// The settings stored by `configure`, `None` before it.
    pub fn settings(&self) -> Option<ProviderSettings> {
        self.state.settings()
    }

    /// The provider's `default_tags` (empty before `configure`).
    pub fn default_tags(&self) -> BTreeMap<String, String> {
        self.state.default_tags()
    }

    /// The AWS context built by `configure`, `None` before it.
    pub fn aws(&self) -> Option<Arc<AwsContext>> {
        self.state.aws()
    }

    /// A handle on the configuration for resources, which outlive no provider call but are
    /// created before `configure`.
    pub fn handle(&self) -> ProviderHandle {
        self.state.clone()
    }
}

impl Default for AutohealProvider {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl Provider for AutohealProvider {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate_config(&self, config: &Value) -> Diagnostics {
        let diags = validate(config);
        if !diags.has_errors() {
            if let Some(region) = config.attr("region").as_str().filter(|r| !r.is_empty()) {
                *self
                    .validated_region
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(region.to_string());
            }
        }
        diags
    }

    async fn configure(&self, config: &Value, terraform_version: &str) -> Diagnostics {
        let diags = validate(config);
        if diags.has_errors() {
            return diags;
        }
        let settings = ProviderSettings::from_value(config);
        tracing::info!(
            terraform_version,
            region = settings.region.as_deref(),
            profile = settings.profile.as_deref(),
            assume_role = settings.assume_role.as_ref().map(|r| r.role_arn.as_str()),
            endpoints = ?settings.endpoints,
            max_retries = settings.max_retries,
            default_tags = settings.default_tags.len(),
            unknown = ?settings.unknown,
            "provider configured (AWS configuration is loaded on first use)"
        );
        // No network here: AwsContext::new only records the settings.
        self.state.set(AwsContext::new(settings));
        diags
    }

    fn validate_context(&self) -> ValidateContext {
        // Cheap and offline on purpose: Terraform calls this for every validation and plan.
        // The region comes from the configuration, else from the environment; profile files
        // are not read (nor IMDS queried), so a region that only a profile names is "not known"
        // here and region-dependent checks wait for apply.
        let configured = match self.settings() {
            // Configured with a region that is not known yet: the environment's would be wrong.
            Some(s) if s.unknown.iter().any(|p| p == "region") => {
                return ValidateContext::default();
            }
            Some(s) => s.region,
            None => self
                .validated_region
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        let settings = self.settings();
        ValidateContext {
            region: region_for_validation(configured, |k| std::env::var(k).ok()),
            default_tags: self.default_tags(),
            default_tags_unknown: settings
                .is_some_and(|s| s.unknown.iter().any(|u| u.starts_with("default_tags"))),
        }
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![Arc::new(crate::autoheal_instance::AutohealInstance::new(
            self.handle(),
        ))]
    }
}

/// The configured region, else `AWS_REGION`, else `AWS_DEFAULT_REGION` (the order aws-config
/// uses).
fn region_for_validation(
    configured: Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    configured.or_else(|| {
        ["AWS_REGION", "AWS_DEFAULT_REGION"]
            .into_iter()
            .filter_map(&env)
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
    })
}

fn provider_schema() -> Schema {
    let mut endpoints = Block::new(
        "Custom endpoint URLs, for emulators such as LocalStack and for private (VPC) endpoints. \
         An endpoint set here wins over the `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL` \
         environment variables and the profile's `services` section, which the provider \
         otherwise honours like the AWS CLI does.",
    );
    for service in Service::ALL {
        endpoints = endpoints.attribute(Attribute::optional(
            service.attribute_name(),
            Type::String,
            &format!(
                "Endpoint URL for {} (`http://` or `https://`), e.g. `http://localhost:4566`. \
                 Default: `{}`, then `AWS_ENDPOINT_URL`, then the service's public endpoint.",
                service_title(service),
                service.endpoint_env_var(),
            ),
        ));
    }

    let block = Block::new(
        "The autoheal provider manages `autoheal_instance`: an EC2 instance that keeps its data \
         volume and Elastic IP when it is replaced. Credentials come from the standard AWS \
         chain (environment variables, shared credentials and config files with SSO, web \
         identity, ECS and EC2 instance roles), optionally followed by `assume_role`. \
         Configuring the provider makes no AWS call: credentials and the region are resolved \
         by the first operation that needs AWS.",
    )
    .attribute(Attribute::optional(
        "region",
        Type::String,
        "AWS region, e.g. `ap-southeast-2`. Default: the `AWS_REGION` or `AWS_DEFAULT_REGION` \
         environment variable, then the profile's `region`, then the EC2 instance metadata.",
    ))
    .attribute(Attribute::optional(
        "profile",
        Type::String,
        "Named profile of the shared AWS config and credentials files. Default: the \
         `AWS_PROFILE` environment variable, then `default`.",
    ))
    .attribute(Attribute::optional(
        "max_retries",
        Type::Number,
        &format!(
            "How many times each AWS call is retried after a throttling, server or network \
             error, with exponential back-off (0.5 s doubling up to 20 s, with jitter) and \
             never past the operation's timeout. 0 to {MAX_MAX_RETRIES}. Default: \
             {DEFAULT_MAX_RETRIES}. The `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` environment \
             variables do not apply: this setting is the only retry control."
        ),
    ))
    .block(NestedBlock::single(
        "assume_role",
        Block::new(
            "An IAM role to assume with STS before calling AWS, using the credentials of the \
             standard chain. Temporary credentials are refreshed automatically.",
        )
        .attribute(Attribute::required(
            "role_arn",
            Type::String,
            "ARN of the role, e.g. `arn:aws:iam::123456789012:role/deploy`.",
        ))
        .attribute(Attribute::optional(
            "session_name",
            Type::String,
            "Session name, shown in CloudTrail (2 to 64 letters, digits and `+=,.@_-`). \
             Default: `terraform-provider-autoheal`.",
        ))
        .attribute(Attribute::optional(
            "external_id",
            Type::String,
            "External ID the role's trust policy requires, if any (2 to 1224 letters, digits \
             and `+=,.@:/_-`).",
        )),
    ))
    .block(NestedBlock::single("endpoints", endpoints))
    .block(NestedBlock::single(
        "default_tags",
        Block::new(
            "Tags applied to every AWS object the provider creates that supports tags. Tags \
             set on a resource win over these.",
        )
        .attribute(Attribute::optional(
            "tags",
            Type::map(Type::String),
            "Tag keys and values. Keys must not start with `aws:` (reserved by AWS); keys are \
             1 to 128 characters, values at most 256.",
        )),
    ));
    Schema { version: 0, block }
}

fn service_title(service: Service) -> &'static str {
    match service {
        Service::Ec2 => "EC2",
        Service::AutoScaling => "EC2 Auto Scaling",
        Service::Iam => "IAM",
        Service::Lambda => "Lambda",
        Service::Events => "EventBridge",
        Service::Logs => "CloudWatch Logs",
        Service::CloudWatch => "CloudWatch (the alarms of `alarm_actions`)",
        Service::Sts => "STS (AssumeRole)",
    }
}

/// Checks the provider configuration. Unknown and null values are skipped; empty strings
/// count as unset.
pub fn validate(config: &Value) -> Diagnostics {
    let mut d = Diagnostics::new();

    if let Some(region) = known_str(config.attr("region")) {
        if !is_region_name(region) {
            d.attribute_error(
                AttributePath::root("region"),
                "Invalid AWS region",
                format!(
                    "{region:?} does not look like an AWS region name such as \
                     \"ap-southeast-2\" or \"us-gov-west-1\"."
                ),
            );
        }
    }

    match config.attr("max_retries") {
        Value::Number(n) => {
            let ok = n
                .as_i64()
                .is_some_and(|i| (0..=i64::from(MAX_MAX_RETRIES)).contains(&i));
            if !ok {
                d.attribute_error(
                    AttributePath::root("max_retries"),
                    "Invalid max_retries",
                    format!(
                        "max_retries must be a whole number from 0 to {MAX_MAX_RETRIES}, not {n}."
                    ),
                );
            }
        }
        Value::Null | Value::Unknown => {}
        other => d.attribute_error(
            AttributePath::root("max_retries"),
            "Invalid max_retries",
            format!("max_retries must be a number, not {other:?}."),
        ),
    }

    let assume_role = config.attr("assume_role");
    let at = |name: &str| AttributePath::root("assume_role").attr(name);
    match assume_role.attr("role_arn") {
        Value::String(arn) if !is_role_arn(arn) => d.attribute_error(
            at("role_arn"),
            "Invalid role ARN",
            format!(
                "{arn:?} is not an IAM role ARN. Expected \
                 arn:<partition>:iam::<12-digit account>:role/<name>, e.g. \
                 \"arn:aws:iam::123456789012:role/deploy\"."
            ),
        ),
        _ => {}
    }
    if let Some(name) = known_str(assume_role.attr("session_name")) {
        if !valid_sts_string(name, 2, 64, "+=,.@-_") {
            d.attribute_error(
                at("session_name"),
                "Invalid session name",
                format!(
                    "{name:?} is not a valid role session name: 2 to 64 letters, digits and \
                     +=,.@_- characters."
                ),
            );
        }
    }
    if let Some(id) = known_str(assume_role.attr("external_id")) {
        if !valid_sts_string(id, 2, 1224, "+=,.@:/-_") {
            d.attribute_error(
                at("external_id"),
                "Invalid external ID",
                "An external ID is 2 to 1224 letters, digits and +=,.@:/_- characters.",
            );
        }
    }

    let endpoints = config.attr("endpoints");
    for service in Service::ALL {
        let name = service.attribute_name();
        if let Some(url) = known_str(endpoints.attr(name)) {
            if let Err(why) = check_endpoint_url(url) {
                d.attribute_error(
                    AttributePath::root("endpoints").attr(name),
                    "Invalid endpoint URL",
                    format!(
                        "{url:?} is not a usable endpoint for {}: {why}. Expected an http:// or \
                         https:// URL such as \"http://localhost:4566\".",
                        service_title(service)
                    ),
                );
            }
        }
    }

    if let Some(tags) = config.attr("default_tags").attr("tags").entries() {
        for (key, value) in tags {
            let path = AttributePath::root("default_tags").attr("tags").key(key);
            if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
                d.attribute_error(
                    path,
                    "Reserved tag key",
                    format!(
                        "The tag key {key:?} starts with \"aws:\", a prefix AWS reserves for its \
                         own tags."
                    ),
                );
            } else if key.is_empty() || key.chars().count() > 128 {
                d.attribute_error(
                    path,
                    "Invalid tag key",
                    format!("A tag key has 1 to 128 characters; {key:?} does not."),
                );
            } else if value.as_str().is_some_and(|v| v.chars().count() > 256) {
                d.attribute_error(
                    path,
                    "Invalid tag value",
                    format!("The value of tag {key:?} is longer than 256 characters."),
                );
            }
        }
    }

    d
}

/// A known, non-empty string.
fn known_str(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// `ap-southeast-2`, `us-gov-west-1`, `us-isob-east-1`, `eu-central-2`: two letters, one or
/// more lowercase words, a number.
pub fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((number, words)) = parts.split_last() else {
        return false;
    };
    parts.len() >= 3
        && words[0].len() == 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:aws:iam::123456789012:role/deploy`, in any partition (`aws-cn`, `aws-us-gov`, ...),
/// with an optional path (`role/ci/deploy`).
pub fn is_role_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            rest.split('-')
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        });
    let name_ok = resource.strip_prefix("role/").is_some_and(|name| {
        !name.is_empty()
            && !name.starts_with('/')
            && !name.ends_with('/')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
    });
    arn == "arn"
        && partition_ok
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && name_ok
}

fn valid_sts_string(s: &str, min: usize, max: usize, punctuation: &str) -> bool {
    (min..=max).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || punctuation.contains(c))
}

fn check_endpoint_url(s: &str) -> Result<(), String> {
    let url = url::Url::parse(s).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("the scheme is {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::diagnostics::Severity;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    /// A configuration shaped like the schema: every attribute present, null unless given.
    fn config(pairs: &[(&str, Value)]) -> Value {
        let mut v = Value::null_object(&provider_schema().value_type());
        for (k, val) in pairs {
            v.set_attr(k, val.clone());
        }
        v
    }

    fn endpoints(pairs: &[(&str, Value)]) -> Value {
        let mut v = obj(&Service::ALL.map(|s| (s.attribute_name(), Value::Null)));
        for (k, val) in pairs {
            v.set_attr(k, val.clone());
        }
        v
    }

    fn error_paths(d: &Diagnostics) -> Vec<String> {
        d.iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| {
                d.attribute
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect()
    }

    fn good() -> Value {
        config(&[
            ("region", "ap-southeast-2".into()),
            ("profile", "ops".into()),
            ("max_retries", 10.into()),
            (
                "assume_role",
                obj(&[
                    (
                        "role_arn",
                        "arn:aws-us-gov:iam::123456789012:role/ci/deploy".into(),
                    ),
                    ("session_name", "ci@build-7".into()),
                    ("external_id", "a:b/c".into()),
                ]),
            ),
            (
                "endpoints",
                endpoints(&[
                    ("ec2", "http://localhost:4566".into()),
                    ("sts", "https://sts.ap-southeast-2.amazonaws.com/".into()),
                ]),
            ),
            (
                "default_tags",
                obj(&[(
                    "tags",
                    Value::Map(BTreeMap::from([("Owner".to_string(), "ops".into())])),
                )]),
            ),
        ])
    }

    fn walk(block: &Block, path: &str, f: &mut impl FnMut(String, &str)) {
        f(path.to_string(), &block.description);
        for a in &block.attributes {
            f(format!("{path}.{}", a.name), &a.description);
        }
        for b in &block.blocks {
            walk(&b.block, &format!("{path}.{}", b.type_name), f);
        }
    }

    #[test]
    fn schema_is_complete_and_documented() {
        let p = AutohealProvider::new();
        assert_eq!(p.type_name(), "autoheal");
        let b = &p.schema().block;
        for name in ["region", "profile", "max_retries"] {
            assert!(
                b.get_attribute(name).is_some_and(|a| a.is_optional()),
                "{name}"
            );
        }
        let role = &b.get_block("assume_role").unwrap().block;
        assert!(role.get_attribute("role_arn").unwrap().is_required());
        let eps = &b.get_block("endpoints").unwrap().block;
        for s in Service::ALL {
            assert!(eps.get_attribute(s.attribute_name()).is_some(), "{s:?}");
        }
        let tags = b
            .get_block("default_tags")
            .unwrap()
            .block
            .get_attribute("tags")
            .unwrap();
        assert_eq!(tags.ty, Type::map(Type::String));
        let mut undocumented = Vec::new();
        walk(b, "provider", &mut |path, desc| {
            if desc.trim().len() < 10 {
                undocumented.push(path);
            }
        });
        assert!(undocumented.is_empty(), "{undocumented:?}");
        assert!(b
            .get_attribute("max_retries")
            .unwrap()
            .description
            .contains("25"));
    }

    #[test]
    fn a_good_configuration_passes() {
        let d = validate(&good());
        assert!(d.is_empty(), "{d}");
        assert!(validate(&config(&[])).is_empty());
        assert!(validate(&Value::Null).is_empty());
    }

    #[test]
    fn bad_values_are_reported_at_their_attribute() {
        let bad = config(&[
            ("region", "Sydney".into()),
            ("max_retries", 101.into()),
            (
                "assume_role",
                obj(&[
                    ("role_arn", "arn:aws:iam::1234:user/bob".into()),
                    ("session_name", "has space".into()),
                    ("external_id", "x".into()),
                ]),
            ),
            (
                "endpoints",
                endpoints(&[
                    ("ec2", "localhost:4566".into()),
                    ("lambda", "ftp://example.com".into()),
                    ("logs", "http://".into()),
                    ("iam", "".into()),
                ]),
            ),
            (
                "default_tags",
                obj(&[(
                    "tags",
                    Value::Map(BTreeMap::from([
                        ("aws:owner".to_string(), "x".into()),
                        ("AWS:Other".to_string(), "x".into()),
                        ("Fine".to_string(), "x".into()),
                        ("Long".to_string(), "v".repeat(257).into()),
                    ])),
                )]),
            ),
        ]);
        let d = validate(&bad);
        let mut paths = error_paths(&d);
        paths.sort();
        assert_eq!(
            paths,
            [
                "assume_role.external_id",
                "assume_role.role_arn",
                "assume_role.session_name",
                "default_tags.tags[\"AWS:Other\"]",
                "default_tags.tags[\"Long\"]",
                "default_tags.tags[\"aws:owner\"]",
                "endpoints.ec2",
                "endpoints.lambda",
                "endpoints.logs",
                "max_retries",
                "region",
            ],
            "{d}"
        );
        let fractional = config(&[(
            "max_retries",
            Value::Number(crate::plugin::value::Number::Float(2.5)),
        )]);
        assert_eq!(error_paths(&validate(&fractional)), ["max_retries"]);
        assert_eq!(
            error_paths(&validate(&config(&[("max_retries", (-1).into())]))),
            ["max_retries"]
        );
        assert!(validate(&config(&[("max_retries", 0.into())])).is_empty());
        assert!(validate(&config(&[("max_retries", 100.into())])).is_empty());
    }

    #[test]
    fn unknown_values_are_skipped() {
        let v = config(&[
            ("region", Value::Unknown),
            ("max_retries", Value::Unknown),
            ("assume_role", obj(&[("role_arn", Value::Unknown)])),
            ("endpoints", Value::Unknown),
            (
                "default_tags",
                obj(&[(
                    "tags",
                    Value::Map(BTreeMap::from([("Owner".to_string(), Value::Unknown)])),
                )]),
            ),
        ]);
        assert!(validate(&v).is_empty());
        let v = config(&[("endpoints", endpoints(&[("ec2", Value::Unknown)]))]);
        assert!(validate(&v).is_empty());
        let v = config(&[("default_tags", obj(&[("tags", Value::Unknown)]))]);
        assert!(validate(&v).is_empty());
    }

    #[test]
    fn names_and_arns() {
        for r in [
            "ap-southeast-2",
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
            "eu-central-2",
        ] {
            assert!(is_region_name(r), "{r}");
        }
        for r in [
            "",
            "us-east",
            "useast1",
            "US-EAST-1",
            "us-east-1a",
            "u-east-1",
            "us--1",
            "us-east-123",
        ] {
            assert!(!is_region_name(r), "{r}");
        }
        for a in [
            "arn:aws:iam::123456789012:role/deploy",
            "arn:aws-cn:iam::123456789012:role/a/b/c",
            "arn:aws-iso-b:iam::123456789012:role/x+=,.@_-",
        ] {
            assert!(is_role_arn(a), "{a}");
        }
        for a in [
            "arn:aws:iam::123456789012:user/deploy",
            "arn:aws:iam::12345678901:role/deploy",
            "arn:aws:iam:us-east-1:123456789012:role/deploy",
            "arn:aws:sts::123456789012:role/deploy",
            "arn:gcp:iam::123456789012:role/deploy",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
            "deploy",
        ] {
            assert!(!is_role_arn(a), "{a}");
        }
    }

    #[tokio::test]
    async fn configure_stores_settings_without_touching_aws() {
        let p = AutohealProvider::new();
        assert!(p.settings().is_none());
        assert!(p.default_tags().is_empty());
        let handle = p.handle();
        let d = p.configure(&good(), "1.9.0").await;
        assert!(d.is_empty(), "{d}");
        let s = p.settings().unwrap();
        assert_eq!(s.region.as_deref(), Some("ap-southeast-2"));
        assert_eq!(s.max_retries, 10);
        assert_eq!(
            s.endpoints.get(&Service::Ec2).map(String::as_str),
            Some("http://localhost:4566")
        );
        assert_eq!(
            p.default_tags(),
            BTreeMap::from([("Owner".to_string(), "ops".to_string())])
        );
        // The handle given out before configure sees the configuration.
        assert_eq!(handle.default_tags(), p.default_tags());
        // Nothing was resolved: no SDK configuration, no credentials, no STS.
        let ctx = p.aws().unwrap();
        assert!(!ctx.is_loaded());
        assert_eq!(ctx.retry_policy().max_attempts, 11);
        assert_eq!(
            p.validate_context().region.as_deref(),
            Some("ap-southeast-2")
        );
    }

    #[tokio::test]
    async fn configure_rejects_an_invalid_configuration() {
        let p = AutohealProvider::new();
        let d = p
            .configure(&config(&[("region", "nowhere".into())]), "1.9.0")
            .await;
        assert!(d.has_errors());
        assert!(p.settings().is_none());
    }

    #[test]
    fn validate_context_region_sources() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            region_for_validation(
                Some("eu-west-1".into()),
                env(&[("AWS_REGION", "us-east-1")])
            ),
            Some("eu-west-1".into())
        );
        assert_eq!(
            region_for_validation(
                None,
                env(&[
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_DEFAULT_REGION", "us-west-2")
                ])
            ),
            Some("us-east-1".into())
        );
        assert_eq!(
            region_for_validation(
                None,
                env(&[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "us-west-2")])
            ),
            Some("us-west-2".into())
        );
        assert_eq!(region_for_validation(None, env(&[])), None);

        // validate_config remembers a known region for `terraform validate`.
        let p = AutohealProvider::new();
        assert!(p
            .validate_config(&config(&[("region", "ca-central-1".into())]))
            .is_empty());
        assert_eq!(p.validate_context().region.as_deref(), Some("ca-central-1"));
    }

    #[tokio::test]
    async fn an_unknown_configured_region_is_not_guessed() {
        let p = AutohealProvider::new();
        assert!(p
            .validate_config(&config(&[("region", "ca-central-1".into())]))
            .is_empty());
        let d = p
            .configure(&config(&[("region", Value::Unknown)]), "1.9.0")
            .await;
        assert!(d.is_empty(), "{d}");
        assert_eq!(p.validate_context().region, None);
        assert_eq!(p.settings().unwrap().unknown, ["region"]);
    }

    #[test]
    fn resources_are_listed() {
        let p = AutohealProvider::new();
        let names: Vec<_> = p.resources().iter().map(|r| r.type_name()).collect();
        assert_eq!(names, ["autoheal_instance"]);
    }
}
