//! Each fault ends with the buckets equal to gateway-svc's state, every subject LIVE, and a
//! stream whose per-subject `seq` has no gap or repeat (check_stream). What changed while a piece
//! was down arrives as one RESYNC; what changed while everything was up, as one DELTA.

use std::time::Duration;

use ib_sim::Fault;

use crate::support::{Chain, Stored, check_stream, eventually, last_stream_seq, on_subject, statuses};

const A: &str = "DU1234567";
const B: &str = "DU7654321";

fn kinds(messages: &[&Stored]) -> Vec<String> {
    messages.iter().map(|m| m.json["kind"].as_str().unwrap_or("?").to_owned()).collect()
}

/// Waits until every row subject's status says `state`.
async fn wait_statuses(chain: &Chain, state: &str, reason_part: &str) {
    let js = chain.nats.js().await;
    eventually(&format!("every subject {state} ({reason_part})"), Duration::from_secs(10), || {
        let js = js.clone();
        async move {
            let s = statuses(&js).await?;
            s.values()
                .all(|s| {
                    serde_json::to_value(&s.freshness).ok().is_some_and(|f| {
                        f["state"] == state && f["reason"].as_str().unwrap_or("").contains(reason_part)
                    })
                })
                .then_some(())
        }
    })
    .await;
}

/// One change while everything is up: exactly one DELTA, on its subject only.
async fn one_live_change(chain: &Chain, qty: &str) {
    let js = chain.nats.js().await;
    let before = last_stream_seq(&js).await;
    chain.set_quantity(A, 272093, qty);
    chain.wait_truth(A, 272093, Some(qty)).await;
    chain.wait_converged("a live change").await;
    let all = check_stream(&js).await;
    let rows: Vec<&Stored> = on_subject(&all, &format!("ibgw.v1.positions.{A}"), before);
    assert_eq!(kinds(&rows), ["DELTA"], "{rows:?}");
    assert!(on_subject(&all, &format!("ibgw.v1.positions.{B}"), before).is_empty());
}

#[tokio::test]
async fn gateway_restart() {
    let chain = Chain::start().await;
    let js = chain.nats.js().await;
    let before = last_stream_seq(&js).await;
    chain.sim.inject(Fault::Restart { down_ms: 1_500 }).unwrap();
    wait_statuses(&chain, "STALE", "").await;
    // Changed while the gateway is down: gateway-svc's RESYNC brings it, so does the bridge's.
    chain.set_quantity(A, 265598, "101");
    chain.wait_truth(A, 265598, Some("101")).await;
    chain.wait_converged("after the gateway restart").await;
    let all = check_stream(&js).await;
    let on_a = on_subject(&all, &format!("ibgw.v1.positions.{A}"), before);
    assert_eq!(kinds(&on_a), ["FRESHNESS", "RESYNC"], "{on_a:?}");
    assert_eq!(on_a[0].json["freshness"]["state"], "STALE");
    assert_eq!(on_a[1].json["upserts"].as_array().unwrap().len(), 1, "exactly what changed");
    assert!(on_a[1].json["session_epoch"].as_u64() > on_a[0].json["session_epoch"].as_u64(), "a new epoch");
    let on_b = on_subject(&all, &format!("ibgw.v1.positions.{B}"), before);
    assert_eq!(kinds(&on_b), ["FRESHNESS", "FRESHNESS"], "stale, then live again: {on_b:?}");
    one_live_change(&chain, "41").await;
    chain.finish().await;
}

#[tokio::test]
async fn gateway_svc_restart() {
    let mut chain = Chain::start().await;
    let js = chain.nats.js().await;
    let before = last_stream_seq(&js).await;
    chain.stop_gateway_svc().await;
    wait_statuses(&chain, "STALE", "gateway-svc unreachable").await;
    chain.set_quantity(B, 265598, "12");
    chain.start_gateway_svc().await;
    chain.wait_truth(B, 265598, Some("12")).await;
    chain.wait_converged("after the gateway-svc restart").await;
    let all = check_stream(&js).await;
    let on_b = on_subject(&all, &format!("ibgw.v1.positions.{B}"), before);
    assert_eq!(kinds(&on_b), ["FRESHNESS", "RESYNC"], "{on_b:?}");
    assert!(on_b[0].json["freshness"]["reason"].as_str().unwrap().contains("gateway-svc unreachable"));
    // gateway-svc counts again from epoch 1 and version 1: the ids still differ (seq and content).
    let on_a = on_subject(&all, &format!("ibgw.v1.positions.{A}"), before);
    assert_eq!(kinds(&on_a), ["FRESHNESS", "FRESHNESS"], "{on_a:?}");
    one_live_change(&chain, "42").await;
    chain.finish().await;
}

