"""A Lambda function's calls are decided by its execution role (localaws/iam_enforce.py).

Each stack here is what the provider builds: the volume, the address and the group tagged
``autoheal:stack``, a role under ``/autoheal/`` with the provider's inline policy (read from
policy.rs's unit tests, see iam_policies.py) and the README's permissions boundary, and a
function whose bootstrap makes the handler's calls (conftest's ``heal`` mode) on the
lifecycle event's instance and on the VOLUME_ID / ALLOCATION_ID of its environment. With
``iam_evaluation`` on, a heal of the stack's own instance is allowed call by call; the same
function pointed at another stack's volume, address, instance or group is refused with the
service's own access-denied error, and nothing changes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from conftest import (
    ACCOUNT, REGION, ROLE_TRUST, bootstrap_zip, create_function, group_instances, hook, invocations, network,
    rule_to_function, start_server, volume_view, wait_for,
)
from iam_policies import Scope, provider_attach_policy, readme_policies, scheduled_snapshot_policy

HANDLER_ACTIONS = [
    "ec2:DescribeInstances", "autoscaling:DescribeAutoScalingInstances", "ec2:DescribeVolumes", "ec2:AttachVolume",
    "ec2:DescribeAddresses", "ec2:AssociateAddress", "autoscaling:DescribeLifecycleHooks",
    "autoscaling:RecordLifecycleActionHeartbeat", "autoscaling:CompleteLifecycleAction",
]


@pytest.fixture
def fresh(server):
    server.reset()
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    yield server


def boundary_arn(server) -> str:
    iam = server.client("iam")
    [boundary] = readme_policies("boundary")
    try:
        return iam.create_policy(PolicyName="autoheal-lambda-boundary", PolicyDocument=json.dumps(boundary))["Policy"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return f"arn:aws:iam::{ACCOUNT}:policy/autoheal-lambda-boundary"


def stack(server, name: str, net: dict[str, str], function: bool = True, kms_key: str | None = None,
          policy_key: str | None = None) -> dict[str, Any]:
    """One stack as the provider makes it; with ``function``, its role, function and rule."""
    ec2, asg, iam = server.client("ec2"), server.client("autoscaling"), server.client("iam")
    tags = [{"Key": "autoheal:stack", "Value": name}, {"Key": "Name", "Value": name}]
    extra = {"Encrypted": True, "KmsKeyId": kms_key} if kms_key else {}
    volume = ec2.create_volume(AvailabilityZone=net["az"], Size=1, VolumeType="gp3",
                               TagSpecifications=[{"ResourceType": "volume", "Tags": tags}], **extra)["VolumeId"]
    allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tags}])["AllocationId"]
    group = f"{name}-asg"
    asg.create_auto_scaling_group(
        AutoScalingGroupName=group, MinSize=0, MaxSize=1, DesiredCapacity=0, VPCZoneIdentifier=net["subnet"],
        LaunchTemplate={"LaunchTemplateId": net["launch_template"], "Version": "$Latest"},
        LifecycleHookSpecificationList=[hook(name=f"{name}-launch", timeout=600, default="ABANDON")] if function else [],
        Tags=[{"Key": "autoheal:stack", "Value": name, "PropagateAtLaunch": True, "ResourceId": group,
               "ResourceType": "auto-scaling-group"}],
    )
    s = {"name": name, "volume": volume, "allocation": allocation, "group": group, "function": f"{name}-attach"}
    if not function:
        return s
    server.client("logs").create_log_group(logGroupName=f"/aws/lambda/{name}-attach")  # the provider makes it
    role = iam.create_role(RoleName=f"{name}-attach", Path="/autoheal/", AssumeRolePolicyDocument=ROLE_TRUST,
                           PermissionsBoundary=boundary_arn(server), Tags=tags[:1])["Role"]["Arn"]
    scope = Scope(REGION, ACCOUNT, volume, allocation, group, f"/aws/lambda/{name}-attach", policy_key)
    iam.put_role_policy(RoleName=f"{name}-attach", PolicyName=f"{name}-attach",
                        PolicyDocument=json.dumps(provider_attach_policy(scope)))
    fn_arn = server.client("lambda").create_function(
        FunctionName=s["function"], Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Code={"ZipFile": bootstrap_zip()}, Timeout=30, MemorySize=256,
        Environment={"Variables": {"MODE": "heal", "VOLUME_ID": volume, "ALLOCATION_ID": allocation}},
    )["FunctionArn"]
    pattern = {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-launch Lifecycle Action"],
               "detail": {"AutoScalingGroupName": [group]}}
    rule_to_function(server, f"{name}-launch", pattern, fn_arn)
    s.update(role=role, function_arn=fn_arn)
    return s


def launch(server, s: dict[str, Any]) -> str:
    server.client("autoscaling").set_desired_capacity(AutoScalingGroupName=s["group"], DesiredCapacity=1)
    return wait_for(lambda: (i := group_instances(server, s["group"])) and i[0]["InstanceId"], what=f"{s['group']} instance")


def healed(server, s: dict[str, Any]) -> list[dict[str, Any]]:
    """The function's successful invocation records (one per heal)."""
    return [r for r in invocations(server, s["function"]) if r["outcome"] == "success"]


