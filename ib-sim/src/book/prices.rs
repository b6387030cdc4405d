//! Prices in the book: repricing a contract revalues every position holding it, moves the
//! account values and ledger rows that depend on market value, and changes the PnL the wire
//! carries. PnL is computed here, in one place, for both the connections and the read API.

use std::collections::BTreeMap;

use super::{Book, BookEvent, Inner, position_key};
use crate::prices::{AccountPnl, PositionPnl, PriceTick, check_price};
use crate::scenario::{Position, ScenarioError};

/// Account values that follow the market value of the positions, in the base currency:
/// (tag, what moves them).
const VALUE_TAGS: [(&str, Move); 3] =
    [("NetLiquidation", Move::Value), ("GrossPositionValue", Move::Gross), ("UnrealizedPnL", Move::Value)];

#[derive(Debug, Clone, Copy)]
enum Move {
    /// The change in market value (which is also the change in unrealized PnL).
    Value,
    /// The change in absolute market value.
    Gross,
}

impl Inner {
    /// Converts `currency` into the account's base currency: its ledger `ExchangeRate`, 1 when
    /// the account has none.
    fn rate(&self, account: &str, currency: &str) -> f64 {
        self.ledger
            .get(&(account.to_owned(), currency.to_owned(), "ExchangeRate".to_owned()))
            .and_then(|l| l.value.parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0)
            .unwrap_or(1.0)
    }

    /// One open position's PnL in the account's base currency.
    fn position_pnl(&self, p: &Position) -> PositionPnl {
        let rate = self.rate(&p.account, &p.currency);
        let opening = self.opening.get(&position_key(p)).copied().unwrap_or(p.market_price);
        PositionPnl {
            position: p.quantity.clone(),
            daily: p.quantity_f64() * (p.market_price - opening) * p.effective_multiplier() * rate,
            unrealized: p.unrealized_pnl() * rate,
            realized: 0.0,
            value: p.market_value() * rate,
        }
    }

    /// Moves the account values and ledger rows that depend on `old`'s market value to `new`'s,
    /// recording each changed row.
    fn revalue(&mut self, old: &Position, new: &Position, events: &mut Vec<BookEvent>) {
        let rate = self.rate(&new.account, &new.currency);
        let (before, after) = (old.market_value(), new.market_value());
        let value = after - before;
        let gross = after.abs() - before.abs();
        for (tag, kind) in VALUE_TAGS {
            let delta = match kind {
                Move::Value => value,
                Move::Gross => gross,
            } * rate;
            for v in self.values.values_mut().filter(|v| v.account == new.account && v.tag == tag) {
                if let Some(moved) = bump(&v.value, delta) {
                    v.value = moved;
                    events.push(BookEvent::Value(v.clone()));
                }
            }
        }
        let market_tag = match new.sec_type.as_str() {
            "STK" => Some("StockMarketValue"),
            "OPT" | "FOP" => Some("OptionMarketValue"),
            _ => None,
        };
        let tags = ["NetLiquidationByCurrency", "UnrealizedPnL"].into_iter().chain(market_tag);
        for tag in tags {
            for (currency, factor) in [(new.currency.as_str(), 1.0), ("BASE", rate)] {
                let key = (new.account.clone(), currency.to_owned(), tag.to_owned());
                if let Some(row) = self.ledger.get_mut(&key)
                    && let Some(moved) = bump(&row.value, value * factor)
                {
                    row.value = moved;
                    events.push(BookEvent::Ledger(row.clone()));
                }
            }
        }
    }
}

/// `value + delta` with two decimals, or `None` when the value is not a number or does not
/// change.
fn bump(value: &str, delta: f64) -> Option<String> {
    let v: f64 = value.parse().ok()?;
    let moved = format!("{:.2}", v + delta);
    (moved != value).then_some(moved)
}

