//! Hostile or broken gRPC input: each gets a precise status (or a closed connection), and the
//! service keeps serving everyone else. `docs/BAD_INPUT.md` is the table these tests prove.

use std::time::Duration;

use gateway_proto::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

use crate::support::eventually;
use crate::support::stack::{Stack, start_stack};

const WITHIN: Duration = Duration::from_secs(10);

async fn still_serving(stack: &Stack) {
    let r = stack.client.clone().get_positions(pb::GetPositionsRequest::default()).await.unwrap().into_inner();
    assert_eq!(r.positions.len(), stack.sim().positions().len());
}

#[tokio::test]
async fn oversized_and_overlong_requests() {
    let stack = start_stack().await;
    let mut c = stack.client.clone();
    let many = pb::GetPositionsRequest { accounts: vec![], symbols: vec!["AAPL".into(); 1_001] };
    assert_eq!(c.get_positions(many).await.unwrap_err().code(), Code::InvalidArgument);
    let long = pb::GetAccountSummaryRequest { accounts: vec![], tags: vec!["X".repeat(65)] };
    assert_eq!(c.get_account_summary(long).await.unwrap_err().code(), Code::InvalidArgument);
    // 5 MiB: beyond the 4 MiB message limit; refused before any handler runs.
    let huge = pb::GetPositionsRequest { accounts: vec![], symbols: vec!["A".repeat(5 << 20)] };
    let err = c.get_positions(huge).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    still_serving(&stack).await;
    stack.stop_and_check().await;
}

/// The message of a refused call, which must be INVALID_ARGUMENT.
fn refused<T>(r: Result<T, tonic::Status>) -> String {
    match r {
        Ok(_) => panic!("accepted, expected INVALID_ARGUMENT"),
        Err(s) => {
            assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
            s.message().to_owned()
        }
    }
}

/// Each filter field has its own character set, and its INVALID_ARGUMENT message quotes that
/// set (docs/BAD_INPUT.md lists them): a refused value is never told it is inside the set.
#[tokio::test]
async fn each_filter_field_quotes_its_own_character_set() {
    let stack = start_stack().await;
    let mut c = stack.client.clone();
    let positions = |accounts: &[&str], symbols: &[&str]| pb::GetPositionsRequest {
        accounts: accounts.iter().map(|s| s.to_string()).collect(),
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
    };
    let summary = |tags: &[&str]| pb::GetAccountSummaryRequest {
        accounts: vec![],
        tags: tags.iter().map(|s| s.to_string()).collect(),
    };

    // `:` is allowed in tags (`$LEDGER:ALL`), not in symbols.
    assert_eq!(
        refused(c.get_positions(positions(&[], &["BRK:B"])).await),
        r#"symbol "BRK:B" has characters outside [A-Za-z0-9 ._/-]"#
    );
    let watch = pb::WatchPositionsRequest { accounts: vec![], symbols: vec!["BRK:B".into()] };
    assert_eq!(refused(c.watch_positions(watch).await), r#"symbol "BRK:B" has characters outside [A-Za-z0-9 ._/-]"#);
    // A space is allowed in symbols (`BRK B`), not in account ids.
    assert_eq!(
        refused(c.get_positions(positions(&["DU 1234567"], &[])).await),
        r#"account "DU 1234567" has characters outside [A-Za-z0-9._-]"#
    );
    assert_eq!(
        refused(c.get_account_summary(summary(&["Net Liquidation"])).await),
        r#"tag "Net Liquidation" has characters outside [A-Za-z0-9._:$-]"#
    );
    assert_eq!(refused(c.get_positions(positions(&[], &[""])).await), "empty symbol in filter");
    let many = pb::GetPositionsRequest { accounts: vec![], symbols: vec!["AAPL".into(); 1_001] };
    assert_eq!(refused(c.get_positions(many).await), "at most 1000 symbols per request, got 1001");
    assert_eq!(
        refused(c.get_account_summary(summary(&[&"X".repeat(65)])).await),
        format!("tag {:?}… is longer than 64 bytes", "X".repeat(64))
    );

    // What each set allows is answered, not refused.
    let ok = c.get_positions(positions(&[], &["BRK B", "BRK.B", "EUR.USD"])).await.expect("symbols in the set");
    assert!(ok.into_inner().positions.is_empty(), "nobody holds them in the simulator");
    c.get_account_summary(summary(&["$LEDGER:ALL", "NetLiquidation"])).await.expect("tags in the set");
    still_serving(&stack).await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn one_millisecond_deadlines() {
    let stack = start_stack().await;
    let mut c = stack.client.clone();
    for _ in 0..20 {
        let mut req = tonic::Request::new(pb::GetPositionsRequest::default());
        req.set_timeout(Duration::from_millis(1));
        match c.get_positions(req).await {
            Ok(_) => {}
            Err(s) => assert!(matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled), "{s:?}"),
        }
    }
    // A deadline bounds a stream's start (until its first headers), not its life: a 1 ms
    // deadline either refuses the stream or lets it run. Either way, once the caller goes away
    // its subscriber slot is given back.
    let mut req = tonic::Request::new(pb::WatchPositionsRequest::default());
    req.set_timeout(Duration::from_millis(1));
    match c.watch_positions(req).await {
        Ok(resp) => {
            let mut s = resp.into_inner();
            let first = tokio::time::timeout(WITHIN, s.message()).await.expect("the snapshot or an end in time");
            assert!(matches!(first, Ok(Some(_)) | Err(_)), "{first:?}");
        }
        Err(s) => assert!(matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled), "{s:?}"),
    }
    eventually("the subscriber slot to be released", WITHIN, || async {
        (stack.health().await.subscribers == 0).then_some(())
    })
    .await;
    still_serving(&stack).await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn garbage_bytes_and_http1_on_the_grpc_port() {
    let stack = start_stack().await;
    let addr = stack.demo.service.grpc_addr;
    for junk in
        [&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-tls-hello"[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
    {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = vec![0u8; 4096];
        // The server answers with at most an error and closes; it never hangs on us.
        let closed = tokio::time::timeout(WITHIN, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "connection closed after {junk:?}");
    }
    still_serving(&stack).await;
    stack.stop_and_check().await;
}

#[tokio::test]
async fn abrupt_disconnects_mid_stream_release_everything() {
    let stack = start_stack().await;
    let addr = stack.demo.service.grpc_addr;
    for _ in 0..5 {
        let c = crate::support::stack::connect(addr).await;
        let mut streams = Vec::new();
        for _ in 0..20 {
            let mut s = c.clone().watch_positions(pb::WatchPositionsRequest::default()).await.unwrap().into_inner();
            s.message().await.unwrap().unwrap();
            streams.push(s);
        }
        assert!(stack.health().await.subscribers >= 20);
        // Drop the whole HTTP/2 connection without ending the streams.
        drop(streams);
        drop(c);
    }
    eventually("every subscriber slot to be released", WITHIN, || async {
        (stack.health().await.subscribers == 0).then_some(())
    })
    .await;
    still_serving(&stack).await;
    stack.stop_and_check().await;
}
