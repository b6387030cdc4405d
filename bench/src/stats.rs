//! Latency samples and their percentiles.
//!
//! Percentiles use the nearest-rank method on the sorted samples: p99 of 100 samples is the 99th
//! smallest, never an interpolation between two observations, so every figure printed was
//! actually observed.

use std::time::Duration;

/// Percentiles of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Summary {
    /// Percentiles of `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Summary::of_sorted(&sorted)
    }

    /// Percentiles of microsecond samples (the unary load loop records `u32` µs to stay small).
    pub fn of_micros(samples: &mut [u32]) -> Option<Summary> {
        samples.sort_unstable();
        let max = Duration::from_micros(u64::from(*samples.last()?));
        let at = |q: f64| Duration::from_micros(u64::from(samples[rank(samples.len(), q)]));
        Some(Summary { n: samples.len(), p50: at(0.50), p95: at(0.95), p99: at(0.99), max })
    }

    fn of_sorted(sorted: &[Duration]) -> Option<Summary> {
        let max = *sorted.last()?;
        let at = |q: f64| sorted[rank(sorted.len(), q)];
        Some(Summary { n: sorted.len(), p50: at(0.50), p95: at(0.95), p99: at(0.99), max })
    }
}

/// Index of the nearest-rank `q` quantile in a sorted slice of `n > 0` items.
fn rank(n: usize, q: f64) -> usize {
    let r = (q * n as f64).ceil() as usize;
    r.clamp(1, n) - 1
}

/// The median of a few figures (of repeated rounds), `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The median of durations, `None` when empty.
pub fn median_duration(values: &[Duration]) -> Option<Duration> {
    let secs: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    median(&secs).map(Duration::from_secs_f64)
}

/// Milliseconds with a precision that suits the magnitude (µs below 1 ms).
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.n, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p95, Duration::from_millis(95));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(s.max, Duration::from_millis(100));
        let one = Summary::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!(
            (one.p50, one.p99, one.max),
            (Duration::from_millis(7), Duration::from_millis(7), Duration::from_millis(7))
        );
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn micros_and_median() {
        let mut us = vec![300, 100, 200];
        let s = Summary::of_micros(&mut us).unwrap();
        assert_eq!(s.p50, Duration::from_micros(200));
        assert_eq!(s.max, Duration::from_micros(300));
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(ms(Duration::from_micros(250)), "250 µs");
        assert_eq!(ms(Duration::from_micros(2500)), "2.50 ms");
    }
}
