"""EC2's ClientToken, which moto ignores.

AWS: "If you repeat a request with the same client token and the same
parameters, the API returns the same response ... If you repeat the request
with the same client token but one or more different parameters, the API
returns an IdempotentParameterMismatch error" (Amazon EC2 API Reference,
"Ensuring idempotency in Amazon EC2 API requests"). The first answer is
replayed as it was, even when the object it names was deleted since: a token
reused for a new object gets the old one back, which is why a client must make
one token per logical create.

Only the EC2 operations this project calls with a token are covered (those
whose API takes one): CreateVolume, CreateLaunchTemplate,
CreateLaunchTemplateVersion, CreateRouteTable, RunInstances. Only successful
answers are kept: a refused request may be repeated with the same token.
"""

from __future__ import annotations

import threading
from typing import Any

from .awserrors import render_error
from .requestinfo import RequestInfo

OPERATIONS = frozenset(
    {"CreateVolume", "CreateLaunchTemplate", "CreateLaunchTemplateVersion", "CreateRouteTable", "RunInstances"}
)

Response = tuple[int, list[tuple[str, str]], bytes]


class ClientTokens:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (account, region, operation, token) -> (the other parameters, the first answer)
        self._answers: dict[tuple[Any, ...], tuple[dict[str, Any], Response]] = {}

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()

    @staticmethod
    def _key(info: RequestInfo, account: str) -> tuple[Any, ...] | None:
        if info.service != "ec2" or info.operation not in OPERATIONS:
            return None
        token = info.all_params.get("ClientToken")
        if not token:
            return None
        return (account, info.region, info.operation, token)

    @staticmethod
    def _params(info: RequestInfo) -> dict[str, Any]:
        return {k: v for k, v in info.all_params.items() if k != "ClientToken"}

    def replay(self, info: RequestInfo, account: str) -> Response | None:
        """The answer to give instead of performing the call again, if any."""
        key = self._key(info, account)
        if key is None:
            return None
        with self._lock:
            kept = self._answers.get(key)
        if kept is None:
            return None
        params, answer = kept
        if params != self._params(info):
            return render_error(
                info.protocol,
                info.service,
                "IdempotentParameterMismatch",
                f"The client token {key[3]} was already used with different parameters.",
                400,
            )
        return answer

    def keep(self, info: RequestInfo, account: str, answer: Response) -> None:
        key = self._key(info, account)
        if key is None or answer[0] >= 400:
            return
        with self._lock:
            self._answers.setdefault(key, (self._params(info), answer))
