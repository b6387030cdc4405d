//! Replies: what a gateway sends, encoded for the connection's codec, and decoded again from the
//! text codec (for raw clients in tests and benchmarks).

use prost::Message as _;

use crate::frame::Codec;
use crate::ids::{PROTOBUF_OFFSET, reply as id};
use crate::pb;

mod decode;

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
        Codec::Text => encode_text(reply, version),
        Codec::Protobuf => encode_proto(reply, now_millis()),
    }
}

fn now_millis() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn num(v: f64) -> String {
    // IB prints doubles without exponent; Rust's Display never uses one for f64.
    format!("{v}")
}

fn encode_text(reply: &Reply, version: u32) -> Vec<u8> {
    use id::*;
    let s = |v: &dyn ToString| v.to_string();
    let f: Vec<String> = match reply {
        Reply::ManagedAccounts(list) => vec![s(&MANAGED_ACCOUNTS), "1".into(), list.clone()],
        Reply::NextValidId(id) => vec![s(&NEXT_VALID_ID), "1".into(), s(id)],
        Reply::Error { id, code, message } => {
            if version >= 194 {
                vec![s(&ERROR), s(id), s(code), message.clone(), String::new(), s(&now_millis())]
            } else {
                let mut v = vec![s(&ERROR), "2".into(), s(id), s(code), message.clone()];
                if version >= 166 {
                    v.push(String::new());
                }
                v
            }
        }
        Reply::Position(p) => {
            let mut v = vec![s(&POSITION), "3".into(), p.account.clone()];
            v.extend(text_contract(&p.contract, &p.contract.exchange));
            v.extend([p.quantity.clone(), num(p.avg_cost)]);
            v
        }
        Reply::PositionEnd => vec![s(&POSITION_END), "1".into()],
        Reply::AccountSummary { req_id, account, tag, value, currency } => vec![
            s(&ACCOUNT_SUMMARY),
            "1".into(),
            s(req_id),
            account.clone(),
            tag.clone(),
            value.clone(),
            currency.clone(),
        ],
        Reply::AccountSummaryEnd { req_id } => vec![s(&ACCOUNT_SUMMARY_END), "1".into(), s(req_id)],
        Reply::AccountValue { key, value, currency, account } => {
            vec![s(&ACCOUNT_VALUE), "2".into(), key.clone(), value.clone(), currency.clone(), account.clone()]
        }
        Reply::Portfolio(p) => {
            let mut v = vec![s(&PORTFOLIO_VALUE), "8".into()];
            // Portfolio rows carry the primary exchange where positions carry the routing one.
            v.extend(text_contract(&p.contract, &p.contract.primary_exchange));
            v.extend([
                p.quantity.clone(),
                num(p.market_price),
                num(p.market_value),
                num(p.avg_cost),
                num(p.unrealized),
                num(p.realized),
                p.account.clone(),
            ]);
            v
        }
        Reply::AccountUpdateTime(t) => vec![s(&ACCOUNT_UPDATE_TIME), "1".into(), t.clone()],
        Reply::AccountDownloadEnd(a) => vec![s(&ACCOUNT_DOWNLOAD_END), "1".into(), a.clone()],
        Reply::AccountUpdateMulti { req_id, account, key, value, currency } => vec![
            s(&ACCOUNT_UPDATE_MULTI),
            "1".into(),
            s(req_id),
            account.clone(),
            String::new(),
            key.clone(),
            value.clone(),
            currency.clone(),
        ],
        Reply::AccountUpdateMultiEnd { req_id } => vec![s(&ACCOUNT_UPDATE_MULTI_END), "1".into(), s(req_id)],
        Reply::Pnl { req_id, daily, unrealized, realized } => {
            let mut v = vec![s(&PNL), s(req_id), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v
        }
        Reply::PnlSingle { req_id, position, daily, unrealized, realized, value } => {
            let mut v = vec![s(&PNL_SINGLE), s(req_id), position.clone(), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v.push(num(*value));
            v
        }
        Reply::CurrentTime(secs) => vec![s(&CURRENT_TIME), "1".into(), s(secs)],
        Reply::CurrentTimeMillis(ms) => vec![s(&CURRENT_TIME_MILLIS), s(ms)],
        Reply::OpenOrderEnd => vec![s(&OPEN_ORDER_END), "1".into()],
        Reply::ExecutionDataEnd { req_id } => vec![s(&EXECUTION_DATA_END), "1".into(), s(req_id)],
        Reply::CompletedOrdersEnd => vec![s(&COMPLETED_ORDERS_END)],
    };
    crate::text::join(&f)
}

fn or_symbol(c: &Contract, v: &str) -> String {
    if v.is_empty() { c.symbol.clone() } else { v.to_owned() }
}

fn text_contract(c: &Contract, exchange: &str) -> [String; 11] {
    [
        c.con_id.to_string(),
        c.symbol.clone(),
        c.sec_type.clone(),
        c.expiry.clone(),
        num(c.strike),
        c.right.clone(),
        if c.multiplier > 0.0 { num(c.multiplier) } else { String::new() },
        exchange.to_owned(),
        c.currency.clone(),
        or_symbol(c, &c.local_symbol),
        or_symbol(c, &c.trading_class),
    ]
}

fn proto_contract(c: &Contract, exchange: &str) -> pb::Contract {
    pb::Contract {
        con_id: Some(c.con_id),
        symbol: Some(c.symbol.clone()),
        sec_type: Some(c.sec_type.clone()),
        last_trade_date_or_contract_month: (!c.expiry.is_empty()).then(|| c.expiry.clone()),
        strike: Some(c.strike),
        right: (!c.right.is_empty()).then(|| c.right.clone()),
        multiplier: (c.multiplier > 0.0).then_some(c.multiplier),
        exchange: Some(exchange.to_owned()),
        primary_exch: (!c.primary_exchange.is_empty()).then(|| c.primary_exchange.clone()),
        currency: Some(c.currency.clone()),
        local_symbol: Some(or_symbol(c, &c.local_symbol)),
        trading_class: Some(or_symbol(c, &c.trading_class)),
    }
}

fn encode_proto(reply: &Reply, now_ms: i64) -> Vec<u8> {
    use id::*;
    let s = |v: &str| Some(v.to_owned());
    let (id, payload) = match reply {
        Reply::ManagedAccounts(list) => {
            (MANAGED_ACCOUNTS, pb::ManagedAccounts { accounts_list: s(list) }.encode_to_vec())
        }
        Reply::NextValidId(id) => (NEXT_VALID_ID, pb::NextValidId { order_id: Some(*id) }.encode_to_vec()),
        Reply::Error { id, code, message } => (
            ERROR,
            pb::ErrorMessage {
                id: Some(*id),
                error_time: Some(now_ms),
                error_code: Some(*code),
                error_msg: s(message),
                advanced_order_reject_json: s(""),
            }
            .encode_to_vec(),
        ),
        Reply::Position(p) => (
            POSITION,
            pb::Position {
                account: s(&p.account),
                contract: Some(proto_contract(&p.contract, &p.contract.exchange)),
                position: s(&p.quantity),
                avg_cost: Some(p.avg_cost),
            }
            .encode_to_vec(),
        ),
        Reply::PositionEnd => (POSITION_END, Vec::new()),
        Reply::AccountSummary { req_id, account, tag, value, currency } => (
            ACCOUNT_SUMMARY,
            pb::AccountSummary {
                req_id: Some(*req_id),
                account: s(account),
                tag: s(tag),
                value: s(value),
                currency: s(currency),
            }
            .encode_to_vec(),
        ),
        Reply::AccountSummaryEnd { req_id } => {
            (ACCOUNT_SUMMARY_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::AccountValue { key, value, currency, account } => (
            ACCOUNT_VALUE,
            pb::AccountValue { key: s(key), value: s(value), currency: s(currency), account_name: s(account) }
                .encode_to_vec(),
        ),
        Reply::Portfolio(p) => (
            PORTFOLIO_VALUE,
            pb::PortfolioValue {
                contract: Some(proto_contract(&p.contract, &p.contract.primary_exchange)),
                position: s(&p.quantity),
                market_price: Some(p.market_price),
                market_value: Some(p.market_value),
                average_cost: Some(p.avg_cost),
                unrealized_pnl: Some(p.unrealized),
                realized_pnl: Some(p.realized),
                account_name: s(&p.account),
            }
            .encode_to_vec(),
        ),
        Reply::AccountUpdateTime(t) => {
            (ACCOUNT_UPDATE_TIME, pb::AccountUpdateTime { time_stamp: s(t) }.encode_to_vec())
        }
        Reply::AccountDownloadEnd(a) => {
            (ACCOUNT_DOWNLOAD_END, pb::AccountDataEnd { account_name: s(a) }.encode_to_vec())
        }
        Reply::AccountUpdateMulti { req_id, account, key, value, currency } => (
            ACCOUNT_UPDATE_MULTI,
            pb::AccountUpdateMulti {
                req_id: Some(*req_id),
                account: s(account),
                model_code: s(""),
                key: s(key),
                value: s(value),
                currency: s(currency),
            }
            .encode_to_vec(),
        ),
        Reply::AccountUpdateMultiEnd { req_id } => {
            (ACCOUNT_UPDATE_MULTI_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::Pnl { req_id, daily, unrealized, realized } => (
            PNL,
            pb::PnL {
                req_id: Some(*req_id),
                daily_pnl: Some(*daily),
                unrealized_pnl: Some(*unrealized),
                realized_pnl: Some(*realized),
            }
            .encode_to_vec(),
        ),
        Reply::PnlSingle { req_id, position, daily, unrealized, realized, value } => (
            PNL_SINGLE,
            pb::PnLSingle {
                req_id: Some(*req_id),
                position: s(position),
                daily_pnl: Some(*daily),
                unrealized_pnl: Some(*unrealized),
                realized_pnl: Some(*realized),
                value: Some(*value),
            }
            .encode_to_vec(),
        ),
        Reply::CurrentTime(secs) => (CURRENT_TIME, pb::Int64Only { value: Some(*secs) }.encode_to_vec()),
        Reply::CurrentTimeMillis(ms) => (CURRENT_TIME_MILLIS, pb::Int64Only { value: Some(*ms) }.encode_to_vec()),
        Reply::OpenOrderEnd => (OPEN_ORDER_END, Vec::new()),
        Reply::ExecutionDataEnd { req_id } => {
            (EXECUTION_DATA_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::CompletedOrdersEnd => (COMPLETED_ORDERS_END, Vec::new()),
    };
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(id + PROTOBUF_OFFSET).to_be_bytes());
    out.extend_from_slice(&payload);
    out
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

    #[test]
    fn text_replies_have_the_field_counts_clients_unpack() {
        let position = Reply::Position(Box::new(PositionMsg {
            account: "DU1".into(),
            contract: aapl(),
            quantity: "100".into(),
            avg_cost: 150.0,
        }));
        let portfolio = Reply::Portfolio(Box::new(PortfolioMsg {
            contract: aapl(),
            quantity: "100".into(),
            market_price: 1.0,
            market_value: 100.0,
            avg_cost: 150.0,
            unrealized: -14_900.0,
            realized: 0.0,
            account: "DU1".into(),
        }));
        let count = |r: &Reply, v| encode_text(r, v).iter().filter(|b| **b == 0).count();
        assert_eq!(count(&position, 178), 16);
        assert_eq!(count(&portfolio, 178), 20);
        assert_eq!(count(&Reply::ManagedAccounts("A,B".into()), 178), 3);
        assert_eq!(count(&Reply::NextValidId(1), 178), 3);
        assert_eq!(count(&Reply::error(-1, 2104, "ok"), 178), 6);
        assert_eq!(count(&Reply::error(-1, 2104, "ok"), 160), 5);
        let single = Reply::PnlSingle {
            req_id: 1,
            position: "10".into(),
            daily: 1.5,
            unrealized: 2.0,
            realized: 0.0,
            value: 9.0,
        };
        assert_eq!(count(&single, 178), 7, "ib_async unpacks reqId, pos, daily, unrealized, realized, value");
        assert_eq!(count(&single, 130), 6, "realized only from 135");
        assert_eq!(count(&Reply::Pnl { req_id: 1, daily: 1.0, unrealized: 2.0, realized: 3.0 }, 178), 5);
        assert_eq!(
            count(
                &Reply::AccountUpdateMulti {
                    req_id: 1,
                    account: "DU1".into(),
                    key: "K".into(),
                    value: "V".into(),
                    currency: "USD".into()
                },
                178
            ),
            8
        );
    }

    #[test]
    fn protobuf_replies_carry_the_shifted_id_and_presence() {
        let body = encode_proto(&Reply::NextValidId(0), 0);
        assert_eq!(&body[..4], &(209u32).to_be_bytes());
        let decoded = pb::NextValidId::decode(&body[4..]).ok();
        assert_eq!(decoded.and_then(|m| m.order_id), Some(0), "orderId must be present even when 0");
        assert_eq!(encode_proto(&Reply::PositionEnd, 0), 262u32.to_be_bytes().to_vec());
        let single = Reply::PnlSingle {
            req_id: 7,
            position: "0".into(),
            daily: 0.0,
            unrealized: 0.0,
            realized: 0.0,
            value: 0.0,
        };
        let body = encode_proto(&single, 0);
        assert_eq!(&body[..4], &(295u32).to_be_bytes());
        let decoded = pb::PnLSingle::decode(&body[4..]).ok();
        assert_eq!(decoded.as_ref().and_then(|m| m.position.as_deref()), Some("0"), "ibapi requires the position");
        assert_eq!(decoded.and_then(|m| m.value), Some(0.0), "zeros are present, not unset");
    }
}
