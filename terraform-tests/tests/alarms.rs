//! Acceptance tests of `alarm_actions` and `alarm_no_in_service_minutes`: the stack's two
//! CloudWatch alarms (`<name>-heal-failed`, `<name>-no-in-service`, see
//! provider/src/autoheal_instance/alarms.rs), with the real Terraform CLI, the real provider
//! and the real attachment Lambda against the local AWS on its realistic profile, whose
//! CloudWatch evaluates alarms as CloudWatch does: the handler's Embedded Metric Format lines
//! become metrics, the Auto Scaling group publishes its metrics each virtual minute, and an
//! alarm's state change runs its SNS actions (DescribeAlarmHistory's `Action` items; an SQS
//! queue subscribed to the topic receives CloudWatch's notification).
//!
//! The tests' SDK clients have no SNS or SQS crate: the few SNS and SQS calls (create a topic,
//! a queue, subscribe it, receive) go to the local AWS as plain Query-protocol requests.
//!
//! The validation of both attributes (a non-SNS ARN, too many topics, minutes out of range)
//! is in tests/bad_config.rs, with the other configurations a user could get wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, DimensionFilter, ScanBy, Statistic,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use terraform_tests::local_aws::control::Fault;
use terraform_tests::local_aws::helpers::{emf_records, function_logs, wait_until, Check};
use terraform_tests::local_aws::Clients;
use terraform_tests::saved_plan::plan_saved;
use terraform_tests::stack_world::{
    assert_import_plans_no_change, import, refresh, resource_values, served_instance, World,
};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

/// The local AWS's clock: a virtual minute (an alarm period) is 1.2 s.
const CLOCK_SCALE: f64 = 0.02;
/// Moto's account, the local AWS's region.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "ap-southeast-2";
/// How long a wait on the alarms may take: many virtual minutes.
const ALARM_WAIT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(200);

fn topic_arn(name: &str) -> String {
    format!("arn:aws:sns:{REGION}:{ACCOUNT}:{name}")
}

fn heal_alarm(stack: &str) -> String {
    format!("{stack}-heal-failed")
}

fn serve_alarm(stack: &str) -> String {
    format!("{stack}-no-in-service")
}

fn address(stack: &str) -> String {
    format!(r#"autoheal_instance.this["{stack}"]"#)
}

// --- Terraform -----------------------------------------------------------------------------

/// Stack `name`'s entry of the fixture's `stacks` output.
fn stack_output(t: &Terraform, name: &str) -> Json {
    let out = t.output("stacks").expect("output stacks");
    let mut stack = out
        .get(name)
        .unwrap_or_else(|| panic!("no stack {name} in {out}"))
        .clone();
    stack["name_hint"] = Json::String(name.into());
    stack
}

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn assert_empty_plan(t: &Terraform, what: &str) {
    let plan = t.plan().unwrap();
    assert_eq!(plan.exit_code, 0, "{what}: the plan must be empty:\n{plan}");
}

/// The resource's attributes in the state (`terraform show -json`).
fn state_values(t: &Terraform) -> serde_json::Map<String, Json> {
    let show = t.run(&["show", "-json"], false).unwrap();
    assert_eq!(show.exit_code, 0, "{show}");
    resource_values(&show)
}

/// The saved plan's actions for stack `name` (`["update"]`, `["delete", "create"]`, ...).
fn planned_actions(plan: &terraform_tests::saved_plan::SavedPlan, name: &str) -> Vec<String> {
    plan.change(&address(name))
        .and_then(|c| c["actions"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

// --- SNS and SQS through the Query protocol ------------------------------------------------

/// One Query-protocol call (SNS, SQS) to the local AWS, which takes the service and region
/// from the SigV4 credential scope and checks no signature. Returns the XML answer.
async fn query(endpoint: &str, service: &str, params: &[(&str, &str)]) -> anyhow::Result<String> {
    let authority = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri("/")
        .header(hyper::header::HOST, &authority)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("x-amz-date", "20260101T000000Z")
        .header(
            hyper::header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/{service}/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature=0"
            ),
        )
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    drop(sender);
    let _ = connection.await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    anyhow::ensure!(
        status.is_success(),
        "{service} {params:?}: HTTP {status}: {text}"
    );
    Ok(text)
}

/// The text of every `<tag>` element of an XML answer, unescaped.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once(close.as_str()).map(|(v, _)| v))
        .map(|v| {
            v.replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#xD;", "\r")
                .replace("&amp;", "&")
        })
        .collect()
}

/// An SNS topic with an SQS queue subscribed to it: what CloudWatch publishes to the topic
/// arrives in the queue.
struct Topic {
    arn: String,
    queue_url: String,
    endpoint: String,
}

/// One notification CloudWatch sent: the SNS Subject and the alarm's message.
#[derive(Debug, Clone)]
struct Notification {
    subject: String,
    alarm: String,
    new_state: String,
    old_state: String,
    message: Json,
}

impl Topic {
    async fn create(world: &World, name: &str) -> Topic {
        let endpoint = world.aws.endpoint().to_string();
        let created = query(
            &endpoint,
            "sns",
            &[
                ("Action", "CreateTopic"),
                ("Name", name),
                ("Version", "2010-03-31"),
            ],
        )
        .await
        .unwrap();
        let arn = xml_values(&created, "TopicArn")
            .pop()
            .unwrap_or_else(|| panic!("CreateTopic: {created}"));
        assert_eq!(arn, topic_arn(name));
        let queue_name = format!("{name}-inbox");
        let queue = query(
            &endpoint,
            "sqs",
            &[
                ("Action", "CreateQueue"),
                ("QueueName", &queue_name),
                ("Version", "2012-11-05"),
            ],
        )
        .await
        .unwrap();
        let queue_url = xml_values(&queue, "QueueUrl")
            .pop()
            .unwrap_or_else(|| panic!("CreateQueue: {queue}"));
        let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}");
        query(
            &endpoint,
            "sns",
            &[
                ("Action", "Subscribe"),
                ("TopicArn", &arn),
                ("Protocol", "sqs"),
                ("Endpoint", &queue_arn),
                ("Version", "2010-03-31"),
            ],
        )
        .await
        .unwrap();
        Topic {
            arn,
            queue_url,
            endpoint,
        }
    }

    /// The notifications that arrived since the last call (received, then deleted).
    async fn receive(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        loop {
            let answer = query(
                &self.endpoint,
                "sqs",
                &[
                    ("Action", "ReceiveMessage"),
                    ("QueueUrl", &self.queue_url),
                    ("MaxNumberOfMessages", "10"),
                    ("Version", "2012-11-05"),
                ],
            )
            .await
            .unwrap();
            let bodies = xml_values(&answer, "Body");
            if bodies.is_empty() {
                return out;
            }
            for handle in xml_values(&answer, "ReceiptHandle") {
                query(
                    &self.endpoint,
                    "sqs",
                    &[
                        ("Action", "DeleteMessage"),
                        ("QueueUrl", &self.queue_url),
                        ("ReceiptHandle", &handle),
                        ("Version", "2012-11-05"),
                    ],
                )
                .await
                .unwrap();
            }
            for body in bodies {
                let envelope: Json = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("an SNS envelope: {e}: {body}"));
                let message: Json = serde_json::from_str(s(&envelope, "Message"))
                    .unwrap_or_else(|e| panic!("CloudWatch's JSON message: {e}: {envelope}"));
                out.push(Notification {
                    subject: s(&envelope, "Subject").to_string(),
                    alarm: s(&message, "AlarmName").to_string(),
                    new_state: s(&message, "NewStateValue").to_string(),
                    old_state: s(&message, "OldStateValue").to_string(),
                    message,
                });
            }
        }
    }
}

