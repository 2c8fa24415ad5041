//! Wake-ups: the apalis jobs that carry only `{run_id, wake}`. A run's
//! `wake_seq` is bumped with each one, so a superseded job is a no-op.

use apalis::prelude::TaskBuilder;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::WakeJob;
use crate::engine::{error::Result, workflow::queue_name};

/// apalis re-fetches a job that failed up to this many times (the engine's
/// own retry policy decides about runs; see `sweep` for jobs that gave up).
pub(crate) const MAX_ATTEMPTS: usize = 25;

/// Enqueues a wake-up for `run_id` at `at` (now if `None`) in the caller's
/// transaction, so the job exists exactly when the change that needs it commits.
pub async fn push_wake_using(
    conn: &mut PgConnection,
    workflow: &str,
    job: WakeJob,
    at: Option<DateTime<Utc>>,
) -> Result<()> {
    let bytes = serde_json::to_vec(&job).expect("WakeJob serialises");
    let queue = queue_name(workflow);
    match at {
        None => {
            let task = TaskBuilder::new(bytes).max_attempts(MAX_ATTEMPTS).build();
            apalis_postgres::queries::push_tasks(conn, &queue, vec![task]).await?;
        }
        // apalis's push takes `run_at` in whole seconds; timers and backoffs
        // need it to the microsecond, so the engine writes the row itself (the
        // same columns and defaults as apalis-postgres's `sink.sql`).
        Some(at) => {
            sqlx::query(
                "insert into apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata)
                 values (apalis.generate_ulid(), $1, $2, 'Pending', 0, $3, $4, 0, ''::hstore)",
            )
            .bind(&queue)
            .bind(&bytes)
            .bind(MAX_ATTEMPTS as i32)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// A new wake-up for a run nobody is executing (lease held elsewhere, ops retry).
pub(crate) async fn rewake_using(
    conn: &mut PgConnection,
    id: Uuid,
    workflow: &str,
    at: Option<DateTime<Utc>>,
) -> Result<()> {
    let wake: i64 = sqlx::query_scalar(
        "update engine.runs set wake_seq = wake_seq + 1, next_run_at = coalesce($2, now()), updated_at = now()
          where id = $1 returning wake_seq",
    )
    .bind(id)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?;
    push_wake_using(conn, workflow, WakeJob { run_id: id, wake }, at).await
}

/// After a keyed run stops being active, wakes the oldest pending run of the key.
/// Callers hold the key lock (`lock_key_using`).
pub(crate) async fn wake_next_of_key_using(conn: &mut PgConnection, key: &str) -> Result<()> {
    let next: Option<(Uuid, String)> = sqlx::query_as(
        "select id, workflow from engine.runs
          where ordering_key = $1 and status = 'pending'
          order by seq limit 1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((id, workflow)) = next {
        rewake_using(conn, id, &workflow, None).await?;
    }
    Ok(())
}
