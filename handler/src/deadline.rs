//! Time budgets: the invocation's deadline, the share of it kept for ABANDON, whether one more
//! wait still fits, and when the lifecycle hook needs a heartbeat. Pure arithmetic.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The reserve never goes below this: an ABANDON call and the metric line must still fit.
pub const MIN_RESERVE: Duration = Duration::from_secs(1);
/// …nor above this: longer functions keep the rest for work.
pub const MAX_RESERVE: Duration = Duration::from_secs(3);

/// Milliseconds since the epoch of `t` (0 before the epoch).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The invocation deadline (Lambda gives epoch milliseconds) as an `Instant`, which does not
/// jump with the wall clock. A deadline in the past gives `now_instant`.
pub fn deadline_instant(deadline_ms: u64, now: SystemTime, now_instant: Instant) -> Instant {
    now_instant + Duration::from_millis(deadline_ms.saturating_sub(epoch_ms(now)))
}

/// Time kept at the end of the invocation for ABANDON and the metric: a tenth of it, within
/// [`MIN_RESERVE`]..=[`MAX_RESERVE`], and never more than all of it.
pub fn reserve(total: Duration) -> Duration {
    (total / 10).clamp(MIN_RESERVE, MAX_RESERVE).min(total)
}

/// The deadline for the heal's own work (waits, attach, associate) before the reserve.
pub fn work_deadline(now: Instant, deadline: Instant) -> Instant {
    deadline - reserve(deadline.saturating_duration_since(now))
}

/// How long to sleep before polling again, or `None` when sleeping `delay` would reach the
/// deadline: then there is no time left for the poll after it.
pub fn sleep_within(now: Instant, deadline: Instant, delay: Duration) -> Option<Duration> {
    let remaining = deadline.saturating_duration_since(now);
    (remaining > delay).then_some(delay)
}

/// How early before the hook times out a heartbeat is sent: a third of its timeout, within
/// 5 s..=60 s. Polls are at most 2 s apart, so a heartbeat is never missed.
pub fn heartbeat_margin(hook_timeout: Duration) -> Duration {
    (hook_timeout / 3).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Whether to send RecordLifecycleActionHeartbeat now: only when the work may still run past
/// the hook's expiry and that expiry is within the margin.
pub fn heartbeat_due(
    hook_remaining: Duration,
    work_remaining: Duration,
    hook_timeout: Duration,
) -> bool {
    hook_remaining < work_remaining && hook_remaining <= heartbeat_margin(hook_timeout)
}

/// When the hook expires, as time remaining from `now_ms`: the hook's timer started about when
/// the event was emitted (`event_ms`, second precision, so one second earlier to be safe).
/// Unknown event time: assume the timer started now minus the timeout, i.e. expired, so the
/// first wait sends a heartbeat (which restarts the timer).
pub fn hook_remaining(event_ms: Option<u64>, hook_timeout: Duration, now_ms: u64) -> Duration {
    match event_ms {
        Some(start) => {
            let expires = start.saturating_sub(1000) + hook_timeout.as_millis() as u64;
            Duration::from_millis(expires.saturating_sub(now_ms))
        }
        None => Duration::ZERO,
    }
}

/// Parses the RFC 3339 UTC timestamps EventBridge uses (`2024-05-01T12:00:00Z`, optionally with
/// fractional seconds) into epoch milliseconds. Anything else (offsets, garbage): `None`.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' || !matches!(b[b.len() - 1], b'Z' | b'z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut millis = 0;
    let frac = s.get(19..s.len() - 1)?;
    if !frac.is_empty() {
        let digits = frac.strip_prefix('.')?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let ms: String = digits.chars().chain("000".chars()).take(3).collect();
        millis = ms.parse().ok()?;
    }
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000 + millis)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm, for years from 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn deadline_from_epoch_millis() {
        let now = UNIX_EPOCH + S(1_700_000_000);
        let at = Instant::now();
        let d = deadline_instant(1_700_000_000_000 + 42_500, now, at);
        assert_eq!(d - at, MS(42_500));
        // A deadline already past (or 0, as outside Lambda) leaves no time at all.
        assert_eq!(deadline_instant(0, now, at), at);
        assert_eq!(deadline_instant(1_699_999_999_000, now, at), at);
        assert_eq!(epoch_ms(now), 1_700_000_000_000);
    }

    #[test]
    fn reserve_and_work_deadline() {
        assert_eq!(reserve(S(60)), S(3));
        assert_eq!(reserve(S(900)), S(3));
        assert_eq!(reserve(S(20)), S(2));
        assert_eq!(reserve(S(5)), S(1));
        assert_eq!(reserve(MS(600)), MS(600));
        assert_eq!(reserve(Duration::ZERO), Duration::ZERO);
        let now = Instant::now();
        assert_eq!(work_deadline(now, now + S(60)) - now, S(57));
        assert_eq!(work_deadline(now, now + S(3)), now + S(2));
        assert_eq!(work_deadline(now, now), now);
    }

    #[test]
    fn a_wait_must_leave_time_for_the_poll_after_it() {
        let now = Instant::now();
        assert_eq!(sleep_within(now, now + S(10), MS(200)), Some(MS(200)));
        assert_eq!(sleep_within(now, now + MS(201), MS(200)), Some(MS(200)));
        assert_eq!(sleep_within(now, now + MS(200), MS(200)), None);
        assert_eq!(sleep_within(now, now + MS(100), MS(200)), None);
        assert_eq!(sleep_within(now + S(1), now, MS(200)), None);
    }

    #[test]
    fn heartbeat_only_when_the_work_may_outlast_the_hook() {
        assert_eq!(heartbeat_margin(S(30)), S(10));
        assert_eq!(heartbeat_margin(S(3600)), S(60));
        assert_eq!(heartbeat_margin(S(6)), S(5));
        // Hook expires in 8 s, work may take 50 s more: due.
        assert!(heartbeat_due(S(8), S(50), S(30)));
        // Hook has 25 s left, far from its 10 s margin: not yet.
        assert!(!heartbeat_due(S(25), S(50), S(30)));
        // The work ends before the hook expires: never.
        assert!(!heartbeat_due(S(8), S(5), S(30)));
        // Expired or unknown (zero) with work left: due.
        assert!(heartbeat_due(Duration::ZERO, S(1), S(3600)));
    }

    #[test]
    fn hook_expiry_from_the_event_time() {
        let event = 1_700_000_000_000;
        // 5 s after the event, a 30 s hook has 24 s left (one second of slack).
        assert_eq!(hook_remaining(Some(event), S(30), event + 5_000), S(24));
        assert_eq!(
            hook_remaining(Some(event), S(30), event + 60_000),
            Duration::ZERO
        );
        assert_eq!(hook_remaining(None, S(3600), event), Duration::ZERO);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T12:00:00Z"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-03-01T00:00:00Z"),
            Some(951_868_800_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T23:59:59.123456Z"),
            Some(1_709_251_199_123)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+02:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:0a:00Z",
            "+024-05-01T12:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
