//! `ibgw-bench` binary: parse the command line, run the scenario, exit non-zero only when a
//! scenario could not run or the system misbehaved (a missed performance goal is reported, not an
//! error).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ibgw_bench::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibgw-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(ibgw_bench::run(cli.command))?;
    Ok(())
}
