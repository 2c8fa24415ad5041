//! Access tokens, and the rotation that never loses a refresh token.
//!
//! HighLevel's refresh tokens work once: the answer to a refresh carries the
//! next one, and a second use of the old one is refused. So a refresh is a
//! single flight per location across every task and node:
//! - in this process, one task per location refreshes; the others wait on it;
//! - across nodes, the refresher holds the location's row lock (`for update`)
//!   from reading the refresh token until the rotated pair is committed, and
//!   refreshes only if the stored `token_generation` is still the one its
//!   caller saw; a caller that finds it moved uses the new pair instead.
//! - The refresh runs in its own task, so a caller dropped half-way (a client
//!   that hung up, a shutdown) does not cancel it between HighLevel's answer
//!   and the commit of the pair.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use super::locations::{self, access_context, refresh_context, LocationStatus, TokenPair};
use crate::{providers::highlevel::client, sealing::Sealer};

/// A token is refreshed when it has less than this left, before being used.
const REFRESH_MARGIN_SECS: i64 = 120;

/// An access token and the generation of the pair it belongs to.
pub struct Access {
    pub token: SecretString,
    pub generation: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("HighLevel location {0} is not connected")]
    UnknownLocation(String),
    #[error("HighLevel location {location} needs to be reconnected (GET /highlevel/oauth/callback through the marketplace, or POST /api/v1/highlevel/locations): {reason}")]
    NeedsReauthorization { location: String, reason: String },
    /// HighLevel did not answer the refresh, or the database failed: retry later.
    #[error("refreshing the HighLevel token of {location} failed: {reason}")]
    Transient { location: String, reason: String },
}

