//! SQL over `engine.runs`, `engine.run_steps`, `engine.run_attempts` and the
//! wake-up jobs in `apalis.jobs`. Functions ending in `_using` run inside the
//! caller's transaction; every write to a claimed run is guarded by its fence.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

mod bulk;
mod fast;
mod wake;

pub use self::bulk::insert_unkeyed_runs_using;
pub(crate) use self::bulk::release_node_runs_using;
pub(crate) use self::fast::{
    checkpoint_batch, claim_batch, claim_fast, succeed_batch, Checkpoint, FastClaim, Success,
};
pub use self::wake::push_wake_using;
pub(crate) use self::wake::{rewake_using, wake_next_of_key_using};
pub use super::status::RunStatus;
pub(crate) use super::status::AttemptOutcome;
use super::error::Result;

/// The only thing a queue job carries. `wake` must equal `runs.wake_seq` for the
/// job to act: every reschedule bumps it, so older jobs become no-ops.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WakeJob {
    pub run_id: Uuid,
    pub wake: i64,
}

/// A step's stored checkpoint.
#[derive(Clone, Debug)]
pub(crate) struct StoredStep {
    pub sleeping: bool,
    pub output: Value,
}

/// Takes the per-key lock that serialises claims and completions of one ordering key.
pub async fn lock_key_using(conn: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Inserts a run and its first wake-up.
pub async fn insert_run_using(
    conn: &mut PgConnection,
    id: Uuid,
    workflow: &str,
    version: i32,
    key: Option<&str>,
    input: &Value,
    trigger_event_id: Option<Uuid>,
) -> Result<()> {
    if let Some(key) = key {
        // Serialises creations of one key until commit, so `seq` order is the
        // order in which runs of the key become visible (creation order).
        lock_key_using(conn, key).await?;
    }
    sqlx::query(
        "insert into engine.runs (id, workflow, workflow_version, ordering_key, input, trigger_event_id)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(workflow)
    .bind(version)
    .bind(key)
    .bind(input)
    .bind(trigger_event_id)
    .execute(&mut *conn)
    .await?;
    push_wake_using(conn, workflow, WakeJob { run_id: id, wake: 0 }, None).await
}

/// The run as the claim sees it, row-locked.
pub(crate) struct LockedRun {
    pub workflow: String,
    pub input: Value,
    pub status: RunStatus,
    pub wake_seq: i64,
    pub fence: i64,
    pub seq: i64,
    pub failures: i32,
    pub lease_until: Option<DateTime<Utc>>,
    pub lease_held: bool,
}

pub(crate) async fn ordering_key_of(conn: &mut PgConnection, id: Uuid) -> Result<Option<Option<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("select ordering_key from engine.runs where id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.0))
}

pub(crate) async fn lock_run_using(conn: &mut PgConnection, id: Uuid) -> Result<Option<LockedRun>> {
    let row = sqlx::query(
        "select workflow, input, status, wake_seq, fence, seq, failures, lease_until,
                coalesce(lease_until > now(), false) as lease_held
         from engine.runs where id = $1 for update",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| LockedRun {
        workflow: r.get("workflow"),
        input: r.get("input"),
        status: r.get("status"),
        wake_seq: r.get("wake_seq"),
        fence: r.get("fence"),
        seq: r.get("seq"),
        failures: r.get("failures"),
        lease_until: r.get("lease_until"),
        lease_held: r.get("lease_held"),
    }))
}

/// Whether another run of `key` must go first: an older one still active, or
/// any other one running now (an ops retry can reactivate an older run while a
/// newer one is running).
pub(crate) async fn must_wait_for_key_using(
    conn: &mut PgConnection,
    key: &str,
    id: Uuid,
    seq: i64,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "select exists(select 1 from engine.runs
                        where ordering_key = $1 and id <> $2
                          and ((seq < $3 and status in ('pending', 'running', 'sleeping'))
                               or status = 'running'))",
    )
    .bind(key)
    .bind(id)
    .bind(seq)
    .fetch_one(conn)
    .await?)
}

/// Closes attempts whose worker died mid-run; returns how many there were.
pub(crate) async fn close_crashed_attempts_using(conn: &mut PgConnection, id: Uuid) -> Result<i32> {
    let done = sqlx::query(
        "update engine.run_attempts set finished_at = now(), outcome = 'crashed',
                error_kind = 'crashed', error_message = 'the worker stopped during this attempt'
         where run_id = $1 and finished_at is null",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as i32)
}

/// Claims the run for a new attempt: bumps the fence, takes the lease, opens
/// the attempt row, and returns the new fence.
pub(crate) async fn claim_using(
    conn: &mut PgConnection,
    id: Uuid,
    failures: i32,
    owner: &str,
    lease: std::time::Duration,
) -> Result<i64> {
    let fence: i64 = sqlx::query_scalar(
        "update engine.runs
            set fence = fence + 1, status = 'running', failures = $2, lease_owner = $3,
                lease_until = now() + make_interval(secs => $4), started_at = coalesce(started_at, now()),
                updated_at = now()
          where id = $1
          returning fence",
    )
    .bind(id)
    .bind(failures)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("insert into engine.run_attempts (run_id, fence, worker) values ($1, $2, $3)")
        .bind(id)
        .bind(fence)
        .bind(owner)
        .execute(conn)
        .await?;
    Ok(fence)
}

pub(crate) async fn load_steps_using(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<HashMap<String, StoredStep>> {
    let rows = sqlx::query("select step, status, output from engine.run_steps where run_id = $1")
        .bind(id)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let status: String = r.get("status");
            (
                r.get::<String, _>("step"),
                StoredStep {
                    sleeping: status == "sleeping",
                    output: r.get("output"),
                },
            )
        })
        .collect())
}

