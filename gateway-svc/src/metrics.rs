//! Every metric the service exports, named in one place (`gateway_<noun>_<unit|total>`), with
//! low-cardinality labels only: never account ids or symbols. `docs/METRICS.md` lists them.
//!
//! Each running service owns its [`Metrics`]: a Prometheus recorder of its own, never the
//! process-global one. Two services in one process (tests, benchmarks, an embedding
//! application) therefore never see each other's series, and embedding the library never
//! fights the host application over the global recorder.

use std::collections::BTreeSet;
use std::sync::Mutex;

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::farm::{Farm, FarmKind, FarmStatus};
use crate::health::SessionState;

/// Every reconnect cause the session reports.
pub const RECONNECT_CAUSES: [&str; 12] = [
    "client_id_in_use",
    "connect_failed",
    "connect_timeout",
    "connection_lost",
    "handshake_rejected",
    "notice_lag",
    "port_reset",
    "probe_failed",
    "probe_timeout",
    "sync_failed",
    "sync_timeout",
    "version_unsupported",
];

/// The RPC methods, as metric labels.
pub const METHODS: [&str; 7] = [
    "ListAccounts",
    "GetPositions",
    "WatchPositions",
    "GetAccountSummary",
    "WatchAccountSummary",
    "GetHealth",
    "WatchHealth",
];

/// Data kinds, as metric labels.
pub const KINDS: [&str; 2] = ["positions", "account_summary"];

