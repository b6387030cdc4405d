//! Every metric the service exports, named in one place by Prometheus convention: the
//! application's own under `ibgw_<noun>_<unit|total>`, the process's under the standard
//! `process_` names. Labels have low cardinality only: never account ids, symbols or client
//! addresses. `docs/METRICS.md` lists them all.
//!
//! Each running service owns its [`Metrics`]: a Prometheus recorder of its own, never the
//! process-global one. Two services in one process (tests, benchmarks, an embedding
//! application) therefore never see each other's series, and embedding the library never
//! fights the host application over the global recorder. Process metrics are collected at
//! scrape time into that same recorder (through [`metrics::with_local_recorder`]).
//!
//! gRPC calls are recorded by one tower layer, [`crate::grpc::metered`], never per handler.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::farm::{Farm, FarmKind, FarmStatus};
use crate::health::SessionState;
use crate::kind::DataKind;

/// Every reconnect cause the session reports.
pub(crate) const RECONNECT_CAUSES: [&str; 12] = [
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

/// Buckets of `ibgw_grpc_server_handling_seconds`: from 100 µs (a unary call answers from
/// memory) to 10 s (twice the default `grpc.unary_timeout_ms`).
pub(crate) const RPC_SECONDS_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The data kinds that are followed upstream and streamed, as metric labels (registered at zero;
/// see [`DataKind::label`]).
pub(crate) fn kinds() -> impl Iterator<Item = &'static str> {
    DataKind::ALL.iter().filter(|k| k.streamed()).map(|k| k.label())
}

/// Why the TWS front door refused a connection or a request, as metric labels.
pub(crate) const FRONT_DOOR_REFUSALS: [&str; 6] =
    ["client_id_in_use", "malformed", "max_clients", "read_only", "unsupported", "version"];

/// Notice classes, as metric labels.
pub(crate) const NOTICE_CLASSES: [&str; 3] = ["link", "farm", "other"];

/// The code a stream is closed with when its client went away (or a call was cut by the
/// server-side deadline) before the service sent a status: what tonic reports for it.
pub(crate) const CODE_ABANDONED: &str = "CANCELLED";

const RPC_SECONDS: &str = "ibgw_grpc_server_handling_seconds";

/// Histogram samples are buffered until a render; without scrapes, drain them every this many
/// observations so the buffer stays bounded.
const UPKEEP_EVERY: u64 = 1024;

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// How a method of `gateway.v1.GatewayService` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcKind {
    /// One request, one response: timed in `ibgw_grpc_server_handling_seconds`.
    Unary,
    /// A server stream: counted in `ibgw_grpc_streams_*`.
    Stream,
}

/// Every method of `gateway.v1.GatewayService` with its kind, in the proto's order, read once
/// from the compiled descriptor: a method added to the proto is recorded without a change here.
pub(crate) fn rpc_methods() -> &'static [(&'static str, RpcKind)] {
    static METHODS: OnceLock<Vec<(&'static str, RpcKind)>> = OnceLock::new();
    METHODS.get_or_init(|| {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(gateway_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled descriptor set decodes");
        let (package, service) = gateway_proto::SERVICE_NAME.rsplit_once('.').expect("the service name has a package");
        set.file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == service)
            .flat_map(|s| &s.method)
            .map(|m| {
                // Leaked once per method for the life of the process: labels are &'static str.
                let name: &'static str = Box::leak(m.name().to_owned().into_boxed_str());
                (name, if m.server_streaming() { RpcKind::Stream } else { RpcKind::Unary })
            })
            .collect()
    })
}

/// The methods of one kind.
pub(crate) fn rpc_methods_of(kind: RpcKind) -> impl Iterator<Item = &'static str> {
    rpc_methods().iter().filter(move |(_, k)| *k == kind).map(|(m, _)| *m)
}

/// The label and kind of a method name, or None for a name the service does not have (never a
/// label: unknown names would make the cardinality unbounded).
pub(crate) fn rpc_method(name: &str) -> Option<(&'static str, RpcKind)> {
    rpc_methods().iter().find(|(m, _)| *m == name).copied()
}

