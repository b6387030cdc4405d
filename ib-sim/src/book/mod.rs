//! The simulated broker-side book: positions and account values, with every change published to
//! the open connections. Prices and the PnL derived from them are in [`prices`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::scenario::{
    AccountValue, LedgerValue, Position, Scenario, ScenarioError, validate_ledger, validate_position,
};

/// Room for a 10,000-update burst per receiver before anyone lags; a lagging connection resends
/// its whole subscription, so a lag costs bandwidth, never correctness.
const EVENT_CAPACITY: usize = 16_384;

/// A change to the book. Events travel behind an `Arc`, so the size difference between
/// variants costs nothing per receiver.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BookEvent {
    /// A position changed; quantity "0" means it was closed.
    Position(Position),
    /// An account value changed.
    Value(AccountValue),
    /// A ledger row changed.
    Ledger(LedgerValue),
    /// A position was revalued at a new market price (its quantity is unchanged): portfolio rows
    /// and PnL follow, `position` rows do not.
    Price(Position),
}

#[derive(Debug, Default)]
struct Inner {
    accounts: Vec<crate::scenario::Account>,
    positions: BTreeMap<(String, i32), Position>,
    values: BTreeMap<(String, String, String), AccountValue>,
    /// Keyed by account, currency, tag: the order a gateway groups ledger rows in.
    ledger: BTreeMap<(String, String, String), LedgerValue>,
    /// Per open position: its market price when it entered the book (the day's reference for
    /// daily PnL).
    opening: BTreeMap<(String, i32), f64>,
}

/// Shared book. `std::sync::Mutex` because no critical section awaits.
#[derive(Debug, Clone)]
pub struct Book {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Arc<BookEvent>>,
}

fn position_key(p: &Position) -> (String, i32) {
    (p.account.clone(), p.con_id)
}

fn value_key(v: &AccountValue) -> (String, String, String) {
    (v.account.clone(), v.tag.clone(), v.currency.clone())
}

fn ledger_key(v: &LedgerValue) -> (String, String, String) {
    (v.account.clone(), v.currency.clone(), v.tag.clone())
}

impl Book {
    /// A book holding the scenario's data.
    pub fn new(scenario: &Scenario) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let book = Self { inner: Arc::default(), events };
        book.load(scenario);
        book
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than stopping, so recover the guard instead of propagating poison.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces everything with the scenario's data, publishing the differences. The day starts
    /// again: each position's reference price for daily PnL is its scenario price.
    pub fn load(&self, scenario: &Scenario) {
        self.lock().accounts = scenario.accounts.clone();
        // The scenario was validated as a whole, so these cannot fail.
        let _ = self.replace_positions(scenario.positions.clone());
        let _ = self.replace_values(scenario.account_values.clone());
        let _ = self.replace_ledger(scenario.ledger.clone());
        self.lock().opening = scenario.positions.iter().map(|p| (position_key(p), p.market_price)).collect();
    }

    /// Subscribes to changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BookEvent>> {
        self.events.subscribe()
    }

    /// Account codes, in scenario order.
    pub fn account_ids(&self) -> Vec<String> {
        self.lock().accounts.iter().map(|a| a.id.clone()).collect()
    }

    /// An account's scripted daily and realized PnL, if the account exists.
    pub fn account_pnl(&self, id: &str) -> Option<(f64, f64)> {
        self.lock().accounts.iter().find(|a| a.id == id).map(|a| (a.daily_pnl, a.realized_pnl))
    }

    /// All open positions, ordered by account and contract id.
    pub fn positions(&self) -> Vec<Position> {
        self.lock().positions.values().cloned().collect()
    }

    /// All account values.
    pub fn values(&self) -> Vec<AccountValue> {
        self.lock().values.values().cloned().collect()
    }

    /// All ledger rows, ordered by account, currency and tag.
    pub fn ledger(&self) -> Vec<LedgerValue> {
        self.lock().ledger.values().cloned().collect()
    }

    fn publish(&self, event: BookEvent) {
        // No receivers is fine: nobody is subscribed.
        let _ = self.events.send(Arc::new(event));
    }

    fn check(&self, p: &Position) -> Result<(), ScenarioError> {
        let accounts = self.account_ids();
        validate_position(p, &|a| accounts.iter().any(|x| x == a))
    }

    /// Inserts or updates positions; quantity `0` closes one (published with 0, then removed).
    pub fn upsert_positions(&self, positions: Vec<Position>) -> Result<(), ScenarioError> {
        for p in &positions {
            self.check(p)?;
        }
        for p in positions {
            self.apply_position(p);
        }
        Ok(())
    }

    fn apply_position(&self, p: Position) {
        {
            let mut inner = self.lock();
            let key = position_key(&p);
            if p.quantity_f64() == 0.0 {
                if inner.positions.remove(&key).is_none() {
                    return;
                }
                inner.opening.remove(&key);
            } else {
                if inner.positions.get(&key) == Some(&p) {
                    return;
                }
                inner.opening.entry(key.clone()).or_insert(p.market_price);
                inner.positions.insert(key, p.clone());
            }
        }
        self.publish(BookEvent::Position(p));
    }

    /// Replaces every position; vanished ones are published as closed.
    pub fn replace_positions(&self, positions: Vec<Position>) -> Result<(), ScenarioError> {
        for p in &positions {
            self.check(p)?;
        }
        let gone: Vec<Position> = {
            let inner = self.lock();
            inner
                .positions
                .values()
                .filter(|old| !positions.iter().any(|p| position_key(p) == position_key(old)))
                .map(|old| Position { quantity: "0".into(), ..old.clone() })
                .collect()
        };
        for p in gone.into_iter().chain(positions) {
            self.apply_position(p);
        }
        Ok(())
    }

    /// Steps one position's quantity `count` times by +1, publishing each step. Returns the
    /// final quantity, or `None` when the book has no such position.
    pub fn burst(&self, count: u32, key: Option<(String, i32)>) -> Option<String> {
        let mut p = {
            let inner = self.lock();
            match key {
                Some(k) => inner.positions.get(&k).cloned(),
                None => inner.positions.values().next().cloned(),
            }
        }?;
        let base = p.quantity_f64();
        for i in 1..=count {
            p.quantity = format_decimal(base + f64::from(i));
            self.apply_position(p.clone());
        }
        Some(p.quantity)
    }

    /// Inserts or updates account values.
    pub fn upsert_values(&self, values: Vec<AccountValue>) -> Result<(), ScenarioError> {
        let accounts = self.account_ids();
        if let Some(v) = values.iter().find(|v| !accounts.contains(&v.account)) {
            return Err(ScenarioError::Invalid(format!("unknown account {}", v.account)));
        }
        for v in values {
            let changed = self.lock().values.insert(value_key(&v), v.clone()).as_ref() != Some(&v);
            if changed {
                self.publish(BookEvent::Value(v));
            }
        }
        Ok(())
    }

    /// Replaces every account value (removed rows are simply no longer reported).
    pub fn replace_values(&self, values: Vec<AccountValue>) -> Result<(), ScenarioError> {
        let accounts = self.account_ids();
        if let Some(v) = values.iter().find(|v| !accounts.contains(&v.account)) {
            return Err(ScenarioError::Invalid(format!("unknown account {}", v.account)));
        }
        self.lock().values.retain(|k, _| values.iter().any(|v| &value_key(v) == k));
        self.upsert_values(values)
    }
}

