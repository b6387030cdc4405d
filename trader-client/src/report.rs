//! The report: per account, the summary, the account's profit and loss, and each requested
//! symbol's positions with their value and profit and loss, all with freshness.
//!
//! PnL amounts are in the account's base currency, which IB labels "BASE". They are shown as
//! gateway-svc serves them (decimal strings in JSON), never added to or divided by amounts in
//! another currency. Missing PnL, or PnL stale for longer than `--max-staleness`, is "n/a" with
//! the reason, never 0.

use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use serde::Serialize;

/// Everything one run prints.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// gateway-svc address.
    pub gateway: String,
    /// Session state name.
    pub session_state: String,
    /// Upstream session generation.
    pub session_epoch: u64,
    /// Freshness of the positions.
    pub freshness: Freshness,
    /// Freshness of the account and position PnL.
    pub pnl_freshness: PnlFreshness,
    /// One entry per account.
    pub accounts: Vec<AccountReport>,
}

/// Freshness as printed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Freshness {
    /// LIVE, STALE or UNKNOWN.
    pub state: String,
    /// RFC 3339 time the data went stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When upstream last confirmed the data (RFC 3339).
    pub as_of: Option<String>,
}

/// Freshness of the two PnL kinds (UNKNOWN, with the reason, when gateway-svc has none).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PnlFreshness {
    /// Account PnL (GetAccountPnl).
    pub accounts: Freshness,
    /// Position values and PnL (GetPositionPnl).
    pub positions: Freshness,
}

/// One account.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountReport {
    /// Account code.
    pub id: String,
    /// Summary values by tag: (value, currency).
    pub summary: Vec<SummaryLine>,
    /// The account's PnL; `null` when there is none to show (see `pnl_unavailable`).
    pub pnl: Option<AccountPnlLine>,
    /// Why there is no PnL, e.g. "no PnL yet".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pnl_unavailable: Option<String>,
    /// One line per requested symbol (possibly several for one symbol: stock and options).
    pub lines: Vec<Line>,
}

/// One summary value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryLine {
    /// Tag.
    pub tag: String,
    /// Value.
    pub value: String,
    /// Currency.
    pub currency: String,
}

/// An account's profit and loss (IB reqPnL), decimal strings in `currency`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountPnlLine {
    /// LIVE, or STALE (for no longer than `--max-staleness`).
    pub state: String,
    /// "BASE": the account's base currency, as IB reports PnL.
    pub currency: String,
    /// Since the start of the trading day.
    pub daily_pnl: Option<String>,
    /// Of the open positions; `null` when IB sends none.
    pub unrealized_pnl: Option<String>,
    /// Realized today; `null` when IB sends none.
    pub realized_pnl: Option<String>,
}

/// A position's value and profit and loss (IB reqPnLSingle), decimal strings in `currency`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PositionPnlLine {
    /// LIVE, or STALE (for no longer than `--max-staleness`).
    pub state: String,
    /// "BASE": the account's base currency, as IB reports PnL.
    pub currency: String,
    /// The size these figures are for (the position's quantity).
    pub quantity: String,
    /// Market value.
    pub market_value: Option<String>,
    /// Market price per unit (without the multiplier); `null` when the quantity is 0.
    pub market_price: Option<String>,
    /// Since the position was opened.
    pub unrealized_pnl: Option<String>,
    /// Since the start of the trading day.
    pub daily_pnl: Option<String>,
    /// Realized.
    pub realized_pnl: Option<String>,
}

/// One symbol's position in an account.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// Symbol.
    pub symbol: String,
    /// Contract description (`STK`, `OPT 20270115 200 C`).
    pub contract: String,
    /// Quantity as a decimal string; "0" when there is no position.
    pub quantity: String,
    /// Average cost as a decimal string; empty when there is no position.
    pub avg_cost: String,
    /// Currency of the position (of its average cost); empty when there is no position.
    pub currency: String,
    /// Market value as a share of net liquidation, in percent: the position's value from its PnL
    /// row (in the account's base currency) over the account's net liquidation (which IB reports
    /// in the base currency too). Never computed from the cost basis, which is not what the
    /// position is worth.
    pub share_of_net_liquidation_pct: Option<f64>,
    /// Why there is no share when a position exists, e.g. "no market value: no PnL yet" or
    /// "NetLiquidation in EUR, USD" (no one base-currency figure to divide by).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_unavailable: Option<String>,
    /// The position's value and PnL; `null` without a position or when there is none to show.
    pub pnl: Option<PositionPnlLine>,
    /// Why a held position has no PnL, e.g. "no PnL yet".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pnl_unavailable: Option<String>,
}

