"""IAM's propagation delay, as Lambda and a function's own calls meet it.

IAM is eventually consistent: "Because IAM is a distributed system ... changes that you make
... might not be immediately visible ... a change can take time to propagate" (IAM User
Guide, "Troubleshoot IAM": "Changes that I make are not always immediately visible"). For
``iam_propagation_s`` (profile.py; AWS seconds on the scaled clock) after a role changes,
two things fail on AWS and fail here:

* Lambda cannot use the role yet. CreateFunction and UpdateFunctionConfiguration whose
  ``Role`` is a role made or changed a moment ago (CreateRole, PutRolePolicy,
  AttachRolePolicy, UpdateAssumeRolePolicy) answer HTTP 400 InvalidParameterValueException
  "The role defined for the function cannot be assumed by Lambda." (moto answers the same
  text for a role that does not exist at all). When the request sets environment variables,
  Lambda also makes a KMS grant for the role and, later in the window, it is the grant that
  fails: "Lambda was unable to configure access to your environment variables because the
  KMS key is invalid for CreateGrant. Please check your KMS key settings. KMS Exception:
  InvalidArnException KMS Message: ARN does not refer to a valid principal: <role ARN>".
  Both are what terraform-provider-aws retries on CreateFunction and
  UpdateFunctionConfiguration. A refused call changes nothing.
* A function's new permissions are not in force yet. For the window after CreateRole,
  PutRolePolicy or AttachRolePolicy on a function's role, every call signed with that
  function's credentials (``LambdaRunner.identity``) is refused with the service's own
  access-denied error, naming the role session Lambda uses (``assumed-role/ROLE/FUNCTION``)
  and AWS's reason "because no identity-based policy allows the <action> action" (IAM User
  Guide, "Troubleshoot access denied error messages"): EC2 ``UnauthorizedOperation`` (403,
  "You are not authorized to perform this operation. User: ..."), Query services
  ``AccessDenied`` (403), JSON services ``AccessDeniedException`` (400), Lambda
  ``AccessDeniedException`` (403). Policies cannot be evaluated here, so the window refuses
  every such call, as AWS does for a role whose first policy has not arrived yet.

The profile is read when the role changes: that change propagates ``iam_propagation_s``
later (``fast``'s 0: at once, nothing is refused). A role is usable once every change made to
it has propagated, so a later change never shortens a window already open.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .awserrors import render_error
from .requestinfo import RequestInfo

if TYPE_CHECKING:
    from .world import World

Response = tuple[int, list[tuple[str, str]], bytes]

# Role changes that Lambda must see before it can assume the role or grant it the key.
ASSUME_CHANGES = frozenset({"CreateRole", "PutRolePolicy", "AttachRolePolicy", "UpdateAssumeRolePolicy"})
# Role changes that give the role's sessions permissions which are not in force at once.
PERMISSION_CHANGES = frozenset({"CreateRole", "PutRolePolicy", "AttachRolePolicy"})

# Share of the window in which Lambda still answers the role message when the request sets
# environment variables; the KMS grant message follows for the rest. Both occur on AWS, the
# role message first (the grant is attempted once the role can be assumed).
ROLE_MESSAGE_SHARE = 0.5

ROLE_MESSAGE = "The role defined for the function cannot be assumed by Lambda."
KMS_MESSAGE = (
    "Lambda was unable to configure access to your environment variables because the KMS key is invalid for "
    "CreateGrant. Please check your KMS key settings. KMS Exception: InvalidArnException KMS Message: ARN does "
    "not refer to a valid principal: {role_arn}"
)

# Calls that need no permission at all ("No permissions are required to perform this
# operation", STS API Reference, GetCallerIdentity).
UNGUARDED = frozenset({("sts", "GetCallerIdentity")})

# EC2 parameters naming the resource an access-denied message shows, first found wins.
EC2_RESOURCES = (
    ("InstanceId", "instance"),
    ("VolumeId", "volume"),
    ("AllocationId", "elastic-ip"),
    ("SnapshotId", "snapshot"),
    ("NetworkInterfaceId", "network-interface"),
    ("SubnetId", "subnet"),
    ("GroupId", "security-group"),
    ("LaunchTemplateId", "launch-template"),
)


@dataclass
class Window:
    """From a role change (virtual seconds) until it has propagated."""

    since: float
    until: float

    def left(self, now: float) -> float:
        return self.until - now

    def share_elapsed(self, now: float) -> float:
        return (now - self.since) / (self.until - self.since)


@dataclass
class RoleChange:
    role_name: str
    role_arn: str
    operation: str  # the latest change's
    assume: Window | None = None  # until Lambda can assume the role (ASSUME_CHANGES)
    permissions: Window | None = None  # until its sessions have the new permissions (PERMISSION_CHANGES)


def _longer(current: Window | None, new: Window) -> Window:
    return new if current is None or new.until > current.until else current


class IamPropagation:
    def __init__(self, world: World) -> None:
        self.world = world
        self._lock = threading.Lock()
        self._roles: dict[str, RoleChange] = {}  # by role ARN

    # -- fed by the middleware ---------------------------------------------------------

    def role_changed(self, info: RequestInfo, account: str) -> None:
        """A successful IAM call (world lock held): note role changes that must propagate."""
        if info.operation not in ASSUME_CHANGES:
            return
        from moto.iam.models import iam_backends

        seconds = self.world.profile.current.iam_propagation_s
        if seconds <= 0:
            return
        name = str(info.get("RoleName", ""))
        try:
            arn = iam_backends[account]["aws"].get_role(name).arn
        except Exception:
            return
        now = self.world.clock.now()
        window = Window(now, now + seconds)
        with self._lock:
            change = self._roles.setdefault(arn, RoleChange(name, arn, info.operation))
            change.operation = info.operation
            change.assume = _longer(change.assume, window)
            if info.operation in PERMISSION_CHANGES:
                change.permissions = _longer(change.permissions, window)

    def reset(self) -> None:
        with self._lock:
            self._roles.clear()

    # -- judging calls -----------------------------------------------------------------

    def refuse_function_config(self, info: RequestInfo) -> Response | None:
        """Lambda's answer to CreateFunction / UpdateFunctionConfiguration naming a role that
        has not propagated yet, or None."""
        role_arn = str(info.get("Role") or "")
        with self._lock:
            change = self._roles.get(role_arn)
            window = change.assume if change else None
        now = self.world.clock.now()
        if window is None or window.left(now) <= 0:
            return None
        message = ROLE_MESSAGE
        if "Environment" in info.all_params and window.share_elapsed(now) >= ROLE_MESSAGE_SHARE:
            message = KMS_MESSAGE.format(role_arn=role_arn)
        return render_error("rest-json", "lambda", "InvalidParameterValueException", message, 400)

    def refuse_call(self, info: RequestInfo, caller: dict[str, str] | None) -> Response | None:
        """The access-denied answer to a function's call while its role's permissions
        propagate, or None."""
        if caller is None or (info.service, info.operation) in UNGUARDED:
            return None
        role_arn = caller.get("role", "")
        with self._lock:
            change = self._roles.get(role_arn)
            window = change.permissions if change else None
        if window is None or window.left(self.world.clock.now()) <= 0:
            return None
        account = role_arn.split(":")[4]
        principal = f"arn:aws:sts::{account}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{caller['function']}"
        action = f"{info.service}:{info.operation}"
        resource = self._resource(info, account)
        message = f"User: {principal} is not authorized to perform: {action}"
        if resource:
            message += f" on resource: {resource}"
        message += f" because no identity-based policy allows the {action} action"
        if info.protocol == "ec2":
            return render_error("ec2", info.service, "UnauthorizedOperation",
                                "You are not authorized to perform this operation. " + message, 403)
        if info.protocol == "query":
            return render_error("query", info.service, "AccessDenied", message, 403)
        if info.protocol == "json":
            return render_error("json", info.service, "AccessDeniedException", message, 400)
        return render_error(info.protocol, info.service, "AccessDeniedException", message, 403)

    def _resource(self, info: RequestInfo, account: str) -> str | None:
        """The ARN an access-denied message names for the call, when it has one."""
        if info.service == "ec2":
            for param, kind in EC2_RESOURCES:
                value = info.all_params.get(param)
                if isinstance(value, list):
                    value = value[0] if value else None
                if value:
                    return f"arn:aws:ec2:{info.region}:{account}:{kind}/{value}"
            return None
        if info.service == "autoscaling" and info.all_params.get("AutoScalingGroupName"):
            from moto.autoscaling.models import autoscaling_backends

            name = info.all_params["AutoScalingGroupName"]
            with self.world.lock:
                group = autoscaling_backends[account][info.region].autoscaling_groups.get(name)
                if group is not None:
                    return group.arn
            return None
        return None

    # -- control API ---------------------------------------------------------------------

    def list(self) -> dict[str, Any]:
        """Roles still propagating, with the virtual seconds left of each window."""
        roles = []
        now = self.world.clock.now()
        with self._lock:
            changes = list(self._roles.values())
        for change in changes:
            assume_left = max(0.0, change.assume.left(now)) if change.assume else 0.0
            permissions_left = max(0.0, change.permissions.left(now)) if change.permissions else 0.0
            if assume_left > 0 or permissions_left > 0:
                roles.append({
                    "role_name": change.role_name,
                    "role_arn": change.role_arn,
                    "operation": change.operation,
                    "assume_left_s": round(assume_left, 3),
                    "permissions_left_s": round(permissions_left, 3),
                })
        return {"iam_propagation_s": self.world.profile.current.iam_propagation_s, "roles": roles}
