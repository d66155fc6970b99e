//! The function's configuration: environment variables set by the provider when it creates
//! the Lambda function. Read once at init; a missing or malformed value is an init error
//! (the function then never handles an event with a half-known configuration).

use std::fmt;
use std::time::Duration;

/// The EBS data volume to attach (`vol-` and 8 or 17 hex digits).
pub const AUTOHEAL_VOLUME_ID: &str = "AUTOHEAL_VOLUME_ID";
/// The Elastic IP's allocation id (`eipalloc-` and 8 or 17 hex digits).
pub const AUTOHEAL_ALLOCATION_ID: &str = "AUTOHEAL_ALLOCATION_ID";
/// The device name the volume is attached at (`/dev/sdf`..`/dev/sdz`, `/dev/xvdb`..`/dev/xvdz`).
pub const AUTOHEAL_DEVICE_NAME: &str = "AUTOHEAL_DEVICE_NAME";
/// The Auto Scaling group whose launches this function heals; events of other groups are refused.
pub const AUTOHEAL_GROUP_NAME: &str = "AUTOHEAL_GROUP_NAME";
/// The launch lifecycle hook this function completes.
pub const AUTOHEAL_HOOK_NAME: &str = "AUTOHEAL_HOOK_NAME";
/// Optional: the hook's heartbeat timeout in seconds (30..=7200). When set, the function never
/// calls DescribeLifecycleHooks; when unset it reads HeartbeatTimeout from there once per
/// execution environment, the first time it has to wait. Set it to the hook's value.
pub const AUTOHEAL_HOOK_TIMEOUT_SECONDS: &str = "AUTOHEAL_HOOK_TIMEOUT_SECONDS";
/// Optional: the stack's persistent network interface (`eni-` and 8 or 17 hex digits), which
/// carries the Elastic IP. When set, the heal attaches it to the new instance at device index
/// 1 after the volume and makes sure the address is on the interface (not on the instance);
/// unset, the address is associated with the instance.
pub const AUTOHEAL_NETWORK_INTERFACE_ID: &str = "AUTOHEAL_NETWORK_INTERFACE_ID";

/// Optional, with [`AUTOHEAL_SNAPSHOT_RETENTION`]: the EventBridge schedule rule (its name)
/// whose "Scheduled Event"s make the function snapshot the data volume. Set only when the
/// stack has `snapshot_interval`; a scheduled event of any other rule is refused.
pub const AUTOHEAL_SNAPSHOT_RULE: &str = "AUTOHEAL_SNAPSHOT_RULE";
/// With [`AUTOHEAL_SNAPSHOT_RULE`]: how many completed scheduled snapshots to keep (1..=1000).
pub const AUTOHEAL_SNAPSHOT_RETENTION: &str = "AUTOHEAL_SNAPSHOT_RETENTION";

/// Optional, the stack's failover function only (docs/zone-failover.md, section 3): the
/// EventBridge schedule rule (its name) whose "Scheduled Event"s make the function look for
/// the loss of the zone the stack serves from. Set, the function is the failover function: it
/// acts on that rule's events only and refuses everything else (launches are the heal
/// function's, with a narrower role).
pub const AUTOHEAL_FAILOVER_RULE: &str = "AUTOHEAL_FAILOVER_RULE";
/// With [`AUTOHEAL_FAILOVER_RULE`]: every zone the stack may serve from and its subnet,
/// `zone=subnet-..` pairs separated by commas, the home zone's included.
pub const AUTOHEAL_FAILOVER_SUBNETS: &str = "AUTOHEAL_FAILOVER_SUBNETS";
/// With [`AUTOHEAL_FAILOVER_RULE`]: the detection window in whole seconds (300..=86400): how
/// long the zone's launches must have failed before it is declared lost.
pub const AUTOHEAL_FAILOVER_WINDOW_SECONDS: &str = "AUTOHEAL_FAILOVER_WINDOW_SECONDS";