impl Book {
    /// Reprices contracts: every position holding one is revalued, the account values and
    /// ledger rows that depend on market value move with it (`NetLiquidation`,
    /// `GrossPositionValue`, `UnrealizedPnL`, and per currency and `BASE`
    /// `NetLiquidationByCurrency`, `UnrealizedPnL`, `StockMarketValue` or `OptionMarketValue`).
    /// All or nothing: a contract no position holds, or a negative or non-finite price, fails
    /// the whole call.
    pub fn set_prices(&self, ticks: &[PriceTick]) -> Result<(), ScenarioError> {
        let mut events = Vec::new();
        {
            let mut inner = self.lock();
            for t in ticks {
                check_price(t.con_id, t.price).map_err(ScenarioError::Invalid)?;
                if !inner.positions.values().any(|p| p.con_id == t.con_id) {
                    return Err(ScenarioError::Invalid(format!("no position holds con_id {}", t.con_id)));
                }
            }
            for t in ticks {
                let moved: Vec<Position> = inner
                    .positions
                    .values()
                    .filter(|p| p.con_id == t.con_id && p.market_price != t.price)
                    .cloned()
                    .collect();
                for old in moved {
                    let new = Position { market_price: t.price, ..old.clone() };
                    inner.positions.insert(position_key(&new), new.clone());
                    events.push(BookEvent::Price(new.clone()));
                    inner.revalue(&old, &new, &mut events);
                }
            }
        }
        for e in events {
            self.publish(e);
        }
        Ok(())
    }

    /// The market price of every contract held, by contract id (the first holder's when
    /// accounts disagree).
    pub fn prices(&self) -> Vec<PriceTick> {
        let mut prices = BTreeMap::new();
        for p in self.lock().positions.values() {
            prices.entry(p.con_id).or_insert(p.market_price);
        }
        prices.into_iter().map(|(con_id, price)| PriceTick { con_id, price }).collect()
    }

    /// What `pnl` carries for an account now, or `None` for an unknown account.
    pub fn pnl(&self, account: &str) -> Option<AccountPnl> {
        let inner = self.lock();
        let a = inner.accounts.iter().find(|a| a.id == account)?;
        let (mut moves, mut unrealized) = (0.0, 0.0);
        for p in inner.positions.values().filter(|p| p.account == account) {
            let v = inner.position_pnl(p);
            moves += v.daily;
            unrealized += v.unrealized;
        }
        Some(AccountPnl { daily: a.daily_pnl + moves, unrealized, realized: a.realized_pnl })
    }

