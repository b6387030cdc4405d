//! `ibgw-bridge` binary: parse the command line, load config, run until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ibgw_bridge::Settings;
use tokio_util::sync::CancellationToken;

/// Publishes gateway-svc's positions, account summary and health to NATS JetStream.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow gateway-svc and publish (config: defaults, then FILE or ./bridge.toml, then
    /// IBGW_BRIDGE__SECTION__KEY environment variables). The first stdout line is a JSON object
    /// with the ops address.
    Run {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration, print it (secrets redacted) and exit.
    CheckConfig {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Run { config } | Command::CheckConfig { config }) = &cli.command;
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ibgw-bridge: {e}");
            return ExitCode::from(ibgw_bridge::EXIT_CONFIG);
        }
    };
    if let Command::CheckConfig { .. } = cli.command {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ibgw-bridge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ibgw-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    ibgw_bridge::telemetry::init(&settings.log);
    // Installed before the address line: a supervisor may signal as soon as it reads it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = ibgw_bridge::start(settings, CancellationToken::new()).await?;
    println!("{}", serde_json::json!({ "ops": running.ops_addr.to_string() }));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received; shutting down");
    Ok(if running.stop().await { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