// --- CloudWatch ----------------------------------------------------------------------------

/// An alarm as DescribeAlarms shows it: its definition, then its state.
#[derive(Clone, Debug, PartialEq)]
struct Alarm {
    name: String,
    arn: String,
    description: String,
    namespace: String,
    metric: String,
    dimensions: Vec<(String, String)>,
    statistic: String,
    period: i32,
    evaluation_periods: i32,
    threshold: f64,
    comparison: String,
    treat_missing_data: String,
    actions_enabled: bool,
    /// Sorted.
    alarm_actions: Vec<String>,
    /// Sorted.
    ok_actions: Vec<String>,
    state: String,
    state_reason: String,
}

impl Alarm {
    /// The definition alone: what an apply must restore.
    fn definition(&self) -> Alarm {
        Alarm {
            state: String::new(),
            state_reason: String::new(),
            ..self.clone()
        }
    }
}

/// The alarms named `names` that exist, by name.
async fn alarms(c: &Clients, names: &[String]) -> anyhow::Result<BTreeMap<String, Alarm>> {
    let out = c
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "DescribeAlarms: {}",
                aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
            )
        })?;
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    Ok(out
        .metric_alarms()
        .iter()
        .map(|a| {
            let alarm = Alarm {
                name: a.alarm_name().unwrap_or_default().to_string(),
                arn: a.alarm_arn().unwrap_or_default().to_string(),
                description: a.alarm_description().unwrap_or_default().to_string(),
                namespace: a.namespace().unwrap_or_default().to_string(),
                metric: a.metric_name().unwrap_or_default().to_string(),
                dimensions: a
                    .dimensions()
                    .iter()
                    .map(|d| {
                        (
                            d.name().unwrap_or_default().to_string(),
                            d.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                statistic: a
                    .statistic()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
                period: a.period().unwrap_or_default(),
                evaluation_periods: a.evaluation_periods().unwrap_or_default(),
                threshold: a.threshold().unwrap_or(f64::NAN),
                comparison: a
                    .comparison_operator()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
                treat_missing_data: a.treat_missing_data().unwrap_or_default().to_string(),
                actions_enabled: a.actions_enabled().unwrap_or(false),
                alarm_actions: sorted(a.alarm_actions()),
                ok_actions: sorted(a.ok_actions()),
                state: a
                    .state_value()
                    .map(|x| x.as_str().to_string())
                    .unwrap_or_default(),
                state_reason: a.state_reason().unwrap_or_default().to_string(),
            };
            (alarm.name.clone(), alarm)
        })
        .collect())
}

/// Both alarms of stack `name` that exist.
async fn stack_alarms(c: &Clients, name: &str) -> BTreeMap<String, Alarm> {
    alarms(c, &[heal_alarm(name), serve_alarm(name)])
        .await
        .unwrap()
}

/// An alarm's tags.
async fn alarm_tags(c: &Clients, arn: &str) -> BTreeMap<String, String> {
    let out = c
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    out.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// One DescribeAlarmHistory item.
#[derive(Clone, Debug)]
struct HistoryItem {
    kind: String,
    summary: String,
    /// `HistoryData`, parsed (`Json::Null` when it is not JSON).
    data: Json,
}

/// An alarm's history, oldest first.
async fn history(c: &Clients, name: &str) -> anyhow::Result<Vec<HistoryItem>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = c
            .cloudwatch
            .describe_alarm_history()
            .alarm_name(name)
            .scan_by(ScanBy::TimestampAscending)
            .max_records(100)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DescribeAlarmHistory: {}",
                    aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                )
            })?;
        items.extend(out.alarm_history_items().iter().map(|i| {
            HistoryItem {
                kind: i
                    .history_item_type()
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_default(),
                summary: i.history_summary().unwrap_or_default().to_string(),
                data: i
                    .history_data()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or(Json::Null),
            }
        }));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(items),
        }
    }
}

