//! Everything that talks to AWS, one module per kind of AWS object (network, security group,
//! volume, Elastic IP, IAM role, the attachment Lambda, its EventBridge rule, its log group,
//! launch template, Auto Scaling group, the persistent network interface, the CloudWatch
//! alarms).
//!
//! Each module offers small, single-purpose operations over one kind of object:
//!
//! - **finders** return `Option<Object>` and turn "not found" into `None`, so the resource
//!   logic never inspects error codes;
//! - **waiters** poll until an object reaches a state (or the deadline passes), reporting
//!   progress through `tracing` so it shows in `TF_LOG`;
//! - **deleters** are idempotent: deleting what is already gone succeeds.
//!
//! They are kept apart from the resource logic in [`crate::autoheal_instance`], which decides
//! *what* to create, update or delete and in which order; the modules here only know *how*.
//! Every AWS call goes through [`context::OpContext`], which retries with
//! [`retry::retry`] within the operation's deadline and Terraform's stop signal.

pub mod address;
pub mod alarm;
pub mod autoscaling_group;
pub mod context;
pub mod ec2_tags;
pub mod error;
pub mod event_rule;
pub mod gate;
pub mod iam_role;
pub mod instance;
pub mod lambda_function;
pub mod launch_template;
pub mod log_group;
pub mod network;
pub mod network_interface;
pub mod retry;
pub mod security_group;
pub mod tags;
pub mod volume;

pub use crate::config::{AwsContext, Service};
pub use context::{Clients, OpContext, Poll};
pub use error::AwsError;
