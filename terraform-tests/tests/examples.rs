//! The examples in examples/, with every Terraform version: `init` installs the provider
//! offline from the filesystem mirror, `validate` accepts them, and `plan` shows what a user
//! would see. No AWS account is involved: every AWS endpoint points at a local listener.

use serde_json::{json, Value};
use terraform_tests::output::planned_attribute;
use terraform_tests::saved_plan::{plan_saved, SavedPlan};
use terraform_tests::{
    example_dir, provider_version, terraform_versions, CommandOutput, ConnectionCounter, Options,
    Terraform, TerraformBinary, PROVIDER_SOURCE,
};

/// The example's options for this Terraform, with AWS pointed at `counter`.
fn options(tf: &TerraformBinary, example: &str, counter: &ConnectionCounter) -> Options {
    tf.options(example_dir(example))
        .with_envs(counter.aws_env())
}

/// `terraform init`, checking that the provider came from the mirror.
fn init(tf: &TerraformBinary, terraform: &Terraform) -> CommandOutput {
    let init = terraform
        .init()
        .unwrap_or_else(|e| panic!("{}: init failed: {e:#}", tf.name));
    let installed = format!("Installed {PROVIDER_SOURCE} v{}", provider_version());
    assert!(
        init.stdout.contains(&installed),
        "{}: init should report {installed:?} (from the filesystem mirror):\n{init}",
        tf.name
    );
    assert!(
        init.stdout
            .contains("Terraform has been successfully initialized!"),
        "{}: {init}",
        tf.name
    );
    init
}

/// Asserts that the plan shows `name = value` for the resource.
fn assert_planned(tf: &TerraformBinary, plan: &CommandOutput, name: &str, value: &str) {
    let got = planned_attribute(&plan.stdout, name);
    assert_eq!(
        got.as_deref(),
        Some(value),
        "{}: the plan should show {name} = {value}\n{plan}",
        tf.name
    );
}

/// `terraform validate` must accept the example.
fn validate(tf: &TerraformBinary, terraform: &Terraform) {
    let validate = terraform
        .validate()
        .unwrap_or_else(|e| panic!("{}: validate failed: {e:#}", tf.name));
    assert!(
        validate.stdout.contains("The configuration is valid"),
        "{}: {validate}",
        tf.name
    );
}

/// Asserts that the saved plan has `attribute = expected` for the resource at `address`.
fn assert_after(
    tf: &TerraformBinary,
    plan: &SavedPlan,
    address: &str,
    attribute: &str,
    expected: Value,
) {
    assert_eq!(
        plan.after(address, attribute),
        Some(&expected),
        "{}: {address}.{attribute} in the plan\n{}",
        tf.name,
        plan.plan
    );
}

/// Planning a new stack needs no AWS call: the counter must have seen none.
fn assert_no_aws_calls(tf: &TerraformBinary, counter: &ConnectionCounter, example: &str) {
    assert_eq!(
        counter.connections(),
        0,
        "{}: planning examples/{example} needs no AWS call, but these were made: {:?}",
        tf.name,
        counter.requests()
    );
}

