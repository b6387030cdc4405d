//! `fanout`: N WatchPositions subscribers, all past their snapshot; then one position change in
//! the simulator, and the time until each subscriber has decoded it. gateway-svc runs as its own
//! process so its resident memory can be read at every level.
//!
//! Latency runs from the moment the benchmark asks the simulator to change the position (one HTTP
//! call to its control port) to the moment each subscriber task has the delta. It therefore
//! includes the simulator, the TWS socket, `ibapi` decoding, the session actor, the hub, the
//! per-stream filtering and encoding, HTTP/2, and the client's own decoding and wake-up, the
//! last of which competes for the same two cores at large N. The baseline is the same
//! measurement with one subscriber.
//!
//! Each round also reports the CPU time the service and this benchmark used between the change
//! and the last delivery: on a machine with few cores, their sum bounds how fast N deliveries
//! can possibly complete.

use std::time::Duration;

use tokio::time::Instant;

use super::{header, patience, target_position};
use crate::child::cpu_time;
use crate::cli::{FanoutArgs, pick};
use crate::fleet::Fleet;
use crate::report::{Line, Table, latency_cells, mib, times};
use crate::stack::{self, Spawned};
use crate::stats::{Summary, median_duration, ms};
use crate::{Error, Result};

const NAME: &str = "fanout";
/// Goals: p99 at 1,000 and 10,000 subscribers, and RSS at 1,000.
const GOAL_P99_1K: Duration = Duration::from_millis(20);
const GOAL_P99_10K: Duration = Duration::from_millis(100);
const GOAL_RSS_1K_MIB: f64 = 120.0;

/// One level's figures: the median over rounds of each statistic.
#[derive(Debug)]
struct Level {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    open: Duration,
    rss_kib: Option<u64>,
}

/// Runs the scenario.
pub async fn run(args: &FanoutArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let levels = args.levels.clone().unwrap_or_else(|| if smoke { vec![100] } else { vec![100, 1_000, 10_000] });
    let per_channel = args.per_channel.unwrap_or(100).max(1);
    let rounds = pick(args.rounds, smoke, 1, 3).max(1);
    header(
        NAME,
        &format!("levels 1 (baseline), {levels:?}; {per_channel} streams per connection; {rounds} change(s) each"),
    );
    let connections = levels.iter().max().copied().unwrap_or(1).div_ceil(per_channel);
    if let Some(limit) = open_files_limit()
        && limit < (connections as u64) * 2 + 256
    {
        println!("warning: {connections} connections need more open files than the limit {limit}; raise `ulimit -n`");
    }
    let gw = Spawned::start(&[]).await?;
    let result = measure(&gw, &levels, per_channel, rounds).await;
    gw.stop().await;
    result
}