/// How many times the history shows a change to `state` followed (before the next change) by
/// the successful run of the action `topic`: CloudWatch published the notification.
fn notified_changes(items: &[HistoryItem], state: &str, topic: &str) -> usize {
    let done = format!("Successfully executed action {topic}");
    let mut count = 0;
    let mut in_change = false;
    let mut counted = false;
    for item in items {
        if item.kind == "StateUpdate" {
            in_change = item.summary.ends_with(&format!(" to {state}"));
            counted = false;
        } else if in_change && !counted && item.kind == "Action" && item.summary == done {
            count += 1;
            counted = true;
        }
    }
    count
}

/// The changes to ALARM decided on fewer than `n` datapoints (StateReasonData's
/// `recentDatapoints`): an alarm that is to go off after `n` breaching minutes went off
/// sooner.
fn premature_alarms(items: &[HistoryItem], n: usize) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.kind == "StateUpdate" && i.summary.ends_with(" to ALARM"))
        .filter(|i| {
            i.data
                .pointer("/newState/stateReasonData/recentDatapoints")
                .and_then(Json::as_array)
                .map_or(0, Vec::len)
                < n
        })
        .map(|i| format!("{}: {}", i.summary, i.data))
        .collect()
}

/// Checks that a healthy create paged nobody: the heal-failed alarm never went off, and the
/// no-in-service alarm not before `minutes` minutes without an instance in service (the
/// first minutes of a new stack have none while its first instance boots: that alone, with
/// the rest of the evaluation range missing, must not page).
async fn assert_create_paged_nobody(c: &Clients, name: &str, minutes: usize) {
    let items = history(c, &heal_alarm(name)).await.unwrap();
    let off = premature_alarms(&items, usize::MAX);
    assert!(off.is_empty(), "the heal-failed alarm went off: {off:?}");
    let items = history(c, &serve_alarm(name)).await.unwrap();
    let off = premature_alarms(&items, minutes);
    assert!(
        off.is_empty(),
        "the no-in-service alarm went off before {minutes} minutes: {off:?}"
    );
}

/// Waits until alarm `name` is in `state`; returns it.
async fn wait_for_state(c: &Clients, name: &str, state: &str) -> Alarm {
    wait_until(
        &format!("alarm {name} in state {state}"),
        ALARM_WAIT,
        POLL,
        || async {
            let found = alarms(c, &[name.to_string()]).await?;
            Ok(match found.get(name) {
                Some(a) if a.state == state => Check::Done(a.clone()),
                Some(a) => Check::NotYet(format!("{} ({})", a.state, a.state_reason)),
                None => Check::NotYet("no such alarm".into()),
            })
        },
    )
    .await
    .unwrap()
}

/// Waits until alarm `name`'s history shows a change to `state` whose SNS action to `topic`
/// ran, at least `times` times.
async fn wait_for_notified(c: &Clients, name: &str, state: &str, topic: &str, times: usize) {
    wait_until(
        &format!("alarm {name}: {times} change(s) to {state} notified to {topic}"),
        ALARM_WAIT,
        POLL,
        || async {
            let items = history(c, name).await?;
            let n = notified_changes(&items, state, topic);
            Ok(if n >= times {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "{n}; history: {:?}",
                    items
                        .iter()
                        .map(|i| format!("{}: {}", i.kind, i.summary))
                        .collect::<Vec<_>>()
                ))
            })
        },
    )
    .await
    .unwrap()
}

