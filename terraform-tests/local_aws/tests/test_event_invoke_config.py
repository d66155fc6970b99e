"""Lambda's asynchronous invocation configuration (localaws/event_invoke_config.py) on the
wire, and as the runner applies it: MaximumRetryAttempts and MaximumEventAgeInSeconds."""

from __future__ import annotations

import json
import time
from datetime import datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, create_function, invocations, wait_for


@pytest.fixture
def fresh(server):
    server.reset()


def ts(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def test_put_get_update_answer_lambdas_wire_shapes(server, fresh):
    """Lambda API Reference: Put "overwrites it. If you exclude any settings, they are
    removed"; Update sets the options given "without affecting existing settings", and on a
    function without a configuration answers 404 ResourceNotFoundException "The function <arn>
    doesn't have an EventInvokeConfig"; LastModified is "in Unix time seconds" (a number on the
    wire); answers carry FunctionArn with :$LATEST and DestinationConfig. Values under the
    minimum are refused by Lambda itself (ValidationException), not only by the client."""
    create_function(server, "f", "echo")
    lam = server.client("lambda")
    fn_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f"
    wire = []
    lam.meta.events.register("after-call.lambda.*", lambda http_response, **_: wire.append(http_response.content))

    for call in (lambda: lam.get_function_event_invoke_config(FunctionName="f"),
                 lambda: lam.update_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=1)):
        with pytest.raises(ClientError) as exc:
            call()
        err = exc.value.response
        assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("ResourceNotFoundException", 404)
        assert err["Error"]["Message"] == f"The function {fn_arn} doesn't have an EventInvokeConfig"

    before = time.time()
    put = lam.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=1, MaximumEventAgeInSeconds=120)
    assert put["FunctionArn"] == fn_arn + ":$LATEST"
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert (put["MaximumRetryAttempts"], put["MaximumEventAgeInSeconds"]) == (1, 120)
    assert before - 1 <= put["LastModified"].timestamp() <= time.time() + 1

    lam.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=0)
    got = lam.get_function_event_invoke_config(FunctionName="f")
    assert got["MaximumRetryAttempts"] == 0 and "MaximumEventAgeInSeconds" not in got  # overwritten, not appended

    updated = lam.update_function_event_invoke_config(FunctionName="f", MaximumEventAgeInSeconds=300)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 300)
    assert isinstance(json.loads(wire[-1])["LastModified"], (int, float))
    got = lam.get_function_event_invoke_config(FunctionName="f")
    assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (0, 300)
    assert isinstance(json.loads(wire[-1])["LastModified"], (int, float))
    listed = lam.list_function_event_invoke_configs(FunctionName="f")["FunctionEventInvokeConfigs"]
    assert [(c["MaximumRetryAttempts"], c["MaximumEventAgeInSeconds"]) for c in listed] == [(0, 300)]

    # A client without botocore's own range checks (the Rust SDK makes none).
    raw_client = boto3.client(
        "lambda", endpoint_url=server.url, region_name=REGION, aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x", config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    for kwargs, message in (
        ({"MaximumRetryAttempts": -1}, "Value '-1' at 'maximumRetryAttempts' failed to satisfy constraint: "
                                       "Member must have value greater than or equal to 0"),
        ({"MaximumEventAgeInSeconds": 59}, "Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
                                           "Member must have value greater than or equal to 60"),
        ({"MaximumRetryAttempts": 3}, "Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: "
                                      "Member must have value less than or equal to 2"),
    ):
        with pytest.raises(ClientError) as exc:
            raw_client.put_function_event_invoke_config(FunctionName="f", **kwargs)
        err = exc.value.response["Error"]
        assert (err["Code"], err["Message"]) == ("ValidationException", "1 validation error detected: " + message)
    got = lam.get_function_event_invoke_config(FunctionName="f")
    assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (0, 300)  # refused puts changed nothing


def test_maximum_retry_attempts_zero_means_a_single_attempt(server, fresh):
    """MaximumRetryAttempts 0: "the maximum number of times to retry when the function returns
    an error" is none; the last Put is the one applied (Get shows the same)."""
    create_function(server, "once", "error")
    lam = server.client("lambda")
    lam.put_function_event_invoke_config(FunctionName="once", MaximumRetryAttempts=2)
    lam.put_function_event_invoke_config(FunctionName="once", MaximumRetryAttempts=0)
    assert lam.get_function_event_invoke_config(FunctionName="once")["MaximumRetryAttempts"] == 0
    lam.invoke(FunctionName="once", InvocationType="Event", Payload=b"{}")
    wait_for(lambda: invocations(server, "once"), what="the attempt")
    time.sleep(1.5)  # the first retry would come 60 AWS seconds (0.6 s) after the failure
    assert [(r["attempt"], r["outcome"]) for r in invocations(server, "once")] == [(1, "error")]


def test_an_event_older_than_its_maximum_age_is_discarded_not_retried(server, fresh):
    """MaximumEventAgeInSeconds: "When an event fails all processing attempts or stays in the
    asynchronous invocation queue for too long, Lambda discards it" (PutFunctionEventInvokeConfig).
    With 150 s, the first retry (60 s after the first failure) still runs; the second (120 s
    after that) would come after 180 s, so the event is discarded when it is 150 s old:
    recorded as `expired`, condition EventAgeExceeded (Lambda's invocation record), no third
    attempt."""
    create_function(server, "aging", "error")
    lam = server.client("lambda")
    lam.put_function_event_invoke_config(FunctionName="aging", MaximumEventAgeInSeconds=150)
    queued = time.time()
    lam.invoke(FunctionName="aging", InvocationType="Event", Payload=b"{}")
    recs = wait_for(lambda: len(invocations(server, "aging")) >= 3 and invocations(server, "aging"),
                    timeout=10, what="two attempts and the discard")
    assert [(r["attempt"], r["outcome"]) for r in recs] == [(1, "error"), (2, "error"), (3, "expired")]
    expired = recs[2]
    assert expired["condition"] == "EventAgeExceeded" and expired["error_type"] is None
    assert expired["request_id"] == recs[0]["request_id"] and expired["log_stream"] is None
    # 150 AWS seconds after the event was queued: 1.5 s at the clock scale 0.01.
    assert 1.45 <= ts(expired["ended"]) - queued < 3
    time.sleep(1.5)  # the third attempt would have come at about 180 s + the attempts' time
    assert len(invocations(server, "aging")) == 3
