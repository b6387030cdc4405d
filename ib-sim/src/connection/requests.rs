//! What a connection answers to each request, and the data it pushes afterwards: positions,
//! account summary batches, account updates and PnL.

use tracing::{debug, warn};

use super::Connection;
use super::pnl::Target;
use crate::book::BookEvent;
use crate::message::{Reply, Request};
use crate::summary::{Row, Subscription};

/// At most two account-summary subscriptions per client, as a gateway enforces.
const MAX_SUMMARIES: usize = 2;

impl Connection {
    pub(super) fn on_request(&mut self, req: Request) {
        let order_class = matches!(req, Request::OrderClass { .. });
        self.shared.stats().request(req.name(), order_class);
        debug!(conn = self.id, request = %req.name(), "request");
        match req {
            Request::StartApi { .. } => {
                self.send(&Reply::Error {
                    id: -1,
                    code: 321,
                    message: "Error validating request: API already started",
                });
            }
            Request::ManagedAccounts => self.send(&Reply::ManagedAccounts(self.shared.book.account_ids().join(","))),
            Request::Ids => self.send(&Reply::NextValidId(self.shared.next_order_id())),
            Request::CurrentTime => self.send(&Reply::CurrentTime(jiff::Timestamp::now().as_second())),
            Request::CurrentTimeMillis => self.send(&Reply::CurrentTimeMillis(jiff::Timestamp::now().as_millisecond())),
            Request::Positions => {
                self.subs.positions = true;
                self.send_all_positions();
                self.send(&Reply::PositionEnd);
            }
            Request::CancelPositions => self.subs.positions = false,
            Request::AccountSummary { req_id, group: _, tags } => self.account_summary(req_id, &tags),
            Request::CancelAccountSummary { req_id } => {
                self.subs.summaries.remove(&req_id);
            }
            Request::AccountUpdates { subscribe, account } => self.account_updates(subscribe, account),
            Request::Pnl { req_id, account } => self.subscribe_pnl(req_id, Target::Account(account)),
            Request::CancelPnl { req_id } => self.cancel_pnl(req_id, false),
            Request::PnlSingle { req_id, account, con_id } => {
                self.subscribe_pnl(req_id, Target::Position(account, con_id));
            }
            Request::CancelPnlSingle { req_id } => self.cancel_pnl(req_id, true),
            Request::OpenOrders => self.send(&Reply::OpenOrderEnd),
            Request::AutoOpenOrders | Request::CancelAccountUpdatesMulti => {}
            Request::CompletedOrders => self.send(&Reply::CompletedOrdersEnd),
            Request::Executions { req_id } => self.send(&Reply::ExecutionDataEnd { req_id }),
            Request::AccountUpdatesMulti { req_id } => self.send(&Reply::AccountUpdateMultiEnd { req_id }),
            Request::OrderClass { msg_id } => {
                warn!(conn = self.id, msg_id, "order-class message received by a read-only gateway");
                self.send(&Reply::Error {
                    id: -1,
                    code: 321,
                    message: "Error validating request: the API is in read-only mode",
                });
            }
            Request::Unknown { msg_id } => {
                let msg = format!("Error validating request: unsupported message id {msg_id}");
                self.send(&Reply::Error { id: -1, code: 321, message: &msg });
            }
        }
    }

    pub(super) fn send_all_positions(&mut self) {
        for p in self.shared.book.positions() {
            self.send(&Reply::Position(&p));
        }
    }

    /// The full answer and its end marker; later changes come in batches (see
    /// [`Connection::send_summary_changes`]). Re-using an active id replaces its tags.
    fn account_summary(&mut self, req_id: i32, tags: &[String]) {
        if self.subs.summaries.len() >= MAX_SUMMARIES && !self.subs.summaries.contains_key(&req_id) {
            self.send(&Reply::Error {
                id: req_id,
                code: 322,
                message: "Error processing request: Maximum number of account summary requests exceeded",
            });
            return;
        }
        let mut sub = Subscription::new(tags);
        let rows = sub.full(&self.shared.book);
        self.subs.summaries.insert(req_id, sub);
        self.send_summary_rows(req_id, &rows);
        self.send(&Reply::AccountSummaryEnd { req_id });
    }

