//! The report: per account, the summary and each requested symbol's positions, with freshness.

use std::time::SystemTime;

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

/// One account.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountReport {
    /// Account code.
    pub id: String,
    /// Summary values by tag: (value, currency).
    pub summary: Vec<SummaryLine>,
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
    /// Cost basis (quantity × average cost) as a share of net liquidation, in percent. Only ever
    /// computed against a net liquidation in the position's own currency.
    pub share_of_net_liquidation_pct: Option<f64>,
    /// Why there is no share when a position exists, e.g. "USD vs EUR" (no net liquidation in
    /// the position's currency: amounts in different currencies are never divided).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_unavailable: Option<String>,
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

impl Report {
    /// Assembles the report from the service's answers.
    pub fn build(
        gateway: &str,
        health: &pb::Health,
        accounts: &pb::ListAccountsResponse,
        positions: &pb::GetPositionsResponse,
        summary: &pb::GetAccountSummaryResponse,
        symbols: &[String],
        only: Option<&str>,
    ) -> Report {
        let state =
            pb::SessionState::try_from(health.state).map(|s| s.as_str_name()).unwrap_or("SESSION_STATE_UNSPECIFIED");
        let accounts = accounts
            .accounts
            .iter()
            .filter(|a| only.is_none_or(|o| o == a.id))
            .map(|a| account(&a.id, positions, summary, symbols))
            .collect();
        Report {
            gateway: gateway.to_owned(),
            session_state: state.trim_start_matches("SESSION_STATE_").to_owned(),
            session_epoch: positions.session_epoch,
            freshness: freshness(positions.freshness.as_ref(), positions.as_of),
            accounts,
        }
    }

    /// Human-readable text.
    pub fn text(&self) -> String {
        let f = &self.freshness;
        let mut out = format!(
            "gateway-svc {}  session {} epoch {}  data {}{}\n",
            self.gateway,
            self.session_state,
            self.session_epoch,
            f.state,
            match (&f.since, &f.as_of) {
                (Some(since), _) => format!(" since {since} ({})", f.reason),
                (None, Some(as_of)) => format!(" as of {as_of}"),
                _ => String::new(),
            }
        );
        for a in &self.accounts {
            out.push_str(&format!("\nAccount {}\n", a.id));
            for s in &a.summary {
                out.push_str(&format!("  {:<16} {:>14} {}\n", s.tag, s.value, s.currency));
            }
            for l in &a.lines {
                let share = match (l.share_of_net_liquidation_pct, &l.share_unavailable) {
                    (Some(p), _) => format!("{p:>6.2}% of NLV"),
                    (None, Some(why)) => format!("n/a ({why})"),
                    (None, None) => String::new(),
                };
                if l.avg_cost.is_empty() {
                    out.push_str(&format!("  {:<6} no position\n", l.symbol));
                } else {
                    out.push_str(&format!(
                        "  {:<6} {:<22} qty {:>10}  avg cost {:>12} {:<3}  {share}  {}\n",
                        l.symbol, l.contract, l.quantity, l.avg_cost, l.currency, f.state
                    ));
                }
            }
        }
        out
    }
}

fn account(
    id: &str,
    positions: &pb::GetPositionsResponse,
    summary: &pb::GetAccountSummaryResponse,
    symbols: &[String],
) -> AccountReport {
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
    let mut lines = Vec::new();
    for sym in symbols {
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
            });
        }
        for p in held {
            let contract = if p.sec_type == "OPT" || p.sec_type == "FOP" {
                format!("{} {} {} {}", p.sec_type, p.expiry, p.strike, p.right)
            } else {
                p.sec_type.clone()
            };
            let (share, unavailable) = match share_of_nlv(p, &nlv) {
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
            });
        }
    }
    AccountReport { id: id.to_owned(), summary: summary_lines, lines }
}

/// The position's cost basis (quantity × average cost, in the position's currency) as a percentage
/// of the account's net liquidation in that same currency; never across currencies. "BASE" (IB's
/// label for the base currency in per-currency summaries) names no currency, so it never matches.
fn share_of_nlv(p: &pb::Position, nlv: &[&SummaryLine]) -> Result<f64, String> {
    let ccy = p.currency.as_str();
    let Some(n) = nlv.iter().find(|n| !ccy.is_empty() && ccy != "BASE" && n.currency == ccy) else {
        let shown = if ccy.is_empty() { "unknown currency" } else { ccy };
        return Err(if nlv.is_empty() {
            "no NetLiquidation".to_owned()
        } else {
            let others: Vec<&str> =
                nlv.iter().map(|n| if n.currency.is_empty() { "no currency" } else { n.currency.as_str() }).collect();
            format!("{shown} vs {}", others.join(", "))
        });
    };
    let quantity = p.quantity.parse::<f64>().map_err(|_| format!("quantity {:?} is not a number", p.quantity))?;
    let avg_cost = p.avg_cost.parse::<f64>().map_err(|_| format!("avg cost {:?} is not a number", p.avg_cost))?;
    match n.value.parse::<f64>() {
        Ok(v) if v != 0.0 && v.is_finite() => Ok((quantity * avg_cost / v * 10_000.0).round() / 100.0),
        _ => Err(format!("NetLiquidation {:?} {ccy}", n.value)),
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
        let accounts =
            pb::ListAccountsResponse { accounts: vec![pb::Account { id: "DU1".into() }], ..Default::default() };
        let positions = pb::GetPositionsResponse { positions, ..Default::default() };
        let summary = pb::GetAccountSummaryResponse { values, ..Default::default() };
        let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        Report::build("a", &pb::Health::default(), &accounts, &positions, &summary, &symbols, None)
    }

    #[test]
    fn the_share_of_net_liquidation_uses_the_net_liquidation_in_the_positions_currency() {
        let r = build(
            vec![
                value("NetLiquidation", "200000", "BASE"),
                value("NetLiquidation", "100000", "EUR"),
                value("NetLiquidation", "50000", "USD"),
            ],
            vec![position("SAP", "100", "150", "EUR"), position("AAPL", "100", "200", "USD")],
            &["SAP", "AAPL"],
        );
        let lines = &r.accounts[0].lines;
        assert_eq!(lines[0].share_of_net_liquidation_pct, Some(15.0), "15000 EUR of 100000 EUR");
        assert_eq!(lines[1].share_of_net_liquidation_pct, Some(40.0), "20000 USD of 50000 USD");
        assert_eq!(r.accounts[0].summary.len(), 3, "every currency's row is shown");
    }

    #[test]
    fn amounts_in_different_currencies_are_never_divided() {
        let r = build(
            vec![value("NetLiquidation", "100000", "EUR"), value("NetLiquidation", "120000", "BASE")],
            vec![position("AAPL", "100", "200", "USD"), position("XYZ", "1", "1", "")],
            &["AAPL", "XYZ"],
        );
        let aapl = &r.accounts[0].lines[0];
        assert_eq!(aapl.share_of_net_liquidation_pct, None);
        assert_eq!(aapl.share_unavailable.as_deref(), Some("USD vs EUR, BASE"));
        let text = r.text();
        assert!(text.contains("n/a (USD vs EUR, BASE)"), "{text}");
        assert!(!text.contains("% of NLV"), "{text}");
        let xyz = &r.accounts[0].lines[1];
        assert_eq!(xyz.share_of_net_liquidation_pct, None, "a position without a currency matches nothing");
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["accounts"][0]["lines"][0]["share_unavailable"], "USD vs EUR, BASE");
        assert_eq!(json["accounts"][0]["lines"][0]["share_of_net_liquidation_pct"], serde_json::Value::Null);
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