/// Checks both alarms of `stack` (its `stacks` output entry) against the definitions the
/// provider documents, with `topics` as their actions and `minutes` evaluation periods;
/// returns them (heal failure, no-in-service).
async fn assert_alarms_defined(
    c: &Clients,
    stack: &Json,
    topics: &[String],
    minutes: i32,
) -> (Alarm, Alarm) {
    let name = s(stack, "name_hint");
    let group = format!("{name}-asg");
    let found = stack_alarms(c, name).await;
    assert_eq!(found.len(), 2, "both alarms exist: {found:?}");
    let heal = found[&heal_alarm(name)].clone();
    let serve = found[&serve_alarm(name)].clone();
    let mut topics = topics.to_vec();
    topics.sort();
    for (alarm, attr) in [
        (&heal, "heal_failure_alarm_arn"),
        (&serve, "no_in_service_alarm_arn"),
    ] {
        assert_eq!(
            alarm.arn,
            format!("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{}", alarm.name),
            "{alarm:?}"
        );
        assert_eq!(
            stack[attr].as_str(),
            Some(alarm.arn.as_str()),
            "{attr} in the state is the alarm's ARN: {stack}"
        );
        assert_eq!(alarm.alarm_actions, topics, "{alarm:?}");
        assert_eq!(alarm.ok_actions, topics, "{alarm:?}");
        assert!(alarm.actions_enabled, "{alarm:?}");
        assert_eq!(
            alarm.dimensions,
            vec![("AutoScalingGroupName".to_string(), group.clone())],
            "{alarm:?}"
        );
        assert_eq!(alarm.period, 60, "{alarm:?}");
        let tags = alarm_tags(c, &alarm.arn).await;
        // The stack's tag, and no longer the marker of an unfinished create.
        assert_eq!(
            tags,
            BTreeMap::from([("autoheal:stack".to_string(), name.to_string())]),
            "the alarm's tags"
        );
    }
    assert_eq!(
        (
            heal.namespace.as_str(),
            heal.metric.as_str(),
            heal.statistic.as_str(),
            heal.evaluation_periods,
            heal.threshold,
            heal.comparison.as_str(),
            heal.treat_missing_data.as_str(),
        ),
        (
            "Autoheal",
            "PermanentFailure",
            "Sum",
            1,
            0.0,
            "GreaterThanThreshold",
            "notBreaching"
        ),
        "{heal:?}"
    );
    assert_eq!(
        (
            serve.namespace.as_str(),
            serve.metric.as_str(),
            serve.statistic.as_str(),
            serve.evaluation_periods,
            serve.threshold,
            serve.comparison.as_str(),
            serve.treat_missing_data.as_str(),
        ),
        (
            "AWS/AutoScaling",
            "GroupInServiceInstances",
            "Minimum",
            minutes,
            1.0,
            "LessThanThreshold",
            "ignore"
        ),
        "{serve:?}"
    );
    (heal, serve)
}

fn newest() -> TerraformBinary {
    terraform_versions().last().unwrap().clone()
}

// --- 1. lifecycle ----------------------------------------------------------------------------

