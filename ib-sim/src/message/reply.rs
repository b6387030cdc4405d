//! Replies: what the simulator sends, encoded for the connection's codec.

use prost::Message as _;

use super::PROTO_OFFSET;
use crate::frame::Codec;
use crate::pb;
use crate::scenario::Position;

/// Server → client message ids.
mod in_id {
    pub(super) const ERROR: u32 = 4;
    pub(super) const ACCOUNT_VALUE: u32 = 6;
    pub(super) const PORTFOLIO_VALUE: u32 = 7;
    pub(super) const ACCOUNT_UPDATE_TIME: u32 = 8;
    pub(super) const NEXT_VALID_ID: u32 = 9;
    pub(super) const MANAGED_ACCOUNTS: u32 = 15;
    pub(super) const CURRENT_TIME: u32 = 49;
    pub(super) const OPEN_ORDER_END: u32 = 53;
    pub(super) const ACCOUNT_DOWNLOAD_END: u32 = 54;
    pub(super) const EXECUTION_DATA_END: u32 = 55;
    pub(super) const POSITION: u32 = 61;
    pub(super) const POSITION_END: u32 = 62;
    pub(super) const ACCOUNT_SUMMARY: u32 = 63;
    pub(super) const ACCOUNT_SUMMARY_END: u32 = 64;
    pub(super) const ACCOUNT_UPDATE_MULTI_END: u32 = 74;
    pub(super) const PNL: u32 = 94;
    pub(super) const PNL_SINGLE: u32 = 95;
    pub(super) const COMPLETED_ORDERS_END: u32 = 102;
    pub(super) const CURRENT_TIME_MILLIS: u32 = 109;
}

