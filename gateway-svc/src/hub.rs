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
//!
//! Fan-out cost: a snapshot and a change each keep a [`Memo`] for their wire encoding, so that
//! thousands of streams (or unary calls) without a filter share one encoding instead of
//! converting and encoding the same rows once each. A change also points (weakly) at the state
//! it produced, so a stream can hold "what I have told my client" as a shared `Arc` instead of a
//! private copy.
//!
//! Write cost: the rows are a persistent map ([`Rows`]), so the next state shares every unchanged
//! row with the current one. A change costs O(changed rows · log n) whatever the size of the
//! state, and so does a copy-on-write of a snapshot a stream still holds. Quotes change many times
//! a second per contract; a copy of the whole map per change would make every tick cost the book.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::SystemTime;

use gateway_proto::encoded::Encoded;
use tokio::sync::{broadcast, watch};

use crate::model::{Freshness, Row};

/// The rows of one data kind, by key: a persistent ordered map, cheap to clone and to change.
pub(crate) type Rows<T> = imbl::OrdMap<<T as Row>::Key, T>;

/// Changes buffered per receiver before it counts as lagging.
pub(crate) const CHANGE_CAPACITY: usize = 1024;

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
    pub rows: Rows<T>,
    /// The unary response with every row, once some caller asked for it.
    pub unary: Memo,
    /// A stream's first message with every row, once some stream opened on this state.
    pub opening: Memo,
}

impl<T: Row> Snapshot<T> {
    /// This state with `change` applied: the state the change produced.
    pub fn apply(&mut self, change: &Change<T>) {
        for r in &change.upserts {
            self.rows.insert(r.key(), r.clone());
        }
        for r in &change.removals {
            self.rows.remove(&r.key());
        }
        self.epoch = change.epoch;
        self.version = change.version;
        self.as_of = change.as_of;
        self.freshness = change.freshness.clone();
        self.synced |= change.kind == ChangeKind::Resync;
        self.forget_encodings();
    }

    fn forget_encodings(&mut self) {
        self.unary = Memo::default();
        self.opening = Memo::default();
    }
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
    /// Rows removed, as they were (a filter can then tell whether a subscriber had them).
    pub removals: Vec<T>,
    /// The state this change produced, while anyone still holds it. Weak, so the change buffer
    /// never keeps old states alive; a reader that finds it gone applies the change itself.
    pub state: Weak<Snapshot<T>>,
    /// This change as a stream message with every row, once some stream needed it.
    pub message: Memo,
}

/// A wire encoding made at most once, by the first reader that needs it, and shared by all.
///
/// It belongs to the state or change it encodes: cloning a [`Snapshot`] (to modify the copy)
/// starts the copy with an empty memo.
#[derive(Debug, Default)]
pub struct Memo(OnceLock<Encoded>);

impl Memo {
    /// The encoding, made by `encode` if nobody has made it yet.
    pub fn get_or_init(&self, encode: impl FnOnce() -> Encoded) -> &Encoded {
        self.0.get_or_init(encode)
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// One data kind as its readers see it: the current state and every change from now on. It
/// cannot change the data; only the session's [`HubWriter`] can.
#[derive(Debug, Clone)]
pub struct Hub<T: Row> {
    state: watch::Receiver<Arc<Snapshot<T>>>,
    /// Only ever subscribed to here: a reader never sends.
    changes: broadcast::Sender<Arc<Change<T>>>,
}

impl<T: Row> Hub<T> {
    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.state.borrow().clone()
    }

    /// Changes from now on, and the state they apply to (in that order: see the module docs).
    pub fn subscribe(&self) -> (Arc<Snapshot<T>>, broadcast::Receiver<Arc<Change<T>>>) {
        let rx = self.changes.subscribe();
        (self.snapshot(), rx)
    }
}

/// The writing end of one data kind's hub, held by the session alone.
#[derive(Debug)]
pub(crate) struct HubWriter<T: Row> {
    state: watch::Sender<Arc<Snapshot<T>>>,
    changes: broadcast::Sender<Arc<Change<T>>>,
}

impl<T: Row> HubWriter<T> {
    /// An empty hub whose data is UNKNOWN for `reason`.
    pub(crate) fn new(reason: &str) -> Self {
        let snapshot = Snapshot {
            epoch: 0,
            version: 0,
            as_of: SystemTime::UNIX_EPOCH,
            freshness: Freshness::Unknown { reason: reason.to_owned() },
            synced: false,
            rows: Rows::<T>::new(),
            unary: Memo::default(),
            opening: Memo::default(),
        };
        Self { state: watch::channel(Arc::new(snapshot)).0, changes: broadcast::channel(CHANGE_CAPACITY).0 }
    }

