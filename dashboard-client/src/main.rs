//! `dashboard-client` binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use dashboard_client::guard::{self, Guard, HostName, Token};
use dashboard_client::model::{Dashboard, GatewayLink};
use dashboard_client::{feed, web};
use ibgw_kit::Signals;
use ibgw_kit::telemetry::LogSettings;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A live web dashboard of accounts, positions with their value and PnL, account PnL, summary,
/// session health, and charts of net liquidation and daily PnL, from gateway-svc.
///
/// The first stdout line is a JSON object with the bound address, e.g. {"listen":"127.0.0.1:8080"}.
///
/// The page answers only to its own names (the listen address, localhost, 127.0.0.1 and [::1] on
/// the listen port, plus --allowed-host). A non-loopback --listen needs --web-token: open
/// http://HOST:PORT/?token=TOKEN once (a cookie keeps it), or send Authorization: Bearer TOKEN.
// No `Debug`: it would print the tokens.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Args {
    /// gateway-svc gRPC address.
    #[arg(long, env = "IBGW_ADDR", default_value = ibgw_client::DEFAULT_ADDR)]
    gateway: String,
    /// Where to serve the page (port 0 picks one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token, when gateway-svc requires one.
    #[arg(long, env = "IBGW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Token browsers and scripts must present to see the dashboard; required when --listen is
    /// not loopback. At least 16 characters of A-Z a-z 0-9 - . _ ~ (e.g. openssl rand -hex 32).
    #[arg(long, env = "IBGW_DASHBOARD_TOKEN", hide_env_values = true)]
    web_token: Option<String>,
    /// Serve a non-loopback --listen without --web-token (only when something else restricts
    /// who can reach it).
    #[arg(
        long,
        env = "IBGW_DASHBOARD_ALLOW_UNAUTHENTICATED_NON_LOOPBACK",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    allow_unauthenticated_non_loopback: bool,
    /// Another name the page answers to (the Host a browser sends), e.g. dash.example.com (any
    /// port) or dash.example.com:8443. Repeatable; comma-separated in the environment variable.
    #[arg(
        long = "allowed-host",
        value_name = "HOST[:PORT]",
        env = "IBGW_DASHBOARD_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<HostName>,
}

/// One line on stderr, then exit with the code every ibgw binary uses for an unusable
/// configuration.
fn refuse(message: &str) -> ! {
    eprintln!("dashboard-client: {message}");
    std::process::exit(i32::from(ibgw_kit::EXIT_CONFIG));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // An empty variable (e.g. an unset compose substitution) means no token: fail closed below.
    let web_token = match args.web_token.filter(|t| !t.is_empty()).map(Token::new).transpose() {
        Ok(t) => t,
        Err(e) => refuse(&e),
    };
    if let Err(e) = guard::check_bind(args.listen, web_token.is_some(), args.allow_unauthenticated_non_loopback) {
        refuse(&e);
    }
    // Pretty lines at info, RUST_LOG wins: the dashboard has no configuration file.
    ibgw_kit::telemetry::init(&LogSettings::default());
    // Before the first stdout line: a supervisor may signal as soon as it reads it.
    let signals = Signals::install();
    let client = ibgw_client::connect_lazy(&args.gateway, args.token.as_deref(), Duration::from_secs(3))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    if !guard::is_loopback(local.ip()) && web_token.is_none() {
        tracing::warn!(listen = %local, "dashboard bound to a non-loopback address WITHOUT a token (--allow-unauthenticated-non-loopback)");
    }
    let guard = Guard::new(local, &args.allowed_hosts, web_token);
    let initial = Dashboard {
        gateway: GatewayLink { url: args.gateway.clone(), ..GatewayLink::default() },
        ..Dashboard::default()
    };
    let (model, rx) = watch::channel(initial);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    feed::spawn(client, model, &tracker, shutdown.clone());
    println!("{}", serde_json::json!({ "listen": local.to_string() }));
    tracing::info!(listen = %local, gateway = %args.gateway, token_required = guard.has_token(), "dashboard serving");
    let app = web::router(rx, shutdown.clone(), guard);
    let serve_shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(serve_shutdown.cancelled_owned()).await {
            tracing::warn!(error = %e, "web server stopped");
        }
    });
    signals.wait().await;
    shutdown.cancel();
    if !ibgw_kit::shutdown::tracker_within(&tracker, Duration::from_secs(5)).await {
        tracing::warn!("shutdown timed out");
    }
    Ok(())
}
