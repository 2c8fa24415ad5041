//! The HTTP surface: poem app, OpenAPI spec and docs, error mapping, auth.

pub mod auth;
pub mod error;
mod health;
pub mod runs;

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
}

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness, readiness and metrics.
    Health,
    /// Durable workflow runs: list, inspect, retry, cancel.
    Runs,
}

type Apis = (health::HealthApi, runs::RunsApi);

fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new((health::HealthApi, runs::RunsApi), "Relevo", env!("CARGO_PKG_VERSION"))
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
        .nest("/", api.around(empty_body_is_json_null))
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .data(state)
        .catch_all_error(error::to_json_error)
        .with(Tracing)
}

/// Ops commands such as `POST /api/v1/runs/{id}/retry` take an optional JSON
/// body; a bodiless POST (curl -X POST) is read as JSON `null` instead of
/// being refused as an unsupported media type.
async fn empty_body_is_json_null<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let bodiless = req.method() == Method::POST
        && !req.headers().contains_key(header::CONTENT_TYPE)
        && !req.headers().contains_key(header::TRANSFER_ENCODING)
        && req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    if bodiless {
        req.headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        req.headers_mut().insert(header::CONTENT_LENGTH, header::HeaderValue::from_static("4"));
        req.set_body("null");
    }
    Ok(next.call(req).await?.into_response())
}
