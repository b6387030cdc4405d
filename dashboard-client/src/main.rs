//! `dashboard-client` binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use dashboard_client::model::{Dashboard, GatewayLink};
use dashboard_client::{feed, logging, web};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A live web dashboard of accounts, positions, summary and session health from gateway-svc.
///
/// The first stdout line is a JSON object with the bound address, e.g. {"listen":"127.0.0.1:8080"}.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// gateway-svc gRPC address.
    #[arg(long, env = "IBGW_ADDR", default_value = gateway_proto::client::DEFAULT_ADDR)]
    gateway: String,
    /// Where to serve the page (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token, when gateway-svc requires one.
    #[arg(long, env = "IBGW_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init();
    let client = gateway_proto::client::connect_lazy(&args.gateway, args.token.as_deref(), Duration::from_secs(3))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let initial = Dashboard {
        gateway: GatewayLink { url: args.gateway.clone(), ..GatewayLink::default() },
        ..Dashboard::default()
    };
    let (model, rx) = watch::channel(initial);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    feed::spawn(client, model, &tracker, shutdown.clone());
    println!("{}", serde_json::json!({ "listen": local.to_string() }));
    tracing::info!(listen = %local, gateway = %args.gateway, "dashboard serving");
    let app = web::router(rx, shutdown.clone());
    let serve_shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(serve_shutdown.cancelled_owned()).await {
            tracing::warn!(error = %e, "web server stopped");
        }
    });
    tracker.close();
    wait_for_signal().await;
    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.is_err() {
        tracing::warn!("shutdown timed out");
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
