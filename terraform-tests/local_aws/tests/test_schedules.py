"""EventBridge scheduled rules (localaws/events.py): rate expressions fire on the scaled clock.

At clock scale 0.01 ``rate(1 minute)`` fires every 0.6 s real. Phases are read from
``GET /_localaws/schedules`` (virtual seconds to the next firing), not from wall-clock
sleeps, so a slow machine does not make them flaky.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, allow_rule, create_function, invocations, wait_for


def scheduled_rule(server, name: str, expression: str, function_arn: str, target: dict | None = None) -> str:
    events = server.client("events")
    arn = events.put_rule(Name=name, ScheduleExpression=expression)["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": "fn", "Arn": function_arn, **(target or {})}])
    allow_rule(server, function_arn.split(":")[-1], arn, sid=f"allow-{name}")
    return arn


def fired(server, rule_arn: str) -> list[dict]:
    return [e for e in server.ctl("GET", "/events") if rule_arn in e["matched_rules"]]


def echoed(server, function: str) -> list[dict]:
    return [json.loads(r["response"])["event"] for r in invocations(server, function) if r["outcome"] == "success"]


def next_in(server, name: str) -> float | None:
    found = [s for s in server.ctl("GET", "/schedules") if s["rule"] == name]
    return found[0]["next_in_s"] if found else None


SCALE = 0.01  # conftest's clock scale


def assert_armed_at(server, name: str, period: float, since: float) -> None:
    """The next firing is ``period`` virtual seconds after a PutRule made after ``since``
    (time.monotonic()): whatever the machine's speed, no earlier and no later."""
    left = next_in(server, name)
    elapsed = (time.monotonic() - since) / SCALE
    assert left is not None and period - elapsed - 1 <= left <= period, (left, elapsed)


@pytest.mark.parametrize("expression", [
    "rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1 hours)", "rate(2 day)", "rate(-1 minute)",
    "rate(5 minutes) ", "rate(5  minutes)", "rate( minutes)", "rate(5 seconds)", "rate(1.5 hours)", "every 5 minutes",
])
def test_invalid_rate_expressions_are_refused_as_eventbridge_does(server, expression):
    with pytest.raises(ClientError) as err:
        server.client("events").put_rule(Name="bad", ScheduleExpression=expression)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["Error"]["Message"] == "Parameter ScheduleExpression is not valid."


def test_valid_expressions_and_the_default_bus_only(server):
    server.reset()
    events = server.client("events")
    for expression in ("rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(12 hours)", "rate(1 day)",
                       "rate(7 days)", "cron(0 12 * * ? *)"):
        events.put_rule(Name="ok", ScheduleExpression=expression)
    assert next_in(server, "ok") is None  # cron() is accepted and not fired (not modelled)
    events.create_event_bus(Name="custom")
    with pytest.raises(ClientError) as err:
        events.put_rule(Name="c", ScheduleExpression="rate(5 minutes)", EventBusName="custom")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_a_rate_rule_fires_the_scheduled_event_to_its_function(server):
    server.reset()
    fn = create_function(server, "tick", "echo")
    before, t0 = time.time(), time.monotonic()
    arn = scheduled_rule(server, "tick", "rate(1 minute)", fn)
    assert_armed_at(server, "tick", 60, t0)  # counted from PutRule
    got = wait_for(lambda: echoed(server, "tick")[1:] and echoed(server, "tick"), timeout=20, what="two firings")
    event = got[0]
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert (event["version"], event["detail-type"], event["source"]) == ("0", "Scheduled Event", "aws.events")
    assert (event["account"], event["region"], event["resources"], event["detail"]) == (ACCOUNT, REGION, [arn], {})
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", event["id"])
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before - 1)) <= event["time"]
    assert len({e["id"] for e in got}) == len(got)  # one event per firing
    invs = invocations(server, "tick")
    records = {r["id"]: r for r in fired(server, arn)}
    rec = records[event["id"]]
    assert rec["origin"] == "schedule" and rec["matched_rules"] == [arn] and rec["event"] == event
    assert rec["deliveries"] == [{"rule_arn": arn, "target_id": "fn", "target_arn": fn, "type": "lambda",
                                  "status": "queued"}]
    assert invs and all(r["rule_arn"] == arn and r["event_id"] in records for r in invs)


def test_scheduled_events_honour_the_targets_input_shaping(server):
    server.reset()
    fn = create_function(server, "shaped", "echo")
    transformer = {"InputPathsMap": {"when": "$.time", "rule": "$.resources[0]", "kind": "$.detail-type"},
                   "InputTemplate": '{"rule": <rule>, "when": <when>, "text": "a <kind>"}'}
    arn = scheduled_rule(server, "shaped", "rate(1 minute)", fn, {"InputTransformer": transformer})
    [got] = wait_for(lambda: echoed(server, "shaped")[:1], timeout=20, what="a firing")
    assert got["rule"] == arn and got["text"] == "a Scheduled Event"
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", got["when"])
    server.client("events").put_targets(Rule="shaped", Targets=[{"Id": "fn", "Arn": fn, "Input": '{"fixed": 1}'}])
    wait_for(lambda: {"fixed": 1} in echoed(server, "shaped"), timeout=20, what="the constant input")


def test_disabled_rules_skip_deleted_rules_stop(server):
    server.reset()
    fn = create_function(server, "gate", "echo")
    events = server.client("events")
    arn = scheduled_rule(server, "gate", "rate(1 minute)", fn)
    wait_for(lambda: fired(server, arn), timeout=20, what="a firing")
    events.disable_rule(Name="gate")
    time.sleep(0.1)
    n = len(fired(server, arn))
    time.sleep(2.0)  # > 3 periods
    assert len(fired(server, arn)) == n, "a DISABLED rule fired"
    assert next_in(server, "gate") is not None  # still armed, its phase kept
    events.enable_rule(Name="gate")
    wait_for(lambda: len(fired(server, arn)) > n, timeout=20, what="firing again once enabled")
    events.remove_targets(Rule="gate", Ids=["fn"])
    events.delete_rule(Name="gate")
    assert next_in(server, "gate") is None
    time.sleep(0.1)
    n = len(fired(server, arn))
    time.sleep(2.0)
    assert len(fired(server, arn)) == n, "a deleted rule fired"


def test_put_rule_rearms_only_when_the_schedule_changes(server):
    server.reset()
    events = server.client("events")
    t0 = time.monotonic()
    events.put_rule(Name="r", ScheduleExpression="rate(10 minutes)")
    assert_armed_at(server, "r", 600, t0)
    time.sleep(1.0)  # 100 virtual seconds
    events.put_rule(Name="r", ScheduleExpression="rate(10 minutes)", Description="same schedule")
    assert next_in(server, "r") < 560  # phase kept
    t0 = time.monotonic()
    events.put_rule(Name="r", ScheduleExpression="rate(1 hour)")
    assert_armed_at(server, "r", 3600, t0)  # re-armed from this PutRule
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["x"]}))
    assert next_in(server, "r") is None  # no schedule any more


def test_a_rule_with_a_pattern_and_a_schedule_fires_on_both(server):
    server.reset()
    fn = create_function(server, "both", "echo")
    events = server.client("events")
    arn = events.put_rule(Name="both", ScheduleExpression="rate(1 minute)",
                          EventPattern=json.dumps({"source": ["my.app"]}))["RuleArn"]
    events.put_targets(Rule="both", Targets=[{"Id": "fn", "Arn": fn}])
    allow_rule(server, "both", arn)
    events.put_events(Entries=[{"Source": "my.app", "DetailType": "thing", "Detail": "{}"}])
    wait_for(lambda: {e["source"] for e in echoed(server, "both")} >= {"my.app", "aws.events"}, timeout=20,
             what="a matched and a scheduled event")


def test_a_reset_drops_the_schedules(server):
    server.reset()
    server.client("events").put_rule(Name="r", ScheduleExpression="rate(1 minute)")
    assert next_in(server, "r") is not None
    server.reset()
    assert server.ctl("GET", "/schedules") == []
    time.sleep(1.0)
    assert [e for e in server.ctl("GET", "/events") if e["origin"] == "schedule"] == []
    server.ctl("DELETE", "/events")  # clears the records, not the schedules
    server.client("events").put_rule(Name="r", ScheduleExpression="rate(1 minute)")
    server.ctl("DELETE", "/events")
    assert next_in(server, "r") is not None


def schedule_records(server, rule_arn: str) -> list[dict]:
    return [e for e in fired(server, rule_arn) if e["origin"] == "schedule"]


