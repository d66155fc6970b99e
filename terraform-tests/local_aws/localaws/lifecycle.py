"""Auto Scaling launch lifecycle hooks, as AWS runs them.

Moto stores hooks from PutLifecycleHook, drops those given in
CreateAutoScalingGroup's ``LifecycleHookSpecificationList``, puts every new
instance straight into ``InService`` and answers CompleteLifecycleAction and
RecordLifecycleActionHeartbeat with HTTP 500. The autoheal pattern is built
on exactly this hook, so it is emulated here:

* hooks from ``LifecycleHookSpecificationList`` are created *before* moto
  builds the group (moto launches the initial instances inside the group's
  constructor, and those must wait too, as on AWS); NotificationMetadata,
  RoleARN and NotificationTargetARN are kept;
* every instance a group launches (moto funnels all launches through
  ``FakeAutoScalingGroup.replace_autoscaling_group_instances``) that has an
  ``autoscaling:EC2_INSTANCE_LAUNCHING`` hook goes to ``Pending:Wait`` with one
  lifecycle action (a uuid token) per hook, and an "EC2 Instance-launch
  Lifecycle Action" event is emitted to EventBridge for each, at launch, while
  EC2 still shows the instance ``pending`` (``instancelife``): a handler must
  wait for ``running``, as on AWS. A launch that cannot be made never gets
  here (``launches``); the launch's scaling activity follows the hook
  (``activities``);
* CompleteLifecycleAction (by token or instance id) with CONTINUE moves the
  instance to ``InService`` once no hook is left pending; ABANDON terminates it
  and the group launches a replacement (which waits again);
* RecordLifecycleActionHeartbeat restarts the heartbeat timeout; when it runs
  out (on the scaled clock) the hook's DefaultResult applies; the global
  timeout (100 x HeartbeatTimeout, at most 48 h) caps heartbeats, as on AWS;
* unknown or already completed actions answer AWS's ``ValidationError``
  ``No active Lifecycle Action found with token <token>`` (or
  ``... with instance ID <id>``).

Moto counts only ``InService`` instances as the group's capacity, so a waiting
instance would make it launch another on the next capacity check;
``active_instances`` is patched to count the ``Pending*`` states too.

Everything here runs with the world lock held (requests via the middleware,
timeouts via ``_on_timeout``), so moto's models are never touched by two
threads at once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.lifecycle")

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
PENDING_STATES = ("Pending", "Pending:Wait", "Pending:Proceed")
GLOBAL_TIMEOUT_CAP = 172800  # 48 hours


def iso_now_s() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LifecycleAction:
    token: str
    instance_id: str
    group_name: str
    hook_name: str
    transition: str
    account: str
    region: str
    heartbeat_timeout: int
    default_result: str
    started: float  # virtual seconds
    deadline: float  # virtual seconds
    global_deadline: float
    metadata: str | None = None
    timer: Any = field(default=None, repr=False)

    def describe(self, clock_now: float) -> dict[str, Any]:
        return {
            "LifecycleActionToken": self.token,
            "InstanceId": self.instance_id,
            "AutoScalingGroupName": self.group_name,
            "LifecycleHookName": self.hook_name,
            "LifecycleTransition": self.transition,
            "HeartbeatTimeout": self.heartbeat_timeout,
            "DefaultResult": self.default_result,
            "virtual_seconds_left": round(self.deadline - clock_now, 3),
        }


class LifecycleError(Exception):
    """Raised to answer an AWS ValidationError from a patched response method."""


class LifecycleManager:
    def __init__(self, world: World) -> None:
        self.world = world
        self.actions: dict[str, LifecycleAction] = {}

    # -- state -----------------------------------------------------------------

    def reset(self) -> None:
        for action in self.actions.values():
            if action.timer:
                action.timer.cancel()
        self.actions.clear()

    def list(self) -> list[dict[str, Any]]:
        now = self.world.clock.now()
        return [a.describe(now) for a in self.actions.values()]

    def _for_instance(self, instance_id: str) -> list[LifecycleAction]:
        return [a for a in self.actions.values() if a.instance_id == instance_id]

    def _drop(self, action: LifecycleAction) -> None:
        self.actions.pop(action.token, None)
        if action.timer:
            action.timer.cancel()

    # -- launches ----------------------------------------------------------------

    def on_instances_launched(self, group: Any, new_states: list[Any]) -> None:
        """Called (lock held) right after moto launched instances for ``group``."""
        backend = group.autoscaling_backend
        hooks = [
            h
            for h in list(backend.lifecycle_hooks.values())
            if h.auto_scaling_group_name == group.name and h.lifecycle_transition == LAUNCHING
        ]
        if not hooks:
            return
        for state in new_states:
            state.lifecycle_state = "Pending:Wait"
            for hook in hooks:
                self._start_action(group, state.instance.id, hook)

    def _start_action(self, group: Any, instance_id: str, hook: Any) -> None:
        clock = self.world.clock
        timeout = int(hook.heartbeat_timeout or 3600)
        now = clock.now()
        action = LifecycleAction(
            token=str(uuid.uuid4()),
            instance_id=instance_id,
            group_name=group.name,
            hook_name=hook.name,
            transition=LAUNCHING,
            account=group.account_id,
            region=group.region,
            heartbeat_timeout=timeout,
            default_result=(hook.default_result or "ABANDON").upper(),
            started=now,
            deadline=now + timeout,
            global_deadline=now + min(100 * timeout, GLOBAL_TIMEOUT_CAP),
            metadata=getattr(hook, "notification_metadata", None),
        )
        self.actions[action.token] = action
        self._arm(action)
        log.info(
            "instance %s of %s waits in Pending:Wait for hook %s (token %s, timeout %ss)",
            instance_id, group.name, hook.name, action.token, timeout,
        )
        detail: dict[str, Any] = {
            "Origin": "EC2",
            "Destination": "AutoScalingGroup",
            "LifecycleActionToken": action.token,
            "AutoScalingGroupName": group.name,
            "LifecycleHookName": hook.name,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": LAUNCHING,
        }
        if action.metadata is not None:
            detail["NotificationMetadata"] = action.metadata
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "EC2 Instance-launch Lifecycle Action",
            "source": "aws.autoscaling",
            "account": group.account_id,
            "time": iso_now_s(),
            "region": group.region,
            "resources": [group.arn],
            "detail": detail,
        }
        self.world.events.emit(group.account_id, group.region, event, origin="autoscaling")

    def _arm(self, action: LifecycleAction) -> None:
        if action.timer:
            action.timer.cancel()
        deadline = min(action.deadline, action.global_deadline)
        token = action.token
        action.timer = self.world.scheduler.call_at(
            deadline, lambda: self._on_timeout(token), name=f"heartbeat {token}"
        )

    def _on_timeout(self, token: str) -> None:
        with self.world.lock:
            action = self.actions.get(token)
            if action is None:
                return
            now = self.world.clock.now()
            if now < min(action.deadline, action.global_deadline) - 1e-6:
                self._arm(action)  # a heartbeat moved the deadline
                return
            log.info(
                "lifecycle action %s for %s timed out: DefaultResult %s",
                token, action.instance_id, action.default_result,
            )
            self._finish(action, action.default_result, "Heartbeat Timeout")

    # -- API -------------------------------------------------------------------

    def _find(self, group_name: str, hook_name: str, token: str | None, instance_id: str | None) -> LifecycleAction:
        if token:
            action = self.actions.get(token)
            if (
                action is None
                or action.group_name != group_name
                or action.hook_name != hook_name
                or (instance_id and action.instance_id != instance_id)
            ):
                raise LifecycleError(f"No active Lifecycle Action found with token {token}")
            return action
        if instance_id:
            for action in self.actions.values():
                if (
                    action.instance_id == instance_id
                    and action.group_name == group_name
                    and action.hook_name == hook_name
                ):
                    return action
            raise LifecycleError(f"No active Lifecycle Action found with instance ID {instance_id}")
        raise LifecycleError("Either LifecycleActionToken or InstanceId must be specified")

    def complete(self, group_name: str, hook_name: str, token: str | None, instance_id: str | None, result: str) -> None:
        result = (result or "").upper()
        if result not in ("CONTINUE", "ABANDON"):
            raise LifecycleError(
                "1 validation error detected: Value '%s' at 'lifecycleActionResult' failed to satisfy "
                "constraint: Member must satisfy enum value set: [CONTINUE, ABANDON]" % result
            )
        action = self._find(group_name, hook_name, token, instance_id)
        log.info("CompleteLifecycleAction %s for %s: %s", action.token, action.instance_id, result)
        self._finish(action, result, f"Lifecycle Action Completed with {result} Result")

    def heartbeat(self, group_name: str, hook_name: str, token: str | None, instance_id: str | None) -> None:
        action = self._find(group_name, hook_name, token, instance_id)
        action.deadline = self.world.clock.now() + action.heartbeat_timeout
        self._arm(action)

    def _finish(self, action: LifecycleAction, result: str, why: str) -> None:
        """Apply ``result``; ``why`` ends the launch activity's message on ABANDON."""
        from moto.autoscaling import autoscaling_backends

        self._drop(action)
        backend = autoscaling_backends[action.account][action.region]
        group = backend.autoscaling_groups.get(action.group_name)
        state = None
        if group is not None:
            state = next((s for s in group.instance_states if s.instance.id == action.instance_id), None)
        if state is None:
            return
        if result == "ABANDON":
            for other in self._for_instance(action.instance_id):
                self._drop(other)
            # The launch's scaling activity, as AWS words it.
            self.world.activities.launch_finished(
                action.instance_id, "Cancelled",
                "Instance failed to complete user's Lifecycle Action: Lifecycle Action with token "
                f"{action.token} was abandoned: {why}",
            )
            self._abandon(backend, action.instance_id)
            return
        if not self._for_instance(action.instance_id):
            state.lifecycle_state = "InService"
            self.world.activities.launch_finished(action.instance_id, "Successful")
            log.info("instance %s of %s is InService", action.instance_id, action.group_name)

    def _abandon(self, backend: Any, instance_id: str) -> None:
        """Terminate an abandoned launch; the group replaces it, as on AWS."""
        log.info("instance %s abandoned: terminating, the group launches a replacement", instance_id)
        ec2 = backend.ec2_backend
        ec2.terminate_instances([instance_id])
        backend.notify_terminate_instances([instance_id])

    def on_instance_terminated(self, instance_id: str) -> None:
        """The instance's termination started: a launch it was held in ends."""
        actions = self._for_instance(instance_id)
        for action in actions:
            self._drop(action)
        if actions:
            self.world.activities.launch_finished(instance_id, "Cancelled")

    def on_group_deleted(self, group_name: str) -> None:
        for action in [a for a in self.actions.values() if a.group_name == group_name]:
            self._drop(action)


