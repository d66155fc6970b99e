//! `demo-heal`: the live part of `tools/demo`, against a running local AWS.
//!
//! ```text
//! demo-heal heal --name NAME --instance ID --volume VOL --public-ip IP [--timeout SECS] [--result FILE]
//! demo-heal sweep NAME
//! ```
//!
//! `heal` terminates the serving instance of the stack `NAME` (what `terraform apply` of
//! `examples/basic` stood up) and watches the pattern repair it, printing one line, with the
//! time and the offset from the kill, for each stage as it is *seen*: the old instance
//! terminated, the replacement launched and held in `Pending:Wait` by the launch hook, the
//! hook's event delivered to the rule's target, the attachment Lambda running, the volume
//! attached, the address associated, the replacement `InService`. Every stage is observed by
//! polling AWS (and the local AWS's records of events and Lambda runs), [`POLL_INTERVAL`]
//! after each look; nothing is inferred from the stage before it (a `Pending:Wait` that
//! passed between two looks would be reported as not seen live). Then the total heal time,
//! the Lambda's result and its log lines of that invocation. It fails, saying what it was
//! still waiting for, when the heal is not complete within the timeout.
//!
//! `sweep` lists what is left of the stack (by its `autoheal:stack` tag and name prefix, with
//! [`Sweeper`]) and succeeds only when that is exactly the final snapshot, which it names.
//!
//! Both talk to `AWS_ENDPOINT_URL` (region `AWS_REGION`) and refuse to run unless it answers
//! the local AWS's control API: `heal` terminates an instance, which is for the demo only.
//!
//! The bookkeeping of stages ([`Progress`]) and the shortening of log lines ([`brief_log`]) are
//! plain functions of what was seen, tested below; the polling around them is the demo itself.

use std::collections::BTreeSet;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use terraform_tests::local_aws::control::{Control, Event, Invocation, Outcome};
use terraform_tests::local_aws::helpers::{
    address_status, err_text, function_log_group, group_instances, instance_state, volume_status,
    AddressStatus, GroupInstance, VolumeStatus, LAUNCH_ACTION_DETAIL_TYPE,
};
use terraform_tests::local_aws::{Clients, DEFAULT_REGION};
use terraform_tests::sweeper::{Kind, Sweeper, FINAL_SNAPSHOT_TAG};

/// How often the heal is looked at: short, so a stage that lasts a few hundred milliseconds
/// (the `Pending:Wait` hold) is seen live.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// How long a heal may take unless `--timeout` says otherwise. At the demo's clock scale
/// (0.1) a heal takes about a second; this leaves room for a Lambda retry (60 s of AWS time).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage:
  demo-heal heal --name NAME --instance ID --volume VOL --public-ip IP [--timeout SECS] [--result FILE]
  demo-heal sweep NAME
Both use AWS_ENDPOINT_URL (a local AWS: tools/demo starts one) and AWS_REGION.";

// --- the stages of a heal --------------------------------------------------------------------

/// The stages of a heal, in the order the pattern goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Terminated,
    Launched,
    PendingWait,
    EventDelivered,
    LambdaRunning,
    VolumeAttached,
    AddressAssociated,
    InService,
}

impl Stage {
    const ALL: [Stage; 8] = [
        Stage::Terminated,
        Stage::Launched,
        Stage::PendingWait,
        Stage::EventDelivered,
        Stage::LambdaRunning,
        Stage::VolumeAttached,
        Stage::AddressAssociated,
        Stage::InService,
    ];

    /// The stages that belong to one replacement (all but the old instance's termination):
    /// they start over if the group gives up on a replacement and launches another.
    fn of_replacement(self) -> bool {
        self != Stage::Terminated
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // pad, not write_str: the timeline lines align the names with a width.
        f.pad(match self {
            Stage::Terminated => "instance terminated",
            Stage::Launched => "replacement launched",
            Stage::PendingWait => "held in Pending:Wait",
            Stage::EventDelivered => "event delivered",
            Stage::LambdaRunning => "Lambda running",
            Stage::VolumeAttached => "volume attached",
            Stage::AddressAssociated => "address associated",
            Stage::InService => "InService",
        })
    }
}

/// The launch event of the replacement, as the local AWS recorded it.
#[derive(Debug, Clone, PartialEq)]
struct EventSeen {
    id: String,
    /// The rule that matched it and the target it went to.
    rule_arn: String,
    target_arn: String,
    /// `queued` (for a Lambda target), `delivered`, `failed`, ...
    status: String,
}

/// The lifecycle action holding the replacement, as the local AWS lists it.
#[derive(Debug, Clone, PartialEq)]
struct HoldSeen {
    hook: String,
    /// In AWS seconds (the local AWS runs them on its scaled clock).
    heartbeat_timeout: f64,
    default_result: String,
}

/// A `START RequestId: ...` line of the function logged after the kill.
#[derive(Debug, Clone, PartialEq)]
struct StartSeen {
    request_id: String,
    /// When it was logged (ms since the epoch).
    logged_ms: i64,
}

/// What one look at AWS found. `None`: not looked at this time (nothing left to learn there).
#[derive(Debug, Clone, Default)]
struct Look {
    /// The EC2 state of the killed instance (`None` inside: EC2 no longer knows it).
    old_state: Option<Option<String>>,
    /// The group's instances.
    instances: Vec<GroupInstance>,
    /// The lifecycle action holding the replacement, if there is one.
    hold: Option<HoldSeen>,
    /// The replacement's launch event delivered to our function, if recorded yet.
    event: Option<EventSeen>,
    /// The first START line of the function since the kill.
    start: Option<StartSeen>,
    volume: Option<VolumeStatus>,
    address: Option<AddressStatus>,
}

