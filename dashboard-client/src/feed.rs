//! Five long-lived gRPC streams (positions, account summary, account PnL, position PnL, health)
//! followed with `ibgw-client`'s [`Follower`]: it folds snapshots, deltas and resyncs as the API
//! documents them, refuses a skipped seq or an epoch change without RESYNC by opening the stream
//! again, and reconnects with backoff when gateway-svc goes away. Each task copies its view into
//! the dashboard model after every event. A gateway-svc that does not serve a stream
//! (UNIMPLEMENTED: older than PnL) is asked again now and then; the rest of the page works
//! meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use ibgw_client::{
    AccountPnl, Cause, Client, Event, Follower, FreshnessState, Health, Kind, Lost, Options, PositionPnl, Positions,
    Summary, View,
};
use ibgw_kit::BackoffPolicy;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::model::{self, Dashboard, DataView, FreshnessView};

/// Reconnect delays: from 100 ms up to 3 s, jittered so the five streams (and other dashboards)
/// do not all come back in the same instant after a gateway-svc restart.
const BACKOFF: BackoffPolicy = BackoffPolicy::clamped(Duration::from_millis(100), Duration::from_secs(3));
/// How long before asking again for a stream gateway-svc does not serve.
const NOT_SERVED_RETRY: Duration = Duration::from_secs(30);

/// Starts the stream tasks on `tracker`.
pub fn spawn(client: Client, model: watch::Sender<Dashboard>, tracker: &TaskTracker, shutdown: CancellationToken) {
    tracker.spawn(data::<Positions, _>(
        client.clone(),
        model.clone(),
        shutdown.clone(),
        |d| &mut d.positions,
        |p| {
            let v = model::position(p);
            (v.key.clone(), v)
        },
    ));
    tracker.spawn(data::<Summary, _>(
        client.clone(),
        model.clone(),
        shutdown.clone(),
        |d| &mut d.summary,
        |v| (model::summary_key(&v.account, &v.tag, &v.currency), model::summary(v)),
    ));
    tracker.spawn(data::<AccountPnl, _>(
        client.clone(),
        model.clone(),
        shutdown.clone(),
        |d| &mut d.account_pnl,
        |p| (p.account.clone(), model::account_pnl(p)),
    ));
    // Keyed like positions (`account:con_id`), so the page joins each row to its position.
    tracker.spawn(data::<PositionPnl, _>(
        client.clone(),
        model.clone(),
        shutdown.clone(),
        |d| &mut d.position_pnl,
        |p| {
            let v = model::position_pnl(p);
            (v.key.clone(), v)
        },
    ));
    tracker.spawn(health(client, model, shutdown));
}

fn options() -> Options {
    Options { backoff: BACKOFF, not_served_retry: Some(NOT_SERVED_RETRY) }
}

/// Where a data kind is shown, and how one of its rows is (with the key the page orders by).
struct Shown<K: Kind, V> {
    view: fn(&mut Dashboard) -> &mut DataView<V>,
    row: fn(&K::Row) -> (String, V),
}

/// Follows one data stream until shutdown, copying its view into the model after each event.
async fn data<K: Kind, V>(
    client: Client,
    model: watch::Sender<Dashboard>,
    shutdown: CancellationToken,
    view: fn(&mut Dashboard) -> &mut DataView<V>,
    row: fn(&K::Row) -> (String, V),
) {
    let shown = Shown::<K, V> { view, row };
    let mut follower = Follower::<K, Client>::new(client, options());
    loop {
        // Cancel-safe: Follower::next keeps its state in the follower.
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            e = follower.next() => e,
        };
        on_data_event(&model, &shown, follower.view(), &event);
    }
}

/// Applies one event of a data stream to the model: the view's rows and stamps after a message,
/// the link's state after a loss.
fn on_data_event<K: Kind, V>(model: &watch::Sender<Dashboard>, shown: &Shown<K, V>, view: &View<K>, event: &Event<K>) {
    match event {
        Event::Update(_) => {
            link_up(model);
            // Ordered by the page's key, as the rows are shown.
            let rows: BTreeMap<String, V> = view.rows().values().map(shown.row).collect();
            model.send_modify(|d| {
                let v = (shown.view)(d);
                v.freshness = freshness(view.freshness());
                v.epoch = view.epoch();
                v.as_of = model::rfc3339(view.as_of());
                v.items = rows.into_values().collect();
                v.messages += 1;
            });
        }
        Event::Lost(lost) if lost.cause == Cause::NotServed => {
            warn!(stream = K::NAME, error = %lost.detail, "gateway-svc does not serve this stream; asking again later");
            model.send_modify(|d| not_served(&mut (shown.view)(d).freshness));
        }
        Event::Lost(lost) => on_lost::<K>(model, lost),
    }
}

