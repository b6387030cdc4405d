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
//! Then the PnL fan-out, in the same run: N WatchPositionPnl subscribers and one price tick
//! (`PATCH /prices` on the target's contract), timed until each subscriber has decoded the delta
//! that carries the target position's new market value. The path adds IB's `pnlSingle` messages
//! and the session's per-position PnL subscriptions. It runs in a fresh gateway-svc process whose
//! simulator sends PnL updates with a 1 ms minimum interval (a gateway's is about a second), so
//! the interval does not dominate what is measured; the fresh process gives the PnL streams' RSS
//! against an idle RSS of its own. Its baseline is the positions fan-out at the same N, above.
//!
//! Each round also reports the CPU time the service and this benchmark used between the change
//! and the last delivery: on a machine with few cores, their sum bounds how fast N deliveries
//! can possibly complete.

use std::path::PathBuf;
use std::time::Duration;

use gateway_proto::pb;
use ib_sim::{ControlClient, Position, PriceTick};
use tokio::time::Instant;

use super::{header, patience, target_position};
use crate::child::cpu_time;
use crate::cli::{FanoutArgs, pick};
use crate::fleet::{Fleet, Watch};
use crate::report::{Line, Table, latency_cells, mib, times};
use crate::stack::{self, Spawned};
use crate::stats::{Summary, median_duration, ms};
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

const NAME: &str = "fanout";
/// Goals: p99 at 1,000 and 10,000 subscribers, and RSS at 1,000 (positions). The PnL fan-out
/// has the same p99 goal at 1,000.
const GOAL_P99_1K: Duration = Duration::from_millis(20);
const GOAL_P99_10K: Duration = Duration::from_millis(100);
const GOAL_RSS_1K_MIB: f64 = 120.0;
/// The simulator's minimum interval between two PnL updates of one subscription, in the PnL part.
const PNL_INTERVAL_MS: u64 = 1;
/// How long the PnL rows may take to arrive after READY.
const PNL_PATIENCE: Duration = Duration::from_secs(20);

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

/// The levels of one service process, and its RSS before any stream was opened.
#[derive(Debug)]
struct Measured {
    rss_idle: Option<u64>,
    levels: Vec<Level>,
}

impl Measured {
    fn at(&self, n: usize) -> Option<&Level> {
        self.levels.iter().find(|l| l.n == n)
    }
}

/// Runs the scenario.
pub async fn run(args: &FanoutArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let levels = args.levels.clone().unwrap_or_else(|| if smoke { vec![100] } else { vec![100, 1_000, 10_000] });
    let pnl_levels: Vec<usize> =
        pick(args.pnl_levels.clone(), smoke, vec![100], vec![1_000]).into_iter().filter(|n| *n > 0).collect();
    let per_channel = args.per_channel.unwrap_or(100).max(1);
    let rounds = pick(args.rounds, smoke, 1, 3).max(1);
    let pnl_what = if pnl_levels.is_empty() {
        "no PnL fan-out".to_owned()
    } else {
        format!("then PnL levels 1, {pnl_levels:?} (one price tick each round)")
    };
    header(
        NAME,
        &format!(
            "levels 1 (baseline), {levels:?}; {pnl_what}; {per_channel} streams per connection; {rounds} change(s) each"
        ),
    );
    let connections = levels.iter().chain(&pnl_levels).max().copied().unwrap_or(1).div_ceil(per_channel);
    if let Some(limit) = open_files_limit()
        && limit < (connections as u64) * 2 + 256
    {
        println!("warning: {connections} connections need more open files than the limit {limit}; raise `ulimit -n`");
    }
    let gw = Spawned::start(&[]).await?;
    let positions = measure(&gw, Watch::Positions, &levels, per_channel, rounds).await;
    gw.stop().await;
    let positions = positions?;
    let mut lines = position_lines(&positions);
    if pnl_levels.is_empty() {
        return Ok(lines);
    }
    let scenario = PnlScenario::write()?;
    let gw = Spawned::start_with(&[], &["--scenario", &scenario.path.to_string_lossy()]).await?;
    let pnl = measure(&gw, Watch::PositionPnl, &pnl_levels, per_channel, rounds).await;
    gw.stop().await;
    lines.extend(pnl_lines(&pnl?, &positions));
    Ok(lines)
}

/// What one round changes in the simulator, and what the target row then reports.
#[derive(Debug)]
enum Change {
    /// The target position's quantity, one more each round.
    Quantity { position: Box<Position>, quantity: u64 },
    /// The target contract's price, one cent more each round.
    Price { base: f64, step: u32 },
}

impl Change {
    async fn new(watch: Watch, control: &ControlClient) -> Result<Change> {
        Ok(match watch {
            Watch::Positions => {
                Change::Quantity { position: Box::new(target_position(control).await?), quantity: 5_000 }
            }
            Watch::PositionPnl => {
                let prices = control.prices().await.map_err(|e| Error::setup("simulator prices", e))?;
                let base = prices.iter().find(|t| t.con_id == TARGET_CON_ID).map(|t| t.price).ok_or_else(|| {
                    Error::Functional(format!("the simulator has no price for contract {TARGET_CON_ID}"))
                })?;
                Change::Price { base, step: 0 }
            }
        })
    }

