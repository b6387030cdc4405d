//! The control API: HTTP/JSON on a loopback port, for tests, scripts and people.
//!
//! | method | path | body | effect |
//! |---|---|---|---|
//! | GET | `/stats` | | connection and request counters |
//! | GET, PUT, PATCH | `/positions` | `[Position]` | read, replace all, upsert (quantity "0" closes) |
//! | GET, PUT, PATCH | `/account-values` | `[AccountValue]` | read, replace all, upsert |
//! | GET, PUT, PATCH | `/ledger` | `[LedgerValue]` | read, replace all, upsert |
//! | GET, PATCH | `/prices` | `[PriceTick]` | read each held contract's price, reprice contracts |
//! | GET, POST, DELETE | `/price-walk` | `PriceWalk` | read (or `null`), start (replacing), stop |
//! | GET | `/pnl/{account}` | | `AccountPnl` the wire carries now (404 for an unknown account) |
//! | GET | `/pnl/{account}/{con_id}` | | `PositionPnl` the wire carries now |
//! | POST | `/faults` | `Fault` | inject now |
//! | POST | `/reset` | | scenario data and price walk, no faults, zero counters |

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::fault::Fault;
use crate::prices::{AccountPnl, PositionPnl, PriceTick, PriceWalk};
use crate::scenario::{AccountValue, LedgerValue, Position, ScenarioError};
use crate::sim::{Shared, SimError};
use crate::stats::Stats;

type AppState = State<Arc<Shared>>;

pub(crate) async fn start(shared: Arc<Shared>, addr: SocketAddr) -> Result<SocketAddr, SimError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| SimError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| SimError::Bind { addr, source })?;
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/positions", get(positions).put(put_positions).patch(patch_positions))
        .route("/account-values", get(values).put(put_values).patch(patch_values))
        .route("/ledger", get(ledger).put(put_ledger).patch(patch_ledger))
        .route("/prices", get(prices).patch(patch_prices))
        .route("/price-walk", get(walk).post(start_walk).delete(stop_walk))
        .route("/pnl/{account}", get(pnl))
        .route("/pnl/{account}/{con_id}", get(position_pnl))
        .route("/faults", post(fault))
        .route("/reset", post(reset))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::clone(&shared));
    let shutdown = shared.shutdown.clone();
    shared.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
            tracing::warn!(error = %e, "control API stopped");
        }
    });
    Ok(local)
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string() }))).into_response()
}

fn done(r: Result<(), ScenarioError>) -> Response {
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(e),
    }
}

async fn stats(State(s): AppState) -> Json<Stats> {
    Json(s.stats().clone())
}

async fn positions(State(s): AppState) -> Json<Vec<Position>> {
    Json(s.book.positions())
}

async fn put_positions(State(s): AppState, Json(body): Json<Vec<Position>>) -> Response {
    done(s.book.replace_positions(body))
}

async fn patch_positions(State(s): AppState, Json(body): Json<Vec<Position>>) -> Response {
    done(s.book.upsert_positions(body))
}

async fn values(State(s): AppState) -> Json<Vec<AccountValue>> {
    Json(s.book.values())
}

async fn put_values(State(s): AppState, Json(body): Json<Vec<AccountValue>>) -> Response {
    done(s.book.replace_values(body))
}

async fn patch_values(State(s): AppState, Json(body): Json<Vec<AccountValue>>) -> Response {
    done(s.book.upsert_values(body))
}

async fn ledger(State(s): AppState) -> Json<Vec<LedgerValue>> {
    Json(s.book.ledger())
}

async fn put_ledger(State(s): AppState, Json(body): Json<Vec<LedgerValue>>) -> Response {
    done(s.book.replace_ledger(body))
}

async fn patch_ledger(State(s): AppState, Json(body): Json<Vec<LedgerValue>>) -> Response {
    done(s.book.upsert_ledger(body))
}

async fn fault(State(s): AppState, Json(body): Json<Fault>) -> Response {
    let name = body.name();
    match s.inject(body) {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "injected": name }))).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn reset(State(s): AppState) -> StatusCode {
    s.reset();
    StatusCode::NO_CONTENT
}

async fn prices(State(s): AppState) -> Json<Vec<PriceTick>> {
    Json(s.book.prices())
}

async fn patch_prices(State(s): AppState, Json(body): Json<Vec<PriceTick>>) -> Response {
    done(s.book.set_prices(&body))
}

async fn walk(State(s): AppState) -> Json<Option<PriceWalk>> {
    Json(s.walk())
}

async fn start_walk(State(s): AppState, Json(body): Json<PriceWalk>) -> Response {
    if let Err(e) = body.validate() {
        return bad_request(e);
    }
    s.start_walk(body);
    StatusCode::NO_CONTENT.into_response()
}

async fn stop_walk(State(s): AppState) -> StatusCode {
    s.stop_walk();
    StatusCode::NO_CONTENT
}

fn unknown_account(account: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no account {account}") }))).into_response()
}

async fn pnl(State(s): AppState, Path(account): Path<String>) -> Response {
    match s.book.pnl(&account) {
        Some(p) => Json::<AccountPnl>(p).into_response(),
        None => unknown_account(&account),
    }
}

async fn position_pnl(State(s): AppState, Path((account, con_id)): Path<(String, i32)>) -> Response {
    match s.book.position_pnl(&account, con_id) {
        Some(p) => Json::<PositionPnl>(p).into_response(),
        None => unknown_account(&account),
    }
}
