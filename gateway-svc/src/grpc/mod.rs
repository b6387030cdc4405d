//! The `gateway.v1.GatewayService` implementation. Every RPC answers from in-memory state; none
//! ever calls the gateway.

mod feed;
mod filter;
pub(crate) mod metered;
mod status;
mod wire;

use std::sync::Arc;

use gateway_proto::encoded::Encoded;
use gateway_proto::encoded::gateway_service_server::GatewayService;
use gateway_proto::pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub(crate) use feed::{StreamWire, WireStream};
pub(crate) use filter::{AccountFilter, PositionFilter, SummaryFilter};
pub(crate) use status::ApiError;

use crate::convert;
use crate::hub::Snapshot;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, Row, SummaryRow};
use crate::state::Kind;
use crate::state::State;

/// The service, cheap to clone (tonic clones it per connection).
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    state: Arc<State>,
    shutdown: CancellationToken,
    max_subscribers: usize,
}

impl Gateway {
    /// A service over `state`; streams end when `shutdown` fires.
    pub(crate) fn new(state: Arc<State>, shutdown: CancellationToken, max_subscribers: usize) -> Self {
        Self { state, shutdown, max_subscribers }
    }

    fn ensure_synced<T: Row>(&self, snap: &Snapshot<T>) -> Result<(), ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        if snap.synced { Ok(()) } else { Err(ApiError::NotReady(self.state.health().reason.clone())) }
    }

    /// Unknown accounts are NOT_FOUND once the account list is known.
    fn ensure_accounts(&self, wanted: &std::collections::BTreeSet<String>) -> Result<(), ApiError> {
        let accounts = self.state.accounts.snapshot();
        self.ensure_synced(&accounts)?;
        match wanted.iter().find(|a| !accounts.rows.contains_key(*a)) {
            Some(unknown) => Err(ApiError::UnknownAccount(unknown.clone())),
            None => Ok(()),
        }
    }

    fn slot(&self) -> Result<crate::state::SubscriberSlot, ApiError> {
        if self.shutdown.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        self.state.try_subscribe(self.max_subscribers).ok_or(ApiError::TooManySubscribers(self.max_subscribers))
    }
}

impl Gateway {
    /// Converts errors in one place. Calls are recorded in metrics by [`metered::MetricsLayer`],
    /// around the whole service, not here.
    fn finish<T>(&self, r: Result<T, ApiError>) -> Result<Response<T>, Status> {
        r.map(Response::new).map_err(Status::from)
    }
}

#[tonic::async_trait]
impl GatewayService for Gateway {
    type WatchPositionsStream = WireStream<Encoded>;
    type WatchAccountSummaryStream = WireStream<Encoded>;
    type WatchHealthStream = WireStream<pb::WatchHealthResponse>;
    type WatchAccountPnlStream = WireStream<Encoded>;
    type WatchPositionPnlStream = WireStream<Encoded>;

    async fn list_accounts(
        &self,
        _request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let snap = self.state.accounts.snapshot();
        let r = self.ensure_synced(&snap).map(|()| pb::ListAccountsResponse {
            accounts: in_gateway_order(&snap.rows).map(|a| pb::Account { id: a.id.clone() }).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        });
        self.finish(r)
    }

