//! `gateway-svc` binary: parse the command line, load config, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway_svc::config::Settings;
use gateway_svc::demo::{Demo, DemoAddrs};
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
    /// Serve against the embedded simulator: no IBKR account needed, TWS front door on. The first
    /// stdout line is a JSON object with the bound addresses (keys grpc, ops, tws_api, sim_api,
    /// sim_control).
    Demo {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_file = match &cli.command {
        Command::Serve { config }
        | Command::Demo { config, .. }
        | Command::CheckConfig { config }
        | Command::Health { config, .. } => config.clone(),
    };
    let settings = match &cli.command {
        // Reads the configuration only when its options leave something open (see probe::resolve).
        Command::Health { .. } => Settings::default(),
        _ => match Settings::load(config_file.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("gateway-svc: {e}");
                return ExitCode::from(gateway_svc::EXIT_CONFIG);
            }
        },
    };
    let runtime = match gateway_svc::runtime::builder().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway-svc: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { .. } => serve(settings).await,
            Command::Demo {
                grpc_listen, ops_listen, tws_api_listen, sim_listen, sim_control_listen, scenario, ..
            } => {
                let mut settings = settings;
                settings.tws_api.enabled = true;
                if let Some(a) = tws_api_listen {
                    settings.tws_api.listen = a.to_string();
                }
                if let Some(a) = grpc_listen {
                    settings.grpc.listen = a.to_string();
                }
                if let Some(a) = ops_listen {
                    settings.ops.listen = a.to_string();
                }
                demo(settings, DemoAddrs { sim_api: sim_listen, sim_control: sim_control_listen }, scenario).await
            }
            Command::Health { addr, tls_ca, tls_domain, config, service, timeout_ms } => {
                let options = gateway_svc::probe::Options { addr, tls_ca, tls_domain };
                health(&options, config.as_deref(), &service, timeout_ms).await
            }
            Command::CheckConfig { .. } => {
                println!("{settings:#?}");
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway-svc: {}", ibgw_client::source_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<ExitCode> {
    gateway_svc::telemetry::init(&settings.log);
    let signals = Signals::install();
    let shutdown = CancellationToken::new();
    let running = gateway_svc::start(settings, shutdown.clone()).await?;
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

async fn demo(settings: Settings, addrs: DemoAddrs, scenario: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    gateway_svc::telemetry::init(&settings.log);
    let scenario = match scenario {
        Some(path) => ib_sim::Scenario::from_file(&path).with_context(|| format!("scenario {}", path.display()))?,
        None => ib_sim::Scenario::default(),
    };
    let signals = Signals::install();
    let demo = Demo::start(settings, addrs, scenario, CancellationToken::new()).await?;
    println!("{}", demo.addresses_json());
    signals.wait().await;
    Ok(if demo.stop().await { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn health(
    options: &gateway_svc::probe::Options,
    config: Option<&std::path::Path>,
    service: &str,
    timeout_ms: u64,
) -> anyhow::Result<ExitCode> {
    use gateway_svc::probe::{ResolveError, check_target, resolve};
    let target = match resolve(options, || Settings::load(config)) {
        Ok(target) => target,
        Err(ResolveError::Config(e)) => {
            eprintln!("gateway-svc: {e}");
            return Ok(ExitCode::from(gateway_svc::EXIT_CONFIG));
        }
        Err(ResolveError::Probe(e)) => {
            println!("UNREACHABLE: {}", ibgw_client::source_chain(&e));
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
            println!("UNREACHABLE: {}", ibgw_client::source_chain(&e));
            Ok(ExitCode::from(2))
        }
    }
}

/// SIGINT and SIGTERM (docker stop sends SIGTERM), caught from the moment this is made. It is
/// made before the first stdout line, because a supervisor may signal as soon as it reads that
/// line, and a signal before the handler exists kills the process without a clean shutdown.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self { term: signal(SignalKind::terminate()).ok(), int: signal(SignalKind::interrupt()).ok() }
    }

    async fn wait(self) {
        async fn recv(signal: Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(self.term) => {}
            _ = recv(self.int) => {}
        }
        tracing::info!("signal received; shutting down");
    }
}
