"""A scaled clock and a timer thread for every AWS delay we emulate.

AWS timings (lifecycle heartbeat timeouts, Lambda's asynchronous retry delays,
EBS detach durations) are far too long for tests, so they run on a *virtual*
clock that advances ``1 / scale`` times faster than real time: with
``--clock-scale 0.01`` a 30 s heartbeat timeout passes in 0.3 s real time.

Why a virtual clock rather than multiplying each delay once: the scale can be
changed at run time (``POST /_localaws/clock``), and a timer that is already
pending must follow the new speed. Every deadline is therefore kept in virtual
seconds; the timer thread converts the remaining virtual time into real time
each time it goes to sleep, and is woken up whenever the scale changes.

What is *not* scaled: the Lambda function timeout (a real process really runs,
so its budget is real seconds, as the brief asks).

AWS time. Since AWS's durations run ``1/scale`` times faster here, a timestamp that a
client compares with such a duration must run as fast, or the two contradict each other
(a launch retried 600 AWS seconds later would show a StartTime 6 real seconds later, and
300 AWS seconds of failures would take 300 real seconds to show). *AWS time* is therefore
a wall-clock UTC that advances with the virtual clock: ``aws_epoch(v)`` = the real UTC at
which the clock was created + ``v`` virtual seconds (continuous across scale changes, as
virtual time is; not reset by a reset). It is ahead of real UTC by
``(1/scale - 1)`` x the real seconds elapsed (a day after about 15 real minutes at 0.01).
Shown in AWS time: scaling activities' StartTime and EndTime (and the ``At <time>`` of
their Cause), scheduled rules' event ``time``, snapshots' StartTime, ``ImpairedSince`` of a
zone outage, the control API's ``aws_time``. Real UTC, because the reader compares them
with its own process clock or with other real timestamps: launch lifecycle events'
``time`` (the heal function computes the hook's remaining time from it and its clock),
PutEvents events without a ``Time``, log timestamps, CloudWatch datapoints (EMF
``_aws.Timestamp`` is the function's own clock), the call and invocation records, and the
timestamps moto itself sets (LaunchTime, CreateTime, ...).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable

log = logging.getLogger("localaws.clock")


def rfc3339_ms(epoch: float) -> str:
    """``2026-12-07T03:10:00.123Z``: a time in seconds since the epoch, UTC, milliseconds."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Clock:
    """Virtual time that runs ``1/scale`` times faster than ``time.monotonic``."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("clock scale must be > 0")
        self._lock = threading.Lock()
        self._scale = float(scale)
        self._real0 = time.monotonic()
        self._utc0 = time.time()  # AWS time 0: the real UTC when the clock was created
        self._virt0 = 0.0
        self._listeners: list[Callable[[], None]] = []

    @property
    def scale(self) -> float:
        return self._scale

    def now(self) -> float:
        """Current virtual time in (virtual) seconds."""
        with self._lock:
            return self._virt0 + (time.monotonic() - self._real0) / self._scale

    def aws_epoch(self, virtual: float | None = None) -> float:
        """AWS time (seconds since the Unix epoch) of virtual moment ``virtual`` (default: now)."""
        return self._utc0 + (self.now() if virtual is None else virtual)

    def aws_utc(self, virtual: float | None = None) -> datetime:
        """AWS time of virtual moment ``virtual`` (default: now), an aware UTC datetime."""
        return datetime.fromtimestamp(self.aws_epoch(virtual), tz=timezone.utc)

    def set_scale(self, scale: float) -> None:
        """Change the speed from now on; pending deadlines keep their virtual value."""
        if scale <= 0:
            raise ValueError("clock scale must be > 0")
        with self._lock:
            real = time.monotonic()
            self._virt0 = self._virt0 + (real - self._real0) / self._scale
            self._real0 = real
            self._scale = float(scale)
            listeners = list(self._listeners)
        for fn in listeners:
            fn()

    def real_seconds_until(self, virtual_deadline: float) -> float:
        """Real seconds until ``virtual_deadline`` at the current scale (>= 0)."""
        with self._lock:
            virt_now = self._virt0 + (time.monotonic() - self._real0) / self._scale
            return max(0.0, (virtual_deadline - virt_now) * self._scale)

    def on_scale_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)


class Timer:
    """Handle of a scheduled callback; ``cancel()`` is idempotent."""

    __slots__ = ("deadline", "fn", "name", "cancelled")

    def __init__(self, deadline: float, fn: Callable[[], None], name: str) -> None:
        self.deadline = deadline
        self.fn = fn
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """One background thread running callbacks at virtual deadlines.

    Callbacks run on the scheduler thread, one at a time, so they must be
    short; anything slow (running a Lambda) hands work to its own thread.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._stopped = False
        clock.on_scale_change(self._wake)
        self._thread = threading.Thread(target=self._run, name="localaws-timers", daemon=True)
        self._thread.start()

    def call_later(self, virtual_delay: float, fn: Callable[[], None], name: str = "") -> Timer:
        return self.call_at(self.clock.now() + max(0.0, virtual_delay), fn, name)

    def call_at(self, virtual_deadline: float, fn: Callable[[], None], name: str = "") -> Timer:
        timer = Timer(virtual_deadline, fn, name)
        with self._cond:
            heapq.heappush(self._heap, (virtual_deadline, next(self._seq), timer))
            self._cond.notify()
        return timer

    def cancel_all(self) -> None:
        with self._cond:
            for _, _, timer in self._heap:
                timer.cancel()
            self._heap.clear()
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self.clock.real_seconds_until(self._heap[0][0])
                    if wait <= 0:
                        _, _, timer = heapq.heappop(self._heap)
                        break
                    self._cond.wait(timeout=min(wait, 1.0))
            if timer.cancelled:
                continue
            try:
                timer.fn()
            except Exception:  # a failing timer must not kill the thread
                log.exception("timer %s failed", timer.name or timer.fn)
