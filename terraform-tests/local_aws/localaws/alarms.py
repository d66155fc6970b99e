"""CloudWatch metric alarms that evaluate, and the metrics they watch.

Moto keeps metric alarms and metric data but never evaluates an alarm (it stays ``OK``,
"Unchecked: Initial alarm creation", for ever) and has no metrics of its own. This module
adds what the autoheal stack's alarms need, each from the page that documents it:

* Metric data. Every datapoint stored by PutMetricData (moto's), by the Lambda functions'
  embedded metric format (EMF) log lines, or by Auto Scaling group metrics, is also kept in
  an index by *virtual* time (``clock``): a datapoint's Timestamp (real UTC) is placed on
  the virtual clock by its age (``now_v - (now_real - ts) / scale``), so that a one-minute
  period is one virtual minute, 0.6 real seconds at ``--clock-scale 0.01``. What clients
  see (GetMetricStatistics, GetMetricData, ListMetrics) is moto's store with the real
  timestamps, as for the logs.
* EMF ("Embedded metric format specification", CloudWatch User Guide): a log event of a
  function's ``/aws/lambda/NAME`` group that is a JSON object with ``_aws.CloudWatchMetrics``
  becomes one datapoint per metric per dimension set (each ``Dimensions`` array, its keys'
  values from the root), in the directive's ``Namespace``, with the ``Unit`` given, the value
  (a number, or an array of numbers) from the root member of the metric's ``Name``, at
  ``_aws.Timestamp`` (ms). An object that breaks the specification (no Timestamp, a missing
  dimension value or metric value, more than 30 dimensions in a set, more than 100 metrics)
  extracts nothing; the log event stays. Only events Lambda actually wrote do: a role that
  may not write its logs (``iam_enforce.lambda_may_log``) makes no metrics.
* Group metrics ("Monitor CloudWatch metrics for your Auto Scaling groups and instances",
  Auto Scaling User Guide): while EnableMetricsCollection has a metric enabled for a group
  (Granularity ``1Minute``, the only one; no Metrics = all of them), namespace
  ``AWS/AutoScaling``, dimension ``AutoScalingGroupName``, one datapoint per virtual minute,
  counted from the group's instances by lifecycle state: GroupMinSize, GroupMaxSize,
  GroupDesiredCapacity, GroupInServiceInstances (``InService``), GroupPendingInstances
  (``Pending``, ``Pending:Wait``, ``Pending:Proceed``), GroupStandbyInstances,
  GroupTerminatingInstances (``Terminating*``), GroupTotalInstances, and the ``*Capacity``
  twins (one unit per instance). DisableMetricsCollection stops them; nothing is published
  for a metric not enabled.
* Evaluation ("Evaluating an alarm", "Configuring how CloudWatch alarms treat missing data",
  CloudWatch User Guide): at every virtual period boundary each metric alarm's statistic
  (SampleCount, Sum, Minimum, Maximum, Average; Unit filters) is computed per period over an
  evaluation range of EvaluationPeriods + 2 periods (the guide's worked example: 3 periods,
  range 5; AWS does not publish the length). With no period of the last N missing, the last N
  decide; with some missing but N real datapoints in the range, the N most recent real ones
  decide; with fewer, TreatMissingData fills the gaps (``breaching``, ``notBreaching``), or
  (``missing``, ``ignore``) the real ones decide what they can: none at all ->
  INSUFFICIENT_DATA (``missing``) or the state kept (``ignore``). ALARM when at least
  DatapointsToAlarm (M, default N) of the N breach. A new alarm is INSUFFICIENT_DATA
  ("Unchecked: Initial alarm creation") until its first evaluation.
* A state change sets StateValue, StateReason (CloudWatch's wording, ``Threshold Crossed: 1
  out of the last 1 datapoints [1.0 (06/12/25 09:50:00)] was greater than the threshold
  (0.0) (minimum 1 datapoint for OK -> ALARM transition).``), StateReasonData and
  StateUpdatedTimestamp, records a ``StateUpdate`` history item, and, with ActionsEnabled,
  runs the new state's actions: an SNS topic gets CloudWatch's notification through moto's
  SNS (so an SQS subscription receives it), Subject ``ALARM: "name" in Asia Pacific
  (Sydney)``, Message the JSON CloudWatch sends (AlarmName, AlarmDescription, AWSAccountId,
  AlarmConfigurationUpdatedTimestamp, NewStateValue, NewStateReason, StateChangeTime, Region,
  AlarmArn, OldStateValue, OKActions, AlarmActions, InsufficientDataActions, Trigger{...}),
  each recorded as an ``Action`` history item (``Successfully executed action ARN`` /
  ``Failed to execute action ARN. Received error: ...``); other action types are recorded as
  not executed here. SetAlarmState changes the state the same way (actions included) until
  the next evaluation. DescribeAlarmHistory (moto has none) lists the items, newest first.

API answers fixed where moto differs from CloudWatch (PutMetricAlarm, DescribeAlarms,
DeleteAlarms, tagging): see ``install``.

Not modelled: metric-math and anomaly-detection alarms (kept, never evaluated: they stay
INSUFFICIENT_DATA), percentile statistics (same), composite alarms' evaluation, CloudWatch's
evaluation delay, high-resolution storage rules, EventBridge alarm events.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.alarms")

TICK_S = 10.0  # the shortest alarm period (high-resolution 10 s)
RANGE_EXTRA = 2  # evaluation range = N + 2 periods (the User Guide's example: 3 -> 5)
KEEP_S = 8 * 86400.0  # virtual seconds of datapoints kept for evaluation (7-day alarms)

GROUP_METRICS = (
    "GroupMinSize", "GroupMaxSize", "GroupDesiredCapacity", "GroupInServiceInstances",
    "GroupPendingInstances", "GroupStandbyInstances", "GroupTerminatingInstances", "GroupTotalInstances",
    "GroupInServiceCapacity", "GroupPendingCapacity", "GroupStandbyCapacity", "GroupTerminatingCapacity",
    "GroupTotalCapacity",
)
# Enabled when EnableMetricsCollection names no metric; warm pool ones are never published here.
ALL_GROUP_METRICS = GROUP_METRICS + (
    "WarmPoolDesiredCapacity", "WarmPoolWarmedCapacity", "WarmPoolPendingCapacity",
    "WarmPoolTerminatingCapacity", "WarmPoolTotalCapacity", "GroupAndWarmPoolDesiredCapacity",
    "GroupAndWarmPoolTotalCapacity",
)

OPERATORS = {
    "GreaterThanThreshold": ("greater than", lambda v, t: v > t),
    "GreaterThanOrEqualToThreshold": ("greater than or equal to", lambda v, t: v >= t),
    "LessThanThreshold": ("less than", lambda v, t: v < t),
    "LessThanOrEqualToThreshold": ("less than or equal to", lambda v, t: v <= t),
}
STATISTICS = ("SampleCount", "Sum", "Minimum", "Maximum", "Average")
TREAT_MISSING = ("breaching", "notBreaching", "ignore", "missing")

# The region names CloudWatch's notifications carry (Subject and "Region").
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)", "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-1": "Asia Pacific (Singapore)", "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-south-1": "Asia Pacific (Mumbai)", "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)",
    "eu-central-1": "EU (Frankfurt)", "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
}

_ACTION_ARN = re.compile(r"^arn:[a-z-]+:(sns|lambda|autoscaling|automate|ec2|ssm|ssm-incidents|swf):[^:\s]*:[^:\s]*:\S+$")


@dataclass
class Point:
    v: float  # virtual seconds
    n: float  # sample count
    s: float  # sum
    lo: float
    hi: float
    unit: str | None


MetricKey = tuple[str, str, str, str, frozenset]


def _dims_key(dims: Iterable[dict[str, Any]]) -> frozenset:
    return frozenset((str(d.get("Name")), str(d.get("Value"))) for d in dims or [])


def _epoch(ts: Any) -> float | None:
    if ts is None or ts == "":
        return None
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(ts, (int, float)):
        return float(ts)
    text = str(ts)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fmt_num(x: float) -> str:
    return repr(float(x))


def _iso_plus0000(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def _short(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%d/%m/%y %H:%M:%S")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Alarms:
    def __init__(self, world: World) -> None:
        self.world = world
        self._points: dict[MetricKey, deque[Point]] = defaultdict(deque)
        self._history: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()  # the index; the world lock covers moto's models
        self._timer: Any = None
        self.arm()

    # -- clock -----------------------------------------------------------------------

    def arm(self) -> None:
        """Schedule the next tick at the next multiple of TICK_S virtual seconds."""
        now = self.world.clock.now()
        boundary = (math.floor(now / TICK_S) + 1) * TICK_S
        generation = self.world.generation
        self._timer = self.world.scheduler.call_at(boundary, lambda: self._tick(boundary, generation),
                                                   name="alarms tick")

    def reset(self) -> None:
        with self._lock:
            self._points.clear()
            self._history.clear()
        self.arm()  # the scheduler's timers were cancelled by the reset

    def virtual_of(self, epoch: float) -> float:
        """A real UTC timestamp on the virtual clock (by its age, scaled)."""
        clock = self.world.clock
        return clock.now() - (time.time() - epoch) / clock.scale

    def epoch_of(self, v: float) -> float:
        clock = self.world.clock
        return time.time() - (clock.now() - v) * clock.scale

    def _tick(self, boundary: float, generation: int) -> None:
        if generation != self.world.generation:
            return
        try:
            with self.world.lock:
                if generation != self.world.generation:
                    return
                if round(boundary) % 60 == 0:
                    self._publish_group_metrics(boundary)
                self._evaluate_all(boundary)
                self._prune(boundary)
        finally:
            if generation == self.world.generation:
                nxt = boundary + TICK_S
                # After a stall (a debugger, a slow machine) skip to the present.
                now = self.world.clock.now()
                if nxt < now - TICK_S:
                    nxt = (math.floor(now / TICK_S) + 1) * TICK_S
                self._timer = self.world.scheduler.call_at(nxt, lambda: self._tick(nxt, generation),
                                                           name="alarms tick")

    # -- the metric index -----------------------------------------------------------------

    def record(self, account: str, region: str, namespace: str, name: str, dims: frozenset, v: float,
               values: list[float], unit: str | None, stats: dict[str, float] | None = None) -> None:
        if stats is not None:
            p = Point(v, float(stats["SampleCount"]), float(stats["Sum"]), float(stats["Minimum"]),
                      float(stats["Maximum"]), unit)
        elif values:
            p = Point(v, float(len(values)), float(sum(values)), float(min(values)), float(max(values)), unit)
        else:
            return
        with self._lock:
            self._points[(account, region, namespace, name, dims)].append(p)

    def _prune(self, now_v: float) -> None:
        cutoff = now_v - KEEP_S
        with self._lock:
            for q in self._points.values():
                while q and q[0].v < cutoff:
                    q.popleft()

    def on_put_metric_data(self, account: str, region: str, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        """Index what moto's put_metric_data stored (world lock held)."""
        for m in metric_data:
            ts = _epoch(m.get("Timestamp"))
            v = self.virtual_of(ts) if ts is not None else self.world.clock.now()
            dims = _dims_key(m.get("Dimensions") or [])
            unit = m.get("Unit")
            if m.get("Values"):
                counts = m.get("Counts") or [1] * len(m["Values"])
                values: list[float] = []
                for value, count in zip(m["Values"], counts):
                    values.extend([float(value)] * int(float(count)))
                self.record(account, region, namespace, m["MetricName"], dims, v, values, unit)
            elif m.get("StatisticValues"):
                self.record(account, region, namespace, m["MetricName"], dims, v, [], unit,
                            stats={k: float(x) for k, x in m["StatisticValues"].items()})
            else:
                self.record(account, region, namespace, m["MetricName"], dims, v,
                            [float(m.get("Value", 0) or 0)], unit)

    def _store(self, account: str, region: str, namespace: str, metric_data: list[dict[str, Any]], v: float) -> None:
        """Store in moto (for GetMetricStatistics & co.) and index at virtual time ``v``."""
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[account][region]
        _ORIGINAL["put_metric_data"](backend, namespace, metric_data)
        for m in metric_data:
            values = [float(x) for x in (m.get("Values") or [m.get("Value", 0)])]
            self.record(account, region, namespace, m["MetricName"], _dims_key(m.get("Dimensions") or []), v,
                        values, m.get("Unit"))

    # -- EMF ------------------------------------------------------------------------------

    def ingest_log_lines(self, account: str, region: str, group: str, lines: list[tuple[int, str]]) -> None:
        """Log events Lambda wrote to ``group``: EMF objects become metrics (world lock held)."""
        for _ts, message in lines:
            text = message.strip()
            if not (text.startswith("{") and "_aws" in text):
                continue
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            for namespace, data in emf_metrics(doc):
                ts = _epoch(data[0]["Timestamp"]) if data else None
                v = self.virtual_of(ts) if ts is not None else self.world.clock.now()
                self._store(account, region, namespace, data, min(v, self.world.clock.now()))

    # -- Auto Scaling group metrics -----------------------------------------------------------

    def _publish_group_metrics(self, boundary: float) -> None:
        from moto.autoscaling.models import autoscaling_backends

        minute_start_v = boundary - 60.0
        stamp = datetime.fromtimestamp(self.epoch_of(minute_start_v), tz=timezone.utc).replace(tzinfo=None)
        for account in list(autoscaling_backends.keys()):
            for region, backend in list(autoscaling_backends[account].items()):
                for group in list(getattr(backend, "autoscaling_groups", {}).values()):
                    enabled = [m for m in (getattr(group, "metrics", None) or []) if m in GROUP_METRICS]
                    if not enabled:
                        continue
                    values = group_metric_values(group)
                    data = [{"MetricName": name, "Value": float(values[name]), "Unit": "None", "Timestamp": stamp,
                             "Dimensions": [{"Name": "AutoScalingGroupName", "Value": group.name}]}
                            for name in enabled]
                    self._store(account, region, "AWS/AutoScaling", data, minute_start_v)

    # -- evaluation -----------------------------------------------------------------------

    def _evaluate_all(self, boundary: float) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        for account in list(cloudwatch_backends.keys()):
            for region, backend in list(cloudwatch_backends[account].items()):
                for alarm in list(backend.alarms.values()):
                    try:
                        period = int(alarm.period or 0)
                    except (TypeError, ValueError):
                        continue
                    if period <= 0 or getattr(alarm, "rule", None) is not None:
                        continue
                    if round(boundary) % period != 0:
                        continue
                    try:
                        self.evaluate(account, region, alarm, boundary)
                    except Exception:
                        log.exception("evaluating alarm %s failed", alarm.name)

    def _bucket_stats(self, account: str, region: str, alarm: Any, start: float, end: float) -> Point | None:
        key = (account, region, alarm.namespace, alarm.metric_name, frozenset(
            (d.name, d.value) for d in alarm.dimensions))
        with self._lock:
            pts = [p for p in self._points.get(key, ()) if start <= p.v < end
                   and (not alarm.unit or p.unit == alarm.unit)]
        if not pts:
            return None
        return Point(start, sum(p.n for p in pts), sum(p.s for p in pts), min(p.lo for p in pts),
                     max(p.hi for p in pts), None)

    @staticmethod
    def _statistic(point: Point, statistic: str) -> float:
        return {"SampleCount": point.n, "Sum": point.s, "Minimum": point.lo, "Maximum": point.hi,
                "Average": point.s / point.n if point.n else 0.0}[statistic]

    def evaluate(self, account: str, region: str, alarm: Any, boundary: float) -> None:
        statistic = alarm.statistic
        if statistic not in STATISTICS or alarm.comparison_operator not in OPERATORS or alarm.metric_data_queries:
            return  # percentiles, metric math, anomaly detection: not evaluated here
        period = int(alarm.period)
        n = int(alarm.evaluation_periods)
        m = int(alarm.datapoints_to_alarm or n)
        threshold = float(alarm.threshold)
        phrase, breaches = OPERATORS[alarm.comparison_operator]
        treat = alarm.treat_missing_data or "missing"
        buckets: list[tuple[float, Point | None]] = []  # most recent first
        for k in range(n + RANGE_EXTRA):
            end = boundary - k * period
            buckets.append((end - period, self._bucket_stats(account, region, alarm, end - period, end)))
        real = [(start, self._statistic(p, statistic), p.n) for start, p in buckets if p is not None]
        recent_missing = any(p is None for _, p in buckets[:n])
        filled = 0
        if not recent_missing:
            used = real[:n]
        elif len(real) >= n:
            used = real[:n]
        else:
            used = real
            filled = n - len(real)
        breaching = [u for u in used if breaches(u[1], threshold)]
        b = len(breaching)
        new_state: str | None
        if filled == 0:
            new_state = "ALARM" if b >= m else "OK"
        elif not real:
            new_state = {"missing": "INSUFFICIENT_DATA", "ignore": None, "breaching": "ALARM",
                         "notBreaching": "OK"}[treat]
        elif treat == "breaching":
            new_state = "ALARM" if b + filled >= m else "OK"
        elif treat == "notBreaching":
            new_state = "ALARM" if b >= m else "OK"
        else:  # missing, ignore: the real datapoints decide what they can
            could_alarm = b >= 1 and b + filled >= m
            new_state = ("ALARM" if treat == "missing" else None) if could_alarm else "OK"
        if new_state is None or new_state == alarm.state_value:
            return
        reason = self._reason(new_state, used, breaching, filled, n, m, threshold, phrase, treat, period, real)
        data = {
            "version": "1.0",
            "queryDate": _iso_plus0000(time.time()),
            "startDate": _iso_plus0000(self.epoch_of(used[-1][0] if used else boundary - n * period)),
            "statistic": statistic,
            "period": period,
            "recentDatapoints": [u[1] for u in used],
            "threshold": threshold,
        }
        if used:
            data["evaluatedDatapoints"] = [
                {"timestamp": _iso_plus0000(self.epoch_of(u[0])), "sampleCount": u[2], "value": u[1]} for u in used]
        self.transition(account, region, alarm, new_state, reason, json.dumps(data))

    def _reason(self, state: str, used: list[tuple[float, float, float]], breaching: list[tuple[float, float, float]],
                filled: int, n: int, m: int, threshold: float, phrase: str, treat: str, period: int,
                real: list[Any]) -> str:
        def listing(points: list[tuple[float, float, float]]) -> str:
            return "[" + ", ".join(f"{_fmt_num(p[1])} ({_short(self.epoch_of(p[0]))})" for p in points) + "]"

        if state == "INSUFFICIENT_DATA":
            return f"Insufficient Data: {_plural(n, 'datapoint')} {'was' if n == 1 else 'were'} unknown."
        if not real and filled:
            kind = {"breaching": "Breaching", "notBreaching": "NonBreaching"}.get(treat, treat)
            return (f"Threshold Crossed: no datapoints were received for {_plural(filled, 'period')} and "
                    f"{_plural(filled, 'missing datapoint')} {'was' if filled == 1 else 'were'} treated as [{kind}].")
        if state == "ALARM":
            return (f"Threshold Crossed: {len(breaching)} out of the last {len(used)} datapoints {listing(breaching)} "
                    f"{'was' if len(breaching) == 1 else 'were'} {phrase} the threshold ({_fmt_num(threshold)}) "
                    f"(minimum {_plural(m, 'datapoint')} for OK -> ALARM transition).")
        return (f"Threshold Crossed: {_plural(len(used), 'datapoint')} {listing(used)} "
                f"{'was' if len(used) == 1 else 'were'} not {phrase} the threshold ({_fmt_num(threshold)}).")

    # -- state changes and actions ----------------------------------------------------------

    def transition(self, account: str, region: str, alarm: Any, state: str, reason: str, reason_data: str) -> None:
        """Set the alarm's new state, record it, run its actions (world lock held)."""
        from moto.core.utils import utcnow

        old = alarm.state_value
        alarm.state_reason, alarm.state_reason_data, alarm.state_value = reason, reason_data, state
        alarm.state_updated_timestamp = utcnow()
        if old != state:
            alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
        now = time.time()
        self.add_history(account, region, alarm.name, "StateUpdate", f"Alarm updated from {old} to {state}", {
            "version": "1.0",
            "oldState": {"stateValue": old},
            "newState": {"stateValue": state, "stateReason": reason, "stateReasonData": json.loads(reason_data or "{}")},
        })
        log.info("alarm %s: %s -> %s (%s)", alarm.name, old, state, reason)
        if not alarm.actions_enabled:
            return
        actions = {"ALARM": alarm.alarm_actions, "OK": alarm.ok_actions,
                   "INSUFFICIENT_DATA": alarm.insufficient_data_actions}[state] or []
        for arn in actions:
            error = self._run_action(account, region, alarm, arn, old, state, reason, now)
            if error is None:
                self.add_history(account, region, alarm.name, "Action", f"Successfully executed action {arn}",
                                 {"actionState": "Succeeded", "notificationResource": arn, "stateUpdateTimestamp":
                                  int(now * 1000)})
            else:
                self.add_history(account, region, alarm.name, "Action",
                                 f"Failed to execute action {arn}. Received error: \"{error}\"",
                                 {"actionState": "Failed", "notificationResource": arn, "error": error})

    def _run_action(self, account: str, region: str, alarm: Any, arn: str, old: str, state: str, reason: str,
                    now: float) -> str | None:
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "sns":
            return f"localaws runs only SNS alarm actions, not {arn}"
        from moto.sns.models import sns_backends

        try:
            sns = sns_backends[parts[4]][parts[3]]
            sns.get_topic(arn)
            sns.publish(notification(alarm, account, region, old, state, reason, now), arn=arn,
                        subject=subject(alarm.name, state, region))
        except Exception as exc:
            return str(getattr(exc, "message", None) or exc) or type(exc).__name__
        return None

    def add_history(self, account: str, region: str, name: str, kind: str, summary: str, data: dict[str, Any]) -> None:
        from moto.core.utils import utcnow

        with self._lock:
            self._history[(account, region)].append({
                "AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": utcnow(), "HistoryItemType": kind,
                "HistorySummary": summary, "HistoryData": json.dumps(data),
            })

    def history(self, account: str, region: str, name: str | None, kind: str | None, start: Any, end: Any,
                oldest_first: bool) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._history.get((account, region), []))
        lo, hi = _epoch(start), _epoch(end)
        out = [i for i in items if (not name or i["AlarmName"] == name) and (not kind or i["HistoryItemType"] == kind)
               and (lo is None or (_epoch(i["Timestamp"]) or 0) >= lo) and (hi is None or (_epoch(i["Timestamp"]) or 0) <= hi)]
        return out if oldest_first else list(reversed(out))