/// Notice classes, as metric labels.
pub const NOTICE_CLASSES: [&str; 3] = ["link", "farm", "other"];

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One service's metrics: its own recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Farms with series, so a new connection can clear their states.
    farms: Mutex<BTreeSet<(String, FarmKind)>>,
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
    /// A fresh registry with every series described and registered at zero, so dashboards and
    /// alerts see them before the first event.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let m = Self { recorder, handle, farms: Mutex::default() };
        m.describe();
        m.register_zeroes();
        m.gauge("gateway_runtime_tuned", &[]).set(if crate::runtime::TUNED { 1.0 } else { 0.0 });
        m
    }

    /// The Prometheus text exposition of this service's metrics.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    fn describe(&self) {
        let counter = |name: &'static str, help: &'static str| {
            self.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        let gauge = |name: &'static str, help: &'static str| {
            self.recorder.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        gauge("gateway_session_state", "1 for the current upstream session state, 0 for the others");
        gauge(
            "gateway_runtime_tuned",
            "1 when built with --cfg tokio_unstable (tokio's LIFO slot off, batched stream writes), 0 without",
        );
        counter("gateway_reconnects_total", "Upstream sessions lost or attempts failed, by cause");
        counter("gateway_client_id_conflicts_total", "Times the gateway answered 326 (client id in use)");
        gauge("gateway_probe_rtt_seconds", "Round trip of the last in-session liveness probe");
        gauge("gateway_session_epoch", "Upstream session generation");
        gauge("gateway_subscribers", "Open gRPC streams");
        counter("gateway_stream_resyncs_total", "Streams resynchronised because the subscriber lagged, by kind");
        counter("gateway_upstream_updates_total", "Rows received from upstream, by kind");
        counter(
            "gateway_upstream_lag_total",
            "Upstream subscriptions that dropped frames and were resubscribed, by kind",
        );
        counter("gateway_rpc_total", "gRPC calls by method and status code");
        counter("gateway_upstream_notices_total", "IB notices received, by code class");
        gauge("gateway_farm_state", "1 for each data farm's last reported state, 0 for the others (farm, kind, state)");
    }

    fn register_zeroes(&self) {
        for cause in RECONNECT_CAUSES {
            self.counter("gateway_reconnects_total", &[("cause", cause)]).absolute(0);
        }
        self.counter("gateway_client_id_conflicts_total", &[]).absolute(0);
        self.gauge("gateway_probe_rtt_seconds", &[]).set(0.0);
        self.gauge("gateway_session_epoch", &[]).set(0.0);
        self.gauge("gateway_subscribers", &[]).set(0.0);
        for kind in KINDS {
            self.counter("gateway_stream_resyncs_total", &[("kind", kind)]).absolute(0);
            self.counter("gateway_upstream_updates_total", &[("kind", kind)]).absolute(0);
            self.counter("gateway_upstream_lag_total", &[("kind", kind)]).absolute(0);
        }
        for class in NOTICE_CLASSES {
            self.counter("gateway_upstream_notices_total", &[("class", class)]).absolute(0);
        }
        for method in METHODS {
            self.counter("gateway_rpc_total", &[("method", method), ("code", "OK")]).absolute(0);
        }
        self.session_state(SessionState::Connecting);
    }

    /// Session state gauge: exactly one state is 1.
    pub fn session_state(&self, state: SessionState) {
        for s in SessionState::ALL {
            self.gauge("gateway_session_state", &[("state", s.as_str())]).set(if s == state { 1.0 } else { 0.0 });
        }
    }

    /// A session was lost or an attempt failed.
    pub fn reconnect(&self, cause: &'static str) {
        self.counter("gateway_reconnects_total", &[("cause", cause)]).increment(1);
    }

    /// The gateway answered 326.
    pub fn client_id_conflict(&self) {
        self.counter("gateway_client_id_conflicts_total", &[]).increment(1);
    }

    /// A liveness probe came back.
    pub fn probe_rtt(&self, seconds: f64) {
        self.gauge("gateway_probe_rtt_seconds", &[]).set(seconds);
    }

    /// A new upstream session generation.
    pub fn epoch(&self, epoch: u64) {
        self.gauge("gateway_session_epoch", &[]).set(epoch as f64);
    }

    /// Open streams.
    pub fn subscribers(&self, n: usize) {
        self.gauge("gateway_subscribers", &[]).set(n as f64);
    }

    /// A lagging stream was resynchronised.
    pub fn stream_resync(&self, kind: &'static str) {
        self.counter("gateway_stream_resyncs_total", &[("kind", kind)]).increment(1);
    }

    /// Rows received from upstream.
    pub fn upstream_updates(&self, kind: &'static str, n: usize) {
        self.counter("gateway_upstream_updates_total", &[("kind", kind)]).increment(n as u64);
    }

    /// An upstream subscription dropped frames and is being resubscribed.
    pub fn upstream_lag(&self, kind: &'static str) {
        self.counter("gateway_upstream_lag_total", &[("kind", kind)]).increment(1);
    }

    /// An IB notice, classified (`link`, `farm`, `other`).
    pub fn upstream_notice(&self, class: &'static str) {
        self.counter("gateway_upstream_notices_total", &[("class", class)]).increment(1);
    }

    /// A data farm's reported status: one series per state, 1 for the current one.
    pub fn farm(&self, farm: &Farm) {
        self.farm_states(&farm.name, farm.kind, Some(farm.status));
        if let Ok(mut known) = self.farms.lock() {
            known.insert((farm.name.clone(), farm.kind));
        }
    }

    /// A new connection reports every farm afresh: until it does, no farm has a known state.
    pub fn clear_farms(&self) {
        let known = match self.farms.lock() {
            Ok(mut known) => std::mem::take(&mut *known),
            Err(_) => return,
        };
        for (name, kind) in known {
            self.farm_states(&name, kind, None);
        }
    }

    fn farm_states(&self, name: &str, kind: FarmKind, current: Option<FarmStatus>) {
        for status in FarmStatus::ALL {
            let labels = vec![
                Label::new("farm", name.to_owned()),
                Label::from_static_parts("kind", kind.as_str()),
                Label::from_static_parts("state", status.as_str()),
            ];
            let gauge = self.recorder.register_gauge(&Key::from_parts("gateway_farm_state", labels), &METADATA);
            gauge.set(if Some(status) == current { 1.0 } else { 0.0 });
        }
    }

    /// A finished (or started, for streams) RPC.
    pub fn rpc(&self, method: &'static str, code: tonic::Code) {
        self.counter("gateway_rpc_total", &[("method", method), ("code", code_name(code))]).increment(1);
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)).collect();
    Key::from_parts(name, labels)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_services_in_one_process_keep_their_own_series() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.session_state(SessionState::Ready);
        b.session_state(SessionState::Reconnecting);
        a.reconnect("connect_failed");
        let (ra, rb) = (a.render(), b.render());
        assert!(ra.contains("gateway_session_state{state=\"ready\"} 1"), "{ra}");
        assert!(rb.contains("gateway_session_state{state=\"ready\"} 0"), "{rb}");
        assert!(rb.contains("gateway_session_state{state=\"reconnecting\"} 1"), "{rb}");
        assert!(ra.contains("gateway_reconnects_total{cause=\"connect_failed\"} 1"), "{ra}");
        assert!(rb.contains("gateway_reconnects_total{cause=\"connect_failed\"} 0"), "{rb}");
    }
}
