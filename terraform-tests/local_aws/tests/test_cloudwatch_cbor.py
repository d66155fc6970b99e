"""CloudWatch in the Smithy RPC v2 CBOR protocol, as the AWS SDK for Rust calls it
(localaws/cbor_protocol.py).

Two independent clients: requests built by hand with cbor2 and signed with SigV4 (as
aws-sdk-cloudwatch sends them: path, headers, CBOR body), and botocore itself made to speak
``smithy-rpc-v2-cbor`` (its own CBOR serializer and parser, not cbor2). boto3's default
CloudWatch client speaks awsJson1_0 (botocore prefers ``json`` among the model's protocols),
so it cannot show this protocol.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cbor2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION

KEY_ID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
DIMS = [{"Name": "AutoScalingGroupName", "Value": "web"}]


@pytest.fixture
def fresh(server):
    server.reset()
    server.ctl("DELETE", "/calls")
    server.ctl("DELETE", "/faults")


def arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    @property
    def doc(self) -> Any:
        return cbor2.loads(self.body) if self.body else None


def call(server, operation: str, params: Any, key: tuple[str, str] = (KEY_ID, SECRET), raw: bytes | None = None,
         sign: bool = True) -> Answer:
    """One RPC v2 CBOR request, the way aws-sdk-cloudwatch 1.140 sends it."""
    body = raw if raw is not None else cbor2.dumps(params)
    url = f"{server.url}/service/GraniteServiceVersion20100801/operation/{operation}"
    headers = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor",
               "x-amzn-query-mode": "true"}
    req = AWSRequest("POST", url, data=body, headers=headers)
    if sign:
        SigV4Auth(Credentials(*key), "monitoring", REGION).add_auth(req)
    http = urllib.request.Request(url, data=body, headers=dict(req.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers, exc.read())


def assert_cbor(ans: Answer) -> None:
    assert ans.headers["smithy-protocol"] == "rpc-v2-cbor"
    assert ans.headers["content-type"] == "application/cbor"
    assert ans.headers.get("x-amzn-requestid")


def assert_error(ans: Answer, status: int, shape: str, query_code: str, message: str | None = None) -> None:
    assert_cbor(ans)
    assert ans.status == status, (ans.status, ans.doc)
    assert ans.doc["__type"] == f"com.amazonaws.cloudwatch#{shape}"
    assert ans.headers["x-amzn-query-error"] == f"{query_code};Sender"
    if message is not None:
        assert ans.doc["message"] == message


def tagged_1(body: bytes, key: str) -> bool:
    """The member ``key`` of a CBOR map is a tag 1 (epoch) timestamp: the key's text string
    followed by the tag's initial byte 0xc1 (cbor2 turns tags 0 and 1 alike into datetimes)."""
    return cbor2.dumps(key) + b"\xc1" in body


def alarm(name: str, **over: Any) -> dict[str, Any]:
    # No datapoints and TreatMissingData "missing": evaluations (every 0.6 real seconds at this
    # clock scale) keep it INSUFFICIENT_DATA, so the state seen does not depend on timing.
    params = dict(AlarmName=name, Namespace="Autoheal", MetricName="PermanentFailure", Dimensions=DIMS,
                  Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0.5,
                  ComparisonOperator="GreaterThanThreshold", TreatMissingData="missing",
                  AlarmActions=[TOPIC], Tags=[{"Key": "stack", "Value": "web"}])
    params.update(over)
    return params


def calls(server, operation: str) -> list[dict[str, Any]]:
    return server.ctl("GET", f"/calls?operation={operation}")


# --- hand-built requests (cbor2) -------------------------------------------------------------


