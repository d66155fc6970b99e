//! A failed step of an operation: which object, what AWS said. Turned into the diagnostic the
//! user sees.

use crate::aws::AwsError;
use crate::plugin::diagnostics::Diagnostics;

#[derive(Debug)]
pub struct StepError {
    /// The object the step was about, as a user calls it ("data volume", "Lambda function
    /// web-attach").
    pub object: String,
    /// What the step was doing ("create", "wait for", "delete").
    pub action: &'static str,
    pub error: StepCause,
}

#[derive(Debug)]
pub enum StepCause {
    Aws(AwsError),
    /// A problem the provider found itself (a subnet in the wrong zone, ...).
    Problem(String),
}

impl StepError {
    pub fn aws(action: &'static str, object: impl Into<String>, error: AwsError) -> Self {
        StepError {
            object: object.into(),
            action,
            error: StepCause::Aws(error),
        }
    }

    pub fn problem(
        action: &'static str,
        object: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        StepError {
            object: object.into(),
            action,
            error: StepCause::Problem(text.into()),
        }
    }

    pub fn summary(&self) -> String {
        format!("Failed to {} {}", self.action, self.object)
    }

    pub fn detail(&self) -> String {
        match &self.error {
            StepCause::Aws(e) => match quota_hint(e).or_else(|| launch_hint(e)) {
                Some(hint) => format!("AWS answered: {e}\n\n{hint}"),
                None => format!("AWS answered: {e}"),
            },
            StepCause::Problem(p) => p.clone(),
        }
    }
}

/// What to do about an account quota AWS reports: the quotas that limit how many stacks a
/// region holds (each stack without `subnet_id` makes a VPC; each without
/// `existing_allocation_id` an Elastic IP). AWS's default is 5 of each per region.
fn quota_hint(e: &AwsError) -> Option<&'static str> {
    match e.code()? {
        "VpcLimitExceeded" => Some(
            "This account has reached its VPC quota in this region (AWS's default: 5 per \
             region; \"VPCs per Region\" in Service Quotas). Each stack without `subnet_id` \
             makes one: give the stacks a `subnet_id` of an existing VPC, or request a higher \
             quota.",
        ),
        "AddressLimitExceeded" => Some(
            "This account has reached its Elastic IP quota in this region (AWS's default: 5 \
             per region; \"EC2-VPC Elastic IPs\" in Service Quotas). Each stack without \
             `existing_allocation_id` allocates one: release unused addresses, or request a \
             higher quota.",
        ),
        _ => None,
    }
}

/// Which attribute to change when Auto Scaling cannot launch the instance, from the Failed
/// scaling activity's StatusMessage (AWS's wording for each cause).
fn launch_hint(e: &AwsError) -> Option<&'static str> {
    if e.code()? != crate::aws::error::LAUNCH_FAILED {
        return None;
    }
    let m = e.message.as_str();
    Some(if m.contains("image id") && m.contains("does not exist") {
        "Change `ami` to an AMI that exists in this region and that this account may launch."
    } else if m.contains("architecture") {
        "Change `ami` or `instance_type` so that their architectures match (an arm64 type \
         such as t4g needs an arm64 AMI)."
    } else if m.contains("not supported in your requested Availability Zone") {
        "Change `instance_type` to one offered in the stack's zone, or move the stack: \
         `availability_zone`, or `subnet_id` in a zone that offers it."
    } else {
        "Check `ami`, `instance_type`, `key_name` and the subnet against AWS's message; \
         the group retries the same launch and fails the same way until one changes."
    })
}

/// Adds one error diagnostic per failed step.
pub fn report(diags: &mut Diagnostics, errors: &[StepError], after: &str) {
    for e in errors {
        diags.error(e.summary(), format!("{}\n\n{after}", e.detail()));
    }
}

/// The first failure of steps that ran at once, for a caller that reports one error (the
/// converge steps, which `update` chains with `?`). The later ones are logged, so none is
/// lost, and appear in Terraform's diagnostics at the next apply if they persist.
pub fn first_failure<const N: usize>(results: [Result<(), StepError>; N]) -> Result<(), StepError> {
    let mut first = None;
    for e in results.into_iter().filter_map(Result::err) {
        match first {
            None => first = Some(e),
            Some(_) => tracing::error!(
                summary = %e.summary(),
                detail = %e.detail(),
                "a step beside the one reported failed too"
            ),
        }
    }
    first.map_or(Ok(()), Err)
}

/// `?`-style helper: maps an AwsError to a StepError about `object`.
pub trait StepResult<T> {
    fn step(self, action: &'static str, object: impl Into<String>) -> Result<T, StepError>;
}

impl<T> StepResult<T> for Result<T, AwsError> {
    fn step(self, action: &'static str, object: impl Into<String>) -> Result<T, StepError> {
        self.map_err(|e| StepError::aws(action, object, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws(code: &str) -> AwsError {
        let mut e = AwsError::other(
            "ec2:CreateVpc",
            "The maximum number of VPCs has been reached.",
        );
        e.code = Some(code.into());
        e
    }

    #[test]
    fn launch_failures_name_the_attribute_to_change() {
        let detail = |message: &str| {
            StepError::aws(
                "wait for",
                "Auto Scaling group g",
                AwsError::launch_failed("g", message),
            )
            .detail()
        };
        let d = detail("The image id '[ami-0123]' does not exist. Launching EC2 instance failed.");
        assert!(d.contains("ami-0123") && d.contains("Change `ami`"), "{d}");
        let d = detail(
            "The architecture 'arm64' of the specified instance type does not match the \
             architecture 'x86_64' of the specified AMI.",
        );
        assert!(d.contains("`instance_type`"), "{d}");
        let d = detail(
            "Your requested instance type (t4g.nano) is not supported in your requested \
             Availability Zone (ap-southeast-2c).",
        );
        assert!(d.contains("`availability_zone`"), "{d}");
        // Not a launch failure: no launch hint.
        assert!(!StepError::aws("create", "x", aws("Throttling"))
            .detail()
            .contains("Change"));
    }

    #[test]
    fn quota_errors_say_which_quota_and_what_to_do() {
        let vpc = StepError::aws("create", "VPC", aws("VpcLimitExceeded")).detail();
        assert!(
            vpc.contains("VPC quota") && vpc.contains("subnet_id"),
            "{vpc}"
        );
        let eip = StepError::aws("allocate", "Elastic IP", aws("AddressLimitExceeded")).detail();
        assert!(
            eip.contains("Elastic IP quota") && eip.contains("existing_allocation_id"),
            "{eip}"
        );
        let other = StepError::aws("create", "VPC", aws("UnauthorizedOperation")).detail();
        assert!(!other.contains("quota"), "{other}");
    }

    #[test]
    fn of_steps_that_ran_at_once_the_first_failure_in_their_order_is_reported() {
        let failed = |what: &'static str| Err(StepError::problem("set", what, "no"));
        assert!(first_failure([Ok(()), Ok(())]).is_ok());
        let e = first_failure([Ok(()), failed("target"), failed("permission")]).unwrap_err();
        assert_eq!(e.object, "target");
        let e = first_failure([failed("budget"), Ok(())]).unwrap_err();
        assert_eq!(e.object, "budget");
    }
}
