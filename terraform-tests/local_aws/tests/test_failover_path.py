"""The calls of a zone failover (docs/zone-failover.md, sections 2 and 3), each as AWS answers it.

The failover function detects the loss of the home zone (DescribeScalingActivities,
DescribeVolumeStatus, DescribeAutoScalingGroups), restores the newest completed snapshot with
CreateVolume in a failover zone, tags the group (``autoheal:active-volume``,
``autoheal:active-zone``, PropagateAtLaunch) and moves the group's VPCZoneIdentifier there; the
group's next launch carries the tags, and the heal function reads them from the instance. Each
test here is one behaviour of that path, with the AWS page it follows. The module's server runs
the fast profile at clock scale 0.01 (100 AWS seconds are 1 s here); a test that shows a timing
sets it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, AMI, REGION, create_function, group_instances, hook, network, wait_for

A, B = "ap-southeast-2a", "ap-southeast-2b"
LONG = 100_000  # zone_outage_terminate_s that never comes within a test


@pytest.fixture
def nets(server):
    server.reset()  # also ends every outage and restores the fast profile
    ec2 = server.client("ec2")
    a = network(server, A)
    b_subnet = ec2.create_subnet(VpcId=a["vpc"], CidrBlock="10.0.2.0/24", AvailabilityZone=B)["Subnet"]["SubnetId"]
    return {"a": a["subnet"], "b": b_subnet, "vpc": a["vpc"], "lt": a["launch_template"]}


def asg_tag(group: str, key: str, value: str, propagate: bool) -> dict:
    return {"ResourceId": group, "ResourceType": "auto-scaling-group", "Key": key, "Value": value,
            "PropagateAtLaunch": propagate}


def instance_tags(server, iid: str) -> dict[str, str]:
    inst = server.client("ec2").describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def group_doc(server, name: str) -> dict:
    return server.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def activities(server, name: str) -> list[dict]:
    pages = server.client("autoscaling").get_paginator("describe_scaling_activities").paginate(AutoScalingGroupName=name)
    return [a for page in pages for a in page["Activities"]]


def virtual_now(server) -> float:
    return server.ctl("GET", "/clock")["virtual_now"]


def launched(server, name: str, other_than: str | None = None) -> str:
    """The id of the group's instance (one that is not ``other_than``), once there is one."""
    return wait_for(lambda: next((i["InstanceId"] for i in group_instances(server, name)
                                  if i["InstanceId"] != other_than), None), timeout=10, what=f"{name} launched")


# -- 1. tags propagated at launch ----------------------------------------------------------------


def test_a_launch_copies_the_propagating_tags_only_and_the_group_lists_them_all(server, nets):
    """Auto Scaling User Guide, "Tag Auto Scaling groups and instances": a tag with
    PropagateAtLaunch true is added to the instances the group launches, at their creation,
    with ``aws:autoscaling:groupName``; one with false stays on the group. A launch template's
    instance tag of the same key is overridden by the group's ("Amazon EC2 Auto Scaling
    overrides the tag value from your launch template with the value for the same key specified
    by the Auto Scaling group"). DescribeAutoScalingGroups lists every tag with its
    PropagateAtLaunch."""
    ec2, asg = server.client("ec2"), server.client("autoscaling")
    lt = ec2.create_launch_template(LaunchTemplateName="tagged", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "both", "Value": "template"},
                                                                   {"Key": "template-only", "Value": "t"}]}],
    })["LaunchTemplate"]["LaunchTemplateId"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"},
        Tags=[asg_tag("g", "autoheal:stack", "st", True), asg_tag("g", "group-only", "g", False),
              asg_tag("g", "both", "group", True)])
    tags = instance_tags(server, launched(server, "g"))
    assert tags["autoheal:stack"] == "st" and tags["aws:autoscaling:groupName"] == "g"
    assert tags["both"] == "group" and tags["template-only"] == "t"
    assert "group-only" not in tags
    listed = {t["Key"]: (t["Value"], t["PropagateAtLaunch"], t["ResourceId"], t["ResourceType"])
              for t in group_doc(server, "g")["Tags"]}
    assert listed == {"autoheal:stack": ("st", True, "g", "auto-scaling-group"),
                      "group-only": ("g", False, "g", "auto-scaling-group"),
                      "both": ("group", True, "g", "auto-scaling-group")}


