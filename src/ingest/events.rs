//! SQL over `inbound_events`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, QueryBuilder};
use uuid::Uuid;

use std::sync::Arc;

use crate::providers::Provider;

/// A verified event about to be stored. Built only by `new`, which makes every
/// field storable, so no single request can make a batch's commit fail.
#[derive(Clone, Debug)]
pub struct NewEvent {
    provider: Provider,
    dedupe_key: String,
    provider_event_id: Option<String>,
    kind: String,
    headers: Value,
    body: Arc<RawBody>,
    payload: Value,
    /// Kept for audit only: no run starts.
    ignored_reason: Option<String>,
    /// Events sharing it (a WhatsApp sender) are handled in arrival order.
    sequence_key: Option<String>,
}

/// The raw body of one request, shared by the events it carries and stored once.
#[derive(Debug)]
pub struct RawBody {
    id: Uuid,
    text: String,
}

impl RawBody {
    /// The body as received; invalid UTF-8 (which no verifier accepts as JSON) is replaced.
    pub fn new(bytes: &[u8]) -> Arc<Self> {
        Arc::new(Self {
            id: Uuid::now_v7(),
            text: storable_text(String::from_utf8_lossy(bytes).into_owned()),
        })
    }
}

/// Longest dedupe key stored as sent; longer ones are hashed (the unique
/// index refuses entries over ~2.7 kB).
const MAX_KEY_BYTES: usize = 256;

impl NewEvent {
    /// Postgres refuses NUL in `text` and `\u0000` in `jsonb`: NUL becomes
    /// U+FFFD in the stored copies (the raw body keeps the sender's escape),
    /// and a key that is too long or carries NUL is replaced by its SHA-256.
    pub fn new(
        provider: Provider,
        dedupe_key: String,
        provider_event_id: Option<String>,
        kind: String,
        headers: Value,
        body: Arc<RawBody>,
        payload: Value,
    ) -> Self {
        Self {
            provider,
            dedupe_key: storable_key(dedupe_key),
            provider_event_id: provider_event_id.map(storable_text),
            kind: storable_text(kind),
            headers: storable_json(headers),
            body,
            payload: storable_json(payload),
            ignored_reason: None,
            sequence_key: None,
        }
    }

    /// Handles this event after the earlier ones of `key` (same sender).
    pub fn in_sequence(mut self, key: String) -> Self {
        self.sequence_key = Some(key);
        self
    }

    pub fn sequence_key(&self) -> Option<&str> {
        self.sequence_key.as_deref()
    }

    /// Stores the event for audit without acting on it.
    pub fn ignore(mut self, reason: String) -> Self {
        self.ignored_reason = Some(storable_text(reason));
        self
    }

    pub fn is_ignored(&self) -> bool {
        self.ignored_reason.is_some()
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What makes a redelivery a duplicate.
    pub fn identity(&self) -> (&'static str, &str) {
        (self.provider.as_str(), &self.dedupe_key)
    }
}

fn storable_key(key: String) -> String {
    if key.len() <= MAX_KEY_BYTES && !key.contains('\0') {
        return key;
    }
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// Rebuilds the JSON only when it holds a NUL: the hot path (no NUL) returns
/// it untouched, without reallocating every object.
fn storable_json(value: Value) -> Value {
    if has_nul(&value) {
        replace_nul(value)
    } else {
        value
    }
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn replace_nul(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(storable_text(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(replace_nul).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (storable_text(k), replace_nul(v))).collect()),
        other => other,
    }
}

/// Inserts the events that are not duplicates, each pointing at `run_ids[i]`
/// (none for ignored events), and the raw bodies of those inserted (once per
/// request); returns the ids actually inserted. One statement.
pub async fn insert_new_using(
    conn: &mut PgConnection,
    events: &[&NewEvent],
    ids: &[Uuid],
    run_ids: &[Option<Uuid>],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let col = |f: fn(&NewEvent) -> String| events.iter().map(|e| f(e)).collect::<Vec<String>>();
    // `events` come in identity order (see the writer): keep it.
    let providers = col(|e| e.provider.as_str().to_owned());
    let keys = col(|e| e.dedupe_key.clone());
    let kinds = col(|e| e.kind.clone());
    let provider_ids: Vec<Option<String>> = events.iter().map(|e| e.provider_event_id.clone()).collect();
    let headers: Vec<Value> = events.iter().map(|e| e.headers.clone()).collect();
    let payloads: Vec<Value> = events.iter().map(|e| e.payload.clone()).collect();
    let ignored: Vec<Option<String>> = events.iter().map(|e| e.ignored_reason.clone()).collect();
    let body_ids: Vec<Uuid> = events.iter().map(|e| e.body.id).collect();
    let mut bodies: Vec<&RawBody> = events.iter().map(|e| e.body.as_ref()).collect();
    bodies.sort_by_key(|b| b.id);
    bodies.dedup_by_key(|b| b.id);
    let (unique_body_ids, texts): (Vec<Uuid>, Vec<&str>) = bodies.iter().map(|b| (b.id, b.text.as_str())).unzip();
    sqlx::query_scalar(
        "with new_events as (
             insert into inbound_events (id, provider, dedupe_key, provider_event_id, type, headers, body_id, payload,
                                         run_id, ignored_reason)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                                  $7::uuid[], $8::jsonb[], $9::uuid[], $12::text[])
             on conflict (provider, dedupe_key) do nothing
             returning id, body_id
         ), new_bodies as (
             insert into inbound_bodies (id, body)
             select b.id, b.body from unnest($10::uuid[], $11::text[]) as b(id, body)
              where b.id in (select body_id from new_events)
         )
         select id from new_events",
    )
    .bind(ids)
    .bind(&providers)
    .bind(&keys)
    .bind(&provider_ids)
    .bind(&kinds)
    .bind(&headers)
    .bind(&body_ids)
    .bind(&payloads)
    .bind(run_ids)
    .bind(&unique_body_ids)
    .bind(&texts)
    .bind(&ignored)
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
    /// None when the event was ignored, or its run was pruned before it.
    pub run_id: Option<Uuid>,
    pub ignored_reason: Option<String>,
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
        "select id, provider, provider_event_id, type, received_at, run_id, ignored_reason from inbound_events where true",
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
    pub run_status: Option<String>,
}

