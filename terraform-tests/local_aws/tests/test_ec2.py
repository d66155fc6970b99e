"""EC2 rules moto skips: zone/in-use checks, detach time, EIPs on termination."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, AMI, create_group, group_instances, hook, network, wait_for
from conftest import new_volume as volume
from conftest import run_instance as run
from conftest import volume_view as describe


@pytest.fixture
def net(server):
    server.reset()
    return network(server)


def error_of(call):
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response


@pytest.fixture
def slow_clock(server):
    """Detaches take 2 s of AWS time: at scale 0.25 that is 0.5 s, long enough to watch."""
    server.ctl("POST", "/clock", {"scale": 0.25})
    yield
    server.ctl("POST", "/clock", {"scale": 0.01})


def test_attach_checks_zone_and_use(server, net):
    ec2 = server.client("ec2")
    i1, i2 = run(server, net), run(server, net)
    other_az = volume(server, "ap-southeast-2b")
    err = error_of(lambda: ec2.attach_volume(VolumeId=other_az, InstanceId=i1, Device="/dev/sdf"))
    assert err["Error"]["Code"] == "InvalidVolume.ZoneMismatch"
    assert err["Error"]["Message"] == f"The volume '{other_az}' is not in the same availability zone as instance '{i1}'"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=i1, Device="/dev/sdf")
    err = error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=i2, Device="/dev/sdf"))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("VolumeInUse", f"{vol} is already attached to an instance")


def test_detach_by_volume_id_and_the_detaching_window(server, net, slow_clock):
    ec2 = server.client("ec2")
    inst = run(server, net)
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")
    assert describe(server, vol) == ("in-use", [(inst, "attached")])
    resp = ec2.detach_volume(VolumeId=vol)  # no InstanceId/Device, as AWS allows
    assert (resp["InstanceId"], resp["Device"], resp["State"]) == (inst, "/dev/sdf", "detaching")
    assert describe(server, vol) == ("in-use", [(inst, "detaching")])
    assert error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdg"))["Error"]["Code"] == "VolumeInUse"
    assert error_of(lambda: ec2.delete_volume(VolumeId=vol))["Error"]["Code"] == "VolumeInUse"
    wait_for(lambda: describe(server, vol) == ("available", []), timeout=5, what="available")
    err = error_of(lambda: ec2.detach_volume(VolumeId=vol))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("IncorrectState", f"Volume '{vol}' is in the 'available' state.")
    ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")
    assert describe(server, vol) == ("in-use", [(inst, "attached")])


def test_terminating_the_holder_detaches_over_time(server, net, slow_clock):
    ec2 = server.client("ec2")
    inst = run(server, net)
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")
    ec2.terminate_instances(InstanceIds=[inst])
    assert describe(server, vol) == ("in-use", [(inst, "detaching")])
    wait_for(lambda: describe(server, vol) == ("available", []), timeout=5, what="available")
    ec2.delete_volume(VolumeId=vol)


def test_termination_disassociates_the_elastic_ip(server, net):
    ec2 = server.client("ec2")
    inst = run(server, net)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=inst)
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["InstanceId"] == inst
    ec2.terminate_instances(InstanceIds=[inst])
    addr = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert "InstanceId" not in addr and "AssociationId" not in addr
    ec2.release_address(AllocationId=alloc)


def test_no_association_with_a_terminated_instance(server, net):
    """AWS refuses AssociateAddress for an instance that is gone, also with
    AllowReassociation: a late call cannot pull the address off a live instance."""
    ec2 = server.client("ec2")
    dead, live = run(server, net), run(server, net)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=live)
    ec2.terminate_instances(InstanceIds=[dead])
    err = error_of(lambda: ec2.associate_address(AllocationId=alloc, InstanceId=dead, AllowReassociation=True))
    assert err["Error"]["Code"] == "InvalidInstanceID"
    assert err["Error"]["Message"] == f"The terminated instance '{dead}' is not in a valid state for this operation."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["InstanceId"] == live
    # Attaching a volume to it fails too (IncorrectState), and the volume stays available.
    vol = volume(server)
    err = error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=dead, Device="/dev/sdf"))
    assert err["Error"]["Code"] == "IncorrectState"
    assert describe(server, vol) == ("available", [])
    ec2.disassociate_address(AssociationId=ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["AssociationId"])
    ec2.release_address(AllocationId=alloc)
    ec2.delete_volume(VolumeId=vol)


def test_terminated_instances_give_their_private_addresses_back(server):
    """A /28 holds 11 instances (AWS keeps 5 addresses); launching and terminating 40 one
    after another must keep working, reusing the freed addresses, and live instances never
    share one."""
    server.reset()
    ec2 = server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.7.0.0/28", AvailabilityZone="ap-southeast-2a")["Subnet"]["SubnetId"]

    def launch():
        return ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]

    live = [launch() for _ in range(3)]
    seen = set()
    for _ in range(40):
        new = launch()
        ips = [i["PrivateIpAddress"] for i in live] + [new["PrivateIpAddress"]]
        assert len(set(ips)) == len(ips), ips
        seen.add(new["PrivateIpAddress"])
        ec2.terminate_instances(InstanceIds=[live.pop(0)["InstanceId"]])
        live.append(new)
    assert len(seen) < 40, "freed addresses are used again"


def test_group_termination_paths_disassociate_too(server, net):
    """An ABANDONed launch and an Auto Scaling termination release the EIP as well."""
    ec2 = server.client("ec2")
    asg = server.client("autoscaling")
    create_group(server, "g", net, [hook()])
    first = group_instances(server, "g")[0]["InstanceId"]
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=first)
    asg.complete_lifecycle_action(AutoScalingGroupName="g", LifecycleHookName="launch", InstanceId=first,
                                  LifecycleActionResult="ABANDON")
    assert "InstanceId" not in ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    second = group_instances(server, "g")[0]["InstanceId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=second)
    asg.terminate_instance_in_auto_scaling_group(InstanceId=second, ShouldDecrementDesiredCapacity=False)
    assert "InstanceId" not in ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    assert group_instances(server, "g")[0]["InstanceId"] not in (first, second)


def test_root_volume_goes_away_with_the_instance(server, net):
    ec2 = server.client("ec2")
    inst = run(server, net)
    roots = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst]}])["Volumes"]
    ec2.terminate_instances(InstanceIds=[inst])
    time.sleep(0.05)
    remaining = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert not ({v["VolumeId"] for v in roots} & remaining)


def snapshot_ids(snapshots):
    return sorted(s["SnapshotId"] for s in snapshots)


def test_snapshot_owners(server, net):
    """OwnerIds=self is the caller's snapshots only, never moto's AMI snapshots of other accounts."""
    ec2 = server.client("ec2")
    stack_tag = [{"ResourceType": "snapshot", "Tags": [{"Key": "autoheal:stack", "Value": "s1"}]}]
    vol = volume(server)
    tagged = ec2.create_snapshot(VolumeId=vol, TagSpecifications=stack_tag)["SnapshotId"]
    untagged = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    image = ec2.create_image(InstanceId=run(server, net), Name="img")["ImageId"]
    from_image = [m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]]
    mine = sorted([tagged, untagged, *from_image])

    everything = ec2.describe_snapshots()["Snapshots"]  # no OwnerIds: all we may use, moto's public ones too
    others = {s["OwnerId"] for s in everything} - {ACCOUNT}
    assert others, "moto seeds snapshots of other owners behind its AMIs; without them this test proves nothing"
    assert set(mine) < {s["SnapshotId"] for s in everything}

    for owners in (["self"], [ACCOUNT]):
        got = ec2.describe_snapshots(OwnerIds=owners)["Snapshots"]
        assert snapshot_ids(got) == mine, owners
        assert {s["OwnerId"] for s in got} == {ACCOUNT}
    pages = ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"])
    assert snapshot_ids(s for page in pages for s in page["Snapshots"]) == mine
    tag_filter = [{"Name": "tag:autoheal:stack", "Values": ["s1"]}]
    assert snapshot_ids(ec2.describe_snapshots(OwnerIds=["self"], Filters=tag_filter)["Snapshots"]) == [tagged]
    owner_filter = [{"Name": "owner-id", "Values": [ACCOUNT]}]
    assert snapshot_ids(ec2.describe_snapshots(Filters=owner_filter)["Snapshots"]) == mine

    other = sorted(others)[0]
    theirs = [s for s in everything if s["OwnerId"] == other]
    assert snapshot_ids(ec2.describe_snapshots(OwnerIds=[other])["Snapshots"]) == snapshot_ids(theirs)
    both = ec2.describe_snapshots(OwnerIds=["self", other])["Snapshots"]
    assert snapshot_ids(both) == sorted(mine + snapshot_ids(theirs))
    # Moto's AMIs are all Amazon's (DescribeImages Owners=amazon says so): so are their snapshots.
    amazon = ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"]
    assert snapshot_ids(amazon) == snapshot_ids(s for s in everything if s["OwnerId"] != ACCOUNT)
    alias_filter = [{"Name": "owner-alias", "Values": ["amazon"]}]
    assert snapshot_ids(ec2.describe_snapshots(Filters=alias_filter)["Snapshots"]) == snapshot_ids(amazon)
    assert ec2.describe_snapshots(OwnerIds=["111122223333"])["Snapshots"] == []


def refused(server, path, data):
    """(HTTP status, error message) of a control-API request that must fail."""
    req = urllib.request.Request(server.url + "/_localaws" + path, method="POST", data=json.dumps(data).encode())
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    return exc.value.code, json.loads(exc.value.read())["error"]


def test_detaching_transient_shows_the_holder(server, net):
    """A volume can only be detaching from something: the transient shows the attachment it
    has, or the last one it had (the old instance still letting go); never-attached volumes
    are refused."""
    ec2 = server.client("ec2")
    never = volume(server)
    code, message = refused(server, "/transient", {"kind": "volume_detaching", "id": never, "polls": 2})
    assert code == 400 and f"volume {never} has never been attached" in message, message
    code, message = refused(server, "/transient", {"kind": "volume_detaching", "id": "vol-0123456789abcdef0"})
    assert (code, message) == (400, "no volume vol-0123456789abcdef0")
    assert server.ctl("GET", "/transient") == []
    assert describe(server, never) == ("available", [])
    ec2.delete_volume(VolumeId=never)  # not held: nothing in use

    inst = run(server, net)
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")
    ec2.terminate_instances(InstanceIds=[inst])
    wait_for(lambda: describe(server, vol) == ("available", []), timeout=5, what="the detach to end")
    server.ctl("POST", "/transient", {"kind": "volume_detaching", "id": vol, "polls": 2})
    err = error_of(lambda: ec2.delete_volume(VolumeId=vol))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("VolumeInUse", f"Volume {vol} is currently attached to {inst}")
    for _ in range(2):
        shown = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
        assert shown["State"] == "in-use"
        assert [(a["VolumeId"], a["InstanceId"], a["Device"], a["State"]) for a in shown["Attachments"]] == [
            (vol, inst, "/dev/sdf", "detaching")
        ]
    assert describe(server, vol) == ("available", [])
    ec2.delete_volume(VolumeId=vol)


def test_a_group_launches_from_a_second_template_version_with_user_data(server, net):
    """moto stored a new version's UserData raw and crashed (HTTP 500) launching from it."""
    ec2 = server.client("ec2")
    asg = server.client("autoscaling")
    lt = ec2.create_launch_template(
        LaunchTemplateName="v2",
        LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro", "UserData": "IyEvYmluL3NoCg=="},
    )["LaunchTemplate"]["LaunchTemplateId"]
    v2 = ec2.create_launch_template_version(
        LaunchTemplateId=lt, LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.small", "UserData": "IyEvYmluL2Jhc2gK"}
    )["LaunchTemplateVersion"]["VersionNumber"]
    asg.create_auto_scaling_group(
        AutoScalingGroupName="v2-asg",
        LaunchTemplate={"LaunchTemplateId": lt, "Version": str(v2)},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=net["subnet"],
    )
    first = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["v2-asg"])["AutoScalingGroups"][0]["Instances"][0]
    asg.terminate_instance_in_auto_scaling_group(InstanceId=first["InstanceId"], ShouldDecrementDesiredCapacity=False)
    instances = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["v2-asg"])["AutoScalingGroups"][0]["Instances"]
    assert [i["InstanceId"] for i in instances] != [first["InstanceId"]]
    state = ec2.describe_instances(InstanceIds=[first["InstanceId"]])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    data = ec2.describe_launch_template_versions(LaunchTemplateId=lt, Versions=[str(v2)])["LaunchTemplateVersions"][0]
    assert data["LaunchTemplateData"]["UserData"] == "IyEvYmluL2Jhc2gK"


