//! Configurations a user could get wrong, with every Terraform version: `terraform plan` must
//! fail with an error that points at the offending line of main.tf, before any AWS call.
//!
//! Every AWS endpoint (the provider's `endpoints` block and `AWS_ENDPOINT_URL`) points at a
//! local listener that counts connections; it must count none. The table runs on 4 threads
//! and reports every failing case at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use terraform_tests::output::errors;
use terraform_tests::{
    terraform_versions, ConnectionCounter, Terraform, TerraformBinary, PROVIDER_SOURCE,
};

const PARALLELISM: usize = 4;

/// Error summaries that Terraform itself produces for a configuration that does not even fit
/// the schema. A case that fails with one of these tests nothing about the provider's checks
/// (a misspelt attribute, a wrong type), so it counts as a broken case.
const CORE_ERRORS: &[&str] = &[
    "Unsupported argument",
    "Unsupported block type",
    "Missing required argument",
    "Incorrect attribute value type",
    "Invalid value for input variable",
    "Argument or block definition required",
    "Missing newline after argument",
    "Invalid reference",
    "Duplicate argument",
    "Plugin did not respond",
    "Failed to load plugin schemas",
    "Inconsistent dependency lock file",
    "Request cancelled",
];

/// One bad configuration.
struct Case {
    name: &'static str,
    /// Resource arguments (name, HCL expression); they replace the valid base arguments of the
    /// same name and add to them otherwise.
    resource: Vec<(&'static str, String)>,
    /// Extra blocks inside the resource.
    resource_blocks: &'static str,
    /// Replacements for single services in the provider's `endpoints` block.
    endpoints: Vec<(&'static str, &'static str)>,
    /// The line Terraform points at ("on main.tf line N") must contain one of these: the
    /// offending attribute.
    points_at: &'static [&'static str],
}

