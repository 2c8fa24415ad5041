//! Executes one wake-up of a run: claim (fence + lease), run the workflow's
//! code, then settle the outcome (finish, retry, sleep) under the same fence.

use std::{panic::AssertUnwindSafe, time::Duration};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use uuid::Uuid;

use super::{
    ctx::RunCtx,
    error::{Interrupt, Result, StepError},
    store::{self, AttemptOutcome, ErrorRecord, RunStatus, WakeJob},
    Engine,
};

/// The soonest a rate-limited run comes back.
const RATE_LIMITED_MIN_DELAY: chrono::Duration = chrono::Duration::milliseconds(100);

/// The run as claimed for this attempt.
struct Claimed {
    id: Uuid,
    /// The queue job that woke this attempt.
    job_id: String,
    workflow: String,
    key: Option<String>,
    fence: i64,
    failures: i32,
}

type Steps = std::collections::HashMap<String, store::StoredStep>;

impl Engine {
    /// Handles one queue job. Returns `Err` only when the database failed; every
    /// workflow outcome is recorded in the run itself.
    pub(crate) async fn execute(&self, job: WakeJob, job_id: String) -> Result<()> {
        // Before the claim, so a waiting attempt holds no lease.
        let _slot = self.admit_attempt().await;
        let Some((claimed, input, steps)) = self.claim(job, job_id).await? else {
            return Ok(());
        };
        let flow = self
            .registry()
            .get(&claimed.workflow)
            .cloned()
            .expect("claim only returns registered workflows");
        let mut ctx = RunCtx::new(self.clone(), claimed.id, claimed.fence, steps);
        let renewer = self.spawn_lease_renewer(claimed.id, claimed.fence);
        let started = std::time::Instant::now();
        let outcome = AssertUnwindSafe(flow.run(&mut ctx, input))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(StepError::transient(format!("step panicked: {}", panic_message(&panic)))));
        renewer.abort();
        let step = ctx.current_step().map(str::to_owned);
        let kind = match &outcome {
            Ok(()) => "succeeded",
            Err(e) => e.kind(),
        };
        metrics::counter!("relevo_run_attempts_total", "workflow" => claimed.workflow.clone(), "outcome" => kind)
            .increment(1);
        metrics::histogram!("relevo_run_attempt_seconds", "workflow" => claimed.workflow.clone())
            .record(started.elapsed().as_secs_f64());
        self.settle(&claimed, outcome, step, flow.retry_policy()).await
    }

    /// Claims the run with the others arriving now (`engine.claim_runs`, one
    /// statement); alone (`engine.claim_run`) when it is keyed or its row was
    /// busy; `claim_slow` when the lease is held elsewhere or a crash must be
    /// counted.
    async fn claim(&self, job: WakeJob, job_id: String) -> Result<Option<(Claimed, serde_json::Value, Steps)>> {
        let fast = match self.claims().submit(job).await? {
            store::FastClaim::Alone => store::claim_fast(self.pool(), job, self.node(), self.settings().lease).await?,
            claimed => claimed,
        };
        match fast {
            store::FastClaim::Claimed { workflow, key, input, fence, failures, steps } => {
                if self.registry().get(&workflow).is_none() {
                    // Cannot happen: a worker only serves registered workflows' queues.
                    tracing::error!(workflow.run_id = %job.run_id, workflow.name = %workflow, "claimed an unregistered workflow");
                    return Ok(None);
                }
                let claimed = Claimed { id: job.run_id, job_id, workflow, key, fence, failures };
                Ok(Some((claimed, input, steps)))
            }
            store::FastClaim::Skip => Ok(None),
            store::FastClaim::SlowPath => self.claim_slow(job, job_id).await,
            store::FastClaim::Alone => unreachable!("claim_fast claims alone"),
        }
    }

    async fn claim_slow(&self, job: WakeJob, job_id: String) -> Result<Option<(Claimed, serde_json::Value, Steps)>> {
        let mut tx = self.pool().begin().await?;
        let Some(key) = store::ordering_key_of(&mut tx, job.run_id).await? else {
            return Ok(None);
        };
        if let Some(key) = &key {
            store::lock_key_using(&mut tx, key).await?;
        }
        let Some(run) = store::lock_run_using(&mut tx, job.run_id).await? else {
            return Ok(None);
        };
        if run.wake_seq != job.wake || run.status.is_terminal() {
            return Ok(None); // a superseded wake-up, or an acked-late duplicate
        }
        let Some(flow) = self.registry().get(&run.workflow).cloned() else {
            tracing::warn!(workflow.run_id = %job.run_id, workflow.name = %run.workflow, "no such workflow registered here");
            return Ok(None);
        };
        if run.lease_held {
            // Another executor holds the run (apalis re-enqueued a live job):
            // look again when its lease would expire.
            store::rewake_using(&mut tx, job.run_id, &run.workflow, run.lease_until).await?;
            tx.commit().await?;
            return Ok(None);
        }
        if let Some(key) = &key {
            if store::must_wait_for_key_using(&mut tx, key, job.run_id, run.seq).await? {
                // The predecessor's completion wakes us (it takes the same key lock).
                tx.commit().await?;
                return Ok(None);
            }
        }
        let crashed = store::close_crashed_attempts_using(&mut tx, job.run_id).await?;
        let failures = run.failures + crashed;
        let policy = flow.retry_policy();
        if crashed > 0 && !policy.allows_retry(failures as u32) {
            // apalis re-enqueues orphans without checking max_attempts; a run that
            // keeps killing its worker must stop here.
            fail_crashed_using(&mut tx, job.run_id, run.fence, key.as_deref(), failures).await?;
            tx.commit().await?;
            return Ok(None);
        }
        let fence = store::claim_using(&mut tx, job.run_id, failures, self.node(), self.settings().lease).await?;
        let steps = store::load_steps_using(&mut tx, job.run_id).await?;
        tx.commit().await?;
        let claimed = Claimed {
            id: job.run_id,
            job_id,
            workflow: run.workflow,
            key,
            fence,
            failures,
        };
        Ok(Some((claimed, run.input, steps)))
    }

    async fn settle(
        &self,
        run: &Claimed,
        outcome: Result<(), StepError>,
        step: Option<String>,
        policy: super::RetryPolicy,
    ) -> Result<()> {
        let error = match &outcome {
            Ok(()) | Err(StepError::Interrupted(_)) => ErrorRecord::default(),
            Err(e) => ErrorRecord {
                kind: Some(e.kind().into()),
                step: step.clone(),
                message: Some(e.to_string()),
            },
        };
        if outcome.is_ok() && run.key.is_none() {
            // The common case, grouped with other runs' successes: run
            // succeeded, attempt closed.
            let kept = self.successes().submit(store::Success {
                id: run.id,
                fence: run.fence,
                failures: run.failures,
                job_id: run.job_id.clone(),
            })
            .await?;
            if kept {
                return Ok(());
            }
            return self.record_lost_lease(run, step).await;
        }
        let mut tx = self.pool().begin().await?;
        let decision = settlement(&outcome, run.failures, &policy, Utc::now(), &mut rand::rng());
        let mut wake_at = None;
        let (kept, attempt_outcome) = match decision {
            Settlement::Finish { status, failures, attempt } => {
                (self.finish(&mut tx, run, status, failures, &error).await?, attempt)
            }
            Settlement::Reschedule { status, at, failures, attempt } => {
                wake_at = Some(at);
                let kept =
                    store::reschedule_using(&mut tx, run.id, run.fence, &run.workflow, status, at, failures, &error).await?;
                (kept, attempt)
            }
            Settlement::LostLease => (false, AttemptOutcome::LostLease),
        };
        if kept {
            store::end_attempt_using(&mut tx, run.id, run.fence, attempt_outcome, &error).await?;
            tx.commit().await?;
            if let Some(at) = wake_at {
                // A short timer or backoff fires on time here, not at the next poll.
                self.wake_signals().wake_at(&super::queue_name(&run.workflow), at);
            }
        } else {
            tx.rollback().await?;
            self.record_lost_lease(run, step).await?;
        }
        Ok(())
    }

    async fn record_lost_lease(&self, run: &Claimed, step: Option<String>) -> Result<()> {
        let lost = ErrorRecord {
            kind: Some("lost_lease".into()),
            step,
            message: Some("another attempt took over the run, or it was cancelled".into()),
        };
        let mut conn = self.pool().acquire().await?;
        store::end_attempt_using(&mut conn, run.id, run.fence, AttemptOutcome::LostLease, &lost).await
    }

    async fn finish(
        &self,
        tx: &mut sqlx::PgConnection,
        run: &Claimed,
        status: RunStatus,
        failures: i32,
        error: &ErrorRecord,
    ) -> Result<bool> {
        if let Some(key) = &run.key {
            store::lock_key_using(tx, key).await?;
        }
        let kept = store::finish_using(tx, run.id, run.fence, status, failures, error).await?;
        // (The unkeyed success path does not come here: see `settle`.)
        if kept {
            if let Some(key) = &run.key {
                store::wake_next_of_key_using(tx, key).await?;
            }
        }
        Ok(kept)
    }

    /// Keeps the lease of a long attempt alive; stops when the fence is lost.
    fn spawn_lease_renewer(&self, id: Uuid, fence: i64) -> tokio::task::JoinHandle<()> {
        let pool = self.pool().clone();
        let lease = self.settings().lease;
        tokio::spawn(async move {
            let period = (lease / 3).max(Duration::from_millis(200));
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tick.tick().await;
                let Ok(mut conn) = pool.acquire().await else { continue };
                match store::renew_lease_using(&mut conn, id, fence, lease).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(workflow.run_id = %id, error.message = %e, "lease renewal failed"),
                }
            }
        })
    }
}