def test_tags_set_after_creation_go_to_later_launches_not_to_running_instances(server, nets):
    """Same page, "Add or modify tags for your Auto Scaling group": "If you modify a tag, the
    updated version of the tag is added to instances launched in the Auto Scaling group after
    the change. If you create or modify a tag for an Auto Scaling group, these changes are not
    made to instances that are already running". CreateOrUpdateTags replaces a key's tag whole:
    a tag turned to PropagateAtLaunch false is no longer copied."""
    asg = server.client("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": nets["lt"], "Version": "$Latest"},
        Tags=[asg_tag("g", "autoheal:stack", "st", True), asg_tag("g", "was-propagated", "x", True)])
    first = launched(server, "g")
    asg.create_or_update_tags(Tags=[asg_tag("g", "autoheal:active-volume", "vol-0123456789abcdef0", True),
                                    asg_tag("g", "autoheal:active-zone", B, True),
                                    asg_tag("g", "autoheal:stack", "st2", True),
                                    asg_tag("g", "was-propagated", "x", False)])
    assert instance_tags(server, first)["autoheal:stack"] == "st"
    assert "autoheal:active-volume" not in instance_tags(server, first)
    server.client("ec2").terminate_instances(InstanceIds=[first])
    tags = instance_tags(server, launched(server, "g", other_than=first))
    assert (tags["autoheal:active-volume"], tags["autoheal:active-zone"], tags["autoheal:stack"]) == (
        "vol-0123456789abcdef0", B, "st2")
    assert "was-propagated" not in tags
    listed = {t["Key"]: t["PropagateAtLaunch"] for t in group_doc(server, "g")["Tags"]}
    assert listed == {"autoheal:stack": True, "was-propagated": False, "autoheal:active-volume": True,
                      "autoheal:active-zone": True}


def test_a_held_launch_already_carries_the_tags_in_pending_wait(server, nets):
    """The heal function reads ``autoheal:active-volume`` from the instance while the launch
    hook holds it: the group adds the tags "during resource creation rather than after" (same
    page, "Tagging lifecycle"), so they are there in Pending:Wait."""
    asg = server.client("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": nets["lt"], "Version": "$Latest"},
        LifecycleHookSpecificationList=[hook(timeout=600)],
        Tags=[asg_tag("g", "autoheal:active-volume", "vol-0aaaaaaaaaaaaaaaa", True)])
    [inst] = group_instances(server, "g")
    assert inst["LifecycleState"] == "Pending:Wait"
    assert instance_tags(server, inst["InstanceId"])["autoheal:active-volume"] == "vol-0aaaaaaaaaaaaaaaa"


# -- 2. moving the group while its launches fail --------------------------------------------------


def test_moving_a_failing_group_to_a_healthy_zone_launches_there_at_its_next_attempt(server, nets):
    """Zone A is out and the group's launches into it fail, retried with its back-off (launch
    failures). The failover tags the group, then UpdateAutoScalingGroup moves VPCZoneIdentifier
    to zone B's subnet. The update launches nothing by itself (it changes no capacity); the
    group's next attempt, at its back-off time, goes to the new subnet and succeeds: a
    ``Successful`` activity whose Details name subnet B and zone B, listed before the
    ``Failed`` ones (newest first), which name subnet A. The instance carries the tags set while
    the launches failed. AWS does not document how soon a group retries after such an update;
    this emulation is never kinder than the retry already due."""
    asg = server.client("autoscaling")
    server.ctl("POST", "/profile", {"launch_retry_s": 100, "launch_retry_cap_s": 100,
                                    "zone_outage_terminate_s": LONG})
    server.ctl("POST", "/zone-outage", {"zone": A})
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": nets["lt"], "Version": "$Latest"},
        Tags=[asg_tag("g", "autoheal:stack", "st", True)])
    wait_for(lambda: len(activities(server, "g")) >= 2, timeout=10, what="a failed retry")
    last_failure = virtual_now(server)
    asg.create_or_update_tags(Tags=[asg_tag("g", "autoheal:active-volume", "vol-0bbbbbbbbbbbbbbbb", True),
                                    asg_tag("g", "autoheal:active-zone", B, True)])
    asg.update_auto_scaling_group(AutoScalingGroupName="g", VPCZoneIdentifier=nets["b"])
    doc = group_doc(server, "g")
    assert (doc["VPCZoneIdentifier"], doc["AvailabilityZones"], doc["Instances"]) == (nets["b"], [B], [])
    iid = launched(server, "g")
    # Not before the retry that was due 100 AWS seconds after the last failure.
    assert virtual_now(server) >= last_failure + 50
    [inst] = group_instances(server, "g")
    assert inst["AvailabilityZone"] == B
    acts = activities(server, "g")
    newest, failures = acts[0], acts[1:]
    assert (newest["StatusCode"], newest["Description"]) == ("Successful", f"Launching a new EC2 instance: {iid}")
    assert newest["Details"] == f'{{"Subnet ID":"{nets["b"]}","Availability Zone":"{B}"}}'
    assert len(failures) >= 2 and all(a["StatusCode"] == "Failed" for a in failures)
    assert all(a["Details"] == f'{{"Subnet ID":"{nets["a"]}","Availability Zone":"{A}"}}' for a in failures)
    assert all(f"in the Availability Zone you requested ({A})" in a["StatusMessage"] for a in failures)
    tags = instance_tags(server, iid)
    assert (tags["autoheal:active-volume"], tags["autoheal:active-zone"], tags["autoheal:stack"]) == (
        "vol-0bbbbbbbbbbbbbbbb", B, "st")
    time.sleep(2.5)  # 250 AWS seconds: no attempt follows a success
    assert len(activities(server, "g")) == len(acts)