/// Every key the function reads, required ones first.
pub const ALL_KEYS: [&str; 12] = [
    AUTOHEAL_VOLUME_ID,
    AUTOHEAL_ALLOCATION_ID,
    AUTOHEAL_DEVICE_NAME,
    AUTOHEAL_GROUP_NAME,
    AUTOHEAL_HOOK_NAME,
    AUTOHEAL_HOOK_TIMEOUT_SECONDS,
    AUTOHEAL_NETWORK_INTERFACE_ID,
    AUTOHEAL_SNAPSHOT_RULE,
    AUTOHEAL_SNAPSHOT_RETENTION,
    AUTOHEAL_FAILOVER_RULE,
    AUTOHEAL_FAILOVER_SUBNETS,
    AUTOHEAL_FAILOVER_WINDOW_SECONDS,
];

/// The detection windows the function accepts, in seconds (the provider validates the same).
pub const FAILOVER_WINDOW_RANGE: std::ops::RangeInclusive<u64> = 300..=86_400;

/// The retention counts the function accepts (the provider validates the same range).
pub const SNAPSHOT_RETENTION_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// Lifecycle hook heartbeat timeouts AWS accepts, in seconds.
pub const HOOK_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 30..=7200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub volume_id: String,
    pub allocation_id: String,
    pub device_name: String,
    pub group_name: String,
    pub hook_name: String,
    /// `None`: read it from DescribeLifecycleHooks when first needed.
    pub hook_timeout: Option<Duration>,
}

/// The opt-in features: each off unless its variable is set. A struct apart from
/// [`Settings`] because the fuzz target's property (fuzz/checks/handler_event.rs, compiled
/// against this file) builds `Settings` field by field: a feature added there would break
/// that build, here it cannot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// [`AUTOHEAL_NETWORK_INTERFACE_ID`]; `None`: the address goes on the instance.
    pub network_interface_id: Option<String>,
    /// [`AUTOHEAL_SNAPSHOT_RULE`] and [`AUTOHEAL_SNAPSHOT_RETENTION`]; `None`: scheduled
    /// events are refused.
    pub snapshots: Option<SnapshotSettings>,
    /// [`AUTOHEAL_FAILOVER_RULE`] and its companions; `Some`: this is the failover function.
    pub failover: Option<FailoverSettings>,
}

/// The failover function's settings (`crate::failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    /// The check rule's name (its ARN is the only `resources` entry of the events acted on).
    pub rule_name: String,
    /// (zone, subnet) of every zone the stack may serve from, sorted by zone.
    pub subnets: Vec<(String, String)>,
    /// How long a zone's launches must have failed before it is declared lost.
    pub window: Duration,
}

impl FailoverSettings {
    pub fn zone_of_subnet(&self, subnet: &str) -> Option<&str> {
        self.subnets
            .iter()
            .find(|(_, s)| s == subnet)
            .map(|(z, _)| z.as_str())
    }

    pub fn subnet_of_zone(&self, zone: &str) -> Option<&str> {
        self.subnets
            .iter()
            .find(|(z, _)| z == zone)
            .map(|(_, s)| s.as_str())
    }
}

/// The scheduled snapshots of the data volume (`crate::snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    /// The schedule rule's name; its ARN in the function's account and region is the only
    /// `resources` entry of the events the function acts on.
    pub rule_name: String,
    /// Completed scheduled snapshots kept; older ones are deleted after a new one is taken.
    pub retention: u32,
}

/// Everything the function reads at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub settings: Settings,
    pub features: Features,
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        key: &'static str,
    },
    Malformed {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key } => write!(f, "{key} is not set (or empty)"),
            Problem::Malformed {
                key,
                value,
                expected,
            } => write!(f, "{key}={value:?} is malformed: expected {expected}"),
        }
    }
}

