//! SQL over `subscriptions` and `subscription_secrets`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub status: String,
    pub rate_limit_per_sec: Option<i32>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, url, event_types, description, status, rate_limit_per_sec, disabled_reason, created_at, updated_at";

pub struct NewSubscription<'a> {
    pub url: &'a str,
    pub event_types: &'a [String],
    pub description: Option<&'a str>,
    pub rate_limit_per_sec: Option<i32>,
}

/// Creates the subscription and its first key; returns both.
pub async fn create(pool: &PgPool, new: &NewSubscription<'_>) -> Result<(Subscription, Vec<u8>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let sql = format!(
        "insert into subscriptions (id, url, event_types, description, rate_limit_per_sec)
         values ($1, $2, $3, $4, $5) returning {COLUMNS}"
    );
    let sub: Subscription = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(new.url)
        .bind(new.event_types)
        .bind(new.description)
        .bind(new.rate_limit_per_sec)
        .fetch_one(&mut *tx)
        .await?;
    let key = super::signing::new_key();
    insert_key_using(&mut tx, sub.id, &key).await?;
    tx.commit().await?;
    Ok((sub, key))
}

async fn insert_key_using(conn: &mut PgConnection, id: Uuid, key: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("insert into subscription_secrets (subscription_id, key) values ($1, $2)")
        .bind(id)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// A new key; the current ones keep signing for 24 hours.
pub async fn rotate(pool: &PgPool, id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let exists: Option<Uuid> = sqlx::query_scalar("select id from subscriptions where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "update subscription_secrets set expires_at = now() + interval '24 hours'
          where subscription_id = $1 and expires_at is null",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let key = super::signing::new_key();
    insert_key_using(&mut tx, id, &key).await?;
    tx.commit().await?;
    Ok(Some(key))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Subscription>, sqlx::Error> {
    let sql = format!("select {COLUMNS} from subscriptions where id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
}

pub async fn list(pool: &PgPool, limit: u32, cursor: Option<Uuid>) -> Result<(Vec<Subscription>, Option<Uuid>), sqlx::Error> {
    let sql = format!(
        "select {COLUMNS} from subscriptions where ($1::uuid is null or id < $1) order by id desc limit $2"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    Ok(crate::db::page::split(rows, limit, |s: &Subscription| s.id))
}

#[derive(Default)]
pub struct Patch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub rate_limit_per_sec: Option<i32>,
}

pub async fn update(pool: &PgPool, id: Uuid, p: &Patch) -> Result<Option<Subscription>, sqlx::Error> {
    let sql = format!(
        "update subscriptions set url = coalesce($2, url), event_types = coalesce($3, event_types),
                description = coalesce($4, description), rate_limit_per_sec = coalesce($6, rate_limit_per_sec),
                status = coalesce($5, status),
                disabled_reason = case when $5 = 'enabled' then null else disabled_reason end,
                failing_since = case when $5 = 'enabled' then null else failing_since end,
                updated_at = now()
          where id = $1 returning {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&p.url)
        .bind(&p.event_types)
        .bind(&p.description)
        .bind(&p.status)
        .bind(p.rate_limit_per_sec)
        .fetch_optional(pool)
        .await
}

pub async fn delete(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("delete from subscriptions where id = $1").bind(id).execute(pool).await?.rows_affected() == 1)
}
