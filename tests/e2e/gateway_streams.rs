//! Streams through faults: snapshot then deltas, restarts, link loss, half-open links, 326,
//! slow subscribers and shutdown.

use std::time::Duration;

use gateway_proto::pb;
use ib_sim::Fault;
use tonic::Streaming;

use crate::support::eventually;
use crate::support::stack::{Stack, fast_settings, start_stack, start_stack_with};
use crate::support::streams::{Quantities, fold, quantities};

const WITHIN: Duration = Duration::from_secs(10);

async fn next(s: &mut Streaming<pb::WatchPositionsResponse>) -> pb::WatchPositionsResponse {
    tokio::time::timeout(crate::support::patience(WITHIN), s.message())
        .await
        .expect("a message in time")
        .unwrap()
        .unwrap()
}

fn kind(m: &pb::WatchPositionsResponse) -> pb::UpdateKind {
    pb::UpdateKind::try_from(m.kind).unwrap()
}

fn freshness(m: &pb::WatchPositionsResponse) -> pb::FreshnessState {
    pb::FreshnessState::try_from(m.freshness.as_ref().unwrap().state).unwrap()
}

/// A client-side view, folded by `ibgw-client` exactly as the API documents it.
#[derive(Default)]
struct View(ibgw_client::View<ibgw_client::Positions>);

impl View {
    /// Applies `m`, which must follow the previous message (gap-free seq).
    fn apply(&mut self, m: &pb::WatchPositionsResponse) {
        fold(&mut self.0, m);
    }

    fn rows(&self) -> Quantities {
        quantities(&self.0)
    }

    fn truth(stack: &Stack) -> Quantities {
        stack.sim().positions().into_iter().map(|p| ((p.account, i64::from(p.con_id)), p.quantity)).collect()
    }
}

fn with_quantity(stack: &Stack, symbol: &str, qty: &str) -> ib_sim::Position {
    let mut p = stack.sim().positions().into_iter().find(|p| p.symbol == symbol && p.sec_type == "STK").unwrap();
    p.quantity = qty.into();
    p
}

async fn open(stack: &Stack) -> (Streaming<pb::WatchPositionsResponse>, View) {
    let mut s = stack.client.clone().watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
    let mut view = View::default();
    let first = next(&mut s).await;
    assert_eq!(kind(&first), pb::UpdateKind::Snapshot);
    view.apply(&first);
    (s, view)
}

#[tokio::test]
async fn snapshot_then_deltas_then_removal() {
    let stack = start_stack().await;
    let (mut s, mut view) = open(&stack).await;
    assert_eq!(view.rows(), View::truth(&stack));
    stack.sim().upsert_positions(vec![with_quantity(&stack, "MSFT", "41")]).unwrap();
    let m = next(&mut s).await;
    assert_eq!(kind(&m), pb::UpdateKind::Delta);
    assert_eq!(m.upserts.len(), 1);
    assert_eq!(m.upserts[0].quantity, "41");
    view.apply(&m);
    stack.sim().upsert_positions(vec![with_quantity(&stack, "MSFT", "0")]).unwrap();
    let m = next(&mut s).await;
    assert_eq!(m.removals.len(), 1, "a closed position is a removal: {m:?}");
    view.apply(&m);
    assert_eq!(view.rows(), View::truth(&stack));
    stack.stop_and_check().await;
}

#[tokio::test]
async fn restart_with_a_stream_open_goes_stale_then_resyncs_under_a_new_epoch() {
    let stack = start_stack().await;
    let (mut s, mut view) = open(&stack).await;
    stack.sim().inject(Fault::Restart { down_ms: 300 }).unwrap();
    let stale = next(&mut s).await;
    assert_eq!(kind(&stale), pb::UpdateKind::Freshness);
    assert_eq!(freshness(&stale), pb::FreshnessState::Stale);
    assert!(stale.freshness.as_ref().unwrap().since.is_some());
    assert!(!stale.freshness.as_ref().unwrap().reason.is_empty());
    view.apply(&stale);
    // A change while we are disconnected must show up in the resync.
    stack.sim().upsert_positions(vec![with_quantity(&stack, "TSLA", "99")]).unwrap();
    let resync = loop {
        let m = next(&mut s).await;
        view.apply(&m);
        if kind(&m) == pb::UpdateKind::Resync {
            break m;
        }
        assert_eq!(freshness(&m), pb::FreshnessState::Stale, "only staleness updates before the resync: {m:?}");
    };
    assert_eq!(resync.session_epoch, 2, "epoch + 1");
    assert_eq!(freshness(&resync), pb::FreshnessState::Live);
    assert!(resync.upserts.iter().any(|p| p.symbol == "TSLA" && p.quantity == "99"), "the gap's change: {resync:?}");
    assert_eq!(view.rows(), View::truth(&stack), "no position lost or invented");
    let h = stack.wait_ready().await;
    assert!(h.reconnects >= 1);
    let stats = stack.stop_and_check().await;
    assert_eq!(stats.closed.iter().filter(|c| c.reason == "gateway restart").count(), 1);
}

