//! The baseline without gateway-svc: a direct `ibapi` connection to the (simulated) gateway, as
//! every runner used to open its own.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, Client, Subscription, SubscriptionItem};
use tokio::time::Instant;

use crate::{Error, Result, TARGET_ACCOUNT, TARGET_CON_ID};

/// Per-step deadline: the simulator answers in microseconds, so this only catches hangs.
const STEP: Duration = Duration::from_secs(10);

async fn step<T>(what: &str, f: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(STEP, f)
        .await
        .map_err(|_| Error::Functional(format!("direct ibapi: {what} took over {STEP:?}")))
}

async fn dial(addr: SocketAddr, client_id: i32) -> Result<Client> {
    step("connect", Client::connect(&addr.to_string(), client_id))
        .await?
        .map_err(|e| Error::functional(&format!("direct ibapi connect as client id {client_id}"), e))
}

/// A fresh connection that reads every position (until PositionEnd) and the account summary
/// for group "All" (until its End), then disconnects. Returns the wall time of the whole thing.
pub async fn connect_and_sync(addr: SocketAddr, client_id: i32) -> Result<Duration> {
    let started = Instant::now();
    let client = dial(addr, client_id).await?;
    let mut positions = client.positions().await.map_err(|e| Error::functional("direct ibapi positions", e))?;
    let mut n = 0;
    loop {
        match step("positions", positions.next()).await? {
            Some(Ok(SubscriptionItem::Data(PositionUpdate::Position(_)))) => n += 1,
            Some(Ok(SubscriptionItem::Data(PositionUpdate::PositionEnd))) => break,
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            Some(Err(e)) => return Err(Error::functional("direct ibapi positions", e)),
            None => return Err(Error::Functional("direct ibapi: positions ended before PositionEnd".into())),
        }
    }
    let mut summary = client
        .account_summary(&AccountGroup("All".into()), AccountSummaryTags::ALL)
        .await
        .map_err(|e| Error::functional("direct ibapi account summary", e))?;
    let mut rows = 0;
    loop {
        match step("account summary", summary.next()).await? {
            Some(Ok(SubscriptionItem::Data(AccountSummaryResult::Summary(_)))) => rows += 1,
            Some(Ok(SubscriptionItem::Data(AccountSummaryResult::End))) => break,
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            Some(Err(e)) => return Err(Error::functional("direct ibapi account summary", e)),
            None => return Err(Error::Functional("direct ibapi: summary ended before End".into())),
        }
    }
    drop((positions, summary));
    client.disconnect().await;
    let took = started.elapsed();
    if n == 0 || rows == 0 {
        return Err(Error::Functional(format!("direct ibapi read {n} positions and {rows} summary rows")));
    }
    Ok(took)
}

/// A direct connection subscribed to positions, past its initial snapshot.
pub struct PositionFeed {
    client: Client,
    sub: Subscription<PositionUpdate>,
    /// The target position's quantity in the snapshot.
    pub initial: Option<f64>,
}

impl std::fmt::Debug for PositionFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionFeed").field("initial", &self.initial).finish_non_exhaustive()
    }
}

impl PositionFeed {
    /// Connects and reads the positions snapshot.
    pub async fn open(addr: SocketAddr, client_id: i32) -> Result<PositionFeed> {
        let client = dial(addr, client_id).await?;
        let mut sub = client.positions().await.map_err(|e| Error::functional("direct ibapi positions", e))?;
        let mut initial = None;
        loop {
            match step("positions", sub.next()).await? {
                Some(Ok(SubscriptionItem::Data(PositionUpdate::Position(p)))) => {
                    if is_target(&p) {
                        initial = Some(p.position);
                    }
                }
                Some(Ok(SubscriptionItem::Data(PositionUpdate::PositionEnd))) => break,
                Some(Ok(SubscriptionItem::Notice(_))) => {}
                Some(Err(e)) => return Err(Error::functional("direct ibapi positions", e)),
                None => return Err(Error::Functional("direct ibapi: positions ended before PositionEnd".into())),
            }
        }
        Ok(PositionFeed { client, sub, initial })
    }

    /// Reads updates until the target position shows `expected`; returns when that was, how
    /// many target updates arrived, and how many frames `ibapi` dropped because this reader fell
    /// behind its channel (it reports them in-band as notice [`LAG_CODE`]).
    pub async fn until_quantity(&mut self, expected: f64, within: Duration) -> Result<(Instant, u64, u64)> {
        let deadline = Instant::now() + within;
        let mut updates = 0;
        let mut dropped = 0;
        loop {
            let item = tokio::time::timeout_at(deadline, self.sub.next()).await.map_err(|_| {
                Error::Functional(format!(
                    "direct ibapi saw {updates} updates, not quantity {expected}, within {within:?}"
                ))
            })?;
            match item {
                Some(Ok(SubscriptionItem::Data(PositionUpdate::Position(p)))) if is_target(&p) => {
                    updates += 1;
                    if p.position == expected {
                        return Ok((Instant::now(), updates, dropped));
                    }
                }
                Some(Ok(SubscriptionItem::Notice(n))) if n.code == LAG_CODE => dropped += frames_dropped(&n.message),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::functional("direct ibapi positions", e)),
                None => return Err(Error::Functional("direct ibapi: positions stream ended".into())),
            }
        }
    }

    /// Disconnects.
    pub async fn close(self) {
        drop(self.sub);
        self.client.disconnect().await;
    }
}

/// The in-band notice code `ibapi` uses for "subscription fell behind; N frames dropped".
pub const LAG_CODE: i32 = ibapi::SUBSCRIPTION_LAG_CODE;

/// The N of a lag notice's "… N frames dropped …" (also as logged).
pub fn frames_dropped(message: &str) -> u64 {
    message.split("; ").nth(1).and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(1)
}

fn is_target(p: &ibapi::accounts::Position) -> bool {
    p.account == TARGET_ACCOUNT && p.contract.contract_id == TARGET_CON_ID
}
