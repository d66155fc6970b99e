"""Lambda behaviour moto gets kinder than AWS.

* AddPermission with a statement id the function's policy already has: AWS answers
  ``ResourceConflictException`` (HTTP 409) "The statement id (<sid>) provided already
  exists. Please provide a new statement id, or remove the existing statement."; moto
  appended a second statement with the same id, so a retried AddPermission whose first
  answer was lost never met the conflict it meets on AWS.

CreateFunction of a name in use already answers AWS's ``ResourceConflictException``
"Function already exist: <name>" in moto itself.
"""

from __future__ import annotations

from typing import Any


def install(world_ref: Any) -> None:
    import json

    from moto.awslambda import policy as p
    from moto.awslambda.exceptions import LambdaClientError

    class StatementIdExists(LambdaClientError):
        code = 409

        def __init__(self, sid: str) -> None:
            super().__init__(
                "ResourceConflictException",
                f"The statement id ({sid}) provided already exists. Please provide a new statement id, "
                "or remove the existing statement.",
            )

    orig_add_statement = p.Policy.add_statement

    def add_statement(self: Any, raw: str, qualifier: str | None = None) -> Any:
        sid = json.loads(raw).get("StatementId")
        if sid and any(s.get("Sid") == sid for s in self.statements):
            raise StatementIdExists(sid)
        return orig_add_statement(self, raw, qualifier)

    p.Policy.add_statement = add_statement
