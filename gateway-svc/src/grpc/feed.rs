//! One gRPC stream's view of a hub: a filtered snapshot first, then filtered changes, with the
//! lag policy applied (a lagging stream is resynchronised, never silently skipped) and an
//! UNAVAILABLE "shutting down" at the end when the service stops.
//!
//! Cost per subscriber is what limits fan-out, so a stream keeps no rows of its own. What it has
//! told its client is a hub state (`Arc<Snapshot>`, normally shared with every other stream),
//! and a stream without a filter sends the change's shared encoding with its own `seq` appended.
//! Only filtered streams encode per stream.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use gateway_proto::encoded::Encoded;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::hub::{Change, ChangeKind, Hub, Snapshot};
use crate::kind::DataKind;
use crate::model::Row;
use crate::state::SubscriberSlot;

/// Message kinds on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// First message.
    Snapshot,
    /// Changes.
    Delta,
    /// Full set plus the gap's changes.
    Resync,
    /// Freshness only.
    Freshness,
}

impl From<ChangeKind> for UpdateKind {
    fn from(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::Delta => UpdateKind::Delta,
            ChangeKind::Resync => UpdateKind::Resync,
            ChangeKind::Freshness => UpdateKind::Freshness,
        }
    }
}

impl From<UpdateKind> for gateway_proto::pb::UpdateKind {
    fn from(kind: UpdateKind) -> Self {
        match kind {
            UpdateKind::Snapshot => Self::Snapshot,
            UpdateKind::Delta => Self::Delta,
            UpdateKind::Resync => Self::Resync,
            UpdateKind::Freshness => Self::Freshness,
        }
    }
}

/// One stream message before encoding.
#[derive(Debug)]
pub(crate) struct Update<'a, T: Row> {
    /// What the message carries.
    pub kind: UpdateKind,
    /// Full set (snapshot, resync).
    pub items: Vec<&'a T>,
    /// Added or changed rows.
    pub upserts: Vec<&'a T>,
    /// Removed rows (sent as their keys).
    pub removals: Vec<&'a T>,
    /// The state the message brings the client to: epoch, as-of, freshness and version.
    pub state: &'a Snapshot<T>,
}

/// How one data kind's stream messages go on the wire.
pub(crate) trait StreamWire: Row {
    /// Field number of `seq` in the stream's response message.
    const SEQ_FIELD: u32;
    /// Encodes `update` without its `seq` (which is per stream and appended when sent).
    fn encode(update: &Update<'_, Self>) -> Encoded;
}

/// A boxed stream of responses, as tonic wants it.
pub(crate) type WireStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

/// Which rows a stream wants: `None` is every row.
pub(super) type Filter<T> = Option<Box<dyn Fn(&T) -> bool + Send + Sync>>;
type Current<T> = Box<dyn Fn() -> Arc<Snapshot<T>> + Send + Sync>;

/// Builds a stream for `hub`, keeping only rows that pass `filter`.
pub(super) fn stream<T: StreamWire>(
    hub: &Hub<T>,
    filter: Filter<T>,
    current: impl Fn() -> Arc<Snapshot<T>> + Send + Sync + 'static,
    kind: DataKind,
    shutdown: CancellationToken,
    slot: SubscriberSlot,
) -> WireStream<Encoded> {
    let (view, rx) = hub.subscribe();
    let feed =
        Feed { rx, view, filter, current: Box::new(current), kind, seq: 0, opened: false, shutdown, done: false, slot };
    Box::pin(futures_util::stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    }))
}

struct Feed<T: Row> {
    rx: broadcast::Receiver<Arc<Change<T>>>,
    /// The hub state this subscriber's client has been brought to, before filtering.
    view: Arc<Snapshot<T>>,
    filter: Filter<T>,
    current: Current<T>,
    kind: DataKind,
    seq: u64,
    opened: bool,
    shutdown: CancellationToken,
    done: bool,
    /// Held for the stream's lifetime; frees the subscriber slot on drop.
    slot: SubscriberSlot,
}

impl<T: StreamWire> Feed<T> {
    fn passes(&self, row: &T) -> bool {
        self.filter.as_ref().is_none_or(|f| f(row))
    }

