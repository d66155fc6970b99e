#!/usr/bin/env python3
"""Measurements and report for tools/bench-stack (run that, not this).

Needs boto3 (the project's venv has it: .tools/venv/bin/python).

  run     for each N: a fresh local AWS, `terraform apply` then `terraform
          destroy` of N autoheal_instance stacks (the acceptance tests'
          fixture, one stack per name); wall times, the local AWS's call log
          and Lambda invocations of each command; raw results as JSON
  report  the Markdown section, from that JSON

Where each figure comes from:

* wall time: Popen of Terraform -> its exit, `time.monotonic`.
* calls: the local AWS records every request it serves (GET /_localaws/calls:
  operation, end time in ms, server-side duration). The log is cleared right
  before each command and read right after it, so it holds exactly that
  command's calls. During an apply it also holds the attachment Lambda's calls
  (the heal); they are told apart from the provider's by operation and time
  (see `split_handler_calls`).
* critical path: the provider's order of calls, written down below from
  provider/src/autoheal_instance/{create,delete,read}.rs (CREATE_ORDER,
  DESTROY_ORDER), evaluated with the median server-side duration of each
  operation in the N=1 runs; the heal (UpdateAutoScalingGroup answered ->
  CompleteLifecycleAction CONTINUE answered) is taken as measured. The same
  order is checked against the N=1 call logs: every call must start after the
  calls it depends on have ended, and an operation the order does not know is
  reported as drift. MIN_CREATE / MIN_DESTROY are a second, looser order: only
  what AWS itself (and the pattern's "no launch before hook, rule, target,
  permission and function" rule) forces to be sequential.
* the provider's starts and configuration: every Terraform command logs at
  TF_LOG=TRACE to a file; per provider process, the intervals between its
  lines listed in `provider_parts`, within the time with no AWS call in flight
  (see `provider_share`). "Terraform alone" is that time less them.
"""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

# The local AWS runner and the timestamp parser are bench-handler's; no
# bytecode cache in tools/ for that import.
sys.dont_write_bytecode = True
from bench_handler import REGION, LocalAws, epoch  # noqa: E402

# Handler-only operations: the provider never calls these during an apply.
HANDLER_OPS = {
    "DescribeInstances", "AttachVolume", "DetachVolume", "AssociateAddress", "DisassociateAddress",
    "CompleteLifecycleAction", "RecordLifecycleActionHeartbeat",
}
# Operations both make during an apply; told apart by time (see split_handler_calls).
SHARED_OPS = {"DescribeVolumes", "DescribeAddresses"}
# Timestamps are whole milliseconds, so two calls that follow each other may
# appear to overlap by up to this much.
TOLERANCE_S = 0.002


def log(msg):
    print(f"{time.strftime('%H:%M:%S')}     {msg}", file=sys.stderr, flush=True)


# --- the provider's order of calls -------------------------------------------
#
# A step is an operation name, HEAL, or seq(...)/par(...) of steps. A wait
# counts as its one successful poll: the local AWS answers the final state of a
# new VPC, volume or function at once, so more polls are overhead.


def seq(*steps):
    return ("seq", steps)


def par(*steps):
    return ("par", steps)


def mark(name, step):
    """`step`, whose end another lane of a par waits for (`after`); the marking
    lane comes first among the par's steps."""
    return ("mark", name, step)


def after(names, step):
    """`step`, started once the marked steps `names` of other lanes have ended
    too: the provider's gates between concurrent lanes (provider/src/aws/gate.rs)."""
    return ("after", tuple(names), step)


HEAL = ("heal",)
# How the heal shows in a chain of operations.
HEAL_LABEL = "(heal)"

CREATE_ORDER = seq(
    # adopt::find: the named objects and every EC2 object marked `autoheal:creating` with
    # this name (a finished stack is refused, an interrupted create's objects adopted).
    par("DescribeAutoScalingGroups", "GetFunction", "GetRole", "DescribeRule", "DescribeLogGroups",
        "DescribeTags"),
    # Steps 1 and 2 as create.rs's two sides, which hand each other what they need: the
    # template waits for the volume (from the Lambda side), which this model leaves out (the
    # volume's chain is the shorter); with `persistent_network_interface` (not benchmarked)
    # the Lambda side's second half waits for the interface.
    par(
        # The network side. create_network: the VPC beside the gateway, then what needs only
        # the VPC at once (the gateway's attachment too), then the route beside the association; the security group after the whole network
        # (adopt.rs reads a group as "the network was finished"); the launch template after
        # the AMI's root device name (its root volume is mapped encrypted), then the group at
        # size 0 with its hook.
        seq(par(seq("CreateVpc", "DescribeVpcs"), "CreateInternetGateway"),
            par("ModifyVpcAttribute", "ModifyVpcAttribute", "CreateSubnet", "AttachInternetGateway",
                "CreateRouteTable"),
            par("CreateRoute", "AssociateRouteTable"), "CreateSecurityGroup",
            "DescribeImages", "CreateLaunchTemplate", "CreateAutoScalingGroup", "EnableMetricsCollection"),
        # The Lambda side: its objects at once (the volume: newest final snapshot, create,
        # wait until available, find), then the role's policy beside the function (create,
        # wait until Active, then at once its event-invoke configuration, the retry budget
        # sized from the hook's timeout, the rule's target and the permission).
        seq(par(seq("DescribeSnapshots", "CreateVolume", "DescribeVolumes", "DescribeVolumes"),
                "AllocateAddress",
                seq("CreateLogGroup", "PutRetentionPolicy"),
                "CreateRole",
                "PutRule"),
            par("PutRolePolicy",
                seq("CreateFunction", "GetFunctionConfiguration",
                    par("PutFunctionEventInvokeConfig", "PutTargets", "AddPermission")))),
    ),
    # Step 3: the volume's unused marker off (from here an instance may write to it), scale
    # to 1, the heal, then one poll that sees it done (the group, then the volume beside the
    # address).
    "DeleteTags",
    "UpdateAutoScalingGroup",
    HEAL,
    seq("DescribeAutoScalingGroups", par("DescribeVolumes", "DescribeAddresses")),
    # unmark: the named objects' markers (group, function, role, rule, log group by the ARN
    # that follows from the function's) beside the look-up of the marked EC2 objects, then
    # those in one DeleteTags, the create's commit point.
    par("DeleteTags", "UntagResource", "UntagRole", "UntagResource", "UntagResource", "DescribeTags"),
    "DeleteTags",
)

# `terraform destroy` refreshes the state first (read.rs), then plans, then
# applies the destroy (delete.rs).
DESTROY_REFRESH = seq(
    par("DescribeAutoScalingGroups", "DescribeLifecycleHooks", "GetFunction", "GetPolicy",
        seq("DescribeRule", "ListTargetsByRule"), "DescribeLogGroups", "GetRole"),
    # The second round, with the role's policies (read whether or not the role exists).
    par("DescribeVolumes", "DescribeAddresses", "DescribeSecurityGroups", "ListRolePolicies",
        "ListAttachedRolePolicies", "GetRolePolicy"),
    "DescribeLaunchTemplateVersions",
)
DESTROY_ORDER = seq(
    DESTROY_REFRESH,
    # 1. drain (size 0 without a look first, wait for no instance).
    seq("UpdateAutoScalingGroup", "DescribeAutoScalingGroups"),
    # 2. at once: the group (find, delete, wait), then its template; the volume (find, wait
    # detached, tag the snapshot's token, final snapshot, wait, delete); the address (find,
    # release) beside the security group and the network (delete_vpc: the stack's unattached
    # gateways beside the VPC's look-up and its parts: its gateway beside its route tables'
    # disassociation and the subnets' look-up, then the tables and subnets deleted; the
    # gateway's detach and the subnet after the address, the VPC last, after the group); the
    # Lambda side (rule, function, log group, role apart).
    par(seq("DescribeAutoScalingGroups", "DeleteAutoScalingGroup", "DescribeAutoScalingGroups",
            "DeleteLaunchTemplate"),
        seq("DescribeVolumes", "DescribeVolumes", "CreateTags", "CreateSnapshot", "DescribeSnapshots",
            "DeleteVolume"),
        par(mark("addressed", seq("DescribeAddresses", "ReleaseAddress")),
            mark("group", "DeleteSecurityGroup"),
            seq(par("DescribeInternetGateways", "DescribeVpcs",
                    seq("DescribeInternetGateways",
                        after(["addressed"], seq("DetachInternetGateway", "DeleteInternetGateway"))),
                    seq(par(seq("DescribeRouteTables", "DisassociateRouteTable"), "DescribeSubnets"),
                        par("DeleteRouteTable", after(["addressed"], "DeleteSubnet")))),
                after(["group"], "DeleteVpc"))),
        par(seq("DescribeRule", "ListTargetsByRule", "RemoveTargets", "DeleteRule"), "DeleteFunction",
            "DeleteLogGroup",
            seq(par("ListRolePolicies", "ListAttachedRolePolicies"), "DeleteRolePolicy", "DeleteRole"))),
)
# The refresh's last call: the gap after it is Terraform's (planning the
# destroy, starting the provider again to apply it).
REFRESH_LAST_OP = "DescribeLaunchTemplateVersions"
# Calls the provider makes only in some runs, so in no order: the wait for the
# instance reads the group's scaling activities while no instance has launched
# (autoscaling_group.rs). Not reported as drift; counted in "beyond the order's".
CONDITIONAL_OPS = {"DescribeScalingActivities"}

# Looser orders, as DAGs {node: (operation, [dependencies])}: only what AWS
# needs (ids, attachments) and what the pattern needs (nothing launches before
# the hook, rule, target, permission, policy and an Active function with its
# event-invoke configuration, which bounds the heal's retries; the network is
# complete before the launch). Redundant reads are left out (the
# wait for the volume returns what the later find reads; the refresh already
# read the rule's targets and the group).


