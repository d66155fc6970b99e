//! The retry layer every AWS call goes through.
//!
//! The SDK's own retries are switched off (see [`crate::config::AwsContext::sdk_config`]): this
//! layer owns them, so that one policy governs every call, retries stop at the caller's
//! deadline and at Terraform's StopProvider, and each retry is logged (`TF_LOG=DEBUG`).
//!
//! [`retry`] backs off exponentially with full jitter: the wait before retry *n* is uniform in
//! `[0, min(max_delay, initial_delay * multiplier^(n-1))]`, which spreads out callers that were
//! throttled together. Whether an error is worth retrying is the caller's `classify` function;
//! [`classify_aws`] and [`classify_sdk_error`] know the generic AWS cases (throttling, 5xx,
//! transport failures) and take the operation-specific codes (`VolumeInUse`,
//! `InvalidParameterValueException` while an IAM role propagates, `DependencyViolation`, ...)
//! as `extra`, since the same code is transient for one operation and final for another.
//!
//! An attempt in flight is never abandoned, neither at the deadline nor on cancellation: a
//! mutating call dropped mid-flight may have taken effect with its answer lost (an instance
//! that nobody records). The SDK's per-attempt timeout bounds each attempt instead, so the
//! deadline may be overrun by at most one attempt; sleeps never overrun it.

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::ErrorKind;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The provider's default for `max_retries`.
pub const DEFAULT_MAX_RETRIES: u32 = 25;

/// A classifier's verdict on one failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Worth another attempt; the reason is logged with the retry.
    Retryable(String),
    /// Retrying cannot help: return the error now.
    Permanent,
}

impl Retry {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Retry::Retryable(reason.into())
    }
    pub fn is_retryable(&self) -> bool {
        matches!(self, Retry::Retryable(_))
    }
    /// Keeps a retryable verdict; asks `f` otherwise. Chains generic and operation-specific
    /// rules: `classify_aws(f, &[]).or_else(|| my_rule(e))`.
    pub fn or_else(self, f: impl FnOnce() -> Retry) -> Retry {
        match self {
            Retry::Retryable(_) => self,
            Retry::Permanent => f(),
        }
    }
}

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Ceiling of the first back-off.
    pub initial_delay: Duration,
    /// No back-off is longer than this.
    pub max_delay: Duration,
    /// Growth of the ceiling per retry (values below 1 are treated as 1).
    pub multiplier: f64,
    /// Attempts in all, the first included (0 is treated as 1). The provider's `max_retries`
    /// counts retries, so this is `max_retries + 1`.
    pub max_attempts: u32,
    /// Full jitter (uniform in `[0, ceiling]`); without it every back-off is the ceiling.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::from_max_retries(DEFAULT_MAX_RETRIES)
    }
}

impl RetryPolicy {
    /// The provider's policy for a `max_retries` setting: 0.5 s doubling up to 20 s (the AWS
    /// SDKs' own cap), with full jitter.
    pub fn from_max_retries(max_retries: u32) -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            multiplier: 2.0,
            max_attempts: max_retries.saturating_add(1),
            jitter: true,
        }
    }

    /// The same policy with other back-off bounds (waiters poll on their own rhythm).
    pub fn with_delays(mut self, initial_delay: Duration, max_delay: Duration) -> Self {
        self.initial_delay = initial_delay;
        self.max_delay = max_delay;
        self
    }

    /// The longest back-off before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_delay.as_secs_f64() * multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The back-off before retry number `retry`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        if self.jitter {
            ceiling.mul_f64(random_unit())
        } else {
            ceiling
        }
    }
}

/// Why [`retry`] gave up. `op` names the operation (e.g. `ec2:AttachVolume vol-0abc`).
#[derive(Debug)]
pub enum RetryError<E> {
    /// The classifier called the error permanent.
    Permanent { op: String, attempts: u32, error: E },
    /// Every attempt the policy allows failed with retryable errors.
    Exhausted { op: String, attempts: u32, last: E },
    /// The deadline passed, or would pass during the next back-off. `last` is `None` when the
    /// deadline had passed before the first attempt.
    Timeout {
        op: String,
        attempts: u32,
        last: Option<E>,
    },
    /// Cancelled (Terraform's StopProvider) before or between attempts.
    Cancelled {
        op: String,
        attempts: u32,
        last: Option<E>,
    },
}

