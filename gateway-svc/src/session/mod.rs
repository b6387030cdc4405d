//! The session actor: the only owner of the `ibapi` client and so of the one upstream socket.
//!
//! It runs an explicit state machine (connecting → syncing → ready ⇄ degraded → reconnecting …
//! → stopped), reconnects with its own capped, jittered backoff (the crate's built-in reconnect
//! is disabled so that there is exactly one socket and one owner of the retry policy), keeps one
//! upstream subscription per data kind, and reconciles after every new session and after 1101.
//! Every transition is published on the health watch with a reason. [`notices`] holds what IB's
//! notices make it do.

mod notices;

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use ibapi::prelude::{Client, NoticeStream};
use ibgw_kit::Backoff;
use tokio::time::{Duration, Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Upstream;
use crate::health::SessionState;
use crate::model::{AccountRow, Row};
use crate::pnl::{AccountPnl, Keyed, KeyedError, PositionPnl};
use crate::state::StateWriter;
use crate::upstream::{self, Kind, Positions, ReadError, Summary};
use notices::NoticeAction;

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
pub(crate) async fn run(cfg: Upstream, maintenance: Maintenance, state: StateWriter, shutdown: CancellationToken) {
    let backoff = Backoff::new(cfg.backoff);
    let mut actor =
        Actor { cfg, maintenance, state, shutdown, backoff, epoch: 0, sessions: 0, consecutive_conflicts: 0 };
    actor.run().await;
}

pub(crate) use crate::maintenance::Maintenance;

struct Actor {
    cfg: Upstream,
    maintenance: Maintenance,
    /// The only writer of the shared state.
    state: StateWriter,
    shutdown: CancellationToken,
    backoff: Backoff,
    epoch: u64,
    /// Sessions that completed their first sync.
    sessions: u64,
    consecutive_conflicts: u32,
}

/// PnL subscriptions made per turn of the session loop and kind: about 100 ms of paced requests.
const PNL_STEP: usize = 4;

/// The live subscriptions of one session: one per data kind.
struct Subs {
    positions: <Positions as Kind>::Sub,
    summary: <Summary as Kind>::Sub,
    account_pnl: Keyed<AccountPnl>,
    position_pnl: Keyed<PositionPnl>,
    /// PnL is subscribed after READY, not before, a few keys per turn of the session loop: each
    /// key is one paced request (about 25 ms at 40 a second), and neither READY nor the probe
    /// and notices may wait for all of them. PnL reports its own freshness meanwhile.
    pnl_pending: bool,
    /// The next PnL step starts a new set (a new session, or after 1101).
    pnl_fresh: bool,
}

impl Actor {
    /// Records a probe's round trip without publishing a change: the link being alive is no
    /// news (a probe runs about every `probe_idle` while IB is quiet), so the value is updated
    /// in place. `GetHealth` reads it at once, a WatchHealth stream (and the bridge) with the
    /// next change; the `ibgw_probe_rtt_seconds` metric has every probe's.
    fn record_probe_rtt(&self, rtt: Duration) {
        self.state.metrics.probe_rtt(rtt.as_secs_f64());
        self.state.health.send_if_modified(|h| {
            // Copy on write: health already published (on the change feed) keeps its value.
            Arc::make_mut(h).last_probe_rtt_ms = rtt.as_secs_f64() * 1000.0;
            false
        });
    }

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
            // One limiter for every request of the session: IB paces clients at 50 messages a
            // second, and following many positions' PnL is one request each.
            .rate_limiter(ibapi::RateLimiter::per_second(self.cfg.max_messages_per_second))
            .one_shot_timeout(self.cfg.probe_timeout);
        let dialled = tokio::select! {
            r = timeout(self.cfg.connect_timeout, builder.connect_with_notice_stream()) => r,
            () = self.shutdown.cancelled() => return (End::Shutdown, false),
        };
        let (client, notices) = match dialled {
            Err(_) => {
                let ms = self.cfg.connect_timeout.as_millis();
                return (lost("connect_timeout", format!("no API handshake within {ms} ms")), false);
            }
            Ok(Err(ibapi::Error::ClientIdInUse { client_id })) => {
                self.consecutive_conflicts += 1;
                self.state.metrics.client_id_conflict();
                self.state.update_health(|h| h.client_id_conflicts += 1);
                return (lost("client_id_in_use", format!("client id {client_id} in use (326)")), false);
            }
            Ok(Err(ibapi::Error::ServerVersion(required, actual, _))) => {
                return (lost("version_unsupported", version_floor(actual, required)), false);
            }
            Ok(Err(ibapi::Error::ConnectionRejected(detail))) => {
                return (lost("handshake_rejected", handshake_rejected(&self.cfg.address, &detail)), false);
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
        let stable = started.elapsed() >= self.cfg.backoff_reset_after;
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
            // A new connection is told every farm's state afresh.
            h.farms.clear();
        });
        self.state.metrics.clear_farms();
        self.set_state(SessionState::Syncing, "subscribing to positions and account summary");
        let mut subs = match self.sync_all(client, Duration::ZERO).await {
            Ok(subs) => subs,
            Err(end) => return end,
        };
        if self.sessions > 0 {
            self.state.update_health(|h| h.reconnects += 1);
        }
        self.sessions += 1;
        self.set_state(SessionState::Ready, "live");

        let mut link_lost = false;
        let mut last_rx = Instant::now();
        // Checked three times per idle period, so a link goes unprobed at most a third of a
        // period longer than `probe_idle`; probes themselves stay `probe_idle` apart.
        let mut probe_tick = tokio::time::interval(self.cfg.probe_idle / 3);
        probe_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        probe_tick.reset();

        loop {
            // Every branch is cancellation safe: Subscription::next and NoticeStream::next read
            // from broadcast receivers, and the tick is an Interval. Not biased: a flood of
            // position updates must not starve notices or the probe.
            // A branch's own work waits on IB (a probe, paced PnL requests, a resync): each of
            // those races the shutdown token too, so shutdown never waits for them.
            let step = tokio::select! {
                () = self.shutdown.cancelled() => Err(End::Shutdown),
                item = subs.positions.next() => {
                    last_rx = Instant::now();
                    // Whether the held keys may have changed (a resync after lag may change any).
                    let folded = match upstream::fold::<Positions>(item, &mut subs.positions, &self.state) {
                        Err(ReadError::Lagged) => self.reopen::<Positions>(client, &mut subs.positions).await.map(|()| true),
                        r => r.map_err(|e| read_lost(e, "connection_lost")),
                    };
                    // Opened and closed positions subscribe and cancel their PnL (a few at a time;
                    // the PnL step picks up the rest). A batch of changed quantities only leaves
                    // the held keys, and so the PnL subscriptions, as they were.
                    match folded {
                        Ok(false) => Ok(()),
                        Ok(true) if !subs.pnl_pending => {
                            let held = self.held_positions();
                            let cap = self.cfg.max_position_pnl;
                            let follow = subs.position_pnl.follow(client, &self.state, held, cap, false, PNL_STEP);
                            let followed = self.or_shutdown(async { follow.await.map_err(keyed_lost) }).await;
                            followed.map(|done| subs.pnl_pending = !done)
                        }
                        other => other.map(|_| ()),
                    }
                }
                // After READY (and after every resync), a few PnL subscriptions per turn: one per
                // account and per held position, collected into one first full set.
                () = std::future::ready(()), if subs.pnl_pending => self.or_shutdown(self.follow_pnl(client, &mut subs)).await,
                // A subscription IB refused frees its slot: the PnL step plans again (the held
                // keys may not change for a long time).
                Some(item) = subs.account_pnl.next() => {
                    last_rx = Instant::now();
                    subs.account_pnl.fold(item, &self.state).map(|dropped| subs.pnl_pending |= dropped).map_err(keyed_lost)
                }
                Some(item) = subs.position_pnl.next() => {
                    last_rx = Instant::now();
                    subs.position_pnl.fold(item, &self.state).map(|dropped| subs.pnl_pending |= dropped).map_err(keyed_lost)
                }
                item = subs.summary.next() => {
                    last_rx = Instant::now();
                    match upstream::fold::<Summary>(item, &mut subs.summary, &self.state) {
                        Err(ReadError::Lagged) => self.reopen::<Summary>(client, &mut subs.summary).await,
                        r => r.map(|_| ()).map_err(|e| read_lost(e, "connection_lost")),
                    }
                }
                notice = notices.next() => {
                    last_rx = Instant::now();
                    let Some(notice) = notice else {
                        return lost("connection_lost", "upstream notice stream closed");
                    };
                    let step = match self.on_notice(&notice, &mut link_lost) {
                        NoticeAction::None => Ok(()),
                        NoticeAction::Teardown(end) => Err(end),
                        NoticeAction::Resync => {
                            self.set_state(SessionState::Syncing, format!("resubscribing after {}", notice.code));
                            // Cancelled explicitly, in order, before the first new request: old
                            // subscriptions merely dropped would send their cancels later, after
                            // the new requests and out of the same message budget.
                            let cancels = cancel_subs(&mut subs).await;
                            // The cancels go out at once but are paid for out of the message
                            // budget: the new requests wait that long first.
                            let rate = f64::from(self.cfg.max_messages_per_second.max(1));
                            let paced = Duration::from_secs_f64(cancels as f64 / rate);
                            self.sync_all(client, paced).await.map(|fresh| subs = fresh)
                        }
                        NoticeAction::RefreshSummary => {
                            self.set_state(SessionState::Syncing, format!("refreshing the account summary after {}", notice.code));
                            self.reopen::<Summary>(client, &mut subs.summary).await
                        }
                    };
                    if step.is_ok() {
                        self.refresh_ready(link_lost);
                    }
                    step
                }
                _ = probe_tick.tick() => {
                    subs.account_pnl.check_deadline(&self.state, self.cfg.sync_timeout);
                    subs.position_pnl.check_deadline(&self.state, self.cfg.sync_timeout);
                    if last_rx.elapsed() < self.cfg.probe_idle {
                        Ok(())
                    } else {
                        let probed = self.or_shutdown(self.probe(client)).await;
                        last_rx = Instant::now();
                        probed
                    }
                }
            };
            match step {
                Ok(()) => {}
                Err(End::Shutdown) => {
                    // Our side ends the subscriptions before the socket closes.
                    cancel_subs(&mut subs).await;
                    return End::Shutdown;
                }
                Err(end) => return end,
            }
        }
    }

    /// Runs `work` unless shutdown comes first. `work` is dropped mid-request only at shutdown,
    /// when the socket is closed next anyway.
    async fn or_shutdown<T>(&self, work: impl Future<Output = Result<T, End>>) -> Result<T, End> {
        tokio::select! {
            r = work => r,
            () = self.shutdown.cancelled() => Err(End::Shutdown),
        }
    }

    fn refresh_ready(&self, link_lost: bool) {
        if link_lost {
            self.set_state(SessionState::Degraded, "IB link lost (1100); serving last known data as stale");
        } else {
            self.set_state(SessionState::Ready, "live");
        }
    }

    /// Runs `work` under the sync timeout, unless shutdown comes first.
    async fn within_sync<T>(&self, work: impl Future<Output = Result<T, End>>) -> Result<T, End> {
        self.within(self.cfg.sync_timeout, work).await
    }

    /// Runs `work` under `deadline`, unless shutdown comes first.
    async fn within<T>(&self, deadline: Duration, work: impl Future<Output = Result<T, End>>) -> Result<T, End> {
        tokio::select! {
            r = timeout(deadline, work) => r.unwrap_or_else(|_| Err(lost(
                "sync_timeout",
                format!("initial data not received within {} ms", deadline.as_millis()),
            ))),
            () = self.shutdown.cancelled() => Err(End::Shutdown),
        }
    }

    /// Subscribes every kind, reads each first snapshot and reconciles the hubs, within the sync
    /// timeout plus `paced` (how long the message budget holds new requests back). Used for a
    /// new session and after 1101 (IB dropped every subscription).
    async fn sync_all(&self, client: &Arc<Client>, paced: Duration) -> Result<Subs, End> {
        self.within(self.cfg.sync_timeout + paced, async {
            // The subscriptions first, the one-shot last: a one-shot's timeout (the probe
            // timeout) runs from before its request waits for the message budget, and after 1101
            // the cancels just sent hold new requests back (100 position PnL cancels are 2.5 s
            // at 40 a second). A subscription waits that out under the sync timeout instead.
            let positions = self.open::<Positions>(client).await?;
            let summary = self.open::<Summary>(client).await?;
            let accounts =
                client.managed_accounts().await.map_err(|e| lost("sync_failed", format!("managed accounts: {e}")))?;
            let rows = accounts
                .into_iter()
                .enumerate()
                .map(|(order, id)| AccountRow { id, order })
                .map(|r| (r.key(), r))
                .collect();
            self.state.accounts.resync(self.epoch, rows);
            let (account_pnl, position_pnl) = (Keyed::default(), Keyed::default());
            Ok(Subs { positions, summary, account_pnl, position_pnl, pnl_pending: true, pnl_fresh: true })
        })
        .await
    }

    /// Cancels one kind's subscription (awaited, so the gateway sees the cancel first), opens it
    /// again and reconciles its hub: after lag (frames dropped) or 1102 (summary refresh).
    async fn reopen<K: Kind>(&self, client: &Arc<Client>, sub: &mut K::Sub) -> Result<(), End> {
        K::cancel(sub).await;
        *sub = self.within_sync(self.open::<K>(client)).await?;
        Ok(())
    }

    /// One step of subscribing PnL for every managed account and held position (a new set after
    /// a new session or 1101): at most [`PNL_STEP`] subscriptions per kind, then back to the loop.
    async fn follow_pnl(&self, client: &Client, subs: &mut Subs) -> Result<(), End> {
        let fresh = std::mem::take(&mut subs.pnl_fresh);
        let accounts = self.state.accounts.snapshot().rows.keys().cloned().collect();
        let accounts_done = subs
            .account_pnl
            .follow(client, &self.state, accounts, usize::MAX, fresh, PNL_STEP)
            .await
            .map_err(keyed_lost)?;
        let held = self.held_positions();
        let positions_done = subs
            .position_pnl
            .follow(client, &self.state, held, self.cfg.max_position_pnl, fresh, PNL_STEP)
            .await
            .map_err(keyed_lost)?;
        subs.pnl_pending = !(accounts_done && positions_done);
        Ok(())
    }

    /// The held positions' keys: what per-position PnL follows.
    fn held_positions(&self) -> std::collections::BTreeSet<(String, i64)> {
        self.state.positions.snapshot().rows.keys().cloned().collect()
    }

    async fn open<K: Kind>(&self, client: &Client) -> Result<K::Sub, End> {
        // Retry a lagging first read for most of the sync timeout (a burst ends), so that a
        // buffer too small for the snapshot itself is reported as such before the timeout fires.
        let until = Instant::now() + self.cfg.sync_timeout * 3 / 4;
        let (sub, rows) =
            upstream::open::<K>(client, &self.state.metrics, until).await.map_err(|e| read_lost(e, "sync_failed"))?;
        K::hub(&self.state).resync(self.epoch, rows);
        Ok(sub)
    }

    async fn probe(&self, client: &Arc<Client>) -> Result<(), End> {
        let started = Instant::now();
        match timeout(self.cfg.probe_timeout, client.server_time()).await {
            Ok(Ok(_)) => {
                let rtt = started.elapsed();
                self.record_probe_rtt(rtt);
                debug!(rtt_ms = rtt.as_millis() as u64, "liveness probe answered");
                Ok(())
            }
            // The crate's one-shot timeout equals ours, so either may fire first: both mean the
            // gateway did not answer, which is the half-open case.
            Ok(Err(ibapi::Error::Timeout)) | Err(_) => Err(lost(
                "probe_timeout",
                format!("liveness probe unanswered for {} ms (half-open link)", self.cfg.probe_timeout.as_millis()),
            )),
            Ok(Err(e)) => Err(lost("probe_failed", format!("liveness probe failed: {e}"))),
        }
    }
}

