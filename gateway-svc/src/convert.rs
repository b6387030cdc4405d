//! Conversions at the edges: `ibapi` types into domain rows, domain rows into `gateway.v1`
//! messages. Nothing else in the service touches either foreign type.

use std::time::SystemTime;

use gateway_proto::pb;
use ibapi::accounts::{AccountSummary, Position};

use crate::farm::{Farm, FarmKind, FarmStatus};
use crate::health::{Health, SessionState};
use crate::model::{AccountPnlRow, Freshness, PositionPnlRow, PositionRow, SummaryRow, decimal};

/// An `ibapi` position as a domain row.
pub(crate) fn position_row(p: &Position) -> PositionRow {
    let c = &p.contract;
    let nonzero = |v: f64| if v == 0.0 { String::new() } else { decimal(v) };
    PositionRow {
        account: p.account.clone(),
        con_id: i64::from(c.contract_id),
        symbol: c.symbol.to_string(),
        sec_type: c.security_type.as_str().to_owned(),
        exchange: c.exchange.to_string(),
        currency: c.currency.to_string(),
        quantity: decimal(p.position),
        avg_cost: decimal(p.average_cost),
        local_symbol: c.local_symbol.clone(),
        expiry: c.last_trade_date_or_contract_month.clone(),
        strike: nonzero(c.strike),
        right: c.right.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default(),
        multiplier: c.multiplier.clone(),
    }
}

/// An `ibapi` summary row as a domain row.
pub(crate) fn summary_row(s: &AccountSummary) -> SummaryRow {
    SummaryRow { account: s.account.clone(), tag: s.tag.clone(), value: s.value.clone(), currency: s.currency.clone() }
}

/// A wall-clock time as a protobuf timestamp.
pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// Domain freshness as protobuf.
pub(crate) fn freshness(f: &Freshness) -> pb::Freshness {
    match f {
        Freshness::Live => pb::Freshness { state: pb::FreshnessState::Live as i32, since: None, reason: String::new() },
        Freshness::Stale { since, reason } => pb::Freshness {
            state: pb::FreshnessState::Stale as i32,
            since: Some(timestamp(*since)),
            reason: reason.clone(),
        },
        Freshness::Unknown { reason } => {
            pb::Freshness { state: pb::FreshnessState::Unknown as i32, since: None, reason: reason.clone() }
        }
    }
}

/// Position row as protobuf.
pub(crate) fn position(p: &PositionRow) -> pb::Position {
    pb::Position {
        account: p.account.clone(),
        con_id: p.con_id,
        symbol: p.symbol.clone(),
        sec_type: p.sec_type.clone(),
        exchange: p.exchange.clone(),
        currency: p.currency.clone(),
        quantity: p.quantity.clone(),
        avg_cost: p.avg_cost.clone(),
        local_symbol: p.local_symbol.clone(),
        expiry: p.expiry.clone(),
        strike: p.strike.clone(),
        right: p.right.clone(),
        multiplier: p.multiplier.clone(),
    }
}

/// Position key as protobuf.
pub(crate) fn position_key(k: &(String, i64)) -> pb::PositionKey {
    pb::PositionKey { account: k.0.clone(), con_id: k.1 }
}

/// Summary row as protobuf.
pub(crate) fn summary_value(s: &SummaryRow) -> pb::SummaryValue {
    pb::SummaryValue {
        account: s.account.clone(),
        tag: s.tag.clone(),
        value: s.value.clone(),
        currency: s.currency.clone(),
    }
}

/// Summary key as protobuf.
pub(crate) fn summary_key(k: &(String, String, String)) -> pb::SummaryKey {
    pb::SummaryKey { account: k.0.clone(), tag: k.1.clone(), currency: k.2.clone() }
}

/// Account PnL row as protobuf.
pub(crate) fn account_pnl(r: &AccountPnlRow) -> pb::AccountPnl {
    pb::AccountPnl {
        account: r.account.clone(),
        daily_pnl: r.daily.clone(),
        unrealized_pnl: r.unrealized.clone(),
        realized_pnl: r.realized.clone(),
        currency: BASE_CURRENCY.to_owned(),
    }
}

/// Position PnL row as protobuf.
pub(crate) fn position_pnl(r: &PositionPnlRow) -> pb::PositionPnl {
    pb::PositionPnl {
        account: r.account.clone(),
        con_id: r.con_id,
        quantity: r.quantity.clone(),
        market_value: r.market_value.clone(),
        market_price: r.market_price.clone(),
        daily_pnl: r.daily.clone(),
        unrealized_pnl: r.unrealized.clone(),
        realized_pnl: r.realized.clone(),
        currency: BASE_CURRENCY.to_owned(),
    }
}

/// IB reports PnL in the account's base currency, which the API names as the ledger does.
const BASE_CURRENCY: &str = "BASE";

/// Session state as protobuf.
pub(crate) fn session_state(s: SessionState) -> pb::SessionState {
    match s {
        SessionState::Connecting => pb::SessionState::Connecting,
        SessionState::Syncing => pb::SessionState::Syncing,
        SessionState::Ready => pb::SessionState::Ready,
        SessionState::Degraded => pb::SessionState::Degraded,
        SessionState::Reconnecting => pb::SessionState::Reconnecting,
        SessionState::Stopped => pb::SessionState::Stopped,
    }
}

/// Health as protobuf.
pub(crate) fn health(h: &Health, subscribers: usize) -> pb::Health {
    pb::Health {
        state: session_state(h.state) as i32,
        reason: h.reason.clone(),
        since: Some(timestamp(h.since)),
        session_epoch: h.epoch,
        reconnects: h.reconnects,
        next_attempt_at: h.next_attempt_at.map(timestamp),
        client_id: h.client_id,
        client_id_conflicts: h.client_id_conflicts,
        last_probe_rtt_ms: h.last_probe_rtt_ms,
        upstream: h.upstream.clone(),
        server_version: h.server_version,
        expected_outage: h.expected_outage,
        subscribers: subscribers as u64,
        farms: h.farms.iter().map(farm).collect(),
    }
}

fn farm(f: &Farm) -> pb::DataFarm {
    let kind = match f.kind {
        FarmKind::MarketData => pb::DataFarmKind::MarketData,
        FarmKind::Historical => pb::DataFarmKind::Historical,
        FarmKind::SecDef => pb::DataFarmKind::SecDef,
    };
    let state = match f.status {
        FarmStatus::Ok => pb::DataFarmState::Ok,
        FarmStatus::Inactive => pb::DataFarmState::Inactive,
        FarmStatus::Connecting => pb::DataFarmState::Connecting,
        FarmStatus::Broken => pb::DataFarmState::Broken,
    };
    pb::DataFarm {
        name: f.name.clone(),
        kind: kind as i32,
        state: state as i32,
        since: Some(timestamp(f.since)),
        code: f.code,
    }
}
