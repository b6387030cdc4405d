//! What one front-door client has been told of one data kind, and the differences since.
//!
//! The hub's change feed is a doorbell that also carries the changes. A client in step (it has
//! received every change since what it was last told) is sent the changes themselves, folded:
//! that costs what changed, not what the hub holds, which matters when one data kind changes
//! many times a second. A client that lagged, or whose data has just become live again, instead
//! compares the hub's current snapshot with the one it was last told about and is sent the
//! difference. Either way a burst of changes goes out as one difference, a lagging client
//! converges without guessing what it missed, and a client never sees an older row after a
//! newer one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::hub::{CHANGE_CAPACITY, Change, Hub, Snapshot};
use crate::model::{Freshness, Row};

/// Rows that changed or appeared, and rows that went away.
#[derive(Debug)]
pub(super) struct Diff<T> {
    pub(super) upserts: Vec<T>,
    pub(super) removals: Vec<T>,
}

/// One data kind, as told to one client.
#[derive(Debug)]
pub(super) struct Feed<T: Row> {
    rx: broadcast::Receiver<Arc<Change<T>>>,
    told: Arc<Snapshot<T>>,
    /// Changes received and not yet told, in version order. Bounded: past [`CHANGE_CAPACITY`]
    /// the client counts as lagging and converges from the snapshot instead.
    pending: Vec<Arc<Change<T>>>,
    /// Changes were lost to the broadcast's bound (or to `pending`'s): compare snapshots.
    lagged: bool,
    /// The client was told the link is down (1100) since `told` was taken: whatever `told` says,
    /// it is not live for this client until the next catch-up sends the rows again.
    held: bool,
}

impl<T: Row> Feed<T> {
    /// Starts following `hub`; the client is taken to know its current state.
    pub(super) fn open(hub: &Hub<T>) -> Self {
        let (told, rx) = hub.subscribe();
        Self { rx, told, pending: Vec::new(), lagged: false, held: false }
    }

    /// What the client was last told.
    pub(super) fn told(&self) -> &Snapshot<T> {
        &self.told
    }

    fn keep(&mut self, change: Arc<Change<T>>) {
        if self.lagged || change.version <= self.told.version {
            return;
        }
        if self.pending.len() >= CHANGE_CAPACITY {
            self.pending.clear();
            self.lagged = true;
            return;
        }
        self.pending.push(change);
    }

