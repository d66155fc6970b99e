"""Group launches that fail, their retries, and DescribeScalingActivities
(localaws/launches.py, localaws/activities.py). The module's server runs the fast profile
(a failed launch is retried every virtual second) at clock scale 0.01: 100 s of AWS time
is 1 s here."""

from __future__ import annotations

import time

import pytest

from conftest import AMI, create_group, group_instances, hook, network, wait_for

ARM_AMI = "ami-06746ff626e2bfb5e"  # moto's al2023 arm64 image


@pytest.fixture
def net(server):
    server.reset()
    return network(server)


def activities(server, group=None, **kwargs):
    """Every page, in the order AWS gives them (botocore's paginator follows NextToken)."""
    if group is not None:
        kwargs["AutoScalingGroupName"] = group
    pages = server.client("autoscaling").get_paginator("describe_scaling_activities").paginate(**kwargs)
    return [a for page in pages for a in page["Activities"]]


def failed(server, group):
    return [a for a in activities(server, group) if a["StatusCode"] == "Failed"]


def template(server, data):
    ec2 = server.client("ec2")
    name = f"lt-{time.monotonic_ns()}"
    return ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)["LaunchTemplate"]["LaunchTemplateId"]


def group(server, name, subnet, launch_template, version="1"):
    server.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateId": launch_template, "Version": version},
    )


def use_version(server, name, launch_template, version):
    server.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": launch_template, "Version": version}
    )


def assert_fails_then_fix_launches(server, name, message, fix):
    """Failed activities with exactly `message` and no instance, retried; after `fix` the
    group launches and stops failing."""
    wait_for(lambda: len(failed(server, name)) >= 3, timeout=5, what="three failed attempts")
    for activity in failed(server, name):
        assert activity["StatusMessage"] == message
        assert activity["Description"] == f"Launching a new EC2 instance.  Status Reason: {message}"
        assert activity["Progress"] == 100 and activity["EndTime"] >= activity["StartTime"]
    assert group_instances(server, name) == []
    fix()
    launched = wait_for(lambda: group_instances(server, name), timeout=5, what="a launch after the fix")
    iid = launched[0]["InstanceId"]
    newest = activities(server, name)[0]
    assert (newest["Description"], newest["StatusCode"]) == (f"Launching a new EC2 instance: {iid}", "Successful")
    attempts = len(failed(server, name))
    time.sleep(0.1)  # 10 virtual seconds: ten retries if they had not stopped
    assert len(failed(server, name)) == attempts


def test_a_missing_ami_fails_the_launch_until_the_template_is_fixed(server, net):
    """Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling: AMI issues":
    "The image id '[ami-..]' does not exist. Launching EC2 instance failed." (the id in
    square brackets). A new template version with a good AMI fixes it."""
    lt = template(server, {"ImageId": "ami-0123", "InstanceType": "t3.micro"})
    group(server, "g", net["subnet"], lt)

    def fix():
        server.client("ec2").create_launch_template_version(
            LaunchTemplateId=lt, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"}
        )
        use_version(server, "g", lt, "2")

    assert_fails_then_fix_launches(
        server, "g", "The image id '[ami-0123]' does not exist. Launching EC2 instance failed.", fix
    )


def test_an_ami_of_another_architecture_fails_the_launch(server, net):
    """Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling: EC2 instance launch
    failures": the instance type's architecture must match the AMI's."""
    lt = template(server, {"ImageId": AMI, "InstanceType": "t4g.nano"})  # x86_64 AMI, Graviton type
    group(server, "g", net["subnet"], lt)

    def fix():
        server.client("ec2").create_launch_template_version(
            LaunchTemplateId=lt, LaunchTemplateData={"ImageId": ARM_AMI, "InstanceType": "t4g.nano"}
        )
        use_version(server, "g", lt, "2")

    assert_fails_then_fix_launches(
        server, "g",
        "The architecture 'arm64' of the specified instance type does not match the architecture 'x86_64' of the "
        "specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You "
        "can use 'describe-instance-types' or 'describe-images' to discover the architecture of the instance type "
        "or AMI. Launching EC2 instance failed.",
        fix,
    )


