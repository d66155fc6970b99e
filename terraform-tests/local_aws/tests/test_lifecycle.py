"""The launch lifecycle hook state machine (clock scale 0.01: 1 s of AWS = 10 ms)."""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import create_group, group_instances, hook, instance_state, network, wait_for


@pytest.fixture
def net(server):
    server.reset()
    return network(server)


def only_instance(server, group):
    instances = group_instances(server, group)
    assert len(instances) == 1, instances
    return instances[0]


def token_of(server, instance_id):
    actions = [a for a in server.ctl("GET", "/lifecycle-actions") if a["InstanceId"] == instance_id]
    assert len(actions) == 1, actions
    return actions[0]["LifecycleActionToken"]


def test_hooks_from_create_group_are_kept_and_hold_the_launch(server, net):
    create_group(server, "g", net, [hook(metadata='{"volume":"vol-1"}')])
    hooks = server.client("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"]
    assert [(h["LifecycleHookName"], h["LifecycleTransition"], h["HeartbeatTimeout"], h["DefaultResult"]) for h in hooks] == [
        ("launch", "autoscaling:EC2_INSTANCE_LAUNCHING", 300, "ABANDON")
    ]
    assert hooks[0]["NotificationMetadata"] == '{"volume":"vol-1"}'
    inst = only_instance(server, "g")
    assert inst["LifecycleState"] == "Pending:Wait"
    described = server.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[inst["InstanceId"]])
    assert described["AutoScalingInstances"][0]["LifecycleState"] == "Pending:Wait"
    # EC2 runs the instance while Auto Scaling holds it.
    assert instance_state(server, inst["InstanceId"]) == "running"
    # No group without a hook waits.
    create_group(server, "plain", net)
    assert only_instance(server, "plain")["LifecycleState"] == "InService"


def test_continue_by_token(server, net):
    create_group(server, "g", net, [hook()])
    iid = only_instance(server, "g")["InstanceId"]
    token = token_of(server, iid)
    server.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", LifecycleActionToken=token, LifecycleActionResult="CONTINUE"
    )
    inst = only_instance(server, "g")
    assert (inst["InstanceId"], inst["LifecycleState"]) == (iid, "InService")


def test_continue_by_instance_id(server, net):
    create_group(server, "g", net, [hook()])
    iid = only_instance(server, "g")["InstanceId"]
    server.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=iid, LifecycleActionResult="CONTINUE"
    )
    assert only_instance(server, "g")["LifecycleState"] == "InService"


def test_abandon_terminates_and_the_replacement_waits_again(server, net):
    create_group(server, "g", net, [hook()])
    first = only_instance(server, "g")["InstanceId"]
    server.client("autoscaling").complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=first, LifecycleActionResult="ABANDON"
    )
    assert instance_state(server, first) == "terminated"
    replacement = only_instance(server, "g")
    assert replacement["InstanceId"] != first
    assert replacement["LifecycleState"] == "Pending:Wait"
    assert token_of(server, replacement["InstanceId"])


def test_heartbeat_timeout_applies_default_result(server, net):
    # 30 s on AWS = 0.3 s here.
    create_group(server, "cont", net, [hook(timeout=30, default="CONTINUE")])
    create_group(server, "aban", net, [hook(timeout=30, default="ABANDON")])
    cont = only_instance(server, "cont")["InstanceId"]
    aban = only_instance(server, "aban")["InstanceId"]
    assert only_instance(server, "cont")["LifecycleState"] == "Pending:Wait"
    wait_for(lambda: only_instance(server, "cont")["LifecycleState"] == "InService", timeout=5, what="CONTINUE on timeout")
    assert only_instance(server, "cont")["InstanceId"] == cont
    wait_for(lambda: instance_state(server, aban) == "terminated", timeout=5, what="ABANDON on timeout")
    replacement = wait_for(lambda: [i for i in group_instances(server, "aban") if i["InstanceId"] != aban], timeout=5)
    assert replacement[0]["LifecycleState"] in ("Pending:Wait", "InService")  # it may time out again meanwhile


def test_heartbeat_extends_the_timeout(server, net):
    # 60 s on AWS = 0.6 s here; a beat every ~0.1 s (10 s of AWS time) leaves
    # plenty of slack for a slow machine.
    create_group(server, "g", net, [hook(timeout=60, default="ABANDON")])
    iid = only_instance(server, "g")["InstanceId"]
    token = token_of(server, iid)
    asg = server.client("autoscaling")
    started = time.monotonic()
    # Keep beating for 1.5 s: two and a half times the timeout.
    while time.monotonic() - started < 1.5:
        asg.record_lifecycle_action_heartbeat(AutoScalingGroupName="g", LifecycleHookName="launch", LifecycleActionToken=token)
        time.sleep(0.1)
    inst = only_instance(server, "g")
    assert (inst["InstanceId"], inst["LifecycleState"]) == (iid, "Pending:Wait")
    # Stop beating: the default result (ABANDON) follows.
    wait_for(lambda: instance_state(server, iid) == "terminated", timeout=5, what="timeout after the last heartbeat")


