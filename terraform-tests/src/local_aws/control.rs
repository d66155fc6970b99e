//! A typed client of the local AWS's control API (`/_localaws/...`, JSON).
//!
//! * [`Control::add_fault`]: make AWS calls fail (in the service's own error format) or slow;
//! * [`Control::add_transient`]: "the next K polls show this state" (volume detaching,
//!   instance pending, Lambda update in progress);
//! * [`Control::calls`]: every AWS call the server answered, in order, with its key
//!   parameters, status, error code and the fault that answered it;
//! * [`Control::invocations`]: every Lambda attempt (outcome, error type, attempt number);
//! * [`Control::events`]: every EventBridge event, the rules it matched, its deliveries;
//! * [`Control::set_clock_scale`], [`Control::reset`], [`Control::health`].
//!
//! HTTP/1.1 over hyper's client (already built for the AWS SDK's HTTP stack), one connection
//! per request: the server is on loopback and the calls are few.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A control request that takes longer than this failed (the server answers at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The control API of one local AWS server.
#[derive(Debug, Clone)]
pub struct Control {
    /// `host:port`
    authority: String,
}

/// `GET /_localaws/health`
#[derive(Debug, Clone, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub clock_scale: f64,
    pub region: String,
    pub port: u16,
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// A fault rule to add: AWS calls of `operation` (or `*`) answer `error_code`, or are delayed.
///
/// ```
/// # use terraform_tests::local_aws::control::Fault;
/// let f = Fault::error("AttachVolume", "VolumeInUse").count(2).matching("VolumeId", "vol-1");
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Fire this many times, then never again; `None`: for ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The chance that a matching call fires it (0..=1; default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// HTTP status of the error (default 400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Key parameters the call must have (list-valued parameters: must contain the value).
    #[serde(rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub matching: BTreeMap<String, Value>,
    /// Perform the call, then reset the connection before its answer (see
    /// [`Fault::lose_response`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lose_response: bool,
}

impl Fault {
    /// Calls of `operation` (`"*"`: any) answer `error_code` (HTTP 400 unless [`Fault::status`]).
    pub fn error(operation: &str, error_code: &str) -> Self {
        Self {
            operation: operation.to_string(),
            service: None,
            count: None,
            fraction: None,
            error_code: Some(error_code.to_string()),
            status: None,
            message: None,
            latency_ms: None,
            matching: BTreeMap::new(),
            lose_response: false,
        }
    }

    /// Calls of `operation` are performed (they take effect) and then the connection is reset
    /// before any byte of the answer: the client learns at once that it heard nothing.
    pub fn lose_response(operation: &str) -> Self {
        Self {
            error_code: None,
            lose_response: true,
            ..Self::error(operation, "")
        }
    }

    /// Calls of `operation` are delayed by `ms` and then answered normally.
    pub fn latency(operation: &str, ms: u64) -> Self {
        Self {
            error_code: None,
            latency_ms: Some(ms),
            ..Self::error(operation, "")
        }
    }

    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    pub fn fraction(mut self, f: f64) -> Self {
        self.fraction = Some(f);
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    /// Also delay the error (or the call) by `ms`.
    pub fn with_latency(mut self, ms: u64) -> Self {
        self.latency_ms = Some(ms);
        self
    }

    pub fn matching(mut self, param: &str, value: impl Into<Value>) -> Self {
        self.matching.insert(param.to_string(), value.into());
        self
    }
}

/// `GET /_localaws/faults`: a rule as the server keeps it.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRule {
    pub id: String,
    pub operation: String,
    pub service: Option<String>,
    /// Firings left; `None`: unlimited.
    pub remaining: Option<i64>,
    pub fraction: f64,
    pub error_code: Option<String>,
    pub status: u16,
    pub message: Option<String>,
    pub latency_ms: f64,
    #[serde(rename = "match", default)]
    pub matching: BTreeMap<String, Value>,
    /// How many calls it fired on.
    pub fired: u64,
}

