"""Auto Scaling group launches that fail, and the retries that follow.

Moto launches whatever a group's launch template says, at once. AWS checks first, and a
launch that cannot be made leaves a ``Failed`` scaling activity (``activities``) with the
reason, and no instance; the group tries again later, with a growing back-off, until the
cause is gone (Amazon EC2 Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto
Scaling": EC2 instance launch failures, AMI issues, "Insufficient capacity"). The
autoheal group is one instance: while its replacement cannot launch there is nothing to
attach the volume to, and the operator needs the reason where AWS puts it.

Checked before every group launch (``FakeAutoScalingGroup.replace_autoscaling_group_instances``,
where moto funnels all of them), in this order, each with AWS's StatusMessage:

* the template's AMI is unknown to EC2:
  ``The image id '[ami-..]' does not exist. Launching EC2 instance failed.``
  (AWS writes the id in square brackets there);
* the AMI's architecture is not one the instance type supports (moto's instance type
  data, ``ProcessorInfo.SupportedArchitectures``):
  ``The architecture 'arm64' of the specified instance type does not match the
  architecture 'x86_64' of the specified AMI. Specify an instance type and an AMI that
  have matching architectures, and try again. You can use 'describe-instance-types' or
  'describe-images' to discover the architecture of the instance type or AMI.
  Launching EC2 instance failed.``;
* the instance type is not offered in the zone of the subnet the group launches into
  (moto's per-zone instance type offerings; a region moto has no data for offers
  everything, and so does a zone check for a group without subnets, whose zone moto
  picks at random):
  ``Your requested instance type (t4g.nano) is not supported in your requested
  Availability Zone (ap-southeast-2c). Please retry your request by not specifying an
  Availability Zone or choosing ap-southeast-2a, ap-southeast-2b. Launching EC2
  instance failed.``;
* the subnet's zone is out (``zoneoutage``, ``POST /_localaws/zone-outage``), or an injected
  ``InsufficientInstanceCapacity`` (AWS's side, not the template's: the control API
  ``POST /_localaws/launch-failures``; an injection is not used up by a launch the zone
  outage already refuses):
  ``We currently do not have sufficient t3.micro capacity in the Availability Zone you
  requested (ap-southeast-2a). Our system will be working on provisioning additional
  capacity. You can currently get t3.micro capacity by not specifying an Availability
  Zone in your request or choosing ap-southeast-2b, ap-southeast-2c. Launching EC2
  instance failed.``

A launch copies the group's tags whose PropagateAtLaunch is true onto the instance, as they
are at that launch (tags added or changed by CreateOrUpdateTags after the group was made go to
later launches, never to running instances), beside ``aws:autoscaling:groupName``; a launch
template's instance tag of the same key is overridden by the group's: "Amazon EC2 Auto Scaling
overrides the tag value from your launch template with the value for the same key specified by
the Auto Scaling group" (Auto Scaling User Guide, "Tag Auto Scaling groups and instances"). Moto
copied them but let the template's value win. The instance also gets the metadata options
(``InstanceMetadataTags`` among them) of the launch template version the group names (moto
gave it its defaults; see ec2ext).

After a failure the group retries on the scaled clock after ``launch_retry_s``, doubled
after each further failure up to ``launch_retry_cap_s`` (the profile's, read at each
failure), and never sooner than 1 virtual second (the ``fast`` profile's zeros would
otherwise spin). A retry is moto's own capacity check (``set_desired_capacity`` with the
group's desired capacity), so it launches whatever is missing then, from the template
the group names then: a fix (UpdateAutoScalingGroup to a good template version, a
cleared injected failure) lets the next retry launch. API calls that change the
capacity try at once too, as on AWS. A successful launch ends the back-off. The retry
timer takes the world lock only to launch, never while waiting.

A group whose ``Launch`` process is suspended (SuspendProcesses; moto recorded it and
launched anyway) launches nothing: "Launch – Adds instances to the Auto Scaling group when
the group scales out, or when Amazon EC2 Auto Scaling chooses to launch instances for other
reasons" (Auto Scaling User Guide, "Suspend and resume Amazon EC2 Auto Scaling processes"):
no attempt, no activity, and a retry that falls due meanwhile keeps the back-off's count (a
suspension does not reset it). ResumeProcesses that resumes ``Launch`` makes one attempt at
once for whatever is missing: "When you resume the Launch process, Amazon EC2 Auto Scaling
immediately replaces any instances that it terminated during the time that Launch was
suspended" (same guide, "How suspended processes affect other processes"). We read that as
the group's capacity check running at the resume for every missing instance, including one
lost before the suspension (AWS does not say otherwise); if that attempt fails, the back-off
goes on from its count.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .activities import launch_cause
from .faults import BadRequest
from .zoneoutage import capacity_message

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.launches")

MIN_RETRY_S = 1.0
INJECTABLE = ("InsufficientInstanceCapacity",)


@functools.lru_cache(maxsize=None)
def _offerings(region: str) -> dict[str, frozenset[str]] | None:
    """Instance type -> the zones of ``region`` offering it; None: moto has no data."""
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS

    rows = INSTANCE_TYPE_OFFERINGS.get("availability-zone", {}).get(region)
    if not rows:
        return None
    zones: dict[str, set[str]] = {}
    for row in rows:
        zones.setdefault(row["InstanceType"], set()).add(row["Location"])
    return {itype: frozenset(z) for itype, z in zones.items()}


def _instance_type_architecture(supported: list[str]) -> str:
    """The architecture AWS names for an instance type (i386 types name x86_64)."""
    for arch in ("x86_64", "arm64"):
        if arch in supported:
            return arch
    return supported[0]


@dataclass
class InjectedFailure:
    id: str
    group: str | None
    error: str
    remaining: int | None
    fired: int = 0

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "error": self.error, "remaining": self.remaining, "fired": self.fired}


@dataclass
class Backoff:
    failures: int = 0
    timer: Any = None


class Launches:
    """Launch checks, injected failures and retries (all with the world lock held)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.injected: list[InjectedFailure] = []
        self._ids = itertools.count(1)
        self.backoff: dict[str, Backoff] = {}  # group ARN -> its retry state

    def reset(self) -> None:
        self.injected.clear()
        for entry in self.backoff.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self.backoff.clear()

    # -- control API ---------------------------------------------------------------

    def inject(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise BadRequest("expected a JSON object")
        unknown = sorted(set(spec) - {"group", "error", "count"})
        if unknown:
            raise BadRequest(f"unknown keys {unknown}: expected group, error, count")
        error = spec.get("error")
        if error not in INJECTABLE:
            raise BadRequest(f"error must be one of {list(INJECTABLE)}, got {error!r}")
        group = spec.get("group")
        if group is not None and not isinstance(group, str):
            raise BadRequest("group must be a group name")
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise BadRequest("count must be an integer >= 1 (leave it out for every launch until cleared)")
        failure = InjectedFailure(id=f"lf-{next(self._ids)}", group=group, error=error, remaining=count)
        self.injected.append(failure)
        return failure.describe()

    def list_injected(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.injected]

    def clear_injected(self) -> None:
        self.injected.clear()

    # -- checks -------------------------------------------------------------------

    def failure(self, group: Any, subnet_id: str | None, zone: str | None) -> str | None:
        """Why AWS would not launch this group's next instance now (None: it would)."""
        ec2 = group.ec2_backend
        image_id = group.image_id
        instance_type = group.instance_type
        if image_id and image_id not in ec2.amis:
            return f"The image id '[{image_id}]' does not exist. Launching EC2 instance failed."
        image = ec2.amis.get(image_id) if image_id else None
        if image is not None and instance_type:
            from moto.ec2.models.instance_types import INSTANCE_TYPES

            supported = INSTANCE_TYPES.get(instance_type, {}).get("ProcessorInfo", {}).get("SupportedArchitectures") or []
            if supported and image.architecture not in supported:
                return (
                    f"The architecture '{_instance_type_architecture(supported)}' of the "
                    f"specified instance type does not match the architecture '{image.architecture}' of the "
                    "specified AMI. Specify an instance type and an AMI that have matching architectures, and try "
                    "again. You can use 'describe-instance-types' or 'describe-images' to discover the "
                    "architecture of the instance type or AMI. Launching EC2 instance failed."
                )
        offerings = _offerings(group.region)
        offered = offerings.get(instance_type, frozenset()) if offerings is not None and instance_type else None
        if subnet_id and zone and offered and zone not in offered:
            return (
                f"Your requested instance type ({instance_type}) is not supported in your requested Availability "
                f"Zone ({zone}). Please retry your request by not specifying an Availability Zone or choosing "
                f"{', '.join(sorted(offered))}. Launching EC2 instance failed."
            )
        zones = self.world.zones
        # A zone that is out refuses the launch with the same capacity text (zoneoutage.py);
        # neither it nor an injected failure offers a zone that is out as the alternative.
        if zones.is_out(zone) or self._take_injected(group.name) is not None:
            message = capacity_message(ec2, instance_type, zone, offered, zones.zones_out())
            return f"{message} Launching EC2 instance failed."
        return None

    def _take_injected(self, group_name: str) -> InjectedFailure | None:
        for failure in self.injected:
            if failure.group not in (None, group_name):
                continue
            if failure.remaining is not None:
                if failure.remaining <= 0:
                    continue
                failure.remaining -= 1
            failure.fired += 1
            return failure
        return None

    # -- outcomes -----------------------------------------------------------------

    def failed(self, group: Any, message: str, cause: str, subnet_id: str | None, zone: str | None) -> None:
        self.world.activities.launch_failed(group, message, cause, subnet_id, zone)
        entry = self.backoff.setdefault(group.arn, Backoff())
        entry.failures += 1
        if entry.timer is not None:
            return  # a retry is already due; this attempt came from an API call
        delay = self._delay(entry.failures)
        (log.info if entry.failures == 1 else log.debug)(
            "launch for %s failed (attempt %d), retrying in %ss: %s", group.name, entry.failures, delay, message
        )
        generation = self.world.generation
        arn, account, region, name = group.arn, group.account_id, group.region, group.name
        entry.timer = self.world.scheduler.call_later(
            delay, lambda: self._retry(arn, account, region, name, generation), name=f"launch retry {name}"
        )

    def succeeded(self, group: Any) -> None:
        entry = self.backoff.pop(group.arn, None)
        if entry is not None and entry.timer is not None:
            entry.timer.cancel()

    def _delay(self, failures: int) -> float:
        profile = self.world.profile.current
        delay = profile.launch_retry_s * 2 ** min(failures - 1, 32)
        if profile.launch_retry_cap_s > 0:
            delay = min(delay, profile.launch_retry_cap_s)
        return max(MIN_RETRY_S, delay)

    def _retry(self, arn: str, account: str, region: str, name: str, generation: int) -> None:
        from moto.autoscaling import autoscaling_backends

        world = self.world
        with world.lock:
            entry = self.backoff.get(arn)
            if world.generation != generation or entry is None:
                return
            entry.timer = None
            group = autoscaling_backends[account][region].autoscaling_groups.get(name)
            if group is None or group.arn != arn:
                self.backoff.pop(arn, None)  # the group is gone
                return
            if launch_suspended(group):
                log.debug("launch retry for %s skipped: its Launch process is suspended", name)
                return  # the entry (its count) stays; ResumeProcesses tries at once
            log.debug("retrying the launch for %s", name)
            group.set_desired_capacity(group.desired_capacity)
            if entry.timer is None:
                self.backoff.pop(arn, None)  # nothing was missing any more


def launch_suspended(group: Any) -> bool:
    """Whether the group's ``Launch`` process is suspended (SuspendProcesses)."""
    return any(p.get("ProcessName") == "Launch" for p in group.suspended_processes)


def launch_target(group: Any) -> tuple[str | None, str | None]:
    """(subnet id, zone) of the group's next launch, as moto makes it: into the first
    subnet; a group without subnets gets a zone at random (its first one is named)."""
    if group.vpc_zone_identifier:
        subnet_id = group.vpc_zone_identifier.split(",")[0]
        return subnet_id, group.ec2_backend.get_subnet(subnet_id).availability_zone
    return None, (group.availability_zones[0] if group.availability_zones else None)


def apply_template_metadata_options(group: Any, instance: Any) -> None:
    """The instance gets the metadata options of the launch template version the group names
    (moto's group launch names the template without its version: ec2ext applied the default
    version's)."""
    template = getattr(group, "ec2_launch_template", None)
    if template is None:
        return
    from moto.ec2.models.instances import MetadataOptions

    try:
        data = template.get_version(group.launch_template_version).data
    except Exception:
        return
    options = data.get("MetadataOptions")
    if isinstance(options, dict) and options:
        instance.metadata_options = MetadataOptions(dict(options))


def install(world_ref: Any) -> None:
    """Wrap the group launch (after ``lifecycle.install``, whose wrapper holds launches)."""
    from moto.autoscaling import models as m

    inner = m.FakeAutoScalingGroup.replace_autoscaling_group_instances

    def replace_autoscaling_group_instances(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
        world = world_ref()
        if launch_suspended(self):
            log.info("%s needs %d instance(s) but its Launch process is suspended", self.name, count_needed)
            return
        have = len(self.active_instances())
        cause = launch_cause(world.clock.aws_utc(), have, have + count_needed)  # AWS time
        subnet_id, zone = launch_target(self)
        message = world.launches.failure(self, subnet_id, zone)
        if message is not None:
            world.launches.failed(self, message, cause, subnet_id, zone)
            return
        before = {id(s) for s in self.instance_states}
        group_tags = dict(self.get_propagated_tags())
        inner(self, count_needed, propagated_tags)
        for state in self.instance_states:
            if id(state) not in before:
                # The group's value wins over the template's for a key both tag (moto let the
                # template's win): see the module documentation.
                state.instance.add_tags(group_tags)
                apply_template_metadata_options(self, state.instance)
                world.activities.launch_started(self, state.instance, cause, held=state.lifecycle_state == "Pending:Wait")
        world.launches.succeeded(self)

    m.FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances

    inner_resume = m.AutoScalingBackend.resume_processes

    def resume_processes(self: Any, group_name: str, scaling_processes: list[str]) -> None:
        group = self.autoscaling_groups.get(group_name)
        was = group is not None and launch_suspended(group)
        inner_resume(self, group_name, scaling_processes)
        if was and not launch_suspended(group):
            log.info("Launch resumed for %s: its capacity check runs now", group_name)
            group.set_desired_capacity(group.desired_capacity)

    m.AutoScalingBackend.resume_processes = resume_processes
