//! The provider killed (SIGKILL) in the middle of `apply` and of `destroy`, at chosen points:
//! the next `apply` adopts what the interrupted create made (every object of an unfinished
//! create carries `autoheal:creating`) and converges to one stack, no object twice; the next
//! `destroy` finishes the job and the sweeper finds nothing but the final snapshot. Killed in
//! the middle of an update (tags and a rolling replacement), the next `apply` finishes it: the
//! instance serving runs the configured type, carries the configured tags, and the plan is
//! empty.
//!
//! A point is an AWS operation: the local AWS holds the first call of it for a moment (a
//! latency fault), the test sees the fault fire and kills the provider process serving this
//! test's Terraform (found by its AWS_ENDPOINT_URL), so the call completes with nobody left to
//! hear the answer: the hardest case, an object made but never recorded. Terraform saves no
//! state for a create whose provider died.
//!
//! Also the lost-response matrix: every create and mutating call of create, update and destroy
//! has its answer lost once (the call takes effect; the connection is reset before the answer)
//! and each command still succeeds with one of every object and nothing orphaned.

use std::time::{Duration, Instant};

use serde_json::Value as Json;
use terraform_tests::local_aws::control::Fault;
use terraform_tests::local_aws::helpers::{
    address_status, function_log_group, group_instances, volume_status, wait_until, Check,
};
use terraform_tests::stack_world::{self, served_instance, DEFAULT_STACK_COMMAND_TIMEOUT};
use terraform_tests::sweeper::Sweeper;
use terraform_tests::{terraform_versions, Terraform, TerraformBinary};

/// How long the local AWS holds the call the provider dies in.
const HOLD_MS: u64 = 1500;

/// The stack tests' world, with the crash points.
struct World(stack_world::World);

impl std::ops::Deref for World {
    type Target = stack_world::World;
    fn deref(&self) -> &stack_world::World {
        &self.0
    }
}

impl World {
    fn start() -> World {
        World(stack_world::World::start(0.02))
    }

    /// The fixture for stack `name`; with `log_dir`, Terraform's and the provider's debug
    /// logs go to `log_dir/name.log`.
    fn terraform(&self, tf: &TerraformBinary, name: &str, log_dir: Option<&str>) -> Terraform {
        let env = match log_dir {
            Some(dir) => vec![
                ("TF_LOG", "debug".to_string()),
                ("TF_LOG_PATH", format!("{dir}/{name}.log")),
            ],
            None => Vec::new(),
        };
        self.terraform_with(tf, &[name], &env, DEFAULT_STACK_COMMAND_TIMEOUT)
    }

