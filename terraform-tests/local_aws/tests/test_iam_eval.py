"""The IAM evaluator (localaws/iam_eval.py) and the request contexts (localaws/iam_context.py).

Each condition key our policies or the README's use has an allowed and a denied case, on
the project's own documents where they use it (the provider's inline policy, read from
policy.rs's unit tests; the README's deployer and boundary policies). What this proves is
agreement with our reading of AWS's documentation (see iam_eval's docstring), not with AWS.
No server: the evaluator is pure, the context tests use moto in this process.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conftest import ACCOUNT, AMI, REGION
from iam_policies import Scope, provider_attach_policy, readme_policies, scheduled_snapshot_policy
from localaws import iam_context
from localaws.iam_eval import (
    ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, Policy, Request, Resource, UnsupportedPolicy, evaluate, evaluate_all,
)
from localaws.requestinfo import RequestInfo

ROLE = f"arn:aws:iam::{ACCOUNT}:role/autoheal/st-attach"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SCOPE = Scope(REGION, ACCOUNT, "vol-0aaaaaaaaaaaaaaaa", "eipalloc-0aaaaaaaaaaaaaaaa", "st-asg", "/aws/lambda/st-attach", KEY)
PRINCIPAL = iam_context.Principal(ACCOUNT, ROLE, "AROAEXAMPLE", "st-attach")
BASE = PRINCIPAL.context(REGION)


def ec2(kind: str, rid: str) -> str:
    return f"arn:aws:ec2:{REGION}:{ACCOUNT}:{kind}/{rid}"


def request(action: str, *resources: Resource | str, **ctx: Any) -> Request:
    res = [r if isinstance(r, Resource) else Resource(r) for r in resources] or [Resource("*")]
    return Request(action, res, {**BASE, **{k.replace("__", ":").replace("_SLASH_", "/"): v for k, v in ctx.items()}})


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(policies: list[Any], req: Request, boundary: list[Any] | None = None) -> str:
    return evaluate(policies, boundary, req).decision


def statement(docs: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return next(s for d in docs for s in d["Statement"] if s.get("Sid") == sid)


# -- actions, resources, effects -------------------------------------------------------------


def test_action_wildcards_are_case_insensitive():
    vol = ec2("volume", "vol-1")
    assert decide([doc(allow("ec2:Attach*"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("EC2:attachvolume"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("ec2:?ttachVolume"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("*"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("ec2:Detach*"))], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    assert decide([doc(allow("ec2:AttachVolumes"))], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    assert decide([doc(allow("autoscaling:Attach*"))], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY


def test_resource_wildcards_match_per_segment_and_are_case_sensitive():
    vol = ec2("volume", "vol-1")
    assert decide([doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/*"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/vol-?"))], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:Volume/*"))], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    assert decide([doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:instance/*"))], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    assert decide([doc(allow("ec2:AttachVolume", f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/*"))],
                  request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    # The last segment's * spans colons: a log group's ":*" covers its streams, no other group.
    logs = doc(allow("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/st-attach:*"))
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/st-attach:log-stream:2026/01/01/[$LATEST]ab"
    other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/st-attach2:log-stream:x"
    assert decide([logs], request("logs:PutLogEvents", stream)) == ALLOW
    assert decide([logs], request("logs:PutLogEvents", other)) == IMPLICIT_DENY
    # An action without resource-level permissions is on "*": only "*" matches it.
    assert decide([doc(allow("ec2:DescribeVolumes", "arn:aws:ec2:*:*:volume/*"))], request("ec2:DescribeVolumes")) == IMPLICIT_DENY
    assert decide([doc(allow("ec2:DescribeVolumes", "*"))], request("ec2:DescribeVolumes")) == ALLOW


def test_not_action_and_not_resource():
    vol = ec2("volume", "vol-1")
    policy = doc({"Effect": "Allow", "NotAction": "ec2:Detach*", "Resource": "*"})
    assert decide([policy], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([policy], request("ec2:DetachVolume", vol)) == IMPLICIT_DENY
    policy = doc({"Effect": "Allow", "Action": "ec2:AttachVolume", "NotResource": ec2("volume", "vol-2")})
    assert decide([policy], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([policy], request("ec2:AttachVolume", ec2("volume", "vol-2"))) == IMPLICIT_DENY


def test_an_explicit_deny_wins_wherever_it_is():
    vol = ec2("volume", "vol-1")
    policies = [doc(allow("ec2:*")), Policy("guard", doc(deny("ec2:AttachVolume", ec2("volume", "*"))))]
    d = evaluate(policies, None, request("ec2:AttachVolume", vol))
    assert (d.decision, d.resource, d.policy_type) == (EXPLICIT_DENY, vol, "identity-based policy")
    assert str(d.statement) == "guard statement 0"
    assert d.reason() == "with an explicit deny in an identity-based policy"
    # In a boundary that also allows it.
    bound = doc(allow("ec2:*"), deny("ec2:AttachVolume"))
    d = evaluate([doc(allow("ec2:*"))], [bound], request("ec2:AttachVolume", vol))
    assert (d.decision, d.policy_type) == (EXPLICIT_DENY, "permissions boundary")
    assert d.reason() == "with an explicit deny in a permissions boundary"
    # On one of the call's resources only: the call is denied.
    inst = ec2("instance", "i-1")
    d = evaluate([doc(allow("ec2:AttachVolume"), deny("ec2:AttachVolume", ec2("instance", "*")))], None,
                 request("ec2:AttachVolume", vol, inst))
    assert (d.decision, d.resource) == (EXPLICIT_DENY, inst)


def test_a_boundary_intersects_with_the_identity_policies():
    vol = ec2("volume", "vol-1")
    req = request("ec2:AttachVolume", vol)
    wide, narrow = doc(allow("ec2:*")), doc(allow("ec2:AttachVolume", ec2("volume", "vol-1")))
    assert decide([wide], req, boundary=[narrow]) == ALLOW
    assert decide([narrow], req, boundary=[wide]) == ALLOW
    d = evaluate([wide], [doc(allow("ec2:Describe*"))], req)
    assert (d.decision, d.policy_type) == (IMPLICIT_DENY, "permissions boundary")
    assert d.reason() == "because no permissions boundary allows the ec2:AttachVolume action"
    d = evaluate([doc(allow("ec2:Describe*"))], [wide], req)
    assert (d.decision, d.policy_type) == (IMPLICIT_DENY, "identity-based policy")
    assert d.reason() == "because no identity-based policy allows the ec2:AttachVolume action"
    # A boundary naming a policy that is gone allows nothing; no boundary at all limits nothing.
    assert decide([wide], req, boundary=[]) == IMPLICIT_DENY
    assert decide([wide], req, boundary=None) == ALLOW
    # Several authorizations of one call: the first denial decides.
    d = evaluate_all([wide], None, [req, request("kms:CreateGrant", KEY)])
    assert (d.decision, d.action) == (IMPLICIT_DENY, "kms:CreateGrant")


# -- condition keys ----------------------------------------------------------------------------


def test_resource_tag_decides_per_resource_with_the_providers_attach_policy():
    """aws:ResourceTag/aws:autoscaling:groupName: the instance half of AttachVolume and
    AssociateAddress must be one of the group's instances; the volume and the address are
    the stack's own, by ARN (the tag condition is not evaluated against them)."""
    policy = provider_attach_policy(SCOPE)
    vol = Resource(ec2("volume", SCOPE.volume), {"aws:ResourceTag/autoheal:stack": "st"})
    eip = Resource(ec2("elastic-ip", SCOPE.allocation), {})
    ours = Resource(ec2("instance", "i-1"), {"aws:ResourceTag/aws:autoscaling:groupName": "st-asg"})
    theirs = Resource(ec2("instance", "i-2"), {"aws:ResourceTag/aws:autoscaling:groupName": "other-asg"})
    untagged = Resource(ec2("instance", "i-3"), {})
    assert decide([policy], request("ec2:AttachVolume", ours, vol)) == ALLOW
    assert decide([policy], request("ec2:AssociateAddress", eip, ours)) == ALLOW
    for inst in (theirs, untagged):
        d = evaluate([policy], None, request("ec2:AttachVolume", inst, vol))
        assert (d.decision, d.resource) == (IMPLICIT_DENY, inst.arn)
    other_vol = Resource(ec2("volume", "vol-0bbbbbbbbbbbbbbbb"), {"aws:ResourceTag/aws:autoscaling:groupName": "st-asg"})
    d = evaluate([policy], None, request("ec2:AttachVolume", ours, other_vol))
    assert (d.decision, d.resource) == (IMPLICIT_DENY, other_vol.arn)
    other_eip = Resource(ec2("elastic-ip", "eipalloc-0bbbbbbbbbbbbbbbb"), {})
    assert decide([policy], request("ec2:AssociateAddress", other_eip, ours)) == IMPLICIT_DENY
    # Tag values are case-sensitive under StringEquals.
    shouting = Resource(ec2("instance", "i-4"), {"aws:ResourceTag/aws:autoscaling:groupName": "ST-ASG"})
    assert decide([policy], request("ec2:AttachVolume", shouting, vol)) == IMPLICIT_DENY


