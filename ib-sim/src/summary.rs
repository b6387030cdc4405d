//! Account summary as a gateway serves it: which rows a tag list selects (plain tags and the
//! `$LEDGER` forms), and which of them a subscription still has to be told about.
//!
//! After the first full answer a subscription gets only values that changed, in batches on the
//! scenario's cadence. Each subscription remembers what it last sent, so a value that changes and
//! changes back between two batches is not sent at all, and nothing is ever re-sent unchanged.

use std::collections::BTreeMap;

use tws_wire::account_summary::TagSelection;

use crate::book::Book;
use crate::scenario::{AccountValue, LedgerValue};

/// One `accountSummary` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) account: String,
    pub(crate) tag: String,
    pub(crate) value: String,
    pub(crate) currency: String,
}

/// A request's tag list, parsed (the rules live in `tws_wire::account_summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection(TagSelection);

impl Selection {
    pub(crate) fn parse(tags: &[String]) -> Self {
        Selection(TagSelection::parse(tags))
    }

    /// The selected rows, grouped by account: its account values, then its ledger rows by currency.
    pub(crate) fn rows(&self, values: &[AccountValue], ledger: &[LedgerValue]) -> Vec<Row> {
        let plain = values.iter().filter(|v| self.0.wants(&v.tag, &v.currency, false)).map(|v| Row {
            account: v.account.clone(),
            tag: v.tag.clone(),
            value: v.value.clone(),
            currency: v.currency.clone(),
        });
        let cash = ledger.iter().filter(|l| self.0.wants(&l.tag, &l.currency, true)).map(|l| Row {
            account: l.account.clone(),
            tag: l.tag.clone(),
            value: l.value.clone(),
            currency: l.currency.clone(),
        });
        let mut rows: Vec<Row> = plain.chain(cash).collect();
        // Stable: within an account, values stay ahead of ledger rows.
        rows.sort_by(|a, b| a.account.cmp(&b.account));
        rows
    }
}

/// One open `reqAccountSummary`.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    selection: Selection,
    /// (account, tag, currency) → the value last sent.
    sent: BTreeMap<(String, String, String), String>,
}

fn key(r: &Row) -> (String, String, String) {
    (r.account.clone(), r.tag.clone(), r.currency.clone())
}

impl Subscription {
    pub(crate) fn new(tags: &[String]) -> Self {
        Self { selection: Selection::parse(tags), sent: BTreeMap::new() }
    }

    fn current(&self, book: &Book) -> Vec<Row> {
        self.selection.rows(&book.values(), &book.ledger())
    }

    /// Every selected row (the first answer); all of them count as sent.
    pub(crate) fn full(&mut self, book: &Book) -> Vec<Row> {
        let rows = self.current(book);
        self.sent = rows.iter().map(|r| (key(r), r.value.clone())).collect();
        rows
    }

    /// The rows whose value differs from what was last sent, new rows included. Rows that
    /// disappeared are forgotten without a message, as a gateway does.
    pub(crate) fn changes(&mut self, book: &Book) -> Vec<Row> {
        let rows = self.current(book);
        let mut sent = BTreeMap::new();
        let mut changed = Vec::new();
        for r in rows {
            let k = key(&r);
            if self.sent.get(&k) != Some(&r.value) {
                changed.push(r.clone());
            }
            sent.insert(k, r.value);
        }
        self.sent = sent;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    fn currencies(rows: &[Row]) -> Vec<&str> {
        let mut c: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    #[test]
    fn ledger_forms_select_currencies() {
        let s = Scenario::default();
        let rows = |t: &[&str]| Selection::parse(&tags(t)).rows(&s.account_values, &s.ledger);
        assert_eq!(currencies(&rows(&["$LEDGER"])), ["BASE"]);
        assert_eq!(currencies(&rows(&["$LEDGER:EUR"])), ["EUR"]);
        assert_eq!(currencies(&rows(&["$LEDGER:eur"])), ["EUR"]);
        assert_eq!(currencies(&rows(&["$LEDGER:ALL"])), ["BASE", "EUR", "USD"]);
        assert_eq!(rows(&["$LEDGER:ALL"]).len(), s.ledger.len());
        assert!(rows(&["$LEDGER:JPY", "$LEDGERX", "$OTHER", "CashBalance"]).is_empty());
        // Both forms at once select each row once.
        assert_eq!(rows(&["$LEDGER", "$LEDGER:ALL"]).len(), s.ledger.len());
        let mixed = rows(&["NetLiquidation", "$LEDGER"]);
        assert_eq!(mixed[0].tag, "NetLiquidation", "an account's values come before its ledger rows");
        assert!(mixed.windows(2).all(|w| w[0].account <= w[1].account));
    }

    #[test]
    fn after_the_first_answer_only_changes_are_reported() {
        let book = Book::new(&Scenario::default());
        let mut sub = Subscription::new(&tags(&["NetLiquidation", "$LEDGER:ALL"]));
        let first = sub.full(&book);
        assert!(first.len() > 2);
        assert!(sub.changes(&book).is_empty(), "nothing is re-sent unchanged");

        let mut v = book.values().into_iter().find(|v| v.tag == "NetLiquidation").expect("a NetLiquidation value");
        let before = v.value.clone();
        v.value = "1.00".into();
        let _ = book.upsert_values(vec![v.clone()]);
        let mut cash = book.ledger()[0].clone();
        cash.value = "2.00".into();
        let _ = book.upsert_ledger(vec![cash]);
        let changed = sub.changes(&book);
        let values: Vec<&str> = changed.iter().map(|r| r.value.as_str()).collect();
        assert_eq!(values, ["1.00", "2.00"]);
        assert!(sub.changes(&book).is_empty());

        // Changed and changed back between two batches: nothing to report.
        let _ = book.upsert_values(vec![AccountValue { value: "3.00".into(), ..v.clone() }]);
        let _ = book.upsert_values(vec![AccountValue { value: "1.00".into(), ..v.clone() }]);
        assert!(sub.changes(&book).is_empty());
        let _ = book.upsert_values(vec![AccountValue { value: before, ..v }]);
        assert_eq!(sub.changes(&book).len(), 1);
    }
}
