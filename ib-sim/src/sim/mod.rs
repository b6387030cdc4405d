//! The simulator as a whole: shared state, the API listener, fault injection and its schedule.
//! Moving prices (ticks, the random walk) and the PnL read API are in [`prices`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio::time::{Duration, Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::book::Book;
use crate::connection::{self, Admission};
use crate::farm::{Farms, Notice};
use crate::fault::{ConnCommand, Fault, Windows, malformed_frame, oversized_frame};
use crate::scenario::{AccountValue, LedgerValue, Position, Scenario, ScenarioError};
use crate::stats::Stats;

/// Where the simulator listens and what it simulates.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// API listen address (port 0 picks one).
    pub api: SocketAddr,
    /// Control HTTP listen address; `None` runs without the control API. Must be loopback.
    pub control: Option<SocketAddr>,
    /// Starting data and schedule.
    pub scenario: Scenario,
}

impl SimConfig {
    /// Both listeners on ephemeral loopback ports, with the built-in scenario.
    pub fn ephemeral() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self { api: any, control: Some(any), scenario: Scenario::default() }
    }
}

/// Why the simulator could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The control API must not be reachable from other machines.
    #[error("control address {0} is not loopback; the control API has no authentication")]
    ControlNotLoopback(SocketAddr),
    /// Scenario data was rejected.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A fault referred to something that does not exist.
    #[error("{0}")]
    BadFault(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) server_version: u32,
    pub(crate) max_clients: usize,
    pub(crate) summary_refresh: Duration,
    pub(crate) pnl_interval: Duration,
}

