//! TWS API messages: requests decoded from client frames and replies encoded for them, in both
//! the text codec (version ≤ 200) and the protobuf codec (version ≥ 213).

use prost::Message as _;

use crate::frame::Codec;
use crate::pb;
use crate::scenario::Position;

/// Client → server message ids (the outgoing namespace of a client).
mod out_id {
    pub(super) const PLACE_ORDER: u32 = 3;
    pub(super) const CANCEL_ORDER: u32 = 4;
    pub(super) const REQ_OPEN_ORDERS: u32 = 5;
    pub(super) const REQ_ACCOUNT_DATA: u32 = 6;
    pub(super) const REQ_EXECUTIONS: u32 = 7;
    pub(super) const REQ_IDS: u32 = 8;
    pub(super) const REQ_AUTO_OPEN_ORDERS: u32 = 15;
    pub(super) const REQ_ALL_OPEN_ORDERS: u32 = 16;
    pub(super) const REQ_MANAGED_ACCTS: u32 = 17;
    pub(super) const EXERCISE_OPTIONS: u32 = 21;
    pub(super) const REQ_CURRENT_TIME: u32 = 49;
    pub(super) const REQ_GLOBAL_CANCEL: u32 = 58;
    pub(super) const REQ_POSITIONS: u32 = 61;
    pub(super) const REQ_ACCOUNT_SUMMARY: u32 = 62;
    pub(super) const CANCEL_ACCOUNT_SUMMARY: u32 = 63;
    pub(super) const CANCEL_POSITIONS: u32 = 64;
    pub(super) const START_API: u32 = 71;
    pub(super) const REQ_ACCOUNT_UPDATES_MULTI: u32 = 76;
    pub(super) const CANCEL_ACCOUNT_UPDATES_MULTI: u32 = 77;
    pub(super) const REQ_PNL: u32 = 92;
    pub(super) const CANCEL_PNL: u32 = 93;
    pub(super) const REQ_COMPLETED_ORDERS: u32 = 99;
    pub(super) const REQ_CURRENT_TIME_MILLIS: u32 = 105;
}

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
    pub(super) const COMPLETED_ORDERS_END: u32 = 102;
    pub(super) const CURRENT_TIME_MILLIS: u32 = 109;
}

/// Protobuf ids are the plain ids shifted by this much.
const PROTO_OFFSET: u32 = 200;

/// A decoded client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// START_API with the client id.
    StartApi {
        /// Requested client id.
        client_id: i32,
    },
    /// reqManagedAccts.
    ManagedAccounts,
    /// reqIds.
    Ids,
    /// reqCurrentTime.
    CurrentTime,
    /// reqCurrentTimeInMillis.
    CurrentTimeMillis,
    /// reqPositions.
    Positions,
    /// cancelPositions.
    CancelPositions,
    /// reqAccountSummary.
    AccountSummary {
        /// Request id.
        req_id: i32,
        /// Account group (`All`).
        group: String,
        /// Requested tags.
        tags: Vec<String>,
    },
    /// cancelAccountSummary.
    CancelAccountSummary {
        /// Request id.
        req_id: i32,
    },
    /// reqAccountUpdates.
    AccountUpdates {
        /// Start or stop.
        subscribe: bool,
        /// Account code.
        account: String,
    },
    /// reqPnL.
    Pnl {
        /// Request id.
        req_id: i32,
        /// Account code.
        account: String,
    },
    /// cancelPnL.
    CancelPnl {
        /// Request id.
        req_id: i32,
    },
    /// reqOpenOrders / reqAllOpenOrders.
    OpenOrders,
    /// reqAutoOpenOrders (no reply).
    AutoOpenOrders,
    /// reqCompletedOrders.
    CompletedOrders,
    /// reqExecutions.
    Executions {
        /// Request id.
        req_id: i32,
    },
    /// reqAccountUpdatesMulti.
    AccountUpdatesMulti {
        /// Request id.
        req_id: i32,
    },
    /// cancelAccountUpdatesMulti.
    CancelAccountUpdatesMulti,
    /// placeOrder, cancelOrder, reqGlobalCancel or exerciseOptions: counted, then refused.
    OrderClass {
        /// Plain message id.
        msg_id: u32,
    },
    /// Anything else.
    Unknown {
        /// Plain message id.
        msg_id: u32,
    },
}

