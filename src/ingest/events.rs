//! SQL over `inbound_events`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use crate::providers::Provider;

/// A verified event about to be stored.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub provider: Provider,
    pub dedupe_key: String,
    pub provider_event_id: Option<String>,
    pub kind: String,
    pub headers: Value,
    pub body: String,
    pub payload: Value,
}

/// Inserts the events that are not duplicates, each pointing at `run_ids[i]`;
/// returns the ids (= indexes into `events`) actually inserted.
pub async fn insert_new_using(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    ids: &[Uuid],
    run_ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let col = |f: fn(&NewEvent) -> String| events.iter().map(|e| f(e)).collect::<Vec<String>>();
    let providers = col(|e| e.provider.as_str().to_owned());
    let keys = col(|e| e.dedupe_key.clone());
    let kinds = col(|e| e.kind.clone());
    let bodies = col(|e| e.body.clone());
    let provider_ids: Vec<Option<String>> = events.iter().map(|e| e.provider_event_id.clone()).collect();
    let headers: Vec<Value> = events.iter().map(|e| e.headers.clone()).collect();
    let payloads: Vec<Value> = events.iter().map(|e| e.payload.clone()).collect();
    sqlx::query_scalar(
        "insert into inbound_events (id, provider, dedupe_key, provider_event_id, type, headers, body, payload, run_id)
         select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                              $7::text[], $8::jsonb[], $9::uuid[])
         on conflict (provider, dedupe_key) do nothing
         returning id",
    )
    .bind(ids)
    .bind(&providers)
    .bind(&keys)
    .bind(&provider_ids)
    .bind(&kinds)
    .bind(&headers)
    .bind(&bodies)
    .bind(&payloads)
    .bind(run_ids)
    .fetch_all(conn)
    .await
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub provider: String,
    pub provider_event_id: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub received_at: DateTime<Utc>,
    pub run_id: Uuid,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Newest first; the cursor is the last id of the previous page (UUIDv7).
pub async fn list(
    pool: &PgPool,
    f: &EventFilter,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<(Vec<EventRow>, Option<Uuid>), sqlx::Error> {
    let mut q = QueryBuilder::new(
        "select id, provider, provider_event_id, type, received_at, run_id from inbound_events where true",
    );
    if let Some(p) = &f.provider {
        q.push(" and provider = ").push_bind(p.clone());
    }
    if let Some(k) = &f.kind {
        q.push(" and type = ").push_bind(k.clone());
    }
    if let Some(t) = f.since {
        q.push(" and received_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" and received_at < ").push_bind(t);
    }
    if let Some(c) = cursor {
        q.push(" and id < ").push_bind(c);
    }
    q.push(" order by id desc limit ").push_bind(i64::from(limit) + 1);
    let rows: Vec<EventRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::db::page::split(rows, limit, |r| r.id))
}

/// One event with its payload, headers and its run's status.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventDetail {
    #[sqlx(flatten)]
    pub event: EventRow,
    pub payload: Value,
    pub headers: Value,
    pub run_status: String,
}

pub async fn show(pool: &PgPool, id: Uuid) -> Result<Option<EventDetail>, sqlx::Error> {
    sqlx::query_as(
        "select e.id, e.provider, e.provider_event_id, e.type, e.received_at, e.run_id,
                e.payload, e.headers, r.status::text as run_status
           from inbound_events e join engine.runs r on r.id = e.run_id
          where e.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The stored JSON of one event (what its route is read from).
pub async fn payload(pool: &PgPool, id: Uuid) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar("select payload from inbound_events where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}
