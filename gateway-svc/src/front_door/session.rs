//! One front-door client without I/O: bytes, health changes and data-feed rings in, framed
//! replies out, in the shape of [`tws_wire::handshake::Handshake::step`].
//!
//! The socket loop ([`super::conn`]) reads into a buffer and hands it to
//! [`Session::on_bytes`], hands over health changes ([`Session::on_health`]) and the rings of
//! the feeds the session follows ([`Session::on_ring`]), writes [`Session::output`] and reports
//! what it wrote ([`Session::written`]), and closes when a call returns an [`Ending`]. Everything
//! the client is told is decided here, from the shared state, so it can be tested without a
//! socket.
//!
//! Answers and pushes share one output budget. Work the session has accepted (a request read,
//! a ring, a health change) waits in a [`Backlog`] and is done in order, a row's fan-out at a
//! time, while the output is under its budget; once it is over, the session stops producing
//! until the socket has written the output, and nothing is dropped or reordered meanwhile.
//!
//! - [`answers`]: what each request is answered with.
//! - [`pushes`]: what the subscriptions are sent when the state changes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use tracing::{debug, warn};
use tws_wire::frame::{self, SERVER_MAX_VERSION};
use tws_wire::handshake::{Handshake, HandshakeError, Step};
use tws_wire::{Reply, Request, decode_request, notice};

use super::FrontDoor;
use super::feed::{self, Feed};
use super::output::{self, Output};
use super::subscriptions::Subscriptions;
use crate::health::Health;
use crate::kind::DataKind;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, SummaryRow};
use crate::state::Kind;

mod answers;
mod pushes;

/// Why a connection ends: logged, never sent.
pub(super) type Ending = String;

/// What the socket loop does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Everything buffered has been handled: write the output, then read more.
    NeedBytes,
    /// START_API arrived and the client id is the client's: call [`Session::start_up`] once the
    /// managed accounts are known.
    Started,
    /// The output reached its budget: write it, then call [`Session::on_bytes`] again (before
    /// reading: requests may be left in the buffer).
    Full,
}

/// The data kinds a client can follow: every streamed kind, in [`DataKind::ALL`]'s order, which
/// is also the order a full catch-up takes them in (positions before their valuations).
fn followed() -> impl Iterator<Item = DataKind> {
    DataKind::ALL.iter().copied().filter(|k| k.streamed())
}

/// What is still to go out of the work under way: one changed row of a catch-up, to be sent to
/// the subscriptions that want it, or one message of an answer.
#[derive(Debug)]
enum Push {
    /// A message of an answer, already built.
    Reply(Reply),
    /// A position, and whether it went away.
    Position(PositionRow, bool),
    Summary(SummaryRow),
    AccountPnl(AccountPnlRow),
    PositionPnl(PositionPnlRow),
}

/// Accepted work, done in order.
#[derive(Debug)]
enum Work {
    /// Bring a kind up to date: queues its changed rows.
    CatchUp(DataKind),
    /// Answer a request (its catch-ups are queued before it).
    Answer(Request),
    /// Mirror the health (the latest one: notices mirror state, so one queued change stands for
    /// all that came after it).
    Health(Box<Health>),
}

/// What a session has accepted and not yet turned into output. Bounded without any limit of its
/// own: requests are read only when it is empty, and each kind's catch-up and the health are
/// queued at most once, so it holds at most one catch-up's rows (one kind's difference) or one
/// answer's messages, and a handful of work items.
#[derive(Debug, Default)]
struct Backlog {
    /// What the catch-up or answer under way has still to send: it goes out before any later
    /// work.
    rows: VecDeque<Push>,
    work: VecDeque<Work>,
}

impl Backlog {
    /// Queues `w` unless it is already queued: a queued catch-up reads the hub when it runs, so it
    /// covers a ring that comes after it; a queued health change takes the newer health.
    fn queue(&mut self, w: Work) {
        match w {
            Work::CatchUp(kind) if self.work.iter().any(|q| matches!(q, Work::CatchUp(k) if *k == kind)) => {}
            Work::Health(h) => match self.work.iter_mut().find(|q| matches!(q, Work::Health(_))) {
                Some(queued) => *queued = Work::Health(h),
                None => self.work.push_back(Work::Health(h)),
            },
            w => self.work.push_back(w),
        }
    }
}

/// The data kinds a client follows, each as told to it.
#[derive(Debug, Default)]
pub(super) struct Feeds {
    positions: Option<Feed<PositionRow>>,
    summary: Option<Feed<SummaryRow>>,
    account_pnl: Option<Feed<AccountPnlRow>>,
    position_pnl: Option<Feed<PositionPnlRow>>,
}