    /// A reader of this hub.
    pub(crate) fn reader(&self) -> Hub<T> {
        Hub { state: self.state.subscribe(), changes: self.changes.clone() }
    }

    /// The current state.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot<T>> {
        self.state.borrow().clone()
    }

    fn publish(&self, next: Snapshot<T>, kind: ChangeKind, upserts: Vec<T>, removals: Vec<T>) {
        let next = Arc::new(next);
        let change = Change {
            kind,
            version: next.version,
            epoch: next.epoch,
            as_of: next.as_of,
            freshness: next.freshness.clone(),
            upserts,
            removals,
            state: Arc::downgrade(&next),
            message: Memo::default(),
        };
        // Watch first, broadcast second: a reader that saw the snapshot can tell, by version,
        // that it already has this change.
        self.state.send_replace(next);
        // No receivers is normal when nobody streams.
        let _ = self.changes.send(Arc::new(change));
    }

    /// Applies live updates. Unchanged rows are dropped; nothing is published if nothing changed.
    pub(crate) fn apply(&self, upserts: Vec<T>, removals: Vec<T::Key>) {
        let cur = self.snapshot();
        let mut next = (*cur).clone();
        let upserts: Vec<T> =
            upserts.into_iter().filter(|r| next.rows.insert(r.key(), r.clone()).as_ref() != Some(r)).collect();
        let removals: Vec<T> = removals.into_iter().filter_map(|k| next.rows.remove(&k)).collect();
        next.as_of = SystemTime::now();
        if upserts.is_empty() && removals.is_empty() {
            // Still confirms the data is current. The encodings carry as_of, so they go too.
            self.state.send_modify(|s| {
                let s = Arc::make_mut(s);
                s.as_of = next.as_of;
                s.forget_encodings();
            });
            return;
        }
        next.version += 1;
        self.publish(next, ChangeKind::Delta, upserts, removals);
    }

    /// Replaces the whole state with a fresh upstream sync and publishes the differences.
    pub(crate) fn resync(&self, epoch: u64, rows: BTreeMap<T::Key, T>) {
        let rows: Rows<T> = rows.into_iter().collect();
        let cur = self.snapshot();
        let upserts: Vec<T> = rows.values().filter(|r| cur.rows.get(&r.key()) != Some(*r)).cloned().collect();
        let removals: Vec<T> =
            cur.rows.iter().filter(|(k, _)| !rows.contains_key(*k)).map(|(_, r)| r.clone()).collect();
        let next = Snapshot {
            epoch,
            version: cur.version + 1,
            as_of: SystemTime::now(),
            freshness: Freshness::Live,
            synced: true,
            rows,
            unary: Memo::default(),
            opening: Memo::default(),
        };
        self.publish(next, ChangeKind::Resync, upserts, removals);
    }

    /// Changes freshness only (the data stays as it is). No-op when unchanged.
    pub(crate) fn set_freshness(&self, freshness: Freshness) {
        let cur = self.snapshot();
        if cur.freshness == freshness {
            return;
        }
        let next = Snapshot { freshness, version: cur.version + 1, ..(*cur).clone() };
        self.publish(next, ChangeKind::Freshness, Vec::new(), Vec::new());
    }

    /// Marks the data live again after IB restored the link with data maintained (1102), but
    /// only data synced in session `epoch`: rows left from an earlier session stay stale until
    /// their own resync.
    pub(crate) fn live_again(&self, epoch: u64) {
        if self.snapshot().epoch == epoch {
            self.set_freshness(Freshness::Live);
        }
    }

    /// Marks the data stale for `reason`, keeping the first `since` of an ongoing outage.
    pub(crate) fn mark_stale(&self, reason: &str) {
        let f = self.snapshot().freshness.stale_from(reason);
        self.set_freshness(f);
    }
}
