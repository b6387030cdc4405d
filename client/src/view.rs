//! The fold of one gateway-svc stream into a keyed view. Pure: no I/O, no clock but the one
//! [`View::lose`] is given.
//!
//! The protocol, as `gateway.proto` documents it: the first message of a stream is a SNAPSHOT
//! (seq 1, the full set), then each message has the next seq with no gaps. DELTA carries what
//! changed, RESYNC the full set again (after an outage or when the subscriber lagged), FRESHNESS
//! only a new freshness. The session epoch only changes with a full set: a DELTA or FRESHNESS of
//! another epoch would be applied to rows of the old session. A message that breaks any of this
//! is a [`Gap`] and is not applied: the view stays as it was, and the caller opens the stream
//! again (its first message, a SNAPSHOT, replaces the rows).

use std::collections::BTreeMap;

use gateway_proto::pb;

use crate::kind::Kind;

/// What a stream message carries (`gateway.v1.UpdateKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The first message of a stream: the full set.
    Snapshot,
    /// Changes since the previous message.
    Delta,
    /// The full set again, plus what changed during the gap.
    Resync,
    /// Only the freshness changed.
    Freshness,
}

impl UpdateKind {
    /// From the wire. A kind this build does not know reads as a DELTA of what it carries, so a
    /// newer service never empties a view.
    pub fn from_pb(kind: i32) -> Self {
        match pb::UpdateKind::try_from(kind) {
            Ok(pb::UpdateKind::Snapshot) => Self::Snapshot,
            Ok(pb::UpdateKind::Resync) => Self::Resync,
            Ok(pb::UpdateKind::Freshness) => Self::Freshness,
            _ => Self::Delta,
        }
    }

    /// True for the kinds that carry the full set (SNAPSHOT, RESYNC).
    pub fn is_full_set(self) -> bool {
        matches!(self, Self::Snapshot | Self::Resync)
    }
}

/// How much the data can be trusted (`gateway.v1.FreshnessState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessState {
    /// Backed by a live upstream subscription.
    Live,
    /// The last known value, kept while a link is down.
    Stale,
    /// Nothing has been received yet.
    Unknown,
}

/// Freshness of the data (`gateway.v1.Freshness`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// LIVE, STALE or UNKNOWN.
    pub state: FreshnessState,
    /// When the data went stale (only when STALE).
    pub since: Option<prost_types::Timestamp>,
    /// Why it is stale or unknown; empty when LIVE.
    pub reason: String,
}

impl Freshness {
    /// LIVE.
    pub fn live() -> Self {
        Self { state: FreshnessState::Live, since: None, reason: String::new() }
    }

    /// UNKNOWN because of `reason`.
    pub fn unknown(reason: &str) -> Self {
        Self { state: FreshnessState::Unknown, since: None, reason: reason.to_owned() }
    }

    /// From the wire; a missing or unspecified value reads as UNKNOWN.
    pub fn from_pb(f: Option<&pb::Freshness>) -> Self {
        let Some(f) = f else { return Self::unknown("no freshness sent") };
        let state = match pb::FreshnessState::try_from(f.state) {
            Ok(pb::FreshnessState::Live) => FreshnessState::Live,
            Ok(pb::FreshnessState::Stale) => FreshnessState::Stale,
            _ => FreshnessState::Unknown,
        };
        Self { state, since: f.since, reason: f.reason.clone() }
    }

    /// The data stopped being live at `now` because of `reason`. An outage already under way
    /// keeps its first `since` and reason, as gateway-svc does; data never received stays
    /// UNKNOWN, with the new reason.
    pub fn stale_from(&self, reason: &str, now: prost_types::Timestamp) -> Self {
        match self.state {
            FreshnessState::Stale => self.clone(),
            FreshnessState::Unknown => Self::unknown(reason),
            FreshnessState::Live => Self { state: FreshnessState::Stale, since: Some(now), reason: reason.to_owned() },
        }
    }
}

