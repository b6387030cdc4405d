//! The two views the bridge keeps of one data kind, and the difference between them:
//! [`Target`], gateway-svc's state as the gRPC stream tells it, and [`Published`], what the
//! stream and buckets say per account. Publishing is always "make published equal target" for
//! some accounts, so a live delta, a gateway-svc RESYNC and a reconciliation after an outage all
//! take the same path. The stream itself is folded by `ibgw-client`; a message arrives here as the
//! rows it may have changed. Pure code: no I/O here.

use std::collections::{BTreeMap, BTreeSet};

/// gRPC's `UpdateKind`, as `ibgw-client` reads it.
pub use ibgw_client::UpdateKind;

use crate::model::{ByAccount, Change, ChangeKind, Freshness, Row};

/// A gRPC stream message of one data kind, converted: the rows it may have changed as
/// `ibgw-client`'s view of the stream holds them after it (the fold is the library's).
#[derive(Debug, Clone)]
pub struct Update<R: Row> {
    /// SNAPSHOT, DELTA, RESYNC or FRESHNESS (gRPC's kinds).
    pub kind: UpdateKind,
    /// The rows of the accounts it may have changed.
    pub rows: Rows<R>,
    /// Upstream session generation.
    pub epoch: u64,
    /// gateway-svc's state version.
    pub version: u64,
    /// As-of (RFC 3339).
    pub as_of: String,
    /// Freshness after the message.
    pub freshness: Freshness,
}

impl<R: Row> Update<R> {
    /// gateway-svc has nothing to say yet (a full set with freshness UNKNOWN: a gateway-svc that
    /// just started and has not synced). Not an empty book: the last known rows stay, stale.
    pub fn no_data(&self) -> bool {
        self.kind.is_full_set() && self.freshness.state == crate::model::FreshnessState::Unknown
    }
}

/// What a message's rows replace.
#[derive(Debug, Clone)]
pub enum Rows<R: Row> {
    /// SNAPSHOT and RESYNC: every account (an account without rows is absent).
    All(ByAccount<R>),
    /// DELTA: these accounts, each with all its rows (none: it has no rows left).
    Accounts(ByAccount<R>),
    /// FRESHNESS: none.
    Unchanged,
}

/// Which accounts a step may have changed, and what to call the messages it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    /// `None`: every account.
    pub accounts: Option<BTreeSet<String>>,
    /// DELTA for live changes, RESYNC otherwise (FRESHNESS is chosen per account when no row
    /// differs).
    pub hint: ChangeKind,
}

impl Touched {
    /// Every account, as a reconciliation.
    pub fn all() -> Self {
        Self { accounts: None, hint: ChangeKind::Resync }
    }
}

/// gateway-svc's state of one data kind.
#[derive(Debug, Clone)]
pub struct Target<R: Row> {
    /// Rows by account.
    pub rows: ByAccount<R>,
    /// Upstream session generation.
    pub epoch: u64,
    /// gateway-svc's state version.
    pub version: u64,
    /// As-of (RFC 3339).
    pub as_of: String,
    /// Freshness.
    pub freshness: Freshness,
    /// There is data to publish: a snapshot arrived, or (gateway-svc unreachable since the
    /// bridge started) the published data was adopted to be marked stale.
    pub ready: bool,
    /// The gRPC stream is down (why), so the data is stale whatever it said last.
    pub lost: Option<String>,
}

impl<R: Row> Default for Target<R> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            epoch: 0,
            version: 0,
            as_of: String::new(),
            freshness: Freshness { state: crate::model::FreshnessState::Unknown, since: None, reason: String::new() },
            ready: false,
            lost: None,
        }
    }
}

impl<R: Row> Target<R> {
    /// Applies one gRPC message; returns what it may have changed.
    pub fn apply(&mut self, u: Update<R>) -> Touched {
        let freshness_changed = u.freshness != self.freshness;
        self.epoch = u.epoch;
        self.version = u.version;
        self.as_of = u.as_of;
        self.freshness = u.freshness;
        self.lost = None;
        match u.rows {
            Rows::All(rows) => {
                self.rows = rows;
                self.ready = true;
                Touched::all()
            }
            Rows::Accounts(rows) => {
                let accounts = rows.keys().cloned().collect();
                for (account, rows) in rows {
                    if rows.is_empty() {
                        self.rows.remove(&account);
                    } else {
                        self.rows.insert(account, rows);
                    }
                }
                Touched { accounts: (!freshness_changed).then_some(accounts), hint: ChangeKind::Delta }
            }
            Rows::Unchanged => Touched { accounts: None, hint: ChangeKind::Freshness },
        }
    }

