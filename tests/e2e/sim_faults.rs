//! Wire-level behaviour of the simulator's gateway semantics and of every fault kind, seen
//! through a raw text-protocol client.

use std::time::Duration;

use ib_sim::{ControlClient, Fault, Scenario};
use tws_wire::ids::request as msg;
use tws_wire::{Reply, Request, notice};

use crate::support::wire::{Read, SECDEF_FARM_OK, TEXT_RANGE, WireClient, garbled, is_error, is_farm_notice, tags};
use crate::support::{eventually, start_sim, start_sim_with};

mod farms;
mod prices;
mod summary;

const SHORT: Duration = Duration::from_millis(300);
const WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn handshake_negotiates_text_and_sends_the_start_up_sequence() {
    let sim = start_sim().await;
    let (_c, frames) = WireClient::start(sim.api_addr(), 5).await;
    assert_eq!(frames.len(), 9, "managedAccounts, nextValidId, one notice per farm: {frames:?}");
    assert_eq!(frames[0], Reply::ManagedAccounts("DU1234567,DU7654321".into()));
    assert!(matches!(frames[1], Reply::NextValidId(_)), "{frames:?}");
    let notices: Vec<(i32, i32, &str)> = frames[2..]
        .iter()
        .map(|r| match r {
            Reply::Error { id, code, message } => (*id, *code, message.as_str()),
            other => panic!("expected a farm notice, got {other:?}"),
        })
        .collect();
    assert_eq!(
        notices,
        [
            (-1, 2104, "Market data farm connection is OK:usfarm"),
            (-1, 2104, "Market data farm connection is OK:eufarm"),
            (-1, 2108, "Market data farm connection is inactive but should be available upon demand.:cashfarm"),
            (-1, 2104, "Market data farm connection is OK:usopt"),
            (-1, 2106, "HMDS data farm connection is OK:ushmds"),
            (-1, 2107, "HMDS data farm connection is inactive but should be available upon demand.:euhmds"),
            (-1, SECDEF_FARM_OK, "Sec-def data farm connection is OK:secdefnj"),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn version_ranges_are_negotiated_or_refused() {
    let sim = start_sim().await;
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello("v100..205").await, Read::Hello(200));
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello("v213..226").await, Read::Hello(226));
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello("v227..230").await, Read::Eof, "a client whose min is above 226 is refused");
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    c.stream.try_write(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(c.read(WITHIN).await, Read::Eof, "garbage instead of a greeting closes the connection");
    let stats = sim.stats();
    assert_eq!(stats.rejected.get("version"), Some(&1));
    // The simulator still serves well-behaved clients.
    WireClient::start(sim.api_addr(), 1).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn positions_summary_updates_and_pnl_follow_gateway_semantics() {
    let sim = start_sim_with(Scenario { account_summary_refresh_ms: 200, ..Scenario::default() }).await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 3).await;
    c.request(&Request::Positions).await;
    // The client reads every reply with exactly the fields tws-wire encodes (what ib_async
    // unpacks), or the read fails as garbled.
    let Reply::Position(first) = c.read_until(WITHIN, |r| matches!(r, Reply::Position(_))).await else {
        unreachable!()
    };
    assert!(
        sim.positions().iter().any(|p| (&p.account, p.con_id, &p.symbol, &p.quantity)
            == (&first.account, first.contract.con_id, &first.contract.symbol, &first.quantity)),
        "a position of the book: {first:?}"
    );
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;

    c.request(&Request::AccountSummary {
        req_id: 77,
        group: "All".into(),
        tags: tags("NetLiquidation,BuyingPower,NoSuchTag"),
    })
    .await;
    let mut rows = 0;
    loop {
        match c.read_until(WITHIN, is_summary).await {
            Reply::AccountSummaryEnd { req_id } => {
                assert_eq!(req_id, 77);
                break;
            }
            Reply::AccountSummary { req_id, .. } => assert_eq!(req_id, 77),
            other => unreachable!("{other:?}"),
        }
        rows += 1;
    }
    assert_eq!(rows, 4, "2 known tags × 2 accounts; unknown tags are ignored");
    // A changed value comes in the next batch, without a new end marker.
    let mut v = sim.account_values().into_iter().find(|v| v.tag == "BuyingPower").unwrap();
    v.value = "1234.50".into();
    sim.upsert_account_values(vec![v]).unwrap();
    let f = c.read_until(WITHIN, is_summary).await;
    assert_eq!(
        f,
        Reply::AccountSummary {
            req_id: 77,
            account: "DU1234567".into(),
            tag: "BuyingPower".into(),
            value: "1234.50".into(),
            currency: "USD".into()
        }
    );

    // A third concurrent summary is refused with 322.
    c.request(&Request::AccountSummary { req_id: 78, group: "All".into(), tags: tags("NetLiquidation") }).await;
    c.read_until(WITHIN, |r| *r == Reply::AccountSummaryEnd { req_id: 78 }).await;
    c.request(&Request::AccountSummary { req_id: 79, group: "All".into(), tags: tags("NetLiquidation") }).await;
    let refused = c.read_until(WITHIN, is_error(notice::TOO_MANY_SUMMARIES.0)).await;
    assert!(matches!(refused, Reply::Error { id: 79, .. }), "{refused:?}");

    // Live position change.
    let mut p = sim.positions()[0].clone();
    p.quantity = "555".into();
    sim.upsert_positions(vec![p]).unwrap();
    let Reply::Position(f) = c.read_until(WITHIN, |r| matches!(r, Reply::Position(_))).await else { unreachable!() };
    assert_eq!(f.quantity, "555");

    c.request(&Request::AccountUpdates { subscribe: true, account: "DU7654321".into() }).await;
    let Reply::Portfolio(portfolio) = c.read_until(WITHIN, |r| matches!(r, Reply::Portfolio(_))).await else {
        unreachable!()
    };
    assert_eq!(portfolio.account, "DU7654321");
    c.read_until(WITHIN, |r| matches!(r, Reply::AccountUpdateTime(_))).await;
    c.read_until(WITHIN, |r| *r == Reply::AccountDownloadEnd("DU7654321".into())).await;

    // reqAccountUpdatesMulti: the account's values, then the end marker.
    c.request(&Request::AccountUpdatesMulti { req_id: 31, account: "DU7654321".into() }).await;
    let mut multi = 0;
    loop {
        match c
            .read_until(WITHIN, |r| matches!(r, Reply::AccountUpdateMulti { .. } | Reply::AccountUpdateMultiEnd { .. }))
            .await
        {
            Reply::AccountUpdateMulti { req_id, account, .. } => {
                assert_eq!((req_id, account.as_str()), (31, "DU7654321"));
                multi += 1;
            }
            end => {
                assert_eq!(end, Reply::AccountUpdateMultiEnd { req_id: 31 });
                break;
            }
        }
    }
    assert!(multi > 0, "rows come before the end marker");

    c.request(&Request::Pnl { req_id: 5, account: "DU1234567".into() }).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::Pnl { req_id: 5, .. })).await;
    c.request(&Request::CancelPnl { req_id: 4242 }).await;
    c.read_until(WITHIN, is_error(notice::PNL_NOT_SUBSCRIBED.0)).await;

    // Order-class requests are refused for the order id they carry.
    c.request(&Request::OrderClass { msg_id: msg::PLACE_ORDER, id: 1 }).await;
    let refused = c.read_until(WITHIN, is_error(notice::READ_ONLY_CODE)).await;
    assert_eq!(refused, Reply::error(1, notice::READ_ONLY_CODE, notice::read_only("placeOrder")));
    assert_eq!(sim.stats().order_messages, 1);
    // Requests a read-only account-data gateway does not serve are refused for their id.
    c.request(&Request::Unsupported { msg_id: msg::REQ_MKT_DATA, id: 42 }).await;
    let refused = c.read_until(WITHIN, is_error(notice::UNSUPPORTED_CODE)).await;
    assert!(matches!(&refused, Reply::Error { id: 42, message, .. } if message.contains("reqMktData")), "{refused:?}");
    assert_eq!(sim.stats().order_messages, 1, "not an order");
    sim.shutdown().await;
}