# -- pure helpers ------------------------------------------------------------------------------


def subject(name: str, state: str, region: str) -> str:
    text = f'{state}: "{name}" in {REGION_NAMES.get(region, region)}'
    return text if len(text) <= 100 else text[:97] + "..."


def notification(alarm: Any, account: str, region: str, old: str, state: str, reason: str, now: float) -> str:
    """The JSON message CloudWatch publishes to an alarm's SNS topic."""
    trigger: dict[str, Any] = {
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "StatisticType": "Statistic",
        "Statistic": str(alarm.statistic or "").upper(),
        "Unit": alarm.unit,
        "Dimensions": [{"value": d.value, "name": d.name} for d in alarm.dimensions],
        "Period": int(alarm.period),
        "EvaluationPeriods": int(alarm.evaluation_periods),
    }
    if alarm.datapoints_to_alarm:
        trigger["DatapointsToAlarm"] = int(alarm.datapoints_to_alarm)
    trigger.update({
        "ComparisonOperator": alarm.comparison_operator,
        "Threshold": float(alarm.threshold),
        "TreatMissingData": "- TreatMissingData:                    " + (alarm.treat_missing_data or "missing"),
        "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile or "",
    })
    return json.dumps({
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _iso_plus0000(alarm.configuration_updated_timestamp.timestamp()),
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": _iso_plus0000(now),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": alarm.alarm_arn,
        "OldStateValue": old,
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
        "Trigger": trigger,
    }, separators=(",", ":"))


