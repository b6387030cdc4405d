//! Fidelity: the real Rust `ibapi` client (protobuf at v226) against the simulator. The Python
//! clients (`ib_async` over text, IB's official client over protobuf) are run by the test
//! command from `interop/`.

use std::time::Duration;

use futures_util::StreamExt;
use ib_sim::PriceTick;
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, AccountId, Client, ContractId, SubscriptionItem};

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

    // PnL over protobuf carries exactly the simulator's truth, before and after a price tick.
    let account = AccountId("DU1234567".into());
    let mut pnl = client.pnl(&account, None).await.expect("pnl");
    let mut single = client.pnl_single(&account, ContractId(265598), None).await.expect("pnl single");
    let pnl_now = || {
        let t = sim.pnl("DU1234567").expect("a scenario account");
        (t.daily, Some(t.unrealized), Some(t.realized))
    };
    let single_now = || {
        let t = sim.position_pnl("DU1234567", 265598).expect("a scenario account");
        (t.position.parse::<f64>().expect("a decimal"), t.daily, t.unrealized, t.realized, t.value)
    };
    for round in 0..2 {
        let item = tokio::time::timeout(WITHIN, pnl.next()).await.expect("pnl in time").unwrap().unwrap();
        let SubscriptionItem::Data(p) = item else { panic!("round {round}: {item:?}") };
        assert_eq!((p.daily_pnl, p.unrealized_pnl, p.realized_pnl), pnl_now(), "round {round}");
        let item = tokio::time::timeout(WITHIN, single.next()).await.expect("pnl single in time").unwrap().unwrap();
        let SubscriptionItem::Data(p) = item else { panic!("round {round}: {item:?}") };
        assert_eq!((p.position, p.daily_pnl, p.unrealized_pnl, p.realized_pnl, p.value), single_now(), "round {round}");
        if round == 0 {
            assert_eq!(p.daily_pnl, 0.0, "no move yet");
            assert_eq!(pnl_now().0, 412.35, "the scenario's daily PnL");
            sim.set_prices(&[PriceTick { con_id: 265598, price: 191.0 }]).unwrap();
        } else {
            assert_eq!(p.daily_pnl, 123.0 * 1.5, "123 shares up $1.50");
        }
    }

    // Same client id from a second client: 326, surfaced by ibapi as ClientIdInUse.
    let dup = tokio::time::timeout(WITHIN, Client::connect(&addr, 21)).await.expect("dup in time");
    assert!(matches!(dup, Err(ibapi::Error::ClientIdInUse { client_id: 21 })), "got {:?}", dup.err());

    drop((positions, summary, pnl, single));
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
    let requests = [
        "positions",
        "account_summary",
        "pnl",
        "pnl_single",
        "current_time",
        "current_time_millis",
        "managed_accounts",
    ];
    for request in requests {
        assert!(stats.requests.contains_key(request), "{request} not counted: {:?}", stats.requests);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn rust_ibapi_is_refused_a_text_only_gateway() {
    for server_version in [200, 212] {
        let scenario = ib_sim::Scenario { server_version, ..ib_sim::Scenario::default() };
        let sim = crate::support::start_sim_with(scenario).await;
        let r = tokio::time::timeout(WITHIN, Client::connect(&sim.api_addr().to_string(), 1)).await.expect("in time");
        // The client's minimum (213) is above the gateway's maximum: the gateway closes the
        // handshake without a reply, which ibapi reports like a Trusted-IPs refusal.
        match r {
            Err(ibapi::Error::ConnectionRejected(detail)) => {
                assert!(detail.contains("early eof"), "server {server_version}: {detail}");
            }
            other => panic!("server {server_version}: expected ConnectionRejected, got {:?}", other.err()),
        }
        let stats = eventually("the refusal recorded", WITHIN, || async {
            let s = sim.stats();
            (s.closed_total == 1).then_some(s)
        })
        .await;
        assert_eq!(stats.rejected.get("version"), Some(&1));
        assert_eq!(stats.handshakes_completed, 0);
        let closed = &stats.closed[0];
        assert_eq!((closed.closed_by, closed.client_id), (ib_sim::Closer::Server, None));
        assert_eq!(closed.reason, "no common version with client range 213..226");

        // Text clients are served: ib_async's range gets 178, a client that goes up to 200 gets 200.
        let (_text, frames) = crate::support::wire::WireClient::start(sim.api_addr(), 7).await;
        assert!(
            matches!(frames[0], tws_wire::Reply::ManagedAccounts(_)),
            "managedAccounts after START_API: {frames:?}"
        );
        let mut c = crate::support::wire::WireClient::connect(sim.api_addr()).await.unwrap();
        assert_eq!(c.hello("v100..200").await, crate::support::wire::Read::Hello(200));
        assert_eq!(sim.stats().rejected.get("version"), Some(&1));
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn rust_ibapi_all_tags_include_the_ledger_in_every_currency() {
    let sim = start_sim().await;
    let client =
        tokio::time::timeout(WITHIN, Client::connect(&sim.api_addr().to_string(), 22)).await.expect("in time").unwrap();
    assert!(AccountSummaryTags::ALL.contains(&"$LEDGER:ALL"));
    let mut summary = client.account_summary(&AccountGroup("All".into()), AccountSummaryTags::ALL).await.unwrap();
    let mut rows = Vec::new();
    while let Some(item) = tokio::time::timeout(WITHIN, summary.next()).await.expect("summary in time") {
        match item.expect("summary decodes") {
            SubscriptionItem::Data(AccountSummaryResult::Summary(s)) => rows.push(s),
            SubscriptionItem::Data(AccountSummaryResult::End) => break,
            SubscriptionItem::Notice(n) => panic!("unexpected notice {n:?}"),
        }
    }
    let mut cash: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| r.tag == "CashBalance")
        .map(|r| (r.account.as_str(), r.currency.as_str(), r.value.as_str()))
        .collect();
    cash.sort_unstable();
    assert_eq!(
        cash,
        [
            ("DU1234567", "BASE", "54155.30"),
            ("DU1234567", "EUR", "3800.00"),
            ("DU1234567", "USD", "50000.00"),
            ("DU7654321", "BASE", "15202.85"),
            ("DU7654321", "EUR", "1100.00"),
            ("DU7654321", "USD", "14000.00"),
        ]
    );
    // Every default account value is a summary tag, and $LEDGER:ALL adds every ledger row.
    assert_eq!(rows.len(), sim.account_values().len() + sim.ledger().len(), "{rows:?}");
    drop(summary);
    client.disconnect().await;
    sim.shutdown().await;
}
