//! Profit and loss: data kinds with one upstream subscription per key rather than one per kind.
//! IB serves PnL per account (`reqPnL`) and per held position (`reqPnLSingle`), so the session
//! keeps a set of subscriptions per kind and follows its keys: the managed accounts, and the
//! held positions (opened and closed positions subscribe and cancel).
//!
//! Limits respected: at most `upstream.max_position_pnl` position subscriptions (the rest are
//! reported missing, never invented; a subscription held keeps its slot, see [`plan`]), a key IB
//! refused is not asked again while it stays wanted, and every request goes through the client's
//! rate limiter (IB allows 50 messages a second). Valuations come from `reqPnLSingle`'s market
//! value, not from `reqAccountUpdates`, which serves one account at a time per client.
//!
//! Freshness: a kind's rows stay as they were (STALE) across a reconnect until every key of the
//! new session still held has reported once (or the sync timeout passed); then the full set is published as
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

use crate::hub::HubWriter;
use crate::model::{AccountPnlRow, PositionPnlRow, decimal};
use crate::state::{State, StateWriter};

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
    type Row: crate::state::Kind<Key = Self::Key>;
    /// Metric label and log name: the row's kind's.
    const LABEL: &'static str = <Self::Row as crate::state::Kind>::KIND.label();
    /// Its hub's writer: the row's kind's.
    fn hub(state: &StateWriter) -> &HubWriter<Self::Row> {
        <Self::Row as crate::state::Kind>::writer(state)
    }
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
    /// Keys IB refused (an error on that one request). Not asked again while they stay wanted
    /// in this set of subscriptions: asking again on every position change would spend the
    /// message budget on an answer already known. Forgotten when the key is no longer wanted
    /// (the position closed: a reopened one is asked once more) and with the set itself (a new
    /// session, or 1101, when IB dropped every subscription).
    refused: BTreeSet<K::Key>,
}

impl<K: PerKey> Default for Keyed<K> {
    fn default() -> Self {
        Self {
            subs: StreamMap::new(),
            pending: BTreeSet::new(),
            first: BTreeMap::new(),
            collecting_since: None,
            capped: 0,
            refused: BTreeSet::new(),
        }
    }
}

/// What following a set of wanted keys means for the subscriptions: see [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan<Key> {
    /// Subscribed keys to cancel.
    pub(crate) gone: Vec<Key>,
    /// Keys to subscribe, in order.
    pub(crate) new: Vec<Key>,
    /// The keys subscribed once the plan is carried out: the kept ones and the new ones.
    pub(crate) target: BTreeSet<Key>,
    /// Wanted keys left without a subscription by the cap.
    pub(crate) capped: usize,
}

/// Which subscriptions to cancel and which to open so that the subscribed keys follow `wanted`,
/// at most `cap` of them. A subscription still wanted is kept, whatever its place in the key
/// order: near the cap a new key takes a free slot or none, never an existing one (evicting
/// would cancel one key's PnL and subscribe another's on every change, and each is a paced
/// request). Keys in `refused` are not asked again.
pub(crate) fn plan<Key: Ord + Clone>(
    subscribed: &BTreeSet<Key>,
    wanted: &BTreeSet<Key>,
    refused: &BTreeSet<Key>,
    cap: usize,
) -> Plan<Key> {
    let kept: BTreeSet<Key> = subscribed.intersection(wanted).take(cap).cloned().collect();
    let candidates: Vec<&Key> = wanted.iter().filter(|k| !subscribed.contains(*k) && !refused.contains(*k)).collect();
    let free = cap.saturating_sub(kept.len());
    let new: Vec<Key> = candidates.iter().take(free).map(|k| (*k).clone()).collect();
    let capped = candidates.len() - new.len();
    let gone = subscribed.iter().filter(|k| !kept.contains(*k)).cloned().collect();
    let mut target = kept;
    target.extend(new.iter().cloned());
    Plan { gone, new, target, capped }
}

impl<K: PerKey> Keyed<K> {
    /// Cancels every subscription (before resubscribing after 1101, and at shutdown) and returns
    /// how many there were.
    pub(crate) async fn cancel_all(&mut self) -> usize {
        let keys: Vec<K::Key> = self.subs.keys().cloned().collect();
        let n = keys.len();
        for key in keys {
            if let Some(sub) = self.subs.remove(&key) {
                K::cancel(&sub).await;
            }
        }
        self.pending.clear();
        self.first.clear();
        self.collecting_since = None;
        n
    }