def emf_metrics(doc: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, PutMetricData MetricData) of one EMF object; [] when it is not valid EMF
    ("Embedded metric format specification": _aws.Timestamp and CloudWatchMetrics required;
    each dimension key and metric name must be a root member; at most 30 dimensions per set
    and 100 metrics per directive)."""
    if not isinstance(doc, dict):
        return []
    meta = doc.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    ts = meta.get("Timestamp")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return []
    stamp = datetime.fromtimestamp(ts / 1000.0, tz=timezone.utc).replace(tzinfo=None)  # moto's naive UTC
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in meta["CloudWatchMetrics"]:
        if not isinstance(directive, dict):
            return []
        namespace = directive.get("Namespace")
        dim_sets = directive.get("Dimensions")
        metrics = directive.get("Metrics")
        if not isinstance(namespace, str) or not namespace or not isinstance(dim_sets, list) \
                or not isinstance(metrics, list) or len(metrics) > 100:
            return []
        resolved: list[list[dict[str, str]]] = []
        for dim_set in dim_sets:
            if not isinstance(dim_set, list) or len(dim_set) > 30:
                return []
            dims = []
            for key in dim_set:
                value = doc.get(key) if isinstance(key, str) else None
                if not isinstance(value, str):
                    return []
                dims.append({"Name": key, "Value": value})
            resolved.append(dims)
        if not dim_sets:
            resolved = [[]]
        data: list[dict[str, Any]] = []
        for metric in metrics:
            if not isinstance(metric, dict) or not isinstance(metric.get("Name"), str):
                return []
            raw = doc.get(metric["Name"])
            values = raw if isinstance(raw, list) else [raw]
            if not values or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
                return []
            for dims in resolved:
                entry: dict[str, Any] = {"MetricName": metric["Name"], "Dimensions": dims, "Timestamp": stamp,
                                         "Unit": metric.get("Unit") or "None"}
                if len(values) == 1:
                    entry["Value"] = float(values[0])
                else:
                    entry["Values"] = [float(x) for x in values]
                data.append(entry)
        out.append((namespace, data))
    return out


def group_metric_values(group: Any) -> dict[str, float]:
    """AWS/AutoScaling group metrics from the group's instances' lifecycle states."""
    counts = {"InService": 0, "Pending": 0, "Standby": 0, "Terminating": 0}
    for state in getattr(group, "instance_states", []) or []:
        ls = str(getattr(state, "lifecycle_state", "") or "")
        if ls == "InService":
            counts["InService"] += 1
        elif ls.startswith("Pending"):
            counts["Pending"] += 1
        elif ls.startswith("Standby") or ls.startswith("EnteringStandby"):
            counts["Standby"] += 1
        elif ls.startswith("Terminating"):
            counts["Terminating"] += 1
    total = sum(counts.values())
    out = {
        "GroupMinSize": float(group.min_size), "GroupMaxSize": float(group.max_size),
        "GroupDesiredCapacity": float(group.desired_capacity or 0),
        "GroupInServiceInstances": counts["InService"], "GroupPendingInstances": counts["Pending"],
        "GroupStandbyInstances": counts["Standby"], "GroupTerminatingInstances": counts["Terminating"],
        "GroupTotalInstances": total,
        "GroupInServiceCapacity": counts["InService"], "GroupPendingCapacity": counts["Pending"],
        "GroupStandbyCapacity": counts["Standby"], "GroupTerminatingCapacity": counts["Terminating"],
        "GroupTotalCapacity": total,
    }
    return {k: float(v) for k, v in out.items()}


# -- moto patches ------------------------------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}


def validate_alarm(params: dict[str, Any]) -> None:
    """PutMetricAlarm's checks CloudWatch makes and moto does not (ValidationError)."""
    from moto.cloudwatch.exceptions import ValidationError

    metrics = params.get("metric_data_queries")
    period = params.get("period")
    n = params.get("evaluation_periods")
    try:
        n = int(n) if n is not None else None
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1:
        raise ValidationError("PutMetricAlarm request should have an EvaluationPeriods parameter")
    dta = params.get("datapoints_to_alarm")
    if dta is not None and int(dta) > n:
        raise ValidationError("DatapointsToAlarm must be less than or equal to EvaluationPeriods")
    if params.get("treat_missing_data") and params["treat_missing_data"] not in TREAT_MISSING:
        raise ValidationError("Supported values for TreatMissingData are breaching, notBreaching, ignore, and missing.")
    if params.get("statistic") and params["statistic"] not in STATISTICS:
        raise ValidationError(
            f"1 validation error detected: Value '{params['statistic']}' at 'statistic' failed to satisfy constraint: "
            "Member must satisfy enum value set: [Maximum, SampleCount, Sum, Minimum, Average]")
    if not metrics:
        try:
            p = int(period)
        except (TypeError, ValueError):
            raise ValidationError("PutMetricAlarm request should have a Period parameter") from None
        if p not in (10, 20, 30) and (p <= 0 or p % 60 != 0):
            raise ValidationError("Period must be 10, 20, 30 or a multiple of 60")
        if p < 3600 and p * n > 86400:
            raise ValidationError("Metrics cannot be checked across more than a day (EvaluationPeriods * Period must "
                                  "be <= 86400).")
        if p * n > 604800:
            raise ValidationError("Metrics cannot be checked across more than a week (EvaluationPeriods * Period "
                                  "must be <= 604800).")
    for key in ("alarm_actions", "ok_actions", "insufficient_data_actions"):
        for arn in params.get(key) or []:
            if not _ACTION_ARN.match(str(arn)):
                raise ValidationError(f"Invalid arn syntax: {arn}")


