//! Read-only console pages over what Relevo received and sent: inbound
//! events, outbound subscriptions and deliveries, orders.

use std::sync::Arc;

use maud::html;
use poem::{
    handler,
    http::StatusCode,
    web::{Data, Path, Query},
    Request, Response,
};
use serde::Deserialize;
use uuid::Uuid;

use super::{actor, layout, trouble, viewer, ConsoleSettings};
use crate::{
    domain::orders::{self, status::ALL as ORDER_STATUSES},
    http::AppState,
    ingest::events::{self, EventFilter},
    outbound::{attempts, deliveries::{self, DeliveryStatus}, ops, subscriptions},
};

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    provider: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    /// Set after a recovery: how many deliveries were queued again.
    requeued: Option<u64>,
}

impl ListQuery {
    fn cursor(&self) -> Option<Uuid> {
        self.cursor.as_deref().and_then(|c| c.parse().ok())
    }

    fn status(&self) -> Option<&str> {
        self.status.as_deref().filter(|s| !s.is_empty())
    }
}

fn next_link(path: &str, extra: &str, next: Option<Uuid>) -> maud::Markup {
    html! { @if let Some(n) = next { a.next href={ (path) "?" (extra) "cursor=" (n) } { "Older →" } } }
}

macro_rules! signed_in {
    ($state:expr, $req:expr) => {
        match viewer(&$state, $req).await {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

#[handler]
pub async fn event_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<ListQuery>) -> Response {
    let who = signed_in!(state, req);
    let filter = EventFilter { provider: q.provider.clone().filter(|p| !p.is_empty()), ..EventFilter::default() };
    let (rows, next) = match events::list(&state.pool, &filter, PAGE, q.cursor()).await {
        Ok(p) => p,
        Err(e) => return trouble(&e),
    };
    let tz = settings.timezone;
    let extra = filter.provider.as_deref().map(|p| format!("provider={}&", layout::query_value(p))).unwrap_or_default();
    let body = html! {
        h1 { "Inbound events" }
        table {
            thead { tr { th scope="col" { "Event" } th scope="col" { "Provider" } th scope="col" { "Type" } th scope="col" { "Received" } th scope="col" { "Run" } } }
            tbody { @for e in &rows {
                tr {
                    td { a href={ "/console/events/" (e.id) } { code { (short(e.id)) } } }
                    td { (e.provider) } td { (e.kind) } td { (layout::time(e.received_at, tz)) }
                    td { @match (e.run_id, &e.ignored_reason) {
                        (Some(run), _) => a href={ "/console/runs/" (run) } { code { (short(run)) } },
                        (None, Some(why)) => span { "ignored: " (why) },
                        (None, None) => "—",
                    } }
                }
            } }
        }
        (next_link("/console/events", &extra, next))
    };
    layout::ok(layout::page("Inbound events", Some(&who.actor), body))
}

#[handler]
pub async fn event_show(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(id): Path<Uuid>) -> Response {
    let who = signed_in!(state, req);
    let d = match events::show(&state.pool, id).await {
        Ok(Some(d)) => d,
        Ok(None) => return layout::message(StatusCode::NOT_FOUND, "Event not found", "No inbound event has this id.", Some(&who.actor)),
        Err(e) => return trouble(&e),
    };
    let e = &d.event;
    let body = html! {
        h1 { "Inbound event " code { (short(id)) } }
        dl {
            dt { "Provider" } dd { (e.provider) }
            dt { "Type" } dd { (e.kind) }
            dt { "Provider's id" } dd { (e.provider_event_id.clone().unwrap_or_else(|| "—".into())) }
            dt { "Received" } dd { (layout::time(e.received_at, settings.timezone)) }
            dt { "Run" } dd { @match e.run_id {
                Some(run) => { a href={ "/console/runs/" (run) } { code { (short(run)) } } " " (layout::badge(d.run_status.as_deref().unwrap_or("pruned"))) },
                None => (e.ignored_reason.clone().map_or("—".to_owned(), |r| format!("ignored: {r}"))),
            } }
        }
        h2 { "Kept headers" } (layout::json(&d.headers))
        h2 { "Payload" } (layout::json(&d.payload))
    };
    layout::ok(layout::page("Inbound event", Some(&who.actor), body))
}

#[handler]
pub async fn subscription_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<ListQuery>) -> Response {
    let who = signed_in!(state, req);
    let (rows, next) = match subscriptions::list(&state.pool, PAGE, q.cursor()).await {
        Ok(p) => p,
        Err(e) => return trouble(&e),
    };
    let body = html! {
        h1 { "Subscriptions" }
        @if let Some(n) = q.requeued { p.notice role="status" { "Queued " (n) " failed delivery(ies) again." } }
        table {
            thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Deliveries" } th scope="col" { "Recover failed deliveries" } } }
            tbody { @for s in &rows {
                tr {
                    td { code { (s.url) } } td { (s.event_types.join(", ")) }
                    td { (layout::badge(s.status.as_str())) @if let Some(r) = &s.disabled_reason { " " (r) } }
                    td { (layout::time(s.created_at, settings.timezone)) }
                    td { a href={ "/console/deliveries?subscription=" (s.id) } { "deliveries" } }
                    td {
                        form.inline method="post" action={ "/console/subscriptions/" (s.id) "/recover" } {
                            label for={ "since-" (s.id) } { "since (" (settings.timezone.name()) ")" }
                            input id={ "since-" (s.id) } name="since" type="datetime-local" required;
                            button type="submit" { "Recover" }
                        }
                    }
                }
            } }
        }
        (next_link("/console/subscriptions", "", next))
    };
    layout::ok(layout::page("Subscriptions", Some(&who.actor), body))
}

#[derive(Deserialize, Default)]
pub struct DeliveryQuery {
    status: Option<String>,
    subscription: Option<Uuid>,
    cursor: Option<Uuid>,
}

#[handler]
pub async fn delivery_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<DeliveryQuery>) -> Response {
    let who = signed_in!(state, req);
    let filter = deliveries::Filter {
        subscription_id: q.subscription,
        status: q.status.as_deref().and_then(DeliveryStatus::parse),
        event_type: None,
    };
    let (rows, next) = match deliveries::list(&state.pool, &filter, PAGE, q.cursor).await {
        Ok(p) => p,
        Err(e) => return trouble(&e),
    };
    let tz = settings.timezone;
    let extra = [
        filter.status.map(|s| format!("status={}&", s.as_str())),
        q.subscription.map(|s| format!("subscription={s}&")),
    ]
    .into_iter()
    .flatten()
    .collect::<String>();
    let body = html! {
        h1 { "Deliveries" }
        table {
            thead { tr { th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Last answer" } th scope="col" { "Next attempt" } } }
            tbody { @for d in &rows {
                tr {
                    td { a href={ "/console/deliveries/" (d.id) } { code { (short(d.id)) } } }
                    td { (d.event_type) } td { (layout::badge(d.status.as_str())) } td { (d.attempts) }
                    td.error { @if let Some(s) = d.last_status { (s) " " } (d.last_error.clone().unwrap_or_default()) }
                    td { (layout::time(d.next_attempt_at, tz)) }
                }
            } }
        }
        (next_link("/console/deliveries", &extra, next))
    };
    layout::ok(layout::page("Deliveries", Some(&who.actor), body))
}

#[handler]
pub async fn delivery_show(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(id): Path<Uuid>) -> Response {
    let who = signed_in!(state, req);
    let (d, tries) = match (deliveries::get(&state.pool, id).await, attempts::list_for(&state.pool, id).await) {
        (Ok(Some(d)), Ok(a)) => (d, a),
        (Ok(None), _) => return layout::message(StatusCode::NOT_FOUND, "Delivery not found", "No delivery has this id.", Some(&who.actor)),
        (Err(e), _) | (_, Err(e)) => return trouble(&e),
    };
    let tz = settings.timezone;
    let body = html! {
        h1 { "Delivery " code { (short(id)) } }
        form.inline method="post" action={ "/console/deliveries/" (id) "/resend" } {
            button type="submit" { "Send again now" }
        }
        dl {
            dt { "Event" } dd { (d.event_type) " " code { (d.event_id) } }
            dt { "Status" } dd { (layout::badge(d.status.as_str())) }
            dt { "Created" } dd { (layout::time(d.created_at, tz)) }
            dt { "Delivered" } dd { (layout::maybe_time(d.delivered_at, tz)) }
        }
        h2 { "Attempts" }
        table {
            thead { tr { th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "Answer" } th scope="col" { "Error" } th scope="col" { "Duration" } th scope="col" { "Body" } } }
            tbody { @for a in &tries {
                tr {
                    td { (a.attempt) } td { (layout::time(a.started_at, tz)) }
                    td { (a.status_code.map_or("—".to_owned(), |s| s.to_string())) }
                    td { (a.error_kind.map_or("—", |k| k.as_str())) } td { (a.duration_ms) " ms" }
                    td { pre.json { (a.response_body.clone().unwrap_or_default()) } }
                }
            } }
        }
    };
    layout::ok(layout::page("Delivery", Some(&who.actor), body))
}

#[handler]
pub async fn order_list(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Query(q): Query<ListQuery>) -> Response {
    let who = signed_in!(state, req);
    let status = q.status().and_then(|s| ORDER_STATUSES.into_iter().find(|v| v.as_str() == s));
    let (rows, next) = match orders::list(&state.pool, status, PAGE, q.cursor()).await {
        Ok(p) => p,
        Err(e) => return trouble(&e),
    };
    let body = html! {
        h1 { "Orders" }
        table {
            thead { tr { th scope="col" { "Order" } th scope="col" { "Customer" } th scope="col" { "Status" } th scope="col" { "Amount" } th scope="col" { "Items" } th scope="col" { "Created" } } }
            tbody { @for o in &rows {
                tr {
                    td { a href={ "/console/orders/" (o.order.id) } { code { (orders::short_ref(o.order.id)) } } }
                    td { (o.order.customer_name) } td { (layout::badge(o.order.status.as_str())) }
                    td { (money(o.order.amount_minor, &o.order.currency)) }
                    td { (o.items.iter().map(|i| format!("{} × {}", i.quantity, i.name)).collect::<Vec<_>>().join(", ")) }
                    td { (layout::time(o.order.created_at, settings.timezone)) }
                }
            } }
        }
        (next_link("/console/orders", "", next))
    };
    layout::ok(layout::page("Orders", Some(&who.actor), body))
}

#[handler]
pub async fn order_show(req: &Request, state: Data<&AppState>, settings: Data<&Arc<ConsoleSettings>>, Path(id): Path<Uuid>) -> Response {
    let who = signed_in!(state, req);
    let (order, history) = match orders::get(&state.pool, id).await {
        Ok(o) => o,
        Err(orders::Error::NotFound) => return layout::message(StatusCode::NOT_FOUND, "Order not found", "No order has this id.", Some(&who.actor)),
        Err(e) => return trouble(&e),
    };
    let emails = sqlx::query_as::<_, (String, String, chrono::DateTime<chrono::Utc>)>(
        "select kind, status, created_at from emails where order_id = $1 order by created_at",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await
    .unwrap_or_default();
    let tz = settings.timezone;
    let o = &order.order;
    let body = html! {
        h1 { "Order " code { (orders::short_ref(id)) } }
        dl {
            dt { "Status" } dd { (layout::badge(o.status.as_str())) }
            dt { "Customer" } dd { (o.customer_name) " " (o.customer_email.clone().unwrap_or_default()) " " (o.customer_phone.clone().unwrap_or_default()) }
            dt { "Amount" } dd { (money(o.amount_minor, &o.currency)) }
            dt { "Created" } dd { (layout::time(o.created_at, tz)) }
        }
        h2 { "Items" }
        table {
            thead { tr { th scope="col" { "SKU" } th scope="col" { "Name" } th scope="col" { "Quantity" } th scope="col" { "Unit price" } } }
            tbody { @for i in &order.items { tr { td { (i.sku) } td { (i.name) } td { (i.quantity) } td { (money(i.unit_price_minor, &o.currency)) } } } }
        }
        h2 { "Status history" }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Signal" } th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Note" } } }
            tbody { @for t in &history {
                tr {
                    td { (layout::time(t.at, tz)) } td { (t.signal) } td { (t.from_status.as_str()) }
                    td { (t.to_status.map_or("(unchanged)", |s| s.as_str())) }
                    td { (t.reason.clone().unwrap_or_default()) @if let Some(e) = t.event_id { " " a href={ "/console/events/" (e) } { "event" } } }
                }
            } }
        }
        h2 { "E-mails" }
        @if emails.is_empty() { p { "None." } } @else {
            ul { @for (kind, status, at) in &emails { li { (layout::time(*at, tz)) " " (kind) " — " (layout::badge(status)) } } }
        }
    };
    layout::ok(layout::page("Order", Some(&who.actor), body))
}