    /// Makes the change, and returns the value the subscribers must then see in the target row.
    async fn apply(&mut self, control: &ControlClient) -> Result<f64> {
        match self {
            Change::Quantity { position, quantity } => {
                *quantity += 1;
                position.quantity = quantity.to_string();
                control
                    .upsert_positions(std::slice::from_ref(position))
                    .await
                    .map_err(|e| Error::setup("upsert", e))?;
                Ok(*quantity as f64)
            }
            Change::Price { base, step } => {
                *step += 1;
                let price = ((*base + f64::from(*step) * 0.01) * 100.0).round() / 100.0;
                control
                    .set_prices(&[PriceTick { con_id: TARGET_CON_ID, price }])
                    .await
                    .map_err(|e| Error::setup("price tick", e))?;
                let pnl = control
                    .position_pnl(TARGET_ACCOUNT, TARGET_CON_ID)
                    .await
                    .map_err(|e| Error::setup("simulator position PnL", e))?;
                Ok(pnl.value)
            }
        }
    }
}

/// True when `reported` (a decimal string) is `expected`, to the precision the wire carries.
fn same_value(reported: Option<&str>, expected: f64) -> bool {
    reported.and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| (v - expected).abs() <= 1e-7 * expected.abs().max(1.0))
}

async fn measure(gw: &Spawned, watch: Watch, levels: &[usize], per_channel: usize, rounds: u32) -> Result<Measured> {
    let mut health = stack::connect(gw.grpc).await?;
    if watch == Watch::PositionPnl {
        wait_for_position_pnl(&mut health).await?;
    }
    let mut change = Change::new(watch, &gw.control).await?;
    let rss_idle = gw.rss_kib();
    let (stream, what) = match watch {
        Watch::Positions => ("WatchPositions", "one position change"),
        Watch::PositionPnl => ("WatchPositionPnl", "one price tick"),
    };
    let mut t = Table::new(
        format!("{NAME}: {what} to N {stream} subscribers (latency per subscriber)"),
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
        let mut fleet = Fleet::open_watching(gw.grpc, watch, n, per_channel, patience(n) * 3).await?;
        if let Some(idx) = fleet.snapshot_target.iter().position(Option::is_none) {
            return Err(Error::Functional(format!(
                "{stream} subscriber {idx}: the snapshot has no row for {TARGET_ACCOUNT}/{TARGET_CON_ID}"
            )));
        }
        let mut per_round = Vec::new();
        for round in 1..=rounds {
            fleet.drain()?;
            let cpu = (gw.cpu_time(), cpu_time(std::process::id()));
            let t0 = Instant::now();
            // Subscribers stamp each message as they decode it, so the control calls made here
            // after the change do not add to the latencies.
            let expected = change.apply(&gw.control).await?;
            let got = fleet.until_each(patience(n), |_| {}, |e| same_value(e.target.as_deref(), expected)).await?;
            let used = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
                (Some(b), Some(a)) => ms(a.saturating_sub(b)),
                _ => "—".into(),
            };
            let cpu = (used(cpu.0, gw.cpu_time()), used(cpu.1, cpu_time(std::process::id())));
            if let Some(e) = got.iter().find(|e| e.kind != pb::UpdateKind::Delta) {
                return Err(Error::Functional(format!(
                    "{stream} subscriber {}: the change arrived as {:?}, not as a DELTA",
                    e.idx, e.kind
                )));
            }
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
    Ok(Measured { rss_idle, levels: results })
}

/// Polls GetPositionPnl until it answers with the target's row (the PnL rows follow READY).
async fn wait_for_position_pnl(client: &mut stack::Client) -> Result<()> {
    let deadline = Instant::now() + PNL_PATIENCE;
    loop {
        let last = match client.get_position_pnl(pb::GetPositionPnlRequest::default()).await {
            Ok(r) => {
                let r = r.into_inner();
                let has =
                    r.positions.iter().any(|p| p.account == TARGET_ACCOUNT && p.con_id == i64::from(TARGET_CON_ID));
                if has {
                    return Ok(());
                }
                format!("{} rows without {TARGET_ACCOUNT}/{TARGET_CON_ID}", r.positions.len())
            }
            Err(s) => format!("{:?} {}", s.code(), s.message()),
        };
        if Instant::now() >= deadline {
            return Err(Error::Functional(format!("GetPositionPnl within {PNL_PATIENCE:?}: {last}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rss_ratio(kib: Option<u64>, idle: Option<u64>) -> f64 {
    match (kib, idle) {
        (Some(a), Some(b)) if b > 0 => a as f64 / b as f64,
        _ => f64::NAN,
    }
}

/// The positions summary table and lines: ratio = p99(N) / p99(1).
fn position_lines(m: &Measured) -> Vec<Line> {
    let base = m.levels.first().map(|l| l.p99).unwrap_or_default();
    let mut summary = Table::new(
        format!("{NAME}: positions, median over rounds; ratio = p99(N) / p99(1)"),
        &["subscribers", "p50", "p99", "max", "ratio", "open all", "service RSS"],
    );
    let mut lines = Vec::new();
    for l in &m.levels {
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
        let rss = Line::new(NAME, format!("service RSS, {} subscribers", l.n), mib(l.rss_kib))
            .baseline(format!("{} idle", mib(m.rss_idle)), rss_ratio(l.rss_kib, m.rss_idle));
        lines.push(match (l.n, l.rss_kib) {
            (1_000, Some(kib)) => {
                rss.goal(format!("≤ {GOAL_RSS_1K_MIB:.0} MiB"), kib as f64 / 1024.0 <= GOAL_RSS_1K_MIB)
            }
            _ => rss,
        });
    }
    summary.print();
    lines
}

/// The PnL summary table and lines: ratio = PnL p99(N) / positions p99(N) of the same run.
fn pnl_lines(pnl: &Measured, positions: &Measured) -> Vec<Line> {
    let mut summary = Table::new(
        format!(
            "{NAME}: position PnL (one price tick), median over rounds; ratio = PnL p99(N) / positions p99(N), same run"
        ),
        &["subscribers", "p50", "p99", "max", "positions p99", "ratio", "open all", "service RSS", "RSS / idle"],
    );
    let mut lines = Vec::new();
    for l in &pnl.levels {
        let base = positions.at(l.n).map(|p| p.p99);
        let ratio = base.map_or(f64::NAN, |b| l.p99.as_secs_f64() / b.as_secs_f64());
        let rss_ratio = rss_ratio(l.rss_kib, pnl.rss_idle);
        summary.row(vec![
            l.n.to_string(),
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            base.map_or_else(|| "—".into(), ms),
            times(ratio),
            ms(l.open),
            mib(l.rss_kib),
            times(rss_ratio),
        ]);
        if l.n == 1 {
            continue;
        }
        let mut line = Line::new(
            NAME,
            format!("PnL p99, one price tick → {} WatchPositionPnl (p50 {})", l.n, ms(l.p50)),
            ms(l.p99),
        );
        line = match base {
            Some(b) => line.baseline(format!("positions p99 {}", ms(b)), ratio),
            None => line.baseline(format!("no positions level {} in this run", l.n), f64::NAN),
        };
        lines.push(match l.n {
            1_000 => line.goal(format!("≤ {}", ms(GOAL_P99_1K)), l.p99 <= GOAL_P99_1K),
            _ => line,
        });
        lines.push(
            Line::new(NAME, format!("service RSS, {} PnL subscribers", l.n), mib(l.rss_kib))
                .baseline(format!("{} idle", mib(pnl.rss_idle)), rss_ratio),
        );
    }
    summary.print();
    lines
}

/// The built-in scenario with a 1 ms PnL interval, in a temp file removed when dropped.
struct PnlScenario {
    path: PathBuf,
}

impl PnlScenario {
    fn write() -> Result<PnlScenario> {
        let text = pnl_scenario_text()?;
        let path = std::env::temp_dir().join(format!("ibgw-bench-{}-pnl-scenario.toml", std::process::id()));
        std::fs::write(&path, text).map_err(|e| Error::setup(&format!("cannot write {}", path.display()), e))?;
        Ok(PnlScenario { path })
    }
}

impl Drop for PnlScenario {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The built-in scenario's TOML with `pnl_interval_ms` set to [`PNL_INTERVAL_MS`] (a top-level
/// key, so it goes first), checked by parsing it.
fn pnl_scenario_text() -> Result<String> {
    let kept: Vec<&str> =
        ib_sim::DEFAULT_SCENARIO.lines().filter(|l| !l.trim_start().starts_with("pnl_interval_ms")).collect();
    let text = format!("pnl_interval_ms = {PNL_INTERVAL_MS}\n{}\n", kept.join("\n"));
    let parsed = ib_sim::Scenario::from_toml(&text).map_err(|e| Error::setup("PnL scenario", e))?;
    if parsed.pnl_interval_ms != PNL_INTERVAL_MS {
        return Err(Error::Setup(format!("PnL scenario: pnl_interval_ms is {}", parsed.pnl_interval_ms)));
    }
    Ok(text)
}

/// The soft limit on open files, from `/proc/self/limits` (a child inherits it).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pnl_scenario_is_the_built_in_one_with_a_short_interval() {
        let text = pnl_scenario_text().unwrap();
        let parsed = ib_sim::Scenario::from_toml(&text).unwrap();
        let expected = ib_sim::Scenario { pnl_interval_ms: PNL_INTERVAL_MS, ..ib_sim::Scenario::default() };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn values_compare_to_the_wire_precision() {
        assert!(same_value(Some("18951"), 18_951.0));
        assert!(same_value(Some("18951.000001"), 18_951.0));
        assert!(!same_value(Some("18950"), 18_951.0));
        assert!(!same_value(None, 1.0));
        assert!(same_value(Some("5001"), 5_001.0));
    }
}
