//! `ibgw-bridge`: follows gateway-svc's positions, account summary, PnL and health over gRPC (as
//! any other client does) and publishes them to NATS JetStream, so that readers on other machines
//! get the same data with the same stamps (epoch, seq, as_of, freshness):
//!
//! - every change into one stream, a subject per data kind and account
//!   (`ibgw.v1.positions.<account>`, `ibgw.v1.summary.<account>`, `ibgw.v1.account_pnl.<account>`,
//!   `ibgw.v1.position_pnl.<account>`, `ibgw.v1.health`), each
//!   message with a `Nats-Msg-Id` that makes publishing it again harmless;
//! - the latest value of every row into key-value buckets (a removed row is deleted), plus a
//!   status bucket with each subject's freshness and stream position, health, and a heartbeat.
//!
//! Modules: [`config`]; [`source`] (gRPC followers, on `ibgw-client`); [`book`] (target vs
//! published, pure);
//! [`rows`] and [`health`] (the publishers); [`jet`] (NATS); [`model`] (what is written);
//! [`ops`] and [`metrics`]; [`bridge`] (wiring and shutdown). A new row kind of gateway-svc is a
//! [`model::Row`] impl naming its `ibgw-client` kind, a bucket name and one line in [`bridge`].

pub mod book;
pub mod bridge;
pub mod config;
pub mod health;
pub mod jet;
pub mod metrics;
pub mod model;
pub mod ops;
mod publisher;
pub mod rows;
pub mod source;

pub use bridge::{Running, StartError, start};
pub use config::Settings;

/// Exit code for bad configuration (`EX_USAGE`), shared by every ibgw binary.
pub use ibgw_kit::EXIT_CONFIG;
