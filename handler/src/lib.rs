//! The attachment Lambda of the autoheal pattern.
//!
//! An Auto Scaling group of one keeps a stateful instance alive; its launch lifecycle hook
//! holds each new instance in `Pending:Wait` and EventBridge invokes this function with the
//! "EC2 Instance-launch Lifecycle Action" event. The function then:
//!
//! 1. refuses, with a log line and no AWS call, anything but a launch of its group through its
//!    hook ([`event::classify`]);
//! 2. waits for the instance to be `running` (backoff from 50 ms, x1.5, capped at 2 s, inside
//!    the invocation's deadline) and checks it belongs to the group (its
//!    `aws:autoscaling:groupName` tag, else DescribeAutoScalingInstances): a forged instance id
//!    gets no mutating call;
//! 3. attaches the data volume: skipped if already attached there (events arrive at least
//!    once); waits while the old instance is going away or the volume is detaching; never
//!    forces it off a live instance (ABANDON instead);
//! 4. only with `AUTOHEAL_NETWORK_INTERFACE_ID`: attaches the stack's persistent network
//!    interface at device index 1 and waits until the attachment is `attached`, by the
//!    volume's rules (skipped if already attached there, at any index; waits for a departing
//!    holder; never forces it off a live one; ABANDON for another zone or an interface that
//!    does not exist);
//! 5. associates the Elastic IP (AllowReassociation) and verifies it with DescribeAddresses:
//!    with the instance, or, in interface mode, with the interface (the address then follows
//!    the interface, and is not associated early during the volume's hand-off);
//! 6. completes the lifecycle action with CONTINUE; "No active Lifecycle Action found" counts
//!    as done. Any unrecoverable error (wrong zone, no permission, a live holder, time running
//!    out) completes it with ABANDON instead, so the group launches a fresh instance.
//!
//! What does not depend on anything else runs at the same time ([`heal`] says why each group
//! is safe): the first poll of step 2 goes out with the first reads of steps 3-5 (reads only;
//! nothing changes before the instance is confirmed and running), then steps 3, 4 and 5 run
//! side by side. The address moves only once the volume's holder is seen going away or
//! AttachVolume for the new instance was accepted (and, in interface mode, once the interface
//! is attached here), so a live holder never loses it; step 6 waits for all three.
//!
//! Heartbeats (RecordLifecycleActionHeartbeat) keep the hook alive when the work could outlast
//! its timeout. One CloudWatch EMF line per invocation ([`metrics`]); JSON logs ([`logging`]).
//!
//! # Configuration
//! The environment variables in [`settings`]: `AUTOHEAL_VOLUME_ID`, `AUTOHEAL_ALLOCATION_ID`,
//! `AUTOHEAL_DEVICE_NAME`, `AUTOHEAL_GROUP_NAME`, `AUTOHEAL_HOOK_NAME`, and optionally
//! `AUTOHEAL_HOOK_TIMEOUT_SECONDS` (saves a DescribeLifecycleHooks call) and
//! `AUTOHEAL_NETWORK_INTERFACE_ID` (interface mode, above; [`settings::Features`]). A
//! missing or malformed one fails the function's init, reported through the Runtime API
//! ([`init_error`]). AWS endpoints, region and credentials load the standard way
//! (aws-config), so `AWS_ENDPOINT_URL` points the function at a local AWS.
//!
//! # IAM
//! `ec2:DescribeInstances`, `ec2:DescribeVolumes`, `ec2:AttachVolume` (the volume and the
//! group's instances), `ec2:DescribeAddresses`, `ec2:AssociateAddress`,
//! `autoscaling:CompleteLifecycleAction`, `autoscaling:RecordLifecycleActionHeartbeat`,
//! `autoscaling:DescribeAutoScalingInstances` (only used when the instance lacks the group
//! tag), `autoscaling:DescribeLifecycleHooks` (only without `AUTOHEAL_HOOK_TIMEOUT_SECONDS`).
//! Interface mode adds `ec2:DescribeNetworkInterfaces` and `ec2:AttachNetworkInterface` (the
//! interface and the group's instances), and AssociateAddress then acts on the interface
//! (`network-interface` resource) instead of the instance.
//!
//! # Structure
//! Decisions are pure functions of observed facts ([`decide`], [`errors`], [`deadline`],
//! [`backoff`]), unit-tested without AWS; [`aws`] is the thin layer of API calls; [`heal`]
//! sequences them; [`handler`] is one invocation. [`heal::Healer`] takes its clients and
//! settings as values, so integration tests build it against any endpoint.

pub mod aws;
pub mod backoff;
pub mod deadline;
pub mod decide;
pub mod errors;
pub mod event;
pub mod failover;
pub mod handler;
pub mod heal;
pub mod init_error;
pub mod logging;
pub mod metrics;
pub mod provenance;
pub mod settings;
pub mod snapshot;

pub use aws::Clients;
pub use handler::HandlerError;
pub use heal::{HealReport, Healer};
pub use settings::{Config, Features, Settings};
