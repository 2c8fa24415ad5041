//! Retention: prunes finished runs (their steps and attempts cascade; events
//! that started them keep their own retention) and acked queue jobs, so tables
//! stay the size of the active work. Failures are kept longer than successes,
//! for ops to inspect. Each cleanup runs even when another one failed.

use std::time::Duration;

use sqlx::PgPool;

use super::{error::Result, RunStatus};
pub use crate::config::Retention;

/// Rows one statement deletes at most, so no pass holds long locks.
const BATCH: u64 = 5000;

/// What one pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub jobs: u64,
}

/// Prunes runs and queue jobs; the first error is returned after both ran.
pub async fn prune(pool: &PgPool, retention: Retention) -> Result<Pruned> {
    let runs = prune_runs(pool, retention).await;
    let jobs = prune_jobs(pool, retention.succeeded).await;
    Ok(Pruned { runs: runs?, jobs: jobs? })
}

async fn prune_runs(pool: &PgPool, retention: Retention) -> Result<u64> {
    let mut pruned = 0;
    for (statuses, age) in [
        (&[RunStatus::Succeeded][..], retention.succeeded),
        (&[RunStatus::Failed, RunStatus::Cancelled][..], retention.failed),
    ] {
        pruned += delete_in_batches(pool, |limit| {
            sqlx::query(
                "delete from engine.runs where id in (
                    select id from engine.runs
                     where finished_at < now() - make_interval(secs => $1)
                       and status = any($2)
                     limit $3)",
            )
            .bind(age.as_secs_f64())
            .bind(statuses)
            .bind(limit)
        })
        .await?;
    }
    Ok(pruned)
}

async fn prune_jobs(pool: &PgPool, age: Duration) -> Result<u64> {
    delete_in_batches(pool, |limit| {
        sqlx::query(
            "delete from apalis.jobs where id in (
                select id from apalis.jobs
                 where status in ('Done', 'Killed') and done_at < now() - make_interval(secs => $1)
                 limit $2)",
        )
        .bind(age.as_secs_f64())
        .bind(limit)
    })
    .await
}

/// Runs a `delete … limit $n` until it deletes fewer than a batch.
pub async fn delete_in_batches<'q>(
    pool: &PgPool,
    statement: impl Fn(i64) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let done = statement(BATCH as i64).execute(pool).await?.rows_affected();
        deleted += done;
        if done < BATCH {
            return Ok(deleted);
        }
    }
}