/// All the problems found, so one init error names every variable to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid function configuration: {}", join(.problems))]
pub struct SettingsError {
    pub problems: Vec<Problem>,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, SettingsError> {
        // Lossy: a non-UTF-8 value then fails validation instead of looking unset.
        Config::from_lookup(|key| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads and validates through `lookup` (the environment in production, a map in tests).
    /// Settings and features are read together, so one init error names every variable to
    /// fix (and there is no way to read the settings and miss a feature that is set).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, SettingsError> {
        let mut problems = Vec::new();
        let mut get =
            |key: &'static str, check: fn(&str) -> bool, expected: &'static str| match lookup(key)
                .filter(|v| !v.is_empty())
            {
                None => {
                    problems.push(Problem::Missing { key });
                    None
                }
                Some(value) if !check(&value) => {
                    problems.push(Problem::Malformed {
                        key,
                        value,
                        expected,
                    });
                    None
                }
                Some(value) => Some(value),
            };
        let volume_id = get(
            AUTOHEAL_VOLUME_ID,
            |v| is_ec2_id(v, "vol-"),
            "\"vol-\" and 8 or 17 lowercase hex digits",
        );
        let allocation_id = get(
            AUTOHEAL_ALLOCATION_ID,
            |v| is_ec2_id(v, "eipalloc-"),
            "\"eipalloc-\" and 8 or 17 lowercase hex digits",
        );
        let device_name = get(
            AUTOHEAL_DEVICE_NAME,
            is_device_name,
            "/dev/sdf to /dev/sdz or /dev/xvdb to /dev/xvdz",
        );
        let group_name = get(
            AUTOHEAL_GROUP_NAME,
            is_group_name,
            "1 to 255 characters, no control characters",
        );
        let hook_name = get(
            AUTOHEAL_HOOK_NAME,
            is_hook_name,
            "1 to 255 letters, digits, '-', '_' or '/'",
        );
        let hook_timeout = match lookup(AUTOHEAL_HOOK_TIMEOUT_SECONDS).filter(|v| !v.is_empty()) {
            None => None,
            Some(value) => match value.parse::<u64>() {
                Ok(secs) if HOOK_TIMEOUT_RANGE.contains(&secs) => Some(Duration::from_secs(secs)),
                _ => {
                    problems.push(Problem::Malformed {
                        key: AUTOHEAL_HOOK_TIMEOUT_SECONDS,
                        value,
                        expected: "whole seconds from 30 to 7200",
                    });
                    None
                }
            },
        };
        // Optional, but a malformed value is an error, never "unset": the provider set it
        // to have the address follow the interface.
        let network_interface_id =
            match lookup(AUTOHEAL_NETWORK_INTERFACE_ID).filter(|v| !v.is_empty()) {
                None => None,
                Some(value) if is_ec2_id(&value, "eni-") => Some(value),
                Some(value) => {
                    problems.push(Problem::Malformed {
                        key: AUTOHEAL_NETWORK_INTERFACE_ID,
                        value,
                        expected: "\"eni-\" and 8 or 17 lowercase hex digits",
                    });
                    None
                }
            };
        let snapshots = snapshot_settings(&lookup, &mut problems);
        let failover = failover_settings(&lookup, &mut problems);
        match (volume_id, allocation_id, device_name, group_name, hook_name) {
            (
                Some(volume_id),
                Some(allocation_id),
                Some(device_name),
                Some(group_name),
                Some(hook_name),
            ) if problems.is_empty() => Ok(Config {
                settings: Settings {
                    volume_id,
                    allocation_id,
                    device_name,
                    group_name,
                    hook_name,
                    hook_timeout,
                },
                features: Features {
                    network_interface_id,
                    snapshots,
                    failover,
                },
            }),
            _ => Err(SettingsError { problems }),
        }
    }
}

/// The scheduled-snapshot pair: both set, or neither (one alone is a half-written
/// configuration, reported as the other one missing).
fn snapshot_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<SnapshotSettings> {
    let rule = lookup(AUTOHEAL_SNAPSHOT_RULE).filter(|v| !v.is_empty());
    let retention = lookup(AUTOHEAL_SNAPSHOT_RETENTION).filter(|v| !v.is_empty());
    let (rule, retention) = match (rule, retention) {
        (None, None) => return None,
        (Some(_), None) => {
            problems.push(Problem::Missing {
                key: AUTOHEAL_SNAPSHOT_RETENTION,
            });
            return None;
        }
        (None, Some(_)) => {
            problems.push(Problem::Missing {
                key: AUTOHEAL_SNAPSHOT_RULE,
            });
            return None;
        }
        (Some(rule), Some(retention)) => (rule, retention),
    };
    let mut ok = true;
    if !is_rule_name(&rule) {
        problems.push(Problem::Malformed {
            key: AUTOHEAL_SNAPSHOT_RULE,
            value: rule.clone(),
            expected: "1 to 64 letters, digits, '.', '-' or '_' (an EventBridge rule name)",
        });
        ok = false;
    }
    let count = match retention.parse::<u32>() {
        Ok(n) if SNAPSHOT_RETENTION_RANGE.contains(&n) => n,
        _ => {
            problems.push(Problem::Malformed {
                key: AUTOHEAL_SNAPSHOT_RETENTION,
                value: retention,
                expected: "a whole number from 1 to 1000",
            });
            ok = false;
            0
        }
    };
    ok.then_some(SnapshotSettings {
        rule_name: rule,
        retention: count,
    })
}

/// The failover trio: all set, or none (a part alone is a half-written configuration, reported
/// as the others missing).
fn failover_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<FailoverSettings> {
    let keys = [
        AUTOHEAL_FAILOVER_RULE,
        AUTOHEAL_FAILOVER_SUBNETS,
        AUTOHEAL_FAILOVER_WINDOW_SECONDS,
    ];
    let values: Vec<Option<String>> = keys
        .iter()
        .map(|k| lookup(k).filter(|v| !v.is_empty()))
        .collect();
    if values.iter().all(Option::is_none) {
        return None;
    }
    if values.iter().any(Option::is_none) {
        for (key, value) in keys.iter().zip(&values) {
            if value.is_none() {
                problems.push(Problem::Missing { key });
            }
        }
        return None;
    }
    let [rule, subnets, window] =
        [&values[0], &values[1], &values[2]].map(|v| v.clone().unwrap_or_default());
    let before = problems.len();
    if !is_rule_name(&rule) {
        problems.push(Problem::Malformed {
            key: AUTOHEAL_FAILOVER_RULE,
            value: rule.clone(),
            expected: "1 to 64 letters, digits, '.', '-' or '_' (an EventBridge rule name)",
        });
    }
    let parsed = parse_zone_subnets(&subnets);
    if parsed.is_none() {
        problems.push(Problem::Malformed {
            key: AUTOHEAL_FAILOVER_SUBNETS,
            value: subnets,
            expected: "at least two zone=subnet-.. pairs separated by commas, one per zone",
        });
    }
    let window = match window.parse::<u64>() {
        Ok(secs) if FAILOVER_WINDOW_RANGE.contains(&secs) => Some(Duration::from_secs(secs)),
        _ => {
            problems.push(Problem::Malformed {
                key: AUTOHEAL_FAILOVER_WINDOW_SECONDS,
                value: window,
                expected: "whole seconds from 300 to 86400",
            });
            None
        }
    };
    match (parsed, window) {
        (Some(subnets), Some(window)) if problems.len() == before => Some(FailoverSettings {
            rule_name: rule,
            subnets,
            window,
        }),
        _ => None,
    }
}

/// `zone=subnet-..,zone=subnet-..`: at least two zones (home and one to fail over to), each
/// once, each subnet once; sorted by zone. `None` when malformed.
fn parse_zone_subnets(value: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in value.split(',') {
        let (zone, subnet) = part.split_once('=')?;
        let zone_ok = (1..=64).contains(&zone.len())
            && zone
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !zone_ok || !is_ec2_id(subnet, "subnet-") {
            return None;
        }
        pairs.push((zone.to_string(), subnet.to_string()));
    }
    pairs.sort();
    let distinct = pairs.windows(2).all(|w| w[0].0 != w[1].0)
        && pairs
            .iter()
            .enumerate()
            .all(|(i, (_, s))| pairs[i + 1..].iter().all(|(_, t)| t != s));
    (pairs.len() >= 2 && distinct).then_some(pairs)
}

/// EventBridge's rule names: 1 to 64 of `[.\-_A-Za-z0-9]` (EventBridge API Reference, PutRule).
pub fn is_rule_name(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// `<prefix>` followed by 8 or 17 lowercase hex digits: the form of EC2 ids.
pub fn is_ec2_id(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// AWS's recommended EBS data-volume names on Linux; the provider validates the same set.
pub fn is_device_name(value: &str) -> bool {
    match (
        value.strip_prefix("/dev/sd"),
        value.strip_prefix("/dev/xvd"),
    ) {
        (Some(l), _) => l.len() == 1 && ("f"..="z").contains(&l),
        (_, Some(l)) => l.len() == 1 && ("b"..="z").contains(&l),
        _ => false,
    }
}

fn is_group_name(value: &str) -> bool {
    (1..=255).contains(&value.chars().count()) && !value.chars().any(char::is_control)
}

fn is_hook_name(value: &str) -> bool {
    (1..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: [(&str, &str); 5] = [
        (AUTOHEAL_VOLUME_ID, "vol-0123456789abcdef0"),
        (AUTOHEAL_ALLOCATION_ID, "eipalloc-0123abcd"),
        (AUTOHEAL_DEVICE_NAME, "/dev/sdf"),
        (AUTOHEAL_GROUP_NAME, "web-autoheal"),
        (AUTOHEAL_HOOK_NAME, "web-autoheal-launch"),
    ];

    fn with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = GOOD
            .iter()
            .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
            .copied()
            .collect();
        v.extend_from_slice(overrides);
        v
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Config::from_lookup(env(pairs)).map(|c| c.settings)
    }

    #[test]
    fn complete_settings_parse() {
        let s = settings(&GOOD).unwrap();
        assert_eq!(s.volume_id, "vol-0123456789abcdef0");
        assert_eq!(s.allocation_id, "eipalloc-0123abcd");
        assert_eq!(s.device_name, "/dev/sdf");
        assert_eq!(s.group_name, "web-autoheal");
        assert_eq!(s.hook_name, "web-autoheal-launch");
        assert_eq!(s.hook_timeout, None);
        let s = settings(&with(&[(AUTOHEAL_HOOK_TIMEOUT_SECONDS, "900")])).unwrap();
        assert_eq!(s.hook_timeout, Some(Duration::from_secs(900)));
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let err = settings(&[]).unwrap_err();
        let missing: Vec<_> = err
            .problems
            .iter()
            .map(|p| match p {
                Problem::Missing { key } => *key,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(missing, ALL_KEYS[..5]);
        let text = err.to_string();
        for key in &ALL_KEYS[..5] {
            assert!(text.contains(key), "{text}");
        }
        // Empty counts as missing.
        let err = settings(&with(&[(AUTOHEAL_GROUP_NAME, "")])).unwrap_err();
        assert_eq!(
            err.problems,
            [Problem::Missing {
                key: AUTOHEAL_GROUP_NAME
            }]
        );
    }

    #[test]
    fn malformed_values_are_rejected() {
        let cases: &[(&str, &str)] = &[
            (AUTOHEAL_VOLUME_ID, "vol-0123"),
            (AUTOHEAL_VOLUME_ID, "vol-0123ABCD"),
            (AUTOHEAL_VOLUME_ID, "eipalloc-0123abcd"),
            (AUTOHEAL_VOLUME_ID, " vol-0123abcd"),
            (AUTOHEAL_ALLOCATION_ID, "eipalloc-0123abc"),
            (AUTOHEAL_ALLOCATION_ID, "203.0.113.7"),
            (AUTOHEAL_DEVICE_NAME, "/dev/sda1"),
            (AUTOHEAL_DEVICE_NAME, "/dev/sdb"),
            (AUTOHEAL_DEVICE_NAME, "/dev/xvda"),
            (AUTOHEAL_DEVICE_NAME, "/dev/nvme1n1"),
            (AUTOHEAL_DEVICE_NAME, "sdf"),
            (AUTOHEAL_GROUP_NAME, "bad\nname"),
            (AUTOHEAL_HOOK_NAME, "has space"),
            (AUTOHEAL_HOOK_TIMEOUT_SECONDS, "29"),
            (AUTOHEAL_HOOK_TIMEOUT_SECONDS, "7201"),
            (AUTOHEAL_HOOK_TIMEOUT_SECONDS, "1h"),
            (AUTOHEAL_HOOK_TIMEOUT_SECONDS, "-30"),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "eni-0123"),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "eni-0123ABCD"),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "eni-0123456789abcdef"),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "vol-0123abcd"),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "eni-0123abcd "),
            (AUTOHEAL_NETWORK_INTERFACE_ID, "10.0.1.10"),
        ];
        for &(key, value) in cases {
            let pairs: Vec<(&str, &str)> = GOOD
                .iter()
                .filter(|(k, _)| *k != key)
                .copied()
                .chain([(key, value)])
                .collect();
            let err = settings(&pairs).unwrap_err();
            assert_eq!(err.problems.len(), 1, "{key}={value:?}: {err}");
            match &err.problems[0] {
                Problem::Malformed {
                    key: k, value: v, ..
                } => {
                    assert_eq!((*k, v.as_str()), (key, value));
                }
                other => panic!("{key}={value:?}: unexpected {other:?}"),
            }
            assert!(err.to_string().contains(key));
        }
    }

