//! `recovery`: the simulated gateway restarts with S subscribers open. Measured from the fault
//! until the service reports READY and until every subscriber has the RESYNC of the new epoch,
//! with the configured reconnect backoff subtracted (it is a deliberate wait, not work). The
//! baseline is what a client without gateway-svc pays after the same restart: a fresh direct
//! `ibapi` connection and sync, measured in the same run against the same simulator.
//!
//! The phases come from the service's own health (WatchHealth). Its `since` stamps are the
//! service's wall clock, the same clock as ours on one machine, so they give the service's
//! internal timeline free of delivery delays: detect (fault → RECONNECTING), backoff (the
//! health's next_attempt_at − since), reconnect and sync (→ READY). The arrival of READY and of
//! each subscriber's RESYNC is what clients actually see.

use std::time::{Duration, SystemTime};

use gateway_proto::pb;
use ib_sim::Fault;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::{header, patience};
use crate::cli::{RecoveryArgs, pick};
use crate::fleet::Fleet;
use crate::report::{Line, Table, latency_cells};
use crate::stack::{self, Spawned};
use crate::stats::{Summary, median_duration, ms};
use crate::{Error, Result, direct};

const NAME: &str = "recovery";
/// The goal for fault → every subscriber resynced, backoff excluded.
const GOAL: Duration = Duration::from_millis(250);
/// Client ids for the direct baseline.
const DIRECT_IDS: i32 = 3000;

/// One restart's timeline, every figure from the fault.
#[derive(Debug)]
struct Round {
    /// RECONNECTING, by the service's clock.
    detect: Option<Duration>,
    /// The actual, jittered reconnect delay.
    backoff: Duration,
    /// READY, by the service's clock.
    ready: Duration,
    /// READY, as a WatchHealth client received it.
    ready_seen: Duration,
    /// RESYNC of the new epoch, as each subscriber received it.
    resync: Summary,
}

/// Runs the scenario.
pub async fn run(args: &RecoveryArgs) -> Result<Vec<Line>> {
    let smoke = args.smoke.smoke;
    let subscribers = pick(args.subscribers, smoke, 20, 100).max(1);
    let rounds = pick(args.rounds, smoke, 1, 3).max(1);
    let backoff_ms = args.backoff_ms.unwrap_or(1).max(1);
    let down_ms = args.down_ms.unwrap_or(0);
    header(
        NAME,
        &format!("{subscribers} subscribers, {rounds} restart(s) with down_ms {down_ms}, backoff {backoff_ms} ms"),
    );
    // A stable-session threshold of 1 ms resets the backoff after every session, so each restart
    // waits the initial backoff rather than a doubled one.
    let env = [
        ("IBGW__UPSTREAM__BACKOFF_INITIAL_MS", backoff_ms.to_string()),
        ("IBGW__UPSTREAM__BACKOFF_MAX_MS", (backoff_ms * 4).to_string()),
        ("IBGW__UPSTREAM__BACKOFF_RESET_AFTER_MS", "1".to_owned()),
    ];
    let gw = Spawned::start(&env).await?;
    let result = measure(&gw, subscribers, rounds, backoff_ms, down_ms, smoke).await;
    gw.stop().await;
    result
}