/// The kinds of transient state (`POST /_localaws/transient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientKind {
    /// The next K DescribeVolumes that include the volume show `in-use`/`detaching`;
    /// AttachVolume/DeleteVolume answer `VolumeInUse` meanwhile.
    VolumeDetaching,
    /// The next K DescribeInstances that include the instance show `pending`.
    InstancePending,
    /// The next K GetFunction(Configuration) show `LastUpdateStatus: InProgress`, and
    /// UpdateFunction* answer 409 `ResourceConflictException`.
    FunctionUpdateInProgress,
}

/// A transient state: `kind` for `id` (a volume or instance id, or a function name) for the
/// next `polls` observations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transient {
    pub kind: TransientKind,
    pub id: String,
    pub polls: u32,
}

impl Transient {
    pub fn volume_detaching(volume_id: &str, polls: u32) -> Self {
        Self {
            kind: TransientKind::VolumeDetaching,
            id: volume_id.to_string(),
            polls,
        }
    }

    pub fn instance_pending(instance_id: &str, polls: u32) -> Self {
        Self {
            kind: TransientKind::InstancePending,
            id: instance_id.to_string(),
            polls,
        }
    }

    pub fn function_update_in_progress(function_name: &str, polls: u32) -> Self {
        Self {
            kind: TransientKind::FunctionUpdateInProgress,
            id: function_name.to_string(),
            polls,
        }
    }
}

/// `GET /_localaws/calls`: one AWS call the server answered.
#[derive(Debug, Clone, Deserialize)]
pub struct Call {
    /// 1, 2, 3, ... in the order the calls finished.
    pub seq: u64,
    pub time: String,
    /// The SigV4 scope's service (`ec2`, `autoscaling`, `lambda`, `events`, `logs`, `iam`).
    pub service: String,
    #[serde(default)]
    pub region: Option<String>,
    /// AWS's operation name (`AttachVolume`, `CompleteLifecycleAction`, ...).
    pub operation: String,
    /// The call's key parameters.
    #[serde(default)]
    pub params: Value,
    pub status: u16,
    pub error_code: Option<String>,
    /// The id of the fault rule that answered (or delayed) it.
    pub fault: Option<String>,
    #[serde(default)]
    pub duration_ms: f64,
    /// The access key id that signed the call.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// The Lambda function whose attempt's credentials signed the call (`None`: another
    /// caller, e.g. the provider or the test), as CloudTrail's userIdentity names it.
    #[serde(default)]
    pub function: Option<String>,
    /// That attempt's request id.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Call {
    /// A key parameter as a string (`params[name]`), if it is one.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A filter for [`Control::calls_where`].
#[derive(Debug, Clone, Default)]
pub struct CallFilter<'a> {
    pub operation: Option<&'a str>,
    pub service: Option<&'a str>,
}

/// How a Lambda attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// The function returned an error.
    Error,
    /// It ran past its Timeout and was killed (`Sandbox.Timedout`).
    Timeout,
    /// It exited before taking the event, or posted an init error.
    InitError,
    /// EventBridge had no resource-policy permission to invoke it.
    Denied,
    /// Reserved concurrency refused it.
    Throttled,
    /// Not run: the event reached the function's MaximumEventAgeInSeconds before this attempt.
    Expired,
    #[serde(other)]
    Other,
}

