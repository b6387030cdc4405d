//! The TWS front door at the byte level, through a raw text-codec client: what it refuses and
//! how, link notices, client ids, closing, and many clients on one upstream socket.

use std::time::Duration;

use futures_util::future::join_all;
use ib_sim::Fault;
use tws_wire::ids::request as msg;
use tws_wire::reply::UNSET_DOUBLE;
use tws_wire::{Reply, Request, notice};

use crate::front_door::start_front_door;
use crate::support::wire::{Read, TEXT_VERSION, WireClient, is_error, is_farm_notice, tags};
use crate::support::{eventually, patience};

const WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn orders_are_refused_for_their_id_and_the_connection_stays_up() {
    let (stack, addr) = start_front_door().await;
    let (mut c, _) = WireClient::start(addr, 5).await;
    for (msg_id, id, name) in [
        (msg::PLACE_ORDER, 17, "placeOrder"),
        (msg::CANCEL_ORDER, 17, "cancelOrder"),
        (msg::EXERCISE_OPTIONS, 8, "exerciseOptions"),
        (msg::REQ_GLOBAL_CANCEL, -1, "reqGlobalCancel"),
    ] {
        c.request(&Request::OrderClass { msg_id, id }).await;
        let r = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
        assert_eq!(r, Reply::error(id, notice::READ_ONLY_CODE, notice::read_only(name)));
    }
    // Requests the front door does not serve are named, for their request id, not ignored.
    for (msg_id, id, name) in
        [(msg::REQ_MKT_DATA, 42, "reqMktData"), (msg::REQ_HISTORICAL_DATA, 43, "reqHistoricalData")]
    {
        c.request(&Request::Unsupported { msg_id, id }).await;
        let r = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
        assert!(
            matches!(&r, Reply::Error { id: got, code: notice::UNSUPPORTED_CODE, message } if *got == id && message.contains(name)),
            "{r:?}"
        );
    }
    // What ib_async asks at connect completes, and the connection still answers.
    c.request(&Request::OpenOrders).await;
    assert_eq!(c.read_until(WITHIN, |r| !is_farm_notice(r)).await, Reply::OpenOrderEnd);
    c.request(&Request::CompletedOrders).await;
    assert_eq!(c.read_until(WITHIN, |r| !is_farm_notice(r)).await, Reply::CompletedOrdersEnd);
    c.request(&Request::Executions { req_id: 3 }).await;
    assert_eq!(c.read_until(WITHIN, |r| !is_farm_notice(r)).await, Reply::ExecutionDataEnd { req_id: 3 });
    c.request(&Request::CurrentTime).await;
    assert!(matches!(c.read_until(WITHIN, |r| !is_farm_notice(r)).await, Reply::CurrentTime(_)));
    drop(c);
    // Nothing reached upstream: stop_and_check asserts the simulator's order counter is 0.
    stack.stop_and_check().await;
}

