//! The local AWS's fault injection, transient states, call log and EC2 rules, seen through
//! the AWS SDK as the provider and the handler will see them.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use terraform_tests::local_aws::clients::config_loader;
use terraform_tests::local_aws::control::{Fault, Transient};
use terraform_tests::local_aws::helpers::{
    address_status, err_text, instance_state, volume_status, wait_for, wait_for_single_instance,
    Check, Stack,
};
use terraform_tests::local_aws::zip::bootstrap_zip;
use terraform_tests::local_aws::{Clients, LocalAws};

const STEP: Duration = Duration::from_secs(20);

async fn start() -> (LocalAws, Clients) {
    let aws = LocalAws::start().expect("starting the local AWS");
    let clients = aws.clients().await;
    (aws, clients)
}

/// Clients that never retry: every injected error reaches the caller.
async fn no_retry_clients(aws: &LocalAws) -> Clients {
    Clients::from_config(
        config_loader(aws.endpoint(), aws.region())
            .retry_config(RetryConfig::disabled())
            .load()
            .await,
    )
}

/// A stack whose group has one instance InService (the test function completed its hook).
async fn healthy_stack(clients: &Clients, name: &str) -> (Stack, String) {
    let zip = bootstrap_zip(env!("CARGO_BIN_EXE_test-function")).unwrap();
    let stack = Stack::builder(name, zip)
        .heartbeat_timeout(3600)
        .create(clients)
        .await
        .unwrap_or_else(|e| panic!("creating stack {name}: {e:#}"));
    let instance = wait_for_single_instance(
        &clients.autoscaling,
        &stack.group_name,
        "InService",
        None,
        STEP,
    )
    .await
    .unwrap();
    (stack, instance.id)
}

#[tokio::test]
async fn attach_volume_fails_twice_with_volume_in_use_then_works() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let (stack, instance) = healthy_stack(&clients, "attach").await;
    let ec2 = no_retry_clients(&aws).await.ec2;

    let message = format!("{} is already attached to an instance", stack.volume_id);
    let fault = control
        .add_fault(
            &Fault::error("AttachVolume", "VolumeInUse")
                .count(2)
                .message(&message)
                .matching("VolumeId", stack.volume_id.as_str()),
        )
        .await
        .unwrap();
    control.clear_calls().await.unwrap();

    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let r = ec2
            .attach_volume()
            .volume_id(&stack.volume_id)
            .instance_id(&instance)
            .device("/dev/sdf")
            .send()
            .await;
        match r {
            Ok(out) => outcomes.push(Ok(out.state().map(|s| s.as_str().to_string()))),
            Err(e) => {
                let meta = e.as_service_error().map(ProvideErrorMetadata::meta);
                outcomes.push(Err((
                    meta.and_then(|m| m.code()).map(str::to_string),
                    meta.and_then(|m| m.message()).map(str::to_string),
                )));
            }
        }
    }
    let in_use = Err((Some("VolumeInUse".to_string()), Some(message.clone())));
    assert_eq!(outcomes[0], in_use, "{outcomes:?}");
    assert_eq!(outcomes[1], in_use, "{outcomes:?}");
    assert!(outcomes[2].is_ok(), "{outcomes:?}");

    let status = volume_status(&clients.ec2, &stack.volume_id).await.unwrap();
    assert_eq!(status.state, "in-use", "{status}");
    let attachment = status.attachment.expect("attached");
    assert_eq!(attachment.instance_id, instance);
    assert_eq!(attachment.device, "/dev/sdf");

    // The call log shows the two answers of the rule, then moto's.
    let calls = control.calls_of("AttachVolume").await.unwrap();
    let seen: Vec<_> = calls
        .iter()
        .map(|c| (c.status, c.error_code.as_deref(), c.fault.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (400, Some("VolumeInUse"), Some(fault.as_str())),
            (400, Some("VolumeInUse"), Some(fault.as_str())),
            (200, None, None),
        ]
    );
    assert!(calls
        .iter()
        .all(|c| c.param("VolumeId") == Some(stack.volume_id.as_str())));
    let rules = control.faults().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!((rules[0].fired, rules[0].remaining), (2, Some(0)));

    // A real VolumeInUse now: moto's own answer, in EC2's format.
    let again = ec2
        .attach_volume()
        .volume_id(&stack.volume_id)
        .instance_id(&instance)
        .device("/dev/sdg")
        .send()
        .await
        .expect_err("the volume is attached already");
    assert_eq!(again.code(), Some("VolumeInUse"), "{}", err_text(&again));
}

