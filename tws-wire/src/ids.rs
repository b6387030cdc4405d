//! Message ids, both directions, and what the requests this crate does not decode are called.
//!
//! These numbers exist once in the workspace: the simulator, the front door, the tests and the
//! benchmarks all name messages through this module.

/// Client → server ids (the "outgoing" namespace of an API client).
pub mod request {
    #![allow(missing_docs)]
    pub const REQ_MKT_DATA: u32 = 1;
    pub const PLACE_ORDER: u32 = 3;
    pub const CANCEL_ORDER: u32 = 4;
    pub const REQ_OPEN_ORDERS: u32 = 5;
    pub const REQ_ACCOUNT_DATA: u32 = 6;
    pub const REQ_EXECUTIONS: u32 = 7;
    pub const REQ_IDS: u32 = 8;
    pub const REQ_CONTRACT_DATA: u32 = 9;
    pub const REQ_AUTO_OPEN_ORDERS: u32 = 15;
    pub const REQ_ALL_OPEN_ORDERS: u32 = 16;
    pub const REQ_MANAGED_ACCTS: u32 = 17;
    pub const REQ_HISTORICAL_DATA: u32 = 20;
    pub const EXERCISE_OPTIONS: u32 = 21;
    pub const REQ_CURRENT_TIME: u32 = 49;
    pub const REQ_GLOBAL_CANCEL: u32 = 58;
    pub const REQ_MARKET_DATA_TYPE: u32 = 59;
    pub const REQ_POSITIONS: u32 = 61;
    pub const REQ_ACCOUNT_SUMMARY: u32 = 62;
    pub const CANCEL_ACCOUNT_SUMMARY: u32 = 63;
    pub const CANCEL_POSITIONS: u32 = 64;
    pub const START_API: u32 = 71;
    pub const REQ_ACCOUNT_UPDATES_MULTI: u32 = 76;
    pub const CANCEL_ACCOUNT_UPDATES_MULTI: u32 = 77;
    pub const REQ_PNL: u32 = 92;
    pub const CANCEL_PNL: u32 = 93;
    pub const REQ_PNL_SINGLE: u32 = 94;
    pub const CANCEL_PNL_SINGLE: u32 = 95;
    pub const REQ_COMPLETED_ORDERS: u32 = 99;
    pub const REQ_CURRENT_TIME_MILLIS: u32 = 105;
}

/// Server → client ids (the "incoming" namespace of an API client).
pub mod reply {
    #![allow(missing_docs)]
    pub const ERROR: u32 = 4;
    pub const ACCOUNT_VALUE: u32 = 6;
    pub const PORTFOLIO_VALUE: u32 = 7;
    pub const ACCOUNT_UPDATE_TIME: u32 = 8;
    pub const NEXT_VALID_ID: u32 = 9;
    pub const MANAGED_ACCOUNTS: u32 = 15;
    pub const CURRENT_TIME: u32 = 49;
    pub const OPEN_ORDER_END: u32 = 53;
    pub const ACCOUNT_DOWNLOAD_END: u32 = 54;
    pub const EXECUTION_DATA_END: u32 = 55;
    pub const POSITION: u32 = 61;
    pub const POSITION_END: u32 = 62;
    pub const ACCOUNT_SUMMARY: u32 = 63;
    pub const ACCOUNT_SUMMARY_END: u32 = 64;
    pub const ACCOUNT_UPDATE_MULTI: u32 = 73;
    pub const ACCOUNT_UPDATE_MULTI_END: u32 = 74;
    pub const PNL: u32 = 94;
    pub const PNL_SINGLE: u32 = 95;
    pub const COMPLETED_ORDERS_END: u32 = 102;
    pub const CURRENT_TIME_MILLIS: u32 = 109;
}

/// Protobuf message ids are the plain ids shifted by this much, in both directions.
pub const PROTOBUF_OFFSET: u32 = 200;

/// Where a text request carries its request (or order) id, counted from the field after the
/// message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdField {
    /// The request has no id: errors about it go to −1.
    None,
    /// Always at this index.
    At(usize),
    /// After a version field below this server version (index 1), directly after the message id
    /// from it on (index 0): the official client dropped the version field there.
    VersionedBelow(u32),
}

