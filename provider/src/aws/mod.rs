//! Everything that talks to AWS, one module per kind of AWS object (instances, volumes,
//! Elastic IPs, IAM roles, the attachment Lambda, its EventBridge rule, log groups, ...).
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
//! Every AWS call goes through [`retry::retry`], with the provider's
//! [`crate::config::AwsContext`] supplying clients and the attempt cap.
//!
//! Service clients are built from [`crate::config::AwsContext::sdk_config`], whose service
//! configuration already carries the `endpoints` overrides, so `aws_sdk_ec2::Client::new(cfg)`
//! is all a module needs.

pub mod retry;

pub use crate::config::{AwsContext, Service};
