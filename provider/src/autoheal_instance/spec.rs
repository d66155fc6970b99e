//! The inputs of one stack, typed: read from a planned (or prior) state, where defaults are
//! filled in and validation has passed. The AWS operations work from this, never from raw
//! values.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plugin::value::Value;

use super::schema::{self, operation_timeout, Operation};

/// One `ingress` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngressRule {
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub cidr_blocks: Vec<String>,
    pub ipv6_cidr_blocks: Vec<String>,
    pub description: Option<String>,
}

impl IngressRule {
    pub fn from_value(v: &Value) -> IngressRule {
        IngressRule {
            protocol: string(v, "protocol").unwrap_or_default(),
            from_port: int(v, "from_port").unwrap_or(-1),
            to_port: int(v, "to_port").unwrap_or(-1),
            cidr_blocks: strings(v, "cidr_blocks"),
            ipv6_cidr_blocks: strings(v, "ipv6_cidr_blocks"),
            description: string(v, "description"),
        }
    }
}

fn strings(v: &Value, attr: &str) -> Vec<String> {
    v.attr(attr)
        .elements()
        .iter()
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

/// What the user asked for. Optional inputs are `None` when not set.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: String,
    pub availability_zone: String,
    /// The user's subnet; `None` means the provider creates the network.
    pub subnet_id: Option<String>,
    pub vpc_cidr: String,
    pub subnet_cidr: String,
    /// The failover zones (`failover_zones`), sorted; empty: none.
    pub failover_zones: Vec<String>,
    /// The user's subnet per failover zone (`failover_subnet_ids` with `subnet_id`); empty
    /// when the provider makes them.
    pub failover_subnet_ids: BTreeMap<String, String>,
    /// `failover_detection_window` (default 10 minutes).
    pub failover_detection_window: Duration,
    pub existing_allocation_id: Option<String>,
    pub existing_volume_id: Option<String>,
    pub ami: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub ssh_ingress_cidrs: Vec<String>,
    /// The application's inbound rules (`ingress` blocks).
    pub ingress: Vec<IngressRule>,
    /// Security groups the user manages, given to the instance besides the stack's.
    pub security_group_ids: Vec<String>,
    pub iam_instance_profile: Option<String>,
    pub lambda_role_permissions_boundary: Option<String>,
    pub user_data: Option<String>,
    pub volume_snapshot_id: Option<String>,
    pub volume_size: i32,
    pub volume_type: String,
    pub volume_iops: Option<i32>,
    pub volume_throughput: Option<i32>,
    pub volume_kms_key_id: Option<String>,
    pub device_name: String,
    pub mount_point: String,
    pub filesystem: String,
    pub volume_on_destroy: String,
    pub force_detach: bool,
    /// Use an unencrypted `existing_volume_id` (refused otherwise).
    pub allow_unencrypted_volume: bool,
    pub health_check_grace_period: i32,
    pub lifecycle_hook_timeout: i32,
    pub lambda_memory_size: i32,
    pub lambda_timeout: i32,
    pub lambda_architecture: String,
    pub lambda_reserved_concurrency: Option<i32>,
    pub log_retention_days: i32,
    pub handler_zip: Option<String>,
    /// An elastic network interface that moves from instance to instance with the address.
    pub persistent_network_interface: bool,
    /// SNS topics of the stack's alarms, sorted; empty: no alarms.
    pub alarm_actions: Vec<String>,
    pub alarm_no_in_service_minutes: i32,
    /// The scheduled snapshots (`snapshot_interval`, `snapshot_retention`); `None`: none.
    pub snapshot_schedule: Option<SnapshotSchedule>,
    /// The digest of the handler the plan promised (`handler_sha256`, known at plan time).
    pub handler_sha256: Option<String>,
    /// `tags` merged over the provider's `default_tags` (the planned `tags_all`).
    pub tags_all: BTreeMap<String, String>,
    pub create_timeout: Duration,
    pub update_timeout: Duration,
    pub delete_timeout: Duration,
}

/// How often the data volume is snapshotted, and how many completed snapshots are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSchedule {
    /// Whole minutes (validated).
    pub interval: Duration,
    pub retention: u32,
}

