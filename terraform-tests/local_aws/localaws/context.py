"""Per-request state shared between the middleware and the moto patches.

Some emulated effects only change how one response *looks* (a transient
"volume is detaching for the next K polls" must show in the DescribeVolumes
answer that consumed the poll, and in no other). The patched model properties
consult this thread-local view; the middleware clears it before and after
every request (werkzeug serves each request on its own thread).
"""

from __future__ import annotations

import threading


class _RequestView(threading.local):
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.detaching_volumes: set[str] = set()
        self.detaching_interfaces: set[str] = set()
        self.pending_instances: set[str] = set()
        self.operation: str | None = None
        # The HTTP status of a refusal AWS answers as a server error (moto's EC2 errors are
        # all 400): set by the patch that refuses, applied by the middleware (zoneoutage).
        self.status_override: int | None = None
        # A denied authorization EBS makes on the caller's behalf after accepting the call (the
        # KMS key use of CreateVolume, iam_enforce): the new volume is given up (ec2ext).
        self.deferred_denial: str | None = None


view = _RequestView()
