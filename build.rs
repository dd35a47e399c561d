//! Compiles `proto/pika_repl.proto` with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/pika_repl.proto");
    let fds = protox::compile(["proto/pika_repl.proto"], ["proto"])?;
    // The pushed binlog item is shared by every slave (bytes::Bytes), not copied per slave.
    prost_build::Config::new()
        .bytes([".pikarepl.InnerResponse.BinlogSync.binlog"])
        .compile_fds(fds)?;
    Ok(())
}
