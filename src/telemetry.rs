//! Logging (tracing) and metrics (Prometheus).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the tracing subscriber: `RUST_LOG` filter (default `info`), JSON
/// lines when `RELEVO_LOG_FORMAT=json`. Logs go to stderr.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn,apalis_postgres=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if std::env::var("RELEVO_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// Every metric Relevo exports, described at start-up, and its counters set to
/// 0 for their known label sets: dashboards and alerts see 0, not "absent".
pub fn describe_metrics(workflows: &[&'static str], providers: &[&'static str]) {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    metrics();
    describe_counter!("relevo_webhooks_received_total", "Webhooks received, by provider and outcome (accepted, duplicate, rejected, unavailable).");
    describe_histogram!("relevo_ingest_seconds", Unit::Seconds, "Time from a webhook's arrival to its answer, by provider.");
    describe_counter!("relevo_run_attempts_total", "Run attempts, by workflow and outcome.");
    describe_counter!("relevo_runs_swept_total", "Runs woken by the sweeper because their queue job was gone.");
    describe_histogram!("relevo_run_attempt_seconds", Unit::Seconds, "Duration of run attempts, by workflow.");
    describe_gauge!("relevo_runs", "Runs by workflow and status (refreshed by scrapes, at most every 15 s).");
    describe_gauge!("relevo_runs_due_waiting", "Runs due but not started, by workflow.");
    describe_gauge!("relevo_runs_oldest_waiting_seconds", Unit::Seconds, "Age of the oldest due run, by workflow.");
    describe_gauge!("relevo_runs_success_rate_last_hour", "Share of runs finished in the last hour that succeeded, by workflow.");
    describe_counter!("relevo_webhook_deliveries_total", "Outbound deliveries finished, by status (delivered, failed).");
    describe_histogram!("relevo_webhook_delivery_duration_seconds", Unit::Seconds, "Duration of outbound delivery requests.");
    describe_counter!("relevo_webhook_delivery_http_status_total", "Subscriber answers, by HTTP status code.");
    describe_counter!("relevo_webhook_retries_total", "Outbound deliveries rescheduled after a failed attempt.");
    describe_counter!("relevo_highlevel_requests_total", "HighLevel API calls, by operation and status (ok or the error kind).");
    describe_histogram!("relevo_highlevel_request_duration_seconds", Unit::Seconds, "Duration of HighLevel API calls, by operation.");
    describe_gauge!("relevo_highlevel_rate_limit_remaining", "HighLevel's X-RateLimit-Remaining as last seen, by location.");
    describe_counter!("relevo_highlevel_token_refreshes_total", "HighLevel token refreshes, by outcome (rotated, rejected, failed).");
    for outcome in ["rotated", "rejected", "failed"] {
        metrics::counter!("relevo_highlevel_token_refreshes_total", "outcome" => outcome).increment(0);
    }
    // Exported from the start (at zero), so dashboards and alerts find every series.
    metrics::counter!("relevo_whatsapp_messages_received_total").increment(0);
    metrics::counter!("relevo_whatsapp_replies_sent_total").increment(0);
    metrics::counter!("relevo_whatsapp_replies_failed_total", "code" => "none").increment(0);
    let _ = metrics::histogram!("relevo_webhook_delivery_duration_seconds");
    for provider in providers {
        let _ = metrics::histogram!("relevo_ingest_seconds", "provider" => *provider);
    }
    for provider in providers {
        for outcome in ["accepted", "duplicate", "rejected", "unavailable"] {
            metrics::counter!("relevo_webhooks_received_total", "provider" => *provider, "outcome" => outcome).increment(0);
        }
    }
    for workflow in workflows {
        for outcome in ["succeeded", "transient", "rate_limited", "permanent", "sleeping", "lost_lease"] {
            metrics::counter!("relevo_run_attempts_total", "workflow" => *workflow, "outcome" => outcome).increment(0);
        }
    }
    for status in ["delivered", "failed"] {
        metrics::counter!("relevo_webhook_deliveries_total", "status" => status).increment(0);
    }
    metrics::counter!("relevo_webhook_retries_total").increment(0);
}
