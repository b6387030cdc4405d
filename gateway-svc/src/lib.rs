//! `gateway-svc`: one long-lived IB Gateway session, served to any number of local clients over
//! gRPC.
//!
//! - [`session`]: the actor that owns the only `ibapi` client and socket.
//! - [`upstream`]: the data kinds (positions, account summary), one type each; [`pnl`]: PnL per
//!   account and per position (one subscription per key); [`farm`]: data farms.
//! - [`hub`] and [`state`]: snapshots and changes, fanned out to streams; [`kind`]: the data
//!   kinds, one table that every per-kind list derives from.
//! - [`grpc`]: the `gateway.v1.GatewayService` implementation; [`front_door`]: the same state
//!   served over the TWS API protocol to unmodified IB API programs.
//! - [`server`]: wiring, reflection, limits, shutdown; [`health_check`]: grpc.health.v1.
//! - [`runtime`]: the tokio runtime, tuned for fan-out; [`process`]: what a binary does around the
//!   service (configuration or exit 64, runtime, exit code).
//!
//! The demo (this service against the embedded simulator) is the `ibgw-demo` crate, above this
//! one, so that this crate's dependency graph holds no simulator.

pub mod auth;
pub mod config;
pub mod convert;
pub mod farm;
pub mod front_door;
pub mod grpc;
pub mod health;
pub mod health_check;
pub mod hub;
pub mod kind;
pub mod maintenance;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod pnl;
pub mod probe;
pub mod process;
pub mod runtime;
pub mod server;
pub mod session;
pub mod state;
pub mod telemetry;
pub mod upstream;

pub use config::{Config, Settings};
pub use server::{Running, start};

/// Exit code for bad configuration (`EX_USAGE`), shared by every ibgw binary.
pub use ibgw_kit::EXIT_CONFIG;

#[cfg(test)]
mod testing {
    /// Scales a unit test's deadline for slow machines: `IBGW_TEST_PATIENCE=3` triples it (the
    /// same variable the end-to-end tests read).
    pub(crate) fn patience(d: std::time::Duration) -> std::time::Duration {
        let factor: u32 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        d * factor.max(1)
    }
}
