//! Compiles the bare baseline's proto with protox, as the gateway's `build.rs` does.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(["proto/bench/v1/bare.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