    async fn get_positions(&self, request: Request<pb::GetPositionsRequest>) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = PositionFilter::new(&req.accounts, &req.symbols)
            .and_then(|filter| self.unary::<PositionRow>(&filter.accounts, |snap| wire::positions(snap, &filter)));
        self.finish(r)
    }

    async fn watch_positions(
        &self,
        request: Request<pb::WatchPositionsRequest>,
    ) -> Result<Response<Self::WatchPositionsStream>, Status> {
        let req = request.into_inner();
        let r = PositionFilter::new(&req.accounts, &req.symbols).and_then(|f| {
            let accounts = f.accounts.clone();
            let filter: feed::Filter<PositionRow> =
                if f.is_all() { None } else { Some(Box::new(move |p| f.matches(p))) };
            self.open_stream(&accounts, filter)
        });
        self.finish(r)
    }

    async fn get_account_summary(
        &self,
        request: Request<pb::GetAccountSummaryRequest>,
    ) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = SummaryFilter::new(&req.accounts, &req.tags)
            .and_then(|filter| self.unary::<SummaryRow>(&filter.accounts, |snap| wire::summary(snap, &filter)));
        self.finish(r)
    }

    async fn watch_account_summary(
        &self,
        request: Request<pb::WatchAccountSummaryRequest>,
    ) -> Result<Response<Self::WatchAccountSummaryStream>, Status> {
        let req = request.into_inner();
        let r = SummaryFilter::new(&req.accounts, &req.tags).and_then(|f| {
            let accounts = f.accounts.clone();
            let filter: feed::Filter<SummaryRow> =
                if f.is_all() { None } else { Some(Box::new(move |s| f.matches(s))) };
            self.open_stream(&accounts, filter)
        });
        self.finish(r)
    }

    async fn get_account_pnl(&self, request: Request<pb::GetAccountPnlRequest>) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = AccountFilter::new(&req.accounts)
            .and_then(|filter| self.unary::<AccountPnlRow>(&filter.accounts, |snap| wire::account_pnl(snap, &filter)));
        self.finish(r)
    }

    async fn watch_account_pnl(
        &self,
        request: Request<pb::WatchAccountPnlRequest>,
    ) -> Result<Response<Self::WatchAccountPnlStream>, Status> {
        let req = request.into_inner();
        let r = AccountFilter::new(&req.accounts).and_then(|f| {
            let accounts = f.accounts.clone();
            let filter: feed::Filter<AccountPnlRow> =
                if f.is_all() { None } else { Some(Box::new(move |r: &AccountPnlRow| f.matches(&r.account))) };
            self.open_stream(&accounts, filter)
        });
        self.finish(r)
    }

    async fn get_position_pnl(&self, request: Request<pb::GetPositionPnlRequest>) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = AccountFilter::new(&req.accounts).and_then(|filter| {
            self.unary::<PositionPnlRow>(&filter.accounts, |snap| wire::position_pnl(snap, &filter))
        });
        self.finish(r)
    }

    async fn watch_position_pnl(
        &self,
        request: Request<pb::WatchPositionPnlRequest>,
    ) -> Result<Response<Self::WatchPositionPnlStream>, Status> {
        let req = request.into_inner();
        let r = AccountFilter::new(&req.accounts).and_then(|f| {
            let accounts = f.accounts.clone();
            let filter: feed::Filter<PositionPnlRow> =
                if f.is_all() { None } else { Some(Box::new(move |r: &PositionPnlRow| f.matches(&r.account))) };
            self.open_stream(&accounts, filter)
        });
        self.finish(r)
    }

    async fn get_health(
        &self,
        _request: Request<pb::GetHealthRequest>,
    ) -> Result<Response<pb::GetHealthResponse>, Status> {
        let health = convert::health(&self.state.health(), self.state.subscribers());
        self.finish(Ok(pb::GetHealthResponse { health: Some(health) }))
    }

    async fn watch_health(
        &self,
        _request: Request<pb::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        let r = self.slot().map(|slot| health_stream(Arc::clone(&self.state), self.shutdown.clone(), slot));
        self.finish(r)
    }
}

impl Gateway {
    /// Opens a stream on one kind's hub: unknown accounts are refused once accounts are known
    /// (before the first sync the stream starts with an UNKNOWN snapshot and fills in when data
    /// arrives), then a subscriber slot, then the feed. Every Watch… call opens its stream here.
    fn open_stream<T: Kind + StreamWire>(
        &self,
        accounts: &std::collections::BTreeSet<String>,
        filter: feed::Filter<T>,
    ) -> Result<WireStream<Encoded>, ApiError> {
        if self.state.accounts.snapshot().synced {
            self.ensure_accounts(accounts)?;
        }
        let slot = self.slot()?;
        let state = Arc::clone(&self.state);
        Ok(feed::stream(
            T::hub(&self.state),
            filter,
            move || T::hub(&state).snapshot(),
            T::KIND,
            self.shutdown.clone(),
            slot,
        ))
    }

    /// Answers a Get… call for one kind from its hub: accounts checked, data synced, then the
    /// encoding of the snapshot.
    fn unary<T: Kind>(
        &self,
        accounts: &std::collections::BTreeSet<String>,
        encode: impl FnOnce(&Snapshot<T>) -> Encoded,
    ) -> Result<Encoded, ApiError> {
        self.ensure_accounts(accounts)?;
        let snap = T::hub(&self.state).snapshot();
        self.ensure_synced(&snap)?;
        Ok(encode(&snap))
    }
}

