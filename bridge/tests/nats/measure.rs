//! A small measurement, in the same run: one change from the simulator to a JetStream consumer
//! (through gateway-svc and the bridge) against the same change to a direct gRPC subscriber of
//! gateway-svc; then a 10,000-update burst converging in the bucket. Figures are printed
//! (`-- --nocapture`) and recorded in docs/NATS.md; only correctness is asserted.
//! `IBGW_BRIDGE_SAMPLES` sets the number of single changes (default 50).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures_util::StreamExt;
use gateway_proto::pb;
use ib_sim::Fault;

use crate::support::{Chain, bucket_positions, check_stream, eventually, patience};

const A: &str = "DU1234567";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::test]
async fn latency_and_burst() {
    let samples: usize = std::env::var("IBGW_BRIDGE_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let chain = Chain::start().await;
    let js = chain.nats.js().await;
    let subject = format!("ibgw.v1.positions.{A}");
    let stream = js.get_stream("IBGW").await.unwrap();
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: subject.clone(),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut from_nats = consumer.messages().await.unwrap();
    let request = pb::WatchPositionsRequest { accounts: vec![A.into()], symbols: vec![] };
    let mut from_grpc = chain.client.clone().watch_positions(request).await.unwrap().into_inner();
    from_grpc.message().await.unwrap().unwrap(); // the snapshot

    let within = patience(Duration::from_secs(10));
    let (mut grpc, mut nats) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let qty = (1_000 + i).to_string();
        let has =
            |rows: &[serde_json::Value]| rows.iter().any(|r| r["con_id"] == 265598 && r["quantity"] == qty.as_str());
        let t0 = Instant::now();
        chain.set_quantity(A, 265598, &qty);
        let g = tokio::time::timeout(within, async {
            loop {
                let m = from_grpc.message().await.unwrap().unwrap();
                if m.upserts.iter().chain(&m.items).any(|p| p.con_id == 265598 && p.quantity == qty) {
                    return t0.elapsed();
                }
            }
        });
        let n = tokio::time::timeout(within, async {
            loop {
                let m = from_nats.next().await.unwrap().unwrap();
                let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                if has(v["upserts"].as_array().map(Vec::as_slice).unwrap_or(&[])) {
                    return t0.elapsed();
                }
            }
        });
        let (g, n) = tokio::join!(g, n);
        grpc.push(g.expect("the gRPC subscriber sees the change"));
        nats.push(n.expect("the JetStream consumer sees the change"));
    }
    grpc.sort();
    nats.sort();
    println!(
        "one change, {samples} samples: direct gRPC p50 {} p99 {} | via bridge + JetStream p50 {} p99 {}",
        ms(percentile(&grpc, 0.5)),
        ms(percentile(&grpc, 0.99)),
        ms(percentile(&nats, 0.5)),
        ms(percentile(&nats, 0.99)),
    );

    // Unread, these would stall the test's own connections (HTTP/2 and NATS flow control).
    drop(from_grpc);
    drop(from_nats);
    let js = chain.nats.js().await;

    // 10,000 updates of one position as fast as the simulator sends them.
    let before = chain.truth_positions().await.unwrap()[&(A.to_owned(), 272093)].parse::<f64>().unwrap();
    let want = format!("{}", before as i64 + 10_000);
    let t0 = Instant::now();
    chain.sim.inject(Fault::Burst { count: 10_000, con_id: Some(272093), account: Some(A.into()) }).unwrap();
    let key = (A.to_owned(), 272093);
    chain.wait_truth(A, 272093, Some(&want)).await;
    let at_gateway = t0.elapsed();
    eventually("the burst's last value in the bucket", Duration::from_secs(30), || async {
        (bucket_positions(&js).await?.get(&key) == Some(&want)).then_some(())
    })
    .await;
    let in_bucket = t0.elapsed();
    chain.wait_converged("after the burst").await;
    let all = check_stream(&js).await;
    let burst_messages = all.iter().filter(|m| m.subject == subject).count() - samples - 1;
    println!(
        "10,000-update burst: gateway-svc has the last value after {}, the bucket after {} ({burst_messages} stream messages)",
        ms(at_gateway),
        ms(in_bucket),
    );
    chain.finish().await;
}
