//! The sweeper against the local AWS: it finds every kind of object a test can leave behind,
//! by tag or by name prefix, and nothing once they are deleted, except the final snapshot
//! when that is expected.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use terraform_tests::local_aws::helpers::{
    function_log_group, wait_for_single_instance, Stack, STACK_TAG,
};
use terraform_tests::local_aws::zip::bootstrap_zip;
use terraform_tests::local_aws::{Clients, LocalAws};
use terraform_tests::sweeper::{Kind, Leftover, Sweeper, FINAL_SNAPSHOT_TAG};

fn tags(resource: ResourceType, stack: &str, final_snapshot: bool) -> TagSpecification {
    let mut spec = TagSpecification::builder()
        .resource_type(resource)
        .tags(Tag::builder().key(STACK_TAG).value(stack).build());
    if final_snapshot {
        spec = spec.tags(Tag::builder().key(FINAL_SNAPSHOT_TAG).value("true").build());
    }
    spec.build()
}

fn ids(leftovers: &[Leftover], kind: Kind) -> Vec<&str> {
    leftovers
        .iter()
        .filter(|l| l.kind == kind)
        .map(|l| l.id.as_str())
        .collect()
}

async fn start() -> (LocalAws, Clients) {
    let aws = LocalAws::start().expect("starting the local AWS");
    let clients = aws.clients().await;
    (aws, clients)
}

#[tokio::test]
async fn finds_every_kind_by_tag_and_name_prefix_and_nothing_once_deleted() {
    let (_aws, clients) = start().await;
    let ec2 = &clients.ec2;
    let name = "swp";
    let zip = bootstrap_zip(env!("CARGO_BIN_EXE_test-function")).unwrap();
    let stack = Stack::builder(name, zip)
        .desired_capacity(0)
        .create(&clients)
        .await
        .unwrap();

    // What the stack does not make: gateway, route table, security group, snapshots, and the
    // log group a function run would create.
    let igw = ec2
        .create_internet_gateway()
        .tag_specifications(tags(ResourceType::InternetGateway, name, false))
        .send()
        .await
        .unwrap()
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .unwrap()
        .to_string();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&stack.vpc_id)
        .send()
        .await
        .unwrap();
    let route_table = ec2
        .create_route_table()
        .vpc_id(&stack.vpc_id)
        .tag_specifications(tags(ResourceType::RouteTable, name, false))
        .send()
        .await
        .unwrap()
        .route_table()
        .and_then(|t| t.route_table_id())
        .unwrap()
        .to_string();
    let security_group = ec2
        .create_security_group()
        .group_name(format!("{name}-sg"))
        .description("sweeper test")
        .vpc_id(&stack.vpc_id)
        .tag_specifications(tags(ResourceType::SecurityGroup, name, false))
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let snapshot = ec2
        .create_snapshot()
        .volume_id(&stack.volume_id)
        .tag_specifications(tags(ResourceType::Snapshot, name, false))
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();
    let final_snapshot = ec2
        .create_snapshot()
        .volume_id(&stack.volume_id)
        .tag_specifications(tags(ResourceType::Snapshot, name, true))
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_string();
    let log_group = function_log_group(&stack.function_name);
    clients
        .logs
        .create_log_group()
        .log_group_name(&log_group)
        .send()
        .await
        .unwrap();
    // A persistent network interface (by tag) and an alarm (by name prefix).
    let interface = ec2
        .create_network_interface()
        .subnet_id(&stack.subnet_id)
        .tag_specifications(tags(ResourceType::NetworkInterface, name, false))
        .send()
        .await
        .unwrap()
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .unwrap()
        .to_string();
    let alarm = format!("{name}-heal-failed");
    for alarm_name in [alarm.as_str(), "other-heal-failed"] {
        clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(alarm_name)
            .namespace("Autoheal")
            .metric_name("PermanentFailure")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .send()
            .await
            .unwrap();
    }

    // Decoys: another stack's tag, another prefix.
    ec2.create_vpc()
        .cidr_block("10.77.0.0/16")
        .tag_specifications(tags(ResourceType::Vpc, "other", false))
        .send()
        .await
        .unwrap();
    clients
        .iam
        .create_role()
        .role_name("other-role")
        .assume_role_policy_document("{}")
        .send()
        .await
        .unwrap();
    clients
        .logs
        .create_log_group()
        .log_group_name("/aws/lambda/other-fn")
        .send()
        .await
        .unwrap();

    let sweeper = Sweeper::for_stack(&clients, name);
    let found = sweeper.leftovers().await.unwrap();
    eprintln!(
        "found:\n{}",
        found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let kinds: BTreeSet<Kind> = found.iter().map(|l| l.kind).collect();
    let expected: BTreeSet<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::Instance)
        .collect();
    assert_eq!(kinds, expected, "{found:#?}");
    let expect = |kind: Kind, want: Vec<&str>| {
        let mut got = ids(&found, kind);
        got.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(got, want, "{kind}");
    };
    expect(Kind::Vpc, vec![&stack.vpc_id]);
    expect(Kind::Subnet, vec![&stack.subnet_id]);
    expect(Kind::InternetGateway, vec![&igw]);
    expect(Kind::RouteTable, vec![&route_table]);
    expect(Kind::SecurityGroup, vec![&security_group]);
    expect(Kind::Volume, vec![&stack.volume_id]);
    expect(Kind::Address, vec![&stack.allocation_id]);
    expect(Kind::LaunchTemplate, vec![&stack.launch_template_id]);
    expect(Kind::AutoScalingGroup, vec![&stack.group_name]);
    expect(Kind::Snapshot, vec![&snapshot, &final_snapshot]);
    expect(Kind::Role, vec![&stack.role_name]);
    let policy = format!("{}/{}", stack.role_name, stack.policy_name);
    expect(Kind::RolePolicy, vec![&policy]);
    expect(Kind::Function, vec![&stack.function_name]);
    let permission = format!("{}/{}", stack.function_name, stack.statement_id);
    expect(Kind::FunctionPermission, vec![&permission]);
    expect(Kind::Rule, vec![&stack.rule_name]);
    let target = format!("{}/{}", stack.rule_name, stack.target_id);
    expect(Kind::RuleTarget, vec![&target]);
    let hook = format!("{}/{}", stack.group_name, stack.hook_name);
    expect(Kind::LifecycleHook, vec![&hook]);
    expect(Kind::LogGroup, vec![&log_group]);
    expect(Kind::NetworkInterface, vec![&interface]);
    expect(Kind::Alarm, vec![&alarm]);
    assert!(found
        .iter()
        .all(|l| l.final_snapshot == (l.id == final_snapshot)));
    let message = sweeper.check_nothing_left(true).await.unwrap().unwrap_err();
    assert!(
        message.contains(&stack.vpc_id) && message.contains(&snapshot),
        "{message}"
    );
    assert!(!message.contains(&final_snapshot), "{message}");

    // Delete it all but the final snapshot.
    ec2.detach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&stack.vpc_id)
        .send()
        .await
        .unwrap();
    ec2.delete_internet_gateway()
        .internet_gateway_id(&igw)
        .send()
        .await
        .unwrap();
    ec2.delete_route_table()
        .route_table_id(&route_table)
        .send()
        .await
        .unwrap();
    ec2.delete_security_group()
        .group_id(&security_group)
        .send()
        .await
        .unwrap();
    ec2.delete_snapshot()
        .snapshot_id(&snapshot)
        .send()
        .await
        .unwrap();
    ec2.delete_network_interface()
        .network_interface_id(&interface)
        .send()
        .await
        .unwrap();
    clients
        .cloudwatch
        .delete_alarms()
        .alarm_names(&alarm)
        .send()
        .await
        .unwrap();
    stack.delete(&clients).await.unwrap();

    assert_eq!(
        sweeper.assert_nothing_left(true).await.as_deref(),
        Some(final_snapshot.as_str()),
        "the final snapshot is found and reported"
    );
    let message = sweeper
        .check_nothing_left(false)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        message.contains(&final_snapshot) && message.contains("final snapshot"),
        "{message}"
    );

    ec2.delete_snapshot()
        .snapshot_id(&final_snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(sweeper.assert_nothing_left(false).await, None);
    assert!(sweeper.leftovers().await.unwrap().is_empty());
    let message = sweeper.check_nothing_left(true).await.unwrap().unwrap_err();
    assert!(message.contains("no final snapshot"), "{message}");
}

