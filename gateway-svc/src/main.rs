//! `gateway-svc` binary: parse the command line, load config, run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gateway_svc::{Config, Settings};

use ibgw_kit::Signals;
use tokio_util::sync::CancellationToken;

/// One IB Gateway session, shared with every local client over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve against a real IB Gateway / TWS (config: defaults, then FILE or ./gateway.toml, then
    /// IBGW__SECTION__KEY environment variables).
    Serve {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Exit 0 only when a running service reports SERVING (for healthchecks). Without --addr, the
    /// address and TLS come from the service's configuration (FILE or ./gateway.toml, then
    /// IBGW__SECTION__KEY variables): grpc.listen, with 0.0.0.0 or [::] dialled on loopback, over TLS
    /// with grpc.tls_cert_path as the CA when the service serves TLS.
    Health {
        /// gRPC address of the service: http://host:port, https://host:port or host:port
        /// [default: from the configuration, else http://127.0.0.1:50051].
        #[arg(long, env = "IBGW_ADDR")]
        addr: Option<String>,
        /// PEM file of the CA that signed the service's certificate (or the self-signed certificate);
        /// implies TLS [default: grpc.tls_cert_path when the address is https://].
        #[arg(long, env = "IBGW_HEALTH_TLS_CA", value_name = "FILE")]
        tls_ca: Option<PathBuf>,
        /// Name the service's certificate must carry [default: the address's host].
        #[arg(long, env = "IBGW_HEALTH_TLS_DOMAIN", value_name = "NAME")]
        tls_domain: Option<String>,
        /// The service's TOML config file, read when --addr (or, for https://, --tls-ca) is not given.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Service to check: the upstream session by default, "" for the process.
        #[arg(long, default_value = gateway_proto::SERVICE_NAME)]
        service: String,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Load and validate the configuration, print it (secrets redacted) and exit.
    CheckConfig {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The name error lines start with.
const PROGRAM: &str = "gateway-svc";

fn main() -> ExitCode {
    match Cli::parse().command {
        // Reads the configuration only when its options leave something open (see probe::resolve).
        Command::Health { addr, tls_ca, tls_domain, config, service, timeout_ms } => {
            let options = gateway_svc::ProbeOptions { addr, tls_ca, tls_domain };
            gateway_svc::run(PROGRAM, async move { health(&options, config.as_deref(), &service, timeout_ms).await })
        }
        Command::Serve { config } => match load(config.as_deref()) {
            Ok((_, config)) => gateway_svc::run(PROGRAM, serve(config)),
            Err(code) => code,
        },
        Command::CheckConfig { config } => match load(config.as_deref()) {
            // The settings as read (every key, units in the names), once they have validated.
            Ok((settings, _)) => {
                println!("{settings:#?}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

/// The settings as read and, validated once, the configuration; or exit 64 after one line.
fn load(file: Option<&Path>) -> Result<(Settings, Config), ExitCode> {
    let settings = gateway_svc::settings_or_exit(PROGRAM, file)?;
    let config = gateway_svc::config_or_exit(PROGRAM, &settings)?;
    Ok((settings, config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    gateway_svc::init_telemetry(&config.log);
    let signals = Signals::install();
    let shutdown = CancellationToken::new();
    let running = gateway_svc::start(config, shutdown.clone()).await?;
    println!(
        "{}",
        serde_json::json!({
            "grpc": running.grpc_addr.to_string(),
            "ops": running.ops_addr.to_string(),
            "tws_api": running.tws_api_addr.map(|a| a.to_string()),
        })
    );
    signals.wait().await;
    Ok(if running.stop().await { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn health(
    options: &gateway_svc::ProbeOptions,
    config: Option<&std::path::Path>,
    service: &str,
    timeout_ms: u64,
) -> anyhow::Result<ExitCode> {
    use gateway_svc::{ProbeResolveError as ResolveError, probe_target as check_target, probe_target_from as resolve};
    let target = match resolve(options, || Config::load(config)) {
        Ok(target) => target,
        Err(ResolveError::Config(e)) => {
            eprintln!("gateway-svc: {e}");
            return Ok(ExitCode::from(gateway_svc::EXIT_CONFIG));
        }
        Err(ResolveError::Probe(e)) => {
            println!("UNREACHABLE: {}", ibgw_kit::source_chain(&e));
            return Ok(ExitCode::from(2));
        }
    };
    match check_target(&target, service, Duration::from_millis(timeout_ms)).await {
        Ok(status) => {
            println!("{}", status.as_str_name());
            let serving = status == tonic_health::pb::health_check_response::ServingStatus::Serving;
            Ok(if serving { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Err(e) => {
            println!("UNREACHABLE: {}", ibgw_kit::source_chain(&e));
            Ok(ExitCode::from(2))
        }
    }
}
