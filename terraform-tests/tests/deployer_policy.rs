//! README's deployer policy, through the local AWS's IAM evaluator (issue 15, point 3).
//!
//! An administrator (the tests' own, unevaluated credentials) creates README's permissions
//! boundary `autoheal-lambda-boundary`, an IAM user `deployer` with README's two deployer
//! policy blocks attached as customer managed policies, and its access key
//! (`terraform_tests::deployer`). The local AWS (realistic profile, `iam_evaluation` on)
//! evaluates every call signed with that key against the user's policies, and every call of
//! the Lambda's role against its inline policy and boundary, and appends each decision to
//! `LOCALAWS_IAM_DECISIONS_LOG`.
//!
//! * As the deployer, Terraform applies a stack, updates it in place (tags) and with a roll
//!   (instance type), imports it into a fresh state, adds failover zones, fails back after a
//!   zone outage the failover function moved it out of, and destroys it: every step succeeds
//!   and not one of the deployer's (or the functions' roles') decisions is a denial. A denial is
//!   reported with its call, action, resource, the policy kind, and the request context.
//! * As the deployer, with the SDK, the escalation chain of "Never lose data, never widen
//!   access" is closed: a role without the boundary, or outside `/autoheal/`, is refused; a
//!   role under the boundary with an administrator inline policy is allowed, but code run as
//!   that role is still capped by the boundary; the boundary cannot be removed or replaced;
//!   a role outside `/autoheal/` cannot be passed to Lambda; EC2 deletes, terminations and
//!   untagged creates are refused. Each with the service's own error code.
//!
//! What this proves is agreement with our reading of AWS's documentation (the request
//! contexts of localaws/iam_context.py), not with AWS (RELIABILITY.md, "IAM evaluation in
//! the local AWS").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use serde_json::{json, Value as Json};
use terraform_tests::deployer::{Deployer, BOUNDARY_NAME};
use terraform_tests::local_aws::helpers::{self, AMI};
use terraform_tests::local_aws::{venv_python, zip, Options as AwsOptions, Profile, ACCOUNT_ID};
use terraform_tests::stack_world::{served_instance, World, DEFAULT_STACK_COMMAND_TIMEOUT};
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

const CLOCK_SCALE: f64 = 0.02;
const STACK: &str = "dep";
const STACK_TAG: &str = "autoheal:stack";
const HOME: &str = "ap-southeast-2a";

/// A world on the realistic profile (IAM evaluation on) whose decisions go to a file.
fn world_with_decisions_log() -> (World, tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("iam-decisions-")
        .tempdir()
        .unwrap();
    let log = dir.path().join("decisions.jsonl");
    let world = World::start_with(AwsOptions {
        clock_scale: CLOCK_SCALE,
        profile: Profile::Realistic,
        env: vec![(
            "LOCALAWS_IAM_DECISIONS_LOG".into(),
            log.display().to_string(),
        )],
        ..AwsOptions::default()
    });
    let profile = world
        .block(world.aws.control().set_profile(&json!({})))
        .unwrap();
    assert_eq!(profile["iam_evaluation"], true, "{profile}");
    (world, dir, log)
}

fn decisions(log: &Path) -> Vec<Json> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON decision"))
        .collect()
}

/// One denial, with what is needed to tell a policy's gap from a context built wrong.
fn describe_denial(d: &Json) -> String {
    let mut s = format!(
        "{} {} by {}: {} {} on {} ({}); statement {}; note {:?}",
        d["service"].as_str().unwrap_or("?"),
        d["operation"].as_str().unwrap_or("?"),
        d["principal"].as_str().unwrap_or("?"),
        d["decision"].as_str().unwrap_or("?"),
        d["action"].as_str().unwrap_or("?"),
        d["resource"].as_str().unwrap_or("*"),
        d["policy_type"].as_str().unwrap_or("?"),
        d["statement"],
        d["note"].as_str().unwrap_or(""),
    );
    let auths = d["authorizations"].as_array().cloned().unwrap_or_default();
    let ctxs = d["contexts"].as_array().cloned().unwrap_or_default();
    for (a, c) in auths.iter().zip(ctxs.iter()) {
        s.push_str(&format!(
            "\n    authorization {} on {} [{}]\n      request keys: {}\n      resource keys: {}",
            a["action"].as_str().unwrap_or("?"),
            a["resources"],
            a["note"].as_str().unwrap_or(""),
            c["request"],
            c["resources"]
        ));
    }
    s
}