/// Accounts as the gateway listed them (the hub keys them by id).
fn in_gateway_order(
    rows: &crate::hub::Rows<crate::model::AccountRow>,
) -> impl Iterator<Item = &crate::model::AccountRow> {
    let mut accounts: Vec<_> = rows.values().collect();
    accounts.sort_by_key(|a| a.order);
    accounts.into_iter()
}

/// One WatchHealth stream: the current health, then every change in order. A stream more than
/// [`crate::state::HEALTH_CHANGES`] changes behind gets the latest health instead of the ones
/// it missed (never an older one after a newer). Ends with UNAVAILABLE "shutting down".
fn health_stream(
    state: Arc<State>,
    shutdown: CancellationToken,
    slot: crate::state::SubscriberSlot,
) -> WireStream<pb::WatchHealthResponse> {
    struct Feed {
        state: Arc<State>,
        shutdown: CancellationToken,
        rx: tokio::sync::broadcast::Receiver<Arc<crate::health::Health>>,
        first: Option<Arc<crate::health::Health>>,
        version: u64,
        seq: u64,
        done: bool,
        // Held for the stream's lifetime; frees the subscriber slot on drop.
        _slot: crate::state::SubscriberSlot,
    }
    let (current, rx) = state.watch_health();
    let feed = Feed { state, shutdown, rx, first: Some(current), version: 0, seq: 0, done: false, _slot: slot };
    Box::pin(futures_util::stream::unfold(feed, |mut f| async move {
        use tokio::sync::broadcast::error::RecvError;
        if f.done {
            return None;
        }
        let health = loop {
            if let Some(h) = f.first.take() {
                break h;
            }
            // Both branches are cancellation safe: a token wait and a broadcast receive.
            let received = tokio::select! {
                biased;
                () = f.shutdown.cancelled() => Err(RecvError::Closed),
                r = f.rx.recv() => r,
            };
            match received {
                Ok(h) if h.version <= f.version => continue,
                Ok(h) => break h,
                Err(RecvError::Lagged(_)) => {
                    let h = f.state.health();
                    if h.version > f.version {
                        break h;
                    }
                }
                Err(RecvError::Closed) => {
                    f.done = true;
                    return Some((Err(Status::unavailable("shutting down")), f));
                }
            }
        };
        f.version = health.version;
        f.seq += 1;
        let message =
            pb::WatchHealthResponse { health: Some(convert::health(&health, f.state.subscribers())), seq: f.seq };
        Some((Ok(message), f))
    }))
}

#[cfg(test)]
mod health_tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::health::SessionState;

    #[tokio::test]
    async fn watch_health_delivers_every_change_in_order() {
        let state = crate::state::StateWriter::new("127.0.0.1:1", 1);
        let shutdown = CancellationToken::new();
        let slot = state.reader().try_subscribe(10).expect("a slot");
        let mut stream = health_stream(state.reader(), shutdown.clone(), slot);
        // Quick transitions, as a reconnect makes them, with nobody reading in between.
        let states = [
            SessionState::Reconnecting,
            SessionState::Connecting,
            SessionState::Syncing,
            SessionState::Ready,
            SessionState::Degraded,
            SessionState::Ready,
        ];
        for s in states {
            state.update_health(|h| h.state = s);
        }
        let mut seen = Vec::new();
        for _ in 0..=states.len() {
            let m = stream.next().await.expect("a message").expect("ok");
            assert_eq!(m.seq as usize, seen.len() + 1, "seq counts messages");
            seen.push(m.health.expect("health").state);
        }
        let expected: Vec<i32> =
            std::iter::once(pb::SessionState::Connecting as i32)
                .chain(states.iter().map(|s| {
                    convert::health(&crate::health::Health { state: *s, ..(*state.health()).clone() }, 0).state
                }))
                .collect();
        assert_eq!(seen, expected, "every transition, none coalesced");
        shutdown.cancel();
        let end = stream.next().await.expect("a last item").expect_err("UNAVAILABLE");
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert!(stream.next().await.is_none());
    }
}
