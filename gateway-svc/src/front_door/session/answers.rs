//! What a front-door client's requests are answered with, all from the shared state.

use tracing::{debug, info};
use tws_wire::account_summary::TagSelection;
use tws_wire::{Reply, Request, notice};

use super::pushes::valuation;
use super::{Push, Session, Work, followed};
use crate::front_door::feed::Feed;
use crate::front_door::rows;
use crate::front_door::subscriptions::{MAX_PER_KIND, MAX_SUMMARIES, SummarySub};
use crate::kind::DataKind;

impl Session {
    /// Accepts a request read from the client: the kinds its answer reads are brought up to date
    /// first (their subscriptions are sent what changed), then it is answered.
    pub(super) fn on_request(&mut self, req: Request) {
        let name = req.name();
        debug!(conn = self.conn, request = %name, "TWS request");
        self.door.state.metrics.front_door_request(&req);
        let kinds: Vec<DataKind> = match &req {
            Request::Positions => vec![DataKind::Positions],
            Request::AccountSummary { .. } | Request::AccountUpdatesMulti { .. } => vec![DataKind::Summary],
            Request::AccountUpdates { subscribe: true, .. } => followed().collect(),
            Request::Pnl { .. } => vec![DataKind::AccountPnl],
            Request::PnlSingle { .. } => vec![DataKind::PositionPnl],
            _ => Vec::new(),
        };
        for kind in kinds {
            self.backlog.queue(Work::CatchUp(kind));
        }
        self.backlog.queue(Work::Answer(req));
    }

    /// An answer of many messages (a kind's rows and their end marker): queued, to go out in
    /// order and within the output budget before any later work. Called last in an answer.
    fn send_in_turn(&mut self, answer: Vec<Reply>) {
        self.backlog.rows.extend(answer.into_iter().map(Push::Reply));
    }

    /// Answers `req` from what the client was told (its catch-ups are done).
    pub(super) fn answer(&mut self, req: Request) {
        match req {
            Request::StartApi { .. } => {
                let (code, text) = notice::ALREADY_STARTED;
                self.send(&Reply::error(-1, code, text));
            }
            Request::ManagedAccounts => {
                let list = self.accounts().join(",");
                self.send(&Reply::ManagedAccounts(list));
            }
            Request::Ids => {
                let id = self.door.next_order_id();
                self.send(&Reply::NextValidId(id));
            }
            Request::CurrentTime => self.send(&Reply::CurrentTime(jiff::Timestamp::now().as_second())),
            Request::CurrentTimeMillis => self.send(&Reply::CurrentTimeMillis(jiff::Timestamp::now().as_millisecond())),
            Request::Positions => self.positions(),
            Request::CancelPositions => self.subs.positions = false,
            Request::AccountSummary { req_id, group, tags } => self.account_summary(req_id, &group, &tags),
            Request::CancelAccountSummary { req_id } => {
                self.subs.summaries.remove(&req_id);
            }
            Request::AccountUpdates { subscribe, account } => self.account_updates(subscribe, account),
            Request::AccountUpdatesMulti { req_id, account } => self.account_updates_multi(req_id, account),
            Request::CancelAccountUpdatesMulti { req_id } => {
                self.subs.multi.remove(&req_id);
            }
            Request::Pnl { req_id, account } => self.pnl(req_id, account),
            Request::CancelPnl { req_id } => {
                if self.subs.pnl.remove(&req_id).is_none() {
                    let (code, text) = notice::PNL_NOT_SUBSCRIBED;
                    self.send(&Reply::error(req_id, code, text));
                }
            }
            Request::PnlSingle { req_id, account, con_id } => self.pnl_single(req_id, account, i64::from(con_id)),
            Request::CancelPnlSingle { req_id } => {
                if self.subs.pnl_single.remove(&req_id).is_none() {
                    let (code, text) = notice::PNL_SINGLE_NOT_SUBSCRIBED;
                    self.send(&Reply::error(req_id, code, text));
                }
            }
            // The service places no orders, so there are none to report; the end markers are what
            // ib_async and others wait for at connect.
            Request::OpenOrders => self.send(&Reply::OpenOrderEnd),
            Request::AutoOpenOrders => {}
            Request::CompletedOrders => self.send(&Reply::CompletedOrdersEnd),
            Request::Executions { req_id } => self.send(&Reply::ExecutionDataEnd { req_id }),
            Request::OrderClass { msg_id, id } => {
                let api = Request::api_name(msg_id);
                info!(conn = self.conn, request = %api, id, "refused an order-class request: the front door is read-only");
                self.send(&Reply::error(id, notice::READ_ONLY_CODE, notice::read_only(&api)));
            }
            // Fire and forget at a gateway too: it changes which market data later requests get,
            // and the front door serves none.
            Request::Unsupported { msg_id: tws_wire::ids::request::REQ_MARKET_DATA_TYPE, .. } => {}
            Request::Unsupported { msg_id, id } => {
                let api = Request::api_name(msg_id);
                debug!(conn = self.conn, request = %api, id, "refused an unsupported request");
                let text = format!(
                    "Error processing request: {api} is not served by ibgw's TWS front door, which shares account \
                     data only (positions, account summary, account updates, PnL); ask the gateway directly"
                );
                self.send(&Reply::error(id, notice::UNSUPPORTED_CODE, text));
            }
        }
    }

