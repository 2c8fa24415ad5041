//! Customers: one row per person, found by WhatsApp number (`wa_id`) or
//! e-mail (case-insensitive). Creating one writes `customer.created`; a change
//! of name or phone writes `customer.updated`, both through the outbox in the
//! caller's transaction.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::outbox::{self, EventType};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: Uuid,
    pub wa_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a person is recognised.
#[derive(Clone, Copy, Debug)]
pub enum Identity<'a> {
    WhatsApp(&'a str),
    /// Any case; stored lowercased.
    Email(&'a str),
}

/// What is known about the person now (`None`: keep what is stored).
#[derive(Clone, Copy, Debug, Default)]
pub struct Details<'a> {
    pub name: Option<&'a str>,
    pub phone: Option<&'a str>,
}

/// The customer `identity` names, created (`customer.created`) or brought up
/// to date (`customer.updated` when the name or phone changed), in the
/// caller's transaction; the row stays locked until it ends.
pub async fn upsert_using(conn: &mut PgConnection, identity: Identity<'_>, details: Details<'_>) -> Result<CustomerRow, sqlx::Error> {
    let (wa_id, email) = match identity {
        Identity::WhatsApp(wa_id) => (Some(wa_id.to_owned()), None),
        Identity::Email(email) => (None, Some(email.trim().to_lowercase())),
    };
    // Concurrent first contacts: one insert wins, the others find its row.
    let inserted = sqlx::query_as!(
        CustomerRow,
        "insert into customers (wa_id, email, name, phone) values ($1, $2, $3, $4)
         on conflict do nothing
         returning id, wa_id, email, name, phone, created_at, updated_at",
        wa_id,
        email,
        details.name,
        details.phone,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(created) = inserted {
        outbox::record_using(conn, EventType::CustomerCreated, event_payload(&created)).await?;
        return Ok(created);
    }
    let current = sqlx::query_as!(
        CustomerRow,
        "select id, wa_id, email, name, phone, created_at, updated_at from customers
          where ($1::text is not null and wa_id = $1) or ($2::text is not null and email = $2)
          for update",
        wa_id,
        email,
    )
    .fetch_one(&mut *conn)
    .await?;
    let changed = |new: Option<&str>, old: &Option<String>| new.is_some_and(|n| !n.is_empty() && old.as_deref() != Some(n));
    if !changed(details.name, &current.name) && !changed(details.phone, &current.phone) {
        return Ok(current);
    }
    let updated = sqlx::query_as!(
        CustomerRow,
        "update customers set name = coalesce($2, name), phone = coalesce($3, phone), updated_at = now()
          where id = $1
         returning id, wa_id, email, name, phone, created_at, updated_at",
        current.id,
        details.name,
        details.phone,
    )
    .fetch_one(&mut *conn)
    .await?;
    outbox::record_using(conn, EventType::CustomerUpdated, event_payload(&updated)).await?;
    Ok(updated)
}

fn event_payload(c: &CustomerRow) -> serde_json::Value {
    json!({"customer_id": c.id, "wa_id": c.wa_id, "email": c.email, "name": c.name, "phone": c.phone})
}

/// Newest first; `cursor` is the last id of the previous page.
pub async fn list(pool: &PgPool, limit: u32, cursor: Option<Uuid>) -> Result<(Vec<CustomerRow>, Option<Uuid>), sqlx::Error> {
    let rows = sqlx::query_as!(
        CustomerRow,
        "select id, wa_id, email, name, phone, created_at, updated_at from customers
          where ($1::uuid is null or id < $1) order by id desc limit $2",
        cursor,
        i64::from(limit) + 1,
    )
    .fetch_all(pool)
    .await?;
    Ok(crate::db::page::split(rows, limit, |r| r.id))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        "select id, wa_id, email, name, phone, created_at, updated_at from customers where id = $1",
        id,
    )
    .fetch_optional(pool)
    .await
}
