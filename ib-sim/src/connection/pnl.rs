//! PnL subscriptions (`reqPnL`, `reqPnLSingle`): the first answer at once, then an update when
//! the values change, at most one per subscription per `pnl_interval_ms` (a gateway sends PnL
//! about once a second while prices move, and nothing while they stand still). Changes within
//! the interval are coalesced: the update carries the latest values, and a value that changes
//! and changes back is not sent.

use tokio::time::Instant;

use tws_wire::{Reply, notice};

use super::Connection;
use crate::prices::{AccountPnl, PositionPnl};

/// What a PnL subscription follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `reqPnL`: one account.
    Account(String),
    /// `reqPnLSingle`: one account's position in one contract.
    Position(String, i32),
}

#[derive(Debug, Clone, PartialEq)]
enum Values {
    Account(AccountPnl),
    Position(PositionPnl),
}

/// One open PnL subscription and what it was last sent.
#[derive(Debug)]
pub(super) struct PnlSub {
    target: Target,
    last: Values,
    last_sent: Instant,
}

impl Connection {
    fn pnl_values(&self, target: &Target) -> Option<Values> {
        match target {
            Target::Account(a) => self.shared.book.pnl(a).map(Values::Account),
            Target::Position(a, c) => self.shared.book.position_pnl(a, *c).map(Values::Position),
        }
    }

    fn send_pnl_values(&mut self, req_id: i32, values: &Values) {
        match values {
            Values::Account(p) => {
                self.send(&Reply::Pnl { req_id, daily: p.daily, unrealized: p.unrealized, realized: p.realized });
            }
            Values::Position(p) => self.send(&Reply::PnlSingle {
                req_id,
                position: p.position.clone(),
                daily: p.daily,
                unrealized: p.unrealized,
                realized: p.realized,
                value: p.value,
            }),
        }
    }

    /// `reqPnL` / `reqPnLSingle`: answered at once; an unknown account gets 321. Re-using an
    /// active id replaces that subscription.
    pub(super) fn subscribe_pnl(&mut self, req_id: i32, target: Target) {
        let Some(values) = self.pnl_values(&target) else {
            let (Target::Account(account) | Target::Position(account, _)) = &target;
            self.send_error(req_id, notice::INVALID_CODE, notice::unknown_account(account));
            return;
        };
        self.send_pnl_values(req_id, &values);
        self.subs.pnl.insert(req_id, PnlSub { target, last: values, last_sent: Instant::now() });
    }

    /// `cancelPnL` (`single` false) or `cancelPnLSingle`: an id that is not subscribed with
    /// that kind gets 10185 or 10186.
    pub(super) fn cancel_pnl(&mut self, req_id: i32, single: bool) {
        let matches = self.subs.pnl.get(&req_id).is_some_and(|s| matches!(s.target, Target::Position(..)) == single);
        if matches {
            self.subs.pnl.remove(&req_id);
        } else if single {
            self.send_error(req_id, notice::PNL_SINGLE_NOT_SUBSCRIBED.0, notice::PNL_SINGLE_NOT_SUBSCRIBED.1);
        } else {
            self.send_error(req_id, notice::PNL_NOT_SUBSCRIBED.0, notice::PNL_NOT_SUBSCRIBED.1);
        }
    }

    /// Sends each subscription whose values changed and whose minimum interval has passed, and
    /// sets the timer for the earliest one still waiting. Held while IB's link is down; called
    /// again when it returns.
    pub(super) fn update_pnl(&mut self) {
        self.pnl_due = None;
        if self.link_down {
            return;
        }
        let now = Instant::now();
        let interval = self.shared.settings.pnl_interval;
        let ids: Vec<i32> = self.subs.pnl.keys().copied().collect();
        for req_id in ids {
            let Some(sub) = self.subs.pnl.get(&req_id) else { continue };
            let Some(values) = self.pnl_values(&sub.target) else { continue };
            if values == sub.last {
                continue;
            }
            let due = sub.last_sent + interval;
            if due > now {
                self.pnl_due = Some(self.pnl_due.map_or(due, |d| d.min(due)));
                continue;
            }
            self.send_pnl_values(req_id, &values);
            if let Some(sub) = self.subs.pnl.get_mut(&req_id) {
                sub.last = values;
                sub.last_sent = now;
            }
        }
    }
}
