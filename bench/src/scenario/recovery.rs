//! `recovery`: how gateway-svc comes back from gateway outages, with S WatchPositions subscribers
//! open and the service's **shipped** recovery settings (reconnect backoff 500 ms, then 800 ms,
//! ±20 % jitter clamped to that range; a liveness probe after 1.5 s without upstream traffic,
//! checked every 0.5 s, unanswered for 1.5 s ends the session). Each goal has a same-run figure:
//!
//! 1. The simulated gateway restarts and its API port refuses connections for D (several
//!    lengths). Measured from the moment the port accepts again to READY (WatchHealth, which
//!    carries the health GetHealth answers) and to every subscriber's RESYNC. Baseline: a fresh
//!    direct `ibapi` connect + positions + account summary against the same simulator, the work
//!    no client can avoid.
//! 2. A silent link (`Fault::Silence`, half-open): from the injection to READY on a new epoch.
//!    Baseline: a loud restart (the socket closes, the port stays open) in the same run.
//! 3. Connection attempts during outages: every dial as the service's health reports it
//!    (CONNECTING, with its timestamp), and independently the connections the simulator accepts
//!    and closes at once in an accept-then-close window (socat in front of a stopped gateway).
//!    Limit: 2 a second.
//! 4. The simulator's peak of concurrent connections over all of it, which must stay 1.
//!
//! Plus the liveness probes the simulator receives on an idle and on a busy session, against IB's
//! pacing limit of 50 messages a second.
//!
//! The session becomes READY only once it has subscribed every account's and every held
//! position's PnL, one paced request each; `--extra-positions N` makes the simulator hold N more
//! positions, to see what that costs each recovery.
//!
//! Clocks: the service's health stamps (`since`) are its wall clock, mapped onto our monotonic
//! clock with a pair of readings taken right after each recovery (one machine, one clock). "The
//! port accepts again" is the moment we asked for the fault plus its length; the simulator opens
//! its window a little later (the control call, well under 1 ms), so every figure measured from
//! that moment errs on the long side.

use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use gateway_svc::{MIN_PROBE_SPACING, UpstreamSettings};
use ib_sim::{Fault, Position};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::{header, patience, target_position};
use crate::cli::{RecoveryArgs, Timings, pick};
use crate::fleet::Fleet;
use crate::report::{Line, Table};
use crate::stack::{self, Spawned};
use crate::stats::{Summary, median_duration, ms};
use crate::{Error, Result, direct};

const NAME: &str = "recovery";
/// Goal 1: port accepting again → READY and every stream resynced (p99).
const GOAL_AFTER_OPEN: Duration = Duration::from_secs(1);
/// Goal 2: silent link → READY on a new epoch.
const GOAL_SILENT: Duration = Duration::from_secs(5);
/// The service's own work after its successful dial: → every subscriber resynced.
const GOAL_WORK: Duration = Duration::from_millis(250);
/// Goal 3: connection attempts per second during an outage.
const MAX_ATTEMPTS_PER_SEC: usize = 2;
/// IB's pacing limit for API messages.
const IB_PACING_PER_SEC: f64 = 50.0;
/// Client ids for the direct baseline.
const DIRECT_IDS: i32 = 3000;
/// How long a recovery may take beyond the outage before it is a functional failure.
const RECOVERY_PATIENCE: Duration = Duration::from_secs(30);
/// Contract ids of the positions `--extra-positions` adds.
const EXTRA_CON_IDS: i32 = 900_000;
/// A position change this often keeps the session busy (far under the 1.5 s idle threshold).
const BUSY_EVERY: Duration = Duration::from_millis(250);

/// What the scenario does, from the flags.
#[derive(Debug)]
struct Plan {
    subscribers: usize,
    /// Outage length and restarts of that length.
    outages: Vec<(Duration, u32)>,
    silences: u32,
    /// Positions added to the simulator's scenario before anything is measured.
    extra_positions: usize,
    accept_close: Duration,
    probe_window: Duration,
    /// Direct connect + sync runs for the baseline.
    direct_runs: i32,
    timings: Timings,
    /// The settings the service runs with.
    upstream: UpstreamSettings,
}

