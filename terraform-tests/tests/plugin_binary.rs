//! The provider binary as a go-plugin: run by hand, the handshake, and gRPC without Terraform
//! in between (GetMetadata, GetProviderSchema, health, Shutdown).

use std::process::Command;
use std::time::{Duration, Instant};

use autoheal_provider::plugin::proto::plugin::Empty;
use autoheal_provider::plugin::proto::tfplugin6::{
    diagnostic, get_metadata, get_provider_schema, schema,
};
use terraform_tests::plugin_client::{
    certificate_dns_names, ClientCert, PluginProcess, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE,
};
use terraform_tests::process::run_with_timeout;
use terraform_tests::{provider_binary, RESOURCE_TYPE};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

const RUN_TIMEOUT: Duration = Duration::from_secs(30);

async fn launch() -> PluginProcess {
    let binary = provider_binary();
    eprintln!("provider binary: {}", binary.display());
    PluginProcess::launch(&binary)
        .await
        .unwrap_or_else(|e| panic!("launching {} like Terraform: {e:#}", binary.display()))
}

#[test]
fn run_by_hand_it_says_it_is_a_terraform_plugin() {
    let binary = provider_binary();
    let out = run_with_timeout(
        Command::new(&binary).env_remove(MAGIC_COOKIE_KEY),
        RUN_TIMEOUT,
    )
    .unwrap();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !out.status.success(),
        "run without the magic cookie, {} must exit non-zero; it exited {:?}:\n{text}",
        binary.display(),
        out.status
    );
    assert!(
        text.contains("Terraform") && text.to_lowercase().contains("plugin"),
        "run by hand, the provider should explain that it is a Terraform plugin; it printed:\n{text}"
    );
    assert!(
        !out.stdout.contains("|grpc|"),
        "no handshake without the cookie:\n{text}"
    );
}