    /// Refuses (322) a subscription beyond [`MAX_PER_KIND`] of its kind; re-using an open
    /// request id replaces that subscription and is always allowed.
    fn over_limit(&mut self, open: usize, reused: bool, req_id: i32, what: &str) -> bool {
        let over = open >= MAX_PER_KIND && !reused;
        if over {
            self.send(&Reply::error(req_id, notice::UNSUPPORTED_CODE, notice::too_many(what, MAX_PER_KIND)));
        }
        over
    }

    fn is_account(&self, account: &str) -> bool {
        self.door.state.accounts.snapshot().rows.contains_key(account)
    }

    fn unknown_account(&mut self, id: i32, account: &str) {
        self.send(&Reply::error(id, notice::INVALID_CODE, notice::unknown_account(account)));
    }

    fn positions(&mut self) {
        self.subs.positions = true;
        let feed = self.feeds.positions.get_or_insert_with(|| Feed::open(&self.door.state.positions));
        let all = feed.told().rows.values().map(|p| rows::position(p, false));
        let answer: Vec<Reply> = all.chain([Reply::PositionEnd]).collect();
        self.send_in_turn(answer);
    }

    fn account_summary(&mut self, req_id: i32, group: &str, tags: &[String]) {
        if self.subs.summaries.len() >= MAX_SUMMARIES && !self.subs.summaries.contains_key(&req_id) {
            let (code, text) = notice::TOO_MANY_SUMMARIES;
            self.send(&Reply::error(req_id, code, text));
            return;
        }
        let account = match group {
            "" | "All" => None,
            a if self.is_account(a) => Some(a.to_owned()),
            other => {
                self.send(&Reply::error(req_id, notice::INVALID_CODE, notice::unknown_group(other)));
                return;
            }
        };
        let sub = SummarySub { tags: TagSelection::parse(tags), account };
        let feed = self.feeds.summary.get_or_insert_with(|| Feed::open(&self.door.state.summary));
        let all = feed.told().rows.values().filter(|r| sub.wants(r)).map(|r| rows::summary(req_id, r));
        let answer: Vec<Reply> = all.chain([Reply::AccountSummaryEnd { req_id }]).collect();
        self.subs.summaries.insert(req_id, sub);
        self.send_in_turn(answer);
    }

