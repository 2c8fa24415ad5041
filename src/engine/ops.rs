//! Operations over runs: list, show, retry (now, at a time, or from a step),
//! cancel, bulk retry, and the per-workflow stats. apalis 1.0 implements none of
//! these writes, so they are the engine's own SQL; each new wake-up is a fresh
//! queue job whose insert trigger notifies the workers.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use super::store::{self, RunStatus};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("run has no completed step named {0:?}")]
    UnknownStep(String),
    #[error("bulk retry applies to failed or cancelled runs, not {0}")]
    NotBulkRetryable(RunStatus),
    #[error(transparent)]
    Engine(#[from] super::Error),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Engine(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Filter shared by list and bulk retry.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow: Option<String>,
    pub key: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub workflow: String,
    pub workflow_version: i32,
    pub ordering_key: Option<String>,
    pub status: RunStatus,
    pub failures: i32,
    pub attempts: i64,
    pub next_run_at: DateTime<Utc>,
    pub last_error_kind: Option<String>,
    pub last_error_step: Option<String>,
    pub last_error_message: Option<String>,
    pub trigger_event_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StepRow {
    pub step: String,
    pub status: String,
    pub output: Value,
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub attempt: i64,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error_kind: Option<String>,
    pub error_step: Option<String>,
    pub error_message: Option<String>,
}

/// A run with its steps and attempts.
#[derive(Clone, Debug)]
pub struct RunDetail {
    pub run: RunRow,
    pub input: Value,
    pub steps: Vec<StepRow>,
    pub attempts: Vec<AttemptRow>,
}

// `attempts` counts executions (attempt rows): the fence also moves when ops
// retry or cancel a run, so it would show people gaps (attempts 1 and 3).
const RUN_COLUMNS: &str = "id, workflow, workflow_version, ordering_key, status, failures,
    (select count(*) from engine.run_attempts a where a.run_id = runs.id) as attempts, next_run_at, last_error_kind, last_error_step, last_error_message,
    trigger_event_id, created_at, updated_at, started_at, finished_at";

fn push_filter(q: &mut QueryBuilder<sqlx::Postgres>, f: &RunFilter) {
    q.push(" where true");
    if let Some(s) = f.status {
        q.push(" and status = ").push_bind(s);
    }
    if let Some(w) = &f.workflow {
        q.push(" and workflow = ").push_bind(w);
    }
    if let Some(k) = &f.key {
        q.push(" and ordering_key = ").push_bind(k);
    }
    if let Some(t) = f.created_after {
        q.push(" and created_at >= ").push_bind(t);
    }
    if let Some(t) = f.created_before {
        q.push(" and created_at < ").push_bind(t);
    }
}

/// Newest first; `cursor` is the last id of the previous page (ids are UUIDv7,
/// so id order is creation order).
pub async fn list(
    pool: &PgPool,
    filter: &RunFilter,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<(Vec<RunRow>, Option<Uuid>)> {
    let mut q = QueryBuilder::new(format!("select {RUN_COLUMNS} from engine.runs"));
    push_filter(&mut q, filter);
    if let Some(c) = cursor {
        q.push(" and id < ").push_bind(c);
    }
    q.push(" order by id desc limit ").push_bind(i64::from(limit) + 1);
    let rows: Vec<RunRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::db::page::split(rows, limit, |r| r.id))
}

pub async fn show(pool: &PgPool, id: Uuid) -> Result<RunDetail> {
    let sql = format!("select {RUN_COLUMNS} from engine.runs where id = $1");
    let run: RunRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound)?;
    let input: Value = sqlx::query_scalar("select input from engine.runs where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    let steps = sqlx::query_as(
        "select step, status, output, fence as attempt, started_at, finished_at
           from engine.run_steps where run_id = $1 order by started_at, step",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let attempts = sqlx::query_as(
        "select fence as attempt, worker, started_at, finished_at, outcome, error_kind, error_step, error_message
           from engine.run_attempts where run_id = $1 order by fence",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(RunDetail {
        run,
        input,
        steps,
        attempts,
    })
}

/// Retries a run now or at `at`. Completed steps stay completed, unless
/// `from_step` is given: that step's checkpoint and every later one are cleared,
/// so the run re-executes from there (this also reruns a succeeded run).
pub async fn retry(pool: &PgPool, id: Uuid, at: Option<DateTime<Utc>>, from_step: Option<&str>) -> Result<()> {
    let mut tx = pool.begin().await?;
    let (workflow, status) = lock_for_ops(&mut tx, id).await?;
    match (status, from_step) {
        (RunStatus::Running, _) => {
            return Err(Error::Conflict(
                "the run is executing now; cancel it or wait for the attempt to end".into(),
            ))
        }
        (RunStatus::Succeeded, None) => {
            return Err(Error::Conflict(
                "the run succeeded; give from_step to rerun it from a step".into(),
            ))
        }
        _ => {}
    }
    if let Some(step) = from_step {
        clear_steps_from_using(&mut tx, id, step).await?;
    }
    reactivate_using(&mut tx, id).await?;
    store::rewake_using(&mut tx, id, &workflow, at).await?;
    tx.commit().await?;
    Ok(())
}

