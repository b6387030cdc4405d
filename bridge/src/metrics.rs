//! Every metric the bridge exports (`ibgw_bridge_<noun>_<unit|total>`), with low-cardinality
//! labels only: the data kind and the message kind, never accounts. The bridge owns its recorder
//! (never the process-global one), so a bridge embedded next to gateway-svc in one process, as
//! the tests do, keeps its series apart.

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// The data kinds, as metric labels (and subject tokens).
pub const DATA: [&str; 5] = ["positions", "summary", "account_pnl", "position_pnl", "health"];

/// Stream message kinds, as metric labels.
pub const MESSAGE_KINDS: [&str; 4] = ["DELTA", "RESYNC", "FRESHNESS", "HEALTH"];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The bridge's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series registered at zero.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let m = Self { recorder, handle };
        let counter = |name: &'static str, help: &'static str| {
            m.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        let gauge = |name: &'static str, help: &'static str| {
            m.recorder.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        gauge("ibgw_bridge_build_info", "Always 1; the labels say which build runs");
        counter("ibgw_bridge_published_total", "Stream messages stored, by data and message kind");
        counter("ibgw_bridge_duplicates_total", "Stream publishes the server already had (same Nats-Msg-Id), by data");
        counter("ibgw_bridge_kv_writes_total", "Key-value puts and deletes, by data and op");
        counter(
            "ibgw_bridge_reconciles_total",
            "Reconciliations with NATS (published state reloaded), by data and outcome",
        );
        counter("ibgw_bridge_nats_failures_total", "Publishes or writes that failed (then reconciled), by data");
        counter("ibgw_bridge_gateway_disconnects_total", "gateway-svc streams lost or refused, by data");
        gauge("ibgw_bridge_gateway_connected", "1 while the gateway-svc stream of this data is open");
        gauge("ibgw_bridge_in_sync", "1 while NATS holds exactly what gateway-svc says (as far as the bridge knows)");
        gauge("ibgw_bridge_nats_connected", "1 while the NATS connection is up");
        gauge("ibgw_bridge_last_publish_timestamp_seconds", "When a stream message of this data was last stored");
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        m.gauge("ibgw_bridge_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("profile", profile)]).set(1.0);
        m.gauge("ibgw_bridge_nats_connected", &[]).set(0.0);
        for data in DATA {
            for kind in MESSAGE_KINDS {
                if (data == "health") == (kind == "HEALTH") {
                    m.counter("ibgw_bridge_published_total", &[("data", data), ("kind", kind)]).absolute(0);
                }
            }
            for op in ["put", "delete"] {
                m.counter("ibgw_bridge_kv_writes_total", &[("data", data), ("op", op)]).absolute(0);
            }
            for outcome in ["ok", "failed"] {
                m.counter("ibgw_bridge_reconciles_total", &[("data", data), ("outcome", outcome)]).absolute(0);
            }
            m.counter("ibgw_bridge_duplicates_total", &[("data", data)]).absolute(0);
            m.counter("ibgw_bridge_nats_failures_total", &[("data", data)]).absolute(0);
            m.counter("ibgw_bridge_gateway_disconnects_total", &[("data", data)]).absolute(0);
            m.gauge("ibgw_bridge_gateway_connected", &[("data", data)]).set(0.0);
            m.gauge("ibgw_bridge_in_sync", &[("data", data)]).set(0.0);
            m.gauge("ibgw_bridge_last_publish_timestamp_seconds", &[("data", data)]).set(0.0);
        }
        m
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    /// A stream message was stored (or found already stored: `duplicate`).
    pub fn published(&self, data: &'static str, kind: &'static str, duplicate: bool) {
        self.counter("ibgw_bridge_published_total", &[("data", data), ("kind", kind)]).increment(1);
        if duplicate {
            self.counter("ibgw_bridge_duplicates_total", &[("data", data)]).increment(1);
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.gauge("ibgw_bridge_last_publish_timestamp_seconds", &[("data", data)]).set(now.as_secs_f64());
    }

    /// Key-value writes done.
    pub fn kv_writes(&self, data: &'static str, puts: usize, deletes: usize) {
        self.counter("ibgw_bridge_kv_writes_total", &[("data", data), ("op", "put")]).increment(puts as u64);
        self.counter("ibgw_bridge_kv_writes_total", &[("data", data), ("op", "delete")]).increment(deletes as u64);
    }

    /// A reconciliation ended.
    pub fn reconciled(&self, data: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.counter("ibgw_bridge_reconciles_total", &[("data", data), ("outcome", outcome)]).increment(1);
    }

    /// A publish or write failed.
    pub fn nats_failure(&self, data: &'static str) {
        self.counter("ibgw_bridge_nats_failures_total", &[("data", data)]).increment(1);
    }

    /// The gateway-svc stream of `data` opened (true) or was lost (false).
    pub fn gateway(&self, data: &'static str, connected: bool) {
        if !connected {
            self.counter("ibgw_bridge_gateway_disconnects_total", &[("data", data)]).increment(1);
        }
        self.gauge("ibgw_bridge_gateway_connected", &[("data", data)]).set(if connected { 1.0 } else { 0.0 });
    }

    /// Whether NATS holds what gateway-svc says, for `data`.
    pub fn in_sync(&self, data: &'static str, in_sync: bool) {
        self.gauge("ibgw_bridge_in_sync", &[("data", data)]).set(if in_sync { 1.0 } else { 0.0 });
    }

    /// Whether the NATS connection is up.
    pub fn nats_connected(&self, up: bool) {
        self.gauge("ibgw_bridge_nats_connected", &[]).set(if up { 1.0 } else { 0.0 });
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)).collect();
    Key::from_parts(name, labels)
}
