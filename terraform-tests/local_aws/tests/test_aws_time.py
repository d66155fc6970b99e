"""AWS time (localaws/clock.py): the timestamps a client compares with AWS durations advance
with the scaled clock, so they agree with those durations.

The module's server runs the fast profile at clock scale 0.01: 100 AWS seconds pass per real
second, and so does AWS time. On real UTC (the old behaviour) every difference below would be
100 times smaller.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from conftest import AMI, REGION, network, wait_for

SCALE = 0.01  # conftest's clock scale
RFC3339_MS = r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def parse(text: str) -> float:
    """Seconds since the epoch of ``2026-12-07T03:10:00Z`` or ``...:00.123Z``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def aws_now(server) -> float:
    return server.ctl("GET", "/health")["aws_time_ms"] / 1000


def virtual_now(server) -> float:
    return server.ctl("GET", "/clock")["virtual_now"]


def wait_virtual(server, until: float) -> None:
    wait_for(lambda: virtual_now(server) >= until, timeout=30, interval=0.005, what=f"virtual time {until}")


def test_health_and_clock_show_aws_time_advancing_at_one_over_the_scale(server):
    server.reset()
    health = server.ctl("GET", "/health")
    assert re.fullmatch(RFC3339_MS, health["aws_time"]), health
    assert abs(parse(health["aws_time"]) * 1000 - health["aws_time_ms"]) <= 1
    clock = server.ctl("GET", "/clock")
    assert re.fullmatch(RFC3339_MS, clock["aws_time"]) and isinstance(clock["aws_time_ms"], int)
    # AWS time is the clock's creation time plus virtual time: their difference is constant.
    origin = clock["aws_time_ms"] / 1000 - clock["virtual_now"]
    assert origin <= time.time()
    real0, aws0 = time.monotonic(), aws_now(server)
    time.sleep(0.5)
    real1, aws1 = time.monotonic(), aws_now(server)
    advanced, elapsed = aws1 - aws0, (real1 - real0) / SCALE
    assert 0.9 * elapsed <= advanced <= 1.1 * elapsed + 2, (advanced, elapsed)  # ~50 AWS s, not 0.5
    assert aws1 > time.time() + 40  # ahead of real UTC
    # A scale change keeps it continuous (virtual time is) and changes its speed.
    server.ctl("POST", "/clock", {"scale": 0.1})
    try:
        before = aws_now(server)
        time.sleep(0.3)
        slower = aws_now(server) - before
    finally:
        server.ctl("POST", "/clock", {"scale": SCALE})
    assert 2.5 <= slower <= 4.5, slower  # 0.3 s real at 0.1: 3 AWS s
    clock = server.ctl("GET", "/clock")
    assert abs(clock["aws_time_ms"] / 1000 - clock["virtual_now"] - origin) < 0.01
    # A reset does not restart it.
    server.reset()
    assert aws_now(server) > aws1


