//! The NATS side: one connection, the stream and buckets (created when missing), and the few
//! operations the bridge needs. Every operation first checks that the connection is up and fails
//! at once otherwise: a publish queued inside the client while NATS is down could land after the
//! reconciliation that replaces it, so nothing is queued.

use std::time::Duration;

use async_nats::connection::State as ConnState;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;

use crate::config::{JetStreamSettings, NatsSettings};

/// Publishes and key-value writes in flight at once.
const IN_FLIGHT: usize = 256;

/// The NATS server's default `max_payload`, used until the server has said its own.
const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Why a NATS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The connection is down; nothing was sent.
    #[error("NATS is not connected")]
    NotConnected,
    /// The subject's last message is not the one this bridge published last (another writer, or
    /// a publish thought lost that landed after all).
    #[error("{subject} moved under the bridge (expected last stream sequence {expected})")]
    Conflict {
        /// The subject.
        subject: String,
        /// The stream sequence the bridge expected last.
        expected: u64,
    },
    /// Anything else, with what was being done.
    #[error("{what}: {detail}")]
    Failed {
        /// The operation.
        what: &'static str,
        /// The cause.
        detail: String,
    },
}

fn failed(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> NatsError {
    move |e| NatsError::Failed { what, detail: e.to_string() }
}

/// One key-value write: a value, or `None` to delete the key.
pub type KvWrite = (String, Option<Bytes>);

/// The bridge's JetStream handle.
#[derive(Debug, Clone)]
pub struct Jet {
    client: async_nats::Client,
    js: jetstream::Context,
    names: JetStreamSettings,
    connections: watch::Receiver<u64>,
}

impl Jet {
    /// Connects in the background: this returns at once, and the client keeps (re)connecting.
    pub async fn connect(nats: &NatsSettings, names: &JetStreamSettings) -> Result<Jet, NatsError> {
        let (connected_tx, connections) = watch::channel(0u64);
        let mut options = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                if let async_nats::Event::Connected = event {
                    connected_tx.send_modify(|n| *n += 1);
                }
                std::future::ready(())
            })
            .name("ibgw-bridge")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_millis(nats.connect_timeout_ms))
            .request_timeout(Some(Duration::from_millis(nats.request_timeout_ms)))
            // Quick, bounded retries: NATS is usually one hop away, and every second down is a
            // second of changes that will arrive as one RESYNC.
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)));
        if let Some(t) = &nats.token {
            options = options.token(t.expose().to_owned());
        }
        if let (Some(u), Some(p)) = (&nats.user, &nats.password) {
            options = options.user_and_password(u.clone(), p.expose().to_owned());
        }
        if let Some(ca) = &nats.tls_ca_path {
            options = options.add_root_certificates(ca.into()).require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> = nats
            .url
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| NatsError::Failed { what: "nats.url", detail: e.to_string() })?;
        let client = options.connect(urls).await.map_err(|e| failed("connect")(&e))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(nats.request_timeout_ms));
        Ok(Jet { client, js, names: names.clone(), connections })
    }

    /// Counts (re)connections: changes each time the connection comes up, so a publisher can
    /// check NATS against gateway-svc's state after a NATS restart, even with nothing to publish
    /// (a server that lost its store gets everything back at once).
    pub fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }

    /// Whether the connection is up now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == ConnState::Connected
    }

    fn up(&self) -> Result<(), NatsError> {
        if self.connected() { Ok(()) } else { Err(NatsError::NotConnected) }
    }

    /// The names in use.
    pub fn names(&self) -> &JetStreamSettings {
        &self.names
    }

    /// `<prefix>.<data>.<account token>`, or `<prefix>.health` for `account = None`.
    pub fn subject(&self, data: &str, account: Option<&str>) -> String {
        match account {
            Some(a) => format!("{}.{data}.{}", self.names.subject_prefix, crate::model::token(a)),
            None => format!("{}.{data}", self.names.subject_prefix),
        }
    }

    /// The largest payload the server takes, less room for headers.
    pub fn payload_limit(&self) -> usize {
        let max = match self.client.max_payload() {
            0 => DEFAULT_MAX_PAYLOAD,
            n => n,
        };
        max.saturating_sub(1024).max(1024)
    }

    /// Creates the stream and the buckets when they are missing (a new server, or one that lost
    /// its store). Existing ones are used as they are.
    pub async fn ensure(&self) -> Result<(), NatsError> {
        self.up()?;
        let n = &self.names;
        let config = stream::Config {
            name: n.stream.clone(),
            description: Some(
                "ibgw-bridge: every change of gateway-svc's positions, account summary, PnL and health".into(),
            ),
            subjects: vec![format!("{}.>", n.subject_prefix)],
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: Duration::from_secs(n.max_age_secs),
            duplicate_window: Duration::from_millis(n.duplicate_window_ms),
            storage: stream::StorageType::File,
            num_replicas: n.replicas,
            allow_direct: true,
            ..Default::default()
        };
        self.js.get_or_create_stream(config).await.map_err(|e| failed("create stream")(&e))?;
        for bucket in
            [&n.positions_bucket, &n.summary_bucket, &n.account_pnl_bucket, &n.position_pnl_bucket, &n.status_bucket]
        {
            // A bucket is a stream `KV_<bucket>` on `$KV.<bucket>.>`, configured as the client
            // library's create_key_value does. Created here directly because that call first
            // asks for account details in a form nats-server 2.9 does not send.
            let config = stream::Config {
                name: format!("KV_{bucket}"),
                description: Some("ibgw-bridge: latest values".into()),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                storage: stream::StorageType::File,
                num_replicas: n.replicas,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                ..Default::default()
            };
            self.js.get_or_create_stream(config).await.map_err(|e| failed("create bucket")(&e))?;
        }
        Ok(())
    }

    /// Publishes one stream message with its id, only if the subject's last stream sequence is
    /// still `expected_last` (0: no message yet). Returns its stream sequence and whether the
    /// server already had it (same id within the duplicate window).
    pub async fn publish(
        &self,
        subject: String,
        id: &str,
        expected_last: u64,
        payload: Bytes,
    ) -> Result<(u64, bool), NatsError> {
        self.up()?;
        let message = jetstream::message::PublishMessage::build()
            .payload(payload)
            .message_id(id)
            .expected_last_subject_sequence(expected_last);
        let ack = self.js.send_publish(subject.clone(), message).await.map_err(|e| failed("publish")(&e))?;
        match ack.await {
            Ok(ack) => Ok((ack.sequence, ack.duplicate)),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                Err(NatsError::Conflict { subject, expected: expected_last })
            }
            Err(e) => Err(failed("publish ack")(&e)),
        }
    }

    /// Writes keys of `bucket` (puts and deletes), many in flight, and returns once the server
    /// has stored every one.
    pub async fn kv_write(&self, bucket: &str, writes: Vec<KvWrite>) -> Result<(), NatsError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.up()?;
        futures_util::stream::iter(writes)
            .map(|(key, value)| async move {
                let subject = format!("$KV.{bucket}.{key}");
                let message = match value {
                    Some(v) => jetstream::message::PublishMessage::build().payload(v),
                    None => {
                        jetstream::message::PublishMessage::build().payload(Bytes::new()).header("KV-Operation", "DEL")
                    }
                };
                let ack = self.js.send_publish(subject, message).await.map_err(|e| failed("bucket write")(&e))?;
                ack.await.map_err(|e| failed("bucket write ack")(&e)).map(|_| ())
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await
            .map(|_| ())
    }

    /// Every key of `bucket` with its value.
    pub async fn kv_load(&self, bucket: &str) -> Result<Vec<(String, Bytes)>, NatsError> {
        self.up()?;
        read_bucket(&self.js, bucket).await
    }

    /// The last message on `subject`: its payload and stream sequence.
    pub async fn last(&self, subject: &str) -> Result<Option<(Bytes, u64)>, NatsError> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        self.up()?;
        let stream = self.js.get_stream_no_info(&self.names.stream).await.map_err(|e| failed("open stream")(&e))?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(Some((m.payload, m.sequence))),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed("read stream")(&e)),
        }
    }

    /// The JetStream context, for readers and tests.
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }
}

