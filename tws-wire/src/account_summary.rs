//! What an account-summary tag list selects: plain tags literally, and the `$LEDGER` forms
//! (`$LEDGER` the base-currency rows, `$LEDGER:ALL` every currency and `BASE`, `$LEDGER:EUR` one
//! currency). Any other `$` form selects nothing, as on a gateway.

/// Tags a gateway reports only as ledger rows (per currency, and `BASE`).
pub const LEDGER_ONLY_TAGS: [&str; 22] = [
    "CashBalance",
    "TotalCashBalance",
    "StockMarketValue",
    "OptionMarketValue",
    "FutureOptionValue",
    "FuturesPNL",
    "NetLiquidationByCurrency",
    "UnrealizedPnL",
    "RealizedPnL",
    "ExchangeRate",
    "FundValue",
    "NetDividend",
    "MutualFundValue",
    "MoneyMarketFundValue",
    "CorporateBondValue",
    "TBondValue",
    "TBillValue",
    "WarrantValue",
    "FxCashBalance",
    "AccountOrGroup",
    "RealCurrency",
    "IssuerOptionValue",
];

/// For rows whose origin is not known (a summary requested with every tag at once): a row is a
/// ledger row when its currency is `BASE` or its tag exists only in the ledger.
pub fn looks_like_ledger(tag: &str, currency: &str) -> bool {
    currency == "BASE" || LEDGER_ONLY_TAGS.contains(&tag)
}

/// Which ledger rows a `$LEDGER` tag asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ledger {
    Base,
    All,
    Currency(String),
}

impl Ledger {
    fn parse(tag: &str) -> Option<Self> {
        let rest = tag.strip_prefix("$LEDGER")?;
        if rest.is_empty() {
            return Some(Ledger::Base);
        }
        let ccy = rest.strip_prefix(':')?;
        Some(if ccy.eq_ignore_ascii_case("ALL") { Ledger::All } else { Ledger::Currency(ccy.to_ascii_uppercase()) })
    }

    fn wants(&self, currency: &str) -> bool {
        match self {
            Ledger::Base => currency == "BASE",
            Ledger::All => true,
            Ledger::Currency(c) => c == currency,
        }
    }
}

/// A request's tag list, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagSelection {
    tags: Vec<String>,
    ledger: Vec<Ledger>,
}

impl TagSelection {
    /// Parses the tags of a `reqAccountSummary`.
    pub fn parse(tags: &[String]) -> Self {
        let mut s = TagSelection::default();
        for t in tags {
            match Ledger::parse(t) {
                Some(l) => s.ledger.push(l),
                None if t.starts_with('$') => {}
                None => s.tags.push(t.clone()),
            }
        }
        s
    }

    /// Whether an account value (`is_ledger` false) or a ledger row is selected.
    pub fn wants(&self, tag: &str, currency: &str, is_ledger: bool) -> bool {
        if is_ledger { self.ledger.iter().any(|l| l.wants(currency)) } else { self.tags.iter().any(|t| t == tag) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_forms_select_currencies() {
        let sel = |t: &[&str]| TagSelection::parse(&t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(sel(&["$LEDGER"]).wants("CashBalance", "BASE", true));
        assert!(!sel(&["$LEDGER"]).wants("CashBalance", "EUR", true));
        assert!(sel(&["$LEDGER:eur"]).wants("CashBalance", "EUR", true));
        assert!(sel(&["$LEDGER:ALL"]).wants("CashBalance", "USD", true));
        assert!(!sel(&["$LEDGERX", "$OTHER", "CashBalance"]).wants("CashBalance", "USD", true));
        assert!(sel(&["NetLiquidation"]).wants("NetLiquidation", "USD", false));
        assert!(looks_like_ledger("CashBalance", "EUR") && looks_like_ledger("AccruedCash", "BASE"));
        assert!(!looks_like_ledger("AccruedCash", "USD"));
    }
}
