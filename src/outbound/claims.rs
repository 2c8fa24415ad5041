//! The worker's claim on a delivery. Claiming moves due deliveries to
//! `delivering` with `FOR UPDATE SKIP LOCKED`, so nodes never take the same
//! row, and bumps `attempts`, which then fences every later write of that
//! claim: a write whose `attempts` no longer matches lost its lease (it
//! expired and another node claimed the delivery) and changes nothing. The
//! lease outlives the request timeout, so a live sender never loses it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{subscriptions::SubscriptionStatus, Result};
use crate::sealing::Sealer;

/// A claimed delivery with everything sending it needs, read in the claiming
/// statement. The event and subscription fields are `None` when the row was
/// deleted since the delivery was created.
#[derive(sqlx::FromRow)]
pub(super) struct Claimed {
    pub id: Uuid,
    pub event_id: Uuid,
    pub subscription_id: Uuid,
    /// This claim's number: the fence of its writes.
    pub attempt: i32,
    pub event_type: Option<String>,
    pub payload: Option<Value>,
    pub event_created_at: Option<DateTime<Utc>>,
    pub url: Option<String>,
    pub subscription_status: Option<SubscriptionStatus>,
    pub rate_limit_per_sec: Option<i32>,
    /// Active signing keys, newest first.
    pub keys: Option<Vec<Vec<u8>>>,
}

/// Claims up to `n` due deliveries: pending ones, and delivering ones whose
/// lease expired (their sender died).
pub(super) async fn claim_due(pool: &PgPool, sealer: &Sealer, n: i64, lease: Duration) -> Result<Vec<Claimed>> {
    // The status literals match the partial index `deliveries_due`; bound
    // parameters could not use it under a generic plan.
    let mut claimed: Vec<Claimed> = sqlx::query_as(
        "with claimed as (
            update deliveries d set status = 'delivering', attempts = d.attempts + 1,
                   lease_until = now() + make_interval(secs => $2)
             where d.id in (select id from deliveries
                             where next_attempt_at <= now()
                               and (status = 'pending' or (status = 'delivering' and lease_until < now()))
                             order by next_attempt_at limit $1 for update skip locked)
         returning d.id, d.event_id, d.subscription_id, d.attempts)
         select c.id, c.event_id, c.subscription_id, c.attempts as attempt,
                e.type as event_type, e.payload, e.created_at as event_created_at,
                s.url, s.status as subscription_status, s.rate_limit_per_sec,
                (select array_agg(k.key order by k.id desc) from subscription_secrets k
                  where k.subscription_id = c.subscription_id
                    and (k.expires_at is null or k.expires_at > now())) as keys
           from claimed c
           left join outbox_events e on e.id = c.event_id
           left join subscriptions s on s.id = c.subscription_id",
    )
    .bind(n)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    for c in &mut claimed {
        if let Some(sealed) = c.keys.take() {
            c.keys = Some(open_keys(sealer, c.subscription_id, &sealed));
        }
    }
    Ok(claimed)
}

/// Keys that do not open (another RELEVO_SECRET_KEY, tampering) are left out
/// and reported; with none left the delivery fails as `no_signing_key`.
fn open_keys(sealer: &Sealer, subscription_id: Uuid, sealed: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let context = super::subscriptions::key_context(subscription_id);
    sealed
        .iter()
        .filter_map(|k| {
            sealer
                .open(&context, k)
                .map_err(|e| tracing::warn!(subscription.id = %subscription_id, error.message = %e, "a signing key does not open"))
                .ok()
        })
        .collect()
}

/// Over the rate limit: back to pending for the next second, with the claim
/// not counted as an attempt.
pub(super) async fn release_throttled(pool: &PgPool, c: &Claimed) -> Result<()> {
    sqlx::query(
        "update deliveries set status = 'pending', attempts = attempts - 1, lease_until = null,
                next_attempt_at = date_trunc('second', clock_timestamp()) + interval '1 second'
          where id = $1 and attempts = $2",
    )
    .bind(c.id)
    .bind(c.attempt)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a delivery that cannot be sent at all; no request, so no attempt to log.
pub(super) async fn fail_unsendable(pool: &PgPool, c: &Claimed, reason: &str) -> Result<()> {
    sqlx::query(
        "update deliveries set status = 'failed', last_error = $3, lease_until = null
          where id = $1 and attempts = $2",
    )
    .bind(c.id)
    .bind(c.attempt)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}
