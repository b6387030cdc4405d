//! `front-door`: what sharing the session through the TWS front door costs an IB API program.
//! The same raw text-codec client runs `connect + positions + account summary + disconnect`
//! against the front door and directly against the embedded simulator, alternating so that
//! drift hits both; the ratio of the medians is the figure (goal ≤ 1.2×). Then hundreds of
//! front-door clients stay connected (each subscribed to positions) and the service's resident
//! memory is compared with its idle figure (goal ≤ 64 MiB more), while the simulator must still
//! see exactly one upstream socket.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::header;
use crate::cli::{FrontDoorArgs, pick};
use crate::report::{Line, Table, latency_cells, mib};
use crate::stack::Spawned;
use crate::stats::{Summary, ms};
use crate::wire::WireClient;
use crate::{Error, Result};

const NAME: &str = "front-door";
const WITHIN: Duration = Duration::from_secs(10);
const GOAL_RATIO: f64 = 1.2;
const GOAL_RSS_MIB: f64 = 64.0;
/// Clients connect in waves of this many, so a small listen backlog is never the limit.
const WAVE: usize = 100;

/// Runs the scenario.
pub async fn run(args: &FrontDoorArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let runs = pick(args.runs, smoke, 30, 200).max(1);
    let clients = pick(args.clients, smoke, 500, 500).max(1);
    header(NAME, &format!("{runs} cycles through the front door and directly to ib-sim, then {clients} clients held"));
    let stack = Spawned::start(&[]).await?;
    let result = measure(&stack, runs, clients).await;
    stack.stop().await;
    result
}

/// One IB API program's visit: connect, read positions and a summary, disconnect.
async fn cycle(addr: SocketAddr, client_id: i32) -> Result<Duration> {
    let t0 = Instant::now();
    let mut c = WireClient::start(addr, client_id, WITHIN).await?;
    if c.subscribe_positions(WITHIN).await? == 0 {
        return Err(Error::Functional(format!("no positions from {addr}")));
    }
    if c.account_summary(1, WITHIN).await? == 0 {
        return Err(Error::Functional(format!("no account summary from {addr}")));
    }
    c.close().await;
    Ok(t0.elapsed())
}

async fn measure(stack: &Spawned, runs: u32, n_clients: usize) -> Result<Vec<Line>> {
    // Warm-up: first connections pay for lazily built state on both sides.
    for i in 0..5 {
        cycle(stack.sim_api, 20_000 + i).await?;
        cycle(stack.tws_api, 30_000 + i).await?;
    }
    let (mut direct, mut front) = (Vec::new(), Vec::new());
    for i in 0..runs as i32 {
        direct.push(cycle(stack.sim_api, 40_000 + i).await?);
        front.push(cycle(stack.tws_api, 50_000 + i).await?);
    }
    let (d, f) = (Summary::of(&direct), Summary::of(&front));
    let mut t = Table::new(
        format!("{NAME}: connect + positions + summary + disconnect, {runs} cycles each"),
        &["path", "median", "p95", "p99", "max"],
    );
    for (path, s) in [("directly to ib-sim", &d), ("through the front door", &f)] {
        let mut row = vec![path.to_owned()];
        row.extend(latency_cells(s.as_ref()));
        t.row(row);
    }
    t.print();

    let rss_idle = stack.rss_kib();
    let upstream_before = stack.control.stats().await.map_err(|e| Error::setup("simulator stats", e))?;
    let mut held = Vec::with_capacity(n_clients);
    for wave in (0..n_clients).collect::<Vec<_>>().chunks(WAVE) {
        let started = join_all(wave.iter().map(|i| async move {
            let mut c = WireClient::start(stack.tws_api, 60_000 + *i as i32, WITHIN).await?;
            c.subscribe_positions(WITHIN).await?;
            Ok::<_, Error>(c)
        }))
        .await;
        for c in started {
            held.push(c?);
        }
    }
    let rss_held = stack.rss_kib();
    let upstream = stack.control.stats().await.map_err(|e| Error::setup("simulator stats", e))?;
    let accepted = |s: &serde_json::Value| s["connections_accepted_total"].as_u64();
    if upstream["open_now"].as_u64() != Some(1) || accepted(&upstream) != accepted(&upstream_before) {
        return Err(Error::Functional(format!(
            "{n_clients} front-door clients changed the upstream sockets: {} open, {:?} → {:?} accepted",
            upstream["open_now"],
            accepted(&upstream_before),
            accepted(&upstream)
        )));
    }
    drop(held);
    let delta_mib = match (rss_held, rss_idle) {
        (Some(h), Some(i)) => Some(h.saturating_sub(i) as f64 / 1024.0),
        _ => None,
    };
    println!(
        "{NAME}: service RSS {} idle, {} with {n_clients} front-door clients (one upstream socket throughout)",
        mib(rss_idle),
        mib(rss_held)
    );

    let (Some(d), Some(f)) = (d, f) else { return Err(Error::Functional("no cycles measured".into())) };
    let ratio = f.p50.as_secs_f64() / d.p50.as_secs_f64();
    Ok(vec![
        Line::new(NAME, "connect + positions + summary + disconnect (median)", ms(f.p50))
            .baseline(format!("{} directly to ib-sim", ms(d.p50)), ratio)
            .goal(format!("≤ {GOAL_RATIO}×"), ratio <= GOAL_RATIO),
        Line::new(
            NAME,
            format!("service RSS growth with {n_clients} front-door clients"),
            match delta_mib {
                Some(m) => format!("{m:.1} MiB"),
                None => "n/a".into(),
            },
        )
        .baseline(
            format!("{} idle", mib(rss_idle)),
            match (rss_held, rss_idle) {
                (Some(h), Some(i)) if i > 0 => h as f64 / i as f64,
                _ => f64::NAN,
            },
        )
        .goal(format!("≤ {GOAL_RSS_MIB:.0} MiB more"), delta_mib.is_some_and(|m| m <= GOAL_RSS_MIB)),
    ])
}
