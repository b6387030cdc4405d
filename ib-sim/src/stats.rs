//! Counters the control API reports: what connected, what was asked, how each connection ended.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// How many closed-connection records are kept.
const CLOSED_HISTORY: usize = 4096;

/// Who closed a connection first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closer {
    /// The client closed (or reset) first.
    Client,
    /// The simulator closed first (fault, limit, shutdown, bad input).
    Server,
}

/// One finished connection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClosedConnection {
    /// Connection sequence number.
    pub conn: u64,
    /// Client id from START_API, if it got that far.
    pub client_id: Option<i32>,
    /// Who closed first.
    pub closed_by: Closer,
    /// For a client close: FIN rather than RST. For a server close: the peer then closed its
    /// side with FIN within two seconds.
    pub clean: bool,
    /// Why the connection ended.
    pub reason: String,
}

/// One connection still open.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpenConnection {
    /// Connection sequence number.
    pub conn: u64,
    /// Peer address.
    pub peer: String,
    /// Client id, once START_API arrived.
    pub client_id: Option<i32>,
    /// Negotiated version, once the handshake is done.
    pub version: Option<u32>,
}

/// Everything `GET /stats` returns.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// TCP connections accepted since start (or the last reset).
    pub connections_accepted_total: u64,
    /// Connections open now.
    pub open_now: u64,
    /// Most connections open at once.
    pub peak_concurrent: u64,
    /// Handshakes that reached START_API and were accepted.
    pub handshakes_completed: u64,
    /// Accepted START_APIs per client id.
    pub per_client_id: BTreeMap<i32, u64>,
    /// Requests received, by type.
    pub requests: BTreeMap<String, u64>,
    /// placeOrder, cancelOrder, reqGlobalCancel and exerciseOptions messages received.
    pub order_messages: u64,
    /// Connections turned away, by reason (`max_clients`, `duplicate_id`, …).
    pub rejected: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Connections closed in all.
    pub closed_total: u64,
    /// Closed connections where the simulator closed first.
    pub closed_by_server_total: u64,
    /// Closed connections that did not end cleanly (RST, or no FIN after our close).
    pub unclean_total: u64,
    /// The most recent closed connections, oldest first.
    pub closed: VecDeque<ClosedConnection>,
    /// Connections open now.
    pub open: Vec<OpenConnection>,
}

impl Stats {
    pub(crate) fn accepted(&mut self, conn: u64, peer: String) {
        self.connections_accepted_total += 1;
        self.open_now += 1;
        self.peak_concurrent = self.peak_concurrent.max(self.open_now);
        self.open.push(OpenConnection { conn, peer, client_id: None, version: None });
    }

    pub(crate) fn negotiated(&mut self, conn: u64, version: u32) {
        if let Some(o) = self.open.iter_mut().find(|o| o.conn == conn) {
            o.version = Some(version);
        }
    }

    pub(crate) fn started(&mut self, conn: u64, client_id: i32) {
        self.handshakes_completed += 1;
        *self.per_client_id.entry(client_id).or_default() += 1;
        if let Some(o) = self.open.iter_mut().find(|o| o.conn == conn) {
            o.client_id = Some(client_id);
        }
    }

    pub(crate) fn request(&mut self, name: String, order_class: bool) {
        *self.requests.entry(name).or_default() += 1;
        if order_class {
            self.order_messages += 1;
        }
    }

    pub(crate) fn rejected(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_owned()).or_default() += 1;
    }

    pub(crate) fn closed(&mut self, record: ClosedConnection) {
        self.open_now = self.open_now.saturating_sub(1);
        self.open.retain(|o| o.conn != record.conn);
        self.closed_total += 1;
        if record.closed_by == Closer::Server {
            self.closed_by_server_total += 1;
        }
        if !record.clean {
            self.unclean_total += 1;
        }
        if self.closed.len() == CLOSED_HISTORY {
            self.closed.pop_front();
        }
        self.closed.push_back(record);
    }

    /// Zeroes every counter but keeps the picture of what is open now.
    pub(crate) fn reset(&mut self) {
        let open = std::mem::take(&mut self.open);
        *self = Stats { open_now: open.len() as u64, peak_concurrent: open.len() as u64, open, ..Stats::default() };
    }
}