/// The stamps every stream message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamps {
    /// Upstream session generation.
    pub session_epoch: u64,
    /// Position in the stream: 1 for the SNAPSHOT, then +1 per message.
    pub seq: u64,
    /// The service-wide state version the message brings the client to (0 where the stream
    /// has none: health).
    pub state_version: u64,
    /// When the data was last confirmed by upstream.
    pub as_of: Option<prost_types::Timestamp>,
    /// How fresh the data is after the message.
    pub freshness: Freshness,
}

/// One stream message in the shape every data kind shares.
#[derive(Debug, Clone)]
pub struct Update<K: Kind> {
    /// What it carries.
    pub kind: UpdateKind,
    /// SNAPSHOT and RESYNC: the full set.
    pub items: Vec<K::Row>,
    /// DELTA: rows added or changed. RESYNC: those that changed during the gap.
    pub upserts: Vec<K::Row>,
    /// DELTA: keys of rows removed. RESYNC: those removed during the gap.
    pub removals: Vec<K::Key>,
    /// Epoch, seq, version, as-of and freshness.
    pub stamps: Stamps,
}

/// Why a message was not applied: the stream is no longer the gap-free sequence the view
/// follows, and must be opened again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    /// A seq other than the next one.
    #[error("gateway-svc stream skipped from seq {expected} to {got}")]
    Seq {
        /// The seq the view waited for.
        expected: u64,
        /// The seq that came.
        got: u64,
    },
    /// A DELTA or FRESHNESS of another session epoch: the full set of the new session was never
    /// sent.
    #[error("gateway-svc stream changed session epoch from {from} to {to} without a RESYNC (seq {seq})")]
    Epoch {
        /// The epoch of the view.
        from: u64,
        /// The message's.
        to: u64,
        /// The message's seq.
        seq: u64,
    },
    /// The first message was not a SNAPSHOT, or a SNAPSHOT came later.
    #[error("gateway-svc stream sent a {kind:?} at seq {seq} (a SNAPSHOT is the first message, and only that)")]
    Opening {
        /// What came.
        kind: UpdateKind,
        /// At which seq.
        seq: u64,
    },
}

/// The folded state of one stream: rows by key, the last stamps, and the freshness.
#[derive(Debug, Clone)]
pub struct View<K: Kind> {
    rows: BTreeMap<K::Key, K::Row>,
    /// The stamps of the last message applied (`None` before the first).
    stamps: Option<Stamps>,
    /// As the last message said, or stale since the stream was lost.
    freshness: Freshness,
    /// The seq the next message must have (1: a new stream, whose first message is a SNAPSHOT).
    expected: u64,
    /// Messages applied, over every stream.
    applied: u64,
}

impl<K: Kind> Default for View<K> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            stamps: None,
            freshness: Freshness::unknown("waiting for gateway-svc"),
            expected: 1,
            applied: 0,
        }
    }
}

impl<K: Kind> View<K> {
    /// An empty view, waiting for a stream's SNAPSHOT.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one message, or refuses it (and changes nothing) when it does not follow.
    pub fn apply(&mut self, u: &Update<K>) -> Result<(), Gap> {
        self.check(u)?;
        match u.kind {
            UpdateKind::Snapshot | UpdateKind::Resync => {
                self.rows = u.items.iter().map(|r| (K::key(r), r.clone())).collect();
            }
            UpdateKind::Delta => {
                for r in &u.upserts {
                    self.rows.insert(K::key(r), r.clone());
                }
                for k in &u.removals {
                    self.rows.remove(k);
                }
            }
            UpdateKind::Freshness => {}
        }
        self.freshness = u.stamps.freshness.clone();
        self.stamps = Some(u.stamps.clone());
        self.expected = u.stamps.seq + 1;
        self.applied += 1;
        Ok(())
    }

