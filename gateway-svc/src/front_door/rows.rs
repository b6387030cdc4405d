//! The service's rows as TWS messages. Decimal strings go out as the doubles the protocol
//! carries; a value the service does not have goes out as IB's own "no value"
//! ([`UNSET_DOUBLE`]), never as 0, so a client cannot mistake "unknown" for "flat".

use tws_wire::reply::UNSET_DOUBLE;
use tws_wire::{Contract, PortfolioMsg, PositionMsg, Reply};

use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, SummaryRow};

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(UNSET_DOUBLE)
}

/// Strikes and multipliers: empty means "none", which the protocol spells 0.
fn num_or_zero(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

fn contract(p: &PositionRow) -> Contract {
    Contract {
        // IB contract ids fit in 32 bits (the protocol's type); the service keeps them wider.
        con_id: i32::try_from(p.con_id).unwrap_or_default(),
        symbol: p.symbol.clone(),
        sec_type: p.sec_type.clone(),
        expiry: p.expiry.clone(),
        strike: num_or_zero(&p.strike),
        right: p.right.clone(),
        multiplier: num_or_zero(&p.multiplier),
        exchange: p.exchange.clone(),
        // Positions carry the routing exchange only; portfolio rows report it in the primary slot.
        primary_exchange: p.exchange.clone(),
        currency: p.currency.clone(),
        local_symbol: p.local_symbol.clone(),
        trading_class: String::new(),
    }
}

/// A `position` message; `closed` sends the row with size 0, as a gateway reports a position
/// that went away.
pub(super) fn position(p: &PositionRow, closed: bool) -> Reply {
    Reply::Position(Box::new(PositionMsg {
        account: p.account.clone(),
        contract: contract(p),
        quantity: if closed { "0".into() } else { p.quantity.clone() },
        avg_cost: num_or_zero(&p.avg_cost),
    }))
}

/// An `updatePortfolio` row: the position valued by its PnL row, when the service has one.
pub(super) fn portfolio(p: &PositionRow, pnl: Option<&PositionPnlRow>, closed: bool) -> Reply {
    let value = |f: fn(&PositionPnlRow) -> &str| pnl.map_or(UNSET_DOUBLE, |r| num(f(r)));
    Reply::Portfolio(Box::new(PortfolioMsg {
        contract: contract(p),
        quantity: if closed { "0".into() } else { p.quantity.clone() },
        market_price: value(|r| &r.market_price),
        market_value: if closed { 0.0 } else { value(|r| &r.market_value) },
        avg_cost: num_or_zero(&p.avg_cost),
        unrealized: if closed { 0.0 } else { value(|r| &r.unrealized) },
        realized: value(|r| &r.realized),
        account: p.account.clone(),
    }))
}

/// An `accountSummary` row for `req_id`.
pub(super) fn summary(req_id: i32, r: &SummaryRow) -> Reply {
    Reply::AccountSummary {
        req_id,
        account: r.account.clone(),
        tag: r.tag.clone(),
        value: r.value.clone(),
        currency: r.currency.clone(),
    }
}

/// An `updateAccountValue` row.
pub(super) fn account_value(r: &SummaryRow) -> Reply {
    Reply::AccountValue {
        key: r.tag.clone(),
        value: r.value.clone(),
        currency: r.currency.clone(),
        account: r.account.clone(),
    }
}

/// An `accountUpdateMulti` row for `req_id`.
pub(super) fn account_value_multi(req_id: i32, r: &SummaryRow) -> Reply {
    Reply::AccountUpdateMulti {
        req_id,
        account: r.account.clone(),
        key: r.tag.clone(),
        value: r.value.clone(),
        currency: r.currency.clone(),
    }
}

/// A `pnl` message for `req_id`.
pub(super) fn account_pnl(req_id: i32, r: &AccountPnlRow) -> Reply {
    Reply::Pnl { req_id, daily: num(&r.daily), unrealized: num(&r.unrealized), realized: num(&r.realized) }
}

/// A `pnlSingle` message for `req_id`.
pub(super) fn position_pnl(req_id: i32, r: &PositionPnlRow) -> Reply {
    Reply::PnlSingle {
        req_id,
        position: r.quantity.clone(),
        daily: num(&r.daily),
        unrealized: num(&r.unrealized),
        realized: num(&r.realized),
        value: num(&r.market_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_unset_not_zero() {
        let p = PositionRow {
            account: "DU1".into(),
            con_id: 265598,
            symbol: "AAPL".into(),
            quantity: "10".into(),
            avg_cost: "150".into(),
            ..PositionRow::default()
        };
        let Reply::Portfolio(row) = portfolio(&p, None, false) else { panic!("portfolio") };
        assert_eq!(row.market_value, UNSET_DOUBLE);
        assert_eq!(row.quantity, "10");
        let Reply::Position(closed) = position(&p, true) else { panic!("position") };
        assert_eq!(closed.quantity, "0");
        let pnl = AccountPnlRow {
            account: "DU1".into(),
            daily: "1.5".into(),
            unrealized: String::new(),
            realized: "0".into(),
        };
        assert_eq!(account_pnl(4, &pnl), Reply::Pnl { req_id: 4, daily: 1.5, unrealized: UNSET_DOUBLE, realized: 0.0 });
    }
}
