//! Compiles every proto under `proto/` with the pure-Rust `protox` compiler (no
//! system `protoc`), generates prost/tonic code, and writes the encoded file
//! descriptor set used by reflection and the gateway.

use std::{env, fs, path::PathBuf};

use prost_types::FileDescriptorSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files = proto_files(&root.join("crm"))?;
    // The error-detail protos are not imported by ours, but clients (and the
    // gateway) need them in the descriptor set to decode google.rpc.Status details.
    files.extend(proto_files(&root.join("google/rpc"))?);
    println!("cargo:rerun-if-changed={}", root.display());

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true).open_files(&files)?;
    let fds: FileDescriptorSet = compiler.file_descriptor_set();

    // Encoded by protox itself: prost-types drops extension options such as
    // `google.api.http` on a decode/encode round trip, and the gateway is
    // generated from them.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("crm_descriptor.bin"), compiler.encode_file_descriptor_set())?;

    // Every message implements `prost::Name`, so that event types and Any
    // type URLs are taken from the messages, never written out by hand.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // Any type URLs as Google's APIs write them (prost's default has no domain).
    config.type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        // Maps as BTreeMap so that encoding is deterministic (idempotency hashes rely on it).
        .btree_map(".")
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

/// All `.proto` files below `dir`, sorted so the output is reproducible.
fn proto_files(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(proto_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "proto") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}
