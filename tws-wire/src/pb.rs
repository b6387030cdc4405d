//! The subset of IB's `protobuf` package that the gateway side speaks.
//!
//! IB's schema uses proto3 `optional` on every field and clients rely on presence (for example
//! `ibapi` treats a `NextValidId` without `orderId` as "not received"), so every field here is an
//! `Option` and we always set the fields we mean, even to zero or "". Tag numbers come from IB's
//! published descriptors; see `docs` in the workspace for the table.
#![allow(missing_docs)]

/// `Contract`: only the fields a position or portfolio row carries.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Contract {
    #[prost(int32, optional, tag = "1")]
    pub(crate) con_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) symbol: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) sec_type: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(crate) last_trade_date_or_contract_month: Option<String>,
    #[prost(double, optional, tag = "5")]
    pub(crate) strike: Option<f64>,
    #[prost(string, optional, tag = "6")]
    pub(crate) right: Option<String>,
    #[prost(double, optional, tag = "7")]
    pub(crate) multiplier: Option<f64>,
    #[prost(string, optional, tag = "8")]
    pub(crate) exchange: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub(crate) primary_exch: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub(crate) currency: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub(crate) local_symbol: Option<String>,
    #[prost(string, optional, tag = "12")]
    pub(crate) trading_class: Option<String>,
}

// ---- client → server -------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StartApiRequest {
    #[prost(int32, optional, tag = "1")]
    pub(crate) client_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) optional_capabilities: Option<String>,
}

/// Shape shared by every request whose only field is a request id (`CancelAccountSummary`,
/// `CancelPnL`, `CancelPnLSingle`, `CancelAccountUpdatesMulti`, `ExecutionRequest`'s first field).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ReqIdOnly {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountSummaryRequest {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) group: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) tags: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountDataRequest {
    #[prost(bool, optional, tag = "1")]
    pub(crate) subscribe: Option<bool>,
    #[prost(string, optional, tag = "2")]
    pub(crate) acct_code: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PnLRequest {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) account: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) model_code: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PnLSingleRequest {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) account: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) model_code: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub(crate) con_id: Option<i32>,
}

// ---- server → client -------------------------------------------------------------------------

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NextValidId {
    #[prost(int32, optional, tag = "1")]
    pub(crate) order_id: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ManagedAccounts {
    #[prost(string, optional, tag = "1")]
    pub(crate) accounts_list: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ErrorMessage {
    #[prost(int32, optional, tag = "1")]
    pub(crate) id: Option<i32>,
    #[prost(int64, optional, tag = "2")]
    pub(crate) error_time: Option<i64>,
    #[prost(int32, optional, tag = "3")]
    pub(crate) error_code: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub(crate) error_msg: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(crate) advanced_order_reject_json: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Position {
    #[prost(string, optional, tag = "1")]
    pub(crate) account: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub(crate) contract: Option<Contract>,
    #[prost(string, optional, tag = "3")]
    pub(crate) position: Option<String>,
    #[prost(double, optional, tag = "4")]
    pub(crate) avg_cost: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountSummary {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) account: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) tag: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(crate) value: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(crate) currency: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountValue {
    #[prost(string, optional, tag = "1")]
    pub(crate) key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(crate) value: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) currency: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(crate) account_name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PortfolioValue {
    #[prost(message, optional, tag = "1")]
    pub(crate) contract: Option<Contract>,
    #[prost(string, optional, tag = "2")]
    pub(crate) position: Option<String>,
    #[prost(double, optional, tag = "3")]
    pub(crate) market_price: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub(crate) market_value: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub(crate) average_cost: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub(crate) unrealized_pnl: Option<f64>,
    #[prost(double, optional, tag = "7")]
    pub(crate) realized_pnl: Option<f64>,
    #[prost(string, optional, tag = "8")]
    pub(crate) account_name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountUpdateTime {
    #[prost(string, optional, tag = "1")]
    pub(crate) time_stamp: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountDataEnd {
    #[prost(string, optional, tag = "1")]
    pub(crate) account_name: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PnL {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(double, optional, tag = "2")]
    pub(crate) daily_pnl: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub(crate) unrealized_pnl: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub(crate) realized_pnl: Option<f64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PnLSingle {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) position: Option<String>,
    #[prost(double, optional, tag = "3")]
    pub(crate) daily_pnl: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub(crate) unrealized_pnl: Option<f64>,
    #[prost(double, optional, tag = "5")]
    pub(crate) realized_pnl: Option<f64>,
    #[prost(double, optional, tag = "6")]
    pub(crate) value: Option<f64>,
}

/// `CurrentTime` (seconds) and `CurrentTimeInMillis` share this shape.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Int64Only {
    #[prost(int64, optional, tag = "1")]
    pub(crate) value: Option<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountUpdatesMultiRequest {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) account: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) model_code: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub(crate) ledger_and_nlv: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AccountUpdateMulti {
    #[prost(int32, optional, tag = "1")]
    pub(crate) req_id: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub(crate) account: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(crate) model_code: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(crate) key: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(crate) value: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub(crate) currency: Option<String>,
}
