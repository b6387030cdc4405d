//! Many WatchPositions (or WatchPositionPnl) subscribers, spread over several HTTP/2 connections,
//! each reporting every message it receives (with the moment it was decoded) to one collector.
//!
//! Each subscriber is its own task, as a real client would be, so the figures include the
//! client-side cost of waking and decoding. They report to the collector over an unbounded
//! channel: a subscriber must never wait for the collector, or the collector would become the
//! bottleneck being measured.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_proto::pb;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::stack::{self, Client};
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

/// The stream the subscribers watch, and the field of the target row they report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// WatchPositions; the target's quantity.
    Positions,
    /// WatchPositionPnl; the target's market value.
    PositionPnl,
}

/// One message as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Which subscriber.
    pub idx: usize,
    /// When it was decoded.
    pub at: Instant,
    /// Message kind.
    pub kind: pb::UpdateKind,
    /// Its session epoch.
    pub epoch: u64,
    /// The target row's reported field (the quantity for positions, the market value for
    /// position PnL) when the message carries that row, "0" when it removes it.
    pub target: Option<String>,
    /// Messages this subscriber has received so far, this one included.
    pub msgs: u64,
}

#[derive(Debug)]
enum Note {
    Message(Event),
    Failed { idx: usize, error: String },
}

/// Open subscribers and the collector side of their reports.
#[derive(Debug)]
pub struct Fleet {
    tasks: JoinSet<()>,
    rx: mpsc::UnboundedReceiver<Note>,
    n: usize,
    /// The target quantity each subscriber's snapshot showed.
    pub snapshot_target: Vec<Option<String>>,
    /// Time from the first request to the last snapshot received.
    pub open_time: Duration,
}

impl Fleet {
    /// Opens `n` WatchPositions subscribers, `per_channel` to an HTTP/2 connection, and waits
    /// until every one has its snapshot.
    pub async fn open(addr: SocketAddr, n: usize, per_channel: usize, within: Duration) -> Result<Fleet> {
        Fleet::open_watching(addr, Watch::Positions, n, per_channel, within).await
    }

    /// Opens `n` subscribers of `watch`, `per_channel` to an HTTP/2 connection, and waits until
    /// every one has its snapshot.
    pub async fn open_watching(
        addr: SocketAddr,
        watch: Watch,
        n: usize,
        per_channel: usize,
        within: Duration,
    ) -> Result<Fleet> {
        let per_channel = per_channel.max(1);
        let started = Instant::now();
        let mut channels = Vec::new();
        for _ in 0..n.div_ceil(per_channel) {
            channels.push(stack::channel(addr).await?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        for idx in 0..n {
            let client = Client::new(channels[idx / per_channel].clone());
            tasks.spawn(subscriber(idx, client, watch, tx.clone()));
        }
        let mut fleet = Fleet { tasks, rx, n, snapshot_target: vec![None; n], open_time: Duration::ZERO };
        let deadline = started + within;
        let mut seen = 0;
        while seen < n {
            let Some(e) = fleet.next(deadline).await? else {
                return Err(Error::Functional(format!(
                    "only {seen} of {n} subscribers got a snapshot within {within:?}"
                )));
            };
            if e.kind != pb::UpdateKind::Snapshot {
                continue;
            }
            fleet.snapshot_target[e.idx] = e.target;
            seen += 1;
        }
        fleet.open_time = started.elapsed();
        Ok(fleet)
    }

    /// Number of subscribers.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True without subscribers.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The next message any subscriber received, or `None` at `deadline`. A subscriber whose
    /// stream failed is a functional failure.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Event>> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Ok(Some(Note::Message(e))) => Ok(Some(e)),
            Ok(Some(Note::Failed { idx, error })) => {
                Err(Error::Functional(format!("subscriber {idx} of {}: {error}", self.n)))
            }
            Ok(None) => Err(Error::Functional("every subscriber stopped".into())),
            Err(_) => Ok(None),
        }
    }