    /// `reqAccountUpdates`: the account's values, its portfolio, the time and the end marker;
    /// then changes.
    fn account_updates(&mut self, subscribe: bool, account: String) {
        if !subscribe {
            self.subs.account_updates = None;
            return;
        }
        // An empty code means the default account: the first managed one (what ib_async sends
        // at connect when there are several).
        let account = if account.is_empty() { self.accounts().into_iter().next().unwrap_or_default() } else { account };
        if !self.is_account(&account) {
            self.unknown_account(-1, &account);
            return;
        }
        let state = &self.door.state;
        let summary = self.feeds.summary.get_or_insert_with(|| Feed::open(&state.summary));
        let mut out: Vec<Reply> =
            summary.told().rows.values().filter(|r| r.account == account).map(rows::account_value).collect();
        let positions = self.feeds.positions.get_or_insert_with(|| Feed::open(&state.positions));
        let pnl = self.feeds.position_pnl.get_or_insert_with(|| Feed::open(&state.position_pnl));
        for p in positions.told().rows.values().filter(|p| p.account == account) {
            out.push(rows::portfolio(p, valuation(pnl, p), false));
        }
        out.push(Reply::AccountUpdateTime(jiff::Zoned::now().strftime("%H:%M").to_string()));
        out.push(Reply::AccountDownloadEnd(account.clone()));
        self.send_in_turn(out);
        self.subs.account_updates = Some(account);
    }

    fn account_updates_multi(&mut self, req_id: i32, account: String) {
        if self.over_limit(
            self.subs.multi.len(),
            self.subs.multi.contains_key(&req_id),
            req_id,
            "account updates multi",
        ) {
            return;
        }
        let account = match account.as_str() {
            "" | "All" => None,
            a if self.is_account(a) => Some(account),
            _ => {
                self.unknown_account(req_id, &account);
                return;
            }
        };
        let feed = self.feeds.summary.get_or_insert_with(|| Feed::open(&self.door.state.summary));
        let all = feed
            .told()
            .rows
            .values()
            .filter(|r| account.as_ref().is_none_or(|a| *a == r.account))
            .map(|r| rows::account_value_multi(req_id, r));
        let answer: Vec<Reply> = all.chain([Reply::AccountUpdateMultiEnd { req_id }]).collect();
        self.send_in_turn(answer);
        self.subs.multi.insert(req_id, account);
    }

    fn pnl(&mut self, req_id: i32, account: String) {
        if self.over_limit(self.subs.pnl.len(), self.subs.pnl.contains_key(&req_id), req_id, "PnL") {
            return;
        }
        if !self.is_account(&account) {
            self.unknown_account(req_id, &account);
            return;
        }
        let feed = self.feeds.account_pnl.get_or_insert_with(|| Feed::open(&self.door.state.account_pnl));
        // No live row yet (the service subscribes PnL once the session is ready, so after an
        // outage PnL is live a moment after everything else): the first value goes out when it
        // is, as from a gateway. Never a value from before an outage as if it were current.
        let first = feed.live().then(|| feed.told().rows.get(&account).map(|r| rows::account_pnl(req_id, r))).flatten();
        if let Some(r) = first {
            self.send(&r);
        }
        self.subs.pnl.insert(req_id, account);
    }

    fn pnl_single(&mut self, req_id: i32, account: String, con_id: i64) {
        let (open, again) = (self.subs.pnl_single.len(), self.subs.pnl_single.contains_key(&req_id));
        if self.over_limit(open, again, req_id, "PnL single") {
            return;
        }
        if !self.is_account(&account) {
            self.unknown_account(req_id, &account);
            return;
        }
        let feed = self.feeds.position_pnl.get_or_insert_with(|| Feed::open(&self.door.state.position_pnl));
        let first = feed
            .live()
            .then(|| feed.told().rows.get(&(account.clone(), con_id)).map(|r| rows::position_pnl(req_id, r)))
            .flatten();
        if let Some(r) = first {
            self.send(&r);
        }
        self.subs.pnl_single.insert(req_id, (account, con_id));
    }
}
