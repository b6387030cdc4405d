//! `trader-client`: what a trading runner needs from gateway-svc, in one call, without ever
//! opening a gateway socket.
//!
//! - [`cli`] holds the flags;
//! - [`fetch`] does readiness, accounts, positions, summary; failures as [`Failure`] with exit codes.
//! - [`report`] renders the per-account, per-symbol report as text or JSON.

pub mod cli;
pub mod fetch;
pub mod report;

pub use fetch::{Failure, fetch};
pub use report::Report;
