//! The launch template: the instance's AMI, type, key, security groups, instance profile (none
//! unless the user names one), IMDSv2 (required, hop limit 1: no container on the instance can
//! reach the metadata service), its root volume (encrypted, deleted with the instance) and
//! user data (the mount script plus the user's). Each change is a new version; the group
//! names the version.

use aws_sdk_ec2::types::{
    LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType,
};

use super::context::OpContext;
use super::error::AwsError;
use super::tags::{ec2, ec2_spec, Tags};

/// What goes into one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateData {
    pub image_id: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    /// The stack's group first, then the user's (`security_group_ids`).
    pub security_group_ids: Vec<String>,
    /// Name or ARN of the instance profile; none by default.
    pub iam_instance_profile: Option<String>,
    /// The AMI's root device name (from DescribeImages): its volume is made encrypted and
    /// deleted on termination. `None` when the AMI is not found (the launch fails anyway,
    /// with EC2's message).
    pub root_device_name: Option<String>,
    /// Base64, as EC2 wants it.
    pub user_data_base64: String,
    /// Tags of the instance and its root volume (the group's tags also reach the instance).
    pub tags: Tags,
    /// Instance tags in the metadata service (zone failover: the boot script reads the
    /// group's `autoheal:active-volume` tag there).
    pub instance_metadata_tags: bool,
}

/// A version as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: i64,
    pub image_id: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub security_group_ids: Vec<String>,
    pub iam_instance_profile: Option<String>,
    /// Root device name and whether it is encrypted, when the version maps it.
    pub root_volume_encrypted: Option<(String, bool)>,
    pub user_data_base64: String,
    pub http_tokens: Option<String>,
    pub hop_limit: Option<i32>,
}

fn request_data(data: &TemplateData) -> RequestLaunchTemplateData {
    let tag_spec = |t: ResourceType| {
        LaunchTemplateTagSpecificationRequest::builder()
            .resource_type(t)
            .set_tags(Some(ec2(&data.tags)))
            .build()
    };
    // The root volume: encrypted with the account's default EBS key, whatever the AMI's
    // snapshot is; size and type stay the AMI's. A customer-managed default key needs the
    // Auto Scaling service-linked role's access to it (README, "Encryption").
    let root = data.root_device_name.as_ref().map(|name| {
        LaunchTemplateBlockDeviceMappingRequest::builder()
            .device_name(name)
            .ebs(
                LaunchTemplateEbsBlockDeviceRequest::builder()
                    .encrypted(true)
                    .delete_on_termination(true)
                    .build(),
            )
            .build()
    });
    let profile = data.iam_instance_profile.as_ref().map(|p| {
        let b = LaunchTemplateIamInstanceProfileSpecificationRequest::builder();
        if p.starts_with("arn:") {
            b.arn(p).build()
        } else {
            b.name(p).build()
        }
    });
    RequestLaunchTemplateData::builder()
        .image_id(&data.image_id)
        .instance_type(data.instance_type.as_str().into())
        .set_key_name(data.key_name.clone())
        .set_security_group_ids(Some(data.security_group_ids.clone()))
        .set_block_device_mappings(root.map(|r| vec![r]))
        .set_iam_instance_profile(profile)
        .user_data(&data.user_data_base64)
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_put_response_hop_limit(1)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .set_instance_metadata_tags(data.instance_metadata_tags.then_some(
                    aws_sdk_ec2::types::LaunchTemplateInstanceMetadataTagsState::Enabled,
                ))
                .build(),
        )
        .tag_specifications(tag_spec(ResourceType::Instance))
        .tag_specifications(tag_spec(ResourceType::Volume))
        .build()
}

