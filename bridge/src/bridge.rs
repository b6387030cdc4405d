//! Assembles the bridge: per data kind (positions, account summary, account and position PnL,
//! health) a gateway-svc follower and a publisher joined by a
//! bounded channel, the heartbeat, and the ops HTTP server, all owned by one task tracker and
//! stopped by one cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{ConfigError, Settings};
use crate::health::HealthPublisher;
use crate::jet::{Jet, NatsError};
use crate::metrics::Metrics;
use crate::model::{AccountPnl, Position, PositionPnl, Row, SummaryValue, rfc3339};
use crate::ops::{self, Readiness};
use crate::rows::RowsPublisher;
use crate::source::{self, Follower, Gateway, follow};

/// gateway-svc messages buffered per kind while the publisher writes to NATS. When it is full
/// the follower stops reading, and gateway-svc's own lag policy (a RESYNC) takes over.
pub const CHANNEL: usize = 64;

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The ops port could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A file named in the configuration could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The NATS client could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// A running bridge.
#[derive(Debug)]
pub struct Running {
    /// Bound ops address.
    pub ops_addr: SocketAddr,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Where each data kind stands.
    pub readiness: Arc<Readiness>,
    /// Its NATS handle.
    pub jet: Jet,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

/// Binds the ops port, connects to NATS (in the background) and starts following gateway-svc.
/// The bridge stops when `shutdown` is cancelled.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> Result<Running, StartError> {
    let ops_listen = settings.validate()?;
    let listener =
        TcpListener::bind(ops_listen).await.map_err(|source| StartError::Bind { addr: ops_listen, source })?;
    let ops_addr = listener.local_addr().map_err(|source| StartError::Bind { addr: ops_listen, source })?;
    let gateway = Gateway::new(settings.gateway.clone()).map_err(|source| StartError::Read {
        path: settings.gateway.tls_ca_path.clone().unwrap_or_default(),
        source,
    })?;
    let jet = Jet::connect(&settings.nats, &settings.jetstream).await?;
    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    let tracker = TaskTracker::new();
    let names = &settings.jetstream;

    let wiring = Wiring {
        gateway,
        jet: jet.clone(),
        metrics: Arc::clone(&metrics),
        readiness: Arc::clone(&readiness),
        retry: settings.retry.clone(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    // One follower and one publisher per data kind. A new row kind of gateway-svc is one more
    // line here, a Row impl in model.rs (naming its ibgw-client kind) and a bucket name in config.
    wiring.rows::<Position>("positions", &names.positions_bucket);
    wiring.rows::<SummaryValue>("summary", &names.summary_bucket);
    wiring.rows::<AccountPnl>("account_pnl", &names.account_pnl_bucket);
    wiring.rows::<PositionPnl>("position_pnl", &names.position_pnl_bucket);
    let (tx, rx) = mpsc::channel(CHANNEL);
    tracker.spawn(follow(wiring.follower("health"), source::health, tx));
    let publisher = HealthPublisher::new(jet.clone(), Arc::clone(&metrics), Arc::clone(&readiness));
    tracker.spawn(publisher.run(rx, settings.retry.clone(), shutdown.clone()));

    tracker.spawn(heartbeat(
        jet.clone(),
        Arc::clone(&readiness),
        Arc::clone(&metrics),
        Duration::from_millis(names.heartbeat_ms),
        shutdown.clone(),
    ));

    let app = ops::router(Arc::clone(&metrics), Arc::clone(&readiness));
    let ops_shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(ops_shutdown.cancelled_owned()).await {
            warn!(error = %e, "ops server stopped with an error");
        }
    });
    tracker.close();
    info!(
        ops = %ops_addr,
        gateway = %settings.gateway.address,
        nats = %settings.nats.url,
        stream = %names.stream,
        subjects = %format!("{}.>", names.subject_prefix),
        "ibgw-bridge running"
    );
    Ok(Running {
        ops_addr,
        metrics,
        readiness,
        jet,
        shutdown,
        tracker,
        grace: Duration::from_millis(settings.shutdown.grace_ms),
    })
}

/// What every follower and publisher pair shares.
struct Wiring {
    gateway: Gateway,
    jet: Jet,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    retry: crate::config::RetrySettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Wiring {
    fn follower(&self, data: &'static str) -> Follower {
        Follower {
            data,
            gateway: self.gateway.clone(),
            retry: self.retry.clone(),
            metrics: Arc::clone(&self.metrics),
            cancel: self.shutdown.clone(),
        }
    }

    /// A follower of one row kind's Watch stream and its publisher into `bucket`, joined by a
    /// bounded channel.
    fn rows<R: Row>(&self, data: &'static str, bucket: &str) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        self.tracker.spawn(follow::<R::Kind, _>(self.follower(data), source::rows::<R>, tx));
        let publisher = RowsPublisher::<R>::new(
            data,
            bucket.to_owned(),
            self.jet.clone(),
            Arc::clone(&self.metrics),
            Arc::clone(&self.readiness),
        );
        self.tracker.spawn(publisher.run(rx, self.retry.clone(), self.shutdown.clone()));
    }
}

/// Rewrites `bridge` in the status bucket every `every`, and once more on the way out with
/// `running: false`, so remote readers can tell a bridge that stopped (or died: the entry ages)
/// from data that is merely quiet.
async fn heartbeat(
    jet: Jet,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    every: Duration,
    cancel: CancellationToken,
) {
    let bucket = jet.names().status_bucket.clone();
    let beat = |running: bool| {
        let value = serde_json::json!({
            "running": running,
            "updated_at": rfc3339(std::time::SystemTime::now()),
            "heartbeat_ms": every.as_millis() as u64,
            "stale_after_ms": 3 * every.as_millis() as u64,
            "version": env!("CARGO_PKG_VERSION"),
            "data": readiness.snapshot(),
        });
        vec![("bridge".to_owned(), serde_json::to_vec(&value).ok().map(Into::into))]
    };
    // The first beat as soon as the bucket exists: until then, and after any failure, retry soon.
    let retry = every.min(Duration::from_millis(250));
    let mut delay = Duration::ZERO;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        metrics.nats_connected(jet.connected());
        delay = match jet.kv_write(&bucket, beat(true)).await {
            Ok(()) => every,
            Err(e) => {
                debug!(error = %e, "heartbeat not written");
                retry
            }
        };
    }
    if let Err(e) = tokio::time::timeout(Duration::from_secs(1), jet.kv_write(&bucket, beat(false))).await {
        debug!(error = %e, "last heartbeat not written");
    }
}

impl Running {
    /// The token that stops this bridge.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops everything and waits, at most the configured grace, for every task to finish (the
    /// message in flight is completed). Returns false when the grace ran out.
    pub async fn stop(self) -> bool {
        self.shutdown.cancel();
        let clean = ibgw_kit::shutdown::within(self.grace, self.tracker.wait()).await;
        if clean {
            info!("ibgw-bridge stopped cleanly");
        } else {
            warn!(grace_ms = self.grace.as_millis() as u64, "shutdown grace ran out; exiting anyway");
        }
        clean
    }
}
