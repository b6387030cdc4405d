//! The session actor: the only owner of the `ibapi` client and so of the one upstream socket.
//!
//! It runs an explicit state machine (connecting → syncing → ready ⇄ degraded → reconnecting …
//! → stopped), reconnects with its own capped, jittered backoff (the crate's built-in reconnect
//! is disabled so that there is exactly one socket and one owner of the retry policy), keeps one
//! upstream subscription per data kind, and reconciles after every new session and after 1101.
//! Every transition is published on the health watch with a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{FutureExt, StreamExt};
use ibapi::accounts::{AccountSummaryResult, AccountSummaryTags, PositionUpdate};
use ibapi::prelude::{AccountGroup, Client, Notice, NoticeStream, Subscription, SubscriptionItem};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::config::UpstreamSettings;
use crate::convert;
use crate::health::SessionState;
use crate::maintenance::Schedule;
use crate::model::{AccountRow, PositionRow, Row, SummaryRow};
use crate::state::State;

/// Items pulled from one upstream stream per wake-up: a burst becomes one published delta.
const BATCH: usize = 512;

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// The service is shutting down.
    Shutdown,
    /// The session is gone; reconnect.
    Lost {
        /// Low-cardinality metric label.
        cause: &'static str,
        /// Human-readable reason for health.
        reason: String,
    },
}

fn lost(cause: &'static str, reason: impl Into<String>) -> End {
    End::Lost { cause, reason: reason.into() }
}

/// Runs the actor until `shutdown`.
pub async fn run(cfg: UpstreamSettings, maintenance: Maintenance, state: Arc<State>, shutdown: CancellationToken) {
    let backoff =
        Backoff::new(Duration::from_millis(cfg.backoff_initial_ms), Duration::from_millis(cfg.backoff_max_ms));
    let mut actor =
        Actor { cfg, maintenance, state, shutdown, backoff, epoch: 0, sessions: 0, consecutive_conflicts: 0 };
    actor.run().await;
}

/// When outages are expected, and how often to retry during them.
#[derive(Debug, Clone)]
pub struct Maintenance {
    /// The windows.
    pub schedule: Schedule,
    /// Retry cadence inside a window.
    pub retry_interval: Duration,
}

struct Actor {
    cfg: UpstreamSettings,
    maintenance: Maintenance,
    state: Arc<State>,
    shutdown: CancellationToken,
    backoff: Backoff,
    epoch: u64,
    /// Sessions that completed their first sync.
    sessions: u64,
    consecutive_conflicts: u32,
}

/// The live subscriptions of one session.
struct Subs {
    positions: Subscription<PositionUpdate>,
    summary: Subscription<AccountSummaryResult>,
}

impl Actor {
    fn set_state(&self, state: SessionState, reason: impl Into<String>) {
        let reason = reason.into();
        let current = self.state.health();
        if current.state == state && current.reason == reason {
            return;
        }
        // An outage inside a maintenance window is expected; say so wherever health is read.
        let expected = state != SessionState::Ready && self.maintenance.schedule.active_now().is_some();
        info!(from = current.state.as_str(), to = state.as_str(), %reason, expected_outage = expected, "session state");
        self.state.metrics.session_state(state);
        self.state.update_health(|h| {
            h.state = state;
            h.expected_outage = expected;
            h.reason = reason;
            h.since = SystemTime::now();
            if state != SessionState::Reconnecting {
                h.next_attempt_at = None;
            }
        });
    }

    fn client_id(&self) -> i32 {
        match self.cfg.fallback_client_id {
            Some(fallback) if self.consecutive_conflicts >= self.cfg.conflicts_before_fallback => fallback,
            _ => self.cfg.client_id,
        }
    }

