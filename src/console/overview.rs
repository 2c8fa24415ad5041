//! `/console`: what needs attention — runs by workflow and status, runs due
//! but waiting, success rates, webhooks in the last hour, failing deliveries.

use maud::html;
use poem::{handler, web::Data, Request, Response};

use super::{layout, viewer};
use crate::{engine::ops, http::AppState};

#[handler]
pub async fn overview(req: &Request, state: Data<&AppState>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let stats = ops::stats(&state.pool).await;
    let webhooks = sqlx::query_as::<_, (String, i64, i64)>(
        "select provider, count(*), count(*) filter (where ignored_reason is not null)
           from inbound_events where received_at > now() - interval '1 hour' group by provider order by provider",
    )
    .fetch_all(&state.pool)
    .await;
    let deliveries = sqlx::query_as::<_, (i64, i64)>(
        "select count(*) filter (where status = 'failed'),
                count(*) filter (where status in ('pending', 'delivering') and attempts > 0)
           from deliveries",
    )
    .fetch_one(&state.pool)
    .await;
    let (stats, webhooks, (failed_deliveries, retrying_deliveries)) = match (stats, webhooks, deliveries) {
        (Ok(s), Ok(w), Ok(d)) => (s, w, d),
        (Err(e), _, _) => return super::trouble(&e),
        (_, Err(e), _) | (_, _, Err(e)) => return super::trouble(&e),
    };
    let failed: i64 = stats.iter().map(|s| s.failed).sum();
    let body = html! {
        h1 { "Overview" }
        section.cards aria-label="Summary" {
            a.card href="/console/runs?status=failed" { strong { (failed) } span { "failed runs" } }
            a.card href="/console/runs?status=pending" { strong { (stats.iter().map(|s| s.due_waiting).sum::<i64>()) } span { "due but waiting" } }
            a.card href="/console/deliveries?status=failed" { strong { (failed_deliveries) } span { "failed deliveries" } }
            a.card href="/console/deliveries?status=pending" { strong { (retrying_deliveries) } span { "deliveries retrying" } }
        }
        h2 { "Runs by workflow" }
        table {
            thead { tr {
                th scope="col" { "Workflow" } th scope="col" { "Pending" } th scope="col" { "Running" } th scope="col" { "Sleeping" }
                th scope="col" { "Succeeded" } th scope="col" { "Failed" } th scope="col" { "Cancelled" }
                th scope="col" { "Due, waiting" } th scope="col" { "Oldest waiting" } th scope="col" { "Success (1 h)" }
            } }
            tbody {
                @for s in &stats {
                    tr {
                        th scope="row" { a href={ "/console/runs?workflow=" (layout::query_value(&s.workflow)) } { (s.workflow) } }
                        td { (s.pending) } td { (s.running) } td { (s.sleeping) } td { (s.succeeded) }
                        td { @if s.failed > 0 { a href={ "/console/runs?status=failed&workflow=" (layout::query_value(&s.workflow)) } { (s.failed) } } @else { "0" } }
                        td { (s.cancelled) } td { (s.due_waiting) }
                        td { @if s.oldest_waiting_secs > 0.0 { (format!("{:.0} s", s.oldest_waiting_secs)) } @else { "—" } }
                        td { @match s.success_rate_last_hour() { Some(r) => (format!("{:.1} %", r * 100.0)), None => "—" } }
                    }
                }
            }
        }
        h2 { "Webhooks received in the last hour" }
        @if webhooks.is_empty() { p { "None." } } @else {
            table {
                thead { tr { th scope="col" { "Provider" } th scope="col" { "Received" } th scope="col" { "Ignored" } } }
                tbody { @for (provider, n, ignored) in &webhooks {
                    tr { th scope="row" { a href={ "/console/events?provider=" (layout::query_value(provider)) } { (provider) } } td { (n) } td { (ignored) } }
                } }
            }
        }
    };
    layout::ok(layout::page("Overview", Some(&who.actor), body))
}
