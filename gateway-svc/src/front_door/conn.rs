//! One front-door client's socket: it reads into a buffer, hands what it read and what happened
//! (health changes, data-feed rings, shutdown) to the client's [`Session`], writes the session's
//! output, and closes. What the client is told is the session's business.
//!
//! Every `select!` branch is cancellation safe: reads go into a `BytesMut` with `read_buf`, so
//! bytes read before another branch wins stay in the buffer; writes go out with `write` from the
//! session's output, which only advances by what was written, so a write interrupted (a
//! shutdown, a client that stopped reading) resumes at its first unwritten byte; and the data
//! feeds are doorbells whose missed rings lose nothing (see [`super::feed`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Duration, Instant, timeout};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::FrontDoor;
use super::session::{Ending, Progress, Session};
use crate::health::Health;
use crate::kind::DataKind;
use crate::state::State;

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

/// Every health change from some point on (see [`crate::state::State::watch_health`]).
type HealthChanges = broadcast::Receiver<Arc<Health>>;

struct Connection {
    state: Arc<State>,
    shutdown: CancellationToken,
    conn: u64,
    stream: TcpStream,
    buf: BytesMut,
    session: Session,
}

/// Serves one accepted socket until it closes.
pub(super) async fn serve(door: Arc<FrontDoor>, stream: TcpStream, peer: SocketAddr, conn: u64) {
    let mut c = Connection {
        state: Arc::clone(&door.state),
        shutdown: door.shutdown.clone(),
        conn,
        stream,
        buf: BytesMut::with_capacity(1024),
        session: Session::new(door, conn),
    };
    let shutdown = c.shutdown.clone();
    let ending = tokio::select! {
        r = timeout(HANDSHAKE_TIMEOUT, c.open()) => match r {
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
        let client_id = self.session.client_id();
        self.session.release();
        // Whatever explains the close (a 326) goes out first, after the rest of an interrupted
        // write; then our FIN, and a moment for the client's, so neither side is left in
        // CLOSE_WAIT. At shutdown a client that does not read gets a short moment only: the
        // service's grace is for everyone.
        let wait = if self.shutdown.is_cancelled() { CLOSING_WRITE_TIMEOUT } else { WRITE_TIMEOUT };
        let _ = timeout(wait, write_out(&mut self.stream, &mut self.session)).await;
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + PEER_CLOSE_WAIT;
        let mut scratch = [0u8; 1024];
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
            if n == 0 {
                break;
            }
        }
        debug!(conn = self.conn, %peer, ?client_id, reason = %ending, "TWS client closed");
    }

    async fn fill(&mut self) -> Result<(), Ending> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(1024);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Err("client closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("client reset: {e}")),
        }
    }

    /// Writes all of the session's output, or fails when the client stops reading.
    async fn flush(&mut self) -> Result<(), Ending> {
        match timeout(WRITE_TIMEOUT, write_out(&mut self.stream, &mut self.session)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("client reset: {e}")),
            Err(_) => Err("client stopped reading".into()),
        }
    }

    /// Through START_API and the start-up messages; returns the health changes that follow
    /// the health those messages were built from.
    async fn open(&mut self) -> Result<HealthChanges, Ending> {
        loop {
            match self.session.on_bytes(&mut self.buf)? {
                Progress::Started => break,
                Progress::NeedBytes => {
                    self.flush().await?;
                    self.fill().await?;
                }
                Progress::Full => self.flush().await?,
            }
        }
        let mut health = self.state.health_watch();
        if !self.state.accounts.snapshot().synced {
            let state = &self.state;
            let _ = timeout(ACCOUNTS_WAIT, health.wait_for(|_| state.accounts.snapshot().synced)).await;
        }
        // Subscribed before reading, so no change falls between what the client is told now and
        // what the main loop hears.
        let (now, changes) = self.state.watch_health();
        self.session.start_up(&now);
        self.flush().await?;
        Ok(changes)
    }

    async fn main_loop(&mut self, mut health: HealthChanges) -> Ending {
        let shutdown = self.shutdown.clone();
        loop {
            match self.session.on_bytes(&mut self.buf) {
                Ok(Progress::NeedBytes | Progress::Started) => {}
                // Requests answered in slices: the rest of the buffer before any new read.
                Ok(Progress::Full) => {}
                Err(e) => return e,
            }
            if self.session.wants_write() {
                // A client that stops reading holds its own task for up to WRITE_TIMEOUT, never
                // the service's shutdown.
                tokio::select! {
                    r = self.flush() => if let Err(e) = r { return e },
                    () = shutdown.cancelled() => return "gateway-svc stopping".into(),
                }
                continue;
            }
            let Connection { stream, buf, session, .. } = self;
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            enum Woke {
                Read(std::io::Result<usize>),
                Health(Result<Arc<Health>, RecvError>),
                Rung(DataKind),
                Stop,
            }
            let woke = tokio::select! {
                r = stream.read_buf(buf) => Woke::Read(r),
                h = health.recv() => Woke::Health(h),
                kind = session.feeds().rung() => Woke::Rung(kind),
                () = shutdown.cancelled() => Woke::Stop,
            };
            match woke {
                Woke::Read(Ok(0)) => return "client closed".into(),
                Woke::Read(Ok(_)) => {}
                Woke::Read(Err(e)) => return format!("client reset: {e}"),
                // A lagging health reader just looks at the latest value: notices mirror state.
                Woke::Health(Ok(_) | Err(RecvError::Lagged(_))) => {
                    let now = self.state.health();
                    self.session.on_health(&now);
                }
                Woke::Health(Err(RecvError::Closed)) | Woke::Stop => return "gateway-svc stopping".into(),
                Woke::Rung(kind) => self.session.on_ring(kind),
            }
        }
    }
}

/// Writes the session's output until none is left. Cancellation safe: each `write` either
/// wrote some bytes, which the session then forgets, or nothing.
async fn write_out(stream: &mut TcpStream, session: &mut Session) -> std::io::Result<()> {
    while session.wants_write() {
        let n = stream.write(session.output()).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        session.written(n);
    }
    Ok(())
}
