"""EventBridge delivery: service events and PutEvents, to rules and targets.

Moto emits no service events at all and answers HTTP 500 when PutEvents
matches a rule with a Lambda target. Both go through one path here:

* ``EventRouter.emit`` takes an event that an AWS service produced (the Auto
  Scaling lifecycle action event) and queues it; a worker thread matches it,
  with the world lock held, against the rules of the default event bus in the
  event's account and region stored in moto's events backend;
* moto's ``Rule.send_to_targets`` (called by PutEvents once per rule on the
  bus) is replaced, so events put by clients take the same path.

For every rule: DISABLED rules are skipped; the pattern is matched with
``patterns.matches`` (AWS semantics); each target is then delivered:

* Lambda functions: the target's input (the event, or ``Input``,
  ``InputPath``, ``InputTransformer``) is handed to the Lambda runner as an
  asynchronous invocation, where the function's resource policy decides
  whether EventBridge may invoke it;
* SQS queues, CloudWatch Logs groups, archives and other buses: moto's own
  delivery, which works for them;
* anything else: recorded as delivered, nothing runs.

Scheduled rules (moto stores ``ScheduleExpression`` and never fires it): an
ENABLED rule on the default bus with ``rate(N minute|minutes|hour|hours|day|days)``
fires every N units on the scaled clock, counted from the PutRule that created
the rule or last changed its expression ("A rate expression starts when you
create the scheduled event rule, and then it runs on a defined schedule",
EventBridge User Guide, "Rate expressions reference"). Each firing is the event
EventBridge sends for a schedule (``detail-type`` ``Scheduled Event``, ``source``
``aws.events``, ``resources`` = the rule's ARN, ``detail`` ``{}``, ``time`` the
scheduled moment in AWS time, whole seconds: ``clock``, so a ``rate(1 minute)`` rule's
events are 60 seconds apart as its functions read them) delivered to the rule's targets
through the same path as any matched event, whatever the rule's pattern. A
DISABLED rule skips its firings (the phase is kept); a deleted rule stops; a
PutRule that changes the expression re-arms from that moment.

Each firing is delivered late by a random time, uniform in [0, ``schedule_jitter_s``)
AWS seconds (profile setting; realistic 60, fast 0; capped at the period), drawn when
the firing is armed: "the minimum precision for a schedule is one minute. Your
scheduled rule runs within that minute, but not on the precise 0th second"
(EventBridge User Guide, "Creating an Amazon EventBridge rule that runs on a
schedule"). Only the delivery is late: the next scheduled moment is counted from
this one's scheduled moment, so the lateness never accumulates, and the event's
``time`` is the scheduled moment (our choice; AWS does not say). The rule's state
and existence are checked at delivery. PutRule validates
a rate as EventBridge does (a positive integer; the unit singular for 1 and plural
otherwise: ``rate(1 hours)`` and ``rate(5 hour)`` are not valid, same page), with
moto's ``ValidationException`` ``Parameter ScheduleExpression is not valid.``
(moto's regex took both). ``cron()`` expressions are accepted (as moto does) and
never fire: not modelled.

Every event, the rules it matched and its deliveries are kept for
``GET /_localaws/events``. TestEventPattern (moto answers nothing) is answered
with the same matcher.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import patterns

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.events")

ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")

RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")


def rate_seconds(expression: str | None) -> float | None:
    """The period of a valid ``rate(...)`` expression in seconds; None for anything else.

    EventBridge User Guide, "Rate expressions reference": the value is a positive number;
    "If the value is equal to 1, then the unit must be singular. If the value is greater
    than 1, the unit must be plural."
    """
    m = _RATE.fullmatch(expression or "")
    if not m:
        return None
    value, unit = int(m.group(1)), m.group(2)
    if value < 1 or (value == 1) != (not unit.endswith("s")):
        return None
    return float(value * RATE_UNITS[unit])


@dataclass
class Schedule:
    """One armed rate rule: its expression, the virtual moment it was (re)armed, its timer."""

    account: str
    region: str
    name: str
    expression: str
    period: float
    timer: Any = None
    due: float = 0.0  # the virtual scheduled moment of the next firing
    delivery: float = 0.0  # the virtual moment it is delivered (``due`` plus the jitter)


def iso_seconds(value: Any) -> str:
    """EventBridge's ``time``: UTC, whole seconds, ``Z``."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        dt = datetime.now(timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it (ISO time, no moto internals)."""
    out = {
        "version": event.get("version", "0"),
        "id": event.get("id"),
        "detail-type": event.get("detail-type"),
        "source": event.get("source"),
        "account": event.get("account"),
        "time": iso_seconds(event.get("time")),
        "region": event.get("region"),
        "resources": list(event.get("resources") or []),
        "detail": event.get("detail") if event.get("detail") is not None else {},
    }
    if "replay-name" in event:
        out["replay-name"] = event["replay-name"]
    return out


