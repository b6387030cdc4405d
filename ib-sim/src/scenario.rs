//! The scripted world: accounts, positions, account values and scheduled faults, read from TOML.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::farm::Farm;
use crate::fault::Fault;
use crate::prices::{PriceWalk, ScheduledTick, check_price};

/// The built-in scenario: two paper accounts, stocks, an ETF and an option.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.toml");

/// Everything the simulator starts from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Highest API version to negotiate (a real gateway build has one; 226 today).
    #[serde(default = "default_server_version")]
    pub server_version: u32,
    /// Simultaneous API clients allowed; the next one is accepted and closed at once.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Cadence of account-summary updates: after the first full answer, the values that changed
    /// since the last batch are sent once per period (a gateway's period is 3 minutes).
    #[serde(default = "default_summary_refresh_ms")]
    pub account_summary_refresh_ms: u64,
    /// How often a PnL subscription gets an update.
    #[serde(default = "default_pnl_interval_ms")]
    pub pnl_interval_ms: u64,
    /// First order id handed out in `nextValidId`.
    #[serde(default = "default_next_valid_id")]
    pub next_valid_id: i32,
    /// Managed accounts, in the order the gateway lists them.
    pub accounts: Vec<Account>,
    /// Open positions.
    #[serde(default)]
    pub positions: Vec<Position>,
    /// Account values: the rows of account summary and account updates.
    #[serde(default)]
    pub account_values: Vec<AccountValue>,
    /// Per-currency cash-balance rows, reported for the `$LEDGER` tags of account summary and by
    /// account updates.
    #[serde(default)]
    pub ledger: Vec<LedgerValue>,
    /// Data farms, reported by name after START_API (a US paper account's farms when absent).
    #[serde(default = "crate::farm::default_farms")]
    pub farms: Vec<Farm>,
    /// Faults to inject on a timetable (for soak tests).
    #[serde(default)]
    pub schedule: Vec<ScheduledFault>,
    /// Price changes on a timetable: each reprices one contract at `at_ms` after start.
    #[serde(default)]
    pub price_ticks: Vec<ScheduledTick>,
    /// A seeded random walk of the market prices from start; absent (the default) keeps prices
    /// still.
    #[serde(default)]
    pub price_walk: Option<PriceWalk>,
}

fn default_server_version() -> u32 {
    tws_wire::frame::SERVER_MAX_VERSION
}
fn default_max_clients() -> usize {
    32
}
fn default_summary_refresh_ms() -> u64 {
    180_000
}
fn default_pnl_interval_ms() -> u64 {
    1_000
}
fn default_next_valid_id() -> i32 {
    1
}

/// One managed account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Account code, e.g. `DU1234567`.
    pub id: String,
    /// Today's PnL reported by `reqPnL`.
    #[serde(default)]
    pub daily_pnl: f64,
    /// Realized PnL reported by `reqPnL`.
    #[serde(default)]
    pub realized_pnl: f64,
}

/// One position, keyed by account and contract id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Owning account.
    pub account: String,
    /// IB contract id.
    pub con_id: i32,
    /// Ticker symbol.
    pub symbol: String,
    /// `STK`, `OPT`, `FUT`, …
    #[serde(default = "default_sec_type")]
    pub sec_type: String,
    /// Routing exchange as positions report it.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Primary listing exchange (portfolio rows report this one).
    #[serde(default)]
    pub primary_exchange: String,
    /// Currency.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Position size as a decimal string (fractional shares exist).
    pub quantity: String,
    /// Average cost per unit, multiplier included, as IB reports it.
    pub avg_cost: f64,
    /// Last price, for portfolio rows and PnL.
    #[serde(default)]
    pub market_price: f64,
    /// Options and futures: expiry `YYYYMMDD`.
    #[serde(default)]
    pub expiry: String,
    /// Options: strike.
    #[serde(default)]
    pub strike: f64,
    /// Options: `C` or `P`.
    #[serde(default)]
    pub right: String,
    /// Contract multiplier; 0 when there is none (stocks).
    #[serde(default)]
    pub multiplier: f64,
    /// Local symbol; defaults to the symbol.
    #[serde(default)]
    pub local_symbol: String,
    /// Trading class; defaults to the symbol.
    #[serde(default)]
    pub trading_class: String,
}

fn default_sec_type() -> String {
    "STK".into()
}
fn default_exchange() -> String {
    "SMART".into()
}
fn default_currency() -> String {
    "USD".into()
}

impl Position {
    /// Quantity as a number, for valuations. Validated at load time.
    pub fn quantity_f64(&self) -> f64 {
        self.quantity.parse().unwrap_or(0.0)
    }

    /// The multiplier valuations use (1 when unset).
    pub fn effective_multiplier(&self) -> f64 {
        if self.multiplier > 0.0 { self.multiplier } else { 1.0 }
    }