async fn measure(gw: &Spawned, levels: &[usize], per_channel: usize, rounds: u32) -> Result<Vec<Line>> {
    let mut health = stack::connect(gw.grpc).await?;
    let mut position = target_position(&gw.control).await?;
    let mut quantity = 5_000u64;
    let rss_idle = gw.rss_kib();
    let mut t = Table::new(
        format!("{NAME}: one position change to N subscribers (latency per subscriber)"),
        &[
            "subscribers",
            "round",
            "first",
            "p50",
            "p95",
            "p99",
            "max",
            "service CPU",
            "bench CPU",
            "open all",
            "service RSS",
        ],
    );
    let mut idle = vec![String::new(); 11];
    idle[0] = "0 (idle)".into();
    idle[10] = mib(rss_idle);
    t.row(idle);
    let mut results: Vec<Level> = Vec::new();
    for &n in std::iter::once(&1).chain(levels) {
        let n = n.max(1);
        let mut fleet = Fleet::open(gw.grpc, n, per_channel, patience(n) * 3).await?;
        let mut per_round = Vec::new();
        for round in 1..=rounds {
            quantity += 1;
            position.quantity = quantity.to_string();
            fleet.drain()?;
            let expected = quantity as f64;
            let cpu = (gw.cpu_time(), cpu_time(std::process::id()));
            let t0 = Instant::now();
            gw.control
                .upsert_positions(std::slice::from_ref(&position))
                .await
                .map_err(|e| Error::setup("upsert", e))?;
            let got = fleet
                .until_each(
                    patience(n),
                    |_| {},
                    |e| e.target.as_deref().and_then(|q| q.parse::<f64>().ok()) == Some(expected),
                )
                .await?;
            let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
                (Some(b), Some(a)) => ms(a.saturating_sub(b)),
                _ => "—".into(),
            };
            let cpu = (used(cpu.0, gw.cpu_time()), used(cpu.1, cpu_time(std::process::id())));
            let latencies: Vec<Duration> = got.iter().map(|e| e.at.duration_since(t0)).collect();
            let s = Summary::of(&latencies).ok_or_else(|| Error::Functional("no latencies".into()))?;
            let first = latencies.iter().min().copied().unwrap_or_default();
            let mut cells = vec![n.to_string(), round.to_string(), ms(first)];
            cells.extend(latency_cells(Some(&s)));
            cells.extend([cpu.0, cpu.1, ms(fleet.open_time), mib(gw.rss_kib())]);
            t.row(cells);
            per_round.push(s);
            // Let the tail of this round's wake-ups settle before the next change.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let med = |f: fn(&Summary) -> Duration| median_duration(&per_round.iter().map(f).collect::<Vec<_>>());
        results.push(Level {
            n,
            p50: med(|s| s.p50).unwrap_or_default(),
            p99: med(|s| s.p99).unwrap_or_default(),
            max: med(|s| s.max).unwrap_or_default(),
            open: fleet.open_time,
            rss_kib: gw.rss_kib(),
        });
        fleet.close().await;
        stack::wait_subscribers_at_most(&mut health, 0, patience(n)).await?;
    }
    t.print();

    let base = results.first().map(|l| l.p99).unwrap_or_default();
    let mut summary = Table::new(
        format!("{NAME}: median over rounds; ratio = p99(N) / p99(1)"),
        &["subscribers", "p50", "p99", "max", "ratio", "open all", "service RSS"],
    );
    let mut lines = Vec::new();
    for l in &results {
        let ratio = l.p99.as_secs_f64() / base.as_secs_f64();
        summary.row(vec![l.n.to_string(), ms(l.p50), ms(l.p99), ms(l.max), times(ratio), ms(l.open), mib(l.rss_kib)]);
        if l.n == 1 {
            continue;
        }
        let line = Line::new(NAME, format!("p99 delivery, {} subscribers", l.n), ms(l.p99)).baseline(ms(base), ratio);
        lines.push(match l.n {
            1_000 => line.goal(format!("≤ {}", ms(GOAL_P99_1K)), l.p99 <= GOAL_P99_1K),
            10_000 => line.goal(format!("≤ {}", ms(GOAL_P99_10K)), l.p99 <= GOAL_P99_10K),
            _ => line,
        });
        let rss = Line::new(NAME, format!("service RSS, {} subscribers", l.n), mib(l.rss_kib));
        let rss_ratio = match (l.rss_kib, rss_idle) {
            (Some(a), Some(b)) if b > 0 => a as f64 / b as f64,
            _ => f64::NAN,
        };
        let rss = rss.baseline(format!("{} idle", mib(rss_idle)), rss_ratio);
        lines.push(match (l.n, l.rss_kib) {
            (1_000, Some(kib)) => {
                rss.goal(format!("≤ {GOAL_RSS_1K_MIB:.0} MiB"), kib as f64 / 1024.0 <= GOAL_RSS_1K_MIB)
            }
            _ => rss,
        });
    }
    summary.print();
    Ok(lines)
}

/// The soft limit on open files, from `/proc/self/limits` (a child inherits it).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
