//! The upstream data kinds. Each kind is one type that knows how to subscribe, what each item
//! means for its rows, and how to name itself; the generic functions below do the rest
//! (read the first snapshot, fold live batches, notice lag) for every kind alike. Adding a kind
//! is one new type here plus its hub and proto.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::{FutureExt, Stream, StreamExt};
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, Client, Notice, Subscription, SubscriptionItem};
use tracing::{debug, warn};

use crate::convert;
use crate::hub::HubWriter;
use crate::metrics::Metrics;
use crate::model::{PositionRow, Row, SummaryRow};
use crate::state::StateWriter;

/// Items pulled from one upstream stream per wake-up: a burst becomes one published delta.
const BATCH: usize = 512;

/// What one upstream item means for a kind's rows.
#[derive(Debug)]
pub(crate) enum Edit<R: Row> {
    /// The row is now this.
    Upsert(R),
    /// The row is gone.
    Remove(R::Key),
    /// The first snapshot is complete.
    End,
}

/// One upstream data kind.
pub(crate) trait Kind {
    /// What the subscription yields.
    type Item;
    /// The crate's subscription type (its decoder trait is private, so it is named per kind).
    type Sub: Stream<Item = Result<SubscriptionItem<Self::Item>, ibapi::Error>> + Unpin + Send;
    /// The rows it keeps.
    type Row: crate::state::Kind;
    /// Metric label and log name: the row's kind's.
    const LABEL: &'static str = <Self::Row as crate::state::Kind>::KIND.label();
    /// Its hub's writer: the row's kind's.
    fn hub(state: &StateWriter) -> &HubWriter<Self::Row> {
        <Self::Row as crate::state::Kind>::writer(state)
    }
    /// Opens the one upstream subscription for this kind.
    fn subscribe(client: &Client) -> impl Future<Output = Result<Self::Sub, ibapi::Error>> + Send;
    /// Cancels it (awaited, so the gateway sees the cancel before any new request).
    fn cancel(sub: &Self::Sub) -> impl Future<Output = ()> + Send;
    /// What `item` means.
    fn edit(item: &Self::Item) -> Edit<Self::Row>;
}

/// Positions: `reqPositions` for every account.
#[derive(Debug)]
pub(crate) struct Positions;

impl Kind for Positions {
    type Item = PositionUpdate;
    type Sub = Subscription<PositionUpdate>;
    type Row = PositionRow;

    async fn subscribe(client: &Client) -> Result<Self::Sub, ibapi::Error> {
        client.positions().await
    }

    async fn cancel(sub: &Self::Sub) {
        sub.cancel().await;
    }

    fn edit(item: &PositionUpdate) -> Edit<PositionRow> {
        match item {
            // A zero quantity is how IB says a position closed.
            PositionUpdate::Position(p) if p.position == 0.0 => Edit::Remove(convert::position_row(p).key()),
            PositionUpdate::Position(p) => Edit::Upsert(convert::position_row(p)),
            PositionUpdate::PositionEnd => Edit::End,
        }
    }
}

/// The account summary: `reqAccountSummary` for group `All` with every tag, ledger rows
/// included (`$LEDGER:ALL`: every currency and `BASE`). One subscription covers every
/// account; IB allows two per client, so one is kept free.
#[derive(Debug)]
pub(crate) struct Summary;

impl Kind for Summary {
    type Item = AccountSummaryResult;
    type Sub = Subscription<AccountSummaryResult>;
    type Row = SummaryRow;

    async fn subscribe(client: &Client) -> Result<Self::Sub, ibapi::Error> {
        client.account_summary(&AccountGroup("All".into()), AccountSummaryTags::ALL).await
    }

    async fn cancel(sub: &Self::Sub) {
        sub.cancel().await;
    }

    fn edit(item: &AccountSummaryResult) -> Edit<SummaryRow> {
        match item {
            AccountSummaryResult::Summary(s) => Edit::Upsert(convert::summary_row(s)),
            AccountSummaryResult::End => Edit::End,
        }
    }
}

