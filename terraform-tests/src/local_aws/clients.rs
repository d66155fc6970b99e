//! AWS SDK clients pointed at a local AWS server: its endpoint, its region and dummy static
//! credentials (the server accepts any).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::Credentials;

/// One client per service the autoheal pattern uses.
#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Clients {
    /// Clients for the server at `endpoint` (`http://127.0.0.1:PORT`) in `region`.
    pub async fn new(endpoint: &str, region: &str) -> Self {
        Self::from_config(sdk_config(endpoint, region).await)
    }

    /// Clients with a given shared configuration (e.g. with retries turned off).
    pub fn from_config(config: SdkConfig) -> Self {
        Self {
            ec2: aws_sdk_ec2::Client::new(&config),
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            eventbridge: aws_sdk_eventbridge::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            config,
        }
    }
}

/// The shared SDK configuration for a local AWS server: endpoint, region, static
/// credentials `test`/`test`, the SDK's standard retries.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    config_loader(endpoint, region).load().await
}

/// The loader behind [`sdk_config`], to adjust (retry config, timeouts) before loading.
pub fn config_loader(endpoint: &str, region: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("test", "test", None, None, "local"))
}
