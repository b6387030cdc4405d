//! Moving prices: scripted ticks, the seeded random walk, and the read API that says what PnL
//! the wire carries now.

use std::sync::Arc;

use tokio::time::{Duration, Instant, MissedTickBehavior, interval_at, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Shared, Sim, SimError, lock};
use crate::prices::{AccountPnl, PositionPnl, PriceTick, PriceWalk, ScheduledTick};
use crate::scenario::ScenarioError;

/// The walk that is running and how to stop it.
#[derive(Debug)]
pub(crate) struct RunningWalk {
    walk: PriceWalk,
    stop: CancellationToken,
}

impl Shared {
    /// Starts `walk` from its first step, replacing any running walk.
    pub(crate) fn start_walk(self: &Arc<Self>, walk: PriceWalk) {
        let stop = self.shutdown.child_token();
        let old = lock(&self.walk).replace(RunningWalk { walk: walk.clone(), stop: stop.clone() });
        if let Some(old) = old {
            old.stop.cancel();
        }
        info!(seed = walk.seed, interval_ms = walk.interval_ms, step_bps = walk.step_bps, "price walk started");
        self.spawn(run_walk(Arc::clone(self), walk, stop));
    }

    /// Stops the running walk; returns it. No step runs after this returns.
    pub(crate) fn stop_walk(&self) -> Option<PriceWalk> {
        // Steps run under this lock, so once it is held no step is half done.
        let old = lock(&self.walk).take()?;
        old.stop.cancel();
        info!("price walk stopped");
        Some(old.walk)
    }

    pub(crate) fn walk(&self) -> Option<PriceWalk> {
        lock(&self.walk).as_ref().map(|w| w.walk.clone())
    }
}

async fn run_walk(shared: Arc<Shared>, walk: PriceWalk, stop: CancellationToken) {
    let period = Duration::from_millis(walk.interval_ms.max(1));
    let mut timer = interval_at(Instant::now() + period, period);
    timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut step = 0u64;
    loop {
        tokio::select! {
            _ = timer.tick() => {}
            () = stop.cancelled() => return,
        }
        step += 1;
        let _running = lock(&shared.walk);
        if stop.is_cancelled() {
            return;
        }
        let ticks: Vec<PriceTick> = shared
            .book
            .prices()
            .into_iter()
            .filter(|t| walk.moves(t.con_id))
            .map(|t| PriceTick { con_id: t.con_id, price: walk.next_price(t.con_id, step, t.price) })
            .collect();
        if let Err(e) = shared.book.set_prices(&ticks) {
            warn!(error = %e, "price walk step failed");
        }
    }
}

/// One scripted tick of the scenario, at its time.
pub(super) async fn run_tick(shared: Arc<Shared>, tick: ScheduledTick) {
    let at = Instant::now() + Duration::from_millis(tick.at_ms);
    tokio::select! {
        () = sleep_until(at) => {}
        () = shared.shutdown.cancelled() => return,
    }
    if let Err(e) = shared.book.set_prices(&[PriceTick { con_id: tick.con_id, price: tick.price }]) {
        warn!(error = %e, con_id = tick.con_id, "scheduled price tick failed");
    }
}

impl Sim {
    /// Reprices contracts: every position holding one is revalued, and portfolio rows, PnL and
    /// the account values that depend on market value follow (see [`crate::Book::set_prices`]).
    /// All or nothing: a contract no position holds, or a negative or non-finite price, fails.
    pub fn set_prices(&self, ticks: &[PriceTick]) -> Result<(), SimError> {
        Ok(self.shared.book.set_prices(ticks)?)
    }

    /// The market price of every contract held, by contract id.
    pub fn prices(&self) -> Vec<PriceTick> {
        self.shared.book.prices()
    }

    /// Starts a seeded random walk of the prices from its first step, replacing a running one.
    pub fn start_price_walk(&self, walk: PriceWalk) -> Result<(), SimError> {
        walk.validate().map_err(ScenarioError::Invalid)?;
        self.shared.start_walk(walk);
        Ok(())
    }

    /// Stops the price walk; returns the one that was running. Prices stay where they are.
    pub fn stop_price_walk(&self) -> Option<PriceWalk> {
        self.shared.stop_walk()
    }

    /// The running price walk, if any.
    pub fn price_walk(&self) -> Option<PriceWalk> {
        self.shared.walk()
    }

    /// What a `reqPnL` for `account` carries now (`None` for an unknown account). A client
    /// subscribed since before the last change has these values once its minimum interval
    /// (`pnl_interval_ms`) has passed and IB's link is up.
    pub fn pnl(&self, account: &str) -> Option<AccountPnl> {
        self.shared.book.pnl(account)
    }

    /// What a `reqPnLSingle` for one position carries now: zeros and position "0" when the
    /// account does not hold the contract, `None` for an unknown account.
    pub fn position_pnl(&self, account: &str, con_id: i32) -> Option<PositionPnl> {
        self.shared.book.position_pnl(account, con_id)
    }
}