#[tokio::test]
async fn link_lost_then_data_lost_resubscribes_and_reconciles() {
    let stack = start_stack().await;
    let (mut s, mut view) = open(&stack).await;
    stack.sim().inject(Fault::LinkLost { restore_ms: 400, data_lost: true }).unwrap();
    let stale = next(&mut s).await;
    assert_eq!(freshness(&stale), pb::FreshnessState::Stale);
    assert!(stale.freshness.as_ref().unwrap().reason.contains("1100"), "{stale:?}");
    view.apply(&stale);
    let h = stack.wait_state(pb::SessionState::Degraded, WITHIN).await;
    assert!(h.reason.contains("1100"));
    stack.sim().upsert_positions(vec![with_quantity(&stack, "AAPL", "250")]).unwrap();
    let resync = loop {
        let m = next(&mut s).await;
        view.apply(&m);
        if kind(&m) == pb::UpdateKind::Resync {
            break m;
        }
    };
    assert_eq!(resync.session_epoch, 1, "same session, no reconnect");
    assert_eq!(view.rows(), View::truth(&stack));
    // After 1101 the new subscription is live: later changes flow as deltas.
    stack.wait_ready().await;
    stack.sim().upsert_positions(vec![with_quantity(&stack, "AAPL", "251")]).unwrap();
    loop {
        let m = next(&mut s).await;
        view.apply(&m);
        if view.rows() == View::truth(&stack) {
            break;
        }
    }
    assert_eq!(stack.sim().stats().connections_accepted_total, 1);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn link_lost_then_data_maintained_refreshes_summary() {
    let stack = start_stack().await;
    let mut summary = stack
        .client
        .clone()
        .watch_account_summary(pb::WatchAccountSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    summary.message().await.unwrap().unwrap();
    let before = stack.sim().stats().requests.get("account_summary").copied();
    stack.sim().inject(Fault::LinkLost { restore_ms: 300, data_lost: false }).unwrap();
    stack.wait_state(pb::SessionState::Degraded, WITHIN).await;
    stack.wait_ready().await;
    eventually("the summary to be requested again after 1102", WITHIN, || async {
        (stack.sim().stats().requests.get("account_summary").copied() > before).then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + crate::support::patience(WITHIN);
    let m = loop {
        let m = tokio::time::timeout_at(deadline, summary.message())
            .await
            .expect("a live summary in time")
            .unwrap()
            .unwrap();
        if m.freshness.as_ref().unwrap().state == pb::FreshnessState::Live as i32
            && m.kind != pb::UpdateKind::Snapshot as i32
        {
            break m;
        }
    };
    assert_eq!(m.session_epoch, 1);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn half_open_silence_is_detected_by_the_probe() {
    let stack = start_stack().await;
    let (mut s, _view) = open(&stack).await;
    stack.sim().inject(Fault::Silence).unwrap();
    let stale = next(&mut s).await;
    assert_eq!(freshness(&stale), pb::FreshnessState::Stale);
    // The documented cause and reason, exactly: a silent link is the half-open case.
    let reason = &stale.freshness.as_ref().unwrap().reason;
    assert_eq!(reason, "liveness probe unanswered for 700 ms (half-open link)", "{stale:?}");
    let h = stack.wait_ready().await;
    assert_eq!(h.session_epoch, 2);
    let metrics = crate::gateway_rpc::http_get(stack.demo.service.ops_addr, "/metrics").await;
    assert!(metrics.contains("ibgw_reconnects_total{cause=\"probe_timeout\"} 1"), "{metrics}");
    assert!(metrics.contains("ibgw_reconnects_total{cause=\"probe_failed\"} 0"), "{metrics}");
    let stats = stack.sim().stats();
    let silent = stats.closed.iter().find(|c| c.conn == 1).expect("the silent socket was closed");
    assert_eq!(silent.closed_by, ib_sim::Closer::Client, "we closed the half-open socket ourselves");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn client_id_in_use_backs_off_and_keeps_the_id() {
    let stack = start_stack().await;
    stack.sim().inject(Fault::DuplicateId { duration_ms: 800 }).unwrap();
    stack.sim().inject(Fault::Restart { down_ms: 50 }).unwrap();
    let h = eventually("a 326 to be counted", WITHIN, || async {
        let h = stack.health().await;
        (h.client_id_conflicts > 0).then_some(h)
    })
    .await;
    assert_eq!(h.client_id, 1, "the configured id is kept");
    let h = stack.wait_ready().await;
    assert_eq!(h.client_id, 1);
    let stats = stack.sim().stats();
    assert!(stats.rejected.get("duplicate_id_fault").copied().unwrap_or(0) >= 1);
    assert!(stats.per_client_id.keys().all(|id| *id == 1), "never another id: {:?}", stats.per_client_id);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_single_fallback_id_is_used_after_repeated_conflicts() {
    let mut settings = fast_settings();
    settings.upstream.client_id = 7;
    settings.upstream.fallback_client_id = Some(8);
    settings.upstream.conflicts_before_fallback = 2;
    let stack = start_stack_with(settings, ib_sim::Scenario::default()).await;
    // Hold id 7 with a rogue client so every reconnect as 7 gets 326.
    stack.sim().inject(Fault::Restart { down_ms: 100 }).unwrap();
    let api = stack.sim().api_addr();
    eventually("the simulated gateway to accept again", WITHIN, || async {
        tokio::net::TcpStream::connect(api).await.ok().map(drop)
    })
    .await;
    let (_rogue, _) = crate::support::wire::WireClient::start(api, 7).await;
    let h = eventually("ready on the fallback id", WITHIN, || async {
        let h = stack.health().await;
        (h.state == pb::SessionState::Ready as i32 && h.client_id == 8).then_some(h)
    })
    .await;
    assert!(h.client_id_conflicts >= 2);
    drop(_rogue);
    stack.demo.service.stop().await;
    stack.demo.sim.shutdown().await;
}

#[tokio::test]
async fn malformed_frame_from_upstream_costs_a_reconnect_not_a_crash() {
    let stack = start_stack().await;
    let (mut s, mut view) = open(&stack).await;
    for fault in [Fault::MalformedFrame, Fault::OversizedFrame] {
        let epoch = stack.health().await.session_epoch;
        stack.sim().inject(fault).unwrap();
        eventually("a new session", WITHIN, || async {
            let h = stack.health().await;
            (h.session_epoch > epoch && h.state == pb::SessionState::Ready as i32).then_some(())
        })
        .await;
    }
    loop {
        let m = next(&mut s).await;
        view.apply(&m);
        if kind(&m) == pb::UpdateKind::Resync && m.session_epoch == 3 {
            break;
        }
    }
    assert_eq!(view.rows(), View::truth(&stack));
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_slow_subscriber_never_blocks_others_and_converges() {
    let stack = start_stack().await;
    let (mut slow, mut slow_view) = open(&stack).await;
    let (mut fast, mut fast_view) = open(&stack).await;
    let target = stack.sim().positions().into_iter().find(|p| p.symbol == "MSFT").unwrap();
    stack
        .sim()
        .inject(Fault::Burst { count: 10_000, con_id: Some(target.con_id), account: Some(target.account.clone()) })
        .unwrap();
    let final_qty = (target.quantity.parse::<i64>().unwrap() + 10_000).to_string();
    // The fast one reads as it comes and reaches the final state...
    while fast_view.rows().get(&(target.account.clone(), i64::from(target.con_id))) != Some(&final_qty) {
        let m = next(&mut fast).await;
        fast_view.apply(&m);
    }
    // ...while the slow one has not read a single message. When it does, it converges too.
    while slow_view.rows().get(&(target.account.clone(), i64::from(target.con_id))) != Some(&final_qty) {
        let m = next(&mut slow).await;
        slow_view.apply(&m);
    }
    assert_eq!(slow_view.rows(), View::truth(&stack));
    stack.stop_and_check().await;
}

#[tokio::test]
async fn shutdown_ends_streams_with_unavailable_and_closes_upstream_first() {
    let stack = start_stack().await;
    let (mut s, _) = open(&stack).await;
    let mut health = stack.client.clone().watch_health(pb::WatchHealthRequest {}).await.unwrap().into_inner();
    health.message().await.unwrap().unwrap();
    let token = stack.demo.service.shutdown_token();
    token.cancel();
    let end = loop {
        match tokio::time::timeout(WITHIN, s.message()).await.expect("stream ends in time") {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), tonic::Code::Unavailable);
    assert_eq!(end.message(), "shutting down");
    let end = loop {
        match health.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("health stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), tonic::Code::Unavailable);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn frames_dropped_upstream_during_a_burst_are_reconciled() {
    // A tiny upstream buffer makes the crate drop frames during the burst. The change to AAPL is
    // sent first, so its frame is among the oldest: the ones dropped. Without ledger rows the
    // first summary snapshot fits the buffer.
    let mut settings = fast_settings();
    settings.upstream.channel_capacity = 16;
    let scenario = ib_sim::Scenario { ledger: Vec::new(), ..ib_sim::Scenario::default() };
    let stack = start_stack_with(settings, scenario).await;
    let (mut s, mut view) = open(&stack).await;
    stack.sim().upsert_positions(vec![with_quantity(&stack, "AAPL", "4242")]).unwrap();
    let target = stack.sim().positions().into_iter().find(|p| p.symbol == "MSFT").unwrap();
    stack
        .sim()
        .inject(Fault::Burst { count: 10_000, con_id: Some(target.con_id), account: Some(target.account.clone()) })
        .unwrap();
    let truth = View::truth(&stack);
    let deadline = tokio::time::Instant::now() + crate::support::patience(WITHIN);
    while view.rows() != truth {
        let m = tokio::time::timeout_at(deadline, s.message()).await.expect("converged in time").unwrap().unwrap();
        view.apply(&m);
    }
    let metrics = crate::gateway_rpc::http_get(stack.demo.service.ops_addr, "/metrics").await;
    let lagged = metrics
        .lines()
        .find(|l| l.starts_with("ibgw_upstream_lag_total{kind=\"positions\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(lagged >= 1.0, "the burst overflowed the upstream buffer and was reconciled:\n{metrics}");
    // The book changed at once but its 10,000 frames drain afterwards, and the view converged
    // from a resync before the tail arrived. Stopping now would close our socket with unread
    // data, which the kernel answers with RST: wait until the upstream is quiet.
    let rows = || async {
        let metrics = crate::gateway_rpc::http_get(stack.demo.service.ops_addr, "/metrics").await;
        metrics
            .lines()
            .find(|l| l.starts_with("ibgw_upstream_updates_total{kind=\"positions\"}"))
            .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let last = std::cell::Cell::new((rows().await, 0));
    eventually("the burst's tail to drain (no new upstream rows over 10 polls)", WITHIN, || async {
        let now = rows().await;
        let (before, quiet) = last.get();
        last.set(if now == before { (now, quiet + 1) } else { (now, 0) });
        (last.get().1 >= 10).then_some(())
    })
    .await;
    stack.stop_and_check().await;
}

/// Frames dropped while the first snapshot is read would make it incomplete: it must never be
/// published as LIVE. With a one-frame buffer and ledger rows the summary cannot be read whole,
/// so the service keeps retrying and says why, serving no summary rather than a wrong one.
#[tokio::test]
async fn a_first_snapshot_with_dropped_frames_is_never_published() {
    let mut settings = fast_settings();
    settings.upstream.channel_capacity = 1;
    let stack = crate::support::stack::start_stack_unready(settings, ib_sim::Scenario::default()).await;
    let truth = stack.sim().account_values().len();
    let mut client = stack.client.clone();
    let h = eventually("a lag during the first read to be reported", WITHIN, || {
        let mut c = client.clone();
        async move {
            // Never LIVE with missing rows, at any moment.
            if let Ok(s) = c.get_account_summary(pb::GetAccountSummaryRequest::default()).await {
                let s = s.into_inner();
                assert!(
                    s.values.len() >= truth,
                    "an incomplete summary was published: {} of {truth} rows",
                    s.values.len()
                );
            }
            let h = c.get_health(pb::GetHealthRequest {}).await.ok()?.into_inner().health?;
            h.reason.contains("dropping frames while the first snapshot was read").then_some(h)
        }
    })
    .await;
    assert!(h.reason.contains("raise upstream.channel_capacity"), "{}", h.reason);
    let status = client.get_account_summary(pb::GetAccountSummaryRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "no data rather than wrong data");
    let metrics = crate::gateway_rpc::http_get(stack.demo.service.ops_addr, "/metrics").await;
    let lags: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("ibgw_upstream_lag_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    assert!(lags >= 1.0, "the lag was counted: {metrics}");
    assert!(stack.demo.stop().await);
}
