//! Client requests: decoded from a client's frames (the gateway side, both codecs) and encoded
//! as a client sends them (the text codec, for raw test and benchmark clients).

use crate::frame::Codec;
use crate::ids::{self, IdField, PROTOBUF_OFFSET, request as id};
use crate::pb;

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
        /// Account code; empty or `All` for every account.
        account: String,
    },
    /// cancelAccountUpdatesMulti.
    CancelAccountUpdatesMulti {
        /// Request id.
        req_id: i32,
    },
    /// placeOrder, cancelOrder, reqGlobalCancel or exerciseOptions: refused by a read-only
    /// gateway, for the id they carry.
    OrderClass {
        /// Plain message id.
        msg_id: u32,
        /// The order or request id (−1 for reqGlobalCancel).
        id: i32,
    },
    /// Anything else: a known request this crate does not decode further, or an unknown id.
    Unsupported {
        /// Plain message id.
        msg_id: u32,
        /// The request id it carries, −1 when none.
        id: i32,
    },
}

impl Request {
    /// Short name for statistics and logs.
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
            Request::CancelAccountUpdatesMulti { .. } => "cancel_account_updates_multi".into(),
            Request::OrderClass { msg_id, .. } => format!("order_class_{msg_id}"),
            // Bounded: an id nobody assigned is one name, whatever number a client sends.
            Request::Unsupported { msg_id, .. } if ids::describe(*msg_id).is_some() => format!("unsupported_{msg_id}"),
            Request::Unsupported { .. } => "unsupported_unknown".into(),
        }
    }

    /// The API's own name for an order-class or unsupported request (`reqMktData`), or
    /// `message N` for an id nobody assigned.
    pub fn api_name(msg_id: u32) -> String {
        ids::describe(msg_id).map_or_else(|| format!("message {msg_id}"), |(name, _)| name.to_owned())
    }

    /// Encodes this request as a client does in the text codec at `version`: the frame body,
    /// without the length prefix. Raw clients in tests and benchmarks use this, so that field
    /// orders exist once.
    pub fn encode_text(&self, version: u32) -> Vec<u8> {
        let s = |v: &dyn ToString| v.to_string();
        let f: Vec<String> = match self {
            Request::StartApi { client_id } => vec![s(&id::START_API), "2".into(), s(client_id), String::new()],
            Request::ManagedAccounts => vec![s(&id::REQ_MANAGED_ACCTS), "1".into()],
            Request::Ids => vec![s(&id::REQ_IDS), "1".into(), "1".into()],
            Request::CurrentTime => vec![s(&id::REQ_CURRENT_TIME), "1".into()],
            Request::CurrentTimeMillis => vec![s(&id::REQ_CURRENT_TIME_MILLIS)],
            Request::Positions => vec![s(&id::REQ_POSITIONS), "1".into()],
            Request::CancelPositions => vec![s(&id::CANCEL_POSITIONS), "1".into()],
            Request::AccountSummary { req_id, group, tags } => {
                vec![s(&id::REQ_ACCOUNT_SUMMARY), "1".into(), s(req_id), group.clone(), tags.join(",")]
            }
            Request::CancelAccountSummary { req_id } => vec![s(&id::CANCEL_ACCOUNT_SUMMARY), "1".into(), s(req_id)],
            Request::AccountUpdates { subscribe, account } => {
                vec![s(&id::REQ_ACCOUNT_DATA), "2".into(), s(&u8::from(*subscribe)), account.clone()]
            }
            Request::Pnl { req_id, account } => vec![s(&id::REQ_PNL), s(req_id), account.clone(), String::new()],
            Request::CancelPnl { req_id } => vec![s(&id::CANCEL_PNL), s(req_id)],
            Request::PnlSingle { req_id, account, con_id } => {
                vec![s(&id::REQ_PNL_SINGLE), s(req_id), account.clone(), String::new(), s(con_id)]
            }
            Request::CancelPnlSingle { req_id } => vec![s(&id::CANCEL_PNL_SINGLE), s(req_id)],
            Request::OpenOrders => vec![s(&id::REQ_OPEN_ORDERS), "1".into()],
            Request::AutoOpenOrders => vec![s(&id::REQ_AUTO_OPEN_ORDERS), "1".into(), "1".into()],
            Request::CompletedOrders => vec![s(&id::REQ_COMPLETED_ORDERS), "0".into()],
            Request::Executions { req_id } => vec![s(&id::REQ_EXECUTIONS), "3".into(), s(req_id)],
            Request::AccountUpdatesMulti { req_id, account } => vec![
                s(&id::REQ_ACCOUNT_UPDATES_MULTI),
                "1".into(),
                s(req_id),
                account.clone(),
                String::new(),
                "1".into(),
            ],
            Request::CancelAccountUpdatesMulti { req_id } => {
                vec![s(&id::CANCEL_ACCOUNT_UPDATES_MULTI), "1".into(), s(req_id)]
            }
            // Only the fields up to the id: what the gateway side reads of a request it refuses.
            Request::OrderClass { msg_id, id } | Request::Unsupported { msg_id, id } => {
                let at = ids::describe(*msg_id).and_then(|(_, at)| at.index(version));
                let mut v = vec![s(msg_id)];
                if let Some(i) = at {
                    v.extend(std::iter::repeat_n("1".to_owned(), i));
                    v.push(s(id));
                } else {
                    v.push("1".into());
                }
                v
            }
        };
        crate::text::join(&f)
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
    /// The frame has more fields than any request (see [`crate::text::MAX_REQUEST_FIELDS`]).
    #[error("frame has more than {max} fields")]
    TooManyFields {
        /// The most a request may have.
        max: usize,
    },
    /// The protobuf payload does not decode.
    #[error("message {msg_id}: invalid protobuf payload")]
    Protobuf {
        /// Plain message id.
        msg_id: u32,
    },
}

