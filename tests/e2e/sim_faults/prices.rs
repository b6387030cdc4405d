//! Moving prices: a tick revalues portfolio rows and moves `pnl` and `pnlSingle` on the wire to
//! exactly what `Sim::pnl` / `Sim::position_pnl` say; the seeded walk is reproducible; PnL is
//! held while IB's link is down and gone after 1101; a subscription never updates more often
//! than its minimum interval.

use std::time::Duration;

use ib_sim::{AccountPnl, ControlClient, Fault, PositionPnl, PriceTick, PriceWalk, Scenario, ScheduledTick};

use tws_wire::{Reply, Request, notice};

use super::{SHORT, WITHIN};
use crate::support::wire::{Read, SECDEF_FARM_OK, WireClient, is_error, is_farm_notice};
use crate::support::{eventually, patience, start_sim, start_sim_with};

const ACCOUNT: &str = "DU1234567";
const OTHER: &str = "DU7654321";
const AAPL: i32 = 265598;
const MSFT: i32 = 272093;

/// The built-in scenario with a short PnL interval, so updates after a change come quickly.
fn quick_pnl() -> Scenario {
    Scenario { pnl_interval_ms: 50, ..Scenario::default() }
}

/// A `pnl` reply's values (the client checked it carries exactly the fields ib_async unpacks).
fn account_pnl(r: &Reply) -> AccountPnl {
    match r {
        Reply::Pnl { daily, unrealized, realized, .. } => {
            AccountPnl { daily: *daily, unrealized: *unrealized, realized: *realized }
        }
        other => panic!("expected pnl, got {other:?}"),
    }
}

/// A `pnlSingle` reply's values (the client checked it carries exactly the fields ib_async
/// unpacks).
fn position_pnl(r: &Reply) -> PositionPnl {
    match r {
        Reply::PnlSingle { position, daily, unrealized, realized, value, .. } => PositionPnl {
            position: position.clone(),
            daily: *daily,
            unrealized: *unrealized,
            realized: *realized,
            value: *value,
        },
        other => panic!("expected pnlSingle, got {other:?}"),
    }
}

/// The request id of a `pnl` or `pnlSingle` reply.
fn pnl_id(r: &Reply) -> Option<i32> {
    match r {
        Reply::Pnl { req_id, .. } | Reply::PnlSingle { req_id, .. } => Some(*req_id),
        _ => None,
    }
}

fn is_pnl(req_id: i32) -> impl Fn(&Reply) -> bool {
    move |r| pnl_id(r) == Some(req_id)
}

/// Reads PnL replies until each of `ids` has sent one; returns the last reply of each, in the
/// order of `ids`.
async fn read_pnls(c: &mut WireClient, ids: &[i32]) -> Vec<Reply> {
    let mut got: Vec<Option<Reply>> = vec![None; ids.len()];
    while got.iter().any(Option::is_none) {
        let r = c.read_until(WITHIN, |r| pnl_id(r).is_some()).await;
        if let Some(i) = ids.iter().position(|id| pnl_id(&r) == Some(*id)) {
            got[i] = Some(r);
        }
    }
    got.into_iter().flatten().collect()
}

/// reqPnL as `5` and reqPnLSingle for AAPL as `6`, both for [`ACCOUNT`]; checks the first
/// answers against the simulator's truth.
async fn subscribe_both(sim: &ib_sim::Sim, c: &mut WireClient) {
    c.request(&Request::Pnl { req_id: 5, account: ACCOUNT.into() }).await;
    let first = account_pnl(&c.read_until(WITHIN, is_pnl(5)).await);
    assert_eq!(Some(first), sim.pnl(ACCOUNT));
    c.request(&Request::PnlSingle { req_id: 6, account: ACCOUNT.into(), con_id: AAPL }).await;
    let first = position_pnl(&c.read_until(WITHIN, is_pnl(6)).await);
    assert_eq!(Some(first), sim.position_pnl(ACCOUNT, AAPL));
}

/// reqAccountUpdates for `account`, read to its end marker.
async fn account_updates(c: &mut WireClient, account: &str) {
    c.request(&Request::AccountUpdates { subscribe: true, account: account.into() }).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::AccountDownloadEnd(a) if a == account)).await;
}

