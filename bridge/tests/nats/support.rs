//! The whole chain in one process plus a real `nats-server -js`: simulator + gateway-svc (the
//! demo, ephemeral loopback ports, fast retries), the bridge, and a NATS server on a loopback
//! port with a store directory of its own. Each piece can be stopped and started again on the
//! same address, which is what the fault tests do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use gateway_proto::pb;
use gateway_proto::pb::gateway_service_client::GatewayServiceClient;
use ibgw_bridge::model::{Change, Position, SubjectStatus, SummaryValue};
use ibgw_demo::{Demo, DemoAddrs};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Scales every deadline for slow machines: `IBGW_TEST_PATIENCE=3` triples them.
pub fn patience(d: Duration) -> Duration {
    let factor: u32 = std::env::var("IBGW_TEST_PATIENCE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    d * factor.max(1)
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience(within);
    loop {
        // A check that hangs fails at the deadline too.
        if let Ok(Some(v)) = tokio::time::timeout_at(deadline, check()).await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} (x IBGW_TEST_PATIENCE) waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Test logs go to the harness's captured output; `RUST_LOG` selects the level.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else on PATH, else where Debian's package puts
/// it. Absent, the test fails and says how to install it: it is never skipped.
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server not found (NATS_SERVER_BIN, PATH, /usr/sbin): these tests run a real NATS JetStream server; \
         install Debian's package with `apt-get install nats-server` (scripts/test's setup step does)"
    );
}

/// A `nats-server -js` on 127.0.0.1 with its own store directory.
pub struct Nats {
    pub port: u16,
    pub store: PathBuf,
    child: Option<tokio::process::Child>,
}

static STORES: AtomicU32 = AtomicU32::new(0);

impl Nats {
    pub async fn start() -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let n = STORES.fetch_add(1, Ordering::Relaxed);
        let store = std::env::temp_dir().join(format!("ibgw-bridge-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).unwrap();
        let mut nats = Nats { port, store, child: None };
        nats.up().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store.
    pub async fn up(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = tokio::process::Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let url = self.url();
        eventually("nats-server to serve JetStream", Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                use futures_util::TryStreamExt;
                let client = async_nats::ConnectOptions::new().connect(url).await.ok()?;
                jetstream::new(client).stream_names().try_collect::<Vec<String>>().await.ok().map(|_| ())
            }
        })
        .await;
    }

    /// Kills the server (SIGKILL: a crash) and waits for it to be gone.
    pub async fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// A fresh store: the next start has no stream and no buckets.
    pub fn wipe(&self) {
        assert!(self.child.is_none(), "stop it first");
        std::fs::remove_dir_all(&self.store).unwrap();
        std::fs::create_dir_all(&self.store).unwrap();
    }

    /// A JetStream client of this server.
    pub async fn js(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(self.url()).await.expect("a test client connects"))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Simulator + gateway-svc + bridge + NATS.
pub struct Chain {
    pub nats: Nats,
    pub sim: ib_sim::Sim,
    pub service: Option<gateway_svc::Running>,
    pub grpc_addr: SocketAddr,
    pub bridge: Option<ibgw_bridge::Running>,
    pub client: GatewayServiceClient<Channel>,
}

pub fn gateway_settings(grpc: SocketAddr) -> gateway_svc::Settings {
    let mut s = gateway_svc::Settings::default();
    s.grpc.listen = grpc.to_string();
    s.ops.listen = "127.0.0.1:0".into();
    s.upstream.backoff_initial_ms = 50;
    s.upstream.backoff_max_ms = 400;
    s.upstream.connect_timeout_ms = 1_000;
    s.upstream.sync_timeout_ms = 3_000;
    s.upstream.probe_idle_ms = 1_100;
    s.upstream.probe_timeout_ms = 700;
    s.shutdown.grace_ms = 4_000;
    s
}

pub fn bridge_settings(grpc: SocketAddr, nats: &Nats) -> ibgw_bridge::Settings {
    let mut s = ibgw_bridge::Settings::default();
    s.gateway.address = format!("http://{grpc}");
    s.nats.url = nats.url();
    s.nats.request_timeout_ms = 1_000;
    s.ops.listen = "127.0.0.1:0".into();
    s.retry.initial_ms = 50;
    s.retry.max_ms = 400;
    s.jetstream.heartbeat_ms = 200;
    s
}

impl Chain {
    pub async fn start() -> Chain {
        init_tracing();
        let nats = Nats::start().await;
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let Demo { sim, service } = Demo::start(
            gateway_settings(any).validate().expect("valid settings"),
            DemoAddrs { sim_api: any, sim_control: any },
            ib_sim::Scenario::default(),
            CancellationToken::new(),
        )
        .await
        .expect("demo starts");
        let grpc_addr = service.grpc_addr;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}")).unwrap().connect_lazy();
        let client = GatewayServiceClient::new(channel);
        let mut chain = Chain { nats, sim, service: Some(service), grpc_addr, bridge: None, client };
        chain.start_bridge().await;
        chain.wait_converged("first publication").await;
        chain
    }

