//! Compressed-time soak of the whole stack, in one process: the simulator restarts on a schedule
//! (with an IB link loss now and then), positions change all the while, dashboards stream, a
//! trader opens a fresh channel for every run, and unmodified IB API programs (the Rust `ibapi`
//! client) use the TWS front door: short runs, and one client that follows positions throughout. At the end every view must equal the simulator's
//! truth, no socket may leak, and memory must not grow without bound.
//!
//! - [`Args`]: the knobs.
//! - [`run`]: the soak; [`Report`] what it measured.

mod actors;
mod ib_api;
mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ib_sim::{Fault, Scenario, ScheduledFault};
use ibgw_demo::{Demo, DemoAddrs};
use tokio_util::sync::CancellationToken;

pub use report::Report;

/// Knobs of a soak run. Defaults are the full run documented in `docs/RELIABILITY.md`.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Args {
    /// Gateway restarts scheduled by the simulator.
    #[arg(long, default_value_t = 100)]
    pub restarts: u64,
    /// Time between restarts.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub restart_every: Duration,
    /// How long the gateway port refuses connections at each restart.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub down: Duration,
    /// After every Nth restart, half-way to the next one, an IB link loss (1100, then 1101 after
    /// --down) in addition to the restarts, so N=5 adds restarts/5 of them; 0 disables.
    #[arg(long, default_value_t = 5)]
    pub link_loss_every: u64,
    /// Trader runs (fresh channel, ready check, accounts, positions, summary), spread over the soak.
    #[arg(long, default_value_t = 1000)]
    pub trader_runs: u64,
    /// IB API runs through the TWS front door (Rust `ibapi`: connect, positions, account
    /// summary, disconnect), spread over the soak.
    #[arg(long, default_value_t = 500)]
    pub ib_api_runs: u64,
    /// Streaming dashboards (each its own connection with a positions and a summary stream).
    #[arg(long, default_value_t = 4)]
    pub dashboards: usize,
    /// Interval of simulated position changes.
    #[arg(long, default_value = "40ms", value_parser = humantime::parse_duration)]
    pub mutate_every: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn settings() -> gateway_svc::Settings {
    let mut s = gateway_svc::Settings::default();
    s.grpc.listen = "127.0.0.1:0".into();
    s.ops.listen = "127.0.0.1:0".into();
    s.tws_api.enabled = true;
    s.tws_api.listen = "127.0.0.1:0".into();
    s.upstream.backoff_initial_ms = 50;
    s.upstream.backoff_max_ms = 400;
    s.upstream.connect_timeout_ms = 2_000;
    s.upstream.sync_timeout_ms = 5_000;
    s.upstream.probe_idle_ms = 1_100;
    s.upstream.probe_timeout_ms = 1_000;
    s.shutdown.grace_ms = 5_000;
    s
}

fn schedule(args: &Args) -> Vec<ScheduledFault> {
    let every = args.restart_every.as_millis() as u64;
    let mut items = Vec::new();
    let restarts = args.restarts;
    let losses = args.restarts.checked_div(args.link_loss_every).unwrap_or(0);
    if restarts > 0 {
        items.push(ScheduledFault {
            at_ms: every,
            every_ms: Some(every),
            count: Some(restarts),
            fault: Fault::Restart { down_ms: args.down.as_millis() as u64 },
        });
    }
    if losses > 0 {
        // Half-way between restarts, so the two never overlap.
        items.push(ScheduledFault {
            at_ms: every * args.link_loss_every + every / 2,
            every_ms: Some(every * args.link_loss_every),
            count: Some(losses),
            fault: Fault::LinkLost { restore_ms: args.down.as_millis() as u64, data_lost: true },
        });
    }
    items
}

/// Runs the soak and measures it.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let scenario = Scenario { schedule: schedule(args), ..Scenario::default() };
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let demo = Demo::start(
        settings().validate()?,
        DemoAddrs { sim_api: any, sim_control: any },
        scenario,
        CancellationToken::new(),
    )
    .await
    .map_err(|e| anyhow::anyhow!(ibgw_client::source_chain(&e)))?;
    let grpc = demo.service.grpc_addr;
    let started = Instant::now();
    let rss_start = report::rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let total = args.restart_every * (args.restarts as u32 + 1);

    let monitor = tokio::spawn(actors::monitor(Arc::clone(&demo.service.state), Arc::clone(&stop)));
    let mut view_rxs = Vec::new();
    let mut dashboards = Vec::new();
    for _ in 0..args.dashboards {
        let (tx, rx) = tokio::sync::watch::channel(actors::Truth::new());
        view_rxs.push(rx);
        dashboards.push(tokio::spawn(actors::dashboard(grpc, Arc::clone(&stop), tx)));
    }
    let tws = demo.service.tws_api_addr.ok_or_else(|| anyhow::anyhow!("the TWS front door is off"))?;
    let (tx, rx) = tokio::sync::watch::channel(actors::Truth::new());
    view_rxs.push(rx);
    let follower = tokio::spawn(ib_api::follower(tws, Arc::clone(&stop), tx));
    let trader = tokio::spawn(actors::trader(grpc, args.trader_runs, total));
    let ib_api = tokio::spawn(ib_api::runs(tws, args.ib_api_runs, total, Arc::clone(&demo.service.state)));
    let mutator = actors::mutate(&demo.sim, args.mutate_every, total).await;

    // Let the schedule finish, then the trader.
    let restarts_done = |d: &Demo| d.sim.stats().faults.get("restart").copied().unwrap_or(0) >= args.restarts;
    let deadline = Instant::now() + total + Duration::from_secs(30);
    while !restarts_done(&demo) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let trader = trader.await?;
    let ib_api = ib_api.await?;
    let rss_mid = report::rss_kib();

    // Quiesce: once ready, every view must converge to the simulator's truth.
    let truth = actors::truth(&demo.sim);
    let mut converged = actors::wait_converged(&demo, &truth, Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while converged && !view_rxs.iter().all(|rx| *rx.borrow() == truth) {
        if Instant::now() > deadline {
            converged = false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut views = Vec::new();
    for d in dashboards {
        views.push(d.await?);
    }
    let follower = follower.await?;
    let outages = monitor.await?;
    let health = demo.service.state.health();
    let stats = demo.sim.stats();
    // Neither the gateway's port nor the front door's may keep a half-closed socket.
    let close_wait = report::close_wait(demo.sim.api_addr().port()) + report::close_wait(tws.port());
    let report = Report::new(report::Inputs {
        args: args.clone(),
        elapsed: started.elapsed(),
        mutations: mutator,
        trader,
        ib_api,
        follower,
        views,
        truth,
        converged,
        outages,
        reconnects: health.reconnects,
        epoch: health.epoch,
        stats,
        close_wait,
        rss_start,
        rss_mid,
        rss_end: report::rss_kib(),
    });
    let clean = demo.stop().await;
    anyhow::ensure!(clean, "the service did not stop within its grace");
    Ok(report)
}
