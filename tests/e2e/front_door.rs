//! The TWS front door: unmodified IB API programs read the shared session through it. Here the
//! real Rust `ibapi` client (protobuf at v226); raw-protocol checks are in `front_door_wire`,
//! and the Python clients (`ib_async`, IB's official client) run from `interop/`.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use ib_sim::{Fault, PriceTick};
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, AccountId, Client, ContractId, SubscriptionItem};

use crate::support::stack::{Stack, fast_settings, start_stack_with, with_front_door};
use crate::support::{eventually, patience};

const WITHIN: Duration = Duration::from_secs(10);

/// The stack with the front door on an ephemeral loopback port.
pub async fn start_front_door() -> (Stack, SocketAddr) {
    let stack = start_stack_with(with_front_door(fast_settings()), ib_sim::Scenario::default()).await;
    let addr = stack.demo.service.tws_api_addr.expect("the front door is on");
    (stack, addr)
}

async fn next<T: std::fmt::Debug>(
    sub: &mut (impl futures_util::Stream<Item = Result<SubscriptionItem<T>, ibapi::Error>> + Unpin),
) -> SubscriptionItem<T> {
    tokio::time::timeout(patience(WITHIN), sub.next()).await.expect("an item in time").expect("open").expect("decodes")
}

#[tokio::test]
async fn rust_ibapi_reads_the_shared_session_through_the_front_door() {
    let (stack, addr) = start_front_door().await;
    let sim = stack.sim();
    let upstream_positions = || sim.stats().requests.get("positions").copied().unwrap_or(0);
    let positions_before = upstream_positions();

    // Client id 1 is the id the service itself uses upstream: front-door ids are virtual.
    let client = tokio::time::timeout(patience(WITHIN), Client::connect(&addr.to_string(), 1))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(client.server_version(), 226);
    assert_eq!(client.handshake_managed_accounts(), ["DU1234567", "DU7654321"]);
    assert_eq!(client.managed_accounts().await.expect("accounts"), ["DU1234567", "DU7654321"]);
    let t = client.server_time().await.expect("server time");
    let ms = client.server_time_millis().await.expect("server time millis");
    assert!((ms - t).whole_seconds().abs() < 5);

    let mut positions = client.positions().await.expect("positions");
    let mut seen = Vec::new();
    loop {
        match next(&mut positions).await {
            SubscriptionItem::Data(PositionUpdate::Position(p)) => seen.push(p),
            SubscriptionItem::Data(PositionUpdate::PositionEnd) => break,
            SubscriptionItem::Notice(n) => panic!("unexpected notice {n:?}"),
        }
    }
    assert_eq!(seen.len(), sim.positions().len());
    let opt = seen.iter().find(|p| p.contract.contract_id == 720104601).expect("the option position");
    assert_eq!((opt.position, opt.contract.multiplier.as_str()), (-2.0, "100"));

    let tags = [AccountSummaryTags::NET_LIQUIDATION, AccountSummaryTags::BUYING_POWER, "$LEDGER"];
    let mut summary = client.account_summary(&AccountGroup("All".into()), &tags).await.expect("summary");
    let mut rows = Vec::new();
    loop {
        match next(&mut summary).await {
            SubscriptionItem::Data(AccountSummaryResult::Summary(s)) => rows.push(s),
            SubscriptionItem::Data(AccountSummaryResult::End) => break,
            SubscriptionItem::Notice(n) => panic!("unexpected notice {n:?}"),
        }
    }
    let net_liq: Vec<_> = rows.iter().filter(|r| r.tag == "NetLiquidation").map(|r| r.account.as_str()).collect();
    assert_eq!(net_liq, ["DU1234567", "DU7654321"]);
    assert!(rows.iter().any(|r| r.currency == "BASE"), "$LEDGER selects the BASE rows: {rows:?}");
    assert!(rows.iter().all(|r| r.tag != "TotalCashValue"), "only the asked tags: {rows:?}");

    // PnL is the simulator's truth, through a price move.
    let account = AccountId("DU1234567".into());
    let mut pnl = client.pnl(&account, None).await.expect("pnl");
    let mut single = client.pnl_single(&account, ContractId(265598), None).await.expect("pnl single");
    let SubscriptionItem::Data(p) = next(&mut pnl).await else { panic!("pnl data") };
    let truth = sim.pnl("DU1234567").expect("a scenario account");
    // The service keeps PnL as decimal strings (to the cent and beyond): equal to well within a cent.
    assert!((p.daily_pnl - truth.daily).abs() < 1e-6, "{p:?} vs {truth:?}");
    assert!((p.unrealized_pnl.unwrap_or(f64::NAN) - truth.unrealized).abs() < 1e-6, "{p:?} vs {truth:?}");
    let SubscriptionItem::Data(s) = next(&mut single).await else { panic!("pnl single data") };
    assert_eq!(s.position, 100.0);
    sim.set_prices(&[PriceTick { con_id: 265598, price: 191.0 }]).unwrap();
    let moved = sim.position_pnl("DU1234567", 265598).expect("held").daily;
    loop {
        if let SubscriptionItem::Data(s) = next(&mut single).await
            && (s.daily_pnl - moved).abs() < 1e-6
        {
            break;
        }
    }

    // N clients asking for positions cost no upstream request.
    let second = Client::connect(&addr.to_string(), 2).await.expect("second client");
    let mut more = second.positions().await.expect("positions");
    while !matches!(next(&mut more).await, SubscriptionItem::Data(PositionUpdate::PositionEnd)) {}
    assert_eq!(upstream_positions(), positions_before, "no new upstream reqPositions");

    // A duplicate among front-door clients gets 326, surfaced by ibapi as ClientIdInUse.
    let dup = tokio::time::timeout(patience(WITHIN), Client::connect(&addr.to_string(), 2)).await.expect("in time");
    assert!(matches!(dup, Err(ibapi::Error::ClientIdInUse { client_id: 2 })), "got {:?}", dup.err());

    // A gateway restart: the front-door connection survives it, and a change made after the
    // restart reaches the subscription opened before it.
    let epoch = stack.health().await.session_epoch;
    sim.inject(Fault::Restart { down_ms: 300 }).unwrap();
    eventually("a new upstream session", patience(WITHIN), || async {
        let h = stack.health().await;
        (h.session_epoch > epoch && h.state == gateway_proto::pb::SessionState::Ready as i32).then_some(())
    })
    .await;
    let mut aapl = sim.positions().into_iter().find(|p| p.con_id == 265598 && p.account == "DU1234567").unwrap();
    aapl.quantity = "123".into();
    sim.upsert_positions(vec![aapl]).unwrap();
    loop {
        match next(&mut positions).await {
            SubscriptionItem::Data(PositionUpdate::Position(p)) if p.position == 123.0 => break,
            // 1100 and 1102 come as notices; any earlier rows are the resent state.
            _ => {}
        }
    }
    let after: Vec<String> = client.managed_accounts().await.expect("accounts after the restart");
    assert_eq!(after, ["DU1234567", "DU7654321"]);

    drop((positions, summary, pnl, single, more));
    client.disconnect().await;
    second.disconnect().await;
    stack.stop_and_check().await;
}