def install(world_ref: Any) -> None:
    """Patches of moto's CloudWatch and Auto Scaling (``world_ref()`` is the World)."""
    from moto.autoscaling import models as asm
    from moto.autoscaling import responses as asr
    from moto.autoscaling.exceptions import ValidationError as AsgValidationError
    from moto.cloudwatch import models as cwm
    from moto.cloudwatch import responses as cwr
    from moto.cloudwatch.exceptions import ResourceNotFoundException
    from moto.core.responses import ActionResult, EmptyResult
    from moto.core.utils import utcnow

    def alarms() -> Alarms:
        return world_ref().alarms

    # PutMetricData: also indexed for evaluation.
    orig_put_data = cwm.CloudWatchBackend.put_metric_data
    _ORIGINAL["put_metric_data"] = orig_put_data

    def put_metric_data(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        orig_put_data(self, namespace, metric_data)
        alarms().on_put_metric_data(self.account_id, self.region_name, namespace, metric_data)

    cwm.CloudWatchBackend.put_metric_data = put_metric_data

    # PutMetricAlarm: validated; a new alarm is INSUFFICIENT_DATA; an update keeps the state
    # and ignores Tags ("When you update an existing alarm, its state is left unchanged, but
    # the update completely overwrites the previous configuration of the alarm"; "If you are
    # using this operation to update an existing alarm, any tags you specify in this
    # parameter are ignored", PutMetricAlarm, CloudWatch API Reference).
    orig_put_alarm = cwm.CloudWatchBackend.put_metric_alarm

    def put_metric_alarm(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("rule") is None:
            validate_alarm(kwargs)
        name = kwargs.get("name")
        old = self.alarms.get(name)
        if old is not None:
            kwargs["tags"] = None
        alarm = orig_put_alarm(self, *args, **kwargs)
        if old is not None:
            for attr in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history"):
                setattr(alarm, attr, getattr(old, attr))
            alarm.state_transitioned_timestamp = getattr(old, "state_transitioned_timestamp",
                                                         old.state_updated_timestamp)
            alarms().add_history(self.account_id, self.region_name, name, "ConfigurationUpdate",
                                 f'Alarm "{name}" updated', {"type": "Update"})
        else:
            alarm.state_value = "INSUFFICIENT_DATA"
            alarm.state_transitioned_timestamp = alarm.state_updated_timestamp
            alarms().add_history(self.account_id, self.region_name, name, "ConfigurationUpdate",
                                 f'Alarm "{name}" created', {"type": "Create"})
        return alarm

    cwm.CloudWatchBackend.put_metric_alarm = put_metric_alarm

    # DeleteAlarms: unknown names succeed silently (as moto does); the alarm's tags go with it
    # (moto kept them for a later alarm of the same name).
    orig_delete = cwm.CloudWatchBackend.delete_alarms

    def delete_alarms(self: Any, alarm_names: list[str]) -> None:
        for name in alarm_names:
            alarm = self.alarms.get(name)
            if alarm is not None:
                self.tagger.delete_all_tags_for_resource(alarm.alarm_arn)
                alarms().add_history(self.account_id, self.region_name, name, "ConfigurationUpdate",
                                     f'Alarm "{name}" deleted', {"type": "Delete"})
        orig_delete(self, alarm_names)

    cwm.CloudWatchBackend.delete_alarms = delete_alarms

    def _known(self: Any, arn: str) -> bool:
        return any(a.alarm_arn == arn for a in self.alarms.values()) or arn.split(":insight-rule/")[-1] in getattr(
            self, "insight_rules", {})

    def list_tags_for_resource(self: Any, arn: str) -> dict[str, str]:
        if not _known(self, arn):
            raise ResourceNotFoundException
        return self.tagger.get_tag_dict_for_resource(arn)

    cwm.CloudWatchBackend.list_tags_for_resource = list_tags_for_resource

    def untag_resource(self: Any, arn: str, tag_keys: list[str]) -> None:
        if not _known(self, arn):
            raise ResourceNotFoundException
        self.tagger.untag_resource_using_names(arn, tag_keys)

    cwm.CloudWatchBackend.untag_resource = untag_resource

    # SetAlarmState: a state change like an evaluation's (actions run).
    def set_alarm_state(self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
        from moto.cloudwatch.exceptions import InvalidFormat, ResourceNotFound, ValidationError

        try:
            if reason_data is not None:
                json.loads(reason_data)
        except ValueError:
            raise InvalidFormat("Unknown") from None
        if alarm_name not in self.alarms:
            raise ResourceNotFound
        if state_value not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
            raise ValidationError(
                "1 validation error detected: "
                f"Value '{state_value}' at 'stateValue' failed to satisfy constraint: "
                "Member must satisfy enum value set: [INSUFFICIENT_DATA, ALARM, OK]")
        alarm = self.alarms[alarm_name]
        if alarm.state_value == state_value:
            alarm.state_reason, alarm.state_reason_data = reason, reason_data or "{}"
            alarm.state_updated_timestamp = utcnow()
            return
        alarms().transition(self.account_id, self.region_name, alarm, state_value, reason, reason_data or "{}")

    cwm.CloudWatchBackend.set_alarm_state = set_alarm_state

    # DescribeAlarms: filters combine (moto applied only the first given), names in order.
    def describe_alarms(self: Any) -> Any:
        backend = self.cloudwatch_backend
        names = self._get_param("AlarmNames", []) or []
        prefix = self._get_param("AlarmNamePrefix")
        action_prefix = self._get_param("ActionPrefix")
        state = self._get_param("StateValue")
        types = self._get_param("AlarmTypes", []) or []
        out = []
        for alarm in sorted(backend.alarms.values(), key=lambda a: a.name):
            if names and alarm.name not in names:
                continue
            if prefix and not alarm.name.startswith(prefix):
                continue
            if action_prefix and not any(str(a).startswith(action_prefix) for a in alarm.alarm_actions or []):
                continue
            if state and alarm.state_value != state:
                continue
            out.append(alarm)
        metric = [a for a in out if a.rule is None]
        composite = [a for a in out if a.rule is not None]
        if types:
            metric = metric if "MetricAlarm" in types else []
            composite = composite if "CompositeAlarm" in types else []
        if not types:
            composite = []  # "If you omit this parameter, only metric alarms are returned"
        return ActionResult({"MetricAlarms": metric, "CompositeAlarms": composite})

    cwr.CloudWatchResponse.describe_alarms = describe_alarms

    def describe_alarm_history(self: Any) -> Any:
        items = alarms().history(
            self.current_account, self.region, self._get_param("AlarmName"), self._get_param("HistoryItemType"),
            self._get_param("StartDate"), self._get_param("EndDate"),
            (self._get_param("ScanBy") or "TimestampDescending") == "TimestampAscending")
        limit = self._get_param("MaxRecords")
        if limit:
            items = items[: int(limit)]
        return ActionResult({"AlarmHistoryItems": items})

    cwr.CloudWatchResponse.describe_alarm_history = describe_alarm_history

    # EnableMetricsCollection / DisableMetricsCollection (Auto Scaling API Reference):
    # Granularity 1Minute only; no Metrics = all; enabling adds, disabling removes (moto's
    # Enable replaced the list, "all" was an empty list, and Disable did not exist).
    def _group(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        group = self.autoscaling_backend.autoscaling_groups.get(name)
        if group is None:
            raise AsgValidationError(f"Group {name} not found")
        return group

    def enable_metrics_collection(self: Any) -> Any:
        group = _group(self)
        granularity = self._get_param("Granularity")
        if granularity != "1Minute":
            raise AsgValidationError(f"Invalid granularity value: {granularity}. Valid granularity values are: 1Minute")
        wanted = self._get_param("Metrics") or list(ALL_GROUP_METRICS)
        unknown = [m for m in wanted if m not in ALL_GROUP_METRICS]
        if unknown:
            raise AsgValidationError(f"Invalid metrics value: {', '.join(unknown)}")
        current = list(getattr(group, "metrics", None) or [])
        group.metrics = current + [m for m in wanted if m not in current]
        return EmptyResult()

    def disable_metrics_collection(self: Any) -> Any:
        group = _group(self)
        wanted = self._get_param("Metrics") or []
        group.metrics = [m for m in (getattr(group, "metrics", None) or []) if wanted and m not in wanted]
        return EmptyResult()

    asr.AutoScalingResponse.enable_metrics_collection = enable_metrics_collection
    asr.AutoScalingResponse.disable_metrics_collection = disable_metrics_collection
    _ = asm  # the group's ``metrics`` list and ``enabled_metrics`` property are moto's