impl Plan {
    fn new(args: &RecoveryArgs) -> Plan {
        let smoke = args.smoke.smoke;
        let timings = args.timings.unwrap_or(if smoke { Timings::Short } else { Timings::Shipped });
        let lengths = pick(args.outages_ms.clone(), smoke, vec![300], vec![0, 1_000, 5_000, 30_000, 90_000]);
        let rounds = pick(args.rounds.clone(), smoke, vec![1], vec![4, 6, 4, 2, 1]);
        let outages = lengths
            .iter()
            .enumerate()
            .map(|(i, ms)| (Duration::from_millis(*ms), rounds.get(i).or(rounds.last()).copied().unwrap_or(1).max(1)))
            .collect();
        let mut upstream = UpstreamSettings::default();
        if timings == Timings::Short {
            upstream.backoff_initial_ms = 50;
            upstream.backoff_max_ms = 100;
            upstream.probe_idle_ms = MIN_PROBE_SPACING.as_millis() as u64;
            upstream.probe_timeout_ms = 300;
        }
        Plan {
            subscribers: pick(args.subscribers, smoke, 20, 100).max(1),
            outages,
            silences: pick(args.silences, smoke, 1, 10).max(1),
            extra_positions: args.extra_positions.unwrap_or(0),
            accept_close: Duration::from_millis(pick(args.accept_close_ms, smoke, 500, 10_000).max(1)),
            probe_window: Duration::from_millis(pick(args.probe_window_ms, smoke, 500, 12_000)),
            direct_runs: if smoke { 3 } else { 10 },
            timings,
            upstream,
        }
    }

    /// `IBGW__…` settings for the service: none with the shipped timings.
    fn env(&self) -> Vec<(&'static str, String)> {
        let u = &self.upstream;
        match self.timings {
            Timings::Shipped => Vec::new(),
            Timings::Short => vec![
                ("IBGW__UPSTREAM__BACKOFF_INITIAL_MS", u.backoff_initial_ms.to_string()),
                ("IBGW__UPSTREAM__BACKOFF_MAX_MS", u.backoff_max_ms.to_string()),
                ("IBGW__UPSTREAM__PROBE_IDLE_MS", u.probe_idle_ms.to_string()),
                ("IBGW__UPSTREAM__PROBE_TIMEOUT_MS", u.probe_timeout_ms.to_string()),
            ],
        }
    }

    /// The idle time before a probe, as the service derives it from the settings (IB's spacing
    /// is a floor).
    fn probe_idle(&self) -> Duration {
        self.upstream.validate().map_or(MIN_PROBE_SPACING, |u| u.probe_idle)
    }

    fn shipped(&self) -> bool {
        self.timings == Timings::Shipped
    }

    /// On an idle session a probe goes out on the first check at least `probe_idle` after the
    /// last traffic; checks are `probe_idle / 3` apart, so probes come one such cycle apart.
    fn probe_cycle(&self) -> Duration {
        let idle = self.probe_idle();
        idle + idle / 3
    }

    fn describe(&self) -> String {
        let u = &self.upstream;
        let outages: Vec<String> = self.outages.iter().map(|(d, n)| format!("{}×{n}", length(*d))).collect();
        let extra = match self.extra_positions {
            0 => String::new(),
            n => format!(" ({n} positions added to the scenario's 6)"),
        };
        format!(
            "{} subscribers{extra}; {} timings: backoff {}→{} ms, probe after {} ms idle, timeout {} ms; restarts (port \
             down × count) {}; {} silent link(s); accept-then-close {}; probe windows {}",
            self.subscribers,
            if self.shipped() { "shipped" } else { "SHORT (smoke)" },
            u.backoff_initial_ms,
            u.backoff_max_ms,
            self.probe_idle().as_millis(),
            u.probe_timeout_ms,
            outages.join(", "),
            self.silences,
            ms(self.accept_close),
            ms(self.probe_window),
        )
    }

    /// Adds `goal` to `line` when the service runs with its shipped timings. With short timings
    /// the goals do not apply: the figure is labelled and printed without a verdict.
    fn judge(&self, mut line: Line, goal: impl Into<String>, met: bool) -> Line {
        if self.shipped() {
            line.goal(goal, met)
        } else {
            line.metric.push_str(" [short timings]");
            line
        }
    }
}

/// Runs the scenario.
pub async fn run(args: &RecoveryArgs) -> Result<Vec<Line>> {
    let plan = Plan::new(args);
    header(NAME, &plan.describe());
    let gw = Spawned::start(&plan.env()).await?;
    let result = measure(&gw, &plan).await;
    gw.stop().await;
    result
}