/// Apply with `alarm_actions` and `alarm_no_in_service_minutes = 2`: both alarms as documented,
/// their ARNs in the state, their first evaluation (OK) notified to the topic; an empty plan.
/// Then the minutes to 3 (in place, the same instance), `alarm_actions` removed (alarms
/// deleted, ARNs null), added back, and destroy: nothing left but the final snapshot.
fn lifecycle(tf: &TerraformBinary) {
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "alm";
    let topic = world.block(Topic::create(&world, "ops"));
    let topics = vec![topic.arn.clone()];
    let t = world.terraform(tf, &[name]);
    let _guard = t.destroy_guard();
    let actions = format!("[{:?}]", topic.arn);
    t.set_var("alarm_actions", &actions);
    t.set_var("alarm_no_in_service_minutes", "2");
    t.apply()
        .unwrap_or_else(|e| panic!("{}: apply: {e:#}", tf.name));
    let stack = stack_output(&t, name);
    let instance = s(&stack, "instance_id").to_string();
    let (heal, serve) = world.block(assert_alarms_defined(c, &stack, &topics, 2));
    // The first evaluations: no failure reported and an instance in service, so both go OK,
    // and CloudWatch tells the topic.
    world.block(async {
        for alarm in [&heal.name, &serve.name] {
            wait_for_state(c, alarm, "OK").await;
            wait_for_notified(c, alarm, "OK", &topic.arn, 1).await;
        }
        assert_create_paged_nobody(c, name, 2).await;
    });
    assert_empty_plan(&t, &format!("{}: after create", tf.name));

    // The minutes, in place.
    t.set_var("alarm_no_in_service_minutes", "3");
    let plan = plan_saved(&t).unwrap();
    assert_eq!(
        planned_actions(&plan, name),
        ["update"],
        "{}: the minutes change in place: {}",
        tf.name,
        plan.plan
    );
    t.apply()
        .unwrap_or_else(|e| panic!("{}: update: {e:#}", tf.name));
    let updated = stack_output(&t, name);
    assert_eq!(s(&updated, "instance_id"), instance, "the same instance");
    let (heal3, serve3) = world.block(assert_alarms_defined(c, &updated, &topics, 3));
    assert_eq!(
        (heal3.definition(), &serve3.arn),
        (heal.definition(), &serve.arn),
        "only the no-in-service alarm's periods changed"
    );
    assert_eq!(serve3.state, "OK", "an update keeps the alarm's state");
    assert_empty_plan(&t, &format!("{}: after the update", tf.name));

    // No actions: no alarms.
    t.unset_var("alarm_actions");
    t.unset_var("alarm_no_in_service_minutes");
    let plan = plan_saved(&t).unwrap();
    assert_eq!(
        planned_actions(&plan, name),
        ["update"],
        "{}: removing the alarms is in place: {}",
        tf.name,
        plan.plan
    );
    t.apply()
        .unwrap_or_else(|e| panic!("{}: removing alarm_actions: {e:#}", tf.name));
    let bare = stack_output(&t, name);
    assert_eq!(s(&bare, "instance_id"), instance, "the same instance");
    assert!(
        bare["heal_failure_alarm_arn"].is_null() && bare["no_in_service_alarm_arn"].is_null(),
        "{}: the ARNs are null without alarms: {bare}",
        tf.name
    );
    let left = world.block(stack_alarms(c, name));
    assert!(left.is_empty(), "the alarms are deleted: {left:?}");
    assert_empty_plan(&t, &format!("{}: without alarms", tf.name));

    // Back again.
    t.set_var("alarm_actions", &actions);
    t.set_var("alarm_no_in_service_minutes", "2");
    t.apply()
        .unwrap_or_else(|e| panic!("{}: adding the alarms back: {e:#}", tf.name));
    let again = stack_output(&t, name);
    assert_eq!(s(&again, "instance_id"), instance, "the same instance");
    world.block(assert_alarms_defined(c, &again, &topics, 2));
    assert_empty_plan(&t, &format!("{}: with the alarms again", tf.name));

    t.destroy()
        .unwrap_or_else(|e| panic!("{}: destroy: {e:#}", tf.name));
    let left = world.block(stack_alarms(c, name));
    assert!(left.is_empty(), "destroy deletes the alarms: {left:?}");
    world.sweep(name, true);
}

#[test]
fn alarms_are_created_updated_removed_and_destroyed_with_every_terraform() {
    for tf in terraform_versions() {
        eprintln!("=== {}", tf.name);
        lifecycle(&tf);
    }
}

// --- 2. what the alarms watch ------------------------------------------------------------