def test_an_instance_type_not_offered_in_the_zone_fails_the_launch(server, net):
    """Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling: EC2 instance launch
    failures": "Your requested instance type (..) is not supported in your requested
    Availability Zone (..)". moto's offerings (AWS's): m1.small is offered in
    ap-southeast-2a and 2b, not 2c. Moving the group to a subnet in 2a fixes it."""
    ec2 = server.client("ec2")
    subnet_c = ec2.create_subnet(VpcId=net["vpc"], CidrBlock="10.0.3.0/24", AvailabilityZone="ap-southeast-2c")["Subnet"]["SubnetId"]
    lt = template(server, {"ImageId": AMI, "InstanceType": "m1.small"})
    group(server, "g", subnet_c, lt)

    def fix():
        server.client("autoscaling").update_auto_scaling_group(AutoScalingGroupName="g", VPCZoneIdentifier=net["subnet"])

    assert_fails_then_fix_launches(
        server, "g",
        "Your requested instance type (m1.small) is not supported in your requested Availability Zone "
        "(ap-southeast-2c). Please retry your request by not specifying an Availability Zone or choosing "
        "ap-southeast-2a, ap-southeast-2b. Launching EC2 instance failed.",
        fix,
    )
    assert failed(server, "g")[0]["Details"] == f'{{"Subnet ID":"{subnet_c}","Availability Zone":"ap-southeast-2c"}}'


CAPACITY = (
    "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested "
    "(ap-southeast-2a). Our system will be working on provisioning additional capacity. You can currently get "
    "t3.micro capacity by not specifying an Availability Zone in your request or choosing ap-southeast-2b, "
    "ap-southeast-2c. Launching EC2 instance failed."
)


def test_injected_insufficient_capacity_fails_launches_until_cleared(server, net):
    """InsufficientInstanceCapacity is AWS's side ("Troubleshoot Amazon EC2 Auto Scaling:
    Insufficient capacity"), injected with POST /_localaws/launch-failures; it lasts until
    DELETE clears it (no count)."""
    failure = server.ctl("POST", "/launch-failures", {"error": "InsufficientInstanceCapacity"})
    assert failure == {"id": failure["id"], "group": None, "error": "InsufficientInstanceCapacity", "remaining": None, "fired": 0}
    create_group(server, "g", net)

    def fix():
        assert server.ctl("GET", "/launch-failures")[0]["fired"] >= 3
        server.ctl("DELETE", "/launch-failures")
        assert server.ctl("GET", "/launch-failures") == []

    assert_fails_then_fix_launches(server, "g", CAPACITY, fix)


def test_injected_failures_count_and_name_their_group(server, net):
    """count: that many launches of the named group fail, then it launches; other groups
    are not affected. Bad requests are refused; a reset clears the injections."""
    with pytest.raises(AssertionError, match="error must be one of"):
        server.ctl("POST", "/launch-failures", {"error": "Unsupported"})
    with pytest.raises(AssertionError, match="count must be an integer"):
        server.ctl("POST", "/launch-failures", {"error": "InsufficientInstanceCapacity", "count": 0})
    server.ctl("POST", "/launch-failures", {"group": "g", "error": "InsufficientInstanceCapacity", "count": 2})
    create_group(server, "other", net)
    assert group_instances(server, "other") and failed(server, "other") == []
    create_group(server, "g", net)
    wait_for(lambda: group_instances(server, "g"), timeout=5, what="the third attempt launching")
    assert [a["StatusMessage"] for a in failed(server, "g")] == [CAPACITY, CAPACITY]
    assert [(f["group"], f["remaining"], f["fired"]) for f in server.ctl("GET", "/launch-failures")] == [("g", 0, 2)]
    server.ctl("POST", "/launch-failures", {"error": "InsufficientInstanceCapacity"})
    server.reset()
    assert server.ctl("GET", "/launch-failures") == []


def virtual_now(server):
    return server.ctl("GET", "/clock")["virtual_now"]


def wait_virtual(server, until):
    wait_for(lambda: virtual_now(server) >= until, timeout=10, interval=0.005, what=f"virtual time {until}")


