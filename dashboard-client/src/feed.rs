//! Three long-lived gRPC streams (positions, account summary, health) kept open against
//! gateway-svc, reconnecting with backoff when it goes away. Each applies snapshots, deltas and
//! resyncs exactly as the API documents and publishes the result into the dashboard model.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_proto::client::{Client, source_chain};
use gateway_proto::pb;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::model::{self, Dashboard, DataView, FreshnessView};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// Starts the three stream tasks on `tracker`.
pub fn spawn(client: Client, model: watch::Sender<Dashboard>, tracker: &TaskTracker, shutdown: CancellationToken) {
    tracker.spawn(run(Kind::Positions, client.clone(), model.clone(), shutdown.clone()));
    tracker.spawn(run(Kind::Summary, client.clone(), model.clone(), shutdown.clone()));
    tracker.spawn(run(Kind::Health, client, model, shutdown));
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Positions,
    Summary,
    Health,
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

impl StreamMessage for pb::WatchPositionsResponse {
    type Row = pb::Position;
    fn kind(&self) -> pb::UpdateKind {
        pb::UpdateKind::try_from(self.kind).unwrap_or(pb::UpdateKind::Unspecified)
    }
    fn items(&self) -> &[pb::Position] {
        &self.items
    }
    fn upserts(&self) -> &[pb::Position] {
        &self.upserts
    }
    fn removal_keys(&self) -> Vec<String> {
        self.removals.iter().map(|k| format!("{}:{}", k.account, k.con_id)).collect()
    }
    fn key(p: &pb::Position) -> String {
        format!("{}:{}", p.account, p.con_id)
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

impl StreamMessage for pb::WatchAccountSummaryResponse {
    type Row = pb::SummaryValue;
    fn kind(&self) -> pb::UpdateKind {
        pb::UpdateKind::try_from(self.kind).unwrap_or(pb::UpdateKind::Unspecified)
    }
    fn items(&self) -> &[pb::SummaryValue] {
        &self.items
    }
    fn upserts(&self) -> &[pb::SummaryValue] {
        &self.upserts
    }
    fn removal_keys(&self) -> Vec<String> {
        self.removals.iter().map(|k| model::summary_key(&k.account, &k.tag, &k.currency)).collect()
    }
    fn key(v: &pb::SummaryValue) -> String {
        model::summary_key(&v.account, &v.tag, &v.currency)
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
    let mut backoff = BACKOFF_MIN;
    loop {
        let ended = match kind {
            Kind::Positions => positions(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::Summary => summary(&mut client, &model, &shutdown, &mut backoff).await,
            Kind::Health => health(&mut client, &model, &shutdown, &mut backoff).await,
        };
        let Some(error) = ended else { return };
        warn!(stream = ?kind, %error, "stream to gateway-svc lost; reconnecting");
        link_down(&model, &error);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
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
        d.summary.freshness = stale;
    });
}

/// Runs one data stream until it fails (returns the error) or shutdown (returns None), applying
/// each message to its rows and publishing them, converted by `row`, into the `view` it feeds.
async fn data<M, V>(
    opened: Result<tonic::Response<tonic::Streaming<M>>, tonic::Status>,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
    view: fn(&mut Dashboard) -> &mut DataView<V>,
    row: fn(&M::Row) -> V,
) -> Option<String>
where
    M: StreamMessage,
    M::Row: Clone,
{
    let mut stream = match opened {
        Ok(r) => r.into_inner(),
        Err(s) => return Some(source_chain(&s)),
    };
    let mut rows = BTreeMap::new();
    loop {
        // Cancellation safe: Streaming::message keeps partial frames buffered.
        let msg = tokio::select! {
            () = shutdown.cancelled() => return None,
            m = stream.message() => m,
        };
        match msg {
            Ok(Some(m)) => {
                *backoff = BACKOFF_MIN;
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
            Ok(None) => return Some("stream ended".into()),
            Err(s) => return Some(source_chain(&s)),
        }
    }
}

async fn positions(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> Option<String> {
    let opened = client.watch_positions(pb::WatchPositionsRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.positions, model::position).await
}

async fn summary(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> Option<String> {
    let opened = client.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await;
    data(opened, model, shutdown, backoff, |d| &mut d.summary, model::summary).await
}

async fn health(
    client: &mut Client,
    model: &watch::Sender<Dashboard>,
    shutdown: &CancellationToken,
    backoff: &mut Duration,
) -> Option<String> {
    let mut stream = match client.watch_health(pb::WatchHealthRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Some(source_chain(&s)),
    };
    loop {
        let msg = tokio::select! {
            () = shutdown.cancelled() => return None,
            m = stream.message() => m,
        };
        match msg {
            Ok(Some(m)) => {
                *backoff = BACKOFF_MIN;
                link_up(model);
                if let Some(h) = m.health {
                    model.send_modify(|d| d.health = Some(model::health(&h)));
                }
            }
            Ok(None) => return Some("stream ended".into()),
            Err(s) => return Some(source_chain(&s)),
        }
    }
}
