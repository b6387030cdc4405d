//! `nats`: gateway-svc's data carried beyond one machine by `ibgw-bridge` into a real
//! `nats-server -js` (loopback, ephemeral port, a temporary store), everything in the same run:
//!
//! - one position change from the simulator to a JetStream ordered push consumer of the bridge's
//!   `ibgw.v1.positions.<account>` subject, against the same change to a direct gRPC
//!   `WatchPositions` subscriber of gateway-svc (the baseline), over N rounds;
//! - a `count`-update burst of one position (`Fault::Burst`): the time until the consumer has
//!   the final quantity (the stream converged) and until the `ibgw-positions` bucket holds it,
//!   against the gRPC subscriber; and how many stream messages the burst took.
//!
//! gateway-svc (demo with its simulator) and the bridge each run as their own process, the
//! bridge being the `ibgw-bridge` binary next to this one. A missing `nats-server` fails the
//! scenario with the install command; it is never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use futures_util::StreamExt;
use gateway_proto::pb;
use ib_sim::Fault;
use tokio::time::Instant;

use super::{header, target_position};
use crate::binaries;
use crate::child::Service;
use crate::cli::{NatsArgs, pick};
use crate::report::{Line, Table, latency_cells, times};
use crate::stack::{Spawned, connect};
use crate::stats::{Summary, ms};
use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

const NAME: &str = "nats";
/// Deadline for one change or one burst to arrive anywhere.
const WITHIN: Duration = Duration::from_secs(20);

