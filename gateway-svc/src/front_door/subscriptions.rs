//! What one front-door client is subscribed to, and how many subscriptions of each kind it may
//! hold.

use std::collections::BTreeMap;

use tws_wire::account_summary::{TagSelection, looks_like_ledger};

use crate::model::SummaryRow;

/// At most two account-summary subscriptions per client, as a gateway enforces.
pub(super) const MAX_SUMMARIES: usize = 2;
/// Most subscriptions per client of each other kind (account updates multi, PnL, single PnL):
/// far more than a program follows, and a bound on what one client can make the service send.
pub(super) const MAX_PER_KIND: usize = 256;

/// One `reqAccountSummary`: its tags, and the one account it asks for (`None`: group `All`).
#[derive(Debug)]
pub(super) struct SummarySub {
    pub(super) tags: TagSelection,
    pub(super) account: Option<String>,
}

impl SummarySub {
    pub(super) fn wants(&self, r: &SummaryRow) -> bool {
        self.account.as_ref().is_none_or(|a| *a == r.account)
            && self.tags.wants(&r.tag, &r.currency, looks_like_ledger(&r.tag, &r.currency))
    }
}

/// What one client is subscribed to.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    pub(super) positions: bool,
    pub(super) summaries: BTreeMap<i32, SummarySub>,
    /// `reqAccountUpdates`: one account at a time.
    pub(super) account_updates: Option<String>,
    /// `reqAccountUpdatesMulti`: reqId → account (`None`: all).
    pub(super) multi: BTreeMap<i32, Option<String>>,
    /// `reqPnL`: reqId → account.
    pub(super) pnl: BTreeMap<i32, String>,
    /// `reqPnLSingle`: reqId → (account, conId).
    pub(super) pnl_single: BTreeMap<i32, (String, i64)>,
}