pub struct Tokens {
    client: Arc<client::Client>,
    sealer: Sealer,
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Tokens {
    pub fn new(client: Arc<client::Client>, sealer: Sealer) -> Arc<Self> {
        Arc::new(Self { client, sealer, flights: Mutex::default() })
    }

    /// A usable access token for `location`, refreshed first if it is about to expire.
    pub async fn access(self: &Arc<Self>, pool: &PgPool, location: &str) -> Result<Access, TokenError> {
        let current = current(pool, location).await?;
        if current.token_expires_at > Utc::now() + Duration::seconds(REFRESH_MARGIN_SECS) {
            let token = self.open(&access_context(location), &current.access_token, location)?;
            return Ok(Access { token, generation: current.token_generation });
        }
        self.refresh(pool, location, current.token_generation).await
    }

    /// Rotates the pair of `location` unless someone already rotated past
    /// `seen_generation` (then that newer pair is returned).
    pub async fn refresh(self: &Arc<Self>, pool: &PgPool, location: &str, seen_generation: i64) -> Result<Access, TokenError> {
        let (this, pool, owned) = (self.clone(), pool.clone(), location.to_owned());
        let task = tokio::spawn(async move { this.refresh_alone(&pool, &owned, seen_generation).await });
        task.await.unwrap_or_else(|e| {
            Err(TokenError::Transient { location: location.to_owned(), reason: format!("the refresh task stopped: {e}") })
        })
    }

    /// Refreshes the pair if it expires before `before` (the recurring
    /// refresher); returns the expiry of the pair now stored.
    pub async fn refresh_if_expiring(self: &Arc<Self>, pool: &PgPool, location: &str, before: DateTime<Utc>) -> Result<DateTime<Utc>, TokenError> {
        let stored = current(pool, location).await?;
        if stored.token_expires_at >= before {
            return Ok(stored.token_expires_at);
        }
        self.refresh(pool, location, stored.token_generation).await?;
        Ok(current(pool, location).await?.token_expires_at)
    }

    async fn refresh_alone(&self, pool: &PgPool, location: &str, seen_generation: i64) -> Result<Access, TokenError> {
        let flight = self.flights.lock().expect("flights lock").entry(location.to_owned()).or_default().clone();
        let _alone_here = flight.lock().await;
        let mut tx = pool.begin().await.map_err(|e| transient(location, e))?;
        let row = sqlx::query!(
            "select status, status_reason, access_token, refresh_token, token_generation
               from highlevel_locations where id = $1 for update",
            location
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| transient(location, e))?
        .ok_or_else(|| TokenError::UnknownLocation(location.to_owned()))?;
        if LocationStatus::parse_db(&row.status) == LocationStatus::NeedsReauthorization {
            return Err(needs_reauthorization(location, row.status_reason));
        }
        if row.token_generation != seen_generation {
            // Someone rotated the pair since the caller read it: use theirs.
            let token = self.open(&access_context(location), &row.access_token, location)?;
            return Ok(Access { token, generation: row.token_generation });
        }
        let refresh_token = self.open(&refresh_context(location), &row.refresh_token, location)?;
        match self.client.refresh(&refresh_token).await {
            Ok(grant) => {
                let pair = TokenPair {
                    access: &grant.access_token,
                    refresh: &grant.refresh_token,
                    expires_in: grant.expires_in,
                    scopes: &grant.scopes,
                };
                locations::store_rotated_using(&mut tx, &self.sealer, location, &pair).await.map_err(|e| transient(location, e))?;
                // If this commit fails, the refresh token HighLevel just spent
                // is lost: nothing can recover it but a reconnection, which the
                // next refresh (refused) will ask for.
                tx.commit().await.map_err(|e| transient(location, e))?;
                metrics::counter!("relevo_highlevel_token_refreshes_total", "outcome" => "rotated").increment(1);
                tracing::info!(location, "HighLevel token pair rotated");
                Ok(Access { token: grant.access_token, generation: seen_generation + 1 })
            }
            Err(client::Error::InvalidGrant(reason)) => {
                locations::mark_needs_reauthorization_using(&mut tx, location, &reason)
                    .await
                    .map_err(|e| transient(location, e))?;
                tx.commit().await.map_err(|e| transient(location, e))?;
                metrics::counter!("relevo_highlevel_token_refreshes_total", "outcome" => "rejected").increment(1);
                tracing::warn!(location, reason = %reason, "HighLevel refused the refresh token: the location needs to be reconnected");
                Err(needs_reauthorization(location, Some(reason)))
            }
            Err(e) => {
                metrics::counter!("relevo_highlevel_token_refreshes_total", "outcome" => "failed").increment(1);
                Err(TokenError::Transient { location: location.to_owned(), reason: e.to_string() })
            }
        }
    }

    fn open(&self, context: &str, sealed: &[u8], location: &str) -> Result<SecretString, TokenError> {
        self.sealer.open_str(context, sealed).map_err(|e| TokenError::NeedsReauthorization {
            location: location.to_owned(),
            reason: e.to_string(),
        })
    }
}

struct Current {
    access_token: Vec<u8>,
    token_expires_at: DateTime<Utc>,
    token_generation: i64,
}

/// The stored pair's state; a location that must be reconnected is an error.
async fn current(pool: &PgPool, location: &str) -> Result<Current, TokenError> {
    let row = sqlx::query!(
        "select status, status_reason, access_token, token_expires_at, token_generation
           from highlevel_locations where id = $1",
        location
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| transient(location, e))?
    .ok_or_else(|| TokenError::UnknownLocation(location.to_owned()))?;
    if LocationStatus::parse_db(&row.status) == LocationStatus::NeedsReauthorization {
        return Err(needs_reauthorization(location, row.status_reason));
    }
    Ok(Current { access_token: row.access_token, token_expires_at: row.token_expires_at, token_generation: row.token_generation })
}

fn transient(location: &str, e: impl std::fmt::Display) -> TokenError {
    TokenError::Transient { location: location.to_owned(), reason: format!("database: {e}") }
}

fn needs_reauthorization(location: &str, reason: Option<String>) -> TokenError {
    TokenError::NeedsReauthorization {
        location: location.to_owned(),
        reason: reason.unwrap_or_else(|| "the refresh token was refused".into()),
    }
}
