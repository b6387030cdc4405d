//! What a connection answers to each request, and the data it pushes afterwards: positions,
//! account summary batches, account updates and PnL.

use tracing::{debug, warn};

use super::Connection;
use super::pnl::Target;
use tws_wire::{Reply, Request, notice};

use crate::book::BookEvent;
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
                self.send_error(-1, notice::ALREADY_STARTED.0, notice::ALREADY_STARTED.1);
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
            Request::AutoOpenOrders | Request::CancelAccountUpdatesMulti { .. } => {}
            Request::CompletedOrders => self.send(&Reply::CompletedOrdersEnd),
            Request::Executions { req_id } => self.send(&Reply::ExecutionDataEnd { req_id }),
            Request::AccountUpdatesMulti { req_id, account } => self.account_updates_multi(req_id, &account),
            Request::OrderClass { msg_id, id } => {
                warn!(conn = self.id, msg_id, id, "order-class message received by a read-only gateway");
                self.send_error(id, notice::READ_ONLY_CODE, notice::read_only(&Request::api_name(msg_id)));
            }
            // Fire and forget at a gateway: it only changes which market data later requests get.
            Request::Unsupported { msg_id: tws_wire::ids::request::REQ_MARKET_DATA_TYPE, .. } => {}
            Request::Unsupported { msg_id, id } => {
                let msg = format!("Error processing request: {} is not supported", Request::api_name(msg_id));
                self.send_error(id, notice::UNSUPPORTED_CODE, msg);
            }
        }
    }

    pub(super) fn send_all_positions(&mut self) {
        for p in self.shared.book.positions() {
            self.send(&Reply::Position(Box::new(p.position_msg())));
        }
    }

    /// The full answer and its end marker; later changes come in batches (see
    /// [`Connection::send_summary_changes`]). Re-using an active id replaces its tags.
    fn account_summary(&mut self, req_id: i32, tags: &[String]) {
        if self.subs.summaries.len() >= MAX_SUMMARIES && !self.subs.summaries.contains_key(&req_id) {
            self.send_error(req_id, notice::TOO_MANY_SUMMARIES.0, notice::TOO_MANY_SUMMARIES.1);
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
                account: r.account.clone(),
                tag: r.tag.clone(),
                value: r.value.clone(),
                currency: r.currency.clone(),
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
            self.send_error(-1, notice::INVALID_CODE, notice::unknown_account(&account));
            return;
        }
        for v in self.shared.book.values().iter().filter(|v| v.account == account) {
            self.send(&v.reply());
        }
        // A gateway reports the per-currency ledger rows among the account values.
        for l in self.shared.book.ledger().iter().filter(|l| l.account == account) {
            self.send(&l.reply());
        }
        for p in self.shared.book.positions().iter().filter(|p| p.account == account) {
            self.send(&Reply::Portfolio(Box::new(p.portfolio_msg())));
        }
        self.send(&Reply::AccountUpdateTime(jiff::Zoned::now().strftime("%H:%M").to_string()));
        self.send(&Reply::AccountDownloadEnd(account.clone()));
        self.subs.account_updates = Some(account);
    }

    /// `reqAccountUpdatesMulti`: the account values of one account (every account for "" or
    /// `All`), then the end marker. Later changes are not pushed.
    fn account_updates_multi(&mut self, req_id: i32, account: &str) {
        let all = account.is_empty() || account == "All";
        let wanted = |a: &str| all || a == account;
        let mut rows: Vec<Reply> = Vec::new();
        for v in self.shared.book.values().iter().filter(|v| wanted(&v.account)) {
            rows.push(v.multi_reply(req_id));
        }
        for l in self.shared.book.ledger().iter().filter(|l| wanted(&l.account)) {
            rows.push(l.multi_reply(req_id));
        }
        for r in &rows {
            self.send(r);
        }
        self.send(&Reply::AccountUpdateMultiEnd { req_id });
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
                    self.send(&Reply::Position(Box::new(p.position_msg())));
                }
                if portfolio {
                    self.send(&Reply::Portfolio(Box::new(p.portfolio_msg())));
                }
            }
            // A new price changes the portfolio row's valuation, not the position row.
            BookEvent::Price(p) if updates_for(&p.account) => {
                self.send(&Reply::Portfolio(Box::new(p.portfolio_msg())));
            }
            BookEvent::Value(v) if updates_for(&v.account) => self.send(&v.reply()),
            BookEvent::Ledger(l) if updates_for(&l.account) => self.send(&l.reply()),
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
                self.send(&Reply::Portfolio(Box::new(p.portfolio_msg())));
            }
        }
    }
}
