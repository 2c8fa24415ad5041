//! SQL over `subscriptions` and `subscription_secrets`. A subscription is
//! `enabled` or `disabled`; only enabled ones get new deliveries (the fan-out
//! trigger) or have claimed ones sent. Its failure streak (`failing_since`) runs
//! from the first failure after a success; the worker disables it when the
//! streak outlives `RELEVO_OUTBOUND_DISABLE_AFTER` (see `disable`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;
use crate::sealing::Sealer;

/// `subscriptions.status`, a `text` column checked to these two values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Enabled,
    Disabled,
}

impl SubscriptionStatus {
    pub const ALL: [Self; 2] = [Self::Enabled, Self::Disabled];

    /// The stored and displayed name (the same as the sqlx encoding).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub status: SubscriptionStatus,
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
pub async fn create(pool: &PgPool, sealer: &Sealer, new: &NewSubscription<'_>) -> Result<(Subscription, Vec<u8>)> {
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
    insert_key_using(&mut tx, sealer, sub.id, &key).await?;
    tx.commit().await?;
    Ok((sub, key))
}

/// What a sealed signing key is bound to: its subscription.
pub(super) fn key_context(subscription_id: Uuid) -> String {
    format!("subscription_secret:{subscription_id}")
}

async fn insert_key_using(conn: &mut PgConnection, sealer: &Sealer, id: Uuid, key: &[u8]) -> Result<()> {
    sqlx::query("insert into subscription_secrets (subscription_id, key, sealed) values ($1, $2, true)")
        .bind(id)
        .bind(sealer.seal(&key_context(id), key))
        .execute(conn)
        .await?;
    Ok(())
}

/// Seals the signing keys stored before keys were sealed at rest (once, at
/// start-up; each row in its own statement, so a crash half-way loses nothing).
pub async fn seal_legacy_keys(pool: &PgPool, sealer: &Sealer) -> Result<u64> {
    let rows: Vec<(i64, Uuid, Vec<u8>)> =
        sqlx::query_as("select id, subscription_id, key from subscription_secrets where not sealed").fetch_all(pool).await?;
    for (id, subscription_id, key) in &rows {
        sqlx::query("update subscription_secrets set key = $2, sealed = true where id = $1 and not sealed")
            .bind(id)
            .bind(sealer.seal(&key_context(*subscription_id), key))
            .execute(pool)
            .await?;
    }
    Ok(rows.len() as u64)
}

/// A new key; the current ones keep signing for 24 hours.
pub async fn rotate(pool: &PgPool, sealer: &Sealer, id: Uuid) -> Result<Option<Vec<u8>>> {
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
    insert_key_using(&mut tx, sealer, id, &key).await?;
    tx.commit().await?;
    Ok(Some(key))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Subscription>> {
    let sql = format!("select {COLUMNS} from subscriptions where id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
}

pub async fn list(pool: &PgPool, limit: u32, cursor: Option<Uuid>) -> Result<(Vec<Subscription>, Option<Uuid>)> {
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
    pub status: Option<SubscriptionStatus>,
    pub rate_limit_per_sec: Option<i32>,
}

pub async fn update(pool: &PgPool, id: Uuid, p: &Patch) -> Result<Option<Subscription>> {
    let sql = format!(
        "update subscriptions set url = coalesce($2, url), event_types = coalesce($3, event_types),
                description = coalesce($4, description), rate_limit_per_sec = coalesce($6, rate_limit_per_sec),
                status = coalesce($5, status),
                disabled_reason = case when $5 = 'enabled' then null else disabled_reason end,
                failing_since = case when $5 = 'enabled' then null else failing_since end,
                updated_at = now()
          where id = $1 returning {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&p.url)
        .bind(&p.event_types)
        .bind(&p.description)
        .bind(p.status)
        .bind(p.rate_limit_per_sec)
        .fetch_optional(pool)
        .await?)
}

pub async fn delete(pool: &PgPool, id: Uuid) -> Result<bool> {
    Ok(sqlx::query("delete from subscriptions where id = $1").bind(id).execute(pool).await?.rows_affected() == 1)
}

/// Ends a failure streak after a success. Touches the (hot) row only to end a
/// streak, or at most once a second for `last_success_at`, so a busy endpoint
/// does not serialise its deliveries on this row.
pub async fn record_success(pool: &PgPool, id: Uuid) -> Result<()> {
    sqlx::query(
        "update subscriptions set failing_since = null, last_success_at = now()
          where id = $1 and (failing_since is not null or last_success_at is null
                             or last_success_at < now() - interval '1 second')",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Starts the failure streak unless one is running; returns when it started
/// (`None` if the subscription is gone).
pub async fn record_failure(pool: &PgPool, id: Uuid) -> Result<Option<DateTime<Utc>>> {
    let since: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "update subscriptions set failing_since = coalesce(failing_since, now()) where id = $1 returning failing_since",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(since.flatten())
}

/// Disables an enabled subscription; `false` if it was not enabled (already
/// disabled, or deleted), so the caller announces each disabling once.
pub async fn disable_using(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<bool> {
    let changed = sqlx::query(
        "update subscriptions set status = 'disabled', disabled_reason = $2, updated_at = now()
          where id = $1 and status = 'enabled'",
    )
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(changed.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::SubscriptionStatus;

    #[test]
    fn statuses_parse_from_their_names_only() {
        for s in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(SubscriptionStatus::parse("Enabled"), None);
        assert_eq!(SubscriptionStatus::parse("paused"), None);
    }
}