    /// [`View::apply`] of a message as it came off the wire.
    pub fn apply_message(&mut self, m: K::Message) -> Result<Update<K>, Gap> {
        let u = K::update(m);
        self.apply(&u)?;
        Ok(u)
    }

    fn check(&self, u: &Update<K>) -> Result<(), Gap> {
        let seq = u.stamps.seq;
        if seq != self.expected {
            return Err(Gap::Seq { expected: self.expected, got: seq });
        }
        if (u.kind == UpdateKind::Snapshot) != (seq == 1) {
            return Err(Gap::Opening { kind: u.kind, seq });
        }
        if let Some(last) = &self.stamps
            && !u.kind.is_full_set()
            && u.stamps.session_epoch != last.session_epoch
        {
            return Err(Gap::Epoch { from: last.session_epoch, to: u.stamps.session_epoch, seq });
        }
        Ok(())
    }

    /// A new stream is being read: its first message must be a SNAPSHOT with seq 1. The rows stay
    /// until that SNAPSHOT replaces them.
    pub fn reopen(&mut self) {
        self.expected = 1;
    }

    /// The stream is gone (`reason`) at `now`: the rows stay, stale from now (an outage already
    /// under way keeps its first since and reason). The next message must open a new stream.
    pub fn lose(&mut self, reason: &str, now: prost_types::Timestamp) {
        self.freshness = self.freshness.stale_from(reason, now);
        self.expected = 1;
    }

    /// The rows, ordered by key.
    pub fn rows(&self) -> &BTreeMap<K::Key, K::Row> {
        &self.rows
    }

    /// Freshness: as the last message said, or stale since the stream was lost.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The stamps of the last message applied (`None` before the first).
    pub fn stamps(&self) -> Option<&Stamps> {
        self.stamps.as_ref()
    }

    /// The session epoch of the rows (0 before the first message).
    pub fn epoch(&self) -> u64 {
        self.stamps.as_ref().map_or(0, |s| s.session_epoch)
    }

    /// When the data was last confirmed by upstream.
    pub fn as_of(&self) -> Option<prost_types::Timestamp> {
        self.stamps.as_ref().and_then(|s| s.as_of)
    }