async fn measure(gw: &Spawned, plan: &Plan) -> Result<Vec<Line>> {
    let mut client = stack::connect(gw.grpc).await?;
    if plan.extra_positions > 0 {
        hold_more_positions(gw, &mut client, plan).await?;
    }
    let health = watch_health(&mut client).await?;
    let fleet = Fleet::open(gw.grpc, plan.subscribers, 100, patience(plan.subscribers) * 3).await?;
    let mut ctx = Ctx { gw, client, health, fleet, last_ready: None };

    // The simulator's connection counters run from its start: until the last fault below, the
    // only client it ever sees is the service. The direct baseline connects after they are read.
    let probes = if plan.probe_window.is_zero() { None } else { Some(probe_traffic(&mut ctx, plan).await?) };

    let mut restarts = Vec::new();
    for (down, n) in &plan.outages {
        for _ in 0..*n {
            restarts.push(restart(&mut ctx, *down).await?);
        }
    }
    print_restarts(&restarts, plan.subscribers);
    let socat = accept_then_close(&mut ctx, plan.accept_close).await?;
    let mut silent = Vec::new();
    for k in 0..plan.silences {
        let phase = Duration::from_millis(200) + plan.probe_cycle() * k / plan.silences;
        silent.push(silence(&mut ctx, phase, plan.probe_cycle()).await?);
    }
    print_silences(&silent);
    let sim = SimCounts::read(gw).await?;
    ctx.fleet.close().await;

    let mut direct_runs = Vec::new();
    for i in 0..plan.direct_runs {
        direct_runs.push(direct::connect_and_sync(gw.sim_api, DIRECT_IDS + i).await?);
    }
    let direct = Summary::of(&direct_runs).ok_or_else(|| Error::Functional("no direct runs".into()))?;
    println!(
        "{NAME}: baseline: direct ibapi connect + positions + account summary, p50 {} p99 {} (n={})",
        ms(direct.p50),
        ms(direct.p99),
        direct.n
    );
    Ok(lines(plan, &restarts, &socat, &silent, &sim, probes.as_ref(), direct))
}