    /// Runs `terraform ARGS` with the provider killed during the first call of `operation`.
    /// Returns Terraform's output; panics if the point was never reached.
    /// Runs `args` and kills the provider inside the first call of `operation`, or of the
    /// call `Operation[Param=Value]` names (one request parameter must match).
    fn run_killed_at(&self, t: &Terraform, args: &[&str], operation: &str) -> String {
        let control = self.aws.control();
        let fault = match operation.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((op, matching)) => {
                let (param, value) = matching.split_once('=').expect("Operation[Param=Value]");
                Fault::latency(op, HOLD_MS).matching(param, value)
            }
            None => Fault::latency(operation, HOLD_MS),
        };
        let rule = self.block(control.add_fault(&fault.count(1))).unwrap();
        let endpoint = self.aws.endpoint().to_string();
        let killed = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                // Until the fault fires, then kill; Terraform's run ends either way.
                let deadline = Instant::now() + Duration::from_secs(240);
                while Instant::now() < deadline {
                    let fired = self
                        .block(control.faults())
                        .unwrap_or_default()
                        .iter()
                        .any(|f| f.id == rule && f.fired > 0);
                    if fired {
                        return kill_providers_using(&endpoint);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                0
            });
            let out = t.run(args, true).unwrap();
            (watcher.join().unwrap(), out)
        });
        let (killed, out) = killed;
        // The held call completes on the server: let it, then lift the fault.
        std::thread::sleep(Duration::from_millis(HOLD_MS + 500));
        self.block(control.clear_faults()).unwrap();
        assert!(
            killed > 0,
            "{operation}: the point was never reached (no provider killed): {out}"
        );
        assert_ne!(
            out.exit_code, 0,
            "{operation}: Terraform must fail when its provider dies: {out}"
        );
        out.combined()
    }

    /// Exactly one of each object of stack `name` (nothing twice), none still marked as
    /// being created, and the instance served.
    fn assert_one_stack(&self, name: &str, stack: &Json, point: &str) {
        let c = &self.clients;
        self.block(async {
            let tagged = |key: &str, value: &str| {
                aws_sdk_ec2::types::Filter::builder()
                    .name(format!("tag:{key}"))
                    .values(value)
                    .build()
            };
            let vols = c
                .ec2
                .describe_volumes()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(vols.volumes().len(), 1, "{point}: one volume: {vols:?}");
            let vpcs = c
                .ec2
                .describe_vpcs()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(vpcs.vpcs().len(), 1, "{point}: one VPC: {vpcs:?}");
            let subnets = c
                .ec2
                .describe_subnets()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(subnets.subnets().len(), 1, "{point}: one subnet");
            let igws = c
                .ec2
                .describe_internet_gateways()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(igws.internet_gateways().len(), 1, "{point}: one gateway");
            let sgs = c
                .ec2
                .describe_security_groups()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(
                sgs.security_groups().len(),
                1,
                "{point}: one security group"
            );
            let addrs = c
                .ec2
                .describe_addresses()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(addrs.addresses().len(), 1, "{point}: one address");
            let lts = c
                .ec2
                .describe_launch_templates()
                .filters(tagged("autoheal:stack", name))
                .send()
                .await
                .unwrap();
            assert_eq!(lts.launch_templates().len(), 1, "{point}: one template");
            let marked = c
                .ec2
                .describe_tags()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("key")
                        .values("autoheal:creating")
                        .build(),
                )
                .send()
                .await
                .unwrap();
            assert!(
                marked.tags().is_empty(),
                "{point}: the finished stack is unmarked: {:?}",
                marked.tags()
            );
            let group = format!("{name}-asg");
            let g = c
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&group)
                .send()
                .await
                .unwrap();
            let g = &g.auto_scaling_groups()[0];
            assert!(
                !g.tags()
                    .iter()
                    .any(|t| t.key() == Some("autoheal:creating")),
                "{point}: group unmarked"
            );
            // The log group's tags, by the ARN CloudWatch Logs gives it (the provider builds
            // that ARN itself when it unmarks).
            let logs = function_log_group(&format!("{name}-attach"));
            let found = c
                .logs
                .describe_log_groups()
                .log_group_name_prefix(&logs)
                .send()
                .await
                .unwrap();
            let arn = found
                .log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(logs.as_str()))
                .and_then(|g| g.log_group_arn())
                .unwrap_or_else(|| panic!("{point}: log group {logs}: {found:?}"))
                .to_string();
            let tags = c
                .logs
                .list_tags_for_resource()
                .resource_arn(&arn)
                .send()
                .await
                .unwrap();
            let tags = tags.tags().cloned().unwrap_or_default();
            assert!(
                tags.get("autoheal:stack").map(String::as_str) == Some(name)
                    && !tags.contains_key("autoheal:creating"),
                "{point}: log group tagged and unmarked: {tags:?}"
            );
            let instances = group_instances(&c.autoscaling, &group).await.unwrap();
            let serving: Vec<_> = instances
                .iter()
                .filter(|i| i.lifecycle_state == "InService")
                .collect();
            assert_eq!(serving.len(), 1, "{point}: one instance: {instances:?}");
            let v = volume_status(&c.ec2, stack["volume_id"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(
                v.attachment.as_ref().map(|a| a.instance_id.as_str()),
                Some(serving[0].id.as_str()),
                "{point}: volume on the instance"
            );
            let a = address_status(&c.ec2, stack["allocation_id"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(
                a.instance_id.as_deref(),
                Some(serving[0].id.as_str()),
                "{point}: address on the instance"
            );
        });
    }
}

