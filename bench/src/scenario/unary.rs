//! `unary`: cached GetPositions throughput and latency at several concurrency levels, against an
//! empty-handler tonic server measured the same way in the same run. Both servers run in this
//! process, sharing its runtime with the load generator exactly alike, so the ratio isolates
//! what gateway-svc adds to tonic: its middleware (timeout, concurrency limit, load shedding,
//! auth interceptor), the snapshot read, the filter and the response encoding. The servers take
//! turns in short slices, and the load generator does not decode answers (see [`crate::caller`]),
//! so that it does the same work for every server.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_proto::pb;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::header;
use crate::caller::RawCaller;
use crate::cli::{UnaryArgs, pick};
use crate::empty::{EmptyServer, Extras};
use crate::report::{Line, Table, latency_cells, times};
use crate::stack::{self, InProcess};
use crate::stats::Summary;
use crate::{Error, Result};

const NAME: &str = "unary";
/// The goal: gateway-svc keeps at least this share of the empty server's throughput.
const GOAL_RATIO: f64 = 0.8;
/// Turns each server takes per level; the level's duration is split evenly between them.
const SLICES: u32 = 5;
/// A bound on calls per task, whatever the duration.
const MAX_CALLS_PER_TASK: usize = 2_000_000;

/// What one load run measured.
#[derive(Debug)]
struct Load {
    rps: f64,
    latency: Option<Summary>,
}

/// Runs the scenario.
pub async fn run(args: &UnaryArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let levels = args.levels.clone().unwrap_or_else(|| vec![1, 16, 64]);
    let duration = Duration::from_millis(pick(args.duration_ms, smoke, 500, 3_000));
    let channels = args.channels.unwrap_or(4).max(1);
    header(NAME, &format!("GetPositions for {duration:?} per level and server, over up to {channels} connections"));
    let gateway = InProcess::start().await?;
    // Everything started is stopped again, whatever fails in between.
    let mut started = Vec::new();
    let result = async {
        let payload = sanity(gateway.grpc()).await?;
        let empty = EmptyServer::start(Extras::default()).await?;
        let mut servers = vec![("gateway-svc", gateway.grpc()), ("empty handler", empty.addr)];
        started.push(empty);
        if args.breakdown {
            let with_middleware = EmptyServer::start(Extras { middleware: true, positions: None }).await?;
            let with_payload = EmptyServer::start(Extras { middleware: false, positions: Some(payload) }).await?;
            servers.push(("empty + gateway middleware", with_middleware.addr));
            servers.push(("empty + gateway's payload", with_payload.addr));
            started.extend([with_middleware, with_payload]);
        }
        measure(&servers, &levels, channels, duration).await
    }
    .await;
    for s in started {
        s.stop().await;
    }
    gateway.stop().await;
    result
}

/// Checks, before any load, that the gateway answers GetPositions with data; returns that answer
/// (the payload the breakdown's empty server returns).
async fn sanity(addr: SocketAddr) -> Result<pb::GetPositionsResponse> {
    let r = stack::connect(addr)
        .await?
        .get_positions(pb::GetPositionsRequest::default())
        .await
        .map_err(|s| Error::functional("GetPositions", s))?;
    let r = r.into_inner();
    if r.positions.is_empty() {
        return Err(Error::Functional("GetPositions returned no positions".into()));
    }
    Ok(r)
}

/// Servers in order: gateway-svc, empty handler, then any breakdown variants.
async fn measure(
    servers: &[(&str, SocketAddr)],
    levels: &[usize],
    channels: usize,
    duration: Duration,
) -> Result<Vec<Line>> {
    let mut t = Table::new(
        format!("{NAME}: GetPositions (all positions), ratio = rps / empty-handler rps"),
        &["in flight", "connections", "server", "rps", "p50", "p95", "p99", "max", "ratio"],
    );
    let mut lines = Vec::new();
    for &level in levels {
        let level = level.max(1);
        let conns = channels.min(level);
        // The servers take turns in short slices, each slice starting with a different one, so
        // that drift in the machine's load (other work, CPU frequency) hits all of them alike.
        let slice = duration / SLICES;
        let mut samples: Vec<Vec<u32>> = vec![Vec::new(); servers.len()];
        for round in 0..SLICES as usize {
            for k in 0..servers.len() {
                let i = (round + k) % servers.len();
                samples[i].extend(load(servers[i].1, level, conns, slice).await?);
            }
        }
        let loads: Vec<Load> = samples
            .into_iter()
            .map(|mut s| Load { rps: s.len() as f64 / duration.as_secs_f64(), latency: Summary::of_micros(&mut s) })
            .collect();
        let (Some(g), Some(e)) = (loads.first(), loads.get(1)) else {
            return Err(Error::Setup("unary needs the gateway and the empty server".into()));
        };
        let ratio = g.rps / e.rps;
        for ((name, _), l) in servers.iter().zip(&loads) {
            let mut cells = vec![level.to_string(), conns.to_string(), (*name).into(), format!("{:.0}", l.rps)];
            cells.extend(latency_cells(l.latency.as_ref()));
            cells.push(if std::ptr::eq(l, e) { String::new() } else { times(l.rps / e.rps) });
            t.row(cells);
        }
        lines.push(
            Line::new(NAME, format!("GetPositions rps, {level} in flight"), format!("{:.0}", g.rps))
                .baseline(format!("{:.0}", e.rps), ratio)
                .goal(format!("≥ {GOAL_RATIO}×"), ratio >= GOAL_RATIO),
        );
    }
    t.print();
    Ok(lines)
}

/// `concurrency` tasks calling GetPositions back to back over `conns` connections for a warm-up
/// (not recorded) and then `duration`; the latencies (µs) of the calls started in that window.
async fn load(addr: SocketAddr, concurrency: usize, conns: usize, duration: Duration) -> Result<Vec<u32>> {
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(stack::channel(addr).await?);
    }
    let warmup = (duration / 5).max(Duration::from_millis(50));
    let measure_from = Instant::now() + warmup;
    let until = measure_from + duration;
    // Every answer must have the size of the first: the servers' data does not change here.
    let expected = RawCaller::new(clients[0].clone())
        .get_positions()
        .await
        .map_err(|s| Error::functional(&format!("GetPositions on {addr}"), s))?
        .len();
    let mut tasks = JoinSet::new();
    for i in 0..concurrency {
        let mut caller = RawCaller::new(clients[i % conns].clone());
        tasks.spawn(async move {
            let mut samples: Vec<u32> = Vec::new();
            let mut failure = None;
            for _ in 0..MAX_CALLS_PER_TASK {
                let start = Instant::now();
                if start >= until {
                    break;
                }
                match caller.get_positions().await {
                    Ok(r) if r.len() != expected => {
                        failure = Some(format!("an answer of {} bytes, not {expected}", r.len()));
                        break;
                    }
                    Ok(_) if start >= measure_from => {
                        samples.push(u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(_) => {}
                    Err(s) => {
                        failure = Some(format!("{:?}: {}", s.code(), s.message()));
                        break;
                    }
                }
            }
            (samples, failure)
        });
    }
    let mut all: Vec<u32> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (samples, failure) = joined.map_err(|e| Error::functional("load task", e))?;
        if let Some(f) = failure {
            return Err(Error::Functional(format!("GetPositions on {addr} failed under load: {f}")));
        }
        all.extend(samples);
    }
    // The last calls may end after `until`; rps counts calls started in the window over it.
    Ok(all)
}