def test_second_completion_and_unknown_ids_answer_validation_error(server, net):
    create_group(server, "g", net, [hook()])
    iid = only_instance(server, "g")["InstanceId"]
    token = token_of(server, iid)
    asg = server.client("autoscaling")
    asg.complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", LifecycleActionToken=token, LifecycleActionResult="CONTINUE"
    )
    with pytest.raises(ClientError) as exc:
        asg.complete_lifecycle_action(
            AutoScalingGroupName="g", LifecycleHookName="launch", LifecycleActionToken=token, LifecycleActionResult="CONTINUE"
        )
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Message"] == f"No active Lifecycle Action found with token {token}"

    with pytest.raises(ClientError) as exc:
        asg.complete_lifecycle_action(
            AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId="i-0123456789abcdef0", LifecycleActionResult="CONTINUE"
        )
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert exc.value.response["Error"]["Message"] == "No active Lifecycle Action found with instance ID i-0123456789abcdef0"

    with pytest.raises(ClientError) as exc:
        asg.record_lifecycle_action_heartbeat(AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=iid)
    assert exc.value.response["Error"]["Message"] == f"No active Lifecycle Action found with instance ID {iid}"


def test_waiting_instance_counts_as_capacity_and_terminating_it_replaces_it(server, net):
    create_group(server, "g", net, [hook()])
    asg = server.client("autoscaling")
    first = only_instance(server, "g")["InstanceId"]
    # Re-asserting the desired capacity must not launch a second instance.
    asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=1)
    asg.update_auto_scaling_group(AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1)
    assert only_instance(server, "g")["InstanceId"] == first
    server.client("ec2").terminate_instances(InstanceIds=[first])
    replacement = only_instance(server, "g")
    assert replacement["InstanceId"] != first and replacement["LifecycleState"] == "Pending:Wait"
    # The terminated instance's action is gone.
    with pytest.raises(ClientError):
        asg.complete_lifecycle_action(
            AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=first, LifecycleActionResult="CONTINUE"
        )


def test_put_lifecycle_hook_then_scale_out(server, net):
    asg = server.client("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=0, MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=net["subnet"],
        LaunchTemplate={"LaunchTemplateId": net["launch_template"], "Version": "$Latest"},
    )
    asg.put_lifecycle_hook(
        AutoScalingGroupName="g", LifecycleHookName="late", LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=60, NotificationMetadata="m",
    )
    asg.set_desired_capacity(AutoScalingGroupName="g", DesiredCapacity=1)
    inst = only_instance(server, "g")
    assert inst["LifecycleState"] == "Pending:Wait"
    assert re.fullmatch(r"[0-9a-f-]{36}", token_of(server, inst["InstanceId"]))


def test_delete_group_needs_force_while_it_has_instances(server, net):
    create_group(server, "g", net, [hook()])
    asg = server.client("autoscaling")
    with pytest.raises(ClientError) as exc:
        asg.delete_auto_scaling_group(AutoScalingGroupName="g")
    assert exc.value.response["Error"]["Code"] == "ResourceInUse"
    asg.delete_auto_scaling_group(AutoScalingGroupName="g", ForceDelete=True)
    assert server.ctl("GET", "/lifecycle-actions") == []
    # Hooks go with the group: a new group of the same name has none.
    create_group(server, "g", net)
    assert asg.describe_lifecycle_hooks(AutoScalingGroupName="g")["LifecycleHooks"] == []
    assert only_instance(server, "g")["LifecycleState"] == "InService"


def test_each_instance_reports_the_template_version_it_was_launched_from(server, net):
    asg = server.client("autoscaling")
    ec2 = server.client("ec2")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=net["subnet"],
        LaunchTemplate={"LaunchTemplateId": net["launch_template"], "Version": "1"},
    )
    first = only_instance(server, "g")
    assert first["LaunchTemplate"]["Version"] == "1"
    ec2.create_launch_template_version(LaunchTemplateId=net["launch_template"], LaunchTemplateData={"InstanceType": "t3.small"})
    asg.update_auto_scaling_group(
        AutoScalingGroupName="g", LaunchTemplate={"LaunchTemplateId": net["launch_template"], "Version": "2"}
    )
    # The group launches from version 2 now; the running instance still is a version 1 one.
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]
    assert group["LaunchTemplate"]["Version"] == "2"
    assert only_instance(server, "g")["LaunchTemplate"] == first["LaunchTemplate"]
    ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
    replacement = only_instance(server, "g")
    assert replacement["InstanceId"] != first["InstanceId"]
    assert replacement["LaunchTemplate"]["Version"] == "2"
    assert replacement["LaunchTemplate"]["LaunchTemplateId"] == net["launch_template"]


def test_terminating_an_instance_no_group_manages_answers_validation_error(server, net):
    """TerminateInstanceInAutoScalingGroup for an instance the group already let go (a retry
    whose first answer was lost): AWS's ValidationError "Instance Id not found - No managed
    instance found for instance ID: i-.."; moto crashed with HTTP 500."""
    create_group(server, "gone", net)
    first = wait_for(lambda: group_instances(server, "gone"), what="an instance")[0]["InstanceId"]
    asg = server.client("autoscaling")
    asg.terminate_instance_in_auto_scaling_group(InstanceId=first, ShouldDecrementDesiredCapacity=False)
    with pytest.raises(ClientError) as exc:
        asg.terminate_instance_in_auto_scaling_group(InstanceId=first, ShouldDecrementDesiredCapacity=False)
    err = exc.value.response
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Message"] == f"Instance Id not found - No managed instance found for instance ID: {first}"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