/// Upper bound on the keys one bucket read returns (a bound on the loop, far above any account).
pub const MAX_BUCKET_KEYS: usize = 1_000_000;

/// Every live key of `bucket` with its value, read with direct gets, one key per request, in
/// stream order. Deleted keys are left out. (The client's key listing runs a consumer that waits
/// for a quiet moment; under a steady stream of writes that moment may not come.)
pub async fn read_bucket(js: &jetstream::Context, bucket: &str) -> Result<Vec<(String, Bytes)>, NatsError> {
    use async_nats::jetstream::stream::DirectGetErrorKind;
    // With its info: a missing bucket is then an error at once, where a direct get would wait
    // for the request timeout.
    let stream = js.get_stream(format!("KV_{bucket}")).await.map_err(|e| failed("open bucket")(&e))?;
    let prefix = format!("$KV.{bucket}.");
    let filter = format!("{prefix}>");
    let mut out = Vec::new();
    let mut next = 1;
    while out.len() < MAX_BUCKET_KEYS {
        let m = match stream.direct_get_next_for_subject(filter.as_str(), Some(next)).await {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
            Err(e) => return Err(failed("read bucket")(&e)),
        };
        next = m.sequence + 1;
        let deleted = m.headers.get("KV-Operation").is_some_and(|op| op.as_str() == "DEL" || op.as_str() == "PURGE");
        if let (false, Some(key)) = (deleted, m.subject.strip_prefix(prefix.as_str())) {
            out.push((key.to_owned(), m.payload));
        }
    }
    Ok(out)
}
