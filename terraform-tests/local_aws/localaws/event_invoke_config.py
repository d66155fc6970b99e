"""Lambda's asynchronous invocation configuration, kept and answered as Lambda does.

PutFunctionEventInvokeConfig / UpdateFunctionEventInvokeConfig set how many times Lambda
retries a failed asynchronous invocation (``MaximumRetryAttempts``, 0-2, default 2) and how
long it keeps an event (``MaximumEventAgeInSeconds``, 60-21600, default 21600);
``lambda_runner`` applies them (``async_settings``). Moto 5.2.5 got the API wrong:

* Put appended a second configuration and Get kept answering the first, so a changed
  setting never showed. Lambda: "If a configuration already exists for a function ...
  this operation overwrites it. If you exclude any settings, they are removed"
  (PutFunctionEventInvokeConfig, Lambda API Reference).
* Update did the same as Put, dropping the settings it was not given, and made a
  configuration where none was. Lambda: "To set one option without affecting existing
  settings for other options, use UpdateFunctionEventInvokeConfig"; on a function without
  one it answers 404 ResourceNotFoundException "The function <arn> doesn't have an
  EventInvokeConfig" (the message moto's Get uses).
* Update answered ``LastModified`` as an ISO string; the API's type is a timestamp "in
  Unix time seconds" (FunctionEventInvokeConfig), a number on the wire, which is what the
  AWS SDKs parse (Put and Get were right). It was also the function's time, not the
  configuration's.
* The answers lacked what Lambda's carry (API Reference examples): ``FunctionArn`` with
  the ``:$LATEST`` qualifier and ``DestinationConfig`` with empty ``OnSuccess`` /
  ``OnFailure`` when none is set.
* Values below the minimum were left to the client's validation: the Rust SDK does none,
  and Lambda answers ValidationException "1 validation error detected: Value '-1' at
  'maximumRetryAttempts' failed to satisfy constraint: Member must have value greater than
  or equal to 0".
"""

from __future__ import annotations

import time
from typing import Any

DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_EVENT_AGE = 21600.0
# (request member, name in validation messages, minimum); moto checks the maximums.
MINIMUMS = (
    ("MaximumRetryAttempts", "maximumRetryAttempts", 0),
    ("MaximumEventAgeInSeconds", "maximumEventAgeInSeconds", 60),
)


def async_settings(fn: Any) -> tuple[int, float]:
    """(MaximumRetryAttempts, MaximumEventAgeInSeconds) Lambda applies to the function's
    asynchronous invocations: the configured ones or Lambda's defaults."""
    config = fn.event_invoke_config[0].config if fn.event_invoke_config else {}
    retries = config.get("MaximumRetryAttempts")
    age = config.get("MaximumEventAgeInSeconds")
    return (
        DEFAULT_MAX_RETRIES if retries is None else int(retries),
        DEFAULT_MAX_EVENT_AGE if age is None else float(age),
    )


def install(world_ref: Any) -> None:
    from moto.awslambda import models as m
    from moto.awslambda.exceptions import UnknownEventConfig, ValidationException

    orig_validate_max = m.EventInvokeConfig.validate_max

    def validate_max(self: Any) -> None:
        for member, name, minimum in MINIMUMS:
            value = self.config.get(member)
            if value is not None and value < minimum:
                raise ValidationException(value, name, f"Member must have value greater than or equal to {minimum}")
        orig_validate_max(self)

    m.EventInvokeConfig.validate_max = validate_max

    def response(self: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "FunctionArn": self.arn if self.arn.count(":") > 6 else f"{self.arn}:$LATEST",
            "LastModified": self.last_modified,
            "DestinationConfig": {"OnSuccess": {}, "OnFailure": {}},
        }
        doc.update(self.config)
        return doc

    m.EventInvokeConfig.response = response

    def put_function_event_invoke_config(self: Any, function_name: str, config: dict[str, Any]) -> dict[str, Any]:
        fn = self.get_function(function_name)
        event_config = m.EventInvokeConfig(fn.function_arn, _now(), dict(config))
        fn.event_invoke_config = [event_config]  # overwrites: settings left out are removed
        return event_config.response()

    def update_function_event_invoke_config(self: Any, function_name: str, config: dict[str, Any]) -> dict[str, Any]:
        fn = self.get_function(function_name)
        if not fn.event_invoke_config:
            raise UnknownEventConfig(fn.function_arn)
        merged = {**fn.event_invoke_config[0].config, **config}
        event_config = m.EventInvokeConfig(fn.function_arn, _now(), merged)
        fn.event_invoke_config = [event_config]
        return event_config.response()

    m.LambdaBackend.put_function_event_invoke_config = put_function_event_invoke_config
    m.LambdaBackend.update_function_event_invoke_config = update_function_event_invoke_config


def _now() -> float:
    # Unix seconds with milliseconds, as Lambda answers timestamps.
    return round(time.time(), 3)
