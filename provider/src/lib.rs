//! terraform-provider-autoheal: the EC2 autoheal pattern as one Terraform resource.
//!
//! Data flows one way: Terraform -> [`plugin`] (protocol, values, schemas) -> the resource
//! ([`autoheal_instance`]) -> [`aws`] (one module per kind of AWS object) -> AWS.
//! The plugin layer never touches AWS; the resource never touches protobuf types.

pub mod autoheal_instance;
pub mod aws;
pub mod config;
pub mod handler_zip;
pub mod plugin;
pub mod provider;