/// State every task of one simulator shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) book: Book,
    pub(crate) commands: broadcast::Sender<ConnCommand>,
    pub(crate) shutdown: CancellationToken,
    scenario: Scenario,
    stats: Mutex<Stats>,
    /// Farm states. Held while a farm or link change is broadcast and while a new connection
    /// subscribes, so every connection sees each change exactly once. Lock order: farms, then
    /// windows.
    farms: Mutex<Farms>,
    windows: Mutex<Windows>,
    /// Wakes the accept loop when a refuse window opens.
    windows_changed: Notify,
    /// client id → connection holding it.
    clients: Mutex<HashMap<i32, u64>>,
    /// The running price walk, if any.
    walk: Mutex<Option<prices::RunningWalk>>,
    next_order_id: AtomicI32,
    conn_seq: AtomicU64,
    tracker: TaskTracker,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No critical section here can leave data half-written in a way worth refusing service over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }

    pub(crate) fn windows(&self) -> MutexGuard<'_, Windows> {
        lock(&self.windows)
    }

    fn farms(&self) -> MutexGuard<'_, Farms> {
        lock(&self.farms)
    }

    /// What a connection that has just been granted its client id needs: a command receiver
    /// that misses nothing from now on, the current farm notices, and whether IB's link is down.
    pub(crate) fn startup_view(&self) -> (broadcast::Receiver<ConnCommand>, Vec<Notice>, bool) {
        let farms = self.farms();
        let commands = self.commands.subscribe();
        let link_down = self.windows().link_down;
        (commands, farms.notices(), link_down)
    }

    pub(crate) fn next_order_id(&self) -> i32 {
        self.next_order_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a client id, or says why it cannot be had.
    pub(crate) fn claim_client_id(&self, client_id: i32, conn: u64) -> Result<(), &'static str> {
        if Windows::active(self.windows().duplicate_id_until) {
            return Err("duplicate_id_fault");
        }
        let mut clients = lock(&self.clients);
        if clients.contains_key(&client_id) {
            return Err("duplicate_id");
        }
        clients.insert(client_id, conn);
        Ok(())
    }

    pub(crate) fn release_client_id(&self, client_id: i32, conn: u64) {
        let mut clients = lock(&self.clients);
        if clients.get(&client_id) == Some(&conn) {
            clients.remove(&client_id);
        }
    }

    /// Spawns a task the simulator owns: shutdown waits for it.
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    fn broadcast(&self, cmd: ConnCommand) {
        let _ = self.commands.send(cmd);
    }

    /// Applies a fault now.
    pub(crate) fn inject(self: &Arc<Self>, fault: Fault) -> Result<(), SimError> {
        info!(fault = ?fault, "injecting fault");
        if let Fault::Farm { name, state } = &fault {
            // Checked before it is counted: an unknown farm is a caller's mistake, not a fault.
            let mut farms = self.farms();
            let notice = farms.set(name, *state).map_err(|e| SimError::BadFault(e.to_string()))?;
            self.broadcast(ConnCommand::Farms(vec![notice]));
        }
        *self.stats().faults.entry(fault.name().to_owned()).or_default() += 1;
        {
            let mut w = self.windows();
            match &fault {
                Fault::Restart { down_ms } => Windows::open(&mut w.refuse_until, *down_ms),
                Fault::Refuse { duration_ms } => Windows::open(&mut w.refuse_until, *duration_ms),
                Fault::AcceptThenClose { duration_ms } => Windows::open(&mut w.accept_close_until, *duration_ms),
                Fault::StallHandshake { duration_ms } => Windows::open(&mut w.stall_until, *duration_ms),
                Fault::DuplicateId { duration_ms } => Windows::open(&mut w.duplicate_id_until, *duration_ms),
                _ => {}
            }
        }
        self.windows_changed.notify_one();
        match fault {
            Fault::Restart { .. } => self.broadcast(ConnCommand::Drop),
            Fault::Silence => self.broadcast(ConnCommand::Silence),
            Fault::MalformedFrame => self.broadcast(ConnCommand::Raw(malformed_frame())),
            Fault::OversizedFrame => self.broadcast(ConnCommand::Raw(oversized_frame())),
            Fault::LinkLost { restore_ms, data_lost } => self.link_outage(restore_ms, data_lost),
            Fault::Maintenance { duration_ms } => self.link_outage(duration_ms, false),
            Fault::Burst { count, con_id, account } => {
                let key = match (account, con_id) {
                    (Some(a), Some(c)) => Some((a, c)),
                    (None, Some(c)) => {
                        let p = self.book.positions().into_iter().find(|p| p.con_id == c);
                        Some(
                            p.map(|p| (p.account, c))
                                .ok_or_else(|| SimError::BadFault(format!("no position with con_id {c}")))?,
                        )
                    }
                    _ => None,
                };
                self.book.burst(count, key).ok_or_else(|| SimError::BadFault("burst: no such position".into()))?;
            }
            Fault::Refuse { .. }
            | Fault::AcceptThenClose { .. }
            | Fault::StallHandshake { .. }
            | Fault::DuplicateId { .. }
            | Fault::Farm { .. } => {}
        }
        Ok(())
    }

    /// IB's link drops: the OK farms break with it. Overlapping outages end together, when the
    /// latest one does.
    fn link_outage(self: &Arc<Self>, restore_ms: u64, data_lost: bool) {
        let until = Instant::now() + Duration::from_millis(restore_ms);
        {
            let mut farms = self.farms();
            let mut w = self.windows();
            w.link_down = true;
            w.link_until = Some(w.link_until.map_or(until, |u| u.max(until)));
            drop(w);
            self.broadcast(ConnCommand::LinkLost { farms: farms.break_ok() });
        }
        let shared = Arc::clone(self);
        self.tracker.spawn(async move {
            tokio::select! {
                () = sleep_until(until) => shared.restore_link(data_lost),
                () = shared.shutdown.cancelled() => {}
            }
        });
    }

    fn restore_link(&self, data_lost: bool) {
        let mut farms = self.farms();
        {
            let mut w = self.windows();
            // Already restored (reset), or a later outage extended this one.
            if !w.link_down || Windows::active(w.link_until) {
                return;
            }
            w.link_down = false;
            w.link_until = None;
        }
        self.broadcast(ConnCommand::LinkRestored { data_lost, farms: farms.restore() });
    }

    /// Back to the scenario: book, farms, faults and counters.
    pub(crate) fn reset(self: &Arc<Self>) {
        {
            let mut farms = self.farms();
            *self.windows() = Windows::default();
            self.broadcast(ConnCommand::LinkRestored { data_lost: false, farms: Vec::new() });
            let changed = farms.reset(&self.scenario.farms);
            if !changed.is_empty() {
                self.broadcast(ConnCommand::Farms(changed));
            }
        }
        self.windows_changed.notify_one();
        // Prices go back to the scenario's, and so does the walk (stopped, or the scenario's
        // from its first step).
        self.stop_walk();
        self.book.load(&self.scenario);
        if let Some(walk) = self.scenario.price_walk.clone() {
            self.start_walk(walk);
        }
        self.stats().reset();
    }
}

/// A running simulator. Dropping it does not stop it; call [`Sim::shutdown`].
#[derive(Debug)]
pub struct Sim {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
}

