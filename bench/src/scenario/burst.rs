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

/// The median time for one direct client to receive the whole burst, and the updates it got.
async fn baseline(count: u32, rounds: u32) -> Result<(Duration, u64)> {
    let sim = Sim::start(SimConfig::ephemeral()).await.map_err(|e| Error::setup("baseline simulator", e))?;
    let result = async {
        let control =
            ControlClient::new(sim.control_addr().ok_or_else(|| Error::Setup("baseline simulator control".into()))?);
        let mut feed = PositionFeed::open(sim.api_addr(), DIRECT_ID).await?;
        let mut times = Vec::new();
        let mut updates = 0;
        for _ in 0..rounds {
            let t0 = Instant::now();
            control.inject(&burst(count)).await.map_err(|e| Error::setup("inject burst", e))?;
            let expected = quantity(&target_position(&control).await?.quantity)?;
            let (done, n) = feed.until_quantity(expected, patience(count as usize)).await?;
            times.push(done.duration_since(t0));
            updates = n;
        }
        feed.close().await;
        Ok((median_duration(&times).unwrap_or_default(), updates))
    }
    .await;
    sim.shutdown().await;
    result
}

fn quantity(q: &str) -> Result<f64> {
    q.parse().map_err(|_| Error::Functional(format!("simulator quantity {q:?} is not a number")))
}

async fn measure(
    gw: &Spawned,
    subscribers: usize,
    count: u32,
    rounds: u32,
    (direct, direct_updates): (Duration, u64),
) -> Result<Vec<Line>> {
    let mut fleet = Fleet::open(gw.grpc, subscribers, 100, patience(subscribers) * 3).await?;
    let mut t = Table::new(
        format!("{NAME}: {count} updates → every subscriber at the final quantity (ratio = p99 / direct client)"),
        &["round", "converged p50", "p95", "p99", "max", "msgs/subscriber min", "median", "max", "resyncs", "ratio"],
    );
    let mut p99s = Vec::new();
    let mut msgs_median = Vec::new();
    for round in 1..=rounds {
        fleet.drain()?;
        let mut msgs = vec![0u64; subscribers];
        let mut resyncs = 0u64;
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
        // Messages up to and including the converging one (later ones were not counted).
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
            times(ratio),
        ]);
        p99s.push(s.p99);
        msgs_median.push(median as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.print();
    fleet.close().await;
    println!("{NAME}: direct ibapi client received {direct_updates} updates in {} (median)", ms(direct));
    let p99 = median_duration(&p99s).unwrap_or_default();
    let msgs = crate::stats::median(&msgs_median).unwrap_or(0.0);
    Ok(vec![
        Line::new(NAME, format!("{count}-update burst → all {subscribers} converged (p99)"), ms(p99))
            .baseline(format!("{} direct client", ms(direct)), p99.as_secs_f64() / direct.as_secs_f64()),
        Line::new(NAME, "stream messages per subscriber for the burst (median)", format!("{msgs:.0}"))
            .baseline(format!("{direct_updates} updates direct"), msgs / direct_updates.max(1) as f64),
    ])
}
