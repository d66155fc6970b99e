//! Terraform's side of the provider: the go-plugin handshake, AutoMTLS, the tfplugin6 gRPC
//! service, values, schemas and diagnostics. Nothing in here knows about AWS.

pub mod diagnostics;
pub mod go_plugin;
pub mod handshake;
pub mod logging;
pub mod msgpack;
pub mod plan;
pub mod resource;
pub mod schema;
pub mod serve;
pub mod server;
pub mod tls;
pub mod transport;
pub mod value;

/// Code generated from ../proto at build time.
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}
