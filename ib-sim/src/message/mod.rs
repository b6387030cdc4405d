//! TWS API messages: requests decoded from client frames and replies encoded for them, in both
//! the text codec (version ≤ 200) and the protobuf codec (version ≥ 213).

use crate::frame::Codec;
use crate::pb;

mod reply;

pub use reply::{Reply, encode_reply};

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
    pub(super) const REQ_PNL_SINGLE: u32 = 94;
    pub(super) const CANCEL_PNL_SINGLE: u32 = 95;
    pub(super) const REQ_COMPLETED_ORDERS: u32 = 99;
    pub(super) const REQ_CURRENT_TIME_MILLIS: u32 = 105;
}

/// Protobuf ids are the plain ids shifted by this much.
pub(crate) const PROTO_OFFSET: u32 = 200;

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
    /// reqPnLSingle.
    PnlSingle {
        /// Request id.
        req_id: i32,
        /// Account code.
        account: String,
        /// IB contract id.
        con_id: i32,
    },
    /// cancelPnLSingle.
    CancelPnlSingle {
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
            Request::PnlSingle { .. } => "pnl_single".into(),
            Request::CancelPnlSingle { .. } => "cancel_pnl_single".into(),
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
        // reqPnLSingle: reqId, account, modelCode, conId (no version field either).
        REQ_PNL_SINGLE => Request::PnlSingle {
            req_id: int(0, "reqId")?,
            account: field(1, "account")?.to_owned(),
            con_id: int(3, "conId")?,
        },
        CANCEL_PNL_SINGLE => Request::CancelPnlSingle { req_id: int(0, "reqId")? },
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
        REQ_PNL_SINGLE => {
            let m: pb::PnLSingleRequest = parse(msg_id, payload)?;
            Request::PnlSingle {
                req_id: m.req_id.unwrap_or_default(),
                account: m.account.unwrap_or_default(),
                con_id: m.con_id.unwrap_or_default(),
            }
        }
        CANCEL_PNL_SINGLE => Request::CancelPnlSingle { req_id: req_id(parse(msg_id, payload)?) },
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
        assert_eq!(
            d(&["94", "5", "DU1", "", "265598"]),
            Ok(Request::PnlSingle { req_id: 5, account: "DU1".into(), con_id: 265598 })
        );
        assert_eq!(d(&["95", "5"]), Ok(Request::CancelPnlSingle { req_id: 5 }));
        assert_eq!(d(&["94", "5", "DU1", ""]), Err(DecodeError::Field { msg_id: 94, field: "conId" }));
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
}
