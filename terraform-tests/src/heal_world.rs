//! One local AWS with one stack, built through the SDK, whose function is the real attachment
//! Lambda: the `bootstrap` tools/build-handler zips, deployed as a `provided.al2023` function
//! with the environment the provider gives it ([`Stack::handler_env`]). The local AWS runs it
//! behind its Runtime API emulator whenever the group's launch hook emits its EventBridge
//! event (natively, or an arm64 function through qemu: [`crate::aarch64`]).
//!
//! tests/handler_heal.rs (the x86_64 handler through every awkward state of a heal) and
//! tests/arm64.rs (the arm64 handler) drive it: [`Heal`] starts the server and the stack, and
//! waits for and checks what an operator would look at (lifecycle states, where the volume and
//! the address are, the invocation records, the function's logs).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::local_aws::control::{Call, Invocation};
use crate::local_aws::helpers::{
    address_status, emf_records, function_logs, group_instances, volume_status, wait_for,
    wait_for_single_instance, wait_until, Check, GroupInstance, Stack, StackBuilder, POLL_INTERVAL,
};
use crate::local_aws::{Clients, LocalAws, Options};

/// The device the tests configure (the provider's default is the same kind of name).
pub const DEVICE: &str = "/dev/sdf";
/// How long any one step of a heal may take before a test fails.
pub const STEP: Duration = Duration::from_secs(20);

/// The zip tools/build-handler made for x86_64, or `$AUTOHEAL_HANDLER_ZIP`; panics, saying
/// how to build it, when there is none.
pub fn handler_zip() -> Vec<u8> {
    let path = handler_zip_path("x86_64");
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        Ok(_) => panic!(
            "the handler zip {} is empty: rebuild it with tools/build-handler",
            path.display()
        ),
        Err(e) => panic!(
            "cannot read the handler zip {} ({e}): build it with tools/build-handler, or set \
             AUTOHEAL_HANDLER_ZIP to a provided.al2023 zip of the handler",
            path.display()
        ),
    }
}

/// Where the handler's zip for `architecture` (`x86_64`, `arm64`) is:
/// `$AUTOHEAL_HANDLER_ZIP` (x86_64) or `$AUTOHEAL_HANDLER_ZIP_ARM64` (arm64) when set, else
/// `<target>/handler/<architecture>/bootstrap.zip`, where tools/build-handler puts it (`--arch
/// arm64` or `all` for arm64). Those variables are also what the provider's build embeds:
/// setting one for `cargo test` makes cargo rebuild the provider with that zip.
pub fn handler_zip_path(architecture: &str) -> PathBuf {
    let variable = match architecture {
        "arm64" => "AUTOHEAL_HANDLER_ZIP_ARM64",
        _ => "AUTOHEAL_HANDLER_ZIP",
    };
    std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::workspace_root().join("target"));
            target
                .join("handler")
                .join(architecture)
                .join("bootstrap.zip")
        })
}

/// One local AWS with one stack whose function is the real handler, configured for the
/// stack's volume, address, group and hook. The group starts empty.
pub struct Heal {
    pub aws: LocalAws,
    pub clients: Clients,
    pub stack: Stack,
}

impl Heal {
    pub async fn new(name: &str, configure: impl FnOnce(StackBuilder) -> StackBuilder) -> Heal {
        Heal::with_env(name, &[], configure).await
    }

    /// `extra_env` is added to the handler's five settings.
    pub async fn with_env(
        name: &str,
        extra_env: &[(&str, &str)],
        configure: impl FnOnce(StackBuilder) -> StackBuilder,
    ) -> Heal {
        Heal::with_clock(name, Options::default().clock_scale, extra_env, configure).await
    }

    /// A local AWS whose clock runs at `clock_scale`.
    pub async fn with_clock(
        name: &str,
        clock_scale: f64,
        extra_env: &[(&str, &str)],
        configure: impl FnOnce(StackBuilder) -> StackBuilder,
    ) -> Heal {
        let options = Options {
            clock_scale,
            ..Options::default()
        };
        Heal::start(name, options, handler_zip(), extra_env, configure).await
    }

    /// A local AWS started with `options` whose stack's function runs `zip` (the function's
    /// architecture, when not x86_64, is for `configure` to set).
    pub async fn start(
        name: &str,
        options: Options,
        zip: Vec<u8>,
        extra_env: &[(&str, &str)],
        configure: impl FnOnce(StackBuilder) -> StackBuilder,
    ) -> Heal {
        let aws = LocalAws::start_with(options).expect("starting the local AWS");
        let clients = aws.clients().await;
        let stack = create_stack(&clients, name, zip, extra_env, configure).await;
        Heal {
            aws,
            clients,
            stack,
        }
    }

    pub fn control(&self) -> &crate::local_aws::Control {
        self.aws.control()
    }

    pub async fn scale_to(&self, n: i32) {
        self.stack.scale_to(&self.clients, n).await.unwrap();
    }

    /// Scales 0 -> 1 and waits for the instance to be healed into service.
    pub async fn first_launch(&self) -> GroupInstance {
        self.scale_to(1).await;
        wait_for_single_instance(
            &self.clients.autoscaling,
            &self.stack.group_name,
            "InService",
            None,
            STEP,
        )
        .await
        .unwrap()
    }

