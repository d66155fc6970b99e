"""CloudWatch Logs' tag API refuses a log group that does not exist, as CloudWatch Logs does.

Moto 5.2.5 keeps tags by ARN in a tagging service that knows nothing of log groups:
TagResource, UntagResource and ListTagsForResource on the ARN of a log group that does not
exist (never made, deleted, or misspelt by the caller) succeed, and a tag written that way
is answered for a log group of that name made later. CloudWatch Logs answers
ResourceNotFoundException (HTTP 400; TagResource, UntagResource and ListTagsForResource,
CloudWatch Logs API Reference, "Errors": "The specified resource does not exist."; the
message for a log group is moto's own, "The specified log group does not exist.", as the
by-name calls TagLogGroup and UntagLogGroup already answer). So a client that builds a log
group's ARN itself (arn:<partition>:logs:<region>:<account>:log-group:<name>) learns here,
as on AWS, when it built it wrong.

A deleted log group's tags go with it (moto kept them for a later group of the same name).

ARNs of other CloudWatch Logs resources (destinations, deliveries) are left to moto.
"""

from __future__ import annotations

from typing import Any

LOG_GROUP_MARK = ":log-group:"


def install(world_ref: Any) -> None:
    del world_ref  # no state of its own: the log groups are moto's
    from moto.logs import models as lm
    from moto.logs.exceptions import ResourceNotFoundException

    def check(backend: Any, arn: str) -> None:
        if LOG_GROUP_MARK not in arn:
            return
        if not any(group.arn == arn for group in backend.groups.values()):
            raise ResourceNotFoundException()

    for name in ("tag_resource", "untag_resource", "list_tags_for_resource"):
        original = getattr(lm.LogsBackend, name)

        def patched(self: Any, arn: str, *args: Any, _original: Any = original) -> Any:
            check(self, arn)
            return _original(self, arn, *args)

        setattr(lm.LogsBackend, name, patched)

    original_delete = lm.LogsBackend.delete_log_group

    def delete_log_group(self: Any, log_group_name: str) -> None:
        group = self.groups.get(log_group_name)
        original_delete(self, log_group_name)
        if group is not None:
            self.tagger.delete_all_tags_for_resource(group.arn)

    lm.LogsBackend.delete_log_group = delete_log_group