    /// The gRPC stream is gone: the data is stale from now (an outage under way keeps its first
    /// since and reason). Returns true when that changed the freshness.
    pub fn lose(&mut self, reason: &str) -> bool {
        self.lost = Some(reason.to_owned());
        let next = self.freshness.stale_from(reason);
        let changed = next != self.freshness;
        self.freshness = next;
        changed
    }

    /// Nothing came from gateway-svc since the bridge started and it is unreachable: take the
    /// published rows as they are, so that only their freshness changes (to STALE).
    pub fn adopt(&mut self, published: &BTreeMap<String, Published<R>>) {
        if self.ready {
            return;
        }
        let Some(reason) = self.lost.clone() else { return };
        self.rows =
            published.iter().filter(|(_, p)| !p.rows.is_empty()).map(|(a, p)| (a.clone(), p.rows.clone())).collect();
        if let Some(last) = published.values().max_by_key(|p| p.version) {
            self.epoch = last.epoch;
            self.version = last.version;
            self.as_of = last.as_of.clone();
            self.freshness = last.freshness.clone().unwrap_or_else(|| self.freshness.clone());
        }
        self.freshness = self.freshness.stale_from(&reason);
        self.ready = true;
    }

    /// The accounts `touched` names, plus every account either side knows when it names all.
    pub fn accounts<'a>(&'a self, touched: &'a Touched, published: &'a BTreeMap<String, Published<R>>) -> Vec<String> {
        match &touched.accounts {
            Some(a) => a.iter().cloned().collect(),
            None => self.rows.keys().chain(published.keys()).cloned().collect::<BTreeSet<_>>().into_iter().collect(),
        }
    }

    /// The message that makes `published` equal this state for `account`, or `None` when it
    /// already is. `seq` is filled in by the caller.
    pub fn change_for(
        &self,
        data: &str,
        account: &str,
        published: &Published<R>,
        hint: ChangeKind,
    ) -> Option<Change<R>> {
        let empty = BTreeMap::new();
        let want = self.rows.get(account).unwrap_or(&empty);
        let upserts: Vec<R> =
            want.iter().filter(|(k, r)| published.rows.get(*k) != Some(*r)).map(|(_, r)| r.clone()).collect();
        let removals: Vec<R::Key> = published.rows.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
        let fresh_differs = published.freshness.as_ref() != Some(&self.freshness);
        let kind = if !upserts.is_empty() || !removals.is_empty() {
            if hint == ChangeKind::Delta { ChangeKind::Delta } else { ChangeKind::Resync }
        } else if fresh_differs && (!published.rows.is_empty() || published.seq > 0) {
            ChangeKind::Freshness
        } else {
            return None;
        };
        Some(Change {
            data: data.to_owned(),
            account: account.to_owned(),
            kind,
            seq: published.seq + 1,
            session_epoch: self.epoch,
            state_version: self.version,
            as_of: self.as_of.clone(),
            freshness: self.freshness.clone(),
            upserts,
            removals,
            more: false,
        })
    }
}

/// What the stream and bucket say about one account.
#[derive(Debug, Clone)]
pub struct Published<R: Row> {
    /// The rows (as the bucket holds them once the last message is applied).
    pub rows: BTreeMap<R::Key, R>,
    /// `seq` of the subject's last message (0: none).
    pub seq: u64,
    /// Its stream sequence (0: none): the expected last sequence of the next publish.
    pub stream_seq: u64,
    /// Its freshness (`None`: no message yet).
    pub freshness: Option<Freshness>,
    /// Its epoch.
    pub epoch: u64,
    /// Its state version.
    pub version: u64,
    /// Its as-of.
    pub as_of: String,
}

impl<R: Row> Default for Published<R> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            seq: 0,
            stream_seq: 0,
            freshness: None,
            epoch: 0,
            version: 0,
            as_of: String::new(),
        }
    }
}

impl<R: Row> Published<R> {
    /// Rebuilds an account's published state after a restart or an outage: the bucket's rows,
    /// with the subject's last message applied again. The bucket is written after the stream, one
    /// message at a time, so it lags the stream by at most (part of) that last message, and
    /// applying a message twice changes nothing.
    pub fn rebuild(bucket_rows: BTreeMap<R::Key, R>, last: Option<(Change<R>, u64)>) -> Self {
        let mut p = Self { rows: bucket_rows, ..Self::default() };
        if let Some((change, stream_seq)) = last {
            p.record(&change, stream_seq);
        }
        p
    }