def test_resource_tag_null_in_the_readme_boundary():
    [boundary] = readme_policies("boundary")
    wide = doc(allow("*"))
    tagged = Resource(ec2("volume", "vol-1"), {"aws:ResourceTag/autoheal:stack": "st"})
    untagged = Resource(ec2("volume", "vol-2"), {"aws:ResourceTag/Name": "x"})
    inst = Resource(ec2("instance", "i-1"), {"aws:ResourceTag/autoheal:stack": "st",
                                              "aws:ResourceTag/aws:autoscaling:groupName": "st-asg"})
    assert decide([wide], request("ec2:AttachVolume", inst, tagged), boundary=[boundary]) == ALLOW
    d = evaluate([wide], [boundary], request("ec2:AttachVolume", inst, untagged))
    assert (d.decision, d.policy_type, d.resource) == (IMPLICIT_DENY, "permissions boundary", untagged.arn)
    # The boundary never allows what it does not list.
    assert decide([wide], request("ec2:DetachVolume", inst, tagged), boundary=[boundary]) == IMPLICIT_DENY


def test_request_tag_null_in_the_readme_deployer_policy():
    deployer = readme_policies("deployer")
    st = doc(statement(deployer, "Ec2CreateVpcOrVolumeOnlyWithTheStackTag"))
    vol = ec2("volume", "*")
    assert decide([st], request("ec2:CreateVolume", vol, **{"aws:RequestTag/autoheal:stack": "st"})) == ALLOW
    assert decide([st], request("ec2:CreateVolume", vol, **{"aws:RequestTag/Name": "st"})) == IMPLICIT_DENY
    assert decide([st], request("ec2:CreateVolume", vol)) == IMPLICIT_DENY


