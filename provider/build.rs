//! Compiles the wire protocol in ../proto with protox, a protobuf compiler written in Rust,
//! so building the provider needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
