//! `burst`: the simulator steps one position through `count` updates as fast as it can, with S
//! subscribers on gateway-svc. Measured: the time until every subscriber shows the simulator's
//! final quantity, and how many stream messages each needed. The session pulls up to 512
//! upstream items per wake-up and publishes them as one delta, so a subscriber sees far fewer
//! messages than there were updates, and never a wrong intermediate state.
//!
//! The baseline is one direct `ibapi` client subscribed to positions on a simulator of its own,
//! receiving every one of the updates, measured in the same run.

use std::time::Duration;

use ib_sim::{ControlClient, Fault, Sim, SimConfig};
use tokio::time::Instant;

use super::{header, patience, target_position};
use crate::cli::{BurstArgs, pick};
use crate::direct::PositionFeed;
use crate::fleet::Fleet;
use crate::report::{Line, Table, times};
use crate::stack::Spawned;
use crate::stats::{Summary, median_duration, ms};
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

const NAME: &str = "burst";
/// Client id of the direct baseline.
const DIRECT_ID: i32 = 4000;
/// What `ibapi` logs (at warn) when a subscription falls behind its channel and frames are
/// dropped; gateway-svc's log shows it when its own upstream reader lagged.
const LAG_WARNING: &str = "subscription fell behind";

fn burst(count: u32) -> Fault {
    Fault::Burst { count, con_id: Some(TARGET_CON_ID), account: Some(TARGET_ACCOUNT.into()) }
}

/// Runs the scenario.
pub async fn run(args: &BurstArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let subscribers = pick(args.subscribers, smoke, 10, 100).max(1);
    let count = pick(args.count, smoke, 2_000, 10_000).max(1);
    let rounds = pick(args.rounds, smoke, 1, 2).max(1);
    header(NAME, &format!("{count} upstream updates, {subscribers} subscribers, {rounds} round(s)"));
    let direct = baseline(count, rounds).await?;
    let gw = Spawned::start(&[]).await?;
    let result = measure(&gw, subscribers, count, rounds, direct).await;
    gw.stop().await;
    result
}

/// The direct client's figures.
#[derive(Debug, Clone, Copy)]
struct Direct {
    /// Median time to the final quantity.
    time: Duration,
    /// Target updates received in the last round.
    updates: u64,
    /// Frames `ibapi` dropped because the reader fell behind, over all rounds.
    dropped: u64,
}

/// One direct client on its own simulator receiving the whole burst.
async fn baseline(count: u32, rounds: u32) -> Result<Direct> {
    let sim = Sim::start(SimConfig::ephemeral())
        .await
        .map_err(|e| Error::setup("baseline simulator", ibgw_client::source_chain(&e)))?;
    let result = async {
        let control =
            ControlClient::new(sim.control_addr().ok_or_else(|| Error::Setup("baseline simulator control".into()))?);
        let mut feed = PositionFeed::open(sim.api_addr(), DIRECT_ID).await?;
        let mut times = Vec::new();
        let mut updates = 0;
        let mut dropped = 0;
        for _ in 0..rounds {
            let t0 = Instant::now();
            control.inject(&burst(count)).await.map_err(|e| Error::setup("inject burst", e))?;
            let expected = quantity(&target_position(&control).await?.quantity)?;
            let (done, n, lost) = feed.until_quantity(expected, patience(count as usize)).await?;
            times.push(done.duration_since(t0));
            updates = n;
            dropped += lost;
        }
        feed.close().await;
        Ok(Direct { time: median_duration(&times).unwrap_or_default(), updates, dropped })
    }
    .await;
    sim.shutdown().await;
    result
}

fn quantity(q: &str) -> Result<f64> {
    q.parse().map_err(|_| Error::Functional(format!("simulator quantity {q:?} is not a number")))
}

async fn measure(gw: &Spawned, subscribers: usize, count: u32, rounds: u32, d: Direct) -> Result<Vec<Line>> {
    let (direct, direct_updates) = (d.time, d.updates);
    let mut fleet = Fleet::open(gw.grpc, subscribers, 100, patience(subscribers) * 3).await?;
    let mut t = Table::new(
        format!("{NAME}: {count} updates → every subscriber at the final quantity (ratio = p99 / direct client)"),
        &[
            "round",
            "converged p50",
            "p95",
            "p99",
            "max",
            "msgs/subscriber min",
            "median",
            "max",
            "resyncs",
            "upstream frames dropped (events)",
            "ratio",
        ],
    );
    let mut p99s = Vec::new();
    let mut msgs_median = Vec::new();
    for round in 1..=rounds {
        fleet.drain()?;
        let mut msgs = vec![0u64; subscribers];
        let mut resyncs = 0u64;
        let lag_before = gw.log_lines_with(LAG_WARNING).len();
        let t0 = Instant::now();
        gw.control.inject(&burst(count)).await.map_err(|e| Error::setup("inject burst", e))?;
        let expected = quantity(&target_position(&gw.control).await?.quantity)?;
        let got = fleet
            .until_each(
                patience(count as usize + subscribers),
                |e| {
                    msgs[e.idx] += 1;
                    if e.kind == gateway_proto::pb::UpdateKind::Resync {
                        resyncs += 1;
                    }
                },
                |e| e.target.as_deref().and_then(|q| q.parse::<f64>().ok()) == Some(expected),
            )
            .await?;
        // Messages from the burst's start until every subscriber had converged; once a
        // subscriber has the final quantity the burst is over for it, so nothing later counts.
        let lat: Vec<Duration> = got.iter().map(|e| e.at.duration_since(t0)).collect();
        let s = Summary::of(&lat).ok_or_else(|| Error::Functional("no convergence times".into()))?;
        let mut sorted = msgs.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let ratio = s.p99.as_secs_f64() / direct.as_secs_f64();
        t.row(vec![
            round.to_string(),
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            sorted.first().copied().unwrap_or(0).to_string(),
            median.to_string(),
            sorted.last().copied().unwrap_or(0).to_string(),
            resyncs.to_string(),
            upstream_lag(gw, lag_before),
            times(ratio),
        ]);
        p99s.push(s.p99);
        msgs_median.push(median as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.print();
    fleet.close().await;
    println!(
        "{NAME}: direct ibapi client received {direct_updates} updates in {} (median); ibapi dropped {} frames \
         because the reader fell behind (all rounds)",
        ms(direct),
        d.dropped
    );
    let p99 = median_duration(&p99s).unwrap_or_default();
    let msgs = crate::stats::median(&msgs_median).unwrap_or(0.0);
    Ok(vec![
        Line::new(NAME, format!("{count}-update burst → all {subscribers} converged (p99)"), ms(p99))
            .baseline(format!("{} direct client", ms(direct)), p99.as_secs_f64() / direct.as_secs_f64()),
        Line::new(NAME, "stream messages per subscriber for the burst (median)", format!("{msgs:.0}"))
            .baseline(format!("{direct_updates} updates direct"), msgs / direct_updates.max(1) as f64),
    ])
}

/// Frames gateway-svc's own `ibapi` reader dropped since `before` log lines, and in how many
/// lag events, from the warnings `ibapi` logs.
fn upstream_lag(gw: &Spawned, before: usize) -> String {
    let lines = gw.log_lines_with(LAG_WARNING);
    let new = lines.get(before..).unwrap_or_default();
    let frames: u64 = new.iter().map(|l| crate::direct::frames_dropped(l)).sum();
    format!("{frames} ({})", new.len())
}