pub async fn show(pool: &PgPool, id: Uuid) -> Result<Option<EventDetail>, sqlx::Error> {
    sqlx::query_as(
        "select e.id, e.provider, e.provider_event_id, e.type, e.received_at, e.run_id, e.ignored_reason,
                e.payload, e.headers, r.status::text as run_status
           from inbound_events e left join engine.runs r on r.id = e.run_id
          where e.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The stored JSON of one event (what its route is read from).
pub async fn payload(pool: &PgPool, id: Uuid) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar!("select payload from inbound_events where id = $1", id).fetch_one(pool).await
}


/// Deletes events received longer than `age` ago (their runs were pruned
/// earlier, or are pruned with them: `run_id` is set null), then the bodies no
/// event references any more.
pub async fn prune(pool: &PgPool, age: std::time::Duration) -> Result<u64, crate::engine::Error> {
    let events = crate::engine::retention::delete_in_batches(pool, |limit| {
        sqlx::query(
            "delete from inbound_events where id in (
                select id from inbound_events where received_at < now() - make_interval(secs => $1) limit $2)",
        )
        .bind(age.as_secs_f64())
        .bind(limit)
    })
    .await?;
    crate::engine::retention::delete_in_batches(pool, |limit| {
        sqlx::query(
            "delete from inbound_bodies where id in (
                select b.id from inbound_bodies b
                 where b.received_at < now() - make_interval(secs => $1)
                   and not exists (select 1 from inbound_events e where e.body_id = b.id)
                 limit $2)",
        )
        .bind(age.as_secs_f64())
        .bind(limit)
    })
    .await?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_and_oversized_keys_become_storable() {
        let e = NewEvent::new(
            Provider::Stripe,
            "evt\0x".into(),
            Some("evt\0x".into()),
            "payment_intent.succeeded".into(),
            json!({}),
            RawBody::new(b"{}"),
            json!({"a\0": ["b\0", {"c": "d\0"}], "n": 1}),
        );
        assert!(e.dedupe_key.starts_with("sha256:") && e.dedupe_key.len() == 71);
        assert_eq!(e.provider_event_id.as_deref(), Some("evt\u{FFFD}x"));
        assert_eq!(e.payload, json!({"a\u{FFFD}": ["b\u{FFFD}", {"c": "d\u{FFFD}"}], "n": 1}));
        let long = NewEvent::new(Provider::Stripe, "k".repeat(3000), None, "t".into(), json!({}), RawBody::new(b""), json!({}));
        assert!(long.dedupe_key.starts_with("sha256:"));
        let plain = NewEvent::new(Provider::Stripe, "evt_1".into(), None, "t".into(), json!({}), RawBody::new(b""), json!({}));
        assert_eq!(plain.dedupe_key, "evt_1");
    }
}