    pub async fn start_bridge(&mut self) {
        assert!(self.bridge.is_none());
        let settings = bridge_settings(self.grpc_addr, &self.nats);
        self.bridge = Some(ibgw_bridge::start(settings, CancellationToken::new()).await.expect("bridge starts"));
    }

    pub async fn stop_bridge(&mut self) {
        let bridge = self.bridge.take().expect("running");
        assert!(bridge.stop().await, "the bridge stops within its grace");
    }

    /// Stops gateway-svc (the simulator stays up).
    pub async fn stop_gateway_svc(&mut self) {
        let service = self.service.take().expect("running");
        assert!(service.stop().await, "gateway-svc stops within its grace");
    }

    /// Starts gateway-svc again on the same gRPC address.
    pub async fn start_gateway_svc(&mut self) {
        assert!(self.service.is_none());
        let mut settings = gateway_settings(self.grpc_addr);
        settings.upstream.address = self.sim.api_addr().to_string();
        self.service = Some(
            gateway_svc::start(settings.validate().expect("valid settings"), CancellationToken::new())
                .await
                .expect("gateway-svc restarts"),
        );
    }

    /// Stops everything, the bridge first.
    pub async fn finish(mut self) {
        if self.bridge.is_some() {
            self.stop_bridge().await;
        }
        if let Some(s) = self.service.take() {
            s.stop().await;
        }
        self.sim.shutdown().await;
        self.nats.down().await;
    }

    /// Sets one position's quantity at the simulator ("0" closes it).
    pub fn set_quantity(&self, account: &str, con_id: i64, qty: &str) {
        let mut p = self
            .sim
            .positions()
            .into_iter()
            .find(|p| p.account == account && i64::from(p.con_id) == con_id)
            .expect("a position of the scenario");
        p.quantity = qty.into();
        self.sim.upsert_positions(vec![p]).unwrap();
    }

    /// Waits until gateway-svc reports `qty` for the position (`None`: closed).
    pub async fn wait_truth(&self, account: &str, con_id: i64, qty: Option<&str>) {
        let key = (account.to_owned(), con_id);
        eventually(&format!("gateway-svc to report {key:?} = {qty:?}"), Duration::from_secs(10), || async {
            let t = self.truth_positions().await?;
            (t.get(&key).map(String::as_str) == qty).then_some(())
        })
        .await;
    }

    /// gateway-svc's positions (account, con_id) -> quantity.
    pub async fn truth_positions(&self) -> Option<BTreeMap<(String, i64), String>> {
        let r = self.client.clone().get_positions(pb::GetPositionsRequest::default()).await.ok()?.into_inner();
        Some(r.positions.into_iter().map(|p| ((p.account, p.con_id), p.quantity)).collect())
    }

    /// gateway-svc's summary (account, tag, currency) -> value.
    pub async fn truth_summary(&self) -> Option<BTreeMap<(String, String, String), String>> {
        let r =
            self.client.clone().get_account_summary(pb::GetAccountSummaryRequest::default()).await.ok()?.into_inner();
        Some(r.values.into_iter().map(|v| ((v.account, v.tag, v.currency), v.value)).collect())
    }

    /// Waits until both buckets equal gateway-svc's state and every subject is LIVE.
    pub async fn wait_converged(&self, what: &str) {
        let js = self.nats.js().await;
        eventually(&format!("buckets equal gateway-svc's state, LIVE ({what})"), Duration::from_secs(20), || {
            let js = js.clone();
            async move {
                let (positions, summary) = (self.truth_positions().await?, self.truth_summary().await?);
                let kv_p = bucket_positions(&js).await?;
                let kv_s = bucket_summary(&js).await?;
                let statuses = statuses(&js).await?;
                let live = !statuses.is_empty()
                    && statuses.values().all(|s| s.freshness.state == ibgw_bridge::model::FreshnessState::Live);
                (kv_p == positions && kv_s == summary && live).then_some(())
            }
        })
        .await;
    }
}

