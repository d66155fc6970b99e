"""EC2 behaviour that moto skips and the autoheal handler depends on.

* An instance's states (pending, shutting-down) and what its termination
  releases (Elastic IPs, private IPs, its volumes at ``terminated``) are
  ``instancelife``'s. An unassociated address has no ``InstanceId`` and
  ``NetworkInterfaceId`` (moto answers empty strings). AssociateAddress with
  a pending, shutting-down or terminated instance fails as on AWS
  (``InvalidInstanceID``, ``The terminated instance 'i-..' is not in a valid
  state for this operation.``); moto associated it.
* AttachVolume checks what AWS checks: the volume must be in the instance's
  Availability Zone (``InvalidVolume.ZoneMismatch``) and not in use
  (``VolumeInUse``, also while a previous detach is still in progress), and
  the instance must not be pending, shutting-down or terminated
  (``IncorrectState``, ``Instance 'i-..' is not 'running'.``).
* DetachVolume works with only ``VolumeId`` (moto answers HTTP 500), filling
  the instance and device from the attachment, and answers ``IncorrectState``
  for a volume that is not attached.
* Detaching takes time: after DetachVolume, or once the instance holding a
  volume that survives it is ``terminated`` (not while it is shutting down), the
  volume shows ``in-use`` with its attachment ``detaching`` for 2 s on the
  scaled clock, then ``available``. Meanwhile AttachVolume and DeleteVolume
  answer ``VolumeInUse``. Volumes deleted on termination (root volumes) go away
  when the instance is terminated.
* DescribeSnapshots honours ``OwnerIds`` (moto ignores it): ``self`` is the
  caller's account, ``amazon`` the snapshots whose owner alias is ``amazon``,
  anything else an account id. Moto seeds hundreds of snapshots owned by
  other accounts behind its default AMIs, so ``OwnerIds=self`` answered them
  all: a "newest snapshot of mine tagged X" lookup or a sweeper could pick one
  up. Without ``OwnerIds`` every snapshot in the account's region is listed,
  as moto has it (AWS lists all the caller may use, public ones included).
  The snapshot of a moto AMI has that AMI's owner alias (moto marks all its
  default AMIs ``amazon``), also for the ``owner-alias`` filter moto lacks.
* Snapshots take time (profile setting ``snapshot_s``; 0 in ``fast``, moto's instant
  ``completed``): CreateSnapshot, CreateSnapshots and CopySnapshot make a snapshot that is
  ``pending`` for ``snapshot_s`` on the scaled clock, then ``completed`` with Progress
  ``100%`` (EBS User Guide, "Create Amazon EBS snapshots": snapshots occur asynchronously
  and stay pending until complete). CreateSnapshot answers ``State: pending`` without
  ``Progress`` (botocore's CreateSnapshot example, from the API Reference);
  DescribeSnapshots shows Progress rising with the elapsed time (``0%`` .. ``99%``; its
  pending example shows ``87%``), also for the ``status`` filter. Meanwhile CreateVolume from
  it answers ``IncorrectState`` ``Snapshot 'snap-..' is not 'completed'.`` (EC2's answer
  quoted in tschellenbach/Snaptastic#17; velero-io/velero#1799 is the same refusal), and so
  does CopySnapshot of it (inferred: no report of EC2's answer found). DeleteSnapshot of a
  pending snapshot succeeds but "the snapshot must complete before the deletion takes
  effect" (EBS User Guide, "Delete an Amazon EBS snapshot"): it is listed, pending, until
  its time is up, then gone. Deleting the source volume meanwhile is allowed and the
  snapshot still completes ("Deleting a volume has no effect on the snapshots made from
  it", same page). Snapshots moto makes for AMIs are completed at once. While the zone of its
  volume is out a pending snapshot is held (``held_remaining``: it neither progresses nor
  completes) and resumes when the zone is back (``zoneoutage``).
* One snapshot of a volume at a time, for 15 seconds: CreateSnapshot (and CreateSnapshots,
  volume by volume) of a volume with a snapshot started by CreateSnapshot(s) less than
  ``SNAPSHOT_PER_VOLUME_INTERVAL_S`` = 15 AWS seconds ago (the scaled clock: 0.15 s real at
  scale 0.01) that is still ``pending`` answers HTTP 400
  ``SnapshotCreationPerVolumeRateExceeded`` ``The maximum per volume CreateSnapshot request
  rate has been exceeded. Use an increasing or variable sleep interval between requests.``,
  nothing created. The code and the figure: EC2 API Reference, "Error codes for the Amazon EC2
  API", client errors: "SnapshotCreationPerVolumeRateExceeded: The rate limit for creating
  concurrent snapshots of an EBS volume has been exceeded. Wait at least 15 seconds between
  concurrent volume snapshots." (the row as it is quoted; the search reached that page but not
  the row, whose second sentence projects handling the error quote with the page's address);
  AWS re:Post knowledge center, "ebs-snapshot-stuck", read: "It's a best practice to wait 15
  seconds between create-snapshot API requests for the same volume."
  The message is EC2's as quoted in kubernetes-sigs/aws-ebs-csi-driver#1608 (two CreateSnapshot
  calls of one volume in quick succession) and in N2WS's knowledge base. Reading "concurrent"
  as "the earlier one still pending" is ours: a snapshot that has completed (or ended in
  ``error``) does not count, and in ``fast`` (``snapshot_s`` 0, no snapshot is ever pending)
  the limit never applies. A deleted snapshot still pending counts ("The deleted snapshot
  progress will continue until it's 100% complete", same knowledge center page). Snapshots made
  by CopySnapshot do not count (they are not snapshots of a volume). A CreateSnapshots of an
  instance with one such volume is refused as a whole (inferred: AWS's answer to that not
  found). Not modelled: ``ConcurrentSnapshotLimitExceeded`` (five pending snapshots of a gp2,
  io1, io2 or magnetic volume, one of an st1 or sc1 one, same page).
* Volumes take time (profile setting ``volume_create_s``; 0 in ``fast``, moto's instant
  ``available``): a volume made by CreateVolume is ``creating`` for ``volume_create_s`` on the
  scaled clock (the CreateVolume answer too), then ``available`` (EC2 API Reference,
  CreateVolume, whose example answers ``creating``; EBS User Guide, "Create an Amazon EBS
  volume": usable once ``available``). Meanwhile AttachVolume answers ``IncorrectState``
  ``vol-.. is not 'available'.`` (EC2's answer quoted in jsmartin/raidformer#5 and
  kubernetes/kubernetes#15058). How long AWS takes is not published (fog/fog#1758: "not ready
  to be attached for a few seconds"): ours is an estimate. Volumes made by a launch (root
  volumes) are ``available`` at once. A volume whose KMS key EBS may not use on the caller's
  behalf (``iam_enforce``: the call's ``kms:`` authorizations denied) is accepted, shown
  ``creating``, and then gone (``InvalidVolume.NotFound``), with no error to the caller, as AWS
  does: CreateVolume answers ``creating`` and DescribeVolumes later ``InvalidVolume.NotFound``
  (aws/aws-cli#2604, kubernetes-sigs/aws-ebs-csi-driver#2685, velero-io/velero#2195,
  kubernetes/kubernetes#62171: EBS emits only a ``deleteVolume`` event). Not modelled: what
  DeleteVolume, CreateSnapshot or ModifyVolume of a ``creating`` volume answer (they work).
* Encryption keys (EBS User Guide, "Amazon EBS encryption examples", "Encryption outcomes"):
  a snapshot of an encrypted volume keeps the volume's ``KmsKeyId`` (moto left it empty; EC2
  API Reference, "Snapshot": "the KMS key that was used to protect the volume encryption key
  for the parent volume"); a volume created from an encrypted snapshot "that you own" is
  "Encrypted by same key" when no ``KmsKeyId`` is given, whether or not ``Encrypted`` is set
  (moto left it without a key, or put the account's default key), and by the given key
  otherwise ("Re-encrypt an encrypted volume"). ``KmsKeyId`` (a key id, key ARN, alias name or
  alias ARN) is recorded and answered as the key's ARN (EC2 API Reference, "Volume":
  ``KmsKeyId`` "The Amazon Resource Name (ARN) of the KMS key"; moto answered the form it was
  given); an id KMS does not know is kept as given (not modelled: AWS accepts the call and the
  volume never becomes available). A ``gp3`` volume without ``Throughput`` has 125 MiB/s (EBS
  User Guide, "General Purpose SSD volumes": gp3's baseline of 3,000 IOPS and 125 MiB/s; moto
  set the IOPS and left the throughput empty).
* Snapshots can fail (control API ``POST /_localaws/snapshot-failures``, see
  ``inject_snapshot_failure``): the next N snapshots made by CreateSnapshot(s) of the named
  volume (any volume without one) end in state ``error`` instead of ``completed`` when their
  pending time is up, with ``StateMessage`` ``SNAPSHOT_ERROR_MESSAGE`` (or the injection's
  ``message``) and the ``Progress`` they had reached (``99%``). With ``snapshot_s`` 0 the
  snapshot is in ``error`` at once (CreateSnapshot answers ``State: error``). DescribeSnapshots
  ``State`` is one of pending | completed | error | recoverable | recovering (EC2 API
  Reference, "Snapshot"); the EBS User Guide's EventBridge page ("EBS snapshot events") shows a
  failed ``createSnapshots`` with ``cause`` ``Snapshot snap-01234567 is in status error``.
  ``StateMessage`` is documented only for a failed copy of an encrypted snapshot ("this field
  displays error state details to help you diagnose why the error occurred", API Reference,
  "Snapshot"); no text EC2 puts there for a failed CreateSnapshot was found, so ours is an
  invention: do not parse it. A snapshot in ``error`` cannot be used: CreateVolume and
  CopySnapshot of it answer ``IncorrectState`` ``Snapshot 'snap-..' is not 'completed'.``, as
  for a pending one (inferred: EC2's text for a pending snapshot, quoted above; the re:Post page
  calls snapshots in ``error`` "incomplete"). DeleteSnapshot of it works. A pending snapshot
  deleted meanwhile goes away as before and uses up no injection. Not modelled: ``error`` for
  copies, ``recoverable``/``recovering`` (archive tier).
* A snapshot's ``StartTime`` is AWS time (``clock``; moto's is real UTC): its age, and a
  recovery point measured as "outage start minus the snapshot's StartTime", are AWS seconds
  like ``snapshot_s`` and every other duration here.
* The volume detaching transient (control API, the next K polls) is shown
  through the per-request view in ``context``. A volume can only be
  ``detaching`` from an instance, so the transient shows the volume's attachment, or the last one it had
  (the old, terminated instance still letting go of it), with that
  instance's id and device; the control API refuses it for a volume that has
  never been attached (``check_detaching_transient``).

Deliberate infidelities, for control cases only (``POST /_localaws/breaks``,
cleared by a reset): each makes this local AWS allow one thing AWS refuses, so a
test can prove that a checker of that invariant catches it when it happens.
``double_attach`` lets AttachVolume attach an in-use volume to a second
instance (both attachments are listed); ``volume_stays_on_terminated`` keeps a
surviving volume attached to its terminated instance; ``address_stays_on_terminated``
leaves an Elastic IP associated with its terminated instance (moto's own
behaviour). Nothing but a control test sets them.

The detach window is a virtual deadline per volume, read lazily by the
patched ``Volume.status``/``Volume.attachments`` properties, so no timer is
needed and a clock-scale change applies at once.
"""

