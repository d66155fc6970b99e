"""Lambda targets run the deployed bootstrap behind the Runtime API emulator."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, allow_rule, create_function, invocations, rule_to_function, start_server, wait_for
from localaws.runtime_api import Invocation, RuntimeAPIServer

PATTERN = {"source": ["test.app"]}


def put(server, detail=None, source="test.app"):
    resp = server.client("events").put_events(
        Entries=[{"Source": source, "DetailType": "Test", "Detail": json.dumps(detail or {"k": "v"})}]
    )
    assert resp["FailedEntryCount"] == 0
    return resp["Entries"][0]["EventId"]


def log_lines(server, function, stream=None):
    logs = server.client("logs")
    kwargs = {"logGroupName": f"/aws/lambda/{function}"}
    if stream:
        kwargs["logStreamNames"] = [stream]
    return [e["message"] for e in logs.filter_log_events(**kwargs)["events"]]


def ts(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


@pytest.fixture
def fresh(server):
    """Each test gets its own AWS state."""
    server.reset()




def test_success_environment_headers_and_logs(server, fresh):
    fn_arn = create_function(server, "echo", "echo", timeout=7, extra_env={"GREETING": "hi"})
    rule_arn = rule_to_function(server, "r", PATTERN, fn_arn)
    event_id = put(server, {"n": 1})
    rec = wait_for(lambda: invocations(server, "echo"), what="invocation")[0]
    assert rec["outcome"] == "success" and rec["error_type"] is None
    assert (rec["event_id"], rec["rule_arn"], rec["attempt"]) == (event_id, rule_arn, 1)
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", rec["log_stream"])
    out = json.loads(rec["response"])
    assert out["event"]["detail"] == {"n": 1}

    env = out["env"]
    expected_keys = {
        "MODE", "GREETING", "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION",
        "AWS_DEFAULT_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "PATH",
    }
    # Exactly these (the Python in the bootstrap may add LC_CTYPE on its own).
    assert set(env) - {"LC_CTYPE"} == expected_keys
    assert env["GREETING"] == "hi"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/echo"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == rec["log_stream"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_provided.al2023"
    assert env["AWS_ENDPOINT_URL"] == server.url
    assert env["LAMBDA_TASK_ROOT"] == out["cwd"]

    headers = {k.lower(): v for k, v in out["headers"].items()}
    assert headers["lambda-runtime-aws-request-id"] == rec["request_id"]
    assert headers["lambda-runtime-invoked-function-arn"] == fn_arn
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    deadline = int(headers["lambda-runtime-deadline-ms"]) / 1000
    assert abs(deadline - (ts(rec["started"]) + 7)) < 5

    lines = log_lines(server, "echo", rec["log_stream"])
    start = lines.index(f"START RequestId: {rec['request_id']} Version: $LATEST")
    end = lines.index(f"END RequestId: {rec['request_id']}")
    assert start < end
    assert any(line.startswith("got event ") for line in lines[start:end])
    assert "init mode=echo" in lines
    report = lines[end + 1]
    assert re.fullmatch(
        rf"REPORT RequestId: {rec['request_id']}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 256 MB\tMax Memory Used: \d+ MB\tInit Duration: [\d.]+ ms",
        report,
    ), report


def test_timeout_kills_the_process(server, fresh):
    fn_arn = create_function(server, "slow", "sleep", timeout=1)
    server.client("lambda").put_function_event_invoke_config(FunctionName="slow", MaximumRetryAttempts=0)
    rule_to_function(server, "r", PATTERN, fn_arn)
    put(server)
    rec = wait_for(lambda: invocations(server, "slow"), timeout=10, what="timeout")[0]
    assert (rec["outcome"], rec["error_type"]) == ("timeout", "Sandbox.Timedout")
    assert 950 <= rec["duration_ms"] < 3000
    lines = log_lines(server, "slow", rec["log_stream"])
    assert any(l.endswith(f"{rec['request_id']} Task timed out after 1.00 seconds") for l in lines)
    assert lines[-1].endswith("\tStatus: timeout")
    time.sleep(0.3)
    assert len(invocations(server, "slow")) == 1  # MaximumRetryAttempts=0 honoured


FAILURES = [
    # (function, bootstrap mode, outcome, errorType)
    ("bad", "error", "error", "Custom.Bad"),  # posts /invocation/{id}/error
    ("crashes", "crash", "error", "Runtime.ExitError"),  # exits holding the event
    ("init-exit", "exit", "init_error", "Runtime.ExitError"),  # exits before taking it
    ("init-error", "initerror", "init_error", "Custom.InitFailed"),  # posts /init/error
]


def test_failures_are_retried_twice_after_60_and_120_seconds(server, fresh):
    """All four kinds of failure at once (one event, four rules), to wait once."""
    for name, mode, _, _ in FAILURES:
        rule_to_function(server, f"r-{name}", PATTERN, create_function(server, name, mode))
    put(server)
    for name, _, outcome, error_type in FAILURES:
        recs = wait_for(lambda: len(invocations(server, name)) >= 3 and invocations(server, name),
                        timeout=20, what=f"3 attempts of {name}")
        assert [(r["attempt"], r["outcome"], r["error_type"]) for r in recs] == [
            (1, outcome, error_type), (2, outcome, error_type), (3, outcome, error_type)
        ], name
        assert len({r["request_id"] for r in recs}) == 1  # retries keep the request id
        # 60 s and 120 s of AWS time at scale 0.01: 0.6 s and 1.2 s.
        gap1 = ts(recs[1]["started"]) - ts(recs[0]["ended"])
        gap2 = ts(recs[2]["started"]) - ts(recs[1]["ended"])
        assert 0.55 <= gap1 < 3 and 1.15 <= gap2 < 4, (name, gap1, gap2)
    time.sleep(0.3)
    for name, *_ in FAILURES:
        assert len(invocations(server, name)) == 3, name  # no 4th attempt
    assert "failing on purpose" in log_lines(server, "bad")
    assert any(l.startswith("INIT_REPORT") and "Custom.InitFailed" in l for l in log_lines(server, "init-error"))
    assert any("Runtime exited with error: exit status 7" in l for l in log_lines(server, "crashes"))


def test_no_permission_means_denied_and_nothing_runs(server, fresh):
    fn_arn = create_function(server, "locked", "echo")
    events = server.client("events")
    rule_to_function(server, "r", PATTERN, fn_arn, permit=False)
    # A statement for another rule does not help.
    other = events.put_rule(Name="other", EventPattern=json.dumps({"source": ["x"]}))["RuleArn"]
    allow_rule(server, "locked", other)
    put(server)
    rec = wait_for(lambda: invocations(server, "locked"), what="delivery record")[0]
    assert (rec["outcome"], rec["attempt"]) == ("denied", 1)
    time.sleep(0.3)
    assert len(invocations(server, "locked")) == 1
    groups = server.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/locked")["logGroups"]
    assert groups == []  # it never ran


def test_permission_without_source_arn_allows_any_rule(server, fresh):
    fn_arn = create_function(server, "open", "echo")
    rule_to_function(server, "r", PATTERN, fn_arn, permit=False)
    server.client("lambda").add_permission(
        FunctionName="open", StatementId="any", Action="lambda:InvokeFunction", Principal="events.amazonaws.com"
    )
    put(server)
    assert wait_for(lambda: invocations(server, "open"))[0]["outcome"] == "success"


def test_reserved_concurrency_zero_throttles_until_lifted(server, fresh):
    fn_arn = create_function(server, "capped", "echo")
    lam = server.client("lambda")
    lam.put_function_concurrency(FunctionName="capped", ReservedConcurrentExecutions=0)
    rule_to_function(server, "r", PATTERN, fn_arn)
    put(server)
    wait_for(lambda: len(invocations(server, "capped")) >= 2, timeout=10, what="throttled twice")
    assert {r["outcome"] for r in invocations(server, "capped")} == {"throttled"}
    lam.delete_function_concurrency(FunctionName="capped")
    wait_for(lambda: any(r["outcome"] == "success" for r in invocations(server, "capped")), timeout=15, what="success")


def test_reserved_concurrency_one_runs_one_at_a_time(server, fresh):
    fn_arn = create_function(server, "serial", "sleep", extra_env={"SLEEP": "0.4"})
    server.client("lambda").put_function_concurrency(FunctionName="serial", ReservedConcurrentExecutions=1)
    rule_to_function(server, "r", PATTERN, fn_arn)
    put(server)
    put(server)
    recs = wait_for(lambda: len(invocations(server, "serial")) >= 2 and invocations(server, "serial"), timeout=15)
    assert [r["outcome"] for r in recs] == ["success", "success"]
    a, b = sorted(recs, key=lambda r: r["started"])
    assert ts(b["started"]) >= ts(a["ended"]) - 0.01


def test_synchronous_invoke(server, fresh):
    create_function(server, "echo", "echo")
    create_function(server, "bad", "error")
    lam = server.client("lambda")
    resp = lam.invoke(FunctionName="echo", Payload=json.dumps({"direct": True}), LogType="Tail")
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert json.loads(resp["Payload"].read())["event"] == {"direct": True}
    assert resp["LogResult"]
    resp = lam.invoke(FunctionName="bad", Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read()) == {"errorMessage": "bad thing", "errorType": "Custom.Bad"}
    lam.put_function_concurrency(FunctionName="echo", ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="echo", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="nope", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    resp = lam.invoke(FunctionName="bad", Payload=b"{}", InvocationType="Event")
    assert resp["StatusCode"] == 202
    wait_for(lambda: [r for r in invocations(server, "bad") if r["source"] == "Invoke(Event)"], what="async invoke")


def test_calls_name_the_function_whose_credentials_signed_them(server, fresh):
    """Each attempt gets its own access key (Lambda: temporary credentials of the role per
    execution environment); the call log names the function and attempt behind every call,
    as CloudTrail's userIdentity does, and nothing for other callers."""
    create_function(server, "caller-a", "call")
    create_function(server, "caller-b", "call")
    lam = server.client("lambda")
    keys = {}
    for name in ("caller-a", "caller-b", "caller-a"):
        resp = lam.invoke(FunctionName=name, Payload=b"{}")
        key = json.loads(resp["Payload"].read())["key"]
        assert re.fullmatch(r"ASIA[0-9A-F]{16}", key), key
        keys.setdefault(name, []).append(key)
    assert len({*keys["caller-a"], *keys["caller-b"]}) == 3, "one key per attempt"
    calls = server.ctl("GET", "/calls?operation=DescribeAvailabilityZones")
    assert len(calls) == 3
    by_key = {c["access_key_id"]: c for c in calls}
    recs = {r["request_id"]: r["function"] for r in invocations(server, "caller-a") + invocations(server, "caller-b")}
    for name, ks in keys.items():
        for k in ks:
            assert by_key[k]["function"] == name
            assert recs[by_key[k]["request_id"]] == name
    assert [c["function"] for c in server.ctl("GET", "/calls?function=caller-b")] == ["caller-b"]
    # The test's own calls are nobody's function.
    own = [c for c in server.ctl("GET", "/calls?operation=Invoke")]
    assert own and all(c["function"] is None and c["access_key_id"] == "AKIAIOSFODNN7EXAMPLE" for c in own)


