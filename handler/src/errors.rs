//! AWS errors reduced to what the heal needs to know: retry, look again, done, or give up.
//! `aws.rs` fills [`AwsError`] from the SDK; [`classify`] is a pure function of it.

use std::fmt;

/// One failed AWS call, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub operation: &'static str,
    /// The service's error code (`UnauthorizedOperation`, `Throttling`, …), when it answered.
    pub code: Option<String>,
    pub message: Option<String>,
    pub http_status: Option<u16>,
    /// No usable answer: connect or read failure, timeout, unparsable response.
    pub transport: bool,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.operation)?;
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, "{c}: {m}")?,
            (Some(c), None) => write!(f, "{c}")?,
            (None, Some(m)) => write!(f, "{m}")?,
            (None, None) => write!(f, "unknown error")?,
        }
        if let Some(s) = self.http_status {
            write!(f, " (HTTP {s})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, 5xx, transport trouble: the same call again, after a backoff, within the
    /// deadline.
    Retry,
    /// The instance is not visible yet (EC2 is eventually consistent right after a launch).
    NotFoundYet,
    /// The state changed under us (the volume is still attaching/detaching, the instance is
    /// not ready): observe again and decide again.
    Conflict,
    /// CompleteLifecycleAction / heartbeat: "No active Lifecycle Action found" — someone
    /// (an earlier delivery of the same event, or the hook's timeout) already finished it.
    NoActiveLifecycleAction,
    /// `UnauthorizedOperation` / `AccessDenied`: the function's role may not do this. IAM is
    /// eventually consistent ("Changes that I make are not always immediately visible", IAM
    /// User Guide), so a grant a deploy made moments ago may still be refused: retried for
    /// a bounded window, then permanent.
    AccessRefused,
    /// Anything else: permissions, wrong zone, unknown ids. Retrying cannot help.
    Permanent,
}

const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
];

const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "RequestExpired",
    "IDPCommunicationError",
    "ResourceContention",
];

const ACCESS_REFUSED: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
];

const CONFLICT: &[&str] = &[
    "IncorrectState",
    "IncorrectInstanceState",
    "VolumeInUse",
    "InvalidVolume.NotAttached",
    // AttachNetworkInterface on an interface another instance (or a concurrent delivery of
    // the same event) has: "The specified network interface is in use and cannot be deleted
    // or attached to another instance" (EC2 error codes).
    "InvalidNetworkInterface.InUse",
];

/// EC2's error-codes page adds, for an interface in use: "you may also receive the
/// InvalidParameterValue error". That code also covers plain mistakes (a bad device index,
/// say), which are permanent: only its "in use" messages are the conflict.
const IN_USE_PARAMETER: &str = "InvalidParameterValue";

/// DescribeNetworkInterfaces for an interface that does not exist.
pub const INTERFACE_NOT_FOUND: &str = "InvalidNetworkInterfaceID.NotFound";