#[tokio::test]
async fn a_price_tick_moves_portfolio_rows_and_both_pnls_to_the_simulators_truth() {
    let sim = start_sim_with(quick_pnl()).await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    account_updates(&mut c, ACCOUNT).await;
    subscribe_both(&sim, &mut c).await;
    assert_eq!(sim.pnl(ACCOUNT).map(|p| p.daily), Some(412.35), "still prices: the scenario's daily PnL");

    sim.set_prices(&[PriceTick { con_id: AAPL, price: 191.25 }]).unwrap();
    let single = sim.position_pnl(ACCOUNT, AAPL).unwrap();
    let account = sim.pnl(ACCOUNT).unwrap();
    assert_eq!(single.daily, 100.0 * (191.25 - 189.5), "100 shares moved $1.75 since the day began");
    assert_eq!(single.value, 19125.0);
    assert_eq!(single.unrealized, 19125.0 - 100.0 * 150.25);
    assert!((account.daily - (412.35 + 175.0)).abs() < 1e-9, "{account:?}");

    // Everything the tick changes arrives, in whatever order the batches make.
    let (mut portfolio, mut net_liq, mut got_single, mut got_account) = (None, None, None, None);
    while portfolio.is_none() || net_liq.is_none() || got_single.is_none() || got_account.is_none() {
        match c.read_until(WITHIN, |_| true).await {
            Reply::Portfolio(p) if p.contract.con_id == AAPL => portfolio = Some(p),
            Reply::AccountValue { key, value, .. } if key == "NetLiquidation" => net_liq = Some(value),
            r @ Reply::PnlSingle { .. } => got_single = Some(position_pnl(&r)),
            r @ Reply::Pnl { .. } => got_account = Some(account_pnl(&r)),
            _ => {}
        }
    }
    let row = portfolio.unwrap();
    assert_eq!((row.market_price, row.market_value, row.unrealized), (191.25, 19125.0, single.unrealized));
    assert_eq!(net_liq.as_deref(), Some("125605.55"), "NetLiquidation moved by 100 × $1.75");
    assert_eq!(got_single, Some(single), "pnlSingle carries exactly Sim::position_pnl");
    assert_eq!(got_account, Some(account), "pnl carries exactly Sim::pnl");

    // Nothing changes, nothing is sent (a gateway is quiet while prices stand still).
    assert_eq!(c.read(SHORT).await, Read::Silent);
    sim.shutdown().await;
}

#[tokio::test]
async fn pnl_updates_wait_out_the_minimum_interval() {
    // A minute between updates: after the first answer, a change has to wait.
    let sim = start_sim_with(Scenario { pnl_interval_ms: 60_000, ..Scenario::default() }).await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    subscribe_both(&sim, &mut c).await;
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 200.0 }]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "no second update within pnl_interval_ms");
    // A new subscription answers at once with the new values; its own interval starts there.
    c.request(&Request::PnlSingle { req_id: 7, account: ACCOUNT.into(), con_id: AAPL }).await;
    let now = position_pnl(&c.read_until(WITHIN, is_pnl(7)).await);
    assert_eq!(Some(now), sim.position_pnl(ACCOUNT, AAPL));
    assert_eq!(c.read(SHORT).await, Read::Silent);
    sim.shutdown().await;
}

#[tokio::test]
async fn closed_and_unheld_positions_stream_zeros_and_bad_requests_are_refused() {
    let sim = start_sim_with(quick_pnl()).await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    subscribe_both(&sim, &mut c).await;

    // Closing: the subscription stays and reports position 0 with zero values.
    let mut aapl = sim.positions().into_iter().find(|p| p.account == ACCOUNT && p.con_id == AAPL).unwrap();
    aapl.quantity = "0".into();
    sim.upsert_positions(vec![aapl.clone()]).unwrap();
    let frames = read_pnls(&mut c, &[5, 6]).await;
    assert_eq!(position_pnl(&frames[1]), PositionPnl::flat());
    assert_eq!(sim.position_pnl(ACCOUNT, AAPL), Some(PositionPnl::flat()));
    assert_eq!(Some(account_pnl(&frames[0])), sim.pnl(ACCOUNT), "the account's unrealized PnL lost the position");
    // The other account still holds AAPL and its price moves; ours is flat: nothing to send.
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 180.0 }]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "a flat position does not move");
    // Reopening: values again, the day's reference being the price it opened at.
    aapl.quantity = "7".into();
    aapl.market_price = 180.0;
    sim.upsert_positions(vec![aapl]).unwrap();
    let frames = read_pnls(&mut c, &[5, 6]).await;
    let open = position_pnl(&frames[1]);
    assert_eq!((open.position.as_str(), open.daily, open.value), ("7", 0.0, 1260.0));
    assert_eq!(Some(account_pnl(&frames[0])), sim.pnl(ACCOUNT));

    // A contract the account never held answers zeros at once.
    c.request(&Request::PnlSingle { req_id: 8, account: OTHER.into(), con_id: MSFT }).await;
    assert_eq!(position_pnl(&c.read_until(WITHIN, is_pnl(8)).await), PositionPnl::flat());
    c.request(&Request::PnlSingle { req_id: 9, account: "NOPE".into(), con_id: MSFT }).await;
    c.read_until(WITHIN, is_error(notice::INVALID_CODE)).await;
    c.request(&Request::CancelPnlSingle { req_id: 4242 }).await;
    c.read_until(WITHIN, is_error(notice::PNL_SINGLE_NOT_SUBSCRIBED.0)).await;
    c.request(&Request::CancelPnlSingle { req_id: 5 }).await;
    c.read_until(WITHIN, is_error(notice::PNL_SINGLE_NOT_SUBSCRIBED.0)).await; // 5 is a reqPnL, not a reqPnLSingle
    c.request(&Request::CancelPnl { req_id: 6 }).await;
    c.read_until(WITHIN, is_error(notice::PNL_NOT_SUBSCRIBED.0)).await;
    for cancel in [
        Request::CancelPnlSingle { req_id: 6 },
        Request::CancelPnlSingle { req_id: 8 },
        Request::CancelPnl { req_id: 5 },
    ] {
        c.request(&cancel).await;
    }
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 170.0 }]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "cancelled subscriptions are quiet");
    sim.shutdown().await;
}