#[tokio::test]
async fn throttling_on_describe_instances_is_visible_and_retried_by_the_sdk() {
    let (aws, _clients) = start().await;
    let control = aws.control();
    let bare = no_retry_clients(&aws).await;

    // Without retries the caller sees AWS's throttling error.
    let f1 = control
        .add_fault(
            &Fault::error("DescribeInstances", "Throttling")
                .count(1)
                .message("Rate exceeded"),
        )
        .await
        .unwrap();
    let e = bare
        .ec2
        .describe_instances()
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(e.code(), Some("Throttling"), "{}", err_text(&e));
    assert_eq!(e.message(), Some("Rate exceeded"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));

    // With the SDK's standard retries (short backoff), two throttles are absorbed.
    let retrying = Clients::from_config(
        config_loader(aws.endpoint(), aws.region())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(10)),
            )
            .load()
            .await,
    );
    control.clear_calls().await.unwrap();
    let f2 = control
        .add_fault(&Fault::error("DescribeInstances", "Throttling").count(2))
        .await
        .unwrap();
    retrying
        .ec2
        .describe_instances()
        .send()
        .await
        .unwrap_or_else(|e| panic!("the third attempt should pass: {}", err_text(&e)));
    let calls = control.calls_of("DescribeInstances").await.unwrap();
    let seen: Vec<_> = calls
        .iter()
        .map(|c| (c.error_code.as_deref(), c.fault.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("Throttling"), Some(f2.as_str())),
            (Some("Throttling"), Some(f2.as_str())),
            (None, None),
        ]
    );
    assert_ne!(f1, f2);

    // A fault for ever, until cleared; other operations are untouched.
    control
        .add_fault(&Fault::error("DescribeInstances", "Throttling"))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(bare.ec2.describe_instances().send().await.is_err());
    }
    bare.ec2.describe_vpcs().send().await.unwrap();
    control.clear_faults().await.unwrap();
    bare.ec2.describe_instances().send().await.unwrap();
}

#[tokio::test]
async fn calls_are_recorded_in_order_with_their_parameters_and_errors() {
    let (aws, clients) = start().await;
    let control = aws.control();
    control.clear_calls().await.unwrap();

    let vpc = clients
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key("k").value("v").build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    clients
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap();
    let missing = clients
        .ec2
        .describe_volumes()
        .volume_ids("vol-0123456789abcdef0")
        .send()
        .await
        .expect_err("no such volume");
    assert_eq!(missing.code(), Some("InvalidVolume.NotFound"));
    clients
        .autoscaling
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    clients.lambda.list_functions().send().await.unwrap();
    clients.eventbridge.list_rules().send().await.unwrap();
    clients.iam.list_roles().send().await.unwrap();
    clients.logs.describe_log_groups().send().await.unwrap();

    let calls = control.calls().await.unwrap();
    let seen: Vec<_> = calls
        .iter()
        .map(|c| (c.service.as_str(), c.operation.as_str(), c.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ec2", "CreateVpc", 200),
            ("ec2", "DescribeVpcs", 200),
            ("ec2", "DescribeVolumes", 400),
            ("autoscaling", "DescribeAutoScalingGroups", 200),
            ("lambda", "ListFunctions", 200),
            ("events", "ListRules", 200),
            ("iam", "ListRoles", 200),
            ("logs", "DescribeLogGroups", 200),
        ]
    );
    assert!(calls.windows(2).all(|w| w[0].seq < w[1].seq), "{calls:?}");
    assert!(calls
        .iter()
        .all(|c| c.region.as_deref() == Some(aws.region()) || c.service == "iam"));
    assert_eq!(
        calls[2].error_code.as_deref(),
        Some("InvalidVolume.NotFound")
    );
    assert_eq!(calls[0].error_code, None);
    let described = &calls[1].params;
    assert!(
        described.to_string().contains(&vpc),
        "DescribeVpcs records the VpcId: {described}"
    );
    // Filtered by the server.
    let only = control.calls_of("DescribeVolumes").await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].seq, calls[2].seq);
    control.clear_calls().await.unwrap();
    assert!(control.calls().await.unwrap().is_empty());
}

