//! The hot path in as few statements as possible: claiming runs (one with
//! `engine.claim_run`, many with `engine.claim_runs`), checkpointing plain
//! steps and ending unkeyed successes (one or many per statement).
//! Everything rare (a held lease, a crashed attempt, keyed completions) stays
//! in the transactional code of `executor.rs`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use sqlx::{postgres::PgRow, PgPool, Row};
use uuid::Uuid;

use super::{StoredStep, WakeJob};
use crate::engine::error::Result;

/// What a claim found.
pub(crate) enum FastClaim {
    Claimed {
        workflow: String,
        key: Option<String>,
        input: Value,
        fence: i64,
        failures: i32,
        steps: HashMap<String, StoredStep>,
    },
    /// Nothing to do: superseded wake-up, finished or missing run, or blocked
    /// behind an earlier run of its key.
    Skip,
    /// Lease held elsewhere, or a crashed attempt to account for.
    SlowPath,
    /// A batch left it to `claim_fast`: keyed, or its row was busy.
    Alone,
}

#[derive(Deserialize)]
struct StepJson {
    step: String,
    sleeping: bool,
    output: Value,
}

fn decode(row: &PgRow, key: Option<String>) -> FastClaim {
    let outcome: String = row.get("outcome");
    match outcome.as_str() {
        "claimed" => {
            let steps: Vec<StepJson> =
                serde_json::from_value(row.get("steps")).expect("the claim functions return well-formed steps");
            FastClaim::Claimed {
                workflow: row.get("workflow"),
                key,
                input: row.get("input"),
                fence: row.get("fence"),
                failures: row.get("failures"),
                steps: steps
                    .into_iter()
                    .map(|s| (s.step, StoredStep { sleeping: s.sleeping, output: s.output }))
                    .collect(),
            }
        }
        "held" | "crashed" => FastClaim::SlowPath,
        "keyed" | "busy" => FastClaim::Alone,
        _ => FastClaim::Skip,
    }
}

/// Claims one run (key lock, row lock, checks, fence bump, attempt row) in one round trip.
pub(crate) async fn claim_fast(pool: &PgPool, job: WakeJob, owner: &str, lease: std::time::Duration) -> Result<FastClaim> {
    let row = sqlx::query(
        "select outcome, workflow, ordering_key, input, fence, failures, steps
           from engine.claim_run($1, $2, $3, $4)",
    )
    .bind(job.run_id)
    .bind(job.wake)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_one(pool)
    .await?;
    let key = row.get("ordering_key");
    Ok(decode(&row, key))
}

/// Claims many runs in one statement that never waits on a lock; one answer
/// per job, in order.
pub(crate) async fn claim_batch(
    pool: &PgPool,
    jobs: &[WakeJob],
    owner: &str,
    lease: std::time::Duration,
) -> Result<Vec<FastClaim>> {
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.run_id).collect();
    let wakes: Vec<i64> = jobs.iter().map(|j| j.wake).collect();
    let rows = sqlx::query(
        "select outcome, workflow, input, fence, failures, steps
           from engine.claim_runs($1, $2, $3, $4)",
    )
    .bind(&ids)
    .bind(&wakes)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    // A batched claim is only ever unkeyed.
    Ok(rows.iter().map(|row| decode(row, None)).collect())
}

/// An unkeyed run that succeeded, as the group finish writes it.
pub(crate) struct Success {
    pub id: Uuid,
    pub fence: i64,
    pub failures: i32,
    /// The queue job that woke this attempt: deleted with the finish, so it
    /// can never be delivered again and acked jobs do not pile up (apalis's
    /// ack looks jobs up by worker, so its cost grows with them).
    pub job_id: String,
}

/// Marks unkeyed runs succeeded, closes their attempts and deletes their
/// queue jobs, in one statement; one answer per run (`false`: fence lost), in order.
pub(crate) async fn succeed_batch(pool: &PgPool, runs: &[Success]) -> Result<Vec<bool>> {
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let fences: Vec<i64> = runs.iter().map(|r| r.fence).collect();
    let failures: Vec<i32> = runs.iter().map(|r| r.failures).collect();
    let jobs: Vec<&str> = runs.iter().map(|r| r.job_id.as_str()).collect();
    // Rows are locked in id order, so two batches never lock each other's
    // runs in opposite orders.
    let kept: Vec<Uuid> = sqlx::query_scalar(
        "with given as (
            select * from unnest($1::uuid[], $2::bigint[], $3::int[], $4::text[]) as t(id, fence, failures, job)),
         run as (
            update engine.runs r
               set status = 'succeeded', failures = g.failures, finished_at = now(), updated_at = now(),
                   lease_owner = null, lease_until = null
              from (select g.* from given g join engine.runs o on o.id = g.id and o.fence = g.fence
                     order by g.id for no key update of o) g
             where r.id = g.id and r.fence = g.fence
            returning r.id, r.fence),
         attempt as (
            update engine.run_attempts a set finished_at = now(), outcome = 'succeeded'
              from run where a.run_id = run.id and a.fence = run.fence),
         job as (
            delete from apalis.jobs j using run, given g where g.id = run.id and j.id = g.job)
         select id from run",
    )
    .bind(&ids)
    .bind(&fences)
    .bind(&failures)
    .bind(&jobs)
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().map(|id| kept.contains(id)).collect())
}

/// A plain step's checkpoint, as the grouped writer takes it.
pub(crate) struct Checkpoint {
    pub run_id: Uuid,
    pub fence: i64,
    pub step: String,
    pub output: Value,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Checkpoints completed plain steps of many runs in one statement, each under
/// its run's fence; one answer per checkpoint (`false`: fence lost), in order.
/// Runs are locked in id order, like grouped successes.
pub(crate) async fn checkpoint_batch(pool: &PgPool, steps: &[Checkpoint]) -> Result<Vec<bool>> {
    let ids: Vec<Uuid> = steps.iter().map(|c| c.run_id).collect();
    let fences: Vec<i64> = steps.iter().map(|c| c.fence).collect();
    let names: Vec<&str> = steps.iter().map(|c| c.step.as_str()).collect();
    let outputs: Vec<&Value> = steps.iter().map(|c| &c.output).collect();
    let started: Vec<chrono::DateTime<chrono::Utc>> = steps.iter().map(|c| c.started_at).collect();
    let kept: Vec<(Uuid, String)> = sqlx::query_as(
        "with given as (
            select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::jsonb[], $5::timestamptz[])
                       as t(run_id, fence, step, output, started_at)),
         fenced as (
            select g.* from given g join engine.runs r on r.id = g.run_id and r.fence = g.fence
             order by r.id for share of r)
         insert into engine.run_steps (run_id, step, status, output, fence, started_at, finished_at)
         select run_id, step, 'completed', output, fence, started_at, now() from fenced
         on conflict (run_id, step) do update
            set status = excluded.status, output = excluded.output, fence = excluded.fence,
                finished_at = excluded.finished_at
         returning run_id, step",
    )
    .bind(&ids)
    .bind(&fences)
    .bind(&names)
    .bind(&outputs)
    .bind(&started)
    .fetch_all(pool)
    .await?;
    Ok(steps.iter().map(|c| kept.iter().any(|(id, step)| *id == c.run_id && *step == c.step)).collect())
}