impl<E> RetryError<E> {
    pub fn op(&self) -> &str {
        match self {
            RetryError::Permanent { op, .. }
            | RetryError::Exhausted { op, .. }
            | RetryError::Timeout { op, .. }
            | RetryError::Cancelled { op, .. } => op,
        }
    }
    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Permanent { attempts, .. }
            | RetryError::Exhausted { attempts, .. }
            | RetryError::Timeout { attempts, .. }
            | RetryError::Cancelled { attempts, .. } => *attempts,
        }
    }
    /// The error of the last attempt, if an attempt was made.
    pub fn last_error(&self) -> Option<&E> {
        match self {
            RetryError::Permanent { error, .. } => Some(error),
            RetryError::Exhausted { last, .. } => Some(last),
            RetryError::Timeout { last, .. } | RetryError::Cancelled { last, .. } => last.as_ref(),
        }
    }
    pub fn into_last_error(self) -> Option<E> {
        match self {
            RetryError::Permanent { error, .. } => Some(error),
            RetryError::Exhausted { last, .. } => Some(last),
            RetryError::Timeout { last, .. } | RetryError::Cancelled { last, .. } => last,
        }
    }
    pub fn is_timeout(&self) -> bool {
        matches!(self, RetryError::Timeout { .. })
    }
    pub fn is_cancelled(&self) -> bool {
        matches!(self, RetryError::Cancelled { .. })
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Permanent { op, error, .. } => write!(f, "{op}: {error}"),
            RetryError::Exhausted { op, attempts, last } => write!(
                f,
                "{op}: still failing after {attempts} attempt{} (raise the provider's \
                 max_retries to wait longer); last error: {last}",
                plural(*attempts)
            ),
            RetryError::Timeout {
                op,
                attempts: 0,
                last: None,
            } => write!(f, "{op}: timed out before the first attempt"),
            RetryError::Timeout { op, attempts, last } => {
                write!(
                    f,
                    "{op}: timed out after {attempts} attempt{}",
                    plural(*attempts)
                )?;
                match last {
                    Some(e) => write!(f, "; last error: {e}"),
                    None => Ok(()),
                }
            }
            RetryError::Cancelled { op, attempts, last } => {
                write!(
                    f,
                    "{op}: cancelled after {attempts} attempt{}",
                    plural(*attempts)
                )?;
                match last {
                    Some(e) => write!(f, "; last error: {e}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl<E: StdError + 'static> StdError for RetryError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.last_error().map(|e| e as &(dyn StdError + 'static))
    }
}

/// Calls `f` until it succeeds, `classify` calls its error permanent, `policy.max_attempts`
/// attempts have failed, the next back-off would end past `deadline`, or `cancel` fires.
///
/// `op` names the call in logs and errors. Each retry is logged at debug level with the
/// operation, the attempt number, the back-off and the classifier's reason.
pub async fn retry<T, E, F, Fut>(
    op: &str,
    deadline: Instant,
    policy: &RetryPolicy,
    classify: impl Fn(&E) -> Retry,
    cancel: &CancellationToken,
    mut f: F,
) -> Result<T, RetryError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut attempts: u32 = 0;
    let mut last: Option<E> = None;
    loop {
        if cancel.is_cancelled() {
            return Err(RetryError::Cancelled {
                op: op.to_string(),
                attempts,
                last,
            });
        }
        if Instant::now() >= deadline {
            return Err(RetryError::Timeout {
                op: op.to_string(),
                attempts,
                last,
            });
        }
        attempts += 1;
        let error = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let reason = match classify(&error) {
            Retry::Permanent => {
                return Err(RetryError::Permanent {
                    op: op.to_string(),
                    attempts,
                    error,
                })
            }
            Retry::Retryable(reason) => reason,
        };
        if attempts >= max_attempts {
            tracing::debug!(op, attempts, %reason, "giving up: attempt limit reached");
            return Err(RetryError::Exhausted {
                op: op.to_string(),
                attempts,
                last: error,
            });
        }
        let delay = policy.delay(attempts);
        if Instant::now() + delay >= deadline {
            tracing::debug!(op, attempts, %reason, "giving up: the next attempt would start past the deadline");
            return Err(RetryError::Timeout {
                op: op.to_string(),
                attempts,
                last: Some(error),
            });
        }
        tracing::debug!(
            op,
            attempt = attempts,
            max_attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            %reason,
            "retrying AWS call"
        );
        last = Some(error);
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                return Err(RetryError::Cancelled { op: op.to_string(), attempts, last });
            }
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Error codes AWS services use for throttling (EC2's RequestLimitExceeded, IAM's Throttling,
/// Lambda's TooManyRequestsException, ...). `LimitExceededException` is deliberately absent:
/// IAM, EventBridge and Lambda use it for quotas ("too many roles"), which waiting never fixes.
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
    "ProvisionedThroughputExceededException",
];

/// Error codes of transient service-side failures.
pub const TRANSIENT_CODES: &[&str] = &[
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServiceException",
    "ServiceException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// What went wrong with one AWS call, in the terms that decide whether to retry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AwsFailure<'a> {
    /// The service answered with an error (code from the body, HTTP status).
    Service {
        code: Option<&'a str>,
        status: Option<u16>,
    },
    /// No response arrived (`SdkError::DispatchFailure`). The request may have been sent.
    Dispatch(DispatchKind),
    /// The SDK's attempt or operation timeout fired (`SdkError::TimeoutError`).
    Timeout,
    /// A response arrived but could not be read or parsed: a truncated body, an HTML page
    /// from a proxy (`SdkError::ResponseError`).
    Response { status: Option<u16> },
    /// The request could not be built: invalid input, no region (`ConstructionFailure`).
    Construction,
}

/// Kinds of dispatch failure, after the SDK's `ConnectorError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatchKind {
    /// Connection refused or reset, DNS failure, TLS handshake failure, socket hang-up.
    Io,
    /// Connect timeout.
    Timeout,
    /// Unclassified, but the HTTP client marked it transient.
    Transient,
    /// The request itself is invalid (e.g. a malformed endpoint URL).
    User,
    /// Anything else. This includes credential resolution errors (no credentials, expired SSO
    /// token, AssumeRole denied), which the SDK reports as dispatch failures: retrying them for
    /// minutes would only delay the message the user needs.
    Other,
}

fn has_code(code: Option<&str>, codes: &[&str]) -> bool {
    code.is_some_and(|c| codes.contains(&c))
}

/// The generic verdict on a service error: throttling codes, transient codes, HTTP 429, 408
/// and 5xx are retryable; everything else is permanent. A transport failure has no status and
/// no code: classify it with [`classify_aws`] and [`AwsFailure::Dispatch`].
pub fn classify_aws_code(code: Option<&str>, status: Option<u16>) -> Retry {
    classify_aws(AwsFailure::Service { code, status }, &[])
}

/// The verdict on any AWS failure; `extra` lists error codes this operation may also retry
/// (e.g. `&["VolumeInUse"]` for AttachVolume, `&["InvalidParameterValueException"]` for a
/// Lambda CreateFunction whose role is still propagating through IAM).
///
/// Timeouts and I/O failures are retryable, including for mutating calls: callers of
/// non-idempotent operations pass a client token (RunInstances, CreateFunction's name) or
/// check for the object before creating it again.
pub fn classify_aws(failure: AwsFailure<'_>, extra: &[&str]) -> Retry {
    match failure {
        AwsFailure::Service { code, status } => {
            let label = || {
                let code = code.unwrap_or("no error code");
                match status {
                    Some(s) => format!("{code}, HTTP {s}"),
                    None => code.to_string(),
                }
            };
            if has_code(code, THROTTLING_CODES) || status == Some(429) {
                Retry::retryable(format!("throttled ({})", label()))
            } else if has_code(code, extra) {
                Retry::retryable(format!("{} (expected to clear)", label()))
            } else if has_code(code, TRANSIENT_CODES)
                || status.is_some_and(|s| s == 408 || (500..600).contains(&s))
            {
                Retry::retryable(format!("service error ({})", label()))
            } else {
                Retry::Permanent
            }
        }
        AwsFailure::Dispatch(DispatchKind::Io) => Retry::retryable("connection failed (I/O error)"),
        AwsFailure::Dispatch(DispatchKind::Timeout) => Retry::retryable("connection timed out"),
        AwsFailure::Dispatch(DispatchKind::Transient) => {
            Retry::retryable("transient connection error")
        }
        AwsFailure::Dispatch(DispatchKind::User | DispatchKind::Other) => Retry::Permanent,
        AwsFailure::Timeout => Retry::retryable("request timed out"),
        AwsFailure::Response { status } => match status {
            Some(s) if (400..500).contains(&s) && s != 408 && s != 429 => Retry::Permanent,
            Some(s) => Retry::retryable(format!("unreadable response (HTTP {s})")),
            None => Retry::retryable("unreadable response"),
        },
        AwsFailure::Construction => Retry::Permanent,
    }
}

impl<'a, E: ProvideErrorMetadata> From<&'a SdkError<E, HttpResponse>> for AwsFailure<'a> {
    fn from(err: &'a SdkError<E, HttpResponse>) -> Self {
        match err {
            SdkError::ServiceError(ctx) => AwsFailure::Service {
                code: ctx.err().code(),
                status: Some(ctx.raw().status().as_u16()),
            },
            SdkError::TimeoutError(_) => AwsFailure::Timeout,
            SdkError::DispatchFailure(d) => AwsFailure::Dispatch(if d.is_io() {
                DispatchKind::Io
            } else if d.is_timeout() {
                DispatchKind::Timeout
            } else if d.is_user() {
                DispatchKind::User
            } else if d.as_other() == Some(ErrorKind::TransientError) {
                DispatchKind::Transient
            } else {
                DispatchKind::Other
            }),
            SdkError::ResponseError(r) => AwsFailure::Response {
                status: Some(r.raw().status().as_u16()),
            },
            // ConstructionFailure, and whatever later SDK versions add.
            _ => AwsFailure::Construction,
        }
    }
}

