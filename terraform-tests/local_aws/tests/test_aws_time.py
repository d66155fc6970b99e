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