/// The `<name>-heal-failed` alarm watches the metric the handler really prints (its EMF line
/// in the function's log group after the create's heal), and the `<name>-no-in-service` alarm
/// the group metric the group really publishes. Then a heal that fails permanently
/// (AttachVolume refused with `InvalidVolume.ZoneMismatch`, which the handler does not retry:
/// it ABANDONs) puts the heal-failed alarm into ALARM, with launches failing for longer than
/// `alarm_no_in_service_minutes` the no-in-service alarm too, each notifying the topic; once
/// the fault is gone a heal succeeds and both return to OK, notifying again.
#[test]
fn the_alarms_go_off_when_heals_fail_and_recover_when_a_heal_succeeds() {
    let tf = newest();
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "watch";
    let minutes = 2;
    let topic = world.block(Topic::create(&world, "ops"));
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    t.set_var("alarm_actions", format!("[{:?}]", topic.arn));
    t.set_var("alarm_no_in_service_minutes", minutes.to_string());
    t.apply().unwrap();
    let stack = stack_output(&t, name);
    let (heal, serve) = world.block(assert_alarms_defined(
        c,
        &stack,
        std::slice::from_ref(&topic.arn),
        minutes,
    ));
    let function = format!("{name}-attach");

    // (a) The heal-failed alarm's namespace, metric and dimensions are those of an EMF
    // metric the function printed for the create's heal.
    let record = world.block(async {
        wait_until(
            "the handler's EMF line for the first heal",
            ALARM_WAIT,
            POLL,
            || async {
                let lines = function_logs(&c.logs, &function).await?;
                let healed = emf_records(&lines)
                    .into_iter()
                    .find(|r| r["outcome"] == "healed");
                Ok(match healed {
                    Some(r) => Check::Done(r),
                    None => Check::NotYet(format!("{} log lines, no healed EMF line", lines.len())),
                })
            },
        )
        .await
        .unwrap()
    });
    let directives = record
        .pointer("/_aws/CloudWatchMetrics")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("no CloudWatchMetrics: {record}"));
    let alarm_dims: BTreeSet<&str> = heal.dimensions.iter().map(|(n, _)| n.as_str()).collect();
    let watched = directives.iter().any(|d| {
        d["Namespace"].as_str() == Some(heal.namespace.as_str())
            && d["Metrics"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["Name"].as_str() == Some(&heal.metric)))
            && d["Dimensions"].as_array().is_some_and(|sets| {
                sets.iter().any(|set| {
                    set.as_array().is_some_and(|keys| {
                        keys.iter()
                            .filter_map(Json::as_str)
                            .collect::<BTreeSet<_>>()
                            == alarm_dims
                    })
                })
            })
    });
    assert!(
        watched,
        "the alarm {heal:?} watches no metric of the function's EMF line {record}"
    );
    for (dim, value) in &heal.dimensions {
        assert_eq!(
            record[dim.as_str()].as_str(),
            Some(value.as_str()),
            "the EMF line's {dim} is the alarm's: {record}"
        );
    }
    assert_eq!(
        record[heal.metric.as_str()],
        0,
        "a healed instance is no failure: {record}"
    );
    // The local AWS made metrics of exactly those dimensions: the heal-failed alarm's from
    // the log line, the no-in-service alarm's from the group.
    world.block(async {
        for alarm in [&heal, &serve] {
            wait_until(
                &format!(
                    "metric {}/{} of the alarm {}",
                    alarm.namespace, alarm.metric, alarm.name
                ),
                ALARM_WAIT,
                POLL,
                || async {
                    let out = c
                        .cloudwatch
                        .list_metrics()
                        .namespace(&alarm.namespace)
                        .metric_name(&alarm.metric)
                        .set_dimensions(Some(
                            alarm
                                .dimensions
                                .iter()
                                .map(|(n, v)| DimensionFilter::builder().name(n).value(v).build())
                                .collect(),
                        ))
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "ListMetrics: {}",
                                aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                            )
                        })?;
                    let exact = out.metrics().iter().any(|m| {
                        let dims: Vec<(String, String)> = m
                            .dimensions()
                            .iter()
                            .map(|d| {
                                (
                                    d.name().unwrap_or_default().to_string(),
                                    d.value().unwrap_or_default().to_string(),
                                )
                            })
                            .collect();
                        dims == alarm.dimensions
                    });
                    Ok(if exact {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("{:?}", out.metrics()))
                    })
                },
            )
            .await
            .unwrap();
        }
        // Healthy: both OK after their first evaluations.
        wait_for_state(c, &heal.name, "OK").await;
        wait_for_state(c, &serve.name, "OK").await;
    });
    world.block(assert_create_paged_nobody(c, name, minutes as usize));
    let first_notes = world.block(topic.receive());
    assert!(
        first_notes
            .iter()
            .all(|n| n.new_state == "OK" || n.alarm == serve.name),
        "only OK so far: {first_notes:?}"
    );
    // What the alarms notified before the fault (the no-in-service alarm may have gone off
    // at create if the first instance took longer than the minutes to serve).
    let (heal_before, serve_before) = world.block(async {
        (
            notified_changes(&history(c, &heal.name).await.unwrap(), "ALARM", &topic.arn),
            notified_changes(&history(c, &serve.name).await.unwrap(), "ALARM", &topic.arn),
        )
    });
    assert_eq!(heal_before, 0, "no heal failed yet");
    let ok_before = world.block(async {
        let mut counts = BTreeMap::new();
        for alarm in [&heal.name, &serve.name] {
            let items = history(c, alarm).await.unwrap();
            counts.insert(alarm.clone(), notified_changes(&items, "OK", &topic.arn));
        }
        counts
    });

    // (b) Every heal fails for good: AttachVolume answers a zone mismatch.
    let volume = s(&stack, "volume_id").to_string();
    let serving = s(&stack, "instance_id").to_string();
    world
        .block(
            world.aws.control().add_fault(
                &Fault::error("AttachVolume", "InvalidVolume.ZoneMismatch")
                    .status(400)
                    .message("The volume is not in the same availability zone as the instance")
                    .matching("VolumeId", volume.as_str()),
            ),
        )
        .unwrap();
    world.block(async {
        c.ec2
            .terminate_instances()
            .instance_ids(&serving)
            .send()
            .await
            .unwrap();
    });
    let alarmed = world.block(wait_for_state(c, &heal.name, "ALARM"));
    assert!(
        alarmed
            .state_reason
            .contains("greater than the threshold (0"),
        "{alarmed:?}"
    );
    world.block(wait_for_notified(
        c,
        &heal.name,
        "ALARM",
        &topic.arn,
        heal_before + 1,
    ));
    // The handler did ABANDON, and said so in its metric.
    let lines = world.block(function_logs(&c.logs, &function)).unwrap();
    let failures: Vec<Json> = emf_records(&lines)
        .into_iter()
        .filter(|r| r["PermanentFailure"] == 1)
        .collect();
    assert!(
        failures.iter().any(|r| r["outcome"] == "abandoned"),
        "an abandoned heal counted as a permanent failure: {failures:?}"
    );
    // No instance in service for more than `minutes` minutes.
    let unserved = world.block(wait_for_state(c, &serve.name, "ALARM"));
    assert!(
        unserved
            .state_reason
            .contains(&format!("out of the last {minutes} datapoints")),
        "{unserved:?}"
    );
    world.block(wait_for_notified(
        c,
        &serve.name,
        "ALARM",
        &topic.arn,
        serve_before + 1,
    ));
    let alarm_notes: Vec<Notification> = world
        .block(topic.receive())
        .into_iter()
        .filter(|n| n.new_state == "ALARM")
        .collect();
    for alarm in [&heal.name, &serve.name] {
        let note = alarm_notes
            .iter()
            .find(|n| &n.alarm == alarm)
            .unwrap_or_else(|| panic!("no ALARM notification of {alarm}: {alarm_notes:?}"));
        assert_eq!(
            note.subject,
            format!("ALARM: \"{alarm}\" in Asia Pacific (Sydney)"),
            "{note:?}"
        );
        assert_eq!(note.old_state, "OK", "{note:?}");
        let trigger = &note.message["Trigger"];
        let expected = if alarm == &heal.name { &heal } else { &serve };
        assert_eq!(
            (
                trigger["Namespace"].as_str(),
                trigger["MetricName"].as_str()
            ),
            (
                Some(expected.namespace.as_str()),
                Some(expected.metric.as_str())
            ),
            "{note:?}"
        );
    }

    // The fault gone: the next launch heals, and both alarms return to OK.
    world.block(world.aws.control().clear_faults()).unwrap();
    let healed = world.block(async {
        wait_until("a heal after the fault", ALARM_WAIT, POLL, || async {
            Ok(match served_instance(c, name, &stack).await {
                Some(i) if i != serving => Check::Done(i),
                _ => Check::NotYet("not served".into()),
            })
        })
        .await
        .unwrap()
    });
    eprintln!("served again by {healed}");
    world.block(async {
        for alarm in [&heal.name, &serve.name] {
            wait_for_state(c, alarm, "OK").await;
            wait_for_notified(c, alarm, "OK", &topic.arn, ok_before[alarm] + 1).await;
        }
    });
    let ok_notes: Vec<Notification> = world
        .block(topic.receive())
        .into_iter()
        .filter(|n| n.new_state == "OK")
        .collect();
    for alarm in [&heal.name, &serve.name] {
        assert!(
            ok_notes
                .iter()
                .any(|n| &n.alarm == alarm && n.old_state == "ALARM"),
            "the topic heard {alarm} return to OK: {ok_notes:?}"
        );
    }

    t.destroy().unwrap();
    world.sweep(name, true);
}