/// How much sooner than `snapshot_interval` the schedule fires. `snapshot_interval` is the
/// recovery point objective: two snapshots' starts must never be further apart. EventBridge
/// delivers a scheduled event up to a minute after its moment ("the minimum precision for a
/// schedule is one minute. Your scheduled rule runs within that minute, but not on the
/// precise 0th second": EventBridge User Guide, "Creating an Amazon EventBridge rule that
/// runs on a schedule"), never counting the lateness into the next moment, and the function
/// needs its start and a CreateSnapshot call: at the interval itself two starts were up to
/// 60 s more than the interval apart, and the recovery point missed its objective by 1.8 s
/// in one of ten measured outages (BENCHMARKS.md, failover section, before this). A rule
/// two minutes sooner keeps them at most the interval minus about a minute apart.
pub const SCHEDULE_LEAD: Duration = Duration::from_secs(2 * 60);

impl SnapshotSchedule {
    /// EventBridge's schedule expression: `rate(N minutes)`, N the interval minus
    /// [`SCHEDULE_LEAD`] (the plural, as N >= 13).
    pub fn expression(&self) -> String {
        format!(
            "rate({} minutes)",
            self.interval.saturating_sub(SCHEDULE_LEAD).as_secs() / 60
        )
    }

    /// The `snapshot_interval` a schedule rule's expression stands for: its rate plus
    /// [`SCHEDULE_LEAD`] (the inverse of [`Self::expression`]); `None` for anything else.
    pub fn interval_of_rule(expression: &str) -> Option<Duration> {
        Self::interval_of(expression).map(|rate| rate + SCHEDULE_LEAD)
    }

    /// The interval of a `rate(...)` expression, `None` for anything else (a cron
    /// expression, a malformed one).
    fn interval_of(expression: &str) -> Option<Duration> {
        let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
        let (n, unit) = inner.trim().split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        let secs = match unit.trim() {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            _ => return None,
        };
        Some(Duration::from_secs(n.checked_mul(secs)?))
    }
}