/// gateway-svc's answer to a PnL call, or why it gave none. A run never fails for want of PnL:
/// the report says n/a.
#[derive(Debug, Clone, PartialEq)]
pub enum Pnl<T> {
    /// The answer.
    Served(T),
    /// None yet (UNAVAILABLE until gateway-svc has the first full set): its reason.
    NotYet(String),
    /// This gateway-svc serves no PnL (UNIMPLEMENTED: an older version).
    NotServed,
}

/// What one run collected from gateway-svc.
#[derive(Debug, Clone, Copy)]
pub struct Answers<'a> {
    /// Session health.
    pub health: &'a pb::Health,
    /// ListAccounts.
    pub accounts: &'a pb::ListAccountsResponse,
    /// GetPositions.
    pub positions: &'a pb::GetPositionsResponse,
    /// GetAccountSummary.
    pub summary: &'a pb::GetAccountSummaryResponse,
    /// GetAccountPnl.
    pub account_pnl: &'a Pnl<pb::GetAccountPnlResponse>,
    /// GetPositionPnl.
    pub position_pnl: &'a Pnl<pb::GetPositionPnlResponse>,
}

/// What the report is about.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Symbols (`--symbols`).
    pub symbols: &'a [String],
    /// Only this account (`--account`).
    pub account: Option<&'a str>,
    /// PnL stale for longer than this is n/a (`--max-staleness`).
    pub max_staleness: Duration,
    /// When staleness is measured.
    pub now: SystemTime,
}