fn is_summary(r: &Reply) -> bool {
    matches!(r, Reply::AccountSummary { .. } | Reply::AccountSummaryEnd { .. })
}

#[tokio::test]
async fn malformed_client_input_costs_only_that_connection() {
    let sim = start_sim().await;
    let (mut good, _) = WireClient::start(sim.api_addr(), 1).await;
    let (mut bad, _) = WireClient::start(sim.api_addr(), 2).await;
    let summary = Request::AccountSummary { req_id: 1, group: "All".into(), tags: tags("NetLiquidation") };
    bad.send_raw_frame(&garbled(&summary, bad.version())).await;
    bad.read_until(WITHIN, is_error(notice::UNREADABLE_CODE)).await;
    assert_eq!(bad.read(WITHIN).await, Read::Eof);
    let (mut huge, _) = WireClient::start(sim.api_addr(), 3).await;
    huge.stream.try_write(&0x0200_0000u32.to_be_bytes()).unwrap();
    assert_eq!(huge.read(WITHIN).await, Read::Eof, "a 32 MiB frame header closes the connection");
    good.request(&Request::CurrentTime).await;
    good.read_until(WITHIN, |r| matches!(r, Reply::CurrentTime(_))).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_client_id_gets_326_then_close() {
    let sim = start_sim().await;
    let (_first, _) = WireClient::start(sim.api_addr(), 9).await;
    let mut second = WireClient::connect(sim.api_addr()).await.unwrap();
    second.hello(TEXT_RANGE).await;
    second.request(&Request::StartApi { client_id: 9 }).await;
    second.read_until(WITHIN, is_error(notice::CLIENT_ID_IN_USE_CODE)).await;
    assert_eq!(second.read(WITHIN).await, Read::Eof);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_client_limit_closes_extra_connections() {
    let sim = start_sim_with(Scenario { max_clients: 2, ..Scenario::default() }).await;
    let _a = WireClient::start(sim.api_addr(), 1).await;
    let _b = WireClient::start(sim.api_addr(), 2).await;
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello(TEXT_RANGE).await, Read::Eof);
    assert_eq!(sim.stats().rejected.get("max_clients"), Some(&1));
    sim.shutdown().await;
}

#[tokio::test]
async fn restart_drops_everyone_refuses_then_comes_back() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Restart { down_ms: 400 }).unwrap();
    assert_eq!(c.read(WITHIN).await, Read::Eof);
    // The client answers the server's FIN later than the restart: still a clean close.
    let refused = tokio::net::TcpStream::connect(sim.api_addr()).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionRefused));
    eventually("the port to accept again", WITHIN, || async {
        tokio::net::TcpStream::connect(sim.api_addr()).await.ok().map(drop)
    })
    .await;
    WireClient::start(sim.api_addr(), 1).await;
    drop(c);
    let dropped = eventually("the restart close to be recorded", WITHIN, || async {
        sim.stats().closed.iter().find(|c| c.reason == "gateway restart").cloned()
    })
    .await;
    assert_eq!(dropped.closed_by, ib_sim::Closer::Server);
    assert!(dropped.clean, "our raw client answered the FIN by closing");
    sim.shutdown().await;
}

