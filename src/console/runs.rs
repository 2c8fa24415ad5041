//! `/console/runs`: filter runs, inspect one (input, steps, attempts, trigger,
//! audit), and act: retry now, retry at a time, rerun from a step, cancel,
//! and bulk-retry the filtered failed runs after confirming their count.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use maud::{html, Markup};
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Form, Path, Query},
    Request, Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{actor, audit, layout, trouble, viewer, ConsoleSettings};
use crate::{
    engine::{
        ops::{self, RunDetail, RunFilter},
        RunStatus,
    },
    http::AppState,
};

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct Filters {
    workflow: Option<String>,
    status: Option<String>,
    key: Option<String>,
    /// Created at or after (the form's `datetime-local`, in the shop's zone).
    since: Option<String>,
    cursor: Option<String>,
    /// Set after a bulk retry: how many were retried.
    retried: Option<u64>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

impl Filters {
    fn run_filter(&self, tz: chrono_tz::Tz) -> RunFilter {
        RunFilter {
            status: nonempty(&self.status).and_then(|s| RunStatus::ALL.into_iter().find(|v| v.as_str() == s)),
            workflow: nonempty(&self.workflow),
            key: nonempty(&self.key),
            created_after: nonempty(&self.since).and_then(|s| local_time(&s, tz)),
            created_before: None,
        }
    }

    /// The filters as a query string, for links and the bulk form.
    fn query(&self) -> String {
        [("workflow", &self.workflow), ("status", &self.status), ("key", &self.key), ("since", &self.since)]
            .into_iter()
            .filter_map(|(k, v)| nonempty(v).map(|v| format!("{k}={}", layout::query_value(&v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A `datetime-local` value read in the shop's zone.
pub(super) fn local_time(raw: &str, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S")).ok()?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

#[handler]
pub async fn list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(f): Query<Filters>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tz = settings.timezone;
    let filter = f.run_filter(tz);
    let cursor = nonempty(&f.cursor).and_then(|c| c.parse::<Uuid>().ok());
    let (rows, next) = match ops::list(&state.pool, &filter, PAGE, cursor).await {
        Ok(page) => page,
        Err(e) => return trouble(&e),
    };
    let failed_matching = if filter.status == Some(RunStatus::Failed) {
        match count(&state, &filter).await {
            Ok(n) => Some(n),
            Err(e) => return trouble(&e),
        }
    } else {
        None
    };
    let body = html! {
        h1 { "Runs" }
        @if let Some(n) = f.retried { p.notice role="status" { "Retried " (n) " run(s)." } }
        form.filters method="get" action="/console/runs" {
            label for="workflow" { "Workflow" }
            input id="workflow" name="workflow" type="text" value=(f.workflow.clone().unwrap_or_default());
            label for="status" { "Status" }
            select id="status" name="status" {
                option value="" { "any" }
                @for s in RunStatus::ALL {
                    option value=(s.as_str()) selected[f.status.as_deref() == Some(s.as_str())] { (s.as_str()) }
                }
            }
            label for="key" { "Key" }
            input id="key" name="key" type="text" value=(f.key.clone().unwrap_or_default());
            label for="since" { "Created since (" (tz.name()) ")" }
            input id="since" name="since" type="datetime-local" value=(f.since.clone().unwrap_or_default());
            button type="submit" { "Filter" }
        }
        @if let Some(n) = failed_matching {
            @if n > 0 {
                form.bulk method="post" action="/console/runs/retry" {
                    input type="hidden" name="filters" value=(f.query());
                    input type="hidden" name="expected" value=(n);
                    label for="confirm" { "Type " strong { (n) } " to retry all " (n) " failed runs matching these filters" }
                    input id="confirm" name="confirm" type="text" inputmode="numeric" required autocomplete="off";
                    button type="submit" { "Retry " (n) " failed runs" }
                }
            }
        }
        table.runs {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Workflow" } th scope="col" { "Key" } th scope="col" { "Status" }
                th scope="col" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Next run" } th scope="col" { "Age" }
            } }
            tbody {
                @for r in &rows {
                    tr {
                        td { a href={ "/console/runs/" (r.id) } { code { (short(r.id)) } } }
                        td { (r.workflow) }
                        td { (r.ordering_key.clone().unwrap_or_default()) }
                        td { (layout::badge(r.status.as_str())) }
                        td { (r.attempts) }
                        td.error { @if let Some(m) = &r.last_error_message { (r.last_error_step.clone().unwrap_or_default()) ": " (truncate(m, 120)) } }
                        td { @if r.status.is_active() { (layout::time(r.next_run_at, tz)) } @else { "—" } }
                        td { (layout::age(r.created_at)) }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No runs match." } }
        @if let Some(next) = next {
            a.next href={ "/console/runs?" (f.query()) "&cursor=" (next) } { "Older runs →" }
        }
    };
    layout::ok(layout::page("Runs", Some(&who.actor), body))
}

async fn count(state: &AppState, f: &RunFilter) -> Result<i64, sqlx::Error> {
    let mut q = sqlx::QueryBuilder::new("select count(*) from engine.runs where true");
    if let Some(s) = f.status {
        q.push(" and status = ").push_bind(s);
    }
    if let Some(w) = &f.workflow {
        q.push(" and workflow = ").push_bind(w.clone());
    }
    if let Some(k) = &f.key {
        q.push(" and ordering_key = ").push_bind(k.clone());
    }
    if let Some(t) = f.created_after {
        q.push(" and created_at >= ").push_bind(t);
    }
    q.build_query_scalar().fetch_one(&state.pool).await
}

#[handler]
pub async fn show(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(id): Path<Uuid>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tz = settings.timezone;
    let detail = match ops::show(&state.pool, id).await {
        Ok(d) => d,
        Err(ops::Error::NotFound) => return layout::message(StatusCode::NOT_FOUND, "Run not found", "No run has this id.", Some(&who.actor)),
        Err(e) => return trouble(&e),
    };
    let audit_rows = match sqlx::query_as::<_, (String, String, String, DateTime<Utc>)>(
        "select actor, action, detail, at from console_audit where run_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await
    {
        Ok(rows) => rows,
        Err(e) => return trouble(&e),
    };
    let d = &detail;
    let body = html! {
        h1 { "Run " code { (short(id)) } }
        (summary_section(d, tz))
        @if let Some(event) = d.run.trigger_event_id {
            p { "Triggered by inbound event " a href={ "/console/events/" (event) } { code { (short(event)) } } "." }
        }
        section aria-labelledby="actions" {
            h2 id="actions" { "Actions" }
            @if d.run.status.is_terminal() {
                form.inline method="post" action={ "/console/runs/" (id) "/retry" } {
                    button type="submit" { "Retry now" }
                }
                form.inline method="post" action={ "/console/runs/" (id) "/retry" } {
                    label for="at" { "Retry at (" (tz.name()) ")" }
                    input id="at" name="at" type="datetime-local" required;
                    button type="submit" { "Schedule retry" }
                }
                @if !d.steps.is_empty() {
                    form.inline method="post" action={ "/console/runs/" (id) "/retry" } {
                        label for="from_step" { "Rerun from step" }
                        select id="from_step" name="from_step" {
                            @for s in &d.steps { option value=(s.step) { (s.step) } }
                        }
                        button type="submit" { "Rerun" }
                    }
                }
            } @else {
                form.inline method="post" action={ "/console/runs/" (id) "/cancel" } {
                    button.danger type="submit" { "Cancel run" }
                }
            }
        }
        section aria-labelledby="input" { h2 id="input" { "Input" } (layout::json(&d.input)) }
        section aria-labelledby="steps" {
            h2 id="steps" { "Steps" }
            table {
                thead { tr { th scope="col" { "Step" } th scope="col" { "Outcome" } th scope="col" { "Attempt" } th scope="col" { "Duration" } th scope="col" { "Output" } } }
                tbody { @for s in &d.steps {
                    tr {
                        td { (s.step) } td { (layout::badge(&s.status)) } td { (attempt_number(d, s.attempt)) }
                        td { @match s.finished_at { Some(f) => (format!("{} ms", (f - s.started_at).num_milliseconds())), None => "—" } }
                        td { details { summary { "output" } (layout::json(&s.output)) } }
                    }
                } }
            }
        }
        section aria-labelledby="attempts" {
            h2 id="attempts" { "Attempts" }
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "Outcome" } th scope="col" { "Error" } th scope="col" { "Worker" } } }
                tbody { @for (n, a) in d.attempts.iter().enumerate() {
                    tr {
                        td { (n + 1) } td { (layout::time(a.started_at, tz)) }
                        td { (layout::badge(a.outcome.as_deref().unwrap_or("running"))) }
                        td.error { @if let Some(m) = &a.error_message {
                            (a.error_kind.clone().unwrap_or_default()) " in " (a.error_step.clone().unwrap_or_default()) ": " (m)
                        } }
                        td { code { (a.worker) } }
                    }
                } }
            }
        }
        section aria-labelledby="audit" {
            h2 id="audit" { "Actions taken" }
            @if audit_rows.is_empty() { p { "None." } } @else {
                ul { @for (who, action, detail, at) in &audit_rows { li { (layout::time(*at, tz)) " — " strong { (who) } " " (action) ": " (detail) } } }
            }
        }
    };
    layout::ok(layout::page(&format!("Run {}", short(id)), Some(&who.actor), body))
}

/// The live part of a run's page (htmx refreshes it every 2 s while it is active).
fn summary_section(d: &RunDetail, tz: chrono_tz::Tz) -> Markup {
    let r = &d.run;
    html! {
        section #summary aria-labelledby="summary-title"
            hx-get={ "/console/runs/" (r.id) "/summary" } hx-trigger=[r.status.is_active().then_some("every 2s")] hx-swap="outerHTML" {
            h2 id="summary-title" { "Status " (layout::badge(r.status.as_str())) }
            dl {
                dt { "Workflow" } dd { (r.workflow) " v" (r.workflow_version) }
                dt { "Key" } dd { (r.ordering_key.clone().unwrap_or_else(|| "—".into())) }
                dt { "Attempts" } dd { (d.attempts.len()) }
                dt { "Created" } dd { (layout::time(r.created_at, tz)) }
                dt { "Next run" } dd { @if r.status.is_active() { (layout::time(r.next_run_at, tz)) } @else { "—" } }
                dt { "Finished" } dd { (layout::maybe_time(r.finished_at, tz)) }
                @if let Some(m) = &r.last_error_message {
                    dt { "Last error" } dd.error { (r.last_error_kind.clone().unwrap_or_default()) " in " (r.last_error_step.clone().unwrap_or_default()) ": " (m) }
                }
            }
        }
    }
}

#[handler]
pub async fn summary(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(id): Path<Uuid>) -> Response {
    if let Err(r) = viewer(&state, req).await {
        return r;
    }
    match ops::show(&state.pool, id).await {
        Ok(d) => layout::ok(summary_section(&d, settings.timezone)),
        Err(e) => trouble(&e),
    }
}

/// People count attempts 1, 2, 3: the n-th attempt of the run, whatever its fence.
fn attempt_number(d: &RunDetail, fence: i64) -> String {
    d.attempts.iter().position(|a| a.attempt == fence).map_or_else(|| "—".into(), |i| (i + 1).to_string())
}

#[derive(Deserialize)]
pub struct RetryForm {
    at: Option<String>,
    from_step: Option<String>,
}

#[handler]
pub async fn retry(
    req: &Request,
    state: Data<&AppState>,
    settings: Data<&Arc<ConsoleSettings>>,
    Path(id): Path<Uuid>,
    Form(form): Form<RetryForm>,
) -> Response {
    let who = match actor(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let at = match nonempty(&form.at) {
        None => None,
        Some(raw) => match local_time(&raw, settings.timezone) {
            Some(t) => Some(t),
            None => return layout::message(StatusCode::BAD_REQUEST, "Not a time", "Give the time as the form asks.", Some(&who.actor)),
        },
    };
    let from_step = nonempty(&form.from_step);
    match ops::retry(&state.pool, id, at, from_step.as_deref()).await {
        Ok(()) => {
            let detail = match (&at, &from_step) {
                (_, Some(step)) => format!("rerun from step {step}"),
                (Some(at), None) => format!("retry at {at}"),
                (None, None) => "retry now".into(),
            };
            audit(&state, Some(id), &who.actor, "retry", &detail).await;
            layout::see_other(&format!("/console/runs/{id}"))
        }
        Err(e) => refused(e, &who.actor),
    }
}

#[handler]
pub async fn cancel(req: &Request, state: Data<&AppState>, Path(id): Path<Uuid>) -> Response {
    let who = match actor(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ops::cancel(&state.pool, id).await {
        Ok(()) => {
            audit(&state, Some(id), &who.actor, "cancel", "cancelled").await;
            layout::see_other(&format!("/console/runs/{id}"))
        }
        Err(e) => refused(e, &who.actor),
    }
}

#[derive(Deserialize)]
pub struct BulkForm {
    filters: String,
    expected: i64,
    confirm: String,
}

#[handler]
pub async fn bulk_retry(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Form(form): Form<BulkForm>) -> Response {
    let who = match actor(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let f: Filters = serde_urlencoded_filters(&form.filters);
    if form.confirm.trim() != form.expected.to_string() {
        return layout::message(StatusCode::BAD_REQUEST, "Not confirmed", "Type the number of runs to confirm the bulk retry.", Some(&who.actor));
    }
    let mut filter = f.run_filter(settings.timezone);
    filter.status = Some(RunStatus::Failed);
    match ops::retry_matching(&state.pool, &filter, None).await {
        Ok(n) => {
            audit(&state, None, &who.actor, "bulk retry", &format!("{n} failed run(s) matching {}", form.filters)).await;
            layout::see_other(&format!("/console/runs?{}&retried={n}", f.query()))
        }
        Err(e) => refused(e, &who.actor),
    }
}

/// The bulk form carries the list's filters as a query string.
fn serde_urlencoded_filters(raw: &str) -> Filters {
    let mut f = Filters::default();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let v = Some(v.into_owned());
        match k.as_ref() {
            "workflow" => f.workflow = v,
            "status" => f.status = v,
            "key" => f.key = v,
            "since" => f.since = v,
            _ => {}
        }
    }
    f
}

fn refused(e: ops::Error, actor: &str) -> Response {
    match e {
        ops::Error::NotFound => layout::message(StatusCode::NOT_FOUND, "Run not found", "No run has this id.", Some(actor)),
        ops::Error::Conflict(m) => layout::message(StatusCode::CONFLICT, "Not possible now", &m, Some(actor)),
        e @ (ops::Error::UnknownStep(_) | ops::Error::NotBulkRetryable(_)) => {
            layout::message(StatusCode::BAD_REQUEST, "Not possible", &e.to_string(), Some(actor))
        }
        ops::Error::Engine(e) => trouble(&e),
    }
}

fn short(id: Uuid) -> String {
    // UUIDv7: the leading digits are the time, shared by runs made together.
    let s = id.simple().to_string();
    s[s.len() - 8..].to_owned()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}
