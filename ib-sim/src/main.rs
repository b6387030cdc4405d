//! `ib-sim` command line: run the simulator as its own process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ib_sim::{Scenario, Sim, SimConfig};

/// A wire-faithful IB Gateway simulator with scripted data and fault injection.
///
/// With port 0 on either address, the first stdout line is a JSON object with the bound
/// addresses, e.g. {"api":"127.0.0.1:40123","control":"127.0.0.1:40124"}.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Address for TWS API clients (a paper gateway uses 4002).
    #[arg(long, default_value = "127.0.0.1:4002")]
    listen: SocketAddr,
    /// Address for the HTTP control API (loopback only).
    #[arg(long, default_value = "127.0.0.1:4100")]
    control_listen: SocketAddr,
    /// Scenario TOML file (accounts, positions, account values, scheduled faults); the built-in
    /// one has two paper accounts with stocks, an ETF and an option.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let scenario = match cli.scenario.as_deref().map(Scenario::from_file).transpose() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            eprintln!("ib-sim: {:#}", anyhow::Error::from(e));
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ib-sim: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(SimConfig { api: cli.listen, control: Some(cli.control_listen), scenario })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ib-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: SimConfig) -> anyhow::Result<()> {
    let sim = Sim::start(config).await?;
    let control = sim.control_addr().map(|a| a.to_string());
    println!("{}", serde_json::json!({ "api": sim.api_addr().to_string(), "control": control }));
    shutdown_signal().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