def test_put_describe_tag_delete_in_cbor(server, fresh):
    before = time.time()
    ans = call(server, "PutMetricAlarm", alarm("web-heal-failed"))
    assert ans.status == 200, ans.doc
    assert_cbor(ans)
    assert ans.body == b""  # PutMetricAlarm has no output

    ans = call(server, "DescribeAlarms", {"AlarmNames": ["web-heal-failed"]})
    assert ans.status == 200
    assert_cbor(ans)
    doc = ans.doc
    assert doc["CompositeAlarms"] == []
    [got] = doc["MetricAlarms"]
    assert got["AlarmName"] == "web-heal-failed"
    assert got["AlarmArn"] == arn("web-heal-failed")
    assert got["StateValue"] == "INSUFFICIENT_DATA"
    assert got["StateReason"] == "Unchecked: Initial alarm creation"
    assert got["Dimensions"] == DIMS
    assert got["AlarmActions"] == [TOPIC]
    assert got["TreatMissingData"] == "missing"
    assert (got["Period"], got["EvaluationPeriods"], got["Threshold"]) == (60, 1, 0.5)
    for key in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
        assert tagged_1(ans.body, key), key
        assert isinstance(got[key], datetime)
        assert before - 5 <= got[key].timestamp() <= time.time() + 5
    # The Rust SDK reads doubles only from CBOR floats and integers only from CBOR integers.
    assert cbor2.dumps("Threshold") + b"\xfb" in ans.body
    assert cbor2.dumps("Period") + cbor2.dumps(60) in ans.body

    ans = call(server, "ListTagsForResource", {"ResourceARN": arn("web-heal-failed")})
    assert ans.status == 200
    assert ans.doc == {"Tags": [{"Key": "stack", "Value": "web"}]}

    ans = call(server, "TagResource", {"ResourceARN": arn("web-heal-failed"), "Tags": [{"Key": "team", "Value": "a"}]})
    assert (ans.status, ans.doc) == (200, {})
    ans = call(server, "UntagResource", {"ResourceARN": arn("web-heal-failed"), "TagKeys": ["stack"]})
    assert ans.status == 200
    assert call(server, "ListTagsForResource", {"ResourceARN": arn("web-heal-failed")}).doc == {
        "Tags": [{"Key": "team", "Value": "a"}]}

    ans = call(server, "DeleteAlarms", {"AlarmNames": ["web-heal-failed"]})
    assert (ans.status, ans.body) == (200, b"")
    assert_cbor(ans)
    assert call(server, "DescribeAlarms", {}).doc == {"CompositeAlarms": [], "MetricAlarms": []}

    # The call log and IAM see the service by its SigV4 scope and the operation by its path.
    [logged] = calls(server, "PutMetricAlarm")
    assert (logged["service"], logged["region"], logged["status"], logged["access_key_id"]) == (
        "monitoring", REGION, 200, KEY_ID)
    assert logged["params"]["AlarmName"] == "web-heal-failed"
    assert [c["operation"] for c in server.ctl("GET", "/calls?service=monitoring")] == [
        "PutMetricAlarm", "DescribeAlarms", "ListTagsForResource", "TagResource", "UntagResource",
        "ListTagsForResource", "DeleteAlarms", "DescribeAlarms"]


def test_timestamps_in_requests_are_tag_1(server, fresh):
    now = int(time.time())
    ans = call(server, "PutMetricData", {"Namespace": "Autoheal", "MetricData": [
        {"MetricName": "Healed", "Dimensions": DIMS, "Value": 3.0, "Unit": "Count",
         "Timestamp": cbor2.CBORTag(1, now - 30)}]})
    assert ans.status == 200, ans.doc
    ans = call(server, "GetMetricStatistics", {
        "Namespace": "Autoheal", "MetricName": "Healed", "Dimensions": DIMS, "Statistics": ["Sum"], "Period": 60,
        "StartTime": cbor2.CBORTag(1, float(now - 600)), "EndTime": cbor2.CBORTag(1, now + 60)})
    assert ans.status == 200, ans.doc
    [point] = ans.doc["Datapoints"]
    assert point["Sum"] == 3.0
    assert tagged_1(ans.body, "Timestamp")
    assert abs(point["Timestamp"].timestamp() - (now - 30)) < 61
    # A window that ends before the datapoint: the tag 1 EndTime is read as a time.
    ans = call(server, "GetMetricStatistics", {
        "Namespace": "Autoheal", "MetricName": "Healed", "Dimensions": DIMS, "Statistics": ["Sum"], "Period": 60,
        "StartTime": cbor2.CBORTag(1, now - 600), "EndTime": cbor2.CBORTag(1, now - 300)})
    assert ans.doc["Datapoints"] == []


