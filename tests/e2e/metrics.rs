//! The metrics on the wire: a real scrape of /metrics after real gRPC calls. Unary calls are
//! timed per method and status code, streams are counted apart from them (opened, closed with
//! their code, open now), token refusals are recorded, health and reflection calls are not, and
//! the health-derived and process series are there.

use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use ib_sim::{Fault, Scenario};
use tonic::Code;

use crate::gateway_rpc::http_get;
use crate::support::eventually;
use crate::support::stack::{fast_settings, start_stack_unready, start_stack_with};

const WITHIN: Duration = Duration::from_secs(10);

/// One scrape: the HTTP response of GET /metrics.
struct Scrape(String);

impl Scrape {
    async fn take(ops: std::net::SocketAddr) -> Self {
        let response = http_get(ops, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        Self(response)
    }

    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn unary(&self, method: &str, code: &str) -> f64 {
        let series = format!(r#"ibgw_grpc_server_handling_seconds_count{{method="{method}",code="{code}"}}"#);
        self.value(&series).unwrap_or(0.0)
    }

    fn opened(&self, method: &str) -> f64 {
        self.value(&format!(r#"ibgw_grpc_streams_opened_total{{method="{method}"}}"#)).unwrap_or(0.0)
    }

    fn closed(&self, method: &str, code: &str) -> f64 {
        self.value(&format!(r#"ibgw_grpc_streams_closed_total{{method="{method}",code="{code}"}}"#)).unwrap_or(0.0)
    }

    fn open(&self, method: &str) -> f64 {
        self.value(&format!(r#"ibgw_grpc_streams_open{{method="{method}"}}"#)).expect("an open-streams gauge")
    }
}

#[tokio::test]
async fn unary_calls_are_timed_and_streams_counted_apart() {
    let mut settings = fast_settings();
    settings.grpc.max_subscribers = 1;
    let stack = start_stack_with(settings, Scenario::default()).await;
    let ops = stack.demo.service.ops_addr;
    let mut c = stack.client.clone();
    let before = Scrape::take(ops).await;
    assert!(before.0.contains("content-type: text/plain; version=0.0.4"), "{}", before.0);

    c.list_accounts(pb::ListAccountsRequest {}).await.unwrap();
    c.get_health(pb::GetHealthRequest {}).await.unwrap();
    let unknown = pb::GetPositionsRequest { accounts: vec!["DU0000000".into()], symbols: vec![] };
    assert_eq!(c.get_positions(unknown).await.unwrap_err().code(), Code::NotFound);

    let mut positions = c.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
    positions.message().await.unwrap().expect("a first snapshot");
    let refused = c.watch_health(pb::WatchHealthRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "one slot, taken");

    let during = eventually("the calls in the scrape", WITHIN, || async {
        let m = Scrape::take(ops).await;
        let unary = m.unary("ListAccounts", "OK") > before.unary("ListAccounts", "OK")
            && m.unary("GetHealth", "OK") > before.unary("GetHealth", "OK")
            && m.unary("GetPositions", "NOT_FOUND") == 1.0;
        (unary && m.closed("WatchHealth", "RESOURCE_EXHAUSTED") == 1.0).then_some(m)
    })
    .await;
    assert_eq!(during.unary("ListAccounts", "OK") - before.unary("ListAccounts", "OK"), 1.0);
    assert_eq!(during.unary("GetPositions", "OK"), 0.0, "GetPositions was never answered OK");
    assert_eq!(during.opened("WatchPositions") - before.opened("WatchPositions"), 1.0);
    assert_eq!(during.open("WatchPositions"), 1.0, "{}", during.0);
    assert_eq!(during.opened("WatchHealth") - before.opened("WatchHealth"), 1.0, "a refused stream opens…");
    assert_eq!(during.open("WatchHealth"), 0.0, "…and closes at once");
    for method in ["WatchPositions", "WatchHealth"] {
        let unary = format!(r#"ibgw_grpc_server_handling_seconds_count{{method="{method}""#);
        assert!(!during.0.contains(&unary), "streams are not unary calls: {}", during.0);
    }
    // A histogram: every bucket up to +Inf, +Inf equal to the count, a positive sum.
    let bucket = |le: &str| {
        during.value(&format!(
            r#"ibgw_grpc_server_handling_seconds_bucket{{method="GetPositions",code="NOT_FOUND",le="{le}"}}"#
        ))
    };
    assert_eq!(bucket("+Inf"), Some(1.0), "{}", during.0);
    assert_eq!(bucket("10"), Some(1.0), "answered from memory, well within 10 s");
    assert!(bucket("0.0001").is_some(), "sub-millisecond buckets: {}", during.0);
    let sum = during.value(r#"ibgw_grpc_server_handling_seconds_sum{method="GetPositions",code="NOT_FOUND"}"#);
    assert!(sum.is_some_and(|s| s > 0.0), "{}", during.0);

    // A client that goes away closes its stream as CANCELLED.
    drop(positions);
    let after = eventually("the dropped stream closed", WITHIN, || async {
        let m = Scrape::take(ops).await;
        (m.open("WatchPositions") == 0.0).then_some(m)
    })
    .await;
    assert_eq!(after.closed("WatchPositions", "CANCELLED") - before.closed("WatchPositions", "CANCELLED"), 1.0);
    assert_eq!(after.opened("WatchPositions"), during.opened("WatchPositions"));
    stack.stop_and_check().await;
}

#[tokio::test]
async fn token_refusals_are_recorded_and_health_checks_are_not() {
    let mut settings = fast_settings();
    settings.auth.token = Some("s3cret-token".into());
    let stack = start_stack_unready(settings, Scenario::default()).await;
    let ops = stack.demo.service.ops_addr;
    eventually("/readyz answers 200", WITHIN, || async {
        http_get(ops, "/readyz").await.starts_with("HTTP/1.1 200").then_some(())
    })
    .await;
    let addr = format!("http://{}", stack.demo.service.grpc_addr);
    let probe = gateway_svc::probe(&addr, gateway_proto::SERVICE_NAME, Duration::from_secs(2)).await;
    assert!(probe.is_ok(), "grpc.health.v1 needs no token: {probe:?}");
    let err = stack.client.clone().get_health(pb::GetHealthRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = stack.client.clone().watch_health(pb::WatchHealthRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let m = eventually("the refusals in the scrape", WITHIN, || async {
        let m = Scrape::take(ops).await;
        (m.unary("GetHealth", "UNAUTHENTICATED") == 1.0).then_some(m)
    })
    .await;
    assert_eq!(m.closed("WatchHealth", "UNAUTHENTICATED"), 1.0, "{}", m.0);
    assert_eq!(m.open("WatchHealth"), 0.0);
    assert!(!m.0.contains("method=\"Check\""), "grpc.health.v1 is not recorded: {}", m.0);
    assert_eq!(m.unary("GetHealth", "OK"), 0.0);
    stack.demo.service.stop().await;
    stack.demo.sim.shutdown().await;
}

fn window_around_now() -> gateway_svc::WindowSettings {
    // HH:MM in UTC, a minute ago, for ten minutes; the window's zone is UTC below.
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() - 60;
    let start = format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60);
    gateway_svc::WindowSettings { name: "test reset".into(), start, duration_minutes: 10, days: vec![] }
}

#[tokio::test]
async fn an_expected_outage_is_a_gauge_and_the_process_is_described() {
    let mut settings = fast_settings();
    settings.maintenance.time_zone = "UTC".into();
    settings.maintenance.retry_interval_ms = 700;
    settings.maintenance.windows.push(window_around_now());
    let stack = start_stack_with(settings, Scenario::default()).await;
    let ops = stack.demo.service.ops_addr;
    let m = Scrape::take(ops).await;
    assert_eq!(m.value("ibgw_expected_outage"), Some(0.0), "ready is never an outage");
    let version = env!("CARGO_PKG_VERSION");
    let info = m.0.lines().find(|l| l.starts_with("ibgw_build_info{")).expect("ibgw_build_info");
    assert!(info.contains(&format!("version=\"{version}\"")) && info.ends_with(" 1"), "{info}");
    for gauge in ["process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"] {
        assert!(m.value(gauge).is_some_and(|v| v > 0.0), "{gauge}: {}", m.0);
    }
    assert!(m.0.contains("# TYPE process_cpu_seconds_total counter"), "{}", m.0);
    assert!(!m.0.lines().any(|l| l.starts_with("gateway_")), "no series under the old prefix: {}", m.0);

    stack.sim().inject(Fault::Restart { down_ms: 1_200 }).unwrap();
    let m = eventually("an expected outage in the scrape", WITHIN, || async {
        let m = Scrape::take(ops).await;
        (m.value("ibgw_expected_outage") == Some(1.0)).then_some(m)
    })
    .await;
    assert_eq!(m.value(r#"ibgw_session_state{state="ready"}"#), Some(0.0), "only while not ready: {}", m.0);
    stack.wait_ready().await;
    let m = Scrape::take(ops).await;
    assert_eq!(m.value("ibgw_expected_outage"), Some(0.0), "{}", m.0);
    stack.stop_and_check().await;
}