    fn send_summary_rows(&mut self, req_id: i32, rows: &[Row]) {
        for r in rows {
            self.send(&Reply::AccountSummary {
                req_id,
                account: &r.account,
                tag: &r.tag,
                value: &r.value,
                currency: &r.currency,
            });
        }
    }

    /// One batch: each subscription gets the values that changed since its last batch, without
    /// an end marker. Quiet while IB's link is down; the changes then go out in the first batch
    /// after it returns.
    pub(super) fn send_summary_changes(&mut self) {
        if self.link_down {
            return;
        }
        let ids: Vec<i32> = self.subs.summaries.keys().copied().collect();
        for req_id in ids {
            let Some(sub) = self.subs.summaries.get_mut(&req_id) else { continue };
            let rows = sub.changes(&self.shared.book);
            self.send_summary_rows(req_id, &rows);
        }
    }

    fn account_updates(&mut self, subscribe: bool, account: String) {
        if !subscribe {
            self.subs.account_updates = None;
            return;
        }
        if !self.shared.book.account_ids().contains(&account) {
            let msg = format!("Error validating request: unknown account {account}");
            self.send(&Reply::Error { id: -1, code: 321, message: &msg });
            return;
        }
        for v in self.shared.book.values().iter().filter(|v| v.account == account) {
            self.send(&Reply::AccountValue {
                key: &v.tag,
                value: &v.value,
                currency: &v.currency,
                account: &v.account,
            });
        }
        // A gateway reports the per-currency ledger rows among the account values.
        for l in self.shared.book.ledger().iter().filter(|l| l.account == account) {
            self.send(&Reply::AccountValue {
                key: &l.tag,
                value: &l.value,
                currency: &l.currency,
                account: &l.account,
            });
        }
        for p in self.shared.book.positions().iter().filter(|p| p.account == account) {
            self.send(&Reply::Portfolio(p));
        }
        self.send(&Reply::AccountUpdateTime(jiff::Zoned::now().strftime("%H:%M").to_string()));
        self.send(&Reply::AccountDownloadEnd(&account));
        self.subs.account_updates = Some(account);
    }

    /// A book change. Account-summary subscriptions do not react here: they pick changes up in
    /// their next batch; PnL subscriptions are evaluated once per batch of events.
    pub(super) fn push_event(&mut self, ev: &BookEvent) {
        if self.link_down {
            self.missed = true;
            return;
        }
        let updates_for = |account: &str| self.subs.account_updates.as_deref() == Some(account);
        match ev {
            BookEvent::Position(p) => {
                let portfolio = updates_for(&p.account);
                if self.subs.positions {
                    self.send(&Reply::Position(p));
                }
                if portfolio {
                    self.send(&Reply::Portfolio(p));
                }
            }
            // A new price changes the portfolio row's valuation, not the position row.
            BookEvent::Price(p) if updates_for(&p.account) => self.send(&Reply::Portfolio(p)),
            BookEvent::Value(v) if updates_for(&v.account) => self.send(&Reply::AccountValue {
                key: &v.tag,
                value: &v.value,
                currency: &v.currency,
                account: &v.account,
            }),
            BookEvent::Ledger(l) if updates_for(&l.account) => self.send(&Reply::AccountValue {
                key: &l.tag,
                value: &l.value,
                currency: &l.currency,
                account: &l.account,
            }),
            BookEvent::Value(_) | BookEvent::Ledger(_) | BookEvent::Price(_) => {}
        }
    }

    /// After skipped or held events: every subscribed position and portfolio row again.
    /// Summaries and PnL need nothing, since they compare with the book itself.
    pub(super) fn resend_all(&mut self) {
        if self.subs.positions {
            self.send_all_positions();
        }
        if let Some(account) = self.subs.account_updates.clone() {
            for p in self.shared.book.positions().iter().filter(|p| p.account == account) {
                self.send(&Reply::Portfolio(p));
            }
        }
    }
}