impl Request {
    /// Short name for statistics.
    pub fn name(&self) -> String {
        match self {
            Request::StartApi { .. } => "start_api".into(),
            Request::ManagedAccounts => "managed_accounts".into(),
            Request::Ids => "ids".into(),
            Request::CurrentTime => "current_time".into(),
            Request::CurrentTimeMillis => "current_time_millis".into(),
            Request::Positions => "positions".into(),
            Request::CancelPositions => "cancel_positions".into(),
            Request::AccountSummary { .. } => "account_summary".into(),
            Request::CancelAccountSummary { .. } => "cancel_account_summary".into(),
            Request::AccountUpdates { .. } => "account_updates".into(),
            Request::Pnl { .. } => "pnl".into(),
            Request::CancelPnl { .. } => "cancel_pnl".into(),
            Request::OpenOrders => "open_orders".into(),
            Request::AutoOpenOrders => "auto_open_orders".into(),
            Request::CompletedOrders => "completed_orders".into(),
            Request::Executions { .. } => "executions".into(),
            Request::AccountUpdatesMulti { .. } => "account_updates_multi".into(),
            Request::CancelAccountUpdatesMulti => "cancel_account_updates_multi".into(),
            Request::OrderClass { msg_id } => format!("order_class_{msg_id}"),
            Request::Unknown { msg_id } => format!("unknown_{msg_id}"),
        }
    }
}

/// Why a request frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is empty or its id is not a number.
    #[error("frame has no message id")]
    NoId,
    /// A field is missing or not a number.
    #[error("message {msg_id}: bad or missing field {field}")]
    Field {
        /// Plain message id.
        msg_id: u32,
        /// Field name.
        field: &'static str,
    },
    /// The protobuf payload does not decode.
    #[error("message {msg_id}: invalid protobuf payload")]
    Protobuf {
        /// Plain message id.
        msg_id: u32,
    },
}

/// Decodes one client frame body under the connection's codec.
pub fn decode_request(body: &[u8], codec: Codec) -> Result<Request, DecodeError> {
    match codec {
        Codec::Text => {
            let fields = split_text(body);
            let msg_id = fields.first().and_then(|f| f.parse().ok()).ok_or(DecodeError::NoId)?;
            decode_text(msg_id, &fields[1..])
        }
        Codec::Protobuf => {
            let id_bytes: [u8; 4] = body.get(..4).and_then(|b| b.try_into().ok()).ok_or(DecodeError::NoId)?;
            let id = u32::from_be_bytes(id_bytes);
            let payload = &body[4..];
            if id > PROTO_OFFSET {
                decode_proto(id - PROTO_OFFSET, payload)
            } else {
                decode_text(id, &split_text(payload))
            }
        }
    }
}

fn split_text(body: &[u8]) -> Vec<String> {
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == 0).map(|f| String::from_utf8_lossy(f).into_owned()).collect()
}

