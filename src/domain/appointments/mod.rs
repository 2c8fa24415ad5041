//! Appointments ("citas") of HighLevel calendars: stored in UTC, checked
//! against the location's business hours, never overlapping another live
//! appointment of the same calendar (an exclusion constraint decides, so it
//! holds under any concurrency), and synced both ways with HighLevel.

pub mod changes;
pub mod inbound;
pub mod sync_log;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::Invalid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Scheduled,
    Confirmed,
    Showed,
    Noshow,
    Cancelled,
    Invalid,
}

impl AppointmentStatus {
    pub const ALL: [Self; 6] = [Self::Scheduled, Self::Confirmed, Self::Showed, Self::Noshow, Self::Cancelled, Self::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Confirmed => "confirmed",
            Self::Showed => "showed",
            Self::Noshow => "noshow",
            Self::Cancelled => "cancelled",
            Self::Invalid => "invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// HighLevel's `appointmentStatus` for this status (`scheduled` is its `new`).
    pub fn to_highlevel(self) -> &'static str {
        match self {
            Self::Scheduled => "new",
            other => other.as_str(),
        }
    }

    pub fn from_highlevel(s: &str) -> Option<Self> {
        match s {
            "new" | "booked" => Some(Self::Scheduled),
            other => Self::parse(other),
        }
    }

    /// Whether it holds its slot (the others free it).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Scheduled | Self::Confirmed)
    }
}

/// Whether HighLevel has the latest local change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    Pending,
    Synced,
    /// The push run failed; ops retry it (`POST /api/v1/runs/{id}/retry`).
    Failed,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Synced => "synced",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Appointment {
    pub id: Uuid,
    pub location_id: String,
    pub calendar_id: String,
    pub contact_id: String,
    pub title: String,
    pub notes: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: StatusColumn,
    pub origin: String,
    pub ghl_appointment_id: Option<String>,
    pub conflict: bool,
    pub version: i64,
    pub pushed_version: i64,
    pub sync_run_id: Option<Uuid>,
    pub sync_run_status: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The status column, decoded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusColumn(pub AppointmentStatus);

impl TryFrom<String> for StatusColumn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AppointmentStatus::parse(&s).map(Self).ok_or(s)
    }
}

impl Appointment {
    pub fn status(&self) -> AppointmentStatus {
        self.status.0
    }

    pub fn sync(&self) -> SyncState {
        if self.pushed_version >= self.version {
            SyncState::Synced
        } else if matches!(self.sync_run_status.as_deref(), Some("failed" | "cancelled")) {
            SyncState::Failed
        } else {
            SyncState::Pending
        }
    }
}