/// `GET /_localaws/invocations`: one Lambda attempt.
#[derive(Debug, Clone, Deserialize)]
pub struct Invocation {
    pub function: String,
    pub request_id: String,
    pub event_id: Option<String>,
    pub rule_arn: Option<String>,
    /// 1 for the first attempt, 2 and 3 for the asynchronous retries.
    pub attempt: u32,
    pub outcome: Outcome,
    pub error_type: Option<String>,
    pub duration_ms: f64,
    pub started: String,
    pub ended: String,
    pub log_stream: Option<String>,
    /// `events`, `Invoke(Event)`, `Invoke`, ...
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub function_arn: Option<String>,
    /// The function's answer, on success (at most 4 KiB).
    #[serde(default)]
    pub response: Option<String>,
    /// The error document, on failure (at most 4 KiB).
    #[serde(default)]
    pub error: Option<String>,
    /// The function's architecture (`x86_64`, `arm64`) for an attempt that was run.
    #[serde(default)]
    pub architecture: Option<String>,
    /// The emulator command the bootstrap ran under (`--aarch64-emulator`), `None` when it ran
    /// natively or did not start.
    #[serde(default)]
    pub emulator: Option<String>,
}

impl Invocation {
    /// The response parsed as JSON.
    pub fn response_json(&self) -> Option<Value> {
        self.response
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
    }
}

/// `GET /_localaws/events`: one EventBridge event and what became of it.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    /// `autoscaling` (emitted by a lifecycle hook) or `PutEvents`.
    pub origin: String,
    pub source: Option<String>,
    #[serde(rename = "detail-type")]
    pub detail_type: Option<String>,
    pub time: Option<String>,
    /// The event as delivered.
    pub event: Value,
    pub matched_rules: Vec<String>,
    pub deliveries: Vec<Delivery>,
}

impl Event {
    /// `event.detail[name]` as a string.
    pub fn detail(&self, name: &str) -> Option<&str> {
        self.event.get("detail")?.get(name)?.as_str()
    }
}

