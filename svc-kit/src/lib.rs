//! `ibgw-kit`: the mechanics every ibgw binary needs and none should write again. No domain types
//! (nothing about IB, positions or NATS) live here.
//!
//! - [`secret`]: [`Secret`], a value `Debug` and `Display` never show, and [`constant_time_eq`].
//! - [`config`]: layered loading (defaults, then a TOML file, then `PREFIX__SECTION__KEY`
//!   variables) with one readable error line, and [`EXIT_CONFIG`].
//! - [`backoff`]: capped exponential backoff with jitter.
//! - [`error_line`]: an error and its causes on one line ([`source_chain`]).
//! - [`telemetry`]: the tracing subscriber (pretty or JSON lines on stderr, `RUST_LOG`-style filter).
//! - [`signals`]: SIGINT/SIGTERM, caught from start-up, never aborting the process.
//! - [`shutdown`]: waiting for a service's tasks within a grace.

pub mod backoff;
pub mod config;
pub mod error_line;
pub mod secret;
pub mod shutdown;
pub mod signals;
pub mod telemetry;

pub use backoff::{Backoff, BackoffPolicy};
pub use config::{ConfigError, EXIT_CONFIG};
pub use error_line::source_chain;
pub use secret::{Secret, constant_time_eq};
pub use signals::Signals;
