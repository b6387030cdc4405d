//! Command-line flags.

use std::time::Duration;

use clap::Parser;

/// Reads accounts, positions and the account summary from gateway-svc and prints a report.
///
/// Exit codes: 0 ok, 2 usage, 3 gateway-svc unreachable, 4 not ready in time, 5 data stale beyond
/// --max-staleness, 6 unknown account, 7 invalid symbol, 1 anything else.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about)]
pub struct Args {
    /// Comma-separated symbols, e.g. AAPL,MSFT.
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Print one report and exit (the default without --interval).
    #[arg(long, conflicts_with = "interval")]
    pub once: bool,
    /// Repeat every INTERVAL (e.g. 30s) on one channel until interrupted.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// gateway-svc gRPC address.
    #[arg(long, env = "IBGW_ADDR", default_value = gateway_proto::client::DEFAULT_ADDR)]
    pub gateway: String,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for the upstream session to be ready.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
    /// Refuse data that has been stale for longer than this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_staleness: Duration,
    /// Speak TLS, trusting this PEM certificate authority (gateway-svc with grpc.tls_*).
    #[arg(long, env = "IBGW_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Bearer token, when gateway-svc requires one.
    #[arg(long, env = "IBGW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}