#[tokio::test]
async fn nats_restart() {
    let mut chain = Chain::start().await;
    let js = chain.nats.js().await;
    let before = last_stream_seq(&js).await;
    drop(js);
    chain.nats.down().await;
    let jet = chain.bridge.as_ref().unwrap().jet.clone();
    eventually("the bridge to see NATS down", Duration::from_secs(5), || async { (!jet.connected()).then_some(()) })
        .await;
    // Changed while NATS is down: nothing can be written; it is reconciled when NATS is back.
    chain.set_quantity(A, 756733, "30");
    chain.wait_truth(A, 756733, Some("30")).await;
    chain.nats.up().await;
    chain.wait_converged("after the NATS restart").await;
    let js = chain.nats.js().await;
    let all = check_stream(&js).await;
    let on_a = on_subject(&all, &format!("ibgw.v1.positions.{A}"), before);
    assert_eq!(kinds(&on_a), ["RESYNC"], "{on_a:?}");
    assert_eq!(on_a[0].json["upserts"][0]["quantity"], "30");
    assert!(on_subject(&all, &format!("ibgw.v1.positions.{B}"), before).is_empty(), "nothing else changed");
    one_live_change(&chain, "43").await;
    chain.finish().await;
}

#[tokio::test]
async fn nats_restart_with_an_empty_store() {
    let mut chain = Chain::start().await;
    chain.nats.down().await;
    chain.nats.wipe();
    chain.nats.up().await;
    // Nothing changed at gateway-svc, yet everything is written again: the bridge checks NATS
    // against gateway-svc's state whenever the connection comes back.
    chain.wait_converged("after NATS lost its store").await;
    let js = chain.nats.js().await;
    let all = check_stream(&js).await;
    assert_eq!(kinds(&on_subject(&all, &format!("ibgw.v1.positions.{A}"), 0)), ["RESYNC"]);
    one_live_change(&chain, "44").await;
    chain.finish().await;
}

#[tokio::test]
async fn bridge_restart() {
    let mut chain = Chain::start().await;
    let js = chain.nats.js().await;
    let before = last_stream_seq(&js).await;
    chain.stop_bridge().await;
    let store = js.get_key_value("ibgw-status").await.unwrap();
    let beat: serde_json::Value = serde_json::from_slice(&store.get("bridge").await.unwrap().unwrap()).unwrap();
    assert_eq!(beat["running"], false, "a stopped bridge says so");
    // Changed while the bridge is down.
    chain.set_quantity(B, 76792991, "16");
    chain.wait_truth(B, 76792991, Some("16")).await;
    chain.start_bridge().await;
    chain.wait_converged("after the bridge restart").await;
    let all = check_stream(&js).await;
    let on_b = on_subject(&all, &format!("ibgw.v1.positions.{B}"), before);
    assert_eq!(kinds(&on_b), ["RESYNC"], "{on_b:?}");
    // Nothing changed for the other account: nothing republished, no duplicate.
    assert!(on_subject(&all, &format!("ibgw.v1.positions.{A}"), before).is_empty());
    assert!(on_subject(&all, &format!("ibgw.v1.summary.{A}"), before).is_empty());
    one_live_change(&chain, "45").await;
    chain.finish().await;
}

#[tokio::test]
async fn bridge_stopped_between_stream_and_bucket() {
    // A crash after the stream took a message and before the bucket did: the next start rebuilds
    // the published state from the bucket plus the subject's last message, repairs the bucket,
    // and publishes nothing twice.
    let mut chain = Chain::start().await;
    let js = chain.nats.js().await;
    chain.stop_bridge().await;
    let store = js.get_key_value("ibgw-positions").await.unwrap();
    let key = format!("{A}.265598");
    let row: serde_json::Value = serde_json::from_slice(&store.get(&key).await.unwrap().unwrap()).unwrap();
    // The bucket "missed" the last message for A: roll the row back by hand, after moving the
    // truth forward and publishing that change as the crashed bridge would have.
    chain.set_quantity(A, 265598, "777");
    chain.wait_truth(A, 265598, Some("777")).await;
    chain.start_bridge().await;
    chain.wait_converged("the change published").await;
    chain.stop_bridge().await;
    let before = last_stream_seq(&js).await;
    store.put(&key, serde_json::to_vec(&row).unwrap().into()).await.unwrap();
    chain.start_bridge().await;
    chain.wait_converged("the bucket repaired").await;
    let all = check_stream(&js).await;
    assert!(on_subject(&all, &format!("ibgw.v1.positions.{A}"), before).is_empty(), "nothing republished");
    chain.finish().await;
}

#[tokio::test]
async fn bucket_lost_while_the_stream_is_kept() {
    let mut chain = Chain::start().await;
    let js = chain.nats.js().await;
    chain.stop_bridge().await;
    let before = last_stream_seq(&js).await;
    js.delete_stream("KV_ibgw-positions").await.unwrap();
    chain.start_bridge().await;
    // Rebuilt from each subject's last message, the bucket is refilled; readers of the stream
    // get only what they would not have had otherwise.
    chain.wait_converged("the bucket recreated").await;
    let all = check_stream(&js).await;
    for m in on_subject(&all, &format!("ibgw.v1.positions.{B}"), before) {
        assert_eq!(m.json["kind"], "RESYNC", "{m:?}");
    }
    one_live_change(&chain, "46").await;
    chain.finish().await;
}
