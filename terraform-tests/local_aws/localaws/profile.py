"""How hard the local AWS is: the timings and refusals AWS shows and tests must survive.

Two profiles, chosen with ``--profile`` and changed at run time with
``POST /_localaws/profile``:

* ``realistic`` (the default; the acceptance, crash, chaos and demo runs use it): every
  setting below at a value AWS users meet. All durations are AWS seconds on the scaled
  clock (``clock.py``).
* ``fast``: every setting at zero (``iam_evaluation`` off), state changes instant (the layer tests and the
  benchmarks that compare code paths, where AWS's waits would only add noise).

Each setting names the AWS behaviour it follows; the module that applies it cites the
documentation or error text. A setting can be changed alone (``{"shutdown_s": 300}`` is the
"hung guest": an instance that takes minutes to shut down).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Profile:
    name: str = "realistic"
    # An instance is `pending` this long after RunInstances before it is `running`
    # (EC2 User Guide, "Instance state changes": pending, typically seconds).
    pending_s: float = 8.0
    # A terminated instance is `shutting-down` this long before it is `terminated`; its
    # EBS volumes stay attached (`in-use`) until then (EC2 User Guide, "Terminate Amazon
    # EC2 instances": shutting-down can take minutes when the guest hangs).
    shutdown_s: float = 45.0
    # IAM is eventually consistent: for this long after CreateRole or PutRolePolicy the
    # role cannot be assumed by Lambda and its new permissions are not yet in force
    # (IAM User Guide, "Changes that I make are not always immediately visible").
    iam_propagation_s: float = 10.0
    # Auto Scaling's back-off between failed launch attempts: first delay, doubled up to
    # the cap (Auto Scaling User Guide, "Troubleshoot Amazon EC2 Auto Scaling").
    launch_retry_s: float = 10.0
    launch_retry_cap_s: float = 300.0
    # An EBS snapshot is `pending` this long after CreateSnapshot / CopySnapshot before it
    # is `completed` (EBS User Guide, "Create Amazon EBS snapshots": snapshots occur
    # asynchronously, the status is pending until the snapshot is complete, which can take
    # hours for a large first snapshot); no volume can be created from it meanwhile, and a
    # second CreateSnapshot of its volume within 15 AWS seconds is refused (ec2ext.py: with 0
    # nothing is pending, so that limit never applies).
    snapshot_s: float = 60.0
    # While an Availability Zone is out (zoneoutage.py, control API), its instances are
    # impaired this long before they are terminated and their groups replace them: EC2 runs
    # status checks every minute and Auto Scaling replaces an instance whose checks fail
    # (Auto Scaling User Guide, "Health checks for instances in an Auto Scaling group"); AWS
    # gives no figure, five minutes is our estimate.
    zone_outage_terminate_s: float = 300.0
    # A volume made by CreateVolume is `creating` this long before it is `available` (EC2 API
    # Reference, CreateVolume: the answer's State is `creating`; EBS User Guide, "Create an Amazon
    # EBS volume": the volume is ready for use once `available`); AttachVolume meanwhile answers
    # `IncorrectState` (ec2ext.py). AWS publishes no figure; users report seconds
    # (fog/fog#1758: "not ready to be attached for a few seconds after creation"): five is our
    # estimate.
    volume_create_s: float = 5.0
    # A scheduled rule's firing is delivered a random time in [0, this) after its scheduled
    # moment; the schedule itself stays on its rate (events.py). EventBridge User Guide,
    # "Creating an Amazon EventBridge rule that runs on a schedule": "the minimum precision
    # for a schedule is one minute. Your scheduled rule runs within that minute, but not on
    # the precise 0th second."
    schedule_jitter_s: float = 60.0
    # A Lambda function's calls are evaluated against its execution role's policies and
    # permissions boundary, and refused as AWS refuses them (iam_enforce.py; the evaluator,
    # iam_eval.py, says what that proves). Not a duration: true or false.
    iam_evaluation: bool = True

    @classmethod
    def named(cls, name: str) -> "Profile":
        if name == "realistic":
            return cls()
        if name == "fast":
            return cls(name="fast", pending_s=0.0, shutdown_s=0.0, iam_propagation_s=0.0,
                       launch_retry_s=0.0, launch_retry_cap_s=0.0, snapshot_s=0.0, zone_outage_terminate_s=0.0,
                       volume_create_s=0.0, schedule_jitter_s=0.0,
                       iam_evaluation=False)
        raise ValueError(f"unknown profile {name!r}: expected 'realistic' or 'fast'")

    def describe(self) -> dict[str, Any]:
        return asdict(self)


NAMES = ("realistic", "fast")
# Settings that are switches, not AWS seconds.
BOOLEAN_SETTINGS = frozenset({"iam_evaluation"})


class ProfileStore:
    """The current profile; read by the emulation at the moment each behaviour applies."""

    def __init__(self, name: str = "realistic") -> None:
        self._lock = threading.Lock()
        self._initial = name
        self._profile = Profile.named(name)

    @property
    def current(self) -> Profile:
        with self._lock:
            return self._profile

    def update(self, data: dict[str, Any]) -> dict[str, Any]:
        """``{"name": "fast"}`` switches profile; other keys override single settings."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        known = {f.name for f in fields(Profile)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown profile settings {unknown}: known are {sorted(known)}")
        with self._lock:
            base = Profile.named(str(data["name"])) if "name" in data else self._profile
            values = base.describe()
            for key, value in data.items():
                if key == "name":
                    continue
                if key in BOOLEAN_SETTINGS:
                    if not isinstance(value, bool):
                        raise ValueError(f"{key} must be true or false, got {value!r}")
                    values[key] = value
                    continue
                number = float(value)
                if not number >= 0 or number == float("inf"):
                    raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
                values[key] = number
            self._profile = Profile(**values)
            return self._profile.describe()

    def reset(self) -> None:
        with self._lock:
            self._profile = Profile.named(self._initial)