def _min_create():
    check = ["chk1", "chk2", "chk3", "chk4"]
    return {
        "chk1": ("DescribeAutoScalingGroups", []), "chk2": ("GetFunction", []), "chk3": ("GetRole", []),
        "chk4": ("DescribeRule", []),
        "vpc": ("CreateVpc", check), "vpcw": ("DescribeVpcs", ["vpc"]),
        "dns1": ("ModifyVpcAttribute", ["vpcw"]), "dns2": ("ModifyVpcAttribute", ["vpcw"]),
        "subnet": ("CreateSubnet", ["vpcw"]),
        "igw": ("CreateInternetGateway", check), "attach": ("AttachInternetGateway", ["igw", "vpcw"]),
        "rt": ("CreateRouteTable", ["vpcw"]), "route": ("CreateRoute", ["rt", "attach"]),
        "assoc": ("AssociateRouteTable", ["rt", "subnet"]),
        "sg": ("CreateSecurityGroup", ["vpcw"]),
        "snapq": ("DescribeSnapshots", check), "vol": ("CreateVolume", ["snapq"]),
        "volw": ("DescribeVolumes", ["vol"]),
        "eip": ("AllocateAddress", check),
        "lg": ("CreateLogGroup", check), "ret": ("PutRetentionPolicy", ["lg"]),
        "role": ("CreateRole", check), "rule": ("PutRule", check),
        "policy": ("PutRolePolicy", ["role", "vol", "eip"]),
        # The template maps the AMI's root device (its name from DescribeImages) encrypted.
        "img": ("DescribeImages", check),
        "lt": ("CreateLaunchTemplate", ["sg", "vol", "img"]),
        "fn": ("CreateFunction", ["role", "vol", "eip"]), "fnw": ("GetFunctionConfiguration", ["fn"]),
        "tgt": ("PutTargets", ["fn", "rule"]), "perm": ("AddPermission", ["fn", "rule"]),
        "retries": ("PutFunctionEventInvokeConfig", ["fn"]),
        "asg": ("CreateAutoScalingGroup", ["lt", "subnet"]),
        "metrics": ("EnableMetricsCollection", ["asg"]),
        # The volume's unused marker goes before the scale-up (delete.rs trusts only it).
        "used": ("DeleteTags", ["vol"]),
        "up": ("UpdateAutoScalingGroup", ["asg", "fnw", "tgt", "perm", "retries", "policy", "volw", "lg",
                                          "dns1", "dns2", "route", "assoc", "used"]),
        "heal": (HEAL, ["up"]),
        "seen": ("DescribeAutoScalingGroups", ["heal"]),
        "seenv": ("DescribeVolumes", ["seen"]), "seena": ("DescribeAddresses", ["seen"]),
        # The unmarking: once served; the EC2 objects' DeleteTags last (the commit point).
        "ug": ("DeleteTags", ["seenv", "seena"]), "uf": ("UntagResource", ["seenv", "seena"]),
        "ur": ("UntagRole", ["seenv", "seena"]), "ue": ("UntagResource", ["seenv", "seena"]),
        "ul": ("UntagResource", ["seenv", "seena"]),
        "u2": ("DescribeTags", ["seenv", "seena"]),
        "u3": ("DeleteTags", ["ug", "uf", "ur", "ue", "ul", "u2"]),
    }


def _min_destroy():
    dag = {}
    prev = []
    # The refresh as it is (Terraform's read; already concurrent where it can be).
    for i, level in enumerate(DESTROY_REFRESH[1]):
        names = []
        for j, step in enumerate(level[1] if isinstance(level, tuple) else (level,)):
            ops = step[1] if isinstance(step, tuple) else (step,)
            dep = prev
            for k, op in enumerate(ops):
                node = f"r{i}.{j}.{k}"
                dag[node] = (op, dep)
                dep = [node]
            names.append(dep[0])
        prev = names
    refresh = prev
    dag.update({
        "size0": ("UpdateAutoScalingGroup", refresh), "drained": ("DescribeAutoScalingGroups", ["size0"]),
        "delasg": ("DeleteAutoScalingGroup", ["drained"]), "asgw": ("DescribeAutoScalingGroups", ["delasg"]),
        "detached": ("DescribeVolumes", ["drained"]), "token": ("CreateTags", ["detached"]),
        "snap": ("CreateSnapshot", ["token"]),
        "snapw": ("DescribeSnapshots", ["snap"]), "delvol": ("DeleteVolume", ["snapw"]),
        "eip": ("ReleaseAddress", ["drained"]),
        "untarget": ("RemoveTargets", ["drained"]), "delrule": ("DeleteRule", ["untarget"]),
        "delfn": ("DeleteFunction", ["drained"]), "dellg": ("DeleteLogGroup", ["drained"]),
        "delpol": ("DeleteRolePolicy", ["drained"]), "delrole": ("DeleteRole", ["delpol"]),
        "dellt": ("DeleteLaunchTemplate", ["asgw"]),
        "delsg": ("DeleteSecurityGroup", ["drained"]),
        "igwq": ("DescribeInternetGateways", ["drained"]), "detach": ("DetachInternetGateway", ["igwq"]),
        "deligw": ("DeleteInternetGateway", ["detach"]),
        "rtq": ("DescribeRouteTables", ["drained"]), "disassoc": ("DisassociateRouteTable", ["rtq"]),
        "delrt": ("DeleteRouteTable", ["disassoc"]),
        "delsubnet": ("DeleteSubnet", ["disassoc"]),
        "delvpc": ("DeleteVpc", ["delsubnet", "detach", "delrt", "delsg"]),
    })
    return dag


MIN_CREATE = _min_create()
MIN_DESTROY = _min_destroy()


def order_ops(step):
    """Operation -> how many times the order calls it."""
    counts = {}
    if step == HEAL:
        return counts
    if isinstance(step, str):
        return {step: 1}
    if step[0] in ("mark", "after"):
        return order_ops(step[2])
    for s in step[1]:
        for op, n in order_ops(s).items():
            counts[op] = counts.get(op, 0) + n
    return counts


def critical_path(step, latency, heal_s, start=(0.0, []), marks=None):
    """(seconds, [operations]) of the longest chain through `step`, from the
    order's beginning (`start` is what precedes the step)."""
    marks = {} if marks is None else marks
    t, path = start
    if step == HEAL:
        return t + heal_s, path + [HEAL_LABEL]
    if isinstance(step, str):
        return t + latency[step], path + [step]
    if step[0] == "mark":
        marks[step[1]] = critical_path(step[2], latency, heal_s, start, marks)
        return marks[step[1]]
    if step[0] == "after":
        begin = max([start] + [marks[n] for n in step[1]], key=lambda p: p[0])
        return critical_path(step[2], latency, heal_s, begin, marks)
    if step[0] == "seq":
        for s in step[1]:
            start = critical_path(s, latency, heal_s, start, marks)
        return start
    return max((critical_path(s, latency, heal_s, start, marks) for s in step[1]), key=lambda p: p[0])


def dag_critical_path(dag, latency, heal_s):
    memo = {}

    def longest(node):
        if node not in memo:
            op, deps = dag[node]
            own = heal_s if op == HEAL else latency[op]
            best = max((longest(d) for d in deps), key=lambda p: p[0], default=(0.0, []))
            memo[node] = (best[0] + own, best[1] + [HEAL_LABEL if op == HEAL else op])
        return memo[node]

    return max((longest(n) for n in dag), key=lambda p: p[0])


# --- the local AWS and Terraform ---------------------------------------------

# The local AWS's profile: `fast`, not its default `realistic` (pending instances, IAM
# propagation and the like): a benchmark comparing code paths keeps AWS's waits out.
PROFILE = "fast"


class StackAws(LocalAws):
    """bench-handler's local AWS (`python -m localaws` on a free port), with
    its logs cleared between commands."""

    def control(self, path, method="GET"):
        req = urllib.request.Request(f"{self.endpoint}/_localaws{path}", method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
        return json.loads(body) if body else None

    def clear_logs(self):
        for path in ("/calls", "/invocations", "/events"):
            self.control(path, "DELETE")


def clients(endpoint):
    import boto3

    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    return {name: session.client(name, endpoint_url=endpoint)
            for name in ("ec2", "autoscaling", "lambda", "events", "iam", "logs")}


def warm_up(c):
    """One read per service: moto initialises each service on its first request
    (up to ~1 s here), a cost AWS does not have."""
    c["ec2"].describe_vpcs()
    c["ec2"].describe_snapshots(OwnerIds=["self"])
    c["ec2"].describe_volumes()
    c["ec2"].describe_addresses()
    c["ec2"].describe_security_groups()
    c["ec2"].describe_launch_templates()
    c["autoscaling"].describe_auto_scaling_groups()
    c["lambda"].list_functions()
    c["events"].list_rules()
    c["iam"].list_roles()
    c["logs"].describe_log_groups()


def leftovers(c):
    """What is left after a destroy, by kind (final snapshots are kept on purpose)."""
    ec2 = c["ec2"]
    stack_filter = [{"Name": "tag-key", "Values": ["autoheal:stack"]}]
    live = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] not in ("terminated", "shutting-down")]
    return {
        "groups": len(c["autoscaling"].describe_auto_scaling_groups()["AutoScalingGroups"]),
        "instances": len(live),
        "functions": len(c["lambda"].list_functions()["Functions"]),
        "rules": len(c["events"].list_rules()["Rules"]),
        "roles": len(c["iam"].list_roles()["Roles"]),
        "log_groups": len(c["logs"].describe_log_groups()["logGroups"]),
        "vpcs": len(ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["false"]}])["Vpcs"]),
        "security_groups": len(ec2.describe_security_groups(Filters=stack_filter)["SecurityGroups"]),
        "launch_templates": len(ec2.describe_launch_templates()["LaunchTemplates"]),
        "volumes": len(ec2.describe_volumes(Filters=stack_filter)["Volumes"]),
        "addresses": len(ec2.describe_addresses()["Addresses"]),
        "final_snapshots": len(ec2.describe_snapshots(OwnerIds=["self"], Filters=stack_filter)["Snapshots"]),
    }


