//! The error of one AWS operation, as the resource logic and the user see it: which call,
//! AWS's error code and message, and how many attempts were made.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::retry::RetryError;

/// Why an AWS operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// AWS answered with an error (or the request could not be sent) and retrying would not
    /// help, or the attempt limit was reached.
    Aws,
    /// The operation's deadline (a `timeouts` value) passed.
    Timeout,
    /// Terraform asked the provider to stop.
    Cancelled,
}

/// The code of [`AwsError::launch_failed`] (ours, not AWS's: the scaling activity has none).
pub const LAUNCH_FAILED: &str = "LaunchFailed";

/// One failed AWS operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    /// The call, `service:Operation` (e.g. `ec2:AttachVolume`).
    pub op: String,
    /// AWS's error code (`InvalidVolume.NotFound`), when AWS answered.
    pub code: Option<String>,
    /// AWS's message, or a description of the transport failure.
    pub message: String,
    pub attempts: u32,
    pub kind: FailureKind,
}

impl AwsError {
    /// An error the provider itself raises about a call's result (e.g. an object AWS said it
    /// created but does not list).
    pub fn other(op: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            op: op.into(),
            code: None,
            message: message.into(),
            attempts: 1,
            kind: FailureKind::Aws,
        }
    }

    /// A wait that ran out of time.
    /// Auto Scaling could not launch the group's instance, for a reason no retry fixes
    /// (`message`: the Failed scaling activity's StatusMessage).
    pub fn launch_failed(group: &str, message: &str) -> Self {
        AwsError {
            code: Some(LAUNCH_FAILED.into()),
            ..Self::other(
                "autoscaling:DescribeScalingActivities",
                format!("group {group} cannot launch its instance: {message}"),
            )
        }
    }

    pub fn timeout(what: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            kind: FailureKind::Timeout,
            ..Self::other(what, message)
        }
    }

    pub fn cancelled(what: impl Into<String>) -> Self {
        AwsError {
            kind: FailureKind::Cancelled,
            ..Self::other(what, "cancelled: Terraform asked the provider to stop")
        }
    }

    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether AWS answered with one of `codes`.
    pub fn is_code(&self, codes: &[&str]) -> bool {
        self.code().is_some_and(|c| codes.contains(&c))
    }

    /// Whether AWS said the object does not exist: the codes of every service the provider
    /// uses. (Auto Scaling has no such code: its describe calls return empty lists.)
    pub fn is_not_found(&self) -> bool {
        self.code().is_some_and(|c| {
            c.ends_with(".NotFound")
                // EC2's answer for a launch template version deleted by hand (its template
                // still exists): the version is simply gone.
                || c == "InvalidLaunchTemplateId.VersionNotFound"
                || c.ends_with("NotFoundException")
                || c == "NoSuchEntity"
                || c == "InvalidAllocationID.NotFound"
        })
    }

    /// Converts the outcome of [`super::retry::retry`] over an SDK call.
    pub fn from_retry<E>(err: RetryError<SdkError<E, HttpResponse>>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = if err.is_timeout() {
            FailureKind::Timeout
        } else if err.is_cancelled() {
            FailureKind::Cancelled
        } else {
            FailureKind::Aws
        };
        let op = err.op().to_string();
        let attempts = err.attempts();
        match err.into_last_error() {
            Some(sdk) => {
                let code = match &sdk {
                    SdkError::ServiceError(ctx) => ctx.err().code().map(str::to_string),
                    _ => None,
                };
                let message = match &sdk {
                    SdkError::ServiceError(ctx) => ctx
                        .err()
                        .message()
                        .map(str::to_string)
                        .unwrap_or_else(|| DisplayErrorContext(&sdk).to_string()),
                    _ => DisplayErrorContext(&sdk).to_string(),
                };
                AwsError {
                    op,
                    code,
                    message,
                    attempts,
                    kind,
                }
            }
            None => AwsError {
                op,
                code: None,
                message: match kind {
                    FailureKind::Cancelled => {
                        "cancelled before the first attempt: Terraform asked the provider to stop"
                            .into()
                    }
                    _ => "the deadline passed before the first attempt".into(),
                },
                attempts,
                kind,
            },
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.op)?;
        match self.kind {
            FailureKind::Timeout => write!(f, "timed out: ")?,
            FailureKind::Cancelled => write!(f, "cancelled: ")?,
            FailureKind::Aws => {}
        }
        if let Some(code) = &self.code {
            write!(f, "{code}: ")?;
        }
        write!(f, "{}", self.message)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_call_and_the_code() {
        let mut e = AwsError::other("ec2:AttachVolume", "vol-1 is in use");
        e.code = Some("VolumeInUse".into());
        e.attempts = 3;
        assert_eq!(
            e.to_string(),
            "ec2:AttachVolume: VolumeInUse: vol-1 is in use (after 3 attempts)"
        );
        assert!(e.is_code(&["VolumeInUse"]));
        assert!(!e.is_not_found());
        let t = AwsError::timeout("waiting for vol-1", "still attached");
        assert_eq!(
            t.to_string(),
            "waiting for vol-1: timed out: still attached"
        );
    }

    #[test]
    fn not_found_codes_of_every_service() {
        for code in [
            "InvalidVpcID.NotFound",
            "InvalidVolume.NotFound",
            "InvalidAllocationID.NotFound",
            "NoSuchEntity",
            "ResourceNotFoundException",
            "InvalidLaunchTemplateId.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "InvalidLaunchTemplateId.VersionNotFound",
        ] {
            let mut e = AwsError::other("x", "y");
            e.code = Some(code.into());
            assert!(e.is_not_found(), "{code}");
        }
    }
}
