//! One front-door client: handshake, START_API, start-up messages, then requests and pushes
//! until either side closes.
//!
//! The task owns its socket. It reads with `read_buf` into a `BytesMut`, so every `select!`
//! branch is cancellation safe: bytes read before another branch wins stay in the buffer, and
//! the data feeds are doorbells whose missed rings lose nothing (see [`super::feed`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Duration, Instant, timeout};
use tracing::{debug, warn};
use tws_wire::frame::{self, Codec, SERVER_MAX_VERSION};
use tws_wire::handshake::{Handshake, HandshakeError, Step};
use tws_wire::{Reply, decode_request, encode_reply, notice};

use super::FrontDoor;
use super::feed::{Feed, rung};
use super::requests::Subscriptions;
use crate::health::Health;
use crate::model::{AccountPnlRow, PositionPnlRow, PositionRow, SummaryRow};

/// A client has this long from connecting to START_API, as at a gateway.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that does not read for this long is dropped, which bounds what we buffer for it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// At start-up, how long a client waits for the service's first session to know the managed
/// accounts (a gateway always knows them; a service that just started may not yet).
const ACCOUNTS_WAIT: Duration = Duration::from_secs(3);
/// After we close, how long the peer has to close its side.
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// At shutdown, how long a last write (a client's pending answers) may take.
const CLOSING_WRITE_TIMEOUT: Duration = Duration::from_millis(250);
/// Answers built before they are written: a client sending many requests in one read is
/// answered in slices of about this size, so what one client costs stays bounded.
const OUT_LIMIT: usize = 256 * 1024;

/// Why a connection ends: logged, never sent.
type Ending = String;
/// Every health change from some point on (see [`crate::state::State::watch_health`]).
type HealthChanges = broadcast::Receiver<Arc<Health>>;

/// The data kinds a client follows, each as told to it.
#[derive(Debug, Default)]
pub(super) struct Feeds {
    pub(super) positions: Option<Feed<PositionRow>>,
    pub(super) summary: Option<Feed<SummaryRow>>,
    pub(super) account_pnl: Option<Feed<AccountPnlRow>>,
    pub(super) position_pnl: Option<Feed<PositionPnlRow>>,
}

impl Feeds {
    fn hold_all(&mut self) {
        let Feeds { positions, summary, account_pnl, position_pnl } = self;
        positions.iter_mut().for_each(Feed::hold);
        summary.iter_mut().for_each(Feed::hold);
        account_pnl.iter_mut().for_each(Feed::hold);
        position_pnl.iter_mut().for_each(Feed::hold);
    }
}

pub(super) struct Connection {
    pub(super) door: Arc<FrontDoor>,
    pub(super) conn: u64,
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    codec: Codec,
    version: u32,
    client_id: Option<i32>,
    pub(super) subs: Subscriptions,
    pub(super) feeds: Feeds,
    /// Whether the client was last told the link is up (no 1100 outstanding).
    pub(super) link_up: bool,
    /// Farm notices as last told: name → code.
    farms: BTreeMap<String, i32>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("conn", &self.conn).field("client_id", &self.client_id).finish()
    }
}

/// Serves one accepted socket until it closes.
pub(super) async fn serve(door: Arc<FrontDoor>, stream: TcpStream, peer: SocketAddr, conn: u64) {
    let mut c = Connection {
        door,
        conn,
        stream,
        buf: BytesMut::with_capacity(1024),
        out: Vec::new(),
        codec: Codec::Text,
        version: 0,
        client_id: None,
        subs: Subscriptions::default(),
        feeds: Feeds::default(),
        link_up: true,
        farms: BTreeMap::new(),
    };
    let shutdown = c.door.shutdown.clone();
    let ending = tokio::select! {
        r = timeout(HANDSHAKE_TIMEOUT, c.handshake()) => match r {
            Ok(Ok(health)) => c.main_loop(health).await,
            Ok(Err(ending)) => ending,
            Err(_) => "handshake timed out".into(),
        },
        () = shutdown.cancelled() => "gateway-svc stopping".into(),
    };
    c.close(peer, ending).await;
}

