//! The ops HTTP port: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
//! `/readyz` (the upstream session is ready). Plain HTTP, loopback by default.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::State;

/// The ops router.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(|AxState(state): AxState<Arc<State>>| std::future::ready(state.metrics.render())))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
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