    /// Waits until every subscriber has received a message that satisfies `done`, and returns
    /// that first matching message of each, by subscriber. `seen` is shown every message first
    /// (for counting), including those of subscribers already done.
    pub async fn until_each(
        &mut self,
        within: Duration,
        mut seen: impl FnMut(&Event),
        done: impl Fn(&Event) -> bool,
    ) -> Result<Vec<Event>> {
        let deadline = Instant::now() + within;
        let mut first: Vec<Option<Event>> = vec![None; self.n];
        let mut left = self.n;
        while left > 0 {
            let Some(e) = self.next(deadline).await? else {
                return Err(Error::Functional(format!(
                    "only {} of {} subscribers converged within {within:?}",
                    self.n - left,
                    self.n
                )));
            };
            seen(&e);
            let idx = e.idx;
            if first[idx].is_none() && done(&e) {
                first[idx] = Some(e);
                left -= 1;
            }
        }
        Ok(first.into_iter().flatten().collect())
    }

    /// Discards reports already queued (messages that arrived between measurements).
    pub fn drain(&mut self) -> Result<()> {
        while let Ok(note) = self.rx.try_recv() {
            if let Note::Failed { idx, error } = note {
                return Err(Error::Functional(format!("subscriber {idx}: {error}")));
            }
        }
        Ok(())
    }

    /// Closes every stream (dropping the tasks resets them).
    pub async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

async fn subscriber(idx: usize, mut client: Client, watch: Watch, tx: mpsc::UnboundedSender<Note>) {
    match watch {
        Watch::Positions => match client.watch_positions(pb::WatchPositionsRequest::default()).await {
            Ok(r) => forward(idx, r.into_inner(), &tx, |m| (m.kind, m.session_epoch, target_quantity(m))).await,
            Err(s) => fail(&tx, idx, format!("WatchPositions refused: {:?} {}", s.code(), s.message())),
        },
        Watch::PositionPnl => match client.watch_position_pnl(pb::WatchPositionPnlRequest::default()).await {
            Ok(r) => forward(idx, r.into_inner(), &tx, |m| (m.kind, m.session_epoch, target_value(m))).await,
            Err(s) => fail(&tx, idx, format!("WatchPositionPnl refused: {:?} {}", s.code(), s.message())),
        },
    }
}

fn fail(tx: &mpsc::UnboundedSender<Note>, idx: usize, error: String) {
    let _ = tx.send(Note::Failed { idx, error });
}

/// Reports every message of `stream`, stamped the moment it was decoded; `read` gives its kind,
/// epoch and target field.
async fn forward<M>(
    idx: usize,
    mut stream: tonic::Streaming<M>,
    tx: &mpsc::UnboundedSender<Note>,
    read: impl Fn(&M) -> (i32, u64, Option<String>),
) {
    let mut msgs = 0;
    loop {
        match stream.message().await {
            Ok(Some(m)) => {
                let at = Instant::now();
                msgs += 1;
                let (kind, epoch, target) = read(&m);
                let e = Event {
                    idx,
                    at,
                    kind: pb::UpdateKind::try_from(kind).unwrap_or(pb::UpdateKind::Unspecified),
                    epoch,
                    target,
                    msgs,
                };
                if tx.send(Note::Message(e)).is_err() {
                    return;
                }
            }
            Ok(None) => return fail(tx, idx, "stream ended".into()),
            Err(s) => return fail(tx, idx, format!("stream failed: {:?} {}", s.code(), s.message())),
        }
    }
}

fn is_target(account: &str, con_id: i64) -> bool {
    account == TARGET_ACCOUNT && con_id == i64::from(TARGET_CON_ID)
}

/// The target position's quantity in `m`, if `m` mentions it.
fn target_quantity(m: &pb::WatchPositionsResponse) -> Option<String> {
    if m.removals.iter().any(|k| is_target(&k.account, k.con_id)) {
        return Some("0".into());
    }
    m.upserts.iter().chain(&m.items).find(|p| is_target(&p.account, p.con_id)).map(|p| p.quantity.clone())
}

/// The target position's market value in `m`, if `m` mentions it ("0" for a removal).
fn target_value(m: &pb::WatchPositionPnlResponse) -> Option<String> {
    if m.removals.iter().any(|k| is_target(&k.account, k.con_id)) {
        return Some("0".into());
    }
    m.upserts.iter().chain(&m.items).find(|p| is_target(&p.account, p.con_id)).map(|p| p.market_value.clone())
}
