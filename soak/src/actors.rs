//! The soak's participants: a health monitor, streaming dashboards, a trader, a mutator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_proto::pb;
use gateway_svc::SessionState;
use gateway_svc::State;
use ibgw_client::{Positions, UpdateKind, View};
use ibgw_demo::Demo;

/// Positions as (account, con_id) → quantity.
pub(crate) type Truth = BTreeMap<(String, i64), String>;

/// The simulator's current positions.
pub(crate) fn truth(sim: &ib_sim::Sim) -> Truth {
    sim.positions().into_iter().map(|p| ((p.account, i64::from(p.con_id)), p.quantity)).collect()
}

/// Outages seen by the health monitor.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Outages {
    /// Times the session left READY.
    pub(crate) count: u64,
    /// Longest time from leaving READY to being READY again.
    pub(crate) longest: Duration,
    /// Sum of all outages.
    pub(crate) total: Duration,
}

/// Watches health until `stop`, timing every stretch away from READY.
pub(crate) async fn monitor(state: Arc<State>, stop: Arc<AtomicBool>) -> Outages {
    let mut rx = state.health_watch();
    let mut out = Outages::default();
    let mut down_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let ready = rx.borrow_and_update().state == SessionState::Ready;
        match (ready, down_since) {
            (false, None) => down_since = Some(Instant::now()),
            (true, Some(since)) => {
                let d = since.elapsed();
                out.count += 1;
                out.longest = out.longest.max(d);
                out.total += d;
                down_since = None;
            }
            _ => {}
        }
        // Wake on a change, or now and then to notice `stop`.
        let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
    }
    out
}

/// What one dashboard saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct DashboardResult {
    /// Messages received.
    pub(crate) messages: u64,
    /// RESYNC messages among them.
    pub(crate) resyncs: u64,
    /// `seq` jumps (must be 0).
    pub(crate) seq_gaps: u64,
    /// Times its stream broke (must be 0: gateway-svc itself never restarts here).
    pub(crate) stream_errors: u64,
    /// Final view.
    #[serde(skip)]
    pub(crate) view: Truth,
}

/// Streams positions until `stop`, keeping a view exactly as the API documents and publishing it
/// on `view_tx` after every message.
pub(crate) async fn dashboard(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    view_tx: tokio::sync::watch::Sender<Truth>,
) -> DashboardResult {
    let mut r = DashboardResult::default();
    let mut client = match ibgw_client::connect(&addr.to_string(), None, Duration::from_secs(5)).await {
        Ok(c) => c,
        Err(_) => {
            r.stream_errors += 1;
            return r;
        }
    };
    // The summary stream runs alongside, as a real dashboard's does; only positions are checked.
    let _summary = client.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await;
    let mut folded = View::<Positions>::new();
    'outer: while !stop.load(Ordering::Relaxed) {
        let mut stream = match client.watch_positions(pb::WatchPositionsRequest::default()).await {
            Ok(s) => s.into_inner(),
            Err(_) => {
                r.stream_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // One fold for every client of the streams (ibgw-client's): a skipped seq or an epoch
        // change without RESYNC is refused, counted, and the stream opened again.
        folded.reopen();
        while !stop.load(Ordering::Relaxed) {
            let m = match tokio::time::timeout(Duration::from_millis(50), stream.message()).await {
                Err(_) => continue,
                Ok(Ok(Some(m))) => m,
                Ok(_) => {
                    r.stream_errors += 1;
                    continue 'outer;
                }
            };
            r.messages += 1;
            let update = match folded.apply_message(m) {
                Ok(u) => u,
                Err(_) => {
                    r.seq_gaps += 1;
                    continue 'outer;
                }
            };
            if update.kind == UpdateKind::Resync {
                r.resyncs += 1;
            }
            r.view = folded.rows().iter().map(|(k, p)| (k.clone(), p.quantity.clone())).collect();
            view_tx.send_replace(r.view.clone());
        }
    }
    r
}

/// What the trader runs saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct TraderResult {
    /// Runs attempted.
    pub(crate) runs: u64,
    /// Runs that got every answer.
    pub(crate) ok: u64,
    /// Runs that answered from stale data (allowed during an outage; counted for the record).
    pub(crate) stale_answers: u64,
    /// Run latencies, milliseconds.
    pub(crate) latencies_ms: Vec<f64>,
    /// First few failures.
    pub(crate) errors: Vec<String>,
}

/// `runs` trader runs spread over `over`, each on a fresh channel.
pub(crate) async fn trader(addr: SocketAddr, runs: u64, over: Duration) -> TraderResult {
    spread(runs, over, |_| trader_once(addr)).await
}

/// `runs` runs of `run` spread evenly over `over`. A run answers whether it was answered from
/// stale data (allowed during an outage; counted for the record), or why it failed.
pub(crate) async fn spread<F, Fut>(runs: u64, over: Duration, mut run: F) -> TraderResult
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let mut r = TraderResult::default();
    let pause = if runs == 0 { Duration::ZERO } else { over / runs as u32 };
    for i in 0..runs {
        let started = Instant::now();
        r.runs += 1;
        match run(i).await {
            Ok(stale) => {
                r.ok += 1;
                r.stale_answers += u64::from(stale);
                r.latencies_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Err(e) if r.errors.len() < 5 => r.errors.push(e),
            Err(_) => {}
        }
        tokio::time::sleep(pause.saturating_sub(started.elapsed())).await;
    }
    r
}

async fn trader_once(addr: SocketAddr) -> Result<bool, String> {
    let mut c =
        ibgw_client::connect(&addr.to_string(), None, Duration::from_secs(3)).await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = c
            .get_health(pb::GetHealthRequest {})
            .await
            .map_err(|s| s.to_string())?
            .into_inner()
            .health
            .unwrap_or_default();
        if h.state == pb::SessionState::Ready as i32 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("not ready within 10 s: {}", h.reason));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.list_accounts(pb::ListAccountsRequest {}).await.map_err(|s| s.to_string())?;
    let p = c
        .get_positions(pb::GetPositionsRequest { accounts: vec![], symbols: vec!["AAPL".into()] })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    c.get_account_summary(pb::GetAccountSummaryRequest { accounts: vec![], tags: vec!["NetLiquidation".into()] })
        .await
        .map_err(|s| s.to_string())?;
    Ok(p.freshness.is_some_and(|f| f.state == pb::FreshnessState::Stale as i32))
}

/// Changes one position every `every` for `over`, round robin; returns how many changes.
pub(crate) async fn mutate(sim: &ib_sim::Sim, every: Duration, over: Duration) -> u64 {
    let end = Instant::now() + over;
    let mut n = 0u64;
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
    while Instant::now() < end {
        tick.tick().await;
        let positions = sim.positions();
        let Some(mut p) = positions.get(n as usize % positions.len().max(1)).cloned() else { break };
        let q: i64 = p.quantity.parse::<f64>().map(|q| q as i64).unwrap_or(0);
        // Never reach 0, which would close the position and shrink the book.
        p.quantity = if q >= 1000 { "1".into() } else { (q.max(0) + 1).to_string() };
        if sim.upsert_positions(vec![p]).is_ok() {
            n += 1;
        }
    }
    n
}

/// Waits until the service is ready and its positions equal `truth`.
pub(crate) async fn wait_converged(demo: &Demo, truth: &Truth, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let snap = demo.service.state.positions.snapshot();
        let ours: Truth = snap.rows.values().map(|p| ((p.account.clone(), p.con_id), p.quantity.clone())).collect();
        if demo.service.state.health().is_ready() && &ours == truth {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