/// Why reading a subscription stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream failed or closed: the session is gone.
    Closed(String),
    /// The crate dropped frames for this subscription: what they said is unknown.
    Lagged,
}

/// Whether a notice on a data subscription says frames were dropped (we read too slowly for a
/// burst). The rows they carried are unknown, so the kind must be resubscribed and reconciled,
/// never carried on with as if nothing happened.
fn lagged(n: &Notice, kind: &'static str, metrics: &Metrics) -> bool {
    if n.code == ibapi::SUBSCRIPTION_LAG_CODE {
        warn!(kind, message = %n.message, "upstream subscription lagged; resubscribing to reconcile");
        metrics.upstream_lag(kind);
        true
    } else {
        debug!(kind, code = n.code, message = %n.message, "subscription notice");
        false
    }
}

/// Subscribes and reads the first full snapshot up to its end marker. When frames were dropped
/// during the read the snapshot would be incomplete, so it is requested again, never published.
/// A burst ends, so it is retried until `until`; a buffer too small for the snapshot itself
/// then gives up with [`ReadError::Lagged`].
pub(crate) async fn open<K: Kind>(
    client: &Client,
    metrics: &Metrics,
    until: tokio::time::Instant,
) -> Result<(K::Sub, BTreeMap<<K::Row as Row>::Key, K::Row>), ReadError> {
    loop {
        let mut sub = K::subscribe(client).await.map_err(|e| ReadError::Closed(format!("{}: {e}", K::LABEL)))?;
        match read_snapshot::<K>(&mut sub, metrics).await {
            Ok(rows) => return Ok((sub, rows)),
            Err(ReadError::Lagged) if tokio::time::Instant::now() < until => K::cancel(&sub).await,
            Err(e) => {
                K::cancel(&sub).await;
                return Err(e);
            }
        }
    }
}

async fn read_snapshot<K: Kind>(
    sub: &mut K::Sub,
    metrics: &Metrics,
) -> Result<BTreeMap<<K::Row as Row>::Key, K::Row>, ReadError> {
    let mut rows = BTreeMap::new();
    loop {
        match sub.next().await {
            Some(Ok(SubscriptionItem::Data(item))) => match K::edit(&item) {
                Edit::Upsert(row) => {
                    rows.insert(row.key(), row);
                }
                Edit::Remove(key) => {
                    rows.remove(&key);
                }
                Edit::End => return Ok(rows),
            },
            Some(Ok(SubscriptionItem::Notice(n))) if lagged(&n, K::LABEL, metrics) => return Err(ReadError::Lagged),
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            Some(Err(e)) => return Err(ReadError::Closed(format!("{}: {e}", K::LABEL))),
            None => return Err(ReadError::Closed(format!("{} stream closed during sync", K::LABEL))),
        }
    }
}

