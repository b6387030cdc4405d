//! gateway-svc's own `GatewayService`, over the same state and with the same request middleware
//! as the shipped server, but with `TCP_NODELAY` on every accepted socket: the fix the
//! benchmarks point to, measured side by side with the shipped binary.
//!
//! Why it matters: tonic applies its `tcp_nodelay(true)` only to listeners it binds itself; a
//! server started with `serve_with_incoming_shutdown(TcpListenerStream)`, as gateway-svc is,
//! leaves Nagle's algorithm on. A response written in two pieces (or a second stream message
//! while the first is unacknowledged) then waits for the client's delayed ACK, about 40 ms on
//! Linux.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_proto::pb::gateway_service_server::GatewayServiceServer;
use gateway_svc::config::GrpcSettings;
use gateway_svc::grpc::Gateway;
use gateway_svc::state::State;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

use crate::{Error, Result};

/// Serves `state` on 127.0.0.1:0 until `shutdown`; returns the bound address.
pub async fn serve(state: Arc<State>, g: &GrpcSettings, shutdown: CancellationToken) -> Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| Error::setup("nodelay server bind", e))?;
    let addr = listener.local_addr().map_err(|e| Error::setup("nodelay server address", e))?;
    let gateway = Gateway::new(state, shutdown.clone(), g.max_subscribers);
    let service = GatewayServiceServer::with_interceptor(gateway, gateway_svc::auth::interceptor(None));
    let router = tonic::transport::Server::builder()
        .timeout(Duration::from_millis(g.unary_timeout_ms))
        .concurrency_limit_per_connection(g.concurrency_per_connection)
        .load_shed(true)
        .http2_keepalive_interval(Some(Duration::from_millis(g.keepalive_interval_ms)))
        .http2_keepalive_timeout(Some(Duration::from_millis(g.keepalive_timeout_ms)))
        .add_service(service);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    // Owned by `shutdown`: the task ends when the token fires.
    tokio::spawn(async move {
        let _ = router.serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await;
    });
    Ok(addr)
}

/// `ibgw-bench serve-nodelay`: what `gateway-svc demo` does, plus the server above, printing
/// the same first stdout line with `grpc` pointing at the TCP_NODELAY server. Runs until killed.
pub async fn demo(args: &crate::cli::ServeArgs) -> Result<()> {
    // Logs (including `ibapi`'s, which use `log`) go to stderr as gateway-svc's do, so the
    // benchmark can count the same warnings in either process.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let settings = gateway_svc::Settings::load(None).map_err(|e| Error::setup("settings", e))?;
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut settings = settings;
    settings.grpc.listen = any.to_string();
    settings.ops.listen = any.to_string();
    let addrs = gateway_svc::demo::DemoAddrs { sim_api: args.sim_listen, sim_control: args.sim_control_listen };
    let shutdown = CancellationToken::new();
    let grpc_settings = settings.grpc.clone();
    let demo = gateway_svc::demo::Demo::start(settings, addrs, ib_sim::Scenario::default(), shutdown.clone())
        .await
        .map_err(|e| Error::setup("gateway-svc demo", e))?;
    let grpc = serve(Arc::clone(&demo.service.state), &grpc_settings, shutdown.clone()).await?;
    let mut line = demo.addresses_json();
    line["grpc"] = serde_json::Value::String(grpc.to_string());
    line["grpc_shipped"] = serde_json::Value::String(demo.service.grpc_addr.to_string());
    println!("{line}");
    let _ = tokio::signal::ctrl_c().await;
    let _ = demo.stop().await;
    Ok(())
}
