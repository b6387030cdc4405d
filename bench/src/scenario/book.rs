//! `book`: what one change costs when the book is large. Quotes will change many times a second
//! per contract, so a change must cost the service what changed, not what it holds.
//!
//! One gateway-svc process, with gRPC WatchPositions subscribers and TWS front-door clients
//! (each subscribed to positions) connected throughout. Each round changes the target position's
//! quantity once and times, per subscriber and per front-door client, the moment it has the new
//! quantity; the service's CPU time per change is read from the process. This runs first with the
//! default scenario's book (6 positions: the baseline), then again after `--rows` more positions
//! have been added to the other account, in the same process. The figure is the ratio of the two:
//! a service whose cost per change grows with the book shows it here, whatever the machine's speed.
//!
//! The added positions are kept out of the per-position PnL subscriptions
//! (`upstream.max_position_pnl` = the default book's size), so PnL traffic is the same in both
//! phases and only the book's size differs.

use std::time::Duration;

use futures_util::future::join_all;
use ib_sim::Position;
use tokio::time::Instant;

use super::{header, patience, target_position};
use crate::cli::{BookArgs, pick};
use crate::fleet::Fleet;
use crate::report::{Line, Table, latency_cells, times};
use crate::stack::Spawned;
use crate::stats::{Summary, median_duration, ms};
use crate::wire::WireClient;
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

const NAME: &str = "book";
/// The added positions: in the other account, with contract ids above every default one, so
/// they sort after the default book and never take its PnL subscriptions.
const OTHER_ACCOUNT: &str = "DU7654321";
const ADDED_CON_IDS: i32 = 800_000;
/// Positions added per control call.
const CHUNK: usize = 500;
/// The default scenario's positions: the PnL cap, so that added rows get none.
const DEFAULT_BOOK: usize = 6;
/// Goal: a change to a large book costs at most this many times one to the default book.
const GOAL_RATIO: f64 = 2.0;

/// One phase's figures.
#[derive(Debug)]
struct Phase {
    rows: usize,
    grpc: Option<Summary>,
    front_door: Option<Summary>,
    /// Median service CPU time per change.
    cpu: Option<Duration>,
}

/// Runs the scenario.
pub async fn run(args: &BookArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let rows = pick(args.rows, smoke, 500, 5_000).max(1);
    let subscribers = pick(args.subscribers, smoke, 10, 100).max(1);
    let clients = pick(args.clients, smoke, 10, 200).max(1);
    let rounds = pick(args.rounds, smoke, 3, 20).max(1);
    header(
        NAME,
        &format!(
            "{rounds} changes to {subscribers} WatchPositions subscribers and {clients} front-door clients, with the \
             default book ({DEFAULT_BOOK} positions), then with {rows} more"
        ),
    );
    let gw = Spawned::start(&[("IBGW__UPSTREAM__MAX_POSITION_PNL", DEFAULT_BOOK.to_string())]).await?;
    let result = measure(&gw, rows, subscribers, clients, rounds).await;
    gw.stop().await;
    result
}

async fn measure(gw: &Spawned, rows: usize, subscribers: usize, clients: usize, rounds: u32) -> Result<Vec<Line>> {
    let within = patience(subscribers + clients + rows);
    let mut fleet = Fleet::open(gw.grpc, subscribers, 100, within).await?;
    let mut door = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut c = WireClient::start(gw.tws_api, 70_000 + i as i32, within).await?;
        c.subscribe_positions(within).await?;
        door.push(c);
    }
    let mut target = target_position(&gw.control).await?;
    let mut quantity = 10_000u64;

    let small = phase(gw, &mut fleet, &mut door, &mut target, &mut quantity, rounds, DEFAULT_BOOK).await?;
    add_rows(gw, rows).await?;
    // A change nobody times: once every client has it, every added row is behind them too.
    quantity += 1;
    change(gw, &mut target, quantity).await?;
    converge(&mut fleet, &mut door, quantity, within).await?;
    let large = phase(gw, &mut fleet, &mut door, &mut target, &mut quantity, rounds, DEFAULT_BOOK + rows).await?;
    fleet.close().await;

    let mut t = Table::new(
        format!("{NAME}: one position change, per receiver, by book size"),
        &["book", "receivers", "median", "p95", "p99", "max", "service CPU per change"],
    );
    for p in [&small, &large] {
        for (what, s) in
            [(format!("{subscribers} WatchPositions"), &p.grpc), (format!("{clients} front door"), &p.front_door)]
        {
            let mut row = vec![format!("{} positions", p.rows), what];
            row.extend(latency_cells(s.as_ref()));
            row.push(p.cpu.map(ms).unwrap_or_else(|| "n/a".into()));
            t.row(row);
        }
    }
    t.print();

    let ratio = |a: Option<&Summary>, b: Option<&Summary>| match (a, b) {
        (Some(a), Some(b)) if b.p99 > Duration::ZERO => a.p99.as_secs_f64() / b.p99.as_secs_f64(),
        _ => f64::NAN,
    };
    let mut lines = Vec::new();
    for (what, l, s) in [
        (format!("{subscribers} WatchPositions"), large.grpc.as_ref(), small.grpc.as_ref()),
        (format!("{clients} front-door clients"), large.front_door.as_ref(), small.front_door.as_ref()),
    ] {
        let r = ratio(l, s);
        lines.push(
            Line::new(NAME, format!("one change to {what} with {} positions (p99)", large.rows), p99(l))
                .baseline(format!("{} with {DEFAULT_BOOK}", p99(s)), r)
                .goal(format!("≤ {GOAL_RATIO}×"), r <= GOAL_RATIO),
        );
    }
    let cpu_ratio = match (large.cpu, small.cpu) {
        (Some(l), Some(s)) if s > Duration::ZERO => l.as_secs_f64() / s.as_secs_f64(),
        _ => f64::NAN,
    };
    lines.push(
        Line::new(
            NAME,
            format!("service CPU per change with {} positions", large.rows),
            large.cpu.map(ms).unwrap_or_else(|| "n/a".into()),
        )
        .baseline(format!("{} with {DEFAULT_BOOK}", small.cpu.map(ms).unwrap_or_else(|| "n/a".into())), cpu_ratio)
        .goal(format!("≤ {GOAL_RATIO}× ({})", times(cpu_ratio)), cpu_ratio <= GOAL_RATIO),
    );
    Ok(lines)
}