#[tokio::test]
async fn refuse_keeps_existing_connections() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Refuse { duration_ms: 60_000 }).unwrap();
    eventually("connections to be refused", WITHIN, || async {
        tokio::net::TcpStream::connect(sim.api_addr()).await.is_err().then_some(())
    })
    .await;
    c.request(&Request::CurrentTime).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::CurrentTime(_))).await;
    sim.reset();
    eventually("the port to accept again after reset", WITHIN, || async {
        tokio::net::TcpStream::connect(sim.api_addr()).await.ok().map(drop)
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn accept_then_close_and_stall_handshake() {
    let sim = start_sim().await;
    sim.inject(Fault::AcceptThenClose { duration_ms: 60_000 }).unwrap();
    let mut c = WireClient::connect(sim.api_addr()).await.expect("TCP accept still works");
    assert_eq!(c.hello(TEXT_RANGE).await, Read::Eof);
    sim.reset();
    sim.inject(Fault::StallHandshake { duration_ms: 60_000 }).unwrap();
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello(TEXT_RANGE).await, Read::Silent, "no handshake answer");
    sim.reset();
    WireClient::start(sim.api_addr(), 1).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn silence_is_half_open() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Silence).unwrap();
    // The command reaches the connection asynchronously: a request sent just before it may still
    // be answered, so ask until one goes unanswered, then check that the next one does too.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        c.request(&Request::CurrentTime).await;
        match c.read(SHORT).await {
            Read::Silent => break,
            Read::Reply(_) if tokio::time::Instant::now() < deadline => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
    c.request(&Request::CurrentTime).await;
    assert_eq!(c.read(SHORT).await, Read::Silent, "no answer, and no close either");
    assert_eq!(sim.stats().open_now, 1);
    // New connections are served normally.
    WireClient::start(sim.api_addr(), 2).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn link_lost_then_data_lost_cancels_subscriptions() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    c.request(&Request::Positions).await;
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;
    sim.inject(Fault::LinkLost { restore_ms: 200, data_lost: true }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_LOST.0)).await;
    c.read_until(WITHIN, is_error(notice::LINK_RESTORED_DATA_LOST.0)).await;
    // The farms the outage broke are back; the last of them is the sec-def farm.
    c.read_until(WITHIN, is_error(SECDEF_FARM_OK)).await;
    let mut p = sim.positions()[0].clone();
    p.quantity = "777".into();
    sim.upsert_positions(vec![p]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "after 1101 the subscription is gone");
    c.request(&Request::Positions).await;
    let f = c
        .read_find(WITHIN, |r| match r {
            Reply::Position(p) if p.quantity == "777" => Some(p),
            _ => None,
        })
        .await;
    assert_eq!(f.contract.symbol, sim.positions()[0].symbol);
    sim.shutdown().await;
}

