"""The loss of a whole Availability Zone (localaws/zoneoutage.py, control API
``/_localaws/zone-outage``, profile setting ``zone_outage_terminate_s``). The module's server
runs the fast profile at clock scale 0.01: 100 s of AWS time is 1 s here. Zone A is out,
zone B is the other zone that must stay untouched."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from conftest import AMI, group_instances, network, wait_for

A, B, C = "ap-southeast-2a", "ap-southeast-2b", "ap-southeast-2c"
LONG = 100_000  # zone_outage_terminate_s that never comes within a test


def ice(zone: str, others: str, itype: str = "t3.micro") -> str:
    return (f"We currently do not have sufficient {itype} capacity in the Availability Zone you requested ({zone}). "
            "Our system will be working on provisioning additional capacity. You can currently get "
            f"{itype} capacity by not specifying an Availability Zone in your request or choosing {others}.")


@pytest.fixture
def nets(server):
    server.reset()  # also ends every outage and restores the fast profile
    ec2 = server.client("ec2")
    a = network(server, A)
    b_subnet = ec2.create_subnet(VpcId=a["vpc"], CidrBlock="10.0.2.0/24", AvailabilityZone=B)["Subnet"]["SubnetId"]
    return {"a": a["subnet"], "b": b_subnet, "vpc": a["vpc"], "lt": a["launch_template"]}


def out(server, zone=A, **profile):
    if profile:
        server.ctl("POST", "/profile", profile)
    return server.ctl("POST", "/zone-outage", {"zone": zone})


def back(server, zone=A):
    return server.ctl("DELETE", f"/zone-outage?zone={zone}")


def refused(call):
    with pytest.raises(ClientError) as err:
        call()
    r = err.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def run(server, subnet):
    return server.client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                              SubnetId=subnet)["Instances"][0]["InstanceId"]


def state(server, iid):
    return server.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def status(server, iid):
    found = server.client("ec2").describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
    return found[0] if found else None


def volume_status(server, vol):
    s = server.client("ec2").describe_volume_status(VolumeIds=[vol])["VolumeStatuses"][0]
    return s["VolumeStatus"]["Status"], {d["Name"]: d["Status"] for d in s["VolumeStatus"]["Details"]}


def group(server, name, subnet, lt):
    server.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"})


def failed(server, name):
    acts = server.client("autoscaling").describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    return [a for a in acts if a["StatusCode"] == "Failed"]


def test_control_api_starts_lists_ends_and_reset_ends_all(server, nets):
    assert server.ctl("GET", "/zone-outage") == []
    started = out(server, A, zone_outage_terminate_s=LONG)
    assert started["zone"] == A and started["terminate_in_s"] > LONG - 100 and started["terminated"] == []
    assert out(server, A)["since_s"] >= started["since_s"]  # a repeat keeps the outage (and its clock)
    out(server, B)
    assert sorted(o["zone"] for o in server.ctl("GET", "/zone-outage")) == [A, B]
    assert back(server, A) == {"ended": [A]}
    assert [o["zone"] for o in server.ctl("GET", "/zone-outage")] == [B]
    with pytest.raises(AssertionError, match="HTTP 400"):
        back(server, A)  # not out
    with pytest.raises(AssertionError, match="HTTP 400"):
        server.ctl("POST", "/zone-outage", {"zone": "ap-southeast-2z"})
    with pytest.raises(AssertionError, match="HTTP 400"):
        server.ctl("POST", "/zone-outage", {"zone": A, "minutes": 3})
    assert server.ctl("GET", "/profile")["zone_outage_terminate_s"] == LONG
    server.reset()
    assert server.ctl("GET", "/zone-outage") == []
    assert server.ctl("GET", "/profile")["zone_outage_terminate_s"] == 0
    assert server.ctl("POST", "/profile", {"name": "realistic"})["zone_outage_terminate_s"] == 300
    server.reset()


def test_run_instances_into_the_zone_is_refused_and_another_zone_launches(server, nets):
    """EC2's zone-level capacity error, HTTP 500, nothing created; the zones offered instead
    leave out the zone that is out (and every other one out: C here)."""
    ec2 = server.client("ec2")
    out(server, A, zone_outage_terminate_s=LONG)
    out(server, C)
    assert refused(lambda: run(server, nets["a"])) == (500, "InsufficientInstanceCapacity", ice(A, B))
    assert refused(lambda: ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                             Placement={"AvailabilityZone": A}))[1] == "InsufficientInstanceCapacity"
    assert ec2.describe_instances()["Reservations"] == []
    other = run(server, nets["b"])
    assert state(server, other) == "running"
    server.ctl("DELETE", "/zone-outage")  # every zone back
    assert state(server, run(server, nets["a"])) == "running"


def test_a_group_launch_into_the_zone_fails_with_a_failed_activity_until_it_is_back(server, nets):
    out(server, A, zone_outage_terminate_s=LONG)
    group(server, "g", nets["a"], nets["lt"])
    wait_for(lambda: len(failed(server, "g")) >= 2, timeout=5, what="failed launches, retried")
    for activity in failed(server, "g"):
        assert activity["StatusMessage"] == ice(A, f"{B}, {C}") + " Launching EC2 instance failed."
    assert group_instances(server, "g") == []
    back(server, A)
    launched = wait_for(lambda: group_instances(server, "g"), timeout=5, what="a launch once the zone is back")
    assert state(server, launched[0]["InstanceId"]) == "running"


def test_its_instances_are_impaired_then_terminated_another_zone_untouched(server, nets):
    """Status checks fail (reachability failed) while the zone is out; after
    zone_outage_terminate_s (here 200 AWS s = 2 s) the zone's instances are terminated; the
    instance in zone B stays running with its checks ok."""
    in_a, in_b = run(server, nets["a"]), run(server, nets["b"])
    assert status(server, in_a)["SystemStatus"]["Status"] == "ok"
    started = time.monotonic()
    out(server, A, zone_outage_terminate_s=200)
    seen = status(server, in_a)
    assert time.monotonic() - started < 2, "looked after the termination time: the test proves nothing"
    for check in ("SystemStatus", "InstanceStatus"):
        assert seen[check]["Status"] == "impaired", seen
        assert [(d["Name"], d["Status"]) for d in seen[check]["Details"]] == [("reachability", "failed")]
        assert "ImpairedSince" in seen[check]["Details"][0]
    assert state(server, in_a) == "running"  # running, but not answering
    wait_for(lambda: state(server, in_a) == "terminated", timeout=10, what="the zone's instance terminated")
    assert server.ctl("GET", "/zone-outage")[0]["terminated"] == [in_a]
    assert state(server, in_b) == "running"
    assert status(server, in_b)["SystemStatus"]["Status"] == "ok"
    assert status(server, in_b)["InstanceStatus"]["Status"] == "ok"
    back(server, A)
    assert state(server, in_a) == "terminated"  # stays terminated


def test_a_group_instance_terminated_by_the_outage_is_replaced_and_the_replacement_fails(server, nets):
    group(server, "g", nets["a"], nets["lt"])
    first = wait_for(lambda: group_instances(server, "g"), timeout=5, what="the group's instance")[0]["InstanceId"]
    out(server, A, zone_outage_terminate_s=100)
    wait_for(lambda: state(server, first) == "terminated", timeout=10, what="terminated by the outage")
    wait_for(lambda: failed(server, "g"), timeout=5, what="the replacement's failed launch")
    assert failed(server, "g")[0]["StatusMessage"] == ice(A, f"{B}, {C}") + " Launching EC2 instance failed."
    assert group_instances(server, "g") == []
    back(server, A)
    second = wait_for(lambda: group_instances(server, "g"), timeout=5, what="the replacement")[0]["InstanceId"]
    assert second != first and state(server, first) == "terminated"


def test_describe_volume_status_is_ok_then_impaired_in_the_zone_only(server, nets):
    """moto had no DescribeVolumeStatus: ok/passed for every volume, io-performance only for
    Provisioned IOPS volumes (not-applicable otherwise)."""
    ec2 = server.client("ec2")
    va = ec2.create_volume(AvailabilityZone=A, Size=8, VolumeType="gp3")["VolumeId"]
    vio = ec2.create_volume(AvailabilityZone=A, Size=8, VolumeType="io1", Iops=100)["VolumeId"]
    vb = ec2.create_volume(AvailabilityZone=B, Size=8, VolumeType="gp3")["VolumeId"]
    assert volume_status(server, va) == ("ok", {"io-enabled": "passed", "io-performance": "not-applicable"})
    assert volume_status(server, vio) == ("ok", {"io-enabled": "passed", "io-performance": "normal"})
    assert len(ec2.describe_volume_status()["VolumeStatuses"]) == 3
    out(server, A, zone_outage_terminate_s=LONG)
    assert volume_status(server, va) == ("impaired", {"io-enabled": "failed", "io-performance": "not-applicable"})
    assert volume_status(server, vio) == ("impaired", {"io-enabled": "failed", "io-performance": "stalled"})
    assert volume_status(server, vb) == ("ok", {"io-enabled": "passed", "io-performance": "not-applicable"})
    impaired = ec2.describe_volume_status(Filters=[{"Name": "volume-status.status", "Values": ["impaired"]}])
    assert sorted(s["VolumeId"] for s in impaired["VolumeStatuses"]) == sorted([va, vio])
    back(server, A)
    assert volume_status(server, va)[0] == "ok" and volume_status(server, vio)[0] == "ok"


def test_ebs_calls_on_the_zone_fail_and_work_again_when_it_is_back(server, nets):
    ec2 = server.client("ec2")
    iid = run(server, nets["a"])
    attached = ec2.create_volume(AvailabilityZone=A, Size=8)["VolumeId"]
    ec2.attach_volume(VolumeId=attached, InstanceId=iid, Device="/dev/sdf")
    loose = ec2.create_volume(AvailabilityZone=A, Size=8)["VolumeId"]
    in_b = ec2.create_volume(AvailabilityZone=B, Size=8)["VolumeId"]
    out(server, A, zone_outage_terminate_s=LONG)
    internal = (500, "InternalError", "An internal error has occurred")
    assert refused(lambda: ec2.attach_volume(VolumeId=loose, InstanceId=iid, Device="/dev/sdg")) == internal
    assert refused(lambda: ec2.detach_volume(VolumeId=attached)) == internal
    assert refused(lambda: ec2.create_snapshot(VolumeId=attached)) == internal
    assert refused(lambda: ec2.delete_volume(VolumeId=loose)) == internal
    code = refused(lambda: ec2.create_volume(AvailabilityZone=A, Size=8))
    assert code[:2] == (500, "InsufficientVolumeCapacity") and "different availability zone" in code[2]
    assert ec2.describe_volumes(VolumeIds=[attached])["Volumes"][0]["Attachments"][0]["State"] == "attached"
    # Zone B untouched.
    ec2.create_snapshot(VolumeId=in_b)
    ec2.delete_volume(VolumeId=ec2.create_volume(AvailabilityZone=B, Size=8)["VolumeId"])
    back(server, A)
    ec2.create_snapshot(VolumeId=attached)
    ec2.detach_volume(VolumeId=attached)
    ec2.attach_volume(VolumeId=loose, InstanceId=iid, Device="/dev/sdg")
    ec2.create_volume(AvailabilityZone=A, Size=8)


def test_completed_snapshots_restore_in_another_zone_pending_ones_wait(server, nets):
    """Snapshots are regional: a completed one of a zone-A volume makes a volume in zone B
    while A is out. One still pending when A goes out stays pending past its time (300 AWS
    s = 3 s), its progress frozen, and completes once A is back."""
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone=A, Size=2)["VolumeId"]
    done = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]  # fast profile: completed at once
    server.ctl("POST", "/profile", {"snapshot_s": 300})
    pending = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    out(server, A, zone_outage_terminate_s=LONG)
    restored = ec2.create_volume(AvailabilityZone=B, SnapshotId=done)
    assert restored["AvailabilityZone"] == B and restored["SnapshotId"] == done and restored["Size"] == 2

    def shown():
        return ec2.describe_snapshots(SnapshotIds=[pending])["Snapshots"][0]

    frozen = shown()
    assert frozen["State"] == "pending"
    time.sleep(3.5)  # past the snapshot's own time
    later = shown()
    assert (later["State"], later["Progress"]) == ("pending", frozen["Progress"])
    assert refused(lambda: ec2.create_volume(AvailabilityZone=B, SnapshotId=pending))[1] == "IncorrectState"
    back(server, A)
    wait_for(lambda: shown()["State"] == "completed", timeout=10, what="the held snapshot completed")
    ec2.create_volume(AvailabilityZone=B, SnapshotId=pending)
