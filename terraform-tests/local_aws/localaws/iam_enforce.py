"""IAM evaluation of a Lambda function's calls: its execution role decides.

With the profile setting ``iam_evaluation`` on (``realistic``; off in ``fast``), every call
signed with credentials the Lambda runner issued to a function's attempt
(``LambdaRunner.identity``: each attempt has its own access key id, as Lambda gives each
execution environment its own role session) is evaluated before moto sees it:
``iam_context.build`` makes the call's authorizations (the call's own action and those
made on its behalf: the KMS grant EC2 makes to attach an encrypted volume, ...), and
``iam_eval.evaluate`` decides them against the role as moto's IAM backend holds it now:
its inline policies, the default versions of its attached managed policies, and its
permissions boundary. A denial is answered as the service answers it and nothing is done:

* EC2: HTTP 403 ``UnauthorizedOperation`` "You are not authorized to perform this
  operation. User: arn:aws:sts::ACCOUNT:assumed-role/ROLE/FUNCTION is not authorized to
  perform: ec2:AttachVolume on resource: arn:aws:ec2:...:volume/vol-... because no
  identity-based policy allows the ec2:AttachVolume action. Encoded authorization failure
  message: ..." (EC2 API Reference, "Error codes": UnauthorizedOperation; the reason
  phrases are the IAM User Guide's, "Troubleshoot access denied error messages");
* Query services (Auto Scaling, IAM, STS): HTTP 403 ``AccessDenied`` with the same text
  from "User: ..." on;
* JSON services (CloudWatch Logs, EventBridge, KMS): HTTP 400 ``AccessDeniedException``;
  Lambda: HTTP 403 ``AccessDeniedException``.

The KMS key uses EBS makes while it creates an encrypted volume (``iam_context._ebs_key_use``:
``kms:GenerateDataKeyWithoutPlaintext``, ``kms:ReEncryptFrom``/``To``) are authorizations made
after EC2 accepted the CreateVolume (``Request.after_call``): they are decided only when the
call's own ones allow it, and a denial does not refuse the call; the call goes on, the decision
is recorded (``deferred``: true) and the volume is given up: ``creating``, then gone
(``ec2ext``), which is what AWS users report (the volume appears ``creating`` and later
DescribeVolumes answers ``InvalidVolume.NotFound``: aws/aws-cli#2604,
kubernetes-sigs/aws-ebs-csi-driver#2685, velero-io/velero#2195).

The KMS grant EC2 makes for an AttachVolume is refused in EC2's answer to the AttachVolume,
naming ``kms:CreateGrant`` on the key: AWS documents that the attach fails and that
CloudTrail shows KMS's AccessDenied (AWS re:Post knowledge center, "Why can't I create or
attach an encrypted EBS volume ... customer managed key"), not the exact error of the
AttachVolume call, so that answer is our choice.

The function's logs are decided the same way: Lambda writes them with the role and drops
them when the role may not (``lambda_may_log``, used by ``lambda_runner``).

Calls signed with an IAM user's access key (one moto's IAM issued with CreateAccessKey:
a deployer an administrator set up with the IAM API) are evaluated the same way against
the user's policies, inline, attached and its groups' (``refuse_user_call``; users have
no permissions boundary here), as ``arn:aws:iam::ACCOUNT:user/NAME``. Calls signed with
any other credentials (the provider's and the tests' ``test``) are not evaluated.
IAM's propagation window (``iam_propagation``) is checked first and refuses on its own.
``GET /_localaws/iam-evaluation`` lists the decisions (the last 1000); with
``LOCALAWS_IAM_DECISIONS_LOG=<file>`` in its environment the server also appends each one
to that file as a JSON line (for suites whose server log is a temporary file).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from . import iam_context
from .awserrors import render_error
from .iam_eval import Decision, Policy, UnsupportedPolicy, evaluate_all
from .requestinfo import RequestInfo

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.iam")

Response = tuple[int, list[tuple[str, str]], bytes]

MAX_RECORDS = 1000

# Query services whose SDKs may speak JSON to them (CloudWatch, signing name ``monitoring``):
# a denial keeps the Query answer's code and status.
QUERY_COMPATIBLE = frozenset({"monitoring"})


def role_policies(account: str, role_arn: str) -> tuple[Any, list[Policy], list[Policy] | None]:
    """(moto role or None, identity policies, boundary or None) of a role, as IAM holds it
    now (world lock held). A boundary naming a policy that does not exist allows nothing."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account][iam_context.PARTITION]
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:
        return None, [], None
    identity = [Policy(name, json.loads(doc) if isinstance(doc, str) else doc) for name, doc in role.policies.items()]
    for arn, managed in role.managed_policies.items():
        doc = _default_document(managed)
        if doc is not None:
            identity.append(Policy(arn, doc))
    boundary = None
    if role.permissions_boundary_arn:
        boundary = []
        try:
            doc = _default_document(backend.get_policy(role.permissions_boundary_arn))
            if doc is not None:
                boundary.append(Policy(role.permissions_boundary_arn, doc))
        except Exception:
            pass
    return role, identity, boundary