def _json_path(data: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$``, ``$.a.b``, ``$.a[0]``), or None."""
    if path in ("$", ""):
        return data
    if not path.startswith("$"):
        return None
    cur = data
    for name, index in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:]):
        if name:
            if not isinstance(cur, dict) or name not in cur:
                return None
            cur = cur[name]
        else:
            i = int(index)
            if not isinstance(cur, list) or i >= len(cur):
                return None
            cur = cur[i]
    return cur


def target_input(target: dict[str, Any], event: dict[str, Any], rule: Any) -> bytes:
    """What EventBridge sends to a target: the event, or the target's Input* shaping."""
    if target.get("Input") is not None:
        return str(target["Input"]).encode("utf-8")
    if target.get("InputPath"):
        return json.dumps(_json_path(event, target["InputPath"])).encode("utf-8")
    transformer = target.get("InputTransformer")
    if transformer:
        template: str = transformer.get("InputTemplate", "")
        values: dict[str, Any] = {
            k: _json_path(event, v) for k, v in (transformer.get("InputPathsMap") or {}).items()
        }
        values["aws.events.rule-arn"] = rule.arn
        values["aws.events.rule-name"] = rule.name
        values["aws.events.event.json"] = event
        values["aws.events.event.ingestion-time"] = event.get("time")

        return render_template(template, values).encode("utf-8")
    return json.dumps(event).encode("utf-8")


def render_template(template: str, values: dict[str, Any]) -> str:
    """InputTransformer substitution: ``<name>`` inside a JSON string is replaced
    by the raw text, elsewhere by the JSON value (as EventBridge does)."""
    out: list[str] = []
    i = 0
    in_string = False
    while i < len(template):
        c = template[i]
        if c == '"' and (i == 0 or template[i - 1] != "\\"):
            in_string = not in_string
        elif c == "<":
            m = re.match(r"<([A-Za-z0-9_.\-]+)>", template[i:])
            if m and m.group(1) in values:
                value = values[m.group(1)]
                if in_string:
                    text = value if isinstance(value, str) else json.dumps(value)
                    out.append(json.dumps(text)[1:-1])
                else:
                    out.append(json.dumps(value))
                i += m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out)


