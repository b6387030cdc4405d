//! `ibgw-bridge` binary: parse the command line, load config, run until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ibgw_bridge::Settings;
use ibgw_kit::Signals;
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
    /// Exit 0 when a running bridge is ready (its ops port's /readyz answers 200), 1 when it is
    /// not, 2 when nothing answers. The address is ops.listen from the configuration, with
    /// 0.0.0.0 or [::] dialled on loopback. For container healthchecks.
    Health {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
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
    let (Command::Run { config } | Command::CheckConfig { config } | Command::Health { config, .. }) = &cli.command;
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
    if let Command::Health { timeout_ms, .. } = cli.command {
        return health(&settings, std::time::Duration::from_millis(timeout_ms));
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
    ibgw_kit::telemetry::init(&settings.log);
    // Installed before the address line: a supervisor may signal as soon as it reads it.
    let signals = Signals::install();
    let running = ibgw_bridge::start(settings, CancellationToken::new()).await?;
    println!("{}", serde_json::json!({ "ops": running.ops_addr.to_string() }));
    signals.wait().await;
    Ok(if running.stop().await { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// GET /readyz on the ops port, with plain std I/O (HTTP/1.0: the server closes after answering).
fn health(settings: &Settings, timeout: std::time::Duration) -> ExitCode {
    use std::io::{Read, Write};
    let Ok(mut addr) = settings.ops.listen.parse::<std::net::SocketAddr>() else {
        println!("UNREACHABLE: ops.listen is not an address");
        return ExitCode::from(2);
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let answer = (|| -> std::io::Result<String> {
        let mut conn = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        conn.write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
        let mut text = String::new();
        conn.take(64 * 1024).read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) => {
            let ready = text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200");
            println!("{}", if ready { "READY" } else { "NOT_READY" });
            if let Some((_, body)) = text.split_once("\r\n\r\n") {
                println!("{body}");
            }
            if ready { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            println!("UNREACHABLE: {addr}: {e}");
            ExitCode::from(2)
        }
    }
}