fn case(
    name: &'static str,
    resource: &[(&'static str, &str)],
    points_at: &'static [&'static str],
) -> Case {
    Case {
        name,
        resource: resource.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        resource_blocks: "",
        endpoints: Vec::new(),
        points_at,
    }
}

fn cases() -> Vec<Case> {
    let forty = format!("\"{}\"", "a".repeat(40));
    let topic = |n: usize| format!("\"arn:aws:sns:ap-southeast-2:123456789012:ops{n}\"");
    let one_topic = format!("[{}]", topic(1));
    let six_topics = format!("[{}]", (1..=6).map(topic).collect::<Vec<_>>().join(", "));
    let mut cases = vec![
        case(
            "vpc_cidr syntax",
            &[("vpc_cidr", r#""10.0.0/16""#)],
            &["vpc_cidr"],
        ),
        case(
            "subnet_cidr outside vpc_cidr",
            &[
                ("vpc_cidr", r#""10.0.0.0/16""#),
                ("subnet_cidr", r#""10.1.0.0/24""#),
            ],
            &["subnet_cidr", "vpc_cidr"],
        ),
        case(
            "subnet_cidr together with subnet_id",
            &[
                ("subnet_id", r#""subnet-0123456789abcdef0""#),
                ("subnet_cidr", r#""10.0.1.0/24""#),
            ],
            &["subnet_cidr", "subnet_id"],
        ),
        case("volume_size 0", &[("volume_size", "0")], &["volume_size"]),
        case(
            "gp2 with volume_iops",
            &[("volume_type", r#""gp2""#), ("volume_iops", "3000")],
            &["volume_iops", "volume_type"],
        ),
        case(
            "io1 without volume_iops",
            &[("volume_type", r#""io1""#)],
            &["volume_type"],
        ),
        case(
            "volume_throughput on gp2",
            &[("volume_type", r#""gp2""#), ("volume_throughput", "250")],
            &["volume_throughput", "volume_type"],
        ),
        case(
            "bad device_name",
            &[("device_name", r#""data-disk""#)],
            &["device_name"],
        ),
        case(
            "relative mount_point",
            &[("mount_point", r#""data""#)],
            &["mount_point"],
        ),
        case(
            "bad filesystem",
            &[("filesystem", r#""ntfs""#)],
            &["filesystem"],
        ),
        case(
            "availability_zone outside the region",
            &[("availability_zone", r#""us-east-1a""#)],
            &["availability_zone"],
        ),
        case(
            "name with bad characters",
            &[("name", r#""My_App!""#)],
            &["name"],
        ),
        case("name of 40 characters", &[("name", &forty)], &["name"]),
        case(
            "lifecycle_hook_timeout 10",
            &[("lifecycle_hook_timeout", "10")],
            &["lifecycle_hook_timeout"],
        ),
        case(
            "log_retention_days 2",
            &[("log_retention_days", "2")],
            &["log_retention_days"],
        ),
        // The error must point at the list element, not just the attribute: Terraform then
        // reports the element's own line.
        case(
            "ssh_ingress_cidrs element /33",
            &[(
                "ssh_ingress_cidrs",
                "[\n    \"203.0.113.0/24\",\n    \"10.0.0.1/33\",\n  ]",
            )],
            &["10.0.0.1/33"],
        ),
        case(
            "tag key aws:x",
            &[(
                "tags",
                "{\n    Environment = \"test\"\n    \"aws:x\"     = \"v\"\n  }",
            )],
            &["aws:x", "tags"],
        ),
        case(
            "volume_on_destroy keep",
            &[("volume_on_destroy", r#""keep""#)],
            &["volume_on_destroy"],
        ),
        case(
            "existing_volume_id with volume_snapshot_id",
            &[
                ("existing_volume_id", r#""vol-0123456789abcdef0""#),
                ("volume_snapshot_id", r#""snap-0123456789abcdef0""#),
            ],
            &["existing_volume_id", "volume_snapshot_id"],
        ),
        case(
            "alarm_actions with an SQS queue",
            &[(
                "alarm_actions",
                r#"["arn:aws:sqs:ap-southeast-2:123456789012:ops"]"#,
            )],
            &["alarm_actions"],
        ),
        case(
            "alarm_actions with 6 topics",
            &[("alarm_actions", &six_topics)],
            &["alarm_actions"],
        ),
        case(
            "alarm_no_in_service_minutes 0",
            &[
                ("alarm_actions", &one_topic),
                ("alarm_no_in_service_minutes", "0"),
            ],
            &["alarm_no_in_service_minutes"],
        ),
        case(
            "alarm_no_in_service_minutes 1441",
            &[
                ("alarm_actions", &one_topic),
                ("alarm_no_in_service_minutes", "1441"),
            ],
            &["alarm_no_in_service_minutes"],
        ),
        case(
            "snapshot_interval 10m",
            &[("snapshot_interval", "\"10m\"")],
            &["snapshot_interval"],
        ),
        case(
            "snapshot_interval in seconds",
            &[("snapshot_interval", "\"3601s\"")],
            &["snapshot_interval"],
        ),
        case(
            "snapshot_retention 0",
            &[("snapshot_interval", "\"1h\""), ("snapshot_retention", "0")],
            &["snapshot_retention"],
        ),
        case(
            "failover_zones with the home zone",
            &[
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2a"]"#),
            ],
            &["failover_zones"],
        ),
        case(
            "failover_zones without snapshot_interval",
            &[("failover_zones", r#"["ap-southeast-2b"]"#)],
            &["failover_zones"],
        ),
        case(
            "failover_detection_window 4m",
            &[
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2b"]"#),
                ("failover_detection_window", "\"4m\""),
            ],
            &["failover_detection_window"],
        ),
        case(
            "active_availability_zone naming a failover zone",
            &[
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2b"]"#),
                ("active_availability_zone", "\"ap-southeast-2b\""),
            ],
            &["active_availability_zone"],
        ),
        case(
            "active_availability_zone without failover_zones",
            &[("active_availability_zone", "\"ap-southeast-2a\"")],
            &["active_availability_zone"],
        ),
        case(
            "failover_zones with a persistent network interface",
            &[
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2b"]"#),
                ("persistent_network_interface", "true"),
            ],
            &["failover_zones"],
        ),
        case(
            "failover_subnet_ids without subnet_id",
            &[
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2b"]"#),
                (
                    "failover_subnet_ids",
                    r#"{ "ap-southeast-2b" = "subnet-0123456789abcdef0" }"#,
                ),
            ],
            &["failover_subnet_ids"],
        ),
        case(
            "failover_zones with subnet_id but no failover_subnet_ids",
            &[
                ("subnet_id", r#""subnet-0123456789abcdef0""#),
                ("snapshot_interval", "\"1h\""),
                ("failover_zones", r#"["ap-southeast-2b"]"#),
            ],
            &["failover_zones"],
        ),
    ];
    cases.push(Case {
        name: "timeouts.create soon",
        resource: Vec::new(),
        resource_blocks: "  timeouts {\n    create = \"soon\"\n  }\n",
        endpoints: Vec::new(),
        points_at: &["create"],
    });
    cases.push(Case {
        name: "endpoints.ec2 not a URL",
        resource: Vec::new(),
        resource_blocks: "",
        endpoints: vec![("ec2", "\"not a url\"")],
        points_at: &["ec2"],
    });
    cases
}

/// The valid configuration every case starts from.
const BASE_RESOURCE: &[(&str, &str)] = &[
    ("name", r#""demo-app""#),
    ("availability_zone", r#""ap-southeast-2a""#),
    ("ami", r#""ami-0720cb7af233b0529""#),
    ("instance_type", r#""t3.micro""#),
];

fn main_tf(case: &Case, counter: &ConnectionCounter) -> String {
    let mut args: Vec<(&str, String)> = BASE_RESOURCE
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    for (k, v) in &case.resource {
        match args.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => args.push((k, v.clone())),
        }
    }
    let mut tf = format!(
        "terraform {{\n  required_providers {{\n    autoheal = {{\n      source = \"{PROVIDER_SOURCE}\"\n    }}\n  }}\n}}\n\n\
         provider \"autoheal\" {{\n  region = \"ap-southeast-2\"\n\n{}}}\n\n\
         resource \"autoheal_instance\" \"app\" {{\n",
        counter.endpoints_block(&case.endpoints)
    );
    for (k, v) in &args {
        tf.push_str(&format!("  {k} = {v}\n"));
    }
    tf.push_str(case.resource_blocks);
    tf.push_str("}\n");
    tf
}

/// Runs one case; Err describes everything that is wrong with the outcome.
fn run_case(tf: &TerraformBinary, case: &Case) -> Result<(), String> {
    let counter = ConnectionCounter::start().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = main_tf(case, &counter);
    std::fs::write(dir.path().join("main.tf"), &config).map_err(|e| e.to_string())?;
    let terraform = Terraform::new(tf.options(dir.path()).with_envs(counter.aws_env()))
        .map_err(|e| format!("{e:#}"))?;
    terraform
        .init()
        .map_err(|e| format!("init failed: {e:#}"))?;

    let mut problems = Vec::new();
    match terraform.plan_expect_error() {
        Err(e) => problems.push(format!("plan did not fail: {e:#}")),
        Ok(plan) => {
            let output = plan.combined();
            let errs = errors(&output);
            if errs.is_empty() {
                problems.push("no \"Error:\" in the output".to_string());
            }
            let core: Vec<&str> = errs
                .iter()
                .map(|e| e.summary.as_str())
                .filter(|s| CORE_ERRORS.contains(s))
                .collect();
            if !core.is_empty() {
                problems.push(format!(
                    "Terraform itself rejected the configuration ({core:?}): the case does not \
                     reach the provider's validation"
                ));
            }
            let pointed = errs.iter().any(|e| {
                e.file.as_deref() == Some("main.tf")
                    && e.source_line
                        .as_deref()
                        .is_some_and(|l| case.points_at.iter().any(|a| l.contains(a)))
            });
            if !pointed {
                let shown: Vec<String> = errs
                    .iter()
                    .map(|e| match (&e.line, &e.source_line) {
                        (Some(n), Some(l)) => format!("{:?} at line {n}: {l}", e.summary),
                        _ => format!("{:?} without a source line", e.summary),
                    })
                    .collect();
                problems.push(format!(
                    "no error points at a line of main.tf containing one of {:?}; errors: {shown:?}",
                    case.points_at
                ));
            }
            if !problems.is_empty() {
                problems.push(format!("plan output:\n{}", output.trim_end()));
            }
        }
    }
    let calls = counter.connections();
    if calls != 0 {
        problems.push(format!(
            "{calls} connection(s) to the AWS endpoints, expected none: {:?}",
            counter.requests()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- main.tf ---\n{config}",
            problems.join("\n")
        ))
    }
}

/// The base configuration itself must plan cleanly, with no AWS call; otherwise every case
/// above could fail for the same, wrong, reason.
fn run_control(tf: &TerraformBinary) -> Result<(), String> {
    let control = Case {
        name: "control",
        resource: Vec::new(),
        resource_blocks: "",
        endpoints: Vec::new(),
        points_at: &[],
    };
    let counter = ConnectionCounter::start().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = main_tf(&control, &counter);
    std::fs::write(dir.path().join("main.tf"), &config).map_err(|e| e.to_string())?;
    let terraform = Terraform::new(tf.options(dir.path()).with_envs(counter.aws_env()))
        .map_err(|e| format!("{e:#}"))?;
    terraform
        .init()
        .map_err(|e| format!("init failed: {e:#}"))?;
    let plan = terraform
        .plan()
        .map_err(|e| format!("the valid base configuration does not plan: {e:#}\n{config}"))?;
    if plan.exit_code != 2 {
        return Err(format!("expected changes (exit 2): {plan}"));
    }
    let calls = counter.connections();
    if calls != 0 {
        return Err(format!(
            "planning the base configuration made {calls} AWS connection(s): {:?}",
            counter.requests()
        ));
    }
    Ok(())
}

/// The other side of "no connection was made": when the provider does call AWS, the calls
/// arrive at the counting listener. Without this, a provider that ignored the endpoint
/// settings would pass every "no AWS call" check above, since this machine cannot reach AWS.
#[test]
fn aws_calls_reach_the_counting_endpoint() {
    for tf in terraform_versions() {
        eprintln!("=== {}: apply against the counting endpoint", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let control = Case {
            name: "apply",
            resource: Vec::new(),
            resource_blocks: "",
            endpoints: Vec::new(),
            points_at: &[],
        };
        // No retries: the listener closes every connection, so each call fails at once.
        let config = main_tf(&control, &counter).replacen(
            "  region = \"ap-southeast-2\"\n",
            "  region      = \"ap-southeast-2\"\n  max_retries = 0\n",
            1,
        );
        assert!(config.contains("max_retries = 0"), "{config}");
        std::fs::write(dir.path().join("main.tf"), &config).unwrap();
        let mut terraform =
            Terraform::new(tf.options(dir.path()).with_envs(counter.aws_env())).unwrap();
        terraform.set_timeout(Duration::from_secs(300));
        terraform
            .init()
            .unwrap_or_else(|e| panic!("{}: init failed: {e:#}", tf.name));
        let apply = terraform.apply();
        assert!(
            apply.is_err(),
            "{}: apply cannot succeed against a listener that never answers: {:?}",
            tf.name,
            apply.map(|o| o.to_string())
        );
        let requests = counter.requests();
        eprintln!(
            "{}: the apply made {} connection(s): {requests:?}",
            tf.name,
            requests.len()
        );
        assert!(
            !requests.is_empty(),
            "{}: the apply made no connection to the endpoints in the provider configuration \
             and AWS_ENDPOINT_URL; the \"no AWS call\" checks would prove nothing.\n{:#}",
            tf.name,
            apply.unwrap_err()
        );
    }
}

enum Job<'a> {
    Control(&'a TerraformBinary),
    Case(&'a TerraformBinary, &'a Case),
}

impl Job<'_> {
    fn label(&self) -> String {
        match self {
            Job::Control(tf) => format!("{}: control (valid base configuration)", tf.name),
            Job::Case(tf, c) => format!("{}: {}", tf.name, c.name),
        }
    }

    fn run(&self) -> Result<(), String> {
        match self {
            Job::Control(tf) => run_control(tf),
            Job::Case(tf, c) => run_case(tf, c),
        }
    }
}

#[test]
fn bad_configurations_fail_at_plan_pointing_at_the_attribute_without_calling_aws() {
    let versions = terraform_versions();
    let cases = cases();
    assert!(
        cases.len() >= 18,
        "the table shrank to {} cases",
        cases.len()
    );
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let mut jobs = Vec::new();
    for tf in &versions {
        eprintln!("=== {}: {} bad configurations", tf.name, cases.len());
        jobs.push(Job::Control(tf));
        jobs.extend(cases.iter().map(|c| Job::Case(tf, c)));
    }

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLELISM.min(jobs.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let started = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(|| job.run())).unwrap_or_else(|panic| {
                    Err(format!(
                        "panicked: {}",
                        panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    ))
                });
                eprintln!(
                    "[{}] {} ({:.1}s)",
                    if result.is_ok() { "PASS" } else { "FAIL" },
                    job.label(),
                    started.elapsed().as_secs_f64()
                );
                results.lock().unwrap().push((i, result));
            });
        }
    });

    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    assert_eq!(results.len(), jobs.len(), "every job reported");
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(i, r)| {
            r.as_ref()
                .err()
                .map(|e| format!("### {}\n{e}", jobs[*i].label()))
        })
        .collect();
    eprintln!(
        "{} of {} bad-configuration runs passed",
        jobs.len() - failures.len(),
        jobs.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}

/// What is deployed is what was planned: a `handler_zip` file changed between `plan -out` and
/// the apply of that saved plan is refused before any AWS call, so nothing is made from bytes
/// nobody reviewed. Terraform plans again when it applies a saved plan, the provider's digest
/// of the file then differs from the saved one, and Terraform itself stops ("produced an
/// invalid new value for .handler_sha256"); if the file changes after that second plan, the
/// provider's own check at apply refuses it ("handler_zip: ... changed since the plan", unit
/// test in create.rs). Either refusal counts; the digests must be named.
#[test]
fn a_handler_zip_changed_after_the_plan_is_refused_before_any_aws_call() {
    for tf in terraform_versions() {
        let counter = ConnectionCounter::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let zip = dir.path().join("handler.zip");
        std::fs::write(&zip, b"PK the planned handler").unwrap();
        let case = Case {
            name: "changed zip",
            resource: vec![("handler_zip", format!("{:?}", zip.display().to_string()))],
            resource_blocks: "",
            endpoints: Vec::new(),
            points_at: &[],
        };
        std::fs::write(dir.path().join("main.tf"), main_tf(&case, &counter)).unwrap();
        let terraform =
            Terraform::new(tf.options(dir.path()).with_envs(counter.aws_env())).unwrap();
        terraform.init().unwrap();
        let plan = terraform
            .run(
                &["plan", "-input=false", "-no-color", "-out=saved.tfplan"],
                false,
            )
            .unwrap();
        assert_eq!(plan.exit_code, 0, "{}: plan: {plan}", tf.name);
        std::fs::write(&zip, b"PK other bytes").unwrap();
        let apply = terraform
            .run(
                &["apply", "-input=false", "-no-color", "saved.tfplan"],
                false,
            )
            .unwrap();
        let text = apply.combined().replace('\n', " ");
        assert_eq!(apply.exit_code, 1, "{}: apply: {apply}", tf.name);
        let ours = text.contains("handler_zip:") && text.contains("changed since the plan");
        let terraforms =
            text.contains(".handler_sha256") && text.contains("inconsistent final plan");
        assert!(
            ours || terraforms,
            "{}: the refusal names the changed handler: {text}",
            tf.name
        );
        assert_eq!(
            counter.connections(),
            0,
            "{}: no AWS call: {:?}",
            tf.name,
            counter.requests()
        );
    }
}
