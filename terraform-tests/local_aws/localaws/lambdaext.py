"""Lambda behaviour moto gets kinder than AWS.

* AddPermission with a statement id the function's policy already has: AWS answers
  ``ResourceConflictException`` (HTTP 409) "The statement id (<sid>) provided already
  exists. Please provide a new statement id, or remove the existing statement."; moto
  appended a second statement with the same id, so a retried AddPermission whose first
  answer was lost never met the conflict it meets on AWS.

* LoggingConfig (CreateFunction, UpdateFunctionConfiguration) is kept and answered by
  GetFunction / GetFunctionConfiguration, as Lambda does; moto dropped it, so a reader that
  compares the function's configuration with the wanted one always saw a difference and
  rewrote the configuration on every update, which hid what a rewrite is needed for (the
  environment variables' grant after a role is made again: see ``lambda_runner``).

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

    from moto.awslambda import models as m

    orig_init = m.LambdaFunction.__init__

    def init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        orig_init(self, account_id, spec, *args, **kwargs)
        self.localaws_logging_config = spec.get("LoggingConfig")

    m.LambdaFunction.__init__ = init

    orig_update = m.LambdaFunction.update_configuration

    def update_configuration(self: Any, config_updates: dict[str, Any]) -> Any:
        if "LoggingConfig" in config_updates:
            self.localaws_logging_config = config_updates["LoggingConfig"]
        return orig_update(self, config_updates)

    m.LambdaFunction.update_configuration = update_configuration

    orig_get_configuration = m.LambdaFunction.get_configuration

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = orig_get_configuration(self, *args, **kwargs)
        logging_config = getattr(self, "localaws_logging_config", None)
        if logging_config:
            # Lambda answers the defaults it applied along with the log group.
            config["LoggingConfig"] = {"LogFormat": "Text", **logging_config}
        return config

    m.LambdaFunction.get_configuration = get_configuration

    orig_update_code = m.LambdaFunction.update_function_code

    def update_function_code(self: Any, updated_spec: dict[str, Any]) -> Any:
        # UpdateFunctionCode takes `Architectures` with the code ("The instruction set
        # architecture that the function supports", Lambda API Reference, UpdateFunctionCode):
        # new code for the other architecture changes the function's architecture with it.
        # moto ignored it, so the runner kept treating arm64 code as an x86_64 function's.
        if updated_spec.get("Architectures"):
            self.architectures = updated_spec["Architectures"]
        return orig_update_code(self, updated_spec)

    m.LambdaFunction.update_function_code = update_function_code
