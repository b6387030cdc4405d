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
    // The same runtime settings as gateway-svc, whose service also runs in this process for the
    // in-process scenarios.
    let runtime = gateway_svc::runtime_builder().build().context("cannot start the runtime")?;
    // The scenario runs as a task on the workers, not on this thread: collectors that thousands
    // of subscriber tasks report to would otherwise need a cross-thread wake-up (a futex call)
    // for nearly every report, load that the figures would wrongly attribute to the service.
    let scenario = runtime.spawn(ibgw_bench::run(cli.command));
    runtime.block_on(scenario).context("the benchmark task panicked")??;
    Ok(())
}
