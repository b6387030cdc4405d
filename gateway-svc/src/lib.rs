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

mod auth;
mod config;
mod convert;
mod farm;
mod front_door;
mod grpc;
mod health;
mod health_check;
mod hub;
mod kind;
mod maintenance;
mod metrics;
mod model;
mod ops;
mod pnl;
mod probe;
mod process;
mod runtime;
mod server;
mod session;
mod state;
mod telemetry;
mod upstream;

// Running the service.
pub use server::{Running, StartError, start};
// Its configuration: the settings as read (TOML and IBGW__… variables) and, validated once, the
// typed configuration the service runs with.
pub use config::{
    AuthSettings, Config, ConfigError, GrpcSettings, MIN_PROBE_SPACING, OpsSettings, Settings, ShutdownSettings,
    TwsApiSettings, UpstreamSettings,
};
pub use maintenance::{MaintenanceSettings, WindowSettings};
// What a binary does around it.
/// Exit code for bad configuration (`EX_USAGE`), shared by every ibgw binary.
pub use ibgw_kit::EXIT_CONFIG;
pub use process::{config_or_exit, run, settings_or_exit};
pub use runtime::builder as runtime_builder;
pub use telemetry::init as init_telemetry;
// Checking a running service's health (`gateway-svc health`).
pub use probe::{
    Options as ProbeOptions, ProbeError, ResolveError as ProbeResolveError, Target as ProbeTarget, check as probe,
    check_target as probe_target, resolve as probe_target_from,
};
// The shared state, read-only outside this crate (for programs that embed the service).
pub use health::{Health, SessionState};
pub use model::decimal;
pub use state::State;
// A server with the service's own authentication (benchmark baselines).
pub use auth::interceptor as auth_interceptor;

#[cfg(test)]
mod testing {
    /// Scales a unit test's deadline for slow machines: `IBGW_TEST_PATIENCE=3` triples it (the
    /// same variable the end-to-end tests read).
    pub(crate) fn patience(d: std::time::Duration) -> std::time::Duration {
        let factor: u32 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
        d * factor.max(1)
    }
}
