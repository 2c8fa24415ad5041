//! The ops console at `/console`: server-rendered pages (maud) that read
//! without JavaScript, with htmx (vendored, served from here) for live
//! refresh. It calls the same domain and engine functions as the API; every
//! action is a POST under the page it acts on, checked for a session and for
//! coming from the console's own pages, and recorded in `console_audit`.

mod integrations;
mod layout;
mod overview;
mod records;
mod runs;
pub mod session;

use std::sync::Arc;

use chrono_tz::Tz;
use maud::html;
use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Form, Query},
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};
use serde::Deserialize;

use self::{layout::message, session::Session};
use crate::{config::ConsoleUser, http::AppState};

/// What the console needs beside the API's state.
pub struct ConsoleSettings {
    pub users: Vec<ConsoleUser>,
    /// Times are shown in the shop's zone (RELEVO_SHOP_TIMEZONE).
    pub timezone: Tz,
}

const HTMX: &[u8] = include_bytes!("assets/htmx-2.0.4.min.js");
const CSS: &[u8] = include_bytes!("assets/console.css");

/// No inline script or style, nothing from elsewhere, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, to nest at `/console`.
pub fn routes(settings: Arc<ConsoleSettings>) -> impl Endpoint {
    Route::new()
        .at("/", poem::get(overview::overview))
        .at("/sign-in", poem::get(sign_in_page).post(sign_in))
        .at("/sign-out", poem::post(sign_out))
        .at("/runs", poem::get(runs::list))
        .at("/runs/retry", poem::post(runs::bulk_retry))
        .at("/runs/:id", poem::get(runs::show))
        .at("/runs/:id/summary", poem::get(runs::summary))
        .at("/runs/:id/retry", poem::post(runs::retry))
        .at("/runs/:id/cancel", poem::post(runs::cancel))
        .at("/events", poem::get(records::event_list))
        .at("/events/:id", poem::get(records::event_show))
        .at("/subscriptions", poem::get(records::subscription_list))
        .at("/deliveries", poem::get(records::delivery_list))
        .at("/deliveries/:id", poem::get(records::delivery_show))
        .at("/deliveries/:id/resend", poem::post(records::delivery_resend))
        .at("/subscriptions/:id/recover", poem::post(records::subscription_recover))
        .at("/conversations", poem::get(integrations::conversation_list))
        .at("/conversations/:wa_id", poem::get(integrations::conversation_show))
        .at("/appointments", poem::get(integrations::appointment_list))
        .at("/orders", poem::get(records::order_list))
        .at("/orders/:id", poem::get(records::order_show))
        .at("/assets/htmx.min.js", poem::get(htmx))
        .at("/assets/console.css", poem::get(css))
        .data(settings)
        .around(security_headers)
}

async fn security_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut resp = match next.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) if e.status() == StatusCode::NOT_FOUND => message(StatusCode::NOT_FOUND, "Not found", "There is no such page.", None),
        Err(e) => message(e.status(), "Request refused", &e.to_string(), None),
    };
    let headers = resp.headers_mut();
    headers.insert("content-security-policy", header::HeaderValue::from_static(CSP));
    headers.insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", header::HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", header::HeaderValue::from_static("same-origin"));
    headers.insert("cache-control", header::HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[handler]
fn htmx() -> Response {
    Response::builder().content_type("text/javascript; charset=utf-8").header("cache-control", "max-age=86400").body(HTMX)
}

#[handler]
fn css() -> Response {
    Response::builder().content_type("text/css; charset=utf-8").header("cache-control", "max-age=3600").body(CSS)
}

/// The session of a page view; unsigned → the sign-in page (back here after).
async fn viewer(state: &AppState, req: &Request) -> Result<Session, Response> {
    match session::current(state, &state.console.users, req).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            let next = req.original_uri().path_and_query().map_or("/console", |p| p.as_str());
            Err(layout::see_other(&format!("/console/sign-in?next={}", layout::query_value(next))))
        }
        Err(e) => Err(unavailable(&e)),
    }
}