/// Waits (bounded) until stack `name` is served (one instance InService with the data volume
/// and the address): after an interrupted rolling replacement the heal path may still be
/// finishing when a no-op apply returns.
fn wait_until_served(world: &World, name: &str, stack: &Json) {
    world
        .block(wait_until(
            &format!("{name}: one instance served"),
            Duration::from_secs(120),
            Duration::from_millis(200),
            || async {
                Ok(match served_instance(&world.clients, name, stack).await {
                    Some(id) => Check::Done(id),
                    None => Check::NotYet("not served yet".into()),
                })
            },
        ))
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The type and tags of the instance serving stack `name`.
fn serving_instance(world: &World, name: &str) -> (String, Vec<(String, String)>) {
    world.block(async {
        let instances = group_instances(&world.clients.autoscaling, &format!("{name}-asg"))
            .await
            .unwrap();
        let id = instances
            .iter()
            .find(|i| i.lifecycle_state == "InService")
            .map(|i| i.id.clone())
            .expect("an instance in service");
        let out = world
            .clients
            .ec2
            .describe_instances()
            .instance_ids(&id)
            .send()
            .await
            .unwrap();
        let i = &out.reservations()[0].instances()[0];
        let tags = i
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        (
            i.instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            tags,
        )
    })
}

/// SIGKILLs every `terraform-provider-autoheal*` process whose environment points AWS at
/// `endpoint` (this test's local AWS: other tests' providers are left alone). Returns how many.
fn kill_providers_using(endpoint: &str) -> usize {
    let wanted = format!("AWS_ENDPOINT_URL={endpoint}");
    let mut killed = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        // comm is cut at 15 bytes: "terraform-provi".
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let is_provider = exe.file_name().is_some_and(|n| {
            n.to_string_lossy()
                .starts_with("terraform-provider-autoheal")
        });
        if !is_provider || !comm.starts_with("terraform-prov") {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let ours = environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes());
        if ours {
            // SAFETY: kill(2) with a pid read from /proc; no memory is touched.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                eprintln!("[crash] SIGKILL provider pid {pid}");
                killed += 1;
            }
        }
    }
    killed
}

fn newest(tf_versions: &[TerraformBinary]) -> TerraformBinary {
    tf_versions.last().cloned().expect("a Terraform")
}

const APPLY: &[&str] = &["apply", "-no-color", "-input=false", "-auto-approve"];
const DESTROY: &[&str] = &["destroy", "-no-color", "-input=false", "-auto-approve"];

