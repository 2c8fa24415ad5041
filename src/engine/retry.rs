//! Retry policy: exponential backoff with full jitter, capped, or a fixed
//! schedule of delays (a provider's documented retry plan, kept exactly).

use std::{sync::Arc, time::Duration};

use rand::Rng;

/// How often and how patiently a workflow's transient failures are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Executions allowed in total (first attempt included) before the run fails.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failure; doubles after each further failure.
    pub base: Duration,
    /// Upper bound of any single backoff.
    pub cap: Duration,
    /// Exact delays after the 1st, 2nd, … failure instead of jittered
    /// doubling (the last repeats should `max_attempts` allow more).
    pub schedule: Option<Arc<[Duration]>>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(15 * 60),
            schedule: None,
        }
    }
}

impl RetryPolicy {
    /// One retry per delay, each after exactly that delay; then the run fails.
    /// An empty schedule means no retry.
    pub fn from_schedule(delays: &[Duration]) -> Self {
        Self {
            max_attempts: u32::try_from(delays.len() + 1).unwrap_or(u32::MAX),
            base: delays.first().copied().unwrap_or_default(),
            cap: delays.iter().max().copied().unwrap_or_default(),
            schedule: Some(delays.into()),
        }
    }

    /// The ceiling of the backoff after `failures` failures: `min(cap, base·2^(failures-1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// Full jitter: a uniform delay in `[0, ceiling]` ("Exponential Backoff And
    /// Jitter", AWS), so retries of many runs failing together spread out.
    /// With a schedule, its delay for this failure, exactly.
    pub fn backoff(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        if let Some(schedule) = &self.schedule {
            let i = (failures.max(1) - 1) as usize;
            return schedule.get(i).or(schedule.last()).copied().unwrap_or_default();
        }
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
            schedule: None,
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

    #[test]
    fn a_schedule_is_kept_exactly_then_the_run_fails() {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let p = RetryPolicy::from_schedule(&[minutes(1), minutes(2), minutes(4), minutes(8), minutes(16)]);
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (1..=5).map(|f| p.backoff(f, &mut rng)).collect();
        assert_eq!(delays, vec![minutes(1), minutes(2), minutes(4), minutes(8), minutes(16)]);
        assert!(p.allows_retry(5), "five retries after the first try");
        assert!(!p.allows_retry(6));
        assert!(!RetryPolicy::from_schedule(&[]).allows_retry(1));
    }
}
