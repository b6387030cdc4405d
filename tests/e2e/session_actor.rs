//! The session actor as the gateway sees it: the simulator behind a relay that records every
//! request in the order it reached the gateway (the simulator's statistics count requests, but
//! do not order them), and that can stop passing the gateway's answers on (a half-open link at a
//! moment the test chooses, not one a simulator connection picks up later).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use gateway_proto::pb;
use gateway_svc::Running;
use gateway_svc::Settings;
use ib_sim::{Fault, Scenario, Sim};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tws_wire::{Codec, decode_request, frame};

use crate::support::stack::{Client, connect, fast_settings};
use crate::support::{eventually, patience, start_sim_with};

const WITHIN: Duration = Duration::from_secs(10);

/// Requests as they reached the gateway, by name (`tws_wire::Request::name`), every connection's.
type Log = Arc<Mutex<Vec<String>>>;

/// A TCP relay in front of the simulator's API port.
struct Relay {
    addr: SocketAddr,
    log: Log,
    /// While set, the gateway's answers are dropped instead of passed on.
    silent: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (log, silent) = (Log::default(), Arc::new(AtomicBool::new(false)));
        let (l, s) = (Arc::clone(&log), Arc::clone(&silent));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream, Arc::clone(&l), Arc::clone(&s)));
            }
        });
        Relay { addr, log, silent }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Requests received since `mark` (a length of [`Relay::requests`]).
    fn since(&self, mark: usize) -> Vec<String> {
        self.requests().split_off(mark)
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, log: Log, silent: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let version = Arc::new(OnceLock::new());
    let (client_rx, client_tx) = client.into_split();
    let (server_rx, server_tx) = server.into_split();
    tokio::join!(
        requests(client_rx, server_tx, log, Arc::clone(&version)),
        answers(server_rx, client_tx, version, silent)
    );
}

