//! Every metric the service exports, named in one place (`gateway_<noun>_<unit|total>`), with
//! low-cardinality labels only: never account ids or symbols. `docs/METRICS.md` lists them.

use std::sync::OnceLock;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::health::SessionState;

/// Installs the process-wide Prometheus recorder once and returns its handle. Later calls (more
/// servers in one test process) share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => {
                describe();
                register_zeroes();
                h
            }
            // Another recorder is installed (embedding application): render an empty registry
            // of our own rather than fail.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("gateway_session_state", "1 for the current upstream session state, 0 for the others");
    describe_counter!("gateway_reconnects_total", "Upstream sessions lost or attempts failed, by cause");
    describe_counter!("gateway_client_id_conflicts_total", "Times the gateway answered 326 (client id in use)");
    describe_gauge!("gateway_probe_rtt_seconds", "Round trip of the last in-session liveness probe");
    describe_gauge!("gateway_session_epoch", "Upstream session generation");
    describe_gauge!("gateway_subscribers", "Open gRPC streams");
    describe_counter!("gateway_stream_resyncs_total", "Streams resynchronised because the subscriber lagged, by kind");
    describe_counter!("gateway_upstream_updates_total", "Rows received from upstream, by kind");
    describe_counter!(
        "gateway_upstream_lag_total",
        "Upstream subscriptions that dropped frames and were resubscribed, by kind"
    );
    describe_counter!("gateway_rpc_total", "gRPC calls by method and status code");
    describe_counter!("gateway_upstream_notices_total", "IB notices received, by code class");
}

/// Every reconnect cause the session reports.
pub const RECONNECT_CAUSES: [&str; 9] = [
    "client_id_in_use",
    "connect_failed",
    "connect_timeout",
    "connection_lost",
    "port_reset",
    "probe_failed",
    "probe_timeout",
    "sync_failed",
    "sync_timeout",
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

/// Registers every series at zero so dashboards and alerts see them before the first event.
fn register_zeroes() {
    for cause in RECONNECT_CAUSES {
        counter!("gateway_reconnects_total", "cause" => cause).absolute(0);
    }
    counter!("gateway_client_id_conflicts_total").absolute(0);
    gauge!("gateway_probe_rtt_seconds").set(0.0);
    gauge!("gateway_session_epoch").set(0.0);
    gauge!("gateway_subscribers").set(0.0);
    for kind in ["positions", "account_summary"] {
        counter!("gateway_stream_resyncs_total", "kind" => kind).absolute(0);
        counter!("gateway_upstream_updates_total", "kind" => kind).absolute(0);
        counter!("gateway_upstream_lag_total", "kind" => kind).absolute(0);
    }
    for class in ["link", "farm", "other"] {
        counter!("gateway_upstream_notices_total", "class" => class).absolute(0);
    }
    for method in METHODS {
        counter!("gateway_rpc_total", "method" => method, "code" => "OK").absolute(0);
    }
    session_state(SessionState::Connecting);
}

/// Session state gauge: exactly one state is 1.
pub fn session_state(state: SessionState) {
    for s in SessionState::ALL {
        gauge!("gateway_session_state", "state" => s.as_str()).set(if s == state { 1.0 } else { 0.0 });
    }
}

/// A session was lost or an attempt failed.
pub fn reconnect(cause: &'static str) {
    counter!("gateway_reconnects_total", "cause" => cause).increment(1);
}

/// The gateway answered 326.
pub fn client_id_conflict() {
    counter!("gateway_client_id_conflicts_total").increment(1);
}

/// A liveness probe came back.
pub fn probe_rtt(seconds: f64) {
    gauge!("gateway_probe_rtt_seconds").set(seconds);
}

/// A new upstream session generation.
pub fn epoch(epoch: u64) {
    gauge!("gateway_session_epoch").set(epoch as f64);
}

/// Open streams.
pub fn subscribers(n: usize) {
    gauge!("gateway_subscribers").set(n as f64);
}

/// A lagging stream was resynchronised.
pub fn stream_resync(kind: &'static str) {
    counter!("gateway_stream_resyncs_total", "kind" => kind).increment(1);
}

/// Rows received from upstream.
pub fn upstream_updates(kind: &'static str, n: usize) {
    counter!("gateway_upstream_updates_total", "kind" => kind).increment(n as u64);
}

/// An upstream subscription dropped frames and is being resubscribed.
pub fn upstream_lag(kind: &'static str) {
    counter!("gateway_upstream_lag_total", "kind" => kind).increment(1);
}

/// An IB notice, classified (`link`, `farm`, `other`).
pub fn upstream_notice(class: &'static str) {
    counter!("gateway_upstream_notices_total", "class" => class).increment(1);
}

/// A finished (or started, for streams) RPC.
pub fn rpc(method: &'static str, code: tonic::Code) {
    counter!("gateway_rpc_total", "method" => method, "code" => code_name(code)).increment(1);
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
