//! `trader-client`: what a trading runner needs from gateway-svc, in one call, without ever
//! opening a gateway socket.
//!
//! - [`cli`] holds the flags;
//! - [`fetch`] does readiness, accounts, positions, summary, PnL; failures as [`Failure`] with exit codes.
//! - [`exit`] is the exit-code table (`--help` and README.md show it);
//! - [`report`] renders the per-account, per-symbol report (with values and PnL) as text or JSON;
//! - [`signal`] turns SIGINT and SIGTERM into values every phase of a run is raced against.

pub mod cli;
pub mod exit;
pub mod fetch;
pub mod report;
pub mod signal;

pub use fetch::{Failure, fetch};
pub use report::Report;
