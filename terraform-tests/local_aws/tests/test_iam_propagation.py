"""IAM's propagation window (localaws/iam_propagation.py): Lambda cannot use a role changed a
moment ago, and a function's calls are refused until its role's new permissions are in force.

Each test builds its scene in the `fast` profile (no window), then sets `iam_propagation_s`
and makes the role change under test; at the tests' clock scale 0.01, 300 AWS seconds are
3 s."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, AMI, REGION, ROLE_TRUST, create_function, create_group, network, wait_for

WINDOW = 300.0  # AWS seconds

ROLE_MESSAGE = "The role defined for the function cannot be assumed by Lambda."
KMS_MESSAGE = (
    "Lambda was unable to configure access to your environment variables because the KMS key is invalid for "
    "CreateGrant. Please check your KMS key settings. KMS Exception: InvalidArnException KMS Message: ARN does "
    "not refer to a valid principal: arn:aws:iam::123456789012:role/fn-role"
)
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]})


@pytest.fixture
def fresh(server):
    server.reset()  # the fixture's server runs the fast profile; reset goes back to it


def propagating(server):
    return {r["role_name"]: r for r in server.ctl("GET", "/iam-propagation")["roles"]}


def open_window(server, seconds=WINDOW):
    server.ctl("POST", "/profile", {"iam_propagation_s": seconds})


def refusal(exc):
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def test_create_function_right_after_create_role_is_refused_and_creates_nothing(server, fresh):
    """Lambda Developer Guide / IAM User Guide: a new role takes seconds to be usable; until
    then CreateFunction answers InvalidParameterValueException "The role defined for the
    function cannot be assumed by Lambda." and no function exists. After the window it works."""
    open_window(server)
    arn = server.client("iam").create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]
    window = propagating(server)["fn-role"]
    assert (window["role_arn"], window["operation"]) == (arn, "CreateRole")
    assert 0 < window["assume_left_s"] <= WINDOW and 0 < window["permissions_left_s"] <= WINDOW

    with pytest.raises(ClientError) as exc:
        create_function(server, "early", "echo")
    assert refusal(exc) == ("InvalidParameterValueException", 400, ROLE_MESSAGE)
    with pytest.raises(ClientError) as exc:
        server.client("lambda").get_function(FunctionName="early")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    [call] = server.ctl("GET", "/calls?operation=CreateFunction")
    assert (call["status"], call["error_code"]) == (400, "InvalidParameterValueException")

    wait_for(lambda: "fn-role" not in propagating(server), timeout=10, what="the role to propagate")
    assert create_function(server, "early", "echo").endswith(":function:early")


@pytest.mark.parametrize("operation", ["PutRolePolicy", "AttachRolePolicy", "UpdateAssumeRolePolicy"])
def test_every_role_change_opens_the_window_for_lambda(server, fresh, operation):
    """A policy or trust-policy change propagates like a new role: UpdateFunctionConfiguration
    naming the role is refused with the role message meanwhile, and changes nothing."""
    create_function(server, "fn", "echo", timeout=5)
    iam = server.client("iam")
    open_window(server)
    if operation == "PutRolePolicy":
        iam.put_role_policy(RoleName="fn-role", PolicyName="p", PolicyDocument=POLICY)
    elif operation == "AttachRolePolicy":
        arn = iam.create_policy(PolicyName="p", PolicyDocument=POLICY)["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="fn-role", PolicyArn=arn)
    else:
        iam.update_assume_role_policy(RoleName="fn-role", PolicyDocument=ROLE_TRUST)
    assert propagating(server)["fn-role"]["operation"] == operation
    lam = server.client("lambda")
    role = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName="fn", Role=role, Timeout=9)
    assert refusal(exc) == ("InvalidParameterValueException", 400, ROLE_MESSAGE)
    assert lam.get_function_configuration(FunctionName="fn")["Timeout"] == 5


def test_update_with_environment_meets_the_kms_grant_message_later_in_the_window(server, fresh):
    """With Environment set, Lambda grants the role the environment variables' key; once the
    role itself is accepted, it is the grant that fails: "Lambda was unable to configure access
    to your environment variables because the KMS key is invalid for CreateGrant. ... ARN does
    not refer to a valid principal: <role ARN>" (terraform-provider-aws retries both messages).
    The role message comes first; a request without Environment keeps getting it."""
    create_function(server, "fn", "echo")
    lam = server.client("lambda")
    role = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
    open_window(server)
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="p", PolicyDocument=POLICY)

    def update(**kwargs):
        return lam.update_function_configuration(FunctionName="fn", Role=role, **kwargs)

    with pytest.raises(ClientError) as exc:
        update(Environment={"Variables": {"MODE": "error"}})
    assert refusal(exc) == ("InvalidParameterValueException", 400, ROLE_MESSAGE)

    wait_for(lambda: propagating(server)["fn-role"]["assume_left_s"] < WINDOW / 2 - 20, timeout=10,
             what="the second half of the window")
    with pytest.raises(ClientError) as exc:
        update(Environment={"Variables": {"MODE": "error"}})
    assert refusal(exc) == ("InvalidParameterValueException", 400, KMS_MESSAGE)
    with pytest.raises(ClientError) as exc:
        update(MemorySize=512)
    assert refusal(exc) == ("InvalidParameterValueException", 400, ROLE_MESSAGE)
    config = lam.get_function_configuration(FunctionName="fn")
    assert (config["Environment"]["Variables"]["MODE"], config["MemorySize"]) == ("echo", 256)

    wait_for(lambda: "fn-role" not in propagating(server), timeout=10, what="the role to propagate")
    update(Environment={"Variables": {"MODE": "error"}})
    assert lam.get_function_configuration(FunctionName="fn")["Environment"]["Variables"]["MODE"] == "error"


