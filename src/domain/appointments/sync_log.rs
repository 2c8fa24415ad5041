//! SQL over `appointment_sync_log`: every push to HighLevel and every
//! HighLevel event applied (or found stale, or an echo), per appointment.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Relevo → HighLevel.
    Push,
    /// HighLevel → Relevo.
    Webhook,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Webhook => "webhook",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Entry {
    pub direction: String,
    pub action: String,
    pub detail: String,
    pub run_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

pub async fn append_using(
    conn: &mut PgConnection,
    appointment_id: Uuid,
    direction: Direction,
    action: &str,
    detail: &str,
    run_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into appointment_sync_log (appointment_id, direction, action, detail, run_id) values ($1, $2, $3, $4, $5)",
        appointment_id,
        direction.as_str(),
        action,
        detail,
        run_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The appointment's history, oldest first (the newest 200).
pub async fn list(pool: &PgPool, appointment_id: Uuid) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as!(
        Entry,
        "select direction, action, detail, run_id, at from (
             select * from appointment_sync_log where appointment_id = $1 order by id desc limit 200) l
          order by id",
        appointment_id
    )
    .fetch_all(pool)
    .await
}
