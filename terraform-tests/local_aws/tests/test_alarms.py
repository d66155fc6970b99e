"""CloudWatch alarms that evaluate: EMF metrics from Lambda output, Auto Scaling group
metrics, CloudWatch's evaluation rules, SNS notifications, and the API answers moto got wrong
(localaws/alarms.py)."""

from __future__ import annotations

import io
import json
import sys
import time
import types
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, ROLE_TRUST, create_group, network, wait_for

GROUP_DIM = [{"Name": "AutoScalingGroupName", "Value": "web"}]
TOPIC_NAME = "alarms"


@pytest.fixture
def fresh(server):
    server.reset()


def alarm_arn(name):
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"


def heal_failed(server, name="web-heal-failed", topic=None, **over):
    kwargs = dict(AlarmName=name, Namespace="Autoheal", MetricName="PermanentFailure", Dimensions=GROUP_DIM,
                  Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0,
                  ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
                  AlarmActions=[topic or f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}"],
                  Tags=[{"Key": "stack", "Value": "web"}])
    kwargs.update(over)
    server.client("cloudwatch").put_metric_alarm(**kwargs)


def state(server, name):
    alarms = server.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return alarms[0] if alarms else None


def topic_to_queue(server):
    sns, sqs = server.client("sns"), server.client("sqs")
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    url = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    return topic, url


def received(server, url):
    msgs = server.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in msgs]


# --- a function that prints EMF -------------------------------------------------------

EMF_BOOTSTRAP = r'''#!{python}
import json, os, time, urllib.request
API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(API + "/invocation/next") as resp:
        rid = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(resp.read())
    line = {{"_aws": {{"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{{
        "Namespace": "Autoheal", "Dimensions": [["AutoScalingGroupName"]],
        "Metrics": [{{"Name": "Healed", "Unit": "Count"}}, {{"Name": "PermanentFailure", "Unit": "Count"}}]}}]}},
        "AutoScalingGroupName": event.get("group", "web"), "Healed": event.get("healed", 0),
        "PermanentFailure": event.get("failed", 0), "outcome": "test"}}
    print(json.dumps(line), flush=True)
    print("not json {{", flush=True)
    req = urllib.request.Request(API + "/invocation/" + rid + "/response", data=b"{{}}", method="POST")
    urllib.request.urlopen(req).read()
'''


def emf_function(server, name="emf", role_name="emf-role"):
    iam = server.client("iam")
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=ROLE_TRUST)["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        info.create_system = 3
        zf.writestr(info, EMF_BOOTSTRAP.format(python=sys.executable))
    server.client("lambda").create_function(FunctionName=name, Runtime="provided.al2023", Handler="bootstrap",
                                            Role=role, Code={"ZipFile": buf.getvalue()}, Timeout=10)
    return role_name


def invoke(server, name, event):
    resp = server.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    assert "FunctionError" not in resp, resp["Payload"].read()


def stats(server, namespace, metric, dims, statistic="Sum"):
    now = datetime.now(timezone.utc)
    points = server.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=dims, StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5), Period=3600, Statistics=[statistic])["Datapoints"]
    return sum(p[statistic] for p in points) if statistic == "Sum" else [p[statistic] for p in points]


# --- API answers ------------------------------------------------------------------------