    #[test]
    fn the_network_interface_is_optional() {
        // Unset or empty: off, and the rest parses as before.
        for pairs in [GOOD.to_vec(), with(&[(AUTOHEAL_NETWORK_INTERFACE_ID, "")])] {
            let c = Config::from_lookup(env(&pairs)).unwrap();
            assert_eq!(c.features, Features::default());
            assert_eq!(c.features.network_interface_id, None);
        }
        for id in ["eni-0123abcd", "eni-0123456789abcdef0"] {
            let c =
                Config::from_lookup(env(&with(&[(AUTOHEAL_NETWORK_INTERFACE_ID, id)]))).unwrap();
            assert_eq!(c.features.network_interface_id.as_deref(), Some(id));
            assert_eq!(c.settings, settings(&GOOD).unwrap());
        }
        // A malformed interface is reported with the other problems, not ignored.
        let pairs: Vec<_> = with(&[(AUTOHEAL_NETWORK_INTERFACE_ID, "eni-xyz")])
            .into_iter()
            .filter(|(k, _)| *k != AUTOHEAL_VOLUME_ID)
            .collect();
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| match p {
                Problem::Missing { key } | Problem::Malformed { key, .. } => *key,
            })
            .collect();
        assert_eq!(keys, [AUTOHEAL_VOLUME_ID, AUTOHEAL_NETWORK_INTERFACE_ID]);
        assert!(ALL_KEYS.contains(&AUTOHEAL_NETWORK_INTERFACE_ID));
    }

    #[test]
    fn scheduled_snapshots_need_both_variables() {
        let c = Config::from_lookup(env(&GOOD)).unwrap();
        assert_eq!(c.features.snapshots, None);
        let c = Config::from_lookup(env(&with(&[
            (AUTOHEAL_SNAPSHOT_RULE, "app-snapshot"),
            (AUTOHEAL_SNAPSHOT_RETENTION, "24"),
        ])))
        .unwrap();
        assert_eq!(
            c.features.snapshots,
            Some(SnapshotSettings {
                rule_name: "app-snapshot".into(),
                retention: 24
            })
        );
        assert_eq!(c.settings, settings(&GOOD).unwrap());
        // One without the other: the other is missing.
        let err = Config::from_lookup(env(&with(&[(AUTOHEAL_SNAPSHOT_RULE, "app-snapshot")])))
            .unwrap_err();
        assert_eq!(
            err.problems,
            [Problem::Missing {
                key: AUTOHEAL_SNAPSHOT_RETENTION
            }]
        );
        let err =
            Config::from_lookup(env(&with(&[(AUTOHEAL_SNAPSHOT_RETENTION, "3")]))).unwrap_err();
        assert_eq!(
            err.problems,
            [Problem::Missing {
                key: AUTOHEAL_SNAPSHOT_RULE
            }]
        );
        for (rule, retention, bad) in [
            ("app-snapshot", "0", AUTOHEAL_SNAPSHOT_RETENTION),
            ("app-snapshot", "1001", AUTOHEAL_SNAPSHOT_RETENTION),
            ("app-snapshot", "two", AUTOHEAL_SNAPSHOT_RETENTION),
            ("app snapshot", "2", AUTOHEAL_SNAPSHOT_RULE),
            ("rule/app", "2", AUTOHEAL_SNAPSHOT_RULE),
        ] {
            let err = Config::from_lookup(env(&with(&[
                (AUTOHEAL_SNAPSHOT_RULE, rule),
                (AUTOHEAL_SNAPSHOT_RETENTION, retention),
            ])))
            .unwrap_err();
            assert!(
                matches!(&err.problems[..], [Problem::Malformed { key, .. }] if *key == bad),
                "{rule} {retention}: {err}"
            );
        }
        assert!(is_rule_name(&"r".repeat(64)));
        assert!(!is_rule_name(&"r".repeat(65)));
    }

    #[test]
    fn the_failover_function_needs_all_three_variables() {
        let c = Config::from_lookup(env(&GOOD)).unwrap();
        assert_eq!(c.features.failover, None);
        let c = Config::from_lookup(env(&with(&[
            (AUTOHEAL_FAILOVER_RULE, "app-failover-check"),
            (
                AUTOHEAL_FAILOVER_SUBNETS,
                "ap-southeast-2b=subnet-0bbbbbbb,ap-southeast-2a=subnet-0aaaaaaa",
            ),
            (AUTOHEAL_FAILOVER_WINDOW_SECONDS, "600"),
        ])))
        .unwrap();
        let f = c.features.failover.unwrap();
        assert_eq!(f.rule_name, "app-failover-check");
        assert_eq!(
            f.subnets,
            [
                ("ap-southeast-2a".to_string(), "subnet-0aaaaaaa".to_string()),
                ("ap-southeast-2b".to_string(), "subnet-0bbbbbbb".to_string())
            ]
        );
        assert_eq!(f.window, Duration::from_secs(600));
        assert_eq!(f.zone_of_subnet("subnet-0bbbbbbb"), Some("ap-southeast-2b"));
        assert_eq!(f.subnet_of_zone("ap-southeast-2a"), Some("subnet-0aaaaaaa"));
        assert_eq!(f.zone_of_subnet("subnet-0ccccccc"), None);
        // One part alone: the others are missing.
        let err = Config::from_lookup(env(&with(&[(
            AUTOHEAL_FAILOVER_RULE,
            "app-failover-check",
        )])))
        .unwrap_err();
        assert_eq!(
            err.problems,
            [
                Problem::Missing {
                    key: AUTOHEAL_FAILOVER_SUBNETS
                },
                Problem::Missing {
                    key: AUTOHEAL_FAILOVER_WINDOW_SECONDS
                }
            ]
        );
        for (subnets, window, bad) in [
            (
                "ap-southeast-2a=subnet-0aaaaaaa",
                "600",
                AUTOHEAL_FAILOVER_SUBNETS,
            ),
            (
                "ap-southeast-2a=subnet-0aaaaaaa,ap-southeast-2a=subnet-0bbbbbbb",
                "600",
                AUTOHEAL_FAILOVER_SUBNETS,
            ),
            (
                "ap-southeast-2a=subnet-0aaaaaaa,ap-southeast-2b=subnet-0aaaaaaa",
                "600",
                AUTOHEAL_FAILOVER_SUBNETS,
            ),
            (
                "ap-southeast-2a=subnet-0aaaaaaa,ap-southeast-2b",
                "600",
                AUTOHEAL_FAILOVER_SUBNETS,
            ),
            (
                "ap-southeast-2a=vpc-0aaaaaaa,ap-southeast-2b=subnet-0bbbbbbb",
                "600",
                AUTOHEAL_FAILOVER_SUBNETS,
            ),
            (
                "ap-southeast-2a=subnet-0aaaaaaa,ap-southeast-2b=subnet-0bbbbbbb",
                "299",
                AUTOHEAL_FAILOVER_WINDOW_SECONDS,
            ),
            (
                "ap-southeast-2a=subnet-0aaaaaaa,ap-southeast-2b=subnet-0bbbbbbb",
                "10m",
                AUTOHEAL_FAILOVER_WINDOW_SECONDS,
            ),
        ] {
            let err = Config::from_lookup(env(&with(&[
                (AUTOHEAL_FAILOVER_RULE, "app-failover-check"),
                (AUTOHEAL_FAILOVER_SUBNETS, subnets),
                (AUTOHEAL_FAILOVER_WINDOW_SECONDS, window),
            ])))
            .unwrap_err();
            assert!(
                matches!(&err.problems[..], [Problem::Malformed { key, .. }] if *key == bad),
                "{subnets} {window}: {err}"
            );
        }
    }

    #[test]
    fn id_and_device_formats() {
        assert!(is_ec2_id("vol-0123abcd", "vol-"));
        assert!(is_ec2_id("vol-0123456789abcdef0", "vol-"));
        assert!(!is_ec2_id("vol-0123456789abcdef", "vol-"));
        assert!(!is_ec2_id("vol-", "vol-"));
        for good in ["/dev/sdf", "/dev/sdz", "/dev/xvdb", "/dev/xvdz"] {
            assert!(is_device_name(good), "{good}");
        }
        for bad in ["/dev/sde", "/dev/xvdba", "/dev/sdff", "/dev/sd", ""] {
            assert!(!is_device_name(bad), "{bad}");
        }
    }
}
