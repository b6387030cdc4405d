//! Command-line flags.

use std::time::Duration;

use clap::Parser;

/// Reads accounts, positions, the account summary and profit and loss from gateway-svc and
/// prints a report.
///
/// Waits up to --ready-timeout for the upstream session to be READY. If it is still not ready,
/// the last known data is printed marked STALE, provided it has been stale for no longer than
/// --max-staleness. Every gRPC call has a deadline of --rpc-timeout. SIGINT and SIGTERM end the
/// process at once, whatever it is doing.
///
/// Each position shows its market value, unrealized and daily PnL, and each account its daily,
/// unrealized and realized PnL, in the account's base currency (labelled BASE), as gateway-svc
/// serves them. PnL that is missing, or stale for longer than --max-staleness, is printed as n/a
/// with the reason, never as 0, and does not fail the run.
#[derive(Debug, Clone, Parser)]
#[command(version, about, long_about, after_long_help = crate::exit::help())]
pub struct Args {
    /// Comma-separated symbols, e.g. AAPL,MSFT.
    #[arg(long, value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
    /// Print one report and exit (the default without --interval).
    #[arg(long, conflicts_with = "interval")]
    pub once: bool,
    /// Repeat every INTERVAL (e.g. 30s) on one channel until interrupted (SIGINT exits 130,
    /// SIGTERM 143) or a run fails.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// gateway-svc gRPC address.
    #[arg(long, env = "IBGW_ADDR", default_value = ibgw_client::DEFAULT_ADDR)]
    pub gateway: String,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// Wait this long for the upstream session to be ready; after that, stale data is printed
    /// if it is within --max-staleness, and with no data at all the run fails (exit 4).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
    /// Refuse data that has been stale for longer than this (exit 5); 0s accepts only live data.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub max_staleness: Duration,
    /// Deadline for connecting and for each gRPC call; a server that does not answer in time is
    /// treated as unreachable (exit 3). Waiting for READY is bounded by --ready-timeout instead.
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    pub rpc_timeout: Duration,
    /// Speak TLS, trusting this PEM certificate authority (gateway-svc with grpc.tls_*).
    #[arg(long, env = "IBGW_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Bearer token, when gateway-svc requires one.
    #[arg(long, env = "IBGW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_timeout_defaults_to_five_seconds_and_refuses_zero() {
        let a = Args::try_parse_from(["trader-client", "--symbols", "AAPL"]).expect("parses");
        assert_eq!(a.rpc_timeout, Duration::from_secs(5));
        assert!(Args::try_parse_from(["trader-client", "--symbols", "AAPL", "--rpc-timeout", "0s"]).is_err());
    }

    #[test]
    fn long_help_lists_every_exit_code() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for (code, _) in crate::exit::CODES {
            assert!(help.contains(&format!("  {code:>3}  ")), "exit {code} missing from --help:\n{help}");
        }
    }
}
