//! `ibgw-client`: the one client library of gateway-svc.
//!
//! - [`channel`]: a [`Client`] with timeouts and the bearer token ([`connect`], [`connect_tls`],
//!   [`connect_lazy`]) and [`source_chain`] for one-line errors.
//! - [`kind`]: the data kinds gateway-svc streams, one [`Kind`] impl each ([`Positions`],
//!   [`Summary`], [`AccountPnl`], [`PositionPnl`], [`Health`]). Accounts are not streamed.
//! - [`view`]: the pure fold of one stream into a keyed [`View`]: SNAPSHOT, DELTA, RESYNC and
//!   FRESHNESS applied as the API documents them, a seq gap or an epoch change without RESYNC
//!   refused as a [`Gap`], never applied.
//! - [`follow`]: a [`Follower`] that opens a stream, folds it into its view and, when the stream
//!   or the service goes away or skips, opens it again after a jittered exponential backoff.
//!   [`Follower::next`] returns each [`Event`] in order.

pub mod channel;
pub mod follow;
pub mod kind;
pub mod view;

pub use channel::{Bearer, Client, ConnectError, DEFAULT_ADDR, connect, connect_lazy, connect_tls, endpoint};
pub use follow::{Cause, Connect, Event, Follower, Lost, Options};
/// One-line errors, as every ibgw binary prints them (from `ibgw-kit`).
pub use ibgw_kit::source_chain;
pub use kind::{AccountPnl, Health, Kind, PositionPnl, Positions, Summary};
pub use view::{Freshness, FreshnessState, Gap, Stamps, Update, UpdateKind, View};
