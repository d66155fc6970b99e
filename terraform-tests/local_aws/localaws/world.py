"""The one object holding all of the server's state, and its lock.

Moto's backends are plain Python objects with no locking of their own, and
this server touches them from many threads: werkzeug serves each request on
its own thread, and lifecycle timeouts, event routing and Lambda invocations
run in the background. ``World.lock`` (re-entrant) serialises every access to
moto's state: the middleware holds it around each call into moto, background
work takes it for its (short) reads and writes. Nothing slow ever runs with
it held: a Lambda process runs without it (it calls back into this server,
whose request threads then need the lock), and injected latency is slept
before taking it.

``generation`` is bumped by ``reset``: background work started before a reset
(retries, queued events, running invocations) checks it and drops its results.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .activities import ScalingActivities
from .alarms import Alarms
from .clock import Clock, Scheduler
from .ec2ext import Ec2Extensions
from .eniext import EniExtensions
from .events import EventRouter
from .faults import CallLog, FaultStore, Transients
from .iam_enforce import IamEnforcement
from .iam_propagation import IamPropagation
from .idempotency import ClientTokens
from .instancelife import InstanceLife
from .lambda_runner import LambdaRunner
from .launches import Launches
from .lifecycle import LifecycleManager
from .profile import ProfileStore
from .zoneoutage import ZoneOutages

log = logging.getLogger("localaws")

_current: "World | None" = None


def current() -> "World":
    if _current is None:
        raise RuntimeError("localaws is not started")
    return _current


class World:
    def __init__(self, clock_scale: float = 1.0, region: str = "ap-southeast-2", profile: str = "realistic") -> None:
        global _current
        self.lock = threading.RLock()
        self.generation = 0
        self.region = region
        self.port: int | None = None
        self.endpoint = "http://127.0.0.1"  # http://HOST:PORT once bound
        self.clock = Clock(clock_scale)
        self.profile = ProfileStore(profile)
        self.scheduler = Scheduler(self.clock)
        self.faults = FaultStore()
        self.transients = Transients()
        self.calls = CallLog()
        self.tokens = ClientTokens()
        self.lifecycle = LifecycleManager(self)
        self.ec2 = Ec2Extensions(self)
        self.enis = EniExtensions(self)
        self.instances = InstanceLife(self)
        self.launches = Launches(self)
        self.zones = ZoneOutages(self)
        self.activities = ScalingActivities(self)
        self.alarms = Alarms(self)
        self.events = EventRouter(self)
        self.lambdas = LambdaRunner(self)
        self.iam_propagation = IamPropagation(self)
        self.iam = IamEnforcement(self)
        _current = self

    def reset(self) -> None:
        """Fresh AWS: moto's backends and every piece of our own state."""
        from moto.moto_api._internal.models import moto_api_backend

        with self.lock:
            self.generation += 1
            self.scheduler.cancel_all()
            self.lifecycle.reset()
            self.lambdas.reset()
            self.iam_propagation.reset()
            self.iam.reset()
            self.events.reset()
            self.ec2.reset()
            self.enis.reset()
            self.instances.reset()
            self.launches.reset()
            self.zones.reset()
            self.activities.reset()
            self.alarms.reset()
            self.faults.clear()
            self.transients.clear()
            self.calls.clear()
            self.tokens.reset()
            self.profile.reset()
            moto_api_backend.reset()
        log.info("reset: moto and localaws state cleared")

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.events.stop()
        self.lambdas.close()

    def snapshot(self) -> dict[str, Any]:
        return {"clock_scale": self.clock.scale, "region": self.region, "port": self.port, "endpoint": self.endpoint,
                "profile": self.profile.current.name}