/// Decisions per authorized action (allowed, denied) of `principal`'s decisions.
fn summary(decisions: &[Json]) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for d in decisions {
        let allowed = d["decision"] == "Allow";
        for a in d["authorizations"].as_array().into_iter().flatten() {
            let e = out
                .entry(a["action"].as_str().unwrap_or("?").to_string())
                .or_default();
            if allowed || a["action"] != d["action"] {
                e.0 += usize::from(allowed);
            } else {
                e.1 += 1;
            }
        }
    }
    out
}

fn print_summary(what: &str, decisions: &[Json]) {
    let s = summary(decisions);
    let total: usize = decisions.len();
    eprintln!("--- IAM decisions of {what}: {total} calls");
    for (action, (allowed, denied)) in &s {
        eprintln!("    {action:<45} allowed {allowed:>4}  denied {denied:>3}");
    }
}

/// Runs one Terraform step as the deployer; fails listing every denial (the deployer's and
/// the Lambda role's) made during it, whether the step failed or not.
fn step(log: &Path, seen: &mut usize, name: &str, run: impl FnOnce() -> anyhow::Result<()>) {
    step_tolerating(log, seen, name, |_| false, run)
}

/// [`step`], where denials `expected` holds are the design's outcome, not a gap.
fn step_tolerating(
    log: &Path,
    seen: &mut usize,
    name: &str,
    expected: impl Fn(&Json) -> bool,
    run: impl FnOnce() -> anyhow::Result<()>,
) {
    let result = run();
    let all = decisions(log);
    let new = &all[(*seen).min(all.len())..];
    *seen = all.len();
    let tolerated = new
        .iter()
        .filter(|d| d["decision"] != "Allow" && expected(d))
        .count();
    if tolerated > 0 {
        eprintln!("{name}: {tolerated} denial(s) expected by design");
    }
    let denials: Vec<String> = new
        .iter()
        .filter(|d| d["decision"] != "Allow" && !expected(d))
        .map(describe_denial)
        .collect();
    eprintln!(
        "{name}: {} IAM decisions, {} denied",
        new.len(),
        denials.len()
    );
    if result.is_err() || !denials.is_empty() {
        panic!(
            "{name} as README's deployer: {}\n{} denial(s) (a README policy gap unless the \
             context is built wrong, see localaws/iam_context.py):\n  {}",
            match &result {
                Ok(()) => "succeeded".to_string(),
                Err(e) => format!("FAILED: {e:#}"),
            },
            denials.len(),
            denials.join("\n  ")
        );
    }
}

fn set_vars(t: &Terraform, boundary: &str, tags: &str, instance_type: Option<&str>) {
    t.set_var("lambda_role_permissions_boundary", boundary);
    t.set_var("tags", tags);
    if let Some(it) = instance_type {
        t.set_var("instance_type", it);
    }
}

