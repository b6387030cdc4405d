//! Five long-lived gRPC streams (positions, account summary, account PnL, position PnL, health)
//! kept open against gateway-svc, reconnecting with backoff when it goes away. Each applies
//! snapshots, deltas and resyncs exactly as the API documents and publishes the result into the
//! dashboard model. A gateway-svc that does not serve a stream (UNIMPLEMENTED: older than PnL) is
//! asked again now and then; the rest of the page works meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_proto::client::{Client, source_chain};
use gateway_proto::pb;
use ibgw_kit::{Backoff, BackoffPolicy};
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
    for kind in [Kind::Positions, Kind::Summary, Kind::AccountPnl, Kind::PositionPnl] {
        tracker.spawn(run(kind, client.clone(), model.clone(), shutdown.clone()));
    }
    tracker.spawn(run(Kind::Health, client, model, shutdown));
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Positions,
    Summary,
    AccountPnl,
    PositionPnl,
    Health,
}

/// Why a stream ended.
#[derive(Debug)]
enum Ended {
    /// The dashboard is shutting down.
    Shutdown,
    /// gateway-svc went away, or refused the stream: reconnect.
    Lost(String),
    /// gateway-svc does not serve this stream (UNIMPLEMENTED).
    NotServed(String),
}

impl Ended {
    fn from_status(s: &tonic::Status) -> Ended {
        if s.code() == tonic::Code::Unimplemented {
            Ended::NotServed(source_chain(s))
        } else {
            Ended::Lost(source_chain(s))
        }
    }
}

/// What the positions and summary streams have in common.
trait StreamMessage {
    type Row;
    fn kind(&self) -> pb::UpdateKind;
    fn items(&self) -> &[Self::Row];
    fn upserts(&self) -> &[Self::Row];
    fn removal_keys(&self) -> Vec<String>;
    fn key(row: &Self::Row) -> String;
    fn freshness(&self) -> Option<&pb::Freshness>;
    fn epoch(&self) -> u64;
    fn as_of(&self) -> Option<prost_types::Timestamp>;
}

/// Every stream response has the same shape (kind, items, upserts, removals, epoch, as_of,
/// freshness); only how a row and a removal are keyed differs.
macro_rules! stream_message {
    ($message:ty, $row:ty, key: |$r:ident| $key:expr, removal: |$k:ident| $removal:expr) => {
        impl StreamMessage for $message {
            type Row = $row;
            fn kind(&self) -> pb::UpdateKind {
                pb::UpdateKind::try_from(self.kind).unwrap_or(pb::UpdateKind::Unspecified)
            }
            fn items(&self) -> &[$row] {
                &self.items
            }
            fn upserts(&self) -> &[$row] {
                &self.upserts
            }
            fn removal_keys(&self) -> Vec<String> {
                self.removals.iter().map(|$k| $removal).collect()
            }
            fn key($r: &$row) -> String {
                $key
            }
            fn freshness(&self) -> Option<&pb::Freshness> {
                self.freshness.as_ref()
            }
            fn epoch(&self) -> u64 {
                self.session_epoch
            }
            fn as_of(&self) -> Option<prost_types::Timestamp> {
                self.as_of
            }
        }
    };
}

stream_message!(pb::WatchPositionsResponse, pb::Position,
    key: |p| format!("{}:{}", p.account, p.con_id),
    removal: |k| format!("{}:{}", k.account, k.con_id));
stream_message!(pb::WatchAccountSummaryResponse, pb::SummaryValue,
    key: |v| model::summary_key(&v.account, &v.tag, &v.currency),
    removal: |k| model::summary_key(&k.account, &k.tag, &k.currency));
stream_message!(pb::WatchAccountPnlResponse, pb::AccountPnl,
    key: |p| p.account.clone(),
    removal: |k| k.account.clone());
// Keyed like positions (`account:con_id`), so the page joins each row to its position.
stream_message!(pb::WatchPositionPnlResponse, pb::PositionPnl,
    key: |p| format!("{}:{}", p.account, p.con_id),
    removal: |k| format!("{}:{}", k.account, k.con_id));