fn money(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, (minor % 100).abs())
}

fn short(id: Uuid) -> String {
    let s = id.simple().to_string();
    s[s.len() - 8..].to_owned()
}

#[handler]
pub async fn delivery_resend(req: &Request, state: Data<&AppState>, Path(id): Path<Uuid>) -> Response {
    let who = match actor(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match ops::resend(&state.pool, id).await {
        Ok(true) => {
            super::audit(&state, None, &who.actor, "resend delivery", &id.to_string()).await;
            layout::see_other(&format!("/console/deliveries/{id}"))
        }
        Ok(false) => layout::message(StatusCode::NOT_FOUND, "Delivery not found", "No delivery has this id.", Some(&who.actor)),
        Err(e) => trouble(&e),
    }
}

#[derive(Deserialize)]
pub struct RecoverForm {
    since: String,
}

#[handler]
pub async fn subscription_recover(
    req: &Request,
    state: Data<&AppState>,
    settings: Data<&Arc<ConsoleSettings>>,
    Path(id): Path<Uuid>,
    poem::web::Form(form): poem::web::Form<RecoverForm>,
) -> Response {
    let who = match actor(&state, req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(since) = super::runs::local_time(&form.since, settings.timezone) else {
        return layout::message(StatusCode::BAD_REQUEST, "Not a time", "Give the time as the form asks.", Some(&who.actor));
    };
    match ops::recover(&state.pool, id, since).await {
        Ok(n) => {
            super::audit(&state, None, &who.actor, "recover deliveries", &format!("subscription {id}: {n} failed since {since}")).await;
            layout::see_other(&format!("/console/subscriptions?requeued={n}"))
        }
        Err(e) => trouble(&e),
    }
}
