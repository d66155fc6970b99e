"""The benchmark's Python peer: the original DeviceAttachment Lambda's steps, in boto3.

Written from the seed's description of the original CloudFormation pattern
(../shared/seed, "The Device Attachment layer"); it is the yardstick for
tools/bench-handler, not part of the product. On an "EC2 Instance-launch
Lifecycle Action" event it:

1. reads the new instance id from the event;
2. polls the instance's state and sleeps 5 seconds until it is `running`;
3. attaches the EBS volume to it;
4. associates the Elastic IP with it;
5. completes the lifecycle action with CONTINUE.

The one change from the original: it called `sleep(5)` without importing it,
so it crashed with a NameError whenever the instance was not yet running;
here the sleep is `time.sleep`. Everything else the field notes criticise is
kept on purpose, because it is what the Rust handler is compared with: a fixed
5 s poll, no wait for a volume still detaching from the old instance (the
attach then fails and Lambda retries the whole event later), no idempotency (a
second delivery fails at AttachVolume), no ABANDON, no group check.

The volume, address and device come from the function's environment, as in
the original (which baked them in as environment variables); the names are the
Rust handler's, so both functions get the same configuration. The boto3
clients are created at import, i.e. in Lambda's init phase, so each invocation
only pays for its API calls.
"""

import os
import time

import boto3

VOLUME_ID = os.environ["AUTOHEAL_VOLUME_ID"]
ALLOCATION_ID = os.environ["AUTOHEAL_ALLOCATION_ID"]
DEVICE_NAME = os.environ["AUTOHEAL_DEVICE_NAME"]
POLL_SECONDS = 5

ec2 = boto3.client("ec2")
autoscaling = boto3.client("autoscaling")


def instance_state(instance_id):
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def handler(event, context):
    detail = event["detail"]
    instance_id = detail["EC2InstanceId"]
    print(f"device attachment for {instance_id}")

    while instance_state(instance_id) != "running":
        print(f"{instance_id} is not running yet; sleeping {POLL_SECONDS} s")
        time.sleep(POLL_SECONDS)  # the original: sleep(5), never imported

    ec2.attach_volume(VolumeId=VOLUME_ID, InstanceId=instance_id, Device=DEVICE_NAME)
    print(f"attached {VOLUME_ID} to {instance_id} as {DEVICE_NAME}")

    ec2.associate_address(AllocationId=ALLOCATION_ID, InstanceId=instance_id)
    print(f"associated {ALLOCATION_ID} with {instance_id}")

    autoscaling.complete_lifecycle_action(
        LifecycleHookName=detail["LifecycleHookName"],
        AutoScalingGroupName=detail["AutoScalingGroupName"],
        LifecycleActionToken=detail["LifecycleActionToken"],
        LifecycleActionResult="CONTINUE",
        InstanceId=instance_id,
    )
    print(f"completed the lifecycle action of {instance_id} with CONTINUE")
    return {"instance": instance_id, "result": "CONTINUE"}
