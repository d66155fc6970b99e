"""Auto Scaling's scaling activities: the history a group keeps of its launches.

Moto answers DescribeScalingActivities with an empty list, so a failed launch would
leave no trace a client could read; on AWS it is the only place the reason shows
("Retrieve an error message from scaling activities", Amazon EC2 Auto Scaling User
Guide: "If the scaling event succeeds, the value of the StatusCode element in the
response is Successful. If an attempt to launch instances failed, the StatusCode value
is Failed or Cancelled and the StatusMessage element in the response indicates the
cause of the failure").

Recorded here, one activity per launch attempt (``launches`` and ``lifecycle`` call in):

* a launch: ``Launching a new EC2 instance: i-..``, ``Successful`` (Progress 100), or
  ``MidLifecycleAction`` (Progress 50) while a launch lifecycle hook holds it, then
  ``Successful`` on CONTINUE, ``Cancelled`` on ABANDON or a heartbeat timeout with
  AWS's ``Instance failed to complete user's Lifecycle Action: Lifecycle Action with
  token <t> was abandoned: Lifecycle Action Completed with ABANDON Result`` (``...:
  Heartbeat Timeout``), ``Cancelled`` without a message if the instance is terminated
  meanwhile;
* a failed launch: ``Launching a new EC2 instance.  Status Reason: <message>``,
  ``Failed``, the message also in ``StatusMessage``, no instance;
* ``Cause``: ``At <time> an instance was started in response to a difference between
  desired and actual capacity, increasing the capacity from N to M.``; ``Details``:
  ``{"Subnet ID":"subnet-..","Availability Zone":".."}``, as AWS writes them.

DescribeScalingActivities (Query API, moto's XML serialiser): ``AutoScalingGroupName``,
``ActivityIds``, ``IncludeDeletedGroups`` (an activity of a deleted group, or of an
earlier group of the same name, is left out without it), ``MaxRecords`` (default and
maximum 100), ``NextToken``. Order as the API reference gives it: "Activities are
sorted by start time. Activities still in progress are described first" (newest first).
StartTime, EndTime and the Cause's ``At <time>`` are AWS time (``clock``: UTC advancing with
the scaled clock), so two attempts ``launch_retry_s`` apart show StartTimes that far apart.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.activities")

FINISHED = ("Successful", "Failed", "Cancelled")
MAX_RECORDS = 100
# A group whose launches keep failing records an activity per attempt (every virtual
# second with the fast profile); the oldest are dropped beyond this many. AWS keeps six
# weeks, which no test reaches.
KEEP = 10000


def iso_s(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def launch_cause(moment: datetime, have: int, want: int) -> str:
    return (
        f"At {iso_s(moment)} an instance was started in response to a difference between desired and "
        f"actual capacity, increasing the capacity from {have} to {want}."
    )


def launch_details(subnet_id: str | None, zone: str | None) -> str:
    details = {}
    if subnet_id:
        details["Subnet ID"] = subnet_id
    if zone:
        details["Availability Zone"] = zone
    return json.dumps(details, separators=(",", ":"))


@dataclass
class ScalingActivity:
    seq: int
    activity_id: str
    account: str
    region: str
    group_name: str
    group_arn: str
    description: str
    cause: str
    details: str
    start_time: datetime
    status_code: str
    progress: int
    end_time: datetime | None = None
    status_message: str | None = None
    instance_id: str | None = None

    def wire(self) -> dict[str, Any]:
        """The Activity shape (moto's serialiser writes the XML)."""
        doc: dict[str, Any] = {
            "ActivityId": self.activity_id,
            "AutoScalingGroupName": self.group_name,
            "AutoScalingGroupARN": self.group_arn,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": self.start_time,
            "StatusCode": self.status_code,
            "Progress": self.progress,
            "Details": self.details,
        }
        if self.end_time is not None:
            doc["EndTime"] = self.end_time
        if self.status_message is not None:
            doc["StatusMessage"] = self.status_message
        return doc


class ScalingActivities:
    """The activity history of every group (touched with the world lock held)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._activities: list[ScalingActivity] = []
        self._seq = itertools.count(1)

    def reset(self) -> None:
        self._activities.clear()

    def _add(self, group: Any, **fields: Any) -> ScalingActivity:
        activity = ScalingActivity(
            seq=next(self._seq),
            activity_id=str(uuid.uuid4()),
            account=group.account_id,
            region=group.region,
            group_name=group.name,
            group_arn=group.arn,
            **fields,
        )
        self._activities.append(activity)
        if len(self._activities) > KEEP:
            del self._activities[: len(self._activities) - KEEP]
        return activity

    def launch_started(self, group: Any, instance: Any, cause: str, held: bool) -> None:
        """A group launched ``instance``; ``held``: a launch lifecycle hook holds it."""
        now = self.world.clock.aws_utc()
        self._add(
            group,
            description=f"Launching a new EC2 instance: {instance.id}",
            cause=cause,
            details=launch_details(instance.subnet_id, instance.placement.zone),
            start_time=now,
            status_code="MidLifecycleAction" if held else "Successful",
            progress=50 if held else 100,
            end_time=None if held else now,
            instance_id=instance.id,
        )

    def launch_failed(self, group: Any, message: str, cause: str, subnet_id: str | None, zone: str | None) -> None:
        now = self.world.clock.aws_utc()
        self._add(
            group,
            description=f"Launching a new EC2 instance.  Status Reason: {message}",
            cause=cause,
            details=launch_details(subnet_id, zone),
            start_time=now,
            status_code="Failed",
            progress=100,
            end_time=now,
            status_message=message,
        )

    def launch_finished(self, instance_id: str, status_code: str, message: str | None = None) -> None:
        """The launch of ``instance_id`` ends (a hook completed, timed out, or the instance went)."""
        for activity in self._activities:
            if activity.instance_id == instance_id and activity.status_code not in FINISHED:
                activity.status_code = status_code
                activity.status_message = message
                activity.progress = 100
                activity.end_time = self.world.clock.aws_utc()

    def describe(
        self,
        account: str,
        region: str,
        live_groups: dict[str, Any],
        group_name: str | None,
        activity_ids: list[str],
        include_deleted: bool,
    ) -> list[dict[str, Any]]:
        """Matching activities in AWS's order; ``live_groups``: the region's groups by name."""

        def live(activity: ScalingActivity) -> bool:
            group = live_groups.get(activity.group_name)
            return group is not None and group.arn == activity.group_arn

        chosen = [
            a for a in self._activities
            if a.account == account
            and a.region == region
            and (group_name is None or a.group_name == group_name)
            and (not activity_ids or a.activity_id in activity_ids)
            and (include_deleted or live(a))
        ]
        chosen.sort(key=lambda a: (a.status_code in FINISHED, -a.start_time.timestamp(), -a.seq))
        return [a.wire() for a in chosen]


def install(world_ref: Any) -> None:
    from moto.autoscaling import responses as r
    from moto.autoscaling.exceptions import ValidationError
    from moto.core.responses import ActionResult

    def describe_scaling_activities(self: Any) -> Any:
        max_records = self._get_int_param("MaxRecords") or MAX_RECORDS
        activities = world_ref().activities.describe(
            account=self.current_account,
            region=self.region,
            live_groups=self.autoscaling_backend.autoscaling_groups,
            group_name=self._get_param("AutoScalingGroupName"),
            activity_ids=self._get_param("ActivityIds", []) or [],
            include_deleted=self._get_bool_param("IncludeDeletedGroups", False),
        )
        # NextToken: the id of the first activity of the next page (stable while newer
        # activities are added in front).
        token = self._get_param("NextToken")
        start = 0
        if token:
            ids = [a["ActivityId"] for a in activities]
            if token not in ids:
                raise ValidationError(f"Invalid NextToken: {token}")
            start = ids.index(token)
        page = activities[start : start + min(max_records, MAX_RECORDS)]
        rest = activities[start + len(page) :]
        result: dict[str, Any] = {"Activities": page}
        if rest:
            result["NextToken"] = rest[0]["ActivityId"]
        return ActionResult(result)

    r.AutoScalingResponse.describe_scaling_activities = describe_scaling_activities