    async fn run(&mut self) {
        self.state.metrics.session_state(SessionState::Connecting);
        loop {
            let (cause, reason, stable) = match self.attempt().await {
                (End::Shutdown, _) => break,
                (End::Lost { cause, reason }, stable) => (cause, reason, stable),
            };
            warn!(cause, %reason, "upstream session lost");
            self.state.metrics.reconnect(cause);
            self.state.mark_all_stale(&reason);
            if stable {
                self.backoff.reset();
            }
            // Inside a maintenance window the gateway is down on purpose: retry on a slow, steady
            // cadence instead of climbing the backoff, and say the outage is expected.
            let (delay, reason) = match self.maintenance.schedule.active_now() {
                Some(window) => (
                    self.maintenance.retry_interval,
                    format!("expected outage (maintenance window {window:?}): {reason}"),
                ),
                None => (self.backoff.next_delay(), reason),
            };
            let next = SystemTime::now() + delay;
            self.set_state(SessionState::Reconnecting, format!("{reason}; retrying in {} ms", delay.as_millis()));
            self.state.update_health(|h| {
                h.next_attempt_at = Some(next);
                h.server_version = 0;
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => break,
            }
        }
        self.state.mark_all_stale("service stopped");
        self.set_state(SessionState::Stopped, "shutting down");
    }

    /// One connection attempt and, if it works, the whole session. The client is always
    /// disconnected (socket closed) before this returns, so the next dial never overlaps it.
    /// The flag says whether the session stayed ready long enough to reset the backoff.
    async fn attempt(&mut self) -> (End, bool) {
        let client_id = self.client_id();
        self.state.update_health(|h| h.client_id = client_id);
        self.set_state(SessionState::Connecting, format!("dialling {} as client id {client_id}", self.cfg.address));
        let builder = Client::builder()
            .address(self.cfg.address.clone())
            .client_id(client_id)
            .max_reconnect_attempts(0)
            .channel_capacity(self.cfg.channel_capacity)
            .one_shot_timeout(self.cfg.probe_timeout());
        let dialled = tokio::select! {
            r = timeout(self.cfg.connect_timeout(), builder.connect_with_notice_stream()) => r,
            () = self.shutdown.cancelled() => return (End::Shutdown, false),
        };
        let (client, notices) = match dialled {
            Err(_) => {
                let ms = self.cfg.connect_timeout_ms;
                return (lost("connect_timeout", format!("no API handshake within {ms} ms")), false);
            }
            Ok(Err(ibapi::Error::ClientIdInUse { client_id })) => {
                self.consecutive_conflicts += 1;
                self.state.metrics.client_id_conflict();
                self.state.update_health(|h| h.client_id_conflicts += 1);
                return (lost("client_id_in_use", format!("client id {client_id} in use (326)")), false);
            }
            Ok(Err(e)) => {
                return (lost("connect_failed", format!("connect to {} failed: {e}", self.cfg.address)), false);
            }
            Ok(Ok(pair)) => pair,
        };
        self.consecutive_conflicts = 0;
        let client = Arc::new(client);
        let started = Instant::now();
        let end = self.session(&client, notices).await;
        let stable = started.elapsed() >= Duration::from_millis(self.cfg.backoff_reset_after_ms);
        // Awaited: the socket is closed (FIN sent) before anything else happens.
        client.disconnect().await;
        debug!("upstream client disconnected");
        (end, stable)
    }

    async fn session(&mut self, client: &Arc<Client>, mut notices: NoticeStream) -> End {
        // A new session is a new generation of data: everything it publishes carries this epoch.
        self.epoch += 1;
        self.state.metrics.epoch(self.epoch);
        let epoch = self.epoch;
        self.state.update_health(|h| {
            h.server_version = client.server_version();
            h.epoch = epoch;
        });
        self.set_state(SessionState::Syncing, "subscribing to positions and account summary");
        let mut subs = match self.sync(client, true, true, None).await {
            Ok(subs) => subs,
            Err(end) => return end,
        };
        if self.sessions > 0 {
            self.state.update_health(|h| h.reconnects += 1);
        }
        self.sessions += 1;
        self.set_state(SessionState::Ready, "live");

        let mut link_lost = false;
        let mut farms_down: BTreeSet<i32> = BTreeSet::new();
        let mut last_rx = Instant::now();
        let mut probe_tick = tokio::time::interval(self.cfg.probe_idle());
        probe_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        probe_tick.reset();

        loop {
            // Every branch is cancellation safe: Subscription::next and NoticeStream::next read
            // from broadcast receivers, and the tick is an Interval. Not biased: a flood of
            // position updates must not starve notices or the probe.
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    subs.positions.cancel().await;
                    subs.summary.cancel().await;
                    return End::Shutdown;
                }
                item = subs.positions.next() => {
                    last_rx = Instant::now();
                    match self.on_positions(item, &mut subs.positions) {
                        Err(end) => return end,
                        Ok(Lagged::No) => {}
                        Ok(Lagged::Yes) => {
                            subs = match self.sync(client, true, false, Some(subs)).await {
                                Ok(s) => s,
                                Err(end) => return end,
                            };
                        }
                    }
                }
                item = subs.summary.next() => {
                    last_rx = Instant::now();
                    match self.on_summary(item, &mut subs.summary) {
                        Err(end) => return end,
                        Ok(Lagged::No) => {}
                        Ok(Lagged::Yes) => {
                            subs = match self.sync(client, false, true, Some(subs)).await {
                                Ok(s) => s,
                                Err(end) => return end,
                            };
                        }
                    }
                }
                notice = notices.next() => {
                    last_rx = Instant::now();
                    let Some(notice) = notice else {
                        return lost("connection_lost", "upstream notice stream closed");
                    };
                    match self.on_notice(&notice, &mut link_lost, &mut farms_down) {
                        NoticeAction::None => {}
                        NoticeAction::Teardown(end) => return end,
                        NoticeAction::Resubscribe { positions, summary } => {
                            self.set_state(SessionState::Syncing, format!("resubscribing after {}", notice.code));
                            subs = match self.sync(client, positions, summary, Some(subs)).await {
                                Ok(s) => s,
                                Err(end) => return end,
                            };
                        }
                    }
                    self.refresh_ready(link_lost, &farms_down);
                }
                _ = probe_tick.tick() => {
                    if last_rx.elapsed() >= self.cfg.probe_idle() {
                        if let Err(end) = self.probe(client).await {
                            return end;
                        }
                        last_rx = Instant::now();
                    }
                }
            }
        }
    }

    fn refresh_ready(&self, link_lost: bool, farms_down: &BTreeSet<i32>) {
        if link_lost {
            self.set_state(SessionState::Degraded, "IB link lost (1100); serving last known data as stale");
        } else if let Some(code) = farms_down.first() {
            self.set_state(SessionState::Degraded, format!("data farm connection broken ({code})"));
        } else {
            self.set_state(SessionState::Ready, "live");
        }
    }

    /// Subscribes (or re-subscribes) the requested kinds, reads each until its end marker, and
    /// reconciles the hubs. Old subscriptions are cancelled first and awaited, so the gateway sees
    /// the cancel before the new request.
    async fn sync(&self, client: &Arc<Client>, positions: bool, summary: bool, old: Option<Subs>) -> Result<Subs, End> {
        let deadline = self.cfg.sync_timeout();
        let work = async {
            let (old_positions, old_summary) = match old {
                Some(s) => (Some(s.positions), Some(s.summary)),
                None => (None, None),
            };
            let accounts =
                client.managed_accounts().await.map_err(|e| lost("sync_failed", format!("managed accounts: {e}")))?;
            let positions_sub = match (positions, old_positions) {
                (false, Some(keep)) => keep,
                (_, old) => {
                    if let Some(old) = old {
                        old.cancel().await;
                    }
                    let mut sub =
                        client.positions().await.map_err(|e| lost("sync_failed", format!("positions: {e}")))?;
                    let rows = read_positions_snapshot(&mut sub).await?;
                    self.state.positions.resync(self.epoch, rows);
                    sub
                }
            };
            let summary_sub = match (summary, old_summary) {
                (false, Some(keep)) => keep,
                (_, old) => {
                    if let Some(old) = old {
                        old.cancel().await;
                    }
                    let mut sub = client
                        .account_summary(&AccountGroup("All".into()), AccountSummaryTags::ALL)
                        .await
                        .map_err(|e| lost("sync_failed", format!("account summary: {e}")))?;
                    let rows = read_summary_snapshot(&mut sub).await?;
                    self.state.summary.resync(self.epoch, rows);
                    sub
                }
            };
            let rows = accounts.into_iter().map(|id| AccountRow { id }).map(|r| (r.key(), r)).collect();
            self.state.accounts.resync(self.epoch, rows);
            Ok(Subs { positions: positions_sub, summary: summary_sub })
        };
        tokio::select! {
            r = timeout(deadline, work) => match r {
                Ok(r) => r,
                Err(_) => Err(lost("sync_timeout", format!("initial data not received within {} ms", deadline.as_millis()))),
            },
            () = self.shutdown.cancelled() => Err(End::Shutdown),
        }
    }

    fn on_positions(
        &self,
        first: Option<Result<SubscriptionItem<PositionUpdate>, ibapi::Error>>,
        sub: &mut Subscription<PositionUpdate>,
    ) -> Result<Lagged, End> {
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        let mut lagged = false;
        let mut next = Some(first);
        let mut n = 0;
        while let Some(item) = next.take() {
            match item {
                Some(Ok(SubscriptionItem::Data(PositionUpdate::Position(p)))) => {
                    let row = convert::position_row(&p);
                    if p.position == 0.0 {
                        removals.push(row.key());
                    } else {
                        upserts.push(row);
                    }
                }
                Some(Ok(SubscriptionItem::Data(PositionUpdate::PositionEnd))) => {}
                Some(Ok(SubscriptionItem::Notice(n))) => lagged |= upstream_lag(&n, "positions", &self.state.metrics),
                Some(Err(e)) => return Err(lost("connection_lost", format!("positions stream ended: {e}"))),
                None => return Err(lost("connection_lost", "positions stream closed")),
            }
            n += 1;
            if n < BATCH {
                next = sub.next().now_or_never();
            }
        }
        self.state.metrics.upstream_updates("positions", upserts.len() + removals.len());
        // A later update in the same batch wins; a removal after an upsert wins too.
        let removed: BTreeSet<_> = removals.iter().cloned().collect();
        let mut latest: BTreeMap<_, PositionRow> = BTreeMap::new();
        for row in upserts {
            latest.insert(row.key(), row);
        }
        latest.retain(|k, _| !removed.contains(k));
        self.state.positions.apply(latest.into_values().collect(), removals);
        Ok(Lagged::from(lagged))
    }

    fn on_summary(
        &self,
        first: Option<Result<SubscriptionItem<AccountSummaryResult>, ibapi::Error>>,
        sub: &mut Subscription<AccountSummaryResult>,
    ) -> Result<Lagged, End> {
        let mut upserts: BTreeMap<_, SummaryRow> = BTreeMap::new();
        let mut lagged = false;
        let mut next = Some(first);
        let mut n = 0;
        while let Some(item) = next.take() {
            match item {
                Some(Ok(SubscriptionItem::Data(AccountSummaryResult::Summary(s)))) => {
                    let row = convert::summary_row(&s);
                    upserts.insert(row.key(), row);
                }
                Some(Ok(SubscriptionItem::Data(AccountSummaryResult::End))) => {}
                Some(Ok(SubscriptionItem::Notice(n))) => {
                    lagged |= upstream_lag(&n, "account_summary", &self.state.metrics)
                }
                Some(Err(e)) => return Err(lost("connection_lost", format!("account summary stream ended: {e}"))),
                None => return Err(lost("connection_lost", "account summary stream closed")),
            }
            n += 1;
            if n < BATCH {
                next = sub.next().now_or_never();
            }
        }
        self.state.metrics.upstream_updates("account_summary", upserts.len());
        self.state.summary.apply(upserts.into_values().collect(), Vec::new());
        Ok(Lagged::from(lagged))
    }

    fn on_notice(&self, notice: &Notice, link_lost: &mut bool, farms_down: &mut BTreeSet<i32>) -> NoticeAction {
        let code = notice.code;
        match code {
            1100 | 2110 => {
                self.state.metrics.upstream_notice("link");
                warn!(code, message = %notice.message, "IB link lost");
                *link_lost = true;
                self.state.mark_all_stale(&format!("IB link lost ({code})"));
                NoticeAction::None
            }
            1101 => {
                self.state.metrics.upstream_notice("link");
                info!(code, "IB link restored, data lost: resubscribing");
                *link_lost = false;
                NoticeAction::Resubscribe { positions: true, summary: true }
            }
            1102 => {
                self.state.metrics.upstream_notice("link");
                info!(code, "IB link restored, data maintained: refreshing account summary");
                *link_lost = false;
                self.state.accounts.set_freshness(crate::model::Freshness::Live);
                self.state.positions.set_freshness(crate::model::Freshness::Live);
                NoticeAction::Resubscribe { positions: false, summary: true }
            }
            1300 => {
                self.state.metrics.upstream_notice("link");
                NoticeAction::Teardown(lost("port_reset", "gateway reset its API port (1300)"))
            }
            2103 | 2105 | 2157 => {
                self.state.metrics.upstream_notice("farm");
                warn!(code, message = %notice.message, "data farm broken");
                farms_down.insert(code);
                NoticeAction::None
            }
            2104 | 2106 | 2158 => {
                self.state.metrics.upstream_notice("farm");
                // Each OK clears its broken twin (2104↔2103, 2106↔2105, 2158↔2157).
                farms_down.remove(&(code - 1));
                NoticeAction::None
            }
            _ => {
                self.state.metrics.upstream_notice("other");
                debug!(code, message = %notice.message, "notice");
                NoticeAction::None
            }
        }
    }

    async fn probe(&self, client: &Arc<Client>) -> Result<(), End> {
        let started = Instant::now();
        match timeout(self.cfg.probe_timeout(), client.server_time()).await {
            Ok(Ok(_)) => {
                let rtt = started.elapsed();
                self.state.metrics.probe_rtt(rtt.as_secs_f64());
                self.state.update_health(|h| h.last_probe_rtt_ms = rtt.as_secs_f64() * 1000.0);
                debug!(rtt_ms = rtt.as_millis() as u64, "liveness probe answered");
                Ok(())
            }
            // The crate's one-shot timeout equals ours, so either may fire first: both mean the
            // gateway did not answer, which is the half-open case.
            Ok(Err(ibapi::Error::Timeout)) | Err(_) => Err(lost(
                "probe_timeout",
                format!("liveness probe unanswered for {} ms (half-open link)", self.cfg.probe_timeout_ms),
            )),
            Ok(Err(e)) => Err(lost("probe_failed", format!("liveness probe failed: {e}"))),
        }
    }
}

