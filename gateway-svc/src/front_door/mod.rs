//! The TWS-protocol front door: a port that speaks the gateway side of the TWS API, so that
//! unmodified IB API programs (ib_async, IB's own clients, Rust `ibapi`) share the one upstream
//! session by changing only the host and port they connect to.
//!
//! Everything a client reads comes from the shared [`State`]: no client request ever reaches
//! upstream, so any number of clients cost exactly one gateway socket. Read-only by
//! construction: orders, cancels, exercises and global cancels are answered with the error a
//! read-only gateway sends (321, for that order id) and go nowhere. Client ids are virtual:
//! unique among front-door clients (a duplicate gets 326 and a close, as from a gateway) and
//! unrelated to the id the service uses upstream.
//!
//! - [`session`]: one client without I/O: the opening, what each request is answered with,
//!   what is pushed afterwards, link and farm notices, all into one budgeted output.
//! - [`conn`]: one client's socket: reads, writes the session's output, closes.
//! - [`subscriptions`]: what a client is subscribed to; [`output`]: what it has yet to be sent.
//! - [`feed`]: what a client has been told of each data kind; [`rows`]: rows as messages.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::state::State;

mod conn;
mod feed;
mod output;
mod rows;
mod session;
mod subscriptions;

/// Shared by every front-door connection.
#[derive(Debug)]
pub(crate) struct FrontDoor {
    state: Arc<State>,
    shutdown: CancellationToken,
    /// Client ids of started connections.
    client_ids: Mutex<HashSet<i32>>,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
    max_clients: usize,
    /// Order ids handed out by `nextValidId`: increasing across all clients, as a gateway's are.
    /// No order is ever placed with them.
    next_order_id: AtomicI32,
}

impl FrontDoor {
    /// A front door over `state`, admitting at most `max_clients` connections.
    pub(crate) fn new(state: Arc<State>, shutdown: CancellationToken, max_clients: usize) -> Arc<Self> {
        Arc::new(Self {
            state,
            shutdown,
            client_ids: Mutex::default(),
            open: AtomicUsize::new(0),
            max_clients,
            next_order_id: AtomicI32::new(1),
        })
    }

    /// Connections open now.
    pub(crate) fn clients(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The next id for `nextValidId`: 1 and up, and `i32::MAX` over and over once a client has
    /// asked that often. Saturating rather than wrapping: an id ≤ 0 is no order id at all, and
    /// wrapping to 1 would hand out ids going backwards, which a client that keeps its own
    /// counter (the largest it was told or used) does not expect. Repeating the last id costs
    /// nothing, since no order is ever placed with it.
    fn next_order_id(&self) -> i32 {
        let next =
            self.next_order_id.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| Some(id.saturating_add(1)));
        // The closure never refuses, so both arms hold the id before this call.
        next.unwrap_or_else(|id| id)
    }

    /// Claims `client_id` for a started connection; false when another holds it.
    fn claim(&self, client_id: i32) -> bool {
        self.client_ids.lock().map(|mut ids| ids.insert(client_id)).unwrap_or(false)
    }

    fn release(&self, client_id: i32) {
        if let Ok(mut ids) = self.client_ids.lock() {
            ids.remove(&client_id);
        }
    }

    /// Accepts connections until shutdown. Each connection is its own task on `tracker`, which
    /// the service waits for at shutdown: every client sees its connection closed cleanly.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener, tracker: TaskTracker) {
        let mut next_conn: u64 = 0;
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = self.shutdown.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: the listener itself is fine; back off a
                    // moment instead of spinning.
                    warn!(error = %e, "TWS front door: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            next_conn += 1;
            if self.open.load(Ordering::Relaxed) >= self.max_clients {
                // A gateway at its limit accepts and closes at once; so do we.
                warn!(%peer, max_clients = self.max_clients, "TWS front door full; closing the new connection");
                self.state.metrics.front_door_refused("max_clients");
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.open.fetch_add(1, Ordering::Relaxed);
            self.state.metrics.front_door_clients(self.clients());
            let door = Arc::clone(&self);
            tracker.spawn(async move {
                conn::serve(Arc::clone(&door), stream, peer, next_conn).await;
                door.open.fetch_sub(1, Ordering::Relaxed);
                door.state.metrics.front_door_clients(door.clients());
            });
        }
        debug!("TWS front door stopped accepting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_valid_ids_never_go_below_one() {
        let door =
            FrontDoor::new(crate::state::StateWriter::new("gateway:4002", 1).reader(), CancellationToken::new(), 1);
        assert_eq!((door.next_order_id(), door.next_order_id()), (1, 2));
        // A client asking reqIds in a loop reaches the top of the range.
        door.next_order_id.store(i32::MAX - 1, Ordering::Relaxed);
        let ids: Vec<i32> = (0..3).map(|_| door.next_order_id()).collect();
        assert_eq!(ids, [i32::MAX - 1, i32::MAX, i32::MAX]);
    }
}
