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
        let ping = tokio::time::timeout(Duration::from_secs(2), sqlx::query("select 1").execute(&state.pool)).await;
        match ping {
            Ok(Ok(_)) => ReadyResponse::Ready(Json(HealthOut { status: "ok".into() })),
            _ => ReadyResponse::NotReady(body("database_unavailable", "the database is unreachable")),
        }
    }

    /// Prometheus metrics (text exposition format).
    #[oai(path = "/metrics", method = "get", operation_id = "metrics.scrape")]
    async fn metrics(&self, state: Data<&AppState>) -> PlainText<String> {
        let handle = crate::telemetry::metrics();
        if let Ok(Ok(stats)) = tokio::time::timeout(Duration::from_secs(2), ops::stats(&state.pool)).await {
            for s in stats {
                record_workflow_stats(&s);
            }
        }
        PlainText(handle.render())
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
