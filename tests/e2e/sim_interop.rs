//! Fidelity: the real Rust `ibapi` client (protobuf at v226) against the simulator. The Python
//! clients (`ib_async` over text, IB's official client over protobuf) are run by the test
//! command from `interop/`.

use std::time::Duration;

use futures_util::StreamExt;
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, AccountId, Client, SubscriptionItem};

use crate::support::{eventually, start_sim};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn rust_ibapi_reads_everything_over_protobuf() {
    let sim = start_sim().await;
    let addr = sim.api_addr().to_string();
    let client =
        tokio::time::timeout(WITHIN, Client::connect(&addr, 21)).await.expect("connect in time").expect("connect");
    assert_eq!(client.server_version(), 226);
    assert_eq!(client.handshake_managed_accounts(), ["DU1234567", "DU7654321"]);

    let accounts = client.managed_accounts().await.expect("managed accounts");
    assert_eq!(accounts, ["DU1234567", "DU7654321"]);
    let t = client.server_time().await.expect("server time");
    assert!(t.year() >= 2025, "server time {t}");
    let ms = client.server_time_millis().await.expect("server time millis");
    assert!((ms - t).whole_seconds().abs() < 5);

    let mut positions = client.positions().await.expect("positions");
    let mut seen = Vec::new();
    while let Some(item) = tokio::time::timeout(WITHIN, positions.next()).await.expect("positions in time") {
        match item.expect("position decodes") {
            SubscriptionItem::Data(PositionUpdate::Position(p)) => seen.push(p),
            SubscriptionItem::Data(PositionUpdate::PositionEnd) => break,
            SubscriptionItem::Notice(n) => panic!("unexpected notice {n:?}"),
        }
    }
    assert_eq!(seen.len(), sim.positions().len());
    let opt = seen.iter().find(|p| p.contract.contract_id == 720104601).expect("the option position");
    assert_eq!(opt.position, -2.0);
    assert_eq!(opt.contract.multiplier, "100");

    // A live update after the snapshot.
    let mut aapl = sim.positions().into_iter().find(|p| p.con_id == 265598 && p.account == "DU1234567").unwrap();
    aapl.quantity = "123".into();
    sim.upsert_positions(vec![aapl]).unwrap();
    let update = tokio::time::timeout(WITHIN, positions.next()).await.expect("update in time").unwrap().unwrap();
    assert!(matches!(update, SubscriptionItem::Data(PositionUpdate::Position(p)) if p.position == 123.0));

    let tags = [
        AccountSummaryTags::NET_LIQUIDATION,
        AccountSummaryTags::TOTAL_CASH_VALUE,
        AccountSummaryTags::BUYING_POWER,
        AccountSummaryTags::AVAILABLE_FUNDS,
        AccountSummaryTags::EXCESS_LIQUIDITY,
    ];
    let mut summary = client.account_summary(&AccountGroup("All".into()), &tags).await.expect("summary");
    let mut rows = Vec::new();
    while let Some(item) = tokio::time::timeout(WITHIN, summary.next()).await.expect("summary in time") {
        match item.expect("summary decodes") {
            SubscriptionItem::Data(AccountSummaryResult::Summary(s)) => rows.push(s),
            SubscriptionItem::Data(AccountSummaryResult::End) => break,
            SubscriptionItem::Notice(n) => panic!("unexpected notice {n:?}"),
        }
    }
    assert_eq!(rows.len(), 10, "5 tags × 2 accounts: {rows:?}");

    let mut pnl = client.pnl(&AccountId("DU1234567".into()), None).await.expect("pnl");
    let first = tokio::time::timeout(WITHIN, pnl.next()).await.expect("pnl in time").unwrap().unwrap();
    assert!(matches!(first, SubscriptionItem::Data(p) if (p.daily_pnl - 412.35).abs() < 1e-9));

    // Same client id from a second client: 326, surfaced by ibapi as ClientIdInUse.
    let dup = tokio::time::timeout(WITHIN, Client::connect(&addr, 21)).await.expect("dup in time");
    assert!(matches!(dup, Err(ibapi::Error::ClientIdInUse { client_id: 21 })), "got {:?}", dup.err());

    drop((positions, summary, pnl));
    client.disconnect().await;
    // The simulator saw the cancels go out and our side close first, cleanly.
    let stats = eventually("client connection closed", WITHIN, || async {
        let s = sim.stats();
        (s.open_now == 0).then_some(s)
    })
    .await;
    let ours = stats.closed.iter().find(|c| c.client_id == Some(21)).expect("closed record");
    assert_eq!(ours.closed_by, ib_sim::Closer::Client);
    assert!(ours.clean);
    assert_eq!(stats.order_messages, 0);
    assert_eq!(stats.rejected.get("duplicate_id"), Some(&1));
    for request in ["positions", "account_summary", "pnl", "current_time", "current_time_millis", "managed_accounts"] {
        assert!(stats.requests.contains_key(request), "{request} not counted: {:?}", stats.requests);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn rust_ibapi_is_refused_a_text_only_gateway() {
    let scenario = ib_sim::Scenario { server_version: 200, ..ib_sim::Scenario::default() };
    let sim = crate::support::start_sim_with(scenario).await;
    let r = tokio::time::timeout(WITHIN, Client::connect(&sim.api_addr().to_string(), 1)).await.expect("in time");
    // The client wants ≥ 213; a gateway capped at 200 cannot satisfy it.
    assert!(r.is_err());
    sim.shutdown().await;
}