#[test]
fn basic_example_inits_validates_and_plans_a_new_vpc() {
    for tf in terraform_versions() {
        eprintln!("=== {}: examples/basic", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(options(&tf, "basic", &counter)).unwrap();
        init(&tf, &terraform);
        let validate = terraform
            .validate()
            .unwrap_or_else(|e| panic!("{}: validate failed: {e:#}", tf.name));
        assert!(
            validate.stdout.contains("The configuration is valid"),
            "{}: {validate}",
            tf.name
        );

        let plan = terraform
            .plan()
            .unwrap_or_else(|e| panic!("{}: plan failed: {e:#}", tf.name));
        assert_eq!(
            plan.exit_code, 2,
            "{}: plan must find changes: {plan}",
            tf.name
        );
        assert!(
            plan.stdout
                .contains("# autoheal_instance.app will be created"),
            "{}: {plan}",
            tf.name
        );
        assert!(
            plan.stdout
                .contains("Plan: 1 to add, 0 to change, 0 to destroy."),
            "{}: {plan}",
            tf.name
        );
        // What the user wrote.
        assert_planned(&tf, &plan, "name", "\"demo-app\"");
        assert_planned(&tf, &plan, "availability_zone", "\"ap-southeast-2a\"");
        assert_planned(&tf, &plan, "ami", "\"ami-0720cb7af233b0529\"");
        assert_planned(&tf, &plan, "instance_type", "\"t3.micro\"");
        // The provider's defaults, filled in at plan time so the user sees them.
        assert_planned(&tf, &plan, "volume_type", "\"gp3\"");
        assert_planned(&tf, &plan, "vpc_cidr", "\"10.0.0.0/16\"");
        assert_planned(&tf, &plan, "subnet_cidr", "\"10.0.1.0/24\"");
        // IDs that only AWS can tell.
        for computed in [
            "vpc_id",
            "security_group_id",
            "volume_id",
            "allocation_id",
            "public_ip",
            "instance_id",
        ] {
            assert_planned(&tf, &plan, computed, "(known after apply)");
        }
        assert!(
            plan.stdout.contains("Changes to Outputs:"),
            "{}: {plan}",
            tf.name
        );
        let planning_calls = counter.connections();
        eprintln!(
            "{}: planning examples/basic made {planning_calls} AWS connection(s)",
            tf.name
        );
        assert_eq!(
            planning_calls,
            0,
            "{}: planning a new instance needs no AWS call, but these were made: {:?}",
            tf.name,
            counter.requests()
        );
    }
}

#[test]
fn existing_subnet_example_plans_with_the_subnet_and_no_cidrs() {
    for tf in terraform_versions() {
        eprintln!("=== {}: examples/existing-subnet", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(
            options(&tf, "existing-subnet", &counter)
                .with_var("subnet_id", "subnet-0123456789abcdef0"),
        )
        .unwrap();
        init(&tf, &terraform);
        terraform
            .validate()
            .unwrap_or_else(|e| panic!("{}: validate failed: {e:#}", tf.name));
        let plan = terraform
            .plan()
            .unwrap_or_else(|e| panic!("{}: plan failed: {e:#}", tf.name));
        assert_eq!(
            plan.exit_code, 2,
            "{}: plan must find changes: {plan}",
            tf.name
        );
        assert!(
            plan.stdout
                .contains("Plan: 1 to add, 0 to change, 0 to destroy."),
            "{}: {plan}",
            tf.name
        );
        assert_planned(&tf, &plan, "subnet_id", "\"subnet-0123456789abcdef0\"");
        assert_planned(&tf, &plan, "volume_size", "20");
        assert_planned(&tf, &plan, "vpc_id", "(known after apply)");
        // In someone else's subnet the provider creates no network, so the CIDR defaults
        // for a new VPC must not appear.
        for default_cidr in ["\"10.0.0.0/16\"", "\"10.0.1.0/24\""] {
            assert!(
                !plan.stdout.contains(default_cidr),
                "{}: with subnet_id the plan should not show the new-VPC default {default_cidr}:\n{plan}",
                tf.name
            );
        }
    }
}

#[test]
fn existing_subnet_example_requires_the_subnet_id() {
    for tf in terraform_versions() {
        eprintln!(
            "=== {}: examples/existing-subnet without subnet_id",
            tf.name
        );
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(options(&tf, "existing-subnet", &counter)).unwrap();
        init(&tf, &terraform);
        let plan = terraform
            .plan_expect_error()
            .unwrap_or_else(|e| panic!("{}: plan without subnet_id must fail: {e:#}", tf.name));
        assert!(
            plan.combined().contains("No value for required variable"),
            "{}: {plan}",
            tf.name
        );
        assert!(plan.combined().contains("subnet_id"), "{}: {plan}", tf.name);
    }
}

#[test]
fn for_each_example_plans_one_stack_per_key() {
    let keys = ["billing", "ledger", "reports"];
    for tf in terraform_versions() {
        eprintln!("=== {}: examples/for-each", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(options(&tf, "for-each", &counter)).unwrap();
        init(&tf, &terraform);
        validate(&tf, &terraform);
        let plan = plan_saved(&terraform).unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
        assert!(
            plan.plan
                .stdout
                .contains("Plan: 3 to add, 0 to change, 0 to destroy."),
            "{}: {}",
            tf.name,
            plan.plan
        );
        let mut addresses = plan.addresses();
        addresses.sort_unstable();
        let expected: Vec<String> = keys
            .iter()
            .map(|k| format!("autoheal_instance.app[\"{k}\"]"))
            .collect();
        assert_eq!(addresses, expected, "{}: {}", tf.name, plan.plan);

        // Each key's own values from the map, and a stack name of its own.
        let per_key = [
            ("billing", "ap-southeast-2a", "t3.micro", 10),
            ("ledger", "ap-southeast-2b", "t3.small", 20),
            ("reports", "ap-southeast-2c", "t3.micro", 50),
        ];
        for (key, zone, instance_type, volume_size) in per_key {
            let address = format!("autoheal_instance.app[\"{key}\"]");
            assert_after(&tf, &plan, &address, "name", json!(format!("demo-{key}")));
            assert_after(&tf, &plan, &address, "availability_zone", json!(zone));
            assert_after(&tf, &plan, &address, "instance_type", json!(instance_type));
            assert_after(&tf, &plan, &address, "volume_size", json!(volume_size));
            assert_after(
                &tf,
                &plan,
                &address,
                "autoscaling_group_name",
                json!(format!("demo-{key}-asg")),
            );
            assert_after(
                &tf,
                &plan,
                &address,
                "tags",
                json!({"Application": key, "Environment": "demo"}),
            );
            assert!(
                plan.is_unknown(&address, "public_ip"),
                "{}: {address}.public_ip is only known after apply\n{}",
                tf.name,
                plan.plan
            );
        }
        assert_no_aws_calls(&tf, &counter, "for-each");
    }
}

#[test]
fn default_tags_example_merges_provider_tags_under_the_resource_tags() {
    for tf in terraform_versions() {
        eprintln!("=== {}: examples/default-tags", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(
            options(&tf, "default-tags", &counter).with_var("owner", "billing-team"),
        )
        .unwrap();
        init(&tf, &terraform);
        validate(&tf, &terraform);
        let plan = plan_saved(&terraform).unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
        let address = "autoheal_instance.app";
        // `tags` stays what the resource says ...
        assert_after(
            &tf,
            &plan,
            address,
            "tags",
            json!({"Application": "demo-app", "Environment": "demo"}),
        );
        // ... and `tags_all` adds the provider's default_tags, known at plan time, with the
        // resource's Environment winning over the provider's "shared" and the -var reaching
        // the provider block.
        assert_after(
            &tf,
            &plan,
            address,
            "tags_all",
            json!({
                "Application": "demo-app",
                "CostCenter": "cc-1234",
                "Environment": "demo",
                "Owner": "billing-team",
            }),
        );
        assert!(
            !plan.is_unknown(address, "tags_all"),
            "{}: tags_all is known at plan time\n{}",
            tf.name,
            plan.plan
        );
        assert!(
            plan.plan
                .stdout
                .contains("\"Owner\"       = \"billing-team\""),
            "{}: the plan text should show the merged tags:\n{}",
            tf.name,
            plan.plan
        );
        assert_no_aws_calls(&tf, &counter, "default-tags");
    }
}

#[test]
fn licensed_app_example_plans_the_interface_the_alarms_and_the_port() {
    for tf in terraform_versions() {
        eprintln!("=== {}: examples/licensed-app", tf.name);
        let counter = ConnectionCounter::start().unwrap();
        let terraform = Terraform::new(options(&tf, "licensed-app", &counter)).unwrap();
        init(&tf, &terraform);
        validate(&tf, &terraform);
        let plan = terraform
            .plan()
            .unwrap_or_else(|e| panic!("{}: plan failed: {e:#}", tf.name));
        assert_eq!(plan.exit_code, 2, "{}: {plan}", tf.name);
        assert!(
            plan.stdout
                .contains("Plan: 1 to add, 0 to change, 0 to destroy."),
            "{}: {plan}",
            tf.name
        );
        assert_planned(&tf, &plan, "persistent_network_interface", "true");
        assert_planned(&tf, &plan, "alarm_no_in_service_minutes", "15");
        assert_planned(&tf, &plan, "iam_instance_profile", "\"licensed-app\"");
        // Known only once AWS made them; with the opt-ins on they are not null.
        for computed in [
            "network_interface_id",
            "network_interface_private_ip",
            "network_interface_mac_address",
            "heal_failure_alarm_arn",
            "no_in_service_alarm_arn",
        ] {
            assert_planned(&tf, &plan, computed, "(known after apply)");
        }
        assert_no_aws_calls(&tf, &counter, "licensed-app");

        // The saved plan: the topic and the application's rule, exactly.
        let saved = plan_saved(&terraform).unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
        let address = "autoheal_instance.licensed";
        assert_after(
            &tf,
            &saved,
            address,
            "alarm_actions",
            json!(["arn:aws:sns:ap-southeast-2:123456789012:licensed-app-alarms"]),
        );
        let ingress = saved
            .after(address, "ingress")
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(
            ingress[0]["from_port"],
            json!(27000),
            "{}: {ingress}",
            tf.name
        );
        assert_eq!(
            ingress[0]["cidr_blocks"],
            json!(["10.20.0.0/16"]),
            "{}: {ingress}",
            tf.name
        );
        assert_after(&tf, &saved, address, "ssh_ingress_cidrs", json!([]));
    }
}

/// The basic example opts into neither: its plan shows the interface and alarm attributes
/// null, not "known after apply" (a default stack makes no interface and no alarm).
#[test]
fn basic_example_plans_no_interface_and_no_alarms() {
    let tf = terraform_versions().into_iter().next().unwrap();
    let counter = ConnectionCounter::start().unwrap();
    let terraform = Terraform::new(options(&tf, "basic", &counter)).unwrap();
    init(&tf, &terraform);
    let saved = plan_saved(&terraform).unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
    for attr in [
        "network_interface_id",
        "network_interface_mac_address",
        "heal_failure_alarm_arn",
        "no_in_service_alarm_arn",
    ] {
        assert_after(&tf, &saved, "autoheal_instance.app", attr, Value::Null);
    }
}