def test_error_type_is_the_functions_not_the_runtimes(server, fresh):
    """The record's error_type is the errorType of the posted error document; the runtime's
    Lambda-Runtime-Function-Error-Type header only stands in when the body has none."""
    lam = server.client("lambda")
    for name, mode in (("classified", "error-header"), ("text", "error-text")):
        create_function(server, name, mode)
        assert lam.invoke(FunctionName=name, Payload=b"{}")["FunctionError"] == "Unhandled"
    assert [r["error_type"] for r in invocations(server, "classified")] == ["Custom.Bad"]
    assert [r["error_type"] for r in invocations(server, "text")] == ["Custom.FromHeader"]


def test_updated_code_runs(server, fresh):
    create_function(server, "fn", "echo")
    lam = server.client("lambda")
    lam.update_function_configuration(FunctionName="fn", Environment={"Variables": {"MODE": "error"}})
    resp = lam.invoke(FunctionName="fn", Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"


def test_code_location_and_reserved_environment_keys(server, fresh):
    create_function(server, "fn", "echo")
    lam = server.client("lambda")
    got = lam.get_function(FunctionName="fn")
    with urllib.request.urlopen(got["Code"]["Location"]) as resp:
        package = resp.read()
    digest = base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert digest == got["Configuration"]["CodeSha256"]
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName="fn", Environment={"Variables": {"AWS_REGION": "x", "OK": "1"}})
    err = exc.value.response["Error"]
    assert err["Code"] == "InvalidParameterValueException"
    assert err["Message"].endswith("Reserved keys used in this request: AWS_REGION")


