//! `ibgw-bench` binary: parse the command line, run the scenario, exit non-zero only on a
//! functional failure.

use clap::Parser;
use ibgw_bench::Cli;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(ibgw_bench::run(cli.command))?;
    Ok(())
}
