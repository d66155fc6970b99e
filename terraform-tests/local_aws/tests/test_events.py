"""EventBridge: the lifecycle event's shape, pattern semantics, delivery."""

from __future__ import annotations

import json
import re

import pytest

from conftest import (
    ACCOUNT,
    REGION,
    create_function,
    create_group,
    hook,
    invocations,
    network,
    rule_to_function,
    wait_for,
)
from localaws import patterns

LAUNCH_PATTERN = {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-launch Lifecycle Action"]}


def test_lifecycle_event_has_aws_shape(server):
    server.reset()
    fn_arn = create_function(server, "echo", "echo")
    rule_arn = rule_to_function(server, "launch", LAUNCH_PATTERN, fn_arn)
    net = network(server)
    create_group(server, "web", net, [hook(name="attach", metadata="vol-0abc")])
    create_group(server, "nometa", net, [hook(name="attach")])
    group_arn = server.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"
    ][0]["AutoScalingGroupARN"]
    instance_id = server.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["web"])[
        "AutoScalingGroups"
    ][0]["Instances"][0]["InstanceId"]

    ok = wait_for(lambda: [r for r in invocations(server, "echo") if r["outcome"] == "success"][1:] or None,
                  timeout=20, what="two echo invocations")
    events = [json.loads(r["response"])["event"] for r in invocations(server, "echo") if r["outcome"] == "success"]
    assert len(ok) == 1 and len(events) == 2
    event = next(e for e in events if e["detail"]["AutoScalingGroupName"] == "web")
    token = server.ctl("GET", "/lifecycle-actions")
    token = next(a["LifecycleActionToken"] for a in token if a["InstanceId"] == instance_id)

    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert event["version"] == "0"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", event["id"])
    assert event["detail-type"] == "EC2 Instance-launch Lifecycle Action"
    assert event["source"] == "aws.autoscaling"
    assert event["account"] == ACCOUNT
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert event["region"] == REGION
    assert event["resources"] == [group_arn]
    assert event["detail"] == {
        "Origin": "EC2",
        "Destination": "AutoScalingGroup",
        "LifecycleActionToken": token,
        "AutoScalingGroupName": "web",
        "LifecycleHookName": "attach",
        "EC2InstanceId": instance_id,
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "NotificationMetadata": "vol-0abc",
    }
    other = next(e for e in events if e["detail"]["AutoScalingGroupName"] == "nometa")
    assert "NotificationMetadata" not in other["detail"]

    recorded = {e["id"]: e for e in server.ctl("GET", "/events")}
    assert recorded[event["id"]]["matched_rules"] == [rule_arn]
    assert recorded[event["id"]]["event"] == event


# (pattern, event, matches?) -- AWS's documented semantics.
EVENT = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance-launch Lifecycle Action",
    "source": "aws.autoscaling",
    "account": "123456789012",
    "time": "2026-11-25T10:00:00Z",
    "region": "ap-southeast-2",
    "resources": ["arn:aws:autoscaling:ap-southeast-2:123456789012:autoScalingGroup:x:autoScalingGroupName/web"],
    "detail": {
        "AutoScalingGroupName": "web-asg",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "EC2InstanceId": "i-0abc",
        "Size": 7,
        "Ratio": 0.5,
        "Flag": True,
        "Empty": None,
        "Tags": ["a", "b"],
        "Placement": {"AvailabilityZone": "ap-southeast-2a", "Tenancy": "default"},
        "Ip": "10.0.1.17",
    },
}

