//! Capped exponential backoff with jitter, for gateway-svc streams and NATS reconciliation.

use std::time::Duration;

use rand::Rng;

use crate::config::RetrySettings;

/// Delays between attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// From the configuration.
    pub fn new(s: &RetrySettings) -> Self {
        let initial = Duration::from_millis(s.initial_ms);
        Self { initial, max: Duration::from_millis(s.max_ms).max(initial), current: initial }
    }

    /// The next delay (±20 % jitter, doubling, within `initial..=max`).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(rand::rng().random_range(0.8..=1.2)).clamp(self.initial, self.max)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(&RetrySettings { initial_ms: 100, max_ms: 1000 });
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(d.iter().all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(1000)), "{d:?}");
        assert!(d[4] >= Duration::from_millis(800), "{d:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
