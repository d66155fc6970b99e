#!/usr/bin/env python3
"""Measurements and report for tools/bench-failover (run that, not this).

Needs boto3 (the project's venv has it: .tools/venv/bin/python).

  run     N rounds, each on its own local AWS (profile `realistic`): `terraform
          apply` of one autoheal_instance with zone failover (the acceptance
          tests' fixture), chaos that must not fail over (a killed instance, a
          slow shutdown), a scheduled snapshot, a random wait, the home zone's
          outage, the failover to the other zone, `terraform destroy` and the
          removal of the data kept by design; raw results as JSON
  report  the Markdown section, from that JSON

Where each figure comes from (all of them AWS time, in AWS seconds: the local AWS's clock,
which runs 1/scale times faster than real time; see terraform-tests/local_aws/README.md,
"AWS time"):

* the outage's start: `since_ms` of POST /_localaws/zone-outage.
* RTO: the `EndTime` of the `Successful` launch activity (DescribeScalingActivities) of the
  instance that serves from the failover zone, minus the outage's start. The local AWS
  stamps it at the CompleteLifecycleAction CONTINUE that makes the instance InService, which
  the heal function sends after it attached the volume and associated the Elastic IP: the
  moment service is back, on AWS's own record. The benchmark's poll (every 0.25 real s)
  seeing the instance serve is kept as a cross-check.
* RPO: the outage's start minus the `StartTime` of the snapshot the restored volume was
  made from (the volume's `SnapshotId`, EBS's record): the writes after that moment are not
  in the restored volume.
* detection delay: the time of the failover function's run that reported
  `FailoverStarted = 1` (its EMF line's `_aws.Timestamp`, the function's own clock, real
  time, mapped to AWS time with the local AWS's clock: `aws = utc0 + (real - utc0) / scale`,
  `utc0 = aws_time_ms / 1000 - virtual_now` from GET /_localaws/clock), minus the outage's
  start. That run wrote the line after it had restored the volume and moved the group.
* failover duration: the failover function's own `FailoverDurationSeconds` (from its
  `autoheal:failover-started` tag to the end of the first launch in the new zone).
* false failovers: `FailoverStarted = 1` lines of the failover function (log group
  /aws/lambda/<name>-failover) written during the chaos before the outage.
"""

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter

# bench-handler's and bench-stack's helpers; no bytecode cache in tools/ for these imports.
sys.dont_write_bytecode = True
from bench_handler import REGION, activities_of, clients, function_lines, group_instances, serving  # noqa: E402
from bench_stack import StackAws, leftovers, median, run_terraform, stop_on_sigterm, warm_up  # noqa: E402

PROFILE = "realistic"
HOME = f"{REGION}a"
ZONE_B = f"{REGION}b"
SNAPSHOT_INTERVAL = "15m"
SNAPSHOT_INTERVAL_S = 900
WINDOW = "5m"
WINDOW_S = 300
# The objective's allowance beyond the window (AWS seconds): the brief's figure.
RTO_ALLOWANCE_S = 600
SLOW_SHUTDOWN_S = 900
# Real seconds between polls: the local AWS is one Python process on a shared 2-core machine.
POLL_S = 0.25


def log(msg):
    print(f"{time.strftime('%H:%M:%S')}     {msg}", file=sys.stderr, flush=True)


