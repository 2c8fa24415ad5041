//! The sweeper: wakes runs that are due but that no queue job will deliver.
//!
//! apalis retries a job whose handler failed up to its `max_attempts`, at once
//! (the engine slows that to one per second), then leaves it `Failed` for
//! good. A database outage longer than that strands the run: pending or
//! running, with nothing left to wake it. Every `sweep` each worker node
//! looks for active runs overdue by more than `sweep` with no deliverable
//! job, and wakes them again (a new wake-up supersedes any old job, so a
//! wrong guess costs one no-op delivery, never a second execution).

use sqlx::PgPool;

use super::{error::Result, store::rewake_using, workflow::queue_name, Engine};

/// Runs woken per pass at most; the next pass takes the rest.
const PER_PASS: i64 = 500;

/// Wakes stranded runs; returns how many.
pub(crate) async fn sweep_stranded(pool: &PgPool, overdue: std::time::Duration) -> Result<u64> {
    let mut tx = pool.begin().await?;
    // Runs waiting behind an earlier run of their key have no job on purpose:
    // that run's completion wakes them.
    let stranded: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select r.id, r.workflow from engine.runs r
          where r.status in ('pending', 'running', 'sleeping')
            and r.next_run_at < now() - make_interval(secs => $1)
            and (r.status <> 'running' or r.lease_until is null or r.lease_until < now() - make_interval(secs => $1))
            and not (r.ordering_key is not null and exists (
                select 1 from engine.runs o
                 where o.ordering_key = r.ordering_key and o.seq < r.seq
                   and o.status in ('pending', 'running', 'sleeping')))
            and not exists (
                select 1 from apalis.jobs j
                 where j.job_type = $3 || r.workflow
                   and (j.status in ('Pending', 'Queued', 'Running')
                        or (j.status = 'Failed' and j.attempts < j.max_attempts))
                   and convert_from(j.job, 'UTF8')::jsonb ->> 'run_id' = r.id::text)
          order by r.next_run_at
          limit $2
          for update of r skip locked",
    )
    .bind(overdue.as_secs_f64())
    .bind(PER_PASS)
    // Every queue is the workflow's name under one prefix.
    .bind(queue_name(""))
    .fetch_all(&mut *tx)
    .await?;
    for (id, workflow) in &stranded {
        rewake_using(&mut tx, *id, workflow, None).await?;
    }
    tx.commit().await?;
    Ok(stranded.len() as u64)
}

/// Sweeps every `settings().sweep` until aborted.
pub(crate) fn spawn(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = engine.settings().sweep;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep_stranded(engine.pool(), every).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("relevo_runs_swept_total").increment(n);
                    tracing::warn!(runs = n, "woke runs whose queue job was gone");
                }
                Err(e) => tracing::warn!(error.message = %e, "stranded-run sweep failed"),
            }
        }
    })
}
