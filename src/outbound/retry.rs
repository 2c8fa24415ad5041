//! When a failed delivery is tried again: after the configured schedule's wait
//! for that attempt (`RELEVO_OUTBOUND_RETRY_SCHEDULE`), scaled by ±20 % jitter
//! so deliveries failing together do not retry together, and never before the
//! receiver's `Retry-After`. Past the schedule's end the delivery fails.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// A jitter factor in `0.8..=1.2`.
pub(super) fn jitter() -> f64 {
    rand::rng().random_range(0.8..=1.2)
}

/// After attempt `attempt` (1-based) failed: when to try again, or `None` when
/// the schedule is exhausted.
pub(super) fn next_attempt_at(
    schedule: &[Duration],
    attempt: i32,
    retry_after: Option<Duration>,
    jitter: f64,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let base = *schedule.get(attempt.max(1) as usize - 1)?;
    let wait = base.mul_f64(jitter).max(retry_after.unwrap_or_default());
    Some(now + chrono::Duration::from_std(wait).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        vec![Duration::from_secs(5), Duration::from_secs(300)]
    }

    fn after(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
        at.map(|at| (at - now).num_milliseconds())
    }

    #[test]
    fn each_attempt_waits_its_own_step_of_the_schedule() {
        let now = Utc::now();
        assert_eq!(after(next_attempt_at(&schedule(), 1, None, 1.0, now), now), Some(5_000));
        assert_eq!(after(next_attempt_at(&schedule(), 2, None, 1.0, now), now), Some(300_000));
    }

    #[test]
    fn an_exhausted_schedule_means_no_more_attempts() {
        assert_eq!(next_attempt_at(&schedule(), 3, None, 1.0, Utc::now()), None);
        assert_eq!(next_attempt_at(&[], 1, None, 1.0, Utc::now()), None);
    }

    #[test]
    fn jitter_scales_the_wait() {
        let now = Utc::now();
        assert_eq!(after(next_attempt_at(&schedule(), 1, None, 0.8, now), now), Some(4_000));
        assert_eq!(after(next_attempt_at(&schedule(), 1, None, 1.2, now), now), Some(6_000));
        for _ in 0..100 {
            assert!((0.8..=1.2).contains(&jitter()));
        }
    }

    #[test]
    fn retry_after_is_a_floor_not_a_replacement() {
        let now = Utc::now();
        let long = Some(Duration::from_secs(60));
        let short = Some(Duration::from_secs(1));
        assert_eq!(after(next_attempt_at(&schedule(), 1, long, 1.0, now), now), Some(60_000));
        assert_eq!(after(next_attempt_at(&schedule(), 1, short, 1.0, now), now), Some(5_000));
        assert_eq!(next_attempt_at(&schedule(), 3, long, 1.0, now), None, "Retry-After does not extend the schedule");
    }

    #[test]
    fn an_unnumbered_attempt_counts_as_the_first() {
        let now = Utc::now();
        assert_eq!(after(next_attempt_at(&schedule(), 0, None, 1.0, now), now), Some(5_000));
    }
}
