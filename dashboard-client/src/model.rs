//! The dashboard's state: one serialisable value, replaced on every change and pushed to every
//! open page.

use std::time::SystemTime;

use gateway_proto::pb;
use serde::Serialize;

/// Everything the page shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dashboard {
    /// Our link to gateway-svc.
    pub gateway: GatewayLink,
    /// The upstream session, as gateway-svc reports it.
    pub health: Option<HealthView>,
    /// Positions.
    pub positions: DataView<PositionView>,
    /// Account summary.
    pub summary: DataView<SummaryView>,
    /// Profit and loss per account (in each account's base currency).
    pub account_pnl: DataView<AccountPnlView>,
    /// Value and profit and loss per position (in its account's base currency).
    pub position_pnl: DataView<PositionPnlView>,
}

/// Whether gateway-svc answers.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GatewayLink {
    /// gateway-svc address.
    pub url: String,
    /// True while every stream is connected.
    pub reachable: bool,
    /// Last connection error.
    pub error: String,
    /// When the link went down (RFC 3339), while it is down.
    pub down_since: Option<String>,
}

/// Session health.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HealthView {
    /// READY, DEGRADED, ...
    pub state: String,
    /// Why.
    pub reason: String,
    /// Since (RFC 3339).
    pub since: Option<String>,
    /// Session epoch.
    pub epoch: u64,
    /// Reconnects.
    pub reconnects: u64,
    /// Client id.
    pub client_id: i32,
    /// Next attempt (RFC 3339) while reconnecting.
    pub next_attempt_at: Option<String>,
    /// Outage inside a maintenance window.
    pub expected_outage: bool,
}

/// Freshness as shown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FreshnessView {
    /// LIVE, STALE or UNKNOWN.
    pub state: String,
    /// Since (RFC 3339), when STALE.
    pub since: Option<String>,
    /// Why.
    pub reason: String,
}

impl Default for FreshnessView {
    fn default() -> Self {
        Self { state: "UNKNOWN".into(), since: None, reason: "waiting for gateway-svc".into() }
    }
}

/// One data kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DataView<T> {
    /// Freshness.
    pub freshness: FreshnessView,
    /// Session epoch of the data.
    pub epoch: u64,
    /// As of (RFC 3339).
    pub as_of: Option<String>,
    /// Rows, ordered by key.
    pub items: Vec<T>,
    /// Stream messages applied.
    pub messages: u64,
}

/// One position row.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PositionView {
    /// `account:con_id`.
    pub key: String,
    /// Account.
    pub account: String,
    /// Symbol.
    pub symbol: String,
    /// Contract description.
    pub contract: String,
    /// Quantity (decimal string).
    pub quantity: String,
    /// Average cost (decimal string).
    pub avg_cost: String,
    /// Currency.
    pub currency: String,
}

/// One summary row.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SummaryView {
    /// Account.
    pub account: String,
    /// Tag.
    pub tag: String,
    /// Value.
    pub value: String,
    /// Currency.
    pub currency: String,
}

/// One account's profit and loss, decimal strings as gateway-svc serves them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AccountPnlView {
    /// Account.
    pub account: String,
    /// Since the start of the trading day.
    pub daily_pnl: String,
    /// Of the open positions; empty when IB sends none.
    pub unrealized_pnl: String,
    /// Realized today; empty when IB sends none.
    pub realized_pnl: String,
    /// "BASE": the account's base currency.
    pub currency: String,
}

/// One position's value and profit and loss, decimal strings as gateway-svc serves them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PositionPnlView {
    /// `account:con_id`, the key of the position row it belongs to.
    pub key: String,
    /// Account.
    pub account: String,
    /// The size these figures are for.
    pub quantity: String,
    /// Market value.
    pub market_value: String,
    /// Market price per unit; empty when the quantity is 0.
    pub market_price: String,
    /// Since the start of the trading day.
    pub daily_pnl: String,
    /// Since the position was opened.
    pub unrealized_pnl: String,
    /// Realized.
    pub realized_pnl: String,
    /// "BASE": the account's base currency.
    pub currency: String,
}

/// RFC 3339 (seconds) or `None`.
pub fn rfc3339(t: Option<prost_types::Timestamp>) -> Option<String> {
    let t = SystemTime::try_from(t?).ok()?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// Now, RFC 3339.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Health from protobuf.
pub fn health(h: &pb::Health) -> HealthView {
    let state = pb::SessionState::try_from(h.state).map(|s| s.as_str_name()).unwrap_or("SESSION_STATE_UNSPECIFIED");
    HealthView {
        state: state.trim_start_matches("SESSION_STATE_").to_owned(),
        reason: h.reason.clone(),
        since: rfc3339(h.since),
        epoch: h.session_epoch,
        reconnects: h.reconnects,
        client_id: h.client_id,
        next_attempt_at: rfc3339(h.next_attempt_at),
        expected_outage: h.expected_outage,
    }
}

/// Position from protobuf.
pub fn position(p: &pb::Position) -> PositionView {
    let contract = if p.sec_type == "OPT" || p.sec_type == "FOP" {
        format!("{} {} {} {}", p.sec_type, p.expiry, p.strike, p.right)
    } else {
        p.sec_type.clone()
    };
    PositionView {
        key: format!("{}:{}", p.account, p.con_id),
        account: p.account.clone(),
        symbol: p.symbol.clone(),
        contract,
        quantity: p.quantity.clone(),
        avg_cost: p.avg_cost.clone(),
        currency: p.currency.clone(),
    }
}

/// Summary value from protobuf.
pub fn summary(v: &pb::SummaryValue) -> SummaryView {
    SummaryView { account: v.account.clone(), tag: v.tag.clone(), value: v.value.clone(), currency: v.currency.clone() }
}

/// Account PnL from protobuf.
pub fn account_pnl(p: &pb::AccountPnl) -> AccountPnlView {
    AccountPnlView {
        account: p.account.clone(),
        daily_pnl: p.daily_pnl.clone(),
        unrealized_pnl: p.unrealized_pnl.clone(),
        realized_pnl: p.realized_pnl.clone(),
        currency: p.currency.clone(),
    }
}

/// Position PnL from protobuf.
pub fn position_pnl(p: &pb::PositionPnl) -> PositionPnlView {
    PositionPnlView {
        key: format!("{}:{}", p.account, p.con_id),
        account: p.account.clone(),
        quantity: p.quantity.clone(),
        market_value: p.market_value.clone(),
        market_price: p.market_price.clone(),
        daily_pnl: p.daily_pnl.clone(),
        unrealized_pnl: p.unrealized_pnl.clone(),
        realized_pnl: p.realized_pnl.clone(),
        currency: p.currency.clone(),
    }
}

/// Key of a summary row.
pub fn summary_key(account: &str, tag: &str, currency: &str) -> String {
    format!("{account}:{tag}:{currency}")
}
