//! Compiles `proto/caruso/v1/*.proto` with `protox` (no system `protoc`) and generates
//! tonic/prost code plus a file descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/caruso/v1/system.proto",
    "proto/caruso/v1/voicemail.proto",
    "proto/caruso/v1/agent.proto",
    "proto/caruso/v1/monitor.proto",
    "proto/caruso/v1/campaigns.proto",
    "proto/caruso/v1/registry.proto",
    "proto/caruso/v1/plugin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    std::fs::write(out_dir.join("caruso_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