def point(server, s: dict[str, Any], **env: str) -> None:
    variables = {"MODE": "heal", "VOLUME_ID": s["volume"], "ALLOCATION_ID": s["allocation"], **env}
    server.client("lambda").update_function_configuration(FunctionName=s["function"], Environment={"Variables": variables})


def heal_result(server, s: dict[str, Any]) -> dict[str, Any]:
    [record] = wait_for(lambda: healed(server, s), timeout=30, what=f"{s['function']} ran")
    return json.loads(record["response"])


def decisions(server, function: str) -> list[dict[str, Any]]:
    return [d for d in server.ctl("GET", "/iam-evaluation")["decisions"] if d["function"] == function]


def call_decisions(server, function: str) -> list[dict[str, Any]]:
    """The decisions on the function's own calls (not on Lambda's writing of its logs)."""
    return [d for d in decisions(server, function) if d["operation"] != "Lambda log delivery"]


def ec2_arn(kind: str, rid: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{rid}"


def session(s: dict[str, Any]) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{s['function']}/{s['function']}"


def test_realistic_evaluates_fast_does_not(tmp_path):
    srv = start_server(tmp_path, profile="realistic")
    try:
        assert srv.ctl("GET", "/profile")["iam_evaluation"] is True
        assert srv.ctl("POST", "/profile", {"name": "fast"})["iam_evaluation"] is False
        assert srv.ctl("POST", "/profile", {"iam_evaluation": True})["iam_evaluation"] is True
        with pytest.raises(AssertionError, match="iam_evaluation must be true or false"):
            srv.ctl("POST", "/profile", {"iam_evaluation": 1})
        srv.ctl("POST", "/reset")
        assert srv.ctl("GET", "/profile")["iam_evaluation"] is True
    finally:
        srv.proc.terminate()
        srv.proc.wait(timeout=10)


def test_a_heal_of_the_stacks_own_instance_is_allowed_call_by_call(fresh):
    server = fresh
    net = network(server)
    st = stack(server, "st", net)
    stack(server, "other", net, function=False)
    instance = launch(server, st)
    result = heal_result(server, st)
    assert result == {"calls": [[a.split(":")[1], None] for a in HANDLER_ACTIONS], "error": None}
    wait_for(lambda: group_instances(server, st["group"])[0]["LifecycleState"] == "InService", what="InService")
    assert volume_view(server, st["volume"]) == ("in-use", [(instance, "attached")])
    address = server.client("ec2").describe_addresses(AllocationIds=[st["allocation"]])["Addresses"][0]
    assert address["InstanceId"] == instance
    made = call_decisions(server, st["function"])
    assert [d["action"] for d in made] == HANDLER_ACTIONS
    assert {d["decision"] for d in made} == {"Allow"}
    attach = next(d for d in made if d["action"] == "ec2:AttachVolume")
    assert attach["authorizations"] == [{"action": "ec2:AttachVolume", "note": "",
                                         "resources": [ec2_arn("instance", instance), ec2_arn("volume", st["volume"])]}]
    lines = [e["message"] for e in server.client("logs").filter_log_events(logGroupName="/aws/lambda/st-attach")["events"]]
    assert any(line.startswith("heal ") for line in lines)  # the role may write its own log group
    assert attach["allowed_by"] == {
        ec2_arn("instance", instance): "st-attach statement 3 (AttachAndAssociateToGroupInstances)",
        ec2_arn("volume", st["volume"]): "st-attach statement 1 (AttachThisVolume)",
    }


def test_another_stacks_volume_is_refused_by_ec2(fresh):
    server = fresh
    net = network(server)
    st = stack(server, "st", net)
    other = stack(server, "other", net, function=False)
    point(server, st, VOLUME_ID=other["volume"])
    launch(server, st)
    result = heal_result(server, st)
    assert result["calls"][-1] == ["AttachVolume", "UnauthorizedOperation"]
    error = result["error"]
    assert error["status"] == 403
    prefix = (f"You are not authorized to perform this operation. User: {session(st)} is not authorized to perform: "
              f"ec2:AttachVolume on resource: {ec2_arn('volume', other['volume'])} because no identity-based policy "
              "allows the ec2:AttachVolume action. Encoded authorization failure message: ")
    assert error["message"].startswith(prefix), error["message"]
    assert volume_view(server, other["volume"]) == ("available", [])
    [call] = server.ctl("GET", "/calls?operation=AttachVolume")
    assert (call["function"], call["status"], call["error_code"]) == (st["function"], 403, "UnauthorizedOperation")
    [denied] = [d for d in call_decisions(server, st["function"]) if d["decision"] != "Allow"]
    assert (denied["action"], denied["resource"], denied["policy_type"]) == (
        "ec2:AttachVolume", ec2_arn("volume", other["volume"]), "identity-based policy")


def test_another_stacks_address_is_refused_by_ec2(fresh):
    server = fresh
    net = network(server)
    st = stack(server, "st", net)
    other = stack(server, "other", net, function=False)
    point(server, st, ALLOCATION_ID=other["allocation"])
    launch(server, st)
    result = heal_result(server, st)
    assert result["calls"][-1] == ["AssociateAddress", "UnauthorizedOperation"]
    assert (f"is not authorized to perform: ec2:AssociateAddress on resource: {ec2_arn('elastic-ip', other['allocation'])} "
            "because no identity-based policy allows the ec2:AssociateAddress action") in result["error"]["message"]
    address = server.client("ec2").describe_addresses(AllocationIds=[other["allocation"]])["Addresses"][0]
    assert "InstanceId" not in address


def test_another_stacks_instance_and_group_are_refused(fresh):
    """The event of another group: its instance is not one of this group's (the tag
    condition on the instance half of AttachVolume), and its group is not this stack's
    (CompleteLifecycleAction / heartbeat on the group's ARN, Auto Scaling's AccessDenied)."""
    server = fresh
    net = network(server)
    st = stack(server, "st", net)
    other = stack(server, "other", net, function=False)
    theirs = launch(server, other)
    wait_for(lambda: group_instances(server, other["group"])[0]["LifecycleState"] == "InService", what="other InService")
    detail = {"EC2InstanceId": theirs, "AutoScalingGroupName": other["group"], "LifecycleHookName": "st-launch",
              "LifecycleActionToken": "7e5e8d0a-0000-4000-8000-000000000000"}
    resp = server.client("lambda").invoke(FunctionName=st["function"], Payload=json.dumps({"detail": detail}).encode())
    result = json.loads(resp["Payload"].read())
    assert result["calls"][-1] == ["AttachVolume", "UnauthorizedOperation"]
    assert (f"ec2:AttachVolume on resource: {ec2_arn('instance', theirs)} because no identity-based policy allows"
            in result["error"]["message"])
    assert volume_view(server, st["volume"]) == ("available", [])

    # Its own instance, but the other group's lifecycle action: the first group call refused.
    ours = launch(server, st)
    wait_for(lambda: len(healed(server, st)) == 2, timeout=30, what="the stack's own heal")
    assert json.loads(healed(server, st)[1]["response"])["error"] is None
    group_arn = server.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[other["group"]])["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    server.client("ec2").detach_volume(VolumeId=st["volume"])  # the tests' credentials: not evaluated
    wait_for(lambda: volume_view(server, st["volume"])[0] == "available", what="detached")
    detail = {**detail, "EC2InstanceId": ours}
    resp = server.client("lambda").invoke(FunctionName=st["function"], Payload=json.dumps({"detail": detail}).encode())
    result = json.loads(resp["Payload"].read())
    assert result["calls"][-1] == ["RecordLifecycleActionHeartbeat", "AccessDenied"]
    assert result["error"]["status"] == 403
    assert result["error"]["message"] == (
        f"User: {session(st)} is not authorized to perform: autoscaling:RecordLifecycleActionHeartbeat on resource: "
        f"{group_arn} because no identity-based policy allows the autoscaling:RecordLifecycleActionHeartbeat action")


def test_the_boundary_and_an_explicit_deny_limit_the_role(fresh):
    """The boundary caps the inline policy (an untagged volume named by the inline policy is
    still refused), and an explicit Deny in any of the role's policies wins."""
    server = fresh
    net = network(server)
    st = stack(server, "st", net)
    ec2 = server.client("ec2")
    ec2.delete_tags(Resources=[st["volume"]], Tags=[{"Key": "autoheal:stack"}])
    launch(server, st)
    result = heal_result(server, st)
    assert result["calls"][-1] == ["AttachVolume", "UnauthorizedOperation"]
    assert (f"ec2:AttachVolume on resource: {ec2_arn('volume', st['volume'])} because no permissions boundary allows "
            "the ec2:AttachVolume action") in result["error"]["message"]

    ec2.create_tags(Resources=[st["volume"]], Tags=[{"Key": "autoheal:stack", "Value": "st"}])
    guard = {"Version": "2012-10-17", "Statement": [
        {"Sid": "NoAddresses", "Effect": "Deny", "Action": "ec2:AssociateAddress", "Resource": "*"}]}
    server.client("iam").put_role_policy(RoleName=st["function"], PolicyName="guard", PolicyDocument=json.dumps(guard))
    server.ctl("DELETE", "/invocations")
    [instance] = [i["InstanceId"] for i in group_instances(server, st["group"])]
    server.client("ec2").terminate_instances(InstanceIds=[instance])  # the group replaces it: a second heal
    result = heal_result(server, st)
    assert result["calls"][-1] == ["AssociateAddress", "UnauthorizedOperation"]
    assert "ec2:AssociateAddress on resource: " in result["error"]["message"]
    assert "with an explicit deny in an identity-based policy" in result["error"]["message"]
    [denied] = [d for d in call_decisions(server, st["function"]) if d["decision"] == "ExplicitDeny"]
    assert denied["statement"] == "guard statement 0 (NoAddresses)"


def test_an_encrypted_volume_needs_the_key_grant_ec2_makes(fresh):
    """AttachVolume of a volume under a customer managed key is also kms:CreateGrant on the
    key, by EC2 on the caller's behalf: without the provider's KMS statements the attach is
    refused naming the key; with them (here in an attached managed policy) it works."""
    server = fresh
    net = network(server)
    key = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    st = stack(server, "st", net, kms_key=key)
    launch(server, st)
    result = heal_result(server, st)
    assert result["calls"][-1] == ["AttachVolume", "UnauthorizedOperation"]
    assert (f"is not authorized to perform: kms:CreateGrant on resource: {key} because no identity-based policy allows "
            "the kms:CreateGrant action") in result["error"]["message"]
    assert volume_view(server, st["volume"]) == ("available", [])

    full = provider_attach_policy(Scope(REGION, ACCOUNT, st["volume"], st["allocation"], st["group"],
                                        "/aws/lambda/st-attach", key))
    grant = {"Version": "2012-10-17", "Statement": [s for s in full["Statement"] if s["Sid"] == "GrantVolumeKeyToEc2"]}
    iam = server.client("iam")
    arn = iam.create_policy(PolicyName="st-key", PolicyDocument=json.dumps(grant))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=st["function"], PolicyArn=arn)
    server.ctl("DELETE", "/invocations")
    [instance] = [i["InstanceId"] for i in group_instances(server, st["group"])]
    server.client("ec2").terminate_instances(InstanceIds=[instance])
    result = heal_result(server, st)
    assert result["error"] is None, result
    grants = [d for d in call_decisions(server, st["function"]) if d["operation"] == "AttachVolume"][-1]["authorizations"]
    assert [a["action"] for a in grants] == ["ec2:AttachVolume", "kms:CreateGrant"]