    /// Applies a message that is now in the stream at `stream_seq`.
    pub fn record(&mut self, change: &Change<R>, stream_seq: u64) {
        for r in &change.upserts {
            self.rows.insert(r.key(), r.clone());
        }
        for k in &change.removals {
            self.rows.remove(k);
        }
        self.seq = change.seq;
        self.stream_seq = stream_seq;
        self.freshness = Some(change.freshness.clone());
        self.epoch = change.session_epoch;
        self.version = change.state_version;
        self.as_of = change.as_of.clone();
    }
}

/// Rows grouped by account.
pub fn group<R: Row>(rows: impl IntoIterator<Item = R>) -> ByAccount<R> {
    let mut out: ByAccount<R> = BTreeMap::new();
    for r in rows {
        let k = r.key();
        out.entry(R::account(&k).to_owned()).or_default().insert(k, r);
    }
    out
}

/// Splits a change whose encoding exceeds `limit` bytes into consecutive messages (each with the
/// next seq, all but the last marked `more`). Rows are never split; a single row larger than
/// `limit` still goes alone (and the server refuses it, which is reported).
pub fn split<R: Row>(change: Change<R>, limit: usize) -> Vec<Change<R>> {
    let size = |c: &Change<R>| serde_json::to_vec(c).map(|v| v.len()).unwrap_or(usize::MAX);
    if size(&change) <= limit || change.upserts.len() + change.removals.len() <= 1 {
        return vec![change];
    }
    let mut parts = Vec::new();
    let base = Change { upserts: Vec::new(), removals: Vec::new(), more: true, ..change.clone() };
    let mut cur = base.clone();
    let mut cur_size = size(&cur);
    let add = |cur: &mut Change<R>, parts: &mut Vec<Change<R>>, cur_size: &mut usize, item_size: usize| {
        if *cur_size + item_size > limit && (!cur.upserts.is_empty() || !cur.removals.is_empty()) {
            let next = Change { seq: cur.seq + 1, ..base.clone() };
            parts.push(std::mem::replace(cur, next));
            *cur_size = size(cur);
        }
        *cur_size += item_size;
    };
    for r in change.upserts {
        let s = serde_json::to_vec(&r).map(|v| v.len() + 1).unwrap_or(0);
        add(&mut cur, &mut parts, &mut cur_size, s);
        cur.upserts.push(r);
    }
    for k in change.removals {
        let s = serde_json::to_vec(&k).map(|v| v.len() + 1).unwrap_or(0);
        add(&mut cur, &mut parts, &mut cur_size, s);
        cur.removals.push(k);
    }
    cur.more = false;
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FreshnessState, Position};

    fn pos(account: &str, con_id: i64, qty: &str) -> Position {
        Position {
            account: account.into(),
            con_id,
            symbol: format!("S{con_id}"),
            sec_type: "STK".into(),
            exchange: "NASDAQ".into(),
            currency: "USD".into(),
            quantity: qty.into(),
            avg_cost: "1".into(),
            local_symbol: String::new(),
            expiry: String::new(),
            strike: String::new(),
            right: String::new(),
            multiplier: String::new(),
        }
    }

    fn live() -> Freshness {
        Freshness { state: FreshnessState::Live, since: None, reason: String::new() }
    }

    fn update(kind: UpdateKind, rows: Vec<Position>, version: u64) -> Update<Position> {
        let rows = match kind {
            UpdateKind::Snapshot | UpdateKind::Resync => Rows::All(group(rows)),
            UpdateKind::Delta => Rows::Accounts(group(rows)),
            UpdateKind::Freshness => Rows::Unchanged,
        };
        Update { kind, rows, epoch: 1, version, as_of: String::new(), freshness: live() }
    }

    #[test]
    fn a_snapshot_publishes_each_account_once_then_nothing() {
        let mut t = Target::<Position>::default();
        let touched = t.apply(update(UpdateKind::Snapshot, vec![pos("A", 1, "10"), pos("B", 2, "5")], 3));
        let mut published: BTreeMap<String, Published<Position>> = BTreeMap::new();
        let accounts = t.accounts(&touched, &published);
        assert_eq!(accounts, ["A", "B"]);
        for a in &accounts {
            let p = published.entry(a.clone()).or_default();
            let c = t.change_for("positions", a, p, touched.hint).expect("a first message");
            assert_eq!((c.kind, c.seq, c.upserts.len()), (ChangeKind::Resync, 1, 1));
            p.record(&c, 10);
        }
        for a in &accounts {
            assert!(t.change_for("positions", a, &published[a], ChangeKind::Resync).is_none(), "already published");
        }
        // A delta touches only its account; a removal empties it.
        let mut d = update(UpdateKind::Delta, vec![], 4);
        d.rows = Rows::Accounts([("B".to_owned(), BTreeMap::new())].into());
        let touched = t.apply(d);
        assert_eq!(t.accounts(&touched, &published), ["B"]);
        let c = t.change_for("positions", "B", &published["B"], touched.hint).expect("removal");
        assert_eq!((c.kind, c.seq, c.removals.len()), (ChangeKind::Delta, 2, 1));
        // Losing gateway-svc is a freshness message for every account, the emptied one too.
        if let Some(p) = published.get_mut("B") {
            p.record(&c, 11);
        }
        assert!(t.lose("gateway-svc unreachable"));
        let touched = Touched::all();
        for a in t.accounts(&touched, &published) {
            let c = t.change_for("positions", &a, &published[&a], touched.hint).expect("stale");
            assert_eq!(c.kind, ChangeKind::Freshness);
            assert_eq!(c.freshness.state, FreshnessState::Stale);
        }
    }

    #[test]
    fn an_unknown_snapshot_is_no_data_not_an_empty_book() {
        let mut u = update(UpdateKind::Snapshot, vec![], 0);
        u.freshness = Freshness { state: FreshnessState::Unknown, since: None, reason: "no data yet".into() };
        assert!(u.no_data());
        u.kind = UpdateKind::Freshness;
        assert!(!u.no_data(), "only a full set replaces rows");
        assert!(!update(UpdateKind::Snapshot, vec![pos("A", 1, "1")], 1).no_data());
    }

    #[test]
    fn rebuild_applies_the_last_message_over_a_lagging_bucket() {
        let bucket: BTreeMap<_, _> = [pos("A", 1, "10"), pos("A", 2, "3")].into_iter().map(|p| (p.key(), p)).collect();
        let last = Change {
            data: "positions".into(),
            account: "A".into(),
            kind: ChangeKind::Delta,
            seq: 9,
            session_epoch: 1,
            state_version: 20,
            as_of: String::new(),
            freshness: live(),
            upserts: vec![pos("A", 1, "11")],
            removals: vec![pos("A", 2, "3").key()],
            more: false,
        };
        let p = Published::rebuild(bucket, Some((last.clone(), 77)));
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[&pos("A", 1, "").key()].quantity, "11");
        assert_eq!((p.seq, p.stream_seq), (9, 77));
        // Already applied (the bucket caught up before the restart): the same result.
        let again = Published::rebuild(p.rows.clone(), Some((last, 77)));
        assert_eq!(again.rows, p.rows);
    }

    #[test]
    fn adopt_marks_the_published_rows_stale_without_changing_them() {
        let mut published: BTreeMap<String, Published<Position>> = BTreeMap::new();
        let first = Change {
            data: "positions".into(),
            account: "A".into(),
            kind: ChangeKind::Resync,
            seq: 1,
            session_epoch: 4,
            state_version: 8,
            as_of: String::new(),
            freshness: live(),
            upserts: vec![pos("A", 1, "10")],
            removals: vec![],
            more: false,
        };
        published.entry("A".into()).or_default().record(&first, 1);
        let mut t = Target::<Position>::default();
        t.lose("gateway-svc unreachable: connection refused");
        t.adopt(&published);
        let c = t.change_for("positions", "A", &published["A"], ChangeKind::Resync).expect("stale");
        assert_eq!((c.kind, c.session_epoch, c.state_version), (ChangeKind::Freshness, 4, 8));
        assert_eq!(c.freshness.state, FreshnessState::Stale);
    }

    #[test]
    fn large_changes_split_into_consecutive_messages() {
        let rows: Vec<Position> = (0..200).map(|i| pos("A", i, "1")).collect();
        let c = Change {
            data: "positions".into(),
            account: "A".into(),
            kind: ChangeKind::Resync,
            seq: 5,
            session_epoch: 1,
            state_version: 2,
            as_of: String::new(),
            freshness: live(),
            upserts: rows,
            removals: vec![PositionKey { account: "A".into(), con_id: 999 }],
            more: false,
        };
        let parts = split(c, 4_000);
        assert!(parts.len() > 3, "{}", parts.len());
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.seq, 5 + i as u64);
            assert_eq!(p.more, i + 1 < parts.len());
            assert!(serde_json::to_vec(p).unwrap().len() <= 4_000);
        }
        assert_eq!(parts.iter().map(|p| p.upserts.len()).sum::<usize>(), 200);
        assert_eq!(parts.iter().map(|p| p.removals.len()).sum::<usize>(), 1);
    }

    use crate::model::PositionKey;
}
