"""EBS snapshots take time (localaws/ec2ext.py, profile setting ``snapshot_s``).

At clock scale 0.01 a ``snapshot_s`` of 300 AWS seconds is 3 s real: long enough to look at
the pending snapshot, short enough to wait for it.
"""

from __future__ import annotations

import re
import time

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, wait_for

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