def test_breaks_allow_what_aws_refuses_and_a_reset_clears_them(server, net):
    """The deliberate infidelities a control case asks for (POST /breaks): each lets
    through exactly the violation it names; unknown names are refused; a reset restores
    AWS's rules."""
    ec2 = server.client("ec2")
    with pytest.raises(AssertionError, match="unknown breaks"):
        server.ctl("POST", "/breaks", {"breaks": ["no_such_break"]})
    server.ctl(
        "POST",
        "/breaks",
        {"breaks": ["double_attach", "volume_stays_on_terminated", "address_stays_on_terminated"]},
    )
    a, b = run(server, net), run(server, net)
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=a, Device="/dev/sdf")
    ec2.attach_volume(VolumeId=vol, InstanceId=b, Device="/dev/sdf")
    assert describe(server, vol) == ("in-use", [(a, "attached"), (b, "attached")])
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, InstanceId=b)
    ec2.terminate_instances(InstanceIds=[b])
    assert (a, "attached") in describe(server, vol)[1] and (b, "attached") in describe(server, vol)[1]
    assert ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]["InstanceId"] == b

    server.reset()
    assert server.ctl("GET", "/breaks") == {"breaks": []}
    net = network(server)
    a, b = run(server, net), run(server, net)
    vol = volume(server)
    ec2.attach_volume(VolumeId=vol, InstanceId=a, Device="/dev/sdf")
    assert error_of(lambda: ec2.attach_volume(VolumeId=vol, InstanceId=b, Device="/dev/sdf"))["Error"]["Code"] == "VolumeInUse"


def test_a_template_that_encrypts_the_root_device_replaces_the_amis_root_volume(server, net):
    """AWS: a mapping of the AMI's root device with neither snapshot nor size takes the AMI's
    root snapshot; moto refused it (MissingParameter size/snapshot) and doubled the root."""
    ec2 = server.client("ec2")
    root = ec2.describe_images(ImageIds=[AMI])["Images"][0]["RootDeviceName"]
    template = ec2.create_launch_template(
        LaunchTemplateName="encrypted-root",
        LaunchTemplateData={
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "BlockDeviceMappings": [
                {"DeviceName": root, "Ebs": {"Encrypted": True, "DeleteOnTermination": True}}
            ],
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    inst = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template},
        SubnetId=net["subnet"],
        MinCount=1,
        MaxCount=1,
    )["Instances"][0]["InstanceId"]
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst]}])["Volumes"]
    assert [(v["Attachments"][0]["Device"], v["Encrypted"]) for v in volumes] == [(root, True)], volumes
    assert volumes[0]["SnapshotId"].startswith("snap-")
    mappings = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
    assert [(m["DeviceName"], m["Ebs"]["DeleteOnTermination"]) for m in mappings] == [(root, True)], mappings
