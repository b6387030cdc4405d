//! The follower against a small in-process gateway on a real loopback socket, whose position
//! streams are scripted message by message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_proto::pb;
use gateway_proto::pb::gateway_service_server::{GatewayService, GatewayServiceServer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::*;
use crate::kind::{Positions, Summary};
use crate::view::FreshnessState;

type Scripted<M> = Pin<Box<dyn futures_util::Stream<Item = Result<M, Status>> + Send + 'static>>;
type Sender = mpsc::Sender<Result<pb::WatchPositionsResponse, Status>>;

/// The position streams to serve, one per WatchPositions call, in order.
#[derive(Debug, Default)]
struct Script {
    streams: Mutex<VecDeque<mpsc::Receiver<Result<pb::WatchPositionsResponse, Status>>>>,
    opens: AtomicUsize,
}

impl Script {
    /// The next stream to be opened: what is sent on the returned sender is what it carries;
    /// dropping the sender ends it.
    fn stream(&self) -> Sender {
        let (tx, rx) = mpsc::channel(16);
        self.streams.lock().unwrap().push_back(rx);
        tx
    }

    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
struct Gateway(Arc<Script>);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl GatewayService for Gateway {
    type WatchPositionsStream = Scripted<pb::WatchPositionsResponse>;
    type WatchAccountSummaryStream = Scripted<pb::WatchAccountSummaryResponse>;
    type WatchHealthStream = Scripted<pb::WatchHealthResponse>;
    type WatchAccountPnlStream = Scripted<pb::WatchAccountPnlResponse>;
    type WatchPositionPnlStream = Scripted<pb::WatchPositionPnlResponse>;

    async fn list_accounts(
        &self,
        _: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        unimplemented()
    }
    async fn get_positions(
        &self,
        _: Request<pb::GetPositionsRequest>,
    ) -> Result<Response<pb::GetPositionsResponse>, Status> {
        unimplemented()
    }
    async fn watch_positions(
        &self,
        _: Request<pb::WatchPositionsRequest>,
    ) -> Result<Response<Self::WatchPositionsStream>, Status> {
        self.0.opens.fetch_add(1, Ordering::SeqCst);
        let next = self.0.streams.lock().unwrap().pop_front();
        let mut rx = next.ok_or_else(|| Status::unavailable("no stream scripted"))?;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Response::new(Box::pin(stream)))
    }
    async fn get_account_summary(
        &self,
        _: Request<pb::GetAccountSummaryRequest>,
    ) -> Result<Response<pb::GetAccountSummaryResponse>, Status> {
        unimplemented()
    }
    async fn watch_account_summary(
        &self,
        _: Request<pb::WatchAccountSummaryRequest>,
    ) -> Result<Response<Self::WatchAccountSummaryStream>, Status> {
        unimplemented()
    }
    async fn get_health(&self, _: Request<pb::GetHealthRequest>) -> Result<Response<pb::GetHealthResponse>, Status> {
        unimplemented()
    }
    async fn watch_health(
        &self,
        _: Request<pb::WatchHealthRequest>,
    ) -> Result<Response<Self::WatchHealthStream>, Status> {
        unimplemented()
    }
    async fn get_account_pnl(
        &self,
        _: Request<pb::GetAccountPnlRequest>,
    ) -> Result<Response<pb::GetAccountPnlResponse>, Status> {
        unimplemented()
    }
    async fn watch_account_pnl(
        &self,
        _: Request<pb::WatchAccountPnlRequest>,
    ) -> Result<Response<Self::WatchAccountPnlStream>, Status> {
        unimplemented()
    }
    async fn get_position_pnl(
        &self,
        _: Request<pb::GetPositionPnlRequest>,
    ) -> Result<Response<pb::GetPositionPnlResponse>, Status> {
        unimplemented()
    }
    async fn watch_position_pnl(
        &self,
        _: Request<pb::WatchPositionPnlRequest>,
    ) -> Result<Response<Self::WatchPositionPnlStream>, Status> {
        unimplemented()
    }
}

/// The scripted gateway, serving on a loopback port until stopped.
struct Server {
    addr: SocketAddr,
    script: Arc<Script>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves on `addr` (port 0: any).
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Script::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let router =
            tonic::transport::Server::builder().add_service(GatewayServiceServer::new(Gateway(script.clone())));
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { addr, script, stop, task }
    }

    /// Stops accepting and waits until the port is closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        within(self.task).await.unwrap();
    }
}

/// Dials `addr` for every attempt, as the bridge does.
struct Dial(SocketAddr);

impl Connect for Dial {
    fn connect(&self) -> impl Future<Output = Result<Client, ConnectError>> + Send {
        let addr = format!("http://{}", self.0);
        async move { crate::connect(&addr, None, Duration::from_secs(1)).await }
    }
}

fn options() -> Options {
    Options {
        backoff: ibgw_kit::BackoffPolicy::clamped(Duration::from_millis(10), Duration::from_millis(50)),
        not_served_retry: None,
    }
}

fn patience(d: Duration) -> Duration {
    let factor: u32 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    d * factor.max(1)
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(patience(Duration::from_secs(5)), f).await.expect("in time")
}