    /// Waits for the group's one instance to appear (any lifecycle state but gone).
    pub async fn wait_launched(&self, not: Option<&str>) -> GroupInstance {
        wait_until(
            "the group to launch an instance",
            STEP,
            POLL_INTERVAL,
            || async {
                let all =
                    group_instances(&self.clients.autoscaling, &self.stack.group_name).await?;
                Ok(match all.into_iter().find(|i| Some(i.id.as_str()) != not) {
                    Some(i) => Check::Done(i),
                    None => Check::NotYet("no new instance".into()),
                })
            },
        )
        .await
        .unwrap()
    }

    /// The first finished attempt of the function whose event (or response) concerns
    /// `instance` and that `accept`s.
    pub async fn invocation(
        &self,
        instance: &str,
        accept: impl Fn(&Invocation) -> bool,
    ) -> Invocation {
        let events = || async { self.control().events().await };
        wait_for(&format!("an invocation for {instance}"), || async {
            let event_ids: Vec<String> = events()
                .await?
                .into_iter()
                .filter(|e| e.detail("EC2InstanceId") == Some(instance))
                .map(|e| e.id)
                .collect();
            let all = self
                .control()
                .invocations_of(&self.stack.function_name)
                .await?;
            let seen = format!(
                "{:?}",
                all.iter()
                    .map(|i| (i.attempt, i.outcome))
                    .collect::<Vec<_>>()
            );
            Ok(
                match all.into_iter().find(|i| {
                    let ours = i.event_id.as_ref().is_some_and(|id| event_ids.contains(id))
                        || i.response_json()
                            .is_some_and(|r| r["instance"] == json!(instance));
                    ours && accept(i)
                }) {
                    Some(i) => Check::Done(i),
                    None => Check::NotYet(format!("attempts so far: {seen}")),
                },
            )
        })
        .await
        .unwrap()
    }

    /// The launch event the hook emitted for `instance`.
    pub async fn launch_event(&self, instance: &str) -> Value {
        wait_for(&format!("the launch event of {instance}"), || async {
            let events = self.control().events().await?;
            Ok(
                match events
                    .into_iter()
                    .find(|e| e.detail("EC2InstanceId") == Some(instance))
                {
                    Some(e) => Check::Done(e.event),
                    None => Check::NotYet("not emitted yet".into()),
                },
            )
        })
        .await
        .unwrap()
    }

    pub async fn calls_of(&self, operation: &str) -> Vec<Call> {
        self.control().calls_of(operation).await.unwrap()
    }

    /// The function's log lines so far.
    pub async fn logs(&self) -> Vec<String> {
        function_logs(&self.clients.logs, &self.stack.function_name)
            .await
            .unwrap()
    }

    /// The EMF record of the invocation `request_id` (each invocation writes exactly one).
    pub async fn emf_of(&self, request_id: &str) -> Value {
        let lines = self.logs().await;
        let records: Vec<Value> = emf_records(&lines)
            .into_iter()
            .filter(|r| r["requestId"] == json!(request_id))
            .collect();
        assert_eq!(
            records.len(),
            1,
            "one EMF line for request {request_id}:\n{}",
            lines.join("\n")
        );
        records.into_iter().next().unwrap()
    }

    pub async fn assert_volume_attached_to(&self, instance: &str) {
        let v = volume_status(&self.clients.ec2, &self.stack.volume_id)
            .await
            .unwrap();
        assert_eq!(v.state, "in-use", "{v}");
        let a = v.attachment.as_ref().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(
            (a.instance_id.as_str(), a.state.as_str(), a.device.as_str()),
            (instance, "attached", DEVICE),
            "{v}"
        );
    }

    pub async fn assert_address_on(&self, instance: &str) -> String {
        let a = address_status(&self.clients.ec2, &self.stack.allocation_id)
            .await
            .unwrap();
        assert_eq!(a.instance_id.as_deref(), Some(instance), "{a:?}");
        assert_eq!(a.public_ip, self.stack.public_ip, "{a:?}");
        a.association_id
            .expect("an associated address has an association id")
    }
}

/// A stack called `name` in the server of `clients` whose function runs `zip` with the
/// handler's settings for it (plus `extra_env`); long hook timeout, group empty.
pub async fn create_stack(
    clients: &Clients,
    name: &str,
    zip: Vec<u8>,
    extra_env: &[(&str, &str)],
    configure: impl FnOnce(StackBuilder) -> StackBuilder,
) -> Stack {
    let builder = Stack::builder(name, zip)
        // Long enough that the hook never times out during a test (36 s real at 0.01).
        .heartbeat_timeout(3600)
        .desired_capacity(0);
    let stack = configure(builder)
        .create(clients)
        .await
        .unwrap_or_else(|e| panic!("creating stack {name}: {e:#}"));
    let mut env = stack.handler_env(DEVICE);
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    stack.set_function_env(clients, &env).await.unwrap();
    stack
}

/// The handler's response to an attempt (also printed: it says what each step took).
pub fn response(invocation: &Invocation) -> Value {
    let r = invocation
        .response_json()
        .unwrap_or_else(|| panic!("a JSON response in {invocation:?}"));
    eprintln!(
        "attempt {} of request {}: {:.0} ms, response {r}",
        invocation.attempt, invocation.request_id, invocation.duration_ms
    );
    r
}
