//! What one front-door client has been told of one data kind, and the differences since.
//!
//! The hub's change feed is only a doorbell here: after it rings (or lags), the connection
//! compares the hub's current snapshot with the snapshot it last told its client about, and
//! sends the difference. A burst of changes therefore costs one comparison, a lagging client
//! converges without guessing what it missed, and a client never sees an older row after a
//! newer one.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::hub::{Change, Hub, Snapshot};
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
    /// The client was told the link is down (1100) since `told` was taken: whatever `told` says,
    /// it is not live for this client until the next catch-up sends the rows again.
    held: bool,
}

impl<T: Row> Feed<T> {
    /// Starts following `hub`; the client is taken to know its current state.
    pub(super) fn open(hub: &Hub<T>) -> Self {
        let (told, rx) = hub.subscribe();
        Self { rx, told, held: false }
    }

    /// What the client was last told.
    pub(super) fn told(&self) -> &Snapshot<T> {
        &self.told
    }

    /// Resolves once the hub has changed since the last call (cancellation safe: a change
    /// received before another branch wins is not lost, since [`Feed::catch_up`] reads the hub
    /// itself).
    pub(super) async fn rung(&mut self) {
        loop {
            match self.rx.recv().await {
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    // Everything queued is covered by one comparison.
                    while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = self.rx.try_recv() {}
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

    /// Moves the client's view to the hub's current state and returns the difference. When the
    /// data has just become live again, every row counts as changed: a row held back while it
    /// was not live (see [`Feed::live`]) goes out now even if its value did not change.
    pub(super) fn catch_up(&mut self, hub: &Hub<T>) -> Diff<T> {
        let now = hub.snapshot();
        let now_live = now.freshness == Freshness::Live;
        let everything = now_live && !self.live();
        let diff = if Arc::ptr_eq(&now, &self.told) && !everything {
            Diff { upserts: Vec::new(), removals: Vec::new() }
        } else {
            let told = &self.told.rows;
            let upserts =
                now.rows.iter().filter(|(k, r)| everything || told.get(*k) != Some(*r)).map(|(_, r)| r.clone());
            let removals = told.iter().filter(|(k, _)| !now.rows.contains_key(*k)).map(|(_, r)| r.clone());
            Diff { upserts: upserts.collect(), removals: removals.collect() }
        };
        // Live data just went out in full (or had already): nothing is held any more.
        self.held &= !now_live;
        self.told = now;
        diff
    }
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
    use crate::model::AccountPnlRow;

    fn row(account: &str, daily: &str) -> AccountPnlRow {
        AccountPnlRow { account: account.into(), daily: daily.into(), unrealized: "0".into(), realized: "0".into() }
    }

    fn rows(list: &[AccountPnlRow]) -> BTreeMap<String, AccountPnlRow> {
        list.iter().map(|r| (r.account.clone(), r.clone())).collect()
    }

    #[test]
    fn a_client_is_sent_differences_and_everything_again_when_data_is_live_again() {
        let hub = Hub::new("connecting");
        let mut feed = Feed::open(&hub);
        assert!(!feed.live(), "nothing is live before the first sync");
        hub.resync(1, rows(&[row("A", "1"), row("B", "2")]));
        let d = feed.catch_up(&hub);
        assert_eq!((d.upserts.len(), d.removals.len()), (2, 0), "the first live data is all new");
        hub.apply(vec![row("A", "3")], vec!["B".into()]);
        let d = feed.catch_up(&hub);
        assert_eq!((d.upserts, d.removals), (vec![row("A", "3")], vec![row("B", "2")]));

        // An outage: stale, then the same values live again. A row held back while stale must
        // go out now, although its value did not change.
        hub.mark_stale("IB link lost (1100)");
        let d = feed.catch_up(&hub);
        assert!(d.upserts.is_empty() && d.removals.is_empty());
        assert!(!feed.live());
        hub.resync(2, rows(&[row("A", "3")]));
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
}