/// Which stages have been seen, for which replacement. Fed one [`Look`] at a time, it says
/// what is new; it never marks a stage it was not shown.
#[derive(Debug, Default)]
struct Progress {
    old: String,
    replacement: Option<String>,
    reached: BTreeSet<Stage>,
}

/// Something [`Progress::update`] has to say: a stage reached (with details), or a change of
/// replacement.
#[derive(Debug, Clone, PartialEq)]
enum News {
    Reached(Stage, String),
    /// The replacement left the group before being served (ABANDON, or terminated): the
    /// group launches another, and its stages start over.
    ReplacementLost {
        lost: String,
        state: String,
    },
}

impl Progress {
    fn new(old: &str) -> Self {
        Self {
            old: old.to_string(),
            ..Self::default()
        }
    }

    fn has(&self, stage: Stage) -> bool {
        self.reached.contains(&stage)
    }

    /// Every stage seen, for the current replacement.
    fn complete(&self) -> bool {
        Stage::ALL.iter().all(|s| self.has(*s))
    }

    /// The stages not seen yet, in order.
    fn missing(&self) -> Vec<Stage> {
        Stage::ALL.into_iter().filter(|s| !self.has(*s)).collect()
    }

    /// The instance of the group that is not the killed one and is not on its way out.
    fn candidate<'a>(&self, look: &'a Look) -> Option<&'a GroupInstance> {
        look.instances.iter().find(|i| {
            i.id != self.old
                && !i.lifecycle_state.starts_with("Terminat")
                && i.lifecycle_state != "Detached"
        })
    }

    /// Takes in one look and returns what is new, in the order of the stages.
    fn update(&mut self, look: &Look) -> Vec<News> {
        let mut news = Vec::new();
        let reach = |reached: &mut BTreeSet<Stage>, news: &mut Vec<News>, stage, detail| {
            if reached.insert(stage) {
                news.push(News::Reached(stage, detail));
            }
        };

        if let Some(Some(state)) = &look.old_state {
            if state == "terminated" {
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::Terminated,
                    format!("{} is {state} (EC2)", self.old),
                );
            }
        }

        // Follow the replacement; if it is gone from the group (or leaving it) before it
        // was served, the group launches another one and its stages start over.
        let candidate = self.candidate(look).cloned();
        if let Some(current) = self.replacement.clone() {
            let listed = look.instances.iter().find(|i| i.id == current);
            let leaving = listed.is_none_or(|i| i.lifecycle_state.starts_with("Terminat"));
            if leaving && !self.has(Stage::InService) {
                let state = listed.map_or("gone from the group".to_string(), |i| {
                    i.lifecycle_state.clone()
                });
                news.push(News::ReplacementLost {
                    lost: current,
                    state,
                });
                self.replacement = None;
                self.reached.retain(|s| !s.of_replacement());
            }
        }
        if self.replacement.is_none() {
            if let Some(c) = &candidate {
                self.replacement = Some(c.id.clone());
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::Launched,
                    format!("{} ({}, {})", c.id, c.lifecycle_state, c.availability_zone),
                );
            }
        }
        let Some(new) = self.replacement.clone() else {
            return news;
        };
        let state = look
            .instances
            .iter()
            .find(|i| i.id == new)
            .map(|i| i.lifecycle_state.as_str());

        if state == Some("Pending:Wait") {
            let hook = look.hold.as_ref().map_or(String::new(), |h| {
                format!(
                    " {} (heartbeat timeout {} s, then {})",
                    h.hook, h.heartbeat_timeout, h.default_result
                )
            });
            reach(
                &mut self.reached,
                &mut news,
                Stage::PendingWait,
                format!("{new} waits for the launch lifecycle hook{hook}"),
            );
        }
        if let Some(e) = &look.event {
            if e.status == "queued" || e.status == "delivered" {
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::EventDelivered,
                    format!(
                        "event {} -> rule {} -> {} ({})",
                        short_id(&e.id),
                        last_segment(&e.rule_arn),
                        last_segment(&e.target_arn),
                        e.status
                    ),
                );
            }
        }
        if let Some(s) = &look.start {
            reach(
                &mut self.reached,
                &mut news,
                Stage::LambdaRunning,
                format!(
                    "invocation {} started (its START line is stamped {})",
                    s.request_id,
                    clock_time(s.logged_ms)
                ),
            );
        }
        if let Some(v) = &look.volume {
            if let Some(a) = v
                .attachment
                .as_ref()
                .filter(|a| a.instance_id == new && a.state == "attached")
            {
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::VolumeAttached,
                    format!("{} -> {new} as {}", v.volume_id, a.device),
                );
            }
        }
        if let Some(a) = &look.address {
            if a.instance_id.as_deref() == Some(new.as_str()) {
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::AddressAssociated,
                    format!("{} ({}) -> {new}", a.public_ip, a.allocation_id),
                );
            }
        }
        if state == Some("InService") {
            // Pending:Wait lasts as long as the Lambda takes; should it ever fall between
            // two looks, the line says so instead of pretending it was seen.
            if !self.has(Stage::PendingWait) {
                reach(
                    &mut self.reached,
                    &mut news,
                    Stage::PendingWait,
                    format!(
                        "{new}: not seen live (it passed between two looks); the hook's \
                         launch event for it is the record of the hold"
                    ),
                );
            }
            reach(
                &mut self.reached,
                &mut news,
                Stage::InService,
                format!("{new} serves again"),
            );
        }
        news
    }
}

