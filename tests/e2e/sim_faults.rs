//! Wire-level behaviour of the simulator's gateway semantics and of every fault kind, seen
//! through a raw text-protocol client.

use std::time::Duration;

use ib_sim::{ControlClient, Fault, Scenario};

use crate::support::wire::{Read, WireClient};
use crate::support::{eventually, start_sim, start_sim_with};

mod farms;
mod prices;
mod summary;

const SHORT: Duration = Duration::from_millis(300);
const WITHIN: Duration = Duration::from_secs(5);

fn is_error(code: &str) -> impl Fn(&[String]) -> bool + '_ {
    // Text error frames at v178: 4, version 2, id, code, message, json.
    move |f: &[String]| f[0] == "4" && f.get(3).map(String::as_str) == Some(code)
}

/// A farm notice (2103..2108, 2157, 2158), which can come at any time.
fn is_farm_notice(f: &[String]) -> bool {
    f[0] == "4" && matches!(f[3].as_str(), "2103" | "2104" | "2105" | "2106" | "2107" | "2108" | "2157" | "2158")
}

#[tokio::test]
async fn handshake_negotiates_text_and_sends_the_start_up_sequence() {
    let sim = start_sim().await;
    let (_c, frames) = WireClient::start(sim.api_addr(), 5).await;
    let ids: Vec<&str> = frames.iter().map(|f| f[0].as_str()).collect();
    assert_eq!(
        ids,
        ["15", "9", "4", "4", "4", "4", "4", "4", "4"],
        "managedAccounts, nextValidId, one notice per farm"
    );
    assert_eq!(frames[0], ["15", "1", "DU1234567,DU7654321"]);
    let notices: Vec<(&str, &str, &str)> =
        frames[2..].iter().map(|f| (f[2].as_str(), f[3].as_str(), f[4].as_str())).collect();
    assert_eq!(
        notices,
        [
            ("-1", "2104", "Market data farm connection is OK:usfarm"),
            ("-1", "2104", "Market data farm connection is OK:eufarm"),
            ("-1", "2108", "Market data farm connection is inactive but should be available upon demand.:cashfarm"),
            ("-1", "2104", "Market data farm connection is OK:usopt"),
            ("-1", "2106", "HMDS data farm connection is OK:ushmds"),
            ("-1", "2107", "HMDS data farm connection is inactive but should be available upon demand.:euhmds"),
            ("-1", "2158", "Sec-def data farm connection is OK:secdefnj"),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn version_ranges_are_negotiated_or_refused() {
    let sim = start_sim().await;
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert!(matches!(c.hello("v100..205").await, Read::Frame(f) if f[0] == "200"));
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert!(matches!(c.hello("v213..226").await, Read::Frame(f) if f[0] == "226"));
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
    c.send(&["61", "1"]).await;
    let first = c.read_until(WITHIN, |f| f[0] == "61").await;
    assert_eq!(first.len(), 16, "ib_async unpacks exactly 16 fields: {first:?}");
    c.read_until(WITHIN, |f| f[0] == "62").await;

    c.send(&["62", "1", "77", "All", "NetLiquidation,BuyingPower,NoSuchTag"]).await;
    let mut rows = 0;
    loop {
        let f = c.read_until(WITHIN, |f| f[0] == "63" || f[0] == "64").await;
        if f[0] == "64" {
            assert_eq!(f, ["64", "1", "77"]);
            break;
        }
        assert_eq!(f.len(), 7);
        rows += 1;
    }
    assert_eq!(rows, 4, "2 known tags × 2 accounts; unknown tags are ignored");
    // A changed value comes in the next batch, without a new end marker.
    let mut v = sim.account_values().into_iter().find(|v| v.tag == "BuyingPower").unwrap();
    v.value = "1234.50".into();
    sim.upsert_account_values(vec![v]).unwrap();
    let f = c.read_until(WITHIN, |f| f[0] == "63" || f[0] == "64").await;
    assert_eq!(f[2..], ["77", "DU1234567", "BuyingPower", "1234.50", "USD"]);

    // A third concurrent summary is refused with 322.
    c.send(&["62", "1", "78", "All", "NetLiquidation"]).await;
    c.read_until(WITHIN, |f| f[0] == "64" && f[2] == "78").await;
    c.send(&["62", "1", "79", "All", "NetLiquidation"]).await;
    c.read_until(WITHIN, is_error("322")).await;

    // Live position change.
    let mut p = sim.positions()[0].clone();
    p.quantity = "555".into();
    sim.upsert_positions(vec![p]).unwrap();
    let f = c.read_until(WITHIN, |f| f[0] == "61").await;
    assert_eq!(f[14], "555");

    c.send(&["6", "2", "1", "DU7654321"]).await;
    let portfolio = c.read_until(WITHIN, |f| f[0] == "7").await;
    assert_eq!(portfolio.len(), 20, "ib_async unpacks exactly 20 fields");
    c.read_until(WITHIN, |f| f[0] == "8").await;
    c.read_until(WITHIN, |f| f[0] == "54" && f[2] == "DU7654321").await;

    c.send(&["92", "5", "DU1234567", ""]).await;
    let pnl = c.read_until(WITHIN, |f| f[0] == "94").await;
    assert_eq!(pnl.len(), 5);
    c.send(&["93", "4242"]).await;
    c.read_until(WITHIN, is_error("10185")).await;

    c.send(&["3", "1", "whatever"]).await;
    c.read_until(WITHIN, is_error("321")).await;
    assert_eq!(sim.stats().order_messages, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_client_input_costs_only_that_connection() {
    let sim = start_sim().await;
    let (mut good, _) = WireClient::start(sim.api_addr(), 1).await;
    let (mut bad, _) = WireClient::start(sim.api_addr(), 2).await;
    bad.send(&["62", "1", "not-a-number"]).await;
    bad.read_until(WITHIN, is_error("320")).await;
    assert_eq!(bad.read(WITHIN).await, Read::Eof);
    let (mut huge, _) = WireClient::start(sim.api_addr(), 3).await;
    huge.stream.try_write(&0x0200_0000u32.to_be_bytes()).unwrap();
    assert_eq!(huge.read(WITHIN).await, Read::Eof, "a 32 MiB frame header closes the connection");
    good.send(&["49", "1"]).await;
    good.read_until(WITHIN, |f| f[0] == "49").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_client_id_gets_326_then_close() {
    let sim = start_sim().await;
    let (_first, _) = WireClient::start(sim.api_addr(), 9).await;
    let mut second = WireClient::connect(sim.api_addr()).await.unwrap();
    second.hello("v100..178").await;
    second.send(&["71", "2", "9", ""]).await;
    second.read_until(WITHIN, is_error("326")).await;
    assert_eq!(second.read(WITHIN).await, Read::Eof);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_client_limit_closes_extra_connections() {
    let sim = start_sim_with(Scenario { max_clients: 2, ..Scenario::default() }).await;
    let _a = WireClient::start(sim.api_addr(), 1).await;
    let _b = WireClient::start(sim.api_addr(), 2).await;
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello("v100..178").await, Read::Eof);
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
    c.send(&["49", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "49").await;
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
    assert_eq!(c.hello("v100..178").await, Read::Eof);
    sim.reset();
    sim.inject(Fault::StallHandshake { duration_ms: 60_000 }).unwrap();
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    assert_eq!(c.hello("v100..178").await, Read::Silent, "no handshake answer");
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
        c.send(&["49", "1"]).await;
        match c.read(SHORT).await {
            Read::Silent => break,
            Read::Frame(_) if tokio::time::Instant::now() < deadline => {}
            other => panic!("expected silence, got {other:?}"),
        }
    }
    c.send(&["49", "1"]).await;
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
    c.send(&["61", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "62").await;
    sim.inject(Fault::LinkLost { restore_ms: 200, data_lost: true }).unwrap();
    c.read_until(WITHIN, is_error("1100")).await;
    c.read_until(WITHIN, is_error("1101")).await;
    // The farms the outage broke are back; the last of them is the sec-def farm.
    c.read_until(WITHIN, is_error("2158")).await;
    let mut p = sim.positions()[0].clone();
    p.quantity = "777".into();
    sim.upsert_positions(vec![p]).unwrap();
    assert_eq!(c.read(SHORT).await, Read::Silent, "after 1101 the subscription is gone");
    c.send(&["61", "1"]).await;
    let f = c.read_until(WITHIN, |f| f[0] == "61" && f[14] == "777").await;
    assert_eq!(f[4], sim.positions()[0].symbol);
    sim.shutdown().await;
}

#[tokio::test]
async fn link_lost_then_data_maintained_delivers_held_updates() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    c.send(&["61", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "62").await;
    sim.inject(Fault::LinkLost { restore_ms: 300, data_lost: false }).unwrap();
    c.read_until(WITHIN, is_error("1100")).await;
    let mut p = sim.positions()[0].clone();
    p.quantity = "888".into();
    sim.upsert_positions(vec![p]).unwrap();
    // Held during the outage: after the farm notices, the next frame is 1102, then the change.
    let next = c.read_until(WITHIN, |f| !is_farm_notice(f)).await;
    assert!(is_error("1102")(&next), "expected 1102 first, got {next:?}");
    c.read_until(WITHIN, |f| f[0] == "61" && f[14] == "888").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn maintenance_window_flaps_farms_and_keeps_the_socket() {
    let sim = start_sim().await;
    let (mut c, _) = WireClient::start(sim.api_addr(), 1).await;
    sim.inject(Fault::Maintenance { duration_ms: 200 }).unwrap();
    for code in ["1100", "2103", "2105", "2157", "1102", "2104", "2106", "2158"] {
        c.read_until(WITHIN, is_error(code)).await;
    }
    c.send(&["49", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "49").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_id_window_rejects_even_unique_ids() {
    let sim = start_sim().await;
    sim.inject(Fault::DuplicateId { duration_ms: 60_000 }).unwrap();
    let mut c = WireClient::connect(sim.api_addr()).await.unwrap();
    c.hello("v100..178").await;
    c.send(&["71", "2", "12345", ""]).await;
    c.read_until(WITHIN, is_error("326")).await;
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
    c.send(&["61", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "62").await;
    let target = sim.positions()[0].clone();
    sim.inject(Fault::Burst { count: 10_000, con_id: Some(target.con_id), account: Some(target.account.clone()) })
        .unwrap();
    let expected = format!("{}", target.quantity.parse::<f64>().unwrap() as i64 + 10_000);
    let mut updates = 0;
    loop {
        let f = c.read_until(Duration::from_secs(20), |f| f[0] == "61").await;
        updates += 1;
        if f[14] == expected {
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
    c.send(&["61", "1"]).await;
    c.read_until(WITHIN, |f| f[0] == "62").await;

    let mut p = control.positions().await.unwrap()[0].clone();
    p.quantity = "4321".into();
    control.upsert_positions(&[p]).await.unwrap();
    c.read_until(WITHIN, |f| f[0] == "61" && f[14] == "4321").await;

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
