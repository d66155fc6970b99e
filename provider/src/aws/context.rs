//! The context every AWS operation of one Terraform call runs in: the service clients, the
//! retry policy, the deadline (from the resource's `timeouts`) and Terraform's stop signal.
//!
//! [`OpContext::call`] is the only way the provider calls AWS: it retries what AWS says is
//! transient (throttling, 5xx, the operation's own expected-to-clear codes) until the attempt
//! cap or the deadline, and turns the outcome into an [`AwsError`]. [`OpContext::wait_for`]
//! is the only polling loop: adaptive back-off from 100 ms, a progress line every 10 s, and
//! the same deadline and stop signal.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::error::AwsError;
use super::retry::{aws_classifier, outcome_unknown, retry, Retry, RetryError, RetryPolicy};
use crate::config::AwsContext;

tokio::task_local! {
    /// Inside [`OpContext::wait_for`]'s check: which poll of the wait it is (1 for the first).
    static WAIT_POLL: u32;
}

/// One debug line per call (after its retries), naming the wait's poll it belongs to (0
/// outside a wait): what tools/bench-stack reads to report a wait's second and later polls
/// apart from the calls every stack makes (issue: per-stack calls constant in N).
fn log_call(op: &str, ok: bool, started: std::time::Instant) {
    tracing::debug!(
        op,
        ok,
        ms = started.elapsed().as_millis() as u64,
        poll = WAIT_POLL.try_with(|p| *p).unwrap_or(0),
        "AWS call"
    );
}

/// One client per service the stack uses, built from the provider's SDK configuration (which
/// carries the `endpoints` overrides).
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The region the clients call (resolved by aws-config from the provider or environment).
    pub region: String,
}

/// Tag key every object made without a ClientToken carries: a token unique to the create that
/// made it ([`OpContext::create`]), by which a create whose answer was lost finds its object
/// instead of making a second one. The create's unmarking removes it.
pub const CREATE_TOKEN_TAG: &str = "autoheal:create-token";

/// `tags` with a fresh create token: (the tags to create with, the token).
pub fn with_create_token(tags: &super::tags::Tags) -> (super::tags::Tags, String) {
    let token = unique_token();
    let mut tags = tags.clone();
    tags.insert(CREATE_TOKEN_TAG.to_string(), token.clone());
    (tags, token)
}

/// Whether `tags` carry the create token `token`.
pub fn made_by(tags: &super::tags::Tags, token: &str) -> bool {
    tags.get(CREATE_TOKEN_TAG).is_some_and(|t| t == token)
}

/// A token unique to one logical create, for a ClientToken or a create-token tag: never
/// derived from the stack's name alone (a token reused by a later create returns the earlier,
/// possibly deleted, object). At most 64 ASCII characters, as EC2's ClientToken allows.
pub fn unique_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "ah-{nanos:x}-{:x}-{:x}-{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        super::retry::random_u64()
    )
}

impl Clients {
    /// Loads the SDK configuration on first use (see [`AwsContext::sdk_config`]).
    pub async fn new(aws: &AwsContext) -> anyhow::Result<Clients> {
        let cfg = aws.sdk_config().await?;
        let region = cfg
            .region()
            .map(|r| r.as_ref().to_string())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no AWS region: set the provider's `region`, or AWS_REGION, or a region \
                     in the AWS profile"
                )
            })?;
        Ok(Clients {
            ec2: aws_sdk_ec2::Client::new(cfg),
            autoscaling: aws_sdk_autoscaling::Client::new(cfg),
            iam: aws_sdk_iam::Client::new(cfg),
            lambda: aws_sdk_lambda::Client::new(cfg),
            events: aws_sdk_eventbridge::Client::new(cfg),
            logs: aws_sdk_cloudwatchlogs::Client::new(cfg),
            cloudwatch: aws_sdk_cloudwatch::Client::new(cfg),
            region,
        })
    }
}

