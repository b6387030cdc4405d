//! `dashboard-client`: a live web page of accounts, positions, summary and session health, fed
//! by gateway-svc's streams. The browser talks only to this process (server-sent events); this
//! process is the only one talking gRPC, and it reconnects on its own when gateway-svc restarts.
//!
//! - [`model`]: what the page shows, kept current from the streams.
//! - [`feed`]: the three stream tasks with reconnect and backoff.
//! - [`web`]: the page, `/events` (SSE) and `/api/state`.
//! - [`guard`]: own names only (DNS rebinding), the optional token, security headers.
//! - [`logging`]: stderr log lines, coloured only on a terminal without `NO_COLOR`.

pub mod feed;
pub mod guard;
pub mod logging;
pub mod model;
pub mod web;