    /// Messages applied, over every stream this view followed.
    pub fn applied(&self) -> u64 {
        self.applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Positions;

    fn pos(con_id: i64, qty: &str) -> pb::Position {
        pb::Position { account: "DU1".into(), con_id, quantity: qty.into(), ..Default::default() }
    }

    fn msg(kind: pb::UpdateKind, seq: u64, epoch: u64) -> pb::WatchPositionsResponse {
        pb::WatchPositionsResponse {
            kind: kind as i32,
            seq,
            session_epoch: epoch,
            freshness: Some(pb::Freshness { state: pb::FreshnessState::Live as i32, ..Default::default() }),
            ..Default::default()
        }
    }

    fn quantities(v: &View<Positions>) -> Vec<(i64, String)> {
        v.rows().values().map(|p| (p.con_id, p.quantity.clone())).collect()
    }

    #[test]
    fn snapshot_then_deltas_then_freshness_then_resync() {
        let mut v = View::<Positions>::new();
        let mut snapshot = msg(pb::UpdateKind::Snapshot, 1, 1);
        snapshot.items = vec![pos(2, "20"), pos(1, "10")];
        v.apply_message(snapshot).expect("a snapshot opens the stream");
        assert_eq!(quantities(&v), [(1, "10".into()), (2, "20".into())]);
        let mut delta = msg(pb::UpdateKind::Delta, 2, 1);
        delta.upserts = vec![pos(1, "11"), pos(3, "30")];
        delta.removals = vec![pb::PositionKey { account: "DU1".into(), con_id: 2 }];
        v.apply_message(delta).expect("the next seq");
        assert_eq!(quantities(&v), [(1, "11".into()), (3, "30".into())]);
        let mut stale = msg(pb::UpdateKind::Freshness, 3, 1);
        stale.freshness = Some(pb::Freshness {
            state: pb::FreshnessState::Stale as i32,
            since: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
            reason: "IB link lost (1100)".into(),
        });
        v.apply_message(stale).expect("freshness");
        assert_eq!(v.freshness().state, FreshnessState::Stale);
        assert_eq!(quantities(&v).len(), 2, "a freshness message keeps the rows");
        // The resync of a new session: the full set replaces the rows, LIVE again.
        let mut resync = msg(pb::UpdateKind::Resync, 4, 2);
        resync.items = vec![pos(4, "40")];
        v.apply_message(resync).expect("a resync may change the epoch");
        assert_eq!(quantities(&v), [(4, "40".into())]);
        assert_eq!((v.epoch(), v.freshness().state, v.applied()), (2, FreshnessState::Live, 4));
    }

    #[test]
    fn a_gap_is_refused_and_changes_nothing() {
        let mut v = View::<Positions>::new();
        let mut snapshot = msg(pb::UpdateKind::Snapshot, 1, 1);
        snapshot.items = vec![pos(1, "10")];
        v.apply_message(snapshot).unwrap();
        let mut skipped = msg(pb::UpdateKind::Delta, 3, 1);
        skipped.upserts = vec![pos(1, "99")];
        assert_eq!(v.apply_message(skipped).unwrap_err(), Gap::Seq { expected: 2, got: 3 });
        assert_eq!(quantities(&v), [(1, "10".into())], "nothing applied on a gap");
        // An epoch change without a RESYNC is a gap too.
        let mut other_epoch = msg(pb::UpdateKind::Delta, 2, 2);
        other_epoch.upserts = vec![pos(1, "98")];
        assert_eq!(v.apply_message(other_epoch).unwrap_err(), Gap::Epoch { from: 1, to: 2, seq: 2 });
        let freshness_of_other_epoch = msg(pb::UpdateKind::Freshness, 2, 2);
        assert!(matches!(v.apply_message(freshness_of_other_epoch), Err(Gap::Epoch { .. })));
        assert_eq!(quantities(&v), [(1, "10".into())]);
        // A snapshot in the middle of a stream, or a stream that does not open with one.
        assert!(matches!(v.apply_message(msg(pb::UpdateKind::Snapshot, 2, 1)), Err(Gap::Opening { .. })));
        let mut fresh = View::<Positions>::new();
        assert!(matches!(fresh.apply_message(msg(pb::UpdateKind::Delta, 1, 1)), Err(Gap::Opening { .. })));
        assert_eq!(v.applied(), 1);
    }

    #[test]
    fn a_lost_stream_keeps_the_rows_stale_and_waits_for_a_new_snapshot() {
        let mut v = View::<Positions>::new();
        let mut snapshot = msg(pb::UpdateKind::Snapshot, 1, 1);
        snapshot.items = vec![pos(1, "10")];
        v.apply_message(snapshot.clone()).unwrap();
        let t = |s| prost_types::Timestamp { seconds: s, nanos: 0 };
        v.lose("gateway-svc unreachable", t(100));
        assert_eq!(v.freshness().state, FreshnessState::Stale);
        assert_eq!(v.freshness().since, Some(t(100)));
        v.lose("still down", t(200));
        assert_eq!((v.freshness().since, v.freshness().reason.as_str()), (Some(t(100)), "gateway-svc unreachable"));
        assert_eq!(quantities(&v), [(1, "10".into())]);
        assert!(matches!(v.apply_message(msg(pb::UpdateKind::Delta, 2, 1)), Err(Gap::Seq { expected: 1, got: 2 })));
        snapshot.items = vec![pos(2, "20")];
        v.apply_message(snapshot).expect("a new stream's snapshot");
        assert_eq!(quantities(&v), [(2, "20".into())]);
        assert_eq!(v.freshness().state, FreshnessState::Live);
    }
}
