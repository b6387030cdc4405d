//! Assembles the service: session actor, health reporting, gRPC server and ops HTTP server, all
//! owned by one task tracker and stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_proto::encoded::gateway_service_server::GatewayServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;
use tower::Layer;
use tracing::{info, warn};

use crate::config::Config;
use crate::front_door::FrontDoor;
use crate::grpc::Gateway;
use crate::grpc::metered::MetricsLayer;
use crate::health_check::HealthCheck;
use crate::state::{State, StateWriter};
use crate::{auth, ops, session};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be used.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Reflection descriptors failed to load (a build defect).
    #[error("reflection setup failed: {0}")]
    Reflection(String),
}

/// A running service.
#[derive(Debug)]
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound ops address.
    pub ops_addr: SocketAddr,
    /// Bound TWS front-door address, when enabled.
    pub tws_api_addr: Option<SocketAddr>,
    /// Shared state (for embedding and tests).
    pub state: Arc<State>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let l = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
    let local = l.local_addr().map_err(|source| StartError::Bind { addr, source })?;
    Ok((l, local))
}

/// Binds both ports and starts everything. The service stops when `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, StartError> {
    if !crate::runtime::TUNED {
        use crate::runtime::{UNTUNED_FIX, UNTUNED_LOST};
        warn!(lost = UNTUNED_LOST, fix = UNTUNED_FIX, "built without --cfg tokio_unstable");
    }
    if !config.grpc.listen.ip().is_loopback() && config.auth.token.is_none() {
        warn!(addr = %config.grpc.listen, "gRPC bound to a non-loopback address WITHOUT authentication (auth.allow_unauthenticated_non_loopback)");
    }
    if config.token_in_clear() {
        warn!(addr = %config.grpc.listen, "gRPC on a non-loopback address WITHOUT TLS: clients send the bearer token in clear (auth.allow_token_without_tls)");
    }
    let (grpc_listener, grpc_addr) = bind(config.grpc.listen).await?;
    let (ops_listener, ops_addr) = bind(config.ops_listen).await?;
    let tws_api = match config.tws_api {
        Some(door) => Some(bind(door.listen).await?),
        None => None,
    };
    if let Some((_, addr)) = tws_api.as_ref().filter(|(_, a)| !a.ip().is_loopback()) {
        warn!(%addr, "TWS front door on a non-loopback address: the TWS protocol has no authentication");
    }
    // The session gets the only writer; everything else reads.
    let writer = StateWriter::new(&config.upstream.address, config.upstream.client_id);
    let state = writer.reader();
    let tracker = TaskTracker::new();

    let maintenance = config.maintenance.clone();
    tracker.spawn(session::run(config.upstream.clone(), maintenance, writer, shutdown.clone()));

    // grpc.health.v1: "" is the process, the named service is the upstream session.
    let health_service = HealthCheck::server(Arc::clone(&state), shutdown.clone());

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gateway_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // Both versions: grpcurl up to 1.8.x speaks only v1alpha, newer clients v1.
    let reflection_v1 = reflection().build_v1().map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| StartError::Reflection(e.to_string()))?;

    let g = &config.grpc;
    let gateway = Gateway::new(Arc::clone(&state), shutdown.clone(), g.max_subscribers);
    let service = GatewayServiceServer::with_interceptor(gateway, auth::interceptor(config.auth.token.clone()));
    // Every call of the service, token refusals included, in this service's own metrics.
    let service = MetricsLayer::new(Arc::clone(&state)).layer(service);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &g.tls {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| StartError::Tls(format!("{}: {e}", p.display())));
        let identity = tonic::transport::Identity::from_pem(read(&tls.cert_path)?, read(&tls.key_path)?);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| StartError::Tls(e.to_string()))?;
        info!(cert = %tls.cert_path.display(), "gRPC over TLS");
    }
    let router = builder
        .timeout(g.unary_timeout)
        .concurrency_limit_per_connection(g.concurrency_per_connection)
        .load_shed(true)
        .http2_keepalive_interval(Some(g.keepalive_interval))
        .http2_keepalive_timeout(Some(g.keepalive_timeout))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(service);
    let grpc_shutdown = shutdown.clone();
    tracker.spawn(async move {
        // tonic ignores the builder's tcp_nodelay for a custom incoming stream: set it here, or
        // every small write after an unacknowledged one waits ~40 ms for a delayed ACK.
        let incoming = TcpIncoming::from(grpc_listener).with_nodelay(Some(true));
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, grpc_shutdown.cancelled_owned()).await {
            warn!(error = %e, "gRPC server stopped with an error");
        }
    });

    let ops_app = ops::router(Arc::clone(&state));
    let ops_shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = axum::serve(ops_listener, ops_app).with_graceful_shutdown(ops_shutdown.cancelled_owned()).await
        {
            warn!(error = %e, "ops server stopped with an error");
        }
    });
    let tws_api_addr = tws_api.as_ref().map(|(_, a)| *a);
    if let (Some((listener, _)), Some(tws)) = (tws_api, config.tws_api) {
        let door = FrontDoor::new(Arc::clone(&state), shutdown.clone(), tws.max_clients);
        // Connections live on the same tracker, so stopping waits for each to close cleanly.
        tracker.spawn(door.serve(listener, tracker.clone()));
    }
    tracker.close();
    info!(grpc = %grpc_addr, ops = %ops_addr, tws_api = ?tws_api_addr, upstream = %config.upstream.address, "gateway-svc serving");
    Ok(Running { grpc_addr, ops_addr, tws_api_addr, state, shutdown, tracker, grace: config.shutdown_grace })
}

impl Running {
    /// The token that stops this service.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops everything and waits, at most the configured grace, for every task to finish.
    /// Returns false when the grace ran out.
    pub async fn stop(self) -> bool {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits for the tasks after the token was cancelled elsewhere (at most the grace).
    pub async fn wait(self) -> bool {
        self.shutdown.cancelled().await;
        let clean = ibgw_kit::shutdown::within(self.grace, self.tracker.wait()).await;
        if clean {
            info!("gateway-svc stopped cleanly");
        } else {
            warn!(grace_ms = self.grace.as_millis() as u64, "shutdown grace ran out; exiting anyway");
        }
        clean
    }
}