async fn update(f: &mut Follower<Positions, Dial>) -> Update<Positions> {
    match within(f.next()).await {
        Event::Update(u) => u,
        Event::Lost(l) => panic!("expected a message, the stream was lost: {l:?}"),
    }
}

async fn lost<K: Kind, C: Connect>(f: &mut Follower<K, C>) -> Lost {
    match within(f.next()).await {
        Event::Lost(l) => l,
        Event::Update(u) => panic!("expected a loss, got {u:?}"),
    }
}

fn pos(con_id: i64, qty: &str) -> pb::Position {
    pb::Position { account: "DU1".into(), con_id, quantity: qty.into(), ..Default::default() }
}

fn live() -> Option<pb::Freshness> {
    Some(pb::Freshness { state: pb::FreshnessState::Live as i32, ..Default::default() })
}

fn msg(kind: pb::UpdateKind, seq: u64, epoch: u64) -> pb::WatchPositionsResponse {
    pb::WatchPositionsResponse { kind: kind as i32, seq, session_epoch: epoch, freshness: live(), ..Default::default() }
}

fn snapshot(seq_epoch: u64, items: Vec<pb::Position>) -> pb::WatchPositionsResponse {
    pb::WatchPositionsResponse { items, ..msg(pb::UpdateKind::Snapshot, 1, seq_epoch) }
}

fn delta(seq: u64, epoch: u64, upserts: Vec<pb::Position>, removed: &[i64]) -> pb::WatchPositionsResponse {
    let removals = removed.iter().map(|c| pb::PositionKey { account: "DU1".into(), con_id: *c }).collect();
    pb::WatchPositionsResponse { upserts, removals, ..msg(pb::UpdateKind::Delta, seq, epoch) }
}

fn quantities<C>(f: &Follower<Positions, C>) -> Vec<(i64, String)>
where
    C: Connect,
{
    f.view().rows().values().map(|p| (p.con_id, p.quantity.clone())).collect()
}