    /// Market value as a portfolio row reports it.
    pub fn market_value(&self) -> f64 {
        self.quantity_f64() * self.market_price * self.effective_multiplier()
    }

    /// Unrealized PnL: market value minus cost basis.
    pub fn unrealized_pnl(&self) -> f64 {
        self.market_value() - self.quantity_f64() * self.avg_cost
    }
}

/// One account value row (`NetLiquidation`, `BuyingPower`, …).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountValue {
    /// Owning account.
    pub account: String,
    /// Tag name as IB spells it.
    pub tag: String,
    /// Value as text (IB sends text; most are decimal numbers).
    pub value: String,
    /// Currency, or "" for unitless tags.
    #[serde(default)]
    pub currency: String,
}

/// One ledger row: a cash-balance tag of one account in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LedgerValue {
    /// Owning account.
    pub account: String,
    /// `BASE` for the base-currency totals, otherwise a currency code such as `EUR`.
    pub currency: String,
    /// Tag name as IB spells it, e.g. `CashBalance`.
    pub tag: String,
    /// Value as text.
    pub value: String,
}

/// Checks one ledger row against the account list.
pub(crate) fn validate_ledger(v: &LedgerValue, known: &dyn Fn(&str) -> bool) -> Result<(), ScenarioError> {
    if !known(&v.account) {
        return Err(ScenarioError::Invalid(format!("ledger row {} names unknown account {}", v.tag, v.account)));
    }
    if v.currency.is_empty() || v.tag.is_empty() {
        return Err(ScenarioError::Invalid(format!(
            "ledger row of {} needs a currency and a tag (got {:?} and {:?})",
            v.account, v.currency, v.tag
        )));
    }
    Ok(())
}

/// A fault injected at a time offset from start, optionally repeated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// Milliseconds after the simulator starts.
    pub at_ms: u64,
    /// Repeat period; absent for a one-off.
    #[serde(default)]
    pub every_ms: Option<u64>,
    /// How many times in all (with `every_ms`); absent means until the simulator stops.
    #[serde(default)]
    pub count: Option<u64>,
    /// What to inject.
    pub fault: Fault,
}

