//! Snapshot + change fan-out for one data kind.
//!
//! The session actor is the only writer. Readers get the current state from a `watch` (unary
//! RPCs and stream starts) and every change from a `broadcast` (streams). Each change carries the
//! state version it produces; a reader that subscribes to changes *before* reading the snapshot
//! can skip changes at or below the snapshot's version and miss nothing.
//!
//! Lag policy: a stream whose receiver falls more than [`CHANGE_CAPACITY`] changes behind is
//! resynchronised from the current snapshot (a RESYNC message listing exactly what it missed).
//! Nothing is skipped silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{broadcast, watch};

use crate::model::{Freshness, Row};

/// Changes buffered per receiver before it counts as lagging.
pub const CHANGE_CAPACITY: usize = 1024;

/// The full state of one data kind.
#[derive(Debug, Clone)]
pub struct Snapshot<T: Row> {
    /// Upstream session generation that produced the data.
    pub epoch: u64,
    /// Number of changes applied since the process started.
    pub version: u64,
    /// When upstream last confirmed this data.
    pub as_of: SystemTime,
    /// How fresh it is.
    pub freshness: Freshness,
    /// True once a first full sync has completed: before that there is no data to serve.
    pub synced: bool,
    /// The rows, by key.
    pub rows: BTreeMap<T::Key, T>,
}

/// What a change carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Live updates.
    Delta,
    /// A full reconciliation after a (re)sync; upserts/removals are the differences.
    Resync,
    /// Only freshness changed.
    Freshness,
}

/// One published change.
#[derive(Debug)]
pub struct Change<T: Row> {
    /// Kind of change.
    pub kind: ChangeKind,
    /// Version after the change.
    pub version: u64,
    /// Epoch after the change.
    pub epoch: u64,
    /// As-of after the change.
    pub as_of: SystemTime,
    /// Freshness after the change.
    pub freshness: Freshness,
    /// Rows added or changed.
    pub upserts: Vec<T>,
    /// Keys removed.
    pub removals: Vec<T::Key>,
}

/// A hub for one data kind.
#[derive(Debug)]
pub struct Hub<T: Row> {
    state: watch::Sender<Arc<Snapshot<T>>>,
    changes: broadcast::Sender<Arc<Change<T>>>,
}

impl<T: Row> Hub<T> {
    /// An empty hub whose data is UNKNOWN for `reason`.
    pub fn new(reason: &str) -> Self {
        let snapshot = Snapshot {
            epoch: 0,
            version: 0,
            as_of: SystemTime::UNIX_EPOCH,
            freshness: Freshness::Unknown { reason: reason.to_owned() },
            synced: false,
            rows: BTreeMap::new(),
        };
        Self { state: watch::channel(Arc::new(snapshot)).0, changes: broadcast::channel(CHANGE_CAPACITY).0 }
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.state.borrow().clone()
    }

    /// Changes from now on, and the state they apply to (in that order: see the module docs).
    pub fn subscribe(&self) -> (Arc<Snapshot<T>>, broadcast::Receiver<Arc<Change<T>>>) {
        let rx = self.changes.subscribe();
        (self.snapshot(), rx)
    }

    fn publish(&self, next: Snapshot<T>, kind: ChangeKind, upserts: Vec<T>, removals: Vec<T::Key>) {
        let change = Change {
            kind,
            version: next.version,
            epoch: next.epoch,
            as_of: next.as_of,
            freshness: next.freshness.clone(),
            upserts,
            removals,
        };
        // Watch first, broadcast second: a reader that saw the snapshot can tell, by version,
        // that it already has this change.
        self.state.send_replace(Arc::new(next));
        // No receivers is normal when nobody streams.
        let _ = self.changes.send(Arc::new(change));
    }

    /// Applies live updates. Unchanged rows are dropped; nothing is published if nothing changed.
    pub fn apply(&self, upserts: Vec<T>, removals: Vec<T::Key>) {
        let cur = self.snapshot();
        let mut next = (*cur).clone();
        let upserts: Vec<T> =
            upserts.into_iter().filter(|r| next.rows.insert(r.key(), r.clone()).as_ref() != Some(r)).collect();
        let removals: Vec<T::Key> = removals.into_iter().filter(|k| next.rows.remove(k).is_some()).collect();
        next.as_of = SystemTime::now();
        if upserts.is_empty() && removals.is_empty() {
            // Still confirms the data is current.
            self.state.send_modify(|s| Arc::make_mut(s).as_of = next.as_of);
            return;
        }
        next.version += 1;
        self.publish(next, ChangeKind::Delta, upserts, removals);
    }

    /// Replaces the whole state with a fresh upstream sync and publishes the differences.
    pub fn resync(&self, epoch: u64, rows: BTreeMap<T::Key, T>) {
        let cur = self.snapshot();
        let upserts: Vec<T> = rows.values().filter(|r| cur.rows.get(&r.key()) != Some(*r)).cloned().collect();
        let removals: Vec<T::Key> = cur.rows.keys().filter(|k| !rows.contains_key(*k)).cloned().collect();
        let next = Snapshot {
            epoch,
            version: cur.version + 1,
            as_of: SystemTime::now(),
            freshness: Freshness::Live,
            synced: true,
            rows,
        };
        self.publish(next, ChangeKind::Resync, upserts, removals);
    }

    /// Changes freshness only (the data stays as it is). No-op when unchanged.
    pub fn set_freshness(&self, freshness: Freshness) {
        let cur = self.snapshot();
        if cur.freshness == freshness {
            return;
        }
        let next = Snapshot { freshness, version: cur.version + 1, ..(*cur).clone() };
        self.publish(next, ChangeKind::Freshness, Vec::new(), Vec::new());
    }

    /// Marks the data stale for `reason`, keeping the first `since` of an ongoing outage.
    pub fn mark_stale(&self, reason: &str) {
        let f = self.snapshot().freshness.stale_from(reason);
        self.set_freshness(f);
    }
}
