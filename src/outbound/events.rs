//! SQL over `outbox_events` as subscribers see them: events Relevo's own flows
//! record (`domain::outbox`, source `relevo`) and events the shop publishes
//! through the API (source `api`). Inserting one fans it out to deliveries in
//! the same transaction (a trigger), so publishing is a single insert. An
//! idempotency key, when given, is unique: publishing it again is a no-op.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::Result;

/// `outbox_events.source`, a `text` column: who published the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum EventSource {
    /// Relevo's own flows (the column's default).
    Relevo,
    /// `POST /api/v1/outbound-events`.
    Api,
}

impl EventSource {
    /// The stored and displayed name (the same as the sqlx encoding).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relevo => "relevo",
            Self::Api => "api",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboundEvent {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub payload: Value,
    pub idempotency_key: Option<String>,
    pub source: EventSource,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, type, payload, idempotency_key, source, created_at";

/// Publishes an event from the shop's systems. With an idempotency key that was
/// used before, returns the earlier event and `false`.
pub async fn publish(pool: &PgPool, kind: &str, payload: &Value, idempotency_key: Option<&str>) -> Result<(Uuid, bool)> {
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "insert into outbox_events (id, type, payload, idempotency_key, source) values ($1, $2, $3, $4, $5)
         on conflict (idempotency_key) do nothing returning id",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(idempotency_key)
    .bind(EventSource::Api)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(id) => Ok((id, true)),
        None => {
            let existing = sqlx::query_scalar("select id from outbox_events where idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(pool)
                .await?;
            Ok((existing, false))
        }
    }
}

/// An event known to exist (one `publish` returned); a missing one is an error.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<OutboundEvent> {
    let sql = format!("select {COLUMNS} from outbox_events where id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(pool).await?)
}

/// Newest first, a keyset page after `cursor`.
pub async fn list(pool: &PgPool, limit: u32, cursor: Option<Uuid>) -> Result<(Vec<OutboundEvent>, Option<Uuid>)> {
    let sql = format!(
        "select {COLUMNS} from outbox_events
          where ($1::uuid is null or id < $1) order by id desc limit $2"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    Ok(crate::db::page::split(rows, limit, |e: &OutboundEvent| e.id))
}
