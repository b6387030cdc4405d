//! Profit and loss: data kinds with one upstream subscription per key rather than one per kind.
//! IB serves PnL per account (`reqPnL`) and per held position (`reqPnLSingle`), so the session
//! keeps a set of subscriptions per kind and follows its keys: the managed accounts, and the
//! held positions (opened and closed positions subscribe and cancel).
//!
//! Limits respected: at most `upstream.max_position_pnl` position subscriptions (the rest are
//! reported missing, never invented), and every request goes through the client's rate limiter
//! (IB allows 50 messages a second). Valuations come from `reqPnLSingle`'s market value, not from
//! `reqAccountUpdates`, which serves one account at a time per client.
//!
//! Freshness: a kind's rows stay as they were (STALE) across a reconnect until every key of the
//! new session has reported once (or the sync timeout passed); then the full set is published as
//! a RESYNC and later values as deltas, exactly like positions.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures_util::{FutureExt, Stream, StreamExt};
use ibapi::accounts::types::{AccountId, ContractId};
use ibapi::accounts::{PnL, PnLSingle};
use ibapi::prelude::{Client, Subscription, SubscriptionItem};
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tracing::{debug, info, warn};

use crate::hub::Hub;
use crate::model::{AccountPnlRow, PositionPnlRow, Row, decimal};
use crate::state::State;

/// Items pulled per wake-up, across every key of a kind: a burst becomes one delta.
const BATCH: usize = 512;

/// A kind served by one subscription per key.
pub(crate) trait PerKey {
    /// What identifies one subscription (and its row).
    type Key: Ord + std::hash::Hash + Clone + Unpin + Send + std::fmt::Debug;
    /// What a subscription yields.
    type Item;
    /// The crate's subscription type.
    type Sub: Stream<Item = Result<SubscriptionItem<Self::Item>, ibapi::Error>> + Unpin + Send;
    /// The rows it keeps (keyed like the subscriptions).
    type Row: Row<Key = Self::Key>;
    /// Metric label and log name.
    const LABEL: &'static str;
    /// Its hub.
    fn hub(state: &State) -> &Hub<Self::Row>;
    /// Opens the subscription for `key`.
    fn subscribe(client: &Client, key: &Self::Key) -> impl Future<Output = Result<Self::Sub, ibapi::Error>> + Send;
    /// Cancels it.
    fn cancel(sub: &Self::Sub) -> impl Future<Output = ()> + Send;
    /// The row `item` says `key` has now.
    fn row(key: &Self::Key, item: &Self::Item, state: &State) -> Self::Row;
}

/// Account PnL: `reqPnL` per managed account.
#[derive(Debug)]
pub(crate) struct AccountPnl;

impl PerKey for AccountPnl {
    type Key = String;
    type Item = PnL;
    type Sub = Subscription<PnL>;
    type Row = AccountPnlRow;
    const LABEL: &'static str = "account_pnl";

    fn hub(state: &State) -> &Hub<AccountPnlRow> {
        &state.account_pnl
    }

    async fn subscribe(client: &Client, account: &String) -> Result<Self::Sub, ibapi::Error> {
        client.pnl(&AccountId(account.clone()), None).await
    }

    async fn cancel(sub: &Self::Sub) {
        sub.cancel().await;
    }

    fn row(account: &String, p: &PnL, _: &State) -> AccountPnlRow {
        AccountPnlRow {
            account: account.clone(),
            daily: amount(p.daily_pnl),
            unrealized: p.unrealized_pnl.map(amount).unwrap_or_default(),
            realized: p.realized_pnl.map(amount).unwrap_or_default(),
        }
    }
}

/// Position PnL and value: `reqPnLSingle` per held position.
#[derive(Debug)]
pub(crate) struct PositionPnl;

impl PerKey for PositionPnl {
    type Key = (String, i64);
    type Item = PnLSingle;
    type Sub = Subscription<PnLSingle>;
    type Row = PositionPnlRow;
    const LABEL: &'static str = "position_pnl";

    fn hub(state: &State) -> &Hub<PositionPnlRow> {
        &state.position_pnl
    }