/// One service's metrics: its own recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    observations: AtomicU64,
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
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(RPC_SECONDS.to_owned()), &RPC_SECONDS_BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let m = Self {
            recorder,
            handle,
            process: metrics_process::Collector::default(),
            observations: AtomicU64::new(0),
            farms: Mutex::default(),
        };
        m.describe();
        m.register_zeroes();
        m
    }

    /// The Prometheus text exposition of this service's metrics, process metrics collected now.
    pub fn render(&self) -> String {
        metrics::with_local_recorder(&self.recorder, || self.process.collect());
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        self.recorder.register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Histogram {
        self.recorder.register_histogram(&key(name, labels), &METADATA)
    }

    fn describe(&self) {
        let counter = |name: &'static str, help: &'static str| {
            self.recorder.describe_counter(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        let gauge = |name: &'static str, help: &'static str| {
            self.recorder.describe_gauge(KeyName::from_const_str(name), None, SharedString::const_str(help));
        };
        gauge("ibgw_build_info", "Always 1; the labels say which build runs (version, profile)");
        gauge(
            "ibgw_runtime_tuned",
            "1 when built with --cfg tokio_unstable (tokio's LIFO slot off, batched stream writes), 0 without",
        );
        gauge("ibgw_session_state", "1 for the current upstream session state, 0 for the others");
        gauge("ibgw_expected_outage", "1 while the session is not ready inside a configured maintenance window");
        gauge("ibgw_session_epoch", "Upstream session generation");
        counter("ibgw_reconnects_total", "Upstream sessions lost or attempts failed, by cause");
        counter("ibgw_client_id_conflicts_total", "Times the gateway answered 326 (client id in use)");
        gauge("ibgw_probe_rtt_seconds", "Round trip of the last in-session liveness probe");
        counter("ibgw_upstream_updates_total", "Rows received from upstream, by kind");
        counter("ibgw_upstream_lag_total", "Upstream subscriptions that dropped frames and were resubscribed, by kind");
        counter("ibgw_upstream_notices_total", "IB notices received, by code class");
        gauge("ibgw_farm_state", "1 for each data farm's last reported state, 0 for the others (farm, kind, state)");
        counter("ibgw_stream_resyncs_total", "Streams resynchronised because the subscriber lagged, by kind");
        self.recorder.describe_histogram(
            KeyName::from_const_str(RPC_SECONDS),
            Some(Unit::Seconds),
            SharedString::const_str(
                "Unary gRPC calls of gateway.v1.GatewayService: duration by method and status code",
            ),
        );
        counter("ibgw_grpc_streams_opened_total", "gRPC server streams started, by method");
        counter("ibgw_grpc_streams_closed_total", "gRPC server streams ended, by method and status code");
        gauge("ibgw_grpc_streams_open", "gRPC server streams open now, by method");
        gauge("ibgw_front_door_clients", "TWS API clients connected to the front door now");
        counter("ibgw_front_door_requests_total", "Requests from TWS front-door clients, by request");
        counter(
            "ibgw_front_door_refused_total",
            "TWS front-door connections and requests refused, by reason (read_only: an order-class request)",
        );
        metrics::with_local_recorder(&self.recorder, || self.process.describe());
    }

    fn register_zeroes(&self) {
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        self.gauge("ibgw_build_info", &[("version", env!("CARGO_PKG_VERSION")), ("profile", profile)]).set(1.0);
        self.gauge("ibgw_runtime_tuned", &[]).set(if crate::runtime::TUNED { 1.0 } else { 0.0 });
        self.session_state(SessionState::Connecting);
        self.expected_outage(false);
        self.gauge("ibgw_session_epoch", &[]).set(0.0);
        for cause in RECONNECT_CAUSES {
            self.counter("ibgw_reconnects_total", &[("cause", cause)]).absolute(0);
        }
        self.counter("ibgw_client_id_conflicts_total", &[]).absolute(0);
        self.gauge("ibgw_probe_rtt_seconds", &[]).set(0.0);
        for kind in kinds() {
            self.counter("ibgw_upstream_updates_total", &[("kind", kind)]).absolute(0);
            self.counter("ibgw_upstream_lag_total", &[("kind", kind)]).absolute(0);
            self.counter("ibgw_stream_resyncs_total", &[("kind", kind)]).absolute(0);
        }
        self.gauge("ibgw_front_door_clients", &[]).set(0.0);
        {
            use tws_wire::Request as R;
            let (req_id, account) = (0, String::new);
            for r in [
                R::ManagedAccounts,
                R::Ids,
                R::CurrentTime,
                R::CurrentTimeMillis,
                R::Positions,
                R::CancelPositions,
                R::AccountSummary { req_id, group: String::new(), tags: Vec::new() },
                R::CancelAccountSummary { req_id },
                R::AccountUpdates { subscribe: true, account: account() },
                R::AccountUpdatesMulti { req_id, account: account() },
                R::CancelAccountUpdatesMulti { req_id },
                R::Pnl { req_id, account: account() },
                R::CancelPnl { req_id },
                R::PnlSingle { req_id, account: account(), con_id: 0 },
                R::CancelPnlSingle { req_id },
                R::OpenOrders,
                R::CompletedOrders,
                R::Executions { req_id },
            ] {
                let key = Key::from_parts("ibgw_front_door_requests_total", vec![Label::new("request", r.name())]);
                self.recorder.register_counter(&key, &METADATA).absolute(0);
            }
        }
        for reason in FRONT_DOOR_REFUSALS {
            self.counter("ibgw_front_door_refused_total", &[("reason", reason)]).absolute(0);
        }
        for class in NOTICE_CLASSES {
            self.counter("ibgw_upstream_notices_total", &[("class", class)]).absolute(0);
        }
        for method in rpc_methods_of(RpcKind::Unary) {
            // Registered, not observed: an empty histogram (count 0) per method.
            let _ = self.histogram(RPC_SECONDS, &[("method", method), ("code", "OK")]);
        }
        for method in rpc_methods_of(RpcKind::Stream) {
            self.counter("ibgw_grpc_streams_opened_total", &[("method", method)]).absolute(0);
            self.counter("ibgw_grpc_streams_closed_total", &[("method", method), ("code", CODE_ABANDONED)]).absolute(0);
            self.gauge("ibgw_grpc_streams_open", &[("method", method)]).set(0.0);
        }
    }

    /// Session state gauge: exactly one state is 1.
    pub fn session_state(&self, state: SessionState) {
        for s in SessionState::ALL {
            self.gauge("ibgw_session_state", &[("state", s.as_str())]).set(if s == state { 1.0 } else { 0.0 });
        }
    }

    /// Whether the current outage is expected (`Health.expected_outage`).
    pub fn expected_outage(&self, expected: bool) {
        self.gauge("ibgw_expected_outage", &[]).set(if expected { 1.0 } else { 0.0 });
    }

    /// A session was lost or an attempt failed.
    pub fn reconnect(&self, cause: &'static str) {
        self.counter("ibgw_reconnects_total", &[("cause", cause)]).increment(1);
    }

    /// The gateway answered 326.
    pub fn client_id_conflict(&self) {
        self.counter("ibgw_client_id_conflicts_total", &[]).increment(1);
    }

    /// A liveness probe came back.
    pub fn probe_rtt(&self, seconds: f64) {
        self.gauge("ibgw_probe_rtt_seconds", &[]).set(seconds);
    }

    /// A new upstream session generation.
    pub fn epoch(&self, epoch: u64) {
        self.gauge("ibgw_session_epoch", &[]).set(epoch as f64);
    }

    /// A lagging stream was resynchronised.
    pub fn stream_resync(&self, kind: &'static str) {
        self.counter("ibgw_stream_resyncs_total", &[("kind", kind)]).increment(1);
    }

    /// Rows received from upstream.
    pub fn upstream_updates(&self, kind: &'static str, n: usize) {
        self.counter("ibgw_upstream_updates_total", &[("kind", kind)]).increment(n as u64);
    }

    /// An upstream subscription dropped frames and is being resubscribed.
    pub fn upstream_lag(&self, kind: &'static str) {
        self.counter("ibgw_upstream_lag_total", &[("kind", kind)]).increment(1);
    }

    /// An IB notice, classified (`link`, `farm`, `other`).
    pub fn upstream_notice(&self, class: &'static str) {
        self.counter("ibgw_upstream_notices_total", &[("class", class)]).increment(1);
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
            let gauge = self.recorder.register_gauge(&Key::from_parts("ibgw_farm_state", labels), &METADATA);
            gauge.set(if Some(status) == current { 1.0 } else { 0.0 });
        }
    }

    /// TWS front-door clients connected now.
    pub fn front_door_clients(&self, n: usize) {
        self.gauge("ibgw_front_door_clients", &[]).set(n as f64);
    }

    /// A TWS front-door connection or request refused, by one of [`FRONT_DOOR_REFUSALS`].
    pub fn front_door_refused(&self, reason: &'static str) {
        self.counter("ibgw_front_door_refused_total", &[("reason", reason)]).increment(1);
    }

    /// A request from a TWS front-door client; order-class and unsupported ones also count as
    /// refused.
    pub fn front_door_request(&self, req: &tws_wire::Request) {
        let labels = vec![Label::new("request", req.name())];
        let key = Key::from_parts("ibgw_front_door_requests_total", labels);
        self.recorder.register_counter(&key, &METADATA).increment(1);
        match req {
            tws_wire::Request::OrderClass { .. } => self.front_door_refused("read_only"),
            tws_wire::Request::Unsupported { .. } => self.front_door_refused("unsupported"),
            _ => {}
        }
    }

    /// A unary call finished with `code` after `seconds`.
    pub fn unary_call(&self, method: &'static str, code: &'static str, seconds: f64) {
        self.histogram(RPC_SECONDS, &[("method", method), ("code", code)]).record(seconds);
        if self.observations.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// A server stream started.
    pub fn stream_opened(&self, method: &'static str) {
        self.counter("ibgw_grpc_streams_opened_total", &[("method", method)]).increment(1);
        self.gauge("ibgw_grpc_streams_open", &[("method", method)]).increment(1.0);
    }

    /// A server stream ended with `code` (refused at once, finished, or abandoned).
    pub fn stream_closed(&self, method: &'static str, code: &'static str) {
        self.counter("ibgw_grpc_streams_closed_total", &[("method", method), ("code", code)]).increment(1);
        self.gauge("ibgw_grpc_streams_open", &[("method", method)]).decrement(1.0);
    }
}

fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)).collect();
    Key::from_parts(name, labels)
}

