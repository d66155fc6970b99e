"""The request context of a call, as IAM would evaluate it: ``iam_eval.Request``s.

For one AWS call (a classified ``RequestInfo``) and the principal making it, ``build``
answers every authorization the call needs, each an action, its resources (ARN and the
resource's own condition keys, its tags read from moto's backends) and the request-wide
condition keys. Which resource types an action takes, which of them are required, and
which condition keys each may carry are not typed here: they come from the Service
Authorization Reference ("Actions, resources, and condition keys for AWS services",
https://docs.aws.amazon.com/service-authorization/latest/reference/), as parliament
(installed, pinned at 1.6.4 in tools/requirements.in) carries it in ``iam_definition.json``. A key is
put in the context only when the reference lists it for that action (on the resource
type's row, in the resource type's own table, or on the action's request row); the global
principal keys are always there ("AWS global condition context keys":
aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalType, aws:userid,
aws:RequestedRegion, aws:SecureTransport, aws:ViaAWSService).

What is hand-typed is how a request names its resources (``InstanceId`` names an
``instance``...) and the calls that are authorized as more than one action, each from
the page that documents it:

* a ``TagSpecification`` on an EC2 create call is also authorized as ``ec2:CreateTags`` on
  each resource it tags, with ``ec2:CreateAction`` = the create call (EC2 User Guide,
  "Grant permission to tag Amazon EC2 resources during creation");
* AttachVolume of a volume encrypted with a customer managed key makes EC2 call
  ``kms:CreateGrant`` on the key, as the caller (a forward access session), with
  ``kms:ViaService`` = ``ec2.<region>.amazonaws.com``, ``kms:CallerAccount`` = the caller's
  account and ``kms:GrantIsForAWSResource`` = true (EBS User Guide, "How Amazon EBS
  encryption works"; KMS Developer Guide, "kms:ViaService", "kms:CallerAccount",
  "kms:GrantIsForAWSResource"). A key aliased ``alias/aws/...`` is an AWS managed key,
  whose key policy lets the account's principals use it through EC2 directly; no
  identity-policy check is made for it here;
* CreateVolume of a volume under a customer managed key makes EBS use the key as the caller,
  after EC2 accepted the call: ``kms:GenerateDataKeyWithoutPlaintext`` (an empty volume) or
  ``kms:ReEncryptFrom``/``kms:ReEncryptTo`` (from an encrypted snapshot), with
  ``kms:ViaService`` (``_ebs_key_use``; ``Request.after_call``: a denial gives the volume up
  rather than refusing the call, see iam_enforce);
* ``lambda:CreateFunction`` / ``UpdateFunctionConfiguration`` naming a ``Role`` need
  ``iam:PassRole`` on it with ``iam:PassedToService`` = ``lambda.amazonaws.com`` (IAM User
  Guide, "Grant a user permissions to pass a role to an AWS service");
* ``autoscaling:CreateAutoScalingGroup`` needs ``iam:CreateServiceLinkedRole`` with
  ``iam:AWSServiceName`` = ``autoscaling.amazonaws.com`` while the account has no
  AWSServiceRoleForAutoScaling (Auto Scaling User Guide, "Service-linked roles"), and, with
  a launch template, ``ec2:RunInstances`` as the caller ("Launch template support");
* ``iam:PermissionsBoundary`` is the boundary a CreateRole or PutRolePermissionsBoundary
  sets, and for PutRolePolicy the boundary the role has (IAM User Guide, "Permissions
  boundaries for IAM entities", example "Delegating responsibility ... using a boundary").

A resource the call creates (or that is required but not named by the request) is
``<type>/*`` (what AWS's own messages show, ``...:instance/*`` for RunInstances); an
action without resource-level permissions is on ``*``. A snapshot's (and an image's) ARN
has no account, ``arn:aws:ec2:REGION::snapshot/snap-..``, as the reference's template
writes it; a snapshot carries ``ec2:ParentVolume``, the ARN of the volume it was taken of
(the reference's ``snapshot`` resource type; CreateSnapshot's new ``snapshot/*`` has that
of the request's volume), so a policy can scope DeleteSnapshot to the snapshots of one
volume whatever their tags say. CreateVolume's new ``volume/*`` carries the keys its request
gives the volume (``new_volume_keys``), and Create/UpdateAutoScalingGroup the keys of the
group's settings they set (``_group_request_keys``: ``autoscaling:VPCZoneIdentifiers``...).
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .iam_eval import Request, Resource
from .requestinfo import RequestInfo

PARTITION = "aws"


# -- the Service Authorization Reference, from parliament -----------------------------------


@dataclass(frozen=True)
class ResourceTypeUse:
    name: str  # "volume"
    required: bool
    condition_keys: frozenset[str]  # lower-case, with ${TagKey} patterns


@dataclass(frozen=True)
class ActionDef:
    service: str
    name: str
    resource_types: tuple[ResourceTypeUse, ...]
    request_keys: frozenset[str]  # the row without a resource type
    dependent_actions: tuple[str, ...]

    def key_listed(self, key: str, resource_type: str | None = None) -> bool:
        """Does the reference list ``key`` for this action (on ``resource_type``, or on the
        request row when None)?"""
        keys = self.request_keys
        if resource_type is not None:
            keys = next((r.condition_keys for r in self.resource_types if r.name == resource_type), frozenset())
        return _key_in(key, keys)

    def key_listed_anywhere(self, key: str) -> bool:
        return _key_in(key, self.request_keys) or any(_key_in(key, r.condition_keys) for r in self.resource_types)


def _key_in(key: str, keys: Iterable[str]) -> bool:
    k = key.lower()
    for listed in keys:
        if listed == k:
            return True
        if "${" in listed and k.startswith(listed.split("${", 1)[0]):
            return True
    return False


@functools.lru_cache(maxsize=1)
def reference() -> dict[str, dict[str, Any]]:
    """Per service prefix: {"actions": {lower name: ActionDef}, "resources": {type:
    (arn template, keys)}}."""
    import parliament

    path = os.path.join(os.path.dirname(parliament.__file__), "iam_definition.json")
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    out: dict[str, dict[str, Any]] = {}
    for svc in data:
        prefix = svc["prefix"]
        entry = out.setdefault(prefix, {"actions": {}, "resources": {}})
        for res in svc.get("resources", []):
            entry["resources"][res["resource"]] = (
                res["arn"], frozenset(k.lower() for k in res.get("condition_keys", [])))
        for priv in svc.get("privileges", []):
            uses = []
            request_keys: frozenset[str] = frozenset()
            dependents: list[str] = []
            for rt in priv.get("resource_types", []):
                name = rt["resource_type"]
                keys = frozenset(k.lower() for k in rt.get("condition_keys", []))
                dependents.extend(rt.get("dependent_actions", []))
                if not name:
                    request_keys = keys
                    continue
                required = name.endswith("*")
                name = name.rstrip("*")
                table_keys = entry["resources"].get(name, ("", frozenset()))[1]
                uses.append(ResourceTypeUse(name, required, keys | table_keys))
            entry["actions"][priv["privilege"].lower()] = ActionDef(
                prefix, priv["privilege"], tuple(uses), request_keys, tuple(dependents))
    return out


def action_def(action: str) -> ActionDef | None:
    service, _, name = action.partition(":")
    svc = reference().get(service)
    return None if svc is None else svc["actions"].get(name.lower())


# -- principals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """An assumed-role session (a Lambda function's execution role)."""

    account: str
    role_arn: str
    role_id: str
    session: str

    @property
    def session_arn(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:{PARTITION}:sts::{self.account}:assumed-role/{role_name}/{self.session}"

    def context(self, region: str) -> dict[str, Any]:
        return {
            "aws:PrincipalArn": self.role_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:userid": f"{self.role_id}:{self.session}",
            "aws:RequestedRegion": region,
            "aws:SecureTransport": "true",
            "aws:ViaAWSService": "false",
            "aws:PrincipalIsAWSService": "false",
        }

    @property
    def arn(self) -> str:
        """The ARN access-denied messages name: the role session's."""
        return self.session_arn


@dataclass(frozen=True)
class User:
    """An IAM user signing with one of its long-term access keys (a deployer). The global
    keys are those AWS sets for an IAM user ("AWS global condition context keys":
    aws:PrincipalArn = the user's ARN, aws:PrincipalType = User, aws:userid = the user's
    unique id, aws:username = its name, present only for IAM users)."""

    account: str
    user_arn: str
    user_id: str
    name: str

    @property
    def arn(self) -> str:
        return self.user_arn

    def context(self, region: str) -> dict[str, Any]:
        return {
            "aws:PrincipalArn": self.user_arn,
            "aws:PrincipalAccount": self.account,
            "aws:PrincipalType": "User",
            "aws:userid": self.user_id,
            "aws:username": self.name,
            "aws:RequestedRegion": region,
            "aws:SecureTransport": "true",
            "aws:ViaAWSService": "false",
            "aws:PrincipalIsAWSService": "false",
        }


AnyPrincipal = Principal | User


# -- the call's resources ---------------------------------------------------------------------


@dataclass
class Found:
    arn: str
    tags: dict[str, str]
    keys: dict[str, Any]


def _ids(info: RequestInfo, *names: str) -> list[str]:
    """The values of the first of ``names`` the call has: a single parameter, a list, or an
    EC2 query list (``InstanceId.1``, ``InstanceId.2``...)."""
    for name in names:
        v = info.get(name)
        if v is None:
            numbered = sorted(((int(m.group(1)), str(val)) for key, val in info.all_params.items()
                               if (m := re.fullmatch(re.escape(name) + r"\.(\d+)", key)) and val),
                              key=lambda x: x[0])
            if numbered:
                return [val for _, val in numbered]
            continue
        if isinstance(v, list):
            return [str(x) for x in v if x]
        if v != "":
            return [str(v)]
    return []


# The id prefix of each EC2 resource type, for calls that name resources of any type
# (CreateTags / DeleteTags ``ResourceId.N``).
EC2_ID_PREFIXES = {
    "instance": "i-", "volume": "vol-", "elastic-ip": "eipalloc-", "security-group": "sg-", "subnet": "subnet-",
    "vpc": "vpc-", "internet-gateway": "igw-", "route-table": "rtb-", "launch-template": "lt-",
    "snapshot": "snap-", "network-interface": "eni-", "image": "ami-",
}


def _find_by_resource_id(rtype: str, info: RequestInfo, account: str) -> list[Found] | None:
    prefix = EC2_ID_PREFIXES.get(rtype)
    ids = [i for i in _ids(info, "ResourceId") if prefix and i.startswith(prefix)]
    if not ids:
        return None
    ec2 = _ec2(account, info.region)
    if rtype == "snapshot":
        return [Found(_ec2_arn(info.region, account, rtype, i), _ec2_tags(ec2, i),
                      snapshot_keys(ec2, info.region, account, i)) for i in ids]
    if rtype == "volume":
        return [Found(_ec2_arn(info.region, account, rtype, i), _ec2_tags(ec2, i),
                      volume_keys(ec2, info.region, account, i)) for i in ids]
    return [Found(_ec2_arn(info.region, account, rtype, i), _ec2_tags(ec2, i), {"ec2:Region": info.region})
            for i in ids]


def _route_table_association(info: RequestInfo, account: str) -> tuple[str, str | None] | None:
    """(route table id, subnet id) of the ``AssociationId`` a call names."""
    assoc = info.get("AssociationId")
    if not assoc:
        return None
    for rtb in _ec2(account, info.region).route_tables.values():
        assocs = getattr(rtb, "_associations", None) or getattr(rtb, "associations", {}) or {}
        if assoc in assocs:
            return rtb.id, assocs[assoc]
    return None


def _find_route_table(info: RequestInfo, account: str) -> list[Found] | None:
    ids = _ids(info, "RouteTableId")
    if not ids:
        found = _route_table_association(info, account)
        ids = [found[0]] if found else []
    if not ids:
        return None
    ec2 = _ec2(account, info.region)
    return [Found(_ec2_arn(info.region, account, "route-table", i), _ec2_tags(ec2, i), {"ec2:Region": info.region})
            for i in ids]


def _find_subnet(info: RequestInfo, account: str) -> list[Found] | None:
    ids = _ids(info, "SubnetId")
    if not ids:
        found = _route_table_association(info, account)
        ids = [found[1]] if found and found[1] else []
    if not ids:
        return None
    ec2 = _ec2(account, info.region)
    return [Found(_ec2_arn(info.region, account, "subnet", i), _ec2_tags(ec2, i), {"ec2:Region": info.region})
            for i in ids]


def _ec2(account: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account][region]


# EC2 resource types whose ARN has no account (Service Authorization Reference:
# ``arn:${Partition}:ec2:${Region}::snapshot/${SnapshotId}``, ``...::image/${ImageId}``).
EC2_ACCOUNTLESS = frozenset({"snapshot", "image"})


def _ec2_arn(region: str, account: str, rtype: str, rid: str) -> str:
    owner = "" if rtype in EC2_ACCOUNTLESS else account
    return f"arn:{PARTITION}:ec2:{region}:{owner}:{rtype}/{rid}"


def _ec2_tags(backend: Any, rid: str) -> dict[str, str]:
    return dict(backend.tags.get(rid, {}))


def _find_instance(info: RequestInfo, account: str) -> list[Found] | None:
    ids = _ids(info, "InstanceId")
    ec2 = _ec2(account, info.region)
    if not ids and info.get("AttachmentId"):
        # DetachNetworkInterface names the attachment: its instance.
        eni = _eni_by_attachment(ec2, str(info.get("AttachmentId")))
        ids = [eni.instance.id] if eni is not None and eni.instance is not None else []
    if not ids:
        return None
    out = []
    for iid in ids:
        keys: dict[str, Any] = {"ec2:InstanceID": iid, "ec2:Region": info.region}
        try:
            inst = ec2.get_instance(iid)
            keys["ec2:AvailabilityZone"] = inst.availability_zone
            keys["ec2:InstanceType"] = inst.instance_type
        except Exception:
            pass
        out.append(Found(_ec2_arn(info.region, account, "instance", iid), _ec2_tags(ec2, iid), keys))
    return out


def _find_volume(info: RequestInfo, account: str) -> list[Found] | None:
    """The volumes a call names (``VolumeId``; CreateTags/DeleteTags ``ResourceId.N``
    elsewhere) with their keys (``volume_keys``), or CreateVolume's new ``volume/*`` with the
    keys its request gives it (``new_volume_keys``)."""
    if info.service == "ec2" and info.operation == "CreateVolume":
        return [Found(_ec2_arn(info.region, account, "volume", "*"), {}, new_volume_keys(info, account))]
    ids = _ids(info, "VolumeId")
    if not ids:
        return None
    ec2 = _ec2(account, info.region)
    return [Found(_ec2_arn(info.region, account, "volume", vid), _ec2_tags(ec2, vid),
                  volume_keys(ec2, info.region, account, vid)) for vid in ids]


def volume_keys(ec2: Any, region: str, account: str, vid: str) -> dict[str, Any]:
    """The reference's ``volume`` keys of an existing volume, from EBS's records: ec2:VolumeID,
    ec2:AvailabilityZone, ec2:Encrypted, ec2:VolumeSize, ec2:VolumeType, ec2:VolumeIops,
    ec2:VolumeThroughput, ec2:KmsKeyId (the key ARN EBS records), ec2:ParentSnapshot (the ARN of
    the snapshot it was created from), ec2:Region."""
    keys: dict[str, Any] = {"ec2:VolumeID": vid, "ec2:Region": region}
    vol = ec2.volumes.get(vid)
    if vol is None:
        return keys
    keys.update({
        "ec2:AvailabilityZone": getattr(vol.zone, "name", vol.zone),
        "ec2:Encrypted": "true" if vol.encrypted else "false",
        "ec2:VolumeSize": str(vol.size),
        "ec2:VolumeType": vol.volume_type,
    })
    if vol.iops:
        keys["ec2:VolumeIops"] = str(vol.iops)
    if vol.throughput:
        keys["ec2:VolumeThroughput"] = str(vol.throughput)
    if vol.encrypted and vol.kms_key_id:
        keys["ec2:KmsKeyId"] = str(vol.kms_key_id)
    if vol.snapshot_id:
        keys["ec2:ParentSnapshot"] = _ec2_arn(region, account, "snapshot", vol.snapshot_id)
    return keys


def new_volume_keys(info: RequestInfo, account: str) -> dict[str, Any]:
    """The keys of the volume a CreateVolume makes (the reference's ``volume`` row of
    CreateVolume), from the request and, for what it leaves out, from the snapshot it names:
    ec2:AvailabilityZone; ec2:Encrypted (true when asked, or when the snapshot is encrypted:
    such a volume is encrypted whatever the request says, EBS User Guide, "Encryption
    outcomes"); ec2:VolumeType (default gp2, the API's); ec2:VolumeSize (the request's, else the
    snapshot's); ec2:VolumeIops and ec2:VolumeThroughput when the request gives them;
    ec2:KmsKeyId (the key ARN the volume will have: the request's, else the snapshot's);
    ec2:ParentSnapshot (the snapshot's ARN); ec2:Region. Whether AWS puts the effective value
    or only the request's in ec2:Encrypted, ec2:VolumeSize and ec2:KmsKeyId is not documented:
    a request that states them (as the provider's do) gets the same either way."""
    ec2 = _ec2(account, info.region)
    keys: dict[str, Any] = {"ec2:Region": info.region}
    zone = info.get("AvailabilityZone")
    if zone:
        keys["ec2:AvailabilityZone"] = str(zone)
    sid = info.get("SnapshotId")
    snap = ec2.snapshots.get(str(sid)) if sid else None
    encrypted = str(info.get("Encrypted", "")).lower() == "true" or bool(snap is not None and snap.encrypted)
    keys["ec2:Encrypted"] = "true" if encrypted else "false"
    keys["ec2:VolumeType"] = str(info.get("VolumeType") or "gp2")
    size = info.get("Size")
    if size is None and snap is not None:
        try:
            size = snap.volume_size
        except Exception:
            size = None
    if size is not None:
        keys["ec2:VolumeSize"] = str(size)
    if info.get("Iops") is not None:
        keys["ec2:VolumeIops"] = str(info.get("Iops"))
    if info.get("Throughput") is not None:
        keys["ec2:VolumeThroughput"] = str(info.get("Throughput"))
    key = _new_volume_key(info, ec2, snap)
    if encrypted and key:
        found = kms_key(account, info.region, key)
        keys["ec2:KmsKeyId"] = found[0] if found else key
    if sid:
        keys["ec2:ParentSnapshot"] = _ec2_arn(info.region, account, "snapshot", str(sid))
    return keys


def _new_volume_key(info: RequestInfo, ec2: Any, snap: Any) -> str | None:
    """The key a CreateVolume's volume will be encrypted with: the request's ``KmsKeyId``, else
    an encrypted snapshot's key, else (``Encrypted``) the account's default EBS key."""
    if info.get("KmsKeyId"):
        return str(info.get("KmsKeyId"))
    if snap is not None and snap.encrypted and _snapshot_key(snap):
        return _snapshot_key(snap)
    if str(info.get("Encrypted", "")).lower() == "true":
        return getattr(ec2, "default_kms_key_id", None) or None
    return None


def _find_elastic_ip(info: RequestInfo, account: str) -> list[Found] | None:
    ec2 = _ec2(account, info.region)
    ids = _ids(info, "AllocationId")
    if not ids and info.get("AssociationId"):
        assoc = str(info.get("AssociationId"))
        ids.extend(a.allocation_id for a in ec2.addresses
                   if getattr(a, "association_id", None) == assoc and a.allocation_id)
    if not ids:
        ips = _ids(info, "PublicIp")
        for ip in ips:
            try:
                ids.extend(a.allocation_id for a in ec2.address_by_ip([ip]) if a.allocation_id)
            except Exception:
                pass
    if not ids:
        return None
    out = []
    for aid in ids:
        keys: dict[str, Any] = {"ec2:AllocationId": aid, "ec2:Region": info.region}
        try:
            addr = ec2.address_by_allocation([aid])[0]
            keys["ec2:Domain"] = addr.domain
            keys["ec2:PublicIpAddress"] = addr.public_ip
        except Exception:
            pass
        out.append(Found(_ec2_arn(info.region, account, "elastic-ip", aid), _ec2_tags(ec2, aid), keys))
    return out


def _find_ec2_simple(rtype: str, *params: str) -> Callable[[RequestInfo, str], list[Found] | None]:
    def find(info: RequestInfo, account: str) -> list[Found] | None:
        ids = _ids(info, *params)
        if not ids:
            return None
        ec2 = _ec2(account, info.region)
        return [Found(_ec2_arn(info.region, account, rtype, i), _ec2_tags(ec2, i), {"ec2:Region": info.region})
                for i in ids]

    return find


def _iso(dt: Any) -> str | None:
    try:
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    except Exception:
        return None


def _find_snapshot(info: RequestInfo, account: str) -> list[Found] | None:
    """The snapshots a call names (``SnapshotId``; CreateTags/DeleteTags ``ResourceId.N``
    elsewhere), ARN ``arn:aws:ec2:REGION::snapshot/ID`` (no account), with the keys of the
    reference's ``snapshot`` type that we know: ec2:SnapshotID, ec2:ParentVolume (the ARN of
    the volume it was taken of), ec2:Owner, ec2:VolumeSize, ec2:Encrypted, ec2:SnapshotTime,
    ec2:Region, and its tags. CreateSnapshot's new snapshot (``snapshot/*``) carries
    ec2:ParentVolume (the request's volume), ec2:VolumeSize and ec2:Encrypted of that volume."""
    ec2 = _ec2(account, info.region)
    if info.service == "ec2" and info.operation == "CreateSnapshot":
        vids = _ids(info, "VolumeId")
        keys: dict[str, Any] = {"ec2:Region": info.region}
        if vids:
            keys["ec2:ParentVolume"] = _ec2_arn(info.region, account, "volume", vids[0])
            vol = ec2.volumes.get(vids[0])
            if vol is not None:
                keys["ec2:VolumeSize"] = str(vol.size)
                keys["ec2:Encrypted"] = "true" if vol.encrypted else "false"
        return [Found(_ec2_arn(info.region, account, "snapshot", "*"), {}, keys)]
    ids = _ids(info, "SnapshotId")
    if not ids:
        return None
    out = []
    for sid in ids:
        out.append(Found(_ec2_arn(info.region, account, "snapshot", sid), _ec2_tags(ec2, sid),
                         snapshot_keys(ec2, info.region, account, sid)))
    return out


def snapshot_keys(ec2: Any, region: str, account: str, sid: str) -> dict[str, Any]:
    keys: dict[str, Any] = {"ec2:SnapshotID": sid, "ec2:Region": region}
    snap = ec2.snapshots.get(sid)
    if snap is None:
        return keys
    volume_id = getattr(getattr(snap, "volume", None), "id", None)
    if volume_id:
        keys["ec2:ParentVolume"] = _ec2_arn(region, account, "volume", volume_id)
    keys["ec2:Owner"] = str(snap.owner_id)
    keys["ec2:Encrypted"] = "true" if snap.encrypted else "false"
    try:
        keys["ec2:VolumeSize"] = str(snap.volume_size)
    except Exception:
        pass
    when = _iso(getattr(snap, "start_time", None))
    if when:
        keys["ec2:SnapshotTime"] = when
    return keys


def _eni_by_attachment(ec2: Any, attachment_id: str) -> Any | None:
    return next((e for e in ec2.enis.values() if e.attachment_id == attachment_id), None)


def _find_network_interface(info: RequestInfo, account: str) -> list[Found] | None:
    """The interfaces a call names (``NetworkInterfaceId``, or DetachNetworkInterface's
    ``AttachmentId``), with the keys the reference lists for the type: ec2:NetworkInterfaceID,
    ec2:Subnet and ec2:Vpc (ARNs), ec2:AvailabilityZone, ec2:Region, and its tags."""
    ids = _ids(info, "NetworkInterfaceId")
    ec2 = _ec2(account, info.region)
    if not ids and info.get("AttachmentId"):
        eni = _eni_by_attachment(ec2, str(info.get("AttachmentId")))
        ids = [eni.id] if eni is not None else []
    if not ids:
        return None
    out = []
    for nid in ids:
        keys: dict[str, Any] = {"ec2:NetworkInterfaceID": nid, "ec2:Region": info.region}
        eni = ec2.enis.get(nid)
        if eni is not None and eni.subnet is not None:
            keys["ec2:Subnet"] = _ec2_arn(info.region, account, "subnet", eni.subnet.id)
            keys["ec2:Vpc"] = _ec2_arn(info.region, account, "vpc", eni.subnet.vpc_id)
            keys["ec2:AvailabilityZone"] = eni.subnet.availability_zone
        out.append(Found(_ec2_arn(info.region, account, "network-interface", nid), _ec2_tags(ec2, nid), keys))
    return out


def _find_image(info: RequestInfo, account: str) -> list[Found] | None:
    ids = _ids(info, "ImageId")
    if not ids:
        return None
    return [Found(f"arn:{PARTITION}:ec2:{info.region}::image/{i}", {}, {"ec2:ImageID": i}) for i in ids]


def _find_group(info: RequestInfo, account: str) -> list[Found] | None:
    names = _ids(info, "AutoScalingGroupName")
    if not names:
        # CreateOrUpdateTags / DeleteTags: Tags.member.N.ResourceId (ResourceType auto-scaling-group).
        names = sorted({str(v) for k, v in info.all_params.items()
                        if re.fullmatch(r"Tags\.member\.\d+\.ResourceId", k) and v})
    from moto.autoscaling.models import autoscaling_backends

    if not names and info.service == "autoscaling" and info.get("InstanceId"):
        # TerminateInstanceInAutoScalingGroup, ...: the group the instance belongs to.
        iid = str(info.get("InstanceId"))
        names = [g.name for g in autoscaling_backends[account][info.region].autoscaling_groups.values()
                 if any(getattr(s.instance, "id", None) == iid for s in g.instance_states)]
    if not names:
        return None

    groups = autoscaling_backends[account][info.region].autoscaling_groups
    out = []
    for name in names:
        group = groups.get(name)
        if group is None:
            arn = f"arn:{PARTITION}:autoscaling:{info.region}:{account}:autoScalingGroup:*:autoScalingGroupName/{name}"
            out.append(Found(arn, {}, {}))
            continue
        tags = {t["Key"]: t.get("Value", "") for t in group.tags or [] if "Key" in t}
        out.append(Found(group.arn, tags, {}))
    return out


def _logs_group_name(info: RequestInfo) -> str | None:
    name = info.get("logGroupName")
    arn = str(info.get("resourceArn") or "")
    if not name and ":log-group:" in arn:  # TagResource, UntagResource, ListTagsForResource
        name = arn.split(":log-group:", 1)[1].removesuffix(":*")
    if not name and info.get("logGroupIdentifier"):
        name = str(info.get("logGroupIdentifier")).split(":log-group:")[-1]
    return str(name) if name else None


def _logs_tags(account: str, region: str, name: str) -> dict[str, str]:
    from moto.logs import logs_backends

    try:
        return dict(logs_backends[account][region].list_tags_log_group(name))
    except Exception:
        return {}


def _find_log_group(info: RequestInfo, account: str) -> list[Found] | None:
    name = _logs_group_name(info)
    if not name:
        return None
    arn = f"arn:{PARTITION}:logs:{info.region}:{account}:log-group:{name}"
    return [Found(arn, _logs_tags(account, info.region, name), {})]


def _find_log_stream(info: RequestInfo, account: str) -> list[Found] | None:
    name = _logs_group_name(info)
    stream = info.get("logStreamName")
    if not name or not stream:
        return None
    arn = f"arn:{PARTITION}:logs:{info.region}:{account}:log-group:{name}:log-stream:{stream}"
    return [Found(arn, _logs_tags(account, info.region, name), {})]


def kms_key(account: str, region: str, key_id: str) -> tuple[str, dict[str, str], bool] | None:
    """(key ARN, tags, is an AWS managed key) of any form of key id, or None."""
    from moto.kms import kms_backends

    kms = kms_backends[account][region]
    try:
        raw = kms.any_id_to_key_id(key_id)
        key = kms.keys[raw]
    except Exception:
        return None
    aws_managed = any(a.startswith("alias/aws/") for a in getattr(key, "aliases", {}) or {})
    try:
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(raw).get("Tags", [])}
    except Exception:
        tags = {}
    return key.arn, tags, aws_managed


def _find_key(info: RequestInfo, account: str) -> list[Found] | None:
    ids = _ids(info, "KeyId")
    if not ids:
        return None
    out = []
    for kid in ids:
        found = kms_key(account, info.region, kid)
        if found is None:
            out.append(Found(f"arn:{PARTITION}:kms:{info.region}:{account}:key/{kid}", {}, {}))
        else:
            out.append(Found(found[0], found[1], {}))
    return out


def _iam() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends


def _find_role(info: RequestInfo, account: str) -> list[Found] | None:
    names = _ids(info, "RoleName")
    if not names:
        return None
    backend = _iam()[account][PARTITION]
    out = []
    for name in names:
        try:
            role = backend.get_role(name)
            tags = {t["Key"]: t.get("Value", "") for t in role.tags or []}
            out.append(Found(role.arn, tags, {}))
        except Exception:
            path = str(info.get("Path") or "/")
            out.append(Found(f"arn:{PARTITION}:iam::{account}:role{path}{name}", {}, {}))
    return out


def _find_function(info: RequestInfo, account: str) -> list[Found] | None:
    ref = info.get("FunctionName")
    if not ref and ":function:" in str(info.get("Resource") or info.get("ARN") or ""):
        ref = str(info.get("Resource") or info.get("ARN"))  # TagResource, UntagResource, ListTags
    if not ref:
        return None
    ref = str(ref)
    name = ref.split(":function:")[-1].split(":")[0] if ":function:" in ref else ref.split(":")[0]
    arn = f"arn:{PARTITION}:lambda:{info.region}:{account}:function:{name}"
    from moto.awslambda import lambda_backends

    try:
        tags = dict(lambda_backends[account][info.region].list_tags(arn) or {})
    except Exception:
        tags = {}
    return [Found(arn, tags, {})]


def _rule_ref(info: RequestInfo) -> tuple[str, str] | None:
    """(event bus, rule name) a call names: ``Rule`` / ``Name`` with ``EventBusName``, or a
    rule's ARN in ``ResourceARN`` (ListTagsForResource, TagResource, UntagResource)."""
    name = info.get("Rule") or (info.get("Name") if info.service == "events" else None)
    bus = str(info.get("EventBusName") or "default")
    if not name:
        arn = str(info.get("ResourceARN") or "")
        if ":rule/" not in arn:
            return None
        path = arn.split(":rule/", 1)[1]
        bus, _, name = path.rpartition("/")
        bus = bus or "default"
    if bus.startswith("arn:"):
        bus = bus.rsplit("/", 1)[-1]
    return bus, str(name)


def _find_rule_on(custom: bool) -> Callable[[RequestInfo, str], list[Found] | None]:
    """The rule a call names, as the reference's ``rule-on-default-event-bus`` (ARN
    ``rule/NAME``) or ``rule-on-custom-event-bus`` (``rule/BUS/NAME``) resource type."""

    def find(info: RequestInfo, account: str) -> list[Found] | None:
        ref = _rule_ref(info)
        if ref is None or (ref[0] != "default") != custom:
            return None
        bus, name = ref
        path = f"{bus}/{name}" if custom else name
        return _find_rule(info, account, f"arn:{PARTITION}:events:{info.region}:{account}:rule/{path}")

    return find


def _find_rule(info: RequestInfo, account: str, arn: str) -> list[Found] | None:
    from moto.events.models import events_backends

    try:
        tags = {t["Key"]: t["Value"] for t in events_backends[account][info.region].list_tags_for_resource(arn)["Tags"]}
    except Exception:
        tags = {}
    return [Found(arn, tags, {})]


def _find_alarm(info: RequestInfo, account: str) -> list[Found] | None:
    """The CloudWatch alarms a call names: ``AlarmName``, ``AlarmNames`` (PutMetricAlarm,
    DescribeAlarms, DeleteAlarms, SetAlarmState, DescribeAlarmHistory, ...), or an alarm ARN
    in ``ResourceARN`` (TagResource, UntagResource, ListTagsForResource), with its tags.
    DescribeAlarms without names is on ``alarm:*`` (the placeholder)."""
    names = _ids(info, "AlarmName", "AlarmNames", "AlarmNames.member")
    arn_param = str(info.get("ResourceARN") or "")
    if not names and ":alarm:" in arn_param:
        names = [arn_param.split(":alarm:", 1)[1]]
    if not names:
        return None
    from moto.cloudwatch.models import cloudwatch_backends

    backend = cloudwatch_backends[account][info.region]
    out = []
    for name in names:
        arn = f"arn:{PARTITION}:cloudwatch:{info.region}:{account}:alarm:{name}"
        tags = dict(backend.tagger.get_tag_dict_for_resource(arn)) if name in backend.alarms else {}
        out.append(Found(arn, tags, {}))
    return out


# How a request names a resource of each type (service, resource type).
FINDERS: dict[tuple[str, str], Callable[[RequestInfo, str], list[Found] | None]] = {
    ("ec2", "instance"): _find_instance,
    ("ec2", "volume"): _find_volume,
    ("ec2", "elastic-ip"): _find_elastic_ip,
    ("ec2", "network-interface"): _find_network_interface,
    ("ec2", "subnet"): _find_subnet,
    ("ec2", "security-group"): _find_ec2_simple("security-group", "GroupId", "SecurityGroupId"),
    ("ec2", "vpc"): _find_ec2_simple("vpc", "VpcId"),
    ("ec2", "launch-template"): _find_ec2_simple("launch-template", "LaunchTemplateId"),
    ("ec2", "snapshot"): _find_snapshot,
    ("ec2", "internet-gateway"): _find_ec2_simple("internet-gateway", "InternetGatewayId"),
    ("ec2", "route-table"): _find_route_table,
    ("ec2", "image"): _find_image,
    ("autoscaling", "autoScalingGroup"): _find_group,
    ("logs", "log-group"): _find_log_group,
    ("logs", "log-stream"): _find_log_stream,
    ("kms", "key"): _find_key,
    ("iam", "role"): _find_role,
    ("lambda", "function"): _find_function,
    ("events", "rule-on-default-event-bus"): _find_rule_on(custom=False),
    ("cloudwatch", "alarm"): _find_alarm,
    ("events", "rule-on-custom-event-bus"): _find_rule_on(custom=True),
}

# The IAM service prefix of a SigV4 signing name that differs from it (CloudWatch signs as
# ``monitoring``; its actions are ``cloudwatch:...``).
IAM_PREFIXES = {"monitoring": "cloudwatch"}

# The IAM action of an operation whose name differs from its API name.
ACTION_NAMES = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeAsync",
}

