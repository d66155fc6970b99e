"""EBS snapshots take time (localaws/ec2ext.py, profile setting ``snapshot_s``), at most one
is started per volume every 15 AWS seconds while the earlier is pending
(``SnapshotCreationPerVolumeRateExceeded``), and injected failures end them in ``error``
(``POST /_localaws/snapshot-failures``).

At clock scale 0.01 a ``snapshot_s`` of 300 AWS seconds is 3 s real: long enough to look at
the pending snapshot, short enough to wait for it.
"""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import AMI, REGION, wait_for

SNAPSHOT_S = 300


@pytest.fixture
def slow(server):
    server.reset()
    server.ctl("POST", "/profile", {"snapshot_s": SNAPSHOT_S})
    yield server


def volume(server) -> str:
    return server.client("ec2").create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]


def shown(server, snap: str) -> dict:
    found = [s for s in server.client("ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
             if s["SnapshotId"] == snap]
    return found[0] if found else {}


def completed(server, snap: str) -> dict:
    return wait_for(lambda: (s := shown(server, snap)).get("State") == "completed" and s,
                    timeout=SNAPSHOT_S * 0.01 + 10, what=f"{snap} completed")


def refused(call, code: str, message: str | None = None) -> None:
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == code, err.value.response
    if message is not None:
        assert err.value.response["Error"]["Message"] == message


def test_profiles_set_the_snapshot_time(server):
    server.reset()
    assert server.ctl("POST", "/profile", {"name": "realistic"})["snapshot_s"] == 60
    assert server.ctl("POST", "/profile", {"name": "fast"})["snapshot_s"] == 0


def test_a_snapshot_is_pending_with_progress_then_completed(slow):
    ec2 = slow.client("ec2")
    vol = volume(slow)
    answer = ec2.create_snapshot(VolumeId=vol, Description="d")
    snap = answer["SnapshotId"]
    # EC2's CreateSnapshot answer: State pending, no Progress (botocore's example).
    assert answer["State"] == "pending" and "Progress" not in answer and answer["VolumeId"] == vol
    first = shown(slow, snap)
    assert first["State"] == "pending" and re.fullmatch(r"\d\d?%", first["Progress"]), first
    pending = ec2.describe_snapshots(Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in pending] == [snap]
    assert ec2.describe_snapshots(Filters=[{"Name": "status", "Values": ["completed"]},
                                           {"Name": "snapshot-id", "Values": [snap]}])["Snapshots"] == []
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap),
            "IncorrectState", f"Snapshot '{snap}' is not 'completed'.")
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [vol]  # nothing created
    time.sleep(SNAPSHOT_S * 0.01 * 0.4)
    later = shown(slow, snap)
    if later["State"] == "pending":  # a slow machine may already be past the end
        assert int(later["Progress"][:-1]) > int(first["Progress"][:-1]), (first, later)
    done = completed(slow, snap)
    assert done["Progress"] == "100%"
    restored = ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap)
    assert restored["SnapshotId"] == snap and restored["Size"] == 1


def test_a_pending_snapshot_deleted_goes_when_it_completes(slow):
    ec2 = slow.client("ec2")
    snap = ec2.create_snapshot(VolumeId=volume(slow))["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=snap)  # accepted while pending
    assert shown(slow, snap)["State"] == "pending"  # "must complete before the deletion takes effect"
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap), "IncorrectState")
    wait_for(lambda: not shown(slow, snap), timeout=SNAPSHOT_S * 0.01 + 10, what=f"{snap} gone")
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap), "InvalidSnapshot.NotFound")
    refused(lambda: ec2.delete_snapshot(SnapshotId=snap), "InvalidSnapshot.NotFound")


def test_deleting_the_source_volume_does_not_stop_its_snapshot(slow):
    ec2 = slow.client("ec2")
    vol = volume(slow)
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.delete_volume(VolumeId=vol)
    assert shown(slow, snap)["State"] == "pending"
    done = completed(slow, snap)
    assert done["VolumeId"] == vol
    ec2.create_volume(AvailabilityZone=f"{REGION}b", SnapshotId=snap)


