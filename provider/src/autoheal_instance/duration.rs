//! Go duration strings (`"90s"`, `"30m"`, `"1h30m"`, `"1.5h"`), as Terraform users write them
//! in `timeouts` blocks.
//!
//! Written by hand: the duration crates on crates.io (humantime, go-parse-duration, ...) either
//! accept a different syntax (spaces, long unit names, `d`/`w` units) or differ from Go on
//! edge cases such as `"1.h"`, `".5s"`, `"0"` and `"µs"`. This follows Go's
//! `time.ParseDuration` grammar exactly: an optional sign, then one or more
//! `[0-9]*(\.[0-9]*)?unit` parts (at least one digit per part), units `ns`, `us`, `µs`, `μs`,
//! `ms`, `s`, `m`, `h`; the bare string `"0"` is also valid. Fractions are computed exactly
//! (Go goes through float64, so it may differ by a nanosecond on long fractions).
//! [`std::time::Duration`] cannot be negative, so a negative duration is an error.

use std::fmt;
use std::time::Duration;

/// Why a string is not a (non-negative) Go duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    Invalid,
    MissingUnit,
    UnknownUnit(String),
    Negative,
    Overflow,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => write!(f, "the duration is empty"),
            DurationError::Invalid => write!(f, "it is not a duration such as \"30m\""),
            DurationError::MissingUnit => write!(f, "a number has no unit"),
            DurationError::UnknownUnit(u) => {
                write!(f, "unknown unit {u:?} (use ns, us, ms, s, m or h)")
            }
            DurationError::Negative => write!(f, "the duration is negative"),
            DurationError::Overflow => write!(f, "the duration is too long"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Go's upper limit: durations are int64 nanoseconds (about 292 years).
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string such as `"1h30m"`.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(if input.is_empty() {
            DurationError::Empty
        } else {
            DurationError::Invalid
        });
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // [0-9]*
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        // (\.[0-9]*)?
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac_digits, s) = rest.split_at(frac_len);
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationError::Invalid);
        }
        // The unit: everything up to the next digit or period.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit);
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit(unit.into()))?;

        let mut whole: u128 = 0;
        for d in int_digits.bytes() {
            whole = whole * 10 + u128::from(d - b'0');
            if whole > MAX_NANOS {
                return Err(DurationError::Overflow);
            }
        }
        let mut part = whole * per_unit;
        // Digits beyond the nanosecond cannot matter: 19 fraction digits are plenty.
        let mut numerator: u128 = 0;
        let mut denominator: u128 = 1;
        for d in frac_digits.bytes().take(19) {
            numerator = numerator * 10 + u128::from(d - b'0');
            denominator *= 10;
        }
        part += numerator * per_unit / denominator;
        total += part;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn accepts_what_go_accepts() {
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("30m"), Duration::from_secs(1800));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1h1m1s1ms1us1ns"), Duration::new(3661, 1_001_001));
        assert_eq!(ok("3µs"), Duration::from_micros(3));
        assert_eq!(ok("3μs"), Duration::from_micros(3));
        assert_eq!(ok("1.0000000001s"), Duration::new(1, 0));
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_go_duration("-"), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration("30"), Err(DurationError::MissingUnit));
        assert_eq!(parse_go_duration(".s"), Err(DurationError::Invalid));
        assert_eq!(parse_go_duration("1h30"), Err(DurationError::MissingUnit));
        assert_eq!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit("d".into()))
        );
        assert_eq!(
            parse_go_duration("30 m"),
            Err(DurationError::UnknownUnit(" m".into()))
        );
        assert_eq!(
            parse_go_duration("30min"),
            Err(DurationError::UnknownUnit("min".into()))
        );
        assert_eq!(parse_go_duration("-5m"), Err(DurationError::Negative));
        assert_eq!(parse_go_duration("2562048h"), Err(DurationError::Overflow));
        assert_eq!(
            parse_go_duration("99999999999999999999999s"),
            Err(DurationError::Overflow)
        );
    }
}