    /// Takes every change already queued, without waiting.
    fn receive(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(change) => self.keep(change),
                Err(TryRecvError::Lagged(_)) => {
                    self.pending.clear();
                    self.lagged = true;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    /// Resolves once the hub has changed since the last call. Cancellation safe: a change is
    /// kept the moment it is received, so one received before another branch wins is not lost.
    pub(super) async fn rung(&mut self) {
        loop {
            match self.rx.recv().await {
                Ok(change) => {
                    self.keep(change);
                    // Everything queued is covered by one catch-up.
                    self.receive();
                    return;
                }
                Err(RecvError::Lagged(_)) => {
                    self.pending.clear();
                    self.lagged = true;
                    self.receive();
                    return;
                }
                // The hub lives as long as the service; a closed feed never rings again.
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// Whether what the client was last told is live data.
    pub(super) fn live(&self) -> bool {
        !self.held && self.told.freshness == Freshness::Live
    }

    /// The client has been told the link is down: nothing it holds counts as live until the
    /// next catch-up has sent every row again (which happens only once the data is live).
    pub(super) fn hold(&mut self) {
        self.held = true;
    }

    /// Whether the pending changes follow `told` without a gap.
    fn in_step(&self) -> bool {
        !self.lagged && self.pending.iter().zip(self.told.version + 1..).all(|(c, v)| c.version == v)
    }

    /// The state the pending changes produce, from `told`: the last change's own state while
    /// anyone holds it, else `told` with the changes applied (a persistent map, so this costs
    /// what changed).
    fn advanced(&self) -> Arc<Snapshot<T>> {
        match self.pending.last() {
            None => Arc::clone(&self.told),
            Some(last) => last.state.upgrade().unwrap_or_else(|| {
                let mut next = (*self.told).clone();
                for c in &self.pending {
                    next.apply(c);
                }
                Arc::new(next)
            }),
        }
    }

    /// Moves the client's view forward and returns the difference: the folded pending changes
    /// when in step, else the snapshots compared. When the data has just become live again,
    /// every row counts as changed: a row held back while it was not live (see [`Feed::live`])
    /// goes out now even if its value did not change.
    pub(super) fn catch_up(&mut self, hub: &Hub<T>) -> Diff<T> {
        self.receive();
        let in_step = self.in_step();
        let now = if in_step { self.advanced() } else { hub.snapshot() };
        let now_live = now.freshness == Freshness::Live;
        let everything = now_live && !self.live();
        let diff = if in_step && !everything {
            fold(&self.told, &self.pending)
        } else if Arc::ptr_eq(&now, &self.told) && !everything {
            Diff { upserts: Vec::new(), removals: Vec::new() }
        } else {
            compare(&self.told, &now, everything)
        };
        // Live data just went out in full (or had already): nothing is held any more.
        self.held &= !now_live;
        self.pending.clear();
        self.lagged = false;
        self.told = now;
        diff
    }
}

/// The difference between two states: every row of `now` that `told` does not have as it is
/// (every row of `now`, with `everything`), and every row of `told` that `now` lacks.
fn compare<T: Row>(told: &Snapshot<T>, now: &Snapshot<T>, everything: bool) -> Diff<T> {
    let upserts = now.rows.iter().filter(|(k, r)| everything || told.rows.get(*k) != Some(*r)).map(|(_, r)| r.clone());
    let removals = told.rows.iter().filter(|(k, _)| !now.rows.contains_key(*k)).map(|(_, r)| r.clone());
    Diff { upserts: upserts.collect(), removals: removals.collect() }
}

/// `changes`, in order, folded into one difference from `told`: the last word on each key wins,
/// and a row is only reported when it differs from what the client was told (a row that came
/// and went within the changes was never told, so its removal is not reported either).
fn fold<T: Row>(told: &Snapshot<T>, changes: &[Arc<Change<T>>]) -> Diff<T> {
    let mut last: BTreeMap<T::Key, (bool, &T)> = BTreeMap::new();
    for c in changes {
        for r in &c.upserts {
            last.insert(r.key(), (true, r));
        }
        for r in &c.removals {
            last.insert(r.key(), (false, r));
        }
    }
    let mut diff = Diff { upserts: Vec::new(), removals: Vec::new() };
    for (k, (present, r)) in last {
        match (present, told.rows.get(&k)) {
            (true, was) if was != Some(r) => diff.upserts.push(r.clone()),
            (false, Some(was)) => diff.removals.push(was.clone()),
            _ => {}
        }
    }
    diff
}

/// What a followed kind has to send now: nothing while the link is down (the client was told
/// 1100, and what changes goes out after 1102) or when the client does not follow the kind.
pub(super) fn due<T: Row>(feed: &mut Option<Feed<T>>, link_up: bool, hub: &Hub<T>) -> Option<Diff<T>> {
    feed.as_mut().filter(|_| link_up).map(|f| f.catch_up(hub))
}

/// Waits for `feed` to ring; never resolves when there is no feed (for `select!`).
pub(super) async fn rung<T: Row>(feed: &mut Option<Feed<T>>) {
    match feed {
        Some(f) => f.rung().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::hub::HubWriter;
    use crate::model::AccountPnlRow;

    impl<T: Row> Feed<T> {
        /// Receives what is queued and says whether the next catch-up folds changes.
        fn in_step_after_receive(&mut self) -> bool {
            self.receive();
            self.in_step()
        }
    }

    fn row(account: &str, daily: &str) -> AccountPnlRow {
        AccountPnlRow { account: account.into(), daily: daily.into(), unrealized: "0".into(), realized: "0".into() }
    }

    fn rows(list: &[AccountPnlRow]) -> BTreeMap<String, AccountPnlRow> {
        list.iter().map(|r| (r.account.clone(), r.clone())).collect()
    }

    #[test]
    fn a_client_is_sent_differences_and_everything_again_when_data_is_live_again() {
        let w = HubWriter::new("connecting");
        let hub = w.reader();
        let mut feed = Feed::open(&hub);
        assert!(!feed.live(), "nothing is live before the first sync");
        w.resync(1, rows(&[row("A", "1"), row("B", "2")]));
        let d = feed.catch_up(&hub);
        assert_eq!((d.upserts.len(), d.removals.len()), (2, 0), "the first live data is all new");
        w.apply(vec![row("A", "3")], vec!["B".into()]);
        let d = feed.catch_up(&hub);
        assert_eq!((d.upserts, d.removals), (vec![row("A", "3")], vec![row("B", "2")]));

        // An outage: stale, then the same values live again. A row held back while stale must
        // go out now, although its value did not change.
        w.mark_stale("IB link lost (1100)");
        let d = feed.catch_up(&hub);
        assert!(d.upserts.is_empty() && d.removals.is_empty());
        assert!(!feed.live());
        w.resync(2, rows(&[row("A", "3")]));
        let d = feed.catch_up(&hub);
        assert_eq!(d.upserts, vec![row("A", "3")]);
        assert!(feed.live());
        assert!(feed.catch_up(&hub).upserts.is_empty(), "told once, not again");

        // Told 1100 while the hub still looked live (its stale mark not yet caught up): nothing
        // counts as live, and the next live catch-up sends every row again.
        feed.hold();
        assert!(!feed.live());
        let d = feed.catch_up(&hub);
        assert_eq!(d.upserts, vec![row("A", "3")], "every row again, though nothing changed");
        assert!(feed.live());
    }

    /// A client's view built only from the differences it is sent, as the front door sends them.
    fn told_by(view: &mut BTreeMap<String, AccountPnlRow>, d: &Diff<AccountPnlRow>) {
        for r in &d.upserts {
            view.insert(r.account.clone(), r.clone());
        }
        for r in &d.removals {
            assert_eq!(view.remove(&r.account).as_ref(), Some(r), "a removal names a row as it was told");
        }
    }

    #[test]
    fn a_client_in_step_is_sent_the_changes_and_one_that_lags_converges_from_the_snapshot() {
        use rand::{Rng, SeedableRng};
        for seed in 0..50u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let w = HubWriter::new("connecting");
            let hub = w.reader();
            w.resync(1, rows(&[row("A", "0")]));
            let mut feed = Feed::open(&hub);
            let mut view = rows(&feed.told().rows.values().cloned().collect::<Vec<_>>());
            let mut folded = 0;
            for step in 0..200 {
                // A batch of upserts and removals over a few keys, so keys come and go.
                let n = rng.random_range(1..4);
                let ups: Vec<_> = (0..n)
                    .map(|_| row(&format!("K{}", rng.random_range(0..6)), &rng.random_range(0..3).to_string()))
                    .collect();
                let gone: Vec<String> =
                    (0..rng.random_range(0..2)).map(|_| format!("K{}", rng.random_range(0..6))).collect();
                w.apply(ups, gone);
                // Now and then the client falls further behind than the change buffer holds.
                if rng.random_ratio(1, 40) {
                    for i in 0..=CHANGE_CAPACITY {
                        w.apply(vec![row("L", &(step * 10_000 + i).to_string())], vec![]);
                    }
                }
                if rng.random_ratio(1, 3) {
                    folded += usize::from(feed.in_step_after_receive());
                    let d = feed.catch_up(&hub);
                    told_by(&mut view, &d);
                    let hub_rows: BTreeMap<_, _> = hub.snapshot().rows.clone().into_iter().collect();
                    assert_eq!(view, hub_rows, "seed {seed}, step {step}: the client's view is the hub's");
                }
            }
            assert!(folded > 0, "seed {seed}: some catch-ups were in step");
        }
    }

    #[test]
    fn a_change_buffer_overflow_counts_as_lagging() {
        let w = HubWriter::new("connecting");
        let hub = w.reader();
        w.resync(1, rows(&[row("A", "0")]));
        let mut feed = Feed::open(&hub);
        w.apply(vec![row("A", "1")], vec![]);
        assert!(feed.in_step_after_receive(), "one change follows what the client was told");
        feed.catch_up(&hub);
        for i in 0..CHANGE_CAPACITY + 5 {
            w.apply(vec![row("A", &(i + 2).to_string())], vec![]);
        }
        assert!(!feed.in_step_after_receive(), "lost changes are never folded");
        let d = feed.catch_up(&hub);
        assert_eq!(d.upserts, vec![row("A", &(CHANGE_CAPACITY + 6).to_string())]);
        assert!(feed.in_step_after_receive(), "back in step after the snapshot catch-up");
    }
}