/// Client to gateway: every request is logged before it is passed on, so nothing the gateway
/// answers can precede its entry. A half-close is passed on as one (FIN for FIN).
async fn requests(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, log: Log, version: Arc<OnceLock<u32>>) {
    let (mut buf, mut greeted, mut chunk) = (BytesMut::new(), false, vec![0u8; 16 * 1024]);
    while let Ok(n @ 1..) = from.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
        greeted = greeted || matches!(frame::take_handshake(&mut buf), Ok(Some(_)));
        while greeted && let Ok(Some(body)) = frame::take_frame(&mut buf) {
            // The gateway's hello precedes every request the client sends after its own.
            let name = match version.get() {
                Some(&v) => {
                    decode_request(&body, Codec::for_version(v), v).map_or_else(|e| format!("?{e}"), |r| r.name())
                }
                None => "?before the hello".into(),
            };
            log.lock().unwrap().push(name);
        }
        if to.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Gateway to client: learns the negotiated version from the hello, then passes bytes on, or
/// drops them while `silent`.
async fn answers(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    version: Arc<OnceLock<u32>>,
    silent: Arc<AtomicBool>,
) {
    let (mut buf, mut chunk) = (BytesMut::new(), vec![0u8; 16 * 1024]);
    while let Ok(n @ 1..) = from.read(&mut chunk).await {
        if version.get().is_none() {
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(Some(hello)) = frame::take_frame(&mut buf)
                && let Some((v, _)) = frame::parse_server_hello(&hello)
            {
                let _ = version.set(v);
            }
        }
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

struct Rig {
    sim: Sim,
    relay: Relay,
    service: Running,
    client: Client,
}

/// The simulator, the relay in front of it, and the service dialling the relay; once READY.
async fn start(mut settings: Settings, scenario: Scenario) -> Rig {
    let sim = start_sim_with(scenario).await;
    let relay = Relay::start(sim.api_addr()).await;
    settings.upstream.address = relay.addr.to_string();
    let service = gateway_svc::start(settings.validate().expect("valid settings"), CancellationToken::new())
        .await
        .expect("service starts");
    let client = connect(service.grpc_addr).await;
    let rig = Rig { sim, relay, service, client };
    eventually("the session to be READY", WITHIN, || async {
        let h = rig.client.clone().get_health(pb::GetHealthRequest {}).await.ok()?.into_inner().health?;
        (h.state == pb::SessionState::Ready as i32).then_some(())
    })
    .await;
    rig
}

impl Rig {
    /// Position PnL is LIVE with a row for every held position.
    async fn wait_position_pnl_live(&self) {
        let held = self.sim.positions().len();
        eventually("position PnL LIVE for every held position", WITHIN, || async {
            let r = self.client.clone().get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok()?.into_inner();
            let live = r.freshness.is_some_and(|f| f.state == pb::FreshnessState::Live as i32);
            (live && r.positions.len() == held).then_some(())
        })
        .await;
    }

    /// Waits until `name` reaches the gateway after `mark`.
    async fn wait_request(&self, name: &str, mark: usize) {
        eventually(&format!("a {name} request"), WITHIN, || async {
            self.relay.since(mark).iter().any(|r| r == name).then_some(())
        })
        .await;
    }

    /// Stops the service and returns whether it stopped within its grace, and how long it took.
    async fn stop(self) -> (bool, Duration) {
        let Rig { sim, relay: _relay, service, client } = self;
        drop(client);
        let started = Instant::now();
        let clean = service.stop().await;
        let took = started.elapsed();
        let stats = sim.stats();
        assert_eq!(stats.order_messages, 0, "read-only by construction");
        assert!(stats.peak_concurrent <= 1, "one upstream socket at a time: {stats:?}");
        sim.shutdown().await;
        (clean, took)
    }
}

fn count(requests: &[String], name: &str) -> usize {
    requests.iter().filter(|r| *r == name).count()
}

#[tokio::test]
async fn on_1101_the_old_subscriptions_are_cancelled_before_any_new_request() {
    let rig = start(fast_settings(), Scenario { pnl_interval_ms: 50, ..Scenario::default() }).await;
    rig.wait_position_pnl_live().await;
    let (held, accounts) = (rig.sim.positions().len(), 2);
    let mark = rig.relay.requests().len();
    rig.sim.inject(Fault::LinkLost { restore_ms: 50, data_lost: true }).unwrap();
    // Resubscribed: every position's PnL asked for again.
    eventually("every PnL subscription made again after 1101", WITHIN, || async {
        (count(&rig.relay.since(mark), "pnl_single") == held).then_some(())
    })
    .await;
    rig.wait_position_pnl_live().await;
    let after = rig.relay.since(mark);
    let first_new = after
        .iter()
        .position(|r| ["managed_accounts", "positions", "account_summary", "pnl", "pnl_single"].contains(&r.as_str()))
        .expect("new requests");
    let (cancels, rest) = after.split_at(first_new);
    let cancels: Vec<&String> = cancels.iter().filter(|r| r.starts_with("cancel_")).collect();
    assert_eq!(
        cancels.len(),
        2 + accounts + held,
        "every old subscription cancelled before the first new request: {after:?}"
    );
    assert!(!rest.iter().any(|r| r.starts_with("cancel_")), "and no cancel after it: {after:?}");
    assert_eq!(count(&after, "cancel_positions"), 1, "{after:?}");
    assert_eq!(count(&after, "cancel_account_summary"), 1, "{after:?}");
    assert_eq!(count(&after, "cancel_pnl"), accounts, "{after:?}");
    assert_eq!(count(&after, "cancel_pnl_single"), held, "{after:?}");
    let (clean, _) = rig.stop().await;
    assert!(clean, "service stopped within its grace");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_an_unanswered_probe() {
    let mut settings = fast_settings();
    // A probe that would hold shutdown for far longer than the grace (4 s).
    settings.upstream.probe_timeout_ms = 60_000;
    let rig = start(settings, Scenario::default()).await;
    rig.wait_position_pnl_live().await;
    // Half-open from here on: the gateway's answers never reach the service.
    rig.relay.silent.store(true, Ordering::SeqCst);
    let mark = rig.relay.requests().len();
    rig.wait_request("current_time", mark).await;
    let (clean, took) = rig.stop().await;
    assert!(clean, "stopped within the grace, with the probe still unanswered (took {took:?})");
    assert!(took < patience(Duration::from_secs(2)), "promptly: {took:?}");
}

#[tokio::test]
async fn shutdown_does_not_wait_for_paced_pnl_requests() {
    let mut settings = fast_settings();
    // One message a second: a step of PnL subscriptions (two accounts, four positions) takes
    // about six seconds, longer than the grace (4 s).
    settings.upstream.max_messages_per_second = 1;
    settings.upstream.sync_timeout_ms = 30_000;
    settings.upstream.probe_timeout_ms = 10_000;
    let sim_positions = Scenario::default().positions.len();
    assert!(sim_positions >= 4, "enough positions for a long step");
    let rig = start(settings, Scenario::default()).await;
    // READY comes before PnL: the first account PnL request starts the paced step.
    rig.wait_request("pnl", 0).await;
    assert_eq!(count(&rig.relay.requests(), "pnl_single"), 0, "the step is still under way");
    let (clean, took) = rig.stop().await;
    assert!(clean, "stopped within the grace, in the middle of the paced step (took {took:?})");
    assert!(took < patience(Duration::from_secs(2)), "promptly: {took:?}");
}

/// (account, con_id) of every position the simulator holds.
fn book_keys(sim: &Sim) -> Vec<(String, i64)> {
    let mut keys: Vec<_> = sim.positions().into_iter().map(|p| (p.account, i64::from(p.con_id))).collect();
    keys.sort();
    keys
}

/// The default book and `extra` more stock positions of the account that sorts last, with
/// contract ids above every other: the last keys in PnL's order.
fn with_extra_positions(extra: i32) -> Scenario {
    let mut s = Scenario { pnl_interval_ms: 50, ..Scenario::default() };
    let last = s.positions.iter().map(|p| p.account.clone()).max().expect("positions");
    let template = s.positions.iter().find(|p| p.account == last && p.sec_type == "STK").expect("a stock").clone();
    for i in 0..extra {
        let mut p = template.clone();
        p.con_id = 900_000_000 + i;
        p.symbol = format!("ZZ{i}");
        p.local_symbol = p.symbol.clone();
        p.trading_class = p.symbol.clone();
        s.positions.push(p);
    }
    s
}

#[tokio::test]
async fn a_position_closed_while_its_pnl_waits_for_its_turn_after_1101_does_not_hold_pnl_back() {
    let mut settings = fast_settings();
    // Paced, so that after 1101 the PnL set is subscribed over a few seconds, a few keys per
    // turn; and a sync timeout far beyond the test's deadline: PnL published only at the
    // timeout fails the test.
    settings.upstream.max_messages_per_second = 10;
    settings.upstream.sync_timeout_ms = 120_000;
    let rig = start(settings, with_extra_positions(20)).await;
    rig.wait_position_pnl_live().await;
    let mark = rig.relay.requests().len();
    rig.sim.inject(Fault::LinkLost { restore_ms: 50, data_lost: true }).unwrap();
    // The new PnL set has begun (it waits for every held position); the last position in key
    // order gets its request's turn last, a few turns later. Close it, and change another.
    rig.wait_request("pnl", mark).await;
    let mut book = rig.sim.positions();
    book.sort_by_key(|p| (p.account.clone(), p.con_id));
    let mut closed = book.pop().expect("a position");
    closed.quantity = "0".into();
    let mut changed = book.pop().expect("another");
    changed.quantity = format!("{}", changed.quantity.parse::<f64>().unwrap() + 1.0);
    rig.sim.upsert_positions(vec![closed.clone(), changed]).unwrap();
    let want = book_keys(&rig.sim);
    assert!(!want.contains(&(closed.account.clone(), i64::from(closed.con_id))), "closed in the book");
    eventually("position PnL LIVE for the positions still held", WITHIN, || async {
        let r = rig.client.clone().get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok()?.into_inner();
        let live = r.freshness.is_some_and(|f| f.state == pb::FreshnessState::Live as i32);
        let mut served: Vec<_> = r.positions.iter().map(|p| (p.account.clone(), p.con_id)).collect();
        served.sort();
        (live && served == want).then_some(())
    })
    .await;
    let after = rig.relay.since(mark);
    assert!(count(&after, "start_api") == 0, "the same session throughout: {after:?}");
    let (clean, _) = rig.stop().await;
    assert!(clean);
}

#[tokio::test]
async fn idle_probes_send_watch_health_nothing() {
    // Prices stand still and nothing changes: the session is idle and probes.
    let rig = start(fast_settings(), Scenario::default()).await;
    rig.wait_position_pnl_live().await;
    let mut health = rig.client.clone().watch_health(pb::WatchHealthRequest {}).await.unwrap().into_inner();
    let first = health.message().await.unwrap().expect("the current health");
    let mark = rig.relay.requests().len();
    // A third probe is sent only once the second was answered (one at a time).
    eventually("three liveness probes", WITHIN, || async {
        (count(&rig.relay.since(mark), "current_time") >= 3).then_some(())
    })
    .await;
    let next = health.message().now_or_never();
    assert!(next.is_none(), "answered probes changed nothing a client can see: {next:?} after {first:?}");
    let h = rig.client.clone().get_health(pb::GetHealthRequest {}).await.unwrap().into_inner().health.unwrap();
    assert!(h.last_probe_rtt_ms > 0.0, "GetHealth has the last round trip: {h:?}");
    drop(health);
    let (clean, _) = rig.stop().await;
    assert!(clean);
}