class FailoverAws(StackAws):
    """bench-stack's local AWS, with the control API's requests that carry a body."""

    def send(self, path, method, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.endpoint}/_localaws{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
        return json.loads(text) if text else None


def to_ms(dt):
    """A boto3 timestamp (aware datetime) in milliseconds since the epoch."""
    return dt.timestamp() * 1000.0


class AwsClock:
    """Real UTC -> AWS time for one local AWS at a fixed scale (local_aws/localaws/clock.py:
    AWS time = utc0 + virtual seconds, virtual = real seconds since utc0 / scale)."""

    def __init__(self, aws):
        c = aws.control("/clock")
        self.scale = c["scale"]
        self.utc0 = c["aws_time_ms"] / 1000.0 - c["virtual_now"]

    def aws_ms(self, real_epoch_s):
        return (self.utc0 + (real_epoch_s - self.utc0) / self.scale) * 1000.0

    def check_ms(self, aws):
        """How far the mapping is from the server's own AWS time, now (ms of AWS time)."""
        before = time.time()
        h = aws.control("/health")
        after = time.time()
        return h["aws_time_ms"] - self.aws_ms((before + after) / 2)


def failover_records(c, name):
    """The failover function's EMF lines (one per check), in log order."""
    out = []
    for line in function_lines(c, f"{name}-failover"):
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "CloudWatchMetrics" in rec.get("_aws", {}) and "FailoverStarted" in rec:
            out.append(rec)
    return out


def emf_real_s(rec):
    return rec["_aws"]["Timestamp"] / 1000.0


def wait_for(what, timeout_s, fn):
    """Polls fn() every POLL_S until it returns something true; (value, real time) or (None, None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v:
            return v, time.time()
        if time.monotonic() > deadline:
            log(f"  gave up waiting for {what} after {timeout_s:.0f} real s")
            return None, None
        time.sleep(POLL_S)


def wait_check_after(c, name, real_s, timeout_s=30):
    """Until the failover function has logged a check made after real time `real_s` (so that
    every check of the interval before it is in the log)."""
    seen, _ = wait_for("a failover check after the heal", timeout_s,
                       lambda: any(emf_real_s(r) > real_s for r in failover_records(c, name)))
    return bool(seen)


def serve_state(c, s, old=None):
    iid, seen = serving(c, s, old)
    return iid


def instance_zone(c, iid):
    res = c["ec2"].describe_instances(InstanceIds=[iid])["Reservations"]
    return res[0]["Instances"][0]["Placement"]["AvailabilityZone"] if res else None


def group_tags(c, group):
    groups = c["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    return {t["Key"]: t["Value"] for t in groups[0].get("Tags", [])} if groups else {}


def scheduled_snapshots(c, name):
    return c["ec2"].describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:autoheal:snapshot", "Values": ["scheduled"]},
        {"Name": "tag:autoheal:stack", "Values": [name]}])["Snapshots"]


def chaos(c, aws, name, s, current, label, timeout_s):
    """Kills the serving instance and waits for the heal in the home zone; the failover
    checks logged meanwhile and the FailoverStarted = 1 lines among them."""
    started_before = sum(1 for r in failover_records(c, name) if r["FailoverStarted"] == 1)
    known = {a["ActivityId"] for a in activities_of(c, s["group"])}
    t_kill = time.time()
    c["ec2"].terminate_instances(InstanceIds=[current])
    new, t_heal = wait_for(f"the heal after the {label}", timeout_s, lambda: serve_state(c, s, current))
    out = {"old": current, "new": new, "healed": bool(new), "t_kill": t_kill, "t_heal": t_heal}
    if new:
        out["zone"] = instance_zone(c, new)
        out["heal_aws_s"] = (t_heal - t_kill) / aws.scale
        # Every check up to the heal is in the log once one made after it is.
        out["check_after"] = wait_check_after(c, name, t_heal)
    # The launches the heal took: a launch whose hook timed out (the old instance still
    # holding the volume) is Cancelled and the group launches another.
    out["launches"] = dict(Counter(a["StatusCode"] for a in activities_of(c, s["group"])
                                   if a["ActivityId"] not in known))
    recs = failover_records(c, name)
    end = t_heal or time.time()
    out["checks_while_down"] = sum(1 for r in recs if t_kill <= emf_real_s(r) <= end)
    out["outcomes_while_down"] = sorted({r.get("outcome", "?") for r in recs if t_kill <= emf_real_s(r) <= end})
    out["failover_started"] = sum(1 for r in recs if r["FailoverStarted"] == 1) - started_before
    log(f"  {label}: " + (f"healed by {new} in {out['zone']} after {out['heal_aws_s']:.0f} AWS s (observed)"
                          if new else "**not healed**")
        + f"; {out['checks_while_down']} failover checks while down, FailoverStarted=1: {out['failover_started']}")
    return out


def one_round(args, k, extra_s, work):
    name = f"bfo{k:02d}"
    workdir = os.path.join(work, f"round{k:02d}")
    os.makedirs(workdir)
    shutil.copy(os.path.join(args.fixture, "main.tf"), workdir)
    base_env = {key: v for key, v in os.environ.items()
                if not key.startswith(("AWS_", "TF_LOG")) and key not in ("TF_DATA_DIR", "TF_PLUGIN_CACHE_DIR")}
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
    tf_vars = ["-var", f'names=["{name}"]', "-var", f"snapshot_interval={SNAPSHOT_INTERVAL}",
               "-var", f'failover_zones=["{ZONE_B}"]', "-var", f"failover_detection_window={WINDOW}"]
    r = {"round": k, "name": name, "extra_wait_s": extra_s, "ok": False, "recovered": False, "problems": []}
    problem = r["problems"].append
    t_round = time.monotonic()
    t_start = time.monotonic()
    aws = FailoverAws(args.python, args.local_aws, args.clock_scale, os.path.join(workdir, "localaws.log"), PROFILE)
    aws.scale = args.clock_scale
    tf_env = None
    c = None
    outage_on = False
    try:
        tf_env = dict(base_env, AWS_ENDPOINT_URL=aws.endpoint)
        c = clients(aws.endpoint)
        warm_up(c)
        r["local_aws_start_s"] = time.monotonic() - t_start
        clock = AwsClock(aws)
        profile = aws.control("/profile")
        r["profile"] = profile
        if profile.get("name") != PROFILE:
            raise SystemExit(f"the local AWS did not take the {PROFILE} profile: {profile}")
        # 1. apply, then wait until the stack serves.
        log(f"round {k}: terraform apply ({name})")
        a = run_terraform(args.terraform, workdir, ["apply", "-auto-approve", "-input=false", "-no-color", *tf_vars],
                          tf_env, args.timeout, os.path.join(workdir, "apply.log"))
        r["apply"] = {key: a[key] for key in ("rc", "timed_out", "wall_s")}
        log(f"round {k}: apply exit {a['rc']} after {a['wall_s']:.1f} s")
        if a["rc"] != 0:
            problem("terraform apply failed: " + " / ".join(a["output_tail"][-8:]))
            return r
        out = subprocess.run([args.terraform, "output", "-json", "stacks"], cwd=workdir, env=tf_env,
                             capture_output=True, timeout=120)
        st = json.loads(out.stdout)[name]
        home_volume, allocation = st["volume_id"], st["allocation_id"]
        s = {"group": f"{name}-asg", "volume": home_volume, "allocation": allocation}
        r.update(home_volume=home_volume, allocation=allocation)
        first, _ = wait_for("the stack to serve", args.heal_timeout, lambda: serve_state(c, s))
        if not first:
            problem("the stack did not serve after the apply")
            return r
        r["first_zone"] = instance_zone(c, first)

        # 2. chaos that must not fail over: a kill, then a slow shutdown.
        r["kill"] = chaos(c, aws, name, s, first, "kill", args.heal_timeout)
        current = r["kill"]["new"]
        if current:
            shutdown_before = aws.control("/profile")["shutdown_s"]
            aws.send("/profile", "POST", {"shutdown_s": SLOW_SHUTDOWN_S})
            try:
                r["slow"] = chaos(c, aws, name, s, current, f"slow shutdown ({SLOW_SHUTDOWN_S} s)",
                                  args.heal_timeout)
            finally:
                r["shutdown_restored"] = aws.send("/profile", "POST", {"shutdown_s": shutdown_before})["shutdown_s"]
            current = r["slow"]["new"]
        for key in ("kill", "slow"):
            if key in r and not r[key]["healed"]:
                problem(f"no heal in the home zone after the {key} within {args.heal_timeout:.0f} real s")
            elif key in r and r[key].get("zone") != HOME:
                problem(f"the {key} healed in {r[key].get('zone')}, not {HOME}")

        # 3. a completed scheduled snapshot, then the random extra wait (AWS seconds).
        snaps, _ = wait_for("a completed scheduled snapshot", args.heal_timeout,
                            lambda: [x for x in scheduled_snapshots(c, name) if x["State"] == "completed"])
        if not snaps:
            problem("no completed scheduled snapshot")
        t0 = aws.control("/health")["aws_time_ms"]
        r["snapshot_seen_ms"] = t0
        time.sleep(extra_s * args.clock_scale)
        while aws.control("/health")["aws_time_ms"] < t0 + extra_s * 1000:
            time.sleep(0.01)

        # 4. the home zone goes out.
        outage = aws.send("/zone-outage", "POST", {"zone": HOME})
        outage_on = True
        t_outage = time.time()
        since = outage["since_ms"]
        r["since_ms"] = since
        r["clock_error_ms"] = clock.check_ms(aws)
        log(f"round {k}: {HOME} out at AWS {outage['since']} (after {extra_s:.0f} AWS s of extra wait)")

        # 5. service from zone B: the group's active volume attached to an InService instance
        # there, the Elastic IP on it.
        def restored():
            active = group_tags(c, s["group"]).get("autoheal:active-volume")
            if not active:
                return None
            iid = serve_state(c, dict(s, volume=active))
            if iid and instance_zone(c, iid) == ZONE_B:
                return iid, active
            return None

        got, t_seen = wait_for("service from the failover zone", args.recovery_timeout, restored)
        r["recovery_wait_real_s"] = (t_seen or time.time()) - t_outage
        if not got:
            problem(f"no service from {ZONE_B} within {args.recovery_timeout:.0f} real s of the outage")
            r["at_timeout"] = {"tags": group_tags(c, s["group"]),
                               "instances": [(i["InstanceId"], i["LifecycleState"], i["AvailabilityZone"])
                                             for i in group_instances(c, s["group"])]}
        else:
            iid, active = got
            r["recovered"] = True
            r.update(instance=iid, restored_volume=active, seen_serving_ms=clock.aws_ms(t_seen))
            log(f"round {k}: serving from {ZONE_B} ({iid}, {active}) after "
                f"{r['recovery_wait_real_s']:.1f} real s")
            # 6. the figures.
            acts = activities_of(c, s["group"])
            mine = [x for x in acts if x.get("Description", "").endswith(iid) and x["StatusCode"] == "Successful"]
            if mine and mine[0].get("EndTime"):
                r["in_service_ms"] = to_ms(mine[0]["EndTime"])
                r["launch_b_start_ms"] = to_ms(mine[0]["StartTime"])
                r["launch_b_details"] = mine[0].get("Details")
                r["rto_s"] = (r["in_service_ms"] - since) / 1000
            else:
                problem(f"no Successful launch activity with an EndTime for {iid}")
            failed_a = sorted(to_ms(x["StartTime"]) for x in acts
                              if x["StatusCode"] == "Failed" and HOME in (x.get("Details") or "")
                              and to_ms(x["StartTime"]) >= since)
            r["failed_launches_home"] = len(failed_a)
            r["first_failed_launch_ms"] = failed_a[0] if failed_a else None
            r["failed_launch_starts_ms"] = failed_a
            vol = c["ec2"].describe_volumes(VolumeIds=[active])["Volumes"][0]
            home = c["ec2"].describe_volumes(VolumeIds=[home_volume])["Volumes"][0]
            source = vol.get("SnapshotId") or None
            vtags = {t["Key"]: t["Value"] for t in vol.get("Tags", [])}
            htags = {t["Key"]: t["Value"] for t in home.get("Tags", [])}
            r["restored"] = {"zone": vol["AvailabilityZone"], "encrypted": vol.get("Encrypted"),
                             "same_key": vol.get("KmsKeyId") == home.get("KmsKeyId"), "snapshot": source,
                             "restored_for": vtags.get("autoheal:restored-for")}
            r["home_superseded_by"] = htags.get("autoheal:superseded-by")
            snaps = scheduled_snapshots(c, name)
            r["snapshots"] = [{"id": x["SnapshotId"], "state": x["State"], "start_ms": to_ms(x["StartTime"])}
                              for x in sorted(snaps, key=lambda x: x["StartTime"])]
            src = next((x for x in r["snapshots"] if x["id"] == source), None)
            if src is None:
                problem(f"the restored volume's snapshot {source} is not a scheduled snapshot of the stack")
            else:
                r["snapshot_start_ms"] = src["start_ms"]
                r["rpo_s"] = (since - src["start_ms"]) / 1000
                done_before = [x for x in r["snapshots"] if x["state"] == "completed" and x["start_ms"] <= since]
                newest = max(done_before, key=lambda x: x["start_ms"]) if done_before else None
                r["newest_completed_before_outage"] = newest["id"] if newest else None
                # A snapshot that started before the outage but was still pending when it began
                # stays pending while the zone is out (the local AWS README, zone outage).
                r["pending_at_outage"] = [x["id"] for x in r["snapshots"]
                                          if x["start_ms"] <= since and x["id"] != source
                                          and x["start_ms"] > src["start_ms"]]
                if newest and newest["id"] != source:
                    problem(f"restored {source}, but the newest snapshot completed before the outage is "
                            f"{newest['id']}")
            if r["restored"]["zone"] != ZONE_B or not r["restored"]["encrypted"] or not r["restored"]["same_key"]:
                problem(f"the restored volume: {r['restored']}")
            if r["home_superseded_by"] != active:
                problem(f"the home volume's autoheal:superseded-by is {r['home_superseded_by']!r}")
            # The failover's own metric line, then three more checks: no second failover.
            def duration_logged():
                recs = failover_records(c, name)
                done = [x for x in recs if "FailoverDurationSeconds" in x]
                if done and sum(1 for x in recs if emf_real_s(x) > emf_real_s(done[0])) >= 3:
                    return recs
                return None

            recs, _ = wait_for("the failover's duration and three more checks", args.heal_timeout, duration_logged)
            if not recs:
                problem("no FailoverDurationSeconds line (and three checks after it)")
                recs = failover_records(c, name)
            durations = [x["FailoverDurationSeconds"] for x in recs if "FailoverDurationSeconds" in x]
            r["failover_duration_s"] = durations[0] if durations else None
            r["failover_duration_lines"] = len(durations)
            r["tags"] = {key: v for key, v in group_tags(c, s["group"]).items() if key.startswith("autoheal:")}
            # After the failover: the first firing of the snapshot schedule once the stack serves
            # from zone B, and what it snapshotted (the serving volume is the one to protect now).
            r["snapshot_after"] = snapshot_after(c, aws, name, r.get("in_service_ms") or clock.aws_ms(t_seen),
                                                 home_volume, active, args.heal_timeout)
        # 7. every FailoverStarted = 1 line of the round, and the ones after the outage.
        recs = failover_records(c, name)
        started = [x for x in recs if x["FailoverStarted"] == 1]
        r["checks_total"] = len(recs)
        r["started_total"] = len(started)
        r["started_after_outage"] = [
            {"aws_ms": clock.aws_ms(emf_real_s(x)), "targetZone": x.get("targetZone"),
             "snapshotId": x.get("snapshotId"), "restoredVolume": x.get("restoredVolume"),
             "reason": x.get("reason")}
            for x in started if emf_real_s(x) >= t_outage]
        r["blocked_after_outage"] = sum(1 for x in recs if x.get("FailoverBlocked") == 1 and emf_real_s(x) >= t_outage)
        if r["started_after_outage"]:
            r["detection_s"] = (r["started_after_outage"][0]["aws_ms"] - since) / 1000
            tag = r.get("tags", {}).get("autoheal:failover-started")
            if tag:
                r["detection_tag_s"] = int(tag) - since / 1000
            if r.get("restored") and r["started_after_outage"][0]["snapshotId"] != r["restored"]["snapshot"]:
                problem("the FailoverStarted line names another snapshot than the restored volume's")
        r["outcomes"] = dict(Counter(x.get("outcome", "?") for x in recs))
        def generic(function):  # the same key in every round
            return str(function).replace(name, "<name>", 1)

        r["invocations_failed"] = dict(Counter(
            f"{generic(i['function'])}: {i['outcome']}" + (f" ({i['error_type']})" if i.get("error_type") else "")
            for i in aws.control("/invocations") if i.get("outcome") != "success"))
        r["iam_denied"] = dict(Counter(
            f"{generic(d.get('function'))}: {d.get('operation')} ({d.get('action')})"
            for d in aws.control("/iam-evaluation")["decisions"] if d.get("decision") != "Allow"))
        if len(r["started_after_outage"]) != 1:
            problem(f"{len(r['started_after_outage'])} FailoverStarted = 1 lines after the outage, not 1")
        # 8. the outage ends; once the zone is back, the next snapshot run (what it snapshots).
        aws.send(f"/zone-outage?zone={urllib.parse.quote(HOME)}", "DELETE")
        outage_on = False
        if r.get("recovered"):
            r["snapshot_zone_back"] = snapshot_after(c, aws, name, aws.control("/health")["aws_time_ms"],
                                                     home_volume, r["restored_volume"], args.heal_timeout)
        r["ok"] = not r["problems"]
    except SystemExit:
        raise
    except Exception as e:  # a round that breaks is recorded, not dropped
        problem(f"{type(e).__name__}: {e}")
        log(f"round {k}: {type(e).__name__}: {e}")
    finally:
        # 8. the outage ends, destroy, the data kept by design removed.
        try:
            if outage_on:
                aws.send(f"/zone-outage?zone={urllib.parse.quote(HOME)}", "DELETE")
            if tf_env is not None and "apply" in r:
                log(f"round {k}: terraform destroy")
                d = run_terraform(args.terraform, workdir,
                                  ["destroy", "-auto-approve", "-input=false", "-no-color", *tf_vars],
                                  tf_env, args.timeout, os.path.join(workdir, "destroy.log"))
                r["destroy"] = {key: d[key] for key in ("rc", "timed_out", "wall_s")}
                with open(os.path.join(workdir, "destroy.log"), encoding="utf-8", errors="replace") as f:
                    text = " ".join(f.read().split())
                r["destroy"]["kept_message"] = bool(r.get("home_volume")) and \
                    f"Superseded data volume {r['home_volume']} kept" in text
                if d["rc"] != 0:
                    problem("terraform destroy failed: " + " / ".join(d["output_tail"][-8:]))
                    r["ok"] = False
                elif r.get("recovered") and not r["destroy"]["kept_message"]:
                    problem("destroy did not say the superseded home volume was kept")
                    r["ok"] = False
            if c is not None and "apply" in r:
                r["cleanup"] = cleanup(c, name, r.get("home_volume"))
                if r.get("recovered") and r["cleanup"]["final_snapshot_of"] != [r.get("restored_volume")]:
                    problem(f"final snapshots of {r['cleanup']['final_snapshot_of']}, not of the restored volume")
                    r["ok"] = False
                r["leftovers"] = leftovers(c)
                if any(r["leftovers"].values()):
                    problem("left after the cleanup: " + ", ".join(f"{x} {v}" for x, v in r["leftovers"].items() if v))
                    r["ok"] = False
        except Exception as e:
            problem(f"cleanup: {type(e).__name__}: {e}")
            r["ok"] = False
        finally:
            aws.stop()
        r["round_wall_s"] = time.monotonic() - t_round
        log(f"round {k}: {'ok' if r['ok'] else 'PROBLEMS: ' + '; '.join(r['problems'])} "
            f"({r['round_wall_s']:.0f} s)")
    return r


def aws_ms_of(text):
    """An RFC 3339 time the local AWS writes (with or without fractions, `Z`), in ms."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0


def snapshot_after(c, aws, name, after_ms, home_volume, active, timeout_s):
    """The first scheduled snapshot run (rule `<name>-snapshot`, the attachment function)
    whose event time is after `after_ms`: its first attempt's outcome, the error the function
    logged, and the scheduled snapshots of the restored volume (ever) and of the home volume
    (started after `after_ms`) once that attempt ended."""
    rule = f":rule/{name}-snapshot"
    function = f"{name}-attach"

    def fired():
        for e in aws.control("/events"):
            ev = e.get("event") or {}
            if e.get("origin") == "schedule" and any(x.endswith(rule) for x in ev.get("resources", [])) \
                    and aws_ms_of(ev["time"]) >= after_ms:
                attempts = [i for i in aws.control(f"/invocations?function={function}")
                            if i.get("event_id") == e["id"]]
                if attempts:
                    return e, attempts
        return None

    got, _ = wait_for("a scheduled snapshot run after the failover", timeout_s, fired)
    out = {"run": bool(got)}
    if got:
        e, attempts = got
        first = min(attempts, key=lambda i: i["attempt"])
        out.update(event_time_ms=aws_ms_of(e["event"]["time"]), outcome=first["outcome"],
                   error_type=first.get("error_type"))
        errors = []
        for line in function_lines(c, function):
            if line.startswith("{") and "scheduled snapshot run failed" in line:
                try:
                    errors.append(json.loads(line))
                except ValueError:
                    pass
        if errors:
            last = errors[-1]
            out["error"] = str(last.get("error") or last.get("fields", {}).get("error") or last)[:300]
    snaps = c["ec2"].describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:autoheal:snapshot", "Values": ["scheduled"]}])["Snapshots"]
    out["of_restored"] = sum(1 for x in snaps if x.get("VolumeId") == active)
    out["of_home_after"] = sum(1 for x in snaps if x.get("VolumeId") == home_volume
                               and to_ms(x["StartTime"]) >= after_ms)
    log(f"  snapshot run: {out.get('outcome')} {out.get('error_type') or ''}; scheduled snapshots of the "
        f"restored volume: {out['of_restored']}, of the home volume since: {out['of_home_after']}")
    return out


def cleanup(c, name, home_volume):
    """What destroy keeps by design: the superseded home volume, the scheduled snapshots, the
    final snapshot."""
    ec2 = c["ec2"]
    out = {"deleted_volumes": [], "deleted_snapshots": 0}
    finals = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:autoheal:final-snapshot", "Values": ["true"]},
        {"Name": "tag:autoheal:stack", "Values": [name]}])["Snapshots"]
    out["final_snapshot_of"] = [x.get("VolumeId") for x in finals]
    for v in ec2.describe_volumes(Filters=[{"Name": "tag:autoheal:stack", "Values": [name]}])["Volumes"]:
        if v["VolumeId"] == home_volume or v["State"] == "available":
            ec2.delete_volume(VolumeId=v["VolumeId"])
            out["deleted_volumes"].append(v["VolumeId"])
    for snap in finals + scheduled_snapshots(c, name):
        ec2.delete_snapshot(SnapshotId=snap["SnapshotId"])
        out["deleted_snapshots"] += 1
    return out


