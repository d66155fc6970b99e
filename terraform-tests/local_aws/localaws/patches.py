"""All monkeypatches of moto, applied once, in one place.

The patches replace methods of moto's model and response classes (listed in
each module's ``install``). They depend on moto internals that have no
stability promise, which is why moto is pinned exactly in tools/install-tools;
``install`` refuses to run on another moto version unless
``LOCALAWS_ALLOW_MOTO_VERSION=1`` is set (then the test suite tells whether the
patches still hold).
"""

from __future__ import annotations

import importlib
import logging
import os

log = logging.getLogger("localaws")

MOTO_VERSION = "5.2.5"
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    import moto

    if moto.__version__ != MOTO_VERSION and os.environ.get("LOCALAWS_ALLOW_MOTO_VERSION") != "1":
        raise SystemExit(
            f"localaws patches moto {MOTO_VERSION} internals but moto {moto.__version__} is installed; "
            "run tools/install-tools (or set LOCALAWS_ALLOW_MOTO_VERSION=1 to try anyway)"
        )
    _import_moto_ec2_faster()
    from . import activities, ec2ext, eniext, event_invoke_config, events, instancelife, lambdaext, launches, lifecycle
    from . import alarms, logs_tags, zoneoutage
    from .world import current

    lifecycle.install(current)
    launches.install(current)  # wraps lifecycle's launch patch: checks come first
    activities.install(current)
    ec2ext.install(current)
    instancelife.install(current)
    eniext.install(current)  # after ec2ext and instancelife: wraps their patches
    zoneoutage.install(current)  # after eniext: its refusals come before the others' checks
    events.install(current)
    lambdaext.install(current)
    event_invoke_config.install(current)
    alarms.install(current)
    logs_tags.install(current)
    _installed = True
    log.debug("moto %s patched", moto.__version__)


def _import_moto_ec2_faster() -> None:
    """Import moto.ec2 with its three boto3 sessions sharing one endpoint loader.

    ``moto.ec2.models.availability_zones_and_regions`` calls
    ``boto3.Session().get_available_regions`` three times at import, each new
    session parsing botocore's endpoint data again (~0.2 s apiece). Routing
    the calls to one session for the duration of the import saves ~0.4 s of
    every server start; the answers are the same.
    """
    import boto3.session

    original = boto3.session.Session.get_available_regions
    shared = boto3.session.Session()

    def get_available_regions(self: object, *args: object, **kwargs: object) -> list[str]:
        return original(shared, *args, **kwargs)

    boto3.session.Session.get_available_regions = get_available_regions  # type: ignore[method-assign]
    try:
        importlib.import_module("moto.ec2.models")
    finally:
        boto3.session.Session.get_available_regions = original  # type: ignore[method-assign]