    /// What `pnlSingle` carries for one position now: zeros with position "0" when the account
    /// does not hold the contract, `None` for an unknown account.
    pub fn position_pnl(&self, account: &str, con_id: i32) -> Option<PositionPnl> {
        let inner = self.lock();
        inner.accounts.iter().find(|a| a.id == account)?;
        Some(match inner.positions.get(&(account.to_owned(), con_id)) {
            Some(p) => inner.position_pnl(p),
            None => PositionPnl::flat(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    const AAPL: i32 = 265598;

    fn value(book: &Book, account: &str, tag: &str) -> String {
        book.values().into_iter().find(|v| v.account == account && v.tag == tag).map(|v| v.value).unwrap_or_default()
    }

    fn ledger(book: &Book, account: &str, currency: &str, tag: &str) -> String {
        let row = book.ledger().into_iter().find(|l| l.account == account && l.currency == currency && l.tag == tag);
        row.map(|l| l.value).unwrap_or_default()
    }

    #[test]
    fn a_tick_revalues_every_holder_and_moves_pnl() {
        let book = Book::new(&Scenario::default());
        let before = book.pnl("DU1234567");
        assert_eq!(before.map(|p| p.daily), Some(412.35), "no move yet: the scenario's daily PnL");
        let flat = book.position_pnl("DU1234567", AAPL).map(|p| p.daily);
        assert_eq!(flat, Some(0.0));
        let mut rx = book.subscribe();
        assert!(book.set_prices(&[PriceTick { con_id: AAPL, price: 191.5 }]).is_ok());

        // Both accounts hold AAPL: two price events, then the dependent values.
        let events: Vec<BookEvent> = std::iter::from_fn(|| rx.try_recv().ok()).map(|e| (*e).clone()).collect();
        let priced: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                BookEvent::Price(p) => Some(p.account.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(priced, ["DU1234567", "DU7654321"]);

        let single = book.position_pnl("DU1234567", AAPL).unwrap_or_else(PositionPnl::flat);
        assert_eq!(single.position, "100");
        assert_eq!(single.daily, 100.0 * (191.5 - 189.5));
        assert_eq!(single.value, 19150.0);
        assert_eq!(single.unrealized, 19150.0 - 100.0 * 150.25);
        let account = book.pnl("DU1234567").map(|p| p.daily);
        assert_eq!(account, Some(412.35 + 200.0));
        // 100 shares × $2: NetLiquidation, GrossPositionValue and the ledger move by $200.
        assert_eq!(value(&book, "DU1234567", "NetLiquidation"), "125630.55");
        assert_eq!(value(&book, "DU1234567", "GrossPositionValue"), "71420.45");
        assert_eq!(ledger(&book, "DU1234567", "USD", "StockMarketValue"), "48834.40");
        assert_eq!(ledger(&book, "DU1234567", "BASE", "UnrealizedPnL"), "10711.85");
        assert_eq!(ledger(&book, "DU1234567", "EUR", "UnrealizedPnL"), "0.00", "other currencies stay");
        assert_eq!(value(&book, "DU7654321", "NetLiquidation"), "20894.50", "10 shares × $2");

        // The same price again changes nothing.
        let mut rx = book.subscribe();
        assert!(book.set_prices(&[PriceTick { con_id: AAPL, price: 191.5 }]).is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn short_options_use_the_multiplier_and_gross_value() {
        let book = Book::new(&Scenario::default());
        assert!(book.set_prices(&[PriceTick { con_id: 720104601, price: 8.1 }]).is_ok());
        let opt = book.position_pnl("DU1234567", 720104601).unwrap_or_else(PositionPnl::flat);
        assert_eq!(opt.position, "-2");
        assert!((opt.daily - -200.0).abs() < 1e-9, "−2 × $1 × 100: {}", opt.daily);
        assert_eq!(value(&book, "DU1234567", "NetLiquidation"), "125230.55");
        assert_eq!(value(&book, "DU1234567", "GrossPositionValue"), "71420.45", "a short grows gross value");
        assert_eq!(ledger(&book, "DU1234567", "BASE", "OptionMarketValue"), "-1620.00");
    }

    #[test]
    fn bad_ticks_change_nothing() {
        let book = Book::new(&Scenario::default());
        let before = book.positions();
        let ticks = [PriceTick { con_id: AAPL, price: 200.0 }, PriceTick { con_id: 1, price: 1.0 }];
        assert!(book.set_prices(&ticks).is_err(), "no position holds con_id 1");
        assert!(book.set_prices(&[PriceTick { con_id: AAPL, price: f64::NAN }]).is_err());
        assert_eq!(book.positions(), before);
        assert!(book.pnl("NOPE").is_none());
        assert!(book.position_pnl("NOPE", AAPL).is_none());
    }

    #[test]
    fn closing_flattens_and_reopening_starts_a_new_day_reference() {
        let book = Book::new(&Scenario::default());
        assert!(book.set_prices(&[PriceTick { con_id: AAPL, price: 200.0 }]).is_ok());
        let mut p = book.positions().into_iter().find(|p| p.con_id == AAPL).unwrap_or_else(|| unreachable!());
        p.quantity = "0".into();
        assert!(book.upsert_positions(vec![p.clone()]).is_ok());
        assert_eq!(book.position_pnl("DU1234567", AAPL), Some(PositionPnl::flat()));
        assert_eq!(book.pnl("DU1234567").map(|p| p.daily), Some(412.35), "a closed position's move leaves daily");
        p.quantity = "5".into();
        assert!(book.upsert_positions(vec![p]).is_ok());
        assert_eq!(book.position_pnl("DU1234567", AAPL).map(|p| p.daily), Some(0.0));
        // Reset starts the day again from the scenario's prices.
        book.load(&Scenario::default());
        assert_eq!(book.prices().iter().find(|t| t.con_id == AAPL).map(|t| t.price), Some(189.5));
        assert_eq!(book.position_pnl("DU1234567", AAPL).map(|p| p.daily), Some(0.0));
    }
}
