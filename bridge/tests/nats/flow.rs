//! The normal flow: the first publication, deltas, removals, health, the status entries, the
//! message ids, and the server-side guarantees the bridge relies on (deduplication by id, the
//! expected last subject sequence).

use std::time::Duration;

use ibgw_bridge::model::{ChangeKind, FreshnessState, Position};

use crate::support::{Chain, Nats, bucket_positions, check_stream, eventually, last_stream_seq, on_subject, statuses};

const A: &str = "DU1234567";
const B: &str = "DU7654321";

#[tokio::test]
async fn first_publication_then_deltas_and_removals() {
    let chain = Chain::start().await;
    let js = chain.nats.js().await;
    let all = check_stream(&js).await;
    // One RESYNC per account and kind to start with; health follows.
    for subject in [format!("ibgw.v1.positions.{A}"), format!("ibgw.v1.positions.{B}"), format!("ibgw.v1.summary.{A}")]
    {
        let first = on_subject(&all, &subject, 0);
        assert!(!first.is_empty(), "{subject} published");
        assert_eq!(first[0].json["kind"], "RESYNC");
        assert_eq!(first[0].json["freshness"]["state"], "LIVE");
    }
    assert!(all.iter().any(|m| m.subject == "ibgw.v1.health"), "health published");
    let status = statuses(&js).await.unwrap();
    assert_eq!(status[&format!("positions.{A}")].rows, 4);

    // A change, a new position and a closed one: each exactly one DELTA on its own subject.
    let before = last_stream_seq(&js).await;
    chain.set_quantity(A, 265598, "150");
    chain.wait_truth(A, 265598, Some("150")).await;
    chain.set_quantity(B, 76792991, "0");
    chain.wait_truth(B, 76792991, None).await;
    chain.wait_converged("after a change and a close").await;
    let all = check_stream(&js).await;
    let on_a = on_subject(&all, &format!("ibgw.v1.positions.{A}"), before);
    assert_eq!(on_a.len(), 1, "{on_a:?}");
    assert_eq!(on_a[0].json["kind"], "DELTA");
    assert_eq!(on_a[0].json["upserts"][0]["quantity"], "150");
    let on_b = on_subject(&all, &format!("ibgw.v1.positions.{B}"), before);
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    assert_eq!(on_b[0].json["removals"][0]["con_id"], 76792991);
    let kv = bucket_positions(&js).await.unwrap();
    assert!(!kv.contains_key(&(B.to_owned(), 76792991)), "a closed position is deleted from the bucket");
    // The status entry points at the subject's last message.
    let status = statuses(&js).await.unwrap();
    let s = &status[&format!("positions.{B}")];
    assert_eq!((s.stream_seq, s.seq, s.rows), (on_b[0].stream_seq, on_b[0].json["seq"].as_u64().unwrap(), 1));
    assert_eq!(s.freshness.state, FreshnessState::Live);

    // The heartbeat and readiness.
    let bridge = chain.bridge.as_ref().unwrap();
    eventually("/readyz", Duration::from_secs(5), || async { bridge.readiness.ready().then_some(()) }).await;
    let metrics = bridge.metrics.render();
    assert!(metrics.contains("ibgw_bridge_published_total{data=\"positions\",kind=\"DELTA\"} 2"), "{metrics}");
    let store = js.get_key_value("ibgw-status").await.unwrap();
    let beat: serde_json::Value = serde_json::from_slice(&store.get("bridge").await.unwrap().unwrap()).unwrap();
    assert_eq!(beat["running"], true);
    chain.finish().await;
}

