//! The gateway-svc side: one task per data kind follows its Watch stream and forwards every
//! message, converted, on a bounded channel. A stream that ends, fails or skips a `seq` is
//! reported as [`Event::Lost`] and opened again after a backoff; its first message is then a
//! SNAPSHOT, from which the publisher works out what changed in between.

use std::future::Future;
use std::sync::Arc;

use gateway_proto::client::{Client, source_chain};
use gateway_proto::pb;
use ibgw_kit::Backoff;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::book::{Update, UpdateKind};
use crate::config::{GatewaySettings, RetrySettings};
use crate::metrics::Metrics;
use crate::model::{Freshness, timestamp};

/// What a follower tells its publisher.
#[derive(Debug)]
pub enum Event<T> {
    /// A stream message, in order.
    Message(T),
    /// The stream is down (why); a SNAPSHOT follows once it is open again.
    Lost(String),
}

/// Builds gateway-svc clients from the configuration.
#[derive(Debug, Clone)]
pub struct Gateway {
    settings: GatewaySettings,
    ca: Option<Arc<Vec<u8>>>,
}

impl Gateway {
    /// Reads the CA file (if any) once.
    pub fn new(settings: GatewaySettings) -> std::io::Result<Self> {
        let ca = match &settings.tls_ca_path {
            Some(p) => Some(Arc::new(std::fs::read(p)?)),
            None => None,
        };
        Ok(Self { settings, ca })
    }

    /// A connected client (fails fast when nothing answers).
    pub async fn client(&self) -> Result<Client, String> {
        let s = &self.settings;
        let token = s.token.as_ref().map(|t| t.expose());
        let timeout = std::time::Duration::from_millis(s.connect_timeout_ms);
        let r = match &self.ca {
            Some(ca) => gateway_proto::client::connect_tls(&s.address, token, ca, timeout).await,
            None => gateway_proto::client::connect(&s.address, token, timeout).await,
        };
        r.map_err(|e| e.to_string())
    }
}

/// The gRPC stream messages the followers read: each has a gap-free `seq`.
pub trait StreamMessage: Send + 'static {
    /// Position in the stream.
    fn seq(&self) -> u64;
}

impl StreamMessage for pb::WatchPositionsResponse {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl StreamMessage for pb::WatchAccountSummaryResponse {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl StreamMessage for pb::WatchAccountPnlResponse {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl StreamMessage for pb::WatchPositionPnlResponse {
    fn seq(&self) -> u64 {
        self.seq
    }
}

impl StreamMessage for pb::WatchHealthResponse {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// What every follower shares.
#[derive(Debug, Clone)]
pub struct Follower {
    /// The data kind, for logs and metrics.
    pub data: &'static str,
    /// gateway-svc.
    pub gateway: Gateway,
    /// Delays between attempts.
    pub retry: RetrySettings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Stops it.
    pub cancel: CancellationToken,
}

/// Follows one Watch stream until `cancel`: opens it with `open`, forwards each message through
/// `convert`, reports losses, retries with backoff. Returns when cancelled or the publisher is
/// gone.
pub async fn follow<M, T, F, Fut>(f: Follower, open: F, convert: fn(M) -> T, tx: mpsc::Sender<Event<T>>)
where
    M: StreamMessage,
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Streaming<M>, tonic::Status>>,
{
    let Follower { data, gateway, retry, metrics, cancel } = f;
    let mut backoff = Backoff::new(retry.policy());
    loop {
        let reason = tokio::select! {
            _ = cancel.cancelled() => return,
            r = run_once(data, &gateway, &open, convert, &tx, &metrics, &mut backoff) => match r {
                Some(reason) => reason,
                None => return,
            },
        };
        metrics.gateway(data, false);
        warn!(data, reason = %reason, "gateway-svc stream lost; data marked stale until it is back");
        // Cancel-safe: a send either completes or is dropped whole.
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = tx.send(Event::Lost(reason)) => if r.is_err() { return },
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One stream's life. `Some(reason)` when it ended, `None` when the publisher is gone.
async fn run_once<M, T, F, Fut>(
    data: &'static str,
    gateway: &Gateway,
    open: &F,
    convert: fn(M) -> T,
    tx: &mpsc::Sender<Event<T>>,
    metrics: &Metrics,
    backoff: &mut Backoff,
) -> Option<String>
where
    M: StreamMessage,
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Streaming<M>, tonic::Status>>,
{
    let client = match gateway.client().await {
        Ok(c) => c,
        Err(e) => return Some(format!("gateway-svc unreachable: {e}")),
    };
    let mut stream = match open(client).await {
        Ok(s) => s,
        Err(status) => return Some(format!("gateway-svc unreachable: {}", status_text(&status))),
    };
    let mut expected = 1;
    loop {
        let m = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Some("gateway-svc unreachable: stream ended".into()),
            Err(status) => return Some(format!("gateway-svc unreachable: {}", status_text(&status))),
        };
        if m.seq() != expected {
            return Some(format!("gateway-svc stream skipped from seq {expected} to {}", m.seq()));
        }
        if expected == 1 {
            info!(data, "gateway-svc stream open");
            metrics.gateway(data, true);
            backoff.reset();
        }
        expected += 1;
        tx.send(Event::Message(convert(m))).await.ok()?;
    }
}

fn status_text(status: &tonic::Status) -> String {
    let msg = if status.message().is_empty() { source_chain(status) } else { status.message().to_owned() };
    format!("{:?}: {msg}", status.code())
}

fn kind(k: i32) -> UpdateKind {
    match pb::UpdateKind::try_from(k) {
        Ok(pb::UpdateKind::Snapshot) => UpdateKind::Snapshot,
        Ok(pb::UpdateKind::Resync) => UpdateKind::Resync,
        Ok(pb::UpdateKind::Freshness) => UpdateKind::Freshness,
        // DELTA, and anything newer this build does not know, as a delta of what it carries.
        _ => UpdateKind::Delta,
    }
}

/// The two row kinds' stream messages have the same fields: one conversion for both.
macro_rules! update {
    ($m:expr) => {{
        let m = $m;
        Update {
            kind: kind(m.kind),
            items: m.items.into_iter().map(Into::into).collect(),
            upserts: m.upserts.into_iter().map(Into::into).collect(),
            removals: m.removals.into_iter().map(Into::into).collect(),
            epoch: m.session_epoch,
            version: m.state_version,
            as_of: m.as_of.as_ref().map(timestamp).unwrap_or_default(),
            freshness: Freshness::from_pb(m.freshness.as_ref()),
        }
    }};
}

/// A WatchPositions message as an [`Update`].
pub fn positions(m: pb::WatchPositionsResponse) -> Update<crate::model::Position> {
    update!(m)
}

/// A WatchAccountSummary message as an [`Update`].
pub fn summary(m: pb::WatchAccountSummaryResponse) -> Update<crate::model::SummaryValue> {
    update!(m)
}

/// A WatchAccountPnl message as an [`Update`].
pub fn account_pnl(m: pb::WatchAccountPnlResponse) -> Update<crate::model::AccountPnl> {
    update!(m)
}

/// A WatchPositionPnl message as an [`Update`].
pub fn position_pnl(m: pb::WatchPositionPnlResponse) -> Update<crate::model::PositionPnl> {
    update!(m)
}

/// A WatchHealth message: its health.
pub fn health(m: pb::WatchHealthResponse) -> Option<pb::Health> {
    m.health
}
