//! `ibgw-bench`: proves gateway-svc is fast by measuring it side by side with the alternatives,
//! in the same run, on the same machine, over 127.0.0.1 only.
//!
//! - [`cli`]: the subcommands and their flags.
//! - [`scenario`]: one module per benchmark (runner, unary, fanout, recovery, burst, sim, nats).
//! - [`stats`] and [`report`]: percentiles, ratios, goals and the tables that print them.
//! - [`binaries`] and [`child`]: the sibling executables and the processes started from them.
//! - [`stack`], [`fleet`], [`direct`], [`empty`], [`wire`], [`caller`]: the things being measured
//!   and their baselines (an in-process service, many stream subscribers, a direct `ibapi`
//!   connection, an empty-handler server, a raw TWS text client, a non-decoding unary client).
//!
//! Every load loop is bounded in count and in time. A missed performance goal is reported, never
//! an error; only a functional failure (wrong data, no convergence, a client that fails) is.

pub mod binaries;
pub mod caller;
pub mod child;
pub mod cli;
pub mod direct;
pub mod empty;
pub mod fleet;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod stats;
pub mod wire;

pub use cli::{Cli, Command};
pub use scenario::run;

/// The account and contract every scenario changes: AAPL in the first paper account, the first
/// position of the simulator's built-in scenario.
pub const TARGET_ACCOUNT: &str = "DU1234567";
/// See [`TARGET_ACCOUNT`].
pub const TARGET_CON_ID: i32 = 265598;

/// Why a benchmark could not produce its figures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The benchmark could not be set up (a binary is missing, a port or process failed).
    #[error("setup failed: {0}")]
    Setup(String),
    /// The system under test misbehaved: wrong data, no convergence, a failing client.
    #[error("functional failure: {0}")]
    Functional(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A setup error from anything printable.
    pub fn setup(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Setup(format!("{what}: {e}"))
    }

    /// A functional failure from anything printable.
    pub fn functional(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Functional(format!("{what}: {e}"))
    }
}
