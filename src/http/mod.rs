//! The HTTP surface: poem app, OpenAPI spec and docs, error mapping, auth.

mod appointments;
pub mod auth;
mod checkout_return;
mod customers;
pub mod error;
mod events;
mod guard;
pub(crate) mod health;
mod highlevel;
mod orders;
mod outbound;
pub mod page;
mod products;
mod quotes;
pub mod runs;
mod webhooks;
mod whatsapp;

use std::sync::Arc;

use poem::{
    http::{header, Method, StatusCode, Version},
    Endpoint, EndpointExt, IntoResponse, Request, Response, Route,
};
use poem_openapi::{OpenApiService, Tags};
use secrecy::SecretString;
use sqlx::PgPool;

use crate::engine::Engine;

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub engine: Engine,
    pub admin_token: Arc<SecretString>,
    pub webhooks: Arc<crate::config::WebhookSettings>,
    /// Parsed from `webhooks`' PEMs at start-up.
    pub highlevel_keys: Arc<crate::providers::highlevel::verify::Keys>,
    /// Calls HighLevel (calendars, the OAuth code exchange).
    pub highlevel: Arc<crate::domain::highlevel::api::HighLevel>,
    /// The runs appointment and location changes start (from `workflows`).
    pub sync_flows: Arc<dyn crate::domain::appointments::changes::SyncFlows>,
    /// Seals tokens and signing keys at rest.
    pub sealer: crate::sealing::Sealer,
    /// The ops console's users and time zone.
    pub console: Arc<crate::console::ConsoleSettings>,
    pub run_gauges: Arc<health::RunGauges>,
    pub outbound: Arc<crate::outbound::OutboundSettings>,
    pub ingest: crate::ingest::IngestWriter,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness, readiness and metrics.
    Health,
    /// Durable workflow runs: list, inspect, retry, cancel.
    Runs,
    /// The inbound webhook log.
    Events,
    /// Products and stock.
    Catalog,
    /// Customers, orders and the e-mail outbox.
    Orders,
    /// Outbound signed webhooks: subscriptions, events, deliveries.
    Outbound,
    /// Provider webhook receivers (authenticated by provider signatures).
    Webhooks,
    /// WhatsApp conversations, their message log and the reply queue.
    WhatsApp,
    /// HighLevel locations (OAuth, settings, calendars) and appointment sync.
    HighLevel,
}

type Apis = (
    health::HealthApi,
    runs::RunsApi,
    events::EventsApi,
    (products::ProductsApi, orders::OrdersApi, customers::CustomersApi, outbound::OutboundApi),
    (quotes::QuotesApi, whatsapp::WhatsAppApi),
    (highlevel::HighLevelApi, appointments::AppointmentsApi),
    (
        webhooks::StripeWebhook,
        webhooks::MercadoPagoWebhook,
        webhooks::WhatsAppWebhook,
        webhooks::HighLevelWebhook,
    ),
);

fn service() -> OpenApiService<Apis, ()> {
    let apis = Apis::default();
    OpenApiService::new(apis, "Relevo", env!("CARGO_PKG_VERSION"))
        .description(
            "Durable workflows for webhook-driven integrations. `/api/v1` needs \
             `Authorization: Bearer <RELEVO_ADMIN_TOKEN>`. Every error is \
             `{\"error\": {\"code\", \"message\"}}`.",
        )
}

/// The OpenAPI document the code describes (committed as `openapi/relevo.json`).
pub fn openapi_json() -> String {
    service().spec()
}

/// The whole application.
pub fn app(state: AppState) -> impl Endpoint {
    let api = service();
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api.around(default_to_json))
        .nest("/docs", docs)
        .at("/checkout/return", poem::get(checkout_return::checkout_return))
        .nest("/console", crate::console::routes(state.console.clone()))
        .at("/openapi.json", spec)
        .data(state)
        .catch_all_error(error::to_json_error)
        .with(guard::Guard::default())
}

/// Largest body a request without Content-Length may bring before it is
/// known whether it is empty (HTTP/2 frames bodies without that header).
const MAX_UNFRAMED_BODY: usize = 16 * 1024 * 1024;

/// A POST without `Content-Type` is read as JSON rather than refused with 415:
/// webhook senders are not always careful with the header (the signature, not
/// the header, decides), and ops commands such as `POST /api/v1/runs/{id}/retry`
/// take an optional body, so a bodiless POST (curl -X POST) reads as `null`.
async fn default_to_json<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    if req.method() == Method::POST && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let empty = match req.headers().get(header::CONTENT_LENGTH) {
            Some(length) => length.as_bytes() == b"0",
            // HTTP/1.1 without length or chunking has no body; HTTP/2 has neither
            // header and a body all the same, so read it to know.
            None if req.headers().contains_key(header::TRANSFER_ENCODING) => false,
            None if req.version() <= Version::HTTP_11 => true,
            None => match req.take_body().into_bytes_limit(MAX_UNFRAMED_BODY).await {
                Ok(bytes) if bytes.is_empty() => true,
                Ok(bytes) => {
                    req.set_body(bytes);
                    false
                }
                Err(_) => {
                    return Ok(error::body("payload_too_large", format!("the body exceeds {MAX_UNFRAMED_BODY} bytes"))
                        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                        .into_response())
                }
            },
        };
        if empty {
            req.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("4"));
            req.set_body("null");
        }
    }
    Ok(next.call(req).await?.into_response())
}