def test_put_describe_delete_and_tags_answer_as_cloudwatch(server, fresh):
    cw = server.client("cloudwatch")
    daily = {"Period": 86400}  # evaluated at virtual midnights only: no evaluation races the checks
    heal_failed(server, "a", **daily)
    a = state(server, "a")
    assert a["AlarmArn"] == alarm_arn("a")
    assert (a["StateValue"], a["StateReason"]) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
    assert cw.list_tags_for_resource(ResourceARN=alarm_arn("a"))["Tags"] == [{"Key": "stack", "Value": "web"}]

    bad = [
        ({"EvaluationPeriods": 1441}, "Metrics cannot be checked across more than a day"),
        ({"AlarmActions": ["not-an-arn"]}, "Invalid arn syntax: not-an-arn"),
        ({"Period": 45}, "Period must be 10, 20, 30 or a multiple of 60"),
        ({"DatapointsToAlarm": 2}, "DatapointsToAlarm must be less than or equal to EvaluationPeriods"),
        ({"TreatMissingData": "sometimes"}, "Supported values for TreatMissingData"),
    ]
    for over, message in bad:
        with pytest.raises(ClientError) as exc:
            heal_failed(server, "b", **over)
        assert exc.value.response["Error"]["Code"] == "ValidationError", over
        assert message in exc.value.response["Error"]["Message"], over
    assert state(server, "b") is None

    # An update keeps the state and ignores Tags; the configuration is replaced.
    cw.set_alarm_state(AlarmName="a", StateValue="ALARM", StateReason="test")
    heal_failed(server, "a", Threshold=5, Tags=[{"Key": "other", "Value": "x"}], **daily)
    a = state(server, "a")
    assert (a["StateValue"], a["Threshold"]) == ("ALARM", 5.0)
    assert cw.list_tags_for_resource(ResourceARN=alarm_arn("a"))["Tags"] == [{"Key": "stack", "Value": "web"}]

    cw.untag_resource(ResourceARN=alarm_arn("a"), TagKeys=["stack"])
    cw.untag_resource(ResourceARN=alarm_arn("a"), TagKeys=["stack"])  # no tags left: still fine
    cw.tag_resource(ResourceARN=alarm_arn("a"), Tags=[{"Key": "k", "Value": "v"}])
    cw.delete_alarms(AlarmNames=["a", "never-existed"])  # unknown names: silently
    assert state(server, "a") is None
    with pytest.raises(ClientError) as exc:
        cw.list_tags_for_resource(ResourceARN=alarm_arn("a"))
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    heal_failed(server, "a", Tags=[], **daily)
    assert cw.list_tags_for_resource(ResourceARN=alarm_arn("a"))["Tags"] == []  # the old tags went with it

    kinds = [(i["HistoryItemType"], i["HistorySummary"]) for i in
             cw.describe_alarm_history(AlarmName="a", ScanBy="TimestampAscending")["AlarmHistoryItems"]]
    assert kinds[0] == ("ConfigurationUpdate", 'Alarm "a" created')
    assert ("StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM") in kinds
    assert kinds[-1] == ("ConfigurationUpdate", 'Alarm "a" created')


def test_enable_and_disable_metrics_collection(server, fresh):
    asg = server.client("autoscaling")
    create_group(server, "web", network(server))

    def enabled():
        g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
        return sorted((m["Metric"], m["Granularity"]) for m in g.get("EnabledMetrics", []))

    asg.enable_metrics_collection(AutoScalingGroupName="web", Granularity="1Minute",
                                  Metrics=["GroupInServiceInstances"])
    assert enabled() == [("GroupInServiceInstances", "1Minute")]
    asg.enable_metrics_collection(AutoScalingGroupName="web", Granularity="1Minute", Metrics=["GroupMinSize"])
    assert enabled() == [("GroupInServiceInstances", "1Minute"), ("GroupMinSize", "1Minute")]
    asg.disable_metrics_collection(AutoScalingGroupName="web", Metrics=["GroupMinSize"])
    assert enabled() == [("GroupInServiceInstances", "1Minute")]
    asg.disable_metrics_collection(AutoScalingGroupName="web")
    assert enabled() == []
    asg.enable_metrics_collection(AutoScalingGroupName="web", Granularity="1Minute")  # all
    assert ("GroupTotalInstances", "1Minute") in enabled() and len(enabled()) > 10
    for kwargs in ({"AutoScalingGroupName": "nope", "Granularity": "1Minute"},
                   {"AutoScalingGroupName": "web", "Granularity": "5Minute"}):
        with pytest.raises(ClientError) as exc:
            asg.enable_metrics_collection(**kwargs)
        assert exc.value.response["Error"]["Code"] == "ValidationError"


# --- metrics from Lambda output and the heal-failed alarm ---------------------------------


