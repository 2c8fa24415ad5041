//! The HTTP surface: poem app, OpenAPI spec and docs, error mapping, auth.

pub mod auth;
pub mod error;
mod health;
pub mod runs;

use std::sync::Arc;

use poem::{middleware::Tracing, Endpoint, EndpointExt, Route};
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
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", spec)
        .data(state)
        .catch_all_error(error::to_json_error)
        .with(Tracing)
}