def test_a_copy_takes_time_and_a_pending_snapshot_cannot_be_copied(slow):
    ec2 = slow.client("ec2")
    snap = ec2.create_snapshot(VolumeId=volume(slow))["SnapshotId"]
    refused(lambda: ec2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=REGION),
            "IncorrectState", f"Snapshot '{snap}' is not 'completed'.")
    completed(slow, snap)
    copy = ec2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=REGION)["SnapshotId"]
    assert shown(slow, copy)["State"] == "pending"
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=copy), "IncorrectState")
    assert completed(slow, copy)["Progress"] == "100%"


def test_fast_profile_snapshots_are_completed_at_once(server):
    server.reset()  # fast: moto's behaviour
    ec2 = server.client("ec2")
    snap = ec2.create_snapshot(VolumeId=volume(server))
    assert snap["State"] == "completed"
    ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap["SnapshotId"])


def test_a_reset_drops_pending_snapshots(slow):
    ec2 = slow.client("ec2")
    snap = ec2.create_snapshot(VolumeId=volume(slow))["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=snap)
    slow.reset()
    slow.ctl("POST", "/profile", {"snapshot_s": SNAPSHOT_S})
    assert not shown(slow, snap)
    again = ec2.create_snapshot(VolumeId=volume(slow))["SnapshotId"]
    time.sleep(SNAPSHOT_S * 0.01 + 0.5)  # past the dropped snapshot's deadline too
    assert completed(slow, again)["State"] == "completed"
    assert "Traceback" not in slow.stderr()


# --- SnapshotCreationPerVolumeRateExceeded ------------------------------------------------
#
# "Wait at least 15 seconds between concurrent volume snapshots" (EC2 API Reference, error
# codes). These run at clock scale 0.1 (15 AWS seconds = 1.5 s real) so that "at once" is well
# inside the window on a loaded machine; the fixture puts the module's 0.01 back.

RATE_SCALE = 0.1
RATE_MESSAGE = ("The maximum per volume CreateSnapshot request rate has been exceeded. "
                "Use an increasing or variable sleep interval between requests.")


@pytest.fixture
def rate(server):
    server.reset()
    server.ctl("POST", "/clock", {"scale": RATE_SCALE})
    server.ctl("POST", "/profile", {"snapshot_s": 40})  # 4 s real: pending throughout a test step
    try:
        yield server
    finally:
        server.ctl("POST", "/clock", {"scale": 0.01})
        server.reset()


def virtual_now(server) -> float:
    return server.ctl("GET", "/clock")["virtual_now"]


def snapshots_of(server, vol: str) -> list[str]:
    return [s["SnapshotId"] for s in server.client("ec2").describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"]]


def test_a_second_snapshot_of_a_volume_within_15_seconds_is_refused_while_the_first_is_pending(rate):
    ec2 = rate.client("ec2")
    vol, other = volume(rate), volume(rate)
    started = virtual_now(rate)
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    with pytest.raises(ClientError) as err:
        ec2.create_snapshot(VolumeId=vol)
    assert virtual_now(rate) - started < 15, "too slow to show the window"
    assert err.value.response["Error"] == {"Code": "SnapshotCreationPerVolumeRateExceeded", "Message": RATE_MESSAGE}
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert snapshots_of(rate, vol) == [first]  # nothing created
    # Per volume: another volume's snapshot is not limited.
    ec2.create_snapshot(VolumeId=other)
    # 15 AWS seconds after the first, a second one is taken while the first is still pending.
    wait_for(lambda: virtual_now(rate) - started >= 15.2, timeout=10, what="15 AWS seconds")
    assert shown(rate, first)["State"] == "pending"
    second = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    assert sorted(snapshots_of(rate, vol)) == sorted([first, second])
    calls = rate.ctl("GET", "/calls?operation=CreateSnapshot")
    assert [c["error_code"] for c in calls] == [None, "SnapshotCreationPerVolumeRateExceeded", None, None]


def test_a_completed_snapshot_does_not_limit_the_next_one(rate):
    # "Concurrent": only a pending snapshot counts. 2 AWS seconds of pending time (0.2 s real).
    rate.ctl("POST", "/profile", {"snapshot_s": 2})
    ec2 = rate.client("ec2")
    vol = volume(rate)
    started = virtual_now(rate)
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    wait_for(lambda: shown(rate, first).get("State") == "completed", timeout=10, what=f"{first} completed")
    ec2.create_snapshot(VolumeId=vol)
    assert virtual_now(rate) - started < 15, "too slow to show the window"


def test_a_deleted_pending_snapshot_still_counts(rate):
    # A snapshot deleted while pending goes on until it completes (re:Post, ebs-snapshot-stuck).
    ec2 = rate.client("ec2")
    vol = volume(rate)
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=first)
    refused(lambda: ec2.create_snapshot(VolumeId=vol), "SnapshotCreationPerVolumeRateExceeded", RATE_MESSAGE)


def test_create_snapshots_is_refused_as_a_whole_when_one_volume_is_limited(rate):
    ec2 = rate.client("ec2")
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                 Placement={"AvailabilityZone": f"{REGION}a"})["Instances"][0]["InstanceId"]
    data = volume(rate)
    wait_for(lambda: ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]
             ["Name"] == "running", timeout=10, what="running")
    ec2.attach_volume(VolumeId=data, InstanceId=instance, Device="/dev/sdf")
    root = next(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"] != data)
    before = ec2.create_snapshot(VolumeId=data)["SnapshotId"]
    refused(lambda: ec2.create_snapshots(InstanceSpecification={"InstanceId": instance}),
            "SnapshotCreationPerVolumeRateExceeded", RATE_MESSAGE)
    assert snapshots_of(rate, root) == [] and snapshots_of(rate, data) == [before]  # none taken
    # Without the limited volume (only the root one, of another volume) it is taken.
    ec2.detach_volume(VolumeId=data)
    taken = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance})["Snapshots"]
    assert [s["VolumeId"] for s in taken] == [root]


