//! `ibgw-soak`: compressed-time soak. See `ibgw_soak::Args` for the knobs.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ibgw_soak::Args::parse();
    let report = ibgw_soak::run(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    let failures = report.failures();
    if failures.is_empty() { Ok(()) } else { anyhow::bail!("soak failed: {}", failures.join("; ")) }
}
