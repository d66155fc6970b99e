"""CloudWatch Logs' tag API on log groups that exist and that do not (localaws/logs_tags.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION


@pytest.fixture
def logs(server):
    server.reset()
    return server.client("logs")


def group_arn(name):
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def refused(call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]


def test_a_log_group_is_tagged_and_untagged_by_its_arn(logs):
    logs.create_log_group(logGroupName="/aws/lambda/web", tags={"autoheal:creating": "web", "team": "a"})
    arn = group_arn("/aws/lambda/web")
    logs.untag_resource(resourceArn=arn, tagKeys=["autoheal:creating"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a"}
    logs.tag_resource(resourceArn=arn, tags={"env": "prod"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "a", "env": "prod"}


def test_the_tag_api_refuses_a_log_group_that_does_not_exist(logs):
    logs.create_log_group(logGroupName="/aws/lambda/web")
    for arn in (group_arn("/aws/lambda/other"), f"arn:aws:logs:{REGION}:999999999999:log-group:/aws/lambda/web"):
        for call, kwargs in ((logs.untag_resource, {"tagKeys": ["a"]}), (logs.tag_resource, {"tags": {"a": "b"}}),
                             (logs.list_tags_for_resource, {})):
            error = refused(call, resourceArn=arn, **kwargs)
            assert error["Code"] == "ResourceNotFoundException", (arn, call, error)
            assert "does not exist" in error["Message"]


def test_a_deleted_log_group_takes_its_tags_along(logs):
    logs.create_log_group(logGroupName="/aws/lambda/web", tags={"old": "1"})
    logs.delete_log_group(logGroupName="/aws/lambda/web")
    arn = group_arn("/aws/lambda/web")
    assert refused(logs.list_tags_for_resource, resourceArn=arn)["Code"] == "ResourceNotFoundException"
    logs.create_log_group(logGroupName="/aws/lambda/web")
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {}
