//! Unary RPCs, status codes, limits and the one-socket guarantee.

use std::time::Duration;

use gateway_proto::pb;
use tonic::Code;

use crate::support::stack::{connect, fast_settings, start_stack, start_stack_with};

fn live(f: &Option<pb::Freshness>) -> bool {
    f.as_ref().is_some_and(|f| f.state == pb::FreshnessState::Live as i32)
}

#[tokio::test]
async fn every_unary_rpc_answers_from_the_synced_state() {
    let stack = start_stack().await;
    let mut c = stack.client.clone();

    let accounts = c.list_accounts(pb::ListAccountsRequest {}).await.unwrap().into_inner();
    let ids: Vec<&str> = accounts.accounts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["DU1234567", "DU7654321"]);
    assert_eq!(accounts.session_epoch, 1);
    assert!(live(&accounts.freshness));
    assert!(accounts.as_of.is_some());

    let all = c.get_positions(pb::GetPositionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.positions.len(), stack.sim().positions().len());
    assert!(live(&all.freshness));
    let opt = all.positions.iter().find(|p| p.sec_type == "OPT").expect("option position");
    assert_eq!(
        (opt.quantity.as_str(), opt.right.as_str(), opt.strike.as_str(), opt.multiplier.as_str()),
        ("-2", "C", "200", "100")
    );
    let spy = all.positions.iter().find(|p| p.symbol == "SPY").unwrap();
    assert_eq!(spy.quantity, "25.5", "decimal strings survive the round trip");

    let aapl = c
        .get_positions(pb::GetPositionsRequest { accounts: vec!["DU1234567".into()], symbols: vec!["aapl".into()] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(aapl.positions.len(), 2, "stock and option in one account");
    assert!(aapl.positions.iter().all(|p| p.account == "DU1234567" && p.symbol == "AAPL"));

    let none =
        c.get_positions(pb::GetPositionsRequest { accounts: vec![], symbols: vec!["ZZZZ".into()] }).await.unwrap();
    assert!(none.into_inner().positions.is_empty(), "an unheld symbol is an empty answer, not an error");

    let summary = c
        .get_account_summary(pb::GetAccountSummaryRequest {
            accounts: vec!["DU7654321".into()],
            tags: vec!["NetLiquidation".into(), "BuyingPower".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let tags: Vec<(&str, &str)> = summary.values.iter().map(|v| (v.tag.as_str(), v.value.as_str())).collect();
    assert_eq!(tags, [("BuyingPower", "60816.00"), ("NetLiquidation", "20874.50")]);

    let health = stack.health().await;
    assert_eq!(health.state, pb::SessionState::Ready as i32);
    assert_eq!(health.session_epoch, 1);
    assert_eq!(health.server_version, 226);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn bad_input_gets_precise_status_codes() {
    let stack = start_stack().await;
    let mut c = stack.client.clone();
    let err = c
        .get_positions(pb::GetPositionsRequest { accounts: vec!["DU0000000".into()], symbols: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("DU0000000"), "{}", err.message());
    let err = c
        .get_account_summary(pb::GetAccountSummaryRequest { accounts: vec!["NOPE".into()], tags: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err =
        c.get_positions(pb::GetPositionsRequest { accounts: vec![], symbols: vec!["".into()] }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .get_positions(pb::GetPositionsRequest { accounts: vec![], symbols: vec!["AAPL'; DROP".into()] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = c
        .watch_positions(pb::WatchPositionsRequest { accounts: vec!["DU0000000".into()], symbols: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // The service keeps serving.
    c.list_accounts(pb::ListAccountsRequest {}).await.unwrap();
    stack.stop_and_check().await;
}

#[tokio::test]
async fn unavailable_with_a_reason_before_any_data() {
    let mut settings = fast_settings();
    // Nothing listens here: the session can never sync.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    settings.upstream.address = dead.local_addr().unwrap().to_string();
    drop(dead);
    settings.grpc.listen = "127.0.0.1:0".into();
    let running =
        gateway_svc::start(settings.validate().unwrap(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let mut c = connect(running.grpc_addr).await;
    let err = c.get_positions(pb::GetPositionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(!err.message().is_empty());
    // A stream opened now starts with an UNKNOWN snapshot instead of failing.
    let mut s = c.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
    let first = s.message().await.unwrap().unwrap();
    assert_eq!(first.kind, pb::UpdateKind::Snapshot as i32);
    assert_eq!(first.freshness.unwrap().state, pb::FreshnessState::Unknown as i32);
    let h = c.get_health(pb::GetHealthRequest {}).await.unwrap().into_inner().health.unwrap();
    assert!(matches!(
        pb::SessionState::try_from(h.state),
        Ok(pb::SessionState::Reconnecting | pb::SessionState::Connecting)
    ));
    assert!(running.stop().await);
}

#[tokio::test]
async fn many_callers_and_client_churn_share_one_upstream_socket() {
    let stack = start_stack().await;
    let addr = stack.demo.service.grpc_addr;
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..50 {
        let mut c = stack.client.clone();
        callers.spawn(async move {
            for _ in 0..10 {
                if i % 2 == 0 {
                    c.get_positions(pb::GetPositionsRequest::default()).await.unwrap();
                } else {
                    c.get_account_summary(pb::GetAccountSummaryRequest::default()).await.unwrap();
                }
            }
        });
    }
    for _ in 0..20 {
        let mut c = connect(addr).await;
        c.list_accounts(pb::ListAccountsRequest {}).await.unwrap();
        let mut s = c.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
        s.message().await.unwrap().unwrap();
        drop(s);
        drop(c);
    }
    while let Some(r) = callers.join_next().await {
        r.unwrap();
    }
    let stats = stack.sim().stats();
    assert_eq!(stats.connections_accepted_total, 1, "exactly one upstream connection, ever");
    assert_eq!(stats.handshakes_completed, 1);
    stack.stop_and_check().await;
}

#[tokio::test]
async fn the_subscriber_cap_answers_resource_exhausted() {
    let mut settings = fast_settings();
    settings.grpc.max_subscribers = 2;
    let stack = start_stack_with(settings, ib_sim::Scenario::default()).await;
    let mut c = stack.client.clone();
    let _a = c.watch_positions(pb::WatchPositionsRequest::default()).await.unwrap();
    let b = c.watch_account_summary(pb::WatchAccountSummaryRequest::default()).await.unwrap();
    let err = c.watch_health(pb::WatchHealthRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    drop(b);
    // The slot frees when the stream is dropped (server side notices the reset).
    crate::support::eventually("a slot to free up", Duration::from_secs(5), || {
        let mut c = c.clone();
        async move { c.watch_health(pb::WatchHealthRequest {}).await.ok().map(drop) }
    })
    .await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn grpc_health_and_ops_endpoints_follow_the_session() {
    let stack = start_stack().await;
    let addr = format!("http://{}", stack.demo.service.grpc_addr);
    let status = gateway_svc::probe(&addr, gateway_proto::SERVICE_NAME, Duration::from_secs(2)).await.unwrap();
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving);
    let ops = stack.demo.service.ops_addr;
    let ready = http_get(ops, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = http_get(ops, "/metrics").await;
    assert!(metrics.contains("ibgw_session_state{state=\"ready\"} 1"), "{metrics}");

    stack.sim().inject(ib_sim::Fault::Restart { down_ms: 60_000 }).unwrap();
    crate::support::eventually("NOT_SERVING during the outage", Duration::from_secs(5), || async {
        let s = gateway_svc::probe(&addr, gateway_proto::SERVICE_NAME, Duration::from_secs(2)).await.ok()?;
        (s == tonic_health::pb::health_check_response::ServingStatus::NotServing).then_some(())
    })
    .await;
    let process = gateway_svc::probe(&addr, "", Duration::from_secs(2)).await.unwrap();
    assert_eq!(process, tonic_health::pb::health_check_response::ServingStatus::Serving, "the process itself is fine");
    let not_ready = http_get(ops, "/readyz").await;
    assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
    stack.sim().reset();
    stack.wait_ready().await;
    stack.stop_and_check().await;
}

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn accounts_come_in_the_gateways_order_not_sorted() {
    let mut scenario = ib_sim::Scenario::default();
    scenario.accounts.reverse();
    let expected: Vec<String> = scenario.accounts.iter().map(|a| a.id.clone()).collect();
    assert!(expected.windows(2).any(|w| w[0] > w[1]), "the scenario lists the accounts unsorted");
    let stack = start_stack_with(fast_settings(), scenario).await;
    let accounts = stack.client.clone().list_accounts(pb::ListAccountsRequest {}).await.unwrap().into_inner();
    let ids: Vec<String> = accounts.accounts.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, expected, "ListAccounts keeps the order of the gateway's managed-accounts list");
    stack.stop_and_check().await;
}

/// Under the gateway's summary cadence (full list once, then changed values every 3 minutes)
/// `as_of` says when upstream last sent summary data, never "now": other traffic does not
/// refresh it, while the positions' `as_of` follows their own updates.
#[tokio::test]
async fn summary_as_of_is_when_upstream_last_sent_it() {
    let stack = start_stack_with(fast_settings(), ib_sim::Scenario::default()).await;
    let mut c = stack.client.clone();
    let summary_as_of = |r: pb::GetAccountSummaryResponse| r.as_of.expect("as_of");
    let first =
        summary_as_of(c.get_account_summary(pb::GetAccountSummaryRequest::default()).await.unwrap().into_inner());
    let before = c.get_positions(pb::GetPositionsRequest::default()).await.unwrap().into_inner().as_of.unwrap();
    let mut aapl = stack.sim().positions().into_iter().find(|p| p.symbol == "AAPL" && p.sec_type == "STK").unwrap();
    aapl.quantity = "123".into();
    stack.sim().upsert_positions(vec![aapl]).unwrap();
    let after = crate::support::eventually("the position change", Duration::from_secs(10), || {
        let mut c = c.clone();
        async move {
            let r = c.get_positions(pb::GetPositionsRequest::default()).await.ok()?.into_inner();
            r.positions.iter().any(|p| p.quantity == "123").then_some(r.as_of?)
        }
    })
    .await;
    assert!((after.seconds, after.nanos) > (before.seconds, before.nanos), "positions' as_of follows their updates");
    let again =
        summary_as_of(c.get_account_summary(pb::GetAccountSummaryRequest::default()).await.unwrap().into_inner());
    assert_eq!(again, first, "no summary message arrived, so its as_of stays");
    stack.stop_and_check().await;
}