// --- 3. drift ----------------------------------------------------------------------------------

/// An alarm deleted by hand: a refresh nulls its ARN, the plan is an in-place update with that
/// ARN known after apply, and the apply puts the alarm back as it was. An alarm rewritten by
/// hand (another threshold): the plan shows the update, the apply restores it.
#[test]
fn alarms_deleted_or_changed_by_hand_are_restored() {
    let tf = newest();
    let world = World::start(CLOCK_SCALE);
    let c = &world.clients;
    let name = "almdrift";
    let topic = world.block(Topic::create(&world, "ops"));
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    t.set_var("alarm_actions", format!("[{:?}]", topic.arn));
    t.apply().unwrap();
    let stack = stack_output(&t, name);
    let instance = s(&stack, "instance_id").to_string();
    let (heal, serve) = world.block(assert_alarms_defined(
        c,
        &stack,
        std::slice::from_ref(&topic.arn),
        10,
    ));
    let tags = world.block(alarm_tags(c, &serve.arn));

    // Deleted by hand.
    world.block(async {
        c.cloudwatch
            .delete_alarms()
            .alarm_names(&serve.name)
            .send()
            .await
            .unwrap();
    });
    refresh(&t);
    let refreshed = stack_output(&t, name);
    assert!(
        refreshed["no_in_service_alarm_arn"].is_null(),
        "the refresh finds the alarm gone: {refreshed}"
    );
    assert_eq!(
        refreshed["heal_failure_alarm_arn"].as_str(),
        Some(heal.arn.as_str()),
        "the other alarm is still there: {refreshed}"
    );
    let plan = plan_saved(&t).unwrap();
    let addr = address(name);
    assert_eq!(planned_actions(&plan, name), ["update"], "{}", plan.plan);
    assert!(
        plan.is_unknown(&addr, "no_in_service_alarm_arn"),
        "the deleted alarm's ARN is known after apply: {}",
        plan.plan
    );
    assert_eq!(
        plan.after(&addr, "heal_failure_alarm_arn")
            .and_then(Json::as_str),
        Some(heal.arn.as_str()),
        "{}",
        plan.plan
    );
    assert!(
        !plan.is_unknown(&addr, "instance_id"),
        "the instance stays: {}",
        plan.plan
    );
    t.apply().unwrap();
    let repaired = stack_output(&t, name);
    assert_eq!(s(&repaired, "instance_id"), instance);
    let back = world.block(stack_alarms(c, name));
    let restored = back
        .get(&serve.name)
        .unwrap_or_else(|| panic!("the alarm is back: {back:?}"));
    assert_eq!(
        restored.definition(),
        serve.definition(),
        "the same definition"
    );
    assert_eq!(
        repaired["no_in_service_alarm_arn"].as_str(),
        Some(restored.arn.as_str())
    );
    assert_eq!(
        world.block(alarm_tags(c, &restored.arn)),
        tags,
        "the same tags"
    );
    assert_eq!(back[&heal.name].definition(), heal.definition());
    assert_empty_plan(&t, "after the alarm's repair");

    // Rewritten by hand: another threshold.
    world.block(async {
        c.cloudwatch
            .put_metric_alarm()
            .alarm_name(&heal.name)
            .alarm_description(&heal.description)
            .namespace(&heal.namespace)
            .metric_name(&heal.metric)
            .set_dimensions(Some(
                heal.dimensions
                    .iter()
                    .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                    .collect(),
            ))
            .statistic(Statistic::from(heal.statistic.as_str()))
            .period(heal.period)
            .evaluation_periods(heal.evaluation_periods)
            .threshold(5.0)
            .comparison_operator(ComparisonOperator::from(heal.comparison.as_str()))
            .treat_missing_data(&heal.treat_missing_data)
            .set_alarm_actions(Some(heal.alarm_actions.clone()))
            .set_ok_actions(Some(heal.ok_actions.clone()))
            .send()
            .await
            .unwrap();
        let changed = stack_alarms(c, name).await;
        assert_eq!(changed[&heal.name].threshold, 5.0, "{changed:?}");
    });
    let plan = plan_saved(&t).unwrap();
    assert_eq!(
        planned_actions(&plan, name),
        ["update"],
        "the plan shows the alarm's repair: {}",
        plan.plan
    );
    assert!(
        plan.is_unknown(&addr, "heal_failure_alarm_arn"),
        "{}",
        plan.plan
    );
    t.apply().unwrap();
    let rewritten = world.block(stack_alarms(c, name));
    assert_eq!(
        rewritten[&heal.name].definition(),
        heal.definition(),
        "the apply restores the threshold"
    );
    assert_eq!(
        stack_output(&t, name)["heal_failure_alarm_arn"].as_str(),
        Some(heal.arn.as_str())
    );
    assert_empty_plan(&t, "after the threshold's repair");

    t.destroy().unwrap();
    world.sweep(name, true);
}

