//! Domain rows the service keeps in memory, independent of both `ibapi` and protobuf types.

use std::time::SystemTime;

/// How much the data can be trusted right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Nothing has been received from upstream yet.
    Unknown {
        /// Why there is no data (e.g. "connecting to 127.0.0.1:4002").
        reason: String,
    },
    /// Backed by a live upstream subscription.
    Live,
    /// The last known data, kept through an outage.
    Stale {
        /// When the data stopped being live.
        since: SystemTime,
        /// Why, e.g. "IB link lost (1100)".
        reason: String,
    },
}

impl Freshness {
    /// Marks data stale now. An ongoing outage keeps its first `since` and its first reason:
    /// "stale since 01:02, link lost" stays the story while reconnect attempts come and go.
    pub fn stale_from(&self, reason: &str) -> Freshness {
        match self {
            Freshness::Stale { .. } => self.clone(),
            Freshness::Unknown { .. } => Freshness::Unknown { reason: reason.to_owned() },
            Freshness::Live => Freshness::Stale { since: SystemTime::now(), reason: reason.to_owned() },
        }
    }
}

/// A row kept in a [`crate::hub::Hub`]: identified by a key, compared by value.
pub trait Row: Clone + PartialEq + Send + Sync + std::fmt::Debug + 'static {
    /// What identifies the row.
    type Key: Ord + Clone + Send + Sync + std::fmt::Debug + 'static;
    /// This row's key.
    fn key(&self) -> Self::Key;
}

/// One managed account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// Account code.
    pub id: String,
    /// Position in the gateway's list (the API promises that order; the first is usually the
    /// primary account).
    pub order: usize,
}

impl Row for AccountRow {
    type Key = String;
    fn key(&self) -> String {
        self.id.clone()
    }
}

/// One position. Quantities and prices are decimal strings, as the API promises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PositionRow {
    /// Owning account.
    pub account: String,
    /// IB contract id.
    pub con_id: i64,
    /// Ticker symbol.
    pub symbol: String,
    /// Security type.
    pub sec_type: String,
    /// Exchange.
    pub exchange: String,
    /// Currency.
    pub currency: String,
    /// Size, decimal string.
    pub quantity: String,
    /// Average cost, decimal string.
    pub avg_cost: String,
    /// Local symbol.
    pub local_symbol: String,
    /// Expiry for derivatives.
    pub expiry: String,
    /// Strike for options, decimal string or empty.
    pub strike: String,
    /// Right for options.
    pub right: String,
    /// Multiplier, decimal string or empty.
    pub multiplier: String,
}

impl Row for PositionRow {
    type Key = (String, i64);
    fn key(&self) -> Self::Key {
        (self.account.clone(), self.con_id)
    }
}

/// One account summary value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRow {
    /// Account.
    pub account: String,
    /// Tag.
    pub tag: String,
    /// Value as sent.
    pub value: String,
    /// Currency or empty.
    pub currency: String,
}

impl Row for SummaryRow {
    type Key = (String, String, String);
    fn key(&self) -> Self::Key {
        (self.account.clone(), self.tag.clone(), self.currency.clone())
    }
}

/// One account's profit and loss (IB `reqPnL`), in the account's base currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPnlRow {
    /// Account.
    pub account: String,
    /// Today's PnL, decimal string.
    pub daily: String,
    /// Unrealized PnL, decimal string; empty when IB sends none.
    pub unrealized: String,
    /// Realized PnL, decimal string; empty when IB sends none.
    pub realized: String,
}

impl Row for AccountPnlRow {
    type Key = String;
    fn key(&self) -> String {
        self.account.clone()
    }
}

/// What one held position is worth and made (IB `reqPnLSingle`), in the account's base
/// currency. The market price is derived: value / (quantity × multiplier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionPnlRow {
    /// Account.
    pub account: String,
    /// IB contract id.
    pub con_id: i64,
    /// Size as IB reports it with the PnL, decimal string.
    pub quantity: String,
    /// Market value, decimal string.
    pub market_value: String,
    /// Market price per unit, decimal string; empty when the quantity is 0.
    pub market_price: String,
    /// Today's PnL, decimal string.
    pub daily: String,
    /// Unrealized PnL, decimal string.
    pub unrealized: String,
    /// Realized PnL, decimal string.
    pub realized: String,
}

impl Row for PositionPnlRow {
    type Key = (String, i64);
    fn key(&self) -> Self::Key {
        (self.account.clone(), self.con_id)
    }
}

/// Formats a float the way a decimal string should read: `100`, `-2`, `25.5`, never `1e3`.
pub fn decimal(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v}");
    if s.contains('e') { format!("{v:.10}").trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_never_use_exponents() {
        assert_eq!(decimal(100.0), "100");
        assert_eq!(decimal(-2.0), "-2");
        assert_eq!(decimal(25.5), "25.5");
        assert_eq!(decimal(1e21), "1000000000000000000000");
        assert_eq!(decimal(f64::NAN), "");
    }

    #[test]
    fn stale_keeps_the_first_since_and_reason() {
        let s1 = Freshness::Live.stale_from("link lost");
        let Freshness::Stale { since, .. } = s1.clone() else { panic!("stale expected") };
        let s2 = s1.stale_from("reconnecting");
        assert_eq!(s2, Freshness::Stale { since, reason: "link lost".into() });
    }
}