class EventRouter:
    def __init__(self, world: World) -> None:
        self.world = world
        self._records: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._queue: queue.Queue[tuple[int, str, str, dict[str, Any], str] | None] = queue.Queue()
        # (account, region, rule name) -> the armed rate schedule of a rule on the default bus.
        self._schedules: dict[tuple[str, str, str], Schedule] = {}
        self._rng = random.Random()  # the scheduled firings' delivery jitter
        self._thread = threading.Thread(target=self._worker, name="localaws-events", daemon=True)
        self._thread.start()

    # -- records -----------------------------------------------------------------

    def clear_records(self) -> None:
        self._records.clear()
        self._order.clear()

    def reset(self) -> None:
        self.clear_records()
        for sched in self._schedules.values():
            if sched.timer is not None:
                sched.timer.cancel()
        self._schedules.clear()  # moto's rules are gone with the reset too

    def list(self) -> list[dict[str, Any]]:
        with self.world.lock:
            return [json.loads(json.dumps(self._records[i])) for i in self._order]

    def _record(self, event: dict[str, Any], origin: str) -> dict[str, Any]:
        rec = self._records.get(event["id"])
        if rec is None:
            rec = {
                "id": event["id"],
                "origin": origin,
                "source": event.get("source"),
                "detail-type": event.get("detail-type"),
                "account": event.get("account"),
                "region": event.get("region"),
                "time": event.get("time"),
                "event": event,
                "matched_rules": [],
                "deliveries": [],
            }
            self._records[event["id"]] = rec
            self._order.append(event["id"])
        return rec

    # -- service events ----------------------------------------------------------

    def emit(self, account: str, region: str, event: dict[str, Any], origin: str) -> None:
        """Queue an event produced by an AWS service (called with the lock held)."""
        self._queue.put((self.world.generation, account, region, event, origin))

    def stop(self) -> None:
        self._queue.put(None)

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            generation, account, region, event, origin = item
            try:
                with self.world.lock:
                    if generation != self.world.generation:
                        continue  # emitted before a reset
                    self._route(account, region, event, origin)
            except Exception:
                log.exception("routing event %s failed", event.get("id"))

    def _route(self, account: str, region: str, event: dict[str, Any], origin: str) -> None:
        from moto.events import events_backends

        rec = self._record(event, origin)
        backend = events_backends[account][region]
        bus = backend.event_buses.get("default")
        if bus is None:
            return
        for rule in list(bus.rules.values()):
            self.deliver_rule(rule, event, rec)
        log.info(
            "event %s (%s) matched %d rule(s)", event["id"], event.get("detail-type"), len(rec["matched_rules"])
        )

    # -- scheduled rules ---------------------------------------------------------

    def schedule_changed(self, account: str, region: str, rule: Any) -> None:
        """PutRule stored ``rule`` (lock held): arm, re-arm or drop its rate schedule."""
        key = (account, region, rule.name)
        expression = rule.scheduled_expression if rule.event_bus_name == "default" else None
        period = rate_seconds(expression)
        current = self._schedules.get(key)
        if current is not None and period is not None and current.expression == expression:
            return  # the schedule did not change: its phase is kept
        if current is not None:
            if current.timer is not None:
                current.timer.cancel()
            del self._schedules[key]
        if period is None:
            return  # no schedule, or cron() (not modelled)
        sched = Schedule(account, region, rule.name, str(expression), period)
        self._schedules[key] = sched
        self._arm(sched, self.world.clock.now() + period)
        log.info("rule %s fires every %ss (%s)", rule.arn, period, expression)

    def rule_deleted(self, account: str, region: str, name: str) -> None:
        sched = self._schedules.pop((account, region, name), None)
        if sched is not None and sched.timer is not None:
            sched.timer.cancel()

    def schedules(self) -> list[dict[str, Any]]:
        now = self.world.clock.now()
        return [{"account": s.account, "region": s.region, "rule": s.name, "expression": s.expression,
                 "next_in_s": max(0.0, s.due - now) if s.timer is not None else None,
                 "delivery_in_s": max(0.0, s.delivery - now) if s.timer is not None else None}
                for s in self._schedules.values()]

    def _arm(self, sched: Schedule, deadline: float) -> None:
        """Arm the firing scheduled at ``deadline``: delivered ``jitter`` later (never in the past)."""
        generation = self.world.generation
        bound = min(self.world.profile.current.schedule_jitter_s, sched.period)
        jitter = self._rng.random() * bound if bound > 0 else 0.0
        delivery = max(deadline + jitter, self.world.clock.now())
        sched.due, sched.delivery = deadline, delivery
        sched.timer = self.world.scheduler.call_at(
            delivery, lambda: self._fire(sched, deadline, generation), name=f"schedule {sched.name}")

    def _fire(self, sched: Schedule, deadline: float, generation: int) -> None:
        from moto.events import events_backends

        with self.world.lock:
            if generation != self.world.generation:
                return
            key = (sched.account, sched.region, sched.name)
            if self._schedules.get(key) is not sched:
                return  # re-armed or deleted since
            bus = events_backends[sched.account][sched.region].event_buses.get("default")
            rule = bus.rules.get(sched.name) if bus is not None else None
            if rule is None or rule.scheduled_expression != sched.expression:
                self._schedules.pop(key, None)
                return
            # The next scheduled moment counts from this one's (not from its late delivery).
            nxt = deadline + sched.period
            now = self.world.clock.now()
            if nxt + sched.period <= now:  # a stall (debugger, slow machine): no backlog, keep the phase
                nxt += sched.period * int((now - nxt) // sched.period)  # the latest moment due, delivered now
            self._arm(sched, nxt)
            if rule.state not in ENABLED_STATES:
                return
            epoch = self.world.clock.aws_epoch(deadline)  # the scheduled moment, in AWS time (``clock``)
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": sched.account,
                "time": iso_seconds(epoch),
                "region": sched.region,
                "resources": [rule.arn],
                "detail": {},
            }
            rec = self._record(event, "schedule")
            rec["late_s"] = round(now - deadline, 3)  # virtual seconds after the scheduled moment
            rec["matched_rules"].append(rule.arn)
            self.deliver_targets(rule, event, rec)
            log.info("scheduled rule %s fired: event %s", rule.arn, event["id"])

    # -- rules -------------------------------------------------------------------

    def deliver_rule(self, rule: Any, event: dict[str, Any], rec: dict[str, Any]) -> None:
        """Match one rule and deliver to its targets (lock held)."""
        if rule.state not in ENABLED_STATES:
            return
        pattern = rule.event_pattern.get_pattern()
        if not pattern:
            return  # a schedule-only rule matches no event
        if not patterns.matches(pattern, event):
            return
        rec["matched_rules"].append(rule.arn)
        self.deliver_targets(rule, event, rec)

    def deliver_targets(self, rule: Any, event: dict[str, Any], rec: dict[str, Any]) -> None:
        """Deliver ``event`` to each of ``rule``'s targets (lock held)."""
        for target in list(rule.targets):
            arn = target.get("Arn", "")
            delivery = {"rule_arn": rule.arn, "target_id": target.get("Id"), "target_arn": arn}
            parts = arn.split(":")
            service = parts[2] if len(parts) > 2 else ""
            try:
                if service == "lambda":
                    delivery["type"] = "lambda"
                    payload = target_input(target, event, rule)
                    self.world.lambdas.submit_event(
                        function_arn=arn,
                        payload=payload,
                        event_id=event["id"],
                        rule_arn=rule.arn,
                    )
                    delivery["status"] = "queued"
                elif service in ("sqs", "logs", "events"):
                    delivery["type"] = service
                    self._moto_delivery(rule, target, event)
                    delivery["status"] = "delivered"
                else:
                    delivery["type"] = service or "unknown"
                    delivery["status"] = "recorded"
            except Exception as exc:  # one failing target must not stop the others
                log.warning("delivery of %s to %s failed: %s", event["id"], arn, exc)
                delivery["status"] = "failed"
                delivery["error"] = str(exc)
            rec["deliveries"].append(delivery)

    def _moto_delivery(self, rule: Any, target: dict[str, Any], event: dict[str, Any]) -> None:
        from moto.events.models import EventPattern

        moto_event = dict(event)
        moto_event["time"] = datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        moto_event["ingestion-time"] = moto_event["time"]
        saved_targets, saved_pattern = rule.targets, rule.event_pattern
        try:
            rule.targets = [target]
            rule.event_pattern = EventPattern(None, {})
            ORIGINAL_SEND_TO_TARGETS(rule, moto_event)
        finally:
            rule.targets, rule.event_pattern = saved_targets, saved_pattern


