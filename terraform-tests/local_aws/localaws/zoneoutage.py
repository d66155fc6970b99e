"""The loss of a whole Availability Zone, switched by the control API.

``POST /_localaws/zone-outage {"zone": "ap-southeast-2a"}`` takes a zone out,
``DELETE /_localaws/zone-outage?zone=..`` brings it back (no ``zone``: every zone),
``GET`` lists the zones out; a reset ends every outage. While a zone is out:

* Launches into it fail. EC2 refuses a launch into a zone it cannot serve with the
  zone-level capacity error, ``InsufficientInstanceCapacity`` ``We currently do not have
  sufficient t3.micro capacity in the Availability Zone you requested (ap-southeast-2a). Our
  system will be working on provisioning additional capacity. You can currently get t3.micro
  capacity by not specifying an Availability Zone in your request or choosing
  ap-southeast-2b, ap-southeast-2c.`` (the text of EC2's answer, e.g. the 2011 gist
  juno/1497194; Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling": the same
  text with ``Launching EC2 instance failed.``), HTTP 500 (EC2 API Reference, "Error codes":
  a server error). Why this code and not another: AWS's post-event summaries say launches
  in the impaired zone were disabled (EU West, August 2011: "disabling launches in the
  affected AZ"; US East, April 2011: EBS-backed launches failed) without quoting the answer;
  ``InsufficientInstanceCapacity`` is the documented error that names a zone and tells the
  caller to choose another, which is what a disabled zone is to a caller. ``Unsupported``
  ("The requested Availability Zone is currently constrained and we are no longer accepting
  new customer requests ...") is EC2's answer for a zone closed to new customers, not an
  impairment; ``InternalError`` names no zone. Moderately sure of the code, sure of the text
  (it is EC2's capacity text), not sure of what AWS answered in any particular event.
  A group's launch into a subnet of the zone fails through ``launches`` (a ``Failed``
  scaling activity with that text plus ``Launching EC2 instance failed.``, retried with the
  group's back-off); RunInstances into the zone (subnet, network interface's subnet or
  ``Placement.AvailabilityZone``) is refused with it; nothing is created. The zones offered
  as alternatives leave out every zone that is out.
* Its instances stop answering: DescribeInstanceStatus shows a running instance of the zone
  with SystemStatus and InstanceStatus ``impaired``, detail ``reachability`` ``failed`` with
  ``ImpairedSince`` the outage's start in AWS time (``clock``) (EC2 User Guide, "Status checks for Amazon EC2
  instances": a system status check fails on "loss of network connectivity" or "loss of
  system power"; the instance status check then cannot reach the instance either). After
  the profile's ``zone_outage_terminate_s`` (realistic 300: EC2 runs status checks every
  minute and Auto Scaling replaces an instance whose status checks fail, Auto Scaling User
  Guide, "Health checks for instances in an Auto Scaling group"; AWS publishes no figure for
  how long that takes, five minutes is our estimate of a few failed checks plus the health
  check; ``fast`` 0) every instance of the zone not already going is terminated through
  ``instancelife`` (``shutting-down`` for ``shutdown_s``, then ``terminated``, holding its
  volumes meanwhile) and Auto Scaling is told at once, as for TerminateInstances: a group
  launches a replacement, which fails in the zone as above while it is out. An instance
  outside a group is terminated too: the worst case of a zone's power loss (AWS brought most
  instances back after power returned in the 2011 and 2012 events; a stack must not count on
  it). Its StateReason is Auto Scaling's (``Client.UserInitiatedShutdown``), as the health
  check replacement terminates through TerminateInstances.
* Its volumes: DescribeVolumeStatus (moto answered ``NotImplementedError``, implemented here
  for every volume) reports ``impaired`` with ``io-enabled`` ``failed``, as an EBS volume
  whose I/O stops (EBS User Guide, "Amazon EBS volume status checks"; "Pause I/O fault
  injection": a volume whose I/O is paused becomes ``impaired``). The control APIs on them
  fail: AttachVolume, DetachVolume, DeleteVolume and CreateSnapshot of a volume in the zone
  answer 500 ``InternalError`` ``An internal error has occurred`` and CreateVolume in the
  zone 500 ``InsufficientVolumeCapacity`` ``There is not enough capacity to fulfill your EBS
  volume provision request. You can try to provision a different volume type, EBS volume in
  a different availability zone, or you can wait for additional capacity to become
  available.`` (both: EC2 API Reference, "Error codes"). AWS's summary of the April 2011
  us-east-1 event says it "disabled all control APIs (e.g. Create Volume, Attach Volume,
  Detach Volume, and Create Snapshot) for EBS in the affected Availability Zone"; it does not
  say what callers got. The codes are our choice of the closest documented ones: the
  capacity code for a creation in a zone, the generic server error otherwise. Not sure.
* Snapshots are regional (stored in Amazon S3): a completed snapshot of a volume of the zone
  stays usable, CreateVolume from it in another zone works. A snapshot still ``pending``
  when the zone goes out stops progressing (its blocks are on the EBS servers of the zone):
  it stays ``pending`` at its progress while the zone is out and resumes when it returns,
  completing after the time it still had (our choice; AWS may also fail it, state
  ``error``, which is not modelled).

Ending the outage: volumes report ``ok``, calls and launches succeed again (a failing group
launches at its next retry), pending snapshots resume; terminated instances stay terminated
and instances whose termination time had not come are left running. Refusals apply to
clients' calls only (``view.operation``), never to this server's own work (a terminated
instance's teardown detaches its volumes).

Not modelled: the ``attachedEbsStatus`` of DescribeInstanceStatus, volume events and actions
(``potential-data-inconsistency``, ``enable-volume-io``), the regional API errors and
latencies of the first hours of the 2011 event, a group without subnets (moto picks its zone
at random, so the check may miss it), other services (Lambda, ELB) in the zone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import rfc3339_ms
from .context import view
from .faults import BadRequest

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.zones")

VOLUME_CALLS = ("AttachVolume", "DetachVolume", "DeleteVolume", "CreateSnapshot")
INTERNAL_ERROR = "An internal error has occurred"
VOLUME_CAPACITY = (
    "There is not enough capacity to fulfill your EBS volume provision request. You can try to provision a "
    "different volume type, EBS volume in a different availability zone, or you can wait for additional capacity "
    "to become available."
)


@dataclass
class Outage:
    zone: str
    started: float  # virtual
    started_utc: datetime  # AWS time (``clock``)
    timer: Any = None
    terminated: list[str] = field(default_factory=list)


def capacity_message(ec2: Any, instance_type: str | None, zone: str | None, offered: frozenset[str] | None,
                     out: set[str]) -> str:
    """EC2's InsufficientInstanceCapacity text for ``zone``, offering the other zones that have the type."""
    if offered:
        others = sorted(offered - {zone} - out)
    else:
        others = sorted(z.name for z in ec2.describe_availability_zones() if z.name != zone and z.name not in out)
    return (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone you "
        f"requested ({zone}). Our system will be working on provisioning additional capacity. You can "
        f"currently get {instance_type} capacity by not specifying an Availability Zone in your request "
        f"or choosing {', '.join(others)}."
    )