def test_propagation_refuses_first_then_the_policy_decides(fresh):
    """Both at once: while a new policy propagates every call is refused (iam_propagation,
    its own message); after the window the role's policies decide."""
    server = fresh
    net = network(server)
    other = stack(server, "other", net, function=False)
    fn = create_function(server, "probe", "try")
    server.ctl("POST", "/profile", {"iam_propagation_s": 300})  # 3 s real at scale 0.01
    iam = server.client("iam")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:DescribeVolumes", "Resource": "*"}]}
    iam.put_role_policy(RoleName="fn-role", PolicyName="p", PolicyDocument=json.dumps(policy))

    def attempt(method: str, **args: Any) -> dict[str, Any]:
        resp = server.client("lambda").invoke(FunctionName=fn.split(":")[-1],
                                              Payload=json.dumps({"service": "ec2", "method": method, "args": args}).encode())
        return json.loads(resp["Payload"].read())

    refused = attempt("describe_volumes")
    assert refused["code"] == "UnauthorizedOperation" and "Encoded" not in refused["message"]
    wait_for(lambda: not server.ctl("GET", "/iam-propagation")["roles"], timeout=15, what="propagation")
    assert attempt("describe_volumes") == {"code": None}
    out = attempt("delete_volume", VolumeId=other["volume"])
    assert out["code"] == "UnauthorizedOperation"
    assert "ec2:DeleteVolume on resource: " + ec2_arn("volume", other["volume"]) in out["message"]
    # The same call with the tests' own credentials is not evaluated.
    server.client("ec2").delete_volume(VolumeId=other["volume"])