def test_errors_in_cbor(server, fresh):
    ans = call(server, "ListTagsForResource", {"ResourceARN": arn("nope")})
    assert_error(ans, 404, "ResourceNotFoundException", "ResourceNotFoundException")
    assert isinstance(ans.doc["message"], str)

    ans = call(server, "PutMetricAlarm", alarm("bad", Period=61))
    assert_error(ans, 400, "ValidationException", "ValidationError", "Period must be 10, 20, 30 or a multiple of 60")
    assert call(server, "DescribeAlarms", {"AlarmNames": ["bad"]}).doc["MetricAlarms"] == []

    ans = call(server, "SetAlarmState", {"AlarmName": "nope", "StateValue": "OK", "StateReason": "x"})
    assert_error(ans, 404, "ResourceNotFound", "ResourceNotFound")

    # Not CBOR the model can read.
    ans = call(server, "DescribeAlarms", None, raw=b"\xff\x00")
    assert_error(ans, 400, "SerializationException", "SerializationException")
    ans = call(server, "DescribeAlarms", {"AlarmNames": "web"})
    assert_error(ans, 400, "SerializationException", "SerializationException")
    ans = call(server, "PutMetricData", {"Namespace": "N", "MetricData": [
        {"MetricName": "M", "Value": 1.0, "Timestamp": "2025-01-01T00:00:00Z"}]})  # a timestamp must be tag 1
    assert_error(ans, 400, "SerializationException", "SerializationException")
    ans = call(server, "NoSuchOperation", {})
    assert_error(ans, 404, "UnknownOperationException", "UnknownOperationException")

    codes = [(c["operation"], c["status"], c["error_code"]) for c in server.ctl("GET", "/calls")]
    assert codes[:3] == [("ListTagsForResource", 404, "ResourceNotFoundException"),
                         ("PutMetricAlarm", 400, "ValidationError"), ("DescribeAlarms", 200, None)]
    assert ("SetAlarmState", 404, "ResourceNotFound") in codes
    assert ("NoSuchOperation", 404, "UnknownOperationException") in codes


def test_injected_fault_answers_in_cbor(server, fresh):
    server.ctl("POST", "/faults", {"operation": "DescribeAlarms", "service": "monitoring", "error_code": "Throttling",
                                   "message": "Rate exceeded", "status": 400, "count": 1})
    ans = call(server, "DescribeAlarms", {})
    assert_error(ans, 400, "Throttling", "Throttling", "Rate exceeded")
    ans = call(server, "DescribeAlarms", {})
    assert (ans.status, ans.doc) == (200, {"CompositeAlarms": [], "MetricAlarms": []})

    # A modeled error by its Query code: __type names its shape.
    server.ctl("POST", "/faults", {"operation": "PutMetricAlarm", "match": {"AlarmName": "x"},
                                   "error_code": "LimitExceeded", "message": "too many", "count": 1})
    assert_error(call(server, "PutMetricAlarm", alarm("x")), 400, "LimitExceededFault", "LimitExceeded", "too many")
    assert call(server, "PutMetricAlarm", alarm("x")).status == 200

    logged = [(c["operation"], c["status"], c["error_code"], c["fault"]) for c in server.ctl("GET", "/calls")]
    assert logged == [("DescribeAlarms", 400, "Throttling", "f-1"), ("DescribeAlarms", 200, None, None),
                      ("PutMetricAlarm", 400, "LimitExceeded", "f-2"), ("PutMetricAlarm", 200, None, None)]


def test_iam_evaluation_of_cbor_calls(server, fresh):
    iam = server.client("iam")
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="alarms", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"], "Resource": "arn:aws:cloudwatch:*:*:alarm:x-*"}]}))
    created = iam.create_access_key(UserName="deployer")["AccessKey"]
    key = (created["AccessKeyId"], created["SecretAccessKey"])
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    try:
        assert call(server, "PutMetricAlarm", alarm("x-1"), key=key).status == 200
        ans = call(server, "PutMetricAlarm", alarm("y-1"), key=key)
        assert_error(ans, 403, "AccessDenied", "AccessDenied", (
            f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: cloudwatch:PutMetricAlarm "
            f"on resource: {arn('y-1')} because no identity-based policy allows the cloudwatch:PutMetricAlarm action"))
        assert call(server, "DeleteAlarms", {"AlarmNames": ["x-1"]}, key=key).status == 200
    finally:
        server.ctl("POST", "/profile", {"name": "fast"})
    assert call(server, "DescribeAlarms", {}).doc["MetricAlarms"] == []


# --- botocore's own RPC v2 CBOR client --------------------------------------------------------


def cbor_client(server, tmp_path: Path) -> Any:
    """A botocore CloudWatch client that speaks smithy-rpc-v2-cbor: the model with only that
    protocol, from a data path searched before botocore's own."""
    import botocore.loaders
    import botocore.session

    model = botocore.loaders.Loader().load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocols"] = ["smithy-rpc-v2-cbor"]
    model["metadata"]["protocol"] = "smithy-rpc-v2-cbor"
    folder = tmp_path / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp_path))
    client = session.create_client("cloudwatch", endpoint_url=server.url, region_name=REGION,
                                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                   config=Config(retries={"total_max_attempts": 1}))
    assert client.meta.service_model.resolved_protocol == "smithy-rpc-v2-cbor"
    sent: list[Any] = []
    client.meta.events.register("before-send.cloudwatch.*", lambda request, **_: sent.append(request))
    client.sent = sent
    return client