def run_terraform(tf, workdir, args, env, timeout, out_path):
    """Runs one Terraform command in its own session; on timeout interrupts it
    (Terraform then stops the provider), 30 s later kills the session.

    The exit is awaited in a blocking waitpid, the limits kept by timers:
    Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which added up to
    50 ms to each wall time (and to the time after the last AWS call)."""

    def signal_session(sig):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    with open(out_path, "wb") as out:
        started_epoch = time.time()
        started = time.monotonic()
        proc = subprocess.Popen([tf, *args], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = threading.Event()

        def interrupt():
            timed_out.set()
            signal_session(signal.SIGINT)

        timers = [threading.Timer(timeout, interrupt), threading.Timer(timeout + 30, signal_session,
                                                                       (signal.SIGKILL,))]
        for t in timers:
            t.daemon = True
            t.start()
        try:
            rc = proc.wait()
            wall = time.monotonic() - started
            ended_epoch = time.time()
        finally:
            for t in timers:
                t.cancel()
            # Whatever is left in Terraform's session (a provider it could not
            # stop, or everything if we are being stopped ourselves).
            signal_session(signal.SIGKILL)
    with open(out_path, "rb") as f:
        tail = f.read().decode(errors="replace").splitlines()[-40:]
    return {"rc": rc, "timed_out": timed_out.is_set(), "wall_s": wall, "t_start": started_epoch,
            "t_end": ended_epoch, "output_tail": tail}


def state_stacks(workdir):
    """name -> instance_id of the autoheal_instance objects in terraform.tfstate."""
    path = os.path.join(workdir, "terraform.tfstate")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        state = json.load(f)
    out = {}
    for r in state.get("resources", []):
        if r.get("type") == "autoheal_instance":
            for inst in r.get("instances", []):
                attrs = inst.get("attributes", {})
                out[attrs.get("name")] = attrs.get("instance_id")
    return out


TFLOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(\w+)\]\s+(.*)$")
# Terraform's request lines: "GRPCProvider.v6: ConfigureProvider" (protocol 6) or
# "GRPCProvider: ConfigureProvider" (protocol 5).
REQUEST = re.compile(r"^GRPCProvider(?:\.v\d)?: (\w+)$")
# The provider's line for each AWS call it made: "AWS call: ... op=ec2:DescribeVolumes ... poll=2"
# (go-plugin relays the fields of the provider's JSON line as key=value).
AWS_CALL_OP = re.compile(r"\bop=\"?[\w-]+:(\w+)")
AWS_CALL_POLL = re.compile(r"\bpoll=(\d+)")


def parse_tflog(path):
    """From one command's TF_LOG=TRACE log (Terraform's lines and the provider's, which
    go-plugin relays): each provider process Terraform started, with the times that
    bound its start, its schema and its configuration, and the requests that make AWS
    calls. Timestamps are Terraform's, to the millisecond."""
    marks = {"plugin_starts": [], "plugin_exits": [], "read": [], "apply": [], "op_begin": [], "op_end": [],
             "aws_calls": 0, "polls": []}
    procs = []
    overlap = False
    mtls = None  # the last "configuring client automatic mTLS" not yet followed by a start
    if not os.path.exists(path):  # Terraform failed before it logged anything
        marks.update(procs=procs, overlap=overlap)
        return marks
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = TFLOG_LINE.match(line.rstrip("\n"))
            if not m:
                continue  # a continuation of a multi-line entry
            t, msg = epoch(m.group(1)), m.group(3)
            cur = procs[-1] if procs and procs[-1]["exit"] is None else None
            if msg.startswith("provider.terraform-provider-"):
                # The provider's own line, relayed by go-plugin.
                if ": AWS call" in msg:
                    # One per call the provider makes (context.rs, debug level), with the
                    # wait's poll it belongs to (0: not in a wait).
                    op, poll = AWS_CALL_OP.search(msg), AWS_CALL_POLL.search(msg)
                    marks["aws_calls"] += 1
                    if op and poll and int(poll.group(1)) >= 2:
                        marks["polls"].append(op.group(1))
                    continue
                if "provider configured" in msg and cur and cur["configure"] and cur["configured"] is None:
                    cur["configured"] = t
                for key, text in (("op_begin", "creating the stack"), ("op_begin", "destroying the stack"),
                                  ("op_end", "stack created"), ("op_end", "stack destroyed")):
                    if f": {text}" in msg:
                        marks[key].append(t)
                continue
            if msg.startswith("provider: configuring client automatic mTLS"):
                mtls = t
            elif msg.startswith("provider: starting plugin:"):
                if cur:
                    overlap = True
                marks["plugin_starts"].append(t)
                procs.append({"start": t, "mtls": mtls, "using": None, "first_request": None,
                              "schema": None, "schema_end": None, "configure": None,
                              "configured": None, "close": None, "exit": None, "requests": 0,
                              "last": None})
                mtls = None
            elif msg.startswith("provider: using plugin:") and cur:
                cur["using"] = t
            elif msg.startswith("provider: plugin exited") and cur:
                cur["exit"] = t
                marks["plugin_exits"].append(t)
            elif msg.startswith("No provider meta schema returned") and cur \
                    and cur["schema"] is not None and cur["schema_end"] is None:
                cur["schema_end"] = t
            else:
                r = REQUEST.match(msg)
                if not (r and cur):
                    continue
                req = r.group(1)
                cur["requests"] += 1
                if cur["first_request"] is None:
                    cur["first_request"] = t
                if req == "GetProviderSchema":
                    if cur["schema"] is None:
                        cur["schema"] = t
                    continue  # later ones are answered from Terraform's cache
                if cur["schema"] is not None and cur["schema_end"] is None:
                    # No meta-schema line (a provider that has one): the next request ends it.
                    cur["schema_end"] = t
                if req == "ConfigureProvider" and cur["configure"] is None:
                    # From the check of the provider block that comes right before it.
                    prev = cur["last"]
                    cur["configure"] = prev[1] if prev and prev[0] == "ValidateProviderConfig" else t
                elif req == "Close":
                    cur["close"] = t
                elif req == "ReadResource":
                    marks["read"].append(t)
                elif req == "ApplyResourceChange":
                    marks["apply"].append(t)
                cur["last"] = (req, t)
    marks["procs"] = procs
    marks["overlap"] = overlap
    return marks


