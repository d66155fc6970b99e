"""An instance's life (localaws/instancelife.py): pending before running, shutting-down
before terminated, and what a group does meanwhile. The module's server runs the fast
profile; each test sets the profile settings it shows (clock scale 0.01: 100 s of AWS
time is 1 s here)."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from conftest import AMI, create_group, group_instances, hook, instance_state, network, wait_for
from conftest import new_volume as volume
from conftest import run_instance as run
from conftest import volume_view as describe_volume


@pytest.fixture
def net(server):
    server.reset()  # also back to the fast profile
    return network(server)


def profile(server, **settings):
    return server.ctl("POST", "/profile", settings)


def state_of(server, iid):
    res = server.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"]
    return res[0]["Instances"][0]["State"]


def error_of(call):
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response


def test_a_launch_is_pending_for_pending_s_then_running(server, net):
    """EC2 User Guide, "Amazon EC2 instance state changes": a launched instance is `pending`
    (code 0) before it is `running` (16). Meanwhile AWS refuses AttachVolume ("IncorrectState:
    Instance 'i-..' is not 'running'.") and AssociateAddress ("InvalidInstanceID: The pending
    instance 'i-..' is not in a valid state for this operation.")."""
    # 5 s: the checks below must all run inside the pending window, also on a loaded machine
    # (tools/test runs this suite beside the Terraform tests; 0.6 s was not enough there).
    profile(server, pending_s=500)
    ec2 = server.client("ec2")
    started = time.monotonic()
    iid = run(server, net)
    assert state_of(server, iid) == {"Code": 0, "Name": "pending"}
    pending = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending"]}])
    assert [i["InstanceId"] for r in pending["Reservations"] for i in r["Instances"]] == [iid]
    # DescribeInstanceStatus lists running instances only unless asked for all.
    assert ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"] == []
    vol = volume(server)
    err = error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf"))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("IncorrectState", f"Instance '{iid}' is not 'running'.")
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    err = error_of(lambda: ec2.associate_address(AllocationId=alloc, InstanceId=iid))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == (
        "InvalidInstanceID", f"The pending instance '{iid}' is not in a valid state for this operation."
    )
    assert time.monotonic() - started < 5.0, "the checks above ran after pending_s: the test proves nothing"
    wait_for(lambda: state_of(server, iid)["Name"] == "running", timeout=10, what="running")
    assert state_of(server, iid) == {"Code": 16, "Name": "running"}
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    ec2.associate_address(AllocationId=alloc, InstanceId=iid)
    assert describe_volume(server, vol) == ("in-use", [(iid, "attached")])


def test_terminate_shuts_down_then_terminates_and_only_then_lets_go(server, net):
    """EC2 User Guide, "Terminate Amazon EC2 instances": TerminateInstances answers
    PreviousState running / CurrentState shutting-down (32); the instance is terminated
    (48) later. Until then its EBS volumes stay attached and its Elastic IP associated;
    at terminated, volumes with DeleteOnTermination are deleted, the others detach and the
    address is disassociated."""
    ec2 = server.client("ec2")
    iid = run(server, net)
    root = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    data = volume(server)
    ec2.attach_volume(VolumeId=data, InstanceId=iid, Device="/dev/sdf")
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=iid)
    profile(server, shutdown_s=100)  # 1 s, read when the termination starts

    started = time.monotonic()
    first = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert (first["PreviousState"], first["CurrentState"]) == (
        {"Code": 16, "Name": "running"}, {"Code": 32, "Name": "shutting-down"}
    )
    assert state_of(server, iid) == {"Code": 32, "Name": "shutting-down"}
    assert describe_volume(server, data) == ("in-use", [(iid, "attached")])
    assert describe_volume(server, root) == ("in-use", [(iid, "attached")])
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["InstanceId"] == iid
    # AttachVolume to an instance that is going away keeps its refusal.
    other = volume(server)
    err = error_of(lambda: ec2.attach_volume(VolumeId=other, InstanceId=iid, Device="/dev/sdg"))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("IncorrectState", f"Instance '{iid}' is not 'running'.")
    # A second TerminateInstances halfway does not restart the shutdown.
    time.sleep(0.5)
    again = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert (again["PreviousState"], again["CurrentState"]) == (
        {"Code": 32, "Name": "shutting-down"}, {"Code": 32, "Name": "shutting-down"}
    )
    wait_for(lambda: state_of(server, iid)["Name"] == "terminated", timeout=5, what="terminated")
    elapsed = time.monotonic() - started
    assert 0.95 <= elapsed < 1.4, f"terminated after {elapsed:.2f} s: the second call must not restart the 1 s shutdown"
    assert state_of(server, iid) == {"Code": 48, "Name": "terminated"}
    wait_for(lambda: describe_volume(server, data) == ("available", []), timeout=5, what="the data volume available")
    assert ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [root]}])["Volumes"] == []
    address = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert "InstanceId" not in address and "AssociationId" not in address
    # Terminating a terminated instance: AWS answers terminated / terminated.
    last = ec2.terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert (last["PreviousState"], last["CurrentState"]) == (
        {"Code": 48, "Name": "terminated"}, {"Code": 48, "Name": "terminated"}
    )