def _instance_and_volume(server):
    net = network(server)
    ec2 = server.client("ec2")
    instance = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                 SubnetId=net["subnet"])["Instances"][0]["InstanceId"]
    volume = ec2.create_volume(AvailabilityZone=net["az"], Size=8)["VolumeId"]
    return net, instance, volume


def _try(server, function, service, method, **args):
    resp = server.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"service": service, "method": method, "args": args})
    )
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read())


def test_a_functions_ec2_call_is_refused_until_its_roles_new_policy_propagates(server, fresh):
    """IAM User Guide ("Changes that I make are not always immediately visible"; "Troubleshoot
    access denied error messages"): for the window after PutRolePolicy the function's session
    (arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION) is denied: EC2 answers HTTP 403
    UnauthorizedOperation "You are not authorized to perform this operation. User: ... is not
    authorized to perform: ec2:AttachVolume on resource: ...". Nothing is attached; the call
    log names the function. After the window the same call works."""
    _, instance, volume = _instance_and_volume(server)
    create_function(server, "attacher", "try")
    open_window(server)
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="attach", PolicyDocument=POLICY)

    out = _try(server, "attacher", "ec2", "attach_volume", VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
    assert (out["code"], out["status"]) == ("UnauthorizedOperation", 403)
    assert out["message"] == (
        f"You are not authorized to perform this operation. User: arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/attacher "
        f"is not authorized to perform: ec2:AttachVolume on resource: arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance} "
        "because no identity-based policy allows the ec2:AttachVolume action"
    )
    [call] = server.ctl("GET", "/calls?operation=AttachVolume")
    assert (call["function"], call["status"], call["error_code"]) == ("attacher", 403, "UnauthorizedOperation")
    assert server.client("ec2").describe_volumes(VolumeIds=[volume])["Volumes"][0]["State"] == "available"
    assert propagating(server)["fn-role"]["permissions_left_s"] > 0

    wait_for(lambda: "fn-role" not in propagating(server), timeout=10, what="the policy to propagate")
    out = _try(server, "attacher", "ec2", "attach_volume", VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
    assert out == {"code": None}
    assert server.client("ec2").describe_volumes(VolumeIds=[volume])["Volumes"][0]["State"] == "in-use"


def test_a_functions_auto_scaling_call_is_refused_with_query_access_denied(server, fresh):
    """Auto Scaling's refusal in its Query XML: HTTP 403 AccessDenied "User: arn:aws:sts::
    ACCOUNT:assumed-role/ROLE/FUNCTION is not authorized to perform:
    autoscaling:CompleteLifecycleAction on resource: <group ARN> ...". Only the function's
    calls are refused: the same call with other credentials reaches Auto Scaling."""
    net = network(server)
    create_group(server, "g", net)
    group_arn = server.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=["g"])["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    create_function(server, "completer", "try")
    open_window(server)
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="complete", PolicyDocument=POLICY)

    args = {"AutoScalingGroupName": "g", "LifecycleHookName": "launch", "LifecycleActionResult": "CONTINUE",
            "LifecycleActionToken": "7e5e8d0a-0000-4000-8000-000000000000"}
    out = _try(server, "completer", "autoscaling", "complete_lifecycle_action", **args)
    assert (out["code"], out["status"]) == ("AccessDenied", 403)
    assert out["message"] == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/completer is not authorized to perform: "
        f"autoscaling:CompleteLifecycleAction on resource: {group_arn} "
        "because no identity-based policy allows the autoscaling:CompleteLifecycleAction action"
    )
    with pytest.raises(ClientError) as exc:
        server.client("autoscaling").complete_lifecycle_action(**args)
    assert exc.value.response["Error"]["Code"] == "ValidationError"  # no such action: Auto Scaling answered
    calls = server.ctl("GET", "/calls?operation=CompleteLifecycleAction")
    assert [(c["function"], c["error_code"]) for c in calls] == [("completer", "AccessDenied"), (None, "ValidationError")]


def test_fast_profile_refuses_nothing(server, fresh):
    """`fast` (iam_propagation_s 0) behaves as before the window existed: a role is usable at
    once and a function's calls go through right after its policy changes."""
    assert server.ctl("GET", "/profile")["iam_propagation_s"] == 0
    _, instance, volume = _instance_and_volume(server)
    create_function(server, "attacher", "try")  # makes fn-role and uses it at once
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="attach", PolicyDocument=POLICY)
    server.client("lambda").update_function_configuration(
        FunctionName="attacher", Role=f"arn:aws:iam::{ACCOUNT}:role/fn-role",
        Environment={"Variables": {"MODE": "try"}},
    )
    out = _try(server, "attacher", "ec2", "attach_volume", VolumeId=volume, InstanceId=instance, Device="/dev/sdf")
    assert out == {"code": None}
    assert server.ctl("GET", "/iam-propagation") == {"iam_propagation_s": 0, "roles": []}