async fn measure(
    gw: &Spawned,
    subscribers: usize,
    rounds: u32,
    backoff_ms: u64,
    down_ms: u64,
    smoke: bool,
) -> Result<Vec<Line>> {
    let mut client = stack::connect(gw.grpc).await?;
    // Baseline first, while the session is settled.
    let mut direct_runs = Vec::new();
    for i in 0..if smoke { 2 } else { 5 } {
        direct_runs.push(direct::connect_and_sync(gw.sim_api, DIRECT_IDS + i).await?);
    }
    let direct = median_duration(&direct_runs).unwrap_or_default();

    let mut fleet = Fleet::open(gw.grpc, subscribers, 100, patience(subscribers) * 3).await?;
    let mut health = watch_health(&mut client).await?;
    let mut t = Table::new(
        format!("{NAME}: restart → READY → every subscriber resynced (backoff subtracted where marked)"),
        &[
            "round",
            "detect (svc)",
            "backoff",
            "READY (svc)",
            "READY seen",
            "resync p50",
            "p95",
            "p99",
            "max",
            "max − backoff",
        ],
    );
    let mut results = Vec::new();
    for round in 1..=rounds {
        stack::wait_ready(&mut client, Duration::from_secs(20)).await?;
        let epoch = stack::health(&mut client).await?.session_epoch;
        fleet.drain()?;
        while health.rx.try_recv().is_ok() {}
        let t0_wall = SystemTime::now();
        let t0 = Instant::now();
        gw.control.inject(&Fault::Restart { down_ms }).await.map_err(|e| Error::setup("inject restart", e))?;
        let (detect, backoff, ready, ready_seen) =
            timeline(&mut health, (t0, t0_wall), epoch, Duration::from_millis(backoff_ms)).await?;
        let got = fleet
            .until_each(patience(subscribers), |_| {}, |e| e.kind == pb::UpdateKind::Resync && e.epoch > epoch)
            .await?;
        let lat: Vec<Duration> = got.iter().map(|e| e.at.duration_since(t0)).collect();
        let resync = Summary::of(&lat).ok_or_else(|| Error::Functional("no resyncs".into()))?;
        let mut cells =
            vec![round.to_string(), detect.map_or_else(|| "—".into(), ms), ms(backoff), ms(ready), ms(ready_seen)];
        cells.extend(latency_cells(Some(&resync)));
        cells.push(ms(resync.max.saturating_sub(backoff)));
        t.row(cells);
        results.push(Round { detect, backoff, ready, ready_seen, resync });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.print();
    fleet.close().await;

    let med = |f: &dyn Fn(&Round) -> Duration| median_duration(&results.iter().map(f).collect::<Vec<_>>());
    let all_net = med(&|r| r.resync.max.saturating_sub(r.backoff)).unwrap_or_default();
    let ready_net = med(&|r| r.ready.saturating_sub(r.backoff)).unwrap_or_default();
    let seen_net = med(&|r| r.ready_seen.saturating_sub(r.backoff)).unwrap_or_default();
    let detect = med(&|r| r.detect.unwrap_or_default()).unwrap_or_default();
    let backoff = med(&|r| r.backoff).unwrap_or_default();
    println!(
        "{NAME}: medians: detect {}, backoff {}, READY−backoff {} by the service's clock and {} as seen by a client, \
         all resynced−backoff {}; direct ibapi connect+sync {} (median of {})",
        ms(detect),
        ms(backoff),
        ms(ready_net),
        ms(seen_net),
        ms(all_net),
        ms(direct),
        direct_runs.len()
    );
    let ratio = |d: Duration| d.as_secs_f64() / direct.as_secs_f64();
    Ok(vec![
        Line::new(NAME, "restart → READY − backoff (service clock)", ms(ready_net))
            .baseline(format!("{} direct sync", ms(direct)), ratio(ready_net)),
        Line::new(NAME, format!("restart → all {subscribers} resynced − backoff"), ms(all_net))
            .baseline(format!("{} direct sync", ms(direct)), ratio(all_net))
            .goal(format!("≤ {}", ms(GOAL)), all_net <= GOAL),
    ])
}

/// Every health change, timestamped on arrival, from a WatchHealth stream read by its own task
/// (aborted when this is dropped).
struct HealthEvents {
    rx: mpsc::UnboundedReceiver<(Instant, pb::Health)>,
    _reader: AbortOnDropHandle<()>,
}

async fn watch_health(client: &mut stack::Client) -> Result<HealthEvents> {
    let mut stream = client
        .watch_health(pb::WatchHealthRequest {})
        .await
        .map_err(|s| Error::functional("WatchHealth", s))?
        .into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Ok(Some(m)) = stream.message().await {
            if let Some(h) = m.health
                && tx.send((Instant::now(), h)).is_err()
            {
                return;
            }
        }
    });
    Ok(HealthEvents { rx, _reader: AbortOnDropHandle::new(reader) })
}

/// Reads health changes after the fault until READY with a newer epoch. Returns, from the
/// fault: RECONNECTING and READY by the service's clock, the actual backoff, and when READY
/// arrived here.
async fn timeline(
    health: &mut HealthEvents,
    (t0, t0_wall): (Instant, SystemTime),
    epoch: u64,
    configured: Duration,
) -> Result<(Option<Duration>, Duration, Duration, Duration)> {
    let deadline = t0 + Duration::from_secs(20);
    let since = |h: &pb::Health| h.since.as_ref().map(|t| wall(t).duration_since(t0_wall).unwrap_or_default());
    let mut detect = None;
    let mut backoff = None;
    loop {
        let Ok(Some((at, h))) = tokio::time::timeout_at(deadline, health.rx.recv()).await else {
            return Err(Error::Functional("the session did not become READY again within 20 s".into()));
        };
        if h.state == pb::SessionState::Reconnecting as i32 {
            if detect.is_none() {
                detect = since(&h);
            }
            if backoff.is_none() {
                backoff = actual_backoff(&h);
            }
        }
        if h.state == pb::SessionState::Ready as i32 && h.session_epoch > epoch {
            let seen = at.duration_since(t0);
            // The health stream may coalesce RECONNECTING away; the configured value is the
            // best estimate then (the jitter is ±20 %).
            return Ok((detect, backoff.unwrap_or(configured), since(&h).unwrap_or(seen), seen));
        }
    }
}

fn wall(t: &prost_types::Timestamp) -> SystemTime {
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

/// `next_attempt_at − since` of a RECONNECTING health, else the "retrying in N ms" of its reason.
fn actual_backoff(h: &pb::Health) -> Option<Duration> {
    if let (Some(next), Some(since)) = (&h.next_attempt_at, &h.since)
        && let Ok(d) = wall(next).duration_since(wall(since))
    {
        return Some(d);
    }
    let ms = h.reason.split("retrying in ").nth(1)?.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ms))
}
