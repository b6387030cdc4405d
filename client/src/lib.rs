//! `ibgw-client`: the one client library of gateway-svc.
//!
//! - [`channel`]: a [`Client`] with timeouts and the bearer token ([`connect`], [`connect_tls`],
//!   [`connect_lazy`]) and [`source_chain`] for one-line errors.

pub mod channel;

pub use channel::{
    Bearer, Client, ConnectError, DEFAULT_ADDR, connect, connect_lazy, connect_tls, endpoint, source_chain,
};