/// The gRPC status name of a code, as metric label.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
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

    /// The value of the sample line `series` (name and labels exactly as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn two_services_in_one_process_keep_their_own_series() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.session_state(SessionState::Ready);
        b.session_state(SessionState::Reconnecting);
        a.reconnect("connect_failed");
        a.unary_call("GetHealth", "OK", 0.001);
        a.stream_opened("WatchHealth");
        let (ra, rb) = (a.render(), b.render());
        assert_eq!(value(&ra, r#"ibgw_session_state{state="ready"}"#), Some(1.0), "{ra}");
        assert_eq!(value(&rb, r#"ibgw_session_state{state="ready"}"#), Some(0.0), "{rb}");
        assert_eq!(value(&rb, r#"ibgw_session_state{state="reconnecting"}"#), Some(1.0), "{rb}");
        assert_eq!(value(&ra, r#"ibgw_reconnects_total{cause="connect_failed"}"#), Some(1.0), "{ra}");
        assert_eq!(value(&rb, r#"ibgw_reconnects_total{cause="connect_failed"}"#), Some(0.0), "{rb}");
        let count = r#"ibgw_grpc_server_handling_seconds_count{method="GetHealth",code="OK"}"#;
        assert_eq!((value(&ra, count), value(&rb, count)), (Some(1.0), Some(0.0)));
        let open = r#"ibgw_grpc_streams_open{method="WatchHealth"}"#;
        assert_eq!((value(&ra, open), value(&rb, open)), (Some(1.0), Some(0.0)));
        // Process metrics land in each service's own recorder, never in a global one.
        for r in [&ra, &rb] {
            assert!(value(r, "process_resident_memory_bytes").is_some_and(|v| v > 0.0), "{r}");
            assert!(r.contains("# TYPE process_cpu_seconds_total counter"), "{r}");
        }
    }

    #[test]
    fn every_series_exists_from_the_start_with_application_names() {
        let text = Metrics::new().render();
        let info = format!(
            r#"ibgw_build_info{{version="{}",profile="{}"}}"#,
            env!("CARGO_PKG_VERSION"),
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        assert_eq!(value(&text, &info), Some(1.0), "{text}");
        assert_eq!(value(&text, "ibgw_expected_outage"), Some(0.0), "{text}");
        assert_eq!(value(&text, r#"ibgw_session_state{state="connecting"}"#), Some(1.0));
        for m in rpc_methods_of(RpcKind::Unary) {
            let bucket = format!(r#"ibgw_grpc_server_handling_seconds_bucket{{method="{m}",code="OK",le="+Inf"}}"#);
            assert_eq!(value(&text, &bucket), Some(0.0), "{text}");
        }
        for m in rpc_methods_of(RpcKind::Stream) {
            assert_eq!(value(&text, &format!(r#"ibgw_grpc_streams_opened_total{{method="{m}"}}"#)), Some(0.0));
            let closed = format!(r#"ibgw_grpc_streams_closed_total{{method="{m}",code="CANCELLED"}}"#);
            assert_eq!(value(&text, &closed), Some(0.0));
            assert_eq!(value(&text, &format!(r#"ibgw_grpc_streams_open{{method="{m}"}}"#)), Some(0.0));
        }
        let foreign: Vec<_> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| !l.starts_with("ibgw_") && !l.starts_with("process_"))
            .collect();
        assert!(foreign.is_empty(), "only ibgw_ and process_ series: {foreign:?}");
    }

    #[test]
    fn unary_durations_fall_into_sub_millisecond_to_second_buckets() {
        let m = Metrics::new();
        m.unary_call("GetPositions", "OK", 0.0002);
        m.unary_call("GetPositions", "OK", 0.3);
        m.unary_call("GetPositions", "NOT_FOUND", 0.0001);
        let text = m.render();
        let b = |code: &str, le: &str| {
            value(
                &text,
                &format!(
                    r#"ibgw_grpc_server_handling_seconds_bucket{{method="GetPositions",code="{code}",le="{le}"}}"#
                ),
            )
        };
        assert_eq!(b("OK", "0.0001"), Some(0.0), "{text}");
        assert_eq!(b("OK", "0.00025"), Some(1.0), "{text}");
        assert_eq!(b("OK", "0.25"), Some(1.0));
        assert_eq!(b("OK", "0.5"), Some(2.0));
        assert_eq!(b("OK", "+Inf"), Some(2.0));
        assert_eq!(b("NOT_FOUND", "0.0001"), Some(1.0), "{text}");
        assert!(text.contains("# TYPE ibgw_grpc_server_handling_seconds histogram"), "{text}");
    }

    #[test]
    fn a_stream_is_open_between_its_open_and_its_close() {
        let m = Metrics::new();
        m.stream_opened("WatchPositions");
        m.stream_opened("WatchPositions");
        m.stream_closed("WatchPositions", "RESOURCE_EXHAUSTED");
        let text = m.render();
        assert_eq!(value(&text, r#"ibgw_grpc_streams_opened_total{method="WatchPositions"}"#), Some(2.0));
        let refused = r#"ibgw_grpc_streams_closed_total{method="WatchPositions",code="RESOURCE_EXHAUSTED"}"#;
        assert_eq!(value(&text, refused), Some(1.0));
        assert_eq!(value(&text, r#"ibgw_grpc_streams_open{method="WatchPositions"}"#), Some(1.0));
        assert_eq!(value(&text, r#"ibgw_grpc_streams_open{method="WatchHealth"}"#), Some(0.0));
    }

    #[test]
    fn many_observations_without_a_scrape_are_drained() {
        let m = Metrics::new();
        for _ in 0..(3 * UPKEEP_EVERY) {
            m.unary_call("GetHealth", "OK", 0.0001);
        }
        let text = m.render();
        let count = r#"ibgw_grpc_server_handling_seconds_count{method="GetHealth",code="OK"}"#;
        assert_eq!(value(&text, count), Some((3 * UPKEEP_EVERY) as f64), "none lost by the upkeep");
    }

    #[test]
    fn every_method_of_the_proto_has_its_kind() {
        let unary: Vec<_> = rpc_methods_of(RpcKind::Unary).collect();
        let streams: Vec<_> = rpc_methods_of(RpcKind::Stream).collect();
        for m in ["ListAccounts", "GetPositions", "GetAccountSummary", "GetHealth"] {
            assert!(unary.contains(&m), "{m} in {unary:?}");
        }
        for m in ["WatchPositions", "WatchAccountSummary", "WatchHealth"] {
            assert!(streams.contains(&m), "{m} in {streams:?}");
        }
        assert!(unary.iter().all(|m| !m.starts_with("Watch")) && streams.iter().all(|m| m.starts_with("Watch")));
        assert_eq!(rpc_method("GetHealth"), Some(("GetHealth", RpcKind::Unary)));
        assert_eq!(rpc_method("WatchHealth"), Some(("WatchHealth", RpcKind::Stream)));
        assert_eq!(rpc_method("PlaceOrder"), None);
    }
}