def test_botocore_cbor_client(server, fresh, tmp_path):
    # Why a client of our own: boto3's default CloudWatch client speaks awsJson1_0.
    assert server.client("cloudwatch").meta.service_model.resolved_protocol == "json"
    cw = cbor_client(server, tmp_path)
    cw.put_metric_alarm(**alarm("web-heal-failed"))
    request = cw.sent[-1]
    assert request.url.endswith("/service/GraniteServiceVersion20100801/operation/PutMetricAlarm")
    assert request.headers["smithy-protocol"] == b"rpc-v2-cbor"
    assert cbor2.loads(request.body)["AlarmName"] == "web-heal-failed"

    [got] = cw.describe_alarms(AlarmNames=["web-heal-failed"])["MetricAlarms"]
    assert (got["AlarmName"], got["AlarmArn"], got["StateValue"]) == (
        "web-heal-failed", arn("web-heal-failed"), "INSUFFICIENT_DATA")
    assert got["Dimensions"] == DIMS and got["AlarmActions"] == [TOPIC] and got["Threshold"] == 0.5
    assert isinstance(got["StateUpdatedTimestamp"], datetime)
    assert abs(got["StateUpdatedTimestamp"].timestamp() - datetime.now(timezone.utc).timestamp()) < 60
    assert cw.list_tags_for_resource(ResourceARN=arn("web-heal-failed"))["Tags"] == [{"Key": "stack", "Value": "web"}]

    with pytest.raises(ClientError) as exc:
        cw.list_tags_for_resource(ResourceARN=arn("nope"))
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert isinstance(exc.value, cw.exceptions.ResourceNotFoundException)
    with pytest.raises(ClientError) as exc:
        cw.put_metric_alarm(**alarm("bad", EvaluationPeriods=1, DatapointsToAlarm=2))
    err = exc.value.response["Error"]
    assert (err["Code"], err["Message"], err["Type"]) == (
        "ValidationError", "DatapointsToAlarm must be less than or equal to EvaluationPeriods", "Sender")
    assert isinstance(exc.value, cw.exceptions.ValidationException)

    server.ctl("POST", "/faults", {"operation": "DeleteAlarms", "error_code": "Throttling", "message": "slow down",
                                   "count": 1})
    with pytest.raises(ClientError) as exc:
        cw.delete_alarms(AlarmNames=["web-heal-failed"])
    assert (exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]) == ("Throttling", "slow down")
    cw.delete_alarms(AlarmNames=["web-heal-failed"])
    assert cw.describe_alarms()["MetricAlarms"] == []
    assert all(r.url.split("/operation/")[-1] for r in cw.sent)


def test_output_types_follow_the_model():
    """Members are encoded by their model type, whatever JSON type moto used (in process)."""
    from localaws import cbor_protocol

    environ = {"HTTP_SMITHY_PROTOCOL": "rpc-v2-cbor", "REQUEST_METHOD": "POST",
               "PATH_INFO": "/service/GraniteServiceVersion20100801/operation/DescribeAlarms"}
    cw = cbor_protocol.recognise(environ)
    moto_json = json.dumps({"MetricAlarms": [{
        "AlarmName": "a", "Threshold": 0, "Period": 60.0, "ActionsEnabled": True, "Unknown": 1, "Unit": None,
        "StateUpdatedTimestamp": "2025-06-12T09:50:00.250Z", "AlarmConfigurationUpdatedTimestamp": 1749721800}]})
    status, headers, body = cw.to_cbor_response((200, [("x-amzn-RequestId", "r")], moto_json.encode()))
    assert status == 200 and ("smithy-protocol", "rpc-v2-cbor") in headers
    assert body == cbor2.dumps({"MetricAlarms": [{
        "AlarmName": "a", "Threshold": 0.0, "Period": 60, "ActionsEnabled": True,
        "StateUpdatedTimestamp": cbor2.CBORTag(1, 1749721800.25),
        "AlarmConfigurationUpdatedTimestamp": cbor2.CBORTag(1, 1749721800)}]})
    assert cbor2.dumps("Threshold") + b"\xfb" in body
    # A recognised request only with the protocol header, on a CloudWatch path, by POST.
    assert cbor_protocol.recognise({**environ, "HTTP_SMITHY_PROTOCOL": ""}) is None
    assert cbor_protocol.recognise({**environ, "REQUEST_METHOD": "GET"}) is None
    assert cbor_protocol.recognise({**environ, "PATH_INFO": "/service/Other/operation/X"}) is None
