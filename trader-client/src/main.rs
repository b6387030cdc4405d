//! `trader-client` binary.

use std::process::ExitCode;

use clap::Parser;
use trader_client::cli::Args;
use trader_client::signal::Signals;
use trader_client::{Failure, fetch};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trader-client: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(until_signal(args));
    // Nothing left to wait for: a blocking task (name resolution) must not delay the exit.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("trader-client: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

/// Listens for SIGINT and SIGTERM before doing anything else, then races the whole run against
/// them: a signal ends connecting, the wait for READY, a call in flight or the pause between
/// runs alike (exit 130 or 143).
async fn until_signal(args: Args) -> Result<(), Failure> {
    let mut signals = Signals::install().map_err(|e| Failure::Other(format!("cannot listen for signals: {e}")))?;
    tokio::select! {
        biased;
        signal = signals.recv() => Err(Failure::Interrupted(signal)),
        outcome = run(&args) => outcome,
    }
}

async fn run(args: &Args) -> Result<(), Failure> {
    trader_client::fetch::check_account(args.account.as_deref())?;
    let mut client = connect(args).await?;
    loop {
        let report = fetch(&mut client, args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::Other(e.to_string()))?);
        } else {
            print!("{}", report.text());
        }
        let Some(every) = args.interval else { return Ok(()) };
        tokio::time::sleep(every).await;
    }
}

/// Connects within --rpc-timeout (a TLS or HTTP/2 handshake that never completes included).
async fn connect(args: &Args) -> Result<ibgw_client::Client, Failure> {
    let limit = args.rpc_timeout;
    let token = args.token.as_deref();
    let connecting = async {
        match &args.tls_ca {
            Some(path) => {
                let ca =
                    std::fs::read(path).map_err(|e| Failure::Other(format!("--tls-ca {}: {e}", path.display())))?;
                Ok(ibgw_client::connect_tls(&args.gateway, token, &ca, limit).await)
            }
            None => Ok(ibgw_client::connect(&args.gateway, token, limit).await),
        }
    };
    match tokio::time::timeout(limit, connecting).await {
        Ok(connected) => connected?.map_err(|e| Failure::from_connect(&args.gateway, e)),
        Err(_) => Err(Failure::NoAnswer { addr: args.gateway.clone(), call: "connect", limit }),
    }
}
