//! The unary baseline: `gateway.v1.GatewayService` with every method answering an empty default
//! response at once, served by a plain tonic server. It is what tonic and HTTP/2 cost on this
//! machine; gateway-svc's figures are divided by it.
//!
//! For the breakdown of where gateway-svc's time goes, two variants add one thing each: the
//! gateway's request middleware (timeout, concurrency limit, load shedding, interceptor), or a
//! fixed GetPositions payload (the same bytes gateway-svc returns, cloned per call).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use gateway_proto::pb;
use gateway_proto::pb::gateway_service_server::{GatewayService, GatewayServiceServer};
use gateway_svc::GrpcSettings;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::{Error, Result};

type Empty<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

fn none<M: Send + 'static>() -> Empty<M> {
    Box::pin(futures_util::stream::empty())
}

/// A service that does nothing (or returns a fixed GetPositions payload).
#[derive(Debug, Clone, Default)]
pub struct EmptyGateway {
    positions: Option<Arc<pb::GetPositionsResponse>>,
}

#[tonic::async_trait]
impl GatewayService for EmptyGateway {
    type WatchPositionsStream = Empty<pb::WatchPositionsResponse>;
    type WatchAccountSummaryStream = Empty<pb::WatchAccountSummaryResponse>;
    type WatchHealthStream = Empty<pb::WatchHealthResponse>;
    type WatchAccountPnlStream = Empty<pb::WatchAccountPnlResponse>;
    type WatchPositionPnlStream = Empty<pb::WatchPositionPnlResponse>;

    async fn list_accounts(
        &self,
        _: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        Ok(Response::new(pb::ListAccountsResponse::default()))
    }

    async fn get_positions(
        &self,
        _: Request<pb::GetPositionsRequest>,
    ) -> Result<Response<pb::GetPositionsResponse>, Status> {
        Ok(Response::new(self.positions.as_deref().cloned().unwrap_or_default()))
    }

    async fn watch_positions(
        &self,
        _: Request<pb::WatchPositionsRequest>,
    ) -> Result<Response<Self::WatchPositionsStream>, Status> {
        Ok(Response::new(none()))
    }

    async fn get_account_summary(
        &self,
        _: Request<pb::GetAccountSummaryRequest>,
    ) -> Result<Response<pb::GetAccountSummaryResponse>, Status> {
        Ok(Response::new(pb::GetAccountSummaryResponse::default()))
    }

    async fn watch_account_summary(
        &self,
        _: Request<pb::WatchAccountSummaryRequest>,
    ) -> Result<Response<Self::WatchAccountSummaryStream>, Status> {
        Ok(Response::new(none()))
    }

    async fn get_health(&self, _: Request<pb::GetHealthRequest>) -> Result<Response<pb::GetHealthResponse>, Status> {
        Ok(Response::new(pb::GetHealthResponse::default()))
    }

    async fn watch_health(
        &self,
        _: Request<pb::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        Ok(Response::new(none()))
    }

    async fn get_account_pnl(
        &self,
        _: Request<pb::GetAccountPnlRequest>,
    ) -> Result<Response<pb::GetAccountPnlResponse>, Status> {
        Ok(Response::new(pb::GetAccountPnlResponse::default()))
    }

    async fn watch_account_pnl(
        &self,
        _: Request<pb::WatchAccountPnlRequest>,
    ) -> Result<Response<Self::WatchAccountPnlStream>, Status> {
        Ok(Response::new(none()))
    }

    async fn get_position_pnl(
        &self,
        _: Request<pb::GetPositionPnlRequest>,
    ) -> Result<Response<pb::GetPositionPnlResponse>, Status> {
        Ok(Response::new(pb::GetPositionPnlResponse::default()))
    }

    async fn watch_position_pnl(
        &self,
        _: Request<pb::WatchPositionPnlRequest>,
    ) -> Result<Response<Self::WatchPositionPnlStream>, Status> {
        Ok(Response::new(none()))
    }
}

/// The empty service on an ephemeral loopback port.
#[derive(Debug)]
pub struct EmptyServer {
    /// Bound address.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What the empty server adds to doing nothing.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// gateway-svc's request middleware with its default settings.
    pub middleware: bool,
    /// GetPositions answers this (cloned per call) instead of an empty response.
    pub positions: Option<pb::GetPositionsResponse>,
}

impl EmptyServer {
    /// Binds 127.0.0.1:0 and serves until [`EmptyServer::stop`].
    pub async fn start(extras: Extras) -> Result<EmptyServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| Error::setup("empty server bind", e))?;
        let addr = listener.local_addr().map_err(|e| Error::setup("empty server address", e))?;
        let stop = CancellationToken::new();
        // TCP_NODELAY on accepted sockets: tonic applies it only through its own incoming
        // stream, and a baseline must be tonic at its best.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = stop.clone().cancelled_owned();
        let service = EmptyGateway { positions: extras.positions.map(Arc::new) };
        let task = if extras.middleware {
            let g = GrpcSettings::default();
            let router = tonic::transport::Server::builder()
                .timeout(Duration::from_millis(g.unary_timeout_ms))
                .concurrency_limit_per_connection(g.concurrency_per_connection)
                .load_shed(true)
                .add_service(GatewayServiceServer::with_interceptor(service, gateway_svc::auth_interceptor(None)));
            tokio::spawn(async move {
                let _ = router.serve_with_incoming_shutdown(incoming, shutdown).await;
            })
        } else {
            let router = tonic::transport::Server::builder().add_service(GatewayServiceServer::new(service));
            tokio::spawn(async move {
                let _ = router.serve_with_incoming_shutdown(incoming, shutdown).await;
            })
        };
        Ok(EmptyServer { addr, stop, task })
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