impl IdField {
    /// The index for a connection at `version`, if the request has an id.
    pub fn index(self, version: u32) -> Option<usize> {
        match self {
            IdField::None => None,
            IdField::At(i) => Some(i),
            IdField::VersionedBelow(v) => Some(usize::from(version < v)),
        }
    }
}

/// The API name of a client request and where its id is, for requests a read-only account-data
/// gateway refuses. `None` for ids nobody has assigned.
pub fn describe(msg_id: u32) -> Option<(&'static str, IdField)> {
    use IdField::{At, None as NoId, VersionedBelow};
    Some(match msg_id {
        1 => ("reqMktData", At(1)),
        2 => ("cancelMktData", At(1)),
        3 => ("placeOrder", VersionedBelow(145)),
        4 => ("cancelOrder", VersionedBelow(192)),
        9 => ("reqContractDetails", At(1)),
        10 => ("reqMktDepth", At(1)),
        11 => ("cancelMktDepth", At(1)),
        12 => ("reqNewsBulletins", NoId),
        13 => ("cancelNewsBulletins", NoId),
        14 => ("setServerLogLevel", NoId),
        18 => ("requestFA", NoId),
        // replaceFA carries its reqId last, after the XML: errors about it go to −1.
        19 => ("replaceFA", NoId),
        20 => ("reqHistoricalData", VersionedBelow(124)),
        21 => ("exerciseOptions", At(1)),
        22 => ("reqScannerSubscription", VersionedBelow(143)),
        23 => ("cancelScannerSubscription", At(1)),
        24 => ("reqScannerParameters", NoId),
        25 => ("cancelHistoricalData", At(1)),
        50 => ("reqRealTimeBars", At(1)),
        51 => ("cancelRealTimeBars", At(1)),
        52 => ("reqFundamentalData", At(1)),
        53 => ("cancelFundamentalData", At(1)),
        54 => ("calculateImpliedVolatility", At(1)),
        55 => ("calculateOptionPrice", At(1)),
        56 => ("cancelCalculateImpliedVolatility", At(1)),
        57 => ("cancelCalculateOptionPrice", At(1)),
        58 => ("reqGlobalCancel", NoId),
        59 => ("reqMarketDataType", NoId),
        67 => ("queryDisplayGroups", At(1)),
        68 => ("subscribeToGroupEvents", At(1)),
        69 => ("updateDisplayGroup", At(1)),
        70 => ("unsubscribeFromGroupEvents", At(1)),
        74 => ("reqPositionsMulti", At(1)),
        75 => ("cancelPositionsMulti", At(1)),
        78 => ("reqSecDefOptParams", At(0)),
        79 => ("reqSoftDollarTiers", At(0)),
        80 => ("reqFamilyCodes", NoId),
        81 => ("reqMatchingSymbols", At(0)),
        82 => ("reqMktDepthExchanges", NoId),
        83 => ("reqSmartComponents", At(0)),
        84 => ("reqNewsArticle", At(0)),
        85 => ("reqNewsProviders", NoId),
        86 => ("reqHistoricalNews", At(0)),
        87 => ("reqHeadTimeStamp", At(0)),
        88 => ("reqHistogramData", At(0)),
        89 => ("cancelHistogramData", At(0)),
        90 => ("cancelHeadTimeStamp", At(0)),
        91 => ("reqMarketRule", NoId),
        96 => ("reqHistoricalTicks", At(0)),
        97 => ("reqTickByTickData", At(0)),
        98 => ("cancelTickByTickData", At(0)),
        100 => ("reqWshMetaData", At(0)),
        101 => ("cancelWshMetaData", At(0)),
        102 => ("reqWshEventData", At(0)),
        103 => ("cancelWshEventData", At(0)),
        104 => ("reqUserInfo", At(0)),
        106 => ("cancelContractData", At(0)),
        107 => ("cancelHistoricalTicks", At(0)),
        108 => ("reqConfig", At(0)),
        109 => ("updateConfig", At(0)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_positions_follow_the_server_version() {
        let (name, at) = describe(request::CANCEL_ORDER).expect("known");
        assert_eq!(name, "cancelOrder");
        assert_eq!(at.index(178), Some(1), "ib_async at 178 still sends the version field");
        assert_eq!(at.index(200), Some(0));
        assert_eq!(describe(request::REQ_GLOBAL_CANCEL).map(|(_, at)| at.index(178)), Some(None));
        assert_eq!(describe(999), None);
    }
}