impl Feeds {
    fn hold_all(&mut self) {
        let Feeds { positions, summary, account_pnl, position_pnl } = self;
        positions.iter_mut().for_each(Feed::hold);
        summary.iter_mut().for_each(Feed::hold);
        account_pnl.iter_mut().for_each(Feed::hold);
        position_pnl.iter_mut().for_each(Feed::hold);
    }

    /// Resolves with the kind whose hub changed (never while no kind is followed). Cancellation
    /// safe: each feed's ring is (see [`Feed::rung`]).
    pub(super) async fn rung(&mut self) -> DataKind {
        let Feeds { positions, summary, account_pnl, position_pnl } = self;
        tokio::select! {
            () = feed::rung(positions) => PositionRow::KIND,
            () = feed::rung(summary) => SummaryRow::KIND,
            () = feed::rung(account_pnl) => AccountPnlRow::KIND,
            () = feed::rung(position_pnl) => PositionPnlRow::KIND,
        }
    }
}

/// One client, from its first byte to its close.
pub(super) struct Session {
    door: Arc<FrontDoor>,
    conn: u64,
    /// Until START_API.
    opening: Option<Handshake>,
    /// Claimed from the door once started; released when the session is dropped.
    client_id: Option<i32>,
    out: Output,
    subs: Subscriptions,
    feeds: Feeds,
    /// Whether the client was last told the link is up (no 1100 outstanding).
    link_up: bool,
    /// Farm notices as last told: name → code.
    farms: BTreeMap<String, i32>,
    backlog: Backlog,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("conn", &self.conn).field("client_id", &self.client_id).finish()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.release();
    }
}

impl Session {
    /// A session for connection number `conn`, before its first byte.
    pub(super) fn new(door: Arc<FrontDoor>, conn: u64) -> Self {
        Self::with_budget(door, conn, output::BUDGET)
    }

    pub(super) fn with_budget(door: Arc<FrontDoor>, conn: u64, budget: usize) -> Self {
        Self {
            door,
            conn,
            opening: Some(Handshake::new(SERVER_MAX_VERSION)),
            client_id: None,
            out: Output::new(budget),
            subs: Subscriptions::default(),
            feeds: Feeds::default(),
            link_up: true,
            farms: BTreeMap::new(),
            backlog: Backlog::default(),
        }
    }

    /// The client id, once started.
    pub(super) fn client_id(&self) -> Option<i32> {
        self.client_id
    }

    /// Gives the client id back now (a closing connection's id is free before its last write).
    pub(super) fn release(&mut self) {
        if let Some(id) = self.client_id.take() {
            self.door.release(id);
        }
    }

    /// The feeds, for the socket loop to wait on their rings.
    pub(super) fn feeds(&mut self) -> &mut Feeds {
        &mut self.feeds
    }

    /// Output not yet written, from the first unwritten byte.
    pub(super) fn output(&self) -> &[u8] {
        self.out.bytes()
    }

    /// The socket wrote the first `n` bytes of [`Session::output`].
    pub(super) fn written(&mut self, n: usize) {
        self.out.written(n);
    }

    /// Whether there is output to write.
    pub(super) fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Takes what it can from `buf` (a partial frame stays there): the opening until START_API,
    /// then the backlog and requests, until the output reaches its budget.
    pub(super) fn on_bytes(&mut self, buf: &mut BytesMut) -> Result<Progress, Ending> {
        if self.opening.is_some() {
            return self.open(buf);
        }
        loop {
            self.produce();
            if self.out.full() {
                return Ok(Progress::Full);
            }
            let body = match frame::take_frame(buf) {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(Progress::NeedBytes),
                Err(e) => return Err(self.bad_input(&e)),
            };
            match decode_request(&body, self.out.codec(), self.out.version()) {
                Ok(req) => self.on_request(req),
                Err(e) => {
                    // A gateway answers 320 to a request it cannot read and then resets.
                    self.send(&Reply::error(-1, notice::UNREADABLE_CODE, format!("Error reading request: {e}")));
                    return Err(self.bad_input(&e));
                }
            }
        }
    }