# -- 3. EBS and the regional APIs during the outage ---------------------------------------------


def refused(call):
    with pytest.raises(ClientError) as err:
        call()
    r = err.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def cmk_volume(server, zone: str = A) -> tuple[str, str, str]:
    """(key ARN, volume id, completed snapshot id): a gp3 volume under a customer managed key
    (named by its alias, as a user may) and a snapshot of it (fast profile: completed at once)."""
    ec2, kms = server.client("ec2"), server.client("kms")
    key = kms.create_key(Description="stack key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/stack", TargetKeyId=key["KeyId"])
    vol = ec2.create_volume(AvailabilityZone=zone, Size=10, VolumeType="gp3", Iops=4000, Throughput=250,
                            Encrypted=True, KmsKeyId="alias/stack",
                            TagSpecifications=[{"ResourceType": "volume",
                                                "Tags": [{"Key": "autoheal:stack", "Value": "st"}]}])["VolumeId"]
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    return key["Arn"], vol, snap


def test_the_regional_reads_answer_while_the_zone_is_out(server, nets):
    """EC2's and Auto Scaling's APIs are regional: DescribeVolumes, DescribeVolumeStatus,
    DescribeSnapshots, DescribeScalingActivities and DescribeAutoScalingGroups answer while a
    zone is out, about its resources too (its volume shows ``impaired``). CreateTags on a volume
    of the out zone works: tags are EC2's metadata, and AWS's account of the 2011 event lists
    the EBS control APIs it disabled in the zone ("Create Volume, Attach Volume, Detach Volume,
    and Create Snapshot", aws.amazon.com/message/65648), not tagging; we found no AWS statement
    either way, so it is kept working."""
    ec2, asg = server.client("ec2"), server.client("autoscaling")
    key, vol, snap = cmk_volume(server)
    asg.create_auto_scaling_group(
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": nets["lt"], "Version": "$Latest"})
    server.ctl("POST", "/profile", {"zone_outage_terminate_s": LONG})
    server.ctl("POST", "/zone-outage", {"zone": A})
    [shown] = ec2.describe_volumes(Filters=[{"Name": "availability-zone", "Values": [A]},
                                            {"Name": "tag:autoheal:stack", "Values": ["st"]}])["Volumes"]
    assert (shown["VolumeId"], shown["State"], shown["KmsKeyId"]) == (vol, "available", key)
    [status] = ec2.describe_volume_status(VolumeIds=[vol])["VolumeStatuses"]
    assert status["VolumeStatus"]["Status"] == "impaired"
    assert {d["Name"]: d["Status"] for d in status["VolumeStatus"]["Details"]}["io-enabled"] == "failed"
    [snapshot] = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"]
    assert (snapshot["SnapshotId"], snapshot["State"], snapshot["Encrypted"], snapshot["KmsKeyId"]) == (
        snap, "completed", True, key)
    assert group_doc(server, "g")["AutoScalingGroupName"] == "g"
    assert activities(server, "g")  # the first launch, before the outage
    ec2.create_tags(Resources=[vol], Tags=[{"Key": "autoheal:superseded-by", "Value": "vol-0ccccccccccccccccc"}])
    tags = {t["Key"]: t["Value"] for t in ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Tags"]}
    assert tags["autoheal:superseded-by"] == "vol-0ccccccccccccccccc"


def test_a_completed_snapshot_of_the_out_zone_restores_in_another_zone_with_its_key(server, nets):
    """CreateVolume from a completed snapshot of a volume of the out zone, into zone B: the
    settings asked for (VolumeType, Size, Iops, Throughput), the TagSpecifications, SnapshotId
    naming the snapshot, encrypted; the key is the one given, and without one the snapshot's
    ("Encrypted by same key" whether or not Encrypted is set: EBS User Guide, "Amazon EBS
    encryption examples", "Encryption outcomes"), always answered as the key's ARN (EC2 API
    Reference, "Volume"). The snapshot itself carries the volume's key ("Snapshot":
    KmsKeyId)."""
    ec2 = server.client("ec2")
    key, vol, snap = cmk_volume(server)
    server.ctl("POST", "/profile", {"zone_outage_terminate_s": LONG})
    server.ctl("POST", "/zone-outage", {"zone": A})
    spec = [{"ResourceType": "volume", "Tags": [{"Key": "autoheal:restored-for", "Value": "st"},
                                                {"Key": "autoheal:restored-from", "Value": snap}]}]
    made = ec2.create_volume(AvailabilityZone=B, SnapshotId=snap, VolumeType="gp3", Size=12, Iops=3500,
                             Throughput=200, Encrypted=True, KmsKeyId=key, TagSpecifications=spec)
    [shown] = ec2.describe_volumes(VolumeIds=[made["VolumeId"]])["Volumes"]
    for doc in (made, shown):
        assert (doc["AvailabilityZone"], doc["SnapshotId"], doc["VolumeType"], doc["Size"], doc["Iops"],
                doc["Throughput"], doc["Encrypted"], doc["KmsKeyId"]) == (B, snap, "gp3", 12, 3500, 200, True, key)
    assert {t["Key"]: t["Value"] for t in shown["Tags"]} == {"autoheal:restored-for": "st", "autoheal:restored-from": snap}
    for extra in ({}, {"Encrypted": True}):
        same = ec2.create_volume(AvailabilityZone=B, SnapshotId=snap, VolumeType="gp3", **extra)
        assert (same["Encrypted"], same["KmsKeyId"], same["Size"]) == (True, key, 10), extra
        # gp3's baseline when none is asked for (EBS User Guide, "General Purpose SSD volumes").
        assert (same["Iops"], same["Throughput"]) == (3000, 125)
    # Into the zone that is out: refused (zone outage), nothing made.
    code = refused(lambda: ec2.create_volume(AvailabilityZone=A, SnapshotId=snap, VolumeType="gp3"))
    assert code[:2] == (500, "InsufficientVolumeCapacity")


def test_a_created_volume_is_creating_then_available_and_cannot_be_attached_meanwhile(server, nets):
    """EC2 API Reference, CreateVolume: the answer's State is ``creating``; the volume is
    usable once ``available`` (EBS User Guide, "Create an Amazon EBS volume"). For
    ``volume_create_s`` (here 200 AWS seconds, 2 s) DescribeVolumes and its ``status`` filter
    show ``creating`` and AttachVolume answers ``IncorrectState`` ``vol-.. is not
    'available'.`` (EC2's answer, jsmartin/raidformer#5); then ``available`` and the attach
    works. A launch's root volume is not delayed. ``realistic`` waits 5 s, ``fast`` none."""
    ec2 = server.client("ec2")
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=nets["b"])["Instances"][0]["InstanceId"]
    assert ec2.create_volume(AvailabilityZone=B, Size=1)["State"] == "available"  # fast: at once
    server.ctl("POST", "/profile", {"volume_create_s": 200})
    made = ec2.create_volume(AvailabilityZone=B, Size=1, VolumeType="gp3")
    vol = made["VolumeId"]
    assert made["State"] == "creating"
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "creating"
    listed = ec2.describe_volumes(Filters=[{"Name": "status", "Values": ["creating"]}])["Volumes"]
    assert [v["VolumeId"] for v in listed] == [vol]
    assert refused(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")) == (
        400, "IncorrectState", f"{vol} is not 'available'.")
    root = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=nets["b"])["Instances"][0]
    root_volume = root["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    assert ec2.describe_volumes(VolumeIds=[root_volume])["Volumes"][0]["State"] == "in-use"
    wait_for(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available", timeout=10,
             what="the volume available")
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
    assert server.ctl("POST", "/profile", {"name": "realistic"})["volume_create_s"] == 5


# -- 4. the failover function's calls under IAM evaluation -----------------------------------------


def try_call(server, fn: str, service: str, method: str, **args: Any) -> dict[str, Any]:
    """One call made by the function ``fn`` (conftest's ``try`` mode) with its attempt's
    credentials: ``{"code": None}`` or the error's code, message and HTTP status."""
    resp = server.client("lambda").invoke(FunctionName=fn, Payload=json.dumps(
        {"service": service, "method": method, "args": args}).encode())
    return json.loads(resp["Payload"].read())


def failover_policy(home_volume: str, key: str, group_arn: str, subnet: str, kms: bool = True) -> dict[str, Any]:
    """The failover role of docs/zone-failover.md, section 3, as far as these calls go."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Resource": "*",
         "Action": ["autoscaling:DescribeScalingActivities", "autoscaling:DescribeAutoScalingGroups",
                    "ec2:DescribeVolumeStatus", "ec2:DescribeVolumes", "ec2:DescribeSnapshots"]},
        {"Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
         "Condition": {"StringEquals": {"aws:RequestTag/autoheal:restored-for": "st", "ec2:AvailabilityZone": B},
                       "Bool": {"ec2:Encrypted": "true"}}},
        {"Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": f"arn:aws:ec2:{REGION}::snapshot/*",
         "Condition": {"ArnEquals": {"ec2:ParentVolume": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/{home_volume}"}}},
        {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
         "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVolume"}}},
        {"Effect": "Allow", "Action": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:CreateOrUpdateTags"],
         "Resource": group_arn, "Condition": {"StringEquals": {"aws:ResourceTag/autoheal:stack": "st"}}},
        {"Effect": "Deny", "Action": "autoscaling:UpdateAutoScalingGroup", "Resource": group_arn,
         "Condition": {"ForAnyValue:StringNotEquals": {"autoscaling:VPCZoneIdentifiers": [subnet]}}},
    ]
    if kms:
        statements.append({"Effect": "Allow", "Resource": key,
                           "Action": ["kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKeyWithoutPlaintext"],
                           "Condition": {"StringEquals": {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def test_a_failover_functions_calls_are_decided_by_its_role(server, nets):
    """The failover's calls, made by a function under IAM evaluation: its reads on ``*``, the
    restore from a snapshot of the home volume into zone B tagged ``autoheal:restored-for``, the
    group's tags and its move to zone B's subnet are allowed; a restore into the home zone is
    refused with EC2's UnauthorizedOperation (403) naming ``volume/*``, and a move to another
    subnet with Auto Scaling's AccessDenied (403) naming the group's ARN (the explicit Deny on
    autoscaling:VPCZoneIdentifiers). Nothing is made or changed by a refused call."""
    server.ctl("POST", "/profile", {"iam_evaluation": True, "zone_outage_terminate_s": LONG})
    ec2, asg, iam = server.client("ec2"), server.client("autoscaling"), server.client("iam")
    key, vol, snap = cmk_volume(server)
    asg.create_auto_scaling_group(
        AutoScalingGroupName="st-asg", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": nets["lt"], "Version": "$Latest"},
        Tags=[asg_tag("st-asg", "autoheal:stack", "st", True)])
    group_arn = group_doc(server, "st-asg")["AutoScalingGroupARN"]
    fn = create_function(server, "st-failover", "try").split(":")[-1]
    iam.put_role_policy(RoleName="fn-role", PolicyName="failover",
                        PolicyDocument=json.dumps(failover_policy(vol, key, group_arn, nets["b"])))
    server.ctl("POST", "/zone-outage", {"zone": A})
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/{fn}"
    assert try_call(server, fn, "autoscaling", "describe_scaling_activities", AutoScalingGroupName="st-asg") == {"code": None}
    assert try_call(server, fn, "ec2", "describe_volume_status", VolumeIds=[vol]) == {"code": None}
    assert try_call(server, fn, "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=["st-asg"]) == {
        "code": None}
    spec = [{"ResourceType": "volume", "Tags": [{"Key": "autoheal:restored-for", "Value": "st"}]}]
    home = try_call(server, fn, "ec2", "create_volume", AvailabilityZone=A, SnapshotId=snap, VolumeType="gp3",
                    Encrypted=True, TagSpecifications=spec)
    assert (home["status"], home["code"]) == (403, "UnauthorizedOperation")
    assert home["message"].startswith(
        f"You are not authorized to perform this operation. User: {session} is not authorized to perform: "
        f"ec2:CreateVolume on resource: arn:aws:ec2:{REGION}:{ACCOUNT}:volume/* because no identity-based policy "
        "allows the ec2:CreateVolume action. Encoded authorization failure message: ")
    assert try_call(server, fn, "ec2", "create_volume", AvailabilityZone=B, SnapshotId=snap, VolumeType="gp3",
                    Encrypted=True, TagSpecifications=spec) == {"code": None}
    [restored] = ec2.describe_volumes(Filters=[{"Name": "tag:autoheal:restored-for", "Values": ["st"]}])["Volumes"]
    assert (restored["AvailabilityZone"], restored["KmsKeyId"], restored["SnapshotId"]) == (B, key, snap)
    tags = [asg_tag("st-asg", "autoheal:active-volume", restored["VolumeId"], True),
            asg_tag("st-asg", "autoheal:active-zone", B, True)]
    assert try_call(server, fn, "autoscaling", "create_or_update_tags", Tags=tags) == {"code": None}
    elsewhere = try_call(server, fn, "autoscaling", "update_auto_scaling_group", AutoScalingGroupName="st-asg",
                         VPCZoneIdentifier=nets["a"])
    assert (elsewhere["status"], elsewhere["code"]) == (403, "AccessDenied")
    assert elsewhere["message"] == (
        f"User: {session} is not authorized to perform: autoscaling:UpdateAutoScalingGroup on resource: {group_arn} "
        "with an explicit deny in an identity-based policy")
    assert try_call(server, fn, "autoscaling", "update_auto_scaling_group", AutoScalingGroupName="st-asg",
                    VPCZoneIdentifier=nets["b"]) == {"code": None}
    doc = group_doc(server, "st-asg")
    assert doc["VPCZoneIdentifier"] == nets["b"]
    assert {t["Key"]: t["Value"] for t in doc["Tags"]}["autoheal:active-volume"] == restored["VolumeId"]


def test_a_restore_whose_key_ebs_may_not_use_is_accepted_then_the_volume_is_gone(server, nets):
    """The failover role without the key's use through EC2: CreateVolume itself is allowed and
    answers ``creating`` (no error), EBS's re-encryption of the snapshot's data key
    (kms:ReEncryptFrom) is denied, and the volume is gone after ``volume_create_s``
    (DescribeVolumes ``InvalidVolume.NotFound``): as AWS users report (aws/aws-cli#2604,
    kubernetes-sigs/aws-ebs-csi-driver#2685, velero-io/velero#2195). The decision is recorded,
    marked ``deferred``."""
    server.ctl("POST", "/profile", {"iam_evaluation": True, "volume_create_s": 100})
    ec2, iam = server.client("ec2"), server.client("iam")
    key, vol, snap = cmk_volume(server)
    fn = create_function(server, "st-failover", "try").split(":")[-1]
    group_arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/st-asg"
    iam.put_role_policy(RoleName="fn-role", PolicyName="failover",
                        PolicyDocument=json.dumps(failover_policy(vol, key, group_arn, nets["b"], kms=False)))
    spec = [{"ResourceType": "volume", "Tags": [{"Key": "autoheal:restored-for", "Value": "st"}]}]
    assert try_call(server, fn, "ec2", "create_volume", AvailabilityZone=B, SnapshotId=snap, VolumeType="gp3",
                    Encrypted=True, TagSpecifications=spec) == {"code": None}
    [made] = ec2.describe_volumes(Filters=[{"Name": "tag:autoheal:restored-for", "Values": ["st"]}])["Volumes"]
    assert made["State"] == "creating"
    [decision] = [d for d in server.ctl("GET", "/iam-evaluation")["decisions"]
                  if d["function"] == fn and d["operation"] == "CreateVolume"]
    assert (decision["decision"], decision["action"], decision["resource"], decision["deferred"]) == (
        "ImplicitDeny", "kms:ReEncryptFrom", key, True)

    def gone() -> bool:
        try:
            ec2.describe_volumes(VolumeIds=[made["VolumeId"]])
            return False
        except ClientError as exc:
            return exc.response["Error"]["Code"] == "InvalidVolume.NotFound"

    wait_for(gone, timeout=10, what="the volume given up")
    assert ec2.describe_volumes(Filters=[{"Name": "tag:autoheal:restored-for", "Values": ["st"]}])["Volumes"] == []
    # With the key's use allowed, the same restore becomes available.
    iam.put_role_policy(RoleName="fn-role", PolicyName="failover",
                        PolicyDocument=json.dumps(failover_policy(vol, key, group_arn, nets["b"])))
    assert try_call(server, fn, "ec2", "create_volume", AvailabilityZone=B, SnapshotId=snap, VolumeType="gp3",
                    Encrypted=True, TagSpecifications=spec) == {"code": None}
    wait_for(lambda: [v["State"] for v in ec2.describe_volumes(
        Filters=[{"Name": "tag:autoheal:restored-for", "Values": ["st"]}])["Volumes"]] == ["available"],
        timeout=10, what="the restored volume available")


# -- 5. instance tags in the instance metadata -----------------------------------------------------

IMDS = {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1,
        "InstanceMetadataTags": "enabled"}


def test_launch_templates_keep_instance_metadata_tags_and_launches_apply_them(server, nets):
    """``MetadataOptions.InstanceMetadataTags = enabled`` (EC2 API Reference,
    LaunchTemplateInstanceMetadataOptionsRequest: "Set to enabled to allow access to instance tags
    from the instance metadata") is kept by CreateLaunchTemplate and CreateLaunchTemplateVersion
    and answered by DescribeLaunchTemplateVersions; an instance launched from the template, by a
    group (from the version the group names) or by RunInstances, has the template's metadata
    options in DescribeInstances (moto gave every instance its defaults: tokens optional, tags
    disabled)."""
    ec2, asg = server.client("ec2"), server.client("autoscaling")
    made = ec2.create_launch_template(LaunchTemplateName="imds", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro", "MetadataOptions": {"HttpTokens": "required"}})["LaunchTemplate"]
    lt = made["LaunchTemplateId"]
    v2 = ec2.create_launch_template_version(LaunchTemplateId=lt, LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro", "MetadataOptions": IMDS})["LaunchTemplateVersion"]
    assert v2["VersionNumber"] == 2 and v2["LaunchTemplateData"]["MetadataOptions"] == IMDS
    versions = {v["VersionNumber"]: v["LaunchTemplateData"].get("MetadataOptions")
                for v in ec2.describe_launch_template_versions(LaunchTemplateId=lt)["LaunchTemplateVersions"]}
    assert versions == {1: {"HttpTokens": "required"}, 2: IMDS}
    again = ec2.create_launch_template(LaunchTemplateName="imds-2", LaunchTemplateData={
        "ImageId": AMI, "InstanceType": "t3.micro", "MetadataOptions": IMDS})["LaunchTemplate"]["LaunchTemplateId"]
    [first] = ec2.describe_launch_template_versions(LaunchTemplateId=again)["LaunchTemplateVersions"]
    assert first["LaunchTemplateData"]["MetadataOptions"] == IMDS

    def options(iid: str) -> dict[str, Any]:
        inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        return {k: inst["MetadataOptions"][k] for k in IMDS}

    asg.create_auto_scaling_group(  # $Latest is version 2; the template's default is 1
        AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=nets["a"],
        LaunchTemplate={"LaunchTemplateId": lt, "Version": "$Latest"})
    assert options(launched(server, "g")) == IMDS
    direct = ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=nets["a"],
                               LaunchTemplate={"LaunchTemplateId": lt, "Version": "2"})["Instances"][0]
    assert {k: direct["MetadataOptions"][k] for k in IMDS} == IMDS
    default = ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=nets["a"],
                                LaunchTemplate={"LaunchTemplateId": lt})["Instances"][0]["InstanceId"]
    assert options(default) == {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1,
                                "InstanceMetadataTags": "disabled"}
    # The request's own options win over the template's.
    own = ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=nets["a"], LaunchTemplate={"LaunchTemplateId": lt,
                            "Version": "2"}, MetadataOptions={"HttpTokens": "optional"})["Instances"][0]
    assert own["MetadataOptions"]["HttpTokens"] == "optional"