def test_lambda_writes_logs_only_with_the_roles_permission(fresh):
    """Lambda writes a function's logs with its role: without logs permissions they are
    dropped (no log group is even made); with the provider's statement (the stream actions
    on the function's own log group, which the provider creates) they arrive."""
    server = fresh
    create_function(server, "probe", "echo")
    logs = server.client("logs")
    assert "FunctionError" not in server.client("lambda").invoke(FunctionName="probe", Payload=b"{}")
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/probe")["logGroups"] == []
    [dropped] = [d for d in decisions(server, "probe") if d["operation"] == "Lambda log delivery"]
    assert (dropped["decision"], dropped["action"]) == ("ImplicitDeny", "logs:CreateLogGroup")

    full = provider_attach_policy(Scope(REGION, ACCOUNT, "vol-0aaaaaaaaaaaaaaaa", "eipalloc-0aaaaaaaaaaaaaaaa",
                                        "probe-asg", "/aws/lambda/probe"))
    own = {"Version": "2012-10-17", "Statement": [s for s in full["Statement"] if s["Sid"] == "LogToOwnLogGroup"]}
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="logs", PolicyDocument=json.dumps(own))
    server.client("lambda").invoke(FunctionName="probe", Payload=b"{}")
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/probe")["logGroups"] == []  # still no CreateLogGroup
    logs.create_log_group(logGroupName="/aws/lambda/probe")
    server.client("lambda").invoke(FunctionName="probe", Payload=b"{}")
    lines = [e["message"] for e in logs.filter_log_events(logGroupName="/aws/lambda/probe")["events"]]
    assert any(line.startswith("START RequestId:") for line in lines) and "init mode=echo" in lines
    assert decisions(server, "probe")[-1]["decision"] == "Allow"


