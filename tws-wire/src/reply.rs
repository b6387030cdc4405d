//! Replies: what a gateway sends, encoded for the connection's codec, and decoded again from the
//! text codec (for raw clients in tests and benchmarks).

use crate::frame::Codec;

mod decode;
mod proto;
mod text;

pub use decode::{ReplyError, decode_text};

/// IB's "no value" for doubles (Java's `Double.MAX_VALUE`), e.g. an unrealized PnL a gateway
/// does not know.
pub const UNSET_DOUBLE: f64 = f64::MAX;

/// The contract fields a position or portfolio row carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contract {
    /// IB contract id.
    pub con_id: i32,
    /// Symbol.
    pub symbol: String,
    /// `STK`, `OPT`, …
    pub sec_type: String,
    /// Expiry or contract month, empty for stocks.
    pub expiry: String,
    /// Strike, 0 when none.
    pub strike: f64,
    /// `C`, `P` or empty.
    pub right: String,
    /// Multiplier, 0 when none.
    pub multiplier: f64,
    /// Routing exchange (position rows).
    pub exchange: String,
    /// Primary exchange (portfolio rows report this one in the exchange slot).
    pub primary_exchange: String,
    /// Currency.
    pub currency: String,
    /// Local symbol.
    pub local_symbol: String,
    /// Trading class.
    pub trading_class: String,
}

/// A `position` message.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionMsg {
    /// Account.
    pub account: String,
    /// Contract.
    pub contract: Contract,
    /// Size, decimal string.
    pub quantity: String,
    /// Average cost.
    pub avg_cost: f64,
}

/// An `updatePortfolio` message.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioMsg {
    /// Contract (its primary exchange is what goes out).
    pub contract: Contract,
    /// Size, decimal string.
    pub quantity: String,
    /// Market price.
    pub market_price: f64,
    /// Market value.
    pub market_value: f64,
    /// Average cost.
    pub avg_cost: f64,
    /// Unrealized PnL.
    pub unrealized: f64,
    /// Realized PnL.
    pub realized: f64,
    /// Account.
    pub account: String,
}

/// A message a gateway sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// managedAccounts.
    ManagedAccounts(String),
    /// nextValidId.
    NextValidId(i32),
    /// error / notice; `id` is −1 for connection-level notices.
    Error {
        /// Request id or −1.
        id: i32,
        /// IB error code.
        code: i32,
        /// Message text.
        message: String,
    },
    /// position.
    Position(Box<PositionMsg>),
    /// positionEnd.
    PositionEnd,
    /// accountSummary row.
    AccountSummary {
        /// Request id.
        req_id: i32,
        /// Account code.
        account: String,
        /// Tag.
        tag: String,
        /// Value.
        value: String,
        /// Currency.
        currency: String,
    },
    /// accountSummaryEnd.
    AccountSummaryEnd {
        /// Request id.
        req_id: i32,
    },
    /// updateAccountValue.
    AccountValue {
        /// Key (tag).
        key: String,
        /// Value.
        value: String,
        /// Currency.
        currency: String,
        /// Account code.
        account: String,
    },
    /// updatePortfolio.
    Portfolio(Box<PortfolioMsg>),
    /// updateAccountTime (`HH:MM`).
    AccountUpdateTime(String),
    /// accountDownloadEnd.
    AccountDownloadEnd(String),
    /// accountUpdateMulti.
    AccountUpdateMulti {
        /// Request id.
        req_id: i32,
        /// Account code.
        account: String,
        /// Key (tag).
        key: String,
        /// Value.
        value: String,
        /// Currency.
        currency: String,
    },
    /// accountUpdateMultiEnd.
    AccountUpdateMultiEnd {
        /// Request id.
        req_id: i32,
    },
    /// pnl.
    Pnl {
        /// Request id.
        req_id: i32,
        /// Daily PnL.
        daily: f64,
        /// Unrealized PnL.
        unrealized: f64,
        /// Realized PnL.
        realized: f64,
    },
    /// pnlSingle.
    PnlSingle {
        /// Request id.
        req_id: i32,
        /// Position size (decimal).
        position: String,
        /// Daily PnL.
        daily: f64,
        /// Unrealized PnL.
        unrealized: f64,
        /// Realized PnL.
        realized: f64,
        /// Market value.
        value: f64,
    },
    /// currentTime (epoch seconds).
    CurrentTime(i64),
    /// currentTimeInMillis.
    CurrentTimeMillis(i64),
    /// openOrderEnd.
    OpenOrderEnd,
    /// execDetailsEnd.
    ExecutionDataEnd {
        /// Request id.
        req_id: i32,
    },
    /// completedOrdersEnd.
    CompletedOrdersEnd,
}

impl Reply {
    /// A notice or error; `id` −1 for the connection.
    pub fn error(id: i32, code: i32, message: impl Into<String>) -> Self {
        Reply::Error { id, code, message: message.into() }
    }
}

/// Encodes a reply as a frame body (without the length prefix) for a connection.
pub fn encode_reply(reply: &Reply, codec: Codec, version: u32) -> Vec<u8> {
    match codec {
        Codec::Text => text::encode(reply, version),
        Codec::Protobuf => proto::encode(reply, now_millis()),
    }
}

fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The contract's local symbol or trading class, the symbol when it has none (as gateways fill
/// them in).
fn or_symbol(c: &Contract, v: &str) -> String {
    if v.is_empty() { c.symbol.clone() } else { v.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn aapl() -> Contract {
        Contract {
            con_id: 265598,
            symbol: "AAPL".into(),
            sec_type: "STK".into(),
            exchange: "SMART".into(),
            primary_exchange: "NASDAQ".into(),
            currency: "USD".into(),
            local_symbol: "AAPL".into(),
            trading_class: "NMS".into(),
            ..Contract::default()
        }
    }
}