/// Why a scenario cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}")]
    Read {
        /// Path given.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The TOML does not match the format.
    #[error("invalid scenario")]
    Parse(#[from] toml::de::Error),
    /// The content is inconsistent.
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

impl Default for Scenario {
    fn default() -> Self {
        // The embedded file is tested below; failing here would be a build defect.
        #[allow(clippy::expect_used)]
        Scenario::from_toml(DEFAULT_SCENARIO).expect("built-in scenario is valid")
    }
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// Checks references and decimal quantities.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |m: String| Err(ScenarioError::Invalid(m));
        if self.accounts.is_empty() {
            return invalid("at least one account is required".into());
        }
        if self.server_version < 100 || self.server_version > tws_wire::frame::SERVER_MAX_VERSION {
            return invalid(format!("server_version {} is outside 100..=226", self.server_version));
        }
        let known = |a: &str| self.accounts.iter().any(|x| x.id == a);
        for p in &self.positions {
            validate_position(p, &known)?;
        }
        for v in &self.account_values {
            if !known(&v.account) {
                return invalid(format!("account value {} names unknown account {}", v.tag, v.account));
            }
        }
        for v in &self.ledger {
            validate_ledger(v, &known)?;
        }
        crate::farm::validate(&self.farms).map_err(ScenarioError::Invalid)?;
        for item in &self.schedule {
            if let Fault::Farm { name, .. } = &item.fault
                && !self.farms.iter().any(|f| &f.name == name)
            {
                return invalid(format!("scheduled farm fault names unknown farm {name}"));
            }
        }
        for t in &self.price_ticks {
            check_price(t.con_id, t.price).map_err(ScenarioError::Invalid)?;
            if !self.positions.iter().any(|p| p.con_id == t.con_id) {
                return invalid(format!(
                    "price tick at {} ms names con_id {}, which no position holds",
                    t.at_ms, t.con_id
                ));
            }
        }
        if let Some(walk) = &self.price_walk {
            walk.validate().map_err(ScenarioError::Invalid)?;
        }
        Ok(())
    }
}

/// Checks one position against the account list and the decimal format.
pub(crate) fn validate_position(p: &Position, known: &dyn Fn(&str) -> bool) -> Result<(), ScenarioError> {
    if !known(&p.account) {
        return Err(ScenarioError::Invalid(format!("position {} names unknown account {}", p.symbol, p.account)));
    }
    if !is_decimal(&p.quantity) {
        return Err(ScenarioError::Invalid(format!(
            "position {} quantity {:?} is not a decimal number",
            p.symbol, p.quantity
        )));
    }
    Ok(())
}

/// True for `-12`, `0.5`, `100.0`: what IB sends as a Decimal.
pub(crate) fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let mut parts = digits.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_is_rich_enough() {
        let s = Scenario::default();
        assert!(s.accounts.len() >= 2);
        assert!(s.positions.len() >= 5);
        for kind in ["STK", "OPT"] {
            assert!(s.positions.iter().any(|p| p.sec_type == kind), "{kind} missing");
        }
        assert!(s.positions.iter().any(|p| p.symbol == "SPY"), "an ETF is part of the default");
        assert_eq!(s.farms, crate::farm::default_farms(), "the file lists the same farms as the built-in default");
        for a in &s.accounts {
            for ccy in ["BASE", "USD", "EUR"] {
                assert!(
                    s.ledger.iter().any(|l| l.account == a.id && l.currency == ccy),
                    "{} has no {ccy} ledger",
                    a.id
                );
            }
        }
        assert_eq!(s.account_summary_refresh_ms, 180_000, "a gateway's cadence is 3 minutes");
        assert!(s.price_walk.is_none() && s.price_ticks.is_empty(), "prices stand still unless asked to move");
    }

    #[test]
    fn price_ticks_and_walks_are_validated() {
        let base =
            "[[accounts]]\nid='A'\n[[positions]]\naccount='A'\ncon_id=1\nsymbol='X'\nquantity='1'\navg_cost=1.0\n";
        let walk = Scenario::from_toml(&format!("{base}[price_walk]\nseed=7\ninterval_ms=500\n")).ok();
        assert_eq!(
            walk.and_then(|s| s.price_walk),
            Some(PriceWalk { seed: 7, interval_ms: 500, ..PriceWalk::default() })
        );
        assert!(Scenario::from_toml(&format!("{base}[price_walk]\ninterval_ms=0\n")).is_err());
        assert!(Scenario::from_toml(&format!("{base}[price_walk]\nspeed=1\n")).is_err());
        let tick = format!("{base}[[price_ticks]]\nat_ms=10\ncon_id=1\nprice=2.5\n");
        assert_eq!(Scenario::from_toml(&tick).ok().map(|s| s.price_ticks.len()), Some(1));
        assert!(Scenario::from_toml(&tick.replace("con_id=1\nprice", "con_id=2\nprice")).is_err());
        assert!(Scenario::from_toml(&tick.replace("2.5", "-2.5")).is_err());
    }

    #[test]
    fn farms_default_when_absent_and_are_validated() {
        let minimal = Scenario::from_toml("[[accounts]]\nid='A'").ok().map(|s| s.farms);
        assert_eq!(minimal, Some(crate::farm::default_farms()));
        let none = Scenario::from_toml("farms = []\n[[accounts]]\nid='A'").ok().map(|s| s.farms.len());
        assert_eq!(none, Some(0));
        let farm = "[[farms]]\nname='secdefil'\nkind='secdef'\nstate='inactive'\n";
        assert!(Scenario::from_toml(&format!("{farm}[[accounts]]\nid='A'")).is_err());
        assert!(Scenario::from_toml(&format!("{}[[accounts]]\nid='A'", farm.replace("inactive", "broken"))).is_ok());
        assert!(Scenario::from_toml(&format!("{}[[accounts]]\nid='A'", farm.replace("secdef'", "tape'"))).is_err());
        let scheduled = "[[accounts]]\nid='A'\n[[schedule]]\nat_ms=1\nfault={kind='farm',name='nope',state='ok'}";
        assert!(Scenario::from_toml(scheduled).is_err());
        assert!(Scenario::from_toml(&scheduled.replace("nope", "usfarm")).is_ok());
        let ledger = "[[accounts]]\nid='A'\n[[ledger]]\naccount='B'\ncurrency='EUR'\ntag='CashBalance'\nvalue='1'";
        assert!(Scenario::from_toml(ledger).is_err());
        assert!(Scenario::from_toml(&ledger.replace("'B'", "'A'")).is_ok());
        assert!(Scenario::from_toml(&ledger.replace("'B'", "'A'").replace("'EUR'", "''")).is_err());
    }

    #[test]
    fn rejects_inconsistent_scenarios() {
        let bad_account = r#"
            [[accounts]]
            id = "DU1"
            [[positions]]
            account = "DU2"
            con_id = 1
            symbol = "X"
            quantity = "1"
            avg_cost = 1.0
        "#;
        assert!(Scenario::from_toml(bad_account).is_err());
        assert!(Scenario::from_toml(&bad_account.replace("DU2", "DU1")).is_ok());
        assert!(Scenario::from_toml(&bad_account.replace("DU2", "DU1").replace("\"1\"", "\"1e3\"")).is_err());
        assert!(Scenario::from_toml("accounts = []").is_err());
        assert!(Scenario::from_toml("[[accounts]]\nid='A'\nbogus=1").is_err());
    }

    #[test]
    fn decimals() {
        for ok in ["0", "-12", "100.25", "0.001"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", "-", "1.", ".5", "1e3", "abc", "1.2.3"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
