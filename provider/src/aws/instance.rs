//! EC2 instances the group launched: only read here (the group owns their lifecycle).

use super::context::OpContext;
use super::error::AwsError;

/// The EC2 state of an instance (`pending`, `running`, `shutting-down`, `terminated`, ...),
/// `None` when EC2 does not know it.
pub async fn state(ctx: &OpContext, instance_id: &str) -> Result<Option<String>, AwsError> {
    let out = ctx
        .find("ec2:DescribeInstances", || {
            ctx.clients
                .ec2
                .describe_instances()
                .instance_ids(instance_id)
                .send()
        })
        .await?;
    Ok(out.and_then(|o| {
        o.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .and_then(|i| i.state())
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
    }))
}
