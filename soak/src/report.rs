//! What a soak run measured, and what counts as a failure.

use std::time::Duration;

use serde::Serialize;

use crate::Args;
use crate::actors::{DashboardResult, Outages, TraderResult, Truth};

/// Everything [`Report::new`] needs.
pub(crate) struct Inputs {
    pub(crate) args: Args,
    pub(crate) elapsed: Duration,
    pub(crate) mutations: u64,
    pub(crate) trader: TraderResult,
    pub(crate) ib_api: TraderResult,
    pub(crate) follower: DashboardResult,
    pub(crate) views: Vec<DashboardResult>,
    pub(crate) truth: Truth,
    pub(crate) converged: bool,
    pub(crate) outages: Outages,
    pub(crate) reconnects: u64,
    pub(crate) epoch: u64,
    pub(crate) stats: ib_sim::Stats,
    pub(crate) close_wait: usize,
    pub(crate) rss_start: u64,
    pub(crate) rss_mid: u64,
    pub(crate) rss_end: u64,
}

/// The soak's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// Gateway restarts injected.
    pub restarts: u64,
    /// IB link losses (1100 → 1101) injected.
    pub link_losses: u64,
    /// Position changes made in the simulator.
    pub mutations: u64,
    /// Sessions re-established by gateway-svc.
    pub reconnects: u64,
    /// Final session epoch.
    pub session_epoch: u64,
    /// Times the session left READY.
    pub outages: u64,
    /// Longest time from leaving READY to READY again, milliseconds.
    pub longest_time_to_ready_ms: f64,
    /// Trader runs attempted / succeeded.
    pub trader_runs: u64,
    /// Trader runs that succeeded.
    pub trader_ok: u64,
    /// Trader runs answered from stale data during an outage (allowed, reported).
    pub trader_stale_answers: u64,
    /// Median trader run, milliseconds.
    pub trader_p50_ms: f64,
    /// 99th percentile trader run, milliseconds.
    pub trader_p99_ms: f64,
    /// First trader errors.
    pub trader_errors: Vec<String>,
    /// IB API runs through the TWS front door.
    pub ib_api_runs: u64,
    /// Those that got every answer.
    pub ib_api_ok: u64,
    /// Those started while the session was not ready: told so (1100) and answered from the last
    /// known data.
    pub ib_api_stale_answers: u64,
    /// Median IB API run, milliseconds.
    pub ib_api_p50_ms: f64,
    /// First IB API errors.
    pub ib_api_errors: Vec<String>,
    /// Position rows the long-lived IB API client received.
    pub ib_api_follower_rows: u64,
    /// Times the long-lived IB API client's connection broke (must be 0).
    pub ib_api_follower_errors: u64,
    /// Dashboards streaming.
    pub dashboards: usize,
    /// Stream messages the dashboards received in all.
    pub dashboard_messages: u64,
    /// RESYNC messages among them.
    pub dashboard_resyncs: u64,
    /// Gaps in any dashboard's `seq` (must be 0).
    pub seq_gaps: u64,
    /// Dashboard stream breaks (must be 0).
    pub stream_errors: u64,
    /// Views (service + dashboards) that did not end equal to the simulator (must be 0).
    pub data_mismatches: u64,
    /// Upstream connections the simulator accepted.
    pub upstream_connections: u64,
    /// Most upstream connections open at once (must be ≤ 1).
    pub upstream_peak_concurrent: u64,
    /// Upstream connections not closed cleanly (must be 0).
    pub unclean_closes: u64,
    /// Upstream connections the simulator closed first (restarts, limits): expected, reported.
    pub closed_by_gateway: u64,
    /// Sockets in CLOSE_WAIT on the gateway port at the end (must be 0).
    pub leaked_sockets: usize,
    /// Process RSS at start, half-way (end of load) and end, KiB.
    pub rss_kib: [u64; 3],
}

impl Report {
    pub(crate) fn new(i: Inputs) -> Report {
        let pct = |r: &TraderResult, p: f64| {
            let mut lat = r.latencies_ms.clone();
            lat.sort_by(f64::total_cmp);
            lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
        };
        let view_mismatches =
            i.views.iter().chain(std::iter::once(&i.follower)).filter(|v| v.view != i.truth).count() as u64;
        Report {
            elapsed_s: i.elapsed.as_secs_f64(),
            restarts: i.stats.faults.get("restart").copied().unwrap_or(0),
            link_losses: i.stats.faults.get("link_lost").copied().unwrap_or(0),
            mutations: i.mutations,
            reconnects: i.reconnects,
            session_epoch: i.epoch,
            outages: i.outages.count,
            longest_time_to_ready_ms: i.outages.longest.as_secs_f64() * 1000.0,
            trader_runs: i.trader.runs,
            trader_ok: i.trader.ok,
            trader_stale_answers: i.trader.stale_answers,
            trader_p50_ms: pct(&i.trader, 0.5),
            trader_p99_ms: pct(&i.trader, 0.99),
            trader_errors: i.trader.errors.clone(),
            ib_api_runs: i.ib_api.runs,
            ib_api_ok: i.ib_api.ok,
            ib_api_stale_answers: i.ib_api.stale_answers,
            ib_api_p50_ms: pct(&i.ib_api, 0.5),
            ib_api_errors: i.ib_api.errors.clone(),
            ib_api_follower_rows: i.follower.messages,
            ib_api_follower_errors: i.follower.stream_errors,
            dashboards: i.args.dashboards,
            dashboard_messages: i.views.iter().map(|v| v.messages).sum(),
            dashboard_resyncs: i.views.iter().map(|v| v.resyncs).sum(),
            seq_gaps: i.views.iter().map(|v| v.seq_gaps).sum(),
            stream_errors: i.views.iter().map(|v| v.stream_errors).sum(),
            data_mismatches: view_mismatches + u64::from(!i.converged),
            upstream_connections: i.stats.connections_accepted_total,
            upstream_peak_concurrent: i.stats.peak_concurrent,
            unclean_closes: i.stats.unclean_total,
            closed_by_gateway: i.stats.closed_by_server_total,
            leaked_sockets: i.close_wait,
            rss_kib: [i.rss_start, i.rss_mid, i.rss_end],
        }
    }

