//! The page shell every console page shares, and small rendering helpers.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use maud::{html, Markup, DOCTYPE};
use poem::{http::StatusCode, Response};

/// A whole page: head (CSS, htmx, no inline script or style), navigation with
/// the signed-in actor, then `body`.
pub fn page(title: &str, actor: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not inject its indicator <style>: the CSP allows no inline style.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false}"#;
                title { (title) " · Relevo console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/htmx.min.js" defer {}
            }
            body {
                header {
                    a.brand href="/console" { "Relevo" }
                    @if let Some(actor) = actor {
                        nav aria-label="Sections" {
                            a href="/console" { "Overview" }
                            a href="/console/runs" { "Runs" }
                            a href="/console/events" { "Inbound events" }
                            a href="/console/subscriptions" { "Subscriptions" }
                            a href="/console/deliveries" { "Deliveries" }
                            a href="/console/orders" { "Orders" }
                            a href="/console/conversations" { "WhatsApp" }
                            a href="/console/appointments" { "Appointments" }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            span { "Signed in as " strong { (actor) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An HTML answer with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// A message page (errors, refusals).
pub fn message(status: StatusCode, title: &str, text: &str, actor: Option<&str>) -> Response {
    respond(status, page(title, actor, html! { h1 { (title) } p.notice { (text) } }))
}

/// 303 to `to` (after a POST, so a reload does not repeat the action).
pub fn see_other(to: &str) -> Response {
    Response::builder().status(StatusCode::SEE_OTHER).header("Location", to).finish()
}

/// A time in the shop's zone, with the UTC instant as the tooltip.
pub fn time(t: DateTime<Utc>, tz: Tz) -> Markup {
    let local = t.with_timezone(&tz);
    html! { time datetime=(t.to_rfc3339()) title=(t.to_rfc3339()) { (local.format("%Y-%m-%d %H:%M:%S %Z")) } }
}

pub fn maybe_time(t: Option<DateTime<Utc>>, tz: Tz) -> Markup {
    match t {
        Some(t) => time(t, tz),
        None => html! { "—" },
    }
}

/// Pretty JSON in a <pre>.
pub fn json(v: &serde_json::Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// "3 min ago"-style age.
pub fn age(t: DateTime<Utc>) -> String {
    let secs = (Utc::now() - t).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A status as a badge (its class colours it).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// Escaped text inside a link query, for filters carried across pages.
pub fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

pub fn ok(markup: Markup) -> Response {
    respond(StatusCode::OK, markup)
}