/// Text requests: `f` holds the fields after the message id.
fn decode_text(msg_id: u32, f: &[String]) -> Result<Request, DecodeError> {
    use out_id::*;
    let field = |i: usize, name: &'static str| -> Result<&str, DecodeError> {
        f.get(i).map(String::as_str).ok_or(DecodeError::Field { msg_id, field: name })
    };
    let int = |i: usize, name: &'static str| -> Result<i32, DecodeError> {
        field(i, name)?.parse().map_err(|_| DecodeError::Field { msg_id, field: name })
    };
    Ok(match msg_id {
        START_API => Request::StartApi { client_id: int(1, "clientId")? },
        REQ_MANAGED_ACCTS => Request::ManagedAccounts,
        REQ_IDS => Request::Ids,
        REQ_CURRENT_TIME => Request::CurrentTime,
        REQ_CURRENT_TIME_MILLIS => Request::CurrentTimeMillis,
        REQ_POSITIONS => Request::Positions,
        CANCEL_POSITIONS => Request::CancelPositions,
        REQ_ACCOUNT_SUMMARY => Request::AccountSummary {
            req_id: int(1, "reqId")?,
            group: field(2, "group")?.to_owned(),
            tags: split_tags(field(3, "tags")?),
        },
        CANCEL_ACCOUNT_SUMMARY => Request::CancelAccountSummary { req_id: int(1, "reqId")? },
        REQ_ACCOUNT_DATA => Request::AccountUpdates {
            subscribe: field(1, "subscribe")? == "1",
            account: field(2, "acctCode")?.to_owned(),
        },
        // reqPnL has no version field.
        REQ_PNL => Request::Pnl { req_id: int(0, "reqId")?, account: field(1, "account")?.to_owned() },
        CANCEL_PNL => Request::CancelPnl { req_id: int(0, "reqId")? },
        REQ_OPEN_ORDERS | REQ_ALL_OPEN_ORDERS => Request::OpenOrders,
        REQ_AUTO_OPEN_ORDERS => Request::AutoOpenOrders,
        REQ_COMPLETED_ORDERS => Request::CompletedOrders,
        REQ_EXECUTIONS => Request::Executions { req_id: int(1, "reqId")? },
        REQ_ACCOUNT_UPDATES_MULTI => Request::AccountUpdatesMulti { req_id: int(1, "reqId")? },
        CANCEL_ACCOUNT_UPDATES_MULTI => Request::CancelAccountUpdatesMulti,
        PLACE_ORDER | CANCEL_ORDER | REQ_GLOBAL_CANCEL | EXERCISE_OPTIONS => Request::OrderClass { msg_id },
        other => Request::Unknown { msg_id: other },
    })
}

fn decode_proto(msg_id: u32, payload: &[u8]) -> Result<Request, DecodeError> {
    use out_id::*;
    fn parse<M: prost::Message + Default>(msg_id: u32, payload: &[u8]) -> Result<M, DecodeError> {
        M::decode(payload).map_err(|_| DecodeError::Protobuf { msg_id })
    }
    let req_id = |m: pb::ReqIdOnly| m.req_id.unwrap_or_default();
    Ok(match msg_id {
        START_API => {
            let m: pb::StartApiRequest = parse(msg_id, payload)?;
            Request::StartApi { client_id: m.client_id.unwrap_or_default() }
        }
        REQ_MANAGED_ACCTS => Request::ManagedAccounts,
        REQ_IDS => Request::Ids,
        REQ_CURRENT_TIME => Request::CurrentTime,
        REQ_CURRENT_TIME_MILLIS => Request::CurrentTimeMillis,
        REQ_POSITIONS => Request::Positions,
        CANCEL_POSITIONS => Request::CancelPositions,
        REQ_ACCOUNT_SUMMARY => {
            let m: pb::AccountSummaryRequest = parse(msg_id, payload)?;
            Request::AccountSummary {
                req_id: m.req_id.unwrap_or_default(),
                group: m.group.unwrap_or_default(),
                tags: split_tags(&m.tags.unwrap_or_default()),
            }
        }
        CANCEL_ACCOUNT_SUMMARY => Request::CancelAccountSummary { req_id: req_id(parse(msg_id, payload)?) },
        REQ_ACCOUNT_DATA => {
            let m: pb::AccountDataRequest = parse(msg_id, payload)?;
            Request::AccountUpdates {
                subscribe: m.subscribe.unwrap_or_default(),
                account: m.acct_code.unwrap_or_default(),
            }
        }
        REQ_PNL => {
            let m: pb::PnLRequest = parse(msg_id, payload)?;
            Request::Pnl { req_id: m.req_id.unwrap_or_default(), account: m.account.unwrap_or_default() }
        }
        CANCEL_PNL => Request::CancelPnl { req_id: req_id(parse(msg_id, payload)?) },
        REQ_OPEN_ORDERS | REQ_ALL_OPEN_ORDERS => Request::OpenOrders,
        REQ_AUTO_OPEN_ORDERS => Request::AutoOpenOrders,
        REQ_COMPLETED_ORDERS => Request::CompletedOrders,
        // ExecutionRequest and AccountUpdatesMultiRequest both carry reqId as field 1; the
        // other fields are skipped as unknown by prost.
        REQ_EXECUTIONS => Request::Executions { req_id: req_id(parse(msg_id, payload)?) },
        REQ_ACCOUNT_UPDATES_MULTI => Request::AccountUpdatesMulti { req_id: req_id(parse(msg_id, payload)?) },
        CANCEL_ACCOUNT_UPDATES_MULTI => Request::CancelAccountUpdatesMulti,
        PLACE_ORDER | CANCEL_ORDER | REQ_GLOBAL_CANCEL | EXERCISE_OPTIONS => Request::OrderClass { msg_id },
        other => Request::Unknown { msg_id: other },
    })
}

fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
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

    fn text(fields: &[&str]) -> Vec<u8> {
        fields.iter().flat_map(|f| f.bytes().chain(std::iter::once(0))).collect()
    }

    #[test]
    fn decodes_text_requests_as_ib_async_sends_them() {
        let d = |f: &[&str]| decode_request(&text(f), Codec::Text);
        assert_eq!(d(&["71", "2", "7", ""]), Ok(Request::StartApi { client_id: 7 }));
        assert_eq!(
            d(&["62", "1", "9", "All", "NetLiquidation,BuyingPower"]),
            Ok(Request::AccountSummary {
                req_id: 9,
                group: "All".into(),
                tags: vec!["NetLiquidation".into(), "BuyingPower".into()]
            })
        );
        assert_eq!(d(&["92", "4", "DU1", ""]), Ok(Request::Pnl { req_id: 4, account: "DU1".into() }));
        assert_eq!(d(&["3", "1"]), Ok(Request::OrderClass { msg_id: 3 }));
        assert_eq!(d(&["62", "1"]), Err(DecodeError::Field { msg_id: 62, field: "reqId" }));
        assert_eq!(d(&["x"]), Err(DecodeError::NoId));
        assert_eq!(d(&["999"]), Ok(Request::Unknown { msg_id: 999 }));
    }

    #[test]
    fn decodes_protobuf_requests_as_ibapi_sends_them() {
        // Bytes observed from the Rust client: START_API for client id 21, then reqPositions.
        assert_eq!(
            decode_request(&[0, 0, 1, 0x0f, 0x08, 0x15], Codec::Protobuf),
            Ok(Request::StartApi { client_id: 21 })
        );
        assert_eq!(decode_request(&[0, 0, 1, 0x05], Codec::Protobuf), Ok(Request::Positions));
        assert_eq!(decode_request(&[0, 0, 1, 0x06, 0xff], Codec::Protobuf), Err(DecodeError::Protobuf { msg_id: 62 }));
        // A binary id at or below 200 carries text fields (the official client's REQ_* below
        // their protobuf threshold).
        assert_eq!(decode_request(&[0, 0, 0, 17, b'1', 0], Codec::Protobuf), Ok(Request::ManagedAccounts));
    }

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
    }

    #[test]
    fn protobuf_replies_carry_the_shifted_id_and_presence() {
        let body = encode_proto(&Reply::NextValidId(0), 0);
        assert_eq!(&body[..4], &(209u32).to_be_bytes());
        let decoded = pb::NextValidId::decode(&body[4..]).ok();
        assert_eq!(decoded.and_then(|m| m.order_id), Some(0), "orderId must be present even when 0");
        assert_eq!(encode_proto(&Reply::PositionEnd, 0), 262u32.to_be_bytes().to_vec());
    }
}