def _zone_name(zone: Any) -> str | None:
    return getattr(zone, "name", zone)


class ZoneOutages:
    """The zones out and what their outage does (all with the world lock held)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.out: dict[str, Outage] = {}

    def reset(self) -> None:
        for outage in self.out.values():
            if outage.timer is not None:
                outage.timer.cancel()
        self.out.clear()

    def is_out(self, zone: str | None) -> bool:
        return zone is not None and zone in self.out

    def zones_out(self) -> set[str]:
        return set(self.out)

    # -- control API ----------------------------------------------------------------

    def start(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise BadRequest('expected {"zone": "<availability zone name>"}')
        unknown = sorted(set(spec) - {"zone"})
        if unknown:
            raise BadRequest(f"unknown keys {unknown}: expected zone")
        zone = spec.get("zone")
        if not isinstance(zone, str) or not zone:
            raise BadRequest('expected {"zone": "<availability zone name>"}')
        if not self._known_zone(zone):
            raise BadRequest(f"no availability zone {zone!r} (zone names such as ap-southeast-2a)")
        if zone in self.out:
            return self._describe(self.out[zone])  # already out: its clock is not restarted
        world = self.world
        started = world.clock.now()
        outage = Outage(zone, started, world.clock.aws_utc(started))
        self.out[zone] = outage
        delay = world.profile.current.zone_outage_terminate_s
        generation = world.generation
        outage.timer = world.scheduler.call_later(
            delay, lambda: self._terminate_zone(outage, generation), name=f"zone outage {zone}")
        self._hold_snapshots(zone)
        log.warning("zone %s is out: launches and EBS calls refused, instances terminated in %ss", zone, delay)
        return self._describe(outage)

    def end(self, zone: str | None) -> list[str]:
        """Ends the outage of ``zone`` (None: of every zone); the zones brought back."""
        if zone is not None and not isinstance(zone, str):
            raise BadRequest("zone must be a zone name")
        if zone is not None and zone not in self.out:
            raise BadRequest(f"zone {zone!r} is not out (out: {sorted(self.out)})")
        zones = [zone] if zone is not None else sorted(self.out)
        for name in zones:
            outage = self.out.pop(name)
            if outage.timer is not None:
                outage.timer.cancel()
            self._release_snapshots(name)
            log.warning("zone %s is back", name)
        return zones

    def list(self) -> list[dict[str, Any]]:
        return [self._describe(o) for o in self.out.values()]

    def _describe(self, outage: Outage) -> dict[str, Any]:
        now = self.world.clock.now()
        timer = outage.timer
        left = None
        if timer is not None and not timer.cancelled and not outage.terminated:
            left = max(0.0, timer.deadline - now)
        since = outage.started_utc.timestamp()
        return {"zone": outage.zone, "since": rfc3339_ms(since), "since_ms": round(since * 1000),
                "since_s": now - outage.started, "terminate_in_s": left, "terminated": list(outage.terminated)}

    def _known_zone(self, zone: str) -> bool:
        for backend in self._backends():
            if backend.get_zone_by_name(zone) is not None:
                return True
        return False

    def _backends(self) -> list[Any]:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        backends = [ec2_backends[DEFAULT_ACCOUNT_ID][self.world.region]]
        for account in ec2_backends.values():
            for backend in account.values():
                if backend not in backends:
                    backends.append(backend)
        return backends

    # -- the zone's instances -----------------------------------------------------------

    def _terminate_zone(self, outage: Outage, generation: int) -> None:
        from moto.autoscaling import autoscaling_backends
        from moto.ec2.models import ec2_backends

        world = self.world
        with world.lock:
            if world.generation != generation or self.out.get(outage.zone) is not outage:
                return
            outage.timer = None
            for account_id, account in list(ec2_backends.items()):
                for region, backend in list(account.items()):
                    victims = [
                        i for i in backend.all_instances()
                        if _zone_name(i.placement.zone) == outage.zone
                        and i.instance_state.name not in ("shutting-down", "terminated")
                    ]
                    if not victims:
                        continue
                    for instance in victims:
                        log.warning("zone %s out: terminating %s", outage.zone, instance.id)
                        instance.terminate()
                        outage.terminated.append(instance.id)
                    # Auto Scaling learns of it as of TerminateInstances, and replaces them.
                    ids = [i.id for i in victims]
                    autoscaling_backends[account_id][region].notify_terminate_instances(ids)

    def impaired_since(self, instance: Any) -> datetime | None:
        outage = self.out.get(_zone_name(instance.placement.zone) or "")
        return outage.started_utc if outage is not None else None

    # -- pending snapshots ------------------------------------------------------------

    def _hold_snapshots(self, zone: str) -> None:
        ec2 = self.world.ec2
        ec2.settle_snapshots()
        for sid, entry in ec2.pending_snapshots.items():
            if entry.held_remaining is None and _zone_name(getattr(entry.snapshot.volume, "zone", None)) == zone:
                entry.held_remaining = max(0.0, entry.deadline - self.world.clock.now())
                if entry.timer is not None:
                    entry.timer.cancel()
                    entry.timer = None
                log.info("snapshot %s held: its zone %s is out", sid, zone)

    def _release_snapshots(self, zone: str) -> None:
        ec2 = self.world.ec2
        for sid, entry in list(ec2.pending_snapshots.items()):
            if entry.held_remaining is not None and _zone_name(getattr(entry.snapshot.volume, "zone", None)) == zone:
                ec2.resume_snapshot(sid, entry)


def _refuse(code: str, message: str) -> None:
    from moto.ec2.exceptions import EC2ClientError

    view.status_override = 500  # EC2 answers these server errors with HTTP 500
    raise EC2ClientError(code, message)


def install(world_ref: Any) -> None:
    """Patches after ``eniext`` (it wraps the launch and volume patches of the others)."""
    from moto.ec2.models import elastic_block_store as ebs
    from moto.ec2.models import instances as inst
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def zones() -> ZoneOutages:
        return world_ref().zones

    # --- RunInstances into the zone -------------------------------------------------

    orig_run = inst.InstanceBackend.run_instances

    def launch_zone(backend: Any, kwargs: dict[str, Any]) -> str | None:
        """The zone moto's Instance will be placed in (its own order: subnet, an interface's
        subnet, Placement, else the region's first zone)."""
        subnet_id = kwargs.get("subnet_id") or next(
            (n["SubnetId"] for n in kwargs.get("nics") or [] if isinstance(n, dict) and "SubnetId" in n), None)
        if subnet_id:
            try:
                return backend.get_subnet(subnet_id).availability_zone
            except Exception:
                return None  # moto refuses the unknown subnet itself
        return kwargs.get("placement") or backend.region_name + "a"

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any,
                      **kwargs: Any) -> Any:
        if view.operation == "RunInstances":
            zone = launch_zone(self, kwargs)
            if zones().is_out(zone):
                from .launches import _offerings

                instance_type = kwargs.get("instance_type") or "m1.small"
                offerings = _offerings(self.region_name)
                offered = offerings.get(instance_type) if offerings is not None else None
                _refuse("InsufficientInstanceCapacity",
                        capacity_message(self, instance_type, zone, offered, zones().zones_out()))
        return orig_run(self, image_id, count, user_data, security_group_names, **kwargs)

    inst.InstanceBackend.run_instances = run_instances

    # --- status checks ------------------------------------------------------------------

    orig_instance_status = inst.Instance.instance_status
    orig_system_status = inst.Instance.system_status

    def impaired_or(orig: Any) -> Any:
        def status(self: Any) -> dict[str, Any]:
            since = zones().impaired_since(self)
            if since is None or self.state_code != 16:
                return orig.fget(self)
            return {"Status": "impaired",
                    "Details": [{"Name": "reachability", "Status": "failed", "ImpairedSince": since}]}
        return property(status)

    inst.Instance.instance_status = impaired_or(orig_instance_status)
    inst.Instance.system_status = impaired_or(orig_system_status)

    # --- volumes ------------------------------------------------------------------------

    def volume_zone(backend: Any, volume_id: str) -> str | None:
        volume = backend.volumes.get(volume_id)
        return _zone_name(volume.zone) if volume is not None else None

    def refuse_volume_call(backend: Any, operation: str, volume_id: str) -> None:
        if view.operation == operation and zones().is_out(volume_zone(backend, volume_id)):
            _refuse("InternalError", INTERNAL_ERROR)

    orig_attach = ebs.EBSBackend.attach_volume

    def attach_volume(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        refuse_volume_call(self, "AttachVolume", volume_id)
        return orig_attach(self, volume_id, *args, **kwargs)

    orig_detach = ebs.EBSBackend.detach_volume

    def detach_volume(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        refuse_volume_call(self, "DetachVolume", volume_id)
        return orig_detach(self, volume_id, *args, **kwargs)

    orig_delete = ebs.EBSBackend.delete_volume

    def delete_volume(self: Any, volume_id: str) -> Any:
        refuse_volume_call(self, "DeleteVolume", volume_id)
        return orig_delete(self, volume_id)

    orig_create_snapshot = ebs.EBSBackend.create_snapshot

    def create_snapshot(self: Any, volume_id: str, *args: Any, **kwargs: Any) -> Any:
        if view.operation in ("CreateSnapshot", "CreateSnapshots") and zones().is_out(volume_zone(self, volume_id)):
            _refuse("InternalError", INTERNAL_ERROR)
        return orig_create_snapshot(self, volume_id, *args, **kwargs)

    orig_create_volume = ebs.EBSBackend.create_volume

    def create_volume(self: Any, *args: Any, **kwargs: Any) -> Any:
        zone = kwargs.get("zone_name") if "zone_name" in kwargs else (args[1] if len(args) > 1 else None)
        if view.operation == "CreateVolume" and zones().is_out(zone):
            _refuse("InsufficientVolumeCapacity", VOLUME_CAPACITY)
        return orig_create_volume(self, *args, **kwargs)

    ebs.EBSBackend.attach_volume = attach_volume
    ebs.EBSBackend.detach_volume = detach_volume
    ebs.EBSBackend.delete_volume = delete_volume
    ebs.EBSBackend.create_snapshot = create_snapshot
    ebs.EBSBackend.create_volume = create_volume

    # --- DescribeVolumeStatus (moto: NotImplementedError) -------------------------------

    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import FilterNotImplementedError

    PROVISIONED_IOPS = ("io1", "io2")
    FILTERS = ("availability-zone", "volume-status.status", "volume-status.details-name",
               "volume-status.details-status")

    def volume_status(volume: Any) -> dict[str, Any]:
        zone = _zone_name(volume.zone)
        out = zones().is_out(zone)
        # io-performance applies to Provisioned IOPS volumes only (EBS User Guide, "Amazon EBS
        # volume status checks"); the others show not-applicable.
        if getattr(volume, "volume_type", None) in PROVISIONED_IOPS:
            performance = "stalled" if out else "normal"
        else:
            performance = "not-applicable"
        return {
            "VolumeId": volume.id,
            "AvailabilityZone": zone,
            "VolumeStatus": {
                "Status": "impaired" if out else "ok",
                "Details": [{"Name": "io-enabled", "Status": "failed" if out else "passed"},
                            {"Name": "io-performance", "Status": performance}],
            },
            "Events": [],
            "Actions": [],
        }

    def describe_volume_status(self: Any) -> Any:
        volume_ids = self._get_param("VolumeIds", [])
        filters = self._filters_from_querystring()
        for name in filters:
            if name not in FILTERS:
                raise FilterNotImplementedError(name, "DescribeVolumeStatus")
        volumes = [self.ec2_backend.get_volume(v) for v in volume_ids] if volume_ids else list(
            self.ec2_backend.volumes.values())
        statuses = []
        for volume in volumes:
            doc = volume_status(volume)
            values = {
                "availability-zone": [doc["AvailabilityZone"]],
                "volume-status.status": [doc["VolumeStatus"]["Status"]],
                "volume-status.details-name": [d["Name"] for d in doc["VolumeStatus"]["Details"]],
                "volume-status.details-status": [d["Status"] for d in doc["VolumeStatus"]["Details"]],
            }
            if all(any(v in values[name] for v in wanted) for name, wanted in filters.items()):
                statuses.append(doc)
        return ActionResult({"VolumeStatuses": statuses})

    ElasticBlockStore.describe_volume_status = describe_volume_status
