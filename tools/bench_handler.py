#!/usr/bin/env python3
"""Measurements and report for tools/bench-handler (run that, not this).

Needs boto3 (the project's venv has it: .tools/venv/bin/python).

  package-peer  zip the Python peer (handler/benches/python-peer) as a
                provided.al2023 package whose `bootstrap` starts with a
                shebang to the given python
  run           one local AWS, two identical autoheal stacks (one per
                function), N heals of each, alternating; raw results as JSON
  report        the Markdown section, from that JSON

Where each figure comes from (all from the one local AWS run):

* cold start: the REPORT line the local AWS's Lambda runner writes for each
  attempt. Every attempt there is a fresh process. "Init Duration" is
  Popen -> the runtime's first GET /invocation/next; "Duration" is that
  request -> the response POST; spawn -> response is their sum. Measured for
  the heal events and for empty events (`{}` by lambda:Invoke, which both
  functions answer at once with an error, no AWS call: the cold start alone).
* heal: the invocation record's `started` (the runner took the EventBridge
  delivery and is about to start the process) -> the `time` of the successful
  CompleteLifecycleAction CONTINUE for that instance in the server's call log.
  If an attempt fails, Lambda's retries (60 s and 120 s on the scaled clock)
  are part of the heal, as they would be on AWS.
* peak RSS: "Max Memory Used" of the same REPORT lines (VmHWM of the bootstrap
  process, sampled by the runner, rounded up to MiB).
* package size: the zips as deployed.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import zipfile

AMI = "ami-0720cb7af233b0529"
REGION = "ap-southeast-2"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
LAUNCH = "EC2 Instance-launch Lifecycle Action"
MB = 1_000_000
MIB = 1024 * 1024
FUNCTIONS = ("rust", "python")
LABELS = {"rust": "Rust handler", "python": "Python peer"}


def log(msg):
    print(f"{time.strftime('%H:%M:%S')}     {msg}", file=sys.stderr, flush=True)


# --- packaging ---------------------------------------------------------------


def package_peer(args):
    src = args.source
    with open(os.path.join(src, "bootstrap.py"), encoding="utf-8") as f:
        bootstrap = f"#!{args.python}\n" + f.read()
    with open(os.path.join(src, "device_attachment.py"), encoding="utf-8") as f:
        handler = f.read()
    with zipfile.ZipFile(args.out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, text, mode in (("bootstrap", bootstrap, 0o755), ("device_attachment.py", handler, 0o644)):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # Unix, so the mode counts
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, text.encode("utf-8"))
    print(os.path.getsize(args.out))


# --- the local AWS -----------------------------------------------------------


class LocalAws:
    """`python -m localaws` on a free port, stopped on exit."""

    def __init__(self, python, package_root, clock_scale, log_path):
        self.log_file = open(log_path, "wb")
        env = dict(os.environ, PYTHONPATH=package_root, PYTHONUNBUFFERED="1")
        env.pop("AWS_ENDPOINT_URL", None)
        self.proc = subprocess.Popen(
            [python, "-m", "localaws", "--host", "127.0.0.1", "--port", "0",
             "--clock-scale", str(clock_scale), "--region", REGION],
            cwd=package_root, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=self.log_file,
        )
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("LOCALAWS_READY "):
            self.stop()
            raise SystemExit(f"the local AWS did not start (printed {line!r}); see {log_path}")
        self.endpoint = line.split(" ", 1)[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def control(self, path):
        import urllib.request

        with urllib.request.urlopen(f"{self.endpoint}/_localaws{path}", timeout=30) as r:
            return json.load(r)


def clients(endpoint):
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name=REGION)
    config = Config(retries={"max_attempts": 10, "mode": "standard"})
    return {name: session.client(name, endpoint_url=endpoint, config=config)
            for name in ("ec2", "autoscaling", "lambda", "events", "iam", "logs")}


def create_stack(c, name, zip_bytes, az, cidr_octet):
    """The autoheal pattern for one function; the group starts empty."""
    ec2 = c["ec2"]
    vpc = ec2.create_vpc(CidrBlock=f"10.{cidr_octet}.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{cidr_octet}.1.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
    volume = ec2.create_volume(AvailabilityZone=az, Size=1, VolumeType="gp3")["VolumeId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = c["iam"].create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    group, hook, function = f"{name}-asg", f"{name}-launch", f"{name}-fn"
    env = {
        "AUTOHEAL_VOLUME_ID": volume,
        "AUTOHEAL_ALLOCATION_ID": allocation,
        "AUTOHEAL_DEVICE_NAME": "/dev/sdf",
        "AUTOHEAL_GROUP_NAME": group,
        "AUTOHEAL_HOOK_NAME": hook,
    }
    function_arn = c["lambda"].create_function(
        FunctionName=function, Runtime="provided.al2023", Handler="bootstrap", Role=role,
        Timeout=30, MemorySize=128, Code={"ZipFile": zip_bytes}, Environment={"Variables": env},
    )["FunctionArn"]
    pattern = {"source": ["aws.autoscaling"], "detail-type": [LAUNCH], "detail": {"AutoScalingGroupName": [group]}}
    rule_arn = c["events"].put_rule(Name=f"{name}-launch", EventPattern=json.dumps(pattern))["RuleArn"]
    c["events"].put_targets(Rule=f"{name}-launch", Targets=[{"Id": "function", "Arn": function_arn}])
    c["lambda"].add_permission(FunctionName=function, StatementId=f"{name}-events", Action="lambda:InvokeFunction",
                               Principal="events.amazonaws.com", SourceArn=rule_arn)
    c["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName=group, MinSize=0, MaxSize=0, DesiredCapacity=0, VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        LifecycleHookSpecificationList=[{
            "LifecycleHookName": hook, "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "HeartbeatTimeout": 3600, "DefaultResult": "ABANDON",
        }],
    )
    return {"group": group, "function": function, "volume": volume, "allocation": allocation}


def group_instances(c, group):
    out = c["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    groups = out["AutoScalingGroups"]
    return groups[0]["Instances"] if groups else []


def wait_in_service(c, group, not_id, timeout):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        instances = group_instances(c, group)
        seen = [(i["InstanceId"], i["LifecycleState"]) for i in instances]
        if len(instances) == 1 and instances[0]["LifecycleState"] == "InService" \
                and instances[0]["InstanceId"] != not_id:
            return instances[0]["InstanceId"]
        time.sleep(0.02)
    raise SystemExit(f"{group}: no new instance InService within {timeout}s (last seen {seen})")


def function_lines(c, function):
    lines, kwargs = [], {"logGroupName": f"/aws/lambda/{function}"}
    while True:
        out = c["logs"].filter_log_events(**kwargs)
        lines += [e["message"] for e in out.get("events", [])]
        token = out.get("nextToken")
        if not token:
            return lines
        kwargs["nextToken"] = token


def parse_report(line):
    """REPORT RequestId: ID\\tDuration: x ms\\t...\\tMax Memory Used: n MB\\tInit Duration: y ms"""
    if not line.startswith("REPORT RequestId: "):
        return None
    fields = line[len("REPORT RequestId: "):].split("\t")
    out = {"request_id": fields[0].strip()}
    for field in fields[1:]:
        key, _, value = field.partition(": ")
        number = value.split(" ")[0]
        if key == "Duration":
            out["duration_ms"] = float(number)
        elif key == "Init Duration":
            out["init_ms"] = float(number)
        elif key == "Max Memory Used":
            out["max_memory_mib"] = int(number)
    return out


def epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def run(args):
    with open(args.rust_zip, "rb") as f:
        rust_zip = f.read()
    with open(args.peer_zip, "rb") as f:
        peer_zip = f.read()
    aws = LocalAws(sys.executable, args.local_aws, args.clock_scale, args.server_log)
    try:
        log(f"local AWS at {aws.endpoint} (clock scale {args.clock_scale})")
        c = clients(aws.endpoint)
        zones = sorted(z["ZoneName"] for z in c["ec2"].describe_availability_zones()["AvailabilityZones"])
        stacks = {
            "rust": create_stack(c, "bench-rust", rust_zip, zones[0], 60),
            "python": create_stack(c, "bench-python", peer_zip, zones[0], 61),
        }
        current = {name: None for name in FUNCTIONS}
        heals = []
        # Round 0 is each group's first launch (0 -> 1): a warm-up for the server, not counted.
        for rep in range(args.reps + 1):
            order = FUNCTIONS if rep % 2 == 0 else tuple(reversed(FUNCTIONS))
            for name in order:
                s = stacks[name]
                started = time.monotonic()
                if current[name] is None:
                    c["autoscaling"].update_auto_scaling_group(
                        AutoScalingGroupName=s["group"], MinSize=1, MaxSize=1, DesiredCapacity=1)
                else:
                    c["ec2"].terminate_instances(InstanceIds=[current[name]])
                new = wait_in_service(c, s["group"], current[name], args.timeout)
                heals.append({"function": name, "rep": rep, "old": current[name], "new": new,
                              "observed_s": time.monotonic() - started})
                current[name] = new
            if rep:
                log(f"round {rep}/{args.reps} done")

        log("collecting invocation records, call log and function logs")
        events = aws.control("/events")
        # An attempt is recorded once its process has ended, a little after it completed the
        # lifecycle action (which is what the loop above waited for).
        wanted = {e["id"] for e in events
                  if e["event"].get("detail", {}).get("EC2InstanceId") in {h["new"] for h in heals}}
        deadline = time.monotonic() + 30
        while True:
            invocations = aws.control("/invocations")
            done = {i["event_id"] for i in invocations if i.get("outcome") == "success"}
            if wanted <= done or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        completes = [x for x in aws.control("/calls?operation=CompleteLifecycleAction")
                     if x["status"] == 200 and x["params"].get("LifecycleActionResult") == "CONTINUE"]
        # Cold start with no work: an empty event, which neither function can act on, so each
        # answers at once with an error and makes no AWS call. A fresh process each time, as
        # for the heals; the same number of runs, alternating. Sent before the function logs are
        # read, so one read has the REPORT lines of both.
        log("invoking each function with an empty event (no AWS work)")
        calls_before = {x["seq"] for x in aws.control("/calls")}
        for rep in range(args.reps):
            for name in (FUNCTIONS if rep % 2 == 0 else tuple(reversed(FUNCTIONS))):
                out = c["lambda"].invoke(FunctionName=stacks[name]["function"], Payload=b"{}")
                if not out.get("FunctionError"):
                    raise SystemExit(f"{name}: an empty event should be an error: {out}")
        by_function = {stacks[name]["function"]: name for name in FUNCTIONS}
        idle_calls = [x for x in aws.control("/calls")
                      if x["seq"] not in calls_before and x.get("function") in by_function]
        if idle_calls:
            raise SystemExit(f"the functions called AWS on an empty event: {idle_calls[:3]}")
        reports, waits = {}, set()
        for name in FUNCTIONS:
            lines = function_lines(c, stacks[name]["function"])
            for line in lines:
                r = parse_report(line)
                if r:
                    reports[r["request_id"]] = r
                elif name == "rust" and line.startswith("{") and '"waiting on the volume"' in line:
                    request = json.loads(line).get("span", {}).get("request_id")
                    if request:
                        waits.add(request)

        for h in heals:
            event_ids = {e["id"] for e in events if e["event"].get("detail", {}).get("EC2InstanceId") == h["new"]}
            attempts = sorted((i for i in invocations if i.get("event_id") in event_ids), key=lambda i: i["attempt"])
            done = [x for x in completes if x["params"].get("InstanceId") == h["new"]]
            if not attempts or not done:
                raise SystemExit(f"no invocation or no CONTINUE recorded for {h}")
            first = attempts[0]
            report = reports.get(first["request_id"])
            if report is None or "init_ms" not in report:
                raise SystemExit(f"no REPORT line with an Init Duration for {first['request_id']}")
            h.update({
                "attempts": len(attempts),
                "outcomes": [a["outcome"] for a in attempts],
                "heal_ms": (epoch(done[0]["time"]) - epoch(first["started"])) * 1000.0,
                "init_ms": report["init_ms"],
                "duration_ms": report["duration_ms"],
                "spawn_to_response_ms": report["init_ms"] + report["duration_ms"],
                "max_memory_mib": report.get("max_memory_mib"),
                "waited_for_detach": first["request_id"] in waits,
                "first_error": attempts[0].get("error_type") if attempts[0]["outcome"] != "success" else None,
                # The Rust handler's response says how long each of its steps took.
                "steps_ms": json.loads(attempts[-1].get("response") or "{}").get("stepsMs"),
            })

        idle = []
        for i in aws.control("/invocations"):
            if i.get("source") != "Invoke" or i.get("function") not in by_function:
                continue
            r = reports.get(i["request_id"])
            if r is None or "init_ms" not in r:
                raise SystemExit(f"no REPORT line with an Init Duration for {i['request_id']}")
            idle.append({"function": by_function[i["function"]],
                         "spawn_to_response_ms": r["init_ms"] + r["duration_ms"],
                         "init_ms": r["init_ms"]})
        for name in FUNCTIONS:
            got = sum(1 for x in idle if x["function"] == name)
            if got != args.reps:
                raise SystemExit(f"{name}: {got} empty-event invocations recorded, {args.reps} sent")
    finally:
        aws.stop()

    results = {
        "clock_scale": args.clock_scale,
        "reps": args.reps,
        "heals": heals,
        "idle": idle,
        "zip_bytes": {"rust": len(rust_zip), "python": len(peer_zip)},
    }
    json.dump(results, sys.stdout, indent=1)


# --- report ------------------------------------------------------------------


def p90(values):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def ms(v):
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def report(args):
    with open(args.results, encoding="utf-8") as f:
        res = json.load(f)
    heals = [h for h in res["heals"] if h["rep"] > 0]
    first_launch = {h["function"]: h for h in res["heals"] if h["rep"] == 0}
    by = {name: [h for h in heals if h["function"] == name] for name in FUNCTIONS}
    n = len(by["rust"])

    def stat(name, key):
        values = [h[key] for h in by[name]]
        return statistics.median(values), p90(values)

    rows, met_count, target_count = [], 0, 0

    idle = {name: [x for x in res["idle"] if x["function"] == name] for name in FUNCTIONS}

    def timing_row(label, key, factor, source=None):
        nonlocal met_count, target_count
        if source is None:
            (rm, r9), (pm, p9) = stat("rust", key), stat("python", key)
        else:
            rv, pv = [x[key] for x in source["rust"]], [x[key] for x in source["python"]]
            (rm, r9), (pm, p9) = (statistics.median(rv), p90(rv)), (statistics.median(pv), p90(pv))
        ratio = pm / rm
        met = ratio >= factor
        target_count += 1
        met_count += met
        rows.append(f"| {label} | {ms(rm)} / {ms(r9)} | {ms(pm)} / {ms(p9)} | {ratio:.2f}x / {p9 / r9:.2f}x "
                    f"| Rust ≥ {factor}x faster | {'yes' if met else '**no**'} |")

    timing_row("cold start: spawn → first `/next`", "init_ms", 10)
    timing_row("cold start: spawn → response, empty event (no AWS work)", "spawn_to_response_ms", 10,
               source=idle)
    timing_row("cold start + heal: spawn → response, heal event", "spawn_to_response_ms", 10)
    timing_row("heal: delivered → lifecycle action completed", "heal_ms", 3)
    (rm, r9), (pm, p9) = stat("rust", "max_memory_mib"), stat("python", "max_memory_mib")
    rows.append(f"| peak RSS (Max Memory Used) | {rm:.0f} MiB / {r9:.0f} MiB | {pm:.0f} MiB / {p9:.0f} MiB "
                f"| {pm / rm:.1f}x / {p9 / r9:.1f}x | (none) | |")
    rz, pz = res["zip_bytes"]["rust"], res["zip_bytes"]["python"]
    zip_met = rz <= 3 * MB
    target_count += 1
    met_count += zip_met
    rows.append(f"| package (zip as deployed) | {rz:,} B ({rz / MB:.2f} MB) | {pz:,} B ({pz / 1000:.1f} kB) "
                f"+ interpreter and boto3 outside it | | Rust zip ≤ 3 MB | {'yes' if zip_met else '**no**'} |")

    retried = {name: [h for h in by[name] if h["attempts"] > 1] for name in FUNCTIONS}
    waited = sum(h["waited_for_detach"] for h in by["rust"])
    steps = {}
    for h in by["rust"]:
        for step, took in (h.get("steps_ms") or {}).items():
            steps.setdefault(step, []).append(took)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    scale = res["clock_scale"]
    out = [
        "## Attachment Lambda benchmark: Rust handler vs the original's steps in Python/boto3",
        "",
        f"Produced by `{args.command}` on {now}, at commit {args.git}.",
        "",
        f"- Machine: {os.cpu_count()} CPUs, {cpu}, {platform.system()} {platform.release()}; load average "
        f"{args.loadavg} when the run started (the machine may be shared).",
        f"- One local AWS (`terraform-tests/local_aws`, clock scale {scale}) with two identical stacks (VPC, "
        "subnet, gp3 volume, Elastic IP, a group of one with a launch hook, a rule, a function of 128 MB, "
        "timeout 30 s), one per function, configured with the same five `AUTOHEAL_*` variables.",
        f"- Rust handler: `{args.rust_zip_name}` (sha256 {args.rust_sha[:12]}…), the zip tools/build-handler makes.",
        f"- Python peer: `handler/benches/python-peer/` ({args.python_version}, boto3 {args.boto3_version}): the "
        "original DeviceAttachment steps (poll the instance with a 5 s sleep until running, attach the volume, "
        "associate the address, CONTINUE) with its missing `sleep` import fixed, behind a minimal "
        "custom-runtime `bootstrap` in Python. The zip holds only those two files: its `bootstrap` starts "
        f"with a shebang to this machine's venv python (`{args.python}`), which has boto3. That interpreter "
        f"and boto3/botocore ({args.deps_mb} MB on disk) are not in the zip; on AWS they would come from "
        "the python3.x managed runtime or a bundled layer, and provided.al2023 alone could not run this zip.",
        f"- {n} heals of each function, alternating which goes first, each a replacement: terminate the "
        "group's instance, the group launches another, the hook's event goes through the rule to the "
        "function, which heals it; the next round starts once the new instance is `InService`. Each group's "
        "first launch (0 → 1) ran before and is not counted.",
        f"- Targets met: {met_count} of {target_count}.",
        "",
        "| measurement (median / p90) | Rust handler | Python peer | ratio Python/Rust | target | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        *rows,
        "",
        "How each row was measured:",
        "",
        "- cold start: every Lambda attempt in the local AWS is a fresh process. The runner writes Lambda's "
        "`REPORT` line for each: `Init Duration` is from just before `Popen` of `bootstrap` to the runtime's "
        "first `GET /2018-06-01/runtime/invocation/next`; `Duration` from there to the response `POST`. "
        "\"spawn → response\" is their sum. With the empty event (`{}`, sent by `lambda:Invoke` to each "
        f"function {len(idle['rust'])} times after the heals, alternating) neither function can act, so "
        "each answers at once with an error and makes no AWS call (the run checks the call log): that "
        "row is the cold start alone, start to a first answer. With the heal event it also holds the "
        "heal's AWS calls: the Rust handler makes more of them (it reads the volume and the address "
        "back to verify, and attaches before it associates so a running holder never loses its "
        "address), the peer makes four; the heal row below measures that work apart. "
        "All include the emulator's own overhead (a Python server forking the process and answering "
        "the Runtime API), which is the same for both and shrinks the ratios.",
        "- heal: from the invocation record's `started` (the runner has the EventBridge delivery and is "
        "about to start the process) to the server's record of the successful `CompleteLifecycleAction` "
        "CONTINUE for the new instance: the time the group's instance waits in `Pending:Wait` because of "
        "the function. A failed attempt would add Lambda's retry delay (60 s scaled).",
        "- peak RSS: `Max Memory Used` of the same REPORT lines: the process's `VmHWM`, sampled by the "
        "runner while it runs and at its end, rounded up to MiB.",
        "- package: the zip files' sizes as deployed (MB = 10^6 bytes).",
        "",
        "What else the run showed:",
        "",
        *[f"- {LABELS[name]}: {len(retried[name])} of {n} heals needed more than one attempt"
          + (f" (first attempts failed with {sorted({h['first_error'] for h in retried[name]})})"
             if retried[name] else "") + "." for name in FUNCTIONS],
        f"- On this emulator the old volume's detach lasts 2 s × {scale} = {2000 * scale:.0f} ms after the "
        f"termination. The Rust handler found the volume still detaching in {waited} of {n} heals and then "
        "waited (first backoff step 200 ms) before attaching; those heals are in its figures. The peer "
        "never waits: had its AttachVolume met the detaching volume, the attempt would have failed and "
        "Lambda would have retried the event (counted above).",
        "- Where the Rust handler's time goes, median per step of its response's `stepsMs`: "
        + ", ".join(f"{step} {statistics.median(v):.0f} ms" for step, v in steps.items())
        + ". `attach_volume` includes the look for `attached` right after the accepted AttachVolume "
        "(then the 200 ms backoff steps if it is not yet attached; the handler waits for `attached` "
        "before CONTINUE, the peer does not wait at all), "
        "and `associate_address` the DescribeAddresses that verifies the association.",
        "- On AWS a detach takes seconds and an instance is `pending` for 5-16 s: the peer's AttachVolume "
        "would then fail (`VolumeInUse`) and Lambda would retry the whole event after 60 s, and its fixed "
        "5 s sleep overshoots the pending time by up to 5 s. Neither happens in this run (the emulated "
        "instance is `running` as soon as it waits in `Pending:Wait`), so the heal ratio here measures the "
        "functions themselves, not those failure modes.",
        f"- Each group's first launch (not counted above), delivered → completed: Rust "
        f"{first_launch['rust']['heal_ms']:.0f} ms, Python {first_launch['python']['heal_ms']:.0f} ms.",
        "",
        "On a shared 2-core machine the timings move between runs; the ratios, not the absolute "
        "milliseconds, are the result.",
    ]
    print("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("package-peer")
    p.add_argument("--source", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=package_peer)
    p = sub.add_parser("run")
    p.add_argument("--rust-zip", required=True)
    p.add_argument("--peer-zip", required=True)
    p.add_argument("--local-aws", required=True, help="the folder holding the localaws package")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--clock-scale", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--server-log", required=True)
    p.set_defaults(fn=run)
    p = sub.add_parser("report")
    for flag in ("--results", "--command", "--git", "--loadavg", "--rust-zip-name", "--rust-sha",
                 "--python", "--python-version", "--boto3-version", "--deps-mb"):
        p.add_argument(flag, required=True)
    p.set_defaults(fn=report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
