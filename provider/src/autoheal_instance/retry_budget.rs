//! How long the attachment function may keep waiting for one launch, across Lambda's
//! asynchronous retries: the function's event-invoke configuration, set explicitly so the
//! budget is the provider's decision rather than Lambda's defaults (2 retries, 6 hours).
//!
//! The handler never abandons an instance only because the volume's previous holder is slow
//! to go away: it sends the lifecycle hook a heartbeat and fails the invocation, and Lambda
//! delivers the event again "two more times, with a one-minute wait between the first two
//! attempts, and two minutes between the second and third attempts" (Lambda Developer
//! Guide, "Error handling and automatic retries"). A retry helps only if the hook is still
//! alive when it comes: the heartbeat gives the hook `lifecycle_hook_timeout` seconds, which
//! must cover the wait before the retry plus a margin for Lambda's queueing. So the number of
//! retries follows from `lifecycle_hook_timeout`, and the maximum event age from
//! `lambda_timeout` (the event must not be delivered once the last useful attempt is over).

/// Lambda's waits before the first and the second retry of an asynchronous invocation.
pub const RETRY_DELAYS_S: [i64; 2] = [60, 120];
/// Allowance for Lambda's queueing and a cold start on top of each retry delay.
pub const RETRY_MARGIN_S: i64 = 30;
/// Lambda's bounds for `MaximumEventAgeInSeconds`.
pub const EVENT_AGE_RANGE_S: std::ops::RangeInclusive<i64> = 60..=21600;

pub use crate::aws::lambda_function::RetryBudget;

/// The budget for a hook of `hook_timeout_s` and a function of `lambda_timeout_s`: every
/// retry whose delay (plus margin) the hook outlives, and an event age that covers exactly
/// those attempts.
pub fn retry_budget(hook_timeout_s: i64, lambda_timeout_s: i64) -> RetryBudget {
    let retries = RETRY_DELAYS_S
        .iter()
        .take_while(|delay| hook_timeout_s >= *delay + RETRY_MARGIN_S)
        .count();
    // Age of the event when the last attempt starts: each earlier attempt ran for at most
    // the function's timeout, then Lambda waited its delay.
    let last_start: i64 = RETRY_DELAYS_S[..retries]
        .iter()
        .map(|delay| lambda_timeout_s + delay + RETRY_MARGIN_S)
        .sum();
    let age =
        (last_start + RETRY_MARGIN_S).clamp(*EVENT_AGE_RANGE_S.start(), *EVENT_AGE_RANGE_S.end());
    RetryBudget {
        maximum_retry_attempts: retries as i32,
        maximum_event_age_seconds: age as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_hook_keeps_both_retries() {
        // Defaults: a 300 s hook, a 120 s function.
        let b = retry_budget(300, 120);
        assert_eq!(b.maximum_retry_attempts, 2);
        // Attempt 3 starts at most 120+60+30 + 120+120+30 = 480 s after the event.
        assert_eq!(b.maximum_event_age_seconds, 510);
    }

    #[test]
    fn a_hook_too_short_for_a_retry_gets_none() {
        assert_eq!(retry_budget(30, 10).maximum_retry_attempts, 0);
        assert_eq!(retry_budget(89, 10).maximum_retry_attempts, 0);
        assert_eq!(retry_budget(90, 10).maximum_retry_attempts, 1);
        assert_eq!(retry_budget(149, 10).maximum_retry_attempts, 1);
        assert_eq!(retry_budget(150, 10).maximum_retry_attempts, 2);
    }

    #[test]
    fn the_event_age_stays_within_lambdas_bounds() {
        for hook in [30, 90, 150, 7200] {
            for function in [1, 60, 900] {
                let age = i64::from(retry_budget(hook, function).maximum_event_age_seconds);
                assert!(EVENT_AGE_RANGE_S.contains(&age), "{hook} {function}: {age}");
            }
        }
        assert_eq!(retry_budget(30, 900).maximum_event_age_seconds, 60);
        // One retry of a 900 s function: 900 + 60 + 30, plus the margin.
        assert_eq!(retry_budget(100, 900).maximum_event_age_seconds, 1020);
    }
}