/// Runs the scenario.
pub async fn run(args: &NatsArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let rounds = pick(args.rounds, smoke, 10, 300).max(1);
    let count = pick(args.count, smoke, 2_000, 10_000).max(1);
    header(NAME, &format!("bridge → JetStream vs direct gRPC: {rounds} single changes, one {count}-update burst"));
    let server_bin = nats_server_bin()?;
    let bridge_bin = binaries::sibling("ibgw-bridge")?;
    let nats = NatsServer::start(&server_bin).await?;
    let gw = Spawned::start(&[]).await?;
    let result = async {
        let env = [
            ("IBGW_BRIDGE__GATEWAY__ADDRESS", format!("http://{}", gw.grpc)),
            ("IBGW_BRIDGE__NATS__URL", nats.url()),
            ("IBGW_BRIDGE__OPS__LISTEN", "127.0.0.1:0".to_owned()),
            ("IBGW_BRIDGE__RETRY__INITIAL_MS", "50".to_owned()),
            ("IBGW_BRIDGE__RETRY__MAX_MS", "400".to_owned()),
            ("IBGW_BRIDGE__LOG__FILTER", "warn".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let bridge = Service::spawn(&bridge_bin, &["run"], &env).await?;
        let r = measure(&gw, &nats, rounds, count).await;
        bridge.stop().await;
        r
    }
    .await;
    gw.stop().await;
    nats.stop().await;
    result
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else on PATH, else where Debian's package puts it.
fn nats_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join("nats-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::Setup(
        "nats-server not found (NATS_SERVER_BIN, PATH, /usr/sbin): this scenario runs a real NATS JetStream \
         server; install Debian's package with `apt-get install nats-server`"
            .into(),
    ))
}

/// `nats-server -js` on 127.0.0.1 with a store directory of its own; killed when dropped.
struct NatsServer {
    port: u16,
    store: PathBuf,
    child: tokio::process::Child,
}

impl NatsServer {
    async fn start(bin: &std::path::Path) -> Result<NatsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| Error::setup("cannot pick a port for nats-server", e))?
            .port();
        let store = std::env::temp_dir().join(format!("ibgw-bench-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).map_err(|e| Error::setup("cannot create the JetStream store", e))?;
        let child = tokio::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::setup(
                    &format!(
                        "cannot start {} (install Debian's package: `apt-get install nats-server`)",
                        bin.display()
                    ),
                    e,
                )
            })?;
        let server = NatsServer { port, store, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let attempt = async {
                let client = async_nats::connect(server.url()).await.map_err(|e| e.to_string())?;
                // Not `query_account`: its reply from nats-server 2.9 does not decode.
                use futures_util::TryStreamExt;
                let names = jetstream::new(client).stream_names().try_collect::<Vec<String>>().await;
                names.map(|_| ()).map_err(|e| e.to_string())
            };
            let last = match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(())) => return Ok(server),
                Ok(Err(e)) => e,
                Err(_) => "no answer within 2 s".to_owned(),
            };
            if Instant::now() >= deadline {
                server.stop().await;
                return Err(Error::Setup(format!("nats-server -js did not serve JetStream within 10 s: {last}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// The target position's quantity in the `ibgw-positions` bucket.
async fn bucket_quantity(kv: &jetstream::kv::Store) -> Option<f64> {
    let value = kv.get(format!("{TARGET_ACCOUNT}.{TARGET_CON_ID}")).await.ok()??;
    let row: serde_json::Value = serde_json::from_slice(&value).ok()?;
    row["quantity"].as_str()?.parse().ok()
}

/// The target position's quantity in a stream message of the positions subject, if it has one.
fn message_quantity(payload: &[u8]) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v["upserts"]
        .as_array()?
        .iter()
        .rev()
        .find(|r| r["con_id"] == i64::from(TARGET_CON_ID))
        .and_then(|r| r["quantity"].as_str()?.parse().ok())
}

/// The target position's quantity in a gRPC positions update, if it has one.
fn update_quantity(m: &pb::WatchPositionsResponse) -> Option<f64> {
    m.upserts.iter().chain(&m.items).rev().find(|p| p.con_id == i64::from(TARGET_CON_ID))?.quantity.parse().ok()
}

fn quantity(q: &str) -> Result<f64> {
    q.parse().map_err(|_| Error::Functional(format!("simulator quantity {q:?} is not a number")))
}

async fn measure(gw: &Spawned, nats: &NatsServer, rounds: u32, count: u32) -> Result<Vec<Line>> {
    let client = async_nats::connect(nats.url()).await.map_err(|e| Error::setup("NATS client", e))?;
    let js = jetstream::new(client);
    let subject = format!("ibgw.v1.positions.{TARGET_ACCOUNT}");

    // The bridge is ready for this scenario once the bucket holds the simulator's quantity.
    let t_ready = Instant::now();
    let want = quantity(&target_position(&gw.control).await?.quantity)?;
    let kv = loop {
        if let Ok(kv) = js.get_key_value("ibgw-positions").await
            && bucket_quantity(&kv).await == Some(want)
        {
            break kv;
        }
        if t_ready.elapsed() >= WITHIN {
            return Err(Error::Functional(format!("the bridge did not fill ibgw-positions within {WITHIN:?}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("{NAME}: bridge published the first state {} after gateway-svc was READY", ms(t_ready.elapsed()));
    let mut stream = js.get_stream("IBGW").await.map_err(|e| Error::functional("stream IBGW", e))?;

    // (a) single changes.
    let (mut from_nats, mut from_grpc) = subscribe(&js, &stream, &subject, gw).await?;
    let mut position = target_position(&gw.control).await?;
    let base = quantity(&position.quantity)? as i64;
    let (mut grpc, mut bridged) = (Vec::new(), Vec::new());
    // Round 0 warms both paths up and is not counted.
    for i in 0..=i64::from(rounds) {
        let q = base + i + 1;
        position.quantity = q.to_string();
        let want = q as f64;
        let t0 = Instant::now();
        gw.control
            .upsert_positions(std::slice::from_ref(&position))
            .await
            .map_err(|e| Error::setup("simulator upsert", e))?;
        let g = grpc_until(&mut from_grpc, want, t0);
        let n = nats_until(&mut from_nats, want, t0);
        let (g, n) = tokio::join!(g, n);
        let (g, n) = (g?.0, n?.0);
        if i > 0 {
            grpc.push(g);
            bridged.push(n);
        }
    }
    drop(from_nats);
    drop(from_grpc);
    let (g, n) = (Summary::of(&grpc), Summary::of(&bridged));
    let (g, n) = g.zip(n).ok_or_else(|| Error::Functional("no samples".into()))?;
    let mut t = Table::new(
        format!("{NAME}: one position change, {rounds} rounds (ratio = bridged / direct gRPC, p50 and p99)"),
        &["path", "p50", "p95", "p99", "max", "ratio p50", "ratio p99"],
    );
    let mut row = |path: &str, s: &Summary, r50: f64, r99: f64| {
        let mut cells = vec![path.to_owned()];
        cells.extend(latency_cells(Some(s)));
        cells.extend([times(r50), times(r99)]);
        t.row(cells);
    };
    let r50 = n.p50.as_secs_f64() / g.p50.as_secs_f64();
    let r99 = n.p99.as_secs_f64() / g.p99.as_secs_f64();
    row("sim → gateway-svc → gRPC WatchPositions", &g, 1.0, 1.0);
    row("sim → gateway-svc → bridge → JetStream → consumer", &n, r50, r99);
    t.print();

    // (b) the burst.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut from_nats, mut from_grpc) = subscribe(&js, &stream, &subject, gw).await?;
    let seq_before = stream.info().await.map_err(|e| Error::functional("stream info", e))?.state.last_sequence;
    let t0 = Instant::now();
    gw.control
        .inject(&Fault::Burst { count, con_id: Some(TARGET_CON_ID), account: Some(TARGET_ACCOUNT.into()) })
        .await
        .map_err(|e| Error::setup("inject burst", e))?;
    let want = quantity(&target_position(&gw.control).await?.quantity)?;
    let bucket = async {
        loop {
            if bucket_quantity(&kv).await == Some(want) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() >= WITHIN {
                return Err(Error::Functional(format!("the bucket did not converge within {WITHIN:?}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let (bg, bn, bb) = tokio::join!(grpc_until(&mut from_grpc, want, t0), nats_until(&mut from_nats, want, t0), bucket);
    let ((bg, g_msgs), (bn, n_msgs), bb) = (bg?, bn?, bb?);
    let seq_after = stream.info().await.map_err(|e| Error::functional("stream info", e))?.state.last_sequence;
    let mut t = Table::new(
        format!("{NAME}: {count}-update burst → final quantity (ratio = / direct gRPC subscriber)"),
        &["where", "converged after", "messages", "ratio"],
    );
    t.row(vec!["gRPC WatchPositions subscriber".into(), ms(bg), g_msgs.to_string(), times(1.0)]);
    t.row(vec![
        format!("JetStream consumer of {subject}"),
        ms(bn),
        n_msgs.to_string(),
        times(bn.as_secs_f64() / bg.as_secs_f64()),
    ]);
    t.row(vec!["ibgw-positions bucket".into(), ms(bb), "-".into(), times(bb.as_secs_f64() / bg.as_secs_f64())]);
    t.print();
    println!(
        "{NAME}: the stream grew by {} messages over all subjects by the time both had converged",
        seq_after.saturating_sub(seq_before)
    );
    let converged = bn.max(bb);
    Ok(vec![
        Line::new(NAME, "one change → JetStream consumer (p50)", ms(n.p50))
            .baseline(format!("{} gRPC WatchPositions", ms(g.p50)), r50),
        Line::new(NAME, "one change → JetStream consumer (p99)", ms(n.p99))
            .baseline(format!("{} gRPC WatchPositions", ms(g.p99)), r99),
        Line::new(NAME, format!("{count}-update burst → stream and bucket converged"), ms(converged))
            .baseline(format!("{} gRPC subscriber", ms(bg)), converged.as_secs_f64() / bg.as_secs_f64()),
        Line::new(NAME, "stream messages on the positions subject for the burst", n_msgs.to_string())
            .baseline(format!("{g_msgs} gRPC messages"), n_msgs as f64 / g_msgs.max(1) as f64),
    ])
}

type NatsMessages = async_nats::jetstream::consumer::push::Ordered;

/// A fresh ordered push consumer of `subject` (new messages only) and a fresh `WatchPositions`
/// subscriber of the target account with its snapshot read.
async fn subscribe(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    subject: &str,
    gw: &Spawned,
) -> Result<(NatsMessages, tonic::Streaming<pb::WatchPositionsResponse>)> {
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::functional("ordered consumer", e))?;
    let messages = consumer.messages().await.map_err(|e| Error::functional("ordered consumer", e))?;
    let request = pb::WatchPositionsRequest { accounts: vec![TARGET_ACCOUNT.into()], symbols: vec![] };
    let mut grpc = connect(gw.grpc).await?;
    let mut updates =
        grpc.watch_positions(request).await.map_err(|s| Error::functional("WatchPositions", s))?.into_inner();
    updates.message().await.map_err(|s| Error::functional("WatchPositions snapshot", s))?;
    Ok((messages, updates))
}

/// Reads the gRPC stream until the target has `want`: the time since `t0` and the messages read.
async fn grpc_until(
    updates: &mut tonic::Streaming<pb::WatchPositionsResponse>,
    want: f64,
    t0: Instant,
) -> Result<(Duration, u64)> {
    let mut n = 0;
    tokio::time::timeout(WITHIN, async {
        loop {
            let m = updates
                .message()
                .await
                .map_err(|s| Error::functional("WatchPositions", s))?
                .ok_or_else(|| Error::Functional("WatchPositions ended".into()))?;
            n += 1;
            if update_quantity(&m) == Some(want) {
                return Ok((t0.elapsed(), n));
            }
        }
    })
    .await
    .map_err(|_| Error::Functional(format!("the gRPC subscriber did not see quantity {want} within {WITHIN:?}")))?
}

/// Reads the consumer until the target has `want`: the time since `t0` and the messages read.
async fn nats_until(messages: &mut NatsMessages, want: f64, t0: Instant) -> Result<(Duration, u64)> {
    let mut n = 0;
    tokio::time::timeout(WITHIN, async {
        loop {
            let m = messages
                .next()
                .await
                .ok_or_else(|| Error::Functional("the JetStream consumer ended".into()))?
                .map_err(|e| Error::functional("JetStream consumer", e))?;
            n += 1;
            if message_quantity(&m.payload) == Some(want) {
                return Ok((t0.elapsed(), n));
            }
        }
    })
    .await
    .map_err(|_| Error::Functional(format!("the JetStream consumer did not see quantity {want} within {WITHIN:?}")))?
}