impl Book {
    fn check_ledger(&self, rows: &[LedgerValue]) -> Result<(), ScenarioError> {
        let accounts = self.account_ids();
        rows.iter().try_for_each(|v| validate_ledger(v, &|a| accounts.iter().any(|x| x == a)))
    }

    /// Inserts or updates ledger rows by account, currency and tag.
    pub fn upsert_ledger(&self, rows: Vec<LedgerValue>) -> Result<(), ScenarioError> {
        self.check_ledger(&rows)?;
        for v in rows {
            let changed = self.lock().ledger.insert(ledger_key(&v), v.clone()).as_ref() != Some(&v);
            if changed {
                self.publish(BookEvent::Ledger(v));
            }
        }
        Ok(())
    }

    /// Replaces every ledger row (removed rows are simply no longer reported).
    pub fn replace_ledger(&self, rows: Vec<LedgerValue>) -> Result<(), ScenarioError> {
        self.check_ledger(&rows)?;
        self.lock().ledger.retain(|k, _| rows.iter().any(|v| &ledger_key(v) == k));
        self.upsert_ledger(rows)
    }
}

/// Formats a quantity the way IB prints a Decimal: no trailing `.0`.
fn format_decimal(v: f64) -> String {
    if v.fract() == 0.0 { format!("{}", v as i64) } else { format!("{v}") }
}

mod prices;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_published_and_closes_remove() {
        let book = Book::new(&Scenario::default());
        let mut rx = book.subscribe();
        let mut p = book.positions()[0].clone();
        p.quantity = "0".into();
        assert!(book.upsert_positions(vec![p.clone()]).is_ok());
        assert!(!book.positions().iter().any(|x| position_key(x) == position_key(&p)));
        assert_eq!(rx.try_recv().ok().as_deref(), Some(&BookEvent::Position(p)));
        // Unchanged upserts publish nothing.
        let same = book.positions()[0].clone();
        assert!(book.upsert_positions(vec![same]).is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn burst_steps_to_a_known_final_state() {
        let book = Book::new(&Scenario::default());
        let first = book.positions()[0].clone();
        let end = book.burst(1000, None);
        assert_eq!(end, Some(format_decimal(first.quantity_f64() + 1000.0)));
        assert_eq!(book.positions()[0].quantity, end.unwrap_or_default());
    }

    #[test]
    fn ledger_rows_are_upserted_by_account_currency_and_tag() {
        let book = Book::new(&Scenario::default());
        let mut rx = book.subscribe();
        let mut row = book.ledger()[0].clone();
        row.value = "42.00".into();
        assert!(book.upsert_ledger(vec![row.clone()]).is_ok());
        assert_eq!(rx.try_recv().ok().as_deref(), Some(&BookEvent::Ledger(row.clone())));
        assert!(book.upsert_ledger(vec![row.clone()]).is_ok());
        assert!(rx.try_recv().is_err(), "unchanged rows publish nothing");
        assert_eq!(book.ledger().len(), Scenario::default().ledger.len());
        assert!(book.upsert_ledger(vec![LedgerValue { account: "NOPE".into(), ..row }]).is_err());
    }

    #[test]
    fn rejects_unknown_accounts_without_partial_updates() {
        let book = Book::new(&Scenario::default());
        let before = book.positions();
        let mut ok = before[0].clone();
        ok.quantity = "999".into();
        let mut bad = before[0].clone();
        bad.account = "NOPE".into();
        assert!(book.upsert_positions(vec![ok, bad]).is_err());
        assert_eq!(book.positions(), before);
    }
}