from __future__ import annotations

import copy
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .context import view
from .faults import BadRequest

if TYPE_CHECKING:
    from .world import World

log = logging.getLogger("localaws.ec2")

DETACH_SECONDS = 2.0
# AWS seconds (scaled clock) that must pass between two CreateSnapshot calls of one volume
# while the earlier snapshot is pending (EC2 API Reference, "Error codes":
# SnapshotCreationPerVolumeRateExceeded, "Wait at least 15 seconds between concurrent volume
# snapshots").
SNAPSHOT_PER_VOLUME_INTERVAL_S = 15.0
SNAPSHOT_RATE_EXCEEDED = (
    "The maximum per volume CreateSnapshot request rate has been exceeded. "
    "Use an increasing or variable sleep interval between requests."
)
# StateMessage of a snapshot that ended in `error` by an injected failure: our text (AWS
# documents the field for failed copies only and gives no text for a failed CreateSnapshot).
SNAPSHOT_ERROR_MESSAGE = "The snapshot could not be completed because of an internal error."


@dataclass
class PendingSnapshot:
    """A snapshot still being taken: virtual start and deadline, a DeleteSnapshot waiting."""

    snapshot: Any
    start: float
    deadline: float
    delete_requested: bool = False
    timer: Any = None
    # Virtual seconds it still needs while its volume's zone is out (zoneoutage): held, not
    # progressing; None when it progresses.
    held_remaining: float | None = None
    # The volume a CreateSnapshot(s) took it of (None for a copy): the per-volume rate limit
    # and injected failures apply to these only. ``start`` moves when a held snapshot resumes;
    # ``started`` is when the call was made.
    volume_id: str | None = None
    started: float = 0.0


