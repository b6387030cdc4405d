//! Command-line flags. Every subcommand takes `--smoke` (a seconds-long version for CI); every
//! other flag has a bounded default, and `--smoke` only changes the defaults of flags not given.

use clap::{Args, Parser, Subcommand};

/// Benchmarks gateway-svc side by side with the alternatives, in the same run on the same machine.
///
/// Every scenario prints median, p95, p99 (and max where it matters) and the ratio to its baseline.
/// The exit code is non-zero only on a functional failure, never on a missed performance goal.
/// gateway-svc, ib-sim and trader-client must be built in the same profile as this binary.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// `trader-client --once` as a process vs a fresh ib_async and a fresh ibapi connection per run.
    Runner(RunnerArgs),
    /// Cached GetPositions throughput and latency vs an empty-handler server.
    Unary(UnaryArgs),
    /// One position change fanned out to N WatchPositions subscribers, then one price tick to N
    /// WatchPositionPnl subscribers; latency and service RSS.
    Fanout(FanoutArgs),
    /// Time from a gateway restart until READY and until every subscriber has the RESYNC.
    Recovery(RecoveryArgs),
    /// A 10,000-update upstream burst: convergence time and messages per subscriber.
    Burst(BurstArgs),
    /// ib-sim alone: raw TWS clients receiving a burst; updates/s and simulator RSS.
    Sim(SimArgs),
    /// The TWS front door: connect + positions + summary + disconnect through it vs directly to
    /// ib-sim, and the service's RSS with hundreds of front-door clients connected.
    FrontDoor(FrontDoorArgs),
    /// One position change with a large book vs the default book, to gRPC subscribers and TWS
    /// front-door clients: what a change costs as the book grows.
    Book(BookArgs),
    /// `ibgw-bridge` into a real `nats-server -js`: one change to a JetStream consumer vs a direct
    /// WatchPositions subscriber, and a burst until the stream and the positions bucket converge.
    Nats(NatsArgs),
    /// Every scenario with its defaults, then a summary table.
    All(Smoke),
}

/// `--smoke` on its own.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Smoke {
    /// Seconds-long version for CI: fewer runs, levels and updates.
    #[arg(long)]
    pub smoke: bool,
}

/// Flags of `runner`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunnerArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Measured runs per variant (default 20, smoke 3).
    #[arg(long)]
    pub runs: Option<u32>,
    /// Give up on further runs after this many seconds per variant.
    #[arg(long, default_value_t = 120)]
    pub max_secs: u64,
}

/// Flags of `unary`.
#[derive(Debug, Clone, Default, Args)]
pub struct UnaryArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Concurrency levels (calls in flight).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// Measured milliseconds per level and server, taken in 5 turns (default 3000, smoke 500).
    #[arg(long)]
    pub duration_ms: Option<u64>,
    /// HTTP/2 connections the calls are spread over (fewer when the level is lower).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Also measure the empty handler plus gateway-svc's middleware, and the empty handler
    /// returning gateway-svc's payload: where the time between the two goes.
    #[arg(long)]
    pub breakdown: bool,
}

/// Flags of `fanout`.
#[derive(Debug, Clone, Default, Args)]
pub struct FanoutArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Subscriber counts (default 100,1000,10000; smoke 100). One subscriber is always measured
    /// first as the baseline.
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// Streams per HTTP/2 connection.
    #[arg(long)]
    pub per_channel: Option<usize>,
    /// Position changes (and price ticks) measured per level (default 3, smoke 1).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// WatchPositionPnl subscriber counts for the PnL fan-out, run after the positions levels in
    /// a fresh service (default 1000, smoke 100; 0 skips it). One subscriber is measured first;
    /// the ratio is to the positions level with the same count.
    #[arg(long, value_delimiter = ',')]
    pub pnl_levels: Option<Vec<usize>>,
}