/// Decodes one client frame body under the connection's codec and negotiated version.
pub fn decode_request(body: &[u8], codec: Codec, version: u32) -> Result<Request, DecodeError> {
    match codec {
        Codec::Text => {
            let fields = split(body)?;
            let msg_id = fields.first().and_then(|f| f.parse().ok()).ok_or(DecodeError::NoId)?;
            decode_text(msg_id, &fields[1..], version)
        }
        Codec::Protobuf => {
            let id_bytes: [u8; 4] = body.get(..4).and_then(|b| b.try_into().ok()).ok_or(DecodeError::NoId)?;
            let msg_id = u32::from_be_bytes(id_bytes);
            let payload = &body[4..];
            if msg_id > PROTOBUF_OFFSET {
                decode_proto(msg_id - PROTOBUF_OFFSET, payload)
            } else {
                decode_text(msg_id, &split(payload)?, version)
            }
        }
    }
}

/// A request's text fields, refusing a frame with more than any request has before splitting it.
fn split(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    let max = crate::text::MAX_REQUEST_FIELDS;
    crate::text::split_at_most(body, max).ok_or(DecodeError::TooManyFields { max })
}

/// Text requests: `f` holds the fields after the message id.
fn decode_text(msg_id: u32, f: &[String], version: u32) -> Result<Request, DecodeError> {
    use id::*;
    let field = |i: usize, name: &'static str| -> Result<&str, DecodeError> {
        f.get(i).map(String::as_str).ok_or(DecodeError::Field { msg_id, field: name })
    };
    let int = |i: usize, name: &'static str| -> Result<i32, DecodeError> {
        field(i, name)?.parse().map_err(|_| DecodeError::Field { msg_id, field: name })
    };
    // The id of a request we refuse: where the official client puts it at this version.
    let refused_id = || -> Result<i32, DecodeError> {
        match ids::describe(msg_id).and_then(|(_, at)| at.index(version)) {
            Some(i) => int(i, "id"),
            None => Ok(-1),
        }
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
        // version, reqId, account, modelCode, ledgerAndNLV.
        REQ_ACCOUNT_UPDATES_MULTI => {
            Request::AccountUpdatesMulti { req_id: int(1, "reqId")?, account: f.get(2).cloned().unwrap_or_default() }
        }
        CANCEL_ACCOUNT_UPDATES_MULTI => Request::CancelAccountUpdatesMulti { req_id: int(1, "reqId")? },
        PLACE_ORDER | CANCEL_ORDER | REQ_GLOBAL_CANCEL | EXERCISE_OPTIONS => {
            Request::OrderClass { msg_id, id: refused_id()? }
        }
        other => Request::Unsupported { msg_id: other, id: refused_id()? },
    })
}

