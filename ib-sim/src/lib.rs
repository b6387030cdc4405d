//! `ib-sim`: a wire-faithful IB Gateway / TWS API simulator with scripted data and fault
//! injection.
//!
//! It negotiates versions as a gateway does, speaks the text codec (≤ 200) and the protobuf codec
//! (≥ 213), serves accounts, positions, account summary, account updates, PnL (per account and
//! per position, following prices that can tick or walk) and time with real semantics, enforces
//! client-id uniqueness and the client limit, reports named data farms, and injects the failures
//! real gateways show (restarts, refusals, stalls, half-open links, 1100/1101/1102, farm outages,
//! 326, bad frames).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ib_sim::SimError> {
//! let sim = ib_sim::Sim::start(ib_sim::SimConfig::ephemeral()).await?;
//! println!("API on {}", sim.api_addr());
//! sim.inject(ib_sim::Fault::Restart { down_ms: 500 })?;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod book;
mod connection;
mod control;
pub mod control_client;
mod farm;
mod fault;
mod prices;
mod scenario;
mod sim;
mod stats;
mod summary;
mod wire_rows;

pub use book::{Book, BookEvent};
pub use control_client::ControlClient;
pub use farm::{Farm, FarmKind, FarmState};
pub use fault::Fault;
pub use prices::{AccountPnl, PositionPnl, PriceTick, PriceWalk, ScheduledTick};
pub use scenario::{
    Account, AccountValue, DEFAULT_SCENARIO, LedgerValue, Position, Scenario, ScenarioError, ScheduledFault,
};
pub use sim::{Sim, SimConfig, SimError};
pub use stats::{ClosedConnection, Closer, OpenConnection, Stats};
