"""Fault injection, transient states and the call log.

Tests of a provider/handler need AWS to misbehave on cue: throttle the third
AttachVolume, be slow, keep a volume "detaching" a little longer than usual.
Real AWS does all of these; moto does none. Three small stores, all guarded
by their own lock (they are touched by request threads concurrently):

* ``FaultStore``: rules matched against every AWS call by operation (or ``*``),
  optional service and key parameters. A rule fires ``count`` times (or for
  ever), each time with probability ``fraction``; it answers the given error
  in the service's own format (see ``awserrors``), after an optional delay.
  Latency-only rules delay the call and let it through. ``lose_response``
  rules let the call through, so it takes effect, and then reset the
  connection before any byte of the answer is sent: AWS's "the request
  succeeded but the client never heard" (a dropped connection, a proxy or
  load balancer reset), which is why EC2 offers ClientToken ("Ensuring
  idempotency in Amazon EC2 API requests": "If you repeat the request, ...
  the same response is returned"). Not a timeout: the client learns at once.
* ``Transients``: "the next K polls look like this" states (volume detaching,
  instance pending, Lambda update in progress), consumed as they are observed.
* ``CallLog``: every AWS call with its key parameters, status, error code and
  the fault that answered it, for tests to assert on ordering and retries.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

from .requestinfo import RequestInfo


def iso_now_ms() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class BadRequest(ValueError):
    """A control-API request that makes no sense (answered with HTTP 400)."""


class Fault:
    def __init__(self, fid: str, spec: dict[str, Any]) -> None:
        self.id = fid
        self.operation = spec.get("operation") or "*"
        self.service = spec.get("service")
        count = spec.get("count")
        self.remaining: int | None = int(count) if count is not None else None
        self.fraction = float(spec.get("fraction", 1.0))
        self.error_code = spec.get("error_code")
        self.status = int(spec.get("status", 400))
        self.message = spec.get("message") or (self.error_code or "")
        self.latency_ms = float(spec.get("latency_ms", 0) or 0)
        self.match = dict(spec.get("match") or {})
        self.lose_response = bool(spec.get("lose_response", False))
        self.fired = 0
        if self.lose_response and self.error_code:
            raise BadRequest("a fault either answers an error or loses the response, not both")
        if not self.error_code and not self.latency_ms and not self.lose_response:
            raise BadRequest("a fault needs error_code, latency_ms or lose_response")
        if not 0.0 <= self.fraction <= 1.0:
            raise BadRequest("fraction must be within [0, 1]")

    def applies_to(self, info: RequestInfo) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.operation != "*" and self.operation != info.operation:
            return False
        if self.service and self.service != info.service:
            return False
        for key, want in self.match.items():
            have = info.params.get(key, info.get(key))
            if isinstance(have, list):
                if want not in have and have != want:
                    return False
            elif have != want:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "service": self.service,
            "remaining": self.remaining,
            "fraction": self.fraction,
            "error_code": self.error_code,
            "status": self.status,
            "message": self.message,
            "latency_ms": self.latency_ms,
            "match": self.match,
            "lose_response": self.lose_response,
            "fired": self.fired,
        }


class FaultStore:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._rng = rng or random.Random()

    def add(self, spec: dict[str, Any]) -> Fault:
        if not isinstance(spec, dict):
            raise BadRequest("expected a JSON object")
        with self._lock:
            fault = Fault(f"f-{next(self._ids)}", spec)
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def pick(self, info: RequestInfo) -> tuple[float, Fault | None, list[str], bool]:
        """Decide this call's fate: (delay seconds, error fault or None, ids of fired faults,
        whether its response is to be lost)."""
        delay = 0.0
        fired: list[str] = []
        lose = False
        with self._lock:
            for fault in self._faults:
                if not fault.applies_to(info):
                    continue
                if fault.fraction < 1.0 and self._rng.random() >= fault.fraction:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.fired += 1
                fired.append(fault.id)
                delay += fault.latency_ms / 1000.0
                lose = lose or fault.lose_response
                if fault.error_code:
                    return delay, fault, fired, False
        return delay, None, fired, lose


class Transients:
    """Counters of "the next K polls show state X", keyed by (kind, id)."""

    KINDS = ("volume_detaching", "interface_detaching", "instance_pending", "function_update_in_progress")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left: dict[tuple[str, str], int] = {}

    def add(self, spec: dict[str, Any]) -> dict[str, Any]:
        kind = spec.get("kind")
        if kind not in self.KINDS:
            raise BadRequest(f"kind must be one of {', '.join(self.KINDS)}")
        ident = spec.get("id") or spec.get("name")
        if not ident:
            raise BadRequest("id (or name for functions) is required")
        polls = int(spec.get("polls", 1))
        with self._lock:
            self._left[(kind, ident)] = polls
        return {"kind": kind, "id": ident, "polls": polls}

    def active(self, kind: str, ident: str) -> bool:
        with self._lock:
            return self._left.get((kind, ident), 0) > 0

    def consume(self, kind: str, ident: str) -> bool:
        """True (and one poll used) if the transient state is still showing."""
        with self._lock:
            left = self._left.get((kind, ident), 0)
            if left <= 0:
                return False
            self._left[(kind, ident)] = left - 1
            return True

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"kind": k, "id": i, "polls": n} for (k, i), n in self._left.items()]

    def clear(self) -> None:
        with self._lock:
            self._left.clear()


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    def record(
        self,
        info: RequestInfo,
        status: int,
        error_code: str | None,
        fault: str | None,
        started: float,
        caller: dict[str, Any] | None = None,
        response_lost: bool = False,
    ) -> None:
        entry = {
            "seq": 0,
            "time": iso_now_ms(),
            "service": info.service,
            "region": info.region,
            "operation": info.operation,
            "params": info.params,
            "status": status,
            "error_code": error_code,
            "fault": fault,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "access_key_id": info.access_key_id,
            # The Lambda attempt whose credentials signed the call (None: anyone else).
            "function": caller["function"] if caller else None,
            "request_id": caller["request_id"] if caller else None,
            # Performed, but the connection was reset before the answer (a lose_response fault).
            "response_lost": response_lost,
        }
        with self._lock:
            entry["seq"] = next(self._seq)
            self._calls.append(entry)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
