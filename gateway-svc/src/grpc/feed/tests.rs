//! Stream semantics straight against a hub: what each subscriber is sent, and that streams
//! without a filter share one encoding.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_proto::pb;
use prost::Message;

use super::*;
use crate::grpc::PositionFilter;
use crate::model::PositionRow;

fn row(symbol: &str, con_id: i64, quantity: &str) -> PositionRow {
    PositionRow {
        account: "DU1".into(),
        con_id,
        symbol: symbol.into(),
        sec_type: "STK".into(),
        exchange: "SMART".into(),
        currency: "USD".into(),
        quantity: quantity.into(),
        avg_cost: "100".into(),
        local_symbol: symbol.into(),
        expiry: String::new(),
        strike: String::new(),
        right: String::new(),
        multiplier: String::new(),
    }
}

fn rows(list: &[PositionRow]) -> BTreeMap<(String, i64), PositionRow> {
    list.iter().map(|r| (r.key(), r.clone())).collect()
}

fn open(writer: &crate::state::StateWriter, symbols: &[&str]) -> WireStream<Encoded> {
    let state = &writer.reader();
    let f = PositionFilter::new(&[], &symbols.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("valid");
    let filter: Filter<PositionRow> = if f.is_all() { None } else { Some(Box::new(move |p| f.matches(p))) };
    let current = Arc::clone(state);
    let slot = state.try_subscribe(100).expect("a slot");
    stream(
        &state.positions,
        filter,
        move || current.positions.snapshot(),
        crate::kind::DataKind::Positions,
        CancellationToken::new(),
        slot,
    )
}

async fn raw(s: &mut WireStream<Encoded>) -> Encoded {
    match tokio::time::timeout(crate::testing::patience(Duration::from_secs(5)), s.next()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn next(s: &mut WireStream<Encoded>) -> pb::WatchPositionsResponse {
    pb::WatchPositionsResponse::decode(raw(s).await.to_bytes()).expect("a valid WatchPositionsResponse")
}

fn symbols(list: &[pb::Position]) -> Vec<(String, String)> {
    list.iter().map(|p| (p.symbol.clone(), p.quantity.clone())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(s, q)| ((*s).to_owned(), (*q).to_owned())).collect()
}

#[tokio::test]
async fn streams_without_a_filter_share_one_encoding_per_change() {
    let state = crate::state::StateWriter::new("test", 1);
    state.positions.resync(1, rows(&[row("AAPL", 1, "10"), row("MSFT", 2, "5")]));
    let (mut a, mut b) = (open(&state, &[]), open(&state, &[]));
    let (a1, b1) = (raw(&mut a).await, raw(&mut b).await);
    assert!(a1.shares_body_with(&b1), "the opening snapshot is encoded once");

    state.positions.apply(vec![row("AAPL", 1, "11")], Vec::new());
    let (a2, b2) = (raw(&mut a).await, raw(&mut b).await);
    assert!(a2.shares_body_with(&b2), "the delta is encoded once");

    let d = pb::WatchPositionsResponse::decode(b2.to_bytes()).expect("decodes");
    assert_eq!(d.kind, pb::UpdateKind::Delta as i32);
    assert_eq!(d.seq, 2, "each stream appends its own seq");
    assert_eq!(symbols(&d.upserts), pairs(&[("AAPL", "11")]));
    assert_eq!(d.state_version, state.positions.snapshot().version);
    let s = pb::WatchPositionsResponse::decode(a1.to_bytes()).expect("decodes");
    assert_eq!((s.kind, s.seq, s.items.len()), (pb::UpdateKind::Snapshot as i32, 1, 2));
}

#[tokio::test]
async fn a_stream_behind_the_hub_derives_the_states_it_missed() {
    let state = crate::state::StateWriter::new("test", 1);
    state.positions.resync(1, rows(&[row("AAPL", 1, "10"), row("MSFT", 2, "5")]));
    let mut s = open(&state, &[]);
    assert_eq!(next(&mut s).await.items.len(), 2);
    // Publish three changes before the stream reads any of them.
    let (_, mut spy) = state.reader().positions.subscribe();
    state.positions.apply(vec![row("AAPL", 1, "11")], Vec::new());
    state.positions.apply(Vec::new(), vec![("DU1".to_owned(), 2)]);
    state.positions.resync(2, rows(&[row("AAPL", 1, "11"), row("TSLA", 3, "1")]));
    // Nobody holds the first two states any more: the stream has to derive them itself.
    for _ in 0..2 {
        let change = spy.try_recv().expect("a change");
        assert!(change.state.upgrade().is_none(), "state {} is gone", change.version);
    }

    let d1 = next(&mut s).await;
    assert_eq!((d1.kind, symbols(&d1.upserts)), (pb::UpdateKind::Delta as i32, pairs(&[("AAPL", "11")])));
    let d2 = next(&mut s).await;
    assert_eq!(d2.kind, pb::UpdateKind::Delta as i32);
    assert_eq!(d2.removals, vec![pb::PositionKey { account: "DU1".into(), con_id: 2 }]);
    let r = next(&mut s).await;
    assert_eq!(r.kind, pb::UpdateKind::Resync as i32);
    assert_eq!(symbols(&r.items), pairs(&[("AAPL", "11"), ("TSLA", "1")]));
    assert_eq!(symbols(&r.upserts), pairs(&[("TSLA", "1")]));
    assert!(r.removals.is_empty());
    assert_eq!((r.session_epoch, r.seq, r.state_version), (2, 4, state.positions.snapshot().version));
}

#[tokio::test]
async fn a_filtered_stream_sees_only_its_rows_and_their_removals() {
    let state = crate::state::StateWriter::new("test", 1);
    state.positions.resync(1, rows(&[row("AAPL", 1, "10"), row("MSFT", 2, "5")]));
    let mut s = open(&state, &["aapl"]);
    let first = next(&mut s).await;
    assert_eq!(symbols(&first.items), pairs(&[("AAPL", "10")]));

    // Changes to other rows send nothing: the next message is AAPL's, and seq has no gap.
    state.positions.apply(vec![row("MSFT", 2, "6")], Vec::new());
    state.positions.apply(Vec::new(), vec![("DU1".to_owned(), 2)]);
    state.positions.apply(vec![row("AAPL", 1, "12")], Vec::new());
    let d = next(&mut s).await;
    assert_eq!((d.seq, symbols(&d.upserts)), (2, pairs(&[("AAPL", "12")])));
    assert!(d.removals.is_empty());

    state.positions.apply(Vec::new(), vec![("DU1".to_owned(), 1)]);
    let gone = next(&mut s).await;
    assert_eq!(gone.removals, vec![pb::PositionKey { account: "DU1".into(), con_id: 1 }]);
}

#[tokio::test]
async fn a_lagging_stream_gets_a_resync_with_exactly_what_it_missed() {
    let state = crate::state::StateWriter::new("test", 1);
    state.positions.resync(1, rows(&[row("AAPL", 1, "10"), row("MSFT", 2, "5"), row("TSLA", 3, "1")]));
    let mut s = open(&state, &[]);
    next(&mut s).await;
    for q in 0..crate::hub::CHANGE_CAPACITY + 10 {
        state.positions.apply(vec![row("AAPL", 1, &q.to_string())], Vec::new());
    }
    state.positions.apply(vec![row("NVDA", 4, "7")], vec![("DU1".to_owned(), 3)]);

    let r = next(&mut s).await;
    let last = (crate::hub::CHANGE_CAPACITY + 9).to_string();
    assert_eq!(r.kind, pb::UpdateKind::Resync as i32);
    assert_eq!(r.seq, 2);
    assert_eq!(symbols(&r.items), pairs(&[("AAPL", &last), ("MSFT", "5"), ("NVDA", "7")]));
    assert_eq!(symbols(&r.upserts), pairs(&[("AAPL", &last), ("NVDA", "7")]));
    assert_eq!(r.removals, vec![pb::PositionKey { account: "DU1".into(), con_id: 3 }]);
}
