//! Retention: prunes finished runs (their steps and attempts cascade) and acked
//! queue jobs, so tables stay the size of the active work. Failures are kept
//! longer than successes, for ops to inspect.

use std::time::Duration;

use sqlx::PgPool;

use super::error::Result;
pub use crate::config::Retention;

/// What one pass removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub jobs: u64,
}

/// Deletes in batches of 5,000 so no pass holds long locks.
pub async fn prune(pool: &PgPool, retention: Retention) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    for (statuses, age) in [
        (&["succeeded"][..], retention.succeeded),
        (&["failed", "cancelled"][..], retention.failed),
    ] {
        loop {
            let done = sqlx::query(
                "delete from engine.runs where id in (
                    select id from engine.runs
                     where finished_at < now() - make_interval(secs => $1)
                       and status::text = any($2)
                     limit 5000)",
            )
            .bind(age.as_secs_f64())
            .bind(statuses)
            .execute(pool)
            .await?;
            pruned.runs += done.rows_affected();
            if done.rows_affected() < 5000 {
                break;
            }
        }
    }
    loop {
        let done = sqlx::query(
            "delete from apalis.jobs where id in (
                select id from apalis.jobs
                 where status in ('Done', 'Killed') and done_at < now() - make_interval(secs => $1)
                 limit 5000)",
        )
        .bind(retention.succeeded.as_secs_f64())
        .execute(pool)
        .await?;
        pruned.jobs += done.rows_affected();
        if done.rows_affected() < 5000 {
            break;
        }
    }
    Ok(pruned)
}

/// Prunes every `every` until the returned handle is aborted.
pub fn spawn(pool: PgPool, retention: Retention, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), every);
        loop {
            tick.tick().await;
            match prune(&pool, retention).await {
                Ok(p) if p != Pruned::default() => tracing::info!(runs = p.runs, jobs = p.jobs, "pruned old runs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error.message = %e, "retention pass failed"),
            }
        }
    })
}