#[test]
fn protocol_version_4_only_is_refused_with_a_clear_message() {
    let binary = provider_binary();
    let cert = ClientCert::generate().unwrap();
    let out = run_with_timeout(
        Command::new(&binary)
            .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
            .env("PLUGIN_PROTOCOL_VERSIONS", "4")
            .env("PLUGIN_MIN_PORT", "10000")
            .env("PLUGIN_MAX_PORT", "25000")
            .env("PLUGIN_CLIENT_CERT", &cert.cert_pem),
        RUN_TIMEOUT,
    )
    .unwrap();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !out.status.success(),
        "offered only protocol 4, the provider must fail; it exited {:?}:\n{text}",
        out.status
    );
    assert!(
        !out.stdout.contains("|grpc|"),
        "no handshake for a protocol it does not speak:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("protocol") && text.contains('6') && text.contains('4'),
        "the message should name the offered (4) and supported (6) protocol versions:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_line_has_the_go_plugin_shape() {
    let plugin = launch().await;
    let h = &plugin.handshake;
    assert_eq!(h.core_version, 1, "go-plugin core protocol version: {h:?}");
    assert_eq!(h.protocol_version, 6, "Terraform plugin protocol: {h:?}");
    assert_eq!(h.network, "unix", "{h:?}");
    assert_eq!(h.protocol, "grpc", "{h:?}");
    let socket = std::path::Path::new(&h.address);
    assert!(socket.is_absolute(), "socket path {socket:?}");
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::metadata(socket)
        .unwrap_or_else(|e| panic!("socket {socket:?}: {e}"))
        .file_type();
    assert!(kind.is_socket(), "{socket:?} is not a unix socket");
    let names = certificate_dns_names(&h.server_cert_der)
        .unwrap_or_else(|e| panic!("server certificate on the handshake line: {e:#}"));
    assert!(
        names.iter().any(|n| n == "localhost"),
        "the server certificate must be valid for localhost (Terraform's ServerName); SANs: {names:?}"
    );
    // launch() also connected with mutual TLS pinned to that certificate.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_metadata_lists_the_resource() {
    let mut plugin = launch().await;
    let resp = plugin
        .provider
        .get_metadata(get_metadata::Request {})
        .await
        .unwrap_or_else(|e| panic!("GetMetadata: {e}\nstderr:\n{}", plugin.stderr()))
        .into_inner();
    let types: Vec<&str> = resp
        .resources
        .iter()
        .map(|r| r.type_name.as_str())
        .collect();
    assert!(
        types.contains(&RESOURCE_TYPE),
        "GetMetadata resources {types:?} lack {RESOURCE_TYPE}"
    );
    assert!(
        !resp
            .diagnostics
            .iter()
            .any(|d| d.severity == diagnostic::Severity::Error as i32),
        "GetMetadata returned errors: {:?}",
        resp.diagnostics
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_schema_describes_every_attribute() {
    let mut plugin = launch().await;
    let resp = plugin
        .provider
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .unwrap_or_else(|e| panic!("GetProviderSchema: {e}\nstderr:\n{}", plugin.stderr()))
        .into_inner();
    assert!(
        !resp
            .diagnostics
            .iter()
            .any(|d| d.severity == diagnostic::Severity::Error as i32),
        "GetProviderSchema returned errors: {:?}",
        resp.diagnostics
    );
    let resource = resp.resource_schemas.get(RESOURCE_TYPE).unwrap_or_else(|| {
        panic!(
            "no {RESOURCE_TYPE} in resource_schemas: {:?}",
            resp.resource_schemas.keys()
        )
    });
    let provider = resp.provider.as_ref().expect("a provider schema");
    let mut undocumented = Vec::new();
    let mut count = 0;
    for (what, schema) in [(RESOURCE_TYPE, resource), ("provider", provider)] {
        let block = schema
            .block
            .as_ref()
            .unwrap_or_else(|| panic!("{what} schema has no block"));
        walk_block(what, block, &mut |path, attr| {
            count += 1;
            if attr.description.trim().is_empty() {
                undocumented.push(path.to_string());
            }
        });
    }
    assert!(
        count > 30,
        "only {count} attributes found: the walk is broken"
    );
    assert!(
        undocumented.is_empty(),
        "attributes without a description: {undocumented:?}"
    );
    let attrs: Vec<&str> = resource
        .block
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    for name in ["name", "availability_zone", "ami", "public_ip", "volume_id"] {
        assert!(
            attrs.contains(&name),
            "{RESOURCE_TYPE} has no {name}: {attrs:?}"
        );
    }
}

/// Calls `f(path, attribute)` for every attribute in a block, its nested blocks and nested
/// attribute types.
fn walk_block(path: &str, block: &schema::Block, f: &mut dyn FnMut(&str, &schema::Attribute)) {
    for a in &block.attributes {
        walk_attribute(&format!("{path}.{}", a.name), a, f);
    }
    for nested in &block.block_types {
        if let Some(b) = &nested.block {
            walk_block(&format!("{path}.{}", nested.type_name), b, f);
        }
    }
}

fn walk_attribute(
    path: &str,
    attr: &schema::Attribute,
    f: &mut dyn FnMut(&str, &schema::Attribute),
) {
    f(path, attr);
    if let Some(obj) = &attr.nested_type {
        for a in &obj.attributes {
            walk_attribute(&format!("{path}.{}", a.name), a, f);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_reports_plugin_serving() {
    let mut plugin = launch().await;
    let resp = plugin
        .health
        .check(HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("Health/Check: {e}\nstderr:\n{}", plugin.stderr()))
        .into_inner();
    assert_eq!(
        resp.status,
        ServingStatus::Serving as i32,
        "health of service \"plugin\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_shutdown_ends_the_process_within_a_second() {
    let mut plugin = launch().await;
    assert!(
        plugin.child.try_wait().unwrap().is_none(),
        "the provider exited before Shutdown"
    );
    let started = Instant::now();
    // The process may exit before the reply is fully delivered; either outcome is fine as
    // long as it exits.
    let reply = plugin.controller.shutdown(Empty {}).await;
    eprintln!("Shutdown replied: {:?}", reply.as_ref().map(|_| ()));
    let left = Duration::from_secs(1).saturating_sub(started.elapsed());
    let status = plugin.wait_for_exit(left).await.unwrap_or_else(|e| {
        panic!(
            "after GRPCController/Shutdown: {e:#}\nstderr:\n{}",
            plugin.stderr()
        )
    });
    assert!(
        status.success(),
        "an orderly shutdown should exit 0, got {status:?}\nstderr:\n{}",
        plugin.stderr()
    );
}