def test_emf_output_becomes_metrics_and_the_alarm_notifies_sns(server, fresh):
    topic, url = topic_to_queue(server)
    emf_function(server)
    heal_failed(server, topic=topic)
    # No data, notBreaching: OK after the first evaluation, no ALARM notification.
    a = wait_for(lambda: (s := state(server, "web-heal-failed"))["StateValue"] == "OK" and s, what="OK")
    assert a["StateReason"] == ("Threshold Crossed: no datapoints were received for 1 period and 1 missing "
                                "datapoint was treated as [NonBreaching].")
    invoke(server, "emf", {"healed": 1})
    assert wait_for(lambda: stats(server, "Autoheal", "Healed", GROUP_DIM) == 1.0, what="Healed metric")
    assert stats(server, "Autoheal", "PermanentFailure", GROUP_DIM) == 0.0
    listed = server.client("cloudwatch").list_metrics(Namespace="Autoheal")["Metrics"]
    assert {(m["MetricName"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in listed} == {
        ("Healed", (("AutoScalingGroupName", "web"),)), ("PermanentFailure", (("AutoScalingGroupName", "web"),))}
    time.sleep(1.5)  # two virtual minutes: a 0 does not breach
    assert state(server, "web-heal-failed")["StateValue"] == "OK"
    assert received(server, url) == []

    invoke(server, "emf", {"failed": 1})
    a = wait_for(lambda: (s := state(server, "web-heal-failed"))["StateValue"] == "ALARM" and s, what="ALARM")
    assert a["StateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [1.0 (")
    assert a["StateReason"].endswith("was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM "
                                     "transition).")
    data = json.loads(a["StateReasonData"])
    assert (data["statistic"], data["period"], data["recentDatapoints"], data["threshold"]) == ("Sum", 60, [1.0], 0.0)
    note = wait_for(lambda: received(server, url), what="notification")[0]
    assert note["Subject"] == 'ALARM: "web-heal-failed" in Asia Pacific (Sydney)'
    msg = json.loads(note["Message"])
    assert {k: msg[k] for k in ("AlarmName", "AWSAccountId", "NewStateValue", "OldStateValue", "Region",
                                "AlarmArn")} == {
        "AlarmName": "web-heal-failed", "AWSAccountId": ACCOUNT, "NewStateValue": "ALARM", "OldStateValue": "OK",
        "Region": "Asia Pacific (Sydney)", "AlarmArn": alarm_arn("web-heal-failed")}
    assert msg["NewStateReason"] == a["StateReason"] and msg["AlarmActions"] == [topic]
    assert msg["Trigger"] == {
        "MetricName": "PermanentFailure", "Namespace": "Autoheal", "StatisticType": "Statistic", "Statistic": "SUM",
        "Unit": None, "Dimensions": [{"value": "web", "name": "AutoScalingGroupName"}], "Period": 60,
        "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 0.0,
        "TreatMissingData": "- TreatMissingData:                    notBreaching",
        "EvaluateLowSampleCountPercentile": ""}
    # Back to OK once the failure leaves the evaluation range; OK has no actions here.
    wait_for(lambda: state(server, "web-heal-failed")["StateValue"] == "OK", timeout=15, what="OK again")
    history = server.client("cloudwatch").describe_alarm_history(AlarmName="web-heal-failed")["AlarmHistoryItems"]
    assert any(i["HistoryItemType"] == "Action" and i["HistorySummary"] == f"Successfully executed action {topic}"
               for i in history)


def test_a_role_that_may_not_log_makes_no_metrics(server, fresh):
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    try:
        emf_function(server, "quiet", role_name="quiet-role")  # no policy: may not write logs
        invoke(server, "quiet", {"failed": 1})
        time.sleep(0.5)
        assert server.client("cloudwatch").list_metrics(Namespace="Autoheal")["Metrics"] == []
        server.client("iam").put_role_policy(RoleName="quiet-role", PolicyName="logs", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
                "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]}]}))
        invoke(server, "quiet", {"failed": 1})
        wait_for(lambda: stats(server, "Autoheal", "PermanentFailure", GROUP_DIM) == 1.0, what="metric once logged")
    finally:
        server.ctl("POST", "/profile", {"name": "fast"})


# --- group metrics and the no-in-service alarm ------------------------------------------------


def test_group_metrics_feed_the_no_in_service_alarm(server, fresh):
    topic, url = topic_to_queue(server)
    asg, cw = server.client("autoscaling"), server.client("cloudwatch")
    create_group(server, "web", network(server))
    cw.put_metric_alarm(AlarmName="web-no-in-service", Namespace="AWS/AutoScaling",
                        MetricName="GroupInServiceInstances", Dimensions=GROUP_DIM, Statistic="Minimum", Period=60,
                        EvaluationPeriods=3, Threshold=1, ComparisonOperator="LessThanThreshold",
                        TreatMissingData="missing", AlarmActions=[topic], OKActions=[topic])
    time.sleep(1.3)  # two virtual minutes without collection: nothing published
    assert cw.list_metrics(Namespace="AWS/AutoScaling")["Metrics"] == []
    assert state(server, "web-no-in-service")["StateValue"] == "INSUFFICIENT_DATA"

    asg.enable_metrics_collection(AutoScalingGroupName="web", Granularity="1Minute",
                                  Metrics=["GroupInServiceInstances", "GroupDesiredCapacity"])
    wait_for(lambda: state(server, "web-no-in-service")["StateValue"] == "OK", what="OK")
    assert stats(server, "AWS/AutoScaling", "GroupInServiceInstances", GROUP_DIM, "Minimum") == [1.0]
    assert stats(server, "AWS/AutoScaling", "GroupDesiredCapacity", GROUP_DIM, "Maximum") == [1.0]
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/AutoScaling")["Metrics"]}
    assert names == {"GroupInServiceInstances", "GroupDesiredCapacity"}  # only the enabled ones
    ok = wait_for(lambda: received(server, url), what="OK notification")[0]
    assert ok["Subject"] == 'OK: "web-no-in-service" in Asia Pacific (Sydney)'

    asg.update_auto_scaling_group(AutoScalingGroupName="web", MinSize=0, DesiredCapacity=0)
    a = wait_for(lambda: (s := state(server, "web-no-in-service"))["StateValue"] == "ALARM" and s, timeout=15,
                 what="ALARM")
    assert "3 out of the last 3 datapoints" in a["StateReason"] and "was less than the threshold (1.0)" in \
        a["StateReason"].replace("were", "was")
    assert json.loads(a["StateReasonData"])["recentDatapoints"] == [0.0, 0.0, 0.0]
    note = wait_for(lambda: received(server, url), what="ALARM notification")[0]
    assert json.loads(note["Message"])["Trigger"]["Statistic"] == "MINIMUM"

    # Collection off: no datapoints, the evaluation range empties, treat missing as missing.
    asg.disable_metrics_collection(AutoScalingGroupName="web")
    a = wait_for(lambda: (s := state(server, "web-no-in-service"))["StateValue"] == "INSUFFICIENT_DATA" and s,
                 timeout=15, what="INSUFFICIENT_DATA")
    assert a["StateReason"] == "Insufficient Data: 3 datapoints were unknown."


# --- the evaluation rules, on a fake clock ----------------------------------------------------


class FakeWorld:
    def __init__(self):
        import threading

        self.generation = 0
        self.lock = threading.RLock()
        self.clock = types.SimpleNamespace(now=lambda: 1000.0, scale=1.0)
        self.scheduler = types.SimpleNamespace(call_at=lambda *a, **k: None)


def make_alarm(**over):
    from moto.cloudwatch.models import Alarm

    kwargs = dict(account_id=ACCOUNT, region_name=REGION, name="t", namespace="N", metric_name="M",
                  metric_data_queries=None, comparison_operator="GreaterThanThreshold", evaluation_periods=3,
                  datapoints_to_alarm=None, period=60, threshold=1.0, statistic="Maximum", extended_statistic=None,
                  description="", dimensions=[], alarm_actions=[], ok_actions=None, insufficient_data_actions=None,
                  unit=None, actions_enabled=True, treat_missing_data="missing",
                  evaluate_low_sample_count_percentile=None, threshold_metric_id=None, rule=None)
    kwargs.update(over)
    alarm = Alarm(**kwargs)
    alarm.state_value = "INSUFFICIENT_DATA"
    return alarm


def run(pattern, treat, start_state="INSUFFICIENT_DATA", **over):
    """Evaluate one alarm at t=600 over buckets written oldest first: '0' a datapoint within
    the threshold, 'X' a breaching one, '-' none (the User Guide's notation)."""
    from localaws.alarms import Alarms

    alarms = Alarms(FakeWorld())
    alarm = make_alarm(treat_missing_data=treat, **over)
    alarm.state_value = start_state
    boundary = 600.0
    for i, c in enumerate(reversed(pattern)):
        if c != "-":
            alarms.record(ACCOUNT, REGION, "N", "M", frozenset(), boundary - (i + 1) * 60 + 5,
                          [5.0 if c == "X" else 0.0], None)
    alarms.add_history = lambda *a, **k: None
    alarms.evaluate(ACCOUNT, REGION, alarm, boundary)
    return alarm.state_value


@pytest.mark.parametrize("pattern,expected", [
    # "Configuring how CloudWatch alarms treat missing data": 3 evaluation periods, 3 datapoints
    # to alarm, an evaluation range of 5; columns missing, ignore, breaching, notBreaching.
    ("0-X-X", ("OK", "OK", "OK", "OK")),
    ("----0", ("OK", "OK", "OK", "OK")),
    ("-----", ("INSUFFICIENT_DATA", "retain", "ALARM", "OK")),
    ("0XX-X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("--X--", ("ALARM", "retain", "ALARM", "OK")),
])
def test_missing_data_table_of_the_user_guide(pattern, expected):
    for treat, want in zip(("missing", "ignore", "breaching", "notBreaching"), expected):
        for start in ("OK", "ALARM"):
            got = run(pattern, treat, start_state=start)
            assert got == (start if want == "retain" else want), (pattern, treat, start)


def test_m_of_n_statistics_and_operators():
    assert run("X0X", "missing", datapoints_to_alarm=2) == "ALARM"
    assert run("X00", "missing", datapoints_to_alarm=2) == "OK"
    assert run("X0X", "missing") == "OK"  # M defaults to N

    from localaws.alarms import Alarms

    def one(statistic, op, threshold):
        alarms = Alarms(FakeWorld())
        alarms.add_history = lambda *a, **k: None
        alarm = make_alarm(statistic=statistic, comparison_operator=op, threshold=threshold, evaluation_periods=1)
        alarms.record(ACCOUNT, REGION, "N", "M", frozenset(), 550.0, [1.0, 4.0], None)
        alarms.record(ACCOUNT, REGION, "N", "M", frozenset(), 560.0, [], None,
                      stats={"SampleCount": 2, "Sum": 7.0, "Minimum": 3.0, "Maximum": 4.0})
        alarms.record(ACCOUNT, REGION, "N", "M", frozenset({("Other", "x")}), 560.0, [100.0], None)  # another metric
        alarms.evaluate(ACCOUNT, REGION, alarm, 600.0)
        return alarm.state_value, json.loads(alarm.state_reason_data)["recentDatapoints"]

    assert one("Sum", "GreaterThanOrEqualToThreshold", 12.0) == ("ALARM", [12.0])
    assert one("SampleCount", "GreaterThanThreshold", 4.0) == ("OK", [4.0])
    assert one("Minimum", "LessThanOrEqualToThreshold", 1.0) == ("ALARM", [1.0])
    assert one("Maximum", "LessThanThreshold", 4.0) == ("OK", [4.0])
    assert one("Average", "GreaterThanThreshold", 2.9) == ("ALARM", [3.0])


def test_emf_parsing_follows_the_specification():
    from localaws.alarms import emf_metrics

    ok = {"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{
        "Namespace": "Autoheal", "Dimensions": [["AutoScalingGroupName"], []],
        "Metrics": [{"Name": "HealSeconds", "Unit": "Seconds"}]}]},
        "AutoScalingGroupName": "web", "HealSeconds": [1.5, 2.5]}
    (namespace, data), = emf_metrics(ok)
    assert namespace == "Autoheal"
    assert [(d["MetricName"], d["Dimensions"], d["Values"], d["Unit"]) for d in data] == [
        ("HealSeconds", [{"Name": "AutoScalingGroupName", "Value": "web"}], [1.5, 2.5], "Seconds"),
        ("HealSeconds", [], [1.5, 2.5], "Seconds")]
    assert data[0]["Timestamp"] == datetime.fromtimestamp(1700000000, tz=timezone.utc).replace(tzinfo=None)
    for broken in ({**ok, "AutoScalingGroupName": 3},                          # dimension value not a string
                   {k: v for k, v in ok.items() if k != "HealSeconds"},       # no value
                   {**ok, "_aws": {**ok["_aws"], "Timestamp": None}},         # no timestamp
                   {"message": "plain"}):
        assert emf_metrics(broken) == []


# --- IAM ---------------------------------------------------------------------------------------


def test_iam_user_limited_to_some_alarms(server, fresh):
    iam = server.client("iam")
    iam.create_user(UserName="deployer")
    iam.put_user_policy(UserName="deployer", PolicyName="alarms", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource",
            "cloudwatch:DeleteAlarms"], "Resource": "arn:aws:cloudwatch:*:*:alarm:x-*"}]}))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    import boto3
    from botocore.config import Config

    cw = boto3.client("cloudwatch", endpoint_url=server.url, region_name=REGION,
                      aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                      config=Config(retries={"total_max_attempts": 1}))
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    try:
        alarm = dict(Namespace="Autoheal", MetricName="PermanentFailure", Dimensions=GROUP_DIM, Statistic="Sum",
                     Period=60, EvaluationPeriods=1, Threshold=0, ComparisonOperator="GreaterThanThreshold")
        cw.put_metric_alarm(AlarmName="x-1", **alarm)
        assert cw.list_tags_for_resource(ResourceARN=alarm_arn("x-1"))["Tags"] == []
        with pytest.raises(ClientError) as exc:
            cw.put_metric_alarm(AlarmName="y-1", **alarm)
        err = exc.value.response
        assert (err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"]) == (403, "AccessDenied")
        assert err["Error"]["Message"] == (
            f"User: arn:aws:iam::{ACCOUNT}:user/deployer is not authorized to perform: cloudwatch:PutMetricAlarm "
            f"on resource: {alarm_arn('y-1')} because no identity-based policy allows the "
            "cloudwatch:PutMetricAlarm action")
        with pytest.raises(ClientError) as exc:
            cw.describe_alarms()  # on alarm:*, not allowed by x-*
        assert exc.value.response["Error"]["Code"] == "AccessDenied"
        cw.describe_alarms(AlarmNames=["x-1"])
        cw.delete_alarms(AlarmNames=["x-1"])
    finally:
        server.ctl("POST", "/profile", {"name": "fast"})
    assert state(server, "y-1") is None


def test_group_metrics_collection_is_authorized_on_the_group(server, fresh):
    from localaws import iam_context
    from localaws.requestinfo import RequestInfo

    create_group(server, "web", network(server))
    server.client("autoscaling").create_or_update_tags(Tags=[{
        "ResourceId": "web", "ResourceType": "auto-scaling-group", "Key": "team", "Value": "a",
        "PropagateAtLaunch": False}])
    # The server's own process holds moto; build the context there through a denial's record.
    iam = server.client("iam")
    iam.create_user(UserName="ops")
    iam.put_user_policy(UserName="ops", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "autoscaling:EnableMetricsCollection",
                                                "Resource": "*", "Condition": {"StringEquals": {
                                                    "autoscaling:ResourceTag/team": "b"}}}]}))
    key = iam.create_access_key(UserName="ops")["AccessKey"]
    import boto3

    asg = boto3.client("autoscaling", endpoint_url=server.url, region_name=REGION,
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    server.ctl("POST", "/profile", {"iam_evaluation": True})
    try:
        with pytest.raises(ClientError) as exc:
            asg.enable_metrics_collection(AutoScalingGroupName="web", Granularity="1Minute")
        assert exc.value.response["Error"]["Code"] == "AccessDenied"
        assert ":autoScalingGroup:" in exc.value.response["Error"]["Message"]
        assert "autoScalingGroupName/web" in exc.value.response["Error"]["Message"]
    finally:
        server.ctl("POST", "/profile", {"name": "fast"})
    assert iam_context.action_of(RequestInfo("monitoring", REGION, "DeleteAlarms", "json")) == "cloudwatch:DeleteAlarms"