/// A map of strings (unknown or null: empty).
pub fn string_map(v: &Value, attr: &str) -> BTreeMap<String, String> {
    v.attr(attr)
        .entries()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of a map of strings: null when empty (as the state holds an unset map).
pub fn string_map_value(map: &BTreeMap<String, String>) -> Value {
    if map.is_empty() {
        return Value::Null;
    }
    Value::Map(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect(),
    )
}

fn string(v: &Value, attr: &str) -> Option<String> {
    v.attr(attr).as_str().map(str::to_string)
}

fn int(v: &Value, attr: &str) -> Option<i32> {
    v.attr(attr).as_i64().and_then(|n| i32::try_from(n).ok())
}

impl Spec {
    /// Reads the spec; unset optional attributes stay `None`, and (for a state written by an
    /// older build or an import) missing defaults take the schema's defaults.
    pub fn from_value(v: &Value) -> Spec {
        let s = |attr: &str, default: &str| string(v, attr).unwrap_or_else(|| default.to_string());
        let n = |attr: &str, default: i64| int(v, attr).unwrap_or(default as i32);
        Spec {
            name: s("name", ""),
            availability_zone: s("availability_zone", ""),
            subnet_id: string(v, "subnet_id").filter(|_| v.attr("vpc_cidr").is_null()),
            vpc_cidr: s("vpc_cidr", schema::DEFAULT_VPC_CIDR),
            subnet_cidr: s("subnet_cidr", schema::DEFAULT_SUBNET_CIDR),
            failover_zones: {
                let mut z = strings(v, "failover_zones");
                z.sort();
                z.dedup();
                z
            },
            failover_subnet_ids: if v.attr("vpc_cidr").is_null() {
                string_map(v, "failover_subnet_ids")
            } else {
                BTreeMap::new()
            },
            failover_detection_window: string(v, "failover_detection_window")
                .and_then(|w| super::duration::parse_go_duration(&w).ok())
                .unwrap_or(schema::DEFAULT_FAILOVER_DETECTION_WINDOW),
            existing_allocation_id: string(v, "existing_allocation_id"),
            existing_volume_id: string(v, "existing_volume_id"),
            ami: s("ami", ""),
            instance_type: s("instance_type", schema::DEFAULT_INSTANCE_TYPE),
            key_name: string(v, "key_name"),
            ssh_ingress_cidrs: {
                let mut c: Vec<String> = v
                    .attr("ssh_ingress_cidrs")
                    .elements()
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect();
                c.sort();
                c.dedup();
                c
            },
            ingress: v
                .attr("ingress")
                .elements()
                .iter()
                .map(IngressRule::from_value)
                .collect(),
            security_group_ids: strings(v, "security_group_ids"),
            iam_instance_profile: string(v, "iam_instance_profile"),
            lambda_role_permissions_boundary: string(v, "lambda_role_permissions_boundary"),
            user_data: string(v, "user_data"),
            volume_snapshot_id: string(v, "volume_snapshot_id"),
            volume_size: n("volume_size", schema::DEFAULT_VOLUME_SIZE),
            volume_type: s("volume_type", schema::DEFAULT_VOLUME_TYPE),
            volume_iops: int(v, "volume_iops"),
            volume_throughput: int(v, "volume_throughput"),
            volume_kms_key_id: string(v, "volume_kms_key_id"),
            device_name: s("device_name", schema::DEFAULT_DEVICE_NAME),
            mount_point: s("mount_point", schema::DEFAULT_MOUNT_POINT),
            filesystem: s("filesystem", schema::DEFAULT_FILESYSTEM),
            volume_on_destroy: s("volume_on_destroy", schema::DEFAULT_VOLUME_ON_DESTROY),
            force_detach: v.attr("force_detach").as_bool().unwrap_or(false),
            allow_unencrypted_volume: v
                .attr("allow_unencrypted_volume")
                .as_bool()
                .unwrap_or(false),
            health_check_grace_period: n(
                "health_check_grace_period",
                schema::DEFAULT_HEALTH_CHECK_GRACE_PERIOD,
            ),
            lifecycle_hook_timeout: n(
                "lifecycle_hook_timeout",
                schema::DEFAULT_LIFECYCLE_HOOK_TIMEOUT,
            ),
            lambda_memory_size: n("lambda_memory_size", schema::DEFAULT_LAMBDA_MEMORY_SIZE),
            lambda_timeout: n("lambda_timeout", schema::DEFAULT_LAMBDA_TIMEOUT),
            lambda_architecture: s("lambda_architecture", schema::DEFAULT_LAMBDA_ARCHITECTURE),
            lambda_reserved_concurrency: int(v, "lambda_reserved_concurrency"),
            log_retention_days: n("log_retention_days", schema::DEFAULT_LOG_RETENTION_DAYS),
            handler_zip: string(v, "handler_zip"),
            persistent_network_interface: v
                .attr("persistent_network_interface")
                .as_bool()
                .unwrap_or(false),
            alarm_actions: {
                let mut a = strings(v, "alarm_actions");
                a.sort();
                a.dedup();
                a
            },
            alarm_no_in_service_minutes: n(
                "alarm_no_in_service_minutes",
                schema::DEFAULT_ALARM_NO_IN_SERVICE_MINUTES,
            ),
            snapshot_schedule: string(v, "snapshot_interval")
                .and_then(|i| super::duration::parse_go_duration(&i).ok())
                .map(|interval| SnapshotSchedule {
                    interval,
                    retention: int(v, "snapshot_retention")
                        .and_then(|r| u32::try_from(r).ok())
                        .unwrap_or(schema::DEFAULT_SNAPSHOT_RETENTION as u32),
                }),
            handler_sha256: string(v, "handler_sha256"),
            tags_all: string_map(v, "tags_all"),
            create_timeout: operation_timeout(v, Operation::Create),
            update_timeout: operation_timeout(v, Operation::Update),
            delete_timeout: operation_timeout(v, Operation::Delete),
        }
    }

    /// Whether the stack has its alarms (`alarm_actions` set and not empty).
    pub fn has_alarms(&self) -> bool {
        !self.alarm_actions.is_empty()
    }

    /// Whether the stack reaches failover zones (`failover_zones`).
    pub fn has_failover_zones(&self) -> bool {
        !self.failover_zones.is_empty()
    }

    /// Whether the stack has the failover function: failover zones to go to, and the
    /// scheduled snapshots it restores (validation refuses zones without snapshots).
    pub fn has_failover(&self) -> bool {
        self.has_failover_zones() && self.snapshot_schedule.is_some()
    }

    /// Whether the provider owns the network (no `subnet_id` given).
    pub fn creates_network(&self) -> bool {
        self.subnet_id.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_fires_its_lead_before_the_interval_and_reads_back_as_it() {
        for (minutes, expression) in [
            (15, "rate(13 minutes)"),
            (60, "rate(58 minutes)"),
            (1440, "rate(1438 minutes)"),
        ] {
            let s = SnapshotSchedule {
                interval: Duration::from_secs(minutes * 60),
                retention: 1,
            };
            assert_eq!(s.expression(), expression);
            assert_eq!(
                SnapshotSchedule::interval_of_rule(expression),
                Some(s.interval)
            );
        }
        // A rule changed out of band reads as the interval it stands for.
        assert_eq!(
            SnapshotSchedule::interval_of_rule("rate(1 hour)"),
            Some(Duration::from_secs(62 * 60))
        );
        assert_eq!(
            SnapshotSchedule::interval_of_rule("cron(0 * * * ? *)"),
            None
        );
    }
}
