"""An EC2 instance's life: pending before running, shutting-down before terminated.

Moto creates instances ``running`` and terminates them in one step. AWS does neither
(EC2 User Guide, "Amazon EC2 instance state changes"): an instance is ``pending``
(code 0) after RunInstances until it is ``running`` (16), and ``shutting-down`` (32)
after TerminateInstances until it is ``terminated`` (48). Code written against moto
alone would never meet the states in between; the autoheal handler must. Both
durations come from the profile (``profile.py``: ``pending_s``, ``shutdown_s``), read
when the instance is launched or terminated; at 0 (the ``fast`` profile) the change is
instant, as in moto.

* Pending: every launch (RunInstances, an Auto Scaling group's launch) records the
  virtual time the instance will be running; until then every answer shows it
  ``pending`` (DescribeInstances, DescribeInstanceStatus, filters). The lifecycle hook
  of a group launch fires at once, while EC2 still says ``pending``, as on AWS: the
  handler must wait for ``running``. AttachVolume answers ``IncorrectState``
  (``Instance 'i-..' is not 'running'.``) and AssociateAddress ``InvalidInstanceID``
  (``The pending instance 'i-..' is not in a valid state for this operation.``), see
  ``ec2ext``. No timer: the state is computed when read, so a clock-scale change
  applies at once.
* Shutting down: TerminateInstances, and every termination moto does itself (an
  ABANDONed launch, a scale-in, TerminateInstanceInAutoScalingGroup), leaves the
  instance ``shutting-down`` for ``shutdown_s``; a timer then terminates it. Until then
  its volumes stay attached (``in-use``, attachment ``attached``; AttachVolume of one
  elsewhere answers ``VolumeInUse``), its Elastic IPs stay associated and its private
  IPs stay taken. At ``terminated``: volumes with DeleteOnTermination are deleted, the
  others detach over the 2 s window of ``ec2ext``, Elastic IPs are disassociated (an
  interface attached with DeleteOnTermination false detaches keeping its own: ``eniext``) and
  the private IPv4 addresses return to the subnet (moto never freed them: a /24 ran
  out after ~250 launches). A second TerminateInstances does not restart the
  shutdown. Lifecycle actions of the instance end when its termination starts.
  ``shutdown_s: 300`` is the "hung guest" whose shutdown takes minutes.
* Auto Scaling learns of an EC2 termination at once (moto's TerminateInstances
  notifies it) and launches the replacement while the old instance is still
  shutting down and holding its volume: the overlap the handler must survive
  (Auto Scaling User Guide, "Health checks for instances in an Auto Scaling group":
  an instance that is terminated or stopped is unhealthy and is replaced).
* The TerminateInstances answer shows ``PreviousState`` as clients saw it (``pending``
  too) and ``CurrentState`` ``shutting-down``, or ``terminated`` for an instance that
  already was (moto answered ``shutting-down`` for those too).
* ``POST /_localaws/transient {"kind": "instance_pending"}`` shows a running instance
  ``pending`` in the next K DescribeInstances (the per-request view in ``context``).

Timer callbacks take the world lock (they change moto's models) and drop their work
after a reset (``world.generation``; reset also cancels every timer).
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .context import view

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.instances")


class InstanceLife:
    def __init__(self, world: World) -> None:
        self.world = world
        # instance id -> virtual time at which it is running
        self.running_at: dict[str, float] = {}
        # instance id -> timer that ends its shutdown
        self.shutdowns: dict[str, Any] = {}

    def reset(self) -> None:
        for timer in self.shutdowns.values():
            timer.cancel()
        self.shutdowns.clear()
        self.running_at.clear()

    def launched(self, instance_ids: list[str]) -> None:
        pending_s = self.world.profile.current.pending_s
        if pending_s <= 0:
            return
        running_at = self.world.clock.now() + pending_s
        for instance_id in instance_ids:
            self.running_at[instance_id] = running_at

    def is_pending(self, instance_id: str) -> bool:
        running_at = self.running_at.get(instance_id)
        if running_at is None:
            return False
        if self.world.clock.now() < running_at:
            return True
        self.running_at.pop(instance_id, None)
        return False


def install(world_ref: Any) -> None:
    from moto.ec2.models import instances as inst
    from moto.ec2.responses.instances import InstanceResponse

    def life() -> InstanceLife:
        return world_ref().instances

    orig_state = inst.Instance.state
    orig_terminate = inst.Instance.terminate

    # --- states as AWS shows them ---------------------------------------------------

    def actual_state(instance: Any) -> str:
        """The state without the per-request transient view."""
        name = orig_state.fget(instance)
        if name == "running" and life().is_pending(instance.id):
            return "pending"
        return name

    def shown_state(instance: Any) -> Any:
        if instance.id in view.pending_instances or actual_state(instance) == "pending":
            return inst.InstanceState("pending", 0)
        return instance._state

    inst.Instance.state = property(lambda self: shown_state(self).name)
    inst.Instance.state_code = property(lambda self: shown_state(self).code)
    inst.Instance.instance_state = property(shown_state)
    # DescribeInstanceStatus lists running instances only (unless IncludeAllInstances).
    inst.Instance.is_running = lambda self: shown_state(self).name == "running"

    orig_run = inst.InstanceBackend.run_instances

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        reservation = orig_run(self, *args, **kwargs)
        life().launched([instance.id for instance in reservation.instances])
        return reservation

    inst.InstanceBackend.run_instances = run_instances

    # --- termination -------------------------------------------------------------

    def release_private_ips(instance: Any) -> None:
        # The private IPv4 addresses of a terminated instance return to its subnet (AWS
        # deletes the primary network interface made at launch with the instance). moto frees
        # them only when the Instance object is garbage collected, which never happens since
        # terminated instances stay listed: a /24 ran out after about 250 launches and the
        # group's next replacement failed (StopIteration, HTTP 500 on TerminateInstances).
        # The set is emptied so that a later collection cannot free them a second time.
        try:
            subnet = instance.ec2_backend.get_subnet(instance.subnet_id) if instance.subnet_id else None
        except Exception:
            subnet = None
        if subnet is None:
            return
        for ip in list(instance._private_ips):
            subnet.del_subnet_ip(ip)
        instance._private_ips.clear()

    def finish_termination(instance: Any) -> None:
        """The instance is terminated: what it held is released (lock held)."""
        life().shutdowns.pop(instance.id, None)
        if "address_stays_on_terminated" not in world_ref().ec2.breaks:
            # Only the interfaces deleted with the instance lose their addresses; one attached
            # with DeleteOnTermination false keeps its address as it detaches (eniext).
            nics = [n for n in getattr(instance, "nics", {}).values() if n.delete_on_termination]
            for eip in list(instance.ec2_backend.addresses):
                if (eip.eni is None and eip.instance is not None and eip.instance.id == instance.id) or (
                    eip.eni is not None and eip.eni in nics
                ):
                    log.info("instance %s terminated: disassociating %s", instance.id, eip.public_ip)
                    instance.ec2_backend.disassociate_address(address=eip.public_ip)
        reason, state_reason = instance._reason, instance.state_reason
        orig_terminate(instance)  # deletes or detaches the volumes (ec2ext.teardown_defaults)
        instance._reason, instance.state_reason = reason, state_reason  # the request's, not now
        release_private_ips(instance)

    def on_shutdown_done(instance: Any, generation: int) -> None:
        world = world_ref()
        with world.lock:
            if world.generation != generation or orig_state.fget(instance) != "shutting-down":
                return
            log.info("instance %s: shutting-down -> terminated", instance.id)
            finish_termination(instance)

    def terminate(self: Any) -> Any:
        previous = copy.copy(self.instance_state)  # as clients saw it: pending too
        if orig_state.fget(self) in ("shutting-down", "terminated"):
            return previous  # a repeated TerminateInstances changes nothing (nor the shutdown's end)
        world = world_ref()
        life().running_at.pop(self.id, None)
        world.lifecycle.on_instance_terminated(self.id)
        self._reason = f"User initiated ({datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')})"
        self.state_reason = inst.StateReason(
            "Client.UserInitiatedShutdown: User initiated shutdown", "Client.UserInitiatedShutdown"
        )
        shutdown_s = world.profile.current.shutdown_s
        if shutdown_s <= 0:
            finish_termination(self)
            return previous
        self._state = inst.InstanceState("shutting-down", 32)
        generation = world.generation
        life().shutdowns[self.id] = world.scheduler.call_later(
            shutdown_s, lambda: on_shutdown_done(self, generation), name=f"shutdown {self.id}"
        )
        log.info("instance %s shutting down for %ss", self.id, shutdown_s)
        return previous

    inst.Instance.terminate = terminate

    orig_terminate_response = InstanceResponse.terminate_instances

    def terminate_instances_response(self: Any) -> Any:
        # moto answers CurrentState shutting-down for every instance; AWS answers
        # terminated for one that already was.
        result = orig_terminate_response(self)
        for entry in result.result["TerminatingInstances"]:
            if entry["PreviousState"].name == "terminated":
                entry["CurrentState"] = {"Code": 48, "Name": "terminated"}
        return result

    InstanceResponse.terminate_instances = terminate_instances_response

    # --- the instance_pending transient ------------------------------------------

    def _mark_pending(reservations: list[Any]) -> None:
        if view.operation != "DescribeInstances":
            return
        transients = world_ref().transients
        for reservation in reservations:
            for instance in reservation.instances:
                # Only a running instance can still look pending (AWS never shows a
                # shutting-down or terminated instance as pending), and only then is a poll used.
                if (
                    instance.id not in view.pending_instances
                    and actual_state(instance) == "running"
                    and transients.consume("instance_pending", instance.id)
                ):
                    view.pending_instances.add(instance.id)

    backend_cls = inst.InstanceBackend
    orig_by_ids = backend_cls.get_reservations_by_instance_ids
    orig_describe_instances = backend_cls.describe_instances

    def get_reservations_by_instance_ids(self: Any, instance_ids: list[str], filters: Any = None) -> Any:
        reservations = orig_by_ids(self, instance_ids, filters=filters)
        _mark_pending(reservations)
        return reservations

    def describe_instances(self: Any, filters: Any = None) -> Any:
        reservations = orig_describe_instances(self, filters=filters)
        _mark_pending(reservations)
        return reservations

    backend_cls.get_reservations_by_instance_ids = get_reservations_by_instance_ids
    backend_cls.describe_instances = describe_instances