pub fn classify(err: &AwsError) -> ErrorKind {
    if err.transport {
        return ErrorKind::Retry;
    }
    let code = err.code.as_deref().unwrap_or("");
    let message = err.message.as_deref().unwrap_or("");
    if code == "ValidationError" && message.contains("No active Lifecycle Action found") {
        return ErrorKind::NoActiveLifecycleAction;
    }
    if THROTTLING.contains(&code) || TRANSIENT.contains(&code) {
        return ErrorKind::Retry;
    }
    if code == "InvalidInstanceID.NotFound" {
        return ErrorKind::NotFoundYet;
    }
    if CONFLICT.contains(&code)
        || (code == IN_USE_PARAMETER && message.to_ascii_lowercase().contains("in use"))
    {
        return ErrorKind::Conflict;
    }
    if ACCESS_REFUSED.contains(&code) {
        return ErrorKind::AccessRefused;
    }
    match err.http_status {
        Some(429) => ErrorKind::Retry,
        Some(s) if s >= 500 => ErrorKind::Retry,
        // No code and no status: the SDK could not even build the request.
        _ => ErrorKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> AwsError {
        AwsError {
            operation: "Op",
            code: code.map(str::to_string),
            message: message.map(str::to_string),
            http_status: status,
            transport: false,
        }
    }

    #[test]
    fn classification() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<u16>, ErrorKind);
        let cases: &[Case] = &[
            (
                Some("RequestLimitExceeded"),
                None,
                Some(503),
                ErrorKind::Retry,
            ),
            (
                Some("Throttling"),
                Some("Rate exceeded"),
                Some(400),
                ErrorKind::Retry,
            ),
            (Some("InternalError"), None, Some(500), ErrorKind::Retry),
            (Some("SomethingNew"), None, Some(502), ErrorKind::Retry),
            (None, None, Some(503), ErrorKind::Retry),
            (None, None, Some(429), ErrorKind::Retry),
            (
                Some("InvalidInstanceID.NotFound"),
                None,
                Some(400),
                ErrorKind::NotFoundYet,
            ),
            (Some("IncorrectState"), None, Some(400), ErrorKind::Conflict),
            (Some("VolumeInUse"), None, Some(400), ErrorKind::Conflict),
            (
                Some("InvalidNetworkInterface.InUse"),
                Some("Interface: [eni-0123abcd] in use."),
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                Some("InvalidParameterValue"),
                Some("Interface: [eni-0123abcd] in use."),
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                Some("InvalidParameterValue"),
                Some("The network interface is already In Use by another instance"),
                Some(400),
                ErrorKind::Conflict,
            ),
            (
                Some("InvalidParameterValue"),
                Some("Instance i-0123abcd already has an interface attached at device index 1."),
                Some(400),
                ErrorKind::Permanent,
            ),
            (
                Some(INTERFACE_NOT_FOUND),
                Some("The networkInterface ID 'eni-0123abcd' does not exist"),
                Some(400),
                ErrorKind::Permanent,
            ),
            (
                Some("UnauthorizedOperation"),
                None,
                Some(403),
                ErrorKind::AccessRefused,
            ),
            (
                Some("AccessDenied"),
                None,
                Some(403),
                ErrorKind::AccessRefused,
            ),
            (
                Some("AccessDeniedException"),
                None,
                Some(403),
                ErrorKind::AccessRefused,
            ),
            (
                Some("InvalidVolume.ZoneMismatch"),
                None,
                Some(400),
                ErrorKind::Permanent,
            ),
            (
                Some("InvalidVolume.NotFound"),
                None,
                Some(400),
                ErrorKind::Permanent,
            ),
            (
                Some("InvalidAllocationID.NotFound"),
                None,
                Some(400),
                ErrorKind::Permanent,
            ),
            (
                Some("ValidationError"),
                Some("No active Lifecycle Action found with token 1234"),
                Some(400),
                ErrorKind::NoActiveLifecycleAction,
            ),
            (
                Some("ValidationError"),
                Some("No active Lifecycle Action found with instance ID i-0123abcd"),
                Some(400),
                ErrorKind::NoActiveLifecycleAction,
            ),
            (
                Some("ValidationError"),
                Some("Group not found"),
                Some(400),
                ErrorKind::Permanent,
            ),
            (None, None, None, ErrorKind::Permanent),
        ];
        for (code, message, status, want) in cases {
            assert_eq!(
                classify(&err(*code, *message, *status)),
                *want,
                "{code:?} {message:?} {status:?}"
            );
        }
        let mut e = err(None, Some("connection refused"), None);
        e.transport = true;
        assert_eq!(classify(&e), ErrorKind::Retry);
    }

    #[test]
    fn display_names_the_operation_and_code() {
        let e = err(
            Some("UnauthorizedOperation"),
            Some("You are not authorized"),
            Some(403),
        );
        assert_eq!(
            e.to_string(),
            "Op: UnauthorizedOperation: You are not authorized (HTTP 403)"
        );
    }
}
