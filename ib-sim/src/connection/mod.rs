//! One API client connection: handshake, START_API, then requests, pushed updates and faults.
//! What each request is answered with lives in [`requests`].
//!
//! The task owns its socket outright. It reads with `read_buf` into a `BytesMut`, which keeps the
//! `select!` below cancellation safe: bytes read before another branch wins stay in the buffer.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Duration, Instant, MissedTickBehavior, timeout};
use tracing::{info, warn};

use tws_wire::frame::{self, Codec, FrameError};
use tws_wire::handshake::{Handshake, HandshakeError, Step};
use tws_wire::{Reply, decode_request, encode_reply, notice};

use crate::book::BookEvent;
use crate::farm::Notice;
use crate::fault::{ConnCommand, Windows};
use crate::sim::Shared;
use crate::stats::{ClosedConnection, Closer};
use crate::summary::Subscription;

mod pnl;
mod requests;

/// A gateway gives a client this long to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that does not read for this long is dropped, which bounds what we buffer for it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After we close, how long the peer has to close its side before we call it unclean.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Events drained per wake-up, so a burst is written in large batches.
const EVENT_BATCH: usize = 512;

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
    /// reqId → what it asked for and what it was last sent.
    summaries: BTreeMap<i32, Subscription>,
    account_updates: Option<String>,
    /// reqId → what a reqPnL or reqPnLSingle follows and what it was last sent.
    pnl: BTreeMap<i32, pnl::PnlSub>,
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
    /// Control commands, subscribed at START_API together with the farm snapshot.
    commands: Option<broadcast::Receiver<ConnCommand>>,
    silent: bool,
    link_down: bool,
    /// Updates were held while the link was down.
    missed: bool,
    /// When a PnL subscription that is waiting out its minimum interval is due.
    pnl_due: Option<Instant>,
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
        commands: None,
        silent: false,
        link_down: false,
        missed: false,
        pnl_due: None,
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
        // Close the socket before the stats say it is closed: a reader that sees the record (a
        // test checking for CLOSE_WAIT with `ss`) must not find the socket still open.
        let Connection { shared, id, client_id, stream, .. } = self;
        drop(stream);
        shared.stats().closed(ClosedConnection {
            conn: id,
            client_id,
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
        let mut opening = Handshake::new(self.shared.settings.server_version);
        let client_id = loop {
            match opening.step(&mut self.buf) {
                Ok(Step::NeedMore) => self.fill().await?,
                Ok(Step::Answer { version, codec, frame }) => {
                    self.version = version;
                    self.codec = codec;
                    self.shared.stats().negotiated(self.id, version);
                    self.out.extend_from_slice(&frame);
                    self.flush().await?;
                }
                Ok(Step::Started { client_id }) => break client_id,
                Err(e @ HandshakeError::NoCommonVersion { .. }) => {
                    self.shared.stats().rejected("version");
                    return Err(Ending::server(e.to_string()));
                }
                Err(e @ HandshakeError::NotStarted(_)) => return Err(Ending::server(e.to_string())),
                Err(e) => return Err(self.bad_input(&e)),
            }
        };
        self.shared.stats().request("start_api".into(), false);
        if let Err(reason) = self.shared.claim_client_id(client_id, self.id) {
            self.shared.stats().rejected(reason);
            self.send_error(-1, notice::CLIENT_ID_IN_USE_CODE, notice::client_id_in_use(client_id));
            self.flush().await?;
            return Err(Ending::server(format!("client id {client_id} in use")));
        }
        self.client_id = Some(client_id);
        self.shared.stats().started(self.id, client_id);
        info!(conn = self.id, client_id, version = self.version, "client started");

        let accounts = self.shared.book.account_ids().join(",");
        self.send(&Reply::ManagedAccounts(accounts));
        self.send(&Reply::NextValidId(self.shared.next_order_id()));
        // From here on no farm or link change can slip between what we report and what we hear.
        let (commands, farms, link_down) = self.shared.startup_view();
        self.commands = Some(commands);
        self.send_notices(&farms);
        if link_down {
            self.link_lost(&[]);
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
        let mut commands = self.commands.take().unwrap_or_else(|| shared.commands.subscribe());
        let mut summary_tick = ticker(shared.settings.summary_refresh);
        loop {
            self.process_frames()?;
            self.flush().await?;
            let pnl_due = self.pnl_due;
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
                _ = summary_tick.tick() => self.send_summary_changes(),
                () = tokio::time::sleep_until(pnl_due.unwrap_or_else(Instant::now)), if pnl_due.is_some() => {
                    self.update_pnl();
                }
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
            match decode_request(&body, self.codec, self.version) {
                Ok(req) => self.on_request(req),
                Err(e) => {
                    // A gateway answers 320 to a request it cannot read and then resets.
                    self.send_error(-1, notice::UNREADABLE_CODE, format!("Error reading request: {e}"));
                    return Err(self.bad_input(&e));
                }
            }
        }
    }

    fn send_error(&mut self, id: i32, code: i32, message: impl Into<String>) {
        self.send(&Reply::error(id, code, message));
    }

    fn send(&mut self, reply: &Reply) {
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
        // Once per batch: a burst of changes costs one PnL evaluation, not one per event.
        self.update_pnl();
    }

    fn on_command(&mut self, cmd: ConnCommand) -> Result<(), Ending> {
        match cmd {
            ConnCommand::Drop => return Err(Ending::server("gateway restart")),
            ConnCommand::Silence => {
                info!(conn = self.id, "going silent (half-open)");
                self.silent = true;
            }
            ConnCommand::LinkLost { farms } => self.link_lost(&farms),
            ConnCommand::LinkRestored { data_lost, farms } => self.link_restored(data_lost, &farms),
            ConnCommand::Farms(notices) => self.send_notices(&notices),
            ConnCommand::Raw(bytes) => self.out.extend_from_slice(&bytes),
        }
        Ok(())
    }

    fn send_notices(&mut self, notices: &[Notice]) {
        for n in notices {
            self.send_error(-1, n.code, n.text.clone());
        }
    }

    /// 1100 (once per outage), then the farms the outage broke.
    fn link_lost(&mut self, farms: &[Notice]) {
        if !self.link_down {
            self.link_down = true;
            self.send_error(-1, notice::LINK_LOST.0, notice::LINK_LOST.1);
        }
        self.send_notices(farms);
    }

    fn link_restored(&mut self, data_lost: bool, farms: &[Notice]) {
        if !self.link_down {
            return;
        }
        self.link_down = false;
        if data_lost {
            self.send_error(-1, notice::LINK_RESTORED_DATA_LOST.0, notice::LINK_RESTORED_DATA_LOST.1);
            // Data lost means the subscriptions are gone: the client must ask again.
            self.subs = Subscriptions::default();
            self.pnl_due = None;
        } else {
            self.send_error(-1, notice::LINK_RESTORED_DATA_MAINTAINED.0, notice::LINK_RESTORED_DATA_MAINTAINED.1);
            if self.missed {
                self.resend_all();
            }
            // PnL was held: what changed meanwhile goes out now.
            self.update_pnl();
        }
        self.send_notices(farms);
        self.missed = false;
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
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
