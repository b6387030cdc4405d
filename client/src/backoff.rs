//! Delays between attempts to open a stream: capped exponential, with jitter so that clients
//! that lost gateway-svc together do not come back in step.
// folded into ibgw-kit's backoff once it lands

use std::time::Duration;

use rand::Rng;

/// Delays between attempts.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// From `initial`, doubling up to `max` (at least `initial`).
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial), current: initial }
    }

    /// The next delay (±20 % jitter, doubling, within `initial..=max`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.8..=1.2)).clamp(self.initial, self.max)
    }

    /// Back to the first delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d.iter().all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(1000)), "{d:?}");
        assert!(d[4] >= Duration::from_millis(800), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
