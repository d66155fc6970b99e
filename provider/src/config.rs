//! The provider's settings, typed from its configuration, and [`AwsContext`]: the AWS SDK
//! configuration those settings describe, built lazily on the first AWS operation.
//!
//! Nothing here touches the network until [`AwsContext::sdk_config`] is awaited: Terraform
//! configures the provider for `plan` and `validate` too, and loading the SDK configuration may
//! read profile files, query the instance metadata service and (with `assume_role`) call STS.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::bail;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_types::sdk_config::SharedCredentialsProvider;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use tokio::sync::OnceCell;

use crate::aws::retry::RetryPolicy;
pub use crate::aws::retry::DEFAULT_MAX_RETRIES;
use crate::plugin::value::Value;

/// The largest `max_retries` the provider accepts.
pub const MAX_MAX_RETRIES: u32 = 100;

/// The AssumeRole session name when `assume_role.session_name` is not set: it shows in
/// CloudTrail as the principal's session.
pub const DEFAULT_SESSION_NAME: &str = "terraform-provider-autoheal";

/// How long one attempt of an AWS call may take before the SDK abandons it with a timeout
/// error, which the retry layer then retries. Without it a connection that never answers would
/// hold a call until the operation's deadline. (Stalled uploads and downloads are caught
/// sooner by the SDK's stalled-stream protection.) A call that legitimately takes longer, such
/// as uploading a large Lambda package on a slow link, overrides it for that call with
/// `.customize().config_override(...)`.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The AWS services the provider calls, each with an `endpoints` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Ec2,
    AutoScaling,
    Iam,
    Lambda,
    Events,
    Logs,
    CloudWatch,
    Sts,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Ec2,
        Service::AutoScaling,
        Service::Iam,
        Service::Lambda,
        Service::Events,
        Service::Logs,
        Service::CloudWatch,
        Service::Sts,
    ];

    /// The attribute of the provider's `endpoints` block.
    pub fn attribute_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::AutoScaling => "autoscaling",
            Service::Iam => "iam",
            Service::Lambda => "lambda",
            Service::Events => "events",
            Service::Logs => "logs",
            Service::CloudWatch => "cloudwatch",
            Service::Sts => "sts",
        }
    }

    /// The service's Smithy `serviceId`, which the SDK's service clients pass to the service
    /// configuration when they look up an endpoint URL.
    pub fn service_id(self) -> &'static str {
        match self {
            Service::Ec2 => "EC2",
            Service::AutoScaling => "Auto Scaling",
            Service::Iam => "IAM",
            Service::Lambda => "Lambda",
            Service::Events => "EventBridge",
            Service::Logs => "CloudWatch Logs",
            Service::CloudWatch => "CloudWatch",
            Service::Sts => "STS",
        }
    }

    /// The service-specific endpoint variable aws-config reads, e.g.
    /// `AWS_ENDPOINT_URL_AUTO_SCALING`.
    pub fn endpoint_env_var(self) -> String {
        format!(
            "AWS_ENDPOINT_URL_{}",
            normalize_service_id(self.service_id())
        )
    }

    pub fn from_attribute_name(name: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.attribute_name() == name)
    }

    /// Matches a `serviceId` the way the SDK maps it to an environment variable (case and
    /// spaces do not matter).
    pub fn from_service_id(id: &str) -> Option<Service> {
        let id = normalize_service_id(id);
        Service::ALL
            .into_iter()
            .find(|s| normalize_service_id(s.service_id()) == id)
    }
}

fn normalize_service_id(id: &str) -> String {
    id.trim().replace([' ', '-'], "_").to_ascii_uppercase()
}

/// The `assume_role` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
}

