//! Console pages for the integrations: WhatsApp conversations (the message
//! log both ways) and HighLevel appointments (with their sync state).

use std::sync::Arc;

use maud::html;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Path, Query},
    Request, Response,
};
use serde::Deserialize;

use super::{layout, trouble, viewer, ConsoleSettings};
use crate::{
    domain::{
        appointments::{self, Filter},
        whatsapp::read::{self, ConversationCursor},
    },
    http::AppState,
};

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct CursorQuery {
    cursor: Option<String>,
}

#[handler]
pub async fn conversation_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<CursorQuery>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let cursor = q.cursor.as_deref().and_then(|c| c.parse::<ConversationCursor>().ok());
    let (rows, next) = match read::list(&state.pool, PAGE, cursor).await {
        Ok(p) => p,
        Err(e) => return trouble(&e),
    };
    let body = html! {
        h1 { "WhatsApp conversations" }
        table {
            thead { tr { th scope="col" { "Number" } th scope="col" { "Name" } th scope="col" { "Messages" } th scope="col" { "Last message" } th scope="col" { "Open quote" } } }
            tbody { @for c in &rows {
                tr {
                    td { a href={ "/console/conversations/" (layout::query_value(&c.wa_id)) } { (c.wa_id) } }
                    td { (c.name.clone().unwrap_or_default()) } td { (c.messages) }
                    td { (layout::time(c.last_message_at, settings.timezone)) }
                    td { (if c.open_quote_id.is_some() { "yes" } else { "—" }) }
                }
            } }
        }
        @if let Some(n) = next {
            a.next href={ "/console/conversations?cursor=" (layout::query_value(&n.to_string())) } { "Older →" }
        }
    };
    layout::ok(layout::page("WhatsApp conversations", Some(&who.actor), body))
}

#[handler]
pub async fn conversation_show(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(wa_id): Path<String>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let c = match read::show(&state.pool, &wa_id, 200).await {
        Ok(Some(c)) => c,
        Ok(None) => return layout::message(StatusCode::NOT_FOUND, "No conversation", "Relevo never exchanged a message with this number.", Some(&who.actor)),
        Err(e) => return trouble(&e),
    };
    let tz = settings.timezone;
    let body = html! {
        h1 { "Conversation with " (c.wa_id) @if let Some(n) = &c.name { " (" (n) ")" } }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Way" } th scope="col" { "Text" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Run" } } }
            tbody { @for m in &c.messages {
                tr {
                    td { (layout::time(m.created_at, tz)) } td { (m.direction.as_str()) }
                    td { (m.body.clone().unwrap_or_else(|| format!("({})", m.kind))) }
                    td { (layout::badge(m.status.as_str())) @if let Some(e) = &m.error_message { " " span.error { (m.error_code.map(|c| c.to_string()).unwrap_or_default()) " " (e) } } }
                    td { (m.attempts) }
                    td { @if let Some(run) = m.run_id { a href={ "/console/runs/" (run) } { "run" } } }
                }
            } }
        }
    };
    layout::ok(layout::page("Conversation", Some(&who.actor), body))
}

#[derive(Deserialize, Default)]
pub struct AppointmentQuery {
    location_id: Option<String>,
    status: Option<String>,
}

#[handler]
pub async fn appointment_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<AppointmentQuery>) -> Response {
    let who = match viewer(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filter = Filter {
        location_id: q.location_id.filter(|l| !l.is_empty()),
        status: q.status.as_deref().and_then(appointments::AppointmentStatus::parse),
        // Upcoming first: from the start of today.
        from: Some(chrono::Utc::now() - chrono::Duration::days(1)),
        ..Filter::default()
    };
    let rows = match appointments::list(&state.pool, &filter, None, 200).await {
        Ok(r) => r,
        Err(e) => return trouble(&e),
    };
    let body = html! {
        h1 { "HighLevel appointments" }
        p { "From yesterday on, by start time (the API pages further)." }
        table {
            thead { tr { th scope="col" { "Start" } th scope="col" { "Title" } th scope="col" { "Calendar" } th scope="col" { "Status" } th scope="col" { "Sync" } th scope="col" { "Conflict" } th scope="col" { "From" } } }
            tbody { @for a in &rows {
                tr {
                    td { (layout::time(a.starts_at, settings.timezone)) } td { (a.title) } td { (a.calendar_id) }
                    td { (layout::badge(a.status().as_str())) }
                    td { (layout::badge(a.sync().as_str())) @if let Some(run) = a.sync_run_id { " " a href={ "/console/runs/" (run) } { "push run" } } }
                    td { (if a.conflict { "overlaps" } else { "—" }) } td { (a.origin) }
                }
            } }
        }
    };
    layout::ok(layout::page("HighLevel appointments", Some(&who.actor), body))
}