def test_runtime_api_protocol():
    """The emulator alone: headers, 202 {"status":"OK"}, 400 for unknown or answered ids."""
    inv = Invocation("req-1", b'{"x": 1}', "arn:aws:lambda:ap-southeast-2:123456789012:function:f", 3.0, "Root=1-abc")
    api = RuntimeAPIServer(inv)
    api.start()
    base = f"http://{api.address}/2018-06-01/runtime"

    def post(path, body=b"{}"):
        req = urllib.request.Request(base + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        before = time.time()
        with urllib.request.urlopen(base + "/invocation/next", timeout=5) as resp:
            assert json.loads(resp.read()) == {"x": 1}
            assert resp.headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
            assert resp.headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:f")
            assert resp.headers["Lambda-Runtime-Trace-Id"] == "Root=1-abc"
            deadline = int(resp.headers["Lambda-Runtime-Deadline-Ms"]) / 1000
            assert before + 2.5 < deadline < time.time() + 3.5
        assert post("/invocation/other/response")[0] == 400
        assert post("/invocation/req-1/response", b'{"ok": true}') == (202, {"status": "OK"})
        assert post("/invocation/req-1/error")[0] == 400  # already answered
        assert post("/init/error")[0] == 403
        assert inv.outcome == "success" and inv.response == b'{"ok": true}'
    finally:
        api.stop()


@pytest.mark.parametrize("path, body, header, expected", [
    ("/invocation/req-1/error", b'{"errorType": "Custom.Bad"}', "unhandled", "Custom.Bad"),
    ("/invocation/req-1/error", b'{"errorMessage": "no type"}', "unhandled", "unhandled"),
    ("/invocation/req-1/error", b"not json", "Custom.Header", "Custom.Header"),
    ("/invocation/req-1/error", b'["a list"]', None, "Unhandled"),
    ("/init/error", b'{"errorType": "Custom.InitFailed"}', "unhandled", "Custom.InitFailed"),
    ("/init/error", b"", None, "Runtime.Unknown"),
])
def test_runtime_api_error_type(path, body, header, expected):
    """Body errorType first, then the header, then the API's default."""
    inv = Invocation("req-1", b"{}", "arn:aws:lambda:ap-southeast-2:123456789012:function:f", 3.0, "Root=1-abc")
    api = RuntimeAPIServer(inv)
    api.start()
    base = f"http://{api.address}/2018-06-01/runtime"
    try:
        if path.startswith("/invocation/"):
            urllib.request.urlopen(base + "/invocation/next", timeout=5).read()
        headers = {"Lambda-Runtime-Function-Error-Type": header} if header else {}
        req = urllib.request.Request(base + path, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 202
        assert (inv.error_type, inv.error_body) == (expected, body)
    finally:
        api.stop()


def test_sigterm_stops_the_server_and_its_lambda_processes(tmp_path):
    srv = start_server(tmp_path)
    try:
        pidfile = tmp_path / "pid"
        create_function(srv, "sleeper", "sleep", timeout=60, extra_env={"PIDFILE": str(pidfile)})
        srv.client("lambda").invoke(FunctionName="sleeper", InvocationType="Event", Payload=b"{}")
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the function to start")
        pid = int(pidfile.read_text())
        os.kill(pid, 0)  # running
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=10) == 0
        wait_for(lambda: not _alive(pid), timeout=5, what="the Lambda process to be gone")
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent, the server, is gone; init reaps it).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_conflicts_answer_aws_messages(server, fresh):
    """AddPermission with a statement id already in the policy and CreateFunction of a name in
    use answer ResourceConflictException (HTTP 409) with AWS's messages; the policy keeps one
    statement of that id (moto appended a second)."""
    arn = create_function(server, "conflict", "ok")
    allow_rule(server, "conflict", "arn:aws:events:ap-southeast-2:123456789012:rule/r1", sid="dup")
    with pytest.raises(ClientError) as exc:
        allow_rule(server, "conflict", "arn:aws:events:ap-southeast-2:123456789012:rule/r2", sid="dup")
    err = exc.value.response
    assert (err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]) == ("ResourceConflictException", 409)
    assert err["Error"]["Message"] == (
        "The statement id (dup) provided already exists. Please provide a new statement id, or remove the existing statement."
    )
    policy = json.loads(server.client("lambda").get_policy(FunctionName="conflict")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["dup"]
    assert policy["Statement"][0]["Condition"]["ArnLike"]["AWS:SourceArn"].endswith("rule/r1")
    with pytest.raises(ClientError) as exc:
        create_function(server, "conflict", "ok")
    err = exc.value.response
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("ResourceConflictException", "Function already exist: conflict")
    assert arn


def test_a_role_made_again_leaves_the_function_failing_at_init_until_its_configuration_is_updated(server, fresh):
    """Lambda's environment-variable grant names the role's principal: deleted and made again
    under the same name, the role is a new principal and the function fails at init with
    KMSAccessDeniedException ("Lambda was unable to decrypt the environment variables because
    KMS access was denied") until UpdateFunctionConfiguration makes a new grant."""
    from conftest import ROLE_TRUST

    create_function(server, "grant", "echo")
    lam, iam = server.client("lambda"), server.client("iam")
    assert "FunctionError" not in lam.invoke(FunctionName="grant", Payload=b"{}")
    iam.delete_role(RoleName="fn-role")
    iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_TRUST)
    resp = lam.invoke(FunctionName="grant", Payload=b"{}")
    assert resp["FunctionError"] == "Unhandled"
    body = json.loads(resp["Payload"].read())
    assert body["errorType"] == "KMSAccessDeniedException"
    assert body["errorMessage"].startswith("Lambda was unable to decrypt the environment variables because KMS access was denied")
    lam.update_function_configuration(FunctionName="grant", MemorySize=256)
    assert "FunctionError" not in lam.invoke(FunctionName="grant", Payload=b"{}")


def test_logging_config_is_kept_and_answered(server, fresh):
    """LoggingConfig given at CreateFunction and UpdateFunctionConfiguration is answered by
    GetFunction and GetFunctionConfiguration, as Lambda does (moto dropped it)."""
    create_function(server, "logged", "echo")
    lam = server.client("lambda")
    lam.update_function_configuration(FunctionName="logged", LoggingConfig={"LogGroup": "/custom/logged"})
    assert lam.get_function_configuration(FunctionName="logged")["LoggingConfig"]["LogGroup"] == "/custom/logged"
    assert lam.get_function(FunctionName="logged")["Configuration"]["LoggingConfig"]["LogGroup"] == "/custom/logged"
