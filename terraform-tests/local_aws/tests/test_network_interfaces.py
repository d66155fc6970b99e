"""Elastic network interfaces as AWS has them (localaws/eniext.py): attach and detach take
time, an attached interface is refused elsewhere and cannot be deleted, a terminated holder
lets go of it only at `terminated` and the interface keeps its address, Elastic IP and
MAC; the groups and subnet it uses cannot be deleted before it is; a function's role
decides on the interface and the instance."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, AMI, REGION, create_function, network, run_instance, wait_for


@pytest.fixture
def net(server):
    server.reset()
    return network(server)


@pytest.fixture
def slow_clock(server):
    """Attach and detach take 2 s of AWS time: at scale 0.25 that is 0.5 s, long enough to watch."""
    server.ctl("POST", "/clock", {"scale": 0.25})
    yield
    server.ctl("POST", "/clock", {"scale": 0.01})


def error_of(call) -> dict[str, Any]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response


def code_message(call) -> tuple[str, str]:
    err = error_of(call)
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
    return err["Error"]["Code"], err["Error"]["Message"]


def new_eni(server, net, **kwargs: Any) -> str:
    return server.client("ec2").create_network_interface(SubnetId=net["subnet"], **kwargs)["NetworkInterface"][
        "NetworkInterfaceId"]


def eni_view(server, eni: str) -> tuple[str, str | None, str | None]:
    """(status, attachment state, attached instance) as DescribeNetworkInterfaces shows them."""
    e = server.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    attachment = e.get("Attachment")
    return e["Status"], attachment and attachment["Status"], attachment and attachment.get("InstanceId")


def instance_interfaces(server, instance: str) -> dict[int, str]:
    i = server.client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    return {n["Attachment"]["DeviceIndex"]: n["NetworkInterfaceId"] for n in i["NetworkInterfaces"]}


def address(server, alloc: str) -> dict[str, Any]:
    return server.client("ec2").describe_addresses(AllocationIds=[alloc])["Addresses"][0]


def test_attach_is_attaching_then_attached_and_the_instance_lists_it(server, net, slow_clock):
    ec2 = server.client("ec2")
    eni, inst = new_eni(server, net), run_instance(server, net)
    assert eni_view(server, eni) == ("available", None, None)
    resp = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1)
    assert resp["AttachmentId"].startswith("eni-attach-")
    assert eni_view(server, eni) == ("in-use", "attaching", inst)
    wait_for(lambda: eni_view(server, eni) == ("in-use", "attached", inst), timeout=5, what="attached")
    e = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert (e["Attachment"]["AttachmentId"], e["Attachment"]["DeviceIndex"], e["Attachment"]["DeleteOnTermination"]) == (
        resp["AttachmentId"], 1, False)
    assert instance_interfaces(server, inst)[1] == eni
    # Filters see what DescribeNetworkInterfaces shows.
    found = ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [inst]},
                                                     {"Name": "status", "Values": ["in-use"]}])["NetworkInterfaces"]
    assert eni in [n["NetworkInterfaceId"] for n in found]


def test_attach_refuses_what_aws_refuses(server, net):
    ec2 = server.client("ec2")
    eni, other = new_eni(server, net), new_eni(server, net)
    i1, i2 = run_instance(server, net), run_instance(server, net)
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId="eni-0000000000000000f", InstanceId=i1,
                                                             DeviceIndex=1)) == (
        "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID 'eni-0000000000000000f' does not exist")
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId="i-0000000000000000f",
                                                             DeviceIndex=1))[0] == "InvalidInstanceID.NotFound"
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=i1, DeviceIndex=1)
    # In use: on another instance, or again on the same one.
    for target in (i2, i1):
        assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=target, DeviceIndex=2)) == (
            "InvalidNetworkInterface.InUse", f"Interface: [{eni}] in use.")
    # The device index is taken on i1.
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=other, InstanceId=i1, DeviceIndex=1)) == (
        "InvalidParameterValue", f"Instance '{i1}' already has an interface attached at device index '1'.")
    # Another zone.
    far_subnet = ec2.create_subnet(VpcId=net["vpc"], CidrBlock="10.0.2.0/24", AvailabilityZone="ap-southeast-2b")["Subnet"]
    far = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=far_subnet["SubnetId"])["Instances"][0]["InstanceId"]
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=other, InstanceId=far, DeviceIndex=1)) == (
        "InvalidParameterValue", "networkInterface and instance are in different availability zones")
    # Pending and terminated instances.
    server.ctl("POST", "/profile", {"pending_s": 1000})
    pending = run_instance(server, net)
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=other, InstanceId=pending, DeviceIndex=1)) == (
        "IncorrectInstanceState", f"The pending instance '{pending}' is not in a valid state for this operation.")
    ec2.terminate_instances(InstanceIds=[i2])
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=other, InstanceId=i2, DeviceIndex=1)) == (
        "IncorrectInstanceState", f"The terminated instance '{i2}' is not in a valid state for this operation.")
    assert eni_view(server, other) == ("available", None, None)


def test_detach_takes_time_and_the_interface_is_in_use_meanwhile(server, net, slow_clock):
    ec2 = server.client("ec2")
    eni, inst = new_eni(server, net), run_instance(server, net)
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1)["AttachmentId"]
    assert code_message(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni)) == (
        "InvalidParameterValue", f"Network interface '{eni}' is currently in use.")
    ec2.detach_network_interface(AttachmentId=attachment, Force=True)
    assert eni_view(server, eni) == ("in-use", "detaching", inst)
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1))[0] == (
        "InvalidNetworkInterface.InUse")
    assert code_message(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni))[0] == "InvalidParameterValue"
    ec2.detach_network_interface(AttachmentId=attachment)  # a repeat while detaching is accepted
    wait_for(lambda: eni_view(server, eni) == ("available", None, None), timeout=5, what="available")
    assert code_message(lambda: ec2.detach_network_interface(AttachmentId=attachment))[0] == "InvalidAttachmentID.NotFound"
    # The primary interface cannot be detached.
    primary = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["NetworkInterfaces"][0]
    assert code_message(lambda: ec2.detach_network_interface(AttachmentId=primary["Attachment"]["AttachmentId"]))[0] == (
        "OperationNotPermitted")
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    assert code_message(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni))[0] == "InvalidNetworkInterfaceID.NotFound"


def test_the_old_holder_keeps_it_while_shutting_down_and_it_keeps_its_address(server, net, slow_clock):
    """The autoheal overlap: the terminated holder shuts down holding the interface, the
    replacement is refused it until `terminated`; then it is available with the same private
    IP, MAC and Elastic IP, and attached to the replacement the address names the new instance."""
    ec2 = server.client("ec2")
    server.ctl("POST", "/profile", {"shutdown_s": 4})  # 1 s real at scale 0.25
    sg = ec2.create_security_group(GroupName="stack", Description="stack", VpcId=net["vpc"])["GroupId"]
    eni = new_eni(server, net, Groups=[sg])
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assoc = ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni)["AssociationId"]
    before = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    old, new = run_instance(server, net), run_instance(server, net)
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=old, DeviceIndex=1)
    old_primary = instance_interfaces(server, old)[0]
    assert address(server, alloc)["InstanceId"] == old
    ec2.terminate_instances(InstanceIds=[old])
    started = time.monotonic()
    assert eni_view(server, eni)[0:2] in (("in-use", "attaching"), ("in-use", "attached"))
    assert eni_view(server, eni)[2] == old
    assert code_message(lambda: ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=new, DeviceIndex=1))[0] == (
        "InvalidNetworkInterface.InUse")
    assert address(server, alloc)["InstanceId"] == old
    assert time.monotonic() - started < 1.0, "the shutdown ended before the checks: the test proves nothing"
    wait_for(lambda: eni_view(server, eni) == ("in-use", "detaching", old), timeout=5, what="detaching at terminated")
    wait_for(lambda: eni_view(server, eni) == ("available", None, None), timeout=5, what="available")
    after = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert (after["PrivateIpAddress"], after["MacAddress"], after["Groups"]) == (
        before["PrivateIpAddress"], before["MacAddress"], before["Groups"])
    addr = address(server, alloc)
    assert "InstanceId" not in addr
    assert (addr["NetworkInterfaceId"], addr["PrivateIpAddress"], addr["AssociationId"]) == (
        eni, before["PrivateIpAddress"], assoc)
    # The old instance's primary interface went with it.
    assert code_message(lambda: ec2.describe_network_interfaces(NetworkInterfaceIds=[old_primary]))[0] == (
        "InvalidNetworkInterfaceID.NotFound")
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=new, DeviceIndex=1)
    addr = address(server, alloc)
    assert (addr["InstanceId"], addr["NetworkInterfaceId"], addr["PrivateIpAddress"]) == (new, eni, before["PrivateIpAddress"])
    assert ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [new]}])["Addresses"][0]["AllocationId"] == alloc


def test_groups_and_subnets_cannot_go_before_their_interfaces(server, net):
    ec2 = server.client("ec2")
    sg = ec2.create_security_group(GroupName="stack", Description="stack", VpcId=net["vpc"])["GroupId"]
    eni = new_eni(server, net, Groups=[sg])
    assert code_message(lambda: ec2.delete_security_group(GroupId=sg)) == (
        "DependencyViolation", f"resource {sg} has a dependent object")
    assert code_message(lambda: ec2.delete_subnet(SubnetId=net["subnet"])) == (
        "DependencyViolation", f"The subnet '{net['subnet']}' has dependencies and cannot be deleted.")
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    # An instance's primary interface holds them too, until the instance is terminated.
    inst = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=net["subnet"], SecurityGroupIds=[sg])[
        "Instances"][0]["InstanceId"]
    assert code_message(lambda: ec2.delete_security_group(GroupId=sg))[0] == "DependencyViolation"
    assert code_message(lambda: ec2.delete_subnet(SubnetId=net["subnet"]))[0] == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[inst])  # fast profile: terminated at once
    ec2.delete_security_group(GroupId=sg)
    ec2.delete_subnet(SubnetId=net["subnet"])


def test_the_gateway_stays_while_an_address_is_mapped_in_its_network(server, net):
    ec2 = server.client("ec2")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    refused = ("DependencyViolation", f"Network {net['vpc']} has some mapped public address(es). "
               "Please unmap those public address(es) before detaching the gateway.")
    # On an interface of the network.
    eni = new_eni(server, net)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    assoc = ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni)["AssociationId"]
    assert code_message(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])) == refused
    ec2.disassociate_address(AssociationId=assoc)
    # On an instance of the network, until its termination takes the address off.
    inst = run_instance(server, net)
    ec2.associate_address(AllocationId=alloc, InstanceId=inst)
    assert code_message(lambda: ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])) == refused
    ec2.terminate_instances(InstanceIds=[inst])  # fast profile: terminated at once
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=net["vpc"])
    assert ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]["Attachments"] == []


def test_created_interfaces_take_the_subnets_next_free_address(server, net):
    ec2 = server.client("ec2")
    enis = [new_eni(server, net) for _ in range(3)]
    insts = [run_instance(server, net) for _ in range(3)]
    ips = [ec2.describe_network_interfaces(NetworkInterfaceIds=[e])["NetworkInterfaces"][0]["PrivateIpAddress"] for e in enis]
    ips += [ec2.describe_instances(InstanceIds=[i])["Reservations"][0]["Instances"][0]["PrivateIpAddress"] for i in insts]
    assert len(set(ips)) == 6, ips
    freed = ips[0]
    ec2.delete_network_interface(NetworkInterfaceId=enis[0])
    again = ec2.create_network_interface(SubnetId=net["subnet"])["NetworkInterface"]["PrivateIpAddress"]
    assert again == freed


def test_an_address_on_an_interface_shows_the_instance_only_while_attached(server, net):
    ec2 = server.client("ec2")
    eni, eni2, inst = new_eni(server, net), new_eni(server, net), run_instance(server, net)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni)
    addr = address(server, alloc)
    assert "InstanceId" not in addr and addr["NetworkInterfaceOwnerId"] == ACCOUNT
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1)["AttachmentId"]
    assert address(server, alloc)["InstanceId"] == inst
    # Associating while attached works too; the address moves to eni2 only with AllowReassociation.
    assert code_message(lambda: ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni2))[0] == (
        "Resource.AlreadyAssociated")
    ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni2, AllowReassociation=True)
    addr = address(server, alloc)
    assert (addr["NetworkInterfaceId"], addr.get("InstanceId")) == (eni2, None)
    assert "Association" not in ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni, AllowReassociation=True)
    assert address(server, alloc)["InstanceId"] == inst
    ec2.detach_network_interface(AttachmentId=attachment)
    wait_for(lambda: eni_view(server, eni)[0] == "available", timeout=5, what="available")
    assert "InstanceId" not in address(server, alloc)
    # An interface on a pending instance cannot take an address.
    server.ctl("POST", "/profile", {"pending_s": 1000})
    pending = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=net["subnet"])["Instances"][0]
    pending_eni = pending["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert code_message(lambda: ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=pending_eni,
                                                      AllowReassociation=True)) == (
        "IncorrectInstanceState",
        f"The pending-instance-creation instance to which '{pending_eni}' is attached is not in a valid state for this operation")


def test_the_interface_detaching_transient(server, net):
    ec2 = server.client("ec2")
    eni, inst = new_eni(server, net), run_instance(server, net)
    with pytest.raises(AssertionError, match="has never been attached"):
        server.ctl("POST", "/transient", {"kind": "interface_detaching", "id": eni, "polls": 2})
    with pytest.raises(AssertionError, match="no network interface"):
        server.ctl("POST", "/transient", {"kind": "interface_detaching", "id": "eni-0000000000000000f", "polls": 2})
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1)
    wait_for(lambda: eni_view(server, eni) == ("in-use", "attached", inst), timeout=5, what="attached")
    server.ctl("POST", "/transient", {"kind": "interface_detaching", "id": eni, "polls": 2})
    assert code_message(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni))[0] == "InvalidParameterValue"
    assert eni_view(server, eni) == ("in-use", "detaching", inst)
    assert eni_view(server, eni) == ("in-use", "detaching", inst)
    assert eni_view(server, eni) == ("in-use", "attached", inst)


# --- IAM: a function's role decides on the interface and the instance ---------------------------


def try_call(server, fn: str, method: str, **args: Any) -> dict[str, Any]:
    resp = server.client("lambda").invoke(FunctionName=fn, Payload=json.dumps(
        {"service": "ec2", "method": method, "args": args}).encode())
    return json.loads(resp["Payload"].read())


def arn(kind: str, rid: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{rid}"


def test_a_function_role_attaches_only_its_interface_to_its_groups_instances(server, net):
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    ec2, iam = server.client("ec2"), server.client("iam")
    stack_tag = [{"ResourceType": "instance", "Tags": [{"Key": "autoheal:stack", "Value": "s1"}]}]
    mine = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=net["subnet"],
                             TagSpecifications=stack_tag)["Instances"][0]["InstanceId"]
    stranger = run_instance(server, net)
    eni, other_eni = new_eni(server, net), new_eni(server, net)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    fn = create_function(server, "eni-probe", "try").split(":")[-1]
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/{fn}"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface"],
         "Resource": arn("network-interface", eni)},
        {"Effect": "Allow", "Action": ["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface"],
         "Resource": "arn:aws:ec2:*:*:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/autoheal:stack": "s1"}}},
        {"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": arn("elastic-ip", alloc)},
        {"Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"},
    ]}
    iam.put_role_policy(RoleName="fn-role", PolicyName="eni", PolicyDocument=json.dumps(policy))

    def denied(out: dict[str, Any], action: str, resource: str) -> bool:
        return out["code"] == "UnauthorizedOperation" and out["message"].startswith(
            f"You are not authorized to perform this operation. User: {session} is not authorized to perform: "
            f"{action} on resource: {resource} because no identity-based policy allows the {action} action")

    assert try_call(server, fn, "describe_network_interfaces") == {"code": None}
    out = try_call(server, fn, "attach_network_interface", NetworkInterfaceId=eni, InstanceId=stranger, DeviceIndex=1)
    assert denied(out, "ec2:AttachNetworkInterface", arn("instance", stranger)), out
    out = try_call(server, fn, "attach_network_interface", NetworkInterfaceId=other_eni, InstanceId=mine, DeviceIndex=1)
    assert denied(out, "ec2:AttachNetworkInterface", arn("network-interface", other_eni)), out
    assert eni_view(server, eni)[0] == eni_view(server, other_eni)[0] == "available"  # nothing done
    assert try_call(server, fn, "attach_network_interface", NetworkInterfaceId=eni, InstanceId=mine, DeviceIndex=1) == {
        "code": None}
    assert eni_view(server, eni)[2] == mine
    # AssociateAddress with NetworkInterfaceId is on the address and the interface.
    out = try_call(server, fn, "associate_address", AllocationId=alloc, NetworkInterfaceId=eni)
    assert denied(out, "ec2:AssociateAddress", arn("network-interface", eni)), out
    # DetachNetworkInterface names only the attachment: the instance and interface are its.
    attachment = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Attachment"]["AttachmentId"]
    ec2.create_tags(Resources=[mine], Tags=[{"Key": "autoheal:stack", "Value": "gone"}])
    out = try_call(server, fn, "detach_network_interface", AttachmentId=attachment)
    assert denied(out, "ec2:DetachNetworkInterface", arn("instance", mine)), out
    # CreateNetworkInterface: the subnet and a new interface, and its tags are ec2:CreateTags.
    out = try_call(server, fn, "create_network_interface", SubnetId=net["subnet"])
    assert denied(out, "ec2:CreateNetworkInterface", arn("network-interface", "*")), out
    decisions = [d for d in server.ctl("GET", "/iam-evaluation")["decisions"]
                 if d["function"] == fn and d["operation"] == "AttachNetworkInterface" and d["decision"] == "Allow"]
    assert decisions, "the allowed attach was evaluated"