/// A delivery of an event to one target of a matched rule.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub rule_arn: String,
    pub target_id: Option<String>,
    pub target_arn: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `queued` (Lambda), `delivered`, `recorded` or `failed`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /_localaws/lifecycle-actions`: a lifecycle action waiting for completion.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LifecycleAction {
    pub lifecycle_action_token: String,
    pub instance_id: String,
    pub auto_scaling_group_name: String,
    pub lifecycle_hook_name: String,
    pub lifecycle_transition: String,
    pub heartbeat_timeout: f64,
    pub default_result: String,
    #[serde(rename = "virtual_seconds_left")]
    pub virtual_seconds_left: f64,
}

/// `GET /_localaws/clock`
#[derive(Debug, Clone, Deserialize)]
pub struct Clock {
    pub scale: f64,
    #[serde(default)]
    pub virtual_now: Option<f64>,
}

impl Control {
    /// The control API of the server at `endpoint` (`http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Self {
        let authority = endpoint
            .strip_prefix("http://")
            .unwrap_or(endpoint)
            .trim_end_matches('/')
            .to_string();
        Self { authority }
    }

    pub async fn health(&self) -> anyhow::Result<Health> {
        self.get("/health").await
    }

    /// Adds a fault rule; returns its id (`f-1`, ...). Rules are tried in the order added.
    pub async fn add_fault(&self, fault: &Fault) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Added {
            id: String,
        }
        let added: Added = self.send(Method::POST, "/faults", Some(fault)).await?;
        Ok(added.id)
    }

    pub async fn faults(&self) -> anyhow::Result<Vec<FaultRule>> {
        self.get("/faults").await
    }

    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.delete("/faults").await
    }

    /// Puts deliberate infidelities in force (see terraform-tests/local_aws/localaws/ec2ext.py:
    /// `double_attach`, `volume_stays_on_terminated`, `address_stays_on_terminated`), replacing
    /// those before; a reset clears them. For control cases only: each lets through one
    /// violation AWS refuses, so a test can prove its checker catches it.
    pub async fn set_breaks(&self, breaks: &[&str]) -> anyhow::Result<Vec<String>> {
        #[derive(Serialize, Deserialize)]
        struct Breaks {
            breaks: Vec<String>,
        }
        let body = Breaks {
            breaks: breaks.iter().map(|b| b.to_string()).collect(),
        };
        let set: Breaks = self.send(Method::POST, "/breaks", Some(&body)).await?;
        Ok(set.breaks)
    }

    pub async fn add_transient(&self, transient: &Transient) -> anyhow::Result<Transient> {
        self.send(Method::POST, "/transient", Some(transient)).await
    }

    pub async fn transients(&self) -> anyhow::Result<Vec<Transient>> {
        self.get("/transient").await
    }

    pub async fn clear_transients(&self) -> anyhow::Result<()> {
        self.delete("/transient").await
    }

    /// Every AWS call so far, in order.
    pub async fn calls(&self) -> anyhow::Result<Vec<Call>> {
        self.get("/calls").await
    }

    /// The calls of one operation and/or service (filtered by the server).
    pub async fn calls_where(&self, filter: CallFilter<'_>) -> anyhow::Result<Vec<Call>> {
        let mut query = Vec::new();
        if let Some(op) = filter.operation {
            query.push(format!("operation={}", encode_query(op)));
        }
        if let Some(service) = filter.service {
            query.push(format!("service={}", encode_query(service)));
        }
        let path = if query.is_empty() {
            "/calls".to_string()
        } else {
            format!("/calls?{}", query.join("&"))
        };
        self.get(&path).await
    }

    /// The calls of one operation.
    pub async fn calls_of(&self, operation: &str) -> anyhow::Result<Vec<Call>> {
        self.calls_where(CallFilter {
            operation: Some(operation),
            service: None,
        })
        .await
    }

    pub async fn clear_calls(&self) -> anyhow::Result<()> {
        self.delete("/calls").await
    }

    /// Every Lambda attempt so far, in the order they ended.
    pub async fn invocations(&self) -> anyhow::Result<Vec<Invocation>> {
        self.get("/invocations").await
    }

    /// The attempts of one function.
    pub async fn invocations_of(&self, function: &str) -> anyhow::Result<Vec<Invocation>> {
        self.get(&format!("/invocations?function={}", encode_query(function)))
            .await
    }

    pub async fn clear_invocations(&self) -> anyhow::Result<()> {
        self.delete("/invocations").await
    }

    pub async fn events(&self) -> anyhow::Result<Vec<Event>> {
        self.get("/events").await
    }

    pub async fn clear_events(&self) -> anyhow::Result<()> {
        self.delete("/events").await
    }

    pub async fn lifecycle_actions(&self) -> anyhow::Result<Vec<LifecycleAction>> {
        self.get("/lifecycle-actions").await
    }

    pub async fn clock(&self) -> anyhow::Result<Clock> {
        self.get("/clock").await
    }

    /// Changes the clock scale; pending deadlines follow the new speed.
    pub async fn set_clock_scale(&self, scale: f64) -> anyhow::Result<f64> {
        #[derive(Serialize)]
        struct Body {
            scale: f64,
        }
        let clock: Clock = self
            .send(Method::POST, "/clock", Some(&Body { scale }))
            .await?;
        Ok(clock.scale)
    }

    /// Changes settings of the profile (localaws/profile.py), e.g. `{"shutdown_s": 900}` for
    /// a hung guest, or `{"name": "fast"}`; returns the profile now in force.
    pub async fn set_profile(&self, settings: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, "/profile", Some(settings)).await
    }

    /// Injects launch failures AWS's side causes (`{"error": "InsufficientInstanceCapacity",
    /// "group": .., "count": N}`): the group's launches fail with AWS's message.
    pub async fn add_launch_failure(&self, spec: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, "/launch-failures", Some(spec))
            .await
    }

    /// Makes snapshots end in `error` (`{"volume": "vol-..", "count": N}`): the next N
    /// snapshots of that volume (of any volume without `volume`) fail when their pending time
    /// is up. Returns the injection (`GET` lists the failed `snapshots`).
    pub async fn add_snapshot_failure(&self, spec: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, "/snapshot-failures", Some(spec))
            .await
    }

    /// The snapshot-failure injections, with `remaining`, `fired` and the failed `snapshots`.
    pub async fn snapshot_failures(&self) -> anyhow::Result<Vec<Value>> {
        self.get("/snapshot-failures").await
    }

    /// Takes Availability Zone `zone` out (`POST /_localaws/zone-outage`): launches there
    /// fail with EC2's zone-level capacity error, its instances are impaired then terminated,
    /// its volumes `impaired`. Returns the outage (`since` in AWS time, `since_ms`, ...).
    pub async fn start_zone_outage(&self, zone: &str) -> anyhow::Result<Value> {
        self.send(
            Method::POST,
            "/zone-outage",
            Some(&serde_json::json!({ "zone": zone })),
        )
        .await
    }

    /// Ends the outage of `zone`.
    pub async fn end_zone_outage(&self, zone: &str) -> anyhow::Result<()> {
        self.delete(&format!("/zone-outage?zone={zone}")).await
    }

    /// The IAM decisions the server made (`GET /_localaws/iam-evaluation`, the last 1000,
    /// newest last): a function's calls, its log delivery, an IAM user's calls.
    pub async fn iam_decisions(&self) -> anyhow::Result<Vec<Value>> {
        let v: Value = self.get("/iam-evaluation").await?;
        Ok(v["decisions"].as_array().cloned().unwrap_or_default())
    }

    /// Forgets the IAM decisions made so far.
    pub async fn clear_iam_decisions(&self) -> anyhow::Result<()> {
        self.delete("/iam-evaluation").await
    }

    /// Forgets every AWS object and all of the server's own state (faults, calls, ...).
    pub async fn reset(&self) -> anyhow::Result<()> {
        let _: Value = self.send::<(), _>(Method::POST, "/reset", None).await?;
        Ok(())
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let _: Value = self.send::<(), _>(Method::DELETE, path, None).await?;
        Ok(())
    }

    /// One request to `/_localaws{path}`; a non-2xx answer is an error with its body.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let what = format!("{method} /_localaws{path}");
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, self.raw(method, path, body))
            .await
            .with_context(|| format!("{what}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{what} at {}", self.authority))?;
        let text = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            bail!("{what}: HTTP {status}: {text}");
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{what}: unexpected answer: {text}"))
    }

    async fn raw<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(connection);
        let payload = match body {
            Some(body) => Bytes::from(serde_json::to_vec(body)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(format!("/_localaws{path}"))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::CONTENT_LENGTH, payload.len())
            .body(Full::new(payload))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        drop(sender);
        // The connection ends when the server closes it (or we drop the sender).
        let _ = connection.await;
        Ok((status, bytes))
    }
}

/// Percent-encodes a query value (the few characters names may hold are enough).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_serialise_as_the_server_expects() {
        let f = Fault::error("AttachVolume", "VolumeInUse")
            .count(2)
            .message("vol-1 is already attached to an instance")
            .matching("VolumeId", "vol-1");
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({
                "operation": "AttachVolume",
                "count": 2,
                "error_code": "VolumeInUse",
                "message": "vol-1 is already attached to an instance",
                "match": {"VolumeId": "vol-1"},
            })
        );
        let slow = Fault::latency("DescribeInstances", 250);
        assert_eq!(
            serde_json::to_value(&slow).unwrap(),
            serde_json::json!({"operation": "DescribeInstances", "latency_ms": 250})
        );
    }

    #[test]
    fn transients_serialise_with_snake_case_kinds() {
        assert_eq!(
            serde_json::to_value(Transient::volume_detaching("vol-1", 3)).unwrap(),
            serde_json::json!({"kind": "volume_detaching", "id": "vol-1", "polls": 3})
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_query("fn-1_x"), "fn-1_x");
    }

    #[test]
    fn endpoint_becomes_an_authority() {
        assert_eq!(
            Control::new("http://127.0.0.1:4566/").authority,
            "127.0.0.1:4566"
        );
    }
}
