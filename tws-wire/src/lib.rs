//! `tws-wire`: the gateway side of the TWS API socket protocol, in one place.
//!
//! - [`frame`]: the `API\0` greeting, version negotiation (from 100; text codec ≤ 200, protobuf ≥ 213)
//!   and length-prefixed frames; [`handshake`]: a connection's opening, without I/O.
//! - [`ids`]: message ids in both directions and the names of requests nobody here decodes.
//! - [`request`]: client requests, decoded in both codecs (and encoded as a text client sends
//!   them, for raw test clients).
//! - [`reply`]: what a gateway sends, encoded in both codecs (and decoded from text).
//! - [`account_summary`]: what an account-summary tag list selects.
//! - [`text`]: the text codec's fields; [`notice`]: the codes and texts of errors and notices.
//!
//! The simulator (`ib-sim`), gateway-svc's TWS front door, the tests and the benchmarks all use
//! this crate; no other copy of a message id or a field order exists in the workspace.

pub mod account_summary;
pub mod frame;
pub mod handshake;
pub mod ids;
pub mod notice;
mod pb;
pub mod reply;
pub mod request;
pub mod text;

pub use frame::{Codec, FrameError, VersionRange};
pub use reply::{Contract, PortfolioMsg, PositionMsg, Reply, ReplyError, encode_reply};
pub use request::{DecodeError, Request, decode_request};
