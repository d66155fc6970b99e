"""Elastic network interfaces as AWS has them: attach, detach, in use, what a termination leaves.

A stack with a persistent network interface creates an ENI in its subnet, associates its
Elastic IP with the ENI, and has the attachment Lambda attach the ENI to each replacement
instance at device index 1. Moto attaches and detaches in one step, never refuses an ENI
that is attached elsewhere, and leaves every ENI attached to a terminated instance for
ever; code written against it alone would never meet the overlap AWS has (the old holder
still shutting down while the replacement's launch hook fires), the same overlap the EBS
volume has (``ec2ext``). This module adds what AWS does (EC2 User Guide, "Elastic network
interfaces": "You can attach a network interface in one subnet to an instance in another
subnet in the same VPC; however, both the network interface and the instance must reside
in the same Availability Zone"; "Attach a network interface"; "Detach a network interface").

* AttachNetworkInterface refuses, in this order: an unknown ENI
  (``InvalidNetworkInterfaceID.NotFound``, ``The networkInterface ID 'eni-..' does not
  exist``, moto's) or instance (``InvalidInstanceID.NotFound``, moto's); an ENI that is
  attached, attaching or detaching: ``InvalidNetworkInterface.InUse`` ``Interface:
  [eni-..] in use.`` (the code: EC2 API Reference, "Error codes": "The specified interface
  is currently in use and cannot be deleted or attached to another instance"; the text: what
  EC2 answers when an instance is given an ENI another holds, terraform-provider-aws#27513,
  pulumi-aws#2394); an instance in another Availability Zone than the ENI's subnet:
  ``InvalidParameterValue`` ``networkInterface and instance are in different availability
  zones`` (the rule: EC2 User Guide above; the text: the only report of it found, weakly
  sourced); a pending, shutting-down or terminated instance: ``IncorrectInstanceState``
  ``The pending instance 'i-..' is not in a valid state for this operation.`` (the code:
  "Error codes", IncorrectInstanceState; the text: EC2's wording for AssociateAddress with an
  ENI on a pending instance, terraform-provider-aws#19699, and with a pending instance,
  grunt-ec2#15; no AttachNetworkInterface report was found); a device index the instance
  already uses: ``InvalidParameterValue`` ``Instance 'i-..' already has an interface attached
  at device index '1'.`` (lstoll/k8s-vpcnet#71, EC2's answer quoted). Success: moto's
  ``eni-attach-..`` AttachmentId; the ENI is ``in-use`` with its attachment ``attaching``
  for ``ATTACH_SECONDS`` (scaled clock), then ``attached``; DescribeInstances lists it in
  the instance's NetworkInterfaces at its DeviceIndex. DeleteOnTermination is false
  (AttachNetworkInterface's default: API Reference, "NetworkInterfaceAttachment").
* DetachNetworkInterface (by AttachmentId, ``Force`` accepted): the ENI is ``in-use`` with
  its attachment ``detaching`` for 2 s (scaled, ``ec2ext.DETACH_SECONDS``), then
  ``available`` without an Attachment; meanwhile AttachNetworkInterface answers
  ``InvalidNetworkInterface.InUse`` and DeleteNetworkInterface ``InvalidParameterValue``; a
  repeated detach of the same attachment meanwhile is accepted and changes nothing. The
  primary interface (device index 0) cannot be detached (``OperationNotPermitted``, moto's
  ``The network interface at device index 0 and networkCard index 0 cannot be detached.``;
  moto only refused it for an instance with one interface).
* DeleteNetworkInterface of an ENI that is attached, attaching or detaching:
  ``InvalidParameterValue`` ``Network interface 'eni-..' is currently in use.`` (AWS answers
  this generic code, as the "Error codes" page warns: "If a network interface is in use, you
  may also receive the InvalidParameterValue error"; gruntwork-io/cloud-nuke#431 and
  cloud-nuke#1132 quote it). A deleted ENI gives its private IPv4 addresses back to its
  subnet; CreateNetworkInterface without an address takes the subnet's next free one (moto
  drew a random address that an instance launched later could also get).
* DeleteSecurityGroup of a group an ENI uses (instances' primary ENIs included):
  ``DependencyViolation`` ``resource sg-.. has a dependent object``; DeleteSubnet with an ENI
  in it: ``DependencyViolation`` ``The subnet 'subnet-..' has dependencies and cannot be
  deleted.`` (terraform-provider-aws#1671, hashicorp/terraform#11047, cloud-barista#460: the
  group of a just-terminated instance is refused until its interface is gone). Moto deleted
  both.
* DetachInternetGateway while an Elastic IP is associated with an interface in the VPC (an
  instance's included): ``DependencyViolation`` ``Network vpc-.. has some mapped public
  address(es). Please unmap those public address(es) before detaching the gateway.`` (EC2's
  answer, quoted in hashicorp/terraform#1303 and prabhatsharma/kubernetes-the-hard-way-aws#16,
  the latter while the instance holding the address was still terminating; moto detached and
  left a TODO for it). An instance's automatic public IP is not modelled (the stacks'
  launch templates ask for none).
* Termination (``instancelife``): every ENI stays attached while its instance is
  ``shutting-down``. At ``terminated`` the interfaces made by the launch are deleted
  (DeleteOnTermination true unless the launch said false; moto kept them all, attached to
  the terminated instance, for ever) with their Elastic IP associations; an interface
  attached with DeleteOnTermination false detaches (2 s ``detaching``, then ``available``),
  keeping its private IP, MAC address, security groups and its Elastic IP association
  ("Elastic IP addresses": an address associated with a network interface stays with it
  when the interface moves).
* AssociateAddress with NetworkInterfaceId (``AllowReassociation`` as moto has it) works
  while the ENI is available or attached; an ENI attached to a pending instance is refused:
  ``IncorrectInstanceState`` ``The pending-instance-creation instance to which 'eni-..' is
  attached is not in a valid state for this operation`` (terraform-provider-aws#19699,
  #6189). DescribeAddresses shows NetworkInterfaceId, NetworkInterfaceOwnerId,
  PrivateIpAddress and AssociationId, and InstanceId only while the ENI is attached (the
  holder's id; moto showed none for an ENI association); the ``instance-id`` filter follows.
  An address moved to another ENI leaves the first one without it (moto left the public IP
  on both).
* ``POST /_localaws/transient {"kind": "interface_detaching", "id": "eni-..", "polls": K}``:
  the next K DescribeNetworkInterfaces that include the ENI show it ``in-use`` with its
  attachment, or the last one it had, ``detaching``; AttachNetworkInterface and
  DeleteNetworkInterface refuse it meanwhile. Refused for an ENI never attached.

What is not modelled: the per-instance-type limit on interfaces; attaching to a stopped
instance (allowed, as AWS's warm attach); different VPCs (AWS refuses, the zone check
usually catches it); DescribeInstances of the old holder stops listing the interface when
its detach starts, not when it ends; ``Force`` changes nothing.

The attach and detach windows are virtual deadlines per ENI, read lazily by the patched
``NetworkInterface.status``/``.attachment`` properties (no timer; a clock-scale change applies
at once), as ``ec2ext`` does for volumes.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from .context import view
from .ec2ext import DETACH_SECONDS
from .faults import BadRequest

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.eni")

ATTACH_SECONDS = 2.0


class EniExtensions:
    def __init__(self, world: World) -> None:
        self.world = world
        # eni id -> virtual time at which its attachment is `attached`
        self.attaching: dict[str, float] = {}
        # eni id -> (attachment shown while detaching, virtual deadline)
        self.detaching: dict[str, tuple[Any, float]] = {}
        # eni id -> its last attachment (what a detaching transient shows)
        self.last_attachment: dict[str, Any] = {}

    def reset(self) -> None:
        self.attaching.clear()
        self.detaching.clear()
        self.last_attachment.clear()

    def start_attaching(self, eni_id: str) -> None:
        self.attaching[eni_id] = self.world.clock.now() + ATTACH_SECONDS
        self.detaching.pop(eni_id, None)

    def is_attaching(self, eni_id: str) -> bool:
        deadline = self.attaching.get(eni_id)
        if deadline is None:
            return False
        if self.world.clock.now() < deadline:
            return True
        self.attaching.pop(eni_id, None)
        return False

    def start_detaching(self, eni: Any, attachment: Any) -> None:
        shown = copy.copy(attachment)
        shown.status = "detaching"
        self.attaching.pop(eni.id, None)
        self.detaching[eni.id] = (shown, self.world.clock.now() + DETACH_SECONDS)
        self.last_attachment[eni.id] = shown
        log.info("network interface %s detaching from %s", eni.id, attachment.instance_id)

    def detaching_attachment(self, eni_id: str) -> Any | None:
        entry = self.detaching.get(eni_id)
        if entry is not None:
            if self.world.clock.now() < entry[1]:
                return entry[0]
            self.detaching.pop(eni_id, None)
        return None

    def in_detach_window(self, eni_id: str) -> bool:
        return (self.detaching_attachment(eni_id) is not None
                or self.world.transients.active("interface_detaching", eni_id))

    def holder_attachment(self, eni: Any) -> Any | None:
        """The attachment a detaching state shows: the current one, else the last one."""
        if eni.attachment_id:
            from moto.ec2.models.elastic_network_interfaces import Attachment

            return Attachment(eni)
        return self.last_attachment.get(eni.id)

    def check_detaching_transient(self, eni_id: str) -> None:
        """Refuses the interface_detaching transient for an ENI never attached (lock held)."""
        from moto.ec2.models import ec2_backends

        for account in ec2_backends.values():
            for backend in account.values():
                eni = backend.enis.get(eni_id)
                if eni is None:
                    continue
                if self.holder_attachment(eni) is None:
                    raise BadRequest(
                        f"network interface {eni_id} has never been attached: an interface with no attachment "
                        "cannot be detaching (use the transient on one attached to, or last attached to, an instance)"
                    )
                return
        raise BadRequest(f"no network interface {eni_id}")


def install(world_ref: Any) -> None:
    from moto.ec2.exceptions import EC2ClientError, LastEniDetachError
    from moto.ec2.models import elastic_ip_addresses as eips
    from moto.ec2.models import elastic_network_interfaces as enis
    from moto.ec2.models import instances as inst
    from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
    from moto.ec2.responses.internet_gateways import InternetGateways
    from moto.ec2.responses.security_groups import SecurityGroups
    from moto.ec2.responses.subnets import Subnets

    def ext() -> EniExtensions:
        return world_ref().enis

    def shown_detaching(eni: Any) -> Any | None:
        if eni.id in view.detaching_interfaces:
            shown = copy.copy(ext().holder_attachment(eni))
            shown.status = "detaching"
            return shown
        if eni.attachment_id:
            return None
        return ext().detaching_attachment(eni.id)

    # --- what DescribeNetworkInterfaces (and DescribeInstances) show ---------------------

    def get_status(self: Any) -> str:
        if shown_detaching(self) is not None:
            return "in-use"
        return self.__dict__.get("_localaws_status", "available")

    def set_status(self: Any, value: str) -> None:
        self.__dict__["_localaws_status"] = value

    def get_attachment(self: Any) -> Any:
        detaching = shown_detaching(self)
        if detaching is not None:
            return detaching
        if not self.attachment_id:
            return None
        attachment = enis.Attachment(self)
        if ext().is_attaching(self.id):
            attachment.status = "attaching"
        return attachment

    enis.NetworkInterface.status = property(get_status, set_status)
    enis.NetworkInterface.attachment = property(get_attachment)

    def get_group_set(self: Any) -> Any:
        # moto reports every attached interface with its instance's groups merged in. On
        # AWS an interface has its own groups: RunInstances' groups are the primary
        # interface's (moto keeps them on the instance), and an interface attached later
        # keeps the groups it was created or modified with (EC2 User Guide, "Elastic network
        # interfaces": "You can change the security groups of a network interface").
        if self.instance is not None and self.device_index == 0 and self.instance.security_groups:
            return set(self._group_set) | set(self.instance.security_groups)
        return self._group_set

    enis.NetworkInterface.group_set = property(get_group_set)

    orig_eni_filter = enis.NetworkInterface.get_filter_value

    def eni_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "status":
            return self.status
        if filter_name == "attachment.status":
            attachment = self.attachment
            return attachment.status if attachment is not None else None
        if filter_name == "attachment.device-index":
            attachment = self.attachment
            return str(attachment.device_index) if attachment is not None else None
        return orig_eni_filter(self, filter_name, method_name)

    enis.NetworkInterface.get_filter_value = eni_filter_value

    orig_all_enis = enis.NetworkInterfaceBackend.get_all_network_interfaces

    def get_all_network_interfaces(self: Any, eni_ids: list[str] | None = None, filters: Any = None) -> list[Any]:
        found = orig_all_enis(self, eni_ids, filters)
        if view.operation == "DescribeNetworkInterfaces":
            transients = world_ref().transients
            for eni in found:
                if eni.id in view.detaching_interfaces or ext().holder_attachment(eni) is None:
                    continue
                if transients.consume("interface_detaching", eni.id):
                    view.detaching_interfaces.add(eni.id)
        return found

    enis.NetworkInterfaceBackend.get_all_network_interfaces = get_all_network_interfaces

    # --- create: an address the subnet hands out ------------------------------------------

    orig_create = enis.NetworkInterfaceBackend.create_network_interface

    def create_network_interface(self: Any, subnet: Any, private_ip_address: Any, private_ip_addresses: Any = None,
                                 *args: Any, **kwargs: Any) -> Any:
        if isinstance(subnet, str):
            subnet = self.get_subnet(subnet)
        if not private_ip_address and not private_ip_addresses and subnet is not None:
            private_ip_address = subnet.get_available_subnet_ip(instance=None)
        elif isinstance(private_ip_address, str) and subnet is not None and private_ip_address not in subnet._subnet_ips:
            try:
                subnet.request_ip(private_ip_address, instance=None)
            except Exception:
                pass  # outside the CIDR: moto's own checks answer
        return orig_create(self, subnet, private_ip_address, private_ip_addresses, *args, **kwargs)

    enis.NetworkInterfaceBackend.create_network_interface = create_network_interface

    # --- attach -----------------------------------------------------------------------------

    def _zone(value: Any) -> str | None:
        return getattr(value, "name", value)

    def attach_network_interface(self: Any, eni_id: str, instance_id: str, device_index: Any) -> Any:
        eni = self.get_network_interface(eni_id)
        instance = self.get_instance(instance_id)
        if eni.attachment_id or ext().in_detach_window(eni_id):
            raise EC2ClientError("InvalidNetworkInterface.InUse", f"Interface: [{eni_id}] in use.")
        eni_zone = _zone(eni.subnet.availability_zone)
        inst_zone = _zone(instance.placement.zone) if getattr(instance, "placement", None) else None
        if eni_zone and inst_zone and eni_zone != inst_zone:
            raise EC2ClientError("InvalidParameterValue", "networkInterface and instance are in different availability zones")
        state = instance.state
        if state in ("pending", "shutting-down", "terminated"):
            raise EC2ClientError(
                "IncorrectInstanceState", f"The {state} instance '{instance_id}' is not in a valid state for this operation."
            )
        index = int(device_index)
        if index in instance.nics:
            raise EC2ClientError(
                "InvalidParameterValue", f"Instance '{instance_id}' already has an interface attached at device index '{index}'."
            )
        instance.attach_eni(eni, index)
        eni.delete_on_termination = False
        ext().start_attaching(eni.id)
        ext().last_attachment.pop(eni.id, None)
        log.info("network interface %s attaching to %s at device index %d", eni.id, instance_id, index)
        return enis.Attachment(eni)

    enis.NetworkInterfaceBackend.attach_network_interface = attach_network_interface

    # --- detach -----------------------------------------------------------------------------

    def release(instance: Any, eni: Any) -> None:
        """Detaches ``eni`` from ``instance`` now and shows it detaching for the window."""
        attachment = enis.Attachment(eni)
        if eni.device_index == 0:
            # Keep a terminated instance's nics[0]: moto's Instance reads its private IP there.
            eni.instance = None
            eni.attachment_id = None
            eni.attach_time = None
            eni.status = "available"
        else:
            instance.detach_eni(eni)
        for eip in instance.ec2_backend.addresses:
            if eip.eni is eni:
                eip.instance = None  # the address stays with the interface, not the instance
        ext().start_detaching(eni, attachment)

    def detach_network_interface(self: Any, attachment_id: str) -> None:
        for eni in self.enis.values():
            if eni.attachment_id == attachment_id:
                if eni.device_index == 0:
                    raise LastEniDetachError()
                release(eni.instance, eni)
                return
        for eni_id, (shown, _) in list(ext().detaching.items()):
            if shown.attachment_id == attachment_id and ext().detaching_attachment(eni_id) is not None:
                return  # already detaching: AWS accepts the repeat
        raise enis.InvalidNetworkAttachmentIdError(attachment_id)

    enis.NetworkInterfaceBackend.detach_network_interface = detach_network_interface

    orig_detach_response = ElasticNetworkInterfaces.detach_network_interface

    def detach_network_interface_response(self: Any) -> Any:
        if str(self._get_param("Force", False)).lower() == "true":
            log.info("DetachNetworkInterface %s with Force", self._get_param("AttachmentId"))
        return orig_detach_response(self)

    ElasticNetworkInterfaces.detach_network_interface = detach_network_interface_response

    # --- delete -----------------------------------------------------------------------------

    orig_delete_response = ElasticNetworkInterfaces.delete_network_interface

    def delete_network_interface_response(self: Any) -> Any:
        eni_id = self._get_param("NetworkInterfaceId")
        eni = self.ec2_backend.get_network_interface(eni_id)
        if eni.attachment_id or ext().in_detach_window(eni_id):
            raise EC2ClientError("InvalidParameterValue", f"Network interface '{eni_id}' is currently in use.")
        result = orig_delete_response(self)
        for address in eni.private_ip_addresses:
            eni.subnet.del_subnet_ip(address.get("PrivateIpAddress"))
        for eip in list(self.ec2_backend.addresses):
            if eip.eni is eni:  # AWS disassociates the address of a deleted interface
                self.ec2_backend.disassociate_address(address=eip.public_ip)
        ext().attaching.pop(eni_id, None)
        ext().detaching.pop(eni_id, None)
        ext().last_attachment.pop(eni_id, None)
        return result

    ElasticNetworkInterfaces.delete_network_interface = delete_network_interface_response

    # --- what depends on an interface -------------------------------------------------------

    orig_delete_group_response = SecurityGroups.delete_security_group

    def delete_security_group_response(self: Any) -> Any:
        name, group_id = self._get_param("GroupName"), self._get_param("GroupId")
        group = None
        if group_id:
            group = self.ec2_backend.get_security_group_from_id(group_id)
        elif name:
            group = self.ec2_backend.get_security_group_by_name_or_id(name)
        if group is not None:
            for eni in self.ec2_backend.enis.values():
                if any(g is group or getattr(g, "id", None) == group.id for g in eni._group_set):
                    raise EC2ClientError("DependencyViolation", f"resource {group.id} has a dependent object")
        return orig_delete_group_response(self)

    SecurityGroups.delete_security_group = delete_security_group_response

    orig_delete_subnet_response = Subnets.delete_subnet

    def delete_subnet_response(self: Any) -> Any:
        subnet_id = self._get_param("SubnetId")
        if any(eni.subnet is not None and eni.subnet.id == subnet_id for eni in self.ec2_backend.enis.values()):
            raise EC2ClientError("DependencyViolation", f"The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        return orig_delete_subnet_response(self)

    Subnets.delete_subnet = delete_subnet_response

    orig_detach_gateway_response = InternetGateways.detach_internet_gateway

    def detach_internet_gateway_response(self: Any) -> Any:
        vpc_id = self._get_param("VpcId")
        for eip in self.ec2_backend.addresses:
            eni = eip.eni
            subnet = getattr(eni, "subnet", None) if eni is not None else None
            if subnet is not None and subnet.vpc_id == vpc_id:
                raise EC2ClientError(
                    "DependencyViolation",
                    f"Network {vpc_id} has some mapped public address(es). "
                    "Please unmap those public address(es) before detaching the gateway.")
        return orig_detach_gateway_response(self)

    InternetGateways.detach_internet_gateway = detach_internet_gateway_response

    # --- launch and termination -------------------------------------------------------------

    orig_run = inst.InstanceBackend.run_instances

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        reservation = orig_run(self, *args, **kwargs)
        specs = {int(s.get("DeviceIndex", 0)): s for s in kwargs.get("nics") or [] if isinstance(s, dict)}
        for instance in reservation.instances:
            for index, eni in instance.nics.items():
                spec = specs.get(int(index), {})
                if spec.get("NetworkInterfaceId"):
                    continue  # an existing interface: its own setting (false unless given)
                eni.delete_on_termination = str(spec.get("DeleteOnTermination", True)).lower() != "false"
        return reservation

    inst.InstanceBackend.run_instances = run_instances

    orig_teardown = inst.Instance.teardown_defaults

    def teardown_defaults(self: Any) -> None:
        # Called by moto's terminate at `terminated`, after it deleted the DeleteOnTermination
        # interfaces: the surviving ones detach over the window.
        orig_teardown(self)
        for eni in list(self.nics.values()):
            if eni.id in self.ec2_backend.enis and eni.instance is self and eni.attachment_id:
                log.info("instance %s terminated: network interface %s detaches", self.id, eni.id)
                release(self, eni)

    inst.Instance.teardown_defaults = teardown_defaults

    # --- Elastic IPs on interfaces ----------------------------------------------------------

    def address_instance_id(self: Any) -> str | None:
        if self.instance is not None:
            return self.instance.id
        if self.eni is not None and self.eni.instance is not None:
            return self.eni.instance.id
        return None

    eips.ElasticAddress.instance_id = property(address_instance_id)

    orig_address_filter = eips.ElasticAddress.get_filter_value

    def address_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "instance-id":
            return self.instance_id
        return orig_address_filter(self, filter_name, method_name)

    eips.ElasticAddress.get_filter_value = address_filter_value

    orig_associate = eips.ElasticAddressBackend.associate_address

    def associate_address(self: Any, instance: Any = None, eni: Any = None, address: str | None = None,
                          allocation_id: str | None = None, reassociate: bool = False) -> Any:
        if eni is not None and eni.instance is not None and eni.instance.state == "pending":
            raise EC2ClientError(
                "IncorrectInstanceState",
                f"The pending-instance-creation instance to which '{eni.id}' is attached is not in a valid state "
                "for this operation",
            )
        before = None
        try:
            found = self.address_by_ip([address]) if address else self.address_by_allocation([allocation_id])
            before = found[0].eni
        except Exception:
            pass
        eip = orig_associate(self, instance, eni, address, allocation_id, reassociate)
        if before is not None and before is not eip.eni and before.public_ip == eip.public_ip:
            before.public_ip = None  # the address moved: the first interface no longer has it
        return eip

    eips.ElasticAddressBackend.associate_address = associate_address