// --- 4. import -----------------------------------------------------------------------------------

/// A stack with alarms imported into a fresh state: `alarm_actions`, both ARNs and the minutes
/// (when not the default) come back, and the configuration plans no change; with the default
/// minutes the attribute stays unset.
#[test]
fn import_reads_back_the_alarms() {
    let tf = newest();
    let world = World::start(CLOCK_SCALE);
    let name = "almimp";
    let (ops, pager) = world.block(async {
        (
            Topic::create(&world, "ops").await,
            Topic::create(&world, "pager").await,
        )
    });
    let mut topics = vec![ops.arn.clone(), pager.arn.clone()];
    topics.sort();
    let actions = format!("[{:?}, {:?}]", pager.arn, ops.arn);
    let t = world.terraform(&tf, &[name]);
    let _guard = t.destroy_guard();
    t.set_var("alarm_actions", &actions);
    t.set_var("alarm_no_in_service_minutes", "3");
    t.apply().unwrap();
    let stack = stack_output(&t, name);
    world.block(assert_alarms_defined(&world.clients, &stack, &topics, 3));

    for minutes in [Some(3), None] {
        eprintln!("=== import with alarm_no_in_service_minutes {minutes:?}");
        if minutes.is_none() {
            t.unset_var("alarm_no_in_service_minutes");
            t.apply().unwrap();
            let stack = stack_output(&t, name);
            world.block(assert_alarms_defined(&world.clients, &stack, &topics, 10));
        }
        let created = state_values(&t);
        let imp = world.terraform(&tf, &[name]);
        imp.set_var("alarm_actions", &actions);
        if let Some(m) = minutes {
            imp.set_var("alarm_no_in_service_minutes", m.to_string());
        }
        import(&imp, name);
        let imported = state_values(&imp);
        let mut read: Vec<&str> = imported["alarm_actions"]
            .as_array()
            .unwrap_or_else(|| panic!("alarm_actions imported: {imported:?}"))
            .iter()
            .filter_map(Json::as_str)
            .collect();
        read.sort();
        assert_eq!(read, topics, "alarm_actions");
        for attr in ["heal_failure_alarm_arn", "no_in_service_alarm_arn"] {
            assert!(created[attr].is_string(), "{attr}: {created:?}");
            assert_eq!(imported[attr], created[attr], "{attr}");
        }
        assert_eq!(
            imported["alarm_no_in_service_minutes"],
            minutes.map_or(Json::Null, Json::from),
            "alarm_no_in_service_minutes"
        );
        assert_import_plans_no_change(&imp);
    }

    t.destroy().unwrap();
    world.sweep(name, true);
}
