//! The HTTP surface: poem app, OpenAPI spec and docs, error mapping, auth.

pub mod auth;
pub mod error;
mod events;
mod health;
mod orders;
mod outbound;
mod products;
pub mod runs;
mod webhooks;

use std::sync::Arc;

use poem::{
    http::{header, Method},
    middleware::Tracing,
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
    /// Orders and the e-mail outbox.
    Orders,
    /// Outbound signed webhooks: subscriptions, events, deliveries.
    Outbound,
    /// Provider webhook receivers (authenticated by provider signatures).
    Webhooks,
}

type Apis = (
    health::HealthApi,
    runs::RunsApi,
    events::EventsApi,
    (products::ProductsApi, orders::OrdersApi, outbound::OutboundApi),
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
        .at("/openapi.json", spec)
        .data(state)
        .catch_all_error(error::to_json_error)
        .with(Tracing)
}

/// A POST without `Content-Type` is read as JSON rather than refused with 415:
/// webhook senders are not always careful with the header (the signature, not
/// the header, decides), and ops commands such as `POST /api/v1/runs/{id}/retry`
/// take an optional body, so a bodiless POST (curl -X POST) reads as `null`.
async fn default_to_json<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    if req.method() == Method::POST && !req.headers().contains_key(header::CONTENT_TYPE) {
        let empty = !req.headers().contains_key(header::TRANSFER_ENCODING)
            && req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() == b"0");
        req.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        if empty {
            req.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("4"));
            req.set_body("null");
        }
    }
    Ok(next.call(req).await?.into_response())
}

/// A list endpoint's `cursor`: the UUID of the last item of the previous page.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<uuid::Uuid>, error::ApiError> {
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => uuid::Uuid::parse_str(c)
            .map(Some)
            .map_err(|_| error::ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")),
    }
}