def test_fast_profile_snapshots_are_never_rate_limited(server):
    server.reset()  # fast: snapshot_s 0, nothing is ever pending
    ec2 = server.client("ec2")
    vol = volume(server)
    assert [ec2.create_snapshot(VolumeId=vol)["State"] for _ in range(3)] == ["completed"] * 3


# --- snapshots that end in `error` (POST /_localaws/snapshot-failures) ------------------------

ERROR_MESSAGE = "The snapshot could not be completed because of an internal error."


@pytest.fixture
def failing(server):
    server.reset()
    server.ctl("POST", "/profile", {"snapshot_s": 50})  # 0.5 s real
    yield server


def ended(server, snap: str) -> dict:
    return wait_for(lambda: (s := shown(server, snap)).get("State") in ("completed", "error") and s,
                    timeout=10, what=f"{snap} ended")


def test_an_injected_failure_ends_the_next_snapshot_of_the_volume_in_error(failing):
    ec2 = failing.client("ec2")
    vol = volume(failing)
    injected = failing.ctl("POST", "/snapshot-failures", {"volume": vol, "count": 1})
    assert injected == {"id": "sf-1", "volume": vol, "remaining": 1, "message": ERROR_MESSAGE, "fired": 0,
                        "snapshots": []}
    snap = ec2.create_snapshot(VolumeId=vol)
    assert snap["State"] == "pending"  # it fails when its pending time is up, not at once
    assert shown(failing, snap["SnapshotId"])["State"] == "pending"
    bad = ended(failing, snap["SnapshotId"])
    assert bad["State"] == "error" and bad["StateMessage"] == ERROR_MESSAGE and bad["Progress"] == "99%", bad
    assert [s["SnapshotId"] for s in ec2.describe_snapshots(
        Filters=[{"Name": "status", "Values": ["error"]}])["Snapshots"]] == [snap["SnapshotId"]]
    # Unusable, as a pending one is.
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap["SnapshotId"]),
            "IncorrectState", f"Snapshot '{snap['SnapshotId']}' is not 'completed'.")
    refused(lambda: ec2.copy_snapshot(SourceSnapshotId=snap["SnapshotId"], SourceRegion=REGION),
            "IncorrectState", f"Snapshot '{snap['SnapshotId']}' is not 'completed'.")
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [vol]
    # Used up: the next snapshot of the volume completes (and has no StateMessage).
    good = ended(failing, ec2.create_snapshot(VolumeId=vol)["SnapshotId"])
    assert good["State"] == "completed" and "StateMessage" not in good and good["Progress"] == "100%"
    assert failing.ctl("GET", "/snapshot-failures") == [dict(injected, remaining=0, fired=1,
                                                             snapshots=[snap["SnapshotId"]])]
    # A snapshot in error can be deleted.
    ec2.delete_snapshot(SnapshotId=snap["SnapshotId"])
    assert not shown(failing, snap["SnapshotId"])


