//! One gRPC stream's view of a hub: a filtered snapshot first, then filtered changes, with the
//! lag policy applied (a lagging stream is resynchronised, never silently skipped) and an
//! UNAVAILABLE "shutting down" at the end when the service stops.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::hub::{Change, ChangeKind, Hub, Snapshot};
use crate::metrics;
use crate::model::{Freshness, Row};
use crate::state::SubscriberSlot;

/// One message of a stream, before conversion to its protobuf type.
#[derive(Debug)]
pub struct Update<T: Row> {
    /// What the message carries.
    pub kind: UpdateKind,
    /// Full set (snapshot, resync).
    pub items: Vec<T>,
    /// Added or changed rows.
    pub upserts: Vec<T>,
    /// Removed keys.
    pub removals: Vec<T::Key>,
    /// Session epoch.
    pub epoch: u64,
    /// Position in the stream, from 1.
    pub seq: u64,
    /// As of.
    pub as_of: SystemTime,
    /// Freshness.
    pub freshness: Freshness,
    /// Hub state version.
    pub version: u64,
}

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

/// A boxed stream of protobuf messages, as tonic wants it.
pub type WireStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send + 'static>>;

/// Builds a stream for `hub`, keeping only rows that pass `filter`.
pub(super) fn stream<T, M>(
    hub: &Hub<T>,
    filter: impl Fn(&T) -> bool + Send + Sync + 'static,
    current: impl Fn() -> Arc<Snapshot<T>> + Send + Sync + 'static,
    kind_label: &'static str,
    shutdown: CancellationToken,
    slot: SubscriberSlot,
    to_wire: fn(Update<T>) -> M,
) -> WireStream<M>
where
    T: Row,
    M: Send + 'static,
{
    let (snapshot, rx) = hub.subscribe();
    let feed = Feed {
        rx,
        view: BTreeMap::new(),
        filter: Box::new(filter),
        current: Box::new(current),
        kind_label,
        version: 0,
        seq: 0,
        first: Some(snapshot),
        shutdown,
        done: false,
        _slot: slot,
    };
    Box::pin(futures_util::stream::unfold(feed, move |mut feed| async move {
        let item = feed.next().await?;
        Some((item.map(to_wire), feed))
    }))
}

type Filter<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;
type Current<T> = Box<dyn Fn() -> Arc<Snapshot<T>> + Send + Sync>;

struct Feed<T: Row> {
    rx: broadcast::Receiver<Arc<Change<T>>>,
    /// What this subscriber has been told: the filtered rows.
    view: BTreeMap<T::Key, T>,
    filter: Filter<T>,
    current: Current<T>,
    kind_label: &'static str,
    version: u64,
    seq: u64,
    first: Option<Arc<Snapshot<T>>>,
    shutdown: CancellationToken,
    done: bool,
    /// Held for the stream's lifetime; frees the subscriber slot on drop.
    _slot: SubscriberSlot,
}

impl<T: Row> Feed<T> {
    fn update(
        &mut self,
        kind: UpdateKind,
        upserts: Vec<T>,
        removals: Vec<T::Key>,
        s: (u64, SystemTime, Freshness),
    ) -> Update<T> {
        self.seq += 1;
        let items = match kind {
            UpdateKind::Snapshot | UpdateKind::Resync => self.view.values().cloned().collect(),
            UpdateKind::Delta | UpdateKind::Freshness => Vec::new(),
        };
        Update {
            kind,
            items,
            upserts,
            removals,
            epoch: s.0,
            seq: self.seq,
            as_of: s.1,
            freshness: s.2,
            version: self.version,
        }
    }

    /// Replaces the view with `snap`'s filtered rows and returns what differed.
    fn rebase(&mut self, snap: &Snapshot<T>) -> (Vec<T>, Vec<T::Key>) {
        let next: BTreeMap<T::Key, T> =
            snap.rows.iter().filter(|(_, r)| (self.filter)(r)).map(|(k, r)| (k.clone(), r.clone())).collect();
        let upserts = next.values().filter(|r| self.view.get(&r.key()) != Some(*r)).cloned().collect();
        let removals = self.view.keys().filter(|k| !next.contains_key(*k)).cloned().collect();
        self.view = next;
        self.version = snap.version;
        (upserts, removals)
    }

    async fn next(&mut self) -> Option<Result<Update<T>, Status>> {
        if self.done {
            return None;
        }
        if let Some(snap) = self.first.take() {
            self.rebase(&snap);
            let stamp = (snap.epoch, snap.as_of, snap.freshness.clone());
            return Some(Ok(self.update(UpdateKind::Snapshot, Vec::new(), Vec::new(), stamp)));
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
                Ok(change) if change.version <= self.version => continue,
                Ok(change) => {
                    self.version = change.version;
                    let stamp = (change.epoch, change.as_of, change.freshness.clone());
                    let upserts: Vec<T> = change.upserts.iter().filter(|r| (self.filter)(r)).cloned().collect();
                    let removals: Vec<T::Key> =
                        change.removals.iter().filter(|k| self.view.remove(*k).is_some()).cloned().collect();
                    for r in &upserts {
                        self.view.insert(r.key(), r.clone());
                    }
                    let kind = match change.kind {
                        ChangeKind::Delta if upserts.is_empty() && removals.is_empty() => continue,
                        ChangeKind::Delta => UpdateKind::Delta,
                        ChangeKind::Resync => UpdateKind::Resync,
                        ChangeKind::Freshness => UpdateKind::Freshness,
                    };
                    return Some(Ok(self.update(kind, upserts, removals, stamp)));
                }
                Err(RecvError::Lagged(_)) => {
                    // Lag policy: resynchronise from the current state. The RESYNC lists exactly
                    // what changed since this subscriber's last message.
                    metrics::stream_resync(self.kind_label);
                    let snap = (self.current)();
                    let (upserts, removals) = self.rebase(&snap);
                    let stamp = (snap.epoch, snap.as_of, snap.freshness.clone());
                    return Some(Ok(self.update(UpdateKind::Resync, upserts, removals, stamp)));
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return Some(Err(Status::unavailable("shutting down")));
                }
            }
        }
    }
}