#[tokio::test]
async fn terminating_an_instance_disassociates_its_elastic_ip_and_frees_its_volume() {
    // `_aws`, not `_`: the server lives until the end of the test.
    let (_aws, clients) = start().await;
    let (stack, instance) = healthy_stack(&clients, "eip").await;

    let association = clients
        .ec2
        .associate_address()
        .allocation_id(&stack.allocation_id)
        .instance_id(&instance)
        .send()
        .await
        .unwrap()
        .association_id()
        .map(str::to_string);
    assert!(association.is_some());
    let before = address_status(&clients.ec2, &stack.allocation_id)
        .await
        .unwrap();
    assert_eq!(before.instance_id.as_deref(), Some(instance.as_str()));
    clients
        .ec2
        .attach_volume()
        .volume_id(&stack.volume_id)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();

    clients
        .ec2
        .terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    assert_eq!(
        instance_state(&clients.ec2, &instance)
            .await
            .unwrap()
            .as_deref(),
        Some("terminated")
    );
    let after = address_status(&clients.ec2, &stack.allocation_id)
        .await
        .unwrap();
    assert_eq!(after.instance_id, None, "{after:?}");
    assert_eq!(after.association_id, None, "{after:?}");
    assert_eq!(after.public_ip, before.public_ip, "the address is kept");
    // The data volume detaches (2 s at clock scale 1) and becomes available again.
    let freed = wait_for("the volume available", || async {
        let v = volume_status(&clients.ec2, &stack.volume_id).await?;
        Ok(if v.state == "available" && v.attachment.is_none() {
            Check::Done(v)
        } else {
            Check::NotYet(v.to_string())
        })
    })
    .await
    .unwrap();
    assert_eq!(freed.availability_zone, stack.availability_zone);
}

#[tokio::test]
async fn transient_states_show_in_describe_calls_then_pass() {
    let (aws, clients) = start().await;
    let control = aws.control();
    let (stack, instance) = healthy_stack(&clients, "transient").await;
    let volume = stack.volume_id.as_str();

    // A volume just detached from the instance looks "detaching" for two more polls.
    clients
        .ec2
        .attach_volume()
        .volume_id(volume)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    clients
        .ec2
        .detach_volume()
        .volume_id(volume)
        .send()
        .await
        .unwrap();
    wait_for("the volume detached", || async {
        let v = volume_status(&clients.ec2, volume).await?;
        Ok(if v.state == "available" {
            Check::Done(())
        } else {
            Check::NotYet(v.to_string())
        })
    })
    .await
    .unwrap();
    control
        .add_transient(&Transient::volume_detaching(volume, 2))
        .await
        .unwrap();
    for _ in 0..2 {
        let v = volume_status(&clients.ec2, volume).await.unwrap();
        assert_eq!(v.state, "in-use", "{v}");
        let a = v.attachment.as_ref().expect("the old attachment shows");
        assert_eq!(
            (a.state.as_str(), a.instance_id.as_str()),
            ("detaching", instance.as_str())
        );
    }
    let v = volume_status(&clients.ec2, volume).await.unwrap();
    assert_eq!((v.state.as_str(), v.attachment), ("available", None));

    // An instance that still looks pending.
    control
        .add_transient(&Transient::instance_pending(&instance, 1))
        .await
        .unwrap();
    assert_eq!(
        instance_state(&clients.ec2, &instance)
            .await
            .unwrap()
            .as_deref(),
        Some("pending")
    );
    assert_eq!(
        instance_state(&clients.ec2, &instance)
            .await
            .unwrap()
            .as_deref(),
        Some("running")
    );

    // Lambda: an update in progress answers 409 ResourceConflictException.
    control
        .add_transient(&Transient::function_update_in_progress(
            &stack.function_name,
            1,
        ))
        .await
        .unwrap();
    let e = clients
        .lambda
        .update_function_configuration()
        .function_name(&stack.function_name)
        .timeout(20)
        .send()
        .await
        .expect_err("an update is in progress");
    assert!(
        e.as_service_error()
            .is_some_and(|s| s.is_resource_conflict_exception()),
        "{}",
        err_text(&e)
    );
    clients
        .lambda
        .update_function_configuration()
        .function_name(&stack.function_name)
        .timeout(20)
        .send()
        .await
        .unwrap();
    assert!(control
        .transients()
        .await
        .unwrap()
        .iter()
        .all(|t| t.polls == 0));
}