def run(args):
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    rng = random.Random(args.seed)
    extras = [rng.uniform(0, SNAPSHOT_INTERVAL_S) for _ in range(args.rounds)]
    started = time.monotonic()
    results = {"profile": PROFILE, "clock_scale": args.clock_scale, "rounds_asked": args.rounds,
               "seed": args.seed, "timeout": args.timeout, "recovery_timeout": args.recovery_timeout,
               "heal_timeout": args.heal_timeout, "rounds": []}
    for k in range(1, args.rounds + 1):
        results["rounds"].append(one_round(args, k, extras[k - 1], args.work))
    results["run_wall_s"] = time.monotonic() - started
    json.dump(results, sys.stdout, indent=1)


# --- report ------------------------------------------------------------------


def num(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"


def secs(v, digits=0):
    return "–" if v is None else f"{num(v, digits)} s"


def report(args):
    with open(args.results, encoding="utf-8") as f:
        res = json.load(f)
    rounds = res["rounds"]
    scale = res["clock_scale"]
    prof = next((r["profile"] for r in rounds if r.get("profile")), {})
    pending_s, snapshot_s = prof.get("pending_s"), prof.get("snapshot_s")
    rto_obj = f"{WINDOW_S + RTO_ALLOWANCE_S + (pending_s or 0):g}"
    rpo_obj = f"{SNAPSHOT_INTERVAL_S + (snapshot_s or 0):g}"
    # Settings as the profile gives them (AWS seconds), written without a needless ".0".
    prof = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in prof.items()}
    pending_s, snapshot_s = prof.get("pending_s"), prof.get("snapshot_s")
    lines = []
    w = lines.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if args.default_terraform == "yes":
        w("## Failover benchmark: a lost home zone to service from the failover zone, on the local AWS")
    else:
        w(f"## Failover benchmark, the same with Terraform {args.terraform_version}")
    w("")
    w(f"Produced by `{args.command}` on {now}, at commit {args.git}; the run took "
      f"{res['run_wall_s'] / 60:.1f} minutes ({num(median([r.get('round_wall_s') for r in rounds]))} s per "
      f"round, median).")
    w("")
    w(f"- Machine: {os.cpu_count()} CPUs, {args.cpu}, Linux {os.uname().release}; load average "
      f"{args.loadavg} when the run started (the machine is shared with another session).")
    w(f"- Terraform v{args.terraform_version} (`{args.terraform}`); provider autoheal {args.provider_version} "
      f"(sha256 {args.provider_sha[:12]}…, installed {args.provider_installed}, copied to a private mirror for the run), the attachment and failover "
      f"functions' zip embedded in it.")
    w(f"- One fresh local AWS per round (`terraform-tests/local_aws`, profile `{res['profile']}`: pending "
      f"instances {pending_s} s, shutdowns {prof.get('shutdown_s')} s, snapshots {snapshot_s} s, restored "
      f"volumes {prof.get('volume_create_s')} s, a lost zone's instances terminated after "
      f"{prof.get('zone_outage_terminate_s')} s, failed launches retried after {prof.get('launch_retry_s')} s "
      f"doubling to {prof.get('launch_retry_cap_s')} s, schedule deliveries up to "
      f"{prof.get('schedule_jitter_s')} s late, IAM evaluated; clock scale {scale}: AWS time runs "
      f"{1 / scale:.0f} times faster than real time). A fresh one per round, not one for all: nothing a round "
      "leaves (a stuck outage, a group still failing over, kept volumes and snapshots, the call and log "
      "records the local AWS keeps growing) can change the next round, and every round starts at the same "
      "point of the schedules; it costs "
      f"{num(median([r.get('local_aws_start_s') for r in rounds]), 1)} s per round (start and one read per "
      "service, median).")
    w(f"- Configuration: `terraform-tests/fixtures/stack` with `names = [\"bfoNN\"]`, "
      f"`snapshot_interval = \"{SNAPSHOT_INTERVAL}\"`, `failover_zones = [\"{ZONE_B}\"]`, "
      f"`failover_detection_window = \"{WINDOW}\"`, defaults otherwise (home zone {HOME}, "
      "`lifecycle_hook_timeout` 300).")
    w(f"- Each round: apply and wait until the stack serves; kill the instance (TerminateInstances) and wait "
      f"for the heal at home; the same with `shutdown_s` = {SLOW_SHUTDOWN_S} (a hung guest holding the volume "
      f"{SLOW_SHUTDOWN_S / 60:.0f} minutes), then `shutdown_s` restored; wait for a completed scheduled "
      f"snapshot, then a further uniform random 0–{SNAPSHOT_INTERVAL_S} AWS s (seed {res['seed']}, the same "
      f"draws for every run), so the outage falls anywhere in the snapshot interval; "
      f"`POST /_localaws/zone-outage {{\"zone\": \"{HOME}\"}}`; wait (at most {res['recovery_timeout']:.0f} "
      f"real s) until an InService instance in {ZONE_B} has the volume named by the group's "
      "`autoheal:active-volume` attached and the Elastic IP; end the outage; `terraform destroy`; delete the "
      "kept home volume, the scheduled snapshots and the final snapshot with boto3. Also watched, after the "
      "failover: the next scheduled snapshot run while the zone is still out, and the next one after it "
      "returns (below). Terraform's own part is small: `apply` took a median "
      f"{num(median([r.get('apply', {}).get('wall_s') for r in rounds]), 1)} s and `destroy` "
      f"{num(median([r.get('destroy', {}).get('wall_s') for r in rounds]), 1)} s of real time.")
    w("")
    w("| round | random wait before the outage | RTO | RPO | detection delay | failover duration (metric) "
      "| FailoverStarted = 1 after the outage | false failovers: kill / slow shutdown (checks while down) "
      "| recovered? |")
    w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rounds:
        def chaos_cell(key):
            ch = r.get(key)
            if not ch:
                return "–"
            healed = "" if ch["healed"] else ", **no heal**"
            return f"{ch['failover_started']} ({ch['checks_while_down']}{healed})"
        started = len(r.get("started_after_outage", [])) if "since_ms" in r else None
        recovered = "yes" if r.get("recovered") else "**no: failed recovery**"
        if r.get("recovered") and not r.get("ok"):
            recovered += " (with problems, below)"
        w(f"| {r['round']} | {secs(r['extra_wait_s'])} | {secs(r.get('rto_s'), 1)} | {secs(r.get('rpo_s'), 1)} | "
          f"{secs(r.get('detection_s'), 1)} | {secs(r.get('failover_duration_s'))} | "
          f"{'–' if started is None else (str(started) if started == 1 else f'**{started}**')} | "
          f"{chaos_cell('kill')} / {chaos_cell('slow')} | {recovered} |")
    w("")
    rto = [r["rto_s"] for r in rounds if r.get("rto_s") is not None]
    rpo = [r["rpo_s"] for r in rounds if r.get("rpo_s") is not None]
    n = len(rounds)
    failed = [r for r in rounds if not r.get("recovered")]

    def verdict(values, objective, what):
        if not values:
            return f"{what}: no figure (no round recovered): **not met**"
        worst = max(values)
        objective = float(objective)
        over = sum(1 for v in values if v > objective)
        met = "met" if worst <= objective and not failed else "**not met**"
        why = "" if met == "met" else (
            f" ({over} of {len(values)} rounds over it" + (f"; {len(failed)} round(s) never recovered" if failed else "")
            + ")")
        return (f"{what}: median {num(median(values), 1)} s, worst {num(worst, 1)} s, against the objective "
                f"{objective:g} s: {met}{why}")

    w(f"- {verdict(rto, rto_obj, 'RTO')}. Objective = the detection window ({WINDOW_S} s) + {RTO_ALLOWANCE_S} s "
      f"+ the instance's boot (`pending_s`, {pending_s} s, GET /_localaws/profile).")
    w(f"- {verdict(rpo, rpo_obj, 'RPO')}. Objective = `snapshot_interval` ({SNAPSHOT_INTERVAL_S} s) + one "
      f"snapshot's duration (`snapshot_s`, {snapshot_s} s).")
    kills = sum(r["kill"]["failover_started"] for r in rounds if r.get("kill"))
    slows = sum(r["slow"]["failover_started"] for r in rounds if r.get("slow"))
    chaos_n = sum(1 for r in rounds if r.get("kill")) + sum(1 for r in rounds if r.get("slow"))
    checks = sum(r[key]["checks_while_down"] for r in rounds for key in ("kill", "slow") if r.get(key))
    heal_k = [r["kill"].get("heal_aws_s") for r in rounds if r.get("kill")]
    heal_s = [r["slow"].get("heal_aws_s") for r in rounds if r.get("slow")]
    cancelled = [r["slow"].get("launches", {}).get("Cancelled", 0) for r in rounds if r.get("slow")]
    w(f"- False failovers: {kills + slows} in {chaos_n} chaos events ({kills} after kills, {slows} after slow "
      f"shutdowns), over {checks} failover checks that ran while the stack was not serving. The kills healed "
      f"at home in a median {num(median(heal_k))} AWS s, the slow shutdowns in {num(median(heal_s))} AWS s "
      f"(as the benchmark's poll saw them), each slow one through a median {num(median(cancelled))} launches "
      f"abandoned by the hook's timeout (300 s, while the old instance held the volume; Cancelled activities, "
      f"not zone-level failures, which the check rightly ignores).")
    exact = sum(1 for r in rounds if len(r.get("started_after_outage", [])) == 1)
    w(f"- Real outages recovered: {n - len(failed)} of {n}"
      + (" (every one)" if not failed else f" (**{len(failed)} failed recovery**: rounds "
         f"{', '.join(str(r['round']) for r in failed)})")
      + f"; exactly one FailoverStarted = 1 line after the outage in {exact} of {n} rounds.")
    w("")

    # Where the RTO goes.
    parts = []
    for r in rounds:
        if r.get("rto_s") is None or not r.get("started_after_outage") or r.get("first_failed_launch_ms") is None:
            continue
        since = r["since_ms"]
        moved = r["started_after_outage"][0]["aws_ms"]
        judged = int(r["tags"]["autoheal:failover-started"]) * 1000 if r.get("tags", {}).get(
            "autoheal:failover-started") else None
        if judged is None:
            continue
        parts.append({
            "terminated": (r["first_failed_launch_ms"] - since) / 1000,
            "judged": (judged - r["first_failed_launch_ms"]) / 1000,
            "detected": (moved - judged) / 1000,
            "relaunch": (r["launch_b_start_ms"] - moved) / 1000,
            "heal": (r["in_service_ms"] - r["launch_b_start_ms"]) / 1000,
            "failed": r["failed_launches_home"],
            "backoff": (r["launch_b_start_ms"] - r["failed_launch_starts_ms"][-1]) / 1000,
            "before_move": sum(1 for x in r["failed_launch_starts_ms"] if x <= moved),
            "from_first": (r["launch_b_start_ms"] - r["first_failed_launch_ms"]) / 1000,
        })
    if parts:
        w("Where the RTO goes (median over the recovered rounds, AWS seconds; each figure is AWS's own record "
          "unless said):")
        w("")
        w("| from | to | median | range |")
        w("| --- | --- | ---: | --- |")
        for key, a, b in (
                ("terminated", "the outage starts", f"the group's first failed launch in {HOME} (its instance "
                 f"impaired for `zone_outage_terminate_s`, then terminated and replaced)"),
                ("judged", "the first failed launch", "the failing-over run's \"now\" (its "
                 "`autoheal:failover-started` tag, whole seconds: the window, then the next check's scheduled "
                 "moment)"),
                ("detected", "that \"now\"", "the run's `FailoverStarted = 1` line (the schedule's delivery "
                 "lateness, the function's start, the restored volume's creation, the group's tags and move; "
                 "the line's time is the function's clock mapped to AWS time)"),
                ("relaunch", "the group moved", f"the group's launch in {ZONE_B} (the StartTime of its activity)"),
                ("heal", f"the launch in {ZONE_B}", "InService (boot, the hook, the heal: the activity's EndTime)")):
            vals = [p[key] for p in parts]
            w(f"| {a} | {b} | {num(median(vals), 1)} s | {num(min(vals), 1)}–{num(max(vals), 1)} s |")
        w("")
        retry_s, cap_s = float(prof.get("launch_retry_s") or 0), float(prof.get("launch_retry_cap_s") or 0)

        def next_step(failures):
            """The group's back-off after `failures` failed launches (launches.py's rule)."""
            step = retry_s * 2 ** max(failures - 1, 0)
            return min(step, cap_s) if cap_s > 0 else step

        sooner = sum(1 for p in parts if p["backoff"] < next_step(p["before_move"]) - 1)
        w(f"The group's failed launches in {HOME}: median {num(median([p['before_move'] for p in parts]))} "
          f"before the move (its back-off: {prof.get('launch_retry_s')} s doubling to "
          f"{prof.get('launch_retry_cap_s')} s). The failing-over run suspends the group's `Launch` process, "
          f"moves it (UpdateAutoScalingGroup with the failover subnet, no change of capacity) and resumes "
          f"`Launch`, which makes the group launch at once (handler/src/failover.rs): the launch in {ZONE_B} "
          f"came a median {num(median([p['backoff'] for p in parts]), 1)} s after the group's last failed "
          f"launch (range {num(min(p['backoff'] for p in parts), 1)}–{num(max(p['backoff'] for p in parts), 1)} "
          f"s), before the back-off's next step would have fallen due in {sooner} of {len(parts)} rounds. "
          f"The row \"the group moved\" can be near zero or negative: the run writes its line after the resume. "
          f"Measured from the first failed launch, the launch in {ZONE_B} came after a median "
          f"{num(median([p['from_first'] for p in parts]), 1)} s (range "
          f"{num(min(p['from_first'] for p in parts), 1)}–{num(max(p['from_first'] for p in parts), 1)} s).")
        w("")

    w("How each figure is measured (all in AWS time, the local AWS's clock: timestamps it shows for scaling "
      "activities, snapshots and the outage; AWS seconds = real seconds / scale):")
    w("")
    w("- outage start: `since_ms` of the `POST /_localaws/zone-outage` answer.")
    w(f"- RTO: the `EndTime` of the `Successful` launch activity (DescribeScalingActivities) of the instance "
      f"serving from {ZONE_B}, minus the outage start. The local AWS stamps it at the CompleteLifecycleAction "
      "CONTINUE that makes the instance InService, which the heal function sends only after it attached the "
      "restored volume and associated the Elastic IP: the most faithful AWS-time figure of \"service is back\" "
      "(the benchmark's own poll, every 0.25 real s = "
      f"{POLL_S / scale:.0f} AWS s, saw the same instance serve a median "
      f"{num(median([(r['seen_serving_ms'] - r['in_service_ms']) / 1000 for r in rounds if r.get('in_service_ms') and r.get('seen_serving_ms')]), 1)} "
      "AWS s later).")
    w("- RPO: the outage start minus the `StartTime` of the snapshot the restored volume was made from (the "
      "volume's `SnapshotId`): the writes after that moment are not in the restored volume (they stay on the "
      "superseded home volume, which is kept). Snapshots' `StartTime` is whole seconds, so the figure is to ±1 s.")
    w("- detection delay: the time of the failover run that wrote `FailoverStarted = 1`, minus the outage "
      "start. That time is the EMF line's `_aws.Timestamp` (the function's clock, real time) mapped to AWS time "
      "through the local AWS's clock (`GET /_localaws/clock`: AWS time = utc0 + (real − utc0) / scale; checked "
      "against `GET /_localaws/health` at the outage: off by "
      f"{num(max((abs(r['clock_error_ms']) for r in rounds if r.get('clock_error_ms') is not None), default=None), 0)}"
      " ms of AWS time at most). The run wrote it after it had restored the volume and moved the group. "
      "The group's `autoheal:failover-started` tag (the run's own \"now\": the newest of the scheduled event's "
      "time and the activities' timestamps) gives a median of "
      f"{num(median([r.get('detection_tag_s') for r in rounds]), 1)} s: earlier, since the schedule's event "
      "time is the scheduled moment, not the delivery, and the restore comes after.")
    w("- failover duration: the failover function's `FailoverDurationSeconds` (from its "
      "`autoheal:failover-started` tag to the EndTime of the first launch in the new zone), in its EMF line; "
      "reported once per failover.")
    w("- FailoverStarted = 1 after the outage: the failover function's EMF lines (log group "
      "`/aws/lambda/<name>-failover`) with `FailoverStarted` = 1 written after the outage began, counted after "
      "the duration line and three more checks; must be exactly 1.")
    w("- false failovers: `FailoverStarted = 1` lines written between a kill and the first check after the "
      "heal; the number in brackets is how many checks ran while the stack was not serving (from the kill to "
      "the benchmark seeing the new instance serve), i.e. how many chances the function had to fail over "
      "wrongly.")
    w("")
    # What else was checked, and anything wrong.
    probs = [(r["round"], p) for r in rounds for p in r.get("problems", [])]
    w("Also checked in every recovered round: the restored volume is in "
      f"{ZONE_B}, encrypted with the home volume's key, tagged `autoheal:restored-for`, made from the newest "
      "scheduled snapshot that had completed before the outage; the home volume is tagged "
      "`autoheal:superseded-by` it; destroy says it kept the superseded home volume and takes the final "
      "snapshot of the restored volume; after the cleanup nothing of the stack is left "
      "(group, instance, function, rule, role, log group, VPC, security group, launch template, volume, "
      "address, snapshot). "
      + ("All of it held." if not probs else "**What did not hold:**"))
    w("")
    for k, p in probs:
        w(f"- round {k}: {p}")
    if probs:
        w("")
    # What the functions did, summed over the rounds.
    def total(key):
        out = Counter()
        for r in rounds:
            out.update(r.get(key) or {})
        return ", ".join(f"{k} {v}" for k, v in out.most_common()) or "none"

    w(f"The failover function's checks over all rounds, by outcome: {total('outcomes')}. Lambda attempts that "
      f"did not succeed from the apply to the end of the outage (GET /_localaws/invocations): {total('invocations_failed')}. Calls of the functions "
      f"that IAM evaluation denied (GET /_localaws/iam-evaluation): {total('iam_denied')}.")
    w("")
    for key, when in (("snapshot_after", f"once the stack served from {ZONE_B}, the zone still out"),
                      ("snapshot_zone_back", f"once the outage of {HOME} had ended")):
        after = [r[key] for r in rounds if r.get(key)]
        if not after:
            continue
        ran = [a for a in after if a["run"]]
        outcomes = Counter(f"{a['outcome']}" + (f" ({a['error_type']})" if a.get("error_type") else "") for a in ran)
        errors = sorted({a["error"] for a in ran if a.get("error") and a["outcome"] != "success"})
        w(f"Scheduled snapshots after the failover, {when} (in each recovered round, the first firing of the "
          f"`<name>-snapshot` schedule from then on, run by the attachment function): its first attempt ended "
          + (", ".join(f"{k} in {v}" for k, v in outcomes.items()) or "nowhere")
          + f" of {len(after)} rounds"
          + (f" ({len(after) - len(ran)} ran no attempt in time)" if len(ran) < len(after) else "")
          + f"; scheduled snapshots of the restored (serving) volume: {sum(a['of_restored'] for a in after)} "
          f"in all; new ones of the superseded home volume: {sum(a['of_home_after'] for a in after)}."
          + (f" The function's error: `{errors[0]}`." if errors else ""))
        w("")
    pend = [r["round"] for r in rounds if r.get("pending_at_outage")]
    if pend:
        w(f"Rounds whose outage began while a newer snapshot was still pending (that snapshot stays pending "
          f"while the zone is out, so the one before it was restored): {', '.join(map(str, pend))}.")
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
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--clock-scale", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=600.0, help="each terraform apply / destroy, real s")
    p.add_argument("--recovery-timeout", type=float, default=300.0, help="outage -> service in zone B, real s")
    p.add_argument("--heal-timeout", type=float, default=120.0, help="each other wait, real s")
    p.set_defaults(fn=run)
    p = sub.add_parser("report")
    for flag in ("--results", "--command", "--git", "--loadavg", "--cpu", "--terraform",
                 "--terraform-version", "--provider-version", "--provider-sha", "--provider-installed",
                 "--default-terraform"):
        p.add_argument(flag, required=True)
    p.set_defaults(fn=report)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
