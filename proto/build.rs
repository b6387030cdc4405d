//! Compiles `gateway/v1/*.proto` with protox (pure Rust, no system protoc) and writes the encoded
//! descriptor set next to the generated code for server reflection.
//!
//! The service is generated twice: once from the .proto as usual (messages, client, and a
//! server over the message types), and once from the method table below for the server that
//! gateway-svc runs, whose data responses are pre-encoded bytes (`gateway_proto::encoded`). Both
//! speak the same wire format; the second only lets many streams share one encoding.

use std::{env, path::PathBuf};

use prost::Message;
use tonic_prost_build::{FileDescriptorSet, manual};

/// One RPC of `gateway.v1.GatewayService`. Its messages are `<route>Request` and `<route>Response`.
struct Rpc {
    name: &'static str,
    route: &'static str,
    streaming: bool,
    /// Served as pre-encoded bytes through `EncodedCodec` (else through prost, as generated).
    encoded: bool,
}

const fn rpc(name: &'static str, route: &'static str, streaming: bool, encoded: bool) -> Rpc {
    Rpc { name, route, streaming, encoded }
}

const METHODS: &[Rpc] = &[
    rpc("list_accounts", "ListAccounts", false, false),
    rpc("get_positions", "GetPositions", false, true),
    rpc("watch_positions", "WatchPositions", true, true),
    rpc("get_account_summary", "GetAccountSummary", false, true),
    rpc("watch_account_summary", "WatchAccountSummary", true, true),
    rpc("get_health", "GetHealth", false, false),
    rpc("watch_health", "WatchHealth", true, false),
    rpc("get_account_pnl", "GetAccountPnl", false, true),
    rpc("watch_account_pnl", "WatchAccountPnl", true, true),
    rpc("get_position_pnl", "GetPositionPnl", false, true),
    rpc("watch_position_pnl", "WatchPositionPnl", true, true),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let file = root.join("gateway/v1/gateway.proto");
    let fds = protox::compile([&file], [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("gateway_descriptor.bin"), fds.encode_to_vec())?;
    check_methods(&fds)?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;

    let mut service = manual::Service::builder().name("GatewayService").package("gateway.v1");
    for m in METHODS {
        let (output, codec) = if m.encoded {
            ("crate::encoded::Encoded".to_owned(), "crate::encoded::EncodedCodec")
        } else {
            (format!("crate::pb::{}Response", m.route), "tonic_prost::ProstCodec")
        };
        let mut method = manual::Method::builder()
            .name(m.name)
            .route_name(m.route)
            .input_type(format!("crate::pb::{}Request", m.route))
            .output_type(output)
            .codec_path(codec);
        if m.streaming {
            method = method.server_streaming();
        }
        service = service.method(method.build());
    }
    // Writes `gateway.v1.GatewayService.rs`, beside prost's `gateway.v1.rs`.
    manual::Builder::new().build_client(false).build_transport(false).compile(&[service.build()]);
    println!("cargo:rerun-if-changed={}", root.join("gateway").display());
    Ok(())
}

/// The method table must match the .proto exactly: a new, renamed or reshaped RPC fails the
/// build here instead of going missing from the server gateway-svc runs.
fn check_methods(fds: &FileDescriptorSet) -> Result<(), Box<dyn std::error::Error>> {
    let service = fds
        .file
        .iter()
        .flat_map(|f| f.service.iter())
        .find(|s| s.name() == "GatewayService")
        .ok_or("gateway.proto has no GatewayService")?;
    let declared: Vec<String> = service
        .method
        .iter()
        .map(|m| format!("{} {} {} {}", m.name(), m.input_type(), m.output_type(), m.server_streaming()))
        .collect();
    let described: Vec<String> = METHODS
        .iter()
        .map(|m| format!("{0} .gateway.v1.{0}Request .gateway.v1.{0}Response {1}", m.route, m.streaming))
        .collect();
    if declared != described {
        return Err(format!("proto/build.rs METHODS {described:?} differ from gateway.proto {declared:?}").into());
    }
    Ok(())
}
