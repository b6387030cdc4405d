//! Capped exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

/// How retries are spaced: the first delay and the longest, validated once (`initial > 0`,
/// `max ≥ initial`), so a running [`Backoff`] never needs to check them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    initial: Duration,
    max: Duration,
}

/// Why a [`BackoffPolicy`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BackoffPolicyError {
    /// A zero first delay would retry in a busy loop.
    #[error("the first delay must be > 0")]
    ZeroInitial,
    /// The cap is below the first delay.
    #[error("the longest delay must be ≥ the first")]
    MaxBelowInitial,
}

impl BackoffPolicy {
    /// Starts at `initial`, doubles per failure, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Result<Self, BackoffPolicyError> {
        if initial.is_zero() {
            return Err(BackoffPolicyError::ZeroInitial);
        }
        if max < initial {
            return Err(BackoffPolicyError::MaxBelowInitial);
        }
        Ok(Self { initial, max })
    }

    /// For delays fixed in code: a zero first delay becomes 1 ms and a cap below the first delay
    /// becomes the first delay, so it never fails (configured delays go through [`Self::new`],
    /// which refuses them instead).
    pub const fn clamped(initial: Duration, max: Duration) -> Self {
        let initial = if initial.is_zero() { Duration::from_millis(1) } else { initial };
        let max = if max.as_nanos() < initial.as_nanos() { initial } else { max };
        Self { initial, max }
    }

    /// The first delay (the attempt-rate floor).
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay (the recovery-time cap).
    pub fn max(&self) -> Duration {
        self.max
    }
}

/// Retry delays under a [`BackoffPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    current: Duration,
}

impl Backoff {
    /// At the policy's first delay.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, current: policy.initial }
    }

    /// The next delay: the current step with ±20 % jitter (so many clients that lost the same
    /// server do not come back in lockstep), then the step doubles. Never below the first delay
    /// nor above the longest.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.policy.max);
        let jitter = rand::rng().random_range(0.8..=1.2);
        base.mul_f64(jitter).clamp(self.policy.initial, self.policy.max)
    }

    /// Back to the first delay (after a success, or a session that stayed up long enough).
    pub fn reset(&mut self) {
        self.current = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_within_bounds_and_resets() {
        let mut b = Backoff::new(BackoffPolicy::new(ms(100), ms(1000)).expect("valid"));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= ms(100) && delays[0] <= ms(120), "first step: {delays:?}");
        assert!(delays[3] >= ms(640), "doubles: {delays:?}");
        assert!(delays.iter().all(|d| *d >= ms(100) && *d <= ms(1000)), "floored and capped: {delays:?}");
        assert!(delays[6..].iter().all(|d| *d >= ms(800)), "stays near the cap: {delays:?}");
        b.reset();
        assert!(b.next_delay() <= ms(120), "reset");
    }

    #[test]
    fn jitter_spreads_delays_within_twenty_percent() {
        let policy = BackoffPolicy::new(ms(1000), ms(60_000)).expect("valid");
        // The third step (4 s) has room on both sides: neither floor nor cap clamps it.
        let third: Vec<Duration> = (0..200)
            .map(|_| {
                let mut b = Backoff::new(policy);
                b.next_delay();
                b.next_delay();
                b.next_delay()
            })
            .collect();
        assert!(third.iter().all(|d| *d >= ms(3200) && *d <= ms(4800)), "±20 %: {third:?}");
        let below = third.iter().filter(|d| **d < ms(4000)).count();
        let above = third.iter().filter(|d| **d > ms(4000)).count();
        // With 200 draws each side is all but certain to be hit; equal delays would mean no jitter.
        assert!(below > 0 && above > 0, "jittered both ways: {below} below, {above} above");
        let distinct: std::collections::BTreeSet<Duration> = third.iter().copied().collect();
        assert!(distinct.len() > 100, "spread: only {} distinct delays", distinct.len());
    }

    #[test]
    fn a_policy_is_validated_once() {
        assert_eq!(BackoffPolicy::new(ms(0), ms(10)), Err(BackoffPolicyError::ZeroInitial));
        assert_eq!(BackoffPolicy::new(ms(10), ms(9)), Err(BackoffPolicyError::MaxBelowInitial));
        let p = BackoffPolicy::new(ms(10), ms(10)).expect("equal is fine");
        assert_eq!((p.initial(), p.max()), (ms(10), ms(10)));
        let mut b = Backoff::new(p);
        assert!((0..5).all(|_| b.next_delay() == ms(10)), "a fixed delay when initial = max");
        const FIXED: BackoffPolicy = BackoffPolicy::clamped(Duration::ZERO, Duration::ZERO);
        assert_eq!((FIXED.initial(), FIXED.max()), (ms(1), ms(1)), "clamped, never zero");
        assert_eq!(BackoffPolicy::clamped(ms(100), ms(3000)), BackoffPolicy::new(ms(100), ms(3000)).expect("valid"));
    }
}