/// Adds `plan.extra_positions` one-share positions to the target's account, then waits until the
/// service holds a PnL row for each held position (up to its `max_position_pnl`).
async fn hold_more_positions(gw: &Spawned, client: &mut stack::Client, plan: &Plan) -> Result<()> {
    let template = target_position(&gw.control).await?;
    let extra: Vec<Position> = (0..plan.extra_positions)
        .map(|i| {
            let mut p = template.clone();
            p.con_id = EXTRA_CON_IDS + i as i32;
            p.symbol = format!("X{i}");
            p.quantity = "1".into();
            p
        })
        .collect();
    gw.control.upsert_positions(&extra).await.map_err(|e| Error::setup("add positions", e))?;
    let held = gw.control.positions().await.map_err(|e| Error::setup("simulator positions", e))?.len();
    let want = held.min(plan.upstream.max_position_pnl);
    let deadline = Instant::now() + RECOVERY_PATIENCE;
    loop {
        let rows = client
            .get_position_pnl(pb::GetPositionPnlRequest::default())
            .await
            .map(|r| r.into_inner().positions.len())
            .unwrap_or(0);
        if rows >= want {
            println!("{NAME}: the simulator holds {held} positions; the service has PnL for {rows}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Functional(format!(
                "{rows} position PnL rows of {want} within {RECOVERY_PATIENCE:?} after adding {} positions",
                plan.extra_positions
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The service under test and the clients watching it.
struct Ctx<'a> {
    gw: &'a Spawned,
    client: stack::Client,
    health: HealthEvents,
    fleet: Fleet,
    /// When the latest READY arrived.
    last_ready: Option<Instant>,
}

impl Ctx<'_> {
    /// Waits until the session is READY, forgets what arrived so far, and returns its epoch.
    async fn settle(&mut self) -> Result<u64> {
        stack::wait_ready(&mut self.client, RECOVERY_PATIENCE).await?;
        let epoch = stack::health(&mut self.client).await?.session_epoch;
        self.fleet.drain()?;
        while self.health.rx.try_recv().is_ok() {}
        Ok(epoch)
    }

    async fn inject(&self, fault: &Fault) -> Result<()> {
        self.gw.control.inject(fault).await.map_err(|e| Error::setup(&format!("inject {}", fault.name()), e))
    }

    /// Every health change until READY on an epoch above `epoch`, then GetHealth's view of it.
    async fn until_ready(&mut self, epoch: u64, within: Duration) -> Result<Timeline> {
        let deadline = Instant::now() + within;
        let mut events = Vec::new();
        let ready = loop {
            let Ok(Some((at, h))) = tokio::time::timeout_at(deadline, self.health.rx.recv()).await else {
                return Err(Error::Functional(format!(
                    "the session was not READY on a new epoch within {within:?} ({} health changes)",
                    events.len()
                )));
            };
            if h.state == pb::SessionState::Ready as i32 && h.session_epoch > epoch {
                break (at, h);
            }
            events.push((at, h));
        };
        let clock = Clock::now();
        let h = stack::health(&mut self.client).await?;
        if h.state != pb::SessionState::Ready as i32 || h.session_epoch <= epoch {
            return Err(Error::Functional(format!("WatchHealth said READY, GetHealth says {h:?}")));
        }
        let tl = Timeline { events, ready, clock };
        self.last_ready = Some(tl.ready_seen());
        Ok(tl)
    }

    /// When each subscriber received the RESYNC of an epoch above `epoch`.
    async fn resynced(&mut self, epoch: u64) -> Result<Vec<Instant>> {
        let got = self
            .fleet
            .until_each(patience(self.fleet.len()), |_| {}, |e| e.kind == pb::UpdateKind::Resync && e.epoch > epoch)
            .await?;
        Ok(got.iter().map(|e| e.at).collect())
    }
}

/// Our clock and the wall clock read together, to place the service's wall-clock stamps on ours.
#[derive(Debug, Clone, Copy)]
struct Clock {
    at: Instant,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Clock {
        Clock { at: Instant::now(), wall: SystemTime::now() }
    }

    fn place(&self, t: &prost_types::Timestamp) -> Instant {
        let w = wall(t);
        match self.wall.duration_since(w) {
            Ok(back) => self.at.checked_sub(back).unwrap_or(self.at),
            Err(ahead) => self.at + ahead.duration(),
        }
    }
}

/// The health changes of one recovery, and the READY that ended it.
struct Timeline {
    events: Vec<(Instant, pb::Health)>,
    ready: (Instant, pb::Health),
    clock: Clock,
}

impl Timeline {
    fn since(&self, h: &pb::Health, at: Instant) -> Instant {
        h.since.as_ref().map_or(at, |t| self.clock.place(t))
    }

    /// Every dial: each entry into CONNECTING, by the service's clock.
    fn dials(&self) -> Vec<Instant> {
        let mut previous = pb::SessionState::Ready as i32;
        let mut out = Vec::new();
        for (at, h) in &self.events {
            if h.state == pb::SessionState::Connecting as i32 && previous != h.state {
                out.push(self.since(h, *at));
            }
            previous = h.state;
        }
        out
    }

    /// The first RECONNECTING (the session given up), by the service's clock, with its reason.
    fn given_up(&self) -> Option<(Instant, String)> {
        self.events
            .iter()
            .find(|(_, h)| h.state == pb::SessionState::Reconnecting as i32)
            .map(|(at, h)| (self.since(h, *at), h.reason.clone()))
    }

    /// READY as a WatchHealth client received it.
    fn ready_seen(&self) -> Instant {
        self.ready.0
    }

    /// READY by the service's clock.
    fn ready_svc(&self) -> Instant {
        self.since(&self.ready.1, self.ready.0)
    }
}

/// The dials of a recovery: how many, the shortest gap, the most in any one second.
#[derive(Debug, Clone, Copy, Default)]
struct Attempts {
    count: usize,
    min_gap: Option<Duration>,
    most_in_a_second: usize,
}

impl Attempts {
    fn of(dials: &[Instant]) -> Attempts {
        let min_gap = dials.windows(2).map(|w| w[1].saturating_duration_since(w[0])).min();
        let most_in_a_second = (0..dials.len())
            .map(|i| {
                dials[i..].iter().take_while(|t| t.saturating_duration_since(dials[i]) < Duration::from_secs(1)).count()
            })
            .max()
            .unwrap_or(0);
        Attempts { count: dials.len(), min_gap, most_in_a_second }
    }
}

/// One restart, every figure from the moment the port accepted again unless named otherwise.
#[derive(Debug)]
struct Restart {
    down: Duration,
    attempts: Attempts,
    /// Attempts per second from the fault to the successful dial.
    rate: f64,
    /// → the successful dial.
    wait: Duration,
    /// → READY, service clock.
    ready_svc: Duration,
    /// → READY as a client received it.
    ready_seen: Duration,
    /// → each subscriber's RESYNC.
    resync: Summary,
    /// → READY and every subscriber resynced (whichever came last).
    both: Duration,
    /// The successful dial → READY and every subscriber resynced: the service's own work.
    work: Duration,
}

async fn restart(ctx: &mut Ctx<'_>, down: Duration) -> Result<Restart> {
    let epoch = ctx.settle().await?;
    let fault = Instant::now();
    ctx.inject(&Fault::Restart { down_ms: down.as_millis() as u64 }).await?;
    let open = fault + down;
    let tl = ctx.until_ready(epoch, down + RECOVERY_PATIENCE).await?;
    let resynced = ctx.resynced(epoch).await?;
    let dials = tl.dials();
    let Some(&dial) = dials.last() else {
        return Err(Error::Functional("READY again without a CONNECTING in the health stream".into()));
    };
    let lat: Vec<Duration> = resynced.iter().map(|t| t.saturating_duration_since(open)).collect();
    let resync = Summary::of(&lat).ok_or_else(|| Error::Functional("no resyncs".into()))?;
    let all = resynced.iter().max().copied().unwrap_or(dial);
    let span = dial.saturating_duration_since(fault).as_secs_f64();
    Ok(Restart {
        down,
        attempts: Attempts::of(&dials),
        rate: if span > 0.0 { dials.len() as f64 / span } else { 0.0 },
        wait: dial.saturating_duration_since(open),
        ready_svc: tl.ready_svc().saturating_duration_since(open),
        ready_seen: tl.ready_seen().saturating_duration_since(open),
        both: tl.ready_seen().max(all).saturating_duration_since(open),
        resync,
        work: tl.ready_seen().max(all).saturating_duration_since(dial),
    })
}

fn print_restarts(restarts: &[Restart], subscribers: usize) {
    let mut t = Table::new(
        format!(
            "{NAME}: restart, port down D → from the port accepting again (\"open\") to READY and {subscribers} RESYNCs"
        ),
        &[
            "down",
            "attempts",
            "min gap",
            "open → dial",
            "open → READY (svc)",
            "open → READY seen",
            "resync p50",
            "open → all resynced",
            "open → READY + all resynced",
            "dial → READY + all resynced",
        ],
    );
    for r in restarts {
        t.row(vec![
            length(r.down),
            r.attempts.count.to_string(),
            r.attempts.min_gap.map_or_else(|| "—".into(), ms),
            ms(r.wait),
            ms(r.ready_svc),
            ms(r.ready_seen),
            ms(r.resync.p50),
            ms(r.resync.max),
            ms(r.both),
            ms(r.work),
        ]);
    }
    t.print();
    let mut t = Table::new(
        format!("{NAME}: by outage length (p99 of a few restarts is their maximum)"),
        &["down", "restarts", "attempts/s", "open → dial p50", "max", "open → READY + all resynced p50", "max"],
    );
    for down in lengths(restarts) {
        let of: Vec<&Restart> = restarts.iter().filter(|r| r.down == down).collect();
        let wait = Summary::of(&of.iter().map(|r| r.wait).collect::<Vec<_>>());
        let all = Summary::of(&of.iter().map(|r| r.both).collect::<Vec<_>>());
        let rate = crate::stats::median(&of.iter().map(|r| r.rate).collect::<Vec<_>>()).unwrap_or(0.0);
        let cell =
            |s: Option<Summary>, f: fn(&Summary) -> Duration| s.as_ref().map_or_else(|| "—".into(), |s| ms(f(s)));
        t.row(vec![
            length(down),
            of.len().to_string(),
            format!("{rate:.2}"),
            cell(wait, |s| s.p50),
            cell(wait, |s| s.max),
            cell(all, |s| s.p50),
            cell(all, |s| s.max),
        ]);
    }
    t.print();
}

/// The distinct outage lengths, in the order they ran.
fn lengths(restarts: &[Restart]) -> Vec<Duration> {
    let mut out: Vec<Duration> = Vec::new();
    for r in restarts {
        if !out.contains(&r.down) {
            out.push(r.down);
        }
    }
    out
}

/// An outage length for tables: `300 ms`, `5 s`.
fn length(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { ms(d) }
}

/// The accept-then-close window: the port accepts and closes at once, as socat does in front of a
/// stopped gateway, so the simulator sees (and counts) every attempt.
#[derive(Debug)]
struct Socat {
    window: Duration,
    /// Connections the simulator accepted and closed at once during the window.
    sim_closed: u64,
    /// Dials in the window, by the service's health.
    dials_in_window: usize,
    attempts: Attempts,
    /// Window end → READY as seen, and → every subscriber resynced.
    ready_seen: Duration,
    resynced: Duration,
}

async fn accept_then_close(ctx: &mut Ctx<'_>, window: Duration) -> Result<Socat> {
    let epoch = ctx.settle().await?;
    let before = SimCounts::read(ctx.gw).await?;
    let start = Instant::now();
    ctx.inject(&Fault::AcceptThenClose { duration_ms: window.as_millis() as u64 }).await?;
    // The socket closes, the port stays open: every attempt is accepted and closed until the
    // window ends.
    ctx.inject(&Fault::Restart { down_ms: 0 }).await?;
    let end = start + window;
    let tl = ctx.until_ready(epoch, window + RECOVERY_PATIENCE).await?;
    let resynced = ctx.resynced(epoch).await?;
    let after = SimCounts::read(ctx.gw).await?;
    let dials = tl.dials();
    let all = resynced.iter().max().copied().unwrap_or_else(|| tl.ready_seen());
    let socat = Socat {
        window,
        sim_closed: after.accept_then_close.saturating_sub(before.accept_then_close),
        dials_in_window: dials.iter().filter(|t| **t < end).count(),
        attempts: Attempts::of(&dials),
        ready_seen: tl.ready_seen().saturating_duration_since(end),
        resynced: all.saturating_duration_since(end),
    };
    let mut t = Table::new(
        format!("{NAME}: accept-then-close for {} (socat in front of a stopped gateway)", ms(window)),
        &[
            "attempts (simulator)",
            "per second",
            "dials (service)",
            "min gap",
            "most in 1 s",
            "window end → READY",
            "→ all resynced",
        ],
    );
    t.row(vec![
        socat.sim_closed.to_string(),
        format!("{:.2}", socat.sim_closed as f64 / window.as_secs_f64()),
        socat.dials_in_window.to_string(),
        socat.attempts.min_gap.map_or_else(|| "—".into(), ms),
        socat.attempts.most_in_a_second.to_string(),
        ms(socat.ready_seen),
        ms(socat.resynced),
    ]);
    t.print();
    Ok(socat)
}

/// One silent link, every figure from the injection.
#[derive(Debug)]
struct Silent {
    /// How long after the session's READY the link went silent.
    after_ready: Duration,
    /// → the session given up (RECONNECTING), service clock.
    detect: Duration,
    reason: String,
    dial: Duration,
    ready_svc: Duration,
    ready_seen: Duration,
    resynced: Duration,
}

/// Silences the link `phase` (plus whole probe cycles) after the session's READY, so that runs
/// with phases spread over one cycle meet the probe at every point of its cycle.
async fn silence(ctx: &mut Ctx<'_>, phase: Duration, cycle: Duration) -> Result<Silent> {
    let epoch = ctx.settle().await?;
    let anchor = ctx.last_ready.unwrap_or_else(Instant::now);
    let mut at = anchor + phase;
    while at < Instant::now() {
        at += cycle;
    }
    tokio::time::sleep_until(at).await;
    let t0 = Instant::now();
    ctx.inject(&Fault::Silence).await?;
    let tl = ctx.until_ready(epoch, RECOVERY_PATIENCE).await?;
    let resynced = ctx.resynced(epoch).await?;
    let (given_up, reason) = tl.given_up().unwrap_or_else(|| (tl.ready_svc(), "—".into()));
    let dial = tl.dials().last().copied().unwrap_or(given_up);
    let all = resynced.iter().max().copied().unwrap_or_else(|| tl.ready_seen());
    Ok(Silent {
        after_ready: t0.saturating_duration_since(anchor),
        detect: given_up.saturating_duration_since(t0),
        reason,
        dial: dial.saturating_duration_since(t0),
        ready_svc: tl.ready_svc().saturating_duration_since(t0),
        ready_seen: tl.ready_seen().saturating_duration_since(t0),
        resynced: all.saturating_duration_since(t0),
    })
}

fn print_silences(runs: &[Silent]) {
    let mut t = Table::new(
        format!("{NAME}: silent link (half-open) → READY on a new epoch, from the moment it went silent"),
        &["silent at READY +", "→ given up (svc)", "→ dial", "→ READY (svc)", "→ READY seen", "→ all resynced", "why"],
    );
    for r in runs {
        let why: String = r.reason.split(';').next().unwrap_or("").chars().take(60).collect();
        t.row(vec![
            ms(r.after_ready),
            ms(r.detect),
            ms(r.dial),
            ms(r.ready_svc),
            ms(r.ready_seen),
            ms(r.resynced),
            why,
        ]);
    }
    t.print();
}

/// Liveness probes (`reqCurrentTime`) the simulator received in a window.
#[derive(Debug, Clone, Copy)]
struct ProbeCount {
    probes: u64,
    window: Duration,
}

impl ProbeCount {
    fn per_sec(&self) -> f64 {
        self.probes as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// Probes on an idle session, then on a busy one (a position change every 250 ms).
async fn probe_traffic(ctx: &mut Ctx<'_>, plan: &Plan) -> Result<(ProbeCount, ProbeCount)> {
    ctx.settle().await?;
    let control = &ctx.gw.control;
    let before = SimCounts::read(ctx.gw).await?;
    let started = Instant::now();
    tokio::time::sleep(plan.probe_window).await;
    let idle = ProbeCount { probes: SimCounts::read(ctx.gw).await?.probes - before.probes, window: started.elapsed() };

    let original = target_position(control).await?;
    let quantity: f64 = original
        .quantity
        .parse()
        .map_err(|e| Error::functional(&format!("target quantity {:?}", original.quantity), e))?;
    let mut bumped = original.clone();
    bumped.quantity = (quantity + 1.0).to_string();
    let mut next = Instant::now();
    let mut counting: Option<(Instant, u64)> = None;
    for i in 0u64.. {
        let p = if i % 2 == 0 { &bumped } else { &original };
        control.upsert_positions(std::slice::from_ref(p)).await.map_err(|e| Error::setup("change a position", e))?;
        match counting {
            // A probe may be in flight from the idle time before; count from the second change.
            None if i == 1 => counting = Some((Instant::now(), SimCounts::read(ctx.gw).await?.probes)),
            Some((from, _)) if from.elapsed() >= plan.probe_window => break,
            _ => {}
        }
        next += BUSY_EVERY;
        tokio::time::sleep_until(next).await;
    }
    control.upsert_positions(std::slice::from_ref(&original)).await.map_err(|e| Error::setup("restore", e))?;
    let (from, at_start) = counting.unwrap_or((Instant::now(), 0));
    let busy = ProbeCount { probes: SimCounts::read(ctx.gw).await?.probes - at_start, window: from.elapsed() };

    let mut t = Table::new(
        format!("{NAME}: liveness probes the simulator received (IB's pacing limit: 50 messages/s)"),
        &["session", "window", "probes", "per second", "share of 50/s"],
    );
    for (name, c) in [("idle", idle), ("busy (a position change every 250 ms)", busy)] {
        t.row(vec![
            name.into(),
            ms(c.window),
            c.probes.to_string(),
            format!("{:.2}", c.per_sec()),
            format!("{:.1} %", 100.0 * c.per_sec() / IB_PACING_PER_SEC),
        ]);
    }
    t.print();
    Ok((idle, busy))
}

/// The simulator's counters that matter here.
#[derive(Debug, Clone, Copy)]
struct SimCounts {
    accepted: u64,
    open_now: u64,
    peak: u64,
    handshakes: u64,
    accept_then_close: u64,
    probes: u64,
}

impl SimCounts {
    async fn read(gw: &Spawned) -> Result<SimCounts> {
        let s = gw.control.stats().await.map_err(|e| Error::setup("simulator stats", e))?;
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        Ok(SimCounts {
            accepted: n(&s["connections_accepted_total"]),
            open_now: n(&s["open_now"]),
            peak: n(&s["peak_concurrent"]),
            handshakes: n(&s["handshakes_completed"]),
            accept_then_close: n(&s["rejected"]["accept_then_close"]),
            probes: n(&s["requests"]["current_time"]) + n(&s["requests"]["current_time_millis"]),
        })
    }
}

/// The summary lines.
fn lines(
    plan: &Plan,
    restarts: &[Restart],
    socat: &Socat,
    silent: &[Silent],
    sim: &SimCounts,
    probes: Option<&(ProbeCount, ProbeCount)>,
    direct: Summary,
) -> Vec<Line> {
    let n = restarts.len();
    let s = plan.subscribers;
    let base = format!("{} direct connect+sync (p50)", ms(direct.p50));
    let ratio = |d: Duration| d.as_secs_f64() / direct.p50.as_secs_f64();
    let mut out = Vec::new();
    let summary = |f: &dyn Fn(&Restart) -> Duration| Summary::of(&restarts.iter().map(f).collect::<Vec<_>>());
    if let (Some(ready), Some(all), Some(work)) = (
        summary(&|r| r.ready_seen),
        summary(&|r| r.both),
        median_duration(&restarts.iter().map(|r| r.work).collect::<Vec<_>>()),
    ) {
        out.push(
            plan.judge(
                Line::new(NAME, format!("port accepting again → READY, p50 / p99 of {n} restarts"), pair(ready))
                    .baseline(base.clone(), ratio(ready.p99)),
                format!("p99 ≤ {}", ms(GOAL_AFTER_OPEN)),
                ready.p99 <= GOAL_AFTER_OPEN,
            ),
        );
        out.push(
            plan.judge(
                Line::new(
                    NAME,
                    format!("port accepting again → READY and all {s} resynced, p50 / p99 of {n}"),
                    pair(all),
                )
                .baseline(base.clone(), ratio(all.p99)),
                format!("p99 ≤ {}", ms(GOAL_AFTER_OPEN)),
                all.p99 <= GOAL_AFTER_OPEN,
            ),
        );
        let worst: Vec<(Duration, Duration)> = lengths(restarts)
            .into_iter()
            .map(|d| (d, restarts.iter().filter(|r| r.down == d).map(|r| r.both).max().unwrap_or_default()))
            .collect();
        let names: Vec<String> = worst.iter().map(|(d, _)| length(*d)).collect();
        let values: Vec<String> = worst.iter().map(|(_, w)| ms(*w)).collect();
        out.push(plan.judge(
            Line::new(
                NAME,
                format!("→ READY and all resynced, worst by port down {}", names.join(" / ")),
                values.join(" / "),
            ),
            format!("each ≤ {}", ms(GOAL_AFTER_OPEN)),
            worst.iter().all(|(_, w)| *w <= GOAL_AFTER_OPEN),
        ));
        out.push(
            plan.judge(
                Line::new(
                    NAME,
                    format!("of which the service's work: dial → READY and all {s} resynced (median)"),
                    ms(work),
                )
                .baseline(base.clone(), ratio(work)),
                format!("≤ {}", ms(GOAL_WORK)),
                work <= GOAL_WORK,
            ),
        );
    }
    let ready_silent = Summary::of(&silent.iter().map(|r| r.ready_seen).collect::<Vec<_>>());
    let loud = median_duration(&restarts.iter().filter(|r| r.down.is_zero()).map(|r| r.ready_seen).collect::<Vec<_>>());
    if let Some(sr) = ready_silent {
        let mut line = Line::new(NAME, format!("silent link → READY on a new epoch, p50 / p99 of {}", sr.n), pair(sr));
        if let Some(loud) = loud {
            line = line.baseline(
                format!("{} loud restart → READY (p50)", ms(loud)),
                sr.p50.as_secs_f64() / loud.as_secs_f64(),
            );
        }
        out.push(plan.judge(line, format!("p99 ≤ {}", ms(GOAL_SILENT)), sr.p99 <= GOAL_SILENT));
    }
    let most = restarts
        .iter()
        .map(|r| r.attempts.most_in_a_second)
        .chain([socat.attempts.most_in_a_second])
        .max()
        .unwrap_or(0);
    let dials: usize = restarts.iter().map(|r| r.attempts.count).sum::<usize>() + socat.attempts.count;
    out.push(
        plan.judge(
            Line::new(NAME, format!("dials in any 1 s during outages (service, {dials} dials)"), most.to_string())
                .baseline(format!("limit {MAX_ATTEMPTS_PER_SEC}"), most as f64 / MAX_ATTEMPTS_PER_SEC as f64),
            format!("≤ {MAX_ATTEMPTS_PER_SEC}"),
            most <= MAX_ATTEMPTS_PER_SEC,
        ),
    );
    let per_sec = socat.sim_closed as f64 / socat.window.as_secs_f64();
    out.push(
        plan.judge(
            Line::new(
                NAME,
                format!("attempts the simulator counted in {} accept-then-close", ms(socat.window)),
                format!("{} = {per_sec:.2}/s", socat.sim_closed),
            )
            .baseline(format!("limit {MAX_ATTEMPTS_PER_SEC}/s"), per_sec / MAX_ATTEMPTS_PER_SEC as f64),
            format!("≤ {MAX_ATTEMPTS_PER_SEC}/s"),
            per_sec <= MAX_ATTEMPTS_PER_SEC as f64,
        ),
    );
    out.push(
        Line::new(
            NAME,
            format!("peak concurrent upstream connections ({} accepted, {} handshakes)", sim.accepted, sim.handshakes),
            sim.peak.to_string(),
        )
        .baseline("1 session", sim.peak as f64)
        .goal("= 1", sim.peak == 1),
    );
    if let Some((idle, busy)) = probes {
        out.push(
            Line::new(
                NAME,
                "liveness probes/s, idle / busy session",
                format!("{:.2} / {:.2}", idle.per_sec(), busy.per_sec()),
            )
            .baseline("IB pacing 50/s", idle.per_sec() / IB_PACING_PER_SEC),
        );
    }
    if sim.open_now != 1 {
        println!("{NAME}: the simulator has {} connections open at the end (expected 1)", sim.open_now);
    }
    out
}

/// `p50 / p99` of a summary.
fn pair(s: Summary) -> String {
    format!("{} / {}", ms(s.p50), ms(s.p99))
}

/// Every health change, timestamped on arrival, from a WatchHealth stream read by its own task
/// (aborted when this is dropped).
struct HealthEvents {
    rx: mpsc::UnboundedReceiver<(Instant, pb::Health)>,
    _reader: AbortOnDropHandle<()>,
}

async fn watch_health(client: &mut stack::Client) -> Result<HealthEvents> {
    let mut stream = client
        .watch_health(pb::WatchHealthRequest {})
        .await
        .map_err(|s| Error::functional("WatchHealth", s))?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Ok(Some(m)) = stream.message().await {
            if let Some(h) = m.health
                && tx.send((Instant::now(), h)).is_err()
            {
                return;
            }
        }
    });
    Ok(HealthEvents { rx, _reader: AbortOnDropHandle::new(reader) })
}

fn wall(t: &prost_types::Timestamp) -> SystemTime {
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_per_second_and_gaps() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a = Attempts::of(&[at(0), at(520), at(1_100), at(1_700), at(2_400)]);
        assert_eq!(a.count, 5);
        assert_eq!(a.min_gap, Some(Duration::from_millis(520)));
        assert_eq!(a.most_in_a_second, 2);
        let b = Attempts::of(&[at(0), at(300), at(600)]);
        assert_eq!(b.most_in_a_second, 3);
        assert_eq!(Attempts::of(&[]).most_in_a_second, 0);
    }

    #[test]
    fn plans_follow_the_flags() {
        let full = Plan::new(&RecoveryArgs::default());
        assert!(full.shipped());
        assert!(full.env().is_empty(), "shipped timings set nothing");
        assert_eq!(full.outages.len(), 5);
        assert_eq!(full.probe_cycle(), Duration::from_millis(2_000));
        let smoke = Plan::new(&RecoveryArgs {
            smoke: crate::cli::Smoke { smoke: true },
            rounds: Some(vec![2]),
            outages_ms: Some(vec![100, 200]),
            ..RecoveryArgs::default()
        });
        assert!(!smoke.shipped());
        assert_eq!(smoke.outages, vec![(Duration::from_millis(100), 2), (Duration::from_millis(200), 2)]);
        assert_eq!(length(Duration::from_secs(5)), "5 s");
    }
}
