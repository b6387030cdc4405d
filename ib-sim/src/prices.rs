//! Moving prices and what follows from them: scripted ticks, a seeded random walk, and the PnL
//! values the wire carries (`reqPnL`, `reqPnLSingle`).
//!
//! The walk is a pure function of its seed: step `n` of contract `c` multiplies the price by
//! `1 + step_bps / 10 000 × u`, where `u` in [−1, 1) comes from a SplitMix64 hash of the seed,
//! `c` and `n`, and rounds to 4 decimals. Each contract's path therefore depends only on the
//! seed, its own starting price and the step count, not on which other contracts are held.

use serde::{Deserialize, Serialize};

/// A contract's new market price, as sent to `PATCH /prices` or [`crate::Sim::set_prices`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTick {
    /// IB contract id; every position holding it is revalued.
    pub con_id: i32,
    /// New last price (per unit, without the multiplier).
    pub price: f64,
}

/// A price tick at a time offset from start (scenario `[[price_ticks]]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledTick {
    /// Milliseconds after the simulator starts.
    pub at_ms: u64,
    /// Contract to reprice.
    pub con_id: i32,
    /// New last price.
    pub price: f64,
}

/// A seeded random walk of the market prices (scenario `[price_walk]`, `POST /price-walk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceWalk {
    /// Seed; the same seed gives the same path from the same starting prices.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Time between steps.
    #[serde(default = "default_walk_interval_ms")]
    pub interval_ms: u64,
    /// Largest move per step, in basis points of the price (5 = 0.05 %).
    #[serde(default = "default_step_bps")]
    pub step_bps: f64,
    /// Contracts that move; empty means every contract held.
    #[serde(default)]
    pub con_ids: Vec<i32>,
}

fn default_seed() -> u64 {
    1
}
fn default_walk_interval_ms() -> u64 {
    1_000
}
fn default_step_bps() -> f64 {
    5.0
}

impl Default for PriceWalk {
    fn default() -> Self {
        Self {
            seed: default_seed(),
            interval_ms: default_walk_interval_ms(),
            step_bps: default_step_bps(),
            con_ids: Vec::new(),
        }
    }
}

/// Checks a price: finite and not negative.
pub(crate) fn check_price(con_id: i32, price: f64) -> Result<(), String> {
    if price.is_finite() && price >= 0.0 {
        Ok(())
    } else {
        Err(format!("price {price} for con_id {con_id} is not a finite number >= 0"))
    }
}

impl PriceWalk {
    /// Checks the walk's parameters.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms == 0 {
            return Err("price_walk interval_ms must be at least 1".into());
        }
        if !(self.step_bps.is_finite() && (0.0..=1000.0).contains(&self.step_bps)) {
            return Err(format!("price_walk step_bps {} is outside 0..=1000", self.step_bps));
        }
        Ok(())
    }

    /// Whether the walk moves this contract.
    pub fn moves(&self, con_id: i32) -> bool {
        self.con_ids.is_empty() || self.con_ids.contains(&con_id)
    }

    /// The price after step `step` (1 for the first) of `con_id`, from `price` before it.
    pub fn next_price(&self, con_id: i32, step: u64, price: f64) -> f64 {
        let u = unit(self.seed, con_id, step);
        let moved = price * (1.0 + self.step_bps / 10_000.0 * u);
        (moved.max(0.0001) * 10_000.0).round() / 10_000.0
    }

    /// The prices after steps 1..=`steps` of `con_id`, starting from `start`.
    pub fn path(&self, con_id: i32, start: f64, steps: u64) -> Vec<f64> {
        let mut price = start;
        (1..=steps)
            .map(|step| {
                price = self.next_price(con_id, step, price);
                price
            })
            .collect()
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash, stable forever (no crate version to drift).
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A draw in [−1, 1) for one contract at one step.
fn unit(seed: u64, con_id: i32, step: u64) -> f64 {
    let h = splitmix64(splitmix64(splitmix64(seed) ^ u64::from(con_id as u32)) ^ step);
    // The top 53 bits give a uniform double in [0, 1).
    let f = (h >> 11) as f64 / (1u64 << 53) as f64;
    2.0 * f - 1.0
}

/// One account's PnL as `pnl` carries it (`reqPnL`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccountPnl {
    /// The scenario account's `daily_pnl` plus the day's moves of the positions it holds.
    pub daily: f64,
    /// Sum of the positions' unrealized PnL.
    pub unrealized: f64,
    /// The scenario account's `realized_pnl`.
    pub realized: f64,
}

/// One position's PnL as `pnlSingle` carries it (`reqPnLSingle`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionPnl {
    /// Position size, a decimal string; `"0"` when the account does not hold the contract.
    pub position: String,
    /// The day's move: quantity × (price − the price when the position entered the book) ×
    /// multiplier.
    pub daily: f64,
    /// Market value minus cost basis.
    pub unrealized: f64,
    /// Always 0: the simulator has no trades to realize.
    pub realized: f64,
    /// Market value.
    pub value: f64,
}

impl PositionPnl {
    /// What a subscription for a contract the account does not hold receives.
    pub fn flat() -> Self {
        Self { position: "0".into(), daily: 0.0, unrealized: 0.0, realized: 0.0, value: 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_is_a_function_of_its_seed() {
        let walk = PriceWalk { seed: 7, ..PriceWalk::default() };
        let a = walk.path(265598, 189.5, 50);
        assert_eq!(a, walk.path(265598, 189.5, 50));
        assert_ne!(a, PriceWalk { seed: 8, ..walk.clone() }.path(265598, 189.5, 50));
        assert_ne!(a, walk.path(272093, 189.5, 50), "contracts move independently");
        let mut before = 189.5;
        for p in &a {
            let step = (p - before).abs() / before;
            assert!(step <= 5.0 / 10_000.0 + 1e-6, "step {step} above 5 bps");
            assert_eq!((p * 10_000.0).round() / 10_000.0, *p, "rounded to 4 decimals");
            before = *p;
        }
        assert!(a.windows(2).any(|w| w[0] != w[1]), "the price moves");
        assert!(PriceWalk { step_bps: 0.0, ..walk }.path(1, 10.0, 5).iter().all(|p| *p == 10.0));
    }

    #[test]
    fn draws_cover_both_directions() {
        let draws: Vec<f64> = (1..=1000).map(|n| unit(7, 265598, n)).collect();
        assert!(draws.iter().all(|u| (-1.0..1.0).contains(u)));
        let up = draws.iter().filter(|u| **u > 0.0).count();
        assert!((400..600).contains(&up), "{up} of 1000 draws up");
    }

    #[test]
    fn walks_and_prices_are_validated() {
        assert!(PriceWalk::default().validate().is_ok());
        assert!(PriceWalk { interval_ms: 0, ..PriceWalk::default() }.validate().is_err());
        assert!(PriceWalk { step_bps: f64::NAN, ..PriceWalk::default() }.validate().is_err());
        assert!(PriceWalk { step_bps: -1.0, ..PriceWalk::default() }.validate().is_err());
        assert!(check_price(1, 0.0).is_ok());
        assert!(check_price(1, -0.5).is_err());
        assert!(check_price(1, f64::INFINITY).is_err());
        let w: Result<PriceWalk, _> = serde_json::from_str(r#"{"interval_ms":500,"seed":1}"#);
        assert_eq!(w.ok(), Some(PriceWalk { interval_ms: 500, ..PriceWalk::default() }));
    }
}
