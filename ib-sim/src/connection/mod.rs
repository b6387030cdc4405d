//! One API client connection: handshake, START_API, then requests, pushed updates and faults.
//!
//! The task owns its socket outright. It reads with `read_buf` into a `BytesMut`, which keeps the
//! `select!` below cancellation safe: bytes read before another branch wins stay in the buffer.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Duration, Instant, MissedTickBehavior, timeout};
use tracing::{debug, info, warn};

use crate::book::BookEvent;
use crate::fault::{ConnCommand, Windows};
use crate::frame::{self, Codec, FrameError};
use crate::message::{Reply, Request, decode_request, encode_reply};
use crate::sim::Shared;
use crate::stats::{ClosedConnection, Closer};

/// A gateway gives a client this long to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that does not read for this long is dropped, which bounds what we buffer for it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After we close, how long the peer has to close its side before we call it unclean.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Events drained per wake-up, so a burst is written in large batches.
const EVENT_BATCH: usize = 512;
/// At most two account-summary subscriptions per client, as a gateway enforces.
const MAX_SUMMARIES: usize = 2;

/// How and why a connection ends.
#[derive(Debug)]
struct Ending {
    closer: Closer,
    /// For client closes: FIN (true) or reset/error (false).
    clean: bool,
    reason: String,
}

impl Ending {
    fn server(reason: impl Into<String>) -> Self {
        Self { closer: Closer::Server, clean: false, reason: reason.into() }
    }
    fn client_eof() -> Self {
        Self { closer: Closer::Client, clean: true, reason: "client closed".into() }
    }
    fn client_error(e: &std::io::Error) -> Self {
        Self { closer: Closer::Client, clean: false, reason: format!("client reset: {e}") }
    }
}

#[derive(Debug, Default)]
struct Subscriptions {
    positions: bool,
    /// reqId → requested tags.
    summaries: BTreeMap<i32, Vec<String>>,
    account_updates: Option<String>,
    /// reqId → account.
    pnl: BTreeMap<i32, String>,
}

/// How a new connection is treated, decided at accept time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Serve,
    CloseAtOnce(&'static str),
    Stall,
}

pub(crate) struct Connection {
    shared: Arc<Shared>,
    id: u64,
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    codec: Codec,
    version: u32,
    client_id: Option<i32>,
    subs: Subscriptions,
    silent: bool,
    link_down: bool,
    /// Updates were held while the link was down.
    missed: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("id", &self.id).field("client_id", &self.client_id).finish()
    }
}

/// Serves one accepted socket to the end and records how it ended.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, id: u64, admission: Admission) {
    let mut conn = Connection {
        shared,
        id,
        stream,
        buf: BytesMut::with_capacity(4096),
        out: Vec::with_capacity(4096),
        codec: Codec::Text,
        version: 0,
        client_id: None,
        subs: Subscriptions::default(),
        silent: false,
        link_down: false,
        missed: false,
    };
    let ending = match admission {
        Admission::Serve => conn.run().await,
        Admission::CloseAtOnce(reason) => Ending::server(reason),
        Admission::Stall => conn.stall().await,
    };
    conn.finish(ending).await;
}

impl Connection {
    async fn finish(mut self, mut ending: Ending) {
        // The id is free as soon as we decide to close: a restarted gateway does not remember it.
        if let Some(cid) = self.client_id {
            self.shared.release_client_id(cid, self.id);
        }
        if ending.closer == Closer::Server {
            // Whatever was queued (a 320 or 326 explaining the close) goes out first.
            let _ = self.flush().await;
            // Close our side first, then give the peer a moment to answer with its own FIN: that
            // is what "the peer closed cleanly" means for a server-side close.
            let _ = self.stream.shutdown().await;
            // When the whole simulator stops nobody is left to read the verdict; don't make
            // shutdown wait for peers.
            ending.clean = !self.shared.shutdown.is_cancelled() && self.drain_until_eof().await;
        }
        info!(conn = self.id, client_id = ?self.client_id, closed_by = ?ending.closer, clean = ending.clean, reason = %ending.reason, "connection closed");
        self.shared.stats().closed(ClosedConnection {
            conn: self.id,
            client_id: self.client_id,
            closed_by: ending.closer,
            clean: ending.clean,
            reason: ending.reason,
        });
    }

