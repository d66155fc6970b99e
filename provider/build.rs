//! Compiles the wire protocol in ../proto with protox, a protobuf compiler written in Rust,
//! so building the provider needs no system `protoc`; embeds the attachment Lambda's zip
//! with its SHA-256; links the plugin at a fixed address.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    link_at_a_fixed_address();
    embed_handler_zip();
    let protos = [
        "../proto/tfplugin6.proto",
        "../proto/grpc_controller.proto",
        "../proto/grpc_stdio.proto",
        "../proto/grpc_broker.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["../proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The acceptance tests call the provider over gRPC directly (GetMetadata, Shutdown).
        .build_client(true)
        // RPCs this provider has no use for (ephemeral resources, functions, moves) answer
        // UNIMPLEMENTED, which Terraform handles for optional calls.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}

/// Terraform starts the provider three to five times per command, and a position-independent
/// executable of this size spends a third of its start applying relocations: 86,707 of
/// them (`readelf -r`), which the loader writes into 1.3 MB of `.data.rel.ro`, faulting in
/// and copying every page. Linked at a fixed address the linker resolves them, and the CPU
/// from exec to the go-plugin handshake line fell from 2.7-3.3 ms to 1.8 ms (median of 27,
/// measured with `getrusage` on this machine). HashiCorp's own Terraform and provider
/// binaries are built the same way (file(1) says "executable", not "pie executable", of
/// Terraform 1.0.3, 1.11.4 and hashicorp/null 2.1.2); the stack, heap, mappings and shared
/// libraries are still randomised. x86_64 only: the arm64 release build links with zig
/// (tools/release), where this was not measured.
fn link_at_a_fixed_address() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CARGO_CFG_TARGET_ARCH") == "x86_64" && var("CARGO_CFG_TARGET_OS") == "linux" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

/// The attachment Lambda ships inside the provider: tools/build-handler builds it for
/// provided.al2023 and this embeds the zip. A provider without it could not stand up the
/// pattern, so a missing or implausible zip stops the build here, with the fix, rather than
/// producing a provider that fails at apply.
fn embed_handler_zip() {
    println!("cargo:rerun-if-env-changed=AUTOHEAL_HANDLER_ZIP");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // tools/build-handler writes into cargo's target directory: CARGO_TARGET_DIR when the
    // user set one (build scripts inherit it), else the workspace's target/.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let path = std::env::var_os("AUTOHEAL_HANDLER_ZIP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| target_dir.join("handler/x86_64/bootstrap.zip"));
    let missing = "The provider embeds it. Build it first with `tools/build-handler` \
                   (tools/test and tools/demo do this), or point AUTOHEAL_HANDLER_ZIP at a \
                   bootstrap zip built for provided.al2023.";
    embed_zip(&path, "AUTOHEAL_HANDLER_ZIP_X86_64", missing);
    embed_arm64_zip();
}

/// The arm64 zip only when asked for by path (tools/release sets it after
/// `tools/build-handler --arch all`): a build that merely finds target/handler/arm64 left over
/// would ship a zip nobody rebuilt with the current handler.
fn embed_arm64_zip() {
    println!("cargo::rustc-check-cfg=cfg(autoheal_arm64_handler)");
    println!("cargo:rerun-if-env-changed=AUTOHEAL_HANDLER_ZIP_ARM64");
    let Some(path) = std::env::var_os("AUTOHEAL_HANDLER_ZIP_ARM64").filter(|p| !p.is_empty())
    else {
        return;
    };
    let missing = "Build it with `tools/build-handler --arch arm64`, or unset \
                   AUTOHEAL_HANDLER_ZIP_ARM64 to ship x86_64 only.";
    embed_zip(
        std::path::Path::new(&path),
        "AUTOHEAL_HANDLER_ZIP_ARM64",
        missing,
    );
    println!("cargo:rustc-cfg=autoheal_arm64_handler");
}

/// Checks that `path` holds a plausible handler zip and hands its absolute path to the crate
/// as the environment variable `env` (for `include_bytes!`); stops the build with `missing`
/// (the fix) when it cannot be read.
fn embed_zip(path: &std::path::Path, env: &str, missing: &str) {
    println!("cargo:rerun-if-changed={}", path.display());
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "\n\nThe attachment Lambda's zip is missing ({}: {e}).\n{missing}\n\n",
            path.display()
        )
    });
    // A real handler is megabytes; a local-file-header magic and a plausible size rule out
    // an empty or placeholder file.
    if !bytes.starts_with(b"PK\x03\x04") || bytes.len() < 100_000 {
        panic!(
            "\n\n{} is not a plausible handler zip ({} bytes). Rebuild it with \
             `tools/build-handler`.\n\n",
            path.display(),
            bytes.len()
        );
    }
    let abs = path.canonicalize().expect("handler zip path");
    println!("cargo:rustc-env={env}={}", abs.display());
    // The digest `handler_sha256` plans with, computed here once per build rather than in
    // every provider process that plans a resource (one per `terraform plan`). The crate
    // checks in a unit test that it is the digest of the bytes `include_bytes!` embedded.
    println!("cargo:rustc-env={env}_SHA256={}", sha256_hex(&bytes));
}

/// Lowercase hex SHA-256, the form `handler_sha256` takes.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
