//! `trader-client` binary.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use trader_client::cli::Args;
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("trader-client: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let timeout = Duration::from_secs(3);
    let token = args.token.as_deref();
    let connected = match &args.tls_ca {
        Some(path) => {
            let ca = std::fs::read(path).map_err(|e| Failure::Other(format!("--tls-ca {}: {e}", path.display())))?;
            gateway_proto::client::connect_tls(&args.gateway, token, &ca, timeout).await
        }
        None => gateway_proto::client::connect(&args.gateway, token, timeout).await,
    };
    let mut client = connected.map_err(|e| Failure::from_connect(&args.gateway, e))?;
    loop {
        let report = fetch(&mut client, &args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::Other(e.to_string()))?);
        } else {
            print!("{}", report.text());
        }
        let Some(every) = args.interval else { return Ok(()) };
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