/// Reads portfolio rows of `con_id` until `n` prices different from the one before (starting
/// from `start`) have been seen.
async fn walked_prices(c: &mut WireClient, con_id: i32, start: f64, n: usize) -> Vec<f64> {
    let mut prices: Vec<f64> = Vec::new();
    while prices.len() < n {
        let p = c
            .read_find(WITHIN, |r| match r {
                Reply::Portfolio(row) if row.contract.con_id == con_id => Some(row.market_price),
                _ => None,
            })
            .await;
        if *prices.last().unwrap_or(&start) != p {
            prices.push(p);
        }
    }
    prices
}

/// The first `n` moves of a walk's path (a step that rounds to the same price sends nothing).
fn moves(walk: &PriceWalk, con_id: i32, start: f64, n: usize) -> Vec<f64> {
    let mut path = walk.path(con_id, start, 10 * n as u64);
    path.insert(0, start);
    path.dedup();
    path[1..=n].to_vec()
}

#[tokio::test]
async fn the_walk_is_reproducible_from_its_seed() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    account_updates(&mut c, OTHER).await;
    let walk = PriceWalk { seed: 7, interval_ms: 20, step_bps: 50.0, con_ids: vec![AAPL] };
    assert!(sim.price_walk().is_none(), "off by default");

    sim.start_price_walk(walk.clone()).unwrap();
    assert_eq!(sim.price_walk(), Some(walk.clone()));
    let seen = walked_prices(&mut c, AAPL, 189.5, 6).await;
    assert_eq!(seen, moves(&walk, AAPL, 189.5, 6), "the path follows from the seed and the start price");
    sim.stop_price_walk();
    assert!(sim.price_walk().is_none());
    let tsla = sim.prices().into_iter().find(|t| t.con_id == 76792991).map(|t| t.price);
    assert_eq!(tsla, Some(251.3), "only the listed contracts walk");

    // Same seed from the same prices: the same path again; another seed: another path.
    sim.reset();
    account_updates(&mut c, OTHER).await;
    sim.start_price_walk(walk.clone()).unwrap();
    assert_eq!(walked_prices(&mut c, AAPL, 189.5, 6).await, seen);
    sim.stop_price_walk();
    assert_ne!(moves(&PriceWalk { seed: 8, ..walk }, AAPL, 189.5, 6), seen);
    sim.shutdown().await;
}