/// Creates the template with its first version. Returns (template id, version 1).
pub async fn create(
    ctx: &OpContext,
    name: &str,
    data: &TemplateData,
    tags: &Tags,
) -> Result<(String, i64), AwsError> {
    // One token for this create, kept across its retries: a repeat returns the first answer.
    let token = super::context::unique_token();
    let out = ctx
        .call(
            "ec2:CreateLaunchTemplate",
            &["InvalidGroup.NotFound"],
            || {
                ctx.clients
                    .ec2
                    .create_launch_template()
                    .client_token(&token)
                    .launch_template_name(name)
                    .version_description("autoheal")
                    .launch_template_data(request_data(data))
                    .tag_specifications(ec2_spec(ResourceType::LaunchTemplate, tags))
                    .send()
            },
        )
        .await?;
    let t = out.launch_template().ok_or_else(|| {
        AwsError::other(
            "ec2:CreateLaunchTemplate",
            "no launch template in the answer",
        )
    })?;
    let id = t.launch_template_id().unwrap_or_default().to_string();
    let version = t.latest_version_number().unwrap_or(1);
    tracing::info!(launch_template_id = id, version, "created launch template");
    Ok((id, version))
}

/// A new version; returns its number.
pub async fn create_version(
    ctx: &OpContext,
    template_id: &str,
    data: &TemplateData,
) -> Result<i64, AwsError> {
    let token = super::context::unique_token();
    let out = ctx
        .call("ec2:CreateLaunchTemplateVersion", &[], || {
            ctx.clients
                .ec2
                .create_launch_template_version()
                .client_token(&token)
                .launch_template_id(template_id)
                .version_description("autoheal")
                .launch_template_data(request_data(data))
                .send()
        })
        .await?;
    let version = out
        .launch_template_version()
        .and_then(|v| v.version_number())
        .ok_or_else(|| {
            AwsError::other(
                "ec2:CreateLaunchTemplateVersion",
                "no version in the answer",
            )
        })?;
    tracing::info!(
        launch_template_id = template_id,
        version,
        "created launch template version"
    );
    Ok(version)
}

pub async fn find_version(
    ctx: &OpContext,
    template_id: &str,
    version: i64,
) -> Result<Option<VersionInfo>, AwsError> {
    let out = ctx
        .find("ec2:DescribeLaunchTemplateVersions", || {
            ctx.clients
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(template_id)
                .versions(version.to_string())
                .send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.launch_template_versions().first().map(|v| {
            let d = v.launch_template_data();
            VersionInfo {
                version: v.version_number().unwrap_or(version),
                image_id: d.and_then(|d| d.image_id()).unwrap_or_default().to_string(),
                instance_type: d
                    .and_then(|d| d.instance_type())
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                key_name: d.and_then(|d| d.key_name()).map(str::to_string),
                security_group_ids: d
                    .map(|d| d.security_group_ids().to_vec())
                    .unwrap_or_default(),
                iam_instance_profile: d
                    .and_then(|d| d.iam_instance_profile())
                    .and_then(|p| p.arn().or(p.name()).map(str::to_string)),
                root_volume_encrypted: d.and_then(|d| d.block_device_mappings().first()).and_then(
                    |m| {
                        Some((
                            m.device_name()?.to_string(),
                            m.ebs().and_then(|e| e.encrypted()).unwrap_or(false),
                        ))
                    },
                ),
                user_data_base64: d
                    .and_then(|d| d.user_data())
                    .unwrap_or_default()
                    .to_string(),
                http_tokens: d
                    .and_then(|d| d.metadata_options())
                    .and_then(|m| m.http_tokens())
                    .map(|t| t.as_str().to_string()),
                hop_limit: d
                    .and_then(|d| d.metadata_options())
                    .and_then(|m| m.http_put_response_hop_limit()),
            }
        })
    }))
}

/// The root device name of `image_id` (DescribeImages), `None` when EC2 does not know the
/// image (the launch then fails with EC2's message, which the provider reports).
pub async fn root_device_name(ctx: &OpContext, image_id: &str) -> Result<Option<String>, AwsError> {
    let out = ctx
        .find("ec2:DescribeImages", || {
            ctx.clients.ec2.describe_images().image_ids(image_id).send()
        })
        .await?;
    Ok(out
        .as_ref()
        .and_then(|o| o.images().first())
        .and_then(|i| i.root_device_name())
        .map(str::to_string))
}

pub async fn delete(ctx: &OpContext, template_id: &str) -> Result<(), AwsError> {
    ctx.delete("ec2:DeleteLaunchTemplate", &[], || {
        ctx.clients
            .ec2
            .delete_launch_template()
            .launch_template_id(template_id)
            .send()
    })
    .await?;
    tracing::info!(launch_template_id = template_id, "deleted launch template");
    Ok(())
}