def _default_document(policy: Any) -> Any:
    for version in getattr(policy, "versions", []):
        if getattr(version, "is_default", False) or getattr(version, "is_default_version", False):
            doc = version.document
            return json.loads(doc) if isinstance(doc, str) else doc
    return None


def access_denied(info: RequestInfo, principal_arn: str, decision: Decision) -> Response:
    """The service's access-denied answer to ``info`` for ``decision``."""
    message = f"User: {principal_arn} is not authorized to perform: {decision.action}"
    if decision.resource and decision.resource != "*":
        message += f" on resource: {decision.resource}"
    message += f" {decision.reason()}"
    if info.protocol == "ec2":
        encoded = _encoded(principal_arn, decision)
        return render_error("ec2", info.service, "UnauthorizedOperation",
                            "You are not authorized to perform this operation. " + message
                            + f". Encoded authorization failure message: {encoded}", 403)
    if info.protocol == "query":
        return render_error("query", info.service, "AccessDenied", message, 403)
    if info.protocol == "json" and info.service in QUERY_COMPATIBLE:
        # A Query service reached through its JSON protocol (awsQueryCompatible): the Query
        # error code and status, the code also in ``x-amzn-query-error`` (SDKs read it there).
        status, headers, body = render_error("json", info.service, "AccessDenied", message, 403)
        return status, headers + [("x-amzn-query-error", "AccessDenied;Sender")], body
    if info.protocol == "json":
        return render_error("json", info.service, "AccessDeniedException", message, 400)
    return render_error(info.protocol, info.service, "AccessDeniedException", message, 403)


def _encoded(principal_arn: str, decision: Decision) -> str:
    """An opaque token as EC2 gives (sts:DecodeAuthorizationMessage is not emulated): the
    decision in the shape that API documents, base64url."""
    doc = {
        "allowed": False,
        "explicitDeny": decision.decision == "ExplicitDeny",
        "matchedStatements": {"items": [str(decision.statement)] if decision.statement else []},
        "context": {"principal": {"arn": principal_arn}, "action": decision.action, "resource": decision.resource},
    }
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


