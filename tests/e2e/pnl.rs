//! PnL and valuations through gateway-svc: one upstream subscription per account and per held
//! position, shared by every client, following opens and closes, stale through outages.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_proto::pb;
use ib_sim::{Fault, Scenario};

use crate::support::eventually;
use crate::support::stack::{Stack, fast_settings, start_stack_with};

const WITHIN: Duration = Duration::from_secs(10);

fn scenario() -> Scenario {
    // PnL arrives on IB's cadence (about a second); a short one keeps the tests quick.
    Scenario { pnl_interval_ms: 50, ..Scenario::default() }
}

fn live(f: &Option<pb::Freshness>) -> bool {
    f.as_ref().is_some_and(|f| f.state == pb::FreshnessState::Live as i32)
}

async fn account_pnl(stack: &Stack) -> Option<pb::GetAccountPnlResponse> {
    stack.client.clone().get_account_pnl(pb::GetAccountPnlRequest::default()).await.ok().map(|r| r.into_inner())
}

async fn position_pnl(stack: &Stack) -> Option<pb::GetPositionPnlResponse> {
    stack.client.clone().get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok().map(|r| r.into_inner())
}

/// (account, con_id) → market value, as the simulator values its book.
fn book_values(stack: &Stack) -> BTreeMap<(String, i64), f64> {
    stack.sim().positions().into_iter().map(|p| ((p.account.clone(), i64::from(p.con_id)), p.market_value())).collect()
}

fn served_values(r: &pb::GetPositionPnlResponse) -> BTreeMap<(String, i64), f64> {
    r.positions
        .iter()
        .map(|p| ((p.account.clone(), p.con_id), p.market_value.parse::<f64>().unwrap_or(f64::NAN)))
        .collect()
}

fn close(a: &BTreeMap<(String, i64), f64>, b: &BTreeMap<(String, i64), f64>) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| (v - w).abs() < 1e-6))
}

#[tokio::test]
async fn every_account_and_position_has_live_pnl_and_value() {
    let stack = start_stack_with(fast_settings(), scenario()).await;
    let accounts = eventually("account PnL to be live", WITHIN, || async {
        account_pnl(&stack).await.filter(|r| live(&r.freshness) && r.accounts.len() == 2)
    })
    .await;
    assert!(accounts.accounts.iter().all(|a| a.currency == "BASE" && !a.daily_pnl.is_empty()), "{accounts:?}");
    let first = accounts.accounts.iter().find(|a| a.account == "DU1234567").unwrap();
    assert_eq!(first.daily_pnl, "412.35", "the simulator's daily PnL for the account");
    let positions = eventually("a value for every held position", WITHIN, || async {
        position_pnl(&stack).await.filter(|r| live(&r.freshness) && close(&served_values(r), &book_values(&stack)))
    })
    .await;
    let aapl = positions.positions.iter().find(|p| p.con_id == 265598).unwrap();
    assert_eq!(aapl.quantity, "100");
    assert_eq!(aapl.market_price, "189.5", "value / quantity");
    let option = positions.positions.iter().find(|p| p.con_id == 720104601).unwrap();
    let price: f64 = option.market_price.parse().unwrap();
    let value: f64 = option.market_value.parse().unwrap();
    let qty: f64 = option.quantity.parse().unwrap();
    assert!((price * qty * 100.0 - value).abs() < 1e-3, "an option's price excludes its multiplier: {option:?}");
    let stats = stack.sim().stats();
    assert_eq!(stats.peak_concurrent, 1, "one upstream socket for all of it");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn opened_and_closed_positions_gain_and_lose_their_pnl_row() {
    let stack = start_stack_with(fast_settings(), scenario()).await;
    eventually("position PnL to be live", WITHIN, || async {
        position_pnl(&stack).await.filter(|r| live(&r.freshness) && close(&served_values(r), &book_values(&stack)))
    })
    .await;
    let mut s =
        stack.client.clone().watch_position_pnl(pb::WatchPositionPnlRequest::default()).await.unwrap().into_inner();
    let snapshot = s.message().await.unwrap().unwrap();
    assert_eq!(snapshot.kind(), pb::UpdateKind::Snapshot);
    // Close MSFT, open a new contract.
    let mut msft = stack.sim().positions().into_iter().find(|p| p.symbol == "MSFT").unwrap();
    msft.quantity = "0".into();
    let mut fresh = stack.sim().positions().into_iter().find(|p| p.symbol == "AAPL" && p.sec_type == "STK").unwrap();
    fresh.con_id = 9001;
    fresh.symbol = "ZZA".into();
    fresh.quantity = "10".into();
    stack.sim().upsert_positions(vec![msft.clone(), fresh.clone()]).unwrap();
    let mut removed = false;
    let mut added = false;
    let deadline = tokio::time::Instant::now() + crate::support::patience(WITHIN);
    while !(removed && added) {
        let m = tokio::time::timeout_at(deadline, s.message()).await.expect("in time").unwrap().unwrap();
        removed |= m.removals.iter().any(|k| k.con_id == i64::from(msft.con_id));
        added |= m.upserts.iter().chain(&m.items).any(|p| p.con_id == 9001);
    }
    let now = position_pnl(&stack).await.unwrap();
    assert!(close(&served_values(&now), &book_values(&stack)), "{now:?}");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn pnl_goes_stale_through_a_restart_and_live_again_on_the_new_session() {
    let stack = start_stack_with(fast_settings(), scenario()).await;
    eventually("account PnL live", WITHIN, || async { account_pnl(&stack).await.filter(|r| live(&r.freshness)) }).await;
    stack.sim().inject(Fault::Restart { down_ms: 300 }).unwrap();
    let stale = eventually("account PnL stale, rows kept", WITHIN, || async {
        account_pnl(&stack).await.filter(|r| !live(&r.freshness))
    })
    .await;
    assert_eq!(stale.accounts.len(), 2, "stale, never emptied");
    let back = eventually("account PnL live on epoch 2", WITHIN, || async {
        account_pnl(&stack).await.filter(|r| live(&r.freshness) && r.session_epoch >= 2)
    })
    .await;
    assert_eq!(back.accounts.len(), 2);
    stack.stop_and_check().await;
}