/// Applies one message to the rows a stream has seen.
fn apply<M: StreamMessage>(rows: &mut BTreeMap<String, M::Row>, m: &M)
where
    M::Row: Clone,
{
    match m.kind() {
        pb::UpdateKind::Snapshot | pb::UpdateKind::Resync => {
            *rows = m.items().iter().map(|r| (M::key(r), r.clone())).collect();
        }
        pb::UpdateKind::Delta => {
            for r in m.upserts() {
                rows.insert(M::key(r), r.clone());
            }
            for k in m.removal_keys() {
                rows.remove(&k);
            }
        }
        pb::UpdateKind::Freshness | pb::UpdateKind::Unspecified => {}
    }
}

async fn run(kind: Kind, mut client: Client, model: watch::Sender<Dashboard>, shutdown: CancellationToken) {
    let mut backoff = Backoff::new(BACKOFF);
    loop {
        let ended = match kind {
            Kind::Positions => positions(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::Summary => summary(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::AccountPnl => account_pnl(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::PositionPnl => position_pnl(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::Health => health(&mut client, &model, &shutdown, &mut backoff).await,
        };
        let pause = match ended {
            Ended::Shutdown => return,
            Ended::Lost(error) => {
                warn!(stream = ?kind, %error, "stream to gateway-svc lost; reconnecting");
                link_down(&model, &error);
                backoff.next_delay()
            }
            Ended::NotServed(error) => {
                warn!(stream = ?kind, %error, "gateway-svc does not serve this stream; asking again later");
                not_served(&model, kind);
                NOT_SERVED_RETRY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// A stream gateway-svc does not serve: its data is UNKNOWN, with the reason, never empty-as-zero.
fn not_served(model: &watch::Sender<Dashboard>, kind: Kind) {
    let unknown = FreshnessView {
        state: "UNKNOWN".into(),
        since: None,
        reason: "this gateway-svc does not serve it (UNIMPLEMENTED)".into(),
    };
    model.send_modify(|d| match kind {
        Kind::Positions => d.positions.freshness = unknown,
        Kind::Summary => d.summary.freshness = unknown,
        Kind::AccountPnl => d.account_pnl.freshness = unknown,
        Kind::PositionPnl => d.position_pnl.freshness = unknown,
        Kind::Health => {}
    });
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

/// gateway-svc is gone: keep the last data, marked stale since the link went down.
fn link_down(model: &watch::Sender<Dashboard>, error: &str) {
    model.send_modify(|d| {
        let since = d.gateway.down_since.clone().unwrap_or_else(model::now);
        d.gateway.reachable = false;
        d.gateway.error = format!("gateway-svc unreachable: {error}");
        d.gateway.down_since = Some(since.clone());
        let stale =
            FreshnessView { state: "STALE".into(), since: Some(since), reason: "gateway-svc unreachable".into() };
        d.positions.freshness = stale.clone();
        d.summary.freshness = stale.clone();
        d.account_pnl.freshness = stale.clone();
        d.position_pnl.freshness = stale;
    });
}

/// Runs one data stream until it fails or shutdown, applying each message to its rows and
/// publishing them, converted by `row`, into the `view` it feeds.
async fn data<M, V>(
    opened: Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
    view: fn(&mut Dashboard) -> &mut DataView<V>,
    row: fn(&M::Row) -> V,
) -> Ended
where
    M: StreamMessage,
    M::Row: Clone,
{
    let mut stream = match opened {
        Ok(r) => r.into_inner(),
        Err(s) => return Ended::from_status(&s),
    };
    let mut rows = BTreeMap::new();
    loop {
        // Cancellation safe: Streaming::message keeps partial frames buffered.
        let msg = tokio::select! {
            () = shutdown.cancelled() => return Ended::Shutdown,
            m = stream.message() => m,
        };
        match msg {
            Ok(Some(m)) => {
                backoff.reset();
                link_up(model);
                apply(&mut rows, &m);
                model.send_modify(|d| {
                    let v = view(d);
                    v.freshness = model::freshness(m.freshness());
                    v.epoch = m.epoch();
                    v.as_of = model::rfc3339(m.as_of());
                    v.items = rows.values().map(row).collect();
                    v.messages += 1;
                });
            }
            Ok(None) => return Ended::Lost("stream ended".into()),
            Err(s) => return Ended::Lost(source_chain(&s)),
        }
    }
}

async fn positions(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let opened = client.watch_positions(pb::WatchPositionsRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.positions, model::position).await
}

async fn summary(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let opened = client.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.summary, model::summary).await
}

async fn account_pnl(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let opened = client.watch_account_pnl(pb::WatchAccountPnlRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.account_pnl, model::account_pnl).await
}

async fn position_pnl(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let opened = client.watch_position_pnl(pb::WatchPositionPnlRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.position_pnl, model::position_pnl).await
}

async fn health(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Backoff,
) -> Ended {
    let mut stream = match client.watch_health(pb::WatchHealthRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Ended::from_status(&s),
    };
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => return Ended::Shutdown,
            m = stream.message() => m,
        };
        match msg {
            Ok(Some(m)) => {
                backoff.reset();
                link_up(model);
                if let Some(h) = m.health {
                    model.send_modify(|d| d.health = Some(model::health(&h)));
                }
            }
            Ok(None) => return Ended::Lost("stream ended".into()),
            Err(s) => return Ended::Lost(source_chain(&s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(con_id: i64, value: &str) -> pb::PositionPnl {
        pb::PositionPnl { account: "DU1".into(), con_id, market_value: value.into(), ..Default::default() }
    }

    #[test]
    fn position_pnl_rows_are_keyed_like_positions_and_follow_snapshots_deltas_and_resyncs() {
        let mut rows = BTreeMap::new();
        let snapshot = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Snapshot as i32,
            items: vec![row(1, "10"), row(2, "20")],
            ..Default::default()
        };
        apply(&mut rows, &snapshot);
        let position = model::position(&pb::Position { account: "DU1".into(), con_id: 1, ..Default::default() });
        assert_eq!(rows.get(&position.key).map(|r| r.market_value.as_str()), Some("10"), "joined by account:con_id");
        let delta = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Delta as i32,
            upserts: vec![row(1, "11")],
            removals: vec![pb::PositionKey { account: "DU1".into(), con_id: 2 }],
            ..Default::default()
        };
        apply(&mut rows, &delta);
        assert_eq!(rows.values().map(|r| r.market_value.as_str()).collect::<Vec<_>>(), ["11"]);
        let freshness = pb::WatchPositionPnlResponse { kind: pb::UpdateKind::Freshness as i32, ..Default::default() };
        apply(&mut rows, &freshness);
        assert_eq!(rows.len(), 1, "a freshness message keeps the rows");
        let resync = pb::WatchPositionPnlResponse {
            kind: pb::UpdateKind::Resync as i32,
            items: vec![row(3, "30")],
            ..Default::default()
        };
        apply(&mut rows, &resync);
        assert_eq!(rows.keys().collect::<Vec<_>>(), ["DU1:3"]);
    }

    #[test]
    fn a_stream_gateway_svc_does_not_serve_is_not_a_lost_link() {
        assert!(matches!(Ended::from_status(&tonic::Status::unimplemented("")), Ended::NotServed(_)));
        assert!(matches!(Ended::from_status(&tonic::Status::unavailable("down")), Ended::Lost(_)));
        let (tx, rx) = watch::channel(Dashboard::default());
        not_served(&tx, Kind::AccountPnl);
        let d = rx.borrow();
        assert_eq!(d.account_pnl.freshness.state, "UNKNOWN");
        assert!(d.account_pnl.freshness.reason.contains("UNIMPLEMENTED"));
        assert!(!d.gateway.error.contains("unreachable"));
    }
}
