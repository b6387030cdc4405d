//! `trader-client` as a process against the real stack: SIGINT/SIGTERM in every phase, exit codes
//! as README.md documents them, a deadline on every call, account errors, currencies, values and
//! PnL.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use gateway_proto::pb;
use ib_sim::{Fault, Scenario};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::gateway_rpc::http_get;
use crate::support::stack::{Stack, fast_settings, start_stack, start_stack_with};
use crate::support::{bin, eventually, first_line, patience, start_sim};

/// How long a run may take when it has nothing to wait for.
const RUN: Duration = Duration::from_secs(10);
/// How long a signalled trader-client may take to exit (the issue's bar: within 1 s).
const PROMPTLY: Duration = Duration::from_secs(1);

fn trader(gateway: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bin("trader-client"));
    c.arg("--gateway")
        .arg(gateway)
        .args(args)
        .env_remove("IBGW_ADDR")
        .env_remove("IBGW_TOKEN")
        .env_remove("IBGW_TLS_CA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs trader-client to the end (within `within`, scaled).
async fn run(gateway: &str, args: &[&str], within: Duration) -> Outcome {
    let child = trader(gateway, args).spawn().expect("trader-client starts");
    let out = tokio::time::timeout(patience(within), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("trader-client {args:?} did not exit within {within:?}"))
        .expect("trader-client output");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn grpc_url(stack: &Stack) -> String {
    format!("http://{}", stack.demo.service.grpc_addr)
}

async fn wait_not_ready(stack: &Stack) {
    eventually("the session to leave READY", Duration::from_secs(10), || async {
        (stack.health().await.state != pb::SessionState::Ready as i32).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Signals: gateway-svc runs as its own process so its metrics count only trader-client's calls.

struct Served {
    sim: ib_sim::Sim,
    service: Child,
    grpc: String,
    ops: SocketAddr,
}

impl Served {
    async fn start() -> Served {
        let sim = start_sim().await;
        let mut service = Command::new(bin("gateway-svc"))
            .arg("serve")
            .env("IBGW__UPSTREAM__ADDRESS", sim.api_addr().to_string())
            .env("IBGW__GRPC__LISTEN", "127.0.0.1:0")
            .env("IBGW__OPS__LISTEN", "127.0.0.1:0")
            .env("IBGW__LOG__FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("gateway-svc starts");
        let line = first_line(service.stdout.take().unwrap()).await;
        let info: serde_json::Value = serde_json::from_str(&line).unwrap();
        let served = Served {
            sim,
            service,
            grpc: format!("http://{}", info["grpc"].as_str().unwrap()),
            ops: info["ops"].as_str().unwrap().parse().unwrap(),
        };
        served.wait_ready(true).await;
        served
    }

    async fn metrics(&self) -> Metrics {
        Metrics(http_get(self.ops, "/metrics").await)
    }

    async fn wait_ready(&self, ready: bool) -> Metrics {
        eventually(&format!("session ready = {ready}"), Duration::from_secs(10), || async {
            let m = self.metrics().await;
            (m.value(r#"ibgw_session_state{state="ready"}"#) == Some(if ready { 1.0 } else { 0.0 })).then_some(m)
        })
        .await
    }

    async fn stop(mut self) {
        let _ = self.service.start_kill();
        let _ = self.service.wait().await;
        self.sim.shutdown().await;
    }
}

struct Metrics(String);

impl Metrics {
    fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Health calls answered so far (GetHealth finished, WatchHealth opened).
    fn health_calls(&self) -> f64 {
        let answered = self.value(r#"ibgw_grpc_server_handling_seconds_count{method="GetHealth",code="OK"}"#);
        let watching = self.value(r#"ibgw_grpc_streams_opened_total{method="WatchHealth"}"#);
        answered.unwrap_or(0.0) + watching.unwrap_or(0.0)
    }
}

fn send(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Exit code and stderr of a signalled trader-client, which must exit within PROMPTLY (scaled).
async fn exit_promptly(mut child: Child) -> (Option<i32>, String) {
    let status = tokio::time::timeout(patience(PROMPTLY), child.wait())
        .await
        .unwrap_or_else(|_| panic!("trader-client still running {PROMPTLY:?} after the signal"))
        .unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).await.unwrap();
    (status.code(), stderr)
}

/// Waits until `child` has made a health call after `before` (the scrape that showed the outage):
/// from then on it is inside a run that waits up to its --ready-timeout for READY. A client that
/// opened WatchHealth is waiting for READY too (it only does so when the session is not ready).
async fn wait_mid_fetch(served: &Served, before: &Metrics) {
    let baseline = before.health_calls();
    eventually("trader-client waiting for READY", Duration::from_secs(10), || async {
        let m = served.metrics().await;
        let watching = m.value(r#"ibgw_grpc_streams_opened_total{method="WatchHealth"}"#).unwrap_or(0.0) > 0.0;
        (m.health_calls() > baseline || watching).then_some(())
    })
    .await;
}

#[tokio::test]
async fn sigint_ends_the_pause_and_a_later_run_waiting_for_ready_with_130() {
    let served = Served::start().await;

    // In the pause between runs (the old client exited 0 here).
    let mut pausing = trader(&served.grpc, &["--symbols", "AAPL", "--interval", "60s"]).spawn().unwrap();
    let mut lines = BufReader::new(pausing.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(patience(RUN), lines.next_line()).await.expect("a report").unwrap().unwrap();
    assert!(first.contains("session READY"), "{first}");
    send(&pausing, "INT");
    let (code, stderr) = exit_promptly(pausing).await;
    assert_eq!(code, Some(130), "SIGINT in the pause: {stderr}");
    assert_eq!(stderr.trim(), "trader-client: stopped by SIGINT");

    // In the second run, waiting for READY during an outage (the old client kept going: only its
    // pause listened for Ctrl-C, and the wait lasts --ready-timeout).
    let mut looping =
        trader(&served.grpc, &["--symbols", "AAPL", "--interval", "2s", "--ready-timeout", "60s"]).spawn().unwrap();
    let mut lines = BufReader::new(looping.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(patience(RUN), lines.next_line()).await.expect("a report").unwrap().unwrap();
    assert!(first.contains("session READY"), "{first}");
    served.sim.inject(Fault::Restart { down_ms: 60_000 }).unwrap();
    let outage = served.wait_ready(false).await;
    wait_mid_fetch(&served, &outage).await;
    send(&looping, "INT");
    let (code, stderr) = exit_promptly(looping).await;
    assert_eq!(code, Some(130), "SIGINT while waiting for READY: {stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    served.stop().await;
}

#[tokio::test]
async fn sigterm_ends_a_run_waiting_for_ready_with_143() {
    let served = Served::start().await;
    served.sim.inject(Fault::Restart { down_ms: 60_000 }).unwrap();
    let outage = served.wait_ready(false).await;
    let child =
        trader(&served.grpc, &["--symbols", "AAPL", "--interval", "2s", "--ready-timeout", "60s"]).spawn().unwrap();
    wait_mid_fetch(&served, &outage).await;
    send(&child, "TERM");
    let (code, stderr) = exit_promptly(child).await;
    assert_eq!(code, Some(143), "SIGTERM while waiting for READY: {stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    served.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Exit codes and freshness, as README.md's table says.

#[tokio::test]
async fn no_data_at_all_and_not_ready_exits_4() {
    crate::support::init_tracing();
    // Upstream is a port nobody listens on: the session never syncs, so no data exists.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut settings = fast_settings();
    settings.upstream.address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let service = gateway_svc::start(settings.validate().unwrap(), CancellationToken::new()).await.unwrap();
    let gateway = format!("http://{}", service.grpc_addr);
    let out = run(&gateway, &["--symbols", "AAPL", "--ready-timeout", "300ms"], RUN).await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing printed without data: {}", out.stdout);
    assert!(out.stderr.starts_with("trader-client: gateway-svc has no data"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    assert!(service.stop().await);
}

#[tokio::test]
async fn stale_data_passes_within_max_staleness_and_exits_5_beyond_it() {
    let stack = start_stack().await;
    let gateway = grpc_url(&stack);
    let live = run(&gateway, &["--symbols", "AAPL"], RUN).await;
    assert_eq!(live.code, Some(0), "{}", live.stderr);
    assert!(live.stdout.contains("data LIVE"), "{}", live.stdout);

    stack.sim().inject(Fault::Restart { down_ms: 60_000 }).unwrap();
    wait_not_ready(&stack).await;
    // Cached data, stale for less than --max-staleness: printed, marked STALE, exit 0.
    let fresh_enough =
        run(&gateway, &["--symbols", "AAPL", "--ready-timeout", "200ms", "--max-staleness", "10m"], RUN).await;
    assert_eq!(fresh_enough.code, Some(0), "{}", fresh_enough.stderr);
    assert!(fresh_enough.stdout.contains("data STALE since"), "{}", fresh_enough.stdout);
    assert!(fresh_enough.stdout.contains("qty        100"), "{}", fresh_enough.stdout);
    let json = run(&gateway, &["--symbols", "AAPL", "--ready-timeout", "200ms", "--json"], RUN).await;
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["freshness"]["state"], "STALE");
    // Stale for longer than --max-staleness: exit 5, one line.
    let too_old =
        run(&gateway, &["--symbols", "AAPL", "--ready-timeout", "200ms", "--max-staleness", "1ms"], RUN).await;
    assert_eq!(too_old.code, Some(5), "{}", too_old.stderr);
    assert!(too_old.stderr.starts_with("trader-client: data stale for"), "{}", too_old.stderr);
    assert!(too_old.stdout.is_empty(), "{}", too_old.stdout);
    stack.sim().reset();
    stack.wait_ready().await;
    assert!(stack.demo.stop().await);
}

// ---------------------------------------------------------------------------------------------
// Deadlines.

/// A server that accepts connections and never answers: `speak_http2` sends the HTTP/2 settings
/// (so calls are made and hang), otherwise it stays silent from the start.
async fn hung_server(speak_http2: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                if speak_http2 {
                    // SETTINGS (empty), then SETTINGS with the ACK flag.
                    let frames = [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
                    if socket.write_all(&frames).await.is_err() {
                        return;
                    }
                }
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_server_that_never_answers_cannot_hold_the_client() {
    for speak_http2 in [true, false] {
        let addr = hung_server(speak_http2).await;
        let out = run(&format!("http://{addr}"), &["--symbols", "AAPL", "--rpc-timeout", "300ms"], RUN).await;
        assert_eq!(out.code, Some(3), "http2 {speak_http2}: {}", out.stderr);
        assert!(out.stderr.contains("did not answer"), "{}", out.stderr);
        assert!(out.stderr.contains("--rpc-timeout"), "{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts, symbols, currencies.

#[tokio::test]
async fn a_malformed_account_is_an_account_error() {
    let stack = start_stack().await;
    let gateway = grpc_url(&stack);
    let bad = run(&gateway, &["--symbols", "AAPL", "--account", "bad acct!"], RUN).await;
    assert_eq!(bad.code, Some(6), "{}", bad.stderr);
    assert!(bad.stderr.starts_with("trader-client: invalid account: \"bad acct!\""), "{}", bad.stderr);
    let unknown = run(&gateway, &["--symbols", "AAPL", "--account", "DU0000000"], RUN).await;
    assert_eq!(unknown.code, Some(6), "{}", unknown.stderr);
    assert!(unknown.stderr.contains("unknown account"), "{}", unknown.stderr);
    let symbol = run(&gateway, &["--symbols", "AA;PL"], RUN).await;
    assert_eq!(symbol.code, Some(7), "{}", symbol.stderr);
    assert!(symbol.stderr.contains("invalid symbol"), "{}", symbol.stderr);
    stack.stop_and_check().await;
}

/// A position's share of net liquidation is its market value (the PnL row's, in the base
/// currency) over the account's NetLiquidation: AAPL 100 @ 150.25 priced at 189.38 is 15.10% of
/// the account, never the 11.98% its cost basis would give.
#[tokio::test]
async fn a_positions_share_of_net_liquidation_is_its_market_value() {
    let stack = start_stack_with(fast_settings(), quick_pnl()).await;
    let served = served_position_pnl(&stack, "AAPL's PnL", |r| {
        r.positions.iter().any(|p| p.account == "DU1234567" && p.con_id == 265_598)
    })
    .await;
    let aapl = served.positions.iter().find(|p| p.account == "DU1234567" && p.con_id == 265_598).unwrap();
    let summary =
        stack.client.clone().get_account_summary(pb::GetAccountSummaryRequest::default()).await.unwrap().into_inner();
    let nlv = summary.values.iter().find(|v| v.account == "DU1234567" && v.tag == "NetLiquidation").unwrap();
    let expected = aapl.market_value.parse::<f64>().unwrap() / nlv.value.parse::<f64>().unwrap() * 100.0;
    let cost_share = 100.0 * 150.25 / nlv.value.parse::<f64>().unwrap() * 100.0;
    assert!((expected - cost_share).abs() > 1.0, "the scenario tells value and cost apart");

    let out = run(&grpc_url(&stack), &["--symbols", "AAPL", "--account", "DU1234567"], RUN).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let aapl_line = out.stdout.lines().find(|l| l.trim_start().starts_with("AAPL")).unwrap();
    assert!(aapl_line.contains(&format!("{expected:.2}% of NLV")), "{expected:.2}%: {}", out.stdout);
    let doc = json(&run(&grpc_url(&stack), &["--symbols", "AAPL", "--account", "DU1234567", "--json"], RUN).await);
    let pct = line(&doc, "DU1234567", "AAPL", "STK")["share_of_net_liquidation_pct"].as_f64().unwrap();
    assert!((pct - expected).abs() < 0.006, "{pct} vs {expected}");
    stack.stop_and_check().await;
}

// ---------------------------------------------------------------------------------------------
// Values and PnL: joined to the positions by account and contract id, in the account's base
// currency ("BASE"), never invented: missing is n/a, stale says STALE.

fn quick_pnl() -> Scenario {
    // PnL arrives on IB's cadence (about a second); a short one keeps the tests quick.
    Scenario { pnl_interval_ms: 50, ..Scenario::default() }
}

fn is_live(f: &Option<pb::Freshness>) -> bool {
    f.as_ref().is_some_and(|f| f.state == pb::FreshnessState::Live as i32)
}

/// The served position PnL once it is live and `ready` accepts it.
async fn served_position_pnl(
    stack: &Stack,
    what: &str,
    ready: impl Fn(&pb::GetPositionPnlResponse) -> bool,
) -> pb::GetPositionPnlResponse {
    eventually(what, Duration::from_secs(10), || async {
        let r = stack.client.clone().get_position_pnl(pb::GetPositionPnlRequest::default()).await.ok()?.into_inner();
        (is_live(&r.freshness) && ready(&r)).then_some(r)
    })
    .await
}

async fn served_account_pnl(stack: &Stack) -> pb::GetAccountPnlResponse {
    eventually("account PnL live for both accounts", Duration::from_secs(10), || async {
        let r = stack.client.clone().get_account_pnl(pb::GetAccountPnlRequest::default()).await.ok()?.into_inner();
        (is_live(&r.freshness) && r.accounts.len() == 2).then_some(r)
    })
    .await
}

fn json(out: &Outcome) -> serde_json::Value {
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// The report's line for `contract` ("STK", "OPT …") of `symbol` in `account`.
fn line<'a>(doc: &'a serde_json::Value, account: &str, symbol: &str, contract: &str) -> &'a serde_json::Value {
    let accounts = doc["accounts"].as_array().expect("accounts");
    let a = accounts.iter().find(|a| a["id"] == account).unwrap_or_else(|| panic!("{account} in {doc}"));
    let lines = a["lines"].as_array().expect("lines");
    lines
        .iter()
        .find(|l| l["symbol"] == symbol && l["contract"].as_str().is_some_and(|c| c.starts_with(contract)))
        .unwrap_or_else(|| panic!("{symbol} {contract} in {a}"))
}

fn served_row(r: &pb::GetPositionPnlResponse, account: &str, con_id: i64) -> pb::PositionPnl {
    r.positions.iter().find(|p| p.account == account && p.con_id == con_id).cloned().expect("a served row")
}

#[tokio::test]
async fn values_and_pnl_are_printed_per_position_and_account_in_the_base_currency() {
    let stack = start_stack_with(fast_settings(), quick_pnl()).await;
    let gateway = grpc_url(&stack);
    let held = stack.sim().positions().len();
    let served = served_position_pnl(&stack, "a PnL row for every position", |r| r.positions.len() == held).await;
    served_account_pnl(&stack).await;

    let doc = json(&run(&gateway, &["--symbols", "AAPL,MSFT", "--json"], RUN).await);
    // AAPL is held by both accounts, at different sizes: each line carries its own account's row.
    for (account, con_id, value) in [("DU1234567", 265598, "18950"), ("DU7654321", 265598, "1895")] {
        let pnl = &line(&doc, account, "AAPL", "STK")["pnl"];
        let row = served_row(&served, account, con_id);
        assert_eq!(pnl["market_value"], value, "{account}: {pnl}");
        assert_eq!(pnl["market_value"], row.market_value.as_str(), "the served decimal string, untouched");
        assert_eq!(pnl["unrealized_pnl"], row.unrealized_pnl.as_str());
        assert_eq!(pnl["daily_pnl"], row.daily_pnl.as_str());
        assert_eq!((&pnl["currency"], &pnl["state"]), (&"BASE".into(), &"LIVE".into()), "{pnl}");
    }
    let option = &line(&doc, "DU1234567", "AAPL", "OPT")["pnl"];
    assert_eq!(option["market_value"], served_row(&served, "DU1234567", 720104601).market_value.as_str());
    let accounts = doc["accounts"].as_array().unwrap();
    let first = accounts.iter().find(|a| a["id"] == "DU1234567").unwrap();
    assert_eq!(first["pnl"]["daily_pnl"], "412.35", "the simulator's daily PnL: {first}");
    assert_eq!(first["pnl"]["currency"], "BASE");
    assert_eq!(doc["pnl_freshness"]["accounts"]["state"], "LIVE");
    assert_eq!(doc["pnl_freshness"]["positions"]["state"], "LIVE");

    let text = run(&gateway, &["--symbols", "AAPL,MSFT", "--account", "DU1234567"], RUN).await;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(text.stdout.contains("PnL in each account's base currency (BASE): accounts LIVE"), "{}", text.stdout);
    assert!(text.stdout.contains("PnL in BASE      daily +412.35  unrealized "), "{}", text.stdout);
    assert!(text.stdout.contains("PnL in BASE  value 18950.00  price 189.50  unrealized +3925.00"), "{}", text.stdout);
    assert!(text.stdout.contains("PnL in BASE  value 16608.00"), "MSFT: {}", text.stdout);

    // A trade: the line follows once the PnL is for the new size, never mixing the two.
    let mut msft = stack.sim().positions().into_iter().find(|p| p.symbol == "MSFT").unwrap();
    msft.quantity = "77".into();
    stack.sim().upsert_positions(vec![msft.clone()]).unwrap();
    let served = served_position_pnl(&stack, "MSFT's PnL for 77 shares", |r| {
        r.positions.iter().any(|p| p.con_id == i64::from(msft.con_id) && p.quantity == "77")
    })
    .await;
    eventually("MSFT's position at 77 shares", Duration::from_secs(10), || async {
        let request = pb::GetPositionsRequest { symbols: vec!["MSFT".into()], ..Default::default() };
        let r = stack.client.clone().get_positions(request).await.ok()?.into_inner();
        r.positions.iter().any(|p| p.quantity == "77").then_some(())
    })
    .await;
    let doc = json(&run(&gateway, &["--symbols", "MSFT", "--json", "--account", "DU1234567"], RUN).await);
    let msft_line = line(&doc, "DU1234567", "MSFT", "STK");
    assert_eq!(msft_line["quantity"], "77", "{msft_line}");
    let row = served_row(&served, "DU1234567", i64::from(msft.con_id));
    assert_eq!(msft_line["pnl"]["market_value"], row.market_value.as_str(), "{msft_line}");
    assert_eq!(msft_line["pnl"]["quantity"], "77");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn a_position_without_pnl_says_so_and_never_shows_zero() {
    // gateway-svc holds at most one position PnL subscription here: the rest get no row.
    let mut settings = fast_settings();
    settings.upstream.max_position_pnl = 1;
    let stack = start_stack_with(settings, quick_pnl()).await;
    served_position_pnl(&stack, "the one position PnL row", |r| r.positions.len() == 1).await;
    let out = run(&grpc_url(&stack), &["--symbols", "AAPL,MSFT", "--account", "DU1234567"], RUN).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let after = |start: &str| {
        let i = lines.iter().position(|l| l.trim_start().starts_with(start)).expect(start);
        lines[i + 1]
    };
    assert!(after("AAPL   STK").contains("PnL in BASE  value 18950.00"), "{}", out.stdout);
    assert_eq!(after("MSFT").trim(), "PnL n/a (no PnL for this position)", "{}", out.stdout);
    assert_eq!(after("AAPL   OPT").trim(), "PnL n/a (no PnL for this position)", "{}", out.stdout);
    assert!(!out.stdout.contains("value 0.00"), "{}", out.stdout);

    let doc = json(&run(&grpc_url(&stack), &["--symbols", "MSFT", "--json"], RUN).await);
    let msft = line(&doc, "DU1234567", "MSFT", "STK");
    assert_eq!(msft["pnl"], serde_json::Value::Null, "{msft}");
    assert_eq!(msft["pnl_unavailable"], "no PnL for this position");
    stack.stop_and_check().await;
}

#[tokio::test]
async fn pnl_kept_through_an_outage_is_marked_stale() {
    let stack = start_stack_with(fast_settings(), quick_pnl()).await;
    let gateway = grpc_url(&stack);
    let held = stack.sim().positions().len();
    served_position_pnl(&stack, "a PnL row for every position", |r| r.positions.len() == held).await;
    served_account_pnl(&stack).await;
    stack.sim().inject(Fault::Restart { down_ms: 60_000 }).unwrap();
    wait_not_ready(&stack).await;
    let stale = ["--symbols", "AAPL", "--account", "DU1234567", "--ready-timeout", "200ms", "--max-staleness", "10m"];
    let doc = json(&run(&gateway, &[&stale[..], &["--json"]].concat(), RUN).await);
    assert_eq!(doc["pnl_freshness"]["accounts"]["state"], "STALE", "{doc}");
    assert_eq!(doc["pnl_freshness"]["positions"]["state"], "STALE", "{doc}");
    let aapl = &line(&doc, "DU1234567", "AAPL", "STK")["pnl"];
    assert_eq!((&aapl["state"], &aapl["market_value"]), (&"STALE".into(), &"18950".into()), "kept, not zeroed: {aapl}");
    assert_eq!(doc["accounts"][0]["pnl"]["state"], "STALE");
    assert_eq!(doc["accounts"][0]["pnl"]["daily_pnl"], "412.35");
    let text = run(&gateway, &stale, RUN).await;
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(text.stdout.contains("accounts STALE since "), "{}", text.stdout);
    assert!(text.stdout.contains("value 18950.00  price 189.50  unrealized +3925.00  daily "), "{}", text.stdout);
    let aapl_pnl = text.stdout.lines().find(|l| l.contains("value 18950.00")).unwrap();
    assert!(aapl_pnl.ends_with("STALE"), "{}", text.stdout);
    stack.sim().reset();
    stack.wait_ready().await;
    stack.stop_and_check().await;
}
