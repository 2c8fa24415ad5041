//! `/api/v1/runs` and `/api/v1/stats`: operate workflow runs.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Enum, Object, OpenApi,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{self, Limit, Page, PageItem},
    ApiTags, AppState,
};
use crate::engine::{
    self,
    ops::{self, RunFilter},
    store::RunStatus,
};

// ---- DTOs ----

// `engine.run_status` as the API shows it (schema `RunStatus`). A plain
// comment: a doc comment would become the schema's description.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename = "RunStatus", rename_all = "snake_case")]
pub enum RunStatusDto {
    Pending,
    Running,
    Sleeping,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<RunStatusDto> for RunStatus {
    fn from(s: RunStatusDto) -> Self {
        match s {
            RunStatusDto::Pending => Self::Pending,
            RunStatusDto::Running => Self::Running,
            RunStatusDto::Sleeping => Self::Sleeping,
            RunStatusDto::Succeeded => Self::Succeeded,
            RunStatusDto::Failed => Self::Failed,
            RunStatusDto::Cancelled => Self::Cancelled,
        }
    }
}

/// The last error of a run: what kind, in which step, and what it said.
#[derive(Object, Debug)]
pub struct RunErrorOut {
    /// transient, rate_limited, permanent, crashed, cancelled
    pub kind: String,
    pub step: Option<String>,
    pub message: Option<String>,
}

#[derive(Object, Debug)]
pub struct RunOut {
    pub id: Uuid,
    pub workflow: String,
    pub workflow_version: i32,
    pub key: Option<String>,
    pub status: String,
    /// Executions so far (each claim of the run is one attempt).
    pub attempts: i64,
    /// Failures counted against the retry policy since the last (re)start.
    pub failures: i32,
    /// When the run is due to execute next (for pending and sleeping runs).
    pub next_run_at: DateTime<Utc>,
    pub last_error: Option<RunErrorOut>,
    /// The inbound event that started the run, if any.
    pub trigger_event_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<ops::RunRow> for RunOut {
    fn from(r: ops::RunRow) -> Self {
        Self {
            id: r.id,
            workflow: r.workflow,
            workflow_version: r.workflow_version,
            key: r.ordering_key,
            status: r.status.as_str().to_owned(),
            attempts: r.attempts,
            failures: r.failures,
            next_run_at: r.next_run_at,
            last_error: r.last_error_kind.map(|kind| RunErrorOut {
                kind,
                step: r.last_error_step,
                message: r.last_error_message,
            }),
            trigger_event_id: r.trigger_event_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct StepOut {
    pub name: String,
    /// completed, or sleeping (a durable timer not yet fired)
    pub status: String,
    pub output: Value,
    /// The attempt that wrote this checkpoint.
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Object, Debug)]
pub struct AttemptOut {
    /// 1, 2, 3…: this attempt's place among the run's attempts (what people count).
    pub number: i64,
    /// The run's fence when this attempt claimed it (ops retries and cancels move it too, so it can skip).
    pub attempt: i64,
    pub worker: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// null while executing; then succeeded, retry, rate_limited, sleeping,
    /// failed, lost_lease or crashed
    pub outcome: Option<String>,
    pub error: Option<RunErrorOut>,
}

#[derive(Object, Debug)]
pub struct RunDetailOut {
    #[oai(flatten)]
    pub run: RunOut,
    pub input: Value,
    pub steps: Vec<StepOut>,
    pub attempts: Vec<AttemptOut>,
}

impl PageItem for RunOut {
    const PAGE_NAME: &'static str = "RunPage";
    const CURSOR_DOC: Option<&'static str> = Some(page::NEXT_CURSOR_DOC);
}

#[derive(Object, Debug)]
pub struct StartRunIn {
    /// A registered workflow name.
    pub workflow: String,
    /// The workflow's input.
    pub input: Value,
}

#[derive(Object, Debug, Default)]
pub struct RetryRunIn {
    /// Run at this time instead of now.
    pub at: Option<DateTime<Utc>>,
    /// Clear this step's checkpoint and every later one, and rerun from there.
    pub from_step: Option<String>,
}

#[derive(Object, Debug, Default)]
pub struct BulkRetryIn {
    /// `failed` (default) or `cancelled`.
    pub status: Option<RunStatusDto>,
    pub workflow: Option<String>,
    pub key: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// Run at this time instead of now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Object, Debug)]
pub struct BulkRetryOut {
    pub retried: u64,
}

#[derive(Object, Debug)]
pub struct WorkflowStatsOut {
    pub workflow: String,
    pub pending: i64,
    pub running: i64,
    pub sleeping: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Pending or sleeping runs whose time has come but that no worker has taken yet.
    pub due_waiting: i64,
    /// Age in seconds of the oldest due-but-waiting run (0 when none).
    pub oldest_waiting_seconds: f64,
    /// succeeded / (succeeded + failed) over runs finished in the last hour; null if none.
    pub success_rate_last_hour: Option<f64>,
}

#[derive(Object, Debug)]
pub struct StatsOut {
    pub workflows: Vec<WorkflowStatsOut>,
}

#[derive(ApiResponse)]
pub enum StartRunResponse {
    /// The run was created and queued.
    #[oai(status = 201)]
    Created(Json<RunOut>),
}

// ---- handlers ----

#[derive(Default)]
pub struct RunsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Runs")]
impl RunsApi {
    /// List runs, newest first, filtered by status, workflow, key and creation time.
    #[oai(path = "/runs", method = "get", operation_id = "v1.runs.list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        status: Query<Option<RunStatusDto>>,
        workflow: Query<Option<String>>,
        key: Query<Option<String>>,
        /// Only runs created at or after this time.
        created_after: Query<Option<DateTime<Utc>>>,
        /// Only runs created before this time.
        created_before: Query<Option<DateTime<Utc>>>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<RunOut>>, ApiError> {
        let cursor = page::parse_cursor(cursor.0.as_deref())?;
        let filter = RunFilter {
            status: status.0.map(Into::into),
            workflow: workflow.0,
            key: key.0,
            created_after: created_after.0,
            created_before: created_before.0,
        };
        let (rows, next) = ops::list(&state.pool, &filter, limit.get(), cursor).await.map_err(ops_error)?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Start a run of a registered workflow with the given input.
    #[oai(path = "/runs", method = "post", operation_id = "v1.runs.start")]
    async fn start(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        body: Json<StartRunIn>,
    ) -> Result<StartRunResponse, ApiError> {
        let mut tx = state.pool.begin().await?;
        let id = match state.engine.start_by_name_using(&mut tx, &body.workflow, &body.input, None).await {
            Ok(id) => id,
            Err(engine::Error::UnknownWorkflow(w)) => {
                return Err(ApiError::unprocessable("unknown_workflow", format!("no workflow named {w:?} is registered")))
            }
            Err(engine::Error::BadInput { reason, .. }) => {
                return Err(ApiError::unprocessable("invalid_input", reason))
            }
            Err(e) => return Err(e.into()),
        };
        tx.commit().await?;
        let detail = ops::show(&state.pool, id).await.map_err(ops_error)?;
        Ok(StartRunResponse::Created(Json(detail.run.into())))
    }

    /// Show a run with its input, checkpointed steps, attempts and last error.
    #[oai(path = "/runs/:id", method = "get", operation_id = "v1.runs.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<RunDetailOut>, ApiError> {
        Ok(Json(detail_out(ops::show(&state.pool, id.0).await.map_err(ops_error)?)))
    }

    /// Retry a run now or at `at`. Completed steps stay completed unless
    /// `from_step` names one: that checkpoint and all later ones are cleared and
    /// the run re-executes from there (this also reruns a succeeded run).
    #[oai(path = "/runs/:id/retry", method = "post", operation_id = "v1.runs.retry")]
    async fn retry(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<Option<RetryRunIn>>,
    ) -> Result<Json<RunDetailOut>, ApiError> {
        let body = body.0.unwrap_or_default();
        ops::retry(&state.pool, id.0, body.at, body.from_step.as_deref())
            .await
            .map_err(ops_error)?;
        Ok(Json(detail_out(ops::show(&state.pool, id.0).await.map_err(ops_error)?)))
    }

    /// Cancel a run that has not finished. An attempt executing right now cannot
    /// checkpoint anything more.
    #[oai(path = "/runs/:id/cancel", method = "post", operation_id = "v1.runs.cancel")]
    async fn cancel(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<RunDetailOut>, ApiError> {
        ops::cancel(&state.pool, id.0).await.map_err(ops_error)?;
        Ok(Json(detail_out(ops::show(&state.pool, id.0).await.map_err(ops_error)?)))
    }

    /// Retry every run matching the filter (failed runs unless `status` says
    /// `cancelled`), now or at `at`.
    #[oai(path = "/runs/retry", method = "post", operation_id = "v1.runs.retry_matching")]
    async fn retry_matching(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        body: Json<BulkRetryIn>,
    ) -> Result<Json<BulkRetryOut>, ApiError> {
        let filter = RunFilter {
            status: body.status.map(Into::into),
            workflow: body.workflow.clone(),
            key: body.key.clone(),
            created_after: body.created_after,
            created_before: body.created_before,
        };
        let retried = ops::retry_matching(&state.pool, &filter, body.at).await.map_err(ops_error)?;
        Ok(Json(BulkRetryOut { retried }))
    }

    /// Per workflow: runs by status, due-but-waiting runs, the oldest wait, and
    /// the success rate over the last hour (also exported as Prometheus gauges).
    #[oai(path = "/stats", method = "get", operation_id = "v1.stats.show")]
    async fn stats(&self, _auth: AdminAuth, state: Data<&AppState>) -> Result<Json<StatsOut>, ApiError> {
        let rows = ops::stats(&state.pool).await.map_err(ops_error)?;
        Ok(Json(StatsOut {
            workflows: rows.into_iter().map(stats_out).collect(),
        }))
    }
}

pub(crate) fn stats_out(s: ops::WorkflowStats) -> WorkflowStatsOut {
    WorkflowStatsOut {
        success_rate_last_hour: s.success_rate_last_hour(),
        workflow: s.workflow,
        pending: s.pending,
        running: s.running,
        sleeping: s.sleeping,
        succeeded: s.succeeded,
        failed: s.failed,
        cancelled: s.cancelled,
        due_waiting: s.due_waiting,
        oldest_waiting_seconds: s.oldest_waiting_secs,
    }
}

fn detail_out(d: ops::RunDetail) -> RunDetailOut {
    RunDetailOut {
        run: d.run.into(),
        input: d.input,
        steps: d
            .steps
            .into_iter()
            .map(|s| StepOut {
                name: s.step,
                status: s.status,
                output: s.output,
                attempt: s.attempt,
                started_at: s.started_at,
                finished_at: s.finished_at,
            })
            .collect(),
        attempts: d
            .attempts
            .into_iter()
            .enumerate()
            .map(|(i, a)| AttemptOut {
                number: i as i64 + 1,
                attempt: a.attempt,
                worker: a.worker,
                started_at: a.started_at,
                finished_at: a.finished_at,
                outcome: a.outcome,
                error: a.error_kind.map(|kind| RunErrorOut {
                    kind,
                    step: a.error_step,
                    message: a.error_message,
                }),
            })
            .collect(),
    }
}

pub(super) fn ops_error(e: ops::Error) -> ApiError {
    match e {
        ops::Error::NotFound => ApiError::not_found("run"),
        ops::Error::Conflict(m) => ApiError::conflict(m),
        ops::Error::NotBulkRetryable(_) => {
            ApiError::unprocessable("invalid_status", "bulk retry applies to failed or cancelled runs")
        }
        ops::Error::UnknownStep(s) => {
            ApiError::unprocessable("unknown_step", format!("the run has no completed step named {s:?}"))
        }
        ops::Error::Engine(e) => e.into(),
    }
}