    /// The opening: the version answer, then START_API and the claim of the client id.
    fn open(&mut self, buf: &mut BytesMut) -> Result<Progress, Ending> {
        let Some(opening) = self.opening.as_mut() else { return Ok(Progress::NeedBytes) };
        let client_id = loop {
            match opening.step(buf) {
                Ok(Step::NeedMore) => return Ok(Progress::NeedBytes),
                Ok(Step::Answer { version, codec, frame }) => {
                    self.out.negotiated(codec, version);
                    self.out.put_framed(&frame);
                }
                Ok(Step::Started { client_id }) => break client_id,
                // As a gateway does: no answer, just the close.
                Err(e @ HandshakeError::NoCommonVersion { .. }) => {
                    self.door.state.metrics.front_door_refused("version");
                    return Err(e.to_string());
                }
                Err(e @ HandshakeError::NotStarted(_)) => return Err(e.to_string()),
                Err(e) => return Err(self.bad_input(&e)),
            }
        };
        self.opening = None;
        if !self.door.claim(client_id) {
            self.door.state.metrics.front_door_refused("client_id_in_use");
            self.send(&Reply::error(-1, notice::CLIENT_ID_IN_USE_CODE, notice::client_id_in_use(client_id)));
            return Err(format!("client id {client_id} in use"));
        }
        self.client_id = Some(client_id);
        debug!(conn = self.conn, client_id, version = self.out.version(), "TWS client started");
        Ok(Progress::Started)
    }

    /// What a gateway sends after START_API: managedAccounts, nextValidId, the farms, and 1100
    /// when the link is down (`health`: as it is now).
    pub(super) fn start_up(&mut self, health: &Health) {
        self.send(&Reply::ManagedAccounts(self.accounts().join(",")));
        self.send(&Reply::NextValidId(self.door.next_order_id()));
        self.on_health(health);
    }

    /// Mirrors a health change (after the work accepted before it): farm notices that changed,
    /// 1100 when the link goes, 1102 and the subscriptions' rows again when it returns.
    pub(super) fn on_health(&mut self, h: &Health) {
        self.backlog.queue(Work::Health(Box::new(h.clone())));
        self.produce();
    }

    /// The hub of `kind` changed: its subscriptions are sent the difference (after the work
    /// accepted before).
    pub(super) fn on_ring(&mut self, kind: DataKind) {
        self.backlog.queue(Work::CatchUp(kind));
        self.produce();
    }

    /// Does queued work, in order, while the output is under its budget. An answer goes out a
    /// message at a time and a changed row to all its subscriptions at once, so the output
    /// exceeds the budget by at most one row's fan-out (a few hundred messages: see
    /// [`crate::front_door::subscriptions::MAX_PER_KIND`]).
    fn produce(&mut self) {
        while !self.out.full() {
            if let Some(row) = self.backlog.rows.pop_front() {
                self.push(row);
                continue;
            }
            match self.backlog.work.pop_front() {
                Some(Work::CatchUp(kind)) => self.catch_up(kind),
                Some(Work::Answer(req)) => self.answer(req),
                Some(Work::Health(h)) => self.apply_health(&h),
                None => return,
            }
        }
    }

    fn apply_health(&mut self, h: &Health) {
        for f in &h.farms {
            if self.farms.get(&f.name) != Some(&f.code)
                && let Some(text) = notice::farm(f.code, &f.name)
            {
                self.farms.insert(f.name.clone(), f.code);
                self.send(&Reply::error(-1, f.code, text));
            }
        }
        let up = h.is_ready();
        if up == self.link_up {
            return;
        }
        self.link_up = up;
        if up {
            // The client's subscriptions were kept and are served from the reconciled state:
            // "data maintained", followed by the rows as they are now (every row of a kind that
            // has become live again; see `feed`).
            let (code, text) = notice::LINK_RESTORED_DATA_MAINTAINED;
            self.send(&Reply::error(-1, code, text));
            self.catch_up_all();
        } else {
            let (code, text) = notice::LINK_LOST;
            self.send(&Reply::error(-1, code, text));
            // Whatever the feeds were told last stops counting as live now, even if their own
            // stale marks have not been caught up yet (the health change can win that race).
            self.feeds.hold_all();
        }
    }

    /// Managed accounts in the gateway's order.
    fn accounts(&self) -> Vec<String> {
        let snap = self.door.state.accounts.snapshot();
        let mut rows: Vec<_> = snap.rows.values().collect();
        rows.sort_by_key(|a| a.order);
        rows.into_iter().map(|a| a.id.clone()).collect()
    }

    fn send(&mut self, reply: &Reply) {
        self.out.send(reply);
    }

    fn bad_input(&self, e: &dyn std::fmt::Display) -> Ending {
        warn!(conn = self.conn, error = %e, "TWS client sent malformed input; closing its connection");
        self.door.state.metrics.front_door_refused("malformed");
        format!("malformed input: {e}")
    }
}

#[cfg(test)]
mod tests;