#[tokio::test]
async fn scenario_walks_and_ticks_move_prices_and_the_control_api_drives_them() {
    let mut scenario = Scenario::default();
    scenario.price_ticks.push(ScheduledTick { at_ms: 20, con_id: MSFT, price: 420.0 });
    scenario.price_walk = Some(PriceWalk { seed: 3, interval_ms: 10, con_ids: vec![76792991], ..PriceWalk::default() });
    let sim = start_sim_with(scenario).await;
    eventually("the scheduled tick", WITHIN, || async {
        sim.prices().iter().any(|t| t.con_id == MSFT && t.price == 420.0).then_some(())
    })
    .await;
    eventually("the scenario's walk moves TSLA", WITHIN, || async {
        sim.prices().iter().any(|t| t.con_id == 76792991 && t.price != 251.3).then_some(())
    })
    .await;

    let control = ControlClient::new(sim.control_addr().unwrap());
    control.stop_price_walk().await.unwrap();
    assert_eq!(control.call("GET", "/price-walk", None::<&()>).await.unwrap(), "null");
    control.set_prices(&[PriceTick { con_id: AAPL, price: 190.5 }]).await.unwrap();
    let prices = control.prices().await.unwrap();
    assert!(prices.contains(&PriceTick { con_id: AAPL, price: 190.5 }), "{prices:?}");
    // serde_json (without its float_roundtrip feature) may parse a double one ulp off.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let (got, truth) = (control.pnl(ACCOUNT).await.unwrap(), sim.pnl(ACCOUNT).unwrap());
    assert!(close(got.daily, truth.daily) && close(got.unrealized, truth.unrealized), "{got:?} vs {truth:?}");
    let (got, truth) = (control.position_pnl(ACCOUNT, AAPL).await.unwrap(), sim.position_pnl(ACCOUNT, AAPL).unwrap());
    assert_eq!(got.position, truth.position);
    assert!(close(got.daily, truth.daily) && close(got.value, truth.value), "{got:?} vs {truth:?}");
    let missing = control.set_prices(&[PriceTick { con_id: 1, price: 1.0 }]).await;
    assert!(matches!(missing, Err(ib_sim::control_client::ControlError::Status { status: 400, .. })));
    let unknown = control.pnl("NOPE").await;
    assert!(matches!(unknown, Err(ib_sim::control_client::ControlError::Status { status: 404, .. })));
    let bad_walk = control.start_price_walk(&PriceWalk { interval_ms: 0, ..PriceWalk::default() }).await;
    assert!(matches!(bad_walk, Err(ib_sim::control_client::ControlError::Status { status: 400, .. })));
    control.call("POST", "/price-walk", Some(&serde_json::json!({"interval_ms": 10, "seed": 1}))).await.unwrap();
    assert_eq!(sim.price_walk().map(|w| (w.seed, w.interval_ms, w.step_bps)), Some((1, 10, 5.0)));
    // Reset brings back the scenario's prices and its walk.
    control.reset().await.unwrap();
    assert_eq!(sim.price_walk().map(|w| w.seed), Some(3));
    let aapl = sim.prices().into_iter().find(|t| t.con_id == AAPL).map(|t| t.price);
    assert_eq!(aapl, Some(189.5));
    sim.shutdown().await;
}

#[tokio::test]
async fn no_pnl_flows_while_the_link_is_down() {
    let sim = start_sim_with(quick_pnl()).await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    subscribe_both(&sim, &mut c).await;
    let restore = patience(Duration::from_millis(500)).as_millis() as u64;
    sim.inject(Fault::LinkLost { restore_ms: restore, data_lost: false }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_LOST.0)).await;
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 195.0 }]).unwrap();
    // Held: nothing but farm notices until 1102, then the PnL that changed meanwhile.
    let next = c.read_until(WITHIN, |f| !is_farm_notice(f)).await;
    assert!(is_error(notice::LINK_RESTORED_DATA_MAINTAINED.0)(&next), "expected 1102 before any PnL, got {next:?}");
    let (mut single, mut account) = (None, None);
    while single.is_none() || account.is_none() {
        match c.read_until(WITHIN, |r| pnl_id(r).is_some()).await {
            r @ Reply::PnlSingle { .. } => single = Some(position_pnl(&r)),
            r => account = Some(account_pnl(&r)),
        }
    }
    assert_eq!(single, sim.position_pnl(ACCOUNT, AAPL));
    assert_eq!(account, sim.pnl(ACCOUNT));

    // 1101: the subscriptions are gone; the client has to ask again.
    sim.inject(Fault::LinkLost { restore_ms: restore, data_lost: true }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_RESTORED_DATA_LOST.0)).await;
    c.read_until(WITHIN, is_error(SECDEF_FARM_OK)).await;
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 196.0 }]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "after 1101 no PnL subscription is left");
    subscribe_both(&sim, &mut c).await;

    // A restart drops the connection and its subscriptions with it.
    sim.inject(Fault::Restart { down_ms: 50 }).unwrap();
    assert_eq!(c.read(WITHIN).await, Read::Eof);
    let (mut c, _) = eventually("the port is back", WITHIN, || async {
        let addr = sim.api_addr();
        match WireClient::connect(addr).await {
            Ok(_) => Some(WireClient::start(addr, 1).await),
            Err(_) => None,
        }
    })
    .await;
    sim.set_prices(&[PriceTick { con_id: AAPL, price: 197.0 }]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "a new connection starts without subscriptions");
    sim.shutdown().await;
}