def test_realistic_firings_are_late_within_the_minute_without_drift(server):
    """EventBridge: "Your scheduled rule runs within that minute, but not on the precise 0th
    second." Each delivery is late by a random time below ``schedule_jitter_s`` (realistic: 60);
    the schedule stays on its rate, so the lateness never adds up."""
    server.reset()
    assert server.ctl("POST", "/profile", {"schedule_jitter_s": 60})["schedule_jitter_s"] == 60
    period = 120.0  # rate(2 minutes): 1.2 s real; the jitter up to 0.6 s real
    t0 = time.monotonic()
    arn = server.client("events").put_rule(Name="late", ScheduleExpression="rate(2 minutes)")["RuleArn"]
    assert_armed_at(server, "late", period, t0)
    gaps = []
    while len(schedule_records(server, arn)) < 6:
        [s] = [s for s in server.ctl("GET", "/schedules") if s["rule"] == "late"]
        if s["next_in_s"] > 0:  # between a delivery and the next scheduled moment
            gaps.append(s["delivery_in_s"] - s["next_in_s"])
        assert time.monotonic() - t0 < 30, "six firings of rate(2 minutes) take 7.2 s real, plus the jitter"
        time.sleep(0.05)
    late = [r["late_s"] for r in schedule_records(server, arn)]
    assert all(0 < x < 60 + 3 for x in late), late  # 3: the scheduler's own latency (30 ms real)
    assert max(late) > 10 and max(late) - min(late) > 5, f"not spread over the minute: {late}"
    assert gaps and all(0 <= g < 60 for g in gaps), gaps  # the delivery is within the minute of its moment
    assert any(g > 1 for g in gaps), gaps
    # No drift: the next scheduled moment is still a whole number of periods after PutRule,
    # and no firing is missing (with accumulated lateness, ~30 s a firing, both would fail).
    elapsed = (time.monotonic() - t0) / SCALE
    left = next_in(server, "late")
    phase = (elapsed + left) % period
    assert phase <= 5 or phase >= period - 1, (elapsed, left, phase)
    n = len(schedule_records(server, arn))
    assert n >= int((elapsed - 63) // period), (n, elapsed)
    times = [r["time"] for r in schedule_records(server, arn)]
    assert times == sorted(times) and len(set(r["id"] for r in schedule_records(server, arn))) == n


def test_fast_firings_are_on_time(server):
    server.reset()
    assert server.ctl("GET", "/profile")["schedule_jitter_s"] == 0  # the module's server runs `fast`
    arn = server.client("events").put_rule(Name="prompt", ScheduleExpression="rate(1 minute)")["RuleArn"]
    [s] = [s for s in server.ctl("GET", "/schedules") if s["rule"] == "prompt"]
    assert s["delivery_in_s"] == s["next_in_s"]
    wait_for(lambda: len(schedule_records(server, arn)) >= 3, timeout=20, what="three firings")
    late = [r["late_s"] for r in schedule_records(server, arn)]
    assert all(0 <= x < 3 for x in late), late  # the scheduler's latency only


def test_a_firing_due_but_not_yet_delivered_is_skipped_once_disabled(server):
    """The rule's state is read at delivery: a firing whose scheduled moment has passed but
    whose delivery is still pending when the rule is disabled is not delivered."""
    server.reset()
    server.ctl("POST", "/profile", {"schedule_jitter_s": 60})
    events = server.client("events")
    arn = events.put_rule(Name="gate2", ScheduleExpression="rate(1 minute)")["RuleArn"]
    deadline = time.monotonic() + 30
    while True:  # catch a firing that is due (next_in_s 0) with >= 20 virtual s (0.2 s real) to go
        [s] = [s for s in server.ctl("GET", "/schedules") if s["rule"] == "gate2"]
        if s["next_in_s"] == 0 and s["delivery_in_s"] >= 20:
            break
        assert time.monotonic() < deadline, "no late delivery caught in 30 s"
        time.sleep(0.005)
    n = len(schedule_records(server, arn))
    events.disable_rule(Name="gate2")
    time.sleep(0.7)  # past that delivery (<= 0.6 s real)
    assert len(schedule_records(server, arn)) == n, "a firing was delivered to a DISABLED rule"
