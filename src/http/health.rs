//! `/healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use poem::web::Data;
use poem_openapi::{
    payload::{Json, PlainText},
    ApiResponse, Object, OpenApi,
};

use super::{
    error::{body, ErrorBody},
    ApiTags, AppState,
};
use crate::engine::ops;

#[derive(Object)]
pub struct HealthOut {
    pub status: String,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers.
    #[oai(status = 200)]
    Ready(Json<HealthOut>),
    /// The database does not answer.
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

#[derive(Default)]
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "health.live")]
    async fn healthz(&self) -> Json<HealthOut> {
        Json(HealthOut { status: "ok".into() })
    }

    /// The process can reach its database.
    #[oai(path = "/readyz", method = "get", operation_id = "health.ready")]
    async fn readyz(&self, state: Data<&AppState>) -> ReadyResponse {
        let ping = tokio::time::timeout(Duration::from_secs(2), crate::db::ping(&state.pool)).await;
        match ping {
            Ok(Ok(_)) => ReadyResponse::Ready(Json(HealthOut { status: "ok".into() })),
            _ => ReadyResponse::NotReady(body("database_unavailable", "the database is unreachable")),
        }
    }

    /// Prometheus metrics (text exposition format).
    #[oai(path = "/metrics", method = "get", operation_id = "metrics.scrape")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        state.run_gauges.refresh_if_stale().await;
        PlainText(crate::telemetry::metrics().render())
    }
}

/// Run gauges are refreshed at most this often, however often Prometheus scrapes.
const RUN_GAUGES_EVERY: Duration = Duration::from_secs(15);
/// The grouping query over `engine.runs` gets this long, then Postgres stops it.
const STATS_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// A scrape waits this long for a refresh, then answers with the previous figures.
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

/// The `relevo_runs*` gauges: one bounded query per `RUN_GAUGES_EVERY`,
/// shared by concurrent scrapes, in a task of its own so a scrape that is
/// dropped never leaves it half done.
pub struct RunGauges {
    pool: sqlx::PgPool,
    refreshed_at: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl RunGauges {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool, refreshed_at: Default::default() }
    }

    async fn refresh_if_stale(&self) {
        let mut refreshed_at = self.refreshed_at.lock().await;
        if refreshed_at.is_some_and(|at| at.elapsed() < RUN_GAUGES_EVERY) {
            return;
        }
        *refreshed_at = Some(std::time::Instant::now());
        let pool = self.pool.clone();
        let refresh = tokio::spawn(async move {
            let stats = ops::stats_within(&pool, STATS_STATEMENT_TIMEOUT).await?;
            stats.iter().for_each(record_workflow_stats);
            Ok::<_, ops::Error>(())
        });
        match tokio::time::timeout(SCRAPE_WAIT, refresh).await {
            Ok(Ok(Err(e))) => tracing::debug!(error.message = %e, "run gauges not refreshed"),
            Err(_) => tracing::debug!("run gauges still refreshing; answering with the previous figures"),
            _ => {}
        }
    }
}

/// Publishes the `/api/v1/stats` figures as gauges.
fn record_workflow_stats(s: &crate::engine::ops::WorkflowStats) {
    let wf = s.workflow.clone();
    for (status, n) in [
        ("pending", s.pending),
        ("running", s.running),
        ("sleeping", s.sleeping),
        ("succeeded", s.succeeded),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ] {
        metrics::gauge!("relevo_runs", "workflow" => wf.clone(), "status" => status).set(n as f64);
    }
    metrics::gauge!("relevo_runs_due_waiting", "workflow" => wf.clone()).set(s.due_waiting as f64);
    metrics::gauge!("relevo_runs_oldest_waiting_seconds", "workflow" => wf.clone()).set(s.oldest_waiting_secs);
    if let Some(rate) = s.success_rate_last_hour() {
        metrics::gauge!("relevo_runs_success_rate_last_hour", "workflow" => wf).set(rate);
    }
}
