//! The ops HTTP port: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (every data kind follows gateway-svc and NATS holds what it says). Plain HTTP,
//! loopback by default.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::metrics::Metrics;

/// Where one data kind stands.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct KindState {
    /// Its gateway-svc stream is open.
    pub gateway_connected: bool,
    /// gateway-svc has sent data since the bridge started.
    pub has_data: bool,
    /// NATS holds what gateway-svc says (as far as the bridge knows).
    pub in_sync: bool,
    /// The last NATS failure, until the next successful reconciliation.
    pub last_error: Option<String>,
}

impl KindState {
    /// Ready: following gateway-svc, and NATS is up to date.
    pub fn ready(&self) -> bool {
        self.gateway_connected && self.has_data && self.in_sync
    }
}

/// What `/readyz` and the heartbeat report, written by the publishers.
#[derive(Debug, Default)]
pub struct Readiness {
    kinds: Mutex<BTreeMap<&'static str, KindState>>,
}

impl Readiness {
    /// Every kind of [`crate::metrics::DATA`], none ready.
    pub fn new() -> Arc<Self> {
        let kinds = crate::metrics::DATA.iter().map(|d| (*d, KindState::default())).collect();
        Arc::new(Self { kinds: Mutex::new(kinds) })
    }

    /// Updates one kind.
    pub fn set(&self, data: &'static str, f: impl FnOnce(&mut KindState)) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        f(kinds.entry(data).or_default());
    }

    /// Every kind.
    pub fn snapshot(&self) -> BTreeMap<&'static str, KindState> {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// All kinds ready.
    pub fn ready(&self) -> bool {
        self.snapshot().values().all(KindState::ready)
    }
}

#[derive(Debug, Clone)]
struct Ops {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The ops router.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(|AxState(ops): AxState<Ops>| std::future::ready(ops.metrics.render())))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(Ops { metrics, readiness })
}

async fn readyz(AxState(ops): AxState<Ops>) -> impl IntoResponse {
    let kinds = ops.readiness.snapshot();
    let ready = kinds.values().all(KindState::ready);
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(serde_json::json!({ "ready": ready, "data": kinds })))
}