fn decode_proto(msg_id: u32, payload: &[u8]) -> Result<Request, DecodeError> {
    use id::*;
    fn parse<M: prost::Message + Default>(msg_id: u32, payload: &[u8]) -> Result<M, DecodeError> {
        M::decode(payload).map_err(|_| DecodeError::Protobuf { msg_id })
    }
    let req_id = |m: pb::ReqIdOnly| m.req_id.unwrap_or_default();
    // Protobuf requests that carry an id carry it as field 1 (reqId or orderId).
    let refused_id = || -> Result<i32, DecodeError> {
        match ids::describe(msg_id) {
            Some((_, IdField::None)) | None => Ok(-1),
            Some(_) => Ok(parse::<pb::ReqIdOnly>(msg_id, payload)?.req_id.unwrap_or(-1)),
        }
    };
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
        // ExecutionRequest carries reqId as field 1; the other fields are skipped as unknown.
        REQ_EXECUTIONS => Request::Executions { req_id: req_id(parse(msg_id, payload)?) },
        REQ_ACCOUNT_UPDATES_MULTI => {
            let m: pb::AccountUpdatesMultiRequest = parse(msg_id, payload)?;
            Request::AccountUpdatesMulti {
                req_id: m.req_id.unwrap_or_default(),
                account: m.account.unwrap_or_default(),
            }
        }
        CANCEL_ACCOUNT_UPDATES_MULTI => Request::CancelAccountUpdatesMulti { req_id: req_id(parse(msg_id, payload)?) },
        PLACE_ORDER | CANCEL_ORDER | REQ_GLOBAL_CANCEL | EXERCISE_OPTIONS => {
            Request::OrderClass { msg_id, id: refused_id()? }
        }
        other => Request::Unsupported { msg_id: other, id: refused_id()? },
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
        let d = |f: &[&str]| decode_request(&text(f), Codec::Text, 178);
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
        assert_eq!(d(&["62", "1"]), Err(DecodeError::Field { msg_id: 62, field: "reqId" }));
        assert_eq!(d(&["x"]), Err(DecodeError::NoId));
        assert_eq!(d(&["999"]), Ok(Request::Unsupported { msg_id: 999, id: -1 }));
        assert_eq!(
            d(&["76", "1", "3", "DU1", "", "1"]),
            Ok(Request::AccountUpdatesMulti { req_id: 3, account: "DU1".into() })
        );
    }

    #[test]
    fn a_frame_with_more_fields_than_any_request_is_refused_before_it_is_split() {
        // reqCurrentTime followed by a megabyte of NULs: a million empty fields.
        let mut body = text(&["49", "1"]);
        body.resize(1 << 20, 0);
        for codec in [Codec::Text, Codec::Protobuf] {
            let framed = if codec == Codec::Text { body.clone() } else { [&[0, 0, 0, 49][..], &body[3..]].concat() };
            assert_eq!(
                decode_request(&framed, codec, 178),
                Err(DecodeError::TooManyFields { max: crate::text::MAX_REQUEST_FIELDS }),
                "{codec:?}"
            );
        }
        // As many fields as the cap allows still decode.
        let mut most = text(&["49", "1"]);
        most.resize(most.len() + crate::text::MAX_REQUEST_FIELDS - 2, 0);
        assert_eq!(decode_request(&most, Codec::Text, 178), Ok(Request::CurrentTime));
    }

    #[test]
    fn refused_requests_keep_their_id() {
        let d = |f: &[&str], v| decode_request(&text(f), Codec::Text, v);
        // placeOrder at 178: orderId right after the message id.
        assert_eq!(d(&["3", "17", "0", "AAPL"], 178), Ok(Request::OrderClass { msg_id: 3, id: 17 }));
        // cancelOrder as ib_async sends it at 178: version 1, then the order id.
        assert_eq!(d(&["4", "1", "17", ""], 178), Ok(Request::OrderClass { msg_id: 4, id: 17 }));
        assert_eq!(d(&["4", "17", ""], 200), Ok(Request::OrderClass { msg_id: 4, id: 17 }));
        assert_eq!(d(&["58", "1"], 178), Ok(Request::OrderClass { msg_id: 58, id: -1 }));
        assert_eq!(d(&["21", "2", "8", "0"], 178), Ok(Request::OrderClass { msg_id: 21, id: 8 }));
        assert_eq!(d(&["1", "11", "42", "0"], 178), Ok(Request::Unsupported { msg_id: 1, id: 42 }));
        assert_eq!(d(&["20", "43", "0"], 178), Ok(Request::Unsupported { msg_id: 20, id: 43 }));
        assert_eq!(d(&["59", "1", "3"], 178), Ok(Request::Unsupported { msg_id: 59, id: -1 }));
        assert_eq!(Request::api_name(20), "reqHistoricalData");
        assert_eq!(Request::Unsupported { msg_id: 20, id: 1 }.name(), "unsupported_20");
        assert_eq!(Request::Unsupported { msg_id: 123_456, id: -1 }.name(), "unsupported_unknown");
        assert_eq!(Request::api_name(999), "message 999");
    }

    #[test]
    fn decodes_protobuf_requests_as_ibapi_sends_them() {
        let d = |b: &[u8]| decode_request(b, Codec::Protobuf, 226);
        // Bytes observed from the Rust client: START_API for client id 21, then reqPositions.
        assert_eq!(d(&[0, 0, 1, 0x0f, 0x08, 0x15]), Ok(Request::StartApi { client_id: 21 }));
        assert_eq!(d(&[0, 0, 1, 0x05]), Ok(Request::Positions));
        assert_eq!(d(&[0, 0, 1, 0x06, 0xff]), Err(DecodeError::Protobuf { msg_id: 62 }));
        // A binary id at or below 200 carries text fields (the official client's REQ_* below
        // their protobuf threshold).
        assert_eq!(d(&[0, 0, 0, 17, b'1', 0]), Ok(Request::ManagedAccounts));
        // PlaceOrderRequest { orderId: 5 }.
        assert_eq!(d(&[0, 0, 0, 203, 0x08, 0x05]), Ok(Request::OrderClass { msg_id: 3, id: 5 }));
        assert_eq!(d(&[0, 0, 1, 0x02]), Ok(Request::OrderClass { msg_id: 58, id: -1 }));
    }

    #[test]
    fn text_encoding_round_trips() {
        let all = [
            Request::StartApi { client_id: 3 },
            Request::ManagedAccounts,
            Request::Ids,
            Request::CurrentTime,
            Request::CurrentTimeMillis,
            Request::Positions,
            Request::CancelPositions,
            Request::AccountSummary { req_id: 2, group: "All".into(), tags: vec!["A".into(), "$LEDGER".into()] },
            Request::CancelAccountSummary { req_id: 2 },
            Request::AccountUpdates { subscribe: true, account: "DU1".into() },
            Request::Pnl { req_id: 4, account: "DU1".into() },
            Request::CancelPnl { req_id: 4 },
            Request::PnlSingle { req_id: 5, account: "DU1".into(), con_id: 8 },
            Request::CancelPnlSingle { req_id: 5 },
            Request::OpenOrders,
            Request::AutoOpenOrders,
            Request::CompletedOrders,
            Request::Executions { req_id: 6 },
            Request::AccountUpdatesMulti { req_id: 7, account: "DU1".into() },
            Request::CancelAccountUpdatesMulti { req_id: 7 },
            Request::OrderClass { msg_id: 3, id: 11 },
            Request::OrderClass { msg_id: 4, id: 12 },
            Request::OrderClass { msg_id: 58, id: -1 },
            Request::Unsupported { msg_id: 1, id: 13 },
            Request::Unsupported { msg_id: 20, id: 14 },
        ];
        for v in [178, 200] {
            for r in &all {
                assert_eq!(decode_request(&r.encode_text(v), Codec::Text, v).as_ref(), Ok(r), "at {v}");
            }
        }
    }
}