/// A message the simulator sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<'a> {
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
        message: &'a str,
    },
    /// position.
    Position(&'a Position),
    /// positionEnd.
    PositionEnd,
    /// accountSummary row.
    AccountSummary {
        /// Request id.
        req_id: i32,
        /// Account code.
        account: &'a str,
        /// Tag.
        tag: &'a str,
        /// Value.
        value: &'a str,
        /// Currency.
        currency: &'a str,
    },
    /// accountSummaryEnd.
    AccountSummaryEnd {
        /// Request id.
        req_id: i32,
    },
    /// updateAccountValue.
    AccountValue {
        /// Key (tag).
        key: &'a str,
        /// Value.
        value: &'a str,
        /// Currency.
        currency: &'a str,
        /// Account code.
        account: &'a str,
    },
    /// updatePortfolio.
    Portfolio(&'a Position),
    /// updateAccountTime (`HH:MM`).
    AccountUpdateTime(String),
    /// accountDownloadEnd.
    AccountDownloadEnd(&'a str),
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
        position: &'a str,
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
    /// accountUpdateMultiEnd.
    AccountUpdateMultiEnd {
        /// Request id.
        req_id: i32,
    },
    /// completedOrdersEnd.
    CompletedOrdersEnd,
}

/// Encodes a reply as a frame body (without the length prefix) for a connection.
pub fn encode_reply(reply: &Reply<'_>, codec: Codec, version: u32) -> Vec<u8> {
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

fn encode_text(reply: &Reply<'_>, version: u32) -> Vec<u8> {
    use in_id::*;
    let f: Vec<String> = match reply {
        Reply::ManagedAccounts(list) => vec![MANAGED_ACCOUNTS.to_string(), "1".into(), list.clone()],
        Reply::NextValidId(id) => vec![NEXT_VALID_ID.to_string(), "1".into(), id.to_string()],
        Reply::Error { id, code, message } => {
            if version >= 194 {
                vec![
                    ERROR.to_string(),
                    id.to_string(),
                    code.to_string(),
                    (*message).into(),
                    String::new(),
                    now_millis().to_string(),
                ]
            } else {
                let mut v = vec![ERROR.to_string(), "2".into(), id.to_string(), code.to_string(), (*message).into()];
                if version >= 166 {
                    v.push(String::new());
                }
                v
            }
        }
        Reply::Position(p) => {
            let mut v = vec![POSITION.to_string(), "3".into(), p.account.clone()];
            v.extend(text_contract(p, &p.exchange));
            v.extend([p.quantity.clone(), num(p.avg_cost)]);
            v
        }
        Reply::PositionEnd => vec![POSITION_END.to_string(), "1".into()],
        Reply::AccountSummary { req_id, account, tag, value, currency } => vec![
            ACCOUNT_SUMMARY.to_string(),
            "1".into(),
            req_id.to_string(),
            (*account).into(),
            (*tag).into(),
            (*value).into(),
            (*currency).into(),
        ],
        Reply::AccountSummaryEnd { req_id } => vec![ACCOUNT_SUMMARY_END.to_string(), "1".into(), req_id.to_string()],
        Reply::AccountValue { key, value, currency, account } => vec![
            ACCOUNT_VALUE.to_string(),
            "2".into(),
            (*key).into(),
            (*value).into(),
            (*currency).into(),
            (*account).into(),
        ],
        Reply::Portfolio(p) => {
            let mut v = vec![PORTFOLIO_VALUE.to_string(), "8".into()];
            // Portfolio rows carry the primary exchange where positions carry the routing one.
            v.extend(text_contract(p, &p.primary_exchange));
            v.extend([
                p.quantity.clone(),
                num(p.market_price),
                num(p.market_value()),
                num(p.avg_cost),
                num(p.unrealized_pnl()),
                "0".into(),
                p.account.clone(),
            ]);
            v
        }
        Reply::AccountUpdateTime(t) => vec![ACCOUNT_UPDATE_TIME.to_string(), "1".into(), t.clone()],
        Reply::AccountDownloadEnd(a) => vec![ACCOUNT_DOWNLOAD_END.to_string(), "1".into(), (*a).into()],
        Reply::Pnl { req_id, daily, unrealized, realized } => {
            let mut v = vec![PNL.to_string(), req_id.to_string(), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v
        }
        Reply::PnlSingle { req_id, position, daily, unrealized, realized, value } => {
            let mut v = vec![PNL_SINGLE.to_string(), req_id.to_string(), (*position).into(), num(*daily)];
            if version >= 129 {
                v.push(num(*unrealized));
            }
            if version >= 135 {
                v.push(num(*realized));
            }
            v.push(num(*value));
            v
        }
        Reply::CurrentTime(s) => vec![CURRENT_TIME.to_string(), "1".into(), s.to_string()],
        Reply::CurrentTimeMillis(ms) => vec![CURRENT_TIME_MILLIS.to_string(), ms.to_string()],
        Reply::OpenOrderEnd => vec![OPEN_ORDER_END.to_string(), "1".into()],
        Reply::ExecutionDataEnd { req_id } => vec![EXECUTION_DATA_END.to_string(), "1".into(), req_id.to_string()],
        Reply::AccountUpdateMultiEnd { req_id } => {
            vec![ACCOUNT_UPDATE_MULTI_END.to_string(), "1".into(), req_id.to_string()]
        }
        Reply::CompletedOrdersEnd => vec![COMPLETED_ORDERS_END.to_string()],
    };
    let mut out = Vec::with_capacity(f.iter().map(|s| s.len() + 1).sum());
    for field in f {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    out
}

fn text_contract(p: &Position, exchange: &str) -> [String; 11] {
    let or_symbol = |s: &str| if s.is_empty() { p.symbol.clone() } else { s.to_owned() };
    [
        p.con_id.to_string(),
        p.symbol.clone(),
        p.sec_type.clone(),
        p.expiry.clone(),
        num(p.strike),
        p.right.clone(),
        if p.multiplier > 0.0 { num(p.multiplier) } else { String::new() },
        exchange.to_owned(),
        p.currency.clone(),
        or_symbol(&p.local_symbol),
        or_symbol(&p.trading_class),
    ]
}

fn proto_contract(p: &Position, exchange: &str) -> pb::Contract {
    let or_symbol = |s: &str| if s.is_empty() { p.symbol.clone() } else { s.to_owned() };
    pb::Contract {
        con_id: Some(p.con_id),
        symbol: Some(p.symbol.clone()),
        sec_type: Some(p.sec_type.clone()),
        last_trade_date_or_contract_month: (!p.expiry.is_empty()).then(|| p.expiry.clone()),
        strike: Some(p.strike),
        right: (!p.right.is_empty()).then(|| p.right.clone()),
        multiplier: (p.multiplier > 0.0).then_some(p.multiplier),
        exchange: Some(exchange.to_owned()),
        primary_exch: (!p.primary_exchange.is_empty()).then(|| p.primary_exchange.clone()),
        currency: Some(p.currency.clone()),
        local_symbol: Some(or_symbol(&p.local_symbol)),
        trading_class: Some(or_symbol(&p.trading_class)),
    }
}

fn encode_proto(reply: &Reply<'_>, now_ms: i64) -> Vec<u8> {
    use in_id::*;
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
                contract: Some(proto_contract(p, &p.exchange)),
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
                contract: Some(proto_contract(p, &p.primary_exchange)),
                position: s(&p.quantity),
                market_price: Some(p.market_price),
                market_value: Some(p.market_value()),
                average_cost: Some(p.avg_cost),
                unrealized_pnl: Some(p.unrealized_pnl()),
                realized_pnl: Some(0.0),
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
        Reply::AccountUpdateMultiEnd { req_id } => {
            (ACCOUNT_UPDATE_MULTI_END, pb::ReqIdOnly { req_id: Some(*req_id) }.encode_to_vec())
        }
        Reply::CompletedOrdersEnd => (COMPLETED_ORDERS_END, Vec::new()),
    };
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(id + PROTO_OFFSET).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_replies_have_the_field_counts_clients_unpack() {
        let s = crate::scenario::Scenario::default();
        let p = &s.positions[0];
        let count = |r: Reply<'_>, v| encode_text(&r, v).iter().filter(|b| **b == 0).count();
        assert_eq!(count(Reply::Position(p), 178), 16);
        assert_eq!(count(Reply::Portfolio(p), 178), 20);
        assert_eq!(count(Reply::ManagedAccounts("A,B".into()), 178), 3);
        assert_eq!(count(Reply::NextValidId(1), 178), 3);
        assert_eq!(count(Reply::Error { id: -1, code: 2104, message: "ok" }, 178), 6);
        assert_eq!(count(Reply::Error { id: -1, code: 2104, message: "ok" }, 160), 5);
        let single =
            || Reply::PnlSingle { req_id: 1, position: "10", daily: 1.5, unrealized: 2.0, realized: 0.0, value: 9.0 };
        assert_eq!(count(single(), 178), 7, "ib_async unpacks reqId, pos, daily, unrealized, realized, value");
        assert_eq!(count(single(), 130), 6, "realized only from 135");
        assert_eq!(count(Reply::Pnl { req_id: 1, daily: 1.0, unrealized: 2.0, realized: 3.0 }, 178), 5);
    }

    #[test]
    fn protobuf_replies_carry_the_shifted_id_and_presence() {
        let body = encode_proto(&Reply::NextValidId(0), 0);
        assert_eq!(&body[..4], &(209u32).to_be_bytes());
        let decoded = pb::NextValidId::decode(&body[4..]).ok();
        assert_eq!(decoded.and_then(|m| m.order_id), Some(0), "orderId must be present even when 0");
        assert_eq!(encode_proto(&Reply::PositionEnd, 0), 262u32.to_be_bytes().to_vec());
        let single =
            Reply::PnlSingle { req_id: 7, position: "0", daily: 0.0, unrealized: 0.0, realized: 0.0, value: 0.0 };
        let body = encode_proto(&single, 0);
        assert_eq!(&body[..4], &(295u32).to_be_bytes());
        let decoded = pb::PnLSingle::decode(&body[4..]).ok();
        assert_eq!(decoded.as_ref().and_then(|m| m.position.as_deref()), Some("0"), "ibapi requires the position");
        assert_eq!(decoded.and_then(|m| m.value), Some(0.0), "zeros are present, not unset");
    }
}