def test_a_log_group_deleted_while_the_function_runs_is_not_made_again_without_create_log_group(fresh):
    """The permission to write a stream is decided at its first line; a group deleted after
    that (a destroy deleting it while an invocation still runs) needs logs:CreateLogGroup
    again before Lambda may make it anew: the provider's role lacks it, so the rest of the
    invocation's lines are dropped and no group comes back (it used to: a leaked group)."""
    server = fresh
    create_function(server, "slow", "sleep", timeout=10, extra_env={"SLEEP": "2"})
    full = provider_attach_policy(Scope(REGION, ACCOUNT, "vol-0aaaaaaaaaaaaaaaa", "eipalloc-0aaaaaaaaaaaaaaaa",
                                        "slow-asg", "/aws/lambda/slow"))
    own = {"Version": "2012-10-17", "Statement": [s for s in full["Statement"] if s["Sid"] == "LogToOwnLogGroup"]}
    server.client("iam").put_role_policy(RoleName="fn-role", PolicyName="logs", PolicyDocument=json.dumps(own))
    logs = server.client("logs")
    logs.create_log_group(logGroupName="/aws/lambda/slow")
    server.client("lambda").invoke(FunctionName="slow", InvocationType="Event", Payload=b"{}")

    def lines() -> list[str]:
        try:
            return [e["message"] for e in logs.filter_log_events(logGroupName="/aws/lambda/slow")["events"]]
        except logs.exceptions.ResourceNotFoundException:
            return []

    deadline = time.monotonic() + 5
    while not any(line.startswith("got event") for line in lines()):
        assert time.monotonic() < deadline, f"the invocation wrote no line: {lines()}"
        time.sleep(0.05)
    logs.delete_log_group(logGroupName="/aws/lambda/slow")
    # The invocation ends (its END and REPORT lines are written then) within its 2 s sleep.
    deadline = time.monotonic() + 8
    while not any(r.get("outcome") for r in invocations(server, "slow")):
        assert time.monotonic() < deadline, "the invocation did not end"
        time.sleep(0.1)
    time.sleep(0.3)
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/slow")["logGroups"] == []
    dropped = [d for d in decisions(server, "slow") if d["operation"] == "Lambda log delivery"]
    assert dropped and (dropped[-1]["decision"], dropped[-1]["action"]) == ("ImplicitDeny", "logs:CreateLogGroup")