impl Sim {
    /// Binds the listeners and starts serving.
    pub async fn start(config: SimConfig) -> Result<Sim, SimError> {
        config.scenario.validate()?;
        if let Some(c) = config.control
            && !c.ip().is_loopback()
        {
            return Err(SimError::ControlNotLoopback(c));
        }
        let listener =
            TcpListener::bind(config.api).await.map_err(|source| SimError::Bind { addr: config.api, source })?;
        let api_addr = listener.local_addr().map_err(|source| SimError::Bind { addr: config.api, source })?;
        let s = &config.scenario;
        let shared = Arc::new(Shared {
            settings: Settings {
                server_version: s.server_version,
                max_clients: s.max_clients,
                summary_refresh: Duration::from_millis(s.account_summary_refresh_ms.max(1)),
                pnl_interval: Duration::from_millis(s.pnl_interval_ms.max(1)),
            },
            book: Book::new(s),
            commands: broadcast::channel(64).0,
            shutdown: CancellationToken::new(),
            scenario: s.clone(),
            stats: Mutex::default(),
            farms: Mutex::new(Farms::new(s.farms.clone())),
            windows: Mutex::default(),
            windows_changed: Notify::new(),
            clients: Mutex::default(),
            walk: Mutex::default(),
            next_order_id: AtomicI32::new(s.next_valid_id),
            conn_seq: AtomicU64::new(1),
            tracker: TaskTracker::new(),
        });

        let control_addr = match config.control {
            Some(addr) => Some(crate::control::start(Arc::clone(&shared), addr).await?),
            None => None,
        };
        shared.tracker.spawn(accept_loop(Arc::clone(&shared), listener, api_addr));
        for item in s.schedule.clone() {
            shared.tracker.spawn(run_schedule(Arc::clone(&shared), item));
        }
        for tick in s.price_ticks.clone() {
            shared.tracker.spawn(prices::run_tick(Arc::clone(&shared), tick));
        }
        if let Some(walk) = s.price_walk.clone() {
            shared.start_walk(walk);
        }
        info!(api = %api_addr, control = ?control_addr, "ib-sim listening");
        Ok(Sim { shared, api_addr, control_addr })
    }

    /// The API address clients connect to.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The control HTTP address, if enabled.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats().clone()
    }

    /// Injects a fault now.
    pub fn inject(&self, fault: Fault) -> Result<(), SimError> {
        self.shared.inject(fault)
    }

    /// Inserts or updates positions (quantity "0" closes one); subscribers see it at once.
    pub fn upsert_positions(&self, positions: Vec<Position>) -> Result<(), SimError> {
        Ok(self.shared.book.upsert_positions(positions)?)
    }

    /// Inserts or updates account values.
    pub fn upsert_account_values(&self, values: Vec<AccountValue>) -> Result<(), SimError> {
        Ok(self.shared.book.upsert_values(values)?)
    }

    /// Current positions.
    pub fn positions(&self) -> Vec<Position> {
        self.shared.book.positions()
    }

    /// Current account values.
    pub fn account_values(&self) -> Vec<AccountValue> {
        self.shared.book.values()
    }

    /// Inserts or updates ledger rows; account-summary subscribers see them at their next batch.
    pub fn upsert_ledger(&self, rows: Vec<LedgerValue>) -> Result<(), SimError> {
        Ok(self.shared.book.upsert_ledger(rows)?)
    }

    /// Current ledger rows.
    pub fn ledger(&self) -> Vec<LedgerValue> {
        self.shared.book.ledger()
    }

    /// Back to the scenario's data, no faults, zeroed counters.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Closes every connection (server side first) and stops all tasks.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

mod prices;

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    loop {
        let refuse_until = shared.windows().refuse_until.filter(|u| *u > Instant::now());
        if let Some(until) = refuse_until {
            // Dropping the listening socket makes the kernel answer SYNs with RST: a real
            // "connection refused", not a hang.
            if listener.take().is_some() {
                info!(%addr, "API port closed (refusing connections)");
            }
            tokio::select! {
                () = sleep_until(until) => {}
                () = shared.windows_changed.notified() => {}
                () = shared.shutdown.cancelled() => return,
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => {
                    info!(%addr, "API port open again");
                    l
                }
                Err(e) => {
                    warn!(%addr, error = %e, "rebind failed; retrying");
                    tokio::select! {
                        () = sleep(Duration::from_millis(50)) => {}
                        () = shared.shutdown.cancelled() => return,
                    }
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = current.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = shared.conn_seq.fetch_add(1, Ordering::Relaxed);
                    let admission = {
                        let mut stats = shared.stats();
                        let decision = connection::admission(&shared.windows(), stats.open_now, shared.settings.max_clients);
                        if let Admission::CloseAtOnce(reason) = decision {
                            stats.rejected(reason);
                        }
                        stats.accepted(id, peer.to_string());
                        decision
                    };
                    shared.tracker.spawn(connection::serve(Arc::clone(&shared), stream, id, admission));
                }
                Err(e) => {
                    // Out of descriptors or similar: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                }
            },
            () = shared.windows_changed.notified() => {}
            () = shared.shutdown.cancelled() => return,
        }
        listener = Some(current);
    }
}

async fn run_schedule(shared: Arc<Shared>, item: crate::scenario::ScheduledFault) {
    let mut at = Instant::now() + Duration::from_millis(item.at_ms);
    let mut done = 0u64;
    loop {
        tokio::select! {
            () = sleep_until(at) => {}
            () = shared.shutdown.cancelled() => return,
        }
        if let Err(e) = shared.inject(item.fault.clone()) {
            warn!(error = %e, "scheduled fault failed");
        }
        done += 1;
        match item.every_ms {
            Some(every) if item.count.is_none_or(|c| done < c) => at += Duration::from_millis(every.max(1)),
            _ => return,
        }
    }
}
