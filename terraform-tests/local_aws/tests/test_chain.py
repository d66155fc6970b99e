"""The whole autoheal chain, with a stand-in handler.

terminate the group's instance -> the group launches a replacement, held in
Pending:Wait by the launch hook -> EventBridge event -> rule -> Lambda (a
bootstrap script using boto3 from the venv, through the injected
AWS_ENDPOINT_URL) -> CompleteLifecycleAction -> InService.
"""

from __future__ import annotations

import json

from conftest import create_function, create_group, group_instances, hook, invocations, network, rule_to_function, wait_for

PATTERN = {
    "source": ["aws.autoscaling"],
    "detail-type": ["EC2 Instance-launch Lifecycle Action"],
    "detail": {"AutoScalingGroupName": ["heal"]},
}


def test_terminate_replace_event_lambda_complete(server):
    server.reset()
    fn_arn = create_function(server, "healer", "complete", timeout=30)
    rule_to_function(server, "heal-launch", PATTERN, fn_arn)
    net = network(server)
    create_group(server, "heal", net, [hook(name="attach", timeout=600, default="ABANDON")])

    def in_service():
        instances = group_instances(server, "heal")
        return len(instances) == 1 and instances[0]["LifecycleState"] == "InService" and instances[0]

    first = wait_for(in_service, timeout=30, what="first instance InService")["InstanceId"]

    server.client("ec2").terminate_instances(InstanceIds=[first])
    replacement = group_instances(server, "heal")
    assert len(replacement) == 1 and replacement[0]["InstanceId"] != first
    assert replacement[0]["LifecycleState"] == "Pending:Wait"
    second = replacement[0]["InstanceId"]

    wait_for(lambda: (i := in_service()) and i["InstanceId"] == second, timeout=30, what="replacement InService")

    # The function answers after completing the action: its record may lag a little.
    recs = wait_for(lambda: (r := [r for r in invocations(server, "healer") if r["outcome"] == "success"])[1:] and r,
                    what="two successful invocations")
    assert [json.loads(r["response"])["completed"] for r in recs] == [first, second]
    assert all(r["attempt"] == 1 for r in recs)
    lines = [e["message"] for e in server.client("logs").filter_log_events(logGroupName="/aws/lambda/healer")["events"]]
    assert f"completed {second}" in lines
    # The handler's call is in the call log, made with the injected endpoint and credentials.
    completes = [c for c in server.ctl("GET", "/calls") if c["operation"] == "CompleteLifecycleAction"]
    assert [c["params"]["InstanceId"] for c in completes] == [first, second]
    assert all(c["status"] == 200 for c in completes)
