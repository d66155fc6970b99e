//! One acceptance test's world: its own local AWS, SDK clients on it, a runtime to drive
//! them, and copies of `fixtures/stack` (one `autoheal_instance` per name in `var.names`,
//! every setting a variable) whose provider reaches that local AWS through
//! `AWS_ENDPOINT_URL`. Shared by the acceptance, crash-recovery and reliability suites.

use std::path::PathBuf;
use std::time::Duration;

use crate::local_aws::helpers::{address_status, group_instances, volume_status};
use crate::local_aws::{Clients, LocalAws, Options as AwsOptions, Profile};
use crate::sweeper::Sweeper;
use crate::{CommandOutput, Terraform, TerraformBinary};

/// How long one Terraform command may run unless a test says otherwise.
pub const DEFAULT_STACK_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The configuration the stack tests apply.
pub fn stack_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/stack")
}

pub struct World {
    pub aws: LocalAws,
    pub clients: Clients,
    pub rt: tokio::runtime::Runtime,
}

impl World {
    /// Starts a local AWS whose clock runs at `clock_scale` (0.02: a 300 s hook heartbeat
    /// timeout passes in 6 s).
    pub fn start(clock_scale: f64) -> World {
        World::start_with(AwsOptions {
            clock_scale,
            profile: Profile::Realistic,
            ..AwsOptions::default()
        })
    }

    /// Starts a local AWS with `options` (the stack tests' is [`World::start`]'s).
    pub fn start_with(options: AwsOptions) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let aws = LocalAws::start_with(options).expect("starting the local AWS");
        let clients = rt.block_on(aws.clients());
        World { aws, clients, rt }
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A copy of the fixture with one `autoheal_instance` per name, initialised.
    pub fn terraform(&self, tf: &TerraformBinary, names: &[&str]) -> Terraform {
        self.terraform_with(tf, names, &[], DEFAULT_STACK_COMMAND_TIMEOUT)
    }

    /// Like [`World::terraform`], with `env` added to (and overriding) the environment
    /// Terraform and the provider run with, and `timeout` per command.
    pub fn terraform_with(
        &self,
        tf: &TerraformBinary,
        names: &[&str],
        env: &[(&str, String)],
        timeout: Duration,
    ) -> Terraform {
        let names = format!(
            "[{}]",
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut options = tf
            .options(stack_fixture())
            .with_var("names", names)
            .with_env("AWS_ENDPOINT_URL", self.aws.endpoint())
            .with_env("AWS_REGION", self.aws.region())
            .with_env("AWS_ACCESS_KEY_ID", "test")
            .with_env("AWS_SECRET_ACCESS_KEY", "test")
            .with_env("AWS_EC2_METADATA_DISABLED", "true");
        for (name, value) in env {
            options = options.with_env(*name, value.clone());
        }
        let mut t = Terraform::new(options).expect("a copy of the stack fixture");
        t.set_timeout(timeout);
        t.init()
            .unwrap_or_else(|e| panic!("{}: init: {e:#}", tf.name));
        t
    }

    /// Panics listing what is left of stack `name`; with `except_final_snapshot`, exactly its
    /// final snapshot must be left, and its id is returned.
    pub fn sweep(&self, name: &str, except_final_snapshot: bool) -> Option<String> {
        self.block(
            Sweeper::for_stack(&self.clients, name).assert_nothing_left(except_final_snapshot),
        )
    }
}

/// The instance serving stack `name` (`stack`: its entry of the fixture's `stacks` output),
/// when its group has exactly one instance, InService, with the data volume attached and the
/// Elastic IP associated; `None` otherwise, or when AWS cannot be asked (for polling).
pub async fn served_instance(
    clients: &Clients,
    name: &str,
    stack: &serde_json::Value,
) -> Option<String> {
    let id_of = |key: &str| {
        stack[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {stack}"))
            .to_string()
    };
    let (volume_id, allocation_id) = (id_of("volume_id"), id_of("allocation_id"));
    let group = format!("{name}-asg");
    let instances = group_instances(&clients.autoscaling, &group).await.ok()?;
    let serving: Vec<_> = instances
        .iter()
        .filter(|i| i.lifecycle_state == "InService")
        .collect();
    if serving.len() != 1 || instances.len() != 1 {
        return None;
    }
    let id = serving[0].id.clone();
    let v = volume_status(&clients.ec2, &volume_id).await.ok()?;
    let a = address_status(&clients.ec2, &allocation_id).await.ok()?;
    let ok = v
        .attachment
        .as_ref()
        .is_some_and(|x| x.instance_id == id && x.state == "attached")
        && a.instance_id.as_deref() == Some(id.as_str());
    ok.then_some(id)
}

/// `terraform apply -refresh-only`: the state (and the outputs) follow AWS.
pub fn refresh(t: &Terraform) {
    let out = t
        .run(
            &[
                "apply",
                "-refresh-only",
                "-auto-approve",
                "-no-color",
                "-input=false",
            ],
            true,
        )
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out}");
}

/// `terraform import` of the fixture's stack `name` into the fresh state of `imp`; its output.
pub fn import_output(imp: &Terraform, name: &str) -> CommandOutput {
    let mut args: Vec<String> = vec!["import".into(), "-no-color".into(), "-input=false".into()];
    args.extend(imp.var_args());
    args.extend([
        format!(r#"autoheal_instance.this["{name}"]"#),
        name.to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    imp.run(&args, false).unwrap()
}

/// [`import_output`], which must succeed.
pub fn import(imp: &Terraform, name: &str) {
    let out = import_output(imp, name);
    assert_eq!(out.exit_code, 0, "import: {out}");
}

/// The first resource's attributes in a `terraform show -json` output.
pub fn resource_values(show: &CommandOutput) -> serde_json::Map<String, serde_json::Value> {
    let j: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    j["values"]["root_module"]["resources"][0]["values"]
        .as_object()
        .unwrap_or_else(|| panic!("no resource in the state: {}", show.stdout))
        .clone()
}

/// After an import, the only difference a plan may show is the configuration-only `timeouts`
/// block. Only the planned actions count: the refresh's "Objects have changed outside of
/// Terraform" note above them may show `last_snapshot_id`/`last_snapshot_time` moving when a
/// scheduled snapshot completes between the import and the plan (failed failover_network
/// once, at a 13-minute schedule on the scaled clock: every 7.8 real seconds).
pub fn assert_import_plans_no_change(imp: &Terraform) {
    let plan = imp.plan().unwrap();
    let actions = plan
        .stdout
        .split_once("will perform the following actions")
        .map_or("", |(_, rest)| rest);
    let body = actions.split("Plan:").next().unwrap_or_default();
    let changes: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(['+', '-', '~']))
        .filter(|l| !l.starts_with("~ resource") && !l.starts_with("~ update in-place"))
        .collect();
    assert!(
        changes.iter().all(|l| l.starts_with("+ timeouts")),
        "after import the plan may only add the timeouts block: {changes:?}\n{plan}"
    );
}
