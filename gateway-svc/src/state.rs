//! The in-memory state every part of the service shares: one hub per data kind, the health
//! watch, and the subscriber count. The flow is one-way in the types: everyone (gRPC, the front
//! door, ops) gets a [`State`], which can only be read; the session actor alone holds the
//! [`StateWriter`], the only thing that can change it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{broadcast, watch};

use crate::health::Health;
use crate::hub::{Hub, HubWriter};
use crate::kind::DataKind;
use crate::metrics::Metrics;
#[cfg(test)]
use crate::model::Freshness;
use crate::model::{AccountPnlRow, AccountRow, PositionPnlRow, PositionRow, Row, SummaryRow};

/// Health changes buffered per WatchHealth stream; one that falls further behind is given the
/// latest health instead of the ones it missed.
pub(crate) const HEALTH_CHANGES: usize = 256;

/// The table of kinds: each kind's row type, its hub's field in [`State`] and [`StateWriter`],
/// and what that field holds. From it come both structs' hub fields, the writer's constructor,
/// each row type's [`Kind`] impl and [`StateWriter::freshen`]: a new kind is one line here.
macro_rules! hubs {
    ($($variant:ident => $row:ty, $field:ident, $doc:literal;)*) => {
        /// Shared state, read-only. Cheap to clone behind an `Arc`. One hub per data kind (see the
        /// table of kinds).
        #[derive(Debug)]
        pub struct State {
            $(
                #[doc = $doc]
                pub $field: Hub<$row>,
            )*
            /// Session health: the latest value (readers that only need the current state).
            health: watch::Receiver<Arc<Health>>,
            /// Every change of health, in order (WatchHealth delivers each one). Only
            /// subscribed to here.
            health_changes: broadcast::Sender<Arc<Health>>,
            /// This service's metrics (its own registry, never the process-global one).
            pub metrics: Metrics,
            subscribers: AtomicUsize,
        }

        /// The writing end of the shared state: the hubs' writers and the health's sender. The
        /// session actor holds the only one. It reads like the [`State`] it writes (it derefs to
        /// it), so the session sees what its readers see.
        #[derive(Debug)]
        pub(crate) struct StateWriter {
            state: Arc<State>,
            $(
                #[doc = $doc]
                pub(crate) $field: HubWriter<$row>,
            )*
            pub(crate) health: watch::Sender<Arc<Health>>,
            health_changes: broadcast::Sender<Arc<Health>>,
        }

        impl StateWriter {
            /// Fresh state for a session that is about to dial `upstream`.
            pub(crate) fn new(upstream: &str, client_id: i32) -> Self {
                let reason = format!("no data yet: connecting to {upstream}");
                $(let $field = HubWriter::<$row>::new(&reason);)*
                let (health, health_rx) = watch::channel(Arc::new(Health::starting(upstream, client_id)));
                let health_changes = broadcast::channel(HEALTH_CHANGES).0;
                let state = Arc::new(State {
                    $($field: $field.reader(),)*
                    health: health_rx,
                    health_changes: health_changes.clone(),
                    metrics: Metrics::new(),
                    subscribers: AtomicUsize::new(0),
                });
                Self { state, $($field,)* health, health_changes }
            }

            /// The hub of `kind`, for what the session does to every kind alike.
            pub(crate) fn freshen(&self, kind: DataKind) -> &dyn Freshen {
                match kind {
                    $(DataKind::$variant => &self.$field,)*
                }
            }
        }

        $(
            impl Kind for $row {
                const KIND: DataKind = DataKind::$variant;
                fn hub(state: &State) -> &Hub<Self> {
                    &state.$field
                }
                fn writer(w: &StateWriter) -> &HubWriter<Self> {
                    &w.$field
                }
            }
        )*
    };
}

hubs! {
    Accounts => AccountRow, accounts, "Managed accounts.";
    Positions => PositionRow, positions, "Positions.";
    Summary => SummaryRow, summary, "Account summary.";
    AccountPnl => AccountPnlRow, account_pnl, "PnL per account.";
    PositionPnl => PositionPnlRow, position_pnl, "PnL and value per held position.";
}

impl StateWriter {
    /// The state this writes, for its readers.
    pub(crate) fn reader(&self) -> Arc<State> {
        Arc::clone(&self.state)
    }

