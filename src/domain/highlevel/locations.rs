//! SQL over `highlevel_locations`: connected HighLevel sub-accounts, their
//! sealed token pair and their settings. Tokens are sealed here on the way in
//! and opened only by `tokens`; nothing else ever sees them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use secrecy::SecretString;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};

use super::hours::BusinessHours;
use crate::sealing::Sealer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocationStatus {
    Connected,
    /// The refresh token was refused: someone must connect the location again.
    NeedsReauthorization,
}

impl LocationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReauthorization => "needs_reauthorization",
        }
    }

    pub(super) fn parse_db(s: &str) -> Self {
        if s == "connected" {
            Self::Connected
        } else {
            Self::NeedsReauthorization
        }
    }
}

/// A connected location as ops see it (no tokens).
#[derive(Clone, Debug)]
pub struct Location {
    pub id: String,
    pub company_id: Option<String>,
    pub status: LocationStatus,
    pub status_reason: Option<String>,
    pub token_expires_at: DateTime<Utc>,
    pub refreshed_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub default_calendar_id: Option<String>,
    pub timezone: Tz,
    pub business_hours: BusinessHours,
    /// HighLevel's counters from its last answer.
    pub rate_remaining: Option<i32>,
    pub daily_remaining: Option<i32>,
    pub rate_observed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A token pair to store.
pub struct TokenPair<'a> {
    pub access: &'a SecretString,
    pub refresh: &'a SecretString,
    pub expires_in: i64,
    pub scopes: &'a [String],
}

impl TokenPair<'_> {
    /// The access and refresh tokens sealed for location `id`'s row.
    fn sealed(&self, sealer: &Sealer, id: &str) -> (Vec<u8>, Vec<u8>) {
        (sealer.seal_str(&access_context(id), self.access), sealer.seal_str(&refresh_context(id), self.refresh))
    }
}

pub fn access_context(location: &str) -> String {
    format!("highlevel:access:{location}")
}

pub fn refresh_context(location: &str) -> String {
    format!("highlevel:refresh:{location}")
}

/// Stores a freshly granted pair for `id` (a new install, or a reconnection):
/// the location is `connected` again and its token generation moves on, so
/// callers holding the old pair refresh against the new one.
pub async fn connect_using(
    conn: &mut PgConnection,
    sealer: &Sealer,
    id: &str,
    company_id: Option<&str>,
    pair: &TokenPair<'_>,
) -> sqlx::Result<()> {
    let (access, refresh) = pair.sealed(sealer, id);
    sqlx::query!(
        "insert into highlevel_locations (id, company_id, access_token, refresh_token, token_expires_at, scopes)
         values ($1, $2, $3, $4, now() + make_interval(secs => $5), $6)
         on conflict (id) do update
            set company_id = coalesce(excluded.company_id, highlevel_locations.company_id),
                status = 'connected', status_reason = null,
                access_token = excluded.access_token, refresh_token = excluded.refresh_token,
                token_expires_at = excluded.token_expires_at, scopes = excluded.scopes,
                token_generation = highlevel_locations.token_generation + 1, updated_at = now()",
        id,
        company_id,
        access,
        refresh,
        pair.expires_in as f64,
        pair.scopes,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The rotated pair, in the refresher's transaction (which holds the row lock).
pub(super) async fn store_rotated_using(
    conn: &mut PgConnection,
    sealer: &Sealer,
    id: &str,
    pair: &TokenPair<'_>,
) -> sqlx::Result<()> {
    let (access, refresh) = pair.sealed(sealer, id);
    sqlx::query!(
        "update highlevel_locations
            set access_token = $2, refresh_token = $3, token_expires_at = now() + make_interval(secs => $4),
                scopes = case when cardinality($5::text[]) > 0 then $5 else scopes end,
                token_generation = token_generation + 1, refreshed_at = now(), updated_at = now()
          where id = $1",
        id,
        access,
        refresh,
        pair.expires_in as f64,
        pair.scopes,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn mark_needs_reauthorization_using(conn: &mut PgConnection, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update highlevel_locations set status = 'needs_reauthorization', status_reason = $2, updated_at = now() where id = $1",
        id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The refresher run the location has, if it is still going.
pub async fn live_refresher_using(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<uuid::Uuid>> {
    sqlx::query_scalar!(
        "select l.refresher_run_id as \"id!\" from highlevel_locations l
           join engine.runs r on r.id = l.refresher_run_id
          where l.id = $1 and r.status in ('pending', 'running', 'sleeping')",
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn set_refresher_using(conn: &mut PgConnection, id: &str, run_id: uuid::Uuid) -> sqlx::Result<()> {
    sqlx::query!("update highlevel_locations set refresher_run_id = $2 where id = $1", id, run_id)
        .execute(conn)
        .await?;
    Ok(())
}

const SELECT: &str = "select l.id, l.company_id, l.status, l.status_reason, l.token_expires_at, l.refreshed_at,
        l.scopes, l.default_calendar_id, l.timezone, l.business_hours, l.created_at, l.updated_at,
        r.remaining as rate_remaining, r.daily_remaining, r.observed_at as rate_observed_at
   from highlevel_locations l left join highlevel_rate_limits r on r.location_id = l.id";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    company_id: Option<String>,
    status: String,
    status_reason: Option<String>,
    token_expires_at: DateTime<Utc>,
    refreshed_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    default_calendar_id: Option<String>,
    timezone: String,
    business_hours: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    rate_remaining: Option<i32>,
    daily_remaining: Option<i32>,
    rate_observed_at: Option<DateTime<Utc>>,
}

impl From<Row> for Location {
    fn from(r: Row) -> Self {
        Self {
            status: LocationStatus::parse_db(&r.status),
            // Both were validated on the way in; a bad stored value falls back to the defaults.
            timezone: r.timezone.parse().unwrap_or(chrono_tz::America::Lima),
            business_hours: serde_json::from_value(r.business_hours).unwrap_or_default(),
            id: r.id,
            company_id: r.company_id,
            status_reason: r.status_reason,
            token_expires_at: r.token_expires_at,
            refreshed_at: r.refreshed_at,
            scopes: r.scopes,
            default_calendar_id: r.default_calendar_id,
            rate_remaining: r.rate_remaining,
            daily_remaining: r.daily_remaining,
            rate_observed_at: r.rate_observed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub async fn get(pool: &PgPool, id: &str) -> sqlx::Result<Option<Location>> {
    let sql = format!("{SELECT} where l.id = $1");
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
    Ok(row.map(Location::from))
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Location>> {
    let sql = format!("{SELECT} order by l.id");
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Location::from).collect())
}

/// Settings a PATCH may change; `None` keeps the stored value
/// (`default_calendar_id: Some(None)` clears it).
#[derive(Default)]
pub struct SettingsChange {
    pub default_calendar_id: Option<Option<String>>,
    pub timezone: Option<Tz>,
    pub business_hours: Option<BusinessHours>,
}

pub async fn update_settings(pool: &PgPool, id: &str, change: &SettingsChange) -> sqlx::Result<Option<Location>> {
    let hours = change.business_hours.as_ref().map(|h| serde_json::to_value(h).expect("hours serialise"));
    let updated = sqlx::query!(
        "update highlevel_locations
            set default_calendar_id = case when $2 then $3 else default_calendar_id end,
                timezone = coalesce($4, timezone),
                business_hours = coalesce($5, business_hours),
                updated_at = now()
          where id = $1",
        id,
        change.default_calendar_id.is_some(),
        change.default_calendar_id.clone().flatten(),
        change.timezone.map(|tz| tz.name().to_owned()),
        hours,
    )
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    get(pool, id).await
}