    async fn drain_until_eof(&mut self) -> bool {
        let deadline = Instant::now() + PEER_CLOSE_WAIT;
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) => return true,
                Ok(Ok(_)) => continue,
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    /// Accept, read whatever comes, answer nothing (a wedged API layer).
    async fn stall(&mut self) -> Ending {
        let shutdown = self.shared.shutdown.clone();
        loop {
            self.buf.clear();
            tokio::select! {
                r = self.stream.read_buf(&mut self.buf) => match r {
                    Ok(0) => return Ending::client_eof(),
                    Ok(_) => {}
                    Err(e) => return Ending::client_error(&e),
                },
                () = shutdown.cancelled() => return Ending::server("simulator shutting down"),
            }
        }
    }

    /// Reads more bytes; `Err` ends the connection.
    async fn fill(&mut self) -> Result<(), Ending> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err(Ending::client_eof()),
            Ok(_) => Ok(()),
            Err(e) => Err(Ending::client_error(&e)),
        }
    }

    async fn run(&mut self) -> Ending {
        let shutdown = self.shared.shutdown.clone();
        tokio::select! {
            r = timeout(HANDSHAKE_TIMEOUT, self.handshake()) => match r {
                Ok(Ok(())) => {}
                Ok(Err(ending)) => return ending,
                Err(_) => return Ending::server("handshake timed out"),
            },
            () = shutdown.cancelled() => return Ending::server("simulator shutting down"),
        }
        match self.main_loop().await {
            Ok(never) => match never {},
            Err(ending) => ending,
        }
    }

    async fn handshake(&mut self) -> Result<(), Ending> {
        let range = loop {
            match frame::take_handshake(&mut self.buf) {
                Ok(Some(range)) => break range,
                Ok(None) => self.fill().await?,
                Err(e) => return Err(self.bad_input(&e)),
            }
        };
        let Some(version) = range.negotiate(self.shared.settings.server_version) else {
            self.shared.stats().rejected("version");
            return Err(Ending::server(format!("no common version with client range {}..{}", range.min, range.max)));
        };
        self.version = version;
        self.codec = Codec::for_version(version);
        self.shared.stats().negotiated(self.id, version);
        // The reply is text in every codec: `<version>\0<connection time>\0`.
        let hello = format!("{version}\0{}\0", connection_time());
        frame::put_frame(&mut self.out, hello.as_bytes());
        self.flush().await?;

        let client_id = loop {
            match frame::take_frame(&mut self.buf) {
                Ok(Some(body)) => match decode_request(&body, self.codec) {
                    Ok(Request::StartApi { client_id }) => break client_id,
                    Ok(other) => {
                        return Err(Ending::server(format!("{} before START_API", other.name())));
                    }
                    Err(e) => return Err(self.bad_input(&e)),
                },
                Ok(None) => self.fill().await?,
                Err(e) => return Err(self.bad_input(&e)),
            }
        };
        self.shared.stats().request("start_api".into(), false);
        if let Err(reason) = self.shared.claim_client_id(client_id, self.id) {
            self.shared.stats().rejected(reason);
            let msg = format!(
                "Unable to connect as the client id is already in use. Retry with a unique client id. ({client_id})"
            );
            self.send(&Reply::Error { id: -1, code: 326, message: &msg });
            self.flush().await?;
            return Err(Ending::server(format!("client id {client_id} in use")));
        }
        self.client_id = Some(client_id);
        self.shared.stats().started(self.id, client_id);
        info!(conn = self.id, client_id, version, "client started");

        let accounts = self.shared.book.account_ids().join(",");
        self.send(&Reply::ManagedAccounts(accounts));
        self.send(&Reply::NextValidId(self.shared.next_order_id()));
        for (code, text) in FARMS_OK {
            self.send(&Reply::Error { id: -1, code, message: text });
        }
        if self.shared.windows().link_down {
            self.link_lost(false);
        }
        self.flush().await
    }

    fn bad_input(&self, e: &dyn std::fmt::Display) -> Ending {
        warn!(conn = self.id, error = %e, "malformed client input; closing this connection");
        Ending::server(format!("malformed input: {e}"))
    }

    async fn main_loop(&mut self) -> Result<std::convert::Infallible, Ending> {
        let shared = Arc::clone(&self.shared);
        let mut book_rx = shared.book.subscribe();
        let mut commands = shared.commands.subscribe();
        let mut summary_tick = ticker(shared.settings.summary_refresh);
        let mut pnl_tick = ticker(shared.settings.pnl_interval);
        loop {
            self.process_frames()?;
            self.flush().await?;
            tokio::select! {
                r = self.stream.read_buf(&mut self.buf) => match r {
                    Ok(0) => return Err(Ending::client_eof()),
                    Ok(_) => {}
                    Err(e) => return Err(Ending::client_error(&e)),
                },
                ev = book_rx.recv() => self.on_book_event(ev, &mut book_rx),
                cmd = commands.recv() => match cmd {
                    Ok(cmd) => self.on_command(cmd)?,
                    // A connection that missed a control command would be in an unknown state.
                    Err(RecvError::Lagged(_)) => return Err(Ending::server("control commands lagged")),
                    Err(RecvError::Closed) => return Err(Ending::server("simulator stopped")),
                },
                _ = summary_tick.tick() => self.refresh_summaries(),
                _ = pnl_tick.tick() => self.send_pnl(),
                () = shared.shutdown.cancelled() => return Err(Ending::server("simulator shutting down")),
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
        }
    }

    fn process_frames(&mut self) -> Result<(), Ending> {
        loop {
            let body = match frame::take_frame(&mut self.buf) {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(()),
                Err(e @ FrameError::TooLarge(_)) => return Err(self.bad_input(&e)),
                Err(e) => return Err(self.bad_input(&e)),
            };
            if self.silent {
                continue;
            }
            match decode_request(&body, self.codec) {
                Ok(req) => self.on_request(req),
                Err(e) => {
                    // A gateway answers 320 to a request it cannot read and then resets.
                    self.send(&Reply::Error { id: -1, code: 320, message: &format!("Error reading request: {e}") });
                    return Err(self.bad_input(&e));
                }
            }
        }
    }

    fn send(&mut self, reply: &Reply<'_>) {
        let body = encode_reply(reply, self.codec, self.version);
        frame::put_frame(&mut self.out, &body);
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.silent {
            self.out.clear();
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        match timeout(WRITE_TIMEOUT, self.stream.write_all(&out)).await {
            Ok(Ok(())) => {
                self.out = out;
                self.out.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(Ending::client_error(&e)),
            Err(_) => Err(Ending::server("client stopped reading")),
        }
    }

    fn on_request(&mut self, req: Request) {
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
            Request::AccountSummary { req_id, group: _, tags } => {
                if self.subs.summaries.len() >= MAX_SUMMARIES && !self.subs.summaries.contains_key(&req_id) {
                    self.send(&Reply::Error {
                        id: req_id,
                        code: 322,
                        message: "Error processing request: Maximum number of account summary requests exceeded",
                    });
                    return;
                }
                self.subs.summaries.insert(req_id, tags);
                self.send_summary(req_id);
                self.send(&Reply::AccountSummaryEnd { req_id });
            }
            Request::CancelAccountSummary { req_id } => {
                self.subs.summaries.remove(&req_id);
            }
            Request::AccountUpdates { subscribe, account } => self.account_updates(subscribe, account),
            Request::Pnl { req_id, account } => {
                if self.shared.book.account_pnl(&account).is_none() {
                    let msg = format!("Error validating request: unknown account {account}");
                    self.send(&Reply::Error { id: req_id, code: 321, message: &msg });
                    return;
                }
                self.subs.pnl.insert(req_id, account);
                self.send_pnl_for(req_id);
            }
            Request::CancelPnl { req_id } => {
                if self.subs.pnl.remove(&req_id).is_none() {
                    self.send(&Reply::Error {
                        id: req_id,
                        code: 10185,
                        message: "Failed to cancel PNL (not subscribed)",
                    });
                }
            }
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

    fn send_all_positions(&mut self) {
        for p in self.shared.book.positions() {
            self.send(&Reply::Position(&p));
        }
    }

    fn send_summary(&mut self, req_id: i32) {
        let Some(tags) = self.subs.summaries.get(&req_id).cloned() else { return };
        for v in self.shared.book.values() {
            if tags.iter().any(|t| t == &v.tag) {
                self.send(&Reply::AccountSummary {
                    req_id,
                    account: &v.account,
                    tag: &v.tag,
                    value: &v.value,
                    currency: &v.currency,
                });
            }
        }
    }

    fn refresh_summaries(&mut self) {
        let ids: Vec<i32> = self.subs.summaries.keys().copied().collect();
        self.for_each_live(ids, Self::send_summary);
    }

    /// Periodic pushes go quiet while IB's link is down, as a gateway's do.
    fn for_each_live(&mut self, req_ids: Vec<i32>, send: fn(&mut Self, i32)) {
        if self.link_down {
            return;
        }
        for req_id in req_ids {
            send(self, req_id);
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
        for p in self.shared.book.positions().iter().filter(|p| p.account == account) {
            self.send(&Reply::Portfolio(p));
        }
        self.send(&Reply::AccountUpdateTime(jiff::Zoned::now().strftime("%H:%M").to_string()));
        self.send(&Reply::AccountDownloadEnd(&account));
        self.subs.account_updates = Some(account);
    }

    fn send_pnl(&mut self) {
        let ids: Vec<i32> = self.subs.pnl.keys().copied().collect();
        self.for_each_live(ids, Self::send_pnl_for);
    }

    fn send_pnl_for(&mut self, req_id: i32) {
        let Some(account) = self.subs.pnl.get(&req_id) else { return };
        let Some((daily, realized)) = self.shared.book.account_pnl(account) else { return };
        let unrealized =
            self.shared.book.positions().iter().filter(|p| &p.account == account).map(|p| p.unrealized_pnl()).sum();
        self.send(&Reply::Pnl { req_id, daily, unrealized, realized });
    }

    fn on_book_event(
        &mut self,
        first: Result<Arc<BookEvent>, RecvError>,
        rx: &mut tokio::sync::broadcast::Receiver<Arc<BookEvent>>,
    ) {
        let mut next = Some(first);
        let mut drained = 0;
        while let Some(ev) = next.take() {
            match ev {
                Ok(ev) => self.push_event(&ev),
                Err(RecvError::Lagged(n)) => {
                    // Resending every subscribed row converges the client without guessing
                    // what the skipped events were.
                    warn!(conn = self.id, skipped = n, "slow client lagged; resending subscriptions");
                    self.resend_all();
                }
                Err(RecvError::Closed) => return,
            }
            drained += 1;
            if drained < EVENT_BATCH {
                next = match rx.try_recv() {
                    Ok(ev) => Some(Ok(ev)),
                    Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                    Err(_) => None,
                };
            }
        }
    }

    fn push_event(&mut self, ev: &BookEvent) {
        if self.link_down {
            self.missed = true;
            return;
        }
        match ev {
            BookEvent::Position(p) => {
                if self.subs.positions {
                    self.send(&Reply::Position(p));
                }
                if self.subs.account_updates.as_deref() == Some(p.account.as_str()) {
                    self.send(&Reply::Portfolio(p));
                }
            }
            BookEvent::Value(v) => {
                let req_ids: Vec<i32> =
                    self.subs.summaries.iter().filter(|(_, tags)| tags.contains(&v.tag)).map(|(id, _)| *id).collect();
                for req_id in req_ids {
                    self.send(&Reply::AccountSummary {
                        req_id,
                        account: &v.account,
                        tag: &v.tag,
                        value: &v.value,
                        currency: &v.currency,
                    });
                }
                if self.subs.account_updates.as_deref() == Some(v.account.as_str()) {
                    self.send(&Reply::AccountValue {
                        key: &v.tag,
                        value: &v.value,
                        currency: &v.currency,
                        account: &v.account,
                    });
                }
            }
        }
    }

    fn resend_all(&mut self) {
        if self.subs.positions {
            self.send_all_positions();
        }
        self.refresh_summaries();
    }

    fn on_command(&mut self, cmd: ConnCommand) -> Result<(), Ending> {
        match cmd {
            ConnCommand::Drop => return Err(Ending::server("gateway restart")),
            ConnCommand::Silence => {
                info!(conn = self.id, "going silent (half-open)");
                self.silent = true;
            }
            ConnCommand::LinkLost { maintenance } => self.link_lost(maintenance),
            ConnCommand::LinkRestored { data_lost, maintenance } => self.link_restored(data_lost, maintenance),
            ConnCommand::Raw(bytes) => self.out.extend_from_slice(&bytes),
        }
        Ok(())
    }

    fn link_lost(&mut self, maintenance: bool) {
        self.link_down = true;
        self.send(&Reply::Error {
            id: -1,
            code: 1100,
            message: "Connectivity between IB and Trader Workstation has been lost.",
        });
        if maintenance {
            for (code, text) in FARMS_BROKEN {
                self.send(&Reply::Error { id: -1, code, message: text });
            }
        }
    }

    fn link_restored(&mut self, data_lost: bool, maintenance: bool) {
        if !self.link_down {
            return;
        }
        self.link_down = false;
        if data_lost {
            self.send(&Reply::Error {
                id: -1,
                code: 1101,
                message: "Connectivity between IB and Trader Workstation has been restored - data lost.",
            });
            // Data lost means the subscriptions are gone: the client must ask again.
            self.subs = Subscriptions::default();
        } else {
            self.send(&Reply::Error {
                id: -1,
                code: 1102,
                message: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
            });
            if std::mem::take(&mut self.missed) {
                self.resend_all();
            }
        }
        if maintenance {
            for (code, text) in FARMS_OK {
                self.send(&Reply::Error { id: -1, code, message: text });
            }
        }
        self.missed = false;
    }
}

/// The farm notices a gateway sends after START_API.
const FARMS_OK: [(i32, &str); 3] = [
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
];

const FARMS_BROKEN: [(i32, &str); 3] = [
    (2103, "Market data farm connection is broken:usfarm"),
    (2105, "HMDS data farm connection is broken:ushmds"),
    (2157, "Sec-def data farm connection is broken:secdefnj"),
];

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// The handshake's connection time, `YYYYMMDD HH:MM:SS EST`, as gateways print it. Fixed at
/// UTC−5 with the `EST` label every client parses; the wall-clock offset does not matter here.
fn connection_time() -> String {
    let est = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(-5)));
    format!("{} EST", est.strftime("%Y%m%d %H:%M:%S"))
}

/// Decides how a freshly accepted socket is treated.
pub(crate) fn admission(windows: &Windows, open_now: u64, max_clients: usize) -> Admission {
    if Windows::active(windows.accept_close_until) {
        Admission::CloseAtOnce("accept_then_close")
    } else if Windows::active(windows.stall_until) {
        Admission::Stall
    } else if open_now >= max_clients as u64 {
        Admission::CloseAtOnce("max_clients")
    } else {
        Admission::Serve
    }
}
