//! SQL over `delivery_attempts`, the log of every request sent: one row per
//! attempt, written together with the delivery's new state in one statement
//! (`record_batch`); the state only while the worker still holds its claim.
//! One row Postgres refuses never holds back the rest of its batch.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{deliveries::DeliveryStatus, Result};

/// `delivery_attempts.error_kind`, a `text` column: why an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AttemptErrorKind {
    /// The receiver answered outside 2xx (`status_code` says what).
    HttpStatus,
    Timeout,
    ConnectError,
    RequestError,
    /// The destination resolved to an address the SSRF guard refuses.
    BlockedAddress,
    /// The subscription has no unexpired secret to sign with.
    NoSigningKey,
    /// Postgres refused the attempt's result as it was (the delivery's
    /// `last_error` says why), so it was recorded without its details.
    UnstorableResult,
}

impl AttemptErrorKind {
    pub const ALL: [Self; 7] = [
        Self::HttpStatus,
        Self::Timeout,
        Self::ConnectError,
        Self::RequestError,
        Self::BlockedAddress,
        Self::NoSigningKey,
        Self::UnstorableResult,
    ];

    /// The stored and displayed name (the same as the sqlx encoding).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::RequestError => "request_error",
            Self::BlockedAddress => "blocked_address",
            Self::NoSigningKey => "no_signing_key",
            Self::UnstorableResult => "unstorable_result",
        }
    }
}

/// One logged attempt, as operators see it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error_kind: Option<AttemptErrorKind>,
    /// At most the first 4 KiB.
    pub response_body: Option<String>,
}

/// A delivery's attempts, oldest first.
pub async fn list_for(pool: &PgPool, delivery: Uuid) -> Result<Vec<Attempt>> {
    Ok(sqlx::query_as(
        "select attempt, started_at, duration_ms, status_code, error_kind, response_body
           from delivery_attempts where delivery_id = $1 order by id",
    )
    .bind(delivery)
    .fetch_all(pool)
    .await?)
}

/// An attempt's log row and the state its delivery moves to.
#[derive(Debug)]
pub struct AttemptResult {
    pub delivery_id: Uuid,
    /// The claim's fence: the new state is dropped if the delivery was claimed again.
    pub attempt: i32,
    pub status: DeliveryStatus,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// When to try again; `None` keeps the current `next_attempt_at`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub error_kind: Option<AttemptErrorKind>,
    pub response_body: Option<String>,
}

/// What became of one result handed to `record_batch`; shared because one
/// failed statement fails every result it held.
pub type Committed = Result<(), Arc<sqlx::Error>>;

/// Logs every attempt and applies each delivery's new state: one `Committed`
/// per result of `batch`, in order. A state update is guarded by the claim's
/// attempt number (a lost lease leaves the delivery to its new owner); the log
/// row is written either way, since the request was sent.
///
/// The batch goes in one statement, so one commit serves many deliveries. But
/// one row Postgres refuses (a data error: a value it cannot hold, a delivery
/// deleted meanwhile) fails that statement, and every delivery in it would
/// stay `delivering` and be sent again when its lease ran out: duplicates for
/// all, and the bad row sent forever. So after a data error the rows are
/// written one by one, and a row refused on its own is recorded as a failed
/// attempt saying why (see `record_unstorable`).
pub async fn record_batch(pool: &PgPool, batch: &[AttemptResult]) -> Vec<Committed> {
    match write_batch(pool, batch).await {
        Ok(()) => batch.iter().map(|_| Ok(())).collect(),
        Err(e) if crate::db::refuses_values(&e) => {
            if let [only] = batch {
                return vec![record_unstorable(pool, only, &e).await];
            }
            let mut committed = Vec::with_capacity(batch.len());
            for r in batch {
                committed.push(match write_batch(pool, std::slice::from_ref(r)).await {
                    Ok(()) => Ok(()),
                    Err(e) if crate::db::refuses_values(&e) => record_unstorable(pool, r, &e).await,
                    Err(e) => Err(Arc::new(e)),
                });
            }
            committed
        }
        Err(e) => {
            let e = Arc::new(e);
            batch.iter().map(|_| Err(e.clone())).collect()
        }
    }
}

/// Records `r`, which Postgres refused with `refused`, as a failed attempt
/// without the values that can be refused (the answer's body, the retry time),
/// and with the reason as the delivery's `last_error`. Failed rather than left
/// to retry: the same result would be refused again, and the request may well
/// have been delivered. Operators can resend it. When even this row is refused
/// (the delivery was deleted meanwhile) the error is this result's alone.
async fn record_unstorable(pool: &PgPool, r: &AttemptResult, refused: &sqlx::Error) -> Committed {
    tracing::warn!(
        delivery.id = %r.delivery_id,
        error.message = %refused,
        "an attempt's result could not be stored; the delivery is recorded as failed"
    );
    let reason = match refused {
        sqlx::Error::Database(db) => format!("{} (SQLSTATE {})", db.message(), db.code().unwrap_or_default()),
        other => other.to_string(),
    };
    let row = AttemptResult {
        delivery_id: r.delivery_id,
        attempt: r.attempt,
        status: DeliveryStatus::Failed,
        status_code: r.status_code,
        error: Some(format!("the attempt's result could not be stored: {reason}")),
        next_attempt_at: None,
        started_at: r.started_at,
        duration_ms: r.duration_ms,
        error_kind: Some(AttemptErrorKind::UnstorableResult),
        response_body: None,
    };
    write_batch(pool, std::slice::from_ref(&row)).await.map_err(Arc::new)
}

/// Writes every result of `batch` in one statement, or none.
async fn write_batch(pool: &PgPool, batch: &[AttemptResult]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with input as (
            select * from unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::text[], $6::timestamptz[],
                                 $7::timestamptz[], $8::int[], $9::text[], $10::text[])
                   as t(id, attempt, status, code, error, next, started_at, duration_ms, error_kind, body)),
         logged as (
            insert into delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_kind, response_body)
            select id, attempt, started_at, duration_ms, code, error_kind, body from input)
         update deliveries d
            set status = i.status, last_status = i.code, last_error = i.error, lease_until = null,
                next_attempt_at = coalesce(i.next, d.next_attempt_at),
                delivered_at = case when i.status = 'delivered' then now() else d.delivered_at end
           from input i
          where d.id = i.id and d.attempts = i.attempt",
    )
    .bind(batch.iter().map(|r| r.delivery_id).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.attempt).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.status_code).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.error.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.error_kind).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.response_body.clone()).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}