# Calls that need no permission ("No permissions are required", STS API Reference).
UNAUTHORIZED_OK = frozenset({("sts", "GetCallerIdentity")})


def _placeholder_arn(service: str, rtype: str, region: str, account: str) -> str:
    """The ARN of a resource of ``rtype`` that the request does not name (it is being
    created): the reference's template with ``*`` for the id."""
    svc = reference().get(service, {"resources": {}})
    template = svc["resources"].get(rtype, (f"arn:${{Partition}}:{service}:${{Region}}:${{Account}}:{rtype}/*",))[0]
    arn = template.replace("${Partition}", PARTITION).replace("${Region}", region).replace("${Account}", account)
    return re.sub(r"\$\{[^}]*\}", "*", arn)


def _tag_keys(tags: dict[str, str], listed: Callable[[str], bool], prefixes: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prefix in prefixes:
        probe = f"{prefix}:ResourceTag/x"
        if listed(probe):
            for k, v in tags.items():
                out[f"{prefix}:ResourceTag/{k}"] = v
    return out


def resources_of(action: str, info: RequestInfo, account: str) -> list[Resource]:
    """The resources IAM authorizes ``action`` of this call on, each with its keys."""
    service = action.split(":", 1)[0]
    definition = action_def(action)
    if definition is None or not definition.resource_types:
        return [Resource("*", {})]
    out: list[Resource] = []
    for use in definition.resource_types:
        finder = FINDERS.get((service, use.name))
        found = finder(info, account) if finder else None
        if not found and service == "ec2" and info.operation in ("CreateTags", "DeleteTags"):
            found = _find_by_resource_id(use.name, info, account)
        if not found:
            if use.required:
                out.append(Resource(_placeholder_arn(service, use.name, info.region, account), {}))
            continue
        for f in found:
            ctx: dict[str, Any] = {}
            listed = functools.partial(definition.key_listed, resource_type=use.name)
            ctx.update(_tag_keys(f.tags, listed, ("aws", service)))
            for k, v in f.keys.items():
                if listed(k):
                    ctx[k] = v
            out.append(Resource(f.arn, ctx))
    if not out:
        return [Resource("*", {})]
    return out


# -- request tags ------------------------------------------------------------------------------


def request_tags(info: RequestInfo) -> dict[str, dict[str, str]]:
    """Tags the call sets, by the resource type they are for ("" when the call names none)."""
    p = info.all_params
    out: dict[str, dict[str, str]] = {}
    if info.protocol in ("ec2", "query"):
        # EC2 TagSpecification.N.ResourceType / .Tag.M.Key / .Value; Query Tags.member.N.Key.
        specs: dict[str, dict[str, Any]] = {}
        for key, value in p.items():
            m = re.fullmatch(r"TagSpecification\.(\d+)\.ResourceType", key)
            if m:
                specs.setdefault(m.group(1), {"tags": {}})["type"] = value
            m = re.fullmatch(r"TagSpecification\.(\d+)\.Tag\.(\d+)\.(Key|Value)", key)
            if m:
                spec = specs.setdefault(m.group(1), {"tags": {}})
                spec["tags"].setdefault(m.group(2), {})[m.group(3)] = value
        for spec in specs.values():
            tags = {t["Key"]: t.get("Value", "") for t in spec["tags"].values() if "Key" in t}
            out.setdefault(str(spec.get("type", "")), {}).update(tags)
        flat: dict[str, dict[str, str]] = {}
        for key, value in p.items():
            m = re.fullmatch(r"Tags?\.member\.(\d+)\.(Key|Value)", key) or re.fullmatch(r"Tag\.(\d+)\.(Key|Value)", key)
            if m:
                flat.setdefault(m.group(1), {})[m.group(2)] = value
        if flat:
            out.setdefault("", {}).update({t["Key"]: t.get("Value", "") for t in flat.values() if "Key" in t})
    else:
        for name in ("Tags", "tags"):
            tags = p.get(name)
            if isinstance(tags, dict):
                out.setdefault("", {}).update({str(k): str(v) for k, v in tags.items()})
            elif isinstance(tags, list):
                out.setdefault("", {}).update({str(t.get("Key")): str(t.get("Value", "")) for t in tags
                                               if isinstance(t, dict) and "Key" in t})
    return out


def _request_tag_keys(tags: dict[str, str], definition: ActionDef | None) -> dict[str, Any]:
    if not tags or definition is None:
        return {}
    out: dict[str, Any] = {}
    if definition.key_listed_anywhere("aws:RequestTag/x"):
        for k, v in tags.items():
            out[f"aws:RequestTag/{k}"] = v
    if definition.key_listed_anywhere("aws:TagKeys"):
        out["aws:TagKeys"] = sorted(tags)
    return out


# -- the authorizations of one call --------------------------------------------------------------


def action_of(info: RequestInfo) -> str:
    prefix = IAM_PREFIXES.get(info.service, info.service)
    return f"{prefix}:{ACTION_NAMES.get((info.service, info.operation), info.operation)}"


def build(info: RequestInfo, principal: AnyPrincipal) -> list[Request]:
    """Every authorization ``info`` needs when ``principal`` makes it (world lock held:
    reads moto's backends). Empty for calls that need no permission."""
    if (info.service, info.operation) in UNAUTHORIZED_OK:
        return []
    account = principal.account
    base = principal.context(info.region)
    action = action_of(info)
    definition = action_def(action)
    tags_by_type = request_tags(info)
    all_tags: dict[str, str] = {}
    for tags in tags_by_type.values():
        all_tags.update(tags)

    ctx = dict(base)
    ctx.update(_request_tag_keys(all_tags, definition))
    ctx.update(_request_keys(info, action, definition, account))
    requests = [Request(action, resources_of(action, info, account), ctx)]
    requests.extend(_dependent(info, action, principal, tags_by_type))
    return requests


def _listed(definition: ActionDef | None, key: str) -> bool:
    return definition is not None and definition.key_listed_anywhere(key)


def _request_keys(info: RequestInfo, action: str, definition: ActionDef | None, account: str) -> dict[str, Any]:
    """Action-specific request keys the reference lists for the action."""
    out: dict[str, Any] = {}
    if info.service == "ec2" and _listed(definition, "ec2:Region"):
        out["ec2:Region"] = info.region
    if action in ("iam:CreateRole", "iam:PutRolePermissionsBoundary"):
        boundary = info.get("PermissionsBoundary")
        if boundary:
            out["iam:PermissionsBoundary"] = str(boundary)
    elif action in ("iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
                    "iam:DeleteRolePermissionsBoundary") and _listed(definition, "iam:PermissionsBoundary"):
        try:
            boundary = _iam()[account][PARTITION].get_role(str(info.get("RoleName"))).permissions_boundary_arn
        except Exception:
            boundary = None
        if boundary:
            out["iam:PermissionsBoundary"] = boundary
    if action == "iam:CreateServiceLinkedRole" and info.get("AWSServiceName"):
        out["iam:AWSServiceName"] = str(info.get("AWSServiceName"))
    if action == "iam:AttachRolePolicy" and info.get("PolicyArn") and _listed(definition, "iam:PolicyARN"):
        out["iam:PolicyARN"] = str(info.get("PolicyArn"))
    if action == "cloudwatch:PutMetricAlarm" and _listed(definition, "cloudwatch:AlarmActions"):
        actions = _ids(info, "AlarmActions", "AlarmActions.member") + _ids(info, "OKActions", "OKActions.member") \
            + _ids(info, "InsufficientDataActions", "InsufficientDataActions.member")
        if actions:
            out["cloudwatch:AlarmActions"] = actions
    if action in ("autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"):
        out.update(_group_request_keys(info, definition))
    if action == "lambda:AddPermission" and info.get("Principal"):
        out["lambda:Principal"] = str(info.get("Principal"))
    return out


def _group_request_keys(info: RequestInfo, definition: ActionDef | None) -> dict[str, Any]:
    """Create/UpdateAutoScalingGroup's request keys that the group's settings give (Auto
    Scaling User Guide, "How Amazon EC2 Auto Scaling works with IAM", condition keys; Service
    Authorization Reference): autoscaling:VPCZoneIdentifiers, the subnet ids of
    ``VPCZoneIdentifier`` (multivalued: a policy names subnets with ``ForAllValues:`` or
    ``ForAnyValue:``); autoscaling:MinSize and autoscaling:MaxSize (numbers);
    autoscaling:LaunchTemplateVersionSpecified (whether ``LaunchTemplate`` names a version);
    autoscaling:LaunchConfigurationName. Each only when the request sets it: an update that
    leaves it out does not change it."""
    out: dict[str, Any] = {}
    subnets = info.get("VPCZoneIdentifier")
    if subnets and _listed(definition, "autoscaling:VPCZoneIdentifiers"):
        out["autoscaling:VPCZoneIdentifiers"] = [x.strip() for x in str(subnets).split(",") if x.strip()]
    for key, param in (("autoscaling:MinSize", "MinSize"), ("autoscaling:MaxSize", "MaxSize")):
        if info.get(param) is not None and _listed(definition, key):
            out[key] = str(info.get(param))
    if (info.get("LaunchTemplate.LaunchTemplateId") or info.get("LaunchTemplate.LaunchTemplateName")) \
            and _listed(definition, "autoscaling:LaunchTemplateVersionSpecified"):
        out["autoscaling:LaunchTemplateVersionSpecified"] = "true" if info.get("LaunchTemplate.Version") else "false"
    if info.get("LaunchConfigurationName") and _listed(definition, "autoscaling:LaunchConfigurationName"):
        out["autoscaling:LaunchConfigurationName"] = str(info.get("LaunchConfigurationName"))
    return out


def _dependent(info: RequestInfo, action: str, principal: AnyPrincipal,
               tags_by_type: dict[str, dict[str, str]]) -> list[Request]:
    account = principal.account
    region = info.region
    base = principal.context(region)
    out: list[Request] = []
    if info.service == "ec2":
        create_tags = action_def("ec2:CreateTags")
        for rtype, tags in tags_by_type.items():
            if not rtype or not tags:
                continue
            ctx = dict(base)
            ctx["ec2:CreateAction"] = info.operation
            ctx["ec2:Region"] = region
            ctx.update(_request_tag_keys(tags, create_tags))
            out.append(Request("ec2:CreateTags", [Resource(_placeholder_arn("ec2", rtype, region, account), {})], ctx,
                               note=f"tags set by {info.operation}'s TagSpecification"))
        if info.operation == "AttachVolume":
            out.extend(_ebs_key_grant(info, principal))
        if info.operation == "CreateVolume":
            out.extend(_ebs_key_use(info, principal))
    if info.service == "lambda" and info.operation in ("CreateFunction", "UpdateFunctionConfiguration") and info.get("Role"):
        role_arn = str(info.get("Role"))
        try:
            role = _iam()[account][PARTITION].get_role_by_arn(role_arn)
            role_tags = {t["Key"]: t.get("Value", "") for t in role.tags or []}
        except Exception:
            role_tags = {}
        ctx = dict(base)
        ctx["iam:PassedToService"] = "lambda.amazonaws.com"
        rctx = {f"aws:ResourceTag/{k}": v for k, v in role_tags.items()}
        rctx.update({f"iam:ResourceTag/{k}": v for k, v in role_tags.items()})
        out.append(Request("iam:PassRole", [Resource(role_arn, rctx)], ctx,
                           note=f"Lambda's {info.operation} passes the role"))
    if info.service == "autoscaling" and info.operation == "CreateAutoScalingGroup":
        slr = "AWSServiceRoleForAutoScaling"
        try:
            _iam()[account][PARTITION].get_role(slr)
            has_slr = True
        except Exception:
            has_slr = False
        if not has_slr:
            ctx = dict(base)
            ctx["iam:AWSServiceName"] = "autoscaling.amazonaws.com"
            arn = f"arn:{PARTITION}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/{slr}"
            out.append(Request("iam:CreateServiceLinkedRole", [Resource(arn, {})], ctx,
                               note="Auto Scaling creates its service-linked role on first use"))
        lt = info.get("LaunchTemplate.LaunchTemplateId")
        if lt:
            ctx = dict(base)
            ctx["ec2:Region"] = region
            resources = [Resource(_ec2_arn(region, account, "launch-template", str(lt)), {}),
                         Resource(_placeholder_arn("ec2", "instance", region, account), {})]
            out.append(Request("ec2:RunInstances", resources, ctx,
                               note="Auto Scaling checks that the caller may launch from the template"))
    return out


def _ebs_key_grant(info: RequestInfo, principal: AnyPrincipal) -> list[Request]:
    """kms:CreateGrant that EC2 makes, as the caller, to attach an encrypted volume."""
    vids = _ids(info, "VolumeId")
    if not vids:
        return []
    try:
        vol = _ec2(principal.account, info.region).get_volume(vids[0])
    except Exception:
        return []
    if not getattr(vol, "encrypted", False) or not getattr(vol, "kms_key_id", None):
        return []
    key = kms_key(principal.account, info.region, str(vol.kms_key_id))
    if key is None:
        arn = str(vol.kms_key_id)
        tags: dict[str, str] = {}
    else:
        arn, tags, aws_managed = key
        if aws_managed:
            return []
    ctx = principal.context(info.region)
    ctx.update({
        "kms:ViaService": f"ec2.{info.region}.amazonaws.com",
        "kms:CallerAccount": principal.account,
        "kms:GrantIsForAWSResource": "true",
        "aws:ViaAWSService": "true",
    })
    rctx = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    return [Request("kms:CreateGrant", [Resource(arn, rctx)], ctx,
                    note=f"EC2 creates a grant on {vids[0]}'s key to attach it")]


def _snapshot_key(snap: Any) -> str | None:
    """An encrypted snapshot's key: its own ``KmsKeyId``, which is its volume's (ec2ext keeps
    it; moto alone leaves it empty)."""
    key = getattr(snap, "kms_key_id", None) or getattr(getattr(snap, "volume", None), "kms_key_id", None)
    return str(key) if key else None


def _ebs_key_use(info: RequestInfo, principal: AnyPrincipal) -> list[Request]:
    """The uses of a customer managed key EBS makes, as the caller (``kms:ViaService`` EC2),
    while it creates an encrypted volume, after it has accepted the CreateVolume (``after_call``:
    a denial does not refuse the call, the volume is given up: iam_enforce, ec2ext):

    * an empty volume: ``kms:GenerateDataKeyWithoutPlaintext`` on the volume's key ("When the
      volume is created, Amazon EC2, acting on behalf of the customer, gets an encrypted data
      key from AWS KMS (GenerateDataKeyWithoutPlaintext)": KMS Developer Guide, "Amazon EC2
      example two"; kubernetes/kubernetes#62171 found it and ``kms:Decrypt`` enough to create
      one);
    * a volume from an encrypted snapshot: the data key is re-encrypted, ``kms:ReEncryptFrom``
      on the snapshot's key and ``kms:ReEncryptTo`` on the volume's (the same key when none is
      asked for). Users report that without ``kms:ReEncrypt*`` the volume "never finished
      creating" (velero-io/velero#2195, openshift/cluster-storage-operator#345); which of the
      two KMS checks is ours, from KMS's ReEncrypt, which needs both.

    The grant EC2 needs to attach the volume (``kms:CreateGrant``) is checked at AttachVolume
    (``_ebs_key_grant``), not here: kubernetes/kubernetes#62171 created volumes without it and
    could not attach them. The EBS User Guide ("Requirements for Amazon EBS encryption",
    permissions for users) lists kms:CreateGrant, kms:Decrypt, kms:DescribeKey,
    kms:GenerateDataKeyWithoutPlainText and kms:ReEncrypt without saying which call needs
    which. Not modelled: kms:DescribeKey, kms:Decrypt at creation, the encryption context
    (``aws:ebs:id``) keys, key policies. An AWS managed key (``alias/aws/...``) is not
    checked, as for the attach."""
    account, region = principal.account, info.region
    ec2 = _ec2(account, region)
    sid = info.get("SnapshotId")
    snap = ec2.snapshots.get(str(sid)) if sid else None
    snap_key = _snapshot_key(snap) if snap is not None and snap.encrypted else None
    if str(info.get("Encrypted", "")).lower() != "true" and snap_key is None:
        return []
    volume_key = _new_volume_key(info, ec2, snap)
    ctx = principal.context(region)
    ctx.update({
        "kms:ViaService": f"ec2.{region}.amazonaws.com",
        "kms:CallerAccount": account,
        "aws:ViaAWSService": "true",
    })

    def use(action: str, key_id: str | None, note: str) -> list[Request]:
        if not key_id:
            return []
        found = kms_key(account, region, key_id)
        if found is None:
            arn, tags = key_id, {}
        else:
            arn, tags, aws_managed = found
            if aws_managed:
                return []
        rctx = {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
        return [Request(action, [Resource(arn, rctx)], dict(ctx), note=note, after_call=True)]

    if snap_key is not None:
        return (use("kms:ReEncryptFrom", snap_key, f"EBS re-encrypts {sid}'s data key for the new volume")
                + use("kms:ReEncryptTo", volume_key, "EBS re-encrypts the data key under the new volume's key"))
    return use("kms:GenerateDataKeyWithoutPlaintext", volume_key, "EBS makes the new volume's data key")
