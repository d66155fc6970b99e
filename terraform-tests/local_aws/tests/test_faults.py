"""Fault injection in each service's error format, the call log, transients."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import create_function, network


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()


def error_of(call):
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response


def test_ec2_fault_counts_down_in_ec2_xml(server):
    ec2 = server.client("ec2")
    vol = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1)["VolumeId"]
    fid = server.ctl("POST", "/faults", {"operation": "DescribeVolumes", "count": 2, "error_code": "Throttling",
                                         "status": 400, "message": "Rate exceeded"})["id"]
    assert fid == "f-1"
    for _ in range(2):
        err = error_of(lambda: ec2.describe_volumes(VolumeIds=[vol]))
        assert (err["Error"]["Code"], err["Error"]["Message"]) == ("Throttling", "Rate exceeded")
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["VolumeId"] == vol
    assert server.ctl("GET", "/faults")[0]["remaining"] == 0
    calls = server.ctl("GET", "/calls?operation=DescribeVolumes")
    assert [(c["status"], c["error_code"], c["fault"]) for c in calls] == [
        (400, "Throttling", "f-1"), (400, "Throttling", "f-1"), (200, None, None)
    ]
    assert calls[0]["service"] == "ec2" and calls[0]["params"]["VolumeId"] == [vol]


def test_raw_ec2_error_document(server):
    server.ctl("POST", "/faults", {"operation": "*", "service": "ec2", "error_code": "RequestLimitExceeded",
                                   "message": "Request limit exceeded."})
    ec2 = server.client("ec2")
    captured = {}

    def grab(http_response, **_):
        captured["body"] = http_response.content

    ec2.meta.events.register("after-call.ec2.DescribeVpcs", lambda http_response, **kw: grab(http_response))
    error_of(lambda: ec2.describe_vpcs())
    body = captured["body"].decode()
    assert "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>" in body
    assert "<RequestID>" in body
    ec2.meta.events.unregister("after-call.ec2.DescribeVpcs")


def test_query_json_and_rest_formats(server):
    server.ctl("POST", "/faults", {"operation": "DescribeAutoScalingGroups", "count": 1, "error_code": "Throttling",
                                   "message": "Rate exceeded"})
    server.ctl("POST", "/faults", {"operation": "PutRule", "count": 1, "error_code": "ThrottlingException",
                                   "message": "Rate exceeded"})
    server.ctl("POST", "/faults", {"operation": "CreateLogGroup", "count": 1, "error_code": "ServiceUnavailableException",
                                   "status": 503, "message": "try later"})
    server.ctl("POST", "/faults", {"operation": "GetFunction", "count": 1, "error_code": "TooManyRequestsException",
                                   "status": 429, "message": "Rate exceeded"})
    err = error_of(lambda: server.client("autoscaling").describe_auto_scaling_groups())
    assert (err["Error"]["Code"], err["Error"]["Message"], err["Error"]["Type"]) == ("Throttling", "Rate exceeded", "Sender")
    err = error_of(lambda: server.client("events").put_rule(Name="r", EventPattern='{"source":["x"]}'))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("ThrottlingException", "Rate exceeded")
    err = error_of(lambda: server.client("logs").create_log_group(logGroupName="g"))
    assert err["Error"]["Code"] == "ServiceUnavailableException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
    err = error_of(lambda: server.client("lambda").get_function(FunctionName="f"))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("TooManyRequestsException", "Rate exceeded")
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    # Each fault fired once: the calls now reach moto.
    server.client("autoscaling").describe_auto_scaling_groups()
    server.client("events").put_rule(Name="r", EventPattern='{"source":["x"]}')
    err = error_of(lambda: server.client("lambda").get_function(FunctionName="f"))
    assert err["Error"]["Code"] == "ResourceNotFoundException"


def test_sdk_retries_through_a_throttle(server):
    server.ctl("POST", "/faults", {"operation": "DescribeVpcs", "count": 1, "error_code": "RequestLimitExceeded",
                                   "message": "Request limit exceeded."})
    server.client("ec2", retries=True).describe_vpcs()
    calls = server.ctl("GET", "/calls?operation=DescribeVpcs")
    assert [c["error_code"] for c in calls] == ["RequestLimitExceeded", None]


def test_match_fraction_latency_and_clear(server):
    ec2 = server.client("ec2")
    a = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1)["VolumeId"]
    b = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1)["VolumeId"]
    server.ctl("POST", "/faults", {"operation": "DeleteVolume", "error_code": "InternalError", "status": 500,
                                   "message": "boom", "match": {"VolumeId": a}})
    server.ctl("POST", "/faults", {"operation": "DescribeVpcs", "fraction": 0.0, "error_code": "Never"})
    server.ctl("POST", "/faults", {"operation": "DescribeSubnets", "latency_ms": 300})
    err = error_of(lambda: ec2.delete_volume(VolumeId=a))
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalError", 500)
    ec2.delete_volume(VolumeId=b)  # not matched
    for _ in range(5):
        ec2.describe_vpcs()  # fraction 0: never fires
    started = time.monotonic()
    ec2.describe_subnets()  # latency only: slow, then passes
    assert time.monotonic() - started >= 0.3
    listed = {f["operation"]: f for f in server.ctl("GET", "/faults")}
    assert listed["DeleteVolume"]["remaining"] is None and listed["DeleteVolume"]["fired"] == 1
    assert listed["DescribeVpcs"]["fired"] == 0
    server.ctl("DELETE", "/faults")
    assert server.ctl("GET", "/faults") == []
    ec2.delete_volume(VolumeId=a)


def test_bad_fault_is_rejected(server):
    req = urllib.request.Request(server.url + "/_localaws/faults", method="POST", data=json.dumps({"operation": "X"}).encode())
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req)
    assert exc.value.code == 400


def test_call_log_names_operations_like_aws(server):
    create_function(server, "fn", "echo")
    lam = server.client("lambda")
    lam.get_function(FunctionName="fn")
    lam.get_function_configuration(FunctionName="fn")
    lam.update_function_configuration(FunctionName="fn", Timeout=9)
    lam.update_function_code(FunctionName="fn", ZipFile=b"PK\x05\x06" + b"\x00" * 18)
    lam.add_permission(FunctionName="fn", StatementId="s", Action="lambda:InvokeFunction", Principal="events.amazonaws.com")
    lam.get_policy(FunctionName="fn")
    lam.remove_permission(FunctionName="fn", StatementId="s")
    lam.put_function_concurrency(FunctionName="fn", ReservedConcurrentExecutions=3)
    lam.get_function_concurrency(FunctionName="fn")
    lam.delete_function_concurrency(FunctionName="fn")
    arn = lam.get_function(FunctionName="fn")["Configuration"]["FunctionArn"]
    lam.tag_resource(Resource=arn, Tags={"a": "b"})
    lam.list_tags(Resource=arn)
    lam.delete_function(FunctionName="fn")
    server.client("events").put_rule(Name="r", EventPattern='{"source":["x"]}')
    server.client("logs").create_log_group(logGroupName="lg")
    server.client("autoscaling").describe_auto_scaling_groups()
    server.client("iam").list_roles()
    server.client("sts").get_caller_identity()
    ops = [(c["service"], c["operation"]) for c in server.ctl("GET", "/calls")]
    assert ops == [
        ("iam", "GetRole"), ("iam", "CreateRole"), ("lambda", "CreateFunction"),
        ("lambda", "GetFunction"), ("lambda", "GetFunctionConfiguration"), ("lambda", "UpdateFunctionConfiguration"),
        ("lambda", "UpdateFunctionCode"), ("lambda", "AddPermission"), ("lambda", "GetPolicy"),
        ("lambda", "RemovePermission"), ("lambda", "PutFunctionConcurrency"), ("lambda", "GetFunctionConcurrency"),
        ("lambda", "DeleteFunctionConcurrency"), ("lambda", "GetFunction"), ("lambda", "TagResource"),
        ("lambda", "ListTags"), ("lambda", "DeleteFunction"), ("events", "PutRule"), ("logs", "CreateLogGroup"),
        ("autoscaling", "DescribeAutoScalingGroups"), ("iam", "ListRoles"), ("sts", "GetCallerIdentity"),
    ]
    seqs = [c["seq"] for c in server.ctl("GET", "/calls")]
    assert seqs == sorted(seqs)
    server.ctl("DELETE", "/calls")
    assert server.ctl("GET", "/calls") == []


def test_transient_states(server):
    net = network(server)
    ec2 = server.client("ec2")
    inst = ec2.run_instances(ImageId="ami-0720cb7af233b0529", MinCount=1, MaxCount=1, SubnetId=net["subnet"])["Instances"][0]["InstanceId"]
    vol = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1)["VolumeId"]
    ec2.attach_volume(VolumeId=vol, InstanceId=inst, Device="/dev/sdf")

    server.ctl("POST", "/transient", {"kind": "instance_pending", "id": inst, "polls": 2})
    states = [ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["State"] for _ in range(3)]
    assert states == [{"Code": 0, "Name": "pending"}, {"Code": 0, "Name": "pending"}, {"Code": 16, "Name": "running"}]

    # A terminated instance is never shown pending, and its polls are not used up.
    other = ec2.run_instances(ImageId="ami-0720cb7af233b0529", MinCount=1, MaxCount=1, SubnetId=net["subnet"])["Instances"][0]["InstanceId"]
    server.ctl("POST", "/transient", {"kind": "instance_pending", "id": other, "polls": 5})
    ec2.terminate_instances(InstanceIds=[other])
    state = ec2.describe_instances(InstanceIds=[other])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    assert [t["polls"] for t in server.ctl("GET", "/transients") if t["id"] == other] == [5]

    server.ctl("POST", "/transient", {"kind": "volume_detaching", "id": vol, "polls": 2})
    err = error_of(lambda: ec2.delete_volume(VolumeId=vol))  # does not use up a poll
    assert err["Error"]["Code"] == "VolumeInUse"
    seen = []
    for _ in range(3):
        v = ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]
        seen.append((v["State"], [a["State"] for a in v["Attachments"]]))
    assert seen == [("in-use", ["detaching"]), ("in-use", ["detaching"]), ("in-use", ["attached"])]

    create_function(server, "fn", "echo")
    lam = server.client("lambda")
    server.ctl("POST", "/transient", {"kind": "function_update_in_progress", "name": "fn", "polls": 2})
    assert lam.get_function(FunctionName="fn")["Configuration"]["LastUpdateStatus"] == "InProgress"
    err = error_of(lambda: lam.update_function_configuration(FunctionName="fn", Timeout=10))
    assert err["Error"]["Code"] == "ResourceConflictException"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "An update is in progress for resource: arn:aws:lambda:" in err["Error"]["Message"]
    assert lam.get_function_configuration(FunctionName="fn")["LastUpdateStatus"] == "Successful"
    lam.update_function_configuration(FunctionName="fn", Timeout=10)


def test_health_clock_reset_and_unknown_endpoints(server):
    health = server.ctl("GET", "/health")
    assert health["ok"] is True and server.url.endswith(f":{health['port']}")
    assert server.ctl("POST", "/clock", {"scale": 0.5}) == {"scale": 0.5}
    assert server.ctl("GET", "/clock")["scale"] == 0.5
    server.ctl("POST", "/clock", {"scale": 0.01})
    server.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")
    server.ctl("POST", "/faults", {"operation": "X", "error_code": "Y"})
    server.reset()
    assert server.ctl("GET", "/calls") == [] and server.ctl("GET", "/faults") == []
    assert server.client("ec2").describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.9.0.0/16"]}])["Vpcs"] == []
    server.client("ec2").create_vpc(CidrBlock="10.8.0.0/16")
    req = urllib.request.Request(server.url + "/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    assert server.ctl("GET", "/calls") == []  # moto's reset resets ours too
    for method, path in (("GET", "/nope"), ("PUT", "/faults")):
        req = urllib.request.Request(server.url + "/_localaws" + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req)
        assert exc.value.code == 404


def test_a_lost_response_takes_effect_and_the_client_hears_nothing(server):
    """lose_response: the call is performed, then the connection is reset before any byte
    of the answer (the client gets a connection error at once, not a timeout); the call log
    marks it. Without a ClientToken a retry makes a second object, as on AWS."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    ec2 = server.client("ec2")
    server.ctl("POST", "/faults", {"operation": "CreateVpc", "lose_response": True, "count": 1})
    started = time.monotonic()
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        ec2.create_vpc(CidrBlock="10.1.0.0/16")
    assert time.monotonic() - started < 5, "a reset, not a timeout"
    vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.1.0.0/16"]
    assert len(vpcs) == 1, "the call took effect"
    log = [c for c in server.ctl("GET", "/calls") if c["operation"] == "CreateVpc"]
    assert [c["response_lost"] for c in log] == [True]
    ec2.create_vpc(CidrBlock="10.1.0.0/16")  # the fault fired once: answered now
    assert len([v for v in ec2.describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.1.0.0/16"]) == 2
    # An error and a lost response at once make no sense.
    with pytest.raises(AssertionError, match="400"):
        server.ctl("POST", "/faults", {"operation": "X", "error_code": "E", "lose_response": True})


def test_a_repeated_client_token_returns_the_first_answer(server):
    """ClientToken: the same token and parameters give the first call's object (also after a
    lost response, and after the object was deleted); other parameters answer
    IdempotentParameterMismatch; another token makes a new object."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    ec2 = server.client("ec2")
    server.ctl("POST", "/faults", {"operation": "CreateVolume", "lose_response": True, "count": 1})
    with pytest.raises((ConnectionClosedError, EndpointConnectionError, ConnectionError)):
        ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1, ClientToken="t-1")
    again = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1, ClientToken="t-1")["VolumeId"]
    volumes = ec2.describe_volumes()["Volumes"]
    assert [v["VolumeId"] for v in volumes if v["Size"] == 1] == [again], "one volume, the first call's"
    err = error_of(lambda: ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=2, ClientToken="t-1"))
    assert err["Error"]["Code"] == "IdempotentParameterMismatch"
    ec2.delete_volume(VolumeId=again)
    assert ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1, ClientToken="t-1")["VolumeId"] == again
    other = ec2.create_volume(AvailabilityZone="ap-southeast-2a", Size=1, ClientToken="t-2")["VolumeId"]
    assert other != again
    lt = ec2.create_launch_template(
        LaunchTemplateName="tok", LaunchTemplateData={"InstanceType": "t3.micro"}, ClientToken="t-3"
    )["LaunchTemplate"]["LaunchTemplateId"]
    assert ec2.create_launch_template(
        LaunchTemplateName="tok", LaunchTemplateData={"InstanceType": "t3.micro"}, ClientToken="t-3"
    )["LaunchTemplate"]["LaunchTemplateId"] == lt
