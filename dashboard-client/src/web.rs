//! The web side: the page itself, `/events` (server-sent events: the whole dashboard as JSON on
//! every change) and `/api/state` (the same, once).

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::{Stream, StreamExt};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;

use crate::model::Dashboard;

const PAGE: &str = include_str!("../assets/index.html");

#[derive(Clone)]
struct AppState {
    model: watch::Receiver<Dashboard>,
    shutdown: CancellationToken,
}

/// The router.
pub fn router(model: watch::Receiver<Dashboard>, shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/events", get(events))
        .route("/api/state", get(state))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(AppState { model, shutdown })
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