def test_a_failure_injected_while_a_snapshot_is_pending_applies_to_it(failing):
    ec2 = failing.client("ec2")
    vol = volume(failing)
    snap = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    failing.ctl("POST", "/snapshot-failures", {"volume": vol, "count": 1, "message": "custom"})
    assert ended(failing, snap)["StateMessage"] == "custom"


def test_failures_name_a_volume_or_every_volume_until_cleared(failing):
    ec2 = failing.client("ec2")
    vol, other = volume(failing), volume(failing)
    failing.ctl("POST", "/snapshot-failures", {"volume": vol, "count": 1})
    spared = ec2.create_snapshot(VolumeId=other)["SnapshotId"]
    assert ended(failing, spared)["State"] == "completed"
    assert failing.ctl("GET", "/snapshot-failures")[0]["remaining"] == 1  # not used up by another volume
    failing.ctl("DELETE", "/snapshot-failures")
    assert failing.ctl("GET", "/snapshot-failures") == []
    failing.ctl("POST", "/snapshot-failures", {})  # every volume, every snapshot
    snaps = [ec2.create_snapshot(VolumeId=v)["SnapshotId"] for v in (vol, other)]
    assert [ended(failing, s)["State"] for s in snaps] == ["error", "error"]
    assert failing.ctl("GET", "/snapshot-failures")[0]["fired"] == 2
    failing.reset()  # a reset clears them
    assert failing.ctl("GET", "/snapshot-failures") == []


def test_a_pending_snapshot_deleted_uses_up_no_failure(failing):
    ec2 = failing.client("ec2")
    vol = volume(failing)
    failing.ctl("POST", "/snapshot-failures", {"volume": vol, "count": 1})
    gone = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=gone)
    wait_for(lambda: not shown(failing, gone), timeout=10, what=f"{gone} gone")
    assert failing.ctl("GET", "/snapshot-failures")[0]["remaining"] == 1
    assert ended(failing, ec2.create_snapshot(VolumeId=vol)["SnapshotId"])["State"] == "error"


def test_a_copy_is_not_failed_by_an_injection(failing):
    ec2 = failing.client("ec2")
    vol = volume(failing)
    source = ended(failing, ec2.create_snapshot(VolumeId=vol)["SnapshotId"])["SnapshotId"]
    failing.ctl("POST", "/snapshot-failures", {})
    copy = ec2.copy_snapshot(SourceSnapshotId=source, SourceRegion=REGION)["SnapshotId"]
    assert ended(failing, copy)["State"] == "completed"
    assert failing.ctl("GET", "/snapshot-failures")[0]["fired"] == 0


def test_fast_profile_snapshot_fails_at_once(server):
    server.reset()  # fast: no pending time, the snapshot's end is its creation
    ec2 = server.client("ec2")
    vol = volume(server)
    server.ctl("POST", "/snapshot-failures", {"volume": vol, "count": 1})
    snap = ec2.create_snapshot(VolumeId=vol)
    assert snap["State"] == "error"
    assert shown(server, snap["SnapshotId"])["StateMessage"] == ERROR_MESSAGE
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{REGION}a", SnapshotId=snap["SnapshotId"]),
            "IncorrectState")
    assert ec2.create_snapshot(VolumeId=vol)["State"] == "completed"


@pytest.mark.parametrize("body", [
    {"volume": "vol-1", "count": 0},
    {"count": True},
    {"volume": "i-123"},
    {"volume": "vol-1", "error": "x"},
    {"message": ""},
    [],
])
def test_the_control_api_refuses_bad_injections(server, body):
    server.reset()
    with pytest.raises(AssertionError, match="HTTP 400"):
        server.ctl("POST", "/snapshot-failures", body)