    async fn subscribe(client: &Client, (account, con_id): &(String, i64)) -> Result<Self::Sub, ibapi::Error> {
        let con_id = i32::try_from(*con_id).unwrap_or_default();
        client.pnl_single(&AccountId(account.clone()), ContractId(con_id), None).await
    }

    async fn cancel(sub: &Self::Sub) {
        sub.cancel().await;
    }

    fn row(key: &(String, i64), p: &PnLSingle, state: &State) -> PositionPnlRow {
        // IB's value includes the multiplier (an option of 100 × 3.10 is worth 310).
        let multiplier = state
            .positions
            .snapshot()
            .rows
            .get(key)
            .and_then(|r| r.multiplier.parse::<f64>().ok())
            .filter(|m| *m > 0.0)
            .unwrap_or(1.0);
        let units = p.position * multiplier;
        let price = if units == 0.0 { String::new() } else { decimal(round6(p.value / units)) };
        PositionPnlRow {
            account: key.0.clone(),
            con_id: key.1,
            quantity: decimal(p.position),
            market_value: amount(p.value),
            market_price: price,
            daily: amount(p.daily_pnl),
            unrealized: amount(p.unrealized_pnl),
            realized: amount(p.realized_pnl),
        }
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// An amount IB sent as a double, as a decimal string. Rounded to 6 places first, so the binary
/// noise of a double ("10511.849999999999") never reaches clients as if it were a digit.
fn amount(v: f64) -> String {
    // `+ 0.0` turns a rounded -0 into 0: "-0" is no amount.
    decimal(round6(v) + 0.0)
}

/// Why a keyed kind could not go on.
#[derive(Debug)]
pub(crate) enum KeyedError {
    /// The session is gone.
    Closed(String),
}

/// The live subscriptions of one keyed kind, and the first full set being collected.
pub(crate) struct Keyed<K: PerKey> {
    subs: StreamMap<K::Key, K::Sub>,
    /// Keys of this session that have not reported yet; while any is left the kind is
    /// collecting its first full set (published as one RESYNC).
    pending: BTreeSet<K::Key>,
    first: BTreeMap<K::Key, K::Row>,
    collecting_since: Option<Instant>,
    /// Keys wanted but not subscribed because of the cap (reported once per change).
    capped: usize,
}

impl<K: PerKey> Default for Keyed<K> {
    fn default() -> Self {
        Self {
            subs: StreamMap::new(),
            pending: BTreeSet::new(),
            first: BTreeMap::new(),
            collecting_since: None,
            capped: 0,
        }
    }
}

impl<K: PerKey> Keyed<K> {
    /// Cancels every subscription (after 1101 IB has dropped them; at shutdown, we do).
    pub(crate) async fn cancel_all(&mut self) {
        let keys: Vec<K::Key> = self.subs.keys().cloned().collect();
        for key in keys {
            if let Some(sub) = self.subs.remove(&key) {
                K::cancel(&sub).await;
            }
        }
        self.pending.clear();
        self.first.clear();
        self.collecting_since = None;
    }

    /// Makes the subscribed keys equal to `wanted` (at most `cap` of them): cancels and forgets
    /// gone keys (their rows are removed) and subscribes at most `budget` new ones, so the caller
    /// stays responsive (each subscription is one paced request). Returns whether every wanted key
    /// is subscribed; call again until it is. With `fresh`, a new session, the kind collects its
    /// first full set again.
    pub(crate) async fn follow(
        &mut self,
        client: &Client,
        state: &State,
        wanted: BTreeSet<K::Key>,
        cap: usize,
        fresh: bool,
        budget: usize,
    ) -> Result<bool, KeyedError> {
        let capped = wanted.len().saturating_sub(cap);
        if capped != self.capped {
            if capped > 0 {
                warn!(
                    kind = K::LABEL,
                    wanted = wanted.len(),
                    cap,
                    "more keys than the subscription cap; the rest get no PnL"
                );
            }
            self.capped = capped;
        }
        let wanted: BTreeSet<K::Key> = wanted.into_iter().take(cap).collect();
        let gone: Vec<K::Key> = self.subs.keys().filter(|k| !wanted.contains(*k)).cloned().collect();
        for key in &gone {
            if let Some(sub) = self.subs.remove(key) {
                K::cancel(&sub).await;
            }
            self.pending.remove(key);
            self.first.remove(key);
        }
        if !self.collecting() && !gone.is_empty() {
            K::hub(state).apply(Vec::new(), gone);
        }
        if fresh {
            self.pending = wanted.clone();
            self.first.clear();
            self.collecting_since = Some(Instant::now());
        }
        let missing: Vec<K::Key> = wanted.into_iter().filter(|k| !self.subs.contains_key(k)).collect();
        let done = missing.len() <= budget;
        for key in missing.into_iter().take(budget) {
            let sub = K::subscribe(client, &key).await.map_err(|e| KeyedError::Closed(format!("{}: {e}", K::LABEL)))?;
            debug!(kind = K::LABEL, ?key, "subscribed");
            self.subs.insert(key, sub);
        }
        self.finish_first_set(state, false);
        Ok(done)
    }

    fn collecting(&self) -> bool {
        self.collecting_since.is_some()
    }

    /// Publishes the first full set once every key has reported, or, with `deadline_passed`,
    /// with what has arrived (silent keys simply have no row yet).
    fn finish_first_set(&mut self, state: &State, deadline_passed: bool) {
        if !self.collecting() || (!self.pending.is_empty() && !deadline_passed) {
            return;
        }
        if !self.pending.is_empty() {
            warn!(kind = K::LABEL, missing = ?self.pending, "no first value within the sync timeout; publishing without them");
        }
        let rows = std::mem::take(&mut self.first);
        info!(kind = K::LABEL, rows = rows.len(), "first full set");
        K::hub(state).resync(state.health().epoch, rows);
        self.pending.clear();
        self.collecting_since = None;
    }

    /// Gives up waiting for silent keys once `timeout` has passed since the set began.
    pub(crate) fn check_deadline(&mut self, state: &State, timeout: std::time::Duration) {
        if self.collecting_since.is_some_and(|t| t.elapsed() >= timeout) {
            self.finish_first_set(state, true);
        }
    }

    /// The next item of any key. Cancellation safe (StreamMap polls its streams).
    pub(crate) async fn next(&mut self) -> Option<(K::Key, Result<SubscriptionItem<K::Item>, ibapi::Error>)> {
        if self.subs.is_empty() {
            return std::future::pending().await;
        }
        self.subs.next().await
    }

    /// Folds `first` and whatever else is ready into one change. A subscription that fails alone
    /// (IB refused that one request) is dropped with a warning; a lost connection ends the session.
    pub(crate) fn fold(
        &mut self,
        first: (K::Key, Result<SubscriptionItem<K::Item>, ibapi::Error>),
        state: &State,
    ) -> Result<(), KeyedError> {
        let mut latest: BTreeMap<K::Key, K::Row> = BTreeMap::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some((key, item)) = next.take() {
            match item {
                Ok(SubscriptionItem::Data(item)) => {
                    latest.insert(key.clone(), K::row(&key, &item, state));
                }
                Ok(SubscriptionItem::Notice(notice)) => {
                    debug!(kind = K::LABEL, ?key, code = notice.code, message = %notice.message, "subscription notice");
                }
                Err(e) if e.is_connection_lost() => {
                    return Err(KeyedError::Closed(format!("{} stream ended: {e}", K::LABEL)));
                }
                Err(e) => {
                    warn!(kind = K::LABEL, ?key, error = %e, "subscription refused; that key gets no data");
                    self.subs.remove(&key);
                    self.pending.remove(&key);
                }
            }
            n += 1;
            if n < BATCH {
                next = self.subs.next().now_or_never().flatten();
            }
        }
        state.metrics.upstream_updates(K::LABEL, latest.len());
        if self.collecting() {
            for (key, row) in latest {
                self.pending.remove(&key);
                self.first.insert(key, row);
            }
            self.finish_first_set(state, false);
        } else {
            K::hub(state).apply(latest.into_values().collect(), Vec::new());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::amount;

    #[test]
    fn amounts_carry_no_binary_noise() {
        assert_eq!(amount(10511.849999999999), "10511.85");
        assert_eq!(amount(412.35), "412.35");
        assert_eq!(amount(-88.1), "-88.1");
        assert_eq!(amount(0.0), "0");
        assert_eq!(amount(0.000_000_4), "0");
        assert_eq!(amount(-0.000_000_4), "0");
    }
}