#[tokio::test]
async fn what_one_client_can_make_the_service_do_is_bounded() {
    let (stack, addr) = start_front_door().await;
    let (mut c, _) = WireClient::start(addr, 16).await;
    // reqMarketDataType is fire and forget, as at a gateway: no error.
    c.request(&Request::Unsupported { msg_id: msg::REQ_MARKET_DATA_TYPE, id: -1 }).await;
    c.request(&Request::CurrentTime).await;
    assert!(matches!(c.read_until(WITHIN, |r| !is_farm_notice(r)).await, Reply::CurrentTime(_)));

    // PnL subscriptions beyond the per-kind limit are refused with 322 for their id.
    for req_id in 0..256 {
        c.request(&Request::Pnl { req_id, account: "DU1234567".into() }).await;
    }
    c.request(&Request::Pnl { req_id: 999, account: "DU1234567".into() }).await;
    let refused = c
        .read_find(WITHIN, |r| match r {
            Reply::Error { id: 999, code, message } => Some((code, message)),
            _ => None,
        })
        .await;
    assert_eq!(refused, (notice::UNSUPPORTED_CODE, notice::too_many("PnL", 256)));
    // Re-using an open id replaces that subscription and is allowed.
    c.request(&Request::Pnl { req_id: 5, account: "DU1234567".into() }).await;
    c.request(&Request::CurrentTime).await;
    c.read_until(WITHIN, |r| matches!(r, Reply::CurrentTime(_))).await;

    // Thousands of requests in one write are answered in slices, every one of them.
    let mut burst = Vec::new();
    for _ in 0..2_000 {
        tws_wire::frame::put_frame(&mut burst, &Request::Positions.encode_text(c.version()));
    }
    c.send_raw_frames(&burst).await;
    let mut ends = 0;
    while ends < 2_000 {
        if c.read_until(WITHIN, |r| matches!(r, Reply::PositionEnd)).await == Reply::PositionEnd {
            ends += 1;
        }
    }
    drop(c);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn versions_are_negotiated_like_a_gateway() {
    let (stack, addr) = start_front_door().await;
    for (range, expect) in
        [("v100..178", Read::Hello(178)), ("v100..205", Read::Hello(200)), ("v213..226", Read::Hello(226))]
    {
        let mut c = WireClient::connect(addr).await.unwrap();
        assert_eq!(c.hello(range).await, expect, "{range}");
    }
    let mut c = WireClient::connect(addr).await.unwrap();
    assert_eq!(c.hello("v227..230").await, Read::Eof, "no common version: closed without an answer");
    // Below the API's floor of 100, as a gateway: closed without an answer.
    for range in ["v0..0", "v38..99", "v99"] {
        let mut c = WireClient::connect(addr).await.unwrap();
        assert_eq!(c.hello(range).await, Read::Eof, "{range}");
    }
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_duplicate_client_id_gets_326_and_a_close_and_the_id_frees_on_close() {
    let (stack, addr) = start_front_door().await;
    let (first, _) = WireClient::start(addr, 9).await;
    let mut dup = WireClient::connect(addr).await.unwrap();
    assert_eq!(dup.hello("v100..178").await, Read::Hello(TEXT_VERSION));
    dup.request(&Request::StartApi { client_id: 9 }).await;
    assert_eq!(
        dup.read(WITHIN).await,
        Read::Reply(Reply::error(-1, notice::CLIENT_ID_IN_USE_CODE, notice::client_id_in_use(9)))
    );
    assert_eq!(dup.read(WITHIN).await, Read::Eof);
    drop(first);
    // Once the first client is gone, its id is free again.
    eventually("client id 9 to be free", patience(WITHIN), || async {
        let mut c = WireClient::connect(addr).await.ok()?;
        (c.hello("v100..178").await == Read::Hello(TEXT_VERSION)).then_some(())?;
        c.request(&Request::StartApi { client_id: 9 }).await;
        matches!(c.read(WITHIN).await, Read::Reply(Reply::ManagedAccounts(_))).then_some(())
    })
    .await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn the_link_is_passed_through_and_nothing_flows_while_it_is_down() {
    let (stack, addr) = start_front_door().await;
    let sim = stack.sim();
    let (mut c, _) = WireClient::start(addr, 11).await;
    c.request(&Request::Positions).await;
    c.read_until(WITHIN, |r| *r == Reply::PositionEnd).await;

    sim.inject(Fault::LinkLost { restore_ms: 300, data_lost: true }).unwrap();
    c.read_until(WITHIN, is_error(notice::LINK_LOST.0)).await;
    // Until the link is back, only farm notices: no row from a state that is not live.
    let restored = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
    assert_eq!(
        restored,
        Reply::error(-1, notice::LINK_RESTORED_DATA_MAINTAINED.0, notice::LINK_RESTORED_DATA_MAINTAINED.1)
    );
    // The subscription was kept through the outage: a change now reaches it.
    let mut aapl = sim.positions().into_iter().find(|p| p.con_id == 265598 && p.account == "DU1234567").unwrap();
    aapl.quantity = "77".into();
    sim.upsert_positions(vec![aapl]).unwrap();
    let row = c.read_find(WITHIN, |r| match r {
        Reply::Position(p) if p.contract.con_id == 265598 && p.account == "DU1234567" && p.quantity == "77" => Some(p),
        _ => None,
    });
    row.await;
    drop(c);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn farm_notices_mirror_upstream_and_account_data_keeps_flowing() {
    let (stack, addr) = start_front_door().await;
    let (mut c, _) = WireClient::start(addr, 14).await;
    stack.sim().inject(Fault::Farm { name: "usfarm".into(), state: ib_sim::FarmState::Broken }).unwrap();
    let broken = notice::farm(notice::code::MARKET_FARM_BROKEN, "usfarm").unwrap();
    c.read_until(WITHIN, |r| *r == Reply::error(-1, notice::code::MARKET_FARM_BROKEN, broken.clone())).await;
    // A broken market-data farm carries no account data: positions still answer, and no 1100.
    c.request(&Request::Positions).await;
    let r = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
    assert!(matches!(r, Reply::Position(_)), "{r:?}");
    stack.sim().inject(Fault::Farm { name: "usfarm".into(), state: ib_sim::FarmState::Ok }).unwrap();
    let ok = notice::farm(notice::code::MARKET_FARM_OK, "usfarm").unwrap();
    c.read_until(WITHIN, |r| *r == Reply::error(-1, notice::code::MARKET_FARM_OK, ok.clone())).await;
    // A client connecting now is told the farms as they are.
    let (mut late, startup) = WireClient::start(addr, 15).await;
    if !startup.contains(&Reply::error(-1, notice::code::MARKET_FARM_OK, ok.clone())) {
        // The farms come in name order; the start-up read stops at the sec-def farm.
        late.read_until(WITHIN, |r| *r == Reply::error(-1, notice::code::MARKET_FARM_OK, ok.clone())).await;
    }
    drop(c);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn summary_updates_and_pnl_come_from_the_shared_state() {
    let (stack, addr) = start_front_door().await;
    let sim = stack.sim();
    let (mut c, _) = WireClient::start(addr, 12).await;
    let summary = |req_id, t: &str, group: &str| Request::AccountSummary { req_id, group: group.into(), tags: tags(t) };
    c.request(&summary(1, "NetLiquidation,$LEDGER:EUR", "All")).await;
    let mut rows = Vec::new();
    loop {
        match c.read_until(WITHIN, |r| !is_farm_notice(r)).await {
            Reply::AccountSummary { req_id: 1, account, tag, currency, .. } => rows.push((account, tag, currency)),
            Reply::AccountSummaryEnd { req_id: 1 } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(rows.iter().filter(|r| r.1 == "NetLiquidation").count() == 2, "{rows:?}");
    assert!(rows.iter().filter(|r| r.1 != "NetLiquidation").all(|r| r.2 == "EUR"), "{rows:?}");
    assert!(rows.iter().any(|r| r.2 == "EUR"), "{rows:?}");
    // One account as the group; a third subscription is refused as by a gateway.
    c.request(&summary(2, "NetLiquidation", "DU7654321")).await;
    let r = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
    assert!(matches!(&r, Reply::AccountSummary { req_id: 2, account, .. } if account == "DU7654321"), "{r:?}");
    c.read_until(WITHIN, |r| *r == Reply::AccountSummaryEnd { req_id: 2 }).await;
    c.request(&summary(3, "NetLiquidation", "All")).await;
    c.read_until(WITHIN, |r| *r == Reply::error(3, notice::TOO_MANY_SUMMARIES.0, notice::TOO_MANY_SUMMARIES.1)).await;

    // Account updates: values, valued portfolio rows, the time, the end.
    c.request(&Request::AccountUpdates { subscribe: true, account: "DU1234567".into() }).await;
    let (mut values, mut portfolio) = (0, Vec::new());
    loop {
        match c.read_until(WITHIN, |r| !is_farm_notice(r)).await {
            Reply::AccountValue { account, .. } if account == "DU1234567" => values += 1,
            Reply::Portfolio(p) => portfolio.push(p),
            Reply::AccountUpdateTime(_) => {}
            Reply::AccountDownloadEnd(a) if a == "DU1234567" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(values > 10, "{values} values");
    let held = sim.positions().into_iter().filter(|p| p.account == "DU1234567").count();
    assert_eq!(portfolio.len(), held);
    let aapl = portfolio.into_iter().find(|p| p.contract.con_id == 265598).expect("AAPL row");
    // READY comes before the service's PnL has answered: until it has, a valuation is IB's "no
    // value", never a guess; the valued row follows as soon as PnL is live.
    let value = if aapl.market_value == UNSET_DOUBLE {
        c.read_find(WITHIN, |r| match r {
            Reply::Portfolio(p) if p.contract.con_id == 265598 && p.market_value != UNSET_DOUBLE => {
                Some(p.market_value)
            }
            _ => None,
        })
        .await
    } else {
        aapl.market_value
    };
    let truth = sim.position_pnl("DU1234567", 265598).expect("held");
    assert!((value - truth.value).abs() < 1e-6, "{value} vs {truth:?}");

    // Account updates multi: every value of the account, each tagged with the request, then the end.
    c.request(&Request::AccountUpdatesMulti { req_id: 6, account: "DU7654321".into() }).await;
    let mut multi = 0;
    loop {
        match c.read_until(WITHIN, |r| !is_farm_notice(r)).await {
            Reply::AccountUpdateMulti { req_id: 6, account, .. } if account == "DU7654321" => multi += 1,
            Reply::AccountUpdateMultiEnd { req_id: 6 } => break,
            // Pushed rows of the subscriptions above may interleave.
            Reply::AccountSummary { .. } | Reply::AccountValue { .. } | Reply::Portfolio(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(multi > 5, "{multi} values");

    c.request(&Request::Pnl { req_id: 4, account: "DU1234567".into() }).await;
    let daily = c
        .read_find(WITHIN, |r| match r {
            Reply::Pnl { req_id: 4, daily, .. } => Some(daily),
            _ => None,
        })
        .await;
    assert!((daily - sim.pnl("DU1234567").expect("account").daily).abs() < 1e-6);
    c.request(&Request::Pnl { req_id: 5, account: "NOPE".into() }).await;
    c.read_until(WITHIN, |r| *r == Reply::error(5, notice::INVALID_CODE, notice::unknown_account("NOPE"))).await;
    c.request(&Request::CancelPnlSingle { req_id: 4 }).await;
    c.read_until(WITHIN, is_error(notice::PNL_SINGLE_NOT_SUBSCRIBED.0)).await;
    drop(c);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn stopping_the_service_closes_every_client_cleanly() {
    let (stack, addr) = start_front_door().await;
    let (mut c, _) = WireClient::start(addr, 13).await;
    let reader = tokio::spawn(async move {
        loop {
            match c.read(Duration::from_secs(30)).await {
                Read::Reply(_) => {}
                other => return other,
            }
        }
    });
    stack.stop_and_check().await;
    assert_eq!(reader.await.unwrap(), Read::Eof, "a FIN, not a reset or silence");
}

/// Far beyond a gateway's 32: many clients, every one served, one upstream socket.
const MANY: usize = 500;

#[tokio::test]
async fn five_hundred_clients_share_one_upstream_socket() {
    // Both ends of every connection live in this process.
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files: Option<usize> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok());
    if let Some(soft) = open_files {
        assert!(
            soft >= 2 * MANY + 256,
            "this test needs `ulimit -n` ≥ {} (scripts/test raises it); it is {soft}",
            2 * MANY + 256
        );
    }
    let (stack, addr) = start_front_door().await;
    let sim = stack.sim();
    let upstream_positions = sim.stats().requests.get("positions").copied();
    let held = sim.positions().len();
    // Connected in waves, so the test also passes where the listen backlog is small.
    let mut clients = Vec::with_capacity(MANY);
    for wave in (0..MANY).collect::<Vec<_>>().chunks(100) {
        let started = join_all(wave.iter().map(|i| WireClient::start(addr, 1_000 + *i as i32))).await;
        clients.extend(started.into_iter().map(|(c, _)| c));
    }
    let counts = join_all(clients.iter_mut().map(|c| async move {
        c.request(&Request::Positions).await;
        let mut n = 0;
        loop {
            match c.read_until(WITHIN, |r| !is_farm_notice(r)).await {
                Reply::Position(_) => n += 1,
                Reply::PositionEnd => return n,
                other => panic!("unexpected {other:?}"),
            }
        }
    }))
    .await;
    assert!(counts.iter().all(|n| *n == held), "every client got every position");
    let stats = sim.stats();
    assert_eq!(stats.open_now, 1, "one upstream socket while {MANY} clients are connected");
    assert_eq!(stats.requests.get("positions").copied(), upstream_positions, "no upstream request per client");
    drop(clients);
    stack.stop_and_check().await;
}

/// The server side's send queue (bytes written but not yet taken by the peer) of the front-door
/// connection whose client is at `client_port`, as `ss` lists it.
fn server_send_queue(front_door_port: u16, client_port: u16) -> Option<u64> {
    let filter = format!("( sport = :{front_door_port} and dport = :{client_port} )");
    let out = std::process::Command::new("ss")
        .args(["-Htn", "state", "established", &filter])
        .output()
        .expect("ss (iproute2) is installed by the test command");
    // Columns: Recv-Q Send-Q Local Peer.
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).and_then(|q| q.parse().ok())
}

#[tokio::test]
async fn an_answer_interrupted_by_shutdown_is_finished_not_repeated() {
    let (stack, addr) = start_front_door().await;
    let held = stack.sim().positions().len();
    let c = WireClient::connect_with_receive_buffer(addr, 16 * 1024).await.unwrap();
    let (mut c, _) = c.start_as(21).await;
    let client_port = c.stream.local_addr().unwrap().port();
    // Far more answers than the socket buffers hold, and a client that reads none of them: the
    // service's write stops halfway through its output.
    let mut burst = Vec::new();
    for _ in 0..40_000 {
        tws_wire::frame::put_frame(&mut burst, &Request::Positions.encode_text(c.version()));
    }
    c.send_raw_frames(&burst).await;
    let mut last = None;
    eventually("the service's write to block", patience(WITHIN), || {
        let now = server_send_queue(addr.port(), client_port).filter(|q| *q > 0);
        let blocked = now.is_some() && now == last;
        last = now;
        async move { blocked.then_some(()) }
    })
    .await;

    // Shutdown starts while that write is pending: the stop is polled first and cancels at
    // once, and on this test's single-threaded runtime the connection's task, woken by the
    // cancel, runs before the reader's first read (the reader yields first), so the connection
    // leaves its interrupted write before the client makes room for more. The client then reads
    // as fast as it can, so that the shutdown's brief grace suffices. What arrives must still be
    // whole answers, each exactly the positions and their end, until the FIN.
    let reader = async move {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        (c.read_to_end().await, c.version())
    };
    let (_, (mut bytes, version)) = tokio::join!(stack.stop_and_check(), reader);
    let (mut in_answer, mut answers) = (0, 0);
    loop {
        match tws_wire::frame::take_frame(&mut bytes) {
            Ok(Some(body)) => match tws_wire::reply::decode_text(&body, version) {
                Ok(Reply::Position(_)) if in_answer < held => in_answer += 1,
                Ok(Reply::PositionEnd) if in_answer == held => (in_answer, answers) = (0, answers + 1),
                Ok(r) if is_farm_notice(&r) => {}
                other => panic!("{other:?} after {in_answer} positions of answer {answers}"),
            },
            // The last write may be cut short by the shutdown's brief grace, never repeated.
            Ok(None) => break,
            Err(e) => panic!("{e} after {in_answer} positions of answer {answers}"),
        }
    }
    assert!(answers > 0, "answers arrived before the FIN");
}

#[tokio::test]
async fn a_frame_of_a_million_empty_fields_is_malformed() {
    let (stack, addr) = start_front_door().await;
    let (mut c, _) = WireClient::start(addr, 22).await;
    // A request the front door answers, padded with NULs to the largest frame it accepts.
    let mut body = Request::CurrentTime.encode_text(c.version());
    body.resize(tws_wire::frame::MAX_CLIENT_FRAME, 0);
    c.send_raw_frame(&body).await;
    let r = c.read_until(WITHIN, |r| !is_farm_notice(r)).await;
    assert!(matches!(&r, Reply::Error { id: -1, code: notice::UNREADABLE_CODE, .. }), "{r:?}");
    assert_eq!(c.read(WITHIN).await, Read::Eof, "closed as malformed input");
    stack.stop_and_check().await;
}