/// Another appointment holding part of the slot.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Conflicting {
    pub id: Uuid,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the slot overlaps {} appointment(s) of the calendar", .0.len())]
    Overlap(Vec<Conflicting>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Columns every read returns, with the push run's status for `sync()`.
const COLUMNS: &str = "a.id, a.location_id, a.calendar_id, a.contact_id, a.title, a.notes, a.starts_at, a.ends_at,
        a.status, a.origin, a.ghl_appointment_id, a.conflict, a.version, a.pushed_version, a.sync_run_id,
        r.status::text as sync_run_status, a.created_at, a.updated_at";
const FROM: &str = "appointments a left join engine.runs r on r.id = a.sync_run_id";

pub struct NewAppointment {
    pub location_id: String,
    pub calendar_id: String,
    pub contact_id: String,
    pub title: String,
    pub notes: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

/// Stores a new appointment made through Relevo (`sync` pending until pushed).
pub async fn create_using(conn: &mut PgConnection, id: Uuid, new: &NewAppointment) -> Result<(), WriteError> {
    let inserted = sqlx::query!(
        "insert into appointments (id, location_id, calendar_id, contact_id, title, notes, starts_at, ends_at, origin)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'relevo')",
        id,
        new.location_id,
        new.calendar_id,
        new.contact_id,
        new.title,
        new.notes,
        new.starts_at,
        new.ends_at,
    )
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // The caller's transaction is aborted: it reads the conflicts after rolling back.
        Err(e) if is_overlap(&e) => Err(WriteError::Overlap(Vec::new())),
        Err(e) => Err(e.into()),
    }
}

pub fn is_overlap(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01"))
}

/// Live appointments of `calendar_id` overlapping [start, end), `except` one.
pub async fn overlapping(
    pool: &PgPool,
    calendar_id: &str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    except: Option<Uuid>,
) -> sqlx::Result<Vec<Conflicting>> {
    sqlx::query_as!(
        Conflicting,
        "select id, title, starts_at, ends_at, status from appointments
          where calendar_id = $1 and tstzrange(starts_at, ends_at) && tstzrange($2, $3)
            and status in ('scheduled', 'confirmed') and not conflict
            and ($4::uuid is null or id <> $4)
          order by starts_at limit 20",
        calendar_id,
        starts_at,
        ends_at,
        except,
    )
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Appointment>> {
    let sql = format!("select {COLUMNS} from {FROM} where a.id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await
}

pub async fn get_using(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Appointment>> {
    let sql = format!("select {COLUMNS} from {FROM} where a.id = $1 for update of a");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

/// `GET /api/v1/appointments` filters; times bound `starts_at`.
#[derive(Default)]
pub struct Filter {
    pub location_id: Option<String>,
    pub calendar_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<AppointmentStatus>,
}

/// A page in (starts_at, id) order after `cursor`.
pub async fn list(
    pool: &PgPool,
    filter: &Filter,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: u32,
) -> sqlx::Result<Vec<Appointment>> {
    let sql = format!(
        "select {COLUMNS} from {FROM}
          where ($1::text is null or a.location_id = $1) and ($2::text is null or a.calendar_id = $2)
            and ($3::timestamptz is null or a.starts_at >= $3) and ($4::timestamptz is null or a.starts_at < $4)
            and ($5::text is null or a.status = $5)
            and ($6::timestamptz is null or (a.starts_at, a.id) > ($6, $7))
          order by a.starts_at, a.id limit $8"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.location_id)
        .bind(&filter.calendar_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.status.map(AppointmentStatus::as_str))
        .bind(cursor.map(|c| c.0))
        .bind(cursor.map(|c| c.1))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
}

/// A local change: the fields to set. Bumps `version` (a push is owed).
#[derive(Default)]
pub struct Change {
    pub title: Option<String>,
    pub notes: Option<Option<String>>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub status: Option<AppointmentStatus>,
}

pub async fn update_using(conn: &mut PgConnection, current: &Appointment, change: &Change) -> Result<i64, WriteError> {
    let starts_at = change.starts_at.unwrap_or(current.starts_at);
    let ends_at = change.ends_at.unwrap_or(current.ends_at);
    let updated = sqlx::query_scalar!(
        "update appointments
            set title = coalesce($2, title), notes = case when $3 then $4 else notes end,
                starts_at = $5, ends_at = $6, status = coalesce($7, status),
                version = version + 1, changed_at = now(), updated_at = now()
          where id = $1 returning version",
        current.id,
        change.title,
        change.notes.is_some(),
        change.notes.clone().flatten(),
        starts_at,
        ends_at,
        change.status.map(AppointmentStatus::as_str),
    )
    .fetch_one(&mut *conn)
    .await;
    match updated {
        Ok(version) => Ok(version),
        Err(e) if is_overlap(&e) => Err(WriteError::Overlap(Vec::new())),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_sync_run_using(conn: &mut PgConnection, id: Uuid, run_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("update appointments set sync_run_id = $2 where id = $1", id, run_id).execute(conn).await?;
    Ok(())
}

/// Marks that a create request is about to go out; returns whether one went
/// out before (then the slot must be looked up before creating again).
pub async fn note_create_sent(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    let before = sqlx::query_scalar!(
        "update appointments a set create_sent_at = coalesce(a.create_sent_at, now())
           from appointments prev where prev.id = a.id and a.id = $1
         returning prev.create_sent_at is not null as \"sent_before!\"",
        id
    )
    .fetch_optional(pool)
    .await?;
    Ok(before.unwrap_or(false))
}

/// HighLevel has version `version` of the appointment (and its id).
pub async fn record_push_using(conn: &mut PgConnection, id: Uuid, version: i64, ghl_id: Option<&str>) -> sqlx::Result<()> {
    sqlx::query!(
        "update appointments
            set ghl_appointment_id = coalesce($3, ghl_appointment_id),
                pushed_version = greatest(pushed_version, $2), updated_at = now()
          where id = $1",
        id,
        version,
        ghl_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Checks what the API accepts for a new or moved appointment.
pub fn validate_times(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Result<(), Invalid> {
    if ends_at <= starts_at {
        return Err(Invalid::new("end_time", "must be after start_time"));
    }
    if ends_at - starts_at > chrono::Duration::hours(24) {
        return Err(Invalid::new("end_time", "an appointment lasts at most 24 hours"));
    }
    Ok(())
}