/// The provider configuration, typed. Empty strings count as unset (a variable defaulting
/// to `""` means "not set").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub assume_role: Option<AssumeRole>,
    /// Explicit endpoint URLs from the `endpoints` block.
    pub endpoints: BTreeMap<Service, String>,
    /// Tags every taggable object gets; the resource's own tags win on conflicts.
    pub default_tags: BTreeMap<String, String>,
    /// Retries per AWS call after the first attempt.
    pub max_retries: u32,
    /// Attributes whose values were not known yet (Terraform configures providers during plan
    /// with values that depend on resources not yet created), e.g. `region`,
    /// `default_tags.tags["Owner"]`. Known values are still read.
    pub unknown: Vec<String>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        ProviderSettings {
            region: None,
            profile: None,
            assume_role: None,
            endpoints: BTreeMap::new(),
            default_tags: BTreeMap::new(),
            max_retries: DEFAULT_MAX_RETRIES,
            unknown: Vec::new(),
        }
    }
}

/// Reads a string attribute: `None` for null, empty or unknown (recording the unknown).
fn string_attr(v: &Value, path: String, unknown: &mut Vec<String>) -> Option<String> {
    match v {
        Value::Unknown => {
            unknown.push(path);
            None
        }
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A nested block's object, `None` when absent or unknown (recording the unknown).
fn block<'a>(config: &'a Value, name: &str, unknown: &mut Vec<String>) -> Option<&'a Value> {
    match config.attr(name) {
        Value::Unknown => {
            unknown.push(name.to_string());
            None
        }
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

impl ProviderSettings {
    /// Reads the provider configuration. Validation ([`crate::provider`]) reports bad values;
    /// this only types them (an out-of-range `max_retries` is clamped).
    pub fn from_value(config: &Value) -> Self {
        let mut unknown = Vec::new();
        let region = string_attr(config.attr("region"), "region".into(), &mut unknown);
        let profile = string_attr(config.attr("profile"), "profile".into(), &mut unknown);
        let max_retries = match config.attr("max_retries") {
            Value::Unknown => {
                unknown.push("max_retries".into());
                DEFAULT_MAX_RETRIES
            }
            Value::Number(n) => {
                let n = n.as_f64().clamp(0.0, f64::from(MAX_MAX_RETRIES));
                n as u32
            }
            _ => DEFAULT_MAX_RETRIES,
        };

        let assume_role = block(config, "assume_role", &mut unknown).and_then(|b| {
            let role_arn = string_attr(
                b.attr("role_arn"),
                "assume_role.role_arn".into(),
                &mut unknown,
            );
            let session_name = string_attr(
                b.attr("session_name"),
                "assume_role.session_name".into(),
                &mut unknown,
            );
            let external_id = string_attr(
                b.attr("external_id"),
                "assume_role.external_id".into(),
                &mut unknown,
            );
            role_arn.map(|role_arn| AssumeRole {
                role_arn,
                session_name,
                external_id,
            })
        });

        let mut endpoints = BTreeMap::new();
        if let Some(b) = block(config, "endpoints", &mut unknown) {
            for service in Service::ALL {
                let name = service.attribute_name();
                if let Some(url) =
                    string_attr(b.attr(name), format!("endpoints.{name}"), &mut unknown)
                {
                    endpoints.insert(service, url);
                }
            }
        }

        let mut default_tags = BTreeMap::new();
        if let Some(b) = block(config, "default_tags", &mut unknown) {
            match b.attr("tags") {
                Value::Unknown => unknown.push("default_tags.tags".into()),
                Value::Map(tags) | Value::Object(tags) => {
                    for (k, v) in tags {
                        match v {
                            Value::String(s) => {
                                default_tags.insert(k.clone(), s.clone());
                            }
                            Value::Unknown => unknown.push(format!("default_tags.tags[{k:?}]")),
                            // A null value means "no such tag", as in the AWS provider.
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }

        ProviderSettings {
            region,
            profile,
            assume_role,
            endpoints,
            default_tags,
            max_retries,
            unknown,
        }
    }

    /// The retry policy of every AWS call: `max_retries` retries after the first attempt.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::from_max_retries(self.max_retries)
    }

    /// Whether `default_tags` is wholly known (when not, tags planned from it are unknown).
    pub fn default_tags_known(&self) -> bool {
        !self.unknown.iter().any(|p| p.starts_with("default_tags"))
    }

    /// Unknown attributes that decide how to reach AWS; calls cannot be made until they are
    /// known.
    fn unknown_connection_settings(&self) -> Vec<&str> {
        self.unknown
            .iter()
            .map(String::as_str)
            .filter(|p| !p.starts_with("default_tags") && *p != "max_retries")
            .collect()
    }
}

/// Service configuration that puts the `endpoints` block in front of the environment's and
/// the profile's endpoint settings.
///
/// Service clients built from an `SdkConfig` ask its service configuration for the endpoint
/// (`AWS_ENDPOINT_URL_<SERVICE>`, the profile's `services` section) before falling back to the
/// global `endpoint_url` (`AWS_ENDPOINT_URL`). Answering for the services configured here makes
/// `aws_sdk_ec2::Client::new(&sdk_config)` honour the `endpoints` block with no per-client
/// code, AssumeRole's STS client included; every other key goes to the loaded configuration.
#[derive(Debug)]
struct ExplicitEndpoints {
    endpoints: BTreeMap<Service, String>,
    fallback: Box<dyn LoadServiceConfig>,
}

impl LoadServiceConfig for ExplicitEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() == "AWS_ENDPOINT_URL" {
            if let Some(url) =
                Service::from_service_id(key.service_id()).and_then(|s| self.endpoints.get(&s))
            {
                return Some(url.clone());
            }
        }
        self.fallback.load_config(key)
    }
}

/// The service configuration aws-config loaded (environment and profile), owned.
#[derive(Debug)]
struct LoadedServiceConfig(SdkConfig);

impl LoadServiceConfig for LoadedServiceConfig {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        self.0.service_config()?.load_config(key)
    }
}

/// The provider's connection to AWS: its settings, and the SDK configuration built from them
/// once, on first use.
///
/// Service clients come from [`AwsContext::sdk_config`]; its service configuration already
/// applies the `endpoints` block (see [`ExplicitEndpoints`]), so an accessor is one line:
///
/// ```ignore
/// pub async fn ec2(&self) -> anyhow::Result<aws_sdk_ec2::Client> {
///     Ok(aws_sdk_ec2::Client::new(self.sdk_config().await?))
/// }
/// ```
#[derive(Debug)]
pub struct AwsContext {
    settings: ProviderSettings,
    sdk: OnceCell<SdkConfig>,
    /// Times the SDK configuration was loaded: 0 until the first AWS operation, then 1.
    loads: AtomicU32,
    /// Tests only: ignore the host's environment variables and credentials.
    isolated: bool,
}

impl AwsContext {
    /// Records the settings. No I/O: see [`AwsContext::sdk_config`].
    pub fn new(settings: ProviderSettings) -> Self {
        AwsContext {
            settings,
            sdk: OnceCell::new(),
            loads: AtomicU32::new(0),
            isolated: false,
        }
    }

    /// A context that ignores the host's AWS environment variables and uses static test
    /// credentials, for tests that load the SDK configuration.
    #[cfg(test)]
    pub(crate) fn isolated(settings: ProviderSettings) -> Self {
        AwsContext {
            isolated: true,
            ..Self::new(settings)
        }
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.settings.retry_policy()
    }

    /// Whether the SDK configuration has been loaded (an AWS operation has started).
    pub fn is_loaded(&self) -> bool {
        self.sdk.initialized()
    }

    /// The endpoint URL set for `service` in the provider's `endpoints` block. It wins over
    /// `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL`; when `None`, aws-config applies
    /// those (and the profile's `services` section) itself. Clients built from
    /// [`AwsContext::sdk_config`] already use this; it is here for logs and messages.
    pub fn endpoint_for(&self, service: Service) -> Option<String> {
        self.settings.endpoints.get(&service).cloned()
    }

    /// The SDK configuration, loaded on the first call (with the region chain, profile files,
    /// the credential chain and, for `assume_role`, an STS AssumeRole credential provider that
    /// calls STS when credentials are first needed). Concurrent first callers share one load;
    /// a failed load is not cached, so the next call tries again.
    pub async fn sdk_config(&self) -> anyhow::Result<&SdkConfig> {
        self.sdk.get_or_try_init(|| self.load()).await
    }

    async fn load(&self) -> anyhow::Result<SdkConfig> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let s = &self.settings;
        let unknown = s.unknown_connection_settings();
        if !unknown.is_empty() {
            bail!(
                "the provider configuration has values that are not known yet ({}); the provider \
                 needs them to call AWS. Set them from values known at plan time, or apply the \
                 resources they depend on first (terraform apply -target=...)",
                unknown.join(", ")
            );
        }

        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
        if let Some(region) = &s.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &s.profile {
            loader = loader.profile_name(profile);
        }
        if self.isolated {
            loader = loader.empty_test_environment().test_credentials();
        }
        // Loaded with the SDK's default retry configuration: the clients inside the credential
        // chain (SSO, STS for profile roles and web identity) keep their own retries, since a
        // credential failure reaches the retry layer as a permanent error.
        let loaded = loader.load().await;
        if loaded.region().is_none() {
            bail!(
                "no AWS region is configured: set the provider's region, the AWS_REGION \
                 environment variable, or a region in the AWS profile{}",
                s.profile
                    .as_deref()
                    .map(|p| format!(" \"{p}\""))
                    .unwrap_or_default()
            );
        }

        let base = loaded
            .to_builder()
            .service_config(ExplicitEndpoints {
                endpoints: s.endpoints.clone(),
                fallback: Box::new(LoadedServiceConfig(loaded)),
            })
            .build();

        let mut builder = match &s.assume_role {
            None => base.into_builder(),
            Some(role) => {
                // The AssumeRole client is built from `base` (region, endpoints, base
                // credentials) and keeps the SDK's standard retry: it runs while credentials
                // are resolved, where the retry layer cannot retry it (see above). No STS call
                // happens until credentials are first needed.
                let mut b = AssumeRoleProvider::builder(role.role_arn.clone())
                    .configure(&base)
                    .session_name(role.session_name.as_deref().unwrap_or(DEFAULT_SESSION_NAME));
                if let Some(id) = &role.external_id {
                    b = b.external_id(id.clone());
                }
                let provider = b.build().await;
                base.into_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
            }
        };

        // One attempt per SDK call: the retry layer (crate::aws::retry) owns retries. Under
        // the SDK's standard mode every call would make up to 3 attempts of its own, multiplying
        // ours (25 retries would become 78 requests, with two back-off schedules stacked and
        // neither aware of the operation's deadline or of Terraform's Ctrl-C). Worse, standard
        // mode draws each retry from a client-wide retry quota (a token bucket) that sustained
        // throttling drains; once empty, the SDK stops retrying altogether and fails fast,
        // which is exactly when retries are needed. Adaptive mode adds a client-side rate
        // limiter whose sleeps ignore deadlines too. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE are
        // therefore ignored for service calls; max_retries is the one knob.
        builder.set_retry_config(Some(RetryConfig::disabled()));
        let config = builder.build();

        tracing::debug!(
            region = config.region().map(|r| r.as_ref()),
            profile = s.profile.as_deref(),
            assume_role = s.assume_role.as_ref().map(|r| r.role_arn.as_str()),
            endpoints = ?s.endpoints,
            max_retries = s.max_retries,
            "AWS SDK configuration loaded"
        );
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn key(service_id: &str) -> ServiceConfigKey<'_> {
        ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap()
    }

    fn full_config() -> Value {
        obj(&[
            ("region", "ap-southeast-2".into()),
            ("profile", "ops".into()),
            ("max_retries", 7.into()),
            (
                "assume_role",
                obj(&[
                    ("role_arn", "arn:aws:iam::123456789012:role/deploy".into()),
                    ("session_name", "ci".into()),
                    ("external_id", "ext-42".into()),
                ]),
            ),
            (
                "endpoints",
                obj(&[
                    ("ec2", "http://localhost:4566".into()),
                    ("autoscaling", Value::Null),
                    ("iam", "".into()),
                    ("lambda", Value::Null),
                    ("events", Value::Null),
                    ("logs", Value::Null),
                    ("sts", "https://sts.example.com".into()),
                ]),
            ),
            (
                "default_tags",
                obj(&[(
                    "tags",
                    Value::Map(BTreeMap::from([
                        ("Owner".to_string(), "ops".into()),
                        ("Gone".to_string(), Value::Null),
                    ])),
                )]),
            ),
        ])
    }

    #[test]
    fn settings_from_a_full_configuration() {
        let s = ProviderSettings::from_value(&full_config());
        assert_eq!(s.region.as_deref(), Some("ap-southeast-2"));
        assert_eq!(s.profile.as_deref(), Some("ops"));
        assert_eq!(s.max_retries, 7);
        assert_eq!(
            s.assume_role,
            Some(AssumeRole {
                role_arn: "arn:aws:iam::123456789012:role/deploy".into(),
                session_name: Some("ci".into()),
                external_id: Some("ext-42".into()),
            })
        );
        assert_eq!(
            s.endpoints,
            BTreeMap::from([
                (Service::Ec2, "http://localhost:4566".to_string()),
                (Service::Sts, "https://sts.example.com".to_string()),
            ])
        );
        assert_eq!(
            s.default_tags,
            BTreeMap::from([("Owner".to_string(), "ops".to_string())])
        );
        assert!(s.unknown.is_empty());
        assert_eq!(s.retry_policy().max_attempts, 8);
    }

    #[test]
    fn settings_from_nulls_and_unknowns() {
        // Everything null: the defaults.
        let nulls = obj(&[
            ("region", Value::Null),
            ("profile", Value::Null),
            ("max_retries", Value::Null),
            ("assume_role", Value::Null),
            ("endpoints", Value::Null),
            ("default_tags", Value::Null),
        ]);
        assert_eq!(
            ProviderSettings::from_value(&nulls),
            ProviderSettings::default()
        );
        assert_eq!(
            ProviderSettings::from_value(&Value::Null),
            ProviderSettings::default()
        );
        assert_eq!(ProviderSettings::default().max_retries, 25);

        let v = obj(&[
            ("region", Value::Unknown),
            ("max_retries", Value::Unknown),
            ("assume_role", obj(&[("role_arn", Value::Unknown)])),
            ("endpoints", Value::Unknown),
            (
                "default_tags",
                obj(&[(
                    "tags",
                    Value::Map(BTreeMap::from([
                        ("A".to_string(), "a".into()),
                        ("B".to_string(), Value::Unknown),
                    ])),
                )]),
            ),
        ]);
        let s = ProviderSettings::from_value(&v);
        assert_eq!(s.region, None);
        assert_eq!(s.assume_role, None);
        assert_eq!(s.max_retries, DEFAULT_MAX_RETRIES);
        assert_eq!(s.default_tags.len(), 1);
        assert_eq!(
            s.unknown,
            [
                "region",
                "max_retries",
                "assume_role.role_arn",
                "endpoints",
                "default_tags.tags[\"B\"]"
            ]
        );
        assert!(!s.default_tags_known());
        assert_eq!(
            s.unknown_connection_settings(),
            ["region", "assume_role.role_arn", "endpoints"]
        );
    }

    #[test]
    fn out_of_range_max_retries_is_clamped() {
        let s = ProviderSettings::from_value(&obj(&[("max_retries", 1000.into())]));
        assert_eq!(s.max_retries, MAX_MAX_RETRIES);
        let s = ProviderSettings::from_value(&obj(&[("max_retries", (-3).into())]));
        assert_eq!(s.max_retries, 0);
    }

    #[test]
    fn services_know_their_names() {
        assert_eq!(
            Service::AutoScaling.endpoint_env_var(),
            "AWS_ENDPOINT_URL_AUTO_SCALING"
        );
        assert_eq!(
            Service::Logs.endpoint_env_var(),
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"
        );
        assert_eq!(
            Service::Events.endpoint_env_var(),
            "AWS_ENDPOINT_URL_EVENTBRIDGE"
        );
        for s in Service::ALL {
            assert_eq!(Service::from_service_id(s.service_id()), Some(s));
            assert_eq!(Service::from_attribute_name(s.attribute_name()), Some(s));
        }
        assert_eq!(
            Service::from_service_id("auto scaling"),
            Some(Service::AutoScaling)
        );
        assert_eq!(Service::from_service_id("S3"), None);
    }

    /// Stands in for aws-config's environment: per-service variables for EC2 and Lambda.
    #[derive(Debug)]
    struct FakeEnv;
    impl LoadServiceConfig for FakeEnv {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            match (key.service_id(), key.env()) {
                ("EC2", "AWS_ENDPOINT_URL") => Some("http://env-ec2".into()),
                ("Lambda", "AWS_ENDPOINT_URL") => Some("http://env-lambda".into()),
                (_, "AWS_MAX_ATTEMPTS") => Some("9".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn explicit_endpoints_win_over_the_environment() {
        let cfg = ExplicitEndpoints {
            endpoints: BTreeMap::from([
                (Service::Ec2, "http://explicit-ec2".to_string()),
                (Service::Iam, "http://explicit-iam".to_string()),
            ]),
            fallback: Box::new(FakeEnv),
        };
        assert_eq!(
            cfg.load_config(key("EC2")).as_deref(),
            Some("http://explicit-ec2")
        );
        assert_eq!(
            cfg.load_config(key("IAM")).as_deref(),
            Some("http://explicit-iam")
        );
        // Not in the block: the environment decides.
        assert_eq!(
            cfg.load_config(key("Lambda")).as_deref(),
            Some("http://env-lambda")
        );
        assert_eq!(cfg.load_config(key("STS")), None);
        // Other settings pass through untouched.
        let attempts = ServiceConfigKey::builder()
            .service_id("EC2")
            .env("AWS_MAX_ATTEMPTS")
            .profile("max_attempts")
            .build()
            .unwrap();
        assert_eq!(cfg.load_config(attempts).as_deref(), Some("9"));
    }

    #[tokio::test]
    async fn nothing_is_resolved_until_first_use_and_then_once() {
        let mut settings = ProviderSettings::from_value(&full_config());
        settings.profile = None; // The host's profile files are not the test's business.
        let ctx = AwsContext::isolated(settings);
        assert!(!ctx.is_loaded());
        assert_eq!(ctx.loads.load(Ordering::SeqCst), 0);
        assert_eq!(
            ctx.endpoint_for(Service::Ec2).as_deref(),
            Some("http://localhost:4566")
        );
        assert_eq!(ctx.endpoint_for(Service::Lambda), None);

        // Loading needs no network: the region is explicit, and credentials (AssumeRole
        // included) are resolved only when a request is signed.
        let cfg = ctx.sdk_config().await.unwrap();
        assert!(ctx.is_loaded());
        assert_eq!(cfg.region().map(|r| r.as_ref()), Some("ap-southeast-2"));
        assert_eq!(cfg.retry_config().map(|r| r.max_attempts()), Some(1));
        assert_eq!(
            cfg.timeout_config()
                .and_then(|t| t.operation_attempt_timeout()),
            Some(ATTEMPT_TIMEOUT)
        );
        assert!(cfg.credentials_provider().is_some());
        let sc = cfg.service_config().unwrap();
        assert_eq!(
            sc.load_config(key("EC2")).as_deref(),
            Some("http://localhost:4566")
        );
        assert_eq!(
            sc.load_config(key("STS")).as_deref(),
            Some("https://sts.example.com")
        );
        assert_eq!(sc.load_config(key("Lambda")), None);

        let again = ctx.sdk_config().await.unwrap();
        assert!(std::ptr::eq(cfg, again));
        assert_eq!(ctx.loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_connection_settings_fail_at_first_use() {
        let v = obj(&[("region", Value::Unknown)]);
        let ctx = AwsContext::isolated(ProviderSettings::from_value(&v));
        let err = ctx.sdk_config().await.unwrap_err().to_string();
        assert!(err.contains("not known yet (region)"), "{err}");
        assert!(!ctx.is_loaded());
    }
}