/// For each (create point, destroy point): a fresh stack; apply killed at the create point;
/// apply again converges to one stack; destroy killed at the destroy point; destroy again
/// leaves nothing but the final snapshot.
fn crash_and_recover(points: &[(&str, &str)]) {
    let tf = newest(&terraform_versions());
    let world = World::start();
    // AUTOHEAL_CRASH_ONLY=Operation runs only the points of that create operation (to
    // reproduce one); AUTOHEAL_CRASH_TF_LOG=DIR keeps Terraform's and the provider's debug
    // logs there.
    let only = std::env::var("AUTOHEAL_CRASH_ONLY").ok();
    let log_dir = std::env::var("AUTOHEAL_CRASH_TF_LOG").ok();
    for (i, (create_point, destroy_point)) in points.iter().enumerate() {
        if only
            .as_deref()
            .is_some_and(|o| !create_point.starts_with(o))
        {
            continue;
        }
        let name = format!("crash{i}");
        eprintln!("=== {name}: kill during {create_point}, then during destroy's {destroy_point}");
        let t = world.terraform(&tf, &name, log_dir.as_deref());
        let _guard = t.destroy_guard();
        t.set_var("ssh_ingress_cidrs", r#"["203.0.113.0/24"]"#);
        world.run_killed_at(&t, APPLY, create_point);
        t.apply()
            .unwrap_or_else(|e| panic!("{create_point}: the apply after the crash: {e:#}"));
        let stacks = t.output("stacks").expect("output stacks");
        world.assert_one_stack(&name, &stacks[&name], create_point);
        t.plan()
            .map(|p| assert_eq!(p.exit_code, 0, "{create_point}: empty plan: {p}"))
            .unwrap();

        world.run_killed_at(&t, DESTROY, destroy_point);
        t.destroy()
            .unwrap_or_else(|e| panic!("{destroy_point}: the destroy after the crash: {e:#}"));
        world.block(Sweeper::for_stack(&world.clients, &name).assert_nothing_left(true));
    }
}

/// Every create step, first half: the network, the security group and step 1's other parts.
#[test]
fn killed_during_the_first_create_steps_and_destroy_converges() {
    crash_and_recover(&[
        ("CreateVpc", "UpdateAutoScalingGroup"),
        ("CreateSubnet", "DeleteAutoScalingGroup"),
        ("AttachInternetGateway", "DeleteFunction"),
        ("AssociateRouteTable", "DeleteRule"),
        ("AuthorizeSecurityGroupIngress", "DeleteRole"),
        ("CreateVolume", "DeleteVolume"),
        ("AllocateAddress", "ReleaseAddress"),
        ("CreateLogGroup", "DeleteLogGroup"),
        ("CreateRole", "DeleteLaunchTemplate"),
    ]);
}

/// Every create step, second half: what needs step 1, the group, the scale-up and the end.
#[test]
fn killed_during_the_last_create_steps_and_destroy_converges() {
    crash_and_recover(&[
        ("PutRule", "DeleteSecurityGroup"),
        ("PutRolePolicy", "DeleteVpc"),
        ("CreateLaunchTemplate", "DeleteSubnet"),
        ("CreateFunction", "DetachInternetGateway"),
        ("PutTargets", "RemoveTargets"),
        ("AddPermission", "DeleteRolePolicy"),
        ("CreateAutoScalingGroup", "DescribeVolumes"),
        ("UpdateAutoScalingGroup", "DeleteRouteTable"),
        // The volume's unused marker removed just before the scale-up (EC2's DeleteTags), and
        // the unmarking's first call (the group's, Auto Scaling's DeleteTags): killed there,
        // before the EC2 objects' unmarking that commits the create. (Killed after that commit
        // the stack is finished and owned by no state: the next create refuses it, "import
        // it", by design.)
        ("DeleteTags[Tag.1.Key=autoheal:unused]", "CreateSnapshot"),
        (
            "DeleteTags[Tags.member.1.ResourceType=auto-scaling-group]",
            "UpdateAutoScalingGroup",
        ),
    ]);
}

/// Killed inside updates that change the tags and the instance type (a rolling replacement):
/// before anything, with the new launch template version made but unrecorded, with the group
/// moved to it but the old instance still serving, and with the old instance terminating.
/// Each time the next apply finishes the update.
#[test]
fn killed_during_an_update_and_the_next_apply_finishes_it() {
    let tf = newest(&terraform_versions());
    let world = World::start();
    let name = "crashupd";
    let t = world.terraform(
        &tf,
        name,
        std::env::var("AUTOHEAL_CRASH_TF_LOG").ok().as_deref(),
    );
    let _guard = t.destroy_guard();
    t.apply().unwrap_or_else(|e| panic!("create: {e:#}"));
    let points = [
        "CreateTags",
        "CreateLaunchTemplateVersion",
        "UpdateAutoScalingGroup",
        "TerminateInstanceInAutoScalingGroup",
    ];
    for (round, point) in points.iter().enumerate() {
        let instance_type = if round % 2 == 0 {
            "t3.small"
        } else {
            "t3.micro"
        };
        eprintln!("=== round {round}: update to {instance_type}, killed during {point}");
        t.set_var("instance_type", instance_type);
        t.set_var("tags", format!("{{Round = \"{round}\"}}"));
        world.run_killed_at(&t, APPLY, point);
        t.apply()
            .unwrap_or_else(|e| panic!("{point}: the apply after the crash: {e:#}"));
        let stacks = t.output("stacks").expect("output stacks");
        let stack = &stacks[name];
        wait_until_served(&world, name, stack);
        world.assert_one_stack(name, stack, point);
        let (served_type, tags) = serving_instance(&world, name);
        assert_eq!(
            served_type, instance_type,
            "{point}: the serving instance's type"
        );
        assert!(
            tags.contains(&("Round".to_string(), round.to_string())),
            "{point}: the serving instance's tags: {tags:?}"
        );
        t.plan()
            .map(|p| assert_eq!(p.exit_code, 0, "{point}: empty plan: {p}"))
            .unwrap();
    }
    t.destroy().unwrap_or_else(|e| panic!("destroy: {e:#}"));
    world.block(Sweeper::for_stack(&world.clients, name).assert_nothing_left(true));
}

/// Loses the answer of the first call of each of `operations` while `args` runs (the call takes
/// effect; the connection is reset before the answer); the command must succeed, and every
/// fault must have fired, so no operation of the list went unexercised.
fn run_losing(world: &World, t: &Terraform, args: &[&str], operations: &[&str]) {
    let control = world.aws.control();
    world.block(async {
        for op in operations {
            control
                .add_fault(&Fault::lose_response(op).count(1))
                .await
                .unwrap();
        }
    });
    let out = t.run(args, true).unwrap();
    let faults = world.block(control.faults()).unwrap();
    world.block(control.clear_faults()).unwrap();
    assert_eq!(out.exit_code, 0, "{args:?} with lost answers: {out}");
    let unfired: Vec<&str> = faults
        .iter()
        .filter(|f| f.fired == 0)
        .map(|f| f.operation.as_str())
        .collect();
    assert!(
        unfired.is_empty(),
        "{args:?}: these operations were never called, so never lost: {unfired:?}"
    );
}

/// The lost-response matrix (issue "Real AWS is not kind"): the answer of every create and
/// mutating call is lost once, in the create, in an update (tags, instance type: a new
/// template version and a rolling replacement) and in the destroy. Each command succeeds on
/// its own, with one of every object (no duplicate made by a retry, no orphan left by a lost
/// answer), an empty plan after each, and nothing but the final snapshot after the destroy.
#[test]
fn lost_responses_on_every_mutating_call_make_no_duplicate_and_no_orphan() {
    let tf = newest(&terraform_versions());
    let world = World::start();
    let name = "lost";
    let t = world.terraform(
        &tf,
        name,
        std::env::var("AUTOHEAL_CRASH_TF_LOG").ok().as_deref(),
    );
    let _guard = t.destroy_guard();
    t.set_var("ssh_ingress_cidrs", r#"["203.0.113.0/24"]"#);
    let apply = &["apply", "-no-color", "-input=false", "-auto-approve"];
    run_losing(
        &world,
        &t,
        apply,
        &[
            "CreateVpc",
            "ModifyVpcAttribute",
            "CreateSubnet",
            "CreateInternetGateway",
            "AttachInternetGateway",
            "CreateRouteTable",
            "CreateRoute",
            "AssociateRouteTable",
            "CreateSecurityGroup",
            "AuthorizeSecurityGroupIngress",
            "CreateVolume",
            "AllocateAddress",
            "CreateLogGroup",
            "PutRetentionPolicy",
            "CreateRole",
            "PutRule",
            "PutRolePolicy",
            "CreateLaunchTemplate",
            "CreateFunction",
            "PutTargets",
            "AddPermission",
            "CreateAutoScalingGroup",
            "EnableMetricsCollection",
            "UpdateAutoScalingGroup",
            "DeleteTags",
            "UntagResource",
            "UntagRole",
        ],
    );
    let stacks = t.output("stacks").expect("output stacks");
    world.assert_one_stack(name, &stacks[name], "create with lost answers");
    t.plan()
        .map(|p| assert_eq!(p.exit_code, 0, "empty plan after the create: {p}"))
        .unwrap();

    t.set_var("instance_type", "t3.small");
    t.set_var("tags", r#"{Round = "lost"}"#);
    run_losing(
        &world,
        &t,
        apply,
        &[
            "CreateTags",
            "TagResource",
            "TagRole",
            "CreateLaunchTemplateVersion",
            "UpdateAutoScalingGroup",
            "TerminateInstanceInAutoScalingGroup",
        ],
    );
    let stacks = t.output("stacks").expect("output stacks");
    wait_until_served(&world, name, &stacks[name]);
    world.assert_one_stack(name, &stacks[name], "update with lost answers");
    let (served_type, _) = serving_instance(&world, name);
    assert_eq!(served_type, "t3.small", "the rolled instance's type");
    t.plan()
        .map(|p| assert_eq!(p.exit_code, 0, "empty plan after the update: {p}"))
        .unwrap();

    run_losing(
        &world,
        &t,
        &["destroy", "-no-color", "-input=false", "-auto-approve"],
        &[
            "UpdateAutoScalingGroup",
            "DeleteAutoScalingGroup",
            "CreateTags",
            "CreateSnapshot",
            "DeleteVolume",
            "ReleaseAddress",
            "RemoveTargets",
            "DeleteRule",
            "DeleteFunction",
            "DeleteLogGroup",
            "DeleteRolePolicy",
            "DeleteRole",
            "DeleteLaunchTemplate",
            "DeleteSecurityGroup",
            "DetachInternetGateway",
            "DeleteInternetGateway",
            "DisassociateRouteTable",
            "DeleteRouteTable",
            "DeleteSubnet",
            "DeleteVpc",
        ],
    );
    world.block(Sweeper::for_stack(&world.clients, name).assert_nothing_left(true));
}