async fn health(client: Client, model: watch::Sender<Dashboard>, shutdown: CancellationToken) {
    let mut follower = Follower::<Health, Client>::new(client, options());
    loop {
        // Cancel-safe: Follower::next keeps its state in the follower.
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            e = follower.next() => e,
        };
        match event {
            Event::Update(u) => {
                link_up(&model);
                if let Some(h) = u.items.first() {
                    model.send_modify(|d| d.health = Some(model::health(h)));
                }
            }
            Event::Lost(lost) if lost.cause == Cause::NotServed => {
                warn!(stream = Health::NAME, error = %lost.detail, "gateway-svc does not serve this stream; asking again later");
            }
            Event::Lost(lost) => on_lost::<Health>(&model, &lost),
        }
    }
}

fn on_lost<K: Kind>(model: &watch::Sender<Dashboard>, lost: &Lost) {
    warn!(stream = K::NAME, error = %lost.detail, "stream to gateway-svc lost; reconnecting");
    link_down(model, &lost.reason());
}

/// A stream gateway-svc does not serve: its data is UNKNOWN, with the reason, never empty-as-zero.
fn not_served(freshness: &mut FreshnessView) {
    *freshness = FreshnessView {
        state: "UNKNOWN".into(),
        since: None,
        reason: "this gateway-svc does not serve it (UNIMPLEMENTED)".into(),
    };
}

/// Freshness as the page shows it.
fn freshness(f: &ibgw_client::Freshness) -> FreshnessView {
    let state = match f.state {
        FreshnessState::Live => "LIVE",
        FreshnessState::Stale => "STALE",
        FreshnessState::Unknown => "UNKNOWN",
    };
    FreshnessView { state: state.into(), since: model::rfc3339(f.since), reason: f.reason.clone() }
}

fn link_up(model: &watch::Sender<Dashboard>) {
    model.send_if_modified(|d| {
        let changed = !d.gateway.reachable;
        if changed {
            info!("gateway-svc reachable");
        }
        d.gateway.reachable = true;
        d.gateway.error.clear();
        d.gateway.down_since = None;
        changed
    });
}

/// gateway-svc is gone (`reason`): keep the last data, marked stale since the link went down.
fn link_down(model: &watch::Sender<Dashboard>, reason: &str) {
    model.send_modify(|d| {
        let since = d.gateway.down_since.clone().unwrap_or_else(model::now);
        d.gateway.reachable = false;
        d.gateway.error = reason.to_owned();
        d.gateway.down_since = Some(since.clone());
        let stale =
            FreshnessView { state: "STALE".into(), since: Some(since), reason: "gateway-svc unreachable".into() };
        d.positions.freshness = stale.clone();
        d.summary.freshness = stale.clone();
        d.account_pnl.freshness = stale.clone();
        d.position_pnl.freshness = stale;
    });
}

#[cfg(test)]
mod tests {
    use gateway_proto::pb;

    use super::*;

    fn row(con_id: i64, value: &str) -> pb::PositionPnl {
        pb::PositionPnl { account: "DU1".into(), con_id, market_value: value.into(), ..Default::default() }
    }

    fn shown() -> Shown<PositionPnl, model::PositionPnlView> {
        Shown {
            view: |d| &mut d.position_pnl,
            row: |p| {
                let v = model::position_pnl(p);
                (v.key.clone(), v)
            },
        }
    }

    fn live() -> Option<pb::Freshness> {
        Some(pb::Freshness { state: pb::FreshnessState::Live as i32, ..Default::default() })
    }

    /// Folds `m` into `view` and shows it, as the stream task does.
    fn show(tx: &watch::Sender<Dashboard>, view: &mut View<PositionPnl>, m: pb::WatchPositionPnlResponse) {
        let u = view.apply_message(m).expect("in sequence");
        on_data_event(tx, &shown(), view, &Event::Update(u));
    }