class IamEnforcement:
    def __init__(self, world: World) -> None:
        self.world = world
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    def list(self) -> dict[str, Any]:
        with self._lock:
            records = list(self._records)
        return {"iam_evaluation": self.world.profile.current.iam_evaluation, "decisions": records}

    def lambda_may_log(self, account: str, region: str, role_arn: str, function: str, group: str, stream: str) -> bool:
        """May Lambda write the function's logs with its role (see lambda_runner)? Lambda
        creates the log group if it is missing (logs:CreateLogGroup), then the stream and
        its events (logs:CreateLogStream, logs:PutLogEvents on the stream's ARN)."""
        if not self.world.profile.current.iam_evaluation:
            return True
        from moto.logs import logs_backends

        with self.world.lock:
            role, identity, boundary = role_policies(account, role_arn)
            principal = iam_context.Principal(account, role_arn, getattr(role, "id", "AROAUNKNOWN"), function)
            params = {"logGroupName": group, "logStreamName": stream}
            operations = ["CreateLogStream", "PutLogEvents"]
            if group not in logs_backends[account][region].groups:
                operations.insert(0, "CreateLogGroup")
            requests = []
            for op in operations:
                info = RequestInfo("logs", region, op, "json", all_params=params)
                requests.extend(iam_context.build(info, principal))
        try:
            decision = evaluate_all(identity, boundary, requests)
        except UnsupportedPolicy as exc:
            log.error("cannot evaluate %s's policies for its logs: %s", role_arn, exc)
            return False
        if decision is None:
            return True
        self._record({
            "function": function, "request_id": None, "role": role_arn, "principal": principal.arn, "service": "logs",
            "operation": "Lambda log delivery", "decision": decision.decision, "action": decision.action,
            "resource": decision.resource, "policy_type": decision.policy_type,
            "statement": str(decision.statement) if decision.statement else None,
            "allowed_by": {arn: str(ref) for arn, ref in decision.allowed_by}, "note": "Lambda writes the function's logs",
            "authorizations": [{"action": r.action, "resources": [x.arn for x in r.resources], "note": r.note}
                               for r in requests],
        })
        if not decision.allowed:
            log.info("IAM: Lambda drops the logs of %s: %s", function, decision.describe())
        return decision.allowed

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)
            del self._records[:-MAX_RECORDS]
            path = os.environ.get("LOCALAWS_IAM_DECISIONS_LOG")
            if path:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")

    def refuse_call(self, info: RequestInfo, caller: dict[str, str] | None) -> Response | None:
        """The access-denied answer to a function's call its role does not allow, or None."""
        if caller is None or not self.world.profile.current.iam_evaluation:
            return None
        role_arn = caller.get("role", "")
        try:
            account = role_arn.split(":")[4]
        except IndexError:
            return None
        with self.world.lock:
            role, identity, boundary = role_policies(account, role_arn)
            role_id = getattr(role, "id", "AROAUNKNOWN")
            principal = iam_context.Principal(account, role_arn, role_id, caller.get("function", "session"))
            record = {"function": caller.get("function"), "request_id": caller.get("request_id"), "role": role_arn}
            return self._decide(info, principal, identity, boundary, record, caller.get("function"))

    def refuse_user_call(self, info: RequestInfo, access_key_id: str | None, account: str) -> Response | None:
        """The access-denied answer to a call signed with an IAM user's access key (one
        moto's IAM issued, CreateAccessKey) that the user's policies do not allow, or None.
        Keys IAM did not issue (the provider's and the tests' ``test``) are not evaluated."""
        if not access_key_id or not self.world.profile.current.iam_evaluation:
            return None
        with self.world.lock:
            found = user_policies(account, access_key_id)
            if found is None:
                return None
            user, identity = found
            principal = iam_context.User(account, user.arn, user.id, user.name)
            record = {"function": None, "request_id": None, "user": user.name}
            return self._decide(info, principal, identity, None, record, f"user {user.name}")

    def _decide(self, info: RequestInfo, principal: iam_context.AnyPrincipal, identity: list[Policy],
                boundary: list[Policy] | None, record: dict[str, Any], who: Any) -> Response | None:
        """Builds and decides ``info``'s authorizations (world lock held), records the
        decision, and answers a denial as the service does."""
        try:
            requests = iam_context.build(info, principal)
        except Exception as exc:
            log.exception("building the IAM request context of %s %s", info.service, info.operation)
            return render_error(info.protocol, info.service, "InternalFailure",
                                f"localaws cannot build the IAM request context: {exc}", 500)
        try:
            decision = evaluate_all(identity, boundary, [r for r in requests if not r.after_call])
            after = [r for r in requests if r.after_call]
            deferred = False
            if after and (decision is None or decision.allowed):
                # The service accepts the call first; what it then does as the caller is
                # decided here too, and a denial gives up the resource (see the docstring).
                later = evaluate_all(identity, boundary, after)
                if later is not None and not later.allowed:
                    decision, deferred = later, True
                elif decision is None:
                    decision = later
        except UnsupportedPolicy as exc:
            log.error("cannot evaluate %s's policies for %s: %s", principal.arn, info.operation, exc)
            return render_error(info.protocol, info.service, "InternalFailure",
                                f"localaws cannot evaluate the principal's policies: {exc}", 500)
        if decision is None:
            return None
        record = {
            **record,
            "principal": principal.arn,
            "service": info.service,
            "operation": info.operation,
            "decision": decision.decision,
            "action": decision.action,
            "resource": decision.resource,
            "policy_type": decision.policy_type,
            "statement": str(decision.statement) if decision.statement else None,
            "allowed_by": {arn: str(ref) for arn, ref in decision.allowed_by},
            "note": decision.note,
            "authorizations": [
                {"action": r.action, "resources": [x.arn for x in r.resources], "note": r.note,
                 **({"after_call": True} if r.after_call else {})} for r in requests
            ],
            # A denial of an authorization made after the call was accepted: the call succeeds
            # and its resource is given up (CreateVolume's volume disappears).
            "deferred": deferred,
            # Each authorization's request keys and each resource's own, for reading a denial.
            "contexts": [
                {"request": _jsonable(r.context), "resources": {x.arn: _jsonable(x.context) for x in r.resources}}
                for r in requests
            ],
        }
        self._record(record)
        if decision.allowed:
            return None
        if deferred:
            log.info("IAM denies %s after the call was accepted: %s", who, decision.describe())
            info.deferred_denial = decision.describe()
            return None
        log.info("IAM denies %s: %s", who, decision.describe())
        return access_denied(info, principal.arn, decision)


def _jsonable(ctx: Any) -> dict[str, Any]:
    return {str(k): (v if isinstance(v, (str, int, float, bool, list)) or v is None else str(v))
            for k, v in dict(ctx).items()}


def user_policies(account: str, access_key_id: str) -> tuple[Any, list[Policy]] | None:
    """(moto user, identity policies) of the IAM user an access key was issued to, or None
    (world lock held): its inline policies, the default versions of its attached managed
    policies, and those of its groups. An inactive key is refused by AWS before any policy
    is read; here it is treated as the user's."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account][iam_context.PARTITION]
    key = backend.access_keys.get(access_key_id)
    name = getattr(key, "user_name", None)
    if key is None or not name or getattr(key, "role_arn", None):
        return None
    try:
        user = backend.get_user(name)
    except Exception:
        return None
    holders = [user]
    try:
        holders.extend(backend.get_groups_for_user(name))
    except Exception:
        pass
    identity: list[Policy] = []
    for holder in holders:
        label = getattr(holder, "arn", name)
        for pname, doc in holder.policies.items():
            identity.append(Policy(f"{label}/{pname}" if holder is not user else pname,
                                   json.loads(doc) if isinstance(doc, str) else doc))
        for arn, managed in holder.managed_policies.items():
            doc = _default_document(managed)
            if doc is not None:
                identity.append(Policy(arn, doc))
    return user, identity
