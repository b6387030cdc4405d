//! What a front-door client's subscriptions are sent when the shared state changes.

use tws_wire::Reply;

use super::{Kind, Session};
use crate::front_door::feed::{self, Feed};
use crate::front_door::rows;
use crate::model::{PositionPnlRow, PositionRow};

impl Session {
    /// Brings `kind` up to date.
    pub(super) fn catch_up(&mut self, kind: Kind) {
        match kind {
            Kind::Positions => self.catch_up_positions(),
            Kind::Summary => self.catch_up_summary(),
            Kind::AccountPnl => self.catch_up_account_pnl(),
            Kind::PositionPnl => self.catch_up_position_pnl(),
        }
    }

    /// Every followed kind brought up to date (after the link returns, and before a new
    /// subscription that shares a kind with an older one).
    pub(super) fn catch_up_all(&mut self) {
        self.catch_up_positions();
        self.catch_up_summary();
        self.catch_up_account_pnl();
        self.catch_up_position_pnl();
    }

    pub(super) fn catch_up_positions(&mut self) {
        let Some(diff) = feed::due(&mut self.feeds.positions, self.link_up, &self.door.state.positions) else { return };
        let updates_for = self.subs.account_updates.clone();
        for (list, closed) in [(&diff.upserts, false), (&diff.removals, true)] {
            for p in list {
                if self.subs.positions {
                    self.send(&rows::position(p, closed));
                }
                if updates_for.as_deref() == Some(p.account.as_str()) {
                    let portfolio = self.portfolio(p, closed);
                    self.send(&portfolio);
                }
            }
        }
    }

    fn portfolio(&self, p: &PositionRow, closed: bool) -> Reply {
        rows::portfolio(p, self.feeds.position_pnl.as_ref().and_then(|f| valuation(f, p)), closed)
    }

    pub(super) fn catch_up_summary(&mut self) {
        // Values that disappear are forgotten without a message, as a gateway does.
        let Some(diff) = feed::due(&mut self.feeds.summary, self.link_up, &self.door.state.summary) else { return };
        let mut out = Vec::new();
        for r in &diff.upserts {
            for (req_id, sub) in &self.subs.summaries {
                if sub.wants(r) {
                    out.push(rows::summary(*req_id, r));
                }
            }
            if self.subs.account_updates.as_deref() == Some(r.account.as_str()) {
                out.push(rows::account_value(r));
            }
            for (req_id, account) in &self.subs.multi {
                if account.as_ref().is_none_or(|a| *a == r.account) {
                    out.push(rows::account_value_multi(*req_id, r));
                }
            }
        }
        for r in &out {
            self.send(r);
        }
    }

    pub(super) fn catch_up_account_pnl(&mut self) {
        let Some(diff) = feed::due(&mut self.feeds.account_pnl, self.link_up, &self.door.state.account_pnl) else {
            return;
        };
        let mut out = Vec::new();
        for r in &diff.upserts {
            for (req_id, account) in &self.subs.pnl {
                if *account == r.account {
                    out.push(rows::account_pnl(*req_id, r));
                }
            }
        }
        for r in &out {
            self.send(r);
        }
    }

    pub(super) fn catch_up_position_pnl(&mut self) {
        let Some(diff) = feed::due(&mut self.feeds.position_pnl, self.link_up, &self.door.state.position_pnl) else {
            return;
        };
        let mut out = Vec::new();
        for r in &diff.upserts {
            for (req_id, (account, con_id)) in &self.subs.pnl_single {
                if *account == r.account && *con_id == r.con_id {
                    out.push(rows::position_pnl(*req_id, r));
                }
            }
            // A new valuation changes the portfolio row.
            if self.subs.account_updates.as_deref() == Some(r.account.as_str()) {
                let held =
                    self.feeds.positions.as_ref().and_then(|f| f.told().rows.get(&(r.account.clone(), r.con_id)));
                if let Some(p) = held {
                    out.push(rows::portfolio(p, Some(r), false));
                }
            }
        }
        for r in &out {
            self.send(r);
        }
    }
}

/// A position's valuation for its portfolio row: its PnL row while that data is live; none (IB's
/// "no value") otherwise, never last session's figures as if they were current.
pub(super) fn valuation<'a>(pnl: &'a Feed<PositionPnlRow>, p: &PositionRow) -> Option<&'a PositionPnlRow> {
    if pnl.live() { pnl.told().rows.get(&(p.account.clone(), p.con_id)) } else { None }
}
