//! The web side: the page and its script and style, `/events` (server-sent events: the whole
//! dashboard as JSON on every change) and `/api/state` (the same, once), all behind
//! [`guard`](crate::guard): own names only, the token when one is set, strict security headers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use crate::guard::{self, Guard};
use crate::model::Dashboard;

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

#[derive(Clone)]
struct AppState {
    model: watch::Receiver<Dashboard>,
    shutdown: CancellationToken,
}

/// The router, with the guard and the security headers around every route (404s included).
pub fn router(model: watch::Receiver<Dashboard>, shutdown: CancellationToken, guard: Guard) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/events", get(events))
        .route("/api/state", get(state))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(AppState { model, shutdown })
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::check))
        .layer(axum::middleware::from_fn(guard::security_headers))
}

async fn state(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(s.model.borrow().clone())
}

async fn events(State(s): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // WatchStream yields the current value first, then each change; a slow browser simply skips
    // intermediate states, which is right for a page that always shows the whole picture.
    let stream = WatchStream::new(s.model.clone())
        .map(|d| Ok(Event::default().event("state").data(serde_json::to_string(&d).unwrap_or_default())))
        .take_until(s.shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
