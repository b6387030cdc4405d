//! The gateway-svc side: one task per data kind follows its Watch stream with `ibgw-client`'s
//! [`StreamFollower`], which folds the stream into its view, refuses a skipped `seq` or an epoch
//! change without RESYNC by opening the stream again, and reconnects with backoff. Every message
//! is forwarded, converted, on a bounded channel; a stream that is down is reported as
//! [`Event::Lost`], and the first message once it is open again is a SNAPSHOT, from which the
//! publisher works out what changed in between.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gateway_proto::pb;
use ibgw_client::{
    Client, Connect, ConnectError, Event as StreamEvent, Follower as StreamFollower, Kind, Options, UpdateKind, View,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::book::{Rows, Update};
use crate::config::{GatewaySettings, RetrySettings};
use crate::metrics::Metrics;
use crate::model::{ByAccount, Freshness, Row, timestamp};

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
    pub async fn client(&self) -> Result<Client, ConnectError> {
        let s = &self.settings;
        let token = s.token.as_ref().map(|t| t.expose());
        let timeout = Duration::from_millis(s.connect_timeout_ms);
        match &self.ca {
            Some(ca) => ibgw_client::connect_tls(&s.address, token, ca, timeout).await,
            None => ibgw_client::connect(&s.address, token, timeout).await,
        }
    }
}

/// Every attempt dials anew, so a TLS or address problem is reported on each.
impl Connect for Gateway {
    fn connect(&self) -> impl Future<Output = Result<Client, ConnectError>> + Send {
        let gateway = self.clone();
        async move { gateway.client().await }
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

/// Follows one Watch stream until `cancel`: forwards each message, folded into the follower's
/// view, through `convert`, and reports losses (the follower retries with backoff). Returns when
/// cancelled or the publisher is gone.
pub async fn follow<K, T>(f: Follower, convert: fn(&View<K>, ibgw_client::Update<K>) -> T, tx: mpsc::Sender<Event<T>>)
where
    K: Kind,
{
    let Follower { data, gateway, retry, metrics, cancel } = f;
    let options = Options { backoff: retry.policy(), not_served_retry: None };
    let mut stream = StreamFollower::<K, Gateway>::new(gateway, options);
    loop {
        // Cancel-safe: the follower keeps its state (stream, backoff deadline) in itself.
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = stream.next() => e,
        };
        let out = match event {
            StreamEvent::Update(u) => {
                if u.kind == UpdateKind::Snapshot {
                    info!(data, "gateway-svc stream open");
                    metrics.gateway(data, true);
                }
                Event::Message(convert(stream.view(), u))
            }
            StreamEvent::Lost(lost) => {
                metrics.gateway(data, false);
                let reason = lost.reason();
                warn!(data, reason = %reason, "gateway-svc stream lost; data marked stale until it is back");
                Event::Lost(reason)
            }
        };
        // Cancel-safe: a send either completes or is dropped whole.
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = tx.send(out) => if r.is_err() { return },
        }
    }
}

/// A row kind's message as an [`Update`]: the rows of every account it may have changed, as the
/// follower's view holds them now.
pub fn rows<R: Row>(view: &View<R::Kind>, u: ibgw_client::Update<R::Kind>) -> Update<R> {
    let rows = match u.kind {
        UpdateKind::Snapshot | UpdateKind::Resync => {
            Rows::All(crate::book::group(view.rows().values().map(R::from_view)))
        }
        UpdateKind::Delta => {
            // Every account a row was added to, changed in or removed from, with all its rows.
            let mut accounts: ByAccount<R> = u
                .upserts
                .iter()
                .map(<R::Kind as Kind>::key)
                .chain(u.removals.iter().cloned())
                .map(|k| (R::view_account(&k).to_owned(), BTreeMap::new()))
                .collect();
            for (k, row) in view.rows() {
                if let Some(rows) = accounts.get_mut(R::view_account(k)) {
                    let r = R::from_view(row);
                    rows.insert(r.key(), r);
                }
            }
            Rows::Accounts(accounts)
        }
        UpdateKind::Freshness => Rows::Unchanged,
    };
    let s = u.stamps;
    Update {
        kind: u.kind,
        rows,
        epoch: s.session_epoch,
        version: s.state_version,
        as_of: s.as_of.as_ref().map(timestamp).unwrap_or_default(),
        freshness: Freshness::from_client(&s.freshness),
    }
}

/// A WatchHealth message: its health.
pub fn health(_: &View<ibgw_client::Health>, u: ibgw_client::Update<ibgw_client::Health>) -> Option<pb::Health> {
    u.items.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Rows;
    use crate::model::Position;

    fn pos(account: &str, con_id: i64, qty: &str) -> pb::Position {
        pb::Position { account: account.into(), con_id, quantity: qty.into(), ..Default::default() }
    }

    fn live() -> Option<pb::Freshness> {
        Some(pb::Freshness { state: pb::FreshnessState::Live as i32, ..Default::default() })
    }

    fn quantities(rows: &ByAccount<Position>) -> Vec<(String, i64, String)> {
        rows.iter().flat_map(|(a, r)| r.values().map(move |p| (a.clone(), p.con_id, p.quantity.clone()))).collect()
    }

    #[test]
    fn a_delta_carries_every_row_of_the_accounts_it_touches_as_the_view_holds_them() {
        let mut view = View::<ibgw_client::Positions>::new();
        let snapshot = pb::WatchPositionsResponse {
            kind: pb::UpdateKind::Snapshot as i32,
            seq: 1,
            items: vec![pos("A", 1, "10"), pos("A", 2, "20"), pos("B", 3, "30"), pos("C", 4, "40")],
            freshness: live(),
            ..Default::default()
        };
        let u = view.apply_message(snapshot).unwrap();
        let Rows::All(all) = rows::<Position>(&view, u).rows else { panic!("a snapshot is every account") };
        assert_eq!(all.len(), 3);
        let delta = pb::WatchPositionsResponse {
            kind: pb::UpdateKind::Delta as i32,
            seq: 2,
            upserts: vec![pos("A", 1, "11")],
            removals: vec![pb::PositionKey { account: "B".into(), con_id: 3 }],
            freshness: live(),
            ..Default::default()
        };
        let u = view.apply_message(delta).unwrap();
        let Rows::Accounts(touched) = rows::<Position>(&view, u).rows else { panic!("a delta is its accounts") };
        // A keeps its unchanged row 2, B is emptied, C is not touched.
        assert_eq!(quantities(&touched), [("A".into(), 1, "11".into()), ("A".into(), 2, "20".into())]);
        assert_eq!(touched.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert!(touched["B"].is_empty());
        let freshness =
            pb::WatchPositionsResponse { kind: pb::UpdateKind::Freshness as i32, seq: 3, ..Default::default() };
        let u = view.apply_message(freshness).unwrap();
        assert!(matches!(rows::<Position>(&view, u).rows, Rows::Unchanged));
    }
}