/// [`classify_aws`] for an error returned by any `aws-sdk-*` operation.
pub fn classify_sdk_error<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
    extra: &[&str],
) -> Retry {
    classify_aws(AwsFailure::from(err), extra)
}

/// Whether a failed call may nevertheless have taken effect: no answer came (a dispatch
/// failure after the request may have been sent, a timeout) or it could not be read. A
/// create that fails this way must look for its object before it is sent again (see
/// `OpContext::create`); a service's error answer says the call did not happen.
pub fn outcome_unknown<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    matches!(
        AwsFailure::from(err),
        AwsFailure::Dispatch(DispatchKind::Io | DispatchKind::Timeout | DispatchKind::Transient)
            | AwsFailure::Timeout
            | AwsFailure::Response { .. }
    )
}

/// A `classify` argument for [`retry`] over SDK operation errors:
/// `retry(op, deadline, &policy, aws_classifier(&["VolumeInUse"]), &cancel, || ...)`.
pub fn aws_classifier<'a, E: ProvideErrorMetadata>(
    extra: &'a [&'a str],
) -> impl Fn(&SdkError<E, HttpResponse>) -> Retry + 'a {
    move |err| classify_sdk_error(err, extra)
}

/// A pseudo-random 64-bit value: xorshift64* per thread, seeded from the clock and the
/// thread. Jitter and tokens only need to decorrelate callers, not to be unpredictable.
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A uniform sample from `[0, 1)`: the top 53 bits of [`random_u64`], as a fraction.
fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::thread::current().id().hash(&mut h);
    // xorshift must not start at zero.
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn fixed(initial_ms: u64, max_ms: u64, max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(initial_ms),
            max_delay: Duration::from_millis(max_ms),
            multiplier: 2.0,
            max_attempts,
            jitter: false,
        }
    }

    fn always_retry(_: &String) -> Retry {
        Retry::retryable("test")
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn succeeds_after_retryable_failures() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let out = retry(
            "op",
            far(),
            &RetryPolicy::default(),
            always_retry,
            &cancel,
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= 3 {
                        Err(format!("throttled {n}"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(out, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_error_returns_at_once() {
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let err = retry(
            "ec2:RunInstances",
            far(),
            &RetryPolicy::default(),
            |_: &String| Retry::Permanent,
            &cancel,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("UnauthorizedOperation".to_string()) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(
            matches!(err, RetryError::Permanent { attempts: 1, .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "ec2:RunInstances: UnauthorizedOperation");
        assert_eq!(
            err.into_last_error().as_deref(),
            Some("UnauthorizedOperation")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_is_respected_and_names_the_last_error() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        // Back-offs 1, 2, 4, 4 s: attempts at 0, 1, 3, 7; the next would start at 11 > 10.
        let err = retry(
            "op",
            deadline,
            &fixed(1000, 4000, 1000),
            always_retry,
            &cancel,
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Err::<(), _>(format!("error {n}")) }
            },
        )
        .await
        .unwrap_err();
        assert!(
            start.elapsed() <= Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        let RetryError::Timeout { attempts, last, .. } = &err else {
            panic!("timeout expected: {err:?}")
        };
        assert_eq!(*attempts, 4);
        assert_eq!(last.as_deref(), Some("error 4"));
        assert!(err.to_string().contains("last error: error 4"), "{err}");
        assert!(err.is_timeout());

        // With jitter the rule holds too.
        for _ in 0..20 {
            let start = Instant::now();
            let deadline = start + Duration::from_secs(5);
            let policy = fixed(300, 2000, 1000);
            let policy = RetryPolicy {
                jitter: true,
                ..policy
            };
            let err = retry("op", deadline, &policy, always_retry, &cancel, || async {
                Err::<(), _>("x".to_string())
            })
            .await
            .unwrap_err();
            assert!(err.is_timeout());
            assert!(start.elapsed() <= Duration::from_secs(5));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn past_deadline_makes_no_attempt() {
        let cancel = CancellationToken::new();
        let deadline = Instant::now();
        let err = retry(
            "op",
            deadline,
            &RetryPolicy::default(),
            always_retry,
            &cancel,
            || async { Ok::<_, String>(()) },
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            RetryError::Timeout {
                attempts: 0,
                last: None,
                ..
            }
        ));
        assert_eq!(err.to_string(), "op: timed out before the first attempt");
    }

    #[tokio::test(start_paused = true)]
    async fn max_attempts_is_respected() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let policy = RetryPolicy::from_max_retries(2);
        assert_eq!(policy.max_attempts, 3);
        let err = retry("op", far(), &policy, always_retry, &cancel, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Err::<(), _>(format!("error {n}")) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let RetryError::Exhausted { attempts, last, .. } = &err else {
            panic!("exhausted expected: {err:?}")
        };
        assert_eq!((*attempts, last.as_str()), (3, "error 3"));
        assert!(err.to_string().contains("max_retries"), "{err}");

        // max_retries = 0: one attempt, no retry.
        let calls = AtomicU32::new(0);
        let err = retry(
            "op",
            far(),
            &RetryPolicy::from_max_retries(0),
            always_retry,
            &cancel,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("e".to_string()) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(err.attempts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_promptly() {
        let start = Instant::now();
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            trigger.cancel();
        });
        let calls = AtomicU32::new(0);
        // The first back-off is 10 s; cancellation must cut it short.
        let err = retry(
            "op",
            far(),
            &fixed(10_000, 10_000, 100),
            always_retry,
            &cancel,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("busy".to_string()) }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(err.is_cancelled(), "{err:?}");
        assert_eq!(err.last_error().map(String::as_str), Some("busy"));

        // Already cancelled: no call at all.
        let calls = AtomicU32::new(0);
        let err = retry(
            "op",
            far(),
            &RetryPolicy::default(),
            always_retry,
            &cancel,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RetryError::Cancelled { attempts: 0, .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn delays_grow_and_are_capped() {
        let times = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let policy = fixed(100, 1000, 7);
        let _ = retry("op", far(), &policy, always_retry, &cancel, || {
            times.lock().unwrap().push(Instant::now());
            async { Err::<(), _>("e".to_string()) }
        })
        .await
        .unwrap_err();
        let times = times.lock().unwrap();
        let gaps: Vec<u128> = times
            .windows(2)
            .map(|w| (w[1] - w[0]).as_millis())
            .collect();
        assert_eq!(gaps, [100, 200, 400, 800, 1000, 1000]);

        // Jittered back-offs stay within the ceiling, and the ceiling never overflows.
        let jittered = RetryPolicy::default();
        for retry in 1..200 {
            let d = jittered.delay(retry);
            assert!(d <= jittered.ceiling(retry) && d <= jittered.max_delay);
        }
        assert_eq!(jittered.ceiling(u32::MAX), jittered.max_delay);
        assert_eq!(jittered.ceiling(1), jittered.initial_delay);
        let distinct: std::collections::BTreeSet<_> = (0..50).map(|_| jittered.delay(5)).collect();
        assert!(distinct.len() > 1, "jitter should vary");
    }

    #[test]
    fn aws_codes_are_classified() {
        for code in THROTTLING_CODES {
            let r = classify_aws_code(Some(code), Some(400));
            assert!(r.is_retryable(), "{code}");
            let Retry::Retryable(reason) = r else {
                unreachable!()
            };
            assert!(
                reason.contains("throttled") && reason.contains(code),
                "{reason}"
            );
        }
        for code in ["ServiceUnavailable", "InternalError", "InternalFailure"] {
            assert!(
                classify_aws_code(Some(code), Some(500)).is_retryable(),
                "{code}"
            );
        }
        assert!(classify_aws_code(None, Some(503)).is_retryable());
        assert!(classify_aws_code(None, Some(429)).is_retryable());
        assert!(classify_aws_code(Some("ServiceUnavailable"), None).is_retryable());
        assert_eq!(
            classify_aws_code(Some("UnauthorizedOperation"), Some(403)),
            Retry::Permanent
        );
        assert_eq!(
            classify_aws_code(Some("VolumeInUse"), Some(400)),
            Retry::Permanent
        );
        assert_eq!(
            classify_aws_code(Some("LimitExceededException"), Some(409)),
            Retry::Permanent
        );
        assert_eq!(classify_aws_code(None, None), Retry::Permanent);

        // Operation-specific codes, by argument or by combinator.
        let svc = |code| AwsFailure::Service {
            code: Some(code),
            status: Some(400),
        };
        assert!(
            classify_aws(svc("VolumeInUse"), &["VolumeInUse", "IncorrectState"]).is_retryable()
        );
        assert_eq!(
            classify_aws(svc("VolumeInUse"), &["IncorrectState"]),
            Retry::Permanent
        );
        let r = classify_aws_code(Some("DependencyViolation"), Some(400))
            .or_else(|| Retry::retryable("security group still in use"));
        assert_eq!(r, Retry::retryable("security group still in use"));

        // Transport.
        assert!(classify_aws(AwsFailure::Dispatch(DispatchKind::Io), &[]).is_retryable());
        assert!(classify_aws(AwsFailure::Dispatch(DispatchKind::Timeout), &[]).is_retryable());
        assert!(classify_aws(AwsFailure::Dispatch(DispatchKind::Transient), &[]).is_retryable());
        assert_eq!(
            classify_aws(AwsFailure::Dispatch(DispatchKind::Other), &[]),
            Retry::Permanent
        );
        assert_eq!(
            classify_aws(AwsFailure::Dispatch(DispatchKind::User), &[]),
            Retry::Permanent
        );
        assert!(classify_aws(AwsFailure::Timeout, &[]).is_retryable());
        assert!(classify_aws(AwsFailure::Response { status: Some(200) }, &[]).is_retryable());
        assert!(classify_aws(AwsFailure::Response { status: Some(502) }, &[]).is_retryable());
        assert_eq!(
            classify_aws(AwsFailure::Response { status: Some(403) }, &[]),
            Retry::Permanent
        );
        assert_eq!(
            classify_aws(AwsFailure::Construction, &[]),
            Retry::Permanent
        );
    }

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    #[test]
    fn sdk_errors_are_classified() {
        type Err = SdkError<ErrorMetadata, HttpResponse>;
        let service = |code: &str, status| -> Err {
            SdkError::service_error(
                ErrorMetadata::builder().code(code).build(),
                response(status),
            )
        };
        let e = service("RequestLimitExceeded", 503);
        assert_eq!(
            AwsFailure::from(&e),
            AwsFailure::Service {
                code: Some("RequestLimitExceeded"),
                status: Some(503)
            }
        );
        assert!(classify_sdk_error(&e, &[]).is_retryable());
        let e = service("InvalidAllocationID.NotFound", 400);
        assert_eq!(classify_sdk_error(&e, &[]), Retry::Permanent);
        assert!(aws_classifier(&["InvalidAllocationID.NotFound"])(&e).is_retryable());

        let io: Err = SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert_eq!(
            AwsFailure::from(&io),
            AwsFailure::Dispatch(DispatchKind::Io)
        );
        assert!(classify_sdk_error(&io, &[]).is_retryable());
        let other: Err =
            SdkError::dispatch_failure(ConnectorError::other("no credentials".into(), None));
        assert_eq!(classify_sdk_error(&other, &[]), Retry::Permanent);
        let transient: Err = SdkError::dispatch_failure(ConnectorError::other(
            "tls".into(),
            Some(ErrorKind::TransientError),
        ));
        assert!(classify_sdk_error(&transient, &[]).is_retryable());
        let timeout: Err = SdkError::timeout_error("attempt timeout");
        assert_eq!(AwsFailure::from(&timeout), AwsFailure::Timeout);
        let construction: Err = SdkError::construction_failure("no region");
        assert_eq!(classify_sdk_error(&construction, &[]), Retry::Permanent);
        let unreadable: Err = SdkError::response_error("truncated", response(200));
        assert!(classify_sdk_error(&unreadable, &[]).is_retryable());
    }
}
