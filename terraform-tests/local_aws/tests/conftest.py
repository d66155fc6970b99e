"""Fixtures: one localaws server per test module, boto3 clients, helpers.

The server is started as the Rust harness starts it (``python -m localaws
--port 0``, waiting for the READY line) with ``--clock-scale 0.01``, so AWS
delays are 100 times shorter. Tests that need fresh AWS state call
``server.reset()`` (POST /_localaws/reset).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent
PACKAGE_ROOT = HERE.parent  # terraform-tests/local_aws: holds the localaws package
sys.path.insert(0, str(PACKAGE_ROOT))

REGION = "ap-southeast-2"
ACCOUNT = "123456789012"
AMI = "ami-0720cb7af233b0529"


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, stderr_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.stderr_path = stderr_path
        self._clients: dict[tuple[str, bool], Any] = {}

    def ctl(self, method: str, path: str, data: Any = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + "/_localaws" + path, method=method, data=body)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()!r}") from None

    def reset(self) -> None:
        self.ctl("POST", "/reset")

    def client(self, service: str, retries: bool = False) -> Any:
        key = (service, retries)
        if key not in self._clients:
            self._clients[key] = boto3.client(
                service,
                endpoint_url=self.url,
                region_name=REGION,
                aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                config=Config(retries={"total_max_attempts": 3 if retries else 1, "mode": "standard"}),
            )
        return self._clients[key]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_server(tmp_dir: Path, scale: str = "0.01", profile: str = "fast") -> Server:
    """A server of its own. Layer tests default to the `fast` profile (instant state changes)
    so each one checks its own behaviour; tests of the realistic profile ask for it."""
    stderr_path = tmp_dir / "localaws.stderr"
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "localaws", "--port", "0", "--clock-scale", scale, "--profile", profile,
         "--log-level", "info"],
        cwd=PACKAGE_ROOT,
        stdout=subprocess.PIPE,
        stderr=open(stderr_path, "w"),
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LOCALAWS_READY http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"no READY line, got {line!r}; stderr:\n{stderr_path.read_text()}")
    return Server(proc, line.split()[1], stderr_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = start_server(tmp_path_factory.mktemp("localaws"))
    yield srv
    srv.proc.terminate()
    try:
        code = srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        raise AssertionError("localaws did not stop on SIGTERM")
    assert code == 0, srv.stderr()[-3000:]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- Lambda test bootstrap -------------------------------------------------

BOOTSTRAP = r'''#!{python}
"""A tiny custom runtime speaking the Lambda Runtime API; MODE picks its behaviour."""
import json, os, sys, time, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
MODE = os.environ.get("MODE", "echo")


def post(url, doc, headers=None):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST", headers=headers or {{}})
    with urllib.request.urlopen(req) as resp:
        return resp.status, resp.read()


print("init mode=" + MODE, flush=True)
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"], "w") as f:
        f.write(str(os.getpid()))
if MODE == "exit":
    sys.exit(3)
if MODE == "initerror":
    post(API + "/init/error", {{"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}},
         {{"Lambda-Runtime-Function-Error-Type": "Custom.InitFailed"}})
    sys.exit(1)

while True:
    with urllib.request.urlopen(API + "/invocation/next") as resp:
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        headers = {{k: v for k, v in resp.headers.items() if k.lower().startswith("lambda-runtime")}}
        event = json.loads(resp.read())
    print("got event " + json.dumps(event), flush=True)
    if MODE == "echo":
        env = {{k: v for k, v in os.environ.items()}}
        post(API + "/invocation/" + request_id + "/response", {{"event": event, "headers": headers, "env": env, "cwd": os.getcwd()}})
    elif MODE == "error":
        print("failing on purpose", file=sys.stderr, flush=True)
        post(API + "/invocation/" + request_id + "/error", {{"errorMessage": "bad thing", "errorType": "Custom.Bad"}})
    elif MODE == "error-header":
        # As Rust's lambda_runtime posts it: its own classification in the header, the
        # function's error type in the body.
        post(API + "/invocation/" + request_id + "/error", {{"errorMessage": "bad thing", "errorType": "Custom.Bad"}},
             {{"Lambda-Runtime-Function-Error-Type": "unhandled"}})
    elif MODE == "error-text":
        req = urllib.request.Request(API + "/invocation/" + request_id + "/error", data=b"not json", method="POST",
                                     headers={{"Lambda-Runtime-Function-Error-Type": "Custom.FromHeader"}})
        urllib.request.urlopen(req).read()
    elif MODE == "sleep":
        time.sleep(float(os.environ.get("SLEEP", "30")))
        post(API + "/invocation/" + request_id + "/response", {{"slept": True}})
    elif MODE == "crash":
        sys.exit(7)
    elif MODE == "call":
        # One AWS call with the credentials Lambda gave this attempt.
        import boto3
        boto3.client("ec2").describe_availability_zones()
        post(API + "/invocation/" + request_id + "/response", {{"key": os.environ["AWS_ACCESS_KEY_ID"]}})
    elif MODE == "try":
        # The AWS call the event names ({{"service", "method", "args"}}), made with the
        # attempt's credentials; the answer says how AWS took it.
        import boto3, botocore.config, botocore.exceptions
        client = boto3.client(event["service"], config=botocore.config.Config(retries={{"total_max_attempts": 1}}))
        try:
            getattr(client, event["method"])(**event.get("args", {{}}))
            outcome = {{"code": None}}
        except botocore.exceptions.ClientError as exc:
            outcome = {{"code": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"],
                        "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}}
        post(API + "/invocation/" + request_id + "/response", outcome)
    elif MODE == "heal":
        # The handler's calls (handler/src/aws.rs), in its order, on the lifecycle event's
        # instance and group and the VOLUME_ID / ALLOCATION_ID of the environment; stops at
        # the first refused call. The answer lists each call and its error code.
        import boto3, botocore.config, botocore.exceptions
        cfg = botocore.config.Config(retries={{"total_max_attempts": 1}})
        ec2, asg = boto3.client("ec2", config=cfg), boto3.client("autoscaling", config=cfg)
        d = event["detail"]
        inst, group = d["EC2InstanceId"], d["AutoScalingGroupName"]
        action = dict(AutoScalingGroupName=group, LifecycleHookName=d["LifecycleHookName"],
                      LifecycleActionToken=d["LifecycleActionToken"], InstanceId=inst)
        steps = [
            ("DescribeInstances", lambda: ec2.describe_instances(InstanceIds=[inst])),
            ("DescribeAutoScalingInstances", lambda: asg.describe_auto_scaling_instances(InstanceIds=[inst])),
            ("DescribeVolumes", lambda: ec2.describe_volumes(VolumeIds=[os.environ["VOLUME_ID"]])),
            ("AttachVolume", lambda: ec2.attach_volume(VolumeId=os.environ["VOLUME_ID"], InstanceId=inst, Device="/dev/sdf")),
            ("DescribeAddresses", lambda: ec2.describe_addresses(AllocationIds=[os.environ["ALLOCATION_ID"]])),
            ("AssociateAddress", lambda: ec2.associate_address(AllocationId=os.environ["ALLOCATION_ID"], InstanceId=inst,
                                                               AllowReassociation=True)),
            ("DescribeLifecycleHooks", lambda: asg.describe_lifecycle_hooks(AutoScalingGroupName=group)),
            ("RecordLifecycleActionHeartbeat", lambda: asg.record_lifecycle_action_heartbeat(**action)),
            ("CompleteLifecycleAction", lambda: asg.complete_lifecycle_action(LifecycleActionResult="CONTINUE", **action)),
        ]
        calls, error = [], None
        for name, call in steps:
            try:
                call()
                calls.append([name, None])
            except botocore.exceptions.ClientError as exc:
                err = exc.response["Error"]
                calls.append([name, err["Code"]])
                error = {{"operation": name, "code": err["Code"], "message": err["Message"],
                          "status": exc.response["ResponseMetadata"]["HTTPStatusCode"]}}
                break
        print("heal " + json.dumps(calls), flush=True)
        post(API + "/invocation/" + request_id + "/response", {{"calls": calls, "error": error}})
    elif MODE == "complete":
        import boto3
        detail = event["detail"]
        boto3.client("autoscaling").complete_lifecycle_action(
            AutoScalingGroupName=detail["AutoScalingGroupName"],
            LifecycleHookName=detail["LifecycleHookName"],
            LifecycleActionToken=detail["LifecycleActionToken"],
            InstanceId=detail["EC2InstanceId"],
            LifecycleActionResult="CONTINUE",
        )
        print("completed " + detail["EC2InstanceId"], flush=True)
        post(API + "/invocation/" + request_id + "/response", {{"completed": detail["EC2InstanceId"]}})
'''


def bootstrap_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = (0o100755 << 16)
        info.create_system = 3
        zf.writestr(info, BOOTSTRAP.format(python=sys.executable))
    return buf.getvalue()


ROLE_TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})


def create_function(server: Server, name: str, mode: str, timeout: int = 5, extra_env: dict[str, str] | None = None) -> str:
    iam = server.client("iam")
    try:
        role_arn = iam.get_role(RoleName="fn-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role_arn = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]
    env = {"MODE": mode, **(extra_env or {})}
    resp = server.client("lambda").create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Handler="bootstrap",
        Role=role_arn,
        Code={"ZipFile": bootstrap_zip()},
        Timeout=timeout,
        MemorySize=256,
        Environment={"Variables": env},
    )
    return resp["FunctionArn"]


def allow_rule(server: Server, function: str, rule_arn: str, sid: str = "events") -> None:
    server.client("lambda").add_permission(
        FunctionName=function,
        StatementId=sid,
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )


def rule_to_function(server: Server, rule: str, pattern: dict[str, Any], function_arn: str, permit: bool = True) -> str:
    events = server.client("events")
    rule_arn = events.put_rule(Name=rule, EventPattern=json.dumps(pattern))["RuleArn"]
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": function_arn}])
    if permit:
        allow_rule(server, function_arn.split(":")[-1], rule_arn, sid=f"allow-{rule}")
    return rule_arn


def invocations(server: Server, function: str) -> list[dict[str, Any]]:
    return [r for r in server.ctl("GET", "/invocations") if r["function"] == function]


# --- EC2 / Auto Scaling scaffolding ------------------------------------------------


def network(server: Server, az: str = "ap-southeast-2a") -> dict[str, str]:
    ec2 = server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
    lt = ec2.create_launch_template(
        LaunchTemplateName=f"lt-{subnet}", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    return {"vpc": vpc, "subnet": subnet, "launch_template": lt, "az": az}


def create_group(server: Server, name: str, net: dict[str, str], hooks: list[dict[str, Any]] | None = None) -> None:
    kwargs: dict[str, Any] = {}
    if hooks is not None:
        kwargs["LifecycleHookSpecificationList"] = hooks
    server.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=net["subnet"],
        LaunchTemplate={"LaunchTemplateId": net["launch_template"], "Version": "$Latest"},
        **kwargs,
    )


def hook(name: str = "launch", timeout: int = 300, default: str = "ABANDON", metadata: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "LifecycleHookName": name,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "HeartbeatTimeout": timeout,
        "DefaultResult": default,
    }
    if metadata is not None:
        spec["NotificationMetadata"] = metadata
    return spec


def group_instances(server: Server, name: str) -> list[dict[str, Any]]:
    groups = server.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0]["Instances"] if groups else []


def instance_state(server: Server, instance_id: str) -> str:
    res = server.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return res[0]["Instances"][0]["State"]["Name"]


def run_instance(server: Server, net: dict[str, str]) -> str:
    """One instance of the tests' AMI in the network's subnet; its id."""
    return server.client("ec2").run_instances(ImageId=AMI, MinCount=1, MaxCount=1, SubnetId=net["subnet"])[
        "Instances"
    ][0]["InstanceId"]


def new_volume(server: Server, az: str = "ap-southeast-2a") -> str:
    """An 8 GiB gp3 volume in `az`; its id."""
    return server.client("ec2").create_volume(AvailabilityZone=az, Size=8, VolumeType="gp3")["VolumeId"]


def volume_view(server: Server, vol: str) -> tuple[str, list[tuple[str, str]]]:
    """(state, [(instance, attachment state)]) of a volume, as DescribeVolumes shows it."""
    v = server.client("ec2").describe_volumes(VolumeIds=[vol])["Volumes"][0]
    return v["State"], [(a["InstanceId"], a["State"]) for a in v["Attachments"]]