fn ts(t: Option<prost_types::Timestamp>) -> Option<String> {
    let t = SystemTime::try_from(t?).ok()?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

fn freshness(f: Option<&pb::Freshness>, as_of: Option<prost_types::Timestamp>) -> Freshness {
    let f = f.cloned().unwrap_or_default();
    let state = match pb::FreshnessState::try_from(f.state) {
        Ok(pb::FreshnessState::Live) => "LIVE",
        Ok(pb::FreshnessState::Stale) => "STALE",
        _ => "UNKNOWN",
    };
    Freshness { state: state.into(), since: ts(f.since), reason: f.reason, as_of: ts(as_of) }
}

/// Why PnL cannot be shown at all, in a row ("n/a (…)").
const NOT_YET: &str = "no PnL yet";
const NOT_SERVED: &str = "this gateway-svc serves no PnL";

fn pnl_freshness<T>(
    answer: &Pnl<T>,
    of: impl Fn(&T) -> (Option<&pb::Freshness>, Option<prost_types::Timestamp>),
) -> Freshness {
    match answer {
        Pnl::Served(r) => {
            let (f, as_of) = of(r);
            freshness(f, as_of)
        }
        Pnl::NotYet(reason) => {
            Freshness { state: "UNKNOWN".into(), since: None, reason: format!("{NOT_YET}: {reason}"), as_of: None }
        }
        Pnl::NotServed => Freshness { state: "UNKNOWN".into(), since: None, reason: NOT_SERVED.into(), as_of: None },
    }
}

/// Whether rows of a PnL kind may be shown: `Ok(LIVE or STALE)`, or why not. PnL stale for
/// longer than `--max-staleness` is withheld, as that flag refuses any older data.
fn usable<T>(answer: &Pnl<T>, fresh: Option<&pb::Freshness>, wanted: &Wanted<'_>) -> Result<&'static str, String> {
    match answer {
        Pnl::Served(_) => {}
        Pnl::NotYet(_) => return Err(NOT_YET.into()),
        Pnl::NotServed => return Err(NOT_SERVED.into()),
    }
    let Some(f) = fresh else { return Err(NOT_YET.into()) };
    match pb::FreshnessState::try_from(f.state) {
        Ok(pb::FreshnessState::Live) => Ok("LIVE"),
        Ok(pb::FreshnessState::Stale) => {
            let since = f.since.and_then(|t| SystemTime::try_from(t).ok());
            let age = since.map(|s| wanted.now.duration_since(s).unwrap_or_default());
            match age {
                Some(age) if age <= wanted.max_staleness => Ok("STALE"),
                _ => Err(format!(
                    "PnL stale since {}, longer than --max-staleness",
                    ts(f.since).unwrap_or_else(|| "an unknown time".into())
                )),
            }
        }
        _ => Err(NOT_YET.into()),
    }
}

/// An empty string (IB sent no value) is `None`, never 0.
fn amount(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn base(currency: &str) -> String {
    if currency.is_empty() { "BASE".into() } else { currency.to_owned() }
}

impl Report {
    /// Assembles the report from the service's answers.
    pub fn build(gateway: &str, answers: &Answers<'_>, wanted: &Wanted<'_>) -> Report {
        let health = answers.health;
        let state =
            pb::SessionState::try_from(health.state).map(|s| s.as_str_name()).unwrap_or("SESSION_STATE_UNSPECIFIED");
        let accounts = answers
            .accounts
            .accounts
            .iter()
            .filter(|a| wanted.account.is_none_or(|o| o == a.id))
            .map(|a| account(&a.id, answers, wanted))
            .collect();
        let positions = answers.positions;
        Report {
            gateway: gateway.to_owned(),
            session_state: state.trim_start_matches("SESSION_STATE_").to_owned(),
            session_epoch: positions.session_epoch,
            freshness: freshness(positions.freshness.as_ref(), positions.as_of),
            pnl_freshness: PnlFreshness {
                accounts: pnl_freshness(answers.account_pnl, |r| (r.freshness.as_ref(), r.as_of)),
                positions: pnl_freshness(answers.position_pnl, |r| (r.freshness.as_ref(), r.as_of)),
            },
            accounts,
        }
    }

    /// Human-readable text.
    pub fn text(&self) -> String {
        let f = &self.freshness;
        let mut out = format!(
            "gateway-svc {}  session {} epoch {}  data {}\n",
            self.gateway,
            self.session_state,
            self.session_epoch,
            describe(f)
        );
        out.push_str(&format!(
            "PnL in each account's base currency (BASE): accounts {}, positions {}\n",
            describe(&self.pnl_freshness.accounts),
            describe(&self.pnl_freshness.positions)
        ));
        for a in &self.accounts {
            out.push_str(&format!("\nAccount {}\n", a.id));
            for s in &a.summary {
                out.push_str(&format!("  {:<16} {:>14} {}\n", s.tag, s.value, s.currency));
            }
            match (&a.pnl, &a.pnl_unavailable) {
                (Some(p), _) => out.push_str(&format!(
                    "  {:<16} daily {}  unrealized {}  realized {}  {}\n",
                    format!("PnL in {}", p.currency),
                    signed(p.daily_pnl.as_deref()),
                    signed(p.unrealized_pnl.as_deref()),
                    signed(p.realized_pnl.as_deref()),
                    p.state
                )),
                (None, why) => out.push_str(&format!("  {:<16} {}\n", "PnL", na(why.as_deref()))),
            }
            for l in &a.lines {
                let share = match (l.share_of_net_liquidation_pct, &l.share_unavailable) {
                    (Some(p), _) => format!("{p:>6.2}% of NLV"),
                    (None, Some(why)) => format!("n/a ({why})"),
                    (None, None) => String::new(),
                };
                if l.avg_cost.is_empty() {
                    out.push_str(&format!("  {:<6} no position\n", l.symbol));
                    continue;
                }
                out.push_str(&format!(
                    "  {:<6} {:<22} qty {:>10}  avg cost {:>12} {:<3}  {share}  {}\n",
                    l.symbol, l.contract, l.quantity, l.avg_cost, l.currency, f.state
                ));
                match (&l.pnl, &l.pnl_unavailable) {
                    (Some(p), _) => out.push_str(&format!(
                        "  {:<6} PnL in {}  value {}  price {}  unrealized {}  daily {}  {}\n",
                        "",
                        p.currency,
                        plain(p.market_value.as_deref()),
                        price(p.market_price.as_deref()),
                        signed(p.unrealized_pnl.as_deref()),
                        signed(p.daily_pnl.as_deref()),
                        p.state
                    )),
                    (None, why) => out.push_str(&format!("  {:<6} PnL {}\n", "", na(why.as_deref()))),
                }
            }
        }
        out
    }
}

/// "LIVE as of …", "STALE since … (reason)", "UNKNOWN (reason)".
fn describe(f: &Freshness) -> String {
    match (&f.since, &f.as_of) {
        (Some(since), _) => format!("{} since {since} ({})", f.state, f.reason),
        (None, Some(as_of)) => format!("{} as of {as_of}", f.state),
        _ if !f.reason.is_empty() => format!("{} ({})", f.state, f.reason),
        _ => f.state.clone(),
    }
}

fn na(why: Option<&str>) -> String {
    format!("n/a ({})", why.unwrap_or(NOT_YET))
}

/// Two decimals, and a sign on anything but zero when `signed` ("+412.35", "-88.10", "0.00").
/// Display only: JSON carries gateway-svc's decimal strings untouched.
fn two_decimals(v: Option<&str>, signed: bool) -> String {
    let Some(s) = v else { return "n/a".into() };
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => {
            let digits = format!("{:.2}", x.abs());
            if digits.bytes().all(|b| b == b'0' || b == b'.') {
                digits
            } else if x < 0.0 {
                format!("-{digits}")
            } else if signed {
                format!("+{digits}")
            } else {
                digits
            }
        }
        _ => s.to_owned(),
    }
}

fn signed(v: Option<&str>) -> String {
    two_decimals(v, true)
}

fn plain(v: Option<&str>) -> String {
    two_decimals(v, false)
}

/// A price: at least two decimals, at most six, trailing zeros dropped.
fn price(v: Option<&str>) -> String {
    let Some(s) = v else { return "n/a".into() };
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => {
            let six = format!("{x:.6}");
            let trimmed = six.trim_end_matches('0');
            let decimals = trimmed.len() - trimmed.find('.').map_or(trimmed.len(), |i| i + 1);
            if decimals < 2 { format!("{x:.2}") } else { trimmed.to_owned() }
        }
        _ => s.to_owned(),
    }
}

fn account(id: &str, answers: &Answers<'_>, wanted: &Wanted<'_>) -> AccountReport {
    let (positions, summary) = (answers.positions, answers.summary);
    // Every row of each tag: the summary can hold one per currency (IB's "BASE", "USD", "EUR"…).
    let summary_lines: Vec<SummaryLine> = crate::fetch::TAGS
        .iter()
        .flat_map(|tag| {
            summary.values.iter().filter(move |v| v.account == id && v.tag == *tag).map(|v| SummaryLine {
                tag: v.tag.clone(),
                value: v.value.clone(),
                currency: v.currency.clone(),
            })
        })
        .collect();
    let nlv: Vec<&SummaryLine> = summary_lines.iter().filter(|s| s.tag == "NetLiquidation").collect();
    let (pnl, pnl_unavailable) = match account_pnl(id, answers.account_pnl, wanted) {
        Ok(p) => (Some(p), None),
        Err(why) => (None, Some(why)),
    };
    let mut lines = Vec::new();
    for sym in wanted.symbols {
        let held: Vec<&pb::Position> =
            positions.positions.iter().filter(|p| p.account == id && p.symbol.eq_ignore_ascii_case(sym)).collect();
        if held.is_empty() {
            lines.push(Line {
                symbol: sym.to_ascii_uppercase(),
                contract: String::new(),
                quantity: "0".into(),
                avg_cost: String::new(),
                currency: String::new(),
                share_of_net_liquidation_pct: None,
                share_unavailable: None,
                pnl: None,
                pnl_unavailable: None,
            });
        }
        for p in held {
            let contract = if p.sec_type == "OPT" || p.sec_type == "FOP" {
                format!("{} {} {} {}", p.sec_type, p.expiry, p.strike, p.right)
            } else {
                p.sec_type.clone()
            };
            let (pnl, pnl_unavailable) = match position_pnl(p, answers.position_pnl, wanted) {
                Ok(v) => (Some(v), None),
                Err(why) => (None, Some(why)),
            };
            let (share, unavailable) = match share_of_nlv(pnl.as_ref(), pnl_unavailable.as_deref(), &nlv) {
                Ok(pct) => (Some(pct), None),
                Err(why) => (None, Some(why)),
            };
            lines.push(Line {
                symbol: p.symbol.clone(),
                contract,
                quantity: p.quantity.clone(),
                avg_cost: p.avg_cost.clone(),
                currency: p.currency.clone(),
                share_of_net_liquidation_pct: share,
                share_unavailable: unavailable,
                pnl,
                pnl_unavailable,
            });
        }
    }
    AccountReport { id: id.to_owned(), summary: summary_lines, pnl, pnl_unavailable, lines }
}

/// The account's PnL row, or why there is none to show.
fn account_pnl(
    id: &str,
    answer: &Pnl<pb::GetAccountPnlResponse>,
    wanted: &Wanted<'_>,
) -> Result<AccountPnlLine, String> {
    let fresh = match answer {
        Pnl::Served(r) => r.freshness.as_ref(),
        _ => None,
    };
    let state = usable(answer, fresh, wanted)?;
    let Pnl::Served(r) = answer else { return Err(NOT_YET.into()) };
    let row = r.accounts.iter().find(|a| a.account == id).ok_or_else(|| "no PnL for this account".to_owned())?;
    Ok(AccountPnlLine {
        state: state.into(),
        currency: base(&row.currency),
        daily_pnl: amount(&row.daily_pnl),
        unrealized_pnl: amount(&row.unrealized_pnl),
        realized_pnl: amount(&row.realized_pnl),
    })
}

/// The position's value and PnL (joined by account and contract id), or why there is none to
/// show. Figures for another size than the position's (one of the two has not caught up with a
/// trade yet) are not the position's, so they are withheld too.
fn position_pnl(
    p: &pb::Position,
    answer: &Pnl<pb::GetPositionPnlResponse>,
    wanted: &Wanted<'_>,
) -> Result<PositionPnlLine, String> {
    let fresh = match answer {
        Pnl::Served(r) => r.freshness.as_ref(),
        _ => None,
    };
    let state = usable(answer, fresh, wanted)?;
    let Pnl::Served(r) = answer else { return Err(NOT_YET.into()) };
    let row = r
        .positions
        .iter()
        .find(|v| v.account == p.account && v.con_id == p.con_id)
        .ok_or_else(|| "no PnL for this position".to_owned())?;
    if let (Ok(a), Ok(b)) = (row.quantity.parse::<f64>(), p.quantity.parse::<f64>())
        && a != b
    {
        return Err(format!("PnL is for quantity {}, the position is {}", row.quantity, p.quantity));
    }
    Ok(PositionPnlLine {
        state: state.into(),
        currency: base(&row.currency),
        quantity: row.quantity.clone(),
        market_value: amount(&row.market_value),
        market_price: amount(&row.market_price),
        unrealized_pnl: amount(&row.unrealized_pnl),
        daily_pnl: amount(&row.daily_pnl),
        realized_pnl: amount(&row.realized_pnl),
    })
}

/// The position's market value as a percentage of the account's net liquidation. Both are in the
/// account's base currency: the value from the position's PnL row ("BASE"), and the
/// `NetLiquidation` row, which IB sends once per account in its base currency. Where an account
/// reports several `NetLiquidation` rows, only the one labelled "BASE" is the base figure; with
/// none of them there is nothing to divide by. Without a usable market value there is no share: the
/// cost basis would state what was paid, not what the position is worth.
fn share_of_nlv(pnl: Option<&PositionPnlLine>, pnl_missing: Option<&str>, nlv: &[&SummaryLine]) -> Result<f64, String> {
    let base = match nlv {
        [] => return Err("no NetLiquidation".to_owned()),
        [one] => *one,
        several => several.iter().find(|n| n.currency == "BASE").copied().ok_or_else(|| {
            let listed: Vec<&str> = several
                .iter()
                .map(|n| if n.currency.is_empty() { "no currency" } else { n.currency.as_str() })
                .collect();
            format!("NetLiquidation in {}, none in BASE", listed.join(", "))
        })?,
    };
    let value = match pnl.and_then(|p| p.market_value.as_deref()) {
        Some(v) => v,
        None => return Err(format!("no market value: {}", pnl_missing.unwrap_or("none reported"))),
    };
    let value = value.parse::<f64>().map_err(|_| format!("market value {value:?} is not a number"))?;
    match base.value.parse::<f64>() {
        Ok(v) if v != 0.0 && v.is_finite() => Ok((value / v * 10_000.0).round() / 100.0),
        _ => Err(format!("NetLiquidation {:?} {}", base.value, base.currency)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(tag: &str, value: &str, currency: &str) -> pb::SummaryValue {
        pb::SummaryValue { account: "DU1".into(), tag: tag.into(), value: value.into(), currency: currency.into() }
    }

    fn position(symbol: &str, quantity: &str, avg_cost: &str, currency: &str) -> pb::Position {
        pb::Position {
            account: "DU1".into(),
            symbol: symbol.into(),
            sec_type: "STK".into(),
            currency: currency.into(),
            quantity: quantity.into(),
            avg_cost: avg_cost.into(),
            ..Default::default()
        }
    }

    fn build(values: Vec<pb::SummaryValue>, positions: Vec<pb::Position>, symbols: &[&str]) -> Report {
        build_with(values, positions, symbols, &Pnl::NotServed, &Pnl::NotServed)
    }

    fn build_with(
        values: Vec<pb::SummaryValue>,
        positions: Vec<pb::Position>,
        symbols: &[&str],
        account_pnl: &Pnl<pb::GetAccountPnlResponse>,
        position_pnl: &Pnl<pb::GetPositionPnlResponse>,
    ) -> Report {
        let accounts =
            pb::ListAccountsResponse { accounts: vec![pb::Account { id: "DU1".into() }], ..Default::default() };
        let positions = pb::GetPositionsResponse { positions, ..Default::default() };
        let summary = pb::GetAccountSummaryResponse { values, ..Default::default() };
        let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        let answers = Answers {
            health: &pb::Health::default(),
            accounts: &accounts,
            positions: &positions,
            summary: &summary,
            account_pnl,
            position_pnl,
        };
        let wanted =
            Wanted { symbols: &symbols, account: None, max_staleness: Duration::from_secs(60), now: SystemTime::now() };
        Report::build("a", &answers, &wanted)
    }

    fn held(symbol: &str, con_id: i64, quantity: &str) -> pb::Position {
        pb::Position { con_id, ..position(symbol, quantity, "150.25", "USD") }
    }

    fn freshness_of(state: pb::FreshnessState, stale_for: Duration) -> Option<pb::Freshness> {
        let stale = state == pb::FreshnessState::Stale;
        Some(pb::Freshness {
            state: state as i32,
            since: stale.then(|| (SystemTime::now() - stale_for).into()),
            reason: if stale { "IB link lost (1100)".into() } else { String::new() },
        })
    }

    fn account_pnl(state: pb::FreshnessState, stale_for: Duration) -> Pnl<pb::GetAccountPnlResponse> {
        Pnl::Served(pb::GetAccountPnlResponse {
            accounts: vec![pb::AccountPnl {
                account: "DU1".into(),
                daily_pnl: "412.35".into(),
                unrealized_pnl: "10511.849999999999".into(),
                realized_pnl: String::new(),
                currency: "BASE".into(),
            }],
            freshness: freshness_of(state, stale_for),
            ..Default::default()
        })
    }

    fn position_pnl_row(account: &str, con_id: i64, quantity: &str, value: &str, daily: &str) -> pb::PositionPnl {
        pb::PositionPnl {
            account: account.into(),
            con_id,
            quantity: quantity.into(),
            market_value: value.into(),
            market_price: "189.5".into(),
            daily_pnl: daily.into(),
            unrealized_pnl: "3925".into(),
            realized_pnl: "0".into(),
            currency: "BASE".into(),
        }
    }

    fn position_pnl(
        rows: Vec<pb::PositionPnl>,
        state: pb::FreshnessState,
        stale_for: Duration,
    ) -> Pnl<pb::GetPositionPnlResponse> {
        Pnl::Served(pb::GetPositionPnlResponse {
            positions: rows,
            freshness: freshness_of(state, stale_for),
            ..Default::default()
        })
    }

    const LIVE: pb::FreshnessState = pb::FreshnessState::Live;
    const STALE: pb::FreshnessState = pb::FreshnessState::Stale;

    #[test]
    fn position_pnl_is_joined_by_account_and_contract_and_labelled_base() {
        let rows = vec![
            position_pnl_row("DU2", 265598, "100", "1", "1"),
            position_pnl_row("DU1", 265598, "100", "18950", "-12.3"),
            position_pnl_row("DU1", 272093, "40", "16608", "0"),
        ];
        let r = build_with(
            vec![],
            vec![held("AAPL", 265598, "100"), held("MSFT", 272093, "40")],
            &["AAPL", "MSFT"],
            &account_pnl(LIVE, Duration::ZERO),
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        let a = &r.accounts[0];
        let aapl = a.lines[0].pnl.as_ref().expect("AAPL has PnL");
        assert_eq!(aapl.market_value.as_deref(), Some("18950"), "the DU1 row, not DU2's");
        assert_eq!(aapl.daily_pnl.as_deref(), Some("-12.3"));
        assert_eq!((aapl.currency.as_str(), aapl.state.as_str()), ("BASE", "LIVE"));
        assert_eq!(a.lines[1].pnl.as_ref().and_then(|p| p.market_value.as_deref()), Some("16608"));
        let account = a.pnl.as_ref().expect("account PnL");
        assert_eq!(account.unrealized_pnl.as_deref(), Some("10511.849999999999"), "JSON keeps the decimal string");
        assert_eq!(account.realized_pnl, None, "IB sent none: null, not 0");
        let text = r.text();
        assert!(
            text.contains("PnL in BASE  value 18950.00  price 189.50  unrealized +3925.00  daily -12.30  LIVE"),
            "{text}"
        );
        assert!(text.contains("PnL in BASE      daily +412.35  unrealized +10511.85  realized n/a  LIVE"), "{text}");
        assert!(text.contains("daily 0.00  LIVE"), "zero has no sign: {text}");
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["accounts"][0]["lines"][0]["pnl"]["market_value"], "18950");
        assert_eq!(json["accounts"][0]["lines"][0]["pnl"]["currency"], "BASE");
        assert_eq!(json["accounts"][0]["pnl"]["daily_pnl"], "412.35");
        assert_eq!(json["accounts"][0]["pnl"]["realized_pnl"], serde_json::Value::Null);
        assert_eq!(json["pnl_freshness"]["positions"]["state"], "LIVE");
    }

    #[test]
    fn missing_pnl_is_not_available_never_zero() {
        let r = build_with(
            vec![],
            vec![held("AAPL", 265598, "100")],
            &["AAPL", "MSFT"],
            &Pnl::NotYet("session not ready".into()),
            &Pnl::NotYet("session not ready".into()),
        );
        let a = &r.accounts[0];
        assert_eq!((a.pnl.as_ref(), a.pnl_unavailable.as_deref()), (None, Some("no PnL yet")));
        assert_eq!((a.lines[0].pnl.as_ref(), a.lines[0].pnl_unavailable.as_deref()), (None, Some("no PnL yet")));
        assert_eq!((a.lines[1].pnl.as_ref(), a.lines[1].pnl_unavailable.as_ref()), (None, None), "no position");
        assert_eq!(r.pnl_freshness.accounts.state, "UNKNOWN");
        assert_eq!(r.pnl_freshness.accounts.reason, "no PnL yet: session not ready");
        let text = r.text();
        assert!(text.contains("PnL              n/a (no PnL yet)"), "{text}");
        assert!(text.contains("         PnL n/a (no PnL yet)"), "{text}");
        assert!(!text.contains("0.00"), "{text}");
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["accounts"][0]["lines"][0]["pnl"], serde_json::Value::Null);
        assert_eq!(json["accounts"][0]["lines"][0]["pnl_unavailable"], "no PnL yet");

        // One position without a row (over gateway-svc's subscription cap, or not reported yet).
        let rows = vec![position_pnl_row("DU1", 265598, "100", "18950", "0")];
        let r = build_with(
            vec![],
            vec![held("AAPL", 265598, "100"), held("MSFT", 272093, "40")],
            &["AAPL", "MSFT"],
            &Pnl::NotServed,
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        let a = &r.accounts[0];
        assert!(a.lines[0].pnl.is_some());
        assert_eq!(a.lines[1].pnl_unavailable.as_deref(), Some("no PnL for this position"));
        assert_eq!(a.pnl_unavailable.as_deref(), Some("this gateway-svc serves no PnL"));
    }

    #[test]
    fn stale_pnl_is_marked_and_withheld_beyond_max_staleness() {
        let rows = || vec![position_pnl_row("DU1", 265598, "100", "18950", "0")];
        let positions = || vec![held("AAPL", 265598, "100")];
        let recent = Duration::from_secs(5);
        let r = build_with(
            vec![],
            positions(),
            &["AAPL"],
            &account_pnl(STALE, recent),
            &position_pnl(rows(), STALE, recent),
        );
        let a = &r.accounts[0];
        assert_eq!(a.pnl.as_ref().map(|p| p.state.as_str()), Some("STALE"));
        assert_eq!(a.lines[0].pnl.as_ref().map(|p| p.state.as_str()), Some("STALE"));
        let text = r.text();
        assert!(text.contains("daily 0.00  STALE"), "{text}");
        assert!(text.contains("accounts STALE since "), "{text}");
        let old = Duration::from_secs(600);
        let r = build_with(vec![], positions(), &["AAPL"], &account_pnl(STALE, old), &position_pnl(rows(), STALE, old));
        let a = &r.accounts[0];
        assert_eq!(a.pnl, None);
        assert_eq!(a.lines[0].pnl, None);
        let why = a.lines[0].pnl_unavailable.as_deref().unwrap_or_default();
        assert!(why.starts_with("PnL stale since ") && why.ends_with("longer than --max-staleness"), "{why}");
    }

    #[test]
    fn figures_for_another_quantity_are_not_the_positions() {
        let rows = vec![position_pnl_row("DU1", 265598, "90", "17055", "0")];
        let r = build_with(
            vec![],
            vec![held("AAPL", 265598, "100.0")],
            &["AAPL"],
            &Pnl::NotServed,
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        let line = &r.accounts[0].lines[0];
        assert_eq!(line.pnl, None);
        assert_eq!(line.pnl_unavailable.as_deref(), Some("PnL is for quantity 90, the position is 100.0"));
        let same = vec![position_pnl_row("DU1", 265598, "100", "18950", "0")];
        let r = build_with(
            vec![],
            vec![held("AAPL", 265598, "100.0")],
            &["AAPL"],
            &Pnl::NotServed,
            &position_pnl(same, LIVE, Duration::ZERO),
        );
        assert!(r.accounts[0].lines[0].pnl.is_some(), "100 and 100.0 are the same size");
    }

    #[test]
    fn amounts_are_shown_with_two_decimals_and_a_sign() {
        assert_eq!(signed(Some("412.35")), "+412.35");
        assert_eq!(signed(Some("-88.1")), "-88.10");
        assert_eq!(signed(Some("-0")), "0.00", "no sign on zero");
        assert_eq!(signed(Some("-0.001")), "0.00");
        assert_eq!(signed(None), "n/a");
        assert_eq!(signed(Some("garbage")), "garbage", "shown as sent");
        assert_eq!(plain(Some("-1420")), "-1420.00");
        assert_eq!(plain(Some("18950")), "18950.00");
        assert_eq!(price(Some("189.5")), "189.50");
        assert_eq!(price(Some("7")), "7.00");
        assert_eq!(price(Some("189.499999999")), "189.50");
        assert_eq!(price(Some("0.123456")), "0.123456");
        assert_eq!(price(None), "n/a");
    }

    #[test]
    fn the_share_of_net_liquidation_is_the_market_value_not_the_cost_basis() {
        // AAPL 100 @ 150.25 is worth 18,938 at 189.38: 15.10% of 125,430.55, where its cost basis
        // (15,025) would have said 11.98%.
        let rows = vec![position_pnl_row("DU1", 265598, "100", "18938", "1")];
        let r = build_with(
            vec![value("NetLiquidation", "125430.55", "USD")],
            vec![held("AAPL", 265598, "100")],
            &["AAPL"],
            &Pnl::NotServed,
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        let aapl = &r.accounts[0].lines[0];
        assert_eq!(aapl.share_of_net_liquidation_pct, Some(15.10));
        assert!(r.text().contains(" 15.10% of NLV"), "{}", r.text());
    }

    #[test]
    fn a_position_in_another_currency_is_valued_in_the_base_currency() {
        // SAP is priced in EUR, but its PnL row's value and the account's NetLiquidation are both
        // in the base currency, so the share holds across currencies.
        let rows = vec![position_pnl_row("DU1", 14094, "10", "2500", "1")];
        let r = build_with(
            vec![value("NetLiquidation", "50000", "USD")],
            vec![pb::Position { con_id: 14094, ..position("SAP", "10", "150", "EUR") }],
            &["SAP"],
            &Pnl::NotServed,
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        assert_eq!(r.accounts[0].lines[0].share_of_net_liquidation_pct, Some(5.0), "2500 of 50000");
    }

    #[test]
    fn without_a_market_value_or_a_base_net_liquidation_there_is_no_share() {
        let r = build(vec![value("NetLiquidation", "100000", "USD")], vec![held("AAPL", 265598, "100")], &["AAPL"]);
        let aapl = &r.accounts[0].lines[0];
        assert_eq!(aapl.share_of_net_liquidation_pct, None, "never the cost basis instead");
        assert_eq!(aapl.share_unavailable.as_deref(), Some("no market value: this gateway-svc serves no PnL"));
        let text = r.text();
        assert!(!text.contains("% of NLV"), "{text}");
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["accounts"][0]["lines"][0]["share_of_net_liquidation_pct"], serde_json::Value::Null);

        // Several NetLiquidation rows and none labelled BASE: no one figure to divide by.
        let rows = vec![position_pnl_row("DU1", 265598, "100", "18938", "1")];
        let r = build_with(
            vec![value("NetLiquidation", "100000", "EUR"), value("NetLiquidation", "120000", "USD")],
            vec![held("AAPL", 265598, "100")],
            &["AAPL"],
            &Pnl::NotServed,
            &position_pnl(rows.clone(), LIVE, Duration::ZERO),
        );
        assert_eq!(
            r.accounts[0].lines[0].share_unavailable.as_deref(),
            Some("NetLiquidation in EUR, USD, none in BASE")
        );
        let r = build_with(
            vec![value("NetLiquidation", "100000", "EUR"), value("NetLiquidation", "189380", "BASE")],
            vec![held("AAPL", 265598, "100")],
            &["AAPL"],
            &Pnl::NotServed,
            &position_pnl(rows, LIVE, Duration::ZERO),
        );
        assert_eq!(r.accounts[0].lines[0].share_of_net_liquidation_pct, Some(10.0), "the BASE row is the base");
    }

    #[test]
    fn no_net_liquidation_and_no_position_are_told_apart() {
        let r = build(vec![], vec![position("AAPL", "1", "1", "USD")], &["AAPL", "MSFT"]);
        let lines = &r.accounts[0].lines;
        assert_eq!(lines[0].share_unavailable.as_deref(), Some("no NetLiquidation"));
        assert_eq!(lines[1].share_unavailable, None);
        assert!(r.text().contains("MSFT   no position"), "{}", r.text());
    }
}