    /// Changes health with `f` and publishes it, only if the change is one a reader can see:
    /// the new value on the watch, and the change, in version order, on the change feed (sent
    /// under the watch's lock, so the feed's order is the versions' order). Every published change
    /// is a WatchHealth message to each client (and, through the bridge, a NATS message), so a
    /// write that changes nothing publishes nothing.
    pub(crate) fn update_health(&self, f: impl FnOnce(&mut Health)) {
        self.health.send_if_modified(|h| {
            let mut next = (**h).clone();
            f(&mut next);
            if next == **h {
                return false;
            }
            next.version += 1;
            *h = Arc::new(next);
            // No receivers is normal when nobody watches.
            let _ = self.health_changes.send(Arc::clone(h));
            true
        });
    }

    /// Marks every data kind stale for `reason` (keeping an outage's first `since`).
    pub(crate) fn mark_all_stale(&self, reason: &str) {
        for kind in DataKind::ALL {
            self.freshen(*kind).mark_stale(reason);
        }
    }
}

impl std::ops::Deref for StateWriter {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl State {
    /// Current health.
    pub fn health(&self) -> Arc<Health> {
        self.health.borrow().clone()
    }

    /// A receiver of the current health, to wait for a condition on it.
    pub fn health_watch(&self) -> watch::Receiver<Arc<Health>> {
        self.health.clone()
    }

    /// Every health change from now on, and the health they follow (in that order, so a change
    /// is either in the returned value or on the receiver, and a reader skips versions it has).
    pub fn watch_health(&self) -> (Arc<Health>, broadcast::Receiver<Arc<Health>>) {
        let rx = self.health_changes.subscribe();
        (self.health(), rx)
    }

    /// Open streams now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Takes a subscriber slot if fewer than `cap` are taken. The slot frees itself on drop.
    pub(crate) fn try_subscribe(self: &Arc<Self>, cap: usize) -> Option<SubscriberSlot> {
        let mut cur = self.subscribers.load(Ordering::Relaxed);
        loop {
            if cur >= cap {
                return None;
            }
            match self.subscribers.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(SubscriberSlot { state: Arc::clone(self) }),
                Err(actual) => cur = actual,
            }
        }
    }
}

/// A row type that is one of the data kinds: which one, and where its hub is.
pub(crate) trait Kind: Row {
    /// The kind.
    const KIND: DataKind;
    /// Its hub in the shared state, for reading.
    fn hub(state: &State) -> &Hub<Self>;
    /// Its hub's writer (the session's).
    fn writer(w: &StateWriter) -> &HubWriter<Self>;
}

/// What the session does to every kind at once, whatever its rows.
pub(crate) trait Freshen {
    /// Marks the data stale for `reason` (see [`HubWriter::mark_stale`]).
    fn mark_stale(&self, reason: &str);
    /// Marks data synced in session `epoch` live again (see [`HubWriter::live_again`]).
    fn live_again(&self, epoch: u64);
    /// How fresh the data is now (what the tests check).
    #[cfg(test)]
    fn freshness(&self) -> Freshness;
}

impl<T: Row> Freshen for HubWriter<T> {
    fn mark_stale(&self, reason: &str) {
        HubWriter::mark_stale(self, reason);
    }

    fn live_again(&self, epoch: u64) {
        HubWriter::live_again(self, epoch);
    }

    #[cfg(test)]
    fn freshness(&self) -> Freshness {
        self.snapshot().freshness.clone()
    }
}

/// One open stream's claim on the subscriber cap.
#[derive(Debug)]
pub(crate) struct SubscriberSlot {
    state: Arc<State>,
}

impl SubscriberSlot {
    /// The metrics of the service this slot belongs to.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }
}

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.state.subscribers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_hub() {
        assert_eq!(<PositionRow as Kind>::KIND, DataKind::Positions);
        assert_eq!(<SummaryRow as Kind>::KIND.label(), "account_summary");
    }

    #[test]
    fn marking_every_kind_stale_reaches_every_hub() {
        let state = StateWriter::new("127.0.0.1:4002", 0);
        state.mark_all_stale("IB link lost (1100)");
        for kind in DataKind::ALL {
            // Data never synced stays UNKNOWN, now for the new reason.
            let reason = match state.freshen(*kind).freshness() {
                Freshness::Unknown { reason } => reason,
                other => panic!("{kind:?}: {other:?}"),
            };
            assert_eq!(reason, "IB link lost (1100)", "{kind:?}");
        }
    }
}
