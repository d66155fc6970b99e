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
            StepCause::Aws(e) => format!("AWS answered: {e}"),
            StepCause::Problem(p) => p.clone(),
        }
    }
}

/// Adds one error diagnostic per failed step.
pub fn report(diags: &mut Diagnostics, errors: &[StepError], after: &str) {
    for e in errors {
        diags.error(e.summary(), format!("{}\n\n{after}", e.detail()));
    }
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