/// First delay of a wait; grown by half (with the cap below) while nothing changes. Short,
/// so a wait that is nearly done (the heal after the scale-up, a detach) is seen promptly:
/// the polls come 0.1, 0.25, 0.48, 0.81, 1.3 s ... after the first, at most 10 a second for
/// one wait, half the 20 a second at which EC2 refills a caller's bucket for Describe* calls
/// (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html, "Request rate
/// limiting"); a throttled poll is retried by the SDK's standard retry mode.
///
/// Why by half and not doubled: what a wait waits for is seen at most half as long again
/// after it happened as the wait had lasted (doubling: as long again; a heal of 0.11 s was
/// seen at 0.3 s), for about three more polls in a minute-long wait (20 instead of 17).
const WAIT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// Each delay is the last one times this fraction.
const WAIT_GROWTH: (u32, u32) = (3, 2);
/// Longest delay between two polls of a wait.
const WAIT_MAX_DELAY: Duration = Duration::from_secs(5);
/// How often a wait logs that it is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct OpContext {
    pub clients: Clients,
    pub policy: RetryPolicy,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    /// The operation's whole budget, for messages ("within 30m0s").
    pub budget: Duration,
    /// Things the user should know that did not stop the operation (summary, detail): the
    /// resource turns them into warning diagnostics. Shared by the clones of a context.
    warnings: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl OpContext {
    pub fn new(
        clients: Clients,
        policy: RetryPolicy,
        budget: Duration,
        cancel: CancellationToken,
    ) -> Self {
        OpContext {
            clients,
            policy,
            deadline: Instant::now() + budget,
            cancel,
            budget,
            warnings: Default::default(),
        }
    }

    /// Records a warning for the user (logged at once too).
    pub fn warn(&self, summary: impl Into<String>, detail: impl Into<String>) {
        let (summary, detail) = (summary.into(), detail.into());
        tracing::warn!(summary = %summary, detail = %detail, "warning for the user");
        if let Ok(mut w) = self.warnings.lock() {
            w.push((summary, detail));
        }
    }

    /// The warnings recorded so far, in order; the list is emptied.
    pub fn take_warnings(&self) -> Vec<(String, String)> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Calls an SDK operation with retries. `op` is `service:Operation`; `extra` lists error
    /// codes this call may also retry (e.g. an IAM role still propagating).
    pub async fn call<T, E, F, Fut>(&self, op: &str, extra: &[&str], f: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = std::time::Instant::now();
        let result = retry(
            op,
            self.deadline,
            &self.policy,
            aws_classifier(extra),
            &self.cancel,
            f,
        )
        .await
        .map_err(AwsError::from_retry);
        log_call(op, result.is_ok(), started);
        result
    }

    /// Like [`OpContext::call`] with the operation's own verdict on which errors to retry
    /// (for errors AWS signals by message, not code, such as Lambda's IAM-propagation errors).
    pub async fn call_with<T, E, F, Fut>(
        &self,
        op: &str,
        classify: impl Fn(&SdkError<E, HttpResponse>) -> Retry,
        f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let started = std::time::Instant::now();
        let result = retry(op, self.deadline, &self.policy, classify, &self.cancel, f)
            .await
            .map_err(AwsError::from_retry);
        log_call(op, result.is_ok(), started);
        result
    }

    /// A create whose answer may be lost after it took effect (a connection reset, a timeout,
    /// an unreadable response): before it is sent again, `lookup` looks for what the lost
    /// attempt may have made (by the create's own token tag, or by a unique name and our
    /// marker), and what it finds is the answer. So a retry never makes a second object, and
    /// the first is never orphaned. Every other failure is retried (or not) as
    /// [`OpContext::call`] does. For APIs with a ClientToken, pass the token instead and use
    /// `call`: the same token returns the first object.
    pub async fn create<T, E, F, Fut, L, LFut>(
        &self,
        op: &str,
        extra: &[&str],
        lookup: L,
        f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        L: FnMut() -> LFut,
        LFut: Future<Output = Result<Option<T>, AwsError>>,
    {
        self.create_with(op, aws_classifier(extra), lookup, f).await
    }

    /// [`OpContext::create`] with the operation's own verdict on which errors to retry (as
    /// [`OpContext::call_with`]).
    pub async fn create_with<T, E, F, Fut, L, LFut>(
        &self,
        op: &str,
        classify: impl Fn(&SdkError<E, HttpResponse>) -> Retry,
        mut lookup: L,
        mut f: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        L: FnMut() -> LFut,
        LFut: Future<Output = Result<Option<T>, AwsError>>,
    {
        let mut lost = 0u32;
        loop {
            // An unknown outcome ends this series of attempts, so the lookup runs first.
            let result = retry(
                op,
                self.deadline,
                &self.policy,
                |e: &SdkError<E, HttpResponse>| {
                    if outcome_unknown(e) {
                        Retry::Permanent
                    } else {
                        classify(e)
                    }
                },
                &self.cancel,
                &mut f,
            )
            .await;
            let error = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let unknown =
                matches!(error, RetryError::Permanent { ref error, .. } if outcome_unknown(error));
            if !unknown || lost >= self.policy.max_attempts.max(1) {
                return Err(AwsError::from_retry(error));
            }
            lost += 1;
            tracing::warn!(
                op,
                lost,
                error = %error,
                "the answer of a create was lost: looking for what it may have made before \
                 sending it again"
            );
            if let Some(found) = lookup().await? {
                tracing::info!(op, "the lost create had taken effect: using what it made");
                return Ok(found);
            }
        }
    }

    /// Like [`OpContext::call`], with "not found" turned into `Ok(None)`.
    pub async fn find<T, E, F, Fut>(&self, op: &str, f: F) -> Result<Option<T>, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.call(op, &[], f).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`OpContext::call`] for a delete: "not found" means already gone.
    pub async fn delete<T, E, F, Fut>(&self, op: &str, extra: &[&str], f: F) -> Result<(), AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match self.call(op, extra, f).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Polls `check` until it returns `Some`, with adaptive back-off (100 ms growing by half
    /// to 5 s: [`WAIT_INITIAL_DELAY`]),
    /// logging progress every 10 s with the last status `check` reported, until the deadline.
    /// `check` returns `Ok(Ready(v))`, `Ok(Waiting(status))` or an error that ends the wait.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Poll<T>, AwsError>>,
    {
        let started = Instant::now();
        let mut delay = WAIT_INITIAL_DELAY;
        let mut last_progress = started;
        let mut polls: u32 = 0;
        loop {
            polls += 1;
            let status = match WAIT_POLL.scope(polls, check()).await? {
                Poll::Ready(v) => {
                    if polls > 1 {
                        tracing::info!(
                            what,
                            polls,
                            seconds = started.elapsed().as_secs_f64(),
                            "wait finished"
                        );
                    }
                    return Ok(v);
                }
                Poll::Waiting(status) => status,
            };
            let now = Instant::now();
            if now.duration_since(last_progress) >= PROGRESS_EVERY {
                last_progress = now;
                tracing::info!(
                    what,
                    status = %status,
                    waited_s = started.elapsed().as_secs(),
                    "still waiting"
                );
            }
            if now + delay >= self.deadline {
                return Err(AwsError::timeout(
                    format!("waiting for {what}"),
                    format!(
                        "still {status} after {:.0?} (the operation's timeout is {:.0?}; raise \
                         it in the resource's `timeouts` block)",
                        started.elapsed(),
                        self.budget
                    ),
                ));
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    return Err(AwsError::cancelled(format!("waiting for {what}")));
                }
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * WAIT_GROWTH.0 / WAIT_GROWTH.1).min(WAIT_MAX_DELAY);
        }
    }

    pub fn region(&self) -> &str {
        &self.clients.region
    }
}

/// One poll's verdict in [`OpContext::wait_for`].
#[derive(Debug)]
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the text says what was seen ("volume vol-1 detaching").
    Waiting(String),
}