@dataclass
class CreatingVolume:
    """A volume made by CreateVolume that is still ``creating``: until ``deadline`` (virtual),
    or, when ``doomed`` (why EBS gives it up), until the timer removes it."""

    backend: Any
    deadline: float
    doomed: str | None = None
    timer: Any = None


GP3_BASELINE_THROUGHPUT = 125  # MiB/s (EBS User Guide, "General Purpose SSD volumes")


@dataclass
class InjectedSnapshotFailure:
    """``POST /_localaws/snapshot-failures``: the next ``remaining`` snapshots of ``volume``
    (every volume when None; every snapshot until cleared when ``remaining`` is None) end in
    ``error``."""

    id: str
    volume: str | None
    remaining: int | None
    message: str = SNAPSHOT_ERROR_MESSAGE
    fired: int = 0
    snapshots: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "volume": self.volume, "remaining": self.remaining, "message": self.message,
                "fired": self.fired, "snapshots": list(self.snapshots)}


def template_metadata_options(backend: Any, template_arg: dict[str, Any]) -> dict[str, Any] | None:
    """The ``MetadataOptions`` of the launch template version a launch names (its ``Version``,
    else the template's default), or None."""
    try:
        data = backend._get_template_from_args(template_arg).data
    except Exception:
        return None
    options = data.get("MetadataOptions")
    return dict(options) if isinstance(options, dict) and options else None