/// Fails a run whose attempts keep killing their worker, and lets the next
/// run of its key go.
async fn fail_crashed_using(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    fence: i64,
    key: Option<&str>,
    failures: i32,
) -> Result<()> {
    let error = ErrorRecord {
        kind: Some("crashed".into()),
        step: None,
        message: Some(format!("the worker stopped during {failures} attempts")),
    };
    store::finish_using(tx, id, fence, RunStatus::Failed, failures, &error).await?;
    if let Some(key) = key {
        store::wake_next_of_key_using(tx, key).await?;
    }
    Ok(())
}

/// What an attempt's outcome means for its run (the unkeyed success fast path
/// aside): kept apart from the SQL so the retry rules can be tested alone.
#[derive(Debug, PartialEq)]
enum Settlement {
    /// The run ends in a terminal `status`.
    Finish { status: RunStatus, failures: i32, attempt: AttemptOutcome },
    /// The run waits in `status` (pending or sleeping) and wakes at `at`.
    Reschedule { status: RunStatus, at: DateTime<Utc>, failures: i32, attempt: AttemptOutcome },
    /// The attempt no longer owns the run: it must write nothing.
    LostLease,
}

/// `failures` counts failures before this attempt; only `Transient` and
/// `Permanent` add one (a rate limit or a timer does not burn an attempt).
fn settlement(
    outcome: &Result<(), StepError>,
    failures: i32,
    policy: &super::RetryPolicy,
    now: DateTime<Utc>,
    rng: &mut impl rand::Rng,
) -> Settlement {
    match outcome {
        Ok(()) => Settlement::Finish { status: RunStatus::Succeeded, failures, attempt: AttemptOutcome::Succeeded },
        Err(StepError::Permanent(_)) => Settlement::Finish {
            status: RunStatus::Failed,
            failures: failures + 1,
            attempt: AttemptOutcome::Failed,
        },
        Err(StepError::Transient(_)) => {
            let failures = failures + 1;
            if policy.allows_retry(failures as u32) {
                let delay = policy.backoff(failures as u32, rng);
                Settlement::Reschedule {
                    status: RunStatus::Pending,
                    at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                    failures,
                    attempt: AttemptOutcome::Retry,
                }
            } else {
                Settlement::Finish { status: RunStatus::Failed, failures, attempt: AttemptOutcome::Failed }
            }
        }
        Err(StepError::RateLimited { retry_after, .. }) => Settlement::Reschedule {
            status: RunStatus::Pending,
            // A rate limit burns no attempt, so a `retry_after` in the past
            // would loop as fast as the database answers.
            at: (*retry_after).max(now + RATE_LIMITED_MIN_DELAY),
            failures,
            attempt: AttemptOutcome::RateLimited,
        },
        Err(StepError::Interrupted(Interrupt::Sleep { until })) => Settlement::Reschedule {
            status: RunStatus::Sleeping,
            at: *until,
            failures,
            attempt: AttemptOutcome::Sleeping,
        },
        Err(StepError::Interrupted(Interrupt::LostLease)) => Settlement::LostLease,
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;
    use crate::engine::RetryPolicy;

    fn decide(outcome: Result<(), StepError>, failures: i32) -> Settlement {
        let policy = RetryPolicy { max_attempts: 3, base: Duration::from_secs(2), cap: Duration::from_secs(60), schedule: None };
        settlement(&outcome, failures, &policy, now(), &mut StdRng::seed_from_u64(7))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    #[test]
    fn success_and_permanent_errors_finish_the_run() {
        let ok = decide(Ok(()), 1);
        assert_eq!(ok, Settlement::Finish { status: RunStatus::Succeeded, failures: 1, attempt: AttemptOutcome::Succeeded });
        let permanent = decide(Err(StepError::permanent("400")), 0);
        assert_eq!(permanent, Settlement::Finish { status: RunStatus::Failed, failures: 1, attempt: AttemptOutcome::Failed });
    }

    #[test]
    fn a_transient_error_backs_off_until_the_policy_is_exhausted() {
        let Settlement::Reschedule { status, at, failures, attempt } = decide(Err(StepError::transient("503")), 1) else {
            panic!("a second failure of three allowed is retried");
        };
        assert_eq!((status, failures, attempt), (RunStatus::Pending, 2, AttemptOutcome::Retry));
        assert!(at >= now() && at <= now() + chrono::Duration::seconds(4), "within the ceiling: {at}");

        let exhausted = decide(Err(StepError::transient("503")), 2);
        assert_eq!(exhausted, Settlement::Finish { status: RunStatus::Failed, failures: 3, attempt: AttemptOutcome::Failed });
    }

    #[test]
    fn rate_limits_and_timers_wait_without_burning_an_attempt() {
        let later = now() + chrono::Duration::seconds(30);
        let limited = decide(Err(StepError::rate_limited(later, "429")), 1);
        assert_eq!(
            limited,
            Settlement::Reschedule { status: RunStatus::Pending, at: later, failures: 1, attempt: AttemptOutcome::RateLimited }
        );
        let past = decide(Err(StepError::rate_limited(now() - chrono::Duration::seconds(5), "429")), 0);
        assert!(
            matches!(past, Settlement::Reschedule { at, .. } if at == now() + RATE_LIMITED_MIN_DELAY),
            "never in the past, and never a busy loop: {past:?}"
        );
        let sleep = decide(Err(Interrupt::Sleep { until: later }.into()), 1);
        assert_eq!(
            sleep,
            Settlement::Reschedule { status: RunStatus::Sleeping, at: later, failures: 1, attempt: AttemptOutcome::Sleeping }
        );
        assert_eq!(decide(Err(Interrupt::LostLease.into()), 1), Settlement::LostLease);
    }
}
