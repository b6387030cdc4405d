//! Unmodified IB API programs in the soak: the Rust `ibapi` client through gateway-svc's TWS
//! front door. Short runs (connect, positions, account summary, disconnect) spread over the soak,
//! as the seeds' runner did against a gateway, and one long-lived client whose positions view
//! must equal the simulator's truth at the end, through every restart and link loss.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_svc::decimal;
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, Client, SubscriptionItem};

use gateway_svc::State;

use crate::actors::{DashboardResult, TraderResult, Truth, spread};

/// Client ids of the short runs start here; the long-lived client uses 1 (the service's own
/// upstream id: front-door ids are virtual).
const FIRST_RUN_ID: i32 = 1_000;
const WITHIN: Duration = Duration::from_secs(10);

/// `runs` short IB API runs spread over `over`. A run that starts while the session is not ready
/// is told so (1100 after START_API) and answered from the last known data: a stale answer, not
/// a failure.
pub(crate) async fn runs(addr: SocketAddr, runs: u64, over: Duration, state: Arc<State>) -> TraderResult {
    spread(runs, over, |i| {
        let id = FIRST_RUN_ID + i32::try_from(i % 100_000).unwrap_or_default();
        let down = !state.health().is_ready();
        async move {
            match tokio::time::timeout(WITHIN, once(addr, id)).await {
                Ok(Ok(())) => Ok(down),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("run {i}: no answer within {WITHIN:?}")),
            }
        }
    })
    .await
}

async fn once(addr: SocketAddr, client_id: i32) -> Result<(), String> {
    let client = Client::connect(&addr.to_string(), client_id).await.map_err(|e| e.to_string())?;
    let mut positions = client.positions().await.map_err(|e| e.to_string())?;
    let mut rows = 0;
    while let Some(item) = positions.next().await {
        match item.map_err(|e| e.to_string())? {
            SubscriptionItem::Data(PositionUpdate::Position(_)) => rows += 1,
            SubscriptionItem::Data(PositionUpdate::PositionEnd) => break,
            SubscriptionItem::Notice(_) => {}
        }
    }
    let tags = [AccountSummaryTags::NET_LIQUIDATION];
    let mut summary = client.account_summary(&AccountGroup("All".into()), &tags).await.map_err(|e| e.to_string())?;
    while let Some(item) = summary.next().await {
        match item.map_err(|e| e.to_string())? {
            SubscriptionItem::Data(AccountSummaryResult::End) => break,
            SubscriptionItem::Data(AccountSummaryResult::Summary(_)) | SubscriptionItem::Notice(_) => {}
        }
    }
    drop((positions, summary));
    client.disconnect().await;
    if rows == 0 {
        return Err(format!("client {client_id}: no positions"));
    }
    Ok(())
}

/// One long-lived client following positions until `stop`, publishing its view after every row.
pub(crate) async fn follower(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    view_tx: tokio::sync::watch::Sender<Truth>,
) -> DashboardResult {
    let mut r = DashboardResult::default();
    let Ok(Ok(client)) = tokio::time::timeout(WITHIN, Client::connect(&addr.to_string(), 1)).await else {
        r.stream_errors += 1;
        return r;
    };
    let Ok(mut positions) = client.positions().await else {
        r.stream_errors += 1;
        return r;
    };
    while !stop.load(Ordering::Relaxed) {
        let item = match tokio::time::timeout(Duration::from_millis(50), positions.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(item))) => item,
            Ok(_) => {
                r.stream_errors += 1;
                break;
            }
        };
        r.messages += 1;
        if let SubscriptionItem::Data(PositionUpdate::Position(p)) = item {
            let key = (p.account.clone(), i64::from(p.contract.contract_id));
            // A size of 0 is how a gateway reports a position that went away.
            if p.position == 0.0 {
                r.view.remove(&key);
            } else {
                r.view.insert(key, decimal(p.position));
            }
            view_tx.send_replace(r.view.clone());
        }
    }
    drop(positions);
    client.disconnect().await;
    r
}