class Ec2Extensions:
    def __init__(self, world: World) -> None:
        self.world = world
        # volume id -> (attachment shown while detaching, virtual deadline)
        self.detaching: dict[str, tuple[Any, float]] = {}
        self.last_attachment: dict[str, Any] = {}
        # Deliberate infidelities in force (see the module documentation).
        self.breaks: set[str] = set()
        # volume id -> the earlier attachment a double_attach break keeps listed.
        self.extra_attachments: dict[str, Any] = {}
        # snapshot id -> the snapshot still pending (until its deadline).
        self.pending_snapshots: dict[str, PendingSnapshot] = {}
        # Injected snapshot failures (control API), tried in order.
        self.snapshot_failures: list[InjectedSnapshotFailure] = []
        self._failure_ids = itertools.count(1)
        # volume id -> the volume made by CreateVolume that is still creating.
        self.creating_volumes: dict[str, CreatingVolume] = {}

    BREAKS = frozenset({"double_attach", "volume_stays_on_terminated", "address_stays_on_terminated"})

    def reset(self) -> None:
        self.detaching.clear()
        self.last_attachment.clear()
        self.breaks.clear()
        self.extra_attachments.clear()
        for entry in self.pending_snapshots.values():
            if entry.timer is not None:
                entry.timer.cancel()
        self.pending_snapshots.clear()  # moto's snapshots are gone with the reset too
        self.snapshot_failures.clear()
        for creating in self.creating_volumes.values():
            if creating.timer is not None:
                creating.timer.cancel()
        self.creating_volumes.clear()

    def set_breaks(self, names: Any) -> list[str]:
        """Replaces the breaks in force (lock held); refuses unknown names."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadRequest('expected {"breaks": ["double_attach", ...]}')
        unknown = sorted(set(names) - self.BREAKS)
        if unknown:
            raise BadRequest(f"unknown breaks {unknown}; known: {sorted(self.BREAKS)}")
        self.breaks = set(names)
        log.warning("local AWS deliberately broken for a control case: %s", sorted(self.breaks))
        return sorted(self.breaks)

    def start_detaching(self, attachment: Any) -> None:
        shown = copy.copy(attachment)
        shown.status = "detaching"
        volume_id = attachment.volume.id
        self.detaching[volume_id] = (shown, self.world.clock.now() + DETACH_SECONDS)
        self.last_attachment[volume_id] = shown
        log.info("volume %s detaching from %s", volume_id, getattr(attachment.instance, "id", "?"))

    def detaching_attachment(self, volume_id: str) -> Any | None:
        """The attachment to show as 'detaching', or None if the volume is not detaching."""
        entry = self.detaching.get(volume_id)
        if entry is not None:
            if self.world.clock.now() < entry[1]:
                return entry[0]
            self.detaching.pop(volume_id, None)
        return None

    def holder_attachment(self, volume: Any) -> Any | None:
        """What the volume is (or was last) attached to: the attachment a detaching
        state shows. None for a volume that has never been attached."""
        return volume.attachment or self.last_attachment.get(volume.id)

    def check_detaching_transient(self, volume_id: str) -> None:
        """Refuses the volume_detaching transient for a volume with nothing to be
        detaching from (lock held)."""
        from moto.ec2.models import ec2_backends

        for account in ec2_backends.values():
            for backend in account.values():
                volume = backend.volumes.get(volume_id)
                if volume is None:
                    continue
                if self.holder_attachment(volume) is None:
                    raise BadRequest(
                        f"volume {volume_id} has never been attached: a volume with no attachment cannot be "
                        "detaching (use the transient on a volume attached to, or last attached to, an instance)"
                    )
                return
        raise BadRequest(f"no volume {volume_id}")

    # -- volumes being created ---------------------------------------------------------

    def start_volume(self, volume: Any, doomed: str | None) -> None:
        """``volume`` was just made by a client's CreateVolume: ``creating`` for
        ``volume_create_s``, then ``available``; when ``doomed`` (EBS may not use its KMS key on
        the caller's behalf), ``creating`` and then gone (lock held)."""
        seconds = self.world.profile.current.volume_create_s
        if seconds <= 0 and doomed is None:
            return
        now = self.world.clock.now()
        entry = CreatingVolume(volume.ec2_backend, now + max(0.0, seconds), doomed)
        generation = self.world.generation
        entry.timer = self.world.scheduler.call_at(
            entry.deadline, lambda: self._volume_done(volume.id, generation), name=f"volume {volume.id}")
        self.creating_volumes[volume.id] = entry
        if doomed:
            log.info("volume %s creating for %ss, then given up: %s", volume.id, seconds, doomed)
        else:
            log.info("volume %s creating for %ss", volume.id, seconds)

    def volume_creating(self, volume_id: str) -> bool:
        entry = self.creating_volumes.get(volume_id)
        return entry is not None and (entry.doomed is not None or self.world.clock.now() < entry.deadline)

    def _volume_done(self, volume_id: str, generation: int) -> None:
        with self.world.lock:
            if generation != self.world.generation:
                return
            entry = self.creating_volumes.pop(volume_id, None)
            if entry is None or entry.doomed is None:
                return
            # Gone as EBS removes a volume it could not create: no error to anyone, the id is
            # unknown from now on (InvalidVolume.NotFound).
            entry.backend.volumes.pop(volume_id, None)
            entry.backend.tags.pop(volume_id, None)
            log.info("volume %s is gone: %s", volume_id, entry.doomed)

    # -- snapshots ------------------------------------------------------------------

    def start_snapshot(self, snapshot: Any, volume_id: str | None = None) -> None:
        """``snapshot`` was just created by a client's call: pending for ``snapshot_s`` (lock
        held). ``volume_id``: the volume a CreateSnapshot(s) took it of (None for a copy)."""
        seconds = self.world.profile.current.snapshot_s
        if seconds <= 0:
            if volume_id is not None:
                self._fail_if_injected(snapshot, volume_id)  # no pending time: its end is now
            return
        now = self.world.clock.now()
        entry = PendingSnapshot(snapshot, now, now + seconds, volume_id=volume_id, started=now)
        generation = self.world.generation
        entry.timer = self.world.scheduler.call_at(
            entry.deadline, lambda: self._snapshot_done(snapshot.id, generation), name=f"snapshot {snapshot.id}")
        self.pending_snapshots[snapshot.id] = entry
        log.info("snapshot %s of %s pending for %ss", snapshot.id, getattr(snapshot.volume, "id", "?"), seconds)

    def refuse_rate_exceeded(self, volume_id: str) -> None:
        """CreateSnapshot of ``volume_id`` while a snapshot of it started less than 15 AWS
        seconds ago is still pending: ``SnapshotCreationPerVolumeRateExceeded`` (lock held)."""
        from moto.ec2.exceptions import EC2ClientError

        now = self.world.clock.now()
        for sid, entry in self.pending_snapshots.items():
            if (entry.volume_id == volume_id and now - entry.started < SNAPSHOT_PER_VOLUME_INTERVAL_S
                    and self.pending_snapshot(sid) is not None):
                log.info("CreateSnapshot of %s refused: %s started %.1fs ago is pending", volume_id, sid,
                         now - entry.started)
                raise EC2ClientError("SnapshotCreationPerVolumeRateExceeded", SNAPSHOT_RATE_EXCEEDED)

    # -- injected snapshot failures (control API) ----------------------------------

    def inject_snapshot_failure(self, spec: Any) -> dict[str, Any]:
        """``{"volume"?: "vol-..", "count"?: N, "message"?: "..."}`` (lock held)."""
        if not isinstance(spec, dict):
            raise BadRequest("expected a JSON object")
        unknown = sorted(set(spec) - {"volume", "count", "message"})
        if unknown:
            raise BadRequest(f"unknown keys {unknown}: expected volume, count, message")
        volume = spec.get("volume")
        if volume is not None and (not isinstance(volume, str) or not volume.startswith("vol-")):
            raise BadRequest("volume must be a volume id (vol-...); leave it out for every volume")
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
            raise BadRequest("count must be an integer >= 1 (leave it out for every snapshot until cleared)")
        message = spec.get("message", SNAPSHOT_ERROR_MESSAGE)
        if not isinstance(message, str) or not message:
            raise BadRequest("message must be a non-empty string")
        failure = InjectedSnapshotFailure(id=f"sf-{next(self._failure_ids)}", volume=volume, remaining=count,
                                          message=message)
        self.snapshot_failures.append(failure)
        log.info("snapshot failure injected: %s", failure.describe())
        return failure.describe()

    def list_snapshot_failures(self) -> list[dict[str, Any]]:
        return [f.describe() for f in self.snapshot_failures]

    def clear_snapshot_failures(self) -> None:
        self.snapshot_failures.clear()

    def _fail_if_injected(self, snapshot: Any, volume_id: str, progress: str = "99%") -> bool:
        """At the end of its pending time: if an injection names this snapshot's volume (or
        every volume), the snapshot ends in ``error`` and the injection is used up once."""
        for failure in self.snapshot_failures:
            if failure.volume not in (None, volume_id):
                continue
            if failure.remaining is not None:
                if failure.remaining <= 0:
                    continue
                failure.remaining -= 1
            failure.fired += 1
            failure.snapshots.append(snapshot.id)
            snapshot.status = "error"
            snapshot.__dict__["_localaws_state_message"] = failure.message
            snapshot.__dict__["_localaws_progress"] = progress
            log.info("snapshot %s of %s ended in error (injection %s)", snapshot.id, volume_id, failure.id)
            return True
        return False

    def pending_snapshot(self, snapshot_id: str) -> PendingSnapshot | None:
        """The entry of a snapshot that is still pending now, or None."""
        entry = self.pending_snapshots.get(snapshot_id)
        if entry is not None and (entry.held_remaining is not None or self.world.clock.now() < entry.deadline):
            return entry
        return None

    def resume_snapshot(self, snapshot_id: str, entry: PendingSnapshot) -> None:
        """A held snapshot (its zone was out) progresses again for the time it still needed,
        its progress going on from where it stopped (lock held)."""
        remaining = entry.held_remaining or 0.0
        span = entry.deadline - entry.start
        entry.held_remaining = None
        entry.deadline = self.world.clock.now() + remaining
        entry.start = entry.deadline - span
        generation = self.world.generation
        entry.timer = self.world.scheduler.call_at(
            entry.deadline, lambda: self._snapshot_done(snapshot_id, generation), name=f"snapshot {snapshot_id}")
        log.info("snapshot %s resumes: %ss to go", snapshot_id, remaining)

    def settle_snapshots(self) -> None:
        """Finish every snapshot whose time is up (lock held): a deletion requested while it
        was pending takes effect now. The timers do the same; this closes the gap before
        they run."""
        now = self.world.clock.now()
        for sid, entry in list(self.pending_snapshots.items()):
            if entry.held_remaining is None and now >= entry.deadline:
                self._finish_snapshot(sid, entry)

    def settle_snapshot(self, snapshot_id: str) -> None:
        """Finish this one snapshot if its time is up (lock held): how it ended (``completed``
        or an injected ``error``) shows from the moment its pending time ends."""
        entry = self.pending_snapshots.get(snapshot_id)
        if entry is not None and entry.held_remaining is None and self.world.clock.now() >= entry.deadline:
            self._finish_snapshot(snapshot_id, entry)

    def _finish_snapshot(self, snapshot_id: str, entry: PendingSnapshot) -> None:
        if self.pending_snapshots.get(snapshot_id) is not entry:
            return
        del self.pending_snapshots[snapshot_id]
        if entry.timer is not None:
            entry.timer.cancel()
        snap = entry.snapshot
        if entry.delete_requested:
            backend = snap.ec2_backend
            if backend.snapshots.get(snapshot_id) is snap:
                del backend.snapshots[snapshot_id]
            log.info("snapshot %s completed and its deletion took effect", snapshot_id)
        elif entry.volume_id is not None and self._fail_if_injected(snap, entry.volume_id):
            pass  # ended in `error` (logged there)
        else:
            log.info("snapshot %s completed", snapshot_id)

    def _snapshot_done(self, snapshot_id: str, generation: int) -> None:
        with self.world.lock:
            if generation != self.world.generation:
                return
            entry = self.pending_snapshots.get(snapshot_id)
            if entry is not None and entry.held_remaining is None and self.world.clock.now() >= entry.deadline:
                self._finish_snapshot(snapshot_id, entry)

    def in_detach_window(self, volume_id: str) -> bool:
        return (
            self.detaching_attachment(volume_id) is not None
            or self.world.transients.active("volume_detaching", volume_id)
        )


def install(world_ref: Any) -> None:
    from moto.ec2.exceptions import EC2ClientError, VolumeInUseError
    from moto.ec2.models import elastic_block_store as ebs
    from moto.ec2.models import instances as inst

    def ext() -> Ec2Extensions:
        return world_ref().ec2

    # --- launch templates ---------------------------------------------------

    # CreateLaunchTemplateVersion stores UserData as the raw request string, while every
    # reader (moto's own Auto Scaling launch path included) asserts the Base64EncodedString
    # that CreateLaunchTemplate stores: a group launching from a second version crashed with
    # HTTP 500 and left the instance it was replacing detached but running. Parse it the way
    # CreateLaunchTemplate does.
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data

    orig_create_version = LaunchTemplates.create_launch_template_version

    def create_launch_template_version(self: Any) -> Any:
        raw = self._get_param("LaunchTemplateData.UserData")
        if raw is not None:
            orig_get_param = self._get_param

            def get_param(name: str, default: Any = None) -> Any:
                value = orig_get_param(name, default)
                if name == "LaunchTemplateData" and isinstance(value, dict):
                    value["UserData"] = parse_user_data(raw)
                return value

            self._get_param = get_param
        return orig_create_version(self)

    LaunchTemplates.create_launch_template_version = create_launch_template_version

    # An instance launched from a launch template gets the template's MetadataOptions (EC2 API
    # Reference, RequestLaunchTemplateData: "MetadataOptions: The metadata options for the
    # instance"), InstanceMetadataTags among them (the heal's mount script reads the instance's
    # tags from the metadata service); moto gave every such instance its defaults (tokens
    # optional, tags disabled). Options in the request itself win. A group's launch names no
    # version here: ``launches`` applies the version the group names.
    orig_run_instances = inst.InstanceBackend.run_instances

    def run_instances(self: Any, image_id: str, count: int, user_data: Any, security_group_names: Any,
                      **kwargs: Any) -> Any:
        template = kwargs.get("launch_template")
        if template and not kwargs.get("metadata_options"):
            options = template_metadata_options(self, template)
            if options:
                kwargs["metadata_options"] = options
        return orig_run_instances(self, image_id, count, user_data, security_group_names, **kwargs)

    inst.InstanceBackend.run_instances = run_instances

    # A launch template that maps the AMI's root device without a snapshot or a size (say, only
    # to make it encrypted and deleted on termination) changes the AMI's root volume: AWS
    # creates it from the AMI's root snapshot at the AMI's size ("For the root volume, you can
    # only modify the following: volume size, volume type, and the Delete on Termination flag";
    # encryption is set at launch: EC2 User Guide, "Block device mappings" and "Encryption by
    # default"). moto created a volume with neither and answered MissingParameter
    # "size/snapshot", so no group could launch from such a template; and it attached the
    # mapping beside the 8 GiB root it always adds, as a second root volume.
    orig_add_block_device = inst.Instance.add_block_device

    def add_block_device(
        self: Any,
        size: Any,
        device_path: str,
        snapshot_id: Any,
        encrypted: bool,
        delete_on_termination: bool,
        kms_key_id: Any,
        volume_type: Any,
    ) -> None:
        ami = self.ec2_backend.amis.get(self.image_id)
        if ami is not None and device_path == ami.root_device_name:
            if snapshot_id is None and size is None:
                snapshot_id = ami.ebs_snapshot.id
            # The default root moto added at launch (always at /dev/sda1) is the volume
            # this mapping describes: replaced, not doubled.
            for path in sorted({device_path, "/dev/sda1"}):
                block = self.block_device_mapping.get(path)
                if block is not None:
                    orig_detach(self.ec2_backend, block.volume_id, self.id, path)
                    orig_delete(self.ec2_backend, block.volume_id)
        orig_add_block_device(
            self,
            size,
            device_path,
            snapshot_id,
            encrypted,
            delete_on_termination,
            kms_key_id,
            volume_type=volume_type,
        )

    inst.Instance.add_block_device = add_block_device

    # --- volumes ------------------------------------------------------------

    def status(self: Any) -> str:
        if ext().volume_creating(self.id):
            return "creating"
        if self.attachment is not None:
            return "in-use"
        if self.id in view.detaching_volumes or ext().detaching_attachment(self.id) is not None:
            return "in-use"
        return "available"

    def attachments(self: Any) -> list[Any]:
        if self.id in view.detaching_volumes:
            # describe_volumes only puts volumes with a holder in the view.
            shown = copy.copy(ext().holder_attachment(self))
            shown.status = "detaching"
            return [shown]
        if self.attachment is not None:
            extra = ext().extra_attachments.get(self.id)
            return [extra, self.attachment] if extra is not None else [self.attachment]
        shown = ext().detaching_attachment(self.id)
        return [shown] if shown is not None else []

    ebs.Volume.status = property(status)
    ebs.Volume.attachments = property(attachments)

    orig_describe_volumes = ebs.EBSBackend.describe_volumes

    def describe_volumes(self: Any, volume_ids: list[str] | None = None, filters: Any = None) -> list[Any]:
        volumes = orig_describe_volumes(self, volume_ids, filters)
        if view.operation == "DescribeVolumes":
            transients = world_ref().transients
            for volume in volumes:
                if volume.id in view.detaching_volumes or ext().holder_attachment(volume) is None:
                    continue  # nothing to be detaching from (the control API refuses those)
                if transients.consume("volume_detaching", volume.id):
                    view.detaching_volumes.add(volume.id)
        return volumes

    ebs.EBSBackend.describe_volumes = describe_volumes

    def _zone_name(zone: Any) -> str | None:
        return getattr(zone, "name", zone)

    orig_attach = ebs.EBSBackend.attach_volume

    def attach_volume(self: Any, volume_id: str, instance_id: str, device_path: str, delete_on_termination: bool = False) -> Any:
        volume = self.get_volume(volume_id)
        instance = self.get_instance(instance_id)
        if "double_attach" in ext().breaks and volume.attachment is not None:
            # Deliberately wrong (a control case): keep the first attachment listed too.
            ext().extra_attachments[volume_id] = volume.attachment
            volume.attachment = None
        elif volume.attachment is not None or ext().in_detach_window(volume_id):
            raise EC2ClientError("VolumeInUse", f"{volume_id} is already attached to an instance")
        if ext().volume_creating(volume_id):
            # EC2's answer for a volume still being created (see the module documentation).
            raise EC2ClientError("IncorrectState", f"{volume_id} is not 'available'.")
        vol_zone = _zone_name(volume.zone)
        inst_zone = _zone_name(instance.placement.zone)
        if vol_zone and inst_zone and vol_zone != inst_zone:
            raise EC2ClientError(
                "InvalidVolume.ZoneMismatch",
                f"The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'",
            )
        if instance.state in ("pending", "terminated", "shutting-down"):
            # AWS: "IncorrectState: Instance 'i-..' is not 'running'." (also while pending).
            raise EC2ClientError("IncorrectState", f"Instance '{instance_id}' is not 'running'.")
        return orig_attach(self, volume_id, instance_id, device_path, delete_on_termination)

    ebs.EBSBackend.attach_volume = attach_volume

    orig_detach = ebs.EBSBackend.detach_volume

    def detach_volume(self: Any, volume_id: str, instance_id: str | None, device_path: str | None) -> Any:
        volume = self.get_volume(volume_id)
        attachment = volume.attachment
        if attachment is None:
            state = "detaching" if ext().in_detach_window(volume_id) else "available"
            raise EC2ClientError("IncorrectState", f"Volume '{volume_id}' is in the '{state}' state.")
        result = orig_detach(self, volume_id, instance_id or attachment.instance.id, device_path or attachment.device)
        ext().start_detaching(result)
        return result

    ebs.EBSBackend.detach_volume = detach_volume

    orig_delete = ebs.EBSBackend.delete_volume

    def delete_volume(self: Any, volume_id: str) -> Any:
        if volume_id in self.volumes and ext().in_detach_window(volume_id):
            shown = ext().holder_attachment(self.volumes[volume_id])
            holder = getattr(getattr(shown, "instance", None), "id", "an instance")
            raise VolumeInUseError(volume_id, holder)
        result = orig_delete(self, volume_id)
        ext().detaching.pop(volume_id, None)
        ext().last_attachment.pop(volume_id, None)
        return result

    ebs.EBSBackend.delete_volume = delete_volume

    # --- snapshots ----------------------------------------------------------

    from moto.core.responses import ActionResult
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    def owner_alias(snapshot: Any) -> str | None:
        image = snapshot.ec2_backend.amis.get(snapshot.from_ami) if snapshot.from_ami else None
        return getattr(image, "owner_alias", None)

    orig_snapshot_filter_value = ebs.Snapshot.get_filter_value

    def snapshot_filter_value(self: Any, filter_name: str, method_name: str | None = None) -> Any:
        if filter_name == "owner-alias":
            return owner_alias(self)
        return orig_snapshot_filter_value(self, filter_name, method_name)

    ebs.Snapshot.get_filter_value = snapshot_filter_value

    def describe_snapshots_response(self: Any) -> Any:
        # moto's, plus OwnerIds.
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []), filters=self._filters_from_querystring()
        )
        owners = self._get_param("OwnerIds", [])
        if owners:
            wanted = {self.ec2_backend.account_id if owner == "self" else owner for owner in owners}
            snapshots = [s for s in snapshots if s.owner_id in wanted or owner_alias(s) in wanted]
        return ActionResult({"Snapshots": snapshots})

    ElasticBlockStore.describe_snapshots = describe_snapshots_response

    # StartTime in AWS time (naive UTC, as moto keeps it), for every snapshot made.
    orig_snapshot_init = ebs.Snapshot.__init__

    def snapshot_init(self: Any, *args: Any, **kwargs: Any) -> None:
        orig_snapshot_init(self, *args, **kwargs)
        self.start_time = world_ref().clock.aws_utc().replace(tzinfo=None)

    ebs.Snapshot.__init__ = snapshot_init

    # Snapshots take time (see the module documentation).

    def snapshot_status(self: Any) -> str:
        if ext().pending_snapshot(self.id) is not None:
            return "pending"
        ext().settle_snapshot(self.id)  # its time is up: completed or, injected, error
        return self.__dict__.get("_localaws_status", "completed")

    def set_snapshot_status(self: Any, value: str) -> None:
        self.__dict__["_localaws_status"] = value

    def snapshot_progress(self: Any) -> str | None:
        entry = ext().pending_snapshot(self.id)
        if entry is None:
            # Where an injected failure stopped it, else done.
            return self.__dict__.get("_localaws_progress", "100%")
        if view.operation == "CreateSnapshot":
            return None  # EC2's CreateSnapshot answer has State pending and no Progress
        span = entry.deadline - entry.start
        now = world_ref().clock.now() if entry.held_remaining is None else entry.deadline - entry.held_remaining
        done = (now - entry.start) / span if span > 0 else 1.0
        return f"{max(0, min(99, int(done * 100)))}%"

    def snapshot_state_message(self: Any) -> str | None:
        # Only a snapshot in `error` has one (DescribeSnapshots leaves it out otherwise).
        if self.status != "error":
            return None
        return self.__dict__.get("_localaws_state_message")

    ebs.Snapshot.status = property(snapshot_status, set_snapshot_status)
    ebs.Snapshot.progress = property(snapshot_progress)
    ebs.Snapshot.state_message = property(snapshot_state_message)

    orig_create_snapshot = ebs.EBSBackend.create_snapshot

    def create_snapshot(self: Any, volume_id: str, description: str, owner_id: str | None = None,
                        from_ami: str | None = None) -> Any:
        # Only a client's CreateSnapshot(s) waits (and is rate limited): moto's own AMI
        # snapshots are there at once.
        client_call = from_ami is None and view.operation in ("CreateSnapshot", "CreateSnapshots")
        if client_call and volume_id in self.volumes:
            ext().refuse_rate_exceeded(volume_id)
        snapshot = orig_create_snapshot(self, volume_id, description, owner_id=owner_id, from_ami=from_ami)
        volume = self.volumes.get(volume_id)
        if snapshot.encrypted and not snapshot.kms_key_id and volume is not None:
            snapshot.kms_key_id = volume.kms_key_id  # the parent volume's key (EC2 API Reference, "Snapshot")
        if client_call:
            ext().start_snapshot(snapshot, volume_id)
        return snapshot

    ebs.EBSBackend.create_snapshot = create_snapshot

    orig_create_snapshots = ebs.EBSBackend.create_snapshots

    def create_snapshots(self: Any, instance_spec: dict[str, Any], description: str, tags: dict[str, str]) -> Any:
        # Refused as a whole when one of the instance's volumes is rate limited (moto makes
        # the snapshots one by one: the first ones would stay behind a refusal).
        instance = self.get_instance(instance_spec["InstanceId"])
        exclude_boot = str(instance_spec.get("ExcludeBootVolume", False)).lower() == "true"
        for device, mapping in instance.get_block_device_mapping:
            if not (exclude_boot and device == instance.root_device_name):
                ext().refuse_rate_exceeded(mapping.volume_id)
        return orig_create_snapshots(self, instance_spec, description, tags)

    ebs.EBSBackend.create_snapshots = create_snapshots

    def refuse_pending_snapshot(backend: Any, snapshot_id: str | None) -> None:
        """A snapshot (of ``backend``'s region) that is pending, or ended in ``error``, cannot
        be used."""
        if not snapshot_id:
            return
        snap = backend.snapshots.get(snapshot_id)
        if ext().pending_snapshot(snapshot_id) is not None or (snap is not None and snap.status == "error"):
            raise EC2ClientError("IncorrectState", f"Snapshot '{snapshot_id}' is not 'completed'.")

    orig_copy_snapshot = ebs.EBSBackend.copy_snapshot

    def copy_snapshot(self: Any, source_snapshot_id: str, source_region: str, description: str,
                      kms_key_id: str | None) -> Any:
        from moto.ec2.models import ec2_backends

        ext().settle_snapshots()
        try:
            source = ec2_backends[self.account_id][source_region] if source_region else self
        except KeyError:
            source = self  # moto refuses the unknown region itself
        refuse_pending_snapshot(source, source_snapshot_id)
        snapshot = orig_copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id)
        ext().start_snapshot(snapshot)
        return snapshot

    ebs.EBSBackend.copy_snapshot = copy_snapshot

    orig_create_volume = ebs.EBSBackend.create_volume

    volume_params = ("size", "zone_name", "snapshot_id", "encrypted", "kms_key_id", "volume_type", "iops",
                     "throughput", "multi_attach_enabled")

    def key_arn(backend: Any, key_id: str) -> str:
        """The ARN of the key ``key_id`` names (id, ARN, alias, alias ARN); as given if KMS
        does not know it."""
        from moto.kms import kms_backends

        try:
            kms = kms_backends[backend.account_id][backend.region_name]
            return kms.keys[kms.any_id_to_key_id(key_id)].arn
        except Exception:
            return key_id

    def create_volume(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.update(zip(volume_params, args))  # moto's own callers pass some positionally
        ext().settle_snapshots()
        snapshot_id = kwargs.get("snapshot_id")
        refuse_pending_snapshot(self, snapshot_id)
        snap = self.snapshots.get(snapshot_id) if snapshot_id else None
        if snap is not None and snap.encrypted and not kwargs.get("kms_key_id") and snap.kms_key_id:
            # "Encrypted by same key" (EBS User Guide, "Encryption outcomes"), Encrypted or not.
            kwargs["kms_key_id"] = snap.kms_key_id
            kwargs["encrypted"] = True
        if kwargs.get("kms_key_id"):
            kwargs["kms_key_id"] = key_arn(self, str(kwargs["kms_key_id"]))
        if kwargs.get("volume_type") == "gp3" and not kwargs.get("throughput"):
            kwargs["throughput"] = GP3_BASELINE_THROUGHPUT
        volume = orig_create_volume(self, **kwargs)
        if view.operation == "CreateVolume":
            ext().start_volume(volume, view.deferred_denial)
        return volume

    ebs.EBSBackend.create_volume = create_volume

    orig_delete_snapshot = ebs.EBSBackend.delete_snapshot

    def delete_snapshot(self: Any, snapshot_id: str) -> Any:
        ext().settle_snapshots()
        entry = ext().pending_snapshot(snapshot_id)
        if entry is not None and self.snapshots.get(snapshot_id) is entry.snapshot:
            # Accepted; "the snapshot must complete before the deletion takes effect".
            entry.delete_requested = True
            log.info("snapshot %s: deletion requested while pending", snapshot_id)
            return entry.snapshot
        return orig_delete_snapshot(self, snapshot_id)

    ebs.EBSBackend.delete_snapshot = delete_snapshot

    orig_backend_describe_snapshots = ebs.EBSBackend.describe_snapshots

    def describe_snapshots(self: Any, snapshot_ids: list[str] | None = None, filters: Any = None) -> list[Any]:
        ext().settle_snapshots()
        return orig_backend_describe_snapshots(self, snapshot_ids, filters)

    ebs.EBSBackend.describe_snapshots = describe_snapshots

    # --- a terminated instance's volumes (the instance states are instancelife's) ---

    def teardown_defaults(self: Any) -> None:
        # Same as moto's, except that surviving volumes detach over time. Called when the
        # instance reaches `terminated` (after its shutting-down time, see instancelife).
        for device_path in list(self.block_device_mapping.keys()):
            block = self.block_device_mapping[device_path]
            volume_id = block.volume_id
            if block.delete_on_termination:
                orig_detach(self.ec2_backend, volume_id, self.id, device_path)
                orig_delete(self.ec2_backend, volume_id)
            elif "volume_stays_on_terminated" in ext().breaks:
                # Deliberately wrong (a control case): the volume stays attached.
                log.warning("break: volume %s stays attached to terminated %s", volume_id, self.id)
            else:
                detach_volume(self.ec2_backend, volume_id, self.id, device_path)

    inst.Instance.teardown_defaults = teardown_defaults

    # An unassociated address has no InstanceId/NetworkInterfaceId on AWS;
    # moto answers empty strings, which an SDK reads as "associated with ''".
    from moto.ec2.models import elastic_ip_addresses as eips

    eips.ElasticAddress.instance_id = property(lambda self: self.instance.id if self.instance else None)

    # AWS refuses to associate an address with an instance that is going away (the error
    # Terraform users meet as "InvalidInstanceID: The terminated instance 'i-..' is not in a
    # valid state for this operation."), or that is not running yet ("The pending instance
    # 'i-..' is not in a valid state for this operation."); moto associated it, and a late
    # AssociateAddress (AllowReassociation) could then pull the address off the live
    # replacement onto a terminated instance, which no AWS call can do.
    orig_associate = eips.ElasticAddressBackend.associate_address

    def associate_address(self: Any, instance: Any = None, *args: Any, **kwargs: Any) -> Any:
        if instance is not None and instance.state in ("pending", "terminated", "shutting-down"):
            raise EC2ClientError(
                "InvalidInstanceID",
                f"The {instance.state} instance '{instance.id}' is not in a valid state for this operation.",
            )
        return orig_associate(self, instance, *args, **kwargs)

    eips.ElasticAddressBackend.associate_address = associate_address
    eips.ElasticAddress.network_interface_id = property(lambda self: self.eni.id if self.eni else None)
