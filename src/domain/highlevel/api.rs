//! Every call to HighLevel goes through `HighLevel::call`: a usable token
//! (refreshed single-flight when needed), a slot from the shared limiter, the
//! call, HighLevel's counters recorded, metrics; a 401 refreshes once and
//! retries, a 429 pauses the location. Errors stay typed (`CallError`);
//! workflows map them to step errors, HTTP handlers to answers.

use std::{future::Future, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use super::{
    rate_limit::{self, Slot},
    tokens::{TokenError, Tokens},
};
use crate::{
    config::RateLimit,
    providers::highlevel::client::{self, Called, Client},
    sealing::Sealer,
};

pub struct HighLevel {
    pub client: Arc<Client>,
    pub tokens: Arc<Tokens>,
    limit: RateLimit,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The location's requests are spaced out (or HighLevel said 429): come back at `until`.
    #[error("HighLevel rate limit of location {location}: next request at {until}")]
    RateLimited { location: String, until: DateTime<Utc> },
    #[error(transparent)]
    Api(client::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl CallError {
    /// Whether the same call may succeed later without anyone's help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token(TokenError::Transient { .. }) | Self::Database(_) => true,
            Self::Api(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl HighLevel {
    pub fn new(client: Arc<Client>, sealer: Sealer, limit: RateLimit) -> Arc<Self> {
        let tokens = Tokens::new(client.clone(), sealer);
        Arc::new(Self { client, tokens, limit })
    }

    /// Calls HighLevel for `location` with a valid token, within the rate limit.
    pub async fn call<T, F, Fut>(&self, pool: &PgPool, location: &str, operation: &'static str, request: F) -> Result<T, CallError>
    where
        F: Fn(SecretString) -> Fut,
        Fut: Future<Output = Called<T>>,
    {
        let mut refreshed = false;
        loop {
            let access = self.tokens.access(pool, location).await?;
            self.wait_for_slot(pool, location).await?;
            let started = Instant::now();
            let (limits, result) = request(access.token).await;
            self.record(pool, location, operation, &limits, &result, started).await;
            match result {
                Err(client::Error::Unauthorized(_)) if !refreshed => {
                    // Expired early or revoked: one refresh (single flight), then the call again.
                    refreshed = true;
                    self.tokens.refresh(pool, location, access.generation).await?;
                }
                Err(client::Error::RateLimited { retry_after_ms, .. }) => {
                    let for_ms = retry_after_ms.unwrap_or(10_000).clamp(1_000, 3_600_000);
                    rate_limit::pause(pool, location, for_ms).await?;
                    return Err(CallError::RateLimited {
                        location: location.to_owned(),
                        until: Utc::now() + chrono::Duration::milliseconds(for_ms),
                    });
                }
                other => return other.map_err(CallError::Api),
            }
        }
    }

    async fn wait_for_slot(&self, pool: &PgPool, location: &str) -> Result<(), CallError> {
        match rate_limit::take(pool, location, self.limit).await? {
            Slot::Reserved(wait) if wait.is_zero() => Ok(()),
            Slot::Reserved(wait) => {
                tokio::time::sleep(wait).await;
                // A 429 may have paused the location while this call waited.
                match rate_limit::paused_for(pool, location).await? {
                    None => Ok(()),
                    Some(left) => Err(CallError::RateLimited {
                        location: location.to_owned(),
                        until: Utc::now() + chrono::Duration::from_std(left).unwrap_or_default(),
                    }),
                }
            }
            Slot::Full(wait) => Err(CallError::RateLimited {
                location: location.to_owned(),
                until: Utc::now() + chrono::Duration::from_std(rate_limit::spread(wait)).unwrap_or_default(),
            }),
        }
    }

    async fn record<T>(
        &self,
        pool: &PgPool,
        location: &str,
        operation: &'static str,
        limits: &client::Limits,
        result: &Result<T, client::Error>,
        started: Instant,
    ) {
        let status = match result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics::counter!("relevo_highlevel_requests_total", "operation" => operation, "status" => status).increment(1);
        metrics::histogram!("relevo_highlevel_request_duration_seconds", "operation" => operation).record(started.elapsed());
        if let Some(remaining) = limits.remaining {
            metrics::gauge!("relevo_highlevel_rate_limit_remaining", "location" => location.to_owned()).set(remaining as f64);
        }
        if let Err(e) = rate_limit::observe(pool, location, limits).await {
            tracing::warn!(location, error.message = %e, "HighLevel's rate-limit counters were not recorded");
        }
    }
}