def test_tag_keys_for_all_values_and_for_any_value():
    only = doc(allow("ec2:CreateTags", "*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["Name", "autoheal:stack"]}}))
    assert decide([only], request("ec2:CreateTags", **{"aws:TagKeys": ["Name"]})) == ALLOW
    assert decide([only], request("ec2:CreateTags", **{"aws:TagKeys": ["Name", "Owner"]})) == IMPLICIT_DENY
    # ForAllValues with no tags at all is true (IAM User Guide, multivalued context keys).
    assert decide([only], request("ec2:CreateTags")) == ALLOW
    some = doc(allow("ec2:CreateTags", "*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "autoheal:stack"}}))
    assert decide([some], request("ec2:CreateTags", **{"aws:TagKeys": ["Name", "autoheal:stack"]})) == ALLOW
    assert decide([some], request("ec2:CreateTags", **{"aws:TagKeys": ["Name"]})) == IMPLICIT_DENY
    assert decide([some], request("ec2:CreateTags")) == IMPLICIT_DENY


def test_ec2_create_action_in_the_readme_deployer_policy():
    st = doc(statement(readme_policies("deployer"), "Ec2TagWhileCreating"))
    vol = ec2("volume", "*")
    assert decide([st], request("ec2:CreateTags", vol, **{"ec2:CreateAction": "CreateVolume"})) == ALLOW
    assert decide([st], request("ec2:CreateTags", vol, **{"ec2:CreateAction": "ImportVolume"})) == IMPLICIT_DENY
    assert decide([st], request("ec2:CreateTags", vol)) == IMPLICIT_DENY  # tagging an existing volume


@pytest.mark.parametrize("wrong, value", [
    (None, None),
    ("kms:GrantIsForAWSResource", "false"),
    ("kms:ViaService", "ec2.us-east-1.amazonaws.com"),
    ("kms:ViaService", "rds.ap-southeast-2.amazonaws.com"),
    ("kms:CallerAccount", "444455556666"),
    ("kms:ViaService", None),
    ("kms:GrantIsForAWSResource", None),
    ("kms:CallerAccount", None),
])
def test_kms_grant_keys_of_the_providers_policy(wrong, value):
    """GrantVolumeKeyToEc2: kms:GrantIsForAWSResource (Bool), kms:ViaService and
    kms:CallerAccount (StringEquals): each wrong or missing value denies."""
    policy = provider_attach_policy(SCOPE)
    ctx = {"kms:GrantIsForAWSResource": "true", "kms:ViaService": f"ec2.{REGION}.amazonaws.com",
           "kms:CallerAccount": ACCOUNT}
    if wrong is not None:
        if value is None:
            del ctx[wrong]
        else:
            ctx[wrong] = value
    expected = ALLOW if wrong is None else IMPLICIT_DENY
    assert decide([policy], request("kms:CreateGrant", KEY, **ctx)) == expected
    # Another key is never allowed, and neither is the key without the KMS statements.
    assert decide([policy], request("kms:CreateGrant", KEY.replace("1234abcd", "9999abcd"), **ctx)) == IMPLICIT_DENY
    without = provider_attach_policy(Scope(**{**SCOPE.__dict__, "key": None}))
    assert decide([without], request("kms:CreateGrant", KEY, **ctx)) == IMPLICIT_DENY


def test_kms_via_service_string_like_in_the_readme_boundary():
    [boundary] = readme_policies("boundary")
    wide = doc(allow("*"))
    via = {"kms:GrantIsForAWSResource": "true", "kms:CallerAccount": ACCOUNT}
    assert decide([wide], request("kms:CreateGrant", KEY, **via, **{"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}),
                  boundary=[boundary]) == ALLOW
    assert decide([wide], request("kms:CreateGrant", KEY, **via, **{"kms:ViaService": "s3.eu-west-1.amazonaws.com"}),
                  boundary=[boundary]) == IMPLICIT_DENY
    assert decide([wide], request("kms:Decrypt", KEY), boundary=[boundary]) == IMPLICIT_DENY


def test_iam_passed_to_service_in_the_readme_deployer_policy():
    st = doc(statement(readme_policies("deployer"), "PassThatRoleToLambdaOnly"))
    role = Resource(ROLE, {"aws:ResourceTag/autoheal:stack": "st"})
    assert decide([st], request("iam:PassRole", role, **{"iam:PassedToService": "lambda.amazonaws.com"})) == ALLOW
    assert decide([st], request("iam:PassRole", role, **{"iam:PassedToService": "ec2.amazonaws.com"})) == IMPLICIT_DENY
    other_path = Resource(f"arn:aws:iam::{ACCOUNT}:role/st-attach", {"aws:ResourceTag/autoheal:stack": "st"})
    assert decide([st], request("iam:PassRole", other_path, **{"iam:PassedToService": "lambda.amazonaws.com"})) == IMPLICIT_DENY


def test_iam_aws_service_name_in_the_readme_deployer_policy():
    st = doc(statement(readme_policies("deployer"), "AutoScalingServiceLinkedRoleOnFirstUse"))
    slr = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    assert decide([st], request("iam:CreateServiceLinkedRole", slr, **{"iam:AWSServiceName": "autoscaling.amazonaws.com"})) == ALLOW
    assert decide([st], request("iam:CreateServiceLinkedRole", slr, **{"iam:AWSServiceName": "ec2.amazonaws.com"})) == IMPLICIT_DENY


def test_iam_permissions_boundary_with_the_principal_account_variable():
    """iam:PermissionsBoundary against "arn:aws:iam::${aws:PrincipalAccount}:policy/..."
    (the README's LambdaRoleCreatedUnderTheBoundary): the variable is the caller's account."""
    st = doc(statement(readme_policies("deployer"), "LambdaRoleCreatedUnderTheBoundary"))
    ours = f"arn:aws:iam::{ACCOUNT}:policy/autoheal-lambda-boundary"
    tag = {"aws:RequestTag/autoheal:stack": "st"}
    assert decide([st], request("iam:CreateRole", ROLE, **tag, **{"iam:PermissionsBoundary": ours})) == ALLOW
    for wrong in (ours.replace(ACCOUNT, "444455556666"), ours + "-wide", None):
        ctx = dict(tag)
        if wrong:
            ctx["iam:PermissionsBoundary"] = wrong
        assert decide([st], request("iam:CreateRole", ROLE, **ctx)) == IMPLICIT_DENY, wrong
    # Without the caller's account in the context the variable cannot resolve: no match.
    bare = Request("iam:CreateRole", [Resource(ROLE)], {**tag, "iam:PermissionsBoundary": ours})
    assert evaluate([st], None, bare).decision == IMPLICIT_DENY


def test_lambda_principal_in_the_readme_deployer_policy():
    st = doc(statement(readme_policies("deployer"), "OnlyEventBridgeMayInvokeTheFunction"))
    fn = Resource(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:st-attach", {"aws:ResourceTag/autoheal:stack": "st"})
    assert decide([st], request("lambda:AddPermission", fn, **{"lambda:Principal": "events.amazonaws.com"})) == ALLOW
    assert decide([st], request("lambda:AddPermission", fn, **{"lambda:Principal": "*"})) == IMPLICIT_DENY


# -- operators ---------------------------------------------------------------------------------


def test_if_exists_negation_and_missing_keys():
    vol = ec2("volume", "vol-1")
    if_exists = doc(allow("ec2:AttachVolume", "*", Condition={"StringEqualsIfExists": {"ec2:VolumeType": "gp3"}}))
    assert decide([if_exists], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([if_exists], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "gp3"})) == ALLOW
    assert decide([if_exists], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "io2"})) == IMPLICIT_DENY
    plain = doc(allow("ec2:AttachVolume", "*", Condition={"StringEquals": {"ec2:VolumeType": "gp3"}}))
    assert decide([plain], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    # A negated operator with the key missing is true.
    negated = doc(allow("ec2:AttachVolume", "*", Condition={"StringNotEquals": {"ec2:VolumeType": "io2"}}))
    assert decide([negated], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([negated], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "io2"})) == IMPLICIT_DENY
    # Condition key names are case-insensitive, values are not (but for IgnoreCase).
    assert decide([plain], request("ec2:AttachVolume", vol, **{"EC2:volumetype": "gp3"})) == ALLOW
    assert decide([plain], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "GP3"})) == IMPLICIT_DENY
    ic = doc(allow("ec2:AttachVolume", "*", Condition={"StringEqualsIgnoreCase": {"ec2:VolumeType": "gp3"}}))
    assert decide([ic], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "GP3"})) == ALLOW