/// Whether an upstream subscription dropped frames (we read too slowly for a burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lagged {
    No,
    Yes,
}

impl From<bool> for Lagged {
    fn from(b: bool) -> Self {
        if b { Lagged::Yes } else { Lagged::No }
    }
}

/// A notice on a data subscription. The crate reports frames it had to drop for a slow reader
/// as `SUBSCRIPTION_LAG_CODE`: the rows they carried are unknown, so the kind must be
/// resubscribed and reconciled, never carried on with as if nothing happened.
fn upstream_lag(n: &Notice, kind: &'static str, metrics: &crate::metrics::Metrics) -> bool {
    if n.code == ibapi::SUBSCRIPTION_LAG_CODE {
        warn!(kind, message = %n.message, "upstream subscription lagged; resubscribing to reconcile");
        metrics.upstream_lag(kind);
        true
    } else {
        debug!(kind, code = n.code, message = %n.message, "subscription notice");
        false
    }
}

enum NoticeAction {
    None,
    Teardown(End),
    Resubscribe { positions: bool, summary: bool },
}

async fn read_positions_snapshot(
    sub: &mut Subscription<PositionUpdate>,
) -> Result<BTreeMap<(String, i64), PositionRow>, End> {
    let mut rows = BTreeMap::new();
    loop {
        match sub.next().await {
            Some(Ok(SubscriptionItem::Data(PositionUpdate::Position(p)))) => {
                let row = convert::position_row(&p);
                if p.position == 0.0 {
                    rows.remove(&row.key());
                } else {
                    rows.insert(row.key(), row);
                }
            }
            Some(Ok(SubscriptionItem::Data(PositionUpdate::PositionEnd))) => return Ok(rows),
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            Some(Err(e)) => return Err(lost("sync_failed", format!("positions: {e}"))),
            None => return Err(lost("sync_failed", "positions stream closed during sync")),
        }
    }
}

async fn read_summary_snapshot(
    sub: &mut Subscription<AccountSummaryResult>,
) -> Result<BTreeMap<(String, String, String), SummaryRow>, End> {
    let mut rows = BTreeMap::new();
    loop {
        match sub.next().await {
            Some(Ok(SubscriptionItem::Data(AccountSummaryResult::Summary(s)))) => {
                let row = convert::summary_row(&s);
                rows.insert(row.key(), row);
            }
            Some(Ok(SubscriptionItem::Data(AccountSummaryResult::End))) => return Ok(rows),
            Some(Ok(SubscriptionItem::Notice(_))) => {}
            Some(Err(e)) => return Err(lost("sync_failed", format!("account summary: {e}"))),
            None => return Err(lost("sync_failed", "account summary stream closed during sync")),
        }
    }
}
