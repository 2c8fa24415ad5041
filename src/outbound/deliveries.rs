//! SQL over `deliveries`: one row per (event, subscription), created by the
//! fan-out trigger in the event's transaction (or by `ops::send_test`). Its
//! status moves `pending → delivering → delivered | failed`, or back to
//! `pending` for a retry; `attempts` counts claims and fences every write of
//! the worker (see `claims`). Operators may queue any delivery again.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Result;

/// The channel workers LISTEN on. The fan-out trigger
/// (`fan_out_outbox_event`, a migration) notifies the same name: a durable contract.
pub const NOTIFY_CHANNEL: &str = "relevo_deliveries";

/// `deliveries.status`, a `text` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for `next_attempt_at`.
    Pending,
    /// Claimed by a worker until `lease_until`.
    Delivering,
    Delivered,
    /// Given up: the schedule ran out, the endpoint is gone, or it cannot be sent.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Delivering, Self::Delivered, Self::Failed];

    /// The stored and displayed name (the same as the sqlx encoding).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A delivery as operators see it, with its event's type.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subscription_id: Uuid,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "d.id, d.event_id, e.type as event_type, d.subscription_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at";

/// What `list` narrows to; `None` fields do not filter.
#[derive(Default)]
pub struct Filter {
    pub subscription_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<String>,
}

/// Newest first, a keyset page after `cursor`. Ids are UUIDv7 made by the
/// database (`gen_uuid_v7`, the column default), so id order is creation order
/// and one id is a complete cursor.
pub async fn list(pool: &PgPool, filter: &Filter, limit: u32, cursor: Option<Uuid>) -> Result<(Vec<Delivery>, Option<Uuid>)> {
    let sql = format!(
        "select {COLUMNS} from deliveries d join outbox_events e on e.id = d.event_id
          where ($1::uuid is null or d.subscription_id = $1) and ($2::text is null or d.status = $2)
            and ($3::text is null or e.type = $3) and ($4::uuid is null or d.id < $4)
          order by d.id desc limit $5"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter.subscription_id)
        .bind(filter.status)
        .bind(&filter.event_type)
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    Ok(crate::db::page::split(rows, limit, |d: &Delivery| d.id))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Delivery>> {
    let sql = format!("select {COLUMNS} from deliveries d join outbox_events e on e.id = d.event_id where d.id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?)
}

/// A delivery of `event` to one subscription, due now. The caller notifies the
/// workers once its transaction holds everything it queued.
pub async fn insert_using(conn: &mut PgConnection, event: Uuid, subscription: Uuid) -> Result<Uuid> {
    Ok(sqlx::query_scalar("insert into deliveries (event_id, subscription_id) values ($1, $2) returning id")
        .bind(event)
        .bind(subscription)
        .fetch_one(conn)
        .await?)
}

/// Queues a delivery again now, whatever its status; `false` if it does not exist.
pub async fn requeue_using(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let done = sqlx::query(
        "update deliveries set status = 'pending', next_attempt_at = now(), lease_until = null where id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queues again every failed delivery of a subscription created since `since`.
pub async fn requeue_failed_using(conn: &mut PgConnection, subscription: Uuid, since: DateTime<Utc>) -> Result<u64> {
    let done = sqlx::query(
        "update deliveries set status = 'pending', next_attempt_at = now(), lease_until = null
          where subscription_id = $1 and status = 'failed' and created_at >= $2",
    )
    .bind(subscription)
    .bind(since)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Wakes idle workers at once instead of at their next poll; inside a
/// transaction Postgres sends it on commit.
pub async fn notify_workers_using(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("select pg_notify($1, '')").bind(NOTIFY_CHANNEL).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus;

    #[test]
    fn statuses_parse_from_their_names_only() {
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("Delivered"), None);
        assert_eq!(DeliveryStatus::parse("sent"), None);
    }
}