    /// Why the run failed; empty when it passed.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |bad: bool, what: String| {
            if bad {
                f.push(what);
            }
        };
        check(self.data_mismatches > 0, format!("{} data mismatches", self.data_mismatches));
        check(self.leaked_sockets > 0, format!("{} sockets in CLOSE_WAIT", self.leaked_sockets));
        check(self.upstream_peak_concurrent > 1, format!("{} upstream sockets at once", self.upstream_peak_concurrent));
        check(self.unclean_closes > 0, format!("{} unclean closes", self.unclean_closes));
        check(self.seq_gaps > 0, format!("{} seq gaps", self.seq_gaps));
        check(self.stream_errors > 0, format!("{} dashboard stream errors", self.stream_errors));
        check(self.trader_ok < self.trader_runs, format!("{} failed trader runs", self.trader_runs - self.trader_ok));
        check(
            self.ib_api_ok < self.ib_api_runs,
            format!("{} failed IB API runs: {:?}", self.ib_api_runs - self.ib_api_ok, self.ib_api_errors),
        );
        check(
            self.ib_api_follower_errors > 0,
            format!("the long-lived IB API client's connection broke {} times", self.ib_api_follower_errors),
        );
        f
    }

    /// A readable summary.
    pub fn text(&self) -> String {
        let mib = |k: u64| k as f64 / 1024.0;
        format!(
            "soak: {:.1} s, {} restarts, {} link losses, {} position changes\n\
             \x20 reconnects            {} (epoch {}), {} outages, longest time to ready {:.0} ms\n\
             \x20 trader runs           {}/{} ok, {} answered stale, p50 {:.1} ms, p99 {:.1} ms\n\
             \x20 IB API runs           {}/{} ok through the TWS front door, {} started during an outage, p50 {:.1} ms\n\
             \x20 IB API follower       {} position rows, {} broken connections\n\
             \x20 dashboards            {} streaming, {} messages, {} resyncs, {} seq gaps, {} stream errors\n\
             \x20 data mismatches       {}\n\
             \x20 upstream sockets      {} accepted, peak {} at once, {} closed by the gateway, {} unclean\n\
             \x20 leaked sockets        {} in CLOSE_WAIT\n\
             \x20 RSS                   {:.1} MiB → {:.1} MiB → {:.1} MiB\n\
             {}\n",
            self.elapsed_s,
            self.restarts,
            self.link_losses,
            self.mutations,
            self.reconnects,
            self.session_epoch,
            self.outages,
            self.longest_time_to_ready_ms,
            self.trader_ok,
            self.trader_runs,
            self.trader_stale_answers,
            self.trader_p50_ms,
            self.trader_p99_ms,
            self.ib_api_ok,
            self.ib_api_runs,
            self.ib_api_stale_answers,
            self.ib_api_p50_ms,
            self.ib_api_follower_rows,
            self.ib_api_follower_errors,
            self.dashboards,
            self.dashboard_messages,
            self.dashboard_resyncs,
            self.seq_gaps,
            self.stream_errors,
            self.data_mismatches,
            self.upstream_connections,
            self.upstream_peak_concurrent,
            self.closed_by_gateway,
            self.unclean_closes,
            self.leaked_sockets,
            mib(self.rss_kib[0]),
            mib(self.rss_kib[1]),
            mib(self.rss_kib[2]),
            if self.failures().is_empty() {
                "PASS".to_owned()
            } else {
                format!("FAIL: {}", self.failures().join("; "))
            },
        )
    }
}

/// This process's resident set, KiB (0 where /proc is unavailable).
pub(crate) fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sockets in CLOSE_WAIT on either side of `port` (`ss` from iproute2).
pub(crate) fn close_wait(port: u16) -> usize {
    let filter = format!("( sport = :{port} or dport = :{port} )");
    std::process::Command::new("ss")
        .args(["-Htan", "state", "close-wait", &filter])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(usize::MAX)
}