def test_like_arn_numeric_and_several_conditions():
    vol = ec2("volume", "vol-1")
    like = doc(allow("ec2:AttachVolume", "*", Condition={"StringLike": {"ec2:VolumeType": ["gp*", "io?"]}}))
    assert decide([like], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "io2"})) == ALLOW
    assert decide([like], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "st1"})) == IMPLICIT_DENY
    arn = doc(allow("iam:PassRole", "*", Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/autoheal/*"}}))
    assert decide([arn], request("iam:PassRole", ROLE)) == ALLOW
    assert decide([arn], Request("iam:PassRole", [Resource(ROLE)], {**BASE, "aws:PrincipalArn": "arn:aws:iam::1:role/x"})) == IMPLICIT_DENY
    num = doc(allow("ec2:AttachVolume", "*", Condition={"NumericLessThanEquals": {"ec2:VolumeSize": "100"}}))
    assert decide([num], request("ec2:AttachVolume", vol, **{"ec2:VolumeSize": "8"})) == ALLOW
    assert decide([num], request("ec2:AttachVolume", vol, **{"ec2:VolumeSize": "500"})) == IMPLICIT_DENY
    both = doc(allow("ec2:AttachVolume", "*", Condition={
        "StringEquals": {"ec2:VolumeType": "gp3", "ec2:Encrypted": "true"}, "Bool": {"aws:SecureTransport": "true"}}))
    assert decide([both], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "gp3", "ec2:Encrypted": "true"})) == ALLOW
    assert decide([both], request("ec2:AttachVolume", vol, **{"ec2:VolumeType": "gp3", "ec2:Encrypted": "false"})) == IMPLICIT_DENY


def test_policy_variables_in_resources_with_defaults_and_escapes():
    vol = ec2("volume", "vol-1")
    mine = doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:${aws:PrincipalAccount}:volume/*"))
    assert decide([mine], request("ec2:AttachVolume", vol)) == ALLOW
    assert decide([mine], request("ec2:AttachVolume", vol.replace(ACCOUNT, "444455556666"))) == IMPLICIT_DENY
    default = doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/${aws:NoSuchKey, 'vol-1'}"))
    assert decide([default], request("ec2:AttachVolume", vol)) == ALLOW
    missing = doc(allow("ec2:AttachVolume", "arn:aws:ec2:*:*:volume/${aws:NoSuchKey}"))
    assert decide([missing], request("ec2:AttachVolume", vol)) == IMPLICIT_DENY
    literal = doc(allow("s3:GetObject", "arn:aws:s3:::bucket/${*}"))
    assert decide([literal], request("s3:GetObject", "arn:aws:s3:::bucket/*")) == ALLOW
    assert decide([literal], request("s3:GetObject", "arn:aws:s3:::bucket/x")) == IMPLICIT_DENY


def test_what_is_not_supported_is_refused_not_guessed():
    vol = ec2("volume", "vol-1")
    with pytest.raises(UnsupportedPolicy, match="DateGreaterThan"):
        evaluate([doc(allow("ec2:*", "*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))],
                 None, request("ec2:AttachVolume", vol))
    with pytest.raises(UnsupportedPolicy, match="Version"):
        evaluate([{"Version": "2008-10-17", "Statement": [allow("*")]}], None, request("ec2:AttachVolume", vol))
    with pytest.raises(UnsupportedPolicy, match="Principal"):
        evaluate([doc(allow("*", "*", Principal="*"))], None, request("ec2:AttachVolume", vol))


# -- request contexts from calls (moto in this process) ------------------------------------------


def info(service: str, operation: str, protocol: str, **params: Any) -> RequestInfo:
    return RequestInfo(service, REGION, operation, protocol, all_params=params)


@pytest.fixture
def aws():
    with mock_aws():
        yield


def _group_instance(group: str) -> str:
    e = boto3.client("ec2", region_name=REGION)
    vpc = e.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = e.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    lt = e.create_launch_template(LaunchTemplateName=f"lt-{group}",
                                  LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})["LaunchTemplate"]
    a = boto3.client("autoscaling", region_name=REGION)
    a.create_auto_scaling_group(AutoScalingGroupName=group, MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet,
                                LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "$Latest"})
    return a.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]


def test_attach_volume_context_has_both_resources_with_their_own_tags(aws):
    ours, theirs = _group_instance("st-asg"), _group_instance("other-asg")
    e = boto3.client("ec2", region_name=REGION)
    vol = e.create_volume(AvailabilityZone=f"{REGION}a", Size=1,
                          TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "autoheal:stack", "Value": "st"}]}])["VolumeId"]
    [req] = iam_context.build(info("ec2", "AttachVolume", "ec2", InstanceId=ours, VolumeId=vol, Device="/dev/sdf"), PRINCIPAL)
    assert req.action == "ec2:AttachVolume"
    inst, volume = req.resources
    assert inst.arn == ec2("instance", ours) and volume.arn == ec2("volume", vol)
    assert inst.context["aws:ResourceTag/aws:autoscaling:groupName"] == "st-asg"
    assert "aws:ResourceTag/autoheal:stack" not in inst.context
    assert volume.context["aws:ResourceTag/autoheal:stack"] == "st" and volume.context["ec2:VolumeID"] == vol
    assert req.context["aws:PrincipalAccount"] == ACCOUNT and req.context["ec2:Region"] == REGION
    policy = provider_attach_policy(Scope(**{**SCOPE.__dict__, "volume": vol}))
    assert evaluate_all([policy], None, [req]).decision == ALLOW
    [req] = iam_context.build(info("ec2", "AttachVolume", "ec2", InstanceId=theirs, VolumeId=vol, Device="/dev/sdf"), PRINCIPAL)
    d = evaluate_all([policy], None, [req])
    assert (d.decision, d.resource) == (IMPLICIT_DENY, ec2("instance", theirs))


def test_encrypted_volume_attach_also_needs_the_kms_grant_ec2_makes(aws):
    ours = _group_instance("st-asg")
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    e = boto3.client("ec2", region_name=REGION)
    vol = e.create_volume(AvailabilityZone=f"{REGION}a", Size=1, Encrypted=True, KmsKeyId=key)["VolumeId"]
    reqs = iam_context.build(info("ec2", "AttachVolume", "ec2", InstanceId=ours, VolumeId=vol, Device="/dev/sdf"), PRINCIPAL)
    assert [r.action for r in reqs] == ["ec2:AttachVolume", "kms:CreateGrant"]
    grant = reqs[1]
    assert [r.arn for r in grant.resources] == [key]
    assert {k: grant.context[k] for k in ("kms:ViaService", "kms:CallerAccount", "kms:GrantIsForAWSResource")} == {
        "kms:ViaService": f"ec2.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT, "kms:GrantIsForAWSResource": "true"}
    scope = Scope(**{**SCOPE.__dict__, "volume": vol, "key": key})
    assert evaluate_all([provider_attach_policy(scope)], None, reqs).decision == ALLOW
    d = evaluate_all([provider_attach_policy(Scope(**{**scope.__dict__, "key": None}))], None, reqs)
    assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "kms:CreateGrant", key)
    # The AWS managed key aws/ebs: its key policy lets EC2 use it for the account; no grant check.
    default = e.create_volume(AvailabilityZone=f"{REGION}a", Size=1, Encrypted=True)["VolumeId"]
    reqs = iam_context.build(info("ec2", "AttachVolume", "ec2", InstanceId=ours, VolumeId=default, Device="/dev/sdf"), PRINCIPAL)
    assert [r.action for r in reqs] == ["ec2:AttachVolume"]


def test_tag_on_create_is_also_create_tags_with_the_create_action(aws):
    params = {"AvailabilityZone": f"{REGION}a", "Size": "1", "TagSpecification.1.ResourceType": "volume",
              "TagSpecification.1.Tag.1.Key": "autoheal:stack", "TagSpecification.1.Tag.1.Value": "st"}
    create, tag = iam_context.build(info("ec2", "CreateVolume", "ec2", **params), PRINCIPAL)
    assert (create.action, [r.arn for r in create.resources]) == ("ec2:CreateVolume", [ec2("volume", "*")])
    assert create.context["aws:RequestTag/autoheal:stack"] == "st" and create.context["aws:TagKeys"] == ["autoheal:stack"]
    assert (tag.action, tag.context["ec2:CreateAction"]) == ("ec2:CreateTags", "CreateVolume")
    deployer = readme_policies("deployer")
    assert evaluate_all(deployer, None, [create, tag]).decision == ALLOW
    untagged = {k: v for k, v in params.items() if not k.startswith("TagSpecification")}
    reqs = iam_context.build(info("ec2", "CreateVolume", "ec2", **untagged), PRINCIPAL)
    assert [r.action for r in reqs] == ["ec2:CreateVolume"]
    assert evaluate_all(deployer, None, reqs).decision == IMPLICIT_DENY


def test_iam_keys_of_role_calls(aws):
    iam = boto3.client("iam")
    boundary = iam.create_policy(PolicyName="autoheal-lambda-boundary",
                                 PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}')["Policy"]["Arn"]
    deployer = readme_policies("deployer")
    create = {"RoleName": "st-attach", "Path": "/autoheal/", "AssumeRolePolicyDocument": "{}",
              "PermissionsBoundary": boundary, "Tags.member.1.Key": "autoheal:stack", "Tags.member.1.Value": "st"}
    [req] = iam_context.build(info("iam", "CreateRole", "query", **create), PRINCIPAL)
    assert req.context["iam:PermissionsBoundary"] == boundary and [r.arn for r in req.resources] == [ROLE]
    assert evaluate_all(deployer, None, [req]).decision == ALLOW
    [req] = iam_context.build(info("iam", "CreateRole", "query", **{k: v for k, v in create.items() if k != "PermissionsBoundary"}), PRINCIPAL)
    assert evaluate_all(deployer, None, [req]).decision == IMPLICIT_DENY
    # PutRolePolicy is judged by the boundary the role has.
    iam.create_role(RoleName="st-attach", Path="/autoheal/", AssumeRolePolicyDocument="{}", PermissionsBoundary=boundary,
                    Tags=[{"Key": "autoheal:stack", "Value": "st"}])
    [req] = iam_context.build(info("iam", "PutRolePolicy", "query", RoleName="st-attach", PolicyName="p", PolicyDocument="{}"), PRINCIPAL)
    assert req.context["iam:PermissionsBoundary"] == boundary
    assert req.resources[0].context["aws:ResourceTag/autoheal:stack"] == "st"
    assert evaluate_all(deployer, None, [req]).decision == ALLOW
    iam.delete_role_permissions_boundary(RoleName="st-attach")
    [req] = iam_context.build(info("iam", "PutRolePolicy", "query", RoleName="st-attach", PolicyName="p", PolicyDocument="{}"), PRINCIPAL)
    assert "iam:PermissionsBoundary" not in req.context
    assert evaluate_all(deployer, None, [req]).decision == IMPLICIT_DENY
    # Lambda passes the role: iam:PassRole with iam:PassedToService.
    fn = {"FunctionName": "st-attach", "Role": ROLE, "Tags": {"autoheal:stack": "st"}}
    create_fn, pass_role = iam_context.build(info("lambda", "CreateFunction", "rest-json", **fn), PRINCIPAL)
    assert (pass_role.action, pass_role.context["iam:PassedToService"]) == ("iam:PassRole", "lambda.amazonaws.com")
    assert pass_role.resources[0].arn == ROLE
    assert evaluate_all(deployer, None, [create_fn, pass_role]).decision == ALLOW
    # Auto Scaling's service-linked role on first use: iam:AWSServiceName.
    reqs = iam_context.build(info("autoscaling", "CreateAutoScalingGroup", "query", AutoScalingGroupName="st-asg"), PRINCIPAL)
    slr = next(r for r in reqs if r.action == "iam:CreateServiceLinkedRole")
    assert slr.context["iam:AWSServiceName"] == "autoscaling.amazonaws.com"
    assert evaluate_all(deployer, None, [slr]).decision == ALLOW


def test_actions_come_from_the_service_authorization_reference():
    attach = iam_context.action_def("ec2:AttachVolume")
    assert [(r.name, r.required) for r in attach.resource_types] == [("instance", True), ("volume", True)]
    assert attach.key_listed("aws:ResourceTag/anything", "instance")
    assert iam_context.action_def("autoscaling:DescribeAutoScalingInstances").resource_types == ()
    assert iam_context.action_def("kms:CreateGrant").key_listed("kms:GrantIsForAWSResource")
    assert iam_context.action_def("iam:PassRole").key_listed("iam:PassedToService")
    assert iam_context.action_def("ec2:CreateTags").key_listed("ec2:CreateAction")
    assert iam_context.action_def("ec2:NoSuchAction") is None


def test_an_iam_users_calls_are_decided_by_its_policies(aws):
    """The IAM-user principal (a deployer): the user's managed policies (the README's
    deployer policy), global keys as AWS sets them for an IAM user, one allow, one deny."""
    from localaws.iam_enforce import user_policies

    iam = boto3.client("iam")
    user = iam.create_user(UserName="deployer")["User"]
    documents = readme_policies("deployer")
    for i, document in enumerate(documents):
        arn = iam.create_policy(PolicyName=f"deployer-{i}", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_user_policy(UserName="deployer", PolicyArn=arn)
    key = iam.create_access_key(UserName="deployer")["AccessKey"]["AccessKeyId"]
    assert user_policies(ACCOUNT, "AKIAIOSFODNN7EXAMPLE") is None  # not a key IAM issued
    moto_user, identity = user_policies(ACCOUNT, key)
    assert moto_user.name == "deployer" and len(identity) == len(documents) > 1
    principal = iam_context.User(ACCOUNT, user["Arn"], user["UserId"], "deployer")
    assert principal.arn == f"arn:aws:iam::{ACCOUNT}:user/deployer"
    params = {"AvailabilityZone": f"{REGION}a", "Size": "1", "TagSpecification.1.ResourceType": "volume",
              "TagSpecification.1.Tag.1.Key": "autoheal:stack", "TagSpecification.1.Tag.1.Value": "st"}
    reqs = iam_context.build(info("ec2", "CreateVolume", "ec2", **params), principal)
    ctx = reqs[0].context
    assert (ctx["aws:PrincipalType"], ctx["aws:username"], ctx["aws:userid"], ctx["aws:PrincipalArn"]) == (
        "User", "deployer", user["UserId"], principal.arn)
    assert evaluate_all(identity, None, reqs).decision == ALLOW
    untagged = {k: v for k, v in params.items() if not k.startswith("TagSpecification")}
    d = evaluate_all(identity, None, iam_context.build(info("ec2", "CreateVolume", "ec2", **untagged), principal))
    assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "ec2:CreateVolume", ec2("volume", "*"))


def snapshot_policy(volume: str) -> dict[str, Any]:
    return scheduled_snapshot_policy(REGION, ACCOUNT, volume)


def test_snapshot_contexts_name_the_volume_and_the_accountless_snapshot(aws):
    e = boto3.client("ec2", region_name=REGION)
    ours = e.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    theirs = e.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    policy = snapshot_policy(ours)
    tagged = {"TagSpecification.1.ResourceType": "snapshot", "TagSpecification.1.Tag.1.Key": "autoheal:snapshot",
              "TagSpecification.1.Tag.1.Value": "scheduled"}
    create, tag = iam_context.build(info("ec2", "CreateSnapshot", "ec2", VolumeId=ours, **tagged), PRINCIPAL)
    new = f"arn:aws:ec2:{REGION}::snapshot/*"  # a snapshot's ARN has no account
    assert create.action == "ec2:CreateSnapshot"
    assert sorted(r.arn for r in create.resources) == sorted([new, ec2("volume", ours)])
    snap_res = next(r for r in create.resources if r.arn == new)
    assert snap_res.context["ec2:ParentVolume"] == ec2("volume", ours)
    assert create.context["aws:RequestTag/autoheal:snapshot"] == "scheduled"
    assert create.context["aws:TagKeys"] == ["autoheal:snapshot"]
    assert (tag.action, [r.arn for r in tag.resources], tag.context["ec2:CreateAction"]) == (
        "ec2:CreateTags", [new], "CreateSnapshot")
    assert tag.context["aws:RequestTag/autoheal:snapshot"] == "scheduled"
    assert evaluate_all([policy], None, [create, tag]).decision == ALLOW
    # Without the request tag the policy requires: refused on the new snapshot.
    reqs = iam_context.build(info("ec2", "CreateSnapshot", "ec2", VolumeId=ours), PRINCIPAL)
    d = evaluate_all([policy], None, reqs)
    assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "ec2:CreateSnapshot", new)
    wrong = {**tagged, "TagSpecification.1.Tag.1.Value": "manual"}
    d = evaluate_all([policy], None, iam_context.build(info("ec2", "CreateSnapshot", "ec2", VolumeId=ours, **wrong), PRINCIPAL))
    assert (d.decision, d.resource) == (IMPLICIT_DENY, new)
    # Another volume: refused on that volume.
    d = evaluate_all([policy], None, iam_context.build(info("ec2", "CreateSnapshot", "ec2", VolumeId=theirs, **tagged), PRINCIPAL))
    assert (d.decision, d.resource) == (IMPLICIT_DENY, ec2("volume", theirs))
    # DeleteSnapshot: ec2:ParentVolume is the volume the snapshot was taken of, whatever its tags say.
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": "autoheal:snapshot", "Value": "scheduled"}]}]
    mine = e.create_snapshot(VolumeId=ours, TagSpecifications=spec)["SnapshotId"]
    other = e.create_snapshot(VolumeId=theirs, TagSpecifications=spec)["SnapshotId"]
    untagged = e.create_snapshot(VolumeId=ours)["SnapshotId"]
    [delete] = iam_context.build(info("ec2", "DeleteSnapshot", "ec2", SnapshotId=mine), PRINCIPAL)
    [res] = delete.resources
    assert res.arn == f"arn:aws:ec2:{REGION}::snapshot/{mine}"
    assert res.context["ec2:ParentVolume"] == ec2("volume", ours) and res.context["ec2:Owner"] == ACCOUNT
    assert res.context["aws:ResourceTag/autoheal:snapshot"] == "scheduled"
    assert evaluate_all([policy], None, [delete]).decision == ALLOW
    for refused in (other, untagged):
        d = evaluate_all([policy], None, iam_context.build(info("ec2", "DeleteSnapshot", "ec2", SnapshotId=refused), PRINCIPAL))
        assert (d.decision, d.resource) == (IMPLICIT_DENY, f"arn:aws:ec2:{REGION}::snapshot/{refused}")
    [describe] = iam_context.build(info("ec2", "DescribeSnapshots", "ec2", **{"SnapshotId.1": mine}), PRINCIPAL)
    assert [r.arn for r in describe.resources] == ["*"]  # no resource-level permissions
    assert evaluate_all([policy], None, [describe]).decision == ALLOW
    # A volume created from a snapshot names it by its accountless ARN too.
    create_volume = iam_context.build(info("ec2", "CreateVolume", "ec2", AvailabilityZone=f"{REGION}a", SnapshotId=mine),
                                      PRINCIPAL)[0]
    snap = next(r for r in create_volume.resources if "snapshot/" in r.arn)
    assert snap.arn == f"arn:aws:ec2:{REGION}::snapshot/{mine}" and snap.context["ec2:ParentVolume"] == ec2("volume", ours)
    # CreateTags on an existing snapshot (ResourceId.N) carries its keys as well.
    [retag] = iam_context.build(info("ec2", "CreateTags", "ec2", **{"ResourceId.1": other, "Tag.1.Key": "k",
                                                                     "Tag.1.Value": "v"}), PRINCIPAL)
    assert [(r.arn, r.context["ec2:ParentVolume"]) for r in retag.resources] == [
        (f"arn:aws:ec2:{REGION}::snapshot/{other}", ec2("volume", theirs))]


# -- the failover function's calls (docs/zone-failover.md, section 3) ------------------------------

HOME, FAILOVER = f"{REGION}a", f"{REGION}b"


def _cmk_volume_and_snapshot(tags: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(key ARN, volume, snapshot) in this process's moto: a gp3 volume under a customer
    managed key in the home zone and a snapshot of it."""
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    e = boto3.client("ec2", region_name=REGION)
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {"autoheal:stack": "st"}).items()]}]
    vol = e.create_volume(AvailabilityZone=HOME, Size=8, VolumeType="gp3", Encrypted=True, KmsKeyId=key,
                          TagSpecifications=spec)["VolumeId"]
    snap = e.create_snapshot(VolumeId=vol)["SnapshotId"]
    return key, vol, snap


def _restore(snap: str, zone: str = FAILOVER, tags: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """CreateVolume's query parameters, as an SDK sends them."""
    params = {"AvailabilityZone": zone, "SnapshotId": snap, "VolumeType": "gp3", "Size": "8", "Iops": "3000",
              "Throughput": "125", "Encrypted": "true", **extra}
    for i, (k, v) in enumerate((tags if tags is not None else {"autoheal:restored-for": "st"}).items(), 1):
        params["TagSpecification.1.ResourceType"] = "volume"
        params[f"TagSpecification.1.Tag.{i}.Key"] = k
        params[f"TagSpecification.1.Tag.{i}.Value"] = v
    return params


def _failover_create_volume_policy(home_volume: str, key: str, kms: bool = True) -> dict[str, Any]:
    """The CreateVolume part of the failover role the design describes: a new volume only in
    the failover zone, encrypted, tagged ``autoheal:restored-for`` at creation; only from
    snapshots of the home volume owned by the account; the tags only at creation; the key's
    use through EC2."""
    statements = [
        allow("ec2:CreateVolume", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*", Condition={
            "StringEquals": {"aws:RequestTag/autoheal:restored-for": "st", "ec2:AvailabilityZone": [FAILOVER],
                             "ec2:VolumeType": "gp3"},
            "Bool": {"ec2:Encrypted": "true"},
            "NumericLessThanEquals": {"ec2:VolumeSize": "16"}}),
        allow("ec2:CreateVolume", f"arn:aws:ec2:{REGION}::snapshot/*", Condition={
            "ArnEquals": {"ec2:ParentVolume": ec2("volume", home_volume)},
            "StringEquals": {"ec2:Owner": ACCOUNT}}),
        allow("ec2:CreateTags", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
              Condition={"StringEquals": {"ec2:CreateAction": "CreateVolume"}}),
    ]
    if kms:
        statements.append(allow(["kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKeyWithoutPlaintext"], key,
                                Condition={"StringEquals": {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"}}))
    return doc(*statements)


def test_create_volume_from_a_snapshot_is_authorized_on_the_new_volume_the_snapshot_and_the_key(aws):
    """ec2:CreateVolume (Service Authorization Reference): the new ``volume/*`` with
    aws:RequestTag/*, aws:TagKeys, ec2:AvailabilityZone, ec2:Encrypted, ec2:VolumeType,
    ec2:VolumeSize (ec2:VolumeIops, ec2:VolumeThroughput, ec2:KmsKeyId, ec2:ParentSnapshot),
    and the source ``snapshot/snap-..`` (no account in its ARN) with ec2:ParentVolume,
    ec2:Encrypted, ec2:Owner and aws:ResourceTag/*; the TagSpecification is ec2:CreateTags with
    ec2:CreateAction; EBS's re-encryption of the snapshot's data key is kms:ReEncryptFrom and
    kms:ReEncryptTo on the key through EC2, made after the call is accepted (``after_call``).
    The design's policy allows it; each narrower case is refused on the resource it names."""
    key, home, snap = _cmk_volume_and_snapshot()
    e = boto3.client("ec2", region_name=REGION)
    e.create_tags(Resources=[snap], Tags=[{"Key": "autoheal:snapshot", "Value": "scheduled"}])
    reqs = iam_context.build(info("ec2", "CreateVolume", "ec2", **_restore(snap)), PRINCIPAL)
    assert [(r.action, r.after_call) for r in reqs] == [
        ("ec2:CreateVolume", False), ("ec2:CreateTags", False), ("kms:ReEncryptFrom", True), ("kms:ReEncryptTo", True)]
    create, tag, reencrypt_from, reencrypt_to = reqs
    new, source = create.resources
    assert new.arn == ec2("volume", "*") and source.arn == f"arn:aws:ec2:{REGION}::snapshot/{snap}"
    assert {k: new.context[k] for k in ("ec2:AvailabilityZone", "ec2:Encrypted", "ec2:VolumeType", "ec2:VolumeSize",
                                        "ec2:VolumeIops", "ec2:VolumeThroughput", "ec2:KmsKeyId",
                                        "ec2:ParentSnapshot")} == {
        "ec2:AvailabilityZone": FAILOVER, "ec2:Encrypted": "true", "ec2:VolumeType": "gp3", "ec2:VolumeSize": "8",
        "ec2:VolumeIops": "3000", "ec2:VolumeThroughput": "125", "ec2:KmsKeyId": key,
        "ec2:ParentSnapshot": f"arn:aws:ec2:{REGION}::snapshot/{snap}"}
    assert {k: source.context[k] for k in ("ec2:ParentVolume", "ec2:Encrypted", "ec2:Owner",
                                           "aws:ResourceTag/autoheal:snapshot")} == {
        "ec2:ParentVolume": ec2("volume", home), "ec2:Encrypted": "true", "ec2:Owner": ACCOUNT,
        "aws:ResourceTag/autoheal:snapshot": "scheduled"}
    assert create.context["aws:RequestTag/autoheal:restored-for"] == "st"
    assert create.context["aws:TagKeys"] == ["autoheal:restored-for"]
    assert (tag.context["ec2:CreateAction"], [r.arn for r in tag.resources]) == ("CreateVolume", [ec2("volume", "*")])
    for grant in (reencrypt_from, reencrypt_to):
        assert [r.arn for r in grant.resources] == [key]
        assert (grant.context["kms:ViaService"], grant.context["kms:CallerAccount"]) == (
            f"ec2.{REGION}.amazonaws.com", ACCOUNT)
    policy = _failover_create_volume_policy(home, key)
    assert evaluate_all([policy], None, reqs).decision == ALLOW
    # Into the home zone, untagged, too big: refused on the new volume.
    for params in (_restore(snap, zone=HOME), _restore(snap, tags={}), _restore(snap, Size="32")):
        d = evaluate_all([policy], None, iam_context.build(info("ec2", "CreateVolume", "ec2", **params), PRINCIPAL))
        assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "ec2:CreateVolume", ec2("volume", "*")), params
    # From a snapshot of another volume: refused on that snapshot, whatever its tags say.
    _, _, other = _cmk_volume_and_snapshot()
    e.create_tags(Resources=[other], Tags=[{"Key": "autoheal:snapshot", "Value": "scheduled"}])
    d = evaluate_all([policy], None, iam_context.build(info("ec2", "CreateVolume", "ec2", **_restore(other)), PRINCIPAL))
    assert (d.decision, d.resource) == (IMPLICIT_DENY, f"arn:aws:ec2:{REGION}::snapshot/{other}")
    # Without the key's use through EC2: the EC2 part passes, EBS's re-encryption does not.
    reqs = iam_context.build(info("ec2", "CreateVolume", "ec2", **_restore(snap)), PRINCIPAL)
    narrow = _failover_create_volume_policy(home, key, kms=False)
    assert evaluate_all([narrow], None, [r for r in reqs if not r.after_call]).decision == ALLOW
    d = evaluate_all([narrow], None, reqs)
    assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "kms:ReEncryptFrom", key)


def test_an_empty_encrypted_volume_needs_a_data_key_and_the_aws_managed_key_is_not_checked(aws):
    """An empty volume under a customer managed key: kms:GenerateDataKeyWithoutPlaintext through
    EC2 (KMS Developer Guide, "Amazon EC2 example two"), after the call; the account's AWS
    managed key (aws/ebs) is not checked, and an unencrypted volume uses no key."""
    key = boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"]
    base = {"AvailabilityZone": FAILOVER, "Size": "1"}
    reqs = iam_context.build(info("ec2", "CreateVolume", "ec2", Encrypted="true", KmsKeyId=key, **base), PRINCIPAL)
    assert [(r.action, r.after_call, [x.arn for x in r.resources]) for r in reqs] == [
        ("ec2:CreateVolume", False, [ec2("volume", "*")]), ("kms:GenerateDataKeyWithoutPlaintext", True, [key])]
    boto3.client("ec2", region_name=REGION).create_volume(AvailabilityZone=FAILOVER, Size=1, Encrypted=True)  # makes aws/ebs
    assert [r.action for r in iam_context.build(info("ec2", "CreateVolume", "ec2", Encrypted="true", **base),
                                                PRINCIPAL)] == ["ec2:CreateVolume"]
    assert [r.action for r in iam_context.build(info("ec2", "CreateVolume", "ec2", **base), PRINCIPAL)] == [
        "ec2:CreateVolume"]


def test_create_tags_on_an_existing_volume_carries_its_tags_and_keys(aws):
    """ec2:CreateTags on an existing volume (``ResourceId.N``): the volume's ARN with its
    aws:ResourceTag/* and volume keys, no ec2:CreateAction. The design's rule, "CreateTags on
    volumes only at creation or with the stack tag", allows the home volume's
    ``autoheal:superseded-by`` and refuses another volume's."""
    _, home, _ = _cmk_volume_and_snapshot()
    _, stranger, _ = _cmk_volume_and_snapshot(tags={"autoheal:stack": "other"})
    policy = doc(
        allow("ec2:CreateTags", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
              Condition={"StringEquals": {"ec2:CreateAction": "CreateVolume"}}),
        allow("ec2:CreateTags", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
              Condition={"StringEquals": {"aws:ResourceTag/autoheal:stack": "st"}}))

    def retag(vol: str) -> list[Request]:
        return iam_context.build(info("ec2", "CreateTags", "ec2", **{
            "ResourceId.1": vol, "Tag.1.Key": "autoheal:superseded-by", "Tag.1.Value": "vol-0ddddddddddddddddd"}), PRINCIPAL)

    [req] = retag(home)
    [res] = req.resources
    assert res.arn == ec2("volume", home)
    assert (res.context["aws:ResourceTag/autoheal:stack"], res.context["ec2:AvailabilityZone"]) == ("st", HOME)
    assert "ec2:CreateAction" not in req.context
    assert req.context["aws:RequestTag/autoheal:superseded-by"] == "vol-0ddddddddddddddddd"
    assert evaluate_all([policy], None, [req]).decision == ALLOW
    d = evaluate_all([policy], None, retag(stranger))
    assert (d.decision, d.resource) == (IMPLICIT_DENY, ec2("volume", stranger))


def test_attach_volume_of_a_restored_volume_by_its_restored_for_tag(aws):
    """The heal function's AttachVolume of a restored volume: allowed on ``volume/*`` only with
    aws:ResourceTag/autoheal:restored-for (docs/zone-failover.md, section 2), with the kms grant
    EC2 makes for the attach; a volume without the tag, or restored for another stack, is
    refused on the volume."""
    key, _, snap = _cmk_volume_and_snapshot()
    e = boto3.client("ec2", region_name=REGION)
    vpc = e.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = e.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone=FAILOVER)["Subnet"]["SubnetId"]
    inst = e.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]["InstanceId"]

    def restored(value: str | None) -> str:
        spec = [{"ResourceType": "volume", "Tags": [{"Key": "autoheal:restored-for", "Value": value}]}] if value else []
        return e.create_volume(AvailabilityZone=FAILOVER, SnapshotId=snap, Encrypted=True, KmsKeyId=key,
                               TagSpecifications=spec)["VolumeId"]

    policy = doc(
        allow("ec2:AttachVolume", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"),
        allow("ec2:AttachVolume", f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*",
              Condition={"StringEquals": {"aws:ResourceTag/autoheal:restored-for": "st"}}),
        allow("kms:CreateGrant", key, Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
    ours = restored("st")
    reqs = iam_context.build(info("ec2", "AttachVolume", "ec2", InstanceId=inst, VolumeId=ours, Device="/dev/sdf"), PRINCIPAL)
    assert [r.action for r in reqs] == ["ec2:AttachVolume", "kms:CreateGrant"]
    assert reqs[0].resources[1].context["aws:ResourceTag/autoheal:restored-for"] == "st"
    assert reqs[0].resources[1].context["ec2:ParentSnapshot"] == f"arn:aws:ec2:{REGION}::snapshot/{snap}"
    assert evaluate_all([policy], None, reqs).decision == ALLOW
    for vol in (restored("other"), restored(None)):
        d = evaluate_all([policy], None, iam_context.build(
            info("ec2", "AttachVolume", "ec2", InstanceId=inst, VolumeId=vol, Device="/dev/sdf"), PRINCIPAL))
        assert (d.decision, d.action, d.resource) == (IMPLICIT_DENY, "ec2:AttachVolume", ec2("volume", vol))


def test_group_update_and_tags_are_authorized_on_the_group_arn(aws):
    """autoscaling:UpdateAutoScalingGroup and autoscaling:CreateOrUpdateTags are on the group's
    ARN with aws:ResourceTag/*; UpdateAutoScalingGroup carries autoscaling:VPCZoneIdentifiers
    (the request's subnet ids), CreateOrUpdateTags aws:RequestTag/* and aws:TagKeys. A policy
    on the stack's group that allows only the failover subnets and the failover's tag keys
    allows the failover's calls and refuses another group, another subnet, another key."""
    _group_instance("st-asg")
    _group_instance("other-asg")
    a = boto3.client("autoscaling", region_name=REGION)
    a.create_or_update_tags(Tags=[{"ResourceId": "st-asg", "ResourceType": "auto-scaling-group",
                                   "Key": "autoheal:stack", "Value": "st", "PropagateAtLaunch": True}])
    arn = a.describe_auto_scaling_groups(AutoScalingGroupNames=["st-asg"])["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    group_arn = f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/st-asg"
    policy = doc(
        allow("autoscaling:UpdateAutoScalingGroup", group_arn, Condition={
            "ForAllValues:StringEquals": {"autoscaling:VPCZoneIdentifiers": ["subnet-0b", "subnet-0c"]},
            "StringEquals": {"aws:ResourceTag/autoheal:stack": "st"}}),
        allow("autoscaling:CreateOrUpdateTags", group_arn, Condition={
            "ForAllValues:StringEquals": {"aws:TagKeys": ["autoheal:active-volume", "autoheal:active-zone",
                                                          "autoheal:failover-started"]},
            "StringEquals": {"aws:ResourceTag/autoheal:stack": "st"}}))

    def update(group: str, subnets: str) -> list[Request]:
        return iam_context.build(info("autoscaling", "UpdateAutoScalingGroup", "query", AutoScalingGroupName=group,
                                      VPCZoneIdentifier=subnets), PRINCIPAL)

    [req] = update("st-asg", "subnet-0b")
    assert [r.arn for r in req.resources] == [arn]
    assert req.resources[0].context["aws:ResourceTag/autoheal:stack"] == "st"
    assert req.context["autoscaling:VPCZoneIdentifiers"] == ["subnet-0b"]
    assert evaluate_all([policy], None, [req]).decision == ALLOW
    for group, subnets in (("st-asg", "subnet-0a"), ("st-asg", "subnet-0b,subnet-0a"), ("other-asg", "subnet-0b")):
        d = evaluate_all([policy], None, update(group, subnets))
        assert d.decision == IMPLICIT_DENY, (group, subnets)
    [req] = iam_context.build(info("autoscaling", "UpdateAutoScalingGroup", "query", AutoScalingGroupName="st-asg",
                                   MinSize="0", MaxSize="1", **{"LaunchTemplate.LaunchTemplateId": "lt-1",
                                                                "LaunchTemplate.Version": "3"}), PRINCIPAL)
    assert {k: req.context[k] for k in ("autoscaling:MinSize", "autoscaling:MaxSize",
                                        "autoscaling:LaunchTemplateVersionSpecified")} == {
        "autoscaling:MinSize": "0", "autoscaling:MaxSize": "1", "autoscaling:LaunchTemplateVersionSpecified": "true"}
    assert "autoscaling:VPCZoneIdentifiers" not in req.context

    def tags(group: str, **kv: str) -> list[Request]:
        params: dict[str, str] = {}
        for i, (k, v) in enumerate(kv.items(), 1):
            params.update({f"Tags.member.{i}.ResourceId": group, f"Tags.member.{i}.ResourceType": "auto-scaling-group",
                           f"Tags.member.{i}.Key": k.replace("__", ":").replace("_", "-"),
                           f"Tags.member.{i}.Value": v, f"Tags.member.{i}.PropagateAtLaunch": "true"})
        return iam_context.build(info("autoscaling", "CreateOrUpdateTags", "query", **params), PRINCIPAL)

    [req] = tags("st-asg", autoheal__active_volume="vol-0eeeeeeeeeeeeeeee", autoheal__active_zone=FAILOVER)
    assert [r.arn for r in req.resources] == [arn]
    assert req.context["aws:RequestTag/autoheal:active-volume"] == "vol-0eeeeeeeeeeeeeeee"
    assert sorted(req.context["aws:TagKeys"]) == ["autoheal:active-volume", "autoheal:active-zone"]
    assert evaluate_all([policy], None, [req]).decision == ALLOW
    for refused in (tags("other-asg", autoheal__active_zone=FAILOVER), tags("st-asg", autoheal__stack="mine")):
        assert evaluate_all([policy], None, refused).decision == IMPLICIT_DENY


def test_volume_status_and_scaling_activities_have_no_resource_level_permissions(aws):
    """ec2:DescribeVolumeStatus and autoscaling:DescribeScalingActivities (and the other
    Describe calls of the detection) are on ``*``: only ``"Resource": "*"`` allows them."""
    on_star = doc(allow(["ec2:DescribeVolumeStatus", "autoscaling:DescribeScalingActivities",
                         "autoscaling:DescribeAutoScalingGroups", "ec2:DescribeVolumes", "ec2:DescribeSnapshots"]))
    scoped = doc(allow(["ec2:DescribeVolumeStatus"], f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*"),
                 allow(["autoscaling:DescribeScalingActivities"],
                       f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/st-asg"))
    calls = [info("ec2", "DescribeVolumeStatus", "ec2", **{"VolumeId.1": "vol-1"}),
             info("autoscaling", "DescribeScalingActivities", "query", AutoScalingGroupName="st-asg"),
             info("autoscaling", "DescribeAutoScalingGroups", "query", **{"AutoScalingGroupNames.member.1": "st-asg"}),
             info("ec2", "DescribeVolumes", "ec2", **{"VolumeId.1": "vol-1"}),
             info("ec2", "DescribeSnapshots", "ec2", **{"Filter.1.Name": "volume-id", "Filter.1.Value.1": "vol-1"})]
    for call in calls:
        [req] = iam_context.build(call, PRINCIPAL)
        assert [r.arn for r in req.resources] == ["*"], call.operation
        assert evaluate_all([on_star], None, [req]).decision == ALLOW
    for call in calls[:2]:
        d = evaluate_all([scoped], None, iam_context.build(call, PRINCIPAL))
        assert (d.decision, d.resource) == (IMPLICIT_DENY, "*"), call.operation