    /// Makes the subscribed keys follow `wanted` (at most `cap` of them, see [`plan`]): cancels
    /// and forgets gone keys (their rows are removed) and subscribes at most `budget` new ones,
    /// so the caller stays responsive (each subscription is one paced request). Returns whether
    /// every key of the plan is subscribed; call again until it is. With `fresh`, a new session,
    /// the kind collects its first full set again.
    pub(crate) async fn follow(
        &mut self,
        client: &Client,
        state: &StateWriter,
        wanted: BTreeSet<K::Key>,
        cap: usize,
        fresh: bool,
        budget: usize,
    ) -> Result<bool, KeyedError> {
        let plan = self.replan(state, &wanted, cap, fresh);
        for key in &plan.gone {
            if let Some(sub) = self.subs.remove(key) {
                K::cancel(&sub).await;
            }
        }
        let done = plan.new.len() <= budget;
        for key in plan.new.into_iter().take(budget) {
            let sub = K::subscribe(client, &key).await.map_err(|e| KeyedError::Closed(format!("{}: {e}", K::LABEL)))?;
            debug!(kind = K::LABEL, ?key, "subscribed");
            self.subs.insert(key, sub);
        }
        Ok(done)
    }

    /// The bookkeeping half of [`Keyed::follow`], without a request: plans, forgets gone keys
    /// (rows, first values, the set being collected) and, with `fresh`, starts a new first set.
    /// The caller cancels `gone` and subscribes `new`.
    fn replan(&mut self, state: &StateWriter, wanted: &BTreeSet<K::Key>, cap: usize, fresh: bool) -> Plan<K::Key> {
        self.refused.retain(|k| wanted.contains(k));
        let subscribed: BTreeSet<K::Key> = self.subs.keys().cloned().collect();
        let plan = plan(&subscribed, wanted, &self.refused, cap);
        if plan.capped != self.capped {
            if plan.capped > 0 {
                warn!(
                    kind = K::LABEL,
                    wanted = wanted.len(),
                    cap,
                    without = plan.capped,
                    "more keys than the subscription cap; the rest get no PnL"
                );
            }
            self.capped = plan.capped;
        }
        for key in &plan.gone {
            self.pending.remove(key);
            self.first.remove(key);
        }
        if !self.collecting() && !plan.gone.is_empty() {
            K::hub(state).apply(Vec::new(), plan.gone.clone());
        }
        if fresh {
            self.pending = plan.target.clone();
            self.first.clear();
            self.collecting_since = Some(Instant::now());
        }
        // The first set waits only for keys still to be subscribed: a position closed (or a
        // key refused) before its request's turn came would otherwise hold the whole set back
        // until the sync timeout.
        self.pending.retain(|k| plan.target.contains(k));
        self.first.retain(|k, _| plan.target.contains(k));
        self.finish_first_set(state, false);
        plan
    }

    fn collecting(&self) -> bool {
        self.collecting_since.is_some()
    }

