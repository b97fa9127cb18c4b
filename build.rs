//! Compiles `proto/voice/v1/*.proto` with protox (no system `protoc`) and writes the
//! descriptor set that server reflection serves.
use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(
        [
            "proto/voice/v1/calls.proto",
            "proto/voice/v1/devices.proto",
            "proto/voice/v1/simulator.proto",
        ],
        ["proto"],
    )?;
    // compile_fds does not write file_descriptor_set_path: write it ourselves.
    std::fs::write(out_dir.join("voice_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // 1 KiB codec buffers instead of 8 KiB: see src/grpc/codec.rs.
        .codec_path("crate::grpc::codec::GatewayCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