def test_failed_launch_attempts_launch_retry_s_apart_show_start_times_that_far_apart(server):
    """Two failed launch attempts launch_retry_s (300) AWS seconds apart: their StartTimes are
    300 s apart (on real UTC they were 3 s apart, the real time it takes), and the Cause names the same time."""
    server.reset()
    net = network(server)
    server.ctl("POST", "/profile", {"launch_retry_s": 300, "launch_retry_cap_s": 300})
    ec2, asg = server.client("ec2"), server.client("autoscaling")
    lt = ec2.create_launch_template(LaunchTemplateName="bad", LaunchTemplateData={
        "ImageId": "ami-0123", "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    before = aws_now(server)
    asg.create_auto_scaling_group(AutoScalingGroupName="g", MinSize=1, MaxSize=1, DesiredCapacity=1,
                                  VPCZoneIdentifier=net["subnet"], LaunchTemplate={"LaunchTemplateId": lt})

    def failed():
        acts = asg.describe_scaling_activities(AutoScalingGroupName="g")["Activities"]
        return [a for a in acts if a["StatusCode"] == "Failed"]

    second, first = wait_for(lambda: failed()[1:] and failed()[:2], timeout=15, what="two failed attempts")
    after = aws_now(server)
    gap = second["StartTime"].timestamp() - first["StartTime"].timestamp()
    assert 300 <= gap <= 305, gap  # the scheduler's own latency: a few ms real
    for a in (first, second):
        start = a["StartTime"].timestamp()
        assert before - 1 <= start <= after + 1, (before, start, after)
        assert a["EndTime"] == a["StartTime"]
        moment = datetime.fromtimestamp(int(start), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert a["Cause"].startswith(f"At {moment} an instance was started"), (a["Cause"], moment)


def test_a_rate_rules_events_are_its_period_of_aws_time_apart(server):
    """rate(1 minute) at scale 0.01 fires every 0.6 s real; its events' ``time`` (the
    scheduled moments) are 60 AWS seconds apart, the first 60 s after the PutRule."""
    server.reset()
    assert server.ctl("GET", "/profile")["schedule_jitter_s"] == 0
    put = aws_now(server)
    arn = server.client("events").put_rule(Name="tick", ScheduleExpression="rate(1 minute)")["RuleArn"]
    put_after = aws_now(server)

    def records():
        return [e for e in server.ctl("GET", "/events") if e["origin"] == "schedule" and arn in e["matched_rules"]]

    got = wait_for(lambda: len(records()) >= 3 and records(), timeout=20, what="three firings")
    times = [parse(r["event"]["time"]) for r in got]
    assert [r["time"] for r in got] == [r["event"]["time"] for r in got]
    assert [b - a for a, b in zip(times, times[1:])] == [60.0] * (len(times) - 1), [r["time"] for r in got]
    assert int(put) + 60 - 1 <= times[0] <= put_after + 60, (put, times[0], put_after)


def test_snapshot_start_times_are_aws_time(server):
    """Two snapshots taken 200 AWS seconds apart (2 s real) show StartTimes 200 s apart, in
    CreateSnapshot's answer and DescribeSnapshots alike; the outage's ``since`` minus a
    snapshot's StartTime is the recovery point in AWS seconds."""
    server.reset()
    server.ctl("POST", "/profile", {"snapshot_s": 100})
    ec2 = server.client("ec2")
    vol1 = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    vol2 = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    t0 = virtual_now(server)
    made1 = ec2.create_snapshot(VolumeId=vol1)
    wait_virtual(server, t0 + 200)
    made2 = ec2.create_snapshot(VolumeId=vol2)
    t1 = virtual_now(server)
    gap = made2["StartTime"].timestamp() - made1["StartTime"].timestamp()
    assert 200 <= gap <= t1 - t0 + 1, (gap, t1 - t0)
    shown = {s["SnapshotId"]: s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
    assert shown[made1["SnapshotId"]]["StartTime"] == made1["StartTime"]
    assert shown[made2["SnapshotId"]]["StartTime"] == made2["StartTime"]
    assert abs(made2["StartTime"].timestamp() - aws_now(server)) < 20

    # The recovery point of a zone outage 150 AWS seconds after the second snapshot.
    wait_virtual(server, t1 + 150)
    outage = server.ctl("POST", "/zone-outage", {"zone": f"{REGION}a"})
    assert re.fullmatch(RFC3339_MS, outage["since"]), outage
    since = outage["since_ms"] / 1000
    # `since` is written to the millisecond: up to 1 ms apart, plus float rounding.
    assert abs(parse(outage["since"]) - since) <= 0.001 + 1e-6
    assert 150 <= since - made2["StartTime"].timestamp() <= 150 + 20
    assert server.ctl("GET", "/zone-outage")[0]["since"] == outage["since"]


def test_impaired_since_is_the_outage_start_in_aws_time(server):
    server.reset()
    net = network(server)
    ec2 = server.client("ec2")
    iid = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                            SubnetId=net["subnet"])["Instances"][0]["InstanceId"]
    server.ctl("POST", "/profile", {"zone_outage_terminate_s": 100_000})
    outage = server.ctl("POST", "/zone-outage", {"zone": f"{REGION}a"})
    [status] = ec2.describe_instance_status(InstanceIds=[iid])["InstanceStatuses"]
    since = status["SystemStatus"]["Details"][0]["ImpairedSince"].timestamp()
    assert abs(since - outage["since_ms"] / 1000) < 1, (since, outage)
