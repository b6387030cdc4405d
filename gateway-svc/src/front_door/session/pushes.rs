//! What a front-door client's subscriptions are sent when the shared state changes.
//!
//! A catch-up takes the difference between what the client was told and the hub's state (see
//! [`crate::front_door::feed`]) and queues its rows; each row then goes to every subscription
//! that wants it, one row at a time, while the output has room (see [`super::Backlog`]).

use tws_wire::Reply;

use super::{Feeds, Push, Session, Work, followed};
use crate::front_door::feed::{self, Feed};
use crate::front_door::rows;
use crate::kind::DataKind;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, SummaryRow};
use crate::state::Kind;

impl Session {
    /// Every followed kind brought up to date (after the link returns, and before an account
    /// updates subscription, which shares every kind), in this order.
    pub(super) fn catch_up_all(&mut self) {
        for kind in followed() {
            self.backlog.queue(Work::CatchUp(kind));
        }
    }

    /// Queues the rows of `kind` that changed since the client was last told (none while the
    /// link is down or when the client does not follow the kind).
    pub(super) fn catch_up(&mut self, kind: DataKind) {
        match kind {
            DataKind::Positions => self.catch_up_kind::<PositionRow>(),
            DataKind::Summary => self.catch_up_kind::<SummaryRow>(),
            DataKind::AccountPnl => self.catch_up_kind::<AccountPnlRow>(),
            DataKind::PositionPnl => self.catch_up_kind::<PositionPnlRow>(),
            // Managed accounts are not followed: they are answered, never pushed.
            DataKind::Accounts => {}
        }
    }

    fn catch_up_kind<T: Followed>(&mut self) {
        let (link_up, state, rows) = (self.link_up, &self.door.state, &mut self.backlog.rows);
        let Some(diff) = feed::due(T::feed(&mut self.feeds), link_up, T::hub(state)) else { return };
        rows.extend(diff.upserts.into_iter().map(|r| r.push(false)));
        if T::REMOVALS_SENT {
            rows.extend(diff.removals.into_iter().map(|r| r.push(true)));
        }
    }

    /// Sends one queued message, or one queued row to every subscription that wants it.
    pub(super) fn push(&mut self, row: Push) {
        match row {
            Push::Reply(r) => self.send(&r),
            Push::Position(p, closed) => self.push_position(&p, closed),
            Push::Summary(r) => self.push_summary(&r),
            Push::AccountPnl(r) => self.push_account_pnl(&r),
            Push::PositionPnl(r) => self.push_position_pnl(&r),
        }
    }

    fn push_position(&mut self, p: &PositionRow, closed: bool) {
        if self.subs.positions {
            self.send(&rows::position(p, closed));
        }
        if self.subs.account_updates.as_deref() == Some(p.account.as_str()) {
            let portfolio = self.portfolio(p, closed);
            self.send(&portfolio);
        }
    }

    fn portfolio(&self, p: &PositionRow, closed: bool) -> Reply {
        rows::portfolio(p, self.feeds.position_pnl.as_ref().and_then(|f| valuation(f, p)), closed)
    }

    fn push_summary(&mut self, r: &SummaryRow) {
        let mut out = Vec::new();
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
        for m in &out {
            self.send(m);
        }
    }

    fn push_account_pnl(&mut self, r: &AccountPnlRow) {
        let out: Vec<Reply> = self
            .subs
            .pnl
            .iter()
            .filter(|(_, account)| **account == r.account)
            .map(|(req_id, _)| rows::account_pnl(*req_id, r))
            .collect();
        for m in &out {
            self.send(m);
        }
    }

    fn push_position_pnl(&mut self, r: &PositionPnlRow) {
        let mut out = Vec::new();
        for (req_id, (account, con_id)) in &self.subs.pnl_single {
            if *account == r.account && *con_id == r.con_id {
                out.push(rows::position_pnl(*req_id, r));
            }
        }
        // A new valuation changes the portfolio row.
        if self.subs.account_updates.as_deref() == Some(r.account.as_str()) {
            let held = self.feeds.positions.as_ref().and_then(|f| f.told().rows.get(&(r.account.clone(), r.con_id)));
            if let Some(p) = held {
                out.push(rows::portfolio(p, Some(r), false));
            }
        }
        for m in &out {
            self.send(m);
        }
    }
}

/// A position's valuation for its portfolio row: its PnL row while that data is live; none (IB's
/// "no value") otherwise, never last session's figures as if they were current.
pub(super) fn valuation<'a>(pnl: &'a Feed<PositionPnlRow>, p: &PositionRow) -> Option<&'a PositionPnlRow> {
    if pnl.live() { pnl.told().rows.get(&(p.account.clone(), p.con_id)) } else { None }
}

/// A kind the front door follows: its feed, and how its rows are queued.
trait Followed: Kind {
    /// Whether a row that went away is sent (a closed position is; a summary value or a PnL row
    /// that disappears is forgotten without a message, as a gateway does).
    const REMOVALS_SENT: bool = false;
    fn feed(feeds: &mut Feeds) -> &mut Option<Feed<Self>>;
    /// The row queued, `gone` when it went away.
    fn push(self, gone: bool) -> Push;
}

impl Followed for PositionRow {
    const REMOVALS_SENT: bool = true;
    fn feed(feeds: &mut Feeds) -> &mut Option<Feed<Self>> {
        &mut feeds.positions
    }
    fn push(self, gone: bool) -> Push {
        Push::Position(self, gone)
    }
}

impl Followed for SummaryRow {
    fn feed(feeds: &mut Feeds) -> &mut Option<Feed<Self>> {
        &mut feeds.summary
    }
    fn push(self, _: bool) -> Push {
        Push::Summary(self)
    }
}

impl Followed for AccountPnlRow {
    fn feed(feeds: &mut Feeds) -> &mut Option<Feed<Self>> {
        &mut feeds.account_pnl
    }
    fn push(self, _: bool) -> Push {
        Push::AccountPnl(self)
    }
}

impl Followed for PositionPnlRow {
    fn feed(feeds: &mut Feeds) -> &mut Option<Feed<Self>> {
        &mut feeds.position_pnl
    }
    fn push(self, _: bool) -> Push {
        Push::PositionPnl(self)
    }
}