#[tokio::test]
async fn a_stack_that_ran_leaves_nothing_once_deleted() {
    let (_aws, clients) = start().await;
    let zip = bootstrap_zip(env!("CARGO_BIN_EXE_test-function")).unwrap();
    let stack = Stack::builder("ran", zip)
        .heartbeat_timeout(3600)
        .create(&clients)
        .await
        .unwrap();
    let instance = wait_for_single_instance(
        &clients.autoscaling,
        &stack.group_name,
        "InService",
        None,
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    let sweeper = Sweeper::for_stack(&clients, "ran");
    let found = sweeper.leftovers().await.unwrap();
    // The group's tag propagates to its instance; the function's run made its log group.
    assert_eq!(
        ids(&found, Kind::Instance),
        vec![instance.id.as_str()],
        "{found:#?}"
    );
    assert_eq!(
        ids(&found, Kind::LogGroup),
        vec![function_log_group(&stack.function_name).as_str()]
    );

    stack.delete(&clients).await.unwrap();
    assert_eq!(sweeper.assert_nothing_left(false).await, None);
}

#[tokio::test]
#[should_panic(expected = "survived")]
async fn assert_nothing_left_fails_listing_the_survivors() {
    let (_aws, clients) = start().await;
    clients
        .ec2
        .create_vpc()
        .cidr_block("10.5.0.0/16")
        .tag_specifications(tags(ResourceType::Vpc, "left", false))
        .send()
        .await
        .unwrap();
    Sweeper::for_stack(&clients, "left")
        .assert_nothing_left(false)
        .await;
}