impl Connection {
    async fn close(mut self, peer: SocketAddr, ending: Ending) {
        if let Some(id) = self.client_id {
            self.door.release(id);
        }
        // Whatever explains the close (a 326) goes out first; then our FIN, and a moment for the
        // client's, so neither side is left in CLOSE_WAIT. At shutdown a client that does not
        // read gets a short moment only: the service's grace is for everyone.
        if self.door.shutdown.is_cancelled() {
            let _ = timeout(CLOSING_WRITE_TIMEOUT, self.flush()).await;
        } else {
            let _ = self.flush().await;
        }
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + PEER_CLOSE_WAIT;
        let mut scratch = [0u8; 1024];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
            if n == 0 {
                break;
            }
        }
        debug!(conn = self.conn, %peer, client_id = ?self.client_id, reason = %ending, "TWS client closed");
    }

    async fn fill(&mut self) -> Result<(), Ending> {
        self.buf.reserve(1024);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("client closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("client reset: {e}")),
        }
    }

    fn bad_input(&mut self, e: &dyn std::fmt::Display) -> Ending {
        warn!(conn = self.conn, error = %e, "TWS client sent malformed input; closing its connection");
        self.door.state.metrics.front_door_refused("malformed");
        format!("malformed input: {e}")
    }

    /// Through START_API and the start-up messages; returns the health changes that follow
    /// the health those messages were built from.
    async fn handshake(&mut self) -> Result<HealthChanges, Ending> {
        let mut opening = Handshake::new(SERVER_MAX_VERSION);
        let client_id = loop {
            match opening.step(&mut self.buf) {
                Ok(Step::NeedMore) => self.fill().await?,
                Ok(Step::Answer { version, codec, frame }) => {
                    self.version = version;
                    self.codec = codec;
                    self.out.extend_from_slice(&frame);
                    self.flush().await?;
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
        if !self.door.claim(client_id) {
            self.door.state.metrics.front_door_refused("client_id_in_use");
            self.send(&Reply::error(-1, notice::CLIENT_ID_IN_USE_CODE, notice::client_id_in_use(client_id)));
            return Err(format!("client id {client_id} in use"));
        }
        self.client_id = Some(client_id);
        debug!(conn = self.conn, client_id, version = self.version, "TWS client started");
        self.start_up().await
    }

    /// managedAccounts, nextValidId, the farms, and 1100 when the link is down: what a gateway
    /// sends after START_API.
    async fn start_up(&mut self) -> Result<HealthChanges, Ending> {
        let mut health = self.door.state.health.subscribe();
        if !self.door.state.accounts.snapshot().synced {
            let _ = timeout(ACCOUNTS_WAIT, health.wait_for(|_| self.door.state.accounts.snapshot().synced)).await;
        }
        self.send(&Reply::ManagedAccounts(self.accounts().join(",")));
        self.send(&Reply::NextValidId(self.door.next_order_id()));
        // Subscribed before reading, so no change falls between what the client is told now and
        // what the main loop hears.
        let (now, changes) = self.door.state.watch_health();
        self.on_health(&now);
        self.flush().await?;
        Ok(changes)
    }

    /// Managed accounts in the gateway's order.
    pub(super) fn accounts(&self) -> Vec<String> {
        let snap = self.door.state.accounts.snapshot();
        let mut rows: Vec<_> = snap.rows.values().collect();
        rows.sort_by_key(|a| a.order);
        rows.into_iter().map(|a| a.id.clone()).collect()
    }

    /// Mirrors a health change: farm notices that changed, 1100 when the link goes, 1102 and the
    /// subscriptions' rows again when it returns.
    fn on_health(&mut self, h: &Health) {
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

    async fn main_loop(&mut self, mut health: HealthChanges) -> Ending {
        let state = Arc::clone(&self.door.state);
        let shutdown = self.door.shutdown.clone();
        loop {
            let more = match self.process_frames() {
                Ok(more) => more,
                Err(e) => return e,
            };
            // A client that stops reading holds its own task for up to WRITE_TIMEOUT, never the
            // service's shutdown.
            tokio::select! {
                r = self.flush() => if let Err(e) = r { return e },
                () = shutdown.cancelled() => return "gateway-svc stopping".into(),
            }
            if more {
                // Requests answered in slices: the rest of the buffer before any new read.
                continue;
            }
            let Connection { stream, buf, feeds, .. } = self;
            let Feeds { positions, summary, account_pnl, position_pnl } = feeds;
            enum Woke {
                Read(std::io::Result<usize>),
                Health(Result<Arc<Health>, RecvError>),
                Positions,
                Summary,
                AccountPnl,
                PositionPnl,
                Stop,
            }
            let woke = tokio::select! {
                r = stream.read_buf(buf) => Woke::Read(r),
                h = health.recv() => Woke::Health(h),
                () = rung(positions) => Woke::Positions,
                () = rung(summary) => Woke::Summary,
                () = rung(account_pnl) => Woke::AccountPnl,
                () = rung(position_pnl) => Woke::PositionPnl,
                () = shutdown.cancelled() => Woke::Stop,
            };
            match woke {
                Woke::Read(Ok(0)) => return "client closed".into(),
                Woke::Read(Ok(_)) => {}
                Woke::Read(Err(e)) => return format!("client reset: {e}"),
                // A lagging health reader just looks at the latest value: notices mirror state.
                Woke::Health(Ok(_) | Err(RecvError::Lagged(_))) => {
                    let now = state.health();
                    self.on_health(&now);
                }
                Woke::Health(Err(RecvError::Closed)) | Woke::Stop => return "gateway-svc stopping".into(),
                Woke::Positions => self.catch_up_positions(),
                Woke::Summary => self.catch_up_summary(),
                Woke::AccountPnl => self.catch_up_account_pnl(),
                Woke::PositionPnl => self.catch_up_position_pnl(),
            }
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(1024);
            }
        }
    }

    /// Answers the complete requests in the buffer, until the answers reach [`OUT_LIMIT`].
    /// Returns whether requests are left for after the flush.
    fn process_frames(&mut self) -> Result<bool, Ending> {
        loop {
            if self.out.len() >= OUT_LIMIT {
                return Ok(true);
            }
            let body = match frame::take_frame(&mut self.buf) {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(false),
                Err(e) => return Err(self.bad_input(&e)),
            };
            match decode_request(&body, self.codec, self.version) {
                Ok(req) => self.on_request(req),
                Err(e) => {
                    // A gateway answers 320 to a request it cannot read and then resets.
                    self.send(&Reply::error(-1, notice::UNREADABLE_CODE, format!("Error reading request: {e}")));
                    return Err(self.bad_input(&e));
                }
            }
        }
    }

    pub(super) fn send(&mut self, reply: &Reply) {
        frame::put_frame(&mut self.out, &encode_reply(reply, self.codec, self.version));
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = timeout(WRITE_TIMEOUT, self.stream.write_all(&self.out)).await;
        self.out.clear();
        // A client that asked for a lot and then read nothing must not keep a large buffer.
        self.out.shrink_to(64 * 1024);
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("client reset: {e}")),
            Err(_) => Err("client stopped reading".into()),
        }
    }
}