PATTERN_TABLE = [
    ("exact source", {"source": ["aws.autoscaling"]}, True),
    ("exact one of several", {"source": ["aws.ec2", "aws.autoscaling"]}, True),
    ("exact mismatch", {"source": ["aws.ec2"]}, False),
    ("exact is case sensitive", {"source": ["AWS.autoscaling"]}, False),
    ("two fields AND", {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance-launch Lifecycle Action"]}, True),
    ("two fields AND, one fails", {"source": ["aws.autoscaling"], "detail-type": ["Other"]}, False),
    ("prefix", {"detail": {"AutoScalingGroupName": [{"prefix": "web-"}]}}, True),
    ("prefix mismatch", {"detail": {"AutoScalingGroupName": [{"prefix": "db-"}]}}, False),
    ("prefix ignore case", {"detail": {"AutoScalingGroupName": [{"prefix": {"equals-ignore-case": "WEB-"}}]}}, True),
    ("suffix", {"detail": {"AutoScalingGroupName": [{"suffix": "-asg"}]}}, True),
    ("equals-ignore-case", {"source": [{"equals-ignore-case": "AWS.AutoScaling"}]}, True),
    ("wildcard", {"detail": {"LifecycleTransition": [{"wildcard": "autoscaling:*_LAUNCHING"}]}}, True),
    ("wildcard mismatch", {"detail": {"LifecycleTransition": [{"wildcard": "autoscaling:*_TERMINATING"}]}}, False),
    ("anything-but value", {"source": [{"anything-but": "aws.ec2"}]}, True),
    ("anything-but excludes", {"source": [{"anything-but": "aws.autoscaling"}]}, False),
    ("anything-but list", {"source": [{"anything-but": ["aws.ec2", "aws.autoscaling"]}]}, False),
    ("anything-but prefix", {"detail": {"AutoScalingGroupName": [{"anything-but": {"prefix": "db-"}}]}}, True),
    ("anything-but prefix excludes", {"detail": {"AutoScalingGroupName": [{"anything-but": {"prefix": "web-"}}]}}, False),
    ("anything-but on a missing field", {"detail": {"Missing": [{"anything-but": "x"}]}}, False),
    ("exists true", {"detail": {"EC2InstanceId": [{"exists": True}]}}, True),
    ("exists true, missing", {"detail": {"NotificationMetadata": [{"exists": True}]}}, False),
    ("exists false, missing", {"detail": {"NotificationMetadata": [{"exists": False}]}}, True),
    ("exists false, present", {"detail": {"EC2InstanceId": [{"exists": False}]}}, False),
    ("exists on an object is not a leaf", {"detail": {"Placement": [{"exists": True}]}}, False),
    ("numeric range", {"detail": {"Size": [{"numeric": [">", 5, "<=", 7]}]}}, True),
    ("numeric range excludes", {"detail": {"Size": [{"numeric": [">=", 8]}]}}, False),
    ("numeric equals float", {"detail": {"Ratio": [{"numeric": ["=", 0.5]}]}}, True),
    ("numeric never matches a string", {"detail": {"AutoScalingGroupName": [{"numeric": [">", 0]}]}}, False),
    ("numeric never matches a boolean", {"detail": {"Flag": [{"numeric": ["=", 1]}]}}, False),
    ("literal number", {"detail": {"Size": [7]}}, True),
    ("literal number is not a string", {"detail": {"Size": ["7"]}}, False),
    ("literal boolean", {"detail": {"Flag": [True]}}, True),
    ("literal null", {"detail": {"Empty": [None]}}, True),
    ("nested detail field", {"detail": {"Placement": {"AvailabilityZone": ["ap-southeast-2a"]}}}, True),
    ("nested detail field mismatch", {"detail": {"Placement": {"AvailabilityZone": ["ap-southeast-2b"]}}}, False),
    ("nested missing object", {"detail": {"Nope": {"Inner": ["x"]}}}, False),
    ("array value matches any element", {"detail": {"Tags": ["b"]}}, True),
    ("array value no element", {"detail": {"Tags": ["c"]}}, False),
    ("resources array", {"resources": [{"prefix": "arn:aws:autoscaling:ap-southeast-2:"}]}, True),
    ("cidr", {"detail": {"Ip": [{"cidr": "10.0.1.0/24"}]}}, True),
    ("cidr mismatch", {"detail": {"Ip": [{"cidr": "10.0.2.0/24"}]}}, False),
    ("$or", {"$or": [{"source": ["aws.ec2"]}, {"detail": {"Size": [7]}}]}, True),
    ("$or none", {"$or": [{"source": ["aws.ec2"]}, {"detail": {"Size": [8]}}]}, False),
]


@pytest.mark.parametrize("name,pattern,expected", PATTERN_TABLE, ids=[row[0] for row in PATTERN_TABLE])
def test_pattern_table(name, pattern, expected):
    assert patterns.matches(pattern, EVENT) is expected


def test_patterns_through_the_api(server):
    """The same table through TestEventPattern and through PutEvents + rules."""
    server.reset()
    events = server.client("events")
    for name, pattern, expected in PATTERN_TABLE:
        got = events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(EVENT))["Result"]
        assert got is expected, name

    rules = {}
    for i, (name, pattern, expected) in enumerate(PATTERN_TABLE):
        arn = events.put_rule(Name=f"r{i}", EventPattern=json.dumps(pattern))["RuleArn"]
        rules[arn] = (name, expected)
    disabled = events.put_rule(Name="off", EventPattern=json.dumps({"source": ["aws.autoscaling"]}), State="DISABLED")["RuleArn"]
    resp = events.put_events(Entries=[{
        "Source": EVENT["source"], "DetailType": EVENT["detail-type"], "Detail": json.dumps(EVENT["detail"]),
        "Resources": EVENT["resources"],
    }])
    assert resp["FailedEntryCount"] == 0
    event_id = resp["Entries"][0]["EventId"]
    recorded = next(e for e in server.ctl("GET", "/events") if e["id"] == event_id)
    assert recorded["origin"] == "PutEvents"
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", recorded["event"]["time"])
    matched = set(recorded["matched_rules"])
    assert disabled not in matched
    for arn, (name, expected) in rules.items():
        assert (arn in matched) is expected, name


def test_put_events_to_a_lambda_rule_runs_it(server):
    server.reset()
    fn_arn = create_function(server, "echo", "echo")
    rule_to_function(server, "custom", {"source": ["my.app"]}, fn_arn)
    resp = server.client("events").put_events(
        Entries=[{"Source": "my.app", "DetailType": "Thing", "Detail": json.dumps({"n": 1})}]
    )
    assert resp["FailedEntryCount"] == 0
    rec = wait_for(lambda: [r for r in invocations(server, "echo") if r["outcome"] == "success"], what="invocation")
    event = json.loads(rec[0]["response"])["event"]
    assert event["source"] == "my.app" and event["detail"] == {"n": 1} and event["detail-type"] == "Thing"
    assert event["id"] == resp["Entries"][0]["EventId"]
    assert "ingestion-time" not in event