/// The API server version this build needs (the `ibapi` crate's floor: protobuf messages).
pub(crate) const MIN_SERVER_VERSION: i32 = 213;

fn version_floor(actual: i32, required: i32) -> String {
    format!(
        "IB Gateway / TWS speaks API server version {actual}, below the {required} this build needs: \
         upgrade IB Gateway / TWS to 10.40 or newer (API server version {MIN_SERVER_VERSION} or higher)"
    )
}

/// The gateway closed the handshake. A gateway too old for this build does exactly that, and so
/// does one that does not accept this host, so the reason names both causes.
fn handshake_rejected(address: &str, detail: &str) -> String {
    format!(
        "{address} closed the API handshake ({detail}): either IB Gateway / TWS is older than this build \
         supports (needs API server version {MIN_SERVER_VERSION} or higher, 10.40 or newer: upgrade it), or it \
         refuses this host (check \"Enable ActiveX and Socket Clients\" and Trusted IPs in its API settings)"
    )
}

/// Cancels every subscription of the session, in order, and returns how many. Cancels are never
/// held by the rate limiter (they count against the budget but go out at once), so this does not
/// wait on IB.
async fn cancel_subs(subs: &mut Subs) -> usize {
    Positions::cancel(&subs.positions).await;
    Summary::cancel(&subs.summary).await;
    2 + subs.account_pnl.cancel_all().await + subs.position_pnl.cancel_all().await
}

fn keyed_lost(e: KeyedError) -> End {
    match e {
        KeyedError::Closed(reason) => lost("connection_lost", reason),
    }
}

fn read_lost(e: ReadError, cause: &'static str) -> End {
    match e {
        ReadError::Closed(reason) => lost(cause, reason),
        // Lag is handled by resubscribing; here it means it persisted through every attempt.
        ReadError::Lagged => lost(
            cause,
            "upstream kept dropping frames while the first snapshot was read (raise upstream.channel_capacity)",
        ),
    }
}

#[cfg(test)]
mod tests;