def test_terminating_a_pending_instance_reports_pending_as_its_previous_state(server, net):
    """TerminateInstances' PreviousState is the state AWS showed: pending (code 0)."""
    profile(server, pending_s=1000, shutdown_s=0)
    iid = run(server, net)
    answer = server.client("ec2").terminate_instances(InstanceIds=[iid])["TerminatingInstances"][0]
    assert answer["PreviousState"] == {"Code": 0, "Name": "pending"}
    assert state_of(server, iid)["Name"] == "terminated"


def test_a_hung_guest_shuts_down_for_minutes(server, net):
    """The "hung guest" (EC2 User Guide, "Troubleshoot terminating (shutting down) your
    instance": an instance can stay shutting-down for several minutes): {"shutdown_s": 300}.
    At clock scale 0.002 five minutes of AWS time take 0.6 s."""
    ec2 = server.client("ec2")
    iid = run(server, net)
    data = volume(server)
    ec2.attach_volume(VolumeId=data, InstanceId=iid, Device="/dev/sdf")
    assert profile(server, shutdown_s=300)["shutdown_s"] == 300
    server.ctl("POST", "/clock", {"scale": 0.002})
    try:
        ec2.terminate_instances(InstanceIds=[iid])
        time.sleep(0.3)  # 150 s of AWS time
        assert state_of(server, iid)["Name"] == "shutting-down"
        assert describe_volume(server, data) == ("in-use", [(iid, "attached")])
        wait_for(lambda: state_of(server, iid)["Name"] == "terminated", timeout=5, what="terminated")
        wait_for(lambda: describe_volume(server, data) == ("available", []), timeout=5, what="available")
    finally:
        server.ctl("POST", "/clock", {"scale": 0.01})


def test_a_reset_drops_the_shutdowns_under_way(server, net):
    """POST /_localaws/reset drops background work: a shutdown timer from before never fires."""
    profile(server, shutdown_s=30)
    iid = run(server, net)
    server.client("ec2").terminate_instances(InstanceIds=[iid])
    server.reset()
    time.sleep(0.5)  # 50 s of AWS time: past the shutdown's end
    assert f"instance {iid}: shutting-down -> terminated" not in server.stderr()
    assert server.ctl("GET", "/profile")["name"] == "fast"


def test_a_held_launch_waits_while_ec2_still_says_pending(server, net):
    """AWS's order: the launch lifecycle hook fires (Pending:Wait, the EventBridge "EC2
    Instance-launch Lifecycle Action" event) when the group launches the instance, while
    EC2 still shows it pending; the handler must wait for running."""
    profile(server, pending_s=100)  # 1 s
    create_group(server, "g", net, [hook()])
    iid = group_instances(server, "g")[0]["InstanceId"]
    assert group_instances(server, "g")[0]["LifecycleState"] == "Pending:Wait"
    assert [a["InstanceId"] for a in server.ctl("GET", "/lifecycle-actions")] == [iid]
    events = [e for e in server.ctl("GET", "/events") if e["detail-type"] == "EC2 Instance-launch Lifecycle Action"]
    assert [e["event"]["detail"]["EC2InstanceId"] for e in events] == [iid]
    assert instance_state(server, iid) == "pending"
    wait_for(lambda: instance_state(server, iid) == "running", timeout=5, what="running")
    assert group_instances(server, "g")[0]["LifecycleState"] == "Pending:Wait"


def test_the_replacement_launches_while_the_terminated_instance_still_holds_its_volume(server, net):
    """An instance of a group terminated through EC2 is unhealthy to Auto Scaling, which
    launches a replacement at once (Auto Scaling User Guide, "Health checks for instances
    in an Auto Scaling group"), while EC2 is still shutting the old one down with its
    volume attached: AttachVolume to the new instance answers VolumeInUse ("vol-.. is
    already attached to an instance") until the old one is terminated and the volume
    detached."""
    profile(server, pending_s=20, shutdown_s=100)  # 0.2 s, 1 s
    ec2 = server.client("ec2")
    asg = server.client("autoscaling")
    create_group(server, "g", net, [hook()])
    old = group_instances(server, "g")[0]["InstanceId"]
    asg.complete_lifecycle_action(
        AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=old, LifecycleActionResult="CONTINUE"
    )
    wait_for(lambda: instance_state(server, old) == "running", timeout=5, what="the first instance running")
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=old, Device="/dev/sdf")

    ec2.terminate_instances(InstanceIds=[old])
    new = [i for i in group_instances(server, "g") if i["InstanceId"] != old]
    assert len(new) == 1 and new[0]["LifecycleState"] == "Pending:Wait"
    new_id = new[0]["InstanceId"]
    actions = server.ctl("GET", "/lifecycle-actions")
    assert [a["InstanceId"] for a in actions] == [new_id]
    assert instance_state(server, old) == "shutting-down"
    assert describe_volume(server, vol) == ("in-use", [(old, "attached")])
    wait_for(lambda: instance_state(server, new_id) == "running", timeout=5, what="the replacement running")
    assert instance_state(server, old) == "shutting-down"
    err = error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=new_id, Device="/dev/sdf"))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("VolumeInUse", f"{vol} is already attached to an instance")

    wait_for(lambda: describe_volume(server, vol) == ("available", []), timeout=5, what="the volume available")
    assert instance_state(server, old) == "terminated"
    ec2.attach_volume(VolumeId=vol, InstanceId=new_id, Device="/dev/sdf")
    assert describe_volume(server, vol) == ("in-use", [(new_id, "attached")])