/// Folds `first` and whatever else is already buffered (up to [`BATCH`] items) into one change
/// and applies it to the kind's hub. Items are folded in arrival order, so a position closed and
/// reopened within one batch (100 → 0 → 50) ends as 50, and one opened and closed ends removed.
/// A lag notice is reported after the batch is applied: the caller resubscribes to reconcile.
/// Returns whether the set of keys changed (a row appeared or went away), which is what the
/// per-key subscriptions that follow this kind (position PnL) depend on: a batch that only
/// changes values costs them nothing, however large the book.
pub(crate) fn fold<K: Kind>(
    first: Option<Result<SubscriptionItem<K::Item>, ibapi::Error>>,
    sub: &mut K::Sub,
    state: &StateWriter,
) -> Result<bool, ReadError> {
    let mut latest: BTreeMap<<K::Row as Row>::Key, Option<K::Row>> = BTreeMap::new();
    let mut lag = false;
    let mut next = Some(first);
    let mut n = 0;
    while let Some(item) = next.take() {
        match item {
            Some(Ok(SubscriptionItem::Data(item))) => match K::edit(&item) {
                Edit::Upsert(row) => {
                    latest.insert(row.key(), Some(row));
                }
                Edit::Remove(key) => {
                    latest.insert(key, None);
                }
                Edit::End => {}
            },
            Some(Ok(SubscriptionItem::Notice(notice))) => lag |= lagged(&notice, K::LABEL, &state.metrics),
            Some(Err(e)) => return Err(ReadError::Closed(format!("{} stream ended: {e}", K::LABEL))),
            None => return Err(ReadError::Closed(format!("{} stream closed", K::LABEL))),
        }
        n += 1;
        if n < BATCH {
            next = sub.next().now_or_never();
        }
    }
    state.metrics.upstream_updates(K::LABEL, latest.len());
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    for (key, row) in latest {
        match row {
            Some(row) => upserts.push(row),
            None => removals.push(key),
        }
    }
    let before = K::hub(state).snapshot();
    let keys_changed = upserts.iter().any(|r| !before.rows.contains_key(&r.key()))
        || removals.iter().any(|k| before.rows.contains_key(k));
    K::hub(state).apply(upserts, removals);
    if lag { Err(ReadError::Lagged) } else { Ok(keys_changed) }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A kind over a scripted stream, to test the fold without a gateway.
    struct Scripted;

    struct Script(VecDeque<Result<SubscriptionItem<(i64, i64)>, ibapi::Error>>);

    impl Stream for Script {
        type Item = Result<SubscriptionItem<(i64, i64)>, ibapi::Error>;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.0.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None => Poll::Pending,
            }
        }
    }

    impl Kind for Scripted {
        type Item = (i64, i64);
        type Sub = Script;
        type Row = PositionRow;
        async fn subscribe(_: &Client) -> Result<Script, ibapi::Error> {
            Ok(Script(VecDeque::new()))
        }
        async fn cancel(_: &Script) {}
        fn edit(&(con_id, qty): &(i64, i64)) -> Edit<PositionRow> {
            let row =
                PositionRow { account: "DU1".into(), con_id, quantity: qty.to_string(), ..PositionRow::default() };
            if qty == 0 { Edit::Remove(row.key()) } else { Edit::Upsert(row) }
        }
    }

    fn data(con_id: i64, qty: i64) -> Option<Result<SubscriptionItem<(i64, i64)>, ibapi::Error>> {
        Some(Ok(SubscriptionItem::Data((con_id, qty))))
    }

    fn quantities(state: &StateWriter) -> Vec<(i64, String)> {
        state.positions.snapshot().rows.values().map(|r| (r.con_id, r.quantity.clone())).collect()
    }

    #[test]
    fn a_position_closed_and_reopened_in_one_batch_stays_open() {
        let state = StateWriter::new("127.0.0.1:1", 1);
        state.positions.resync(1, BTreeMap::new());
        let rest = [data(1, 0), data(1, 50), data(2, 7), data(2, 0)];
        let mut sub = Script(rest.into_iter().flatten().collect());
        fold::<Scripted>(data(1, 100), &mut sub, &state).unwrap();
        assert_eq!(quantities(&state), vec![(1, "50".to_owned())], "reopened stays, opened-then-closed goes");
        let mut sub = Script([data(1, 0), data(1, 60), data(1, 0)].into_iter().flatten().collect());
        fold::<Scripted>(data(1, 70), &mut sub, &state).unwrap();
        assert!(quantities(&state).is_empty(), "the last word wins: closed");
    }

    #[test]
    fn a_batch_says_whether_the_held_keys_changed() {
        let state = StateWriter::new("127.0.0.1:1", 1);
        state.positions.resync(1, BTreeMap::new());
        let none = || Script(VecDeque::new());
        assert_eq!(fold::<Scripted>(data(1, 100), &mut none(), &state).ok(), Some(true), "a new position");
        assert_eq!(fold::<Scripted>(data(1, 120), &mut none(), &state).ok(), Some(false), "only its quantity");
        assert_eq!(fold::<Scripted>(data(1, 0), &mut none(), &state).ok(), Some(true), "closed");
        assert_eq!(fold::<Scripted>(data(2, 0), &mut none(), &state).ok(), Some(false), "closing what is not held");
    }
}