/// What went wrong, as stored on the run and the attempt.
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorRecord {
    pub kind: Option<String>,
    pub step: Option<String>,
    pub message: Option<String>,
}

/// Moves a claimed run to a terminal status. `false` if the fence was lost.
pub(crate) async fn finish_using(
    conn: &mut PgConnection,
    id: Uuid,
    fence: i64,
    status: RunStatus,
    failures: i32,
    error: &ErrorRecord,
) -> Result<bool> {
    let done = sqlx::query(
        "update engine.runs
            set status = $3, failures = $4, finished_at = now(), updated_at = now(),
                lease_owner = null, lease_until = null,
                last_error_kind = coalesce($5, last_error_kind),
                last_error_step = coalesce($6, last_error_step),
                last_error_message = coalesce($7, last_error_message)
          where id = $1 and fence = $2",
    )
    .bind(id)
    .bind(fence)
    .bind(status)
    .bind(failures)
    .bind(&error.kind)
    .bind(&error.step)
    .bind(&error.message)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends the attempt and schedules the run's next wake-up at `at`.
/// `false` if the fence was lost.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reschedule_using(
    conn: &mut PgConnection,
    id: Uuid,
    fence: i64,
    workflow: &str,
    status: RunStatus,
    at: DateTime<Utc>,
    failures: i32,
    error: &ErrorRecord,
) -> Result<bool> {
    let wake: Option<i64> = sqlx::query_scalar(
        "update engine.runs
            set status = $3, next_run_at = $4, wake_seq = wake_seq + 1, failures = $5,
                lease_owner = null, lease_until = null, updated_at = now(),
                last_error_kind = coalesce($6, last_error_kind),
                last_error_step = coalesce($7, last_error_step),
                last_error_message = coalesce($8, last_error_message)
          where id = $1 and fence = $2
          returning wake_seq",
    )
    .bind(id)
    .bind(fence)
    .bind(status)
    .bind(at)
    .bind(failures)
    .bind(&error.kind)
    .bind(&error.step)
    .bind(&error.message)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(wake) = wake else { return Ok(false) };
    push_wake_using(conn, workflow, WakeJob { run_id: id, wake }, Some(at)).await?;
    Ok(true)
}

/// Closes the attempt row of this fence.
pub(crate) async fn end_attempt_using(
    conn: &mut PgConnection,
    id: Uuid,
    fence: i64,
    outcome: AttemptOutcome,
    error: &ErrorRecord,
) -> Result<()> {
    sqlx::query(
        "update engine.run_attempts
            set finished_at = now(), outcome = $3, error_kind = $4, error_step = $5, error_message = $6
          where run_id = $1 and fence = $2",
    )
    .bind(id)
    .bind(fence)
    .bind(outcome.as_str())
    .bind(&error.kind)
    .bind(&error.step)
    .bind(&error.message)
    .execute(conn)
    .await?;
    Ok(())
}

/// Checkpoints a step under the fence in one statement; `false` if the fence
/// was lost. The run row is only share-locked (a claim's fence bump waits for
/// the commit), not rewritten: the lease renewer keeps the lease.
pub(crate) async fn checkpoint_using(
    conn: &mut PgConnection,
    id: Uuid,
    fence: i64,
    step: &str,
    sleeping: bool,
    output: &Value,
    started_at: DateTime<Utc>,
) -> Result<bool> {
    let done = sqlx::query(
        "with fenced as (select id from engine.runs where id = $1 and fence = $2 for share)
         insert into engine.run_steps (run_id, step, status, output, fence, started_at, finished_at)
         select id, $3, $4, $5, $2, $6, case when $4 = 'completed' then now() end from fenced
         on conflict (run_id, step) do update
            set status = excluded.status, output = excluded.output, fence = excluded.fence,
                finished_at = excluded.finished_at",
    )
    .bind(id)
    .bind(fence)
    .bind(step)
    .bind(if sleeping { "sleeping" } else { "completed" })
    .bind(output)
    .bind(started_at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Extends the lease of a long attempt; `false` if the fence was lost.
pub(crate) async fn renew_lease_using(
    conn: &mut PgConnection,
    id: Uuid,
    fence: i64,
    lease: std::time::Duration,
) -> Result<bool> {
    let done = sqlx::query(
        "update engine.runs set lease_until = now() + make_interval(secs => $3)
          where id = $1 and fence = $2",
    )
    .bind(id)
    .bind(fence)
    .bind(lease.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
