//! `ibgw-demo` binary: gateway-svc against the embedded simulator, with the TWS front door on. No
//! IBKR account needed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gateway_svc::Config;

use ibgw_demo::{Demo, DemoAddrs};
use ibgw_kit::Signals;
use tokio_util::sync::CancellationToken;

/// Serve against the embedded simulator: no IBKR account needed, TWS front door on. The first
/// stdout line is a JSON object with the bound addresses (keys grpc, ops, tws_api, sim_api,
/// sim_control). Config: defaults, then FILE or ./gateway.toml, then IBGW__SECTION__KEY
/// environment variables, as for `gateway-svc serve`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// TOML config file (its upstream address is replaced by the simulator's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// gRPC listen address (overrides config).
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// Ops HTTP listen address (overrides config).
    #[arg(long)]
    ops_listen: Option<SocketAddr>,
    /// TWS front-door listen address (overrides config; the demo always serves it).
    #[arg(long)]
    tws_api_listen: Option<SocketAddr>,
    /// Simulated gateway API address.
    #[arg(long, default_value = "127.0.0.1:4002")]
    sim_listen: SocketAddr,
    /// Simulator control API address.
    #[arg(long, default_value = "127.0.0.1:4100")]
    sim_control_listen: SocketAddr,
    /// Simulator scenario TOML (default: the built-in one).
    #[arg(long)]
    scenario: Option<PathBuf>,
}

/// The name error lines start with.
const PROGRAM: &str = "ibgw-demo";

fn main() -> ExitCode {
    let args = Args::parse();
    let mut settings = match gateway_svc::settings_or_exit(PROGRAM, args.config.as_deref()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    settings.tws_api.enabled = true;
    if let Some(a) = args.tws_api_listen {
        settings.tws_api.listen = a.to_string();
    }
    if let Some(a) = args.grpc_listen {
        settings.grpc.listen = a.to_string();
    }
    if let Some(a) = args.ops_listen {
        settings.ops.listen = a.to_string();
    }
    // Validated once, after the flags: an override is checked like the file it overrides.
    let config = match gateway_svc::config_or_exit(PROGRAM, &settings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addrs = DemoAddrs { sim_api: args.sim_listen, sim_control: args.sim_control_listen };
    gateway_svc::run(PROGRAM, demo(config, addrs, args.scenario))
}

async fn demo(config: Config, addrs: DemoAddrs, scenario: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    gateway_svc::init_telemetry(&config.log);
    let scenario = match scenario {
        Some(path) => ib_sim::Scenario::from_file(&path).with_context(|| format!("scenario {}", path.display()))?,
        None => ib_sim::Scenario::default(),
    };
    let signals = Signals::install();
    let demo = Demo::start(config, addrs, scenario, CancellationToken::new()).await?;
    println!("{}", demo.addresses_json());
    signals.wait().await;
    Ok(if demo.stop().await { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