/// The session of an action: it must come from the console's own pages and
/// carry a live session; anything else is refused (403) and changes nothing.
async fn actor(state: &AppState, req: &Request) -> Result<Session, Response> {
    if !session::same_origin(req) {
        return Err(message(StatusCode::FORBIDDEN, "Refused", "This action must come from the console's own pages.", None));
    }
    match session::current(state, &state.console.users, req).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(message(StatusCode::FORBIDDEN, "Refused", "Sign in to act.", None)),
        Err(e) => Err(unavailable(&e)),
    }
}

fn unavailable(e: &sqlx::Error) -> Response {
    trouble(e)
}

/// A page that could not be read or an action that could not be done: the
/// cause goes to the log, the person gets a 503 to retry.
fn trouble(e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error.message = %e, "console: database error");
    message(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable", "The database cannot be reached; try again shortly.", None)
}

/// Records an action in the audit table (shown on the run).
async fn audit(state: &AppState, run_id: Option<uuid::Uuid>, actor: &str, action: &str, detail: &str) {
    let written = sqlx::query!(
        "insert into console_audit (run_id, actor, action, detail) values ($1, $2, $3, $4)",
        run_id,
        actor,
        action,
        detail
    )
    .execute(&state.pool)
    .await;
    if let Err(e) = written {
        tracing::warn!(error.message = %e, action, "console: the action was done but not audited");
    }
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
    error: Option<String>,
}

#[handler]
fn sign_in_page(Query(q): Query<Next>) -> Response {
    sign_in_form(q.next.as_deref(), q.error.is_some(), StatusCode::OK)
}

fn sign_in_form(next: Option<&str>, failed: bool, status: StatusCode) -> Response {
    let body = html! {
        h1 { "Sign in" }
        @if failed { p.notice role="alert" { "Those credentials are not valid." } }
        form.signin method="post" action="/console/sign-in" {
            input type="hidden" name="next" value=(safe_next(next));
            label for="user" { "User (empty for the admin token)" }
            input id="user" name="user" type="text" autocomplete="username";
            label for="secret" { "Password or admin token" }
            input id="secret" name="secret" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    layout::respond(status, layout::page("Sign in", None, body))
}

/// Only a path inside the console is a place to go back to.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("//") && !n.contains("\\")).unwrap_or("/console")
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    user: String,
    secret: String,
    next: Option<String>,
}

#[handler]
async fn sign_in(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Form(form): Form<SignIn>) -> Response {
    if !session::same_origin(req) {
        return message(StatusCode::FORBIDDEN, "Refused", "Sign in from the console's own page.", None);
    }
    let Some(actor) = session::authenticate(&state, &settings.users, &form.user, &form.secret) else {
        tracing::info!(user = %form.user, "console sign-in refused");
        return sign_in_form(form.next.as_deref(), true, StatusCode::UNAUTHORIZED);
    };
    let credential = session::credential_of(&state, &settings.users, &actor).expect("the actor just signed in");
    match session::start(&state.pool, &actor, &credential).await {
        Ok(token) => {
            tracing::info!(actor = %actor, "console sign-in");
            let mut resp = layout::see_other(safe_next(form.next.as_deref()));
            resp.headers_mut().insert(header::SET_COOKIE, session::set_cookie(req, Some(&token)).parse().expect("cookie header"));
            resp
        }
        Err(e) => unavailable(&e),
    }
}

#[handler]
async fn sign_out(req: &Request, state: Data<&AppState>) -> Response {
    if !session::same_origin(req) {
        return message(StatusCode::FORBIDDEN, "Refused", "Sign out from the console's own pages.", None);
    }
    if let Some(token) = session::cookie(req) {
        if let Err(e) = session::end(&state.pool, &token).await {
            return unavailable(&e);
        }
    }
    let mut resp = layout::see_other("/console/sign-in");
    resp.headers_mut().insert(header::SET_COOKIE, session::set_cookie(req, None).parse().expect("cookie header"));
    resp
}