#[tokio::test]
async fn link_lost_then_data_maintained_delivers_held_updates() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    c.request(&Request::Positions).await;
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;
    sim.inject(Fault::LinkLost { restore_ms: 300, data_lost: false }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_LOST.0)).await;
    let mut p = sim.positions()[0].clone();
    p.quantity = "888".into();
    sim.upsert_positions(vec![p]).unwrap();
    // Held during the outage: after the farm notices, the next frame is 1102, then the change.
    let next = c.read_until(WITHIN, |f| !is_farm_notice(f)).await;
    assert!(is_error(notice::LINK_RESTORED_DATA_MAINTAINED.0)(&next), "expected 1102 first, got {next:?}");
    c.read_until(WITHIN, |r| matches!(r, Reply::Position(p) if p.quantity == "888")).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn maintenance_window_flaps_farms_and_keeps_the_socket() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Maintenance { duration_ms: 200 }).unwrap();
    let (lost, maintained) = (notice::LINK_LOST.0, notice::LINK_RESTORED_DATA_MAINTAINED.0);
    for code in [lost, 2103, 2105, 2157, maintained, 2104, 2106, SECDEF_FARM_OK] {
        c.read_until(WITHIN, is_error(code)).await;
    }
    c.request(&Request::CurrentTime).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::CurrentTime(_))).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_id_window_rejects_even_unique_ids() {
    let sim = start_sim().await;
    sim.inject(Fault::DuplicateId { duration_ms: 60_000 }).unwrap();
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    c.hello(TEXT_RANGE).await;
    c.request(&Request::StartApi { client_id: 12345 }).await;
    c.read_until(WITHIN, is_error(notice::CLIENT_ID_IN_USE_CODE)).await;
    assert_eq!(c.read(WITHIN).await, Read::Eof);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_and_oversized_frames_reach_clients() {
    let sim = start_sim().await;
    let (mut a, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::MalformedFrame).unwrap();
    assert_eq!(a.read(WITHIN).await, Read::BadLength(2));
    let (mut b, _) = WireClient::start(sim.api_addr(), 2).await;
    sim.inject(Fault::OversizedFrame).unwrap();
    assert_eq!(b.read(WITHIN).await, Read::BadLength(0x0100_0001));
    sim.shutdown().await;
}

#[tokio::test]
async fn burst_delivers_every_step_and_converges() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    c.request(&Request::Positions).await;
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;
    let target = sim.positions()[0].clone();
    sim.inject(Fault::Burst { count: 10_000, con_id: Some(target.con_id), account: Some(target.account.clone()) })
        .unwrap();
    let expected = format!("{}", target.quantity.parse::<f64>().unwrap() as i64 + 10_000);
    let mut updates = 0;
    loop {
        let Reply::Position(p) = c.read_until(Duration::from_secs(20), |r| matches!(r, Reply::Position(_))).await
        else {
            unreachable!()
        };
        updates += 1;
        if p.quantity == expected {
            break;
        }
    }
    assert_eq!(updates, 10_000, "every step is pushed, none coalesced");
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = start_sim().await;
    let control = ControlClient::new(sim.control_addr().unwrap());
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    c.request(&Request::Positions).await;
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;

    let mut p = control.positions().await.unwrap()[0].clone();
    p.quantity = "4321".into();
    control.upsert_positions(&[p]).await.unwrap();
    c.read_until(WITHIN, |r| matches!(r, Reply::Position(p) if p.quantity == "4321")).await;

    let err = control.call("POST", "/faults", Some(&serde_json::json!({"kind": "meteor"}))).await;
    assert!(matches!(err, Err(ib_sim::control_client::ControlError::Status { status: 422, .. })), "{err:?}");
    let mut bad = p_with_account("NOPE");
    bad.quantity = "1".into();
    let err = control.upsert_positions(&[bad]).await;
    assert!(matches!(err, Err(ib_sim::control_client::ControlError::Status { status: 400, .. })), "{err:?}");

    control.inject(&Fault::Restart { down_ms: 100 }).await.unwrap();
    assert_eq!(c.read(WITHIN).await, Read::Eof);
    let stats = control.stats().await.unwrap();
    assert_eq!(stats["faults"]["restart"], 1);
    assert_eq!(stats["handshakes_completed"], 1);
    assert_eq!(stats["per_client_id"]["1"], 1);
    control.reset().await.unwrap();
    let stats = control.stats().await.unwrap();
    assert_eq!(stats["handshakes_completed"], 0);
    let mut expected = Scenario::default().positions;
    expected.sort_by(|a, b| (&a.account, a.con_id).cmp(&(&b.account, b.con_id)));
    assert_eq!(control.positions().await.unwrap(), expected, "positions are listed by account and contract id");
    sim.shutdown().await;
}

fn p_with_account(account: &str) -> ib_sim::Position {
    ib_sim::Position { account: account.into(), ..Scenario::default().positions[0].clone() }
}

#[tokio::test]
async fn scheduled_faults_fire_on_time() {
    let mut scenario = Scenario::default();
    scenario.schedule.push(ib_sim::ScheduledFault {
        at_ms: 50,
        every_ms: Some(50),
        count: Some(3),
        fault: Fault::Maintenance { duration_ms: 10 },
    });
    let sim = start_sim_with(scenario).await;
    eventually("three scheduled faults", WITHIN, || async {
        (sim.stats().faults.get("maintenance") == Some(&3)).then_some(())
    })
    .await;
    sim.shutdown().await;
}