def test_an_iam_users_calls_are_refused_as_ec2_refuses_them(fresh):
    """Calls signed with an access key IAM issued to a user are decided by the user's
    policies (a deployer with the README's policy); the tests' own key is not evaluated."""
    import boto3

    iam = fresh.client("iam")
    iam.create_user(UserName="deployer")
    for i, document in enumerate(readme_policies("deployer")):
        arn = iam.create_policy(PolicyName=f"deployer-{i}", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_user_policy(UserName="deployer", PolicyArn=arn)
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    ec2 = boto3.client("ec2", endpoint_url=fresh.url, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    tags = [{"ResourceType": "volume", "Tags": [{"Key": "autoheal:stack", "Value": "st"}]}]
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=tags)
    with pytest.raises(ec2.exceptions.ClientError) as err:
        ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)
    assert err.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: ec2:CreateVolume" in str(err.value)
    fresh.client("ec2").create_volume(AvailabilityZone=f"{REGION}a", Size=1)  # the tests' key: not evaluated
    mine = [d for d in fresh.ctl("GET", "/iam-evaluation")["decisions"]
            if d["principal"] == f"arn:aws:iam::{ACCOUNT}:user/deployer"]
    assert [(d["operation"], d["decision"]) for d in mine] == [("CreateVolume", "Allow"), ("CreateVolume", "ImplicitDeny")]
    assert all(d["user"] == "deployer" for d in mine)


def test_scheduled_snapshot_permissions_are_decided_by_parent_volume_and_tags(fresh):
    """The scheduled-snapshot statements (docs/zone-failover.md, section 1) for an IAM user:
    CreateSnapshot needs the request tag, DeleteSnapshot the snapshot's parent volume."""
    import boto3

    admin = fresh.client("ec2")
    ours = admin.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    theirs = admin.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    iam = fresh.client("iam")
    iam.create_user(UserName="snapper")
    iam.put_user_policy(UserName="snapper", PolicyName="snapshots", PolicyDocument=json.dumps(scheduled_snapshot_policy(REGION, ACCOUNT, ours)))
    key = iam.create_access_key(UserName="snapper")["AccessKey"]
    ec2 = boto3.client("ec2", endpoint_url=fresh.url, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    user = f"arn:aws:iam::{ACCOUNT}:user/snapper"
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": "autoheal:snapshot", "Value": "scheduled"}]}]

    with pytest.raises(ec2.exceptions.ClientError) as err:
        ec2.create_snapshot(VolumeId=ours)
    assert err.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert (f"User: {user} is not authorized to perform: ec2:CreateSnapshot on resource: "
            f"arn:aws:ec2:{REGION}::snapshot/* because no identity-based policy allows") in str(err.value)
    assert admin.describe_snapshots(OwnerIds=["self"])["Snapshots"] == []  # nothing done
    mine = ec2.create_snapshot(VolumeId=ours, TagSpecifications=spec)["SnapshotId"]
    other = admin.create_snapshot(VolumeId=theirs, TagSpecifications=spec)["SnapshotId"]
    assert {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]} == {mine, other}

    with pytest.raises(ec2.exceptions.ClientError) as err:
        ec2.delete_snapshot(SnapshotId=other)  # tagged alike, but taken of another volume
    assert err.value.response["Error"]["Code"] == "UnauthorizedOperation"
    assert f"ec2:DeleteSnapshot on resource: arn:aws:ec2:{REGION}::snapshot/{other}" in str(err.value)
    ec2.delete_snapshot(SnapshotId=mine)
    assert [s["SnapshotId"] for s in admin.describe_snapshots(OwnerIds=["self"])["Snapshots"]] == [other]