/// What a heal that timed out was still waiting for: the stages not seen, or, when every
/// stage was, the local AWS's record of the Lambda invocation.
fn waiting_for(missing: &[Stage]) -> String {
    if missing.is_empty() {
        "the record of the Lambda invocation (every stage was seen)".into()
    } else {
        missing
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `arn:...:function:demo-app-attach` -> `demo-app-attach`; `...:rule/x` -> `x`.
fn last_segment(arn: &str) -> &str {
    arn.rsplit([':', '/']).next().unwrap_or(arn)
}

/// The first 8 characters of a uuid, enough to tell events apart on screen.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

// --- function logs -------------------------------------------------------------------------

/// One log line of the attachment Lambda, shortened for the screen: the JSON lines the
/// handler writes become `LEVEL message key=value ...` (the span, which repeats the instance,
/// volume and address on every line, is left out), the metric record (CloudWatch Embedded
/// Metric Format) becomes `metrics NAMESPACE: Name=value ...`, Lambda's own lines stay as
/// they are but for tabs.
fn brief_log(line: &str) -> String {
    let line = line.trim_end();
    let Some(Value::Object(record)) = line
        .starts_with('{')
        .then(|| serde_json::from_str::<Value>(line).ok())
        .flatten()
    else {
        return line.replace('\t', "  ");
    };
    if let Some(metrics) = record.get("_aws").and_then(|a| a.get("CloudWatchMetrics")) {
        let directive = metrics.get(0);
        let namespace = directive
            .and_then(|d| d.get("Namespace"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        let values: Vec<String> = directive
            .and_then(|d| d.get("Metrics"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("Name").and_then(Value::as_str))
            .map(|name| format!("{name}={}", scalar(record.get(name))))
            .collect();
        let outcome = record
            .get("outcome")
            .map(|o| format!(" (outcome {})", scalar(Some(o))))
            .unwrap_or_default();
        return format!("metrics {namespace}: {}{outcome}", values.join(" "));
    }
    let level = record.get("level").and_then(Value::as_str).unwrap_or("-");
    let message = record.get("message").and_then(Value::as_str).unwrap_or("");
    let fields: Vec<String> = record
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "timestamp" | "level" | "message" | "span"))
        .map(|(k, v)| format!("{k}={}", scalar(Some(v))))
        .collect();
    let mut out = format!("{level:<5} {message}");
    if !fields.is_empty() {
        out.push_str("  ");
        out.push_str(&fields.join(" "));
    }
    out
}

/// A JSON value as `key=value` shows it: strings without quotes.
fn scalar(v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

// --- time ----------------------------------------------------------------------------------

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `HH:MM:SS.mmm` in local time (as tools/lib.sh's log lines show it), of a time in ms since
/// the epoch.
fn clock_time(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000) as libc::time_t;
    let millis = epoch_ms.rem_euclid(1000);
    // SAFETY: localtime_r only writes the tm we hand it; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{epoch_ms} ms");
    }
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

/// The moment of the kill, on both clocks: offsets come from the monotonic one.
struct Kill {
    at: Instant,
    at_ms: i64,
}

impl Kill {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            at_ms: now_ms(),
        }
    }

    /// `HH:MM:SS.mmm  +S.SSSs` for a moment `elapsed` after the kill.
    fn stamp(&self, elapsed: Duration) -> String {
        format!(
            "{}  +{:.3}s",
            clock_time(self.at_ms + elapsed.as_millis() as i64),
            elapsed.as_secs_f64()
        )
    }
}

// --- heal ----------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct HealArgs {
    name: String,
    instance: String,
    volume: String,
    public_ip: String,
    timeout: Duration,
    result: Option<String>,
}

fn parse_heal_args(args: &[String]) -> Result<HealArgs, String> {
    let mut name = None;
    let mut instance = None;
    let mut volume = None;
    let mut public_ip = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut result = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--name" => name = Some(value()?),
            "--instance" => instance = Some(value()?),
            "--volume" => volume = Some(value()?),
            "--public-ip" => public_ip = Some(value()?),
            "--timeout" => {
                let v = value()?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or_else(|| format!("--timeout {v:?}: expected seconds > 0"))?;
                timeout = Duration::from_secs_f64(secs);
            }
            "--result" => result = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, flag: &str| v.ok_or_else(|| format!("{flag} is required"));
    Ok(HealArgs {
        name: need(name, "--name")?,
        instance: need(instance, "--instance")?,
        volume: need(volume, "--volume")?,
        public_ip: need(public_ip, "--public-ip")?,
        timeout,
        result,
    })
}

/// The stack's names, as the provider derives them from `name` (provider/src/autoheal_instance/names.rs).
struct StackNames {
    group: String,
    function: String,
}

impl StackNames {
    fn of(name: &str) -> Self {
        Self {
            group: format!("{name}-asg"),
            function: format!("{name}-attach"),
        }
    }
}

/// The Elastic IP with this public address.
async fn allocation_of(clients: &Clients, public_ip: &str) -> anyhow::Result<String> {
    let out = clients
        .ec2
        .describe_addresses()
        .public_ips(public_ip)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeAddresses {public_ip}: {}", err_text(&e)))?;
    out.addresses()
        .first()
        .and_then(|a| a.allocation_id())
        .map(str::to_string)
        .with_context(|| format!("no Elastic IP {public_ip}"))
}

/// The replacement's launch event, delivered to a target that is our function.
fn launch_event_for(events: &[Event], instance: &str, function: &str) -> Option<EventSeen> {
    let function_suffix = format!(":function:{function}");
    events
        .iter()
        .filter(|e| e.detail_type.as_deref() == Some(LAUNCH_ACTION_DETAIL_TYPE))
        .filter(|e| e.detail("EC2InstanceId") == Some(instance))
        .flat_map(|e| e.deliveries.iter().map(move |d| (e, d)))
        .find(|(_, d)| d.target_arn.ends_with(&function_suffix))
        .map(|(e, d)| EventSeen {
            id: e.id.clone(),
            rule_arn: d.rule_arn.clone(),
            target_arn: d.target_arn.clone(),
            status: d.status.clone().unwrap_or_else(|| "?".into()),
        })
}

/// The function's log lines since `since_ms` (of one stream, if given): (time in ms since the
/// epoch, message), by time. Empty while the log group does not exist.
async fn log_lines_since(
    clients: &Clients,
    function: &str,
    since_ms: i64,
    stream: Option<&str>,
) -> anyhow::Result<Vec<(i64, String)>> {
    let group = function_log_group(function);
    let mut lines = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = clients
            .logs
            .filter_log_events()
            .log_group_name(&group)
            .start_time(since_ms)
            .set_next_token(token.take());
        if let Some(stream) = stream {
            request = request.log_stream_names(stream);
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => bail!("FilterLogEvents {group}: {}", err_text(&e)),
        };
        lines.extend(
            out.events().iter().filter_map(|e| {
                Some((e.timestamp().unwrap_or_default(), e.message()?.to_string()))
            }),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    Ok(lines)
}

/// The first `START RequestId: ...` line among `lines`.
fn first_start(lines: &[(i64, String)]) -> Option<StartSeen> {
    lines.iter().find_map(|(t, m)| {
        let rest = m.strip_prefix("START RequestId: ")?;
        Some(StartSeen {
            request_id: rest.split_whitespace().next()?.to_string(),
            logged_ms: *t,
        })
    })
}

/// `fetch()` when `needed`, else nothing: `Ok(None)`.
async fn maybe<T, F, Fut>(needed: bool, fetch: F) -> anyhow::Result<Option<T>>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    if needed {
        fetch().await.map(Some)
    } else {
        Ok(None)
    }
}

/// Everything the heal watch needs, fixed before the kill.
struct Watch<'a> {
    clients: &'a Clients,
    control: &'a Control,
    names: StackNames,
    old: String,
    volume: String,
    allocation: String,
}

