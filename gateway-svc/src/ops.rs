//! The ops HTTP port: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (the upstream session is ready). Plain HTTP, loopback by default.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::State;

/// The ops router.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Prometheus text format 0.0.4. Values derived from health and the process's own figures are
/// taken now, at scrape time, into this service's own recorder.
async fn metrics(AxState(state): AxState<Arc<State>>) -> impl IntoResponse {
    state.metrics.expected_outage(state.health().expected_outage);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

async fn readyz(AxState(state): AxState<Arc<State>>) -> impl IntoResponse {
    let h = state.health();
    let body = serde_json::json!({
        "state": h.state.as_str(),
        "reason": h.reason,
        "session_epoch": h.epoch,
        "reconnects": h.reconnects,
    });
    let code = if h.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body))
}
