//! The README's deployer, set up in a local AWS as an administrator would set it up in an
//! account: the permissions boundary `autoheal-lambda-boundary` (README's `<!-- policy:
//! boundary -->` block), an IAM user `deployer` with the README's two `<!-- policy: deployer
//! -->` blocks as customer managed policies attached to it (as README says: the policy is
//! more than one managed policy may hold), and an access key. All of it is made with the
//! tests' own credentials, which the local AWS does not evaluate.
//!
//! The local AWS evaluates every call signed with a key its IAM issued to a user against
//! that user's policies (realistic profile, `iam_evaluation` on; localaws/iam_enforce.py), so
//! [`Deployer::terraform_env`] and [`Deployer::clients`] act as the deployer.

use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_ec2::config::Credentials;
use serde_json::Value;

use crate::local_aws::clients::config_loader;
use crate::local_aws::{Clients, LocalAws};
use crate::workspace_root;

/// The boundary's name, as README tells the administrator to create it.
pub const BOUNDARY_NAME: &str = "autoheal-lambda-boundary";
/// The deployer user's name.
pub const DEPLOYER_USER: &str = "deployer";
/// The names of the managed policies that hold README's deployer blocks, in order.
pub const DEPLOYER_POLICY_NAMES: [&str; 4] = [
    "autoheal-deployer-ec2",
    "autoheal-deployer",
    "autoheal-deployer-lambda",
    "autoheal-deployer-alarms",
];

pub fn readme_path() -> PathBuf {
    workspace_root().join("README.md")
}

/// README's ```json blocks marked `<!-- policy: <marker> -->`, in order.
pub fn readme_policies(marker: &str) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(readme_path()).context("reading README.md")?;
    let mark = format!("<!-- policy: {marker} -->");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&mark) {
        rest = &rest[at + mark.len()..];
        let body = rest
            .trim_start()
            .strip_prefix("```json")
            .with_context(|| format!("README: {mark} is not followed by a ```json block"))?;
        let end = body
            .find("```")
            .with_context(|| format!("README: the block after {mark} is not closed"))?;
        out.push(
            serde_json::from_str(&body[..end])
                .with_context(|| format!("README: the block after {mark} is not JSON"))?,
        );
    }
    anyhow::ensure!(!out.is_empty(), "README has no block marked {mark}");
    Ok(out)
}

/// The deployer an administrator made: its ARN, its access key and the boundary's ARN.
#[derive(Debug, Clone)]
pub struct Deployer {
    pub user_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub boundary_arn: String,
    pub policy_arns: Vec<String>,
}

impl Deployer {
    /// Creates the boundary, the user with README's deployer policies and its access key,
    /// with `admin`'s (unevaluated) credentials.
    pub async fn create(admin: &Clients) -> anyhow::Result<Deployer> {
        let iam = &admin.iam;
        let [boundary] = <[Value; 1]>::try_from(readme_policies("boundary")?)
            .map_err(|v| anyhow::anyhow!("README has {} boundary blocks, not 1", v.len()))?;
        let boundary_arn = iam
            .create_policy()
            .policy_name(BOUNDARY_NAME)
            .policy_document(boundary.to_string())
            .send()
            .await
            .context("creating the boundary policy")?
            .policy()
            .and_then(|p| p.arn())
            .context("CreatePolicy returned no ARN")?
            .to_string();
        let blocks = readme_policies("deployer")?;
        anyhow::ensure!(
            blocks.len() == DEPLOYER_POLICY_NAMES.len(),
            "README has {} deployer blocks, not {}",
            blocks.len(),
            DEPLOYER_POLICY_NAMES.len()
        );
        let user_arn = iam
            .create_user()
            .user_name(DEPLOYER_USER)
            .send()
            .await
            .context("creating the deployer user")?
            .user()
            .map(|u| u.arn().to_string())
            .context("CreateUser returned no user")?;
        let mut policy_arns = Vec::new();
        for (name, block) in DEPLOYER_POLICY_NAMES.iter().zip(&blocks) {
            let arn = iam
                .create_policy()
                .policy_name(*name)
                .policy_document(block.to_string())
                .send()
                .await
                .with_context(|| format!("creating the deployer policy {name}"))?
                .policy()
                .and_then(|p| p.arn())
                .context("CreatePolicy returned no ARN")?
                .to_string();
            iam.attach_user_policy()
                .user_name(DEPLOYER_USER)
                .policy_arn(&arn)
                .send()
                .await
                .with_context(|| format!("attaching {arn} to the deployer"))?;
            policy_arns.push(arn);
        }
        let key = iam
            .create_access_key()
            .user_name(DEPLOYER_USER)
            .send()
            .await
            .context("creating the deployer's access key")?;
        let key = key
            .access_key()
            .context("CreateAccessKey returned no key")?;
        Ok(Deployer {
            user_arn,
            access_key_id: key.access_key_id().to_string(),
            secret_access_key: key.secret_access_key().to_string(),
            boundary_arn,
            policy_arns,
        })
    }

    /// SDK clients on `aws` signing as the deployer.
    pub async fn clients(&self, aws: &LocalAws) -> Clients {
        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            None,
            None,
            "deployer",
        );
        Clients::from_config(
            config_loader(aws.endpoint(), aws.region())
                .credentials_provider(credentials)
                .load()
                .await,
        )
    }

    /// The environment that makes Terraform and the provider sign as the deployer (for
    /// [`crate::stack_world::World::terraform_with`]).
    pub fn terraform_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
        ]
    }
}