def test_failed_launches_back_off_doubling_up_to_the_cap(server, net):
    """After a failure the group retries after launch_retry_s, doubling, capped at
    launch_retry_cap_s: with 10 s and 40 s, attempts at 0, 10, 30, 70, 110, 150, 190, ...
    (AWS seconds). Each attempt is its own activity; a fix lets the next retry launch."""
    server.ctl("POST", "/profile", {"launch_retry_s": 10, "launch_retry_cap_s": 40})
    lt = template(server, {"ImageId": "ami-0123", "InstanceType": "t3.micro"})
    start = virtual_now(server)
    group(server, "g", net["subnet"], lt)
    wait_virtual(server, start + 90)  # 20 s after the 4th attempt, 20 s before the 5th
    assert len(failed(server, "g")) == 4
    wait_virtual(server, start + 170)  # after the 6th (150), before the 7th (190)
    assert len(failed(server, "g")) == 6
    server.client("ec2").create_launch_template_version(
        LaunchTemplateId=lt, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"}
    )
    use_version(server, "g", lt, "2")
    assert group_instances(server, "g") == []  # not before the retry is due
    wait_for(lambda: group_instances(server, "g"), timeout=5, what="the 7th attempt launching")
    assert virtual_now(server) >= start + 189
    assert len(failed(server, "g")) == 6


def test_a_suspended_launch_process_launches_nothing_and_its_resume_tries_at_once(server, net):
    """SuspendProcesses Launch: no attempt, no activity, while retries fall due (the back-off
    keeps its count). ResumeProcesses Launch: one attempt at once (not at the back-off's next
    step), into the subnet the group names then; a failed one goes on from the count."""
    server.ctl("POST", "/profile", {"launch_retry_s": 10, "launch_retry_cap_s": 300})
    asg = server.client("autoscaling")
    lt = template(server, {"ImageId": "ami-0123", "InstanceType": "t3.micro"})
    start = virtual_now(server)
    group(server, "g", net["subnet"], lt)
    wait_virtual(server, start + 75)  # attempts at 0, 10, 30, 70; the next at 150
    assert len(failed(server, "g")) == 4
    asg.suspend_processes(AutoScalingGroupName="g", ScalingProcesses=["Launch"])
    assert [p["ProcessName"] for p in asg.describe_auto_scaling_groups(AutoScalingGroupNames=["g"])
            ["AutoScalingGroups"][0]["SuspendedProcesses"]] == ["Launch"]
    wait_virtual(server, start + 160)  # the retry at 150 fell due while suspended
    assert len(failed(server, "g")) == 4
    # Still failing after the resume: one attempt at once, then the back-off from its count
    # (the 6th failure waits 160 s, capped at 300: not 10 s as after a first one).
    asg.resume_processes(AutoScalingGroupName="g", ScalingProcesses=["Launch"])
    assert len(failed(server, "g")) == 5
    resumed = virtual_now(server)
    asg.suspend_processes(AutoScalingGroupName="g", ScalingProcesses=["Launch"])
    server.client("ec2").create_launch_template_version(
        LaunchTemplateId=lt, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"}
    )
    use_version(server, "g", lt, "2")
    wait_virtual(server, resumed + 30)
    assert group_instances(server, "g") == [] and len(failed(server, "g")) == 5
    asg.resume_processes(AutoScalingGroupName="g", ScalingProcesses=["Launch"])
    launched = group_instances(server, "g")
    assert len(launched) == 1 and virtual_now(server) < resumed + 160
    assert len(failed(server, "g")) == 5


def test_the_fast_profile_retries_every_virtual_second_not_in_a_loop(server, net):
    """launch_retry_s 0 (fast): the group still waits 1 virtual second between attempts."""
    lt = template(server, {"ImageId": "ami-0123", "InstanceType": "t3.micro"})
    start = virtual_now(server)
    group(server, "g", net["subnet"], lt)
    wait_virtual(server, start + 30)
    attempts = len(failed(server, "g"))
    assert 10 <= attempts <= 31, attempts