    /// Publishes the first full set once every key has reported, or, with `deadline_passed`,
    /// with what has arrived (silent keys simply have no row yet).
    fn finish_first_set(&mut self, state: &StateWriter, deadline_passed: bool) {
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
    pub(crate) fn check_deadline(&mut self, state: &StateWriter, timeout: std::time::Duration) {
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
    /// (IB refused that one request) is dropped with a warning, and its row goes with it: data
    /// nobody follows any more is never served as live. A lost connection ends the session.
    /// Returns whether a subscription was dropped: its slot is free, so the caller plans again.
    pub(crate) fn fold(
        &mut self,
        first: (K::Key, Result<SubscriptionItem<K::Item>, ibapi::Error>),
        state: &StateWriter,
    ) -> Result<bool, KeyedError> {
        let mut latest: BTreeMap<K::Key, K::Row> = BTreeMap::new();
        let mut gone: Vec<K::Key> = Vec::new();
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
                    // A value from earlier in this batch, or in the set being collected, is no
                    // longer followed either.
                    latest.remove(&key);
                    self.first.remove(&key);
                    self.refused.insert(key.clone());
                    gone.push(key);
                }
            }
            n += 1;
            if n < BATCH {
                next = self.subs.next().now_or_never().flatten();
            }
        }
        state.metrics.upstream_updates(K::LABEL, latest.len());
        let dropped = !gone.is_empty();
        if self.collecting() {
            for (key, row) in latest {
                self.pending.remove(&key);
                self.first.insert(key, row);
            }
            self.finish_first_set(state, false);
        } else {
            K::hub(state).apply(latest.into_values().collect(), gone);
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use ibapi::prelude::Notice;

    use super::*;
    use crate::model::Freshness;

    fn keys(ks: &[i64]) -> BTreeSet<(String, i64)> {
        ks.iter().map(|k| ("DU1".to_owned(), *k)).collect()
    }

    fn key(k: i64) -> (String, i64) {
        ("DU1".to_owned(), k)
    }

    fn value(k: i64) -> ((String, i64), Result<SubscriptionItem<PnLSingle>, ibapi::Error>) {
        let item = PnLSingle { position: 10.0, daily_pnl: 1.0, unrealized_pnl: 2.0, realized_pnl: 0.0, value: 100.0 };
        (key(k), Ok(SubscriptionItem::Data(item)))
    }

    fn refusal(k: i64) -> ((String, i64), Result<SubscriptionItem<PnLSingle>, ibapi::Error>) {
        let notice = Notice {
            request_id: Some(7),
            code: 321,
            message: "Error validating request".into(),
            error_time: None,
            advanced_order_reject_json: String::new(),
        };
        (key(k), Err(ibapi::Error::Notice(notice)))
    }

    #[test]
    fn near_the_cap_existing_subscriptions_are_kept_and_new_keys_take_free_slots_only() {
        let none = BTreeSet::new();
        // 2 and 3 hold the two slots; 1 opens and sorts first, but takes no slot from them.
        let p = plan(&keys(&[2, 3]), &keys(&[1, 2, 3]), &none, 2);
        assert_eq!((p.gone, p.new, p.target, p.capped), (vec![], vec![], keys(&[2, 3]), 1));
        // 2 closes: its slot is free, and 1 takes it; 3 stays.
        let p = plan(&keys(&[2, 3]), &keys(&[1, 3]), &none, 2);
        assert_eq!((p.gone, p.new, p.target, p.capped), (vec![key(2)], vec![key(1)], keys(&[1, 3]), 0));
        // From nothing, the first keys in order.
        let p = plan(&BTreeSet::new(), &keys(&[5, 4, 6]), &none, 2);
        assert_eq!((p.new, p.capped), (vec![key(4), key(5)], 1));
    }

    #[test]
    fn a_refused_key_is_not_asked_again_while_it_stays_wanted() {
        let state = StateWriter::new("127.0.0.1:1", 1);
        let mut k = Keyed::<PositionPnl>::default();
        let p = k.replan(&state, &keys(&[1, 2]), 100, true);
        assert_eq!(p.new, vec![key(1), key(2)]);
        k.fold(refusal(1), &state).expect("one refusal does not end the session");
        // Another position changes: the held set is the same, and 1 is not requested again.
        let p = k.replan(&state, &keys(&[1, 2, 3]), 100, false);
        assert!(!p.new.contains(&key(1)), "a refused key is asked once: {p:?}");
        assert!(!p.target.contains(&key(1)), "and takes no slot");
        // Closed and reopened: a new position, asked once more.
        k.replan(&state, &keys(&[2, 3]), 100, false);
        let p = k.replan(&state, &keys(&[1, 2, 3]), 100, false);
        assert!(p.new.contains(&key(1)), "{p:?}");
    }

    #[test]
    fn a_refused_key_loses_its_row_and_frees_its_slot() {
        let state = StateWriter::new("127.0.0.1:1", 1);
        let mut k = Keyed::<PositionPnl>::default();
        k.replan(&state, &keys(&[1, 2]), 100, true);
        assert_eq!(k.fold(value(1), &state).ok(), Some(false));
        assert_eq!(k.fold(value(2), &state).ok(), Some(false));
        assert_eq!(state.position_pnl.snapshot().freshness, Freshness::Live);
        // IB refuses 1 after it has reported: its frozen value must not stay up as live.
        assert_eq!(k.fold(refusal(1), &state).ok(), Some(true), "a dropped subscription asks for a new plan");
        let snap = state.position_pnl.snapshot();
        assert_eq!(snap.rows.keys().cloned().collect::<BTreeSet<_>>(), keys(&[2]), "the refused key's row is gone");
    }

    #[test]
    fn a_key_closed_before_its_turn_does_not_hold_back_the_first_set() {
        let state = StateWriter::new("127.0.0.1:1", 1);
        let mut k = Keyed::<PositionPnl>::default();
        // A new set of three (after 1101): 1 and 2 report; 3 closes before it was subscribed.
        k.replan(&state, &keys(&[1, 2, 3]), 100, true);
        k.fold(value(1), &state).unwrap();
        k.fold(value(2), &state).unwrap();
        assert!(!matches!(state.position_pnl.snapshot().freshness, Freshness::Live), "3 has not reported");
        k.replan(&state, &keys(&[1, 2]), 100, false);
        let snap = state.position_pnl.snapshot();
        assert_eq!(snap.freshness, Freshness::Live, "every key still held has reported: published now");
        assert_eq!(snap.rows.keys().cloned().collect::<BTreeSet<_>>(), keys(&[1, 2]));
    }

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