    #[test]
    fn position_pnl_rows_are_keyed_like_positions_and_follow_snapshots_deltas_and_resyncs() {
        let (tx, rx) = watch::channel(Dashboard::default());
        let mut view = View::<PositionPnl>::new();
        let snapshot = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Snapshot as i32,
            seq: 1,
            items: vec![row(1, "10"), row(2, "20")],
            freshness: live(),
            ..Default::default()
        };
        show(&tx, &mut view, snapshot);
        let position = model::position(&pb::Position { account: "DU1".into(), con_id: 1, ..Default::default() });
        let first = rx.borrow().position_pnl.items.first().cloned().expect("a row");
        assert_eq!((first.key.as_str(), first.market_value.as_str()), (position.key.as_str(), "10"), "joined by key");
        let delta = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Delta as i32,
            seq: 2,
            upserts: vec![row(1, "11")],
            removals: vec![pb::PositionKey { account: "DU1".into(), con_id: 2 }],
            freshness: live(),
            ..Default::default()
        };
        show(&tx, &mut view, delta);
        let values = |rx: &watch::Receiver<Dashboard>| {
            rx.borrow().position_pnl.items.iter().map(|r| r.market_value.clone()).collect::<Vec<_>>()
        };
        assert_eq!(values(&rx), ["11"]);
        let freshness =
            pb::WatchPositionPnlResponse { kind: pb::UpdateKind::Freshness as i32, seq: 3, ..Default::default() };
        show(&tx, &mut view, freshness);
        assert_eq!(values(&rx), ["11"], "a freshness message keeps the rows");
        let resync = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Resync as i32,
            seq: 4,
            items: vec![row(3, "30")],
            freshness: live(),
            ..Default::default()
        };
        show(&tx, &mut view, resync);
        let d = rx.borrow();
        assert_eq!(d.position_pnl.items.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["DU1:3"]);
        assert_eq!((d.position_pnl.messages, d.position_pnl.freshness.state.as_str()), (4, "LIVE"));
        assert!(d.gateway.reachable);
    }

    #[test]
    fn a_seq_gap_is_a_lost_link_until_the_stream_is_open_again() {
        let (tx, rx) = watch::channel(Dashboard::default());
        let mut view = View::<PositionPnl>::new();
        let snapshot = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Snapshot as i32,
            seq: 1,
            items: vec![row(1, "10")],
            freshness: live(),
            ..Default::default()
        };
        show(&tx, &mut view, snapshot);
        let skipped = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Delta as i32,
            seq: 3,
            upserts: vec![row(1, "99")],
            freshness: live(),
            ..Default::default()
        };
        let gap = view.apply_message(skipped).expect_err("a gap");
        let lost = Lost { detail: gap.to_string(), cause: Cause::Gap(gap), retry_in: Duration::ZERO };
        on_data_event(&tx, &shown(), &view, &Event::Lost(lost));
        let d = rx.borrow();
        assert_eq!(d.position_pnl.items.iter().map(|r| r.market_value.as_str()).collect::<Vec<_>>(), ["10"]);
        assert_eq!(d.position_pnl.freshness.state, "STALE");
        assert!(!d.gateway.reachable);
        assert_eq!(d.gateway.error, "gateway-svc stream skipped from seq 2 to 3");
    }

    #[test]
    fn a_stream_gateway_svc_does_not_serve_is_not_a_lost_link() {
        let (tx, rx) = watch::channel(Dashboard::default());
        let view = View::<PositionPnl>::new();
        let lost = Lost { cause: Cause::NotServed, detail: "Unimplemented: ".into(), retry_in: NOT_SERVED_RETRY };
        on_data_event(&tx, &shown(), &view, &Event::Lost(lost));
        let d = rx.borrow();
        assert_eq!(d.position_pnl.freshness.state, "UNKNOWN");
        assert!(d.position_pnl.freshness.reason.contains("UNIMPLEMENTED"));
        assert!(!d.gateway.error.contains("unreachable"));
        assert_eq!(options().not_served_retry, Some(NOT_SERVED_RETRY));
    }
}
