//! Capped exponential backoff with jitter, reset once a session has stayed up long enough.

use std::time::Duration;

use rand::Rng;

/// Reconnect delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles per failure, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial), current: initial }
    }

    /// The next delay: the current step with ±20 % jitter (so restarts of many services do not
    /// reconnect in lockstep), then the step doubles. Never below `initial` (the attempt-rate
    /// floor) nor above `max` (the recovery-time cap).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::rng().random_range(0.8..=1.2);
        base.mul_f64(jitter).clamp(self.initial, self.max)
    }

    /// Back to the initial delay (after a stable session).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
        assert!(delays[3] >= Duration::from_millis(640), "doubles: {delays:?}");
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(1000)), "capped: {delays:?}");
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(100)), "floored: {delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