async fn send(tx: &Sender, m: pb::WatchPositionsResponse) {
    tx.send(Ok(m)).await.unwrap();
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn snapshot_then_deltas_are_folded_in_order() {
    let server = Server::start(any_port()).await;
    let tx = server.script.stream();
    send(&tx, snapshot(1, vec![pos(1, "10"), pos(2, "20")])).await;
    send(&tx, delta(2, 1, vec![pos(1, "11")], &[])).await;
    send(&tx, delta(3, 1, vec![pos(3, "30")], &[2])).await;
    let mut f = Follower::<Positions, _>::new(Dial(server.addr), options());
    assert_eq!(update(&mut f).await.kind, UpdateKind::Snapshot);
    assert_eq!(quantities(&f), [(1, "10".into()), (2, "20".into())]);
    let u = update(&mut f).await;
    assert_eq!((u.kind, u.stamps.seq), (UpdateKind::Delta, 2));
    assert_eq!(quantities(&f), [(1, "11".into()), (2, "20".into())]);
    update(&mut f).await;
    assert_eq!(quantities(&f), [(1, "11".into()), (3, "30".into())]);
    assert_eq!(f.view().freshness().state, FreshnessState::Live);
    assert_eq!(server.script.opens(), 1);
    drop(f);
    server.stop().await;
}

#[tokio::test]
async fn a_seq_gap_reopens_the_stream_and_is_never_applied() {
    let server = Server::start(any_port()).await;
    let first = server.script.stream();
    send(&first, snapshot(1, vec![pos(1, "10")])).await;
    send(&first, delta(3, 1, vec![pos(1, "99")], &[])).await;
    let second = server.script.stream();
    send(&second, snapshot(1, vec![pos(1, "12")])).await;
    let mut f = Follower::<Positions, _>::new(Dial(server.addr), options());
    update(&mut f).await;
    let l = lost(&mut f).await;
    assert_eq!(l.cause, Cause::Gap(Gap::Seq { expected: 2, got: 3 }));
    assert_eq!(l.reason(), "gateway-svc stream skipped from seq 2 to 3");
    assert_eq!(quantities(&f), [(1, "10".into())], "the message after the gap is not applied");
    assert_eq!(f.view().freshness().state, FreshnessState::Stale);
    let u = update(&mut f).await;
    assert_eq!(u.kind, UpdateKind::Snapshot, "a new stream");
    assert_eq!(server.script.opens(), 2);
    assert_eq!(quantities(&f), [(1, "12".into())]);
    assert_eq!(f.view().freshness().state, FreshnessState::Live);
    drop((f, first, second));
    server.stop().await;
}

#[tokio::test]
async fn a_resync_after_stale_replaces_the_rows_on_the_same_stream() {
    let server = Server::start(any_port()).await;
    let tx = server.script.stream();
    send(&tx, snapshot(1, vec![pos(1, "10"), pos(2, "20")])).await;
    let stale = pb::Freshness {
        state: pb::FreshnessState::Stale as i32,
        since: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
        reason: "IB link lost (1100)".into(),
    };
    send(&tx, pb::WatchPositionsResponse { freshness: Some(stale), ..msg(pb::UpdateKind::Freshness, 2, 1) }).await;
    let resync = pb::WatchPositionsResponse {
        items: vec![pos(1, "11"), pos(3, "30")],
        upserts: vec![pos(1, "11"), pos(3, "30")],
        removals: vec![pb::PositionKey { account: "DU1".into(), con_id: 2 }],
        ..msg(pb::UpdateKind::Resync, 3, 2)
    };
    send(&tx, resync).await;
    let mut f = Follower::<Positions, _>::new(Dial(server.addr), options());
    update(&mut f).await;
    let u = update(&mut f).await;
    assert_eq!(u.kind, UpdateKind::Freshness);
    let fresh = f.view().freshness().clone();
    assert_eq!((fresh.state, fresh.reason.as_str()), (FreshnessState::Stale, "IB link lost (1100)"));
    assert_eq!(fresh.since.map(|t| t.seconds), Some(1_700_000_000));
    assert_eq!(quantities(&f), [(1, "10".into()), (2, "20".into())], "stale, not emptied");
    let u = update(&mut f).await;
    assert_eq!(u.kind, UpdateKind::Resync);
    assert_eq!(quantities(&f), [(1, "11".into()), (3, "30".into())]);
    assert_eq!((f.view().epoch(), f.view().freshness().state), (2, FreshnessState::Live));
    assert_eq!(server.script.opens(), 1, "a RESYNC needs no new stream");
    drop(f);
    server.stop().await;
}

#[tokio::test]
async fn an_epoch_change_without_resync_reopens_the_stream() {
    let server = Server::start(any_port()).await;
    let first = server.script.stream();
    send(&first, snapshot(1, vec![pos(1, "10")])).await;
    send(&first, delta(2, 2, vec![pos(1, "50")], &[])).await;
    let second = server.script.stream();
    send(&second, snapshot(2, vec![pos(1, "51")])).await;
    let mut f = Follower::<Positions, _>::new(Dial(server.addr), options());
    update(&mut f).await;
    let l = lost(&mut f).await;
    assert_eq!(l.cause, Cause::Gap(Gap::Epoch { from: 1, to: 2, seq: 2 }));
    assert_eq!(quantities(&f), [(1, "10".into())], "a delta of another session is not applied");
    update(&mut f).await;
    assert_eq!(server.script.opens(), 2);
    assert_eq!((f.view().epoch(), quantities(&f)), (2, vec![(1, "51".into())]));
    drop((f, first, second));
    server.stop().await;
}

#[tokio::test]
async fn the_stream_is_reopened_after_the_server_goes_away_and_comes_back() {
    let server = Server::start(any_port()).await;
    let addr = server.addr;
    let tx = server.script.stream();
    send(&tx, snapshot(1, vec![pos(1, "10")])).await;
    let mut f = Follower::<Positions, _>::new(Dial(addr), options());
    update(&mut f).await;
    // The service shuts down as gateway-svc does: the stream ends with UNAVAILABLE.
    tx.send(Err(Status::unavailable("shutting down"))).await.unwrap();
    drop(tx);
    let l = lost(&mut f).await;
    assert_eq!(l.cause, Cause::Failed(tonic::Code::Unavailable));
    assert_eq!(l.reason(), "gateway-svc unreachable: Unavailable: shutting down");
    server.stop().await;
    // Nothing listens: every attempt fails, after a backoff, and the last rows stay stale.
    let l = lost(&mut f).await;
    assert_eq!(l.cause, Cause::Unreachable);
    assert!(l.reason().starts_with("gateway-svc unreachable: "), "{}", l.reason());
    assert!(!l.reason().contains("unreachable: gateway-svc unreachable"), "said once: {}", l.reason());
    assert!(l.retry_in >= Duration::from_millis(10) && l.retry_in <= Duration::from_millis(50), "{l:?}");
    assert_eq!(quantities(&f), [(1, "10".into())]);
    assert_eq!(f.view().freshness().state, FreshnessState::Stale);
    // Back on the same port: the next attempt opens a new stream.
    let server = Server::start(addr).await;
    let tx = server.script.stream();
    send(&tx, snapshot(2, vec![pos(1, "20")])).await;
    let u = update(&mut f).await;
    assert_eq!((u.kind, u.stamps.session_epoch), (UpdateKind::Snapshot, 2));
    assert_eq!(quantities(&f), [(1, "20".into())]);
    assert_eq!(f.view().freshness().state, FreshnessState::Live);
    drop((f, tx));
    server.stop().await;
}

#[tokio::test]
async fn a_stream_the_service_does_not_serve_is_asked_for_again_later() {
    let server = Server::start(any_port()).await;
    let not_served_retry = Some(Duration::from_secs(30));
    let mut f = Follower::<Summary, _>::new(Dial(server.addr), Options { not_served_retry, ..options() });
    let l = lost(&mut f).await;
    assert_eq!(l.cause, Cause::NotServed);
    assert_eq!(l.retry_in, Duration::from_secs(30));
    assert_eq!(f.view().freshness().state, FreshnessState::Unknown, "never received: unknown, not stale");
    drop(f);
    server.stop().await;
}
