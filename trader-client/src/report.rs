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
    /// Cost basis (quantity × average cost) as a share of net liquidation, in percent.
    pub share_of_net_liquidation_pct: Option<f64>,
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
                let share = l.share_of_net_liquidation_pct.map(|p| format!("{p:>6.2}% of NLV")).unwrap_or_default();
                if l.avg_cost.is_empty() {
                    out.push_str(&format!("  {:<6} no position\n", l.symbol));
                } else {
                    out.push_str(&format!(
                        "  {:<6} {:<22} qty {:>10}  avg cost {:>12}  {share}  {}\n",
                        l.symbol, l.contract, l.quantity, l.avg_cost, f.state
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
    let summary_lines: Vec<SummaryLine> = crate::fetch::TAGS
        .iter()
        .filter_map(|tag| {
            summary.values.iter().find(|v| v.account == id && v.tag == *tag).map(|v| SummaryLine {
                tag: v.tag.clone(),
                value: v.value.clone(),
                currency: v.currency.clone(),
            })
        })
        .collect();
    let nlv: Option<f64> = summary_lines.iter().find(|s| s.tag == "NetLiquidation").and_then(|s| s.value.parse().ok());
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
                share_of_net_liquidation_pct: None,
            });
        }
        for p in held {
            let basis = p.quantity.parse::<f64>().ok().zip(p.avg_cost.parse::<f64>().ok()).map(|(q, c)| q * c);
            let contract = if p.sec_type == "OPT" || p.sec_type == "FOP" {
                format!("{} {} {} {}", p.sec_type, p.expiry, p.strike, p.right)
            } else {
                p.sec_type.clone()
            };
            lines.push(Line {
                symbol: p.symbol.clone(),
                contract,
                quantity: p.quantity.clone(),
                avg_cost: p.avg_cost.clone(),
                share_of_net_liquidation_pct: basis
                    .zip(nlv.filter(|n| *n != 0.0))
                    .map(|(b, n)| (b / n * 10_000.0).round() / 100.0),
            });
        }
    }
    AccountReport { id: id.to_owned(), summary: summary_lines, lines }
}