pub async fn bucket_positions(js: &jetstream::Context) -> Option<BTreeMap<(String, i64), String>> {
    let rows: Vec<Position> = bucket(js, "ibgw-positions").await?;
    Some(rows.into_iter().map(|p| ((p.account, p.con_id), p.quantity)).collect())
}

pub async fn bucket_summary(js: &jetstream::Context) -> Option<BTreeMap<(String, String, String), String>> {
    let rows: Vec<SummaryValue> = bucket(js, "ibgw-summary").await?;
    Some(rows.into_iter().map(|v| ((v.account, v.tag, v.currency), v.value)).collect())
}

/// Every value of a bucket, decoded.
pub async fn bucket<T: serde::de::DeserializeOwned>(js: &jetstream::Context, name: &str) -> Option<Vec<T>> {
    let entries = ibgw_bridge::jet::read_bucket(js, name).await.ok()?;
    Some(entries.into_iter().map(|(_, v)| serde_json::from_slice(&v).expect("a bucket value is JSON")).collect())
}

/// The status entries of the row subjects, by key.
pub async fn statuses(js: &jetstream::Context) -> Option<BTreeMap<String, SubjectStatus>> {
    let entries = ibgw_bridge::jet::read_bucket(js, "ibgw-status").await.ok()?;
    Some(
        entries
            .into_iter()
            .filter(|(k, _)| k.starts_with("positions.") || k.starts_with("summary."))
            .map(|(k, v)| (k, serde_json::from_slice(&v).expect("a status is JSON")))
            .collect(),
    )
}

/// One stored stream message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub stream_seq: u64,
    pub subject: String,
    pub msg_id: String,
    pub json: serde_json::Value,
}

/// Every message of the stream, in order.
pub async fn stream_messages(js: &jetstream::Context) -> Vec<Stored> {
    let mut stream = js.get_stream("IBGW").await.expect("the stream exists");
    let state = stream.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(m) = stream.get_raw_message(seq).await else { continue };
        let msg_id = m.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap_or_default();
        out.push(Stored {
            stream_seq: m.sequence,
            subject: m.subject.to_string(),
            msg_id,
            json: serde_json::from_slice(&m.payload).expect("stream messages are JSON"),
        });
    }
    out
}

/// The stream's invariants: per subject, `seq` runs 1, 2, 3... with no gap or repeat, each
/// message's id is what [`Change::message_id`] derives from its content, no id repeats, and the
/// position messages folded in order give exactly the positions bucket.
pub async fn check_stream(js: &jetstream::Context) -> Vec<Stored> {
    let all = stream_messages(js).await;
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    let mut folded: BTreeMap<(String, i64), String> = BTreeMap::new();
    for m in &all {
        let seq = m.json["seq"].as_u64().unwrap();
        let prev = last.insert(&m.subject, seq).unwrap_or(0);
        assert_eq!(seq, prev + 1, "gap-free seq on {}: {:?}", m.subject, m.json);
        assert!(ids.insert(m.msg_id.clone()), "Nats-Msg-Id {} twice", m.msg_id);
        if m.subject.starts_with("ibgw.v1.positions.") {
            let c: Change<Position> = serde_json::from_value(m.json.clone()).unwrap();
            assert_eq!(c.message_id(), m.msg_id, "the id is derived from the content");
            for p in c.upserts {
                folded.insert((p.account, p.con_id), p.quantity);
            }
            for k in c.removals {
                folded.remove(&(k.account, k.con_id));
            }
        } else if m.subject.starts_with("ibgw.v1.summary.") {
            let c: Change<SummaryValue> = serde_json::from_value(m.json.clone()).unwrap();
            assert_eq!(c.message_id(), m.msg_id, "the id is derived from the content");
        }
    }
    assert_eq!(Some(folded), bucket_positions(js).await, "the stream folded equals the bucket");
    all
}

/// The messages on `subject` after stream sequence `after`.
pub fn on_subject<'a>(all: &'a [Stored], subject: &str, after: u64) -> Vec<&'a Stored> {
    all.iter().filter(|m| m.subject == subject && m.stream_seq > after).collect()
}

/// The last stream sequence now.
pub async fn last_stream_seq(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("IBGW").await.expect("the stream exists");
    stream.info().await.unwrap().state.last_sequence
}
