//! `dashboard-client`: a live web page of accounts, positions with their value and PnL, account
//! PnL, summary and session health, with charts of net liquidation and daily PnL, fed by
//! gateway-svc's streams. The browser talks only to this process (server-sent events); this
//! process is the only one talking gRPC, and it reconnects on its own when gateway-svc restarts.
//!
//! - [`model`]: what the page shows, kept current from the streams.
//! - [`feed`]: the stream tasks (positions, summary, account PnL, position PnL, health), each an
//!   `ibgw-client` follower (fold, seq-gap check, reconnect with backoff).
//! - [`web`]: the page, `/events` (SSE) and `/api/state`. The page's script (`assets/app.js`)
//!   draws the charts as plain SVG and keeps their history itself, a ring of the last 15
//!   minutes per account, recording no point while data is not LIVE (a gap, never a zero).
//! - [`guard`]: own names only (DNS rebinding), the optional token, security headers.

pub mod feed;
pub mod guard;
pub mod model;
pub mod web;