    fn visible<'a>(&self, snap: &'a Snapshot<T>) -> Vec<&'a T> {
        snap.rows.values().filter(|r| self.passes(r)).collect()
    }

    fn sequenced(&mut self, message: &Encoded) -> Encoded {
        self.seq += 1;
        message.with_varint(T::SEQ_FIELD, self.seq)
    }

    /// The first message: the whole (filtered) state.
    fn opening(&mut self) -> Encoded {
        let view = Arc::clone(&self.view);
        let encode = || {
            let items = self.visible(&view);
            T::encode(&Update {
                kind: UpdateKind::Snapshot,
                items,
                upserts: Vec::new(),
                removals: Vec::new(),
                state: &view,
            })
        };
        let own;
        let message = if self.filter.is_none() {
            view.opening.get_or_init(encode)
        } else {
            own = encode();
            &own
        };
        self.sequenced(message)
    }

    /// Moves the view to the state `change` produced; `None` when nothing passes the filter.
    fn on_change(&mut self, change: &Change<T>) -> Option<Encoded> {
        match change.state.upgrade() {
            Some(next) => self.view = next,
            // Nobody holds that state any more (the hub has moved on): derive it. The copy is
            // made once; while this stream catches up, it is updated in place.
            None => Arc::make_mut(&mut self.view).apply(change),
        }
        // Borrowed, not cloned: every stream touching the shared state's reference count on each
        // change would make that count a contended cache line.
        let view = &self.view;
        let encode = |filter: &dyn Fn(&T) -> bool| {
            let items = match change.kind {
                ChangeKind::Resync => view.rows.values().filter(|r| filter(r)).collect(),
                ChangeKind::Delta | ChangeKind::Freshness => Vec::new(),
            };
            let upserts = change.upserts.iter().filter(|r| filter(r)).collect();
            let removals = change.removals.iter().filter(|r| filter(r)).collect();
            T::encode(&Update { kind: change.kind.into(), items, upserts, removals, state: view })
        };
        let is_delta = change.kind == ChangeKind::Delta;
        let own;
        let message = match &self.filter {
            // Every stream without a filter sends the same message: encoded once, by the first.
            None if is_delta && change.upserts.is_empty() && change.removals.is_empty() => return None,
            None => change.message.get_or_init(|| encode(&|_| true)),
            Some(filter) if is_delta && !change.upserts.iter().chain(&change.removals).any(filter) => {
                return None;
            }
            Some(filter) => {
                own = encode(filter.as_ref());
                &own
            }
        };
        Some(self.sequenced(message))
    }

    /// Lag policy: resynchronise from the current state. The RESYNC lists exactly what changed
    /// since this subscriber's last message.
    fn resync(&mut self) -> Encoded {
        self.slot.metrics().stream_resync(self.kind.label());
        let cur = (self.current)();
        let old = std::mem::replace(&mut self.view, Arc::clone(&cur));
        let upserts = cur.rows.values().filter(|r| self.passes(r) && old.rows.get(&r.key()) != Some(*r)).collect();
        let removals = old.rows.values().filter(|r| self.passes(r) && !cur.rows.contains_key(&r.key())).collect();
        let items = self.visible(&cur);
        let message = T::encode(&Update { kind: UpdateKind::Resync, items, upserts, removals, state: &cur });
        self.sequenced(&message)
    }

    async fn next(&mut self) -> Option<Result<Encoded, Status>> {
        if self.done {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Ok(self.opening()));
        }
        loop {
            // Both branches are cancellation safe: a broadcast recv loses nothing when dropped.
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.done = true;
                    return Some(Err(Status::unavailable("shutting down")));
                }
                r = self.rx.recv() => r,
            };
            match received {
                Ok(change) if change.version <= self.view.version => continue,
                Ok(change) if change.version == self.view.version + 1 => match self.on_change(&change) {
                    Some(message) => return Some(Ok(message)),
                    None => continue,
                },
                // A gap without a lag notice cannot happen (versions are published in order);
                // if it ever did, a resync is still the truthful answer.
                Ok(_) | Err(RecvError::Lagged(_)) => return Some(Ok(self.resync())),
                Err(RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(Status::unavailable("shutting down")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