#[tokio::test]
async fn the_server_stores_a_change_once_and_refuses_a_stale_writer() {
    crate::support::init_tracing();
    let nats = Nats::start().await;
    let settings = crate::support::bridge_settings("127.0.0.1:1".parse().unwrap(), &nats);
    let jet = ibgw_bridge::jet::Jet::connect(&settings.nats, &settings.jetstream).await.unwrap();
    eventually("connected", Duration::from_secs(5), || async { jet.connected().then_some(()) }).await;
    jet.ensure().await.unwrap();
    let change = ibgw_bridge::model::Change::<Position> {
        data: "positions".into(),
        account: A.into(),
        kind: ChangeKind::Freshness,
        seq: 1,
        session_epoch: 1,
        state_version: 1,
        as_of: String::new(),
        freshness: ibgw_bridge::model::Freshness { state: FreshnessState::Live, since: None, reason: String::new() },
        upserts: Vec::new(),
        removals: Vec::new(),
        more: false,
    };
    let subject = jet.subject("positions", Some(A));
    let payload = bytes::Bytes::from(serde_json::to_vec(&change).unwrap());
    let id = change.message_id();
    let (seq, dup) = jet.publish(subject.clone(), &id, 0, payload.clone()).await.unwrap();
    assert!(!dup);
    // Published again (a retry, a restarted bridge): the same id, stored once.
    let (again, dup) = jet.publish(subject.clone(), &id, 0, payload.clone()).await.unwrap();
    assert!(dup, "deduplicated by Nats-Msg-Id");
    assert_eq!(again, seq);
    // A different message from a writer that missed the first one is refused.
    let other = ibgw_bridge::model::Change { state_version: 2, ..change };
    let err = jet.publish(subject, &other.message_id(), 0, payload).await.unwrap_err();
    assert!(matches!(err, ibgw_bridge::jet::NatsError::Conflict { .. }), "{err}");
    assert_eq!(last_stream_seq(&nats.js().await).await, seq);
}

#[tokio::test]
async fn pnl_is_bridged_like_the_other_row_kinds() {
    use gateway_proto::pb;
    use ibgw_bridge::model::{AccountPnl, PositionPnl};
    let chain = Chain::start().await;
    let js = chain.nats.js().await;
    let truth = || async {
        let mut c = chain.client.clone();
        let a = c.get_account_pnl(pb::GetAccountPnlRequest::default()).await.ok()?.into_inner();
        let p = c.get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok()?.into_inner();
        let a: Vec<(String, String)> = a.accounts.into_iter().map(|r| (r.account, r.daily_pnl)).collect();
        let p: Vec<((String, i64), String)> =
            p.positions.into_iter().map(|r| ((r.account, r.con_id), r.market_value)).collect();
        Some((a, p))
    };
    let in_buckets = || async {
        let a: Vec<AccountPnl> = crate::support::bucket(&js, "ibgw-account-pnl").await?;
        let p: Vec<PositionPnl> = crate::support::bucket(&js, "ibgw-position-pnl").await?;
        let mut a: Vec<(String, String)> = a.into_iter().map(|r| (r.account, r.daily_pnl)).collect();
        let mut p: Vec<((String, i64), String)> =
            p.into_iter().map(|r| ((r.account, r.con_id), r.market_value)).collect();
        a.sort();
        p.sort();
        Some((a, p))
    };
    let converged = |what: &'static str| async move {
        eventually(what, Duration::from_secs(20), || async {
            let t = truth().await?;
            (!t.1.is_empty() && Some(&t) == in_buckets().await.as_ref()).then_some(())
        })
        .await;
    };
    converged("PnL buckets equal gateway-svc's PnL").await;
    let all = check_stream(&js).await;
    let first = on_subject(&all, &format!("ibgw.v1.position_pnl.{A}"), 0);
    assert_eq!(first[0].json["kind"], "RESYNC", "{first:?}");
    // A closed position loses its PnL row, in the bucket too.
    chain.set_quantity(B, 76792991, "0");
    chain.wait_truth(B, 76792991, None).await;
    eventually("the closed position's PnL row gone", Duration::from_secs(20), || async {
        let t = truth().await?;
        (!t.1.iter().any(|(k, _)| k == &(B.to_owned(), 76792991)) && Some(&t) == in_buckets().await.as_ref())
            .then_some(())
    })
    .await;
    check_stream(&js).await;
    chain.finish().await;
}
