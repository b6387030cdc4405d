//! The `gateway.v1.GatewayService` implementation. Every RPC answers from in-memory state; none
//! ever calls the gateway.

mod feed;
mod filter;
mod status;
mod wire;

use std::sync::Arc;

use gateway_proto::encoded::Encoded;
use gateway_proto::encoded::gateway_service_server::GatewayService;
use gateway_proto::pb;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

pub use feed::{StreamWire, Update, UpdateKind, WireStream};
pub use filter::{PositionFilter, SummaryFilter};
pub use status::ApiError;

use crate::convert;
use crate::hub::Snapshot;
use crate::model::Row;
use crate::state::State;

/// The service, cheap to clone (tonic clones it per connection).
#[derive(Debug, Clone)]
pub struct Gateway {
    state: Arc<State>,
    shutdown: CancellationToken,
    max_subscribers: usize,
}

impl Gateway {
    /// A service over `state`; streams end when `shutdown` fires.
    pub fn new(state: Arc<State>, shutdown: CancellationToken, max_subscribers: usize) -> Self {
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
    /// Records the outcome of an RPC and converts errors in one place.
    fn finish<T>(&self, method: &'static str, r: Result<T, ApiError>) -> Result<Response<T>, Status> {
        match r {
            Ok(v) => {
                self.state.metrics.rpc(method, tonic::Code::Ok);
                Ok(Response::new(v))
            }
            Err(e) => {
                let status = Status::from(e);
                self.state.metrics.rpc(method, status.code());
                Err(status)
            }
        }
    }
}

#[tonic::async_trait]
impl GatewayService for Gateway {
    type WatchPositionsStream = WireStream<Encoded>;
    type WatchAccountSummaryStream = WireStream<Encoded>;
    type WatchHealthStream = WireStream<pb::WatchHealthResponse>;

    async fn list_accounts(
        &self,
        _request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let snap = self.state.accounts.snapshot();
        let r = self.ensure_synced(&snap).map(|()| pb::ListAccountsResponse {
            accounts: snap.rows.values().map(|a| pb::Account { id: a.id.clone() }).collect(),
            session_epoch: snap.epoch,
            seq: snap.version,
            as_of: Some(convert::timestamp(snap.as_of)),
            freshness: Some(convert::freshness(&snap.freshness)),
        });
        self.finish("ListAccounts", r)
    }

    async fn get_positions(&self, request: Request<pb::GetPositionsRequest>) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = (|| {
            let filter = PositionFilter::new(&req.accounts, &req.symbols)?;
            self.ensure_accounts(&filter.accounts)?;
            let snap = self.state.positions.snapshot();
            self.ensure_synced(&snap)?;
            Ok(wire::positions(&snap, &filter))
        })();
        self.finish("GetPositions", r)
    }

    async fn watch_positions(
        &self,
        request: Request<pb::WatchPositionsRequest>,
    ) -> Result<Response<Self::WatchPositionsStream>, Status> {
        let req = request.into_inner();
        let r = (|| {
            let filter = PositionFilter::new(&req.accounts, &req.symbols)?;
            // Unknown accounts are refused once accounts are known; before the first sync the
            // stream starts with an UNKNOWN snapshot and fills in when data arrives.
            if self.state.accounts.snapshot().synced {
                self.ensure_accounts(&filter.accounts)?;
            }
            let slot = self.slot()?;
            let state = Arc::clone(&self.state);
            let filter: feed::Filter<_> =
                if filter.is_all() { None } else { Some(Box::new(move |p| filter.matches(p))) };
            Ok(feed::stream(
                &self.state.positions,
                filter,
                move || state.positions.snapshot(),
                "positions",
                self.shutdown.clone(),
                slot,
            ))
        })();
        self.finish("WatchPositions", r)
    }

    async fn get_account_summary(
        &self,
        request: Request<pb::GetAccountSummaryRequest>,
    ) -> Result<Response<Encoded>, Status> {
        let req = request.into_inner();
        let r = (|| {
            let filter = SummaryFilter::new(&req.accounts, &req.tags)?;
            self.ensure_accounts(&filter.accounts)?;
            let snap = self.state.summary.snapshot();
            self.ensure_synced(&snap)?;
            Ok(wire::summary(&snap, &filter))
        })();
        self.finish("GetAccountSummary", r)
    }

    async fn watch_account_summary(
        &self,
        request: Request<pb::WatchAccountSummaryRequest>,
    ) -> Result<Response<Self::WatchAccountSummaryStream>, Status> {
        let req = request.into_inner();
        let r = (|| {
            let filter = SummaryFilter::new(&req.accounts, &req.tags)?;
            if self.state.accounts.snapshot().synced {
                self.ensure_accounts(&filter.accounts)?;
            }
            let slot = self.slot()?;
            let state = Arc::clone(&self.state);
            let filter: feed::Filter<_> =
                if filter.is_all() { None } else { Some(Box::new(move |s| filter.matches(s))) };
            Ok(feed::stream(
                &self.state.summary,
                filter,
                move || state.summary.snapshot(),
                "account_summary",
                self.shutdown.clone(),
                slot,
            ))
        })();
        self.finish("WatchAccountSummary", r)
    }

    async fn get_health(
        &self,
        _request: Request<pb::GetHealthRequest>,
    ) -> Result<Response<pb::GetHealthResponse>, Status> {
        let health = convert::health(&self.state.health(), self.state.subscribers());
        self.finish("GetHealth", Ok(pb::GetHealthResponse { health: Some(health) }))
    }

    async fn watch_health(
        &self,
        _request: Request<pb::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        let r = self.slot().map(|slot| {
            let state = Arc::clone(&self.state);
            let shutdown = self.shutdown.clone();
            let changes = tokio_stream::wrappers::WatchStream::new(self.state.health.subscribe());
            // The slot lives as long as the stream: it is moved into the closure.
            let stream = changes.map(move |h| {
                let _held = &slot;
                convert::health(&h, state.subscribers())
            });
            let mut seq = 0u64;
            let stream = stream.map(move |health| {
                seq += 1;
                Ok(pb::WatchHealthResponse { health: Some(health), seq })
            });
            let end = futures_util::stream::once(async { Err(Status::unavailable("shutting down")) });
            let stream = futures_util::StreamExt::take_until(stream, shutdown.cancelled_owned()).chain(end);
            Box::pin(stream) as WireStream<pb::WatchHealthResponse>
        });
        self.finish("WatchHealth", r)
    }
}
