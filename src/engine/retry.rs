//! Retry policy: exponential backoff with full jitter, capped.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a workflow's transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Executions allowed in total (first attempt included) before the run fails.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failure; doubles after each further failure.
    pub base: Duration,
    /// Upper bound of any single backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff after `failures` failures: `min(cap, base·2^(failures-1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// Full jitter: a uniform delay in `[0, ceiling]` ("Exponential Backoff And
    /// Jitter", AWS), so retries of many runs failing together spread out.
    pub fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures).as_millis() as u64;
        Duration::from_millis(rng.random_range(0..=ceiling))
    }

    /// Whether a run that has failed `failures` times may try again.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let ceilings: Vec<u64> = (1..=6).map(|f| p.ceiling(f).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn backoff_stays_within_zero_and_the_ceiling_and_spreads() {
        let p = RetryPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);
        for failures in 1..12 {
            let samples: Vec<Duration> = (0..200).map(|_| p.backoff(failures, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= p.ceiling(failures)));
            let distinct: std::collections::HashSet<_> = samples.iter().collect();
            assert!(distinct.len() > 50, "full jitter must spread delays");
        }
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(u32::MAX), p.cap);
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.allows_retry(2));
        assert!(!p.allows_retry(3));
    }
}