ORIGINAL_SEND_TO_TARGETS: Any = None


def install(world_ref: Any) -> None:
    global ORIGINAL_SEND_TO_TARGETS
    from moto.events import models as m

    ORIGINAL_SEND_TO_TARGETS = m.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        router = world_ref().events
        event = canonical_event(original_event)
        rec = router._record(event, "PutEvents")
        router.deliver_rule(self, event, rec)

    m.Rule.send_to_targets = send_to_targets

    # Scheduled rules: PutRule validates a rate as EventBridge does and (re)arms it;
    # DeleteRule stops it.
    from moto.events.exceptions import ValidationException

    orig_put_rule = m.EventsBackend.put_rule

    def put_rule(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        expression = kwargs.get("scheduled_expression")
        if expression and not str(expression).startswith("cron(") and rate_seconds(expression) is None:
            bus = self._normalize_event_bus_arn(kwargs.get("event_bus_arn"))
            if bus == "default":  # else moto's "supported only on the default event bus" first
                raise ValidationException("Parameter ScheduleExpression is not valid.")
        rule = orig_put_rule(self, name, *args, **kwargs)
        world_ref().events.schedule_changed(self.account_id, self.region_name, rule)
        return rule

    m.EventsBackend.put_rule = put_rule

    orig_delete_rule = m.EventsBackend.delete_rule

    def delete_rule(self: Any, name: str, event_bus_arn: str | None) -> None:
        orig_delete_rule(self, name, event_bus_arn)
        if self._normalize_event_bus_arn(event_bus_arn) == "default":
            bus = self.event_buses.get("default")
            if bus is None or name not in bus.rules:
                world_ref().events.rule_deleted(self.account_id, self.region_name, name)

    m.EventsBackend.delete_rule = delete_rule

    # TestEventPattern: moto answers an empty body; answer with our matcher.
    from moto.events import responses as r
    from moto.events.exceptions import InvalidEventPatternException

    def test_event_pattern(self: Any) -> Any:
        pattern = m.EventPatternParser(self._get_param("EventPattern")).parse()
        try:
            event = json.loads(self._get_param("Event") or "")
        except ValueError:
            raise InvalidEventPatternException(reason="Event is not valid JSON")
        missing = [k for k in ("id", "account", "source", "time", "region", "detail-type") if k not in event]
        if missing:
            raise InvalidEventPatternException(
                reason=f"Parameter Event is not valid: missing required field(s) {', '.join(missing)}"
            )
        return self._create_response({"Result": patterns.matches(pattern, event)})

    r.EventsHandler.test_event_pattern = test_event_pattern