def one_run(args, n, run_index, work, tf_log=True):
    """apply + destroy of N stacks against a fresh local AWS. With `tf_log`
    (every timed run), Terraform logs at TRACE level to a file, the provider's
    lines included: the provider's starts and configuration are measured apart
    from Terraform's own time in the same run. Without it: the run that shows
    what the logging costs."""
    width = max(2, len(str(n)))
    names = [f"b{i:0{width}d}" for i in range(1, n + 1)]
    workdir = os.path.join(work, f"n{n}-{'run' if tf_log else 'nolog'}{run_index}")
    os.makedirs(workdir)
    shutil.copy(os.path.join(args.fixture, "main.tf"), workdir)
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "TF_LOG")) and k not in ("TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR")}
    base_env.update({
        "TF_CLI_CONFIG_FILE": args.terraformrc, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
        "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    })
    init = subprocess.run([args.terraform, "init", "-input=false", "-no-color"], cwd=workdir, env=base_env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    if init.returncode != 0:
        raise SystemExit(f"terraform init failed in {workdir}:\n{init.stdout.decode()}{init.stderr.decode()}")
    # The provider gives up by itself a minute before we would kill Terraform,
    # so a stuck wait ends with its own diagnostic (what it was waiting for).
    create_timeout = max(60, int(args.timeout) - 60)
    tf_vars = ["-var", "names=[" + ",".join(f'"{x}"' for x in names) + "]",
               "-var", f"lifecycle_hook_timeout={args.hook_timeout}",
               "-var", f"create_timeout={create_timeout}s"]
    result = {"n": n, "run": run_index, "names": names}
    aws = StackAws(args.python, args.local_aws, args.clock_scale, os.path.join(workdir, "localaws.log"), PROFILE)
    try:
        env = dict(base_env, AWS_ENDPOINT_URL=aws.endpoint)
        c = clients(aws.endpoint)
        warm_up(c)
        result["warmup_calls"] = aws.control("/calls")
        for phase, command in (("apply", "apply"), ("destroy", "destroy")):
            aws.clear_logs()
            log(f"N={n} {'run' if tf_log else 'run without logging'} {run_index}: terraform {command}")
            tflog_path = os.path.join(workdir, f"{phase}.tflog")
            cmd_env = dict(env, TF_LOG="TRACE", TF_LOG_PATH=tflog_path) if tf_log else env
            r = run_terraform(args.terraform, workdir,
                              [command, "-auto-approve", "-input=false", "-no-color", *tf_vars],
                              cmd_env, args.timeout, os.path.join(workdir, f"{phase}.log"))
            if tf_log:
                r["tflog"] = parse_tflog(tflog_path)
            r["calls"] = aws.control("/calls")
            r["invocations"] = aws.control("/invocations")
            r["state"] = state_stacks(workdir)
            result[phase] = r
            status = "timed out" if r["timed_out"] else f"exit {r['rc']}"
            log(f"N={n} run {run_index}: {command} {status} after {r['wall_s']:.1f}s, {len(r['calls'])} calls")
            if phase == "apply" and (r["rc"] != 0 or len(r["state"]) != n
                                     or not all(r["state"].values())):
                log(f"N={n} run {run_index}: the apply did not create {n} served stacks; destroying anyway")
        result["leftovers"] = leftovers(c)
    finally:
        aws.stop()
    return result


def stop_on_sigterm(signum, frame):
    # tools/bench-stack's overall timeout: unwind, so that the finally blocks
    # stop Terraform and the local AWS instead of leaving them running.
    raise SystemExit(f"stopped by signal {signum}")


def run(args):
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {"sizes": sizes, "profile": PROFILE, "clock_scale": args.clock_scale,
               "hook_timeout": args.hook_timeout, "timeout": args.timeout, "runs": []}
    for n in sizes:
        reps = args.runs if n <= args.large_above else args.large_runs
        for i in range(1, reps + 1):
            results["runs"].append(one_run(args, n, i, args.work))
    # What the logging costs: one run of the smallest size without it.
    results["nolog_run"] = one_run(args, sizes[0], 1, args.work, tf_log=False)
    json.dump(results, sys.stdout)


# --- analysis ------------------------------------------------------------------


def call_span(call):
    end = epoch(call["time"])
    return end - call["duration_ms"] / 1000.0, end


def split_handler_calls(calls):
    """(provider's calls, Lambda's calls) of one apply.

    Handler-only operations are the Lambda's. DescribeVolumes/DescribeAddresses
    are the Lambda's when they name a volume or address the Lambda attached or
    associated for a group, and fall between that group's scale-up
    (UpdateAutoScalingGroup to 1 answered) and the start of its successful
    CompleteLifecycleAction: the provider only polls the group then (its
    instance is not InService before the lifecycle action is completed)."""
    group_of_instance = {}
    window = {}
    for c in calls:
        p = c["params"]
        if c["operation"] == "UpdateAutoScalingGroup" and str(p.get("MinSize")) not in ("", "0", "None"):
            window.setdefault(p.get("AutoScalingGroupName"), [None, None])[0] = call_span(c)[1]
        if c["operation"] == "CompleteLifecycleAction" and c["status"] < 400 \
                and p.get("LifecycleActionResult") == "CONTINUE":
            group_of_instance[p.get("InstanceId")] = p.get("AutoScalingGroupName")
            window.setdefault(p.get("AutoScalingGroupName"), [None, None])[1] = call_span(c)[0]
    group_of = {}
    for c in calls:
        p = c["params"]
        if c["operation"] == "AttachVolume":
            group_of[("vol", p.get("VolumeId"))] = group_of_instance.get(p.get("InstanceId"))
        if c["operation"] == "AssociateAddress":
            group_of[("eip", p.get("AllocationId"))] = group_of_instance.get(p.get("InstanceId"))
    provider, handler = [], []
    for c in calls:
        op = c["operation"]
        mine = op in HANDLER_OPS
        if op in SHARED_OPS:
            key = ("vol", (c["params"].get("VolumeId") or [None])[0]) if op == "DescribeVolumes" \
                else ("eip", (c["params"].get("AllocationId") or [None])[0])
            w = window.get(group_of.get(key))
            if w and w[0] is not None and w[1] is not None:
                start, end = call_span(c)
                mine = start >= w[0] - TOLERANCE_S and end <= w[1] + TOLERANCE_S
        (handler if mine else provider).append(c)
    return provider, handler


def heal_segments(apply):
    """Per group: scale-up answered -> invocation started -> CONTINUE answered,
    and the provider's next look at the group."""
    calls = apply["calls"]
    ups, completes, looks = {}, {}, {}
    for c in calls:
        p = c["params"]
        g = p.get("AutoScalingGroupName")
        if c["operation"] == "UpdateAutoScalingGroup" and str(p.get("MinSize")) not in ("", "0", "None"):
            ups[g] = call_span(c)[1]
        if c["operation"] == "CompleteLifecycleAction" and c["status"] < 400 \
                and p.get("LifecycleActionResult") == "CONTINUE":
            completes[g] = call_span(c)[1]
    for c in calls:
        if c["operation"] == "DescribeAutoScalingGroups":
            for g in c["params"].get("AutoScalingGroupNames") or []:
                start = call_span(c)[0]
                if g in completes and start >= completes[g] - TOLERANCE_S and g not in looks:
                    looks[g] = start
    started = {}
    for inv in apply["invocations"]:
        g = inv["function"][:-len("-attach")] + "-asg" if inv["function"].endswith("-attach") else None
        if g and inv.get("started"):
            started[g] = min(started.get(g, math.inf), epoch(inv["started"]))
    out = []
    for g, up in ups.items():
        if g not in completes:
            continue
        out.append({
            "group": g,
            "heal_s": completes[g] - up,
            "to_invocation_s": (started[g] - up) if g in started else None,
            "lambda_s": (completes[g] - started[g]) if g in started else None,
            "seen_after_s": (looks[g] - completes[g]) if g in looks else None,
            "attempts": sum(1 for inv in apply["invocations"] if inv["function"] == g[:-4] + "-attach"),
        })
    return out


def match_order(step, calls, ready, used, out, path=(), marks=None):
    """Matches the order against one stack's calls: each operation takes the
    earliest unused call of its kind that starts once its dependencies ended.
    Appends (kind, op, ready, start, end) for each step to `out`; returns the
    end time and the path [(entry)] of the latest-ending chain from the order's
    beginning (`path` is the chain that leads to this step)."""
    marks = {} if marks is None else marks
    path = list(path)
    if step == HEAL:
        ends = [call_span(c)[1] for c in calls if c["operation"] == "CompleteLifecycleAction"
                and c["status"] < 400 and c["params"].get("LifecycleActionResult") == "CONTINUE"
                and call_span(c)[1] >= ready]
        end = min(ends) if ends else ready
        entry = {"op": HEAL_LABEL, "ready": ready, "start": ready, "end": end, "found": bool(ends)}
        out.append(entry)
        return end, path + [entry]
    if isinstance(step, str):
        best = None
        for i, c in enumerate(calls):
            if i in used or c["operation"] != step:
                continue
            start, end = call_span(c)
            if start >= ready - TOLERANCE_S and (best is None or start < best[1]):
                best = (i, start, end)
        if best is None:
            entry = {"op": step, "ready": ready, "start": ready, "end": ready, "found": False}
        else:
            used.add(best[0])
            entry = {"op": step, "ready": ready, "start": best[1], "end": best[2], "found": True}
        out.append(entry)
        return entry["end"], path + [entry]
    if step[0] == "mark":
        marks[step[1]] = match_order(step[2], calls, ready, used, out, path, marks)
        return marks[step[1]]
    if step[0] == "after":
        ready, path = max([(ready, path)] + [marks[n] for n in step[1]], key=lambda r: r[0])
        return match_order(step[2], calls, ready, used, out, path, marks)
    if step[0] == "seq":
        for s in step[1]:
            ready, path = match_order(s, calls, ready, used, out, path, marks)
        return ready, path
    results = [match_order(s, calls, ready, used, out, path, marks) for s in step[1]]
    return max(results, key=lambda r: r[0])


def timeline(phase, order, provider_calls, all_calls):
    """The order matched against the calls of one N=1 command, with the time
    from Terraform's start to its exit split along the latest-ending chain."""
    entries = []
    end, path = match_order(order, all_calls if order is CREATE_ORDER else provider_calls,
                            phase["t_start"], set(), entries)
    missing = [e["op"] for e in entries if not e["found"]]
    known = set(order_ops(order)) | CONDITIONAL_OPS
    drift = sorted({c["operation"] for c in provider_calls} - known)
    segments = []
    prev = None
    for e in path:
        gap = e["start"] - e["ready"]
        if prev is None:
            label = f"Terraform before the first AWS call ({e['op']})"
        elif order is DESTROY_ORDER and prev["op"] == REFRESH_LAST_OP:
            label = f"Terraform between the refresh and the destroy ({prev['op']} → {e['op']})"
        else:
            extra = sum(1 for c in all_calls if c["operation"] == prev["op"]
                        and prev["end"] + TOLERANCE_S < call_span(c)[0] < e["start"])
            label = f"{prev['op']} → {e['op']}" + (f" (incl. {extra} more {prev['op']})" if extra else "")
        segments.append({"kind": "gap", "label": label, "s": gap, "t0": e["ready"], "t1": e["start"]})
        segments.append({"kind": "heal" if e["op"] == HEAL_LABEL else "call", "label": e["op"],
                         "s": e["end"] - e["start"], "t0": e["start"], "t1": e["end"]})
        prev = e
    segments.append({"kind": "gap", "label": "Terraform after the last AWS call", "s": phase["t_end"] - end,
                     "t0": end, "t1": phase["t_end"]})
    return {"segments": segments, "missing": missing, "drift": drift,
            "order_violations": [e["op"] for e in entries if e["found"] and e["start"] < e["ready"] - TOLERANCE_S]}


def handler_steps(runs):
    """The median of each step the handler reports in its response (stepsMs)."""
    steps = {}
    for r in runs:
        for inv in r["apply"]["invocations"]:
            try:
                reported = json.loads(inv.get("response") or "{}").get("stepsMs") or {}
            except (ValueError, AttributeError):
                continue
            for step, ms in reported.items():
                steps.setdefault(step, []).append(ms / 1000.0)
    if not steps:
        return "not reported"
    return ", ".join(f"{step} {fmt_ms(statistics.median(v))}" for step, v in sorted(steps.items()))


def gap_cause(label):
    """What a gap between two calls on the chain usually is, when the order says."""
    if label.startswith(HEAL_LABEL):
        return " (the provider's wait for InService polls with a back-off growing by half from 100 ms)"
    if "more " in label:
        return " (a wait that polled again after a back-off sleep)"
    return ""


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def pct(values, q):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def fmt_s(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f} s"


def fmt_ms(v):
    return "–" if v is None else f"{v * 1000:.0f} ms"


def fmt_x(v):
    return "–" if v is None else f"{v:.2f}x"


def max_in_flight(calls):
    events = []
    for c in calls:
        s, e = call_span(c)
        events += [(s, 1), (e, -1)]
    depth = best = 0
    for _, d in sorted(events, key=lambda x: (x[0], x[1])):
        depth += d
        best = max(best, depth)
    return best


def analyse(results):
    by_n = {}
    for r in results["runs"]:
        a = r["apply"]
        provider, handler = split_handler_calls(a["calls"])
        r["apply_provider"], r["apply_handler"] = provider, handler
        r["heals"] = heal_segments(a)
        ok = (a["rc"] == 0 and not a["timed_out"] and len(a["state"]) == r["n"] and all(a["state"].values())
              and r["destroy"]["rc"] == 0 and not r["destroy"]["timed_out"] and not r["destroy"]["state"])
        r["ok"] = ok
        by_n.setdefault(r["n"], []).append(r)
    return by_n


# --- the provider's starts and configuration, from Terraform's log -------------

# The intervals counted as the provider's, per process (see provider_parts).
COUNTED = ("exec", "connect", "schema", "configure")


def union(intervals):
    """The intervals merged, sorted: [(t0, t1)]."""
    out = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def within(intervals, windows):
    """Seconds of the intervals' union that fall in the (disjoint) windows."""
    return sum(max(0.0, min(b, wb) - max(a, wa)) for a, b in union(intervals) for wa, wb in windows)


def provider_parts(tflog):
    """Per kind, the intervals of every provider process of one command (parse_tflog):
    counted as the provider's start and configuration:
      exec       `starting plugin` -> `using plugin` (its handshake line read)
      connect    `using plugin` -> Terraform's first request (the mTLS gRPC connection)
      schema     its first GetProviderSchema -> `No provider meta schema returned`
      configure  ValidateProviderConfig right before ConfigureProvider (else the latter)
                 -> the provider's `provider configured` line
    and not counted (Terraform's, or not a start or configuration):
      mtls       `configuring client automatic mTLS` -> `starting plugin` (Terraform's
                 client certificate for this start)
      stop       Close -> `plugin exited`"""
    parts = {k: [] for k in (*COUNTED, "mtls", "stop")}
    incomplete = 0
    for p in tflog["procs"]:
        first = p["first_request"]
        if p["using"] is not None:
            parts["exec"].append((p["start"], p["using"]))
            if first is not None:
                parts["connect"].append((p["using"], first))
        elif first is not None:
            parts["exec"].append((p["start"], first))
        if p["schema"] is not None and p["schema_end"] is not None:
            parts["schema"].append((p["schema"], p["schema_end"]))
        if p["configure"] is not None and p["configured"] is not None:
            parts["configure"].append((p["configure"], p["configured"]))
        if p["mtls"] is not None:
            parts["mtls"].append((p["mtls"], p["start"]))
        if p["close"] is not None and p["exit"] is not None:
            parts["stop"].append((p["close"], p["exit"]))
        if first is None or p["using"] is None or p["schema_end"] is None \
                or (p["configure"] is not None and p["configured"] is None):
            incomplete += 1
    return parts, incomplete


def no_call_time(tl):
    """Seconds of one command with no AWS call in flight along its chain: before the
    first call, after the last, and in the destroy between the refresh and the destroy."""
    return sum(s["s"] for s in tl["segments"] if s["kind"] == "gap" and s["label"].startswith("Terraform"))


def terraform_windows(tl):
    return [(s["t0"], s["t1"]) for s in tl["segments"]
            if s["kind"] == "gap" and s["label"].startswith("Terraform")]


def provider_share(phase, tl):
    """The provider's starts and configuration within the time with no AWS call in
    flight (the timeline's Terraform gaps) of one command."""
    parts, incomplete = provider_parts(phase["tflog"])
    windows = terraform_windows(tl)
    counted = [i for k in COUNTED for i in parts[k]]
    share = within(counted, windows)
    return {
        "starts": len(phase["tflog"]["procs"]),
        "configured": len(parts["configure"]),
        "s": share,
        "kinds": {k: within(v, windows) for k, v in parts.items()},
        "outside_s": sum(b - a for a, b in union(counted)) - share,
        "incomplete": incomplete,
        "overlap": phase["tflog"]["overlap"],
    }


def has_tflog(runs):
    return bool(runs) and all("tflog" in r["apply"] and "tflog" in r["destroy"] for r in runs)


def count_text(values):
    """`4`, or `4 (3–5)` when the runs differ: the median, and the range."""
    lo, hi, mid = min(values), max(values), median(values)
    mid = f"{mid:.0f}" if mid == int(mid) else f"{mid:.1f}"
    return mid + ("" if lo == hi else f" ({lo}–{hi})")


def provider_split(runs, tl_a, tl_d, share_a, share_d, med_i, nolog, w):
    """The section on the provider's starts and configuration, from the N=base runs' logs."""
    w("### The provider's starts and configuration, apart from Terraform's own time")
    w("")
    if not share_a:
        w("(The runs' Terraform logs are missing: the provider's starts and configuration are not measured "
          "apart, and the rows above count them in Terraform alone.)")
        w("")
        return
    w(f"Every Terraform command of every run above writes its log at `TF_LOG=TRACE` to a file "
      f"(`TF_LOG_PATH`); the provider's own lines (hclog-shaped JSON on its stderr) come through it. For each "
      f"provider process Terraform starts, these intervals are counted, each between two lines of that log "
      f"(Terraform's timestamps, to the millisecond):")
    w("")
    w("- start, exec → handshake: `provider: starting plugin` (logged just before Terraform executes the "
      "provider) → `provider: using plugin` (Terraform has read and accepted its handshake line);")
    w("- start, connection: `provider: using plugin` → Terraform's first request to that process (its first "
      "`GRPCProvider.v6: …` line): the mTLS gRPC connection, whose TLS handshake both sides work on;")
    w("- schema: the process's first `GRPCProvider.v6: GetProviderSchema` (later ones in the same process are "
      "answered from Terraform's cache) → `No provider meta schema returned` (Terraform has the answer);")
    w("- configuration: `GRPCProvider.v6: ValidateProviderConfig` right before `GRPCProvider.v6: "
      "ConfigureProvider` (or the latter) → the provider's `provider configured (…)` line, the last thing it "
      "does before it answers.")
    w("")
    w("Their union, within the time with no AWS call in flight along the chain (the windows the rows above "
      "call Terraform's), is the row \"the provider's starts and configuration\"; \"Terraform alone\" is that "
      "time less it. Not counted, so left in Terraform alone: Terraform making a client certificate for each "
      "start (`provider: configuring client automatic mTLS` → `provider: starting plugin`: go-plugin's "
      "AutoMTLS, the same for any provider); stopping each process (`GRPCProvider.v6: Close` → `provider: "
      "plugin exited`); and the provider's answers to the requests that make no AWS call "
      "(`ValidateProviderConfig` where no `ConfigureProvider` follows, `ValidateResourceConfig`, "
      "`UpgradeResourceState`, `PlanResourceChange`), which no line of either log ends.")
    w("")

    def med_of(shares, fn):
        return median([fn(x) for x in shares])

    w(f"| N={runs[0]['n']}, medians over the {len(runs)} runs | apply | destroy |")
    w("| --- | ---: | ---: |")
    w("| provider processes started; of them configured | "
      + " | ".join(f"{count_text([x['starts'] for x in sh])}; {count_text([x['configured'] for x in sh])}"
                   for sh in (share_a, share_d)) + " |")
    for key, label in (("exec", "start: exec → handshake"), ("connect", "start: connection"),
                       ("schema", "schema (GetProviderSchema)"),
                       ("configure", "configuration (ValidateProviderConfig, ConfigureProvider)")):
        w(f"| {label} | {fmt_ms(med_of(share_a, lambda x: x['kinds'][key]))} "
          f"| {fmt_ms(med_of(share_d, lambda x: x['kinds'][key]))} |")
    w(f"| **counted: the provider's starts and configuration** (their union) "
      f"| **{fmt_ms(med_of(share_a, lambda x: x['s']))}** | **{fmt_ms(med_of(share_d, lambda x: x['s']))}** |")
    w(f"| not counted: Terraform's client certificates, one per start "
      f"| {fmt_ms(med_of(share_a, lambda x: x['kinds']['mtls']))} "
      f"| {fmt_ms(med_of(share_d, lambda x: x['kinds']['mtls']))} |")
    w(f"| not counted: stopping the processes | {fmt_ms(med_of(share_a, lambda x: x['kinds']['stop']))} "
      f"| {fmt_ms(med_of(share_d, lambda x: x['kinds']['stop']))} |")
    w(f"| the time with no AWS call in flight they are measured in "
      f"| {fmt_ms(median([no_call_time(t) for t in tl_a]))} | {fmt_ms(median([no_call_time(t) for t in tl_d]))} |")
    w(f"| **Terraform alone** (that less the counted) "
      f"| **{fmt_ms(median([no_call_time(t) - x['s'] for t, x in zip(tl_a, share_a)]))}** "
      f"| **{fmt_ms(median([no_call_time(t) - x['s'] for t, x in zip(tl_d, share_d)]))}** |")
    w("")
    notes = []
    outside = max(x["outside_s"] for x in share_a + share_d)
    if outside > 0.0005:
        notes.append(f"**counted intervals outside the time with no AWS call in flight (not subtracted): up to "
                     f"{fmt_ms(outside)} in a command**")
    incomplete = sum(x["incomplete"] for x in share_a + share_d)
    if incomplete:
        notes.append(f"**{incomplete} provider process(es) lack one of the lines above: their missing "
                     f"intervals are not counted**")
    if any(x["overlap"] for x in share_a + share_d):
        notes.append("**a provider process started while another was alive: requests were attributed to the "
                     "newest**")
    if notes:
        w("Caveats: " + "; ".join(notes) + ".")
        w("")

    # The run with the median apply wall time, request by request.
    r = runs[med_i]
    a, d = r["apply"], r["destroy"]
    ma, md = a["tflog"], d["tflog"]
    if ma["apply"] and ma["op_end"] and md["read"] and md["apply"] and md["op_end"]:
        provider_a, _ = split_handler_calls(a["calls"])
        spans_a = [call_span(c) for c in provider_a]
        spans_d = [call_span(c) for c in d["calls"]]
        a_rpc, d_read, d_rpc = ma["apply"][0], md["read"][0], md["apply"][0]
        refresh_end = max((e for s_, e in spans_d if e <= d_rpc), default=d_read)
        first_delete = min((s_ for s_, e in spans_d if s_ >= d_rpc), default=d_rpc)

        def starts(m, before):
            return sum(1 for t in m["plugin_starts"] if t <= before)

        w(f"In the run with the median apply wall time (apply {a['wall_s']:.2f} s, destroy {d['wall_s']:.2f} s):")
        w("")
        w(f"- apply: Terraform starts the provider {starts(ma, a_rpc)} times before it sends "
          f"`ApplyResourceChange`, {fmt_ms(a_rpc - a['t_start'])} after its own start; the provider's first AWS "
          f"call starts {fmt_ms(min(s_ for s_, e in spans_a) - a_rpc)} after that request; its last ends "
          f"{fmt_ms(ma['op_end'][0] - max(e for s_, e in spans_a))} before it logs the stack created; Terraform "
          f"exits {fmt_ms(a['t_end'] - ma['op_end'][0])} later.")
        w(f"- destroy: Terraform starts the provider {starts(md, d_read)} times before the refresh's "
          f"`ReadResource`, {fmt_ms(d_read - d['t_start'])} after its own start (first AWS call "
          f"{fmt_ms(min(s_ for s_, e in spans_d) - d_read)} later); from the refresh's last call to "
          f"`ApplyResourceChange` {fmt_ms(d_rpc - refresh_end)} (Terraform plans the destroy and starts the "
          f"provider {starts(md, d_rpc) - starts(md, d_read)} more time(s)); the first delete call starts "
          f"{fmt_ms(first_delete - d_rpc)} after that request; the last call ends "
          f"{fmt_ms(md['op_end'][0] - max(e for s_, e in spans_d))} before the provider logs the stack "
          f"destroyed; Terraform exits {fmt_ms(d['t_end'] - md['op_end'][0])} later.")
        w("")
    if nolog and nolog["apply"]["rc"] == 0 and nolog["destroy"]["rc"] == 0:
        def against(phase):
            walls = [x[phase]["wall_s"] for x in runs]
            v = nolog[phase]["wall_s"]
            where = "within" if min(walls) <= v <= max(walls) else ("below" if v < min(walls) else "above")
            return (f"{phase} {v:.2f} s ({where} the logged runs' {min(walls):.2f}–{max(walls):.2f} s, median "
                    f"{median(walls):.2f} s)")
        w(f"What the logging costs: one N={nolog['n']} run without it, run last, took {against('apply')} and "
          f"{against('destroy')}; one run, so an indication only.")
    else:
        w("(The run without logging failed: what the logging costs is not shown.)")
    w("")


def report(args):
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    by_n = analyse(results)
    sizes = sorted(by_n)
    base = sizes[0]
    runs_1 = by_n[base]
    lines = []
    w = lines.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scale = results["clock_scale"]
    w("## Stack benchmark: `terraform apply` and `destroy` of N autoheal_instance stacks on the local AWS")
    w("")
    w(f"Produced by `{args.command}` on {now}, at commit {args.git}.")
    w("")
    w(f"- Machine: {os.cpu_count()} CPUs, {args.cpu}, Linux {os.uname().release}; load average "
      f"{args.loadavg} when the run started (the machine may be shared).")
    w(f"- Terraform v{args.terraform_version} (`{args.terraform}`), default `-parallelism=10`; "
      f"provider autoheal {args.provider_version} (sha256 {args.provider_sha[:12]}…, copied to a private "
      f"mirror for the run), handler zip embedded in it.")
    w(f"- One fresh local AWS per run (`terraform-tests/local_aws`, profile `{results.get('profile', '?')}`, not "
      f"its default `realistic`: a benchmark comparing code paths keeps AWS's emulated waits, such as pending "
      f"instances and IAM propagation, out; clock scale {scale}: emulated AWS delays "
      f"are {1 / scale:.0f} times shorter), warmed with one read per service before timing "
      f"(moto initialises a service on its first request: up to "
      f"{max(c['duration_ms'] for r in results['runs'] for c in r['warmup_calls']):.0f} ms here; "
      f"AWS has no such cost).")
    w(f"- Configuration: `terraform-tests/fixtures/stack` (one `autoheal_instance` per name, each with its own "
      f"VPC; defaults otherwise) with `lifecycle_hook_timeout = {results['hook_timeout']}`: at this clock "
      f"scale the default 300 s hook would time out after {300 * scale:.0f} real seconds, less than a heal "
      f"takes when 10 Lambdas start at once on this machine (a first run with the default abandoned "
      f"instances at N=50).")
    w(f"- Runs: {', '.join(f'N={n}: {len(by_n[n])}' for n in sizes)}; each run is apply then destroy on "
      f"its own local AWS; medians over runs. Every Terraform command is bounded by "
      f"{results['timeout']:.0f} s (the provider's create timeout is set a minute shorter)"
      + (f" and writes its log at `TF_LOG=TRACE` to a file, from which the provider's starts and configuration "
         f"are measured apart (below); one more N={base} run without logging shows what the logging costs."
         if has_tflog(runs_1) else "."))
    failed = [r for r in results["runs"] if not r["ok"]]
    if failed:
        w(f"- **{len(failed)} run(s) failed** (not counted below): "
          + "; ".join(f"N={r['n']} run {r['run']}: apply exit {r['apply']['rc']}"
                      f"{' (timed out)' if r['apply']['timed_out'] else ''}, "
                      f"{len(r['apply']['state'])} stacks in state, destroy exit {r['destroy']['rc']}"
                      for r in failed))
    w("")

    good = {n: [r for r in by_n[n] if r["ok"]] for n in sizes}
    if not good[base]:
        w(f"No successful N={base} run: nothing to report.")
        print("\n".join(lines))
        return

    def med(n, fn):
        return median([fn(r) for r in good[n]])

    wall_a = {n: med(n, lambda r: r["apply"]["wall_s"]) for n in sizes if good[n]}
    wall_d = {n: med(n, lambda r: r["destroy"]["wall_s"]) for n in sizes if good[n]}
    prov_a = {n: med(n, lambda r: len(r["apply_provider"])) for n in sizes if good[n]}
    hand_a = {n: med(n, lambda r: len(r["apply_handler"])) for n in sizes if good[n]}
    calls_d = {n: med(n, lambda r: len(r["destroy"]["calls"])) for n in sizes if good[n]}

    # A wait's second and later polls, from the provider's own log of each call (none without
    # the Terraform log): reported apart, the rest is what every stack costs.
    def polls(r, phase):
        return len(r[phase].get("tflog", {}).get("polls", []))

    logged_all = all(has_tflog(good[n]) for n in sizes if good[n])
    polls_a = {n: med(n, lambda r: polls(r, "apply")) for n in sizes if good[n]}
    polls_d = {n: med(n, lambda r: polls(r, "destroy")) for n in sizes if good[n]}
    fixed_a = {n: med(n, lambda r: len(r["apply_provider"]) - polls(r, "apply")) for n in sizes if good[n]}
    fixed_d = {n: med(n, lambda r: len(r["destroy"]["calls"]) - polls(r, "destroy")) for n in sizes if good[n]}

    # --- the floor (N = base) ---
    # Per command: the same operation can cost differently in each (DescribeSnapshots
    # filters every snapshot of the account in the apply, names one in the destroy).
    def medians(calls_of, order):
        seen = {}
        for r in good[base]:
            for c in calls_of(r):
                seen.setdefault(c["operation"], []).append(c["duration_ms"] / 1000.0)
        out = {op: statistics.median(v) for op, v in seen.items()}
        for op in order_ops(order):
            out.setdefault(op, 0.0)  # never called: reported as missing below
        return out

    lat_a = medians(lambda r: r["apply_provider"], CREATE_ORDER)
    lat_d = medians(lambda r: r["destroy"]["calls"], DESTROY_ORDER)
    heals_1 = [h for r in good[base] for h in r["heals"]]
    heal_s = median([h["heal_s"] for h in heals_1])
    floor_a, chain_a = critical_path(CREATE_ORDER, lat_a, heal_s)
    floor_d, chain_d = critical_path(DESTROY_ORDER, lat_d, 0.0)
    min_a, min_chain_a = dag_critical_path(MIN_CREATE, lat_a, heal_s)
    min_d, min_chain_d = dag_critical_path(MIN_DESTROY, lat_d, 0.0)

    # Timelines of the N=1 runs; the median-wall run's is shown.
    tl_a = [timeline(r["apply"], CREATE_ORDER, r["apply_provider"], r["apply"]["calls"]) for r in good[base]]
    tl_d = [timeline(r["destroy"], DESTROY_ORDER, r["destroy"]["calls"], r["destroy"]["calls"])
            for r in good[base]]

    # The time with no AWS call in flight, split into the provider's starts and configuration
    # (from each run's Terraform log) and Terraform alone.
    logged = has_tflog(good[base])
    share_a = [provider_share(r["apply"], t) for r, t in zip(good[base], tl_a)] if logged else []
    share_d = [provider_share(r["destroy"], t) for r, t in zip(good[base], tl_d)] if logged else []
    nocall_a = median([no_call_time(t) for t in tl_a])
    nocall_d = median([no_call_time(t) for t in tl_d])
    if logged:
        pshare_a = median([x["s"] for x in share_a])
        pshare_d = median([x["s"] for x in share_d])
        tf_a = median([no_call_time(t) - x["s"] for t, x in zip(tl_a, share_a)])
        tf_d = median([no_call_time(t) - x["s"] for t, x in zip(tl_d, share_d)])
    else:
        pshare_a = pshare_d = None
        tf_a, tf_d = nocall_a, nocall_d
    # The headline: against the strict floor, the chain only AWS's own dependencies (and the
    # pattern's "nothing launches before hook, rule, target, permission and function") make
    # sequential. The provider's own order of calls is a floor of its own making, shown beside.
    ratio_a, ratio_d = wall_a[base] / min_a, wall_d[base] / min_d
    order_ratio_a, order_ratio_d = wall_a[base] / floor_a, wall_d[base] / floor_d
    prov_ratio_a = (wall_a[base] - tf_a) / min_a
    prov_ratio_d = (wall_d[base] - tf_d) / min_d

    met = []
    w("### Results")
    w("")
    w("| N | apply wall | destroy wall | provider calls per apply (per stack) | of them polls (per stack) "
      "| Lambda calls per apply (per stack) | calls per destroy (per stack) | of them polls (per stack) "
      "| apply wall per stack vs N=1 | destroy wall per stack vs N=1 |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        if not good[n]:
            w(f"| {n} | failed | | | | | | | | |")
            continue
        spread = "" if len(good[n]) == 1 else \
            f" ({min(r['apply']['wall_s'] for r in good[n]):.2f}–{max(r['apply']['wall_s'] for r in good[n]):.2f})"
        spread_d = "" if len(good[n]) == 1 else \
            f" ({min(r['destroy']['wall_s'] for r in good[n]):.2f}–{max(r['destroy']['wall_s'] for r in good[n]):.2f})"
        pa = f"{polls_a[n]:.0f} ({polls_a[n] / n:.1f})" if logged_all else "not logged"
        pd = f"{polls_d[n]:.0f} ({polls_d[n] / n:.1f})" if logged_all else "not logged"
        w(f"| {n} | {wall_a[n]:.2f} s{spread} | {wall_d[n]:.2f} s{spread_d} | {prov_a[n]:.0f} ({prov_a[n] / n:.1f}) "
          f"| {pa} | {hand_a[n]:.0f} ({hand_a[n] / n:.1f}) | {calls_d[n]:.0f} ({calls_d[n] / n:.1f}) | {pd} "
          f"| {wall_a[n] / n / wall_a[base]:.2f}x | {wall_d[n] / n / wall_d[base]:.2f}x |")
    w("")
    w("Polls: the calls a wait makes after its first poll (the provider logs each AWS call with the poll of its "
      "wait, `AWS call … poll=N`, at debug level; counted from the Terraform log of each run). How many a wait "
      "needs depends on how long AWS takes, not on the provider's work per stack.")
    w("")
    w(f"Critical-path floor, N={base}: the strict floor is the longest chain that only AWS's own "
      f"dependencies make sequential (ids, attachments, and the pattern's rule that nothing launches before "
      f"the hook, rule, target, permission, policy and an Active function with its event-invoke "
      f"configuration); the provider's own order of calls "
      f"is a floor of its own making, shown beside it. Per-call latency = median server-side duration of "
      f"that operation in the N={base} runs.")
    w("")
    w("| | apply | destroy | target | met? |")
    w("| --- | ---: | ---: | --- | --- |")
    n_calls_a = sum(1 for op in chain_a if op != HEAL_LABEL)
    n_calls_d = len(chain_d)
    w(f"| **strict floor** (AWS's dependencies only) | **{fmt_ms(min_a)}** ({len(min_chain_a) - 1} calls + "
      f"the heal) | **{fmt_ms(min_d)}** ({len(min_chain_d)} calls) | | |")
    w(f"| the heal in it (scale-up answered → CONTINUE answered), median | {fmt_ms(heal_s)} | – | | |")
    w(f"| wall time, median | {fmt_ms(wall_a[base])} | {fmt_ms(wall_d[base])} | | |")
    ok_a, ok_d = ratio_a <= 2.0, ratio_d <= 2.0
    met += [ok_a, ok_d]
    w(f"| **wall / strict floor** | **{ratio_a:.2f}x** | **{ratio_d:.2f}x** | ≤ 2x | "
      f"{'yes' if ok_a and ok_d else ('apply only' if ok_a else ('destroy only' if ok_d else '**no**'))} |")
    w(f"| beside it: the provider's own order, longest chain | {fmt_ms(floor_a)} ({n_calls_a} calls + the heal) "
      f"| {fmt_ms(floor_d)} ({n_calls_d} calls) | | |")
    w(f"| wall / the provider's own order | {order_ratio_a:.2f}x | {order_ratio_d:.2f}x | | |")
    no_call = ("no AWS call in flight (before the first and after the last AWS call; in the destroy also "
               "between its refresh and its destroy)")
    if logged:
        starts_a = count_text([x["starts"] for x in share_a])
        starts_d = count_text([x["starts"] for x in share_d])
        w(f"| **Terraform alone**: {no_call}, less the provider's starts and configuration (next row), median "
          f"| {fmt_ms(tf_a)} | {fmt_ms(tf_d)} | | |")
        w(f"| the provider's starts and configuration in that time, measured apart from Terraform's log of the "
          f"same runs (below), median | {starts_a} starts, {fmt_ms(pshare_a)} | {starts_d} starts, "
          f"{fmt_ms(pshare_d)} | | |")
    else:
        w(f"| Terraform and the provider's processes with {no_call}, median; the provider's starts and "
          f"configuration are not measured apart (the runs have no Terraform log) | {fmt_ms(tf_a)} "
          f"| {fmt_ms(tf_d)} | | |")
    ok_pa, ok_pd = prov_ratio_a <= 1.5, prov_ratio_d <= 1.5
    met += [ok_pa, ok_pd]
    w(f"| **(wall − {'Terraform alone' if logged else 'that'}) / strict floor**: the provider's part | "
      f"**{prov_ratio_a:.2f}x** | **{prov_ratio_d:.2f}x** | ≤ 1.5x | "
      f"{'yes' if ok_pa and ok_pd else ('apply only' if ok_pa else ('destroy only' if ok_pd else '**no**'))} |")
    if logged:
        # What the provider's part is made of: its starts and configuration are in it.
        w(f"| the provider's part less its starts and configuration, / strict floor | "
          f"{(wall_a[base] - tf_a - pshare_a) / min_a:.2f}x | {(wall_d[base] - tf_d - pshare_d) / min_d:.2f}x "
          f"| | |")
    w("")
    # The verdict, from the run with the median apply wall time.
    med_i = sorted(range(len(good[base])), key=lambda i: good[base][i]["apply"]["wall_s"])[len(good[base]) // 2]
    for name, ratio, prov_ratio, tf, tls, shares in (("apply", ratio_a, prov_ratio_a, tf_a, tl_a, share_a),
                                                     ("destroy", ratio_d, prov_ratio_d, tf_d, tl_d, share_d)):
        if ratio <= 2.0:
            w(f"- {name}: within 2x of the strict floor ({ratio:.2f}x).")
            continue
        # The provider's own gaps on the chain, as a mean over the runs: a wait's
        # back-off lands differently in each run.
        gap_sum = {}
        for tl in tls:
            for seg in tl["segments"]:
                if seg["kind"] == "gap" and not seg["label"].startswith("Terraform"):
                    gap_sum[seg["label"]] = gap_sum.get(seg["label"], 0.0) + seg["s"]
        gaps = sorted(((label, total / len(tls)) for label, total in gap_sum.items()), key=lambda g: -g[1])
        top = "; ".join(f"{label} {fmt_ms(mean)}{gap_cause(label)}" for label, mean in gaps[:3])
        top += f" (means over the {len(tls)} N={base} runs)"
        wall = (wall_a if name == "apply" else wall_d)[base]
        share = "most" if tf >= 0.5 * (wall - wall / ratio) else "part"
        where = ("before the first AWS call and after the last"
                 + (", and between the refresh and the destroy" if name == "destroy" else ""))
        if shares:
            apart = (f"the provider's {count_text([x['starts'] for x in shares])} starts and configuration, "
                     f"{fmt_ms(median([x['s'] for x in shares]))}, counted on the provider's side")
            alone = "Terraform alone"
        else:
            apart = "the provider's starts and configuration included: not measured apart in these runs"
            alone = "the time with no AWS call in flight"
        if prov_ratio <= 2.0:
            w(f"- {name}: {ratio:.2f}x the strict floor, over the target. {alone[0].upper() + alone[1:]} "
              f"({fmt_ms(tf)} {where}: Terraform starting, planning and saving state; {apart}) is {share} of the "
              f"excess: without it the ratio is {prov_ratio:.2f}x, within 2x. The largest waits of the provider's "
              f"own on the chain: {top}.")
        else:
            w(f"- {name}: {ratio:.2f}x the strict floor, over the target, and {prov_ratio:.2f}x even without "
              f"{alone} ({fmt_ms(tf)} {where}; {apart}). The largest waits of the provider's own on the chain: "
              f"{top}.")
    w("")
    lin_rows = []
    for n in sizes[1:]:
        if not good[n]:
            continue
        wall_ok = wall_a[n] <= n * wall_a[base] and wall_d[n] <= n * wall_d[base]
        calls_ok = prov_a[n] <= n * prov_a[base] and calls_d[n] <= n * calls_d[base]
        # Per stack, without the polls: the same as N=1's, to a tenth of a call.
        fixed_ok = logged_all and abs(fixed_a[n] / n - fixed_a[base] / base) < 0.05 \
            and abs(fixed_d[n] / n - fixed_d[base] / base) < 0.05
        met += [wall_ok, calls_ok, fixed_ok]
        waves = math.ceil(n / 10)
        fixed = (f"{fixed_a[n] / n:.2f} / {fixed_d[n] / n:.2f} | {'yes' if fixed_ok else '**no**'} | "
                 f"{polls_a[n] / n:.2f} / {polls_d[n] / n:.2f}") if logged_all else "not logged | **no** | –"
        lin_rows.append(
            f"| N={n} | {wall_a[n] / wall_a[base]:.2f}x | {wall_d[n] / wall_d[base]:.2f}x | "
            f"{'yes' if wall_ok else '**no**'} | {prov_a[n] / prov_a[base]:.2f}x | {calls_d[n] / calls_d[base]:.2f}x | "
            f"{'yes' if calls_ok else '**no**'} | {fixed} | "
            f"{waves * wall_a[base]:.1f} s / {waves * wall_d[base]:.1f} s |")
    if lin_rows:
        w(f"Growth with N, relative to N={base} (target: no faster than N, i.e. at most N× in wall time and "
          f"in calls):")
        w("")
        w("| | apply wall | destroy wall | wall ≤ N×? | provider calls per apply | calls per destroy "
          "| calls ≤ N×? | per stack without polls, apply / destroy "
          f"(N={base}: {fixed_a[base] / base:.2f} / {fixed_d[base] / base:.2f}) | constant? "
          "| polls per stack, apply / destroy "
          "| reference: ⌈N/10⌉ × the N=1 wall (Terraform runs 10 at a time), apply / destroy |")
        w("| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | ---: | --- |")
        lines.extend(lin_rows)
        w("")
    w(f"Targets met: {sum(met)} of {len(met)} (wall / strict floor ≤ 2x for the apply and for the destroy; the "
      f"provider's part ≤ 1.5x the strict floor for each; for each larger N, wall time and calls growing at most "
      f"N×, and the calls per stack without polls the same as at N={base}).")
    w("")

    # --- chains ---
    w("### The critical path")
    w("")
    w("The longest chain through the provider's order of calls (written down in `tools/bench_stack.py` from "
      "`create.rs`, `delete.rs` and `read.rs`: what runs concurrently, what in sequence), with each operation's "
      f"median latency in the N={base} runs:")
    w("")

    def chain_text(chain, latency):
        return " → ".join(f"{op} {fmt_ms(heal_s if op == HEAL_LABEL else latency[op])}" for op in chain)

    w(f"- apply: {chain_text(chain_a, lat_a)}")
    w(f"- destroy (Terraform refreshes first, then destroys): {chain_text(chain_d, lat_d)}")
    w(f"- if only AWS's dependencies were sequential, apply: {' → '.join(min_chain_a)}; destroy: "
      f"{' → '.join(min_chain_d)}")
    w("")
    viol = sorted({op for t in tl_a + tl_d for op in t["order_violations"]})
    missing = sorted({op for t in tl_a + tl_d for op in t["missing"]})
    drift = sorted({op for t in tl_a + tl_d for op in t["drift"]})
    w(f"Checked against the N={base} call logs ({len(good[base])} runs): "
      + ("every call of the order started after the calls it depends on had ended"
         if not viol else f"**calls that started before what they depend on ended: {', '.join(viol)}**")
      + ("" if not missing else f"; **not found in the log: {', '.join(missing)}**")
      + ("; no operation outside the order" if not drift else
         f"; **operations the order does not know (the provider changed?): {', '.join(drift)}**") + ".")
    w("")
    w("What the floor includes and leaves out:")
    w("")
    lam = heals_1
    w(f"- It includes the heal as measured: after `UpdateAutoScalingGroup` answers, the local AWS launches the "
      f"instance, holds it in `Pending:Wait`, delivers the lifecycle event through the rule "
      f"(median {fmt_ms(median([h['to_invocation_s'] for h in lam]))} to the Lambda's start), the Lambda starts "
      f"as a fresh process and heals (median {fmt_ms(median([h['lambda_s'] for h in lam]))} to "
      f"`CompleteLifecycleAction` answered; the handler's own steps, median: {handler_steps(good[base])}; "
      f"the rest is the local AWS starting the function's process and serving its Runtime API, and the "
      f"handler starting; see the handler benchmark). Emulated AWS delays are {1 / scale:.0f}× shorter than AWS's "
      f"(the volume's 2 s detach is {2 * scale * 1000:.0f} ms); VPCs, volumes, functions and snapshots are "
      f"ready at the first poll, and an instance is running at launch, which AWS does not do (there a create "
      f"waits 30-60 s for the instance alone).")
    w("- It counts one poll per wait and the server's time per call only: not the client side of each call "
      "(SDK, HTTP on loopback), not the provider's sleeps between polls, not Terraform's own work (start, "
      "plan, state). The wall time has all of them; the rows above separate Terraform alone and the provider's "
      "starts and configuration.")
    w("- The local AWS is one Python process: calls served at the same time share one interpreter lock, so "
      "a call's server time includes waiting for its concurrent neighbours (in step 1 of the create, six "
      "calls run together and the slowest, DescribeSnapshots over every snapshot of the account, holds the "
      "others up). The medians, and so the floor, carry that.")
    w("")

    # --- where the time goes (N = base) ---
    w(f"### Where the time goes (N={base}, the run with the median apply wall time)")
    w("")
    for name, tl, phase in (("apply", tl_a[med_i], good[base][med_i]["apply"]),
                            ("destroy", tl_d[med_i], good[base][med_i]["destroy"])):
        wall = phase["wall_s"]
        counted = [i for k in COUNTED for i in provider_parts(phase["tflog"])[0][k]] if logged else []
        # Each stretch with no AWS call in flight, split into the provider's starts and
        # configuration and Terraform alone.
        segs = []
        for s in tl["segments"]:
            if s["kind"] == "gap" and s["label"].startswith("Terraform") and logged:
                mine = within(counted, [(s["t0"], s["t1"])])
                where = s["label"][len("Terraform "):]
                segs.append(dict(s, kind="tf", label=f"Terraform alone {where}", s=s["s"] - mine))
                if mine > 0:
                    starts = sum(1 for p in phase["tflog"]["procs"] if s["t0"] <= p["start"] < s["t1"])
                    segs.append(dict(s, kind="starts", s=mine,
                                     label=f"the provider's starts ({starts}) and configuration {where}"))
            elif s["kind"] == "gap" and s["label"].startswith("Terraform"):
                segs.append(dict(s, kind="tf"))
            else:
                segs.append(s)
        tf = sum(s["s"] for s in segs if s["kind"] == "tf")
        starts_s = sum(s["s"] for s in segs if s["kind"] == "starts")
        gaps = sum(s["s"] for s in segs if s["kind"] == "gap")
        calls_s = sum(s["s"] for s in segs if s["kind"] == "call")
        heal = sum(s["s"] for s in segs if s["kind"] == "heal")
        w(f"{name} ({wall:.2f} s), along the chain of calls that ended last: "
          + (f"Terraform alone {fmt_ms(tf)}, the provider's starts and configuration {fmt_ms(starts_s)}, "
             if logged else f"Terraform and the provider's starts {fmt_ms(tf)}, ")
          + f"server time of the chain's calls {fmt_ms(calls_s)}"
          + (f", the heal {fmt_ms(heal)}" if heal else "")
          + f", between the chain's calls (transport and client side, the provider's waits and sleeps) "
          f"{fmt_ms(gaps)}. "
          "The largest parts:")
        w("")
        w("| part | time | share of wall |")
        w("| --- | ---: | ---: |")
        for s in sorted(segs, key=lambda s: -s["s"])[:8]:
            kind = {"gap": "between calls: ", "call": "call: ", "heal": "", "tf": "", "starts": ""}[s["kind"]]
            w(f"| {kind}{s['label']} | {fmt_ms(s['s'])} | {100 * s['s'] / wall:.0f}% |")
        w("")

    provider_split(good[base], tl_a, tl_d, share_a, share_d, med_i, results.get("nolog_run"), w)

    # --- scaling ---
    w("### How it scales")
    w("")
    w("| N | median server time per call (apply) | most calls in flight | heal median / p90 | Lambda attempts "
      "per stack | provider's first look after the heal, median / p90 | provider calls per stack beyond the "
      "order's (top ops) |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    want = order_ops(CREATE_ORDER)
    for n in sizes:
        if not good[n]:
            continue
        heals = [h for r in good[n] for h in r["heals"]]
        per_call = median([median([c["duration_ms"] / 1000 for c in r["apply_provider"]]) for r in good[n]])
        inflight = max(max_in_flight(r["apply"]["calls"]) for r in good[n])
        extra = {}
        for r in good[n]:
            seen = {}
            for c in r["apply_provider"]:
                seen[c["operation"]] = seen.get(c["operation"], 0) + 1
            for op, k in seen.items():
                extra.setdefault(op, []).append((k - want.get(op, 0) * n) / n)
        extra = sorted(((op, median(v)) for op, v in extra.items()), key=lambda x: -x[1])
        top = ", ".join(f"{op} +{v:.1f}" for op, v in extra[:3] if v > 0.05) or "none"
        w(f"| {n} | {fmt_ms(per_call)} | {inflight} | {fmt_ms(median([h['heal_s'] for h in heals]))} / "
          f"{fmt_ms(pct([h['heal_s'] for h in heals], 0.9))} | "
          f"{median([h['attempts'] for h in heals]):.0f} (max {max(h['attempts'] for h in heals)}) | "
          f"{fmt_ms(median([h['seen_after_s'] for h in heals]))} / {fmt_ms(pct([h['seen_after_s'] for h in heals], 0.9))} "
          f"| {top} |")
    w("")
    def server_ms(n):
        return median([median([c["duration_ms"] for c in r["apply_provider"]]) for r in good[n]])

    def heal_p90(n):
        return pct([h["heal_s"] for r in good[n] for h in r["heals"]], 0.9)

    big = [n for n in sizes[1:] if good[n]]
    if big:
        n = big[-1]
        per_call = {m: median([median([c["duration_ms"] / 1000 for c in r["apply_provider"]]) for r in good[m]])
                    for m in (base, n)}
        heal = {m: median([h["heal_s"] for r in good[m] for h in r["heals"]]) for m in (base, n)}
        w(f"At N={n} the median server time per call is {per_call[n] / per_call[base]:.1f}x that at N={base} "
          f"and the heal {heal[n] / heal[base]:.1f}x: the local AWS (one Python process), Terraform, the "
          f"provider and up to 10 Lambda processes at a time share {os.cpu_count()} CPUs, so beyond N={base} "
          f"the wall time measures this machine's saturation as much as the provider. Per stack, the apply "
          f"takes {wall_a[n] / n / wall_a[base]:.2f}x the wall time of N={base} and "
          f"{prov_a[n] / n:.1f} provider calls against {prov_a[base]:.1f} (the difference is in the last "
          f"column above: polls of waits that last longer on a saturated machine).")
        # Between the larger sizes, where the machine is saturated in both.
        for small, large in zip(big, big[1:]):
            growth = {k: v[large] / v[small] for k, v in (("apply", wall_a), ("destroy", wall_d))}
            faster = [k for k, g in growth.items() if g > large / small]
            w(f"From N={small} to N={large} ({large / small:.0f}× the stacks) the apply's wall time grows "
              f"{growth['apply']:.2f}x and the destroy's {growth['destroy']:.2f}x"
              + (f" (**{' and '.join(faster)} faster than the number of stacks** between these two sizes)"
                 if faster else "") + "; "
              f"the median server time per call {server_ms(large) / server_ms(small):.2f}x and the heal's p90 "
              f"{heal_p90(large) / heal_p90(small):.2f}x.")
        w("")

    destroy_runs = sum(len(r["destroy"]["invocations"]) for r in results["runs"])
    if destroy_runs:
        w(f"**The Lambda ran {destroy_runs} time(s) during destroys**: their calls are in the destroy counts.")
        w("")
    w("After every destroy the local AWS held no group, instance, function, rule, role, log group, VPC, "
      "security group, launch template, volume or address; "
      + ("the final snapshots (one per stack, `volume_on_destroy = \"snapshot\"` by default) remain."
         if all(r["leftovers"]["final_snapshots"] == r["n"] and sum(v for k, v in r["leftovers"].items()
                                                                     if k != "final_snapshots") == 0
                for r in results["runs"] if r["ok"])
         else "**except:** " + "; ".join(
             f"N={r['n']} run {r['run']}: " + ", ".join(f"{k} {v}" for k, v in r["leftovers"].items() if v)
             for r in results["runs"] if r["ok"])))
    w("")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("--terraform", required=True)
    p.add_argument("--terraformrc", required=True)
    p.add_argument("--fixture", required=True, help="the folder holding the stack fixture's main.tf")
    p.add_argument("--local-aws", required=True, help="the folder holding the localaws package")
    p.add_argument("--python", required=True, help="the python that runs the local AWS")
    p.add_argument("--work", required=True)
    p.add_argument("--sizes", default="1,10,50")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--large-runs", type=int, default=1)
    p.add_argument("--large-above", type=int, default=10)
    p.add_argument("--clock-scale", type=float, default=0.01)
    p.add_argument("--hook-timeout", type=int, default=3600)
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(fn=run)
    p = sub.add_parser("report")
    for flag in ("--results", "--command", "--git", "--loadavg", "--cpu", "--terraform",
                 "--terraform-version", "--provider-version", "--provider-sha"):
        p.add_argument(flag, required=True)
    p.set_defaults(fn=report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