def test_describe_scaling_activities_follows_each_launch(server, net):
    """DescribeScalingActivities (Auto Scaling API Reference): a launch held by a lifecycle
    hook is MidLifecycleAction, Successful after CONTINUE; ABANDON cancels it with AWS's
    status message; activities in progress come first, then the newest; MaxRecords and
    NextToken page; AutoScalingGroupName, ActivityIds and IncludeDeletedGroups filter."""
    asg = server.client("autoscaling")
    create_group(server, "plain", net)
    create_group(server, "g", net, [hook()])
    first = group_instances(server, "g")[0]["InstanceId"]
    [held] = activities(server, "g")
    assert (held["Description"], held["StatusCode"], held["Progress"]) == (
        f"Launching a new EC2 instance: {first}", "MidLifecycleAction", 50
    )
    assert "EndTime" not in held and "StatusMessage" not in held
    assert held["Cause"].endswith(
        "an instance was started in response to a difference between desired and actual capacity, "
        "increasing the capacity from 0 to 1."
    )
    assert held["AutoScalingGroupARN"].endswith(":autoScalingGroupName/g")
    token = server.ctl("GET", "/lifecycle-actions")[0]["LifecycleActionToken"]
    asg.complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", LifecycleActionToken=token, LifecycleActionResult="ABANDON"
    )
    second = wait_for(lambda: [i for i in group_instances(server, "g") if i["InstanceId"] != first], timeout=5)[0]["InstanceId"]
    in_progress, cancelled = activities(server, "g")
    assert (in_progress["Description"], in_progress["StatusCode"]) == (f"Launching a new EC2 instance: {second}", "MidLifecycleAction")
    assert (cancelled["ActivityId"], cancelled["StatusCode"], cancelled["Progress"]) == (held["ActivityId"], "Cancelled", 100)
    assert cancelled["StatusMessage"] == (
        f"Instance failed to complete user's Lifecycle Action: Lifecycle Action with token {token} was abandoned: "
        "Lifecycle Action Completed with ABANDON Result"
    )
    asg.complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=second, LifecycleActionResult="CONTINUE"
    )
    done = activities(server, "g")
    assert [a["StatusCode"] for a in done] == ["Successful", "Cancelled"]
    assert done[0]["EndTime"] >= done[0]["StartTime"]

    # Paging: one record a page, NextToken to the next; all groups without a name.
    everything = activities(server)
    assert sorted(a["AutoScalingGroupName"] for a in everything) == ["g", "g", "plain"]
    page = asg.describe_scaling_activities(MaxRecords=1)
    assert len(page["Activities"]) == 1 and page["NextToken"]
    rest = asg.describe_scaling_activities(MaxRecords=5, NextToken=page["NextToken"])
    assert page["Activities"] + rest["Activities"] == everything and "NextToken" not in rest
    picked = asg.describe_scaling_activities(ActivityIds=[held["ActivityId"]])["Activities"]
    assert [a["ActivityId"] for a in picked] == [held["ActivityId"]]

    # A deleted group's activities are listed only with IncludeDeletedGroups.
    asg.delete_auto_scaling_group(AutoScalingGroupName="plain", ForceDelete=True)
    assert activities(server, "plain") == []
    assert len(activities(server, "plain", IncludeDeletedGroups=True)) == 1


def test_a_heartbeat_timeout_with_abandon_cancels_the_launch_activity(server, net):
    """A launch hook whose HeartbeatTimeout runs out applies its DefaultResult; with ABANDON
    the launch's activity is Cancelled, its message ending "was abandoned: Heartbeat Timeout"."""
    create_group(server, "g", net, [hook(timeout=30, default="ABANDON")])  # 0.3 s
    first = group_instances(server, "g")[0]["InstanceId"]
    token = server.ctl("GET", "/lifecycle-actions")[0]["LifecycleActionToken"]
    held = wait_for(
        lambda: [a for a in activities(server, "g") if a["Description"].endswith(first) and a["StatusCode"] == "Cancelled"],
        timeout=5, what="the launch cancelled",
    )[0]
    assert held["StatusMessage"] == (
        f"Instance failed to complete user's Lifecycle Action: Lifecycle Action with token {token} was abandoned: "
        "Heartbeat Timeout"
    )