impl Watch<'_> {
    /// One look at what `progress` still needs. Lambda START lines count from `since_ms` on
    /// (the kill, or the launch of a second replacement).
    async fn look(&self, progress: &Progress, since_ms: i64) -> anyhow::Result<Look> {
        // Only what is still needed, all at once, so that a look is short and the timeline
        // sharp (the local AWS answers under one lock, so the calls still queue up there).
        let (old_state, instances, holds, events, start, volume, address) = tokio::join!(
            maybe(!progress.has(Stage::Terminated), || instance_state(
                &self.clients.ec2,
                &self.old
            )),
            group_instances(&self.clients.autoscaling, &self.names.group),
            maybe(!progress.has(Stage::PendingWait), || async {
                self.control.lifecycle_actions().await
            }),
            maybe(!progress.has(Stage::EventDelivered), || async {
                self.control.events().await
            }),
            maybe(!progress.has(Stage::LambdaRunning), || async {
                log_lines_since(self.clients, &self.names.function, since_ms, None)
                    .await
                    .map(|lines| first_start(&lines))
            }),
            maybe(!progress.has(Stage::VolumeAttached), || volume_status(
                &self.clients.ec2,
                &self.volume
            )),
            maybe(!progress.has(Stage::AddressAssociated), || address_status(
                &self.clients.ec2,
                &self.allocation
            )),
        );
        let mut look = Look {
            old_state: old_state?,
            instances: instances?,
            start: start?.flatten(),
            volume: volume?,
            address: address?,
            ..Look::default()
        };
        // The hold and the event belong to the replacement: the one already followed, or the
        // one this look's group listing shows.
        let replacement = progress
            .replacement
            .clone()
            .or_else(|| progress.candidate(&look).map(|i| i.id.clone()));
        if let Some(replacement) = replacement {
            look.hold = holds?
                .unwrap_or_default()
                .into_iter()
                .find(|a| a.instance_id == replacement)
                .map(|a| HoldSeen {
                    hook: a.lifecycle_hook_name,
                    heartbeat_timeout: a.heartbeat_timeout,
                    default_result: a.default_result,
                });
            look.event =
                events?.and_then(|e| launch_event_for(&e, &replacement, &self.names.function));
        }
        Ok(look)
    }

    /// The finished invocation of the function for the replacement's launch event.
    async fn invocation_for(&self, event_id: &str) -> anyhow::Result<Option<Invocation>> {
        let invocations = self.control.invocations_of(&self.names.function).await?;
        // The last attempt: a failed one is retried with the same event.
        Ok(invocations
            .into_iter()
            .rfind(|i| i.event_id.as_deref() == Some(event_id)))
    }

    /// What the function's invocations since the kill ended with: for a failure message.
    async fn invocations_since(&self, kill_ms: i64) -> String {
        let Ok(all) = self.control.invocations_of(&self.names.function).await else {
            return "(could not list the Lambda invocations)".into();
        };
        let recent: Vec<String> = all
            .iter()
            .filter(|i| {
                terraform_tests::local_aws::helpers::parse_utc(&i.started)
                    .is_ok_and(|t| t * 1000.0 >= kill_ms as f64 - 1000.0)
            })
            .map(|i| {
                format!(
                    "attempt {} {:?} {}{}",
                    i.attempt,
                    i.outcome,
                    i.error_type.as_deref().unwrap_or(""),
                    i.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        if recent.is_empty() {
            "no invocation finished since the kill".into()
        } else {
            recent.join("; ")
        }
    }
}

/// Checks that the instance Terraform reported serves, with the volume and the address, before
/// the kill; returns the volume as seen.
async fn served_before(
    clients: &Clients,
    names: &StackNames,
    args: &HealArgs,
    allocation: &str,
) -> anyhow::Result<VolumeStatus> {
    let instances = group_instances(&clients.autoscaling, &names.group).await?;
    match instances.as_slice() {
        [one] if one.id == args.instance && one.lifecycle_state == "InService" => {}
        _ => bail!(
            "expected {} InService as the only instance of {}, found: {}",
            args.instance,
            names.group,
            terraform_tests::local_aws::helpers::describe_instances(&instances)
        ),
    }
    let volume = volume_status(&clients.ec2, &args.volume).await?;
    let address = address_status(&clients.ec2, allocation).await?;
    let volume_ok = volume
        .attachment
        .as_ref()
        .is_some_and(|a| a.instance_id == args.instance && a.state == "attached");
    if !volume_ok || address.instance_id.as_deref() != Some(args.instance.as_str()) {
        bail!(
            "{} is not served before the kill: volume {volume}, address {address:?}",
            args.instance
        );
    }
    Ok(volume)
}

async fn heal(clients: &Clients, control: &Control, args: &HealArgs) -> anyhow::Result<()> {
    let names = StackNames::of(&args.name);
    let allocation = allocation_of(clients, &args.public_ip).await?;
    let clock_scale = control.health().await?.clock_scale;

    let volume = served_before(clients, &names, args, &allocation).await?;
    println!(
        "before: {} InService in {}, {} attached as {}, {} ({}) on it",
        args.instance,
        names.group,
        args.volume,
        volume
            .attachment
            .as_ref()
            .map_or("?", |a| a.device.as_str()),
        args.public_ip,
        allocation
    );
    println!(
        "the local AWS runs AWS's delays at clock scale {clock_scale} (the volume's detach, the \
         hook's heartbeat timeout, Lambda's retry delays); times below are when each stage was \
         seen, looking again {} ms after each look",
        POLL_INTERVAL.as_millis()
    );

    let watch = Watch {
        clients,
        control,
        names,
        old: args.instance.clone(),
        volume: args.volume.clone(),
        allocation,
    };
    let mut progress = Progress::new(&args.instance);
    let kill = Kill::now();
    clients
        .ec2
        .terminate_instances()
        .instance_ids(&args.instance)
        .send()
        .await
        .map_err(|e| anyhow!("TerminateInstances {}: {}", args.instance, err_text(&e)))?;
    println!(
        "{}  {:<20}  TerminateInstances {}",
        kill.stamp(Duration::ZERO),
        "kill",
        args.instance
    );

    let mut last_error: Option<String> = None;
    let mut seen: Vec<(Stage, Duration)> = Vec::new();
    let mut event_id: Option<String> = None;
    let mut invocation: Option<Invocation> = None;
    let mut starts_since_ms = kill.at_ms;
    loop {
        if kill.at.elapsed() > args.timeout {
            let last = last_error
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            bail!(
                "the heal did not finish within {:?}: still waiting for {}{last}\n  group {}: {}\n  Lambda: {}",
                args.timeout,
                waiting_for(&progress.missing()),
                watch.names.group,
                group_instances(&clients.autoscaling, &watch.names.group)
                    .await
                    .map(|i| terraform_tests::local_aws::helpers::describe_instances(&i))
                    .unwrap_or_else(|e| format!("{e:#}")),
                watch.invocations_since(kill.at_ms).await
            );
        }
        match watch.look(&progress, starts_since_ms).await {
            Ok(look) => {
                // Seen by now: the look itself takes a few AWS calls.
                let elapsed = kill.at.elapsed();
                last_error = None;
                if let Some(e) = &look.event {
                    event_id = Some(e.id.clone());
                    if e.status != "queued" && e.status != "delivered" {
                        last_error = Some(format!("the launch event's delivery is {}", e.status));
                    }
                }
                for news in progress.update(&look) {
                    match news {
                        News::Reached(stage, detail) => {
                            seen.push((stage, elapsed));
                            println!("{}  {stage:<20}  {detail}", kill.stamp(elapsed));
                        }
                        News::ReplacementLost { lost, state } => {
                            seen.retain(|(s, _)| !s.of_replacement());
                            event_id = None;
                            starts_since_ms = now_ms();
                            println!(
                                "{}  {:<20}  {lost} is {state} before serving: the group \
                                 launches another",
                                kill.stamp(elapsed),
                                "replacement lost"
                            );
                        }
                    }
                }
            }
            Err(e) => last_error = Some(format!("{e:#}")),
        }
        if progress.complete() && invocation.is_none() {
            if let Some(id) = &event_id {
                invocation = watch.invocation_for(id).await?;
            }
        }
        if progress.complete() && invocation.is_some() {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }

    let healed_after = seen
        .iter()
        .filter(|(s, _)| {
            matches!(
                s,
                Stage::VolumeAttached | Stage::AddressAssociated | Stage::InService
            )
        })
        .map(|(_, t)| *t)
        .max()
        .unwrap_or_default();
    let replacement = progress.replacement.clone().unwrap_or_default();
    let invocation = invocation.expect("the loop ends with the invocation");
    println!(
        "healed in {:.2} s: from the kill to {replacement} InService with {} and {}",
        healed_after.as_secs_f64(),
        args.volume,
        args.public_ip
    );
    print_invocation(clients, &watch.names.function, &invocation, kill.at_ms).await?;
    if let Some(path) = &args.result {
        std::fs::write(
            path,
            format!(
                "replacement={replacement}\nheal_seconds={:.3}\n",
                healed_after.as_secs_f64()
            ),
        )
        .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// Prints the Lambda's invocation that healed: its result, steps and log lines (logged since
/// `since_ms`); fails unless it reported a heal.
async fn print_invocation(
    clients: &Clients,
    function: &str,
    invocation: &Invocation,
    since_ms: i64,
) -> anyhow::Result<()> {
    let response = invocation.response_json().unwrap_or(Value::Null);
    let steps = response
        .get("stepsMs")
        .and_then(Value::as_object)
        .map(|steps| {
            steps
                .iter()
                .map(|(k, v)| format!("{k} {v} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "Lambda {}: attempt {}, {:?}, outcome {}, ran {:.0} ms{}",
        function,
        invocation.attempt,
        invocation.outcome,
        scalar(response.get("outcome")),
        invocation.duration_ms,
        if steps.is_empty() {
            String::new()
        } else {
            format!(" ({steps})")
        }
    );
    let lines = log_lines_since(
        clients,
        function,
        since_ms,
        invocation.log_stream.as_deref(),
    )
    .await?;
    println!(
        "its log ({}, stream {}):",
        function_log_group(function),
        invocation.log_stream.as_deref().unwrap_or("?")
    );
    for (t, line) in &lines {
        println!("  {}  {}", clock_time(*t), brief_log(line));
    }
    if invocation.outcome != Outcome::Success || scalar(response.get("outcome")) != "healed" {
        bail!(
            "the Lambda did not report a heal: {:?} {}",
            invocation.outcome,
            invocation.error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

// --- sweep ---------------------------------------------------------------------------------

/// Lists what is left of stack `name`; Ok only when that is exactly its final snapshot.
async fn sweep(clients: &Clients, name: &str) -> anyhow::Result<()> {
    let sweeper = Sweeper::for_stack(clients, name);
    let scope = sweeper.scope().clone();
    let leftovers = sweeper.leftovers().await?;
    println!(
        "left of stack {name} (tag {}={}, or a name starting with {}): {}",
        scope.tag_key,
        scope.tag_value,
        scope.name_prefix,
        if leftovers.is_empty() {
            "nothing".to_string()
        } else {
            format!("{} object(s)", leftovers.len())
        }
    );
    for l in &leftovers {
        println!("  {l}");
    }
    let (finals, others): (Vec<_>, Vec<_>) = leftovers
        .iter()
        .partition(|l| l.kind == Kind::Snapshot && l.final_snapshot);
    if !others.is_empty() {
        bail!(
            "{} object(s) of stack {name} survived the destroy besides the final snapshot \
             (listed above)",
            others.len()
        );
    }
    let snapshot = match finals.as_slice() {
        [one] => one.id.clone(),
        [] => bail!(
            "the destroy kept no final snapshot (a snapshot tagged {}={} and \
             {FINAL_SNAPSHOT_TAG}=true)",
            scope.tag_key,
            scope.tag_value
        ),
        many => bail!("{} final snapshots, expected one", many.len()),
    };
    let out = clients
        .ec2
        .describe_snapshots()
        .snapshot_ids(&snapshot)
        .send()
        .await
        .map_err(|e| anyhow!("DescribeSnapshots {snapshot}: {}", err_text(&e)))?;
    let s = out
        .snapshots()
        .first()
        .with_context(|| format!("DescribeSnapshots {snapshot}: not found"))?;
    let tag = |key: &str| {
        s.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .unwrap_or("-")
            .to_string()
    };
    println!(
        "nothing is left but the final snapshot {snapshot} \"{}\" ({FINAL_SNAPSHOT_TAG}={}): \
         {} GiB of {}, {}; a new stack named {name} restores it, or delete it yourself",
        tag("Name"),
        tag(FINAL_SNAPSHOT_TAG),
        s.volume_size().unwrap_or_default(),
        s.volume_id().unwrap_or("?"),
        s.state().map(|x| x.as_str()).unwrap_or("?"),
    );
    Ok(())
}

// --- main ----------------------------------------------------------------------------------

/// Clients and control API of the local AWS at `AWS_ENDPOINT_URL`, refusing anything else.
async fn connect() -> anyhow::Result<(Clients, Control)> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
        .context("AWS_ENDPOINT_URL is not set: point it at a local AWS (tools/demo starts one)")?;
    let region = std::env::var("AWS_REGION")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| DEFAULT_REGION.to_string());
    let control = Control::new(&endpoint);
    let health = control.health().await.with_context(|| {
        format!(
            "AWS_ENDPOINT_URL={endpoint} does not answer the local AWS's control API; \
             demo-heal terminates instances, so it only runs against the local AWS"
        )
    })?;
    anyhow::ensure!(health.ok, "the local AWS at {endpoint} is not healthy");
    Ok((Clients::new(&endpoint, &region).await, control))
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    match args.split_first() {
        Some((cmd, rest)) if cmd == "heal" => {
            let heal_args = parse_heal_args(rest).map_err(|e| anyhow!("{e}\n{USAGE}"))?;
            let (clients, control) = connect().await?;
            heal(&clients, &control, &heal_args).await
        }
        Some((cmd, [name])) if cmd == "sweep" => {
            let (clients, _) = connect().await?;
            sweep(&clients, name).await
        }
        _ => bail!("{USAGE}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo-heal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terraform_tests::local_aws::helpers::VolumeAttachment;

    const OLD: &str = "i-old";
    const NEW: &str = "i-new";

    fn instance(id: &str, state: &str) -> GroupInstance {
        GroupInstance {
            id: id.into(),
            lifecycle_state: state.into(),
            health_status: "Healthy".into(),
            availability_zone: "ap-southeast-2a".into(),
        }
    }

    fn volume_on(instance: &str, state: &str) -> VolumeStatus {
        VolumeStatus {
            volume_id: "vol-1".into(),
            state: "in-use".into(),
            availability_zone: "ap-southeast-2a".into(),
            attachment: Some(VolumeAttachment {
                instance_id: instance.into(),
                state: state.into(),
                device: "/dev/xvdb".into(),
            }),
            snapshot_id: None,
            tags: Default::default(),
        }
    }

    fn address_on(instance: Option<&str>) -> AddressStatus {
        AddressStatus {
            allocation_id: "eipalloc-1".into(),
            public_ip: "127.0.0.9".into(),
            instance_id: instance.map(str::to_string),
            association_id: instance.map(|_| "eipassoc-1".to_string()),
            network_interface_id: None,
        }
    }

    fn event(status: &str) -> EventSeen {
        EventSeen {
            id: "0123456789abcdef".into(),
            rule_arn: "arn:aws:events:r:1:rule/app-launch".into(),
            target_arn: "arn:aws:lambda:r:1:function:app-attach".into(),
            status: status.into(),
        }
    }

    fn stages(news: &[News]) -> Vec<Stage> {
        news.iter()
            .filter_map(|n| match n {
                News::Reached(s, _) => Some(*s),
                News::ReplacementLost { .. } => None,
            })
            .collect()
    }

    #[test]
    fn stages_are_reported_once_each_as_they_are_seen() {
        let mut p = Progress::new(OLD);
        // Right after the kill: the old instance is still shutting down, no replacement yet,
        // the volume still on the old instance.
        let look = Look {
            old_state: Some(Some("shutting-down".into())),
            instances: vec![instance(OLD, "Terminating")],
            volume: Some(volume_on(OLD, "detaching")),
            address: Some(address_on(None)),
            ..Look::default()
        };
        assert_eq!(stages(&p.update(&look)), vec![]);

        let look = Look {
            old_state: Some(Some("terminated".into())),
            instances: vec![instance(NEW, "Pending:Wait")],
            hold: Some(HoldSeen {
                hook: "app-launch-hook".into(),
                heartbeat_timeout: 300.0,
                default_result: "ABANDON".into(),
            }),
            event: Some(event("queued")),
            volume: Some(volume_on(OLD, "detaching")),
            address: Some(address_on(None)),
            ..Look::default()
        };
        let news = p.update(&look);
        assert_eq!(
            stages(&news),
            vec![
                Stage::Terminated,
                Stage::Launched,
                Stage::PendingWait,
                Stage::EventDelivered
            ]
        );
        assert_eq!(
            news[2],
            News::Reached(
                Stage::PendingWait,
                "i-new waits for the launch lifecycle hook app-launch-hook (heartbeat timeout \
                 300 s, then ABANDON)"
                    .into()
            )
        );
        assert_eq!(p.replacement.as_deref(), Some(NEW));

        let look = Look {
            instances: vec![instance(NEW, "Pending:Wait")],
            start: Some(StartSeen {
                request_id: "req-1".into(),
                logged_ms: 1,
            }),
            volume: Some(volume_on(NEW, "attaching")),
            address: Some(address_on(None)),
            ..Look::default()
        };
        assert_eq!(stages(&p.update(&look)), vec![Stage::LambdaRunning]);

        let look = Look {
            instances: vec![instance(NEW, "Pending:Wait")],
            volume: Some(volume_on(NEW, "attached")),
            address: Some(address_on(Some(NEW))),
            ..Look::default()
        };
        assert_eq!(
            stages(&p.update(&look)),
            vec![Stage::VolumeAttached, Stage::AddressAssociated]
        );
        assert!(!p.complete());
        assert_eq!(p.missing(), vec![Stage::InService]);

        let look = Look {
            instances: vec![instance(NEW, "InService")],
            ..Look::default()
        };
        let news = p.update(&look);
        assert_eq!(stages(&news), vec![Stage::InService]);
        assert!(p.complete());
        // Nothing twice.
        assert_eq!(p.update(&look), vec![]);
    }

    #[test]
    fn nothing_is_credited_to_the_old_instance_or_a_failed_delivery() {
        let mut p = Progress::new(OLD);
        let look = Look {
            instances: vec![instance(OLD, "InService")],
            volume: Some(volume_on(OLD, "attached")),
            address: Some(address_on(Some(OLD))),
            ..Look::default()
        };
        assert_eq!(p.update(&look), vec![]);
        let look = Look {
            instances: vec![instance(NEW, "Pending:Wait")],
            event: Some(event("failed")),
            volume: Some(volume_on(OLD, "attached")),
            address: Some(address_on(Some(OLD))),
            ..Look::default()
        };
        assert_eq!(
            stages(&p.update(&look)),
            vec![Stage::Launched, Stage::PendingWait]
        );
        assert!(!p.has(Stage::EventDelivered));
    }

    #[test]
    fn a_hold_that_fell_between_two_looks_is_reported_as_not_seen() {
        let mut p = Progress::new(OLD);
        let look = Look {
            instances: vec![instance(NEW, "Pending")],
            ..Look::default()
        };
        assert_eq!(stages(&p.update(&look)), vec![Stage::Launched]);
        let look = Look {
            instances: vec![instance(NEW, "InService")],
            ..Look::default()
        };
        let news = p.update(&look);
        assert_eq!(stages(&news), vec![Stage::PendingWait, Stage::InService]);
        let News::Reached(_, detail) = &news[0] else {
            panic!("{news:?}")
        };
        assert!(detail.contains("not seen live"), "{detail}");
    }

    #[test]
    fn an_abandoned_replacement_starts_the_replacement_stages_over() {
        let mut p = Progress::new(OLD);
        let look = Look {
            old_state: Some(Some("terminated".into())),
            instances: vec![instance(NEW, "Pending:Wait")],
            event: Some(event("queued")),
            ..Look::default()
        };
        p.update(&look);
        assert!(p.has(Stage::EventDelivered));
        let look = Look {
            instances: vec![
                instance(NEW, "Terminating"),
                instance("i-third", "Pending:Wait"),
            ],
            ..Look::default()
        };
        let news = p.update(&look);
        assert_eq!(
            news[0],
            News::ReplacementLost {
                lost: NEW.into(),
                state: "Terminating".into()
            }
        );
        assert_eq!(stages(&news), vec![Stage::Launched, Stage::PendingWait]);
        assert_eq!(p.replacement.as_deref(), Some("i-third"));
        assert!(p.has(Stage::Terminated));
        assert!(!p.has(Stage::EventDelivered));
    }

    #[test]
    fn log_lines_are_shortened_for_the_screen() {
        assert_eq!(
            brief_log(
                r#"{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","message":"volume attached","step":"attach_volume","duration_ms":551,"span":{"instance":"i-1"}}"#
            ),
            "INFO  volume attached  duration_ms=551 step=attach_volume"
        );
        assert_eq!(
            brief_log(
                r#"{"AutoScalingGroupName":"g","HealSeconds":0.628,"Healed":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"Autoheal","Metrics":[{"Name":"HealSeconds"},{"Name":"Healed"}]}]},"outcome":"healed"}"#
            ),
            "metrics Autoheal: HealSeconds=0.628 Healed=1 (outcome healed)"
        );
        assert_eq!(
            brief_log("REPORT RequestId: r\tDuration: 1 ms\n"),
            "REPORT RequestId: r  Duration: 1 ms"
        );
        assert_eq!(brief_log("{not json"), "{not json");
    }

    #[test]
    fn start_lines_and_events_are_found() {
        let lines = vec![
            (1, "INIT_START Runtime Version: x".to_string()),
            (2, "START RequestId: abc Version: $LATEST".to_string()),
        ];
        assert_eq!(
            first_start(&lines),
            Some(StartSeen {
                request_id: "abc".into(),
                logged_ms: 2
            })
        );
        let events: Vec<Event> = serde_json::from_value(serde_json::json!([
            {"id": "e-other", "origin": "autoscaling", "detail-type": LAUNCH_ACTION_DETAIL_TYPE,
             "event": {"detail": {"EC2InstanceId": "i-other"}}, "matched_rules": [],
             "deliveries": [{"rule_arn": "arn:r/x", "target_arn": "arn:aws:lambda:r:1:function:app-attach", "status": "queued"}]},
            {"id": "e-1", "origin": "autoscaling", "detail-type": LAUNCH_ACTION_DETAIL_TYPE,
             "event": {"detail": {"EC2InstanceId": NEW}}, "matched_rules": ["arn:r/x"],
             "deliveries": [
                {"rule_arn": "arn:r/x", "target_arn": "arn:aws:lambda:r:1:function:other-attach", "status": "queued"},
                {"rule_arn": "arn:r/x", "target_arn": "arn:aws:lambda:r:1:function:app-attach", "status": "queued"}]}
        ]))
        .unwrap();
        let seen = launch_event_for(&events, NEW, "app-attach").unwrap();
        assert_eq!(seen.id, "e-1");
        assert!(seen.target_arn.ends_with("function:app-attach"));
        assert_eq!(launch_event_for(&events, NEW, "nope"), None);
    }

    #[test]
    fn heal_arguments_parse() {
        let args: Vec<String> = [
            "--name",
            "app",
            "--instance",
            "i-1",
            "--volume",
            "vol-1",
            "--public-ip",
            "1.2.3.4",
            "--timeout",
            "5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = parse_heal_args(&args).unwrap();
        assert_eq!(a.name, "app");
        assert_eq!(a.timeout, Duration::from_secs(5));
        assert_eq!(a.result, None);
        assert!(parse_heal_args(&args[..2])
            .unwrap_err()
            .contains("--instance"));
        assert!(parse_heal_args(&["--timeout".into(), "-1".into()]).is_err());
        assert!(parse_heal_args(&["--bogus".into()]).is_err());
    }

    #[test]
    fn a_timeout_says_what_it_waited_for() {
        assert_eq!(
            waiting_for(&[Stage::VolumeAttached, Stage::InService]),
            "volume attached, InService"
        );
        assert!(waiting_for(&[]).contains("record of the Lambda invocation"));
    }

    #[test]
    fn names_and_times_are_formatted() {
        assert_eq!(
            last_segment("arn:aws:lambda:r:1:function:app-attach"),
            "app-attach"
        );
        assert_eq!(
            last_segment("arn:aws:events:r:1:rule/app-launch"),
            "app-launch"
        );
        assert_eq!(short_id("0123456789"), "01234567");
        assert_eq!(short_id("abc"), "abc");
        let t = clock_time(1_700_000_000_123);
        assert_eq!(t.len(), 12, "{t}");
        assert!(t.ends_with(".123"), "{t}");
    }
}