/// Flags of `recovery`.
#[derive(Debug, Clone, Default, Args)]
pub struct RecoveryArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Open WatchPositions subscribers (default 100, smoke 20).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Outage lengths: how long the simulated gateway's API port refuses connections after a
    /// restart, in milliseconds (default 0,1000,5000,30000,90000; smoke 300).
    #[arg(long, value_delimiter = ',')]
    pub outages_ms: Option<Vec<u64>>,
    /// Restarts per outage length, in the order of --outages-ms; the last value repeats
    /// (default 4,6,4,2,1; smoke 1).
    #[arg(long, value_delimiter = ',')]
    pub rounds: Option<Vec<u32>>,
    /// Silent (half-open) links measured (default 10, smoke 1).
    #[arg(long)]
    pub silences: Option<u32>,
    /// More positions for the simulated gateway's first account to hold (default 0), added before
    /// anything is measured: the service subscribes each held position's PnL (`reqPnLSingle`,
    /// paced with every other request) when it syncs.
    #[arg(long)]
    pub extra_positions: Option<usize>,
    /// Accept-then-close window (socat in front of a stopped gateway) in which the simulator
    /// counts the service's connection attempts, in milliseconds (default 10000, smoke 500).
    #[arg(long)]
    pub accept_close_ms: Option<u64>,
    /// Length of the idle and of the busy window in which the simulator counts liveness probes,
    /// in milliseconds (default 12000, smoke 500; 0 skips both).
    #[arg(long)]
    pub probe_window_ms: Option<u64>,
    /// The service's recovery timings: `shipped` (its defaults; goals are judged) or `short`
    /// (backoff 50 then 100 ms, probe timeout 300 ms; no verdicts). Default: shipped, smoke short.
    #[arg(long, value_enum)]
    pub timings: Option<Timings>,
}

/// Recovery timings the service runs with in `recovery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Timings {
    /// gateway-svc's defaults, as shipped.
    Shipped,
    /// Shortened for a seconds-long smoke run.
    Short,
}

/// Flags of `burst`.
#[derive(Debug, Clone, Default, Args)]
pub struct BurstArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Open WatchPositions subscribers (default 100, smoke 10).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// Updates in the burst (default 10000, smoke 2000).
    #[arg(long)]
    pub count: Option<u32>,
    /// Bursts measured (default 2, smoke 1).
    #[arg(long)]
    pub rounds: Option<u32>,
}

/// Flags of `sim`.
#[derive(Debug, Clone, Default, Args)]
pub struct SimArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Raw TWS clients subscribed to positions.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Updates in the burst (default 10000, smoke 1000).
    #[arg(long)]
    pub count: Option<u32>,
    /// Bursts measured (default 2, smoke 1).
    #[arg(long)]
    pub rounds: Option<u32>,
}

/// Flags of `front-door`.
#[derive(Debug, Clone, Default, Args)]
pub struct FrontDoorArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Measured cycles per path, alternating (default 200, smoke 30).
    #[arg(long)]
    pub runs: Option<u32>,
    /// Front-door clients held open for the memory figure (default 500, smoke 500).
    #[arg(long)]
    pub clients: Option<usize>,
}

/// Flags of `book`.
#[derive(Debug, Clone, Default, Args)]
pub struct BookArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Positions added for the large book (default 5000, smoke 500).
    #[arg(long)]
    pub rows: Option<usize>,
    /// WatchPositions subscribers (default 100, smoke 10).
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// TWS front-door clients subscribed to positions (default 200, smoke 10).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Timed changes per book size (default 20, smoke 3).
    #[arg(long)]
    pub rounds: Option<u32>,
}

/// Flags of `nats`.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsArgs {
    /// Smoke mode.
    #[command(flatten)]
    pub smoke: Smoke,
    /// Single position changes measured (default 300, smoke 10).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Updates in the burst (default 10000, smoke 2000).
    #[arg(long)]
    pub count: Option<u32>,
}

/// `value` when given, else the smoke or the full default.
pub fn pick<T>(value: Option<T>, smoke: bool, smoke_default: T, full_default: T) -> T {
    value.unwrap_or(if smoke { smoke_default } else { full_default })
}