fn p99(s: Option<&Summary>) -> String {
    s.map(|s| ms(s.p99)).unwrap_or_else(|| "n/a".into())
}

/// `rounds` timed changes.
async fn phase(
    gw: &Spawned,
    fleet: &mut Fleet,
    door: &mut [WireClient],
    target: &mut Position,
    quantity: &mut u64,
    rounds: u32,
    rows: usize,
) -> Result<Phase> {
    let within = patience(fleet.len() + door.len() + rows);
    let (mut grpc, mut front, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        fleet.drain()?;
        *quantity += 1;
        let cpu_before = gw.cpu_time();
        let t0 = Instant::now();
        change(gw, target, *quantity).await?;
        let (g, f) = converge(fleet, door, *quantity, within).await?;
        grpc.extend(g.into_iter().map(|at| at - t0));
        front.extend(f.into_iter().map(|at| at - t0));
        if let (Some(a), Some(b)) = (cpu_before, gw.cpu_time()) {
            cpu.push(b.saturating_sub(a));
        }
    }
    Ok(Phase { rows, grpc: Summary::of(&grpc), front_door: Summary::of(&front), cpu: median_duration(&cpu) })
}

async fn change(gw: &Spawned, target: &mut Position, quantity: u64) -> Result<()> {
    target.quantity = quantity.to_string();
    gw.control.upsert_positions(std::slice::from_ref(target)).await.map_err(|e| Error::setup("upsert", e))
}

/// Waits until every subscriber and every front-door client has the target at `quantity`;
/// returns when each had it.
async fn converge(
    fleet: &mut Fleet,
    door: &mut [WireClient],
    quantity: u64,
    within: Duration,
) -> Result<(Vec<Instant>, Vec<Instant>)> {
    let want = quantity.to_string();
    let expected = quantity as f64;
    let grpc = fleet.until_each(within, |_| {}, |e| e.target.as_deref() == Some(want.as_str()));
    let front = join_all(door.iter_mut().map(|c| c.until_quantity(TARGET_ACCOUNT, TARGET_CON_ID, expected, within)));
    let (grpc, front) = tokio::join!(grpc, front);
    let grpc = grpc?.into_iter().map(|e| e.at).collect();
    let front = front.into_iter().map(|r| r.map(|(at, _)| at)).collect::<Result<Vec<_>>>()?;
    Ok((grpc, front))
}

/// Adds `rows` one-share positions to the other account.
async fn add_rows(gw: &Spawned, rows: usize) -> Result<()> {
    let template = target_position(&gw.control).await?;
    let added: Vec<Position> = (0..rows)
        .map(|i| {
            let mut p = template.clone();
            p.account = OTHER_ACCOUNT.into();
            p.con_id = ADDED_CON_IDS + i as i32;
            p.symbol = format!("B{i}");
            p.quantity = "1".into();
            p
        })
        .collect();
    for chunk in added.chunks(CHUNK) {
        gw.control.upsert_positions(chunk).await.map_err(|e| Error::setup("add positions", e))?;
    }
    println!("{NAME}: added {rows} positions to {OTHER_ACCOUNT}");
    Ok(())
}