fn set_opt_ins(t: &Terraform) {
    t.set_var("persistent_network_interface", "true");
    // The snapshot schedule: its rule is `<name>-snapshot`, which README's policy covers.
    t.set_var("snapshot_interval", "15m");
    t.set_var(
        "alarm_actions",
        format!(r#"["arn:aws:sns:ap-southeast-2:{ACCOUNT_ID}:ops"]"#),
    );
}

/// Polls `check` every 200 ms until it gives a value, for at most two minutes.
fn poll<T>(what: &str, mut check: impl FnMut() -> anyhow::Result<Option<T>>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "waited 120 s for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stack_output(t: &Terraform) -> anyhow::Result<Json> {
    Ok(t.output("stacks")?[STACK].clone())
}

fn wait_served(world: &World, stack: &Json) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(id) = world.block(served_instance(&world.clients, STACK, stack)) {
            return Ok(id);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stack is not served: {stack}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn lifecycle_as_the_deployer(tf: &TerraformBinary) {
    let (world, _dir, log) = world_with_decisions_log();
    let deployer = world.block(Deployer::create(&world.clients)).unwrap();
    let boundary = deployer.boundary_arn.clone();
    assert_eq!(
        boundary,
        format!("arn:aws:iam::{ACCOUNT_ID}:policy/{BOUNDARY_NAME}")
    );
    let env = deployer.terraform_env();
    let t = world.terraform_with(tf, &[STACK], &env, DEFAULT_STACK_COMMAND_TIMEOUT);
    let _guard = t.destroy_guard();
    let mut seen = 0;

    set_vars(&t, &boundary, r#"{Team = "storage"}"#, None);
    let mut first = String::new();
    step(&log, &mut seen, "apply", || {
        t.apply()?;
        first = wait_served(&world, &stack_output(&t)?)?;
        Ok(())
    });
    step(&log, &mut seen, "update in place (tags)", || {
        t.set_var("tags", r#"{Team = "storage", Tier = "gold"}"#);
        t.apply()?;
        let plan = t.plan()?;
        anyhow::ensure!(plan.exit_code == 0, "the plan is not empty:\n{plan}");
        Ok(())
    });
    // The opt-ins, with their own statements: the interface (made, the address moved onto it,
    // attached to the serving instance) and the alarms (on an SNS topic only).
    step(
        &log,
        &mut seen,
        "update in place (persistent_network_interface, alarm_actions, snapshot_interval)",
        || {
            set_opt_ins(&t);
            t.apply()?;
            let plan = t.plan()?;
            anyhow::ensure!(plan.exit_code == 0, "the plan is not empty:\n{plan}");
            let stack = stack_output(&t)?;
            anyhow::ensure!(
                stack["network_interface_id"].is_string()
                    && stack["heal_failure_alarm_arn"].is_string()
                    && stack["snapshot_rule_arn"].is_string(),
                "the interface, the alarms and the snapshot schedule are made: {stack}"
            );
            Ok(())
        },
    );
    step(
        &log,
        &mut seen,
        "update with a roll (instance_type)",
        || {
            t.set_var("instance_type", "t3.small");
            t.apply()?;
            let stack = stack_output(&t)?;
            let second = wait_served(&world, &stack)?;
            anyhow::ensure!(second != first, "instance_type rolls the instance");
            Ok(())
        },
    );
    step(&log, &mut seen, "import into a fresh state", || {
        let imp = world.terraform_with(tf, &[STACK], &env, DEFAULT_STACK_COMMAND_TIMEOUT);
        set_vars(
            &imp,
            &boundary,
            r#"{Team = "storage", Tier = "gold"}"#,
            Some("t3.small"),
        );
        set_opt_ins(&imp);
        let mut args: Vec<String> =
            vec!["import".into(), "-no-color".into(), "-input=false".into()];
        args.extend(imp.var_args());
        args.extend([
            format!(r#"autoheal_instance.this["{STACK}"]"#),
            STACK.to_string(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = imp.run(&args, false)?;
        anyhow::ensure!(out.exit_code == 0, "import: {out}");
        let plan = imp.plan()?;
        anyhow::ensure!(
            plan.exit_code == 0 || plan.exit_code == 2,
            "plan after import: {plan}"
        );
        Ok(())
    });
    // The failover zones' subnet (it cannot go with the interface, which lives in one
    // subnet): made in the stack's VPC by an update, on the stack's route table.
    step(
        &log,
        &mut seen,
        "update in place (failover_zones instead of persistent_network_interface)",
        || {
            t.unset_var("persistent_network_interface");
            t.set_var("failover_zones", r#"["ap-southeast-2b"]"#);
            t.set_var("failover_detection_window", "5m");
            t.apply()?;
            let plan = t.plan()?;
            anyhow::ensure!(plan.exit_code == 0, "the plan is not empty:\n{plan}");
            let stack = stack_output(&t)?;
            anyhow::ensure!(
                stack["failover_subnet_ids"]["ap-southeast-2b"].is_string()
                    && stack["network_interface_id"].is_null(),
                "the failover subnet is made and the interface gone: {stack}"
            );
            Ok(())
        },
    );
    // A zone outage: the failover function moves the stack under its own role (its calls
    // are evaluated like the rest); then the operator fails back as the deployer.
    let mut superseded = Vec::new();
    step(
        &log,
        &mut seen,
        "zone failover (the failover function's role)",
        || {
            let home_volume = stack_output(&t)?["volume_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            poll("a completed scheduled snapshot", || {
                let found = world.block(helpers::scheduled_snapshots(&world.clients.ec2, STACK))?;
                Ok(found
                    .iter()
                    .any(|s| s.state().map(|s| s.as_str()) == Some("completed"))
                    .then_some(()))
            })?;
            world.block(world.aws.control().start_zone_outage(HOME))?;
            let restored = poll("service from the failover zone", || {
                let g = world.block(helpers::group_tags(
                    &world.clients.autoscaling,
                    &format!("{STACK}-asg"),
                ))?;
                let Some(active) = g.get("autoheal:active-volume").cloned() else {
                    return Ok(None);
                };
                let mut moved = stack_output(&t)?;
                moved["volume_id"] = Json::from(active.clone());
                Ok(world
                    .block(served_instance(&world.clients, STACK, &moved))
                    .map(|_| active))
            })?;
            superseded = vec![home_volume, restored];
            Ok(())
        },
    );
    step(
        &log,
        &mut seen,
        "fail back (active_availability_zone)",
        || {
            world.block(world.aws.control().end_zone_outage(HOME))?;
            t.set_var("active_availability_zone", HOME);
            t.apply()?;
            let stack = stack_output(&t)?;
            anyhow::ensure!(
                !superseded.iter().any(|v| stack["volume_id"] == v.as_str()),
                "a new data volume: {stack}"
            );
            wait_served(&world, &stack)?;
            let plan = t.plan()?;
            anyhow::ensure!(plan.exit_code == 0, "the plan is not empty:\n{plan}");
            Ok(())
        },
    );
    // A failover check already running when the destroy deletes the failover function
    // finishes (Lambda does not stop an invocation in flight) after its log group is gone:
    // Lambda's log delivery then asks for logs:CreateLogGroup, which the roles lack on
    // purpose (the provider makes the log groups; a destroyed stack's group must not come
    // back), and the lines are dropped. That denial, on the stack's own log groups only, is
    // the design's outcome.
    let own_log_groups = [
        format!("log-group:/aws/lambda/{STACK}-failover"),
        format!("log-group:/aws/lambda/{STACK}-attach"),
    ];
    step_tolerating(
        &log,
        &mut seen,
        "destroy",
        |d| {
            d["action"] == "logs:CreateLogGroup"
                && d["resource"]
                    .as_str()
                    .is_some_and(|r| own_log_groups.iter().any(|g| r.ends_with(g.as_str())))
        },
        || t.destroy().map(drop),
    );
    // The scheduled and failback snapshots and the volumes the failover and the failback
    // left outlive the stack by design (they are data); the test removes them with its own
    // credentials before looking for leftovers.
    world.block(async {
        for kind in ["scheduled", "failback"] {
            helpers::delete_snapshots_of_kind(&world.clients.ec2, STACK, kind)
                .await
                .unwrap();
        }
        for v in &superseded {
            world
                .clients
                .ec2
                .delete_volume()
                .volume_id(v)
                .send()
                .await
                .unwrap();
        }
    });
    world.sweep(STACK, true);

    let all = decisions(&log);
    let (mine, others): (Vec<Json>, Vec<Json>) = all
        .into_iter()
        .partition(|d| d["principal"] == deployer.user_arn.as_str());
    print_summary(&format!("{} ({})", deployer.user_arn, tf.name), &mine);
    print_summary("the Lambda's role (heals, log delivery)", &others);
    // The roll's heal ran under the boundary with the interface: attached, and allowed.
    let lambda = summary(&others);
    assert!(
        lambda
            .get("ec2:AttachNetworkInterface")
            .is_some_and(|(a, d)| *a > 0 && *d == 0),
        "the Lambda attached the interface, allowed: {lambda:?}"
    );
    assert!(
        mine.len() > 50,
        "the deployer's calls were evaluated: {}",
        mine.len()
    );
    for needed in [
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:PassRole",
        "lambda:CreateFunction",
        "ec2:CreateVolume",
        "ec2:CreateTags",
        "autoscaling:CreateAutoScalingGroup",
        "ec2:RunInstances",
        "ec2:DeleteVolume",
        "iam:DeleteRole",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "lambda:AddPermission",
        "events:PutRule",
        "events:DeleteRule",
        "ec2:CreateSubnet",
        "ec2:AssociateRouteTable",
        "ec2:DeleteSubnet",
    ] {
        let s = summary(&mine);
        assert!(
            s.get(needed).is_some_and(|(a, _)| *a > 0),
            "{needed} was evaluated and allowed: {s:?}"
        );
    }
}

/// README's deployer policy allows every call of apply, update (in place and with a roll),
/// import and destroy, with the newest Terraform.
#[test]
fn the_readme_deployer_policy_allows_apply_update_import_and_destroy() {
    let versions = terraform_versions();
    let tf = versions.last().unwrap();
    eprintln!("=== {}", tf.name);
    lifecycle_as_the_deployer(tf);
}

// -- the escalation chain ----------------------------------------------------------------

const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const ADMIN: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// The code and message of an SDK error, or a panic if the call succeeded.
fn refused<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    what: &str,
    r: Result<T, E>,
) -> (String, String) {
    match r {
        Ok(v) => panic!("{what}: allowed, must be denied: {v:?}"),
        Err(e) => (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

fn assert_denied(
    what: &str,
    (code, message): (String, String),
    expected_code: &str,
    action: &str,
    principal: &str,
) {
    eprintln!("{what}: {code}: {message}");
    assert_eq!(code, expected_code, "{what}: {message}");
    assert!(
        message.contains(&format!(
            "User: {principal} is not authorized to perform: {action}"
        )),
        "{what}: the message names {principal} and {action}: {message}"
    );
}

/// A function body (the venv's Python behind the Runtime API) that tries, as its role, what
/// an administrator could do, and answers each call's outcome (`Allowed` or the error code).
fn escalation_zip() -> Vec<u8> {
    let python = venv_python().unwrap();
    let script = format!(
        r#"#!{python}
import json, os, urllib.request
import boto3
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
REGION = os.environ.get("AWS_REGION", "ap-southeast-2")
def attempt(call):
    try:
        call()
        return "Allowed"
    except Exception as e:
        err = getattr(e, "response", {{}}).get("Error", {{}})
        return err.get("Code", "") + ": " + err.get("Message", repr(e))
while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        r.read()
    iam = boto3.client("iam", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    out = {{
        "iam:CreateUser": attempt(lambda: iam.create_user(UserName="escalated")),
        "iam:DeleteRolePermissionsBoundary": attempt(lambda: iam.delete_role_permissions_boundary(RoleName=os.environ["ROLE"])),
        "ec2:TerminateInstances": attempt(lambda: ec2.terminate_instances(InstanceIds=[os.environ["VICTIM"]])),
    }}
    req = urllib.request.Request(API + "/invocation/" + rid + "/response", data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
"#,
        python = python.display()
    );
    zip::zip_stored(&[zip::ZipEntry {
        name: "bootstrap",
        mode: 0o755,
        data: script.as_bytes(),
    }])
}

/// Retries `f` while it fails with one of `transient` codes (IAM's propagation window, a
/// function still Pending), for up to a minute.
async fn retrying<T, E, F, Fut>(what: &str, transient: &[&str], mut f: F) -> Result<T, E>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Err(e)
                if transient.contains(&e.code().unwrap_or_default())
                    && Instant::now() < deadline =>
            {
                eprintln!("{what}: {} (retrying)", e.message().unwrap_or_default());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

#[test]
fn the_escalation_chain_is_closed_for_the_readme_deployer() {
    let (world, _dir, log) = world_with_decisions_log();
    let admin = &world.clients;
    let deployer = world.block(Deployer::create(admin)).unwrap();
    let me = deployer.user_arn.clone();
    let boundary = deployer.boundary_arn.clone();
    world.block(async {
        let dc = deployer.clients(&world.aws).await;
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(STACK_TAG)
            .value("esc")
            .build()
            .unwrap();

        // A role without the boundary: refused (LambdaRoleCreatedUnderTheBoundary).
        let r = dc
            .iam
            .create_role()
            .role_name("esc-attach")
            .path("/autoheal/")
            .assume_role_policy_document(LAMBDA_TRUST)
            .tags(tag.clone())
            .send()
            .await;
        assert_denied(
            "CreateRole without the boundary",
            refused("CreateRole without the boundary", r),
            "AccessDenied",
            "iam:CreateRole",
            &me,
        );
        // A role outside /autoheal/: refused.
        let r = dc
            .iam
            .create_role()
            .role_name("esc-attach")
            .path("/")
            .permissions_boundary(&boundary)
            .assume_role_policy_document(LAMBDA_TRUST)
            .tags(tag.clone())
            .send()
            .await;
        assert_denied(
            "CreateRole outside /autoheal/",
            refused("CreateRole outside /autoheal/", r),
            "AccessDenied",
            "iam:CreateRole",
            &me,
        );
        // Under /autoheal/ with the boundary: allowed, and so is an administrator inline policy...
        let role_arn = dc
            .iam
            .create_role()
            .role_name("esc-attach")
            .path("/autoheal/")
            .permissions_boundary(&boundary)
            .assume_role_policy_document(LAMBDA_TRUST)
            .tags(tag.clone())
            .send()
            .await
            .expect("CreateRole under /autoheal/ with the boundary is allowed")
            .role()
            .unwrap()
            .arn()
            .to_string();
        dc.iam
            .put_role_policy()
            .role_name("esc-attach")
            .policy_name("admin")
            .policy_document(ADMIN)
            .send()
            .await
            .expect("PutRolePolicy on a role under the boundary is allowed");
        // ...but the boundary stays: it can be neither removed nor replaced.
        let r = dc
            .iam
            .delete_role_permissions_boundary()
            .role_name("esc-attach")
            .send()
            .await;
        assert_denied(
            "DeleteRolePermissionsBoundary",
            refused("DeleteRolePermissionsBoundary", r),
            "AccessDenied",
            "iam:DeleteRolePermissionsBoundary",
            &me,
        );
        let wide = admin
            .iam
            .create_policy()
            .policy_name("wide-open")
            .policy_document(ADMIN)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .arn()
            .unwrap()
            .to_string();
        let r = dc
            .iam
            .put_role_permissions_boundary()
            .role_name("esc-attach")
            .permissions_boundary(&wide)
            .send()
            .await;
        assert_denied(
            "PutRolePermissionsBoundary with another policy",
            refused("PutRolePermissionsBoundary", r),
            "AccessDenied",
            "iam:PutRolePermissionsBoundary",
            &me,
        );
        let r = dc
            .iam
            .attach_role_policy()
            .role_name("esc-attach")
            .policy_arn(&wide)
            .send()
            .await;
        assert_denied(
            "AttachRolePolicy of an administrator policy",
            refused("AttachRolePolicy", r),
            "AccessDenied",
            "iam:AttachRolePolicy",
            &me,
        );

        // An untagged instance and volume of the account (the administrator's).
        let victim = admin
            .ec2
            .run_instances()
            .image_id(AMI)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap()
            .instances()[0]
            .instance_id()
            .unwrap()
            .to_string();
        let volume = admin
            .ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(1)
            .send()
            .await
            .unwrap()
            .volume_id()
            .unwrap()
            .to_string();

        // A role outside /autoheal/ (an administrator's) cannot be passed to a function.
        let outside = admin
            .iam
            .create_role()
            .role_name("ops-attach")
            .path("/")
            .assume_role_policy_document(LAMBDA_TRUST)
            .tags(tag.clone())
            .send()
            .await
            .unwrap()
            .role()
            .unwrap()
            .arn()
            .to_string();
        admin
            .iam
            .put_role_policy()
            .role_name("ops-attach")
            .policy_name("admin")
            .policy_document(ADMIN)
            .send()
            .await
            .unwrap();
        let code = || {
            FunctionCode::builder()
                .zip_file(Blob::new(escalation_zip()))
                .build()
        };
        let env = Environment::builder()
            .variables("VICTIM", &victim)
            .variables("ROLE", "esc-attach")
            .build();
        let r = retrying(
            "CreateFunction with a role outside /autoheal/",
            &["InvalidParameterValueException"],
            || {
                dc.lambda
                    .create_function()
                    .function_name("ops-attach")
                    .runtime(Runtime::Providedal2023)
                    .handler("bootstrap")
                    .role(&outside)
                    .code(code())
                    .environment(env.clone())
                    .tags(STACK_TAG, "esc")
                    .send()
            },
        )
        .await;
        assert_denied(
            "PassRole of a role outside /autoheal/",
            refused("CreateFunction with a role outside /autoheal/", r),
            "AccessDeniedException",
            "iam:PassRole",
            &me,
        );

        // The function the deployer writes, with its administrator role under the boundary:
        // allowed, and the code runs as that role, capped by the boundary.
        retrying(
            "CreateFunction with the escalated role",
            &["InvalidParameterValueException"],
            || {
                dc.lambda
                    .create_function()
                    .function_name("esc-attach")
                    .runtime(Runtime::Providedal2023)
                    .handler("bootstrap")
                    .role(&role_arn)
                    .timeout(30)
                    .code(code())
                    .environment(env.clone())
                    .tags(STACK_TAG, "esc")
                    .send()
            },
        )
        .await
        .expect("CreateFunction with a role under /autoheal/ is allowed");
        let out = retrying(
            "Invoke",
            &["ResourceConflictException", "ResourceNotReadyException"],
            || {
                admin
                    .lambda
                    .invoke()
                    .function_name("esc-attach")
                    .payload(Blob::new("{}"))
                    .send()
            },
        )
        .await
        .expect("the administrator invokes the function");
        let payload: Json = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        eprintln!("the escalated function's calls, as its role: {payload:#}");
        let session = format!("arn:aws:sts::{ACCOUNT_ID}:assumed-role/esc-attach/esc-attach");
        for (action, code) in [
            ("iam:CreateUser", "AccessDenied"),
            ("iam:DeleteRolePermissionsBoundary", "AccessDenied"),
            ("ec2:TerminateInstances", "UnauthorizedOperation"),
        ] {
            let got = payload[action].as_str().unwrap_or_default();
            assert!(
                got.starts_with(&format!("{code}: "))
                    && got.contains(&format!(
                        "User: {session} is not authorized to perform: {action}"
                    ))
                    && got.contains("permissions boundary"),
                "{action} as the escalated role: denied by the boundary with {code}: {got}"
            );
        }

        // EC2: deletes and terminations of the account's untagged objects, untagged creates.
        let r = dc.ec2.delete_volume().volume_id(&volume).send().await;
        assert_denied(
            "DeleteVolume of an untagged volume",
            refused("DeleteVolume", r),
            "UnauthorizedOperation",
            "ec2:DeleteVolume",
            &me,
        );
        let r = dc
            .ec2
            .terminate_instances()
            .instance_ids(&victim)
            .send()
            .await;
        assert_denied(
            "TerminateInstances of an untagged instance",
            refused("TerminateInstances", r),
            "UnauthorizedOperation",
            "ec2:TerminateInstances",
            &me,
        );
        let r = dc
            .ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(1)
            .send()
            .await;
        assert_denied(
            "CreateVolume without the autoheal:stack request tag",
            refused("CreateVolume untagged", r),
            "UnauthorizedOperation",
            "ec2:CreateVolume",
            &me,
        );
        // With the tag, the same create is allowed (the refusal above is the tag's).
        dc.ec2
            .create_volume()
            .availability_zone("ap-southeast-2a")
            .size(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .tags(Tag::builder().key(STACK_TAG).value("esc").build())
                    .build(),
            )
            .send()
            .await
            .expect("CreateVolume with the stack tag is allowed");
        // Nothing of the administrator's was touched.
        let v = admin
            .ec2
            .describe_volumes()
            .volume_ids(&volume)
            .send()
            .await
            .unwrap();
        assert_eq!(v.volumes().len(), 1);
        let users = admin.iam.list_users().send().await.unwrap();
        assert!(
            users.users().iter().all(|u| u.user_name() != "escalated"),
            "no user was created"
        );
    });
    let all = decisions(&log);
    let mine: Vec<Json> = all
        .iter()
        .filter(|d| d["principal"] == me.as_str())
        .cloned()
        .collect();
    print_summary(&me, &mine);
    let role: Vec<Json> = all
        .iter()
        .filter(|d| d["role"] == role_arn_of(&all))
        .cloned()
        .collect();
    print_summary("the escalated role", &role);
}

fn role_arn_of(all: &[Json]) -> Json {
    all.iter()
        .find(|d| {
            d["role"]
                .as_str()
                .is_some_and(|r| r.ends_with("/esc-attach"))
        })
        .map(|d| d["role"].clone())
        .unwrap_or(Json::Null)
}