/// Cancels a run that has not finished. An attempt executing right now is
/// fenced out: its next checkpoint is refused.
pub async fn cancel(pool: &PgPool, id: Uuid) -> Result<()> {
    let mut tx = pool.begin().await?;
    let key = store::ordering_key_of(&mut tx, id).await?.ok_or(Error::NotFound)?;
    if let Some(key) = &key {
        store::lock_key_using(&mut tx, key).await?;
    }
    let (_, status) = lock_for_ops(&mut tx, id).await?;
    if !status.is_active() {
        return Err(Error::Conflict(format!("the run is already {status}")));
    }
    sqlx::query(
        "update engine.runs
            set status = 'cancelled', fence = fence + 1, wake_seq = wake_seq + 1, finished_at = now(),
                updated_at = now(), lease_owner = null, lease_until = null,
                last_error_kind = 'cancelled', last_error_step = null,
                last_error_message = 'cancelled by an operator'
          where id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if let Some(key) = &key {
        store::wake_next_of_key_using(&mut tx, key).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Retries every run matching `filter` (status `failed` unless the filter says
/// `cancelled`), now or at `at`. Returns how many were retried.
pub async fn retry_matching(pool: &PgPool, filter: &RunFilter, at: Option<DateTime<Utc>>) -> Result<u64> {
    let filter = RunFilter {
        status: Some(bulk_retry_status(filter.status)?),
        ..filter.clone()
    };
    let mut tx = pool.begin().await?;
    let mut q = QueryBuilder::new("select id, workflow from engine.runs");
    push_filter(&mut q, &filter);
    q.push(" order by seq for update");
    let runs: Vec<(Uuid, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
    for (id, workflow) in &runs {
        reactivate_using(&mut tx, *id).await?;
        store::rewake_using(&mut tx, *id, workflow, at).await?;
    }
    tx.commit().await?;
    Ok(runs.len() as u64)
}

/// The status bulk retry selects: `failed` unless the caller asks for
/// `cancelled`; retrying active or succeeded runs in bulk is refused.
pub fn bulk_retry_status(requested: Option<RunStatus>) -> Result<RunStatus> {
    match requested {
        None => Ok(RunStatus::Failed),
        Some(status @ (RunStatus::Failed | RunStatus::Cancelled)) => Ok(status),
        Some(other) => Err(Error::NotBulkRetryable(other)),
    }
}

async fn lock_for_ops(conn: &mut PgConnection, id: Uuid) -> Result<(String, RunStatus)> {
    sqlx::query_as("select workflow, status from engine.runs where id = $1 for update")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(Error::NotFound)
}

async fn clear_steps_from_using(conn: &mut PgConnection, id: Uuid, step: &str) -> Result<()> {
    let deleted = sqlx::query(
        "delete from engine.run_steps
          where run_id = $1
            and started_at >= (select started_at from engine.run_steps where run_id = $1 and step = $2)",
    )
    .bind(id)
    .bind(step)
    .execute(conn)
    .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::UnknownStep(step.into()));
    }
    Ok(())
}

async fn reactivate_using(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    sqlx::query(
        "update engine.runs
            set status = 'pending', failures = 0, fence = fence + 1, finished_at = null,
                lease_owner = null, lease_until = null, updated_at = now()
          where id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Per-workflow figures for `GET /api/v1/stats` and the Prometheus gauges.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkflowStats {
    pub workflow: String,
    pub pending: i64,
    pub running: i64,
    pub sleeping: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Pending or sleeping runs whose wake-up time has passed.
    pub due_waiting: i64,
    /// Seconds since the oldest due-but-waiting run became due (0 if none).
    pub oldest_waiting_secs: f64,
    pub succeeded_last_hour: i64,
    pub failed_last_hour: i64,
}

impl WorkflowStats {
    /// Succeeded / (succeeded + failed) over runs finished in the last hour;
    /// `None` when none finished.
    pub fn success_rate_last_hour(&self) -> Option<f64> {
        let total = self.succeeded_last_hour + self.failed_last_hour;
        (total > 0).then(|| self.succeeded_last_hour as f64 / total as f64)
    }
}

/// `stats` under a statement timeout: for callers that must not let a slow
/// scan pile up (metrics scrapes).
pub async fn stats_within(pool: &PgPool, timeout: std::time::Duration) -> Result<Vec<WorkflowStats>> {
    let mut tx = pool.begin().await.map_err(super::Error::from)?;
    sqlx::query(sqlx::AssertSqlSafe(format!("set local statement_timeout = {}", timeout.as_millis())))
        .execute(&mut *tx)
        .await
        .map_err(super::Error::from)?;
    stats(&mut *tx).await
}

pub async fn stats(conn: impl sqlx::PgExecutor<'_>) -> Result<Vec<WorkflowStats>> {
    Ok(sqlx::query_as(
        "select workflow,
                count(*) filter (where status = 'pending') as pending,
                count(*) filter (where status = 'running') as running,
                count(*) filter (where status = 'sleeping') as sleeping,
                count(*) filter (where status = 'succeeded') as succeeded,
                count(*) filter (where status = 'failed') as failed,
                count(*) filter (where status = 'cancelled') as cancelled,
                count(*) filter (where status in ('pending', 'sleeping') and next_run_at <= now()) as due_waiting,
                coalesce(extract(epoch from now() - min(next_run_at)
                    filter (where status in ('pending', 'sleeping') and next_run_at <= now())), 0)::float8
                    as oldest_waiting_secs,
                count(*) filter (where status = 'succeeded' and finished_at > now() - interval '1 hour')
                    as succeeded_last_hour,
                count(*) filter (where status = 'failed' and finished_at > now() - interval '1 hour')
                    as failed_last_hour
           from engine.runs group by workflow order by workflow",
    )
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_retry_takes_failed_runs_unless_cancelled_ones_are_asked_for() {
        assert_eq!(bulk_retry_status(None).unwrap(), RunStatus::Failed);
        assert_eq!(bulk_retry_status(Some(RunStatus::Cancelled)).unwrap(), RunStatus::Cancelled);
        for status in RunStatus::ALL.into_iter().filter(|s| !matches!(s, RunStatus::Failed | RunStatus::Cancelled)) {
            assert!(matches!(bulk_retry_status(Some(status)), Err(Error::NotBulkRetryable(s)) if s == status));
        }
    }
}
