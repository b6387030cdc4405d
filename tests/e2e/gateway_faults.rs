//! The rest of the fault matrix through gateway-svc: refused connections, accept-then-close,
//! handshake stalls, a full gateway, maintenance windows and SIGTERM on a real process. Every
//! test ends with the socket-hygiene checks of `Stack::stop_and_check`.

use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use ib_sim::{Fault, Scenario};

use crate::support::eventually;
use crate::support::stack::{Stack, fast_settings, start_stack, start_stack_with};

const WITHIN: Duration = Duration::from_secs(10);

/// Forces the service off its current socket (as any malformed frame does) while `fault` shapes
/// what its reconnect attempts meet; returns the health seen during the outage with `reason_has`.
async fn outage(stack: &Stack, fault: Fault, reason_has: &str) -> pb::Health {
    stack.sim().inject(fault).unwrap();
    stack.sim().inject(Fault::MalformedFrame).unwrap();
    let what = format!("an outage whose reason mentions {reason_has:?}");
    eventually(&what, WITHIN, || async {
        let h = stack.health().await;
        (h.state == pb::SessionState::Reconnecting as i32 && h.reason.contains(reason_has)).then_some(h)
    })
    .await
}

async fn recovered(stack: &Stack, epoch: u64) {
    let h = stack.wait_ready().await;
    assert!(h.session_epoch > epoch, "a new session after the outage");
    let positions = stack.client.clone().get_positions(pb::GetPositionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(positions.positions.len(), stack.sim().positions().len(), "every position is back");
    assert_eq!(positions.freshness.unwrap().state, pb::FreshnessState::Live as i32);
}

#[tokio::test]
async fn refused_connections_are_retried_until_the_port_opens() {
    let stack = start_stack().await;
    outage(&stack, Fault::Refuse { duration_ms: 1_500 }, "refused").await;
    let stale = stack.client.clone().get_positions(pb::GetPositionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(stale.freshness.unwrap().state, pb::FreshnessState::Stale as i32, "last data, served stale");
    assert_eq!(stale.positions.len(), stack.sim().positions().len(), "never emptied");
    recovered(&stack, 1).await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn accept_then_close_is_a_failed_attempt_not_a_crash() {
    let stack = start_stack().await;
    outage(&stack, Fault::AcceptThenClose { duration_ms: 1_500 }, "closed the API handshake").await;
    recovered(&stack, 1).await;
    assert!(stack.sim().stats().rejected.get("accept_then_close").copied().unwrap_or(0) >= 1);
    stack.stop_and_check().await;
}

/// The recovery policy with the shipped defaults: never more than 2 attempts a second, and never
/// more than 0.8 s between the gateway accepting again and the next attempt, however long the
/// outage (so READY follows within about a second; the latency itself is measured by
/// `ibgw-bench recovery`, not here).
#[tokio::test]
async fn reconnect_attempts_are_paced_and_the_wait_is_capped() {
    let mut settings = fast_settings();
    let shipped = gateway_svc::Settings::default().upstream;
    settings.upstream.backoff_initial_ms = shipped.backoff_initial_ms;
    settings.upstream.backoff_max_ms = shipped.backoff_max_ms;
    let stack = start_stack_with(settings, Scenario::default()).await;
    let started = tokio::time::Instant::now();
    outage(&stack, Fault::AcceptThenClose { duration_ms: 3_000 }, "closed the API handshake").await;
    let longest_wait = std::cell::Cell::new(Duration::ZERO);
    let h = eventually("ready again after the outage", WITHIN, || async {
        let h = stack.health().await;
        if let Some(next) = h.next_attempt_at {
            let next = SystemTime::try_from(next).unwrap();
            let wait = next.duration_since(SystemTime::now()).unwrap_or_default();
            longest_wait.set(longest_wait.get().max(wait));
        }
        (h.state == pb::SessionState::Ready as i32).then_some(h)
    })
    .await;
    assert!(h.session_epoch >= 2);
    let elapsed = started.elapsed().as_secs_f64();
    let attempts = stack.sim().stats().rejected.get("accept_then_close").copied().unwrap_or(0);
    assert!(attempts >= 3, "the outage was retried: {attempts}");
    assert!(attempts as f64 <= elapsed * 2.0 + 1.0, "{attempts} attempts in {elapsed:.1} s: more than 2 a second");
    let longest_wait = longest_wait.get();
    assert!(longest_wait <= Duration::from_millis(800), "next attempt {longest_wait:?} away: over the 0.8 s cap");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_stalled_handshake_times_out_and_its_socket_is_closed_before_the_next_dial() {
    let stack = start_stack().await;
    outage(&stack, Fault::StallHandshake { duration_ms: 2_500 }, "no API handshake within 1000 ms").await;
    recovered(&stack, 1).await;
    let stats = stack.sim().stats();
    assert!(stats.closed.iter().any(|c| c.client_id.is_none() && c.closed_by == ib_sim::Closer::Client));
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_full_gateway_is_retried_until_a_slot_frees() {
    let mut settings = fast_settings();
    // Give the third client time to take our slot while we back off.
    settings.upstream.backoff_initial_ms = 500;
    settings.upstream.backoff_max_ms = 1_000;
    let stack = start_stack_with(settings, Scenario { max_clients: 2, ..Scenario::default() }).await;
    // Another application takes the second slot; then our socket drops and a third client takes
    // the freed slot before we redial.
    let (other, _) = crate::support::wire::WireClient::start(stack.sim().api_addr(), 50).await;
    stack.sim().inject(Fault::MalformedFrame).unwrap();
    eventually("our socket to close", WITHIN, || async { (stack.sim().stats().open_now < 2).then_some(()) }).await;
    let (thief, _) = crate::support::wire::WireClient::start(stack.sim().api_addr(), 51).await;
    eventually("the limit to turn us away", WITHIN, || async {
        (stack.sim().stats().rejected.get("max_clients").copied().unwrap_or(0) >= 1).then_some(())
    })
    .await;
    let h = stack.health().await;
    assert_ne!(h.state, pb::SessionState::Ready as i32);
    drop(thief);
    recovered(&stack, 1).await;
    drop(other);
    // Other applications' sockets count towards the gateway's peak here, so check ours directly:
    // one accepted session per epoch, each closed by us, cleanly.
    let Stack { demo, client } = stack;
    drop(client);
    assert!(demo.service.stop().await);
    let stats = eventually("our socket closed", WITHIN, || async {
        let s = demo.sim.stats();
        s.open.iter().all(|o| o.client_id != Some(1)).then_some(s)
    })
    .await;
    let ours: Vec<_> = stats.closed.iter().filter(|c| c.client_id == Some(1)).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(ours.iter().all(|c| c.closed_by == ib_sim::Closer::Client && c.clean), "{ours:?}");
    demo.sim.shutdown().await;
}

fn window_around_now() -> gateway_svc::WindowSettings {
    let start = jiff_now_minus_minutes(1);
    gateway_svc::WindowSettings { name: "test reset".into(), start, duration_minutes: 10, days: vec![] }
}

fn jiff_now_minus_minutes(m: u64) -> String {
    // HH:MM in UTC, a minute ago; the window's zone is UTC below.
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() - m * 60;
    format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60)
}

#[tokio::test]
async fn an_outage_inside_a_maintenance_window_is_expected_and_retried_slowly() {
    let mut settings = fast_settings();
    settings.maintenance.time_zone = "UTC".into();
    settings.maintenance.retry_interval_ms = 700;
    settings.maintenance.windows.push(window_around_now());
    let stack = start_stack_with(settings, Scenario::default()).await;
    let h = stack.health().await;
    assert!(!h.expected_outage, "ready is never an outage");
    stack.sim().inject(Fault::Restart { down_ms: 1_200 }).unwrap();
    let h = eventually("an expected outage", WITHIN, || async {
        let h = stack.health().await;
        (h.state == pb::SessionState::Reconnecting as i32).then_some(h)
    })
    .await;
    assert!(h.expected_outage, "{h:?}");
    assert!(h.reason.contains("maintenance window \"test reset\""), "{}", h.reason);
    let since = SystemTime::try_from(h.since.unwrap()).unwrap();
    let next = SystemTime::try_from(h.next_attempt_at.unwrap()).unwrap();
    let gap = next.duration_since(since).unwrap();
    assert!(gap >= Duration::from_millis(650), "slow retry cadence inside the window, got {gap:?}");
    let h = stack.wait_ready().await;
    assert!(!h.expected_outage);
    // IBKR's reset (1100, farms down, then 1102) inside the window is expected too.
    stack.sim().inject(Fault::Maintenance { duration_ms: 400 }).unwrap();
    let h = stack.wait_state(pb::SessionState::Degraded, WITHIN).await;
    assert!(h.expected_outage);
    stack.wait_ready().await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn the_same_outage_outside_any_window_is_unexpected() {
    let stack = start_stack().await;
    stack.sim().inject(Fault::Restart { down_ms: 800 }).unwrap();
    let h = eventually("an outage", WITHIN, || async {
        let h = stack.health().await;
        (h.state == pb::SessionState::Reconnecting as i32).then_some(h)
    })
    .await;
    assert!(!h.expected_outage);
    assert!(!h.reason.contains("maintenance"));
    stack.wait_ready().await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn sigterm_on_the_real_binary_with_streams_open() {
    let sim = crate::support::start_sim().await;
    let bin = crate::support::bin("gateway-svc");
    let mut child = tokio::process::Command::new(bin)
        .arg("serve")
        .env("IBGW__UPSTREAM__ADDRESS", sim.api_addr().to_string())
        .env("IBGW__GRPC__LISTEN", "127.0.0.1:0")
        .env("IBGW__OPS__LISTEN", "127.0.0.1:0")
        .env("IBGW__LOG__FORMAT", "json")
        // A long grace: a stream that held shutdown open would show as a late exit.
        .env("IBGW__SHUTDOWN__GRACE_MS", "60000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gateway-svc starts");
    let line = crate::support::first_line(child.stdout.take().unwrap()).await;
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = info["grpc"].as_str().unwrap().parse().unwrap();
    let mut client = crate::support::stack::connect(addr).await;
    eventually("ready", WITHIN, || {
        let mut c = client.clone();
        async move {
            let h = c.get_health(pb::GetHealthRequest {}).await.ok()?.into_inner().health?;
            (h.state == pb::SessionState::Ready as i32).then_some(())
        }
    })
    .await;
    let mut stream = client.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    // grpc client-side health checking and most monitors keep a grpc.health.v1 Watch open.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest { service: gateway_proto::SERVICE_NAME.into() })
        .await
        .unwrap()
        .into_inner();
    let serving = health.message().await.unwrap().unwrap();
    assert_eq!(serving.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(s) => break s,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "shutting down");
    let exit = tokio::time::timeout(crate::support::patience(Duration::from_secs(6)), child.wait())
        .await
        .expect("exits promptly, not at the end of the grace")
        .unwrap();
    assert!(exit.success(), "exit 0 on SIGTERM: {exit:?}");
    let last = health.message().await.expect("the health watch ends cleanly");
    let last = last.expect("a last status before the end");
    assert_eq!(last.status(), tonic_health::pb::health_check_response::ServingStatus::NotServing);
    assert!(health.message().await.unwrap().is_none(), "the health watch ended");
    let stats = eventually("the upstream socket closed", WITHIN, || async {
        let s = sim.stats();
        (s.open_now == 0 && s.closed_total == 1).then_some(s)
    })
    .await;
    assert_eq!(stats.closed[0].closed_by, ib_sim::Closer::Client);
    assert!(stats.closed[0].clean);
    sim.shutdown().await;
}

/// A routine gateway restart is WARN and INFO, never ERROR: operators alert on ERROR. Runs the
/// real `ibgw-demo` with JSON logs through a simulated restart and reads every line.
#[tokio::test]
async fn a_gateway_restart_logs_no_error() {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new(crate::support::bin("ibgw-demo"))
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--tws-api-listen",
            "127.0.0.1:0",
            "--sim-listen",
            "127.0.0.1:0",
            "--sim-control-listen",
            "127.0.0.1:0",
        ])
        .env("IBGW__OPS__LISTEN", "127.0.0.1:0")
        .env("IBGW__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("ibgw-demo starts");
    let mut stderr = child.stderr.take().unwrap();
    let collected = tokio::spawn(async move {
        let mut all = String::new();
        let _ = stderr.read_to_string(&mut all).await;
        all
    });
    let line = crate::support::first_line(child.stdout.take().unwrap()).await;
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let client = crate::support::stack::connect(info["grpc"].as_str().unwrap().parse().unwrap()).await;
    let epoch_ready = |epoch: u64| {
        let client = client.clone();
        move || {
            let mut c = client.clone();
            async move {
                let h = c.get_health(pb::GetHealthRequest {}).await.ok()?.into_inner().health?;
                (h.state == pb::SessionState::Ready as i32 && h.session_epoch >= epoch).then_some(())
            }
        }
    };
    eventually("ready", WITHIN, epoch_ready(1)).await;
    let control = ib_sim::ControlClient::new(info["sim_control"].as_str().unwrap().parse().unwrap());
    control.inject(&Fault::Restart { down_ms: 300 }).await.unwrap();
    eventually("ready on a new session after the restart", WITHIN, epoch_ready(2)).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit =
        tokio::time::timeout(crate::support::patience(Duration::from_secs(10)), child.wait()).await.unwrap().unwrap();
    assert!(exit.success());
    let logs = collected.await.unwrap();
    let levels: Vec<(String, String)> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (v["level"].as_str().unwrap_or("").to_owned(), v["fields"]["message"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert!(levels.iter().any(|(l, m)| l == "WARN" && m == "upstream session lost"), "the restart was logged: {logs}");
    let errors: Vec<_> = levels.iter().filter(|(l, _)| l == "ERROR").collect();
    assert!(errors.is_empty(), "a routine restart logged ERROR: {errors:?}");
}

/// A gateway too old for this build (API server version below 213) closes our handshake; the
/// reason must say what to do, not send users to the Trusted-IPs setting alone.
#[tokio::test]
async fn a_gateway_below_the_version_floor_is_diagnosed() {
    for server_version in [200, 212] {
        let scenario = Scenario { server_version, ..Scenario::default() };
        let stack = crate::support::stack::start_stack_unready(fast_settings(), scenario).await;
        let h = eventually("the handshake refusal to be diagnosed", WITHIN, || async {
            let h = stack.health().await;
            h.reason.contains("closed the API handshake").then_some(h)
        })
        .await;
        assert_eq!(h.state, pb::SessionState::Reconnecting as i32);
        for hint in ["older than this build supports", "213", "10.40", "upgrade", "Trusted IPs"] {
            assert!(h.reason.contains(hint), "server {server_version}: {hint:?} missing from {:?}", h.reason);
        }
        let metrics = crate::gateway_rpc::http_get(stack.demo.service.ops_addr, "/metrics").await;
        assert!(!metrics.contains("ibgw_reconnects_total{cause=\"handshake_rejected\"} 0"), "{metrics}");
        assert!(stack.sim().stats().rejected.get("version").copied().unwrap_or(0) >= 1);
        assert!(stack.demo.stop().await);
    }
}