# --- moto patches ------------------------------------------------------------


def install(world_ref: Any) -> None:
    """Patch moto's autoscaling models and responses (see the module docstring)."""
    from moto.autoscaling import models as m
    from moto.autoscaling import responses as r
    from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
    from moto.core.responses import EmptyResult

    def manager() -> LifecycleManager:
        return world_ref().lifecycle

    class AlreadyExistsError(AutoscalingClientError):
        code = "AlreadyExists"

    class ResourceInUseError(AutoscalingClientError):
        code = "ResourceInUse"

    # Capacity counts the instances still launching, not only InService ones.
    def active_instances(self: Any) -> list[Any]:
        return [x for x in self.instance_states if x.lifecycle_state in ("InService",) + PENDING_STATES]

    m.FakeAutoScalingGroup.active_instances = active_instances

    orig_replace = m.FakeAutoScalingGroup.replace_autoscaling_group_instances

    def replace_autoscaling_group_instances(self: Any, count_needed: int, propagated_tags: dict[str, str]) -> None:
        before = {id(s) for s in self.instance_states}
        orig_replace(self, count_needed, propagated_tags)
        new_states = [s for s in self.instance_states if id(s) not in before]
        # AWS reports, per instance, the launch template version it was launched from (as
        # the group named it then); moto reports the template's current default for every
        # instance, so an instance launched before the group moved to a new version would
        # look as if it ran the new one.
        launched_from = dict(self.launch_template) if self.launch_template else None
        for state in new_states:
            state.launched_from_template = launched_from
        manager().on_instances_launched(self, new_states)

    m.FakeAutoScalingGroup.replace_autoscaling_group_instances = replace_autoscaling_group_instances

    orig_instance_launch_template = m.InstanceState.launch_template

    def instance_launch_template(self: Any) -> Any:
        recorded = getattr(self, "launched_from_template", None)
        return recorded if recorded is not None else orig_instance_launch_template.fget(self)

    m.InstanceState.launch_template = property(instance_launch_template)

    def _apply_hook_extras(hook: Any, spec: dict[str, Any]) -> None:
        hook.notification_metadata = spec.get("NotificationMetadata")
        hook.role_arn = spec.get("RoleARN")
        hook.notification_target_arn = spec.get("NotificationTargetARN")
        hook.global_timeout = min(100 * int(hook.heartbeat_timeout), GLOBAL_TIMEOUT_CAP)

    def _validate_hook(spec: dict[str, Any]) -> None:
        transition = spec.get("LifecycleTransition")
        if transition not in (LAUNCHING, TERMINATING):
            raise ValidationError(
                f"Invalid Lifecycle Transition: {transition!s}. Valid transitions are "
                f"{LAUNCHING} and {TERMINATING}"
            )
        timeout = spec.get("HeartbeatTimeout")
        if timeout is not None and not 30 <= int(timeout) <= 7200:
            raise ValidationError("Heartbeat timeout must be between 30 and 7200 seconds.")
        result = spec.get("DefaultResult")
        if result is not None and result not in ("CONTINUE", "ABANDON"):
            raise ValidationError(
                "1 validation error detected: Value '%s' at 'defaultResult' failed to satisfy constraint: "
                "Member must satisfy enum value set: [CONTINUE, ABANDON]" % result
            )

    orig_create = r.AutoScalingResponse.create_auto_scaling_group

    def create_auto_scaling_group(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        backend = self.autoscaling_backend
        if name in backend.autoscaling_groups:
            raise AlreadyExistsError(
                f"AutoScalingGroup by this name already exists - A group with the name {name} already exists"
            )
        specs = self._get_param("LifecycleHookSpecificationList", []) or []
        created = []
        for spec in specs:
            _validate_hook(spec)
        try:
            for spec in specs:
                hook = backend.create_lifecycle_hook(
                    name=spec.get("LifecycleHookName"),
                    as_name=name,
                    transition=spec.get("LifecycleTransition"),
                    timeout=int(spec["HeartbeatTimeout"]) if spec.get("HeartbeatTimeout") is not None else None,
                    result=spec.get("DefaultResult"),
                )
                _apply_hook_extras(hook, spec)
                created.append(spec.get("LifecycleHookName"))
            return orig_create(self)
        except BaseException:
            for hook_name in created:
                backend.delete_lifecycle_hook(name, hook_name)
            raise

    r.AutoScalingResponse.create_auto_scaling_group = create_auto_scaling_group

    # TerminateInstanceInAutoScalingGroup for an instance no group manages (any more): AWS
    # answers "ValidationError: Instance Id not found - No managed instance found for instance
    # ID: i-.."; moto crashed (StopIteration, HTTP 500), which a retried call meets when its
    # first attempt's answer was lost after the group had let the instance go.
    orig_terminate_instance = m.AutoScalingBackend.terminate_instance

    def terminate_instance(self: Any, instance_id: str, should_decrement: bool) -> Any:
        managed = any(
            state.instance.id == instance_id
            for group in self.autoscaling_groups.values()
            for state in group.instance_states
        )
        if not managed:
            raise ValidationError(
                f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            )
        return orig_terminate_instance(self, instance_id, should_decrement)

    m.AutoScalingBackend.terminate_instance = terminate_instance

    orig_put_hook = r.AutoScalingResponse.put_lifecycle_hook

    def put_lifecycle_hook(self: Any) -> Any:
        group_name = self._get_param("AutoScalingGroupName")
        backend = self.autoscaling_backend
        if group_name not in backend.autoscaling_groups:
            raise ValidationError(f"Group {group_name} not found")
        spec = {
            "LifecycleTransition": self._get_param("LifecycleTransition"),
            "HeartbeatTimeout": self._get_int_param("HeartbeatTimeout"),
            "DefaultResult": self._get_param("DefaultResult"),
        }
        existing = backend.lifecycle_hooks.get(f"{group_name}_{self._get_param('LifecycleHookName')}")
        if spec["LifecycleTransition"] is None and existing is not None:
            spec["LifecycleTransition"] = existing.lifecycle_transition
        _validate_hook(spec)
        result = orig_put_hook(self)
        hook = backend.lifecycle_hooks.get(f"{group_name}_{self._get_param('LifecycleHookName')}")
        if hook is not None:
            _apply_hook_extras(
                hook,
                {
                    "NotificationMetadata": self._get_param("NotificationMetadata"),
                    "RoleARN": self._get_param("RoleARN"),
                    "NotificationTargetARN": self._get_param("NotificationTargetARN"),
                },
            )
        return result

    r.AutoScalingResponse.put_lifecycle_hook = put_lifecycle_hook

    orig_delete_group = r.AutoScalingResponse.delete_auto_scaling_group

    def delete_auto_scaling_group(self: Any) -> Any:
        name = self._get_param("AutoScalingGroupName")
        backend = self.autoscaling_backend
        group = backend.autoscaling_groups.get(name)
        force = self._get_bool_param("ForceDelete", False)
        if group is not None and group.instance_states and not force:
            raise ResourceInUseError(
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot "
                "instance request(s) still in the group."
            )
        result = orig_delete_group(self)
        for key in [k for k, h in backend.lifecycle_hooks.items() if h.auto_scaling_group_name == name]:
            backend.lifecycle_hooks.pop(key, None)
        manager().on_group_deleted(name)
        return result

    r.AutoScalingResponse.delete_auto_scaling_group = delete_auto_scaling_group

    def complete_lifecycle_action(self: Any) -> Any:
        try:
            manager().complete(
                group_name=self._get_param("AutoScalingGroupName"),
                hook_name=self._get_param("LifecycleHookName"),
                token=self._get_param("LifecycleActionToken"),
                instance_id=self._get_param("InstanceId"),
                result=self._get_param("LifecycleActionResult"),
            )
        except LifecycleError as exc:
            raise ValidationError(str(exc))
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self: Any) -> Any:
        try:
            manager().heartbeat(
                group_name=self._get_param("AutoScalingGroupName"),
                hook_name=self._get_param("LifecycleHookName"),
                token=self._get_param("LifecycleActionToken"),
                instance_id=self._get_param("InstanceId"),
            )
        except LifecycleError as exc:
            raise ValidationError(str(exc))
        return EmptyResult()

    r.AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
    r.AutoScalingResponse.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat
