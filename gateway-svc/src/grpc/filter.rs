//! Request filters: validated once, then applied to rows.

use std::collections::BTreeSet;

use super::status::ApiError;
use crate::model::{PositionRow, SummaryRow};

const MAX_ITEMS: usize = 1_000;
const MAX_LEN: usize = 64;

/// The characters one filter field accepts: ASCII letters and digits plus `extra`. Each field's
/// error message quotes its own set, so a refused value is never told it is inside the set.
#[derive(Debug, Clone, Copy)]
struct Charset {
    /// Punctuation allowed besides letters and digits, `-` last (so that `shown` reads as a regex
    /// character class).
    extra: &'static str,
}

impl Charset {
    fn allows(self, c: char) -> bool {
        c.is_ascii_alphanumeric() || self.extra.contains(c)
    }

    /// The set as error messages and docs/BAD_INPUT.md show it, e.g. `[A-Za-z0-9._-]`.
    fn shown(self) -> String {
        format!("[A-Za-z0-9{}]", self.extra)
    }
}

/// Account ids, e.g. `DU1234567`.
const ACCOUNT: Charset = Charset { extra: "._-" };
/// Symbols, e.g. `AAPL`, `BRK B`, `EUR.USD`.
const SYMBOL: Charset = Charset { extra: " ._/-" };
/// Account summary tags, e.g. `NetLiquidation`, `$LEDGER:ALL`.
const TAG: Charset = Charset { extra: "._:$-" };

fn validate(kind: &str, values: &[String], charset: Charset) -> Result<BTreeSet<String>, ApiError> {
    if values.len() > MAX_ITEMS {
        return Err(ApiError::InvalidArgument(format!(
            "at most {MAX_ITEMS} {kind}s per request, got {}",
            values.len()
        )));
    }
    values
        .iter()
        .map(|v| {
            let shown: String = v.chars().take(MAX_LEN).collect();
            if v.is_empty() {
                Err(ApiError::InvalidArgument(format!("empty {kind} in filter")))
            } else if v.len() > MAX_LEN {
                Err(ApiError::InvalidArgument(format!("{kind} {shown:?}… is longer than {MAX_LEN} bytes")))
            } else if !v.chars().all(|c| charset.allows(c)) {
                Err(ApiError::InvalidArgument(format!("{kind} {shown:?} has characters outside {}", charset.shown())))
            } else {
                Ok(v.clone())
            }
        })
        .collect()
}

/// Which positions a caller wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct PositionFilter {
    /// Accounts (empty: all).
    pub accounts: BTreeSet<String>,
    symbols: BTreeSet<String>,
}

impl PositionFilter {
    /// Validates a request's filter. Symbols are matched case-insensitively (IB's are upper case).
    pub(crate) fn new(accounts: &[String], symbols: &[String]) -> Result<Self, ApiError> {
        let accounts = validate("account", accounts, ACCOUNT)?;
        let symbols = validate("symbol", symbols, SYMBOL)?.into_iter().map(|s| s.to_ascii_uppercase()).collect();
        Ok(Self { accounts, symbols })
    }

    /// True when every row passes.
    pub(crate) fn is_all(&self) -> bool {
        self.accounts.is_empty() && self.symbols.is_empty()
    }

    /// Does the row pass?
    pub(crate) fn matches(&self, p: &PositionRow) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(&p.account))
            && (self.symbols.is_empty() || self.symbols.contains(&p.symbol.to_ascii_uppercase()))
    }
}

/// Which summary values a caller wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct SummaryFilter {
    /// Accounts (empty: all).
    pub accounts: BTreeSet<String>,
    tags: BTreeSet<String>,
}

impl SummaryFilter {
    /// Validates a request's filter.
    pub(crate) fn new(accounts: &[String], tags: &[String]) -> Result<Self, ApiError> {
        Ok(Self { accounts: validate("account", accounts, ACCOUNT)?, tags: validate("tag", tags, TAG)? })
    }

    /// True when every row passes.
    pub(crate) fn is_all(&self) -> bool {
        self.accounts.is_empty() && self.tags.is_empty()
    }

    /// Does the row pass?
    pub(crate) fn matches(&self, s: &SummaryRow) -> bool {
        (self.accounts.is_empty() || self.accounts.contains(&s.account))
            && (self.tags.is_empty() || self.tags.contains(&s.tag))
    }
}

/// Which accounts' rows a caller wants (the PnL kinds filter by account only).
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountFilter {
    /// Accounts (empty: all).
    pub accounts: BTreeSet<String>,
}

impl AccountFilter {
    /// Validates a request's filter.
    pub(crate) fn new(accounts: &[String]) -> Result<Self, ApiError> {
        Ok(Self { accounts: validate("account", accounts, ACCOUNT)? })
    }

    /// True when every row passes.
    pub(crate) fn is_all(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Does a row of `account` pass?
    pub(crate) fn matches(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.contains(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rejects_malformed_filters() {
        assert!(PositionFilter::new(&v(&[""]), &[]).is_err());
        assert!(PositionFilter::new(&[], &v(&["AAPL;DROP"])).is_err());
        assert!(PositionFilter::new(&[], &[String::from("A").repeat(65)]).is_err());
        assert!(PositionFilter::new(&[], &vec!["A".to_string(); 1001]).is_err());
        assert!(SummaryFilter::new(&[], &v(&["$LEDGER:ALL", "NetLiquidation"])).is_ok());
    }

    #[test]
    fn every_set_reads_as_a_character_class() {
        for set in [ACCOUNT, SYMBOL, TAG] {
            assert!(!set.extra.contains(|c: char| c.is_ascii_alphanumeric()), "{set:?}");
            let dash = set.extra.find('-');
            assert!(dash.is_none() || dash == Some(set.extra.len() - 1), "`-` goes last: {set:?}");
            assert!(!set.extra.contains([']', '\\', '^']), "{set:?}");
        }
    }

    #[test]
    fn symbols_match_case_insensitively() {
        let f = PositionFilter::new(&[], &v(&["aapl"])).expect("valid");
        let row = PositionRow {
            account: "DU1".into(),
            con_id: 1,
            symbol: "AAPL".into(),
            sec_type: "STK".into(),
            exchange: String::new(),
            currency: "USD".into(),
            quantity: "1".into(),
            avg_cost: "1".into(),
            local_symbol: String::new(),
            expiry: String::new(),
            strike: String::new(),
            right: String::new(),
            multiplier: String::new(),
        };
        assert!(f.matches(&row));
        assert!(!PositionFilter::new(&v(&["DU2"]), &[]).expect("valid").matches(&row));
    }
}
