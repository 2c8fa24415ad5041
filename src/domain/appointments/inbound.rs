//! Applying a HighLevel appointment event (HighLevel is the source of truth
//! for what happens there): upsert by `ghl_appointment_id`; an event not newer
//! than the stored state changes nothing; an event that repeats the stored
//! state (the echo of Relevo's own push) changes nothing and pushes nothing;
//! Delete cancels. An appointment from HighLevel that overlaps another is
//! stored all the same and flagged `conflict`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{sync_log, AppointmentStatus};
use crate::providers::highlevel::payload::{Appointment as Event, Change};

/// What an event did. The `apply` step's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Applied {
    Created { id: Uuid, conflict: bool },
    Updated { id: Uuid, conflict: bool },
    Cancelled { id: Uuid },
    /// The same state as stored (an echo, or a duplicate).
    Unchanged { id: Uuid },
    /// Older than the stored state.
    Stale { id: Uuid },
    /// Nothing to apply it to, or not enough to store.
    Skipped { reason: String },
}

struct Parsed {
    calendar_id: Option<String>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    status: Option<AppointmentStatus>,
    updated_at: DateTime<Utc>,
}

fn time(raw: &Option<String>) -> Option<DateTime<Utc>> {
    raw.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.to_utc())
}

pub async fn apply_using(
    tx: &mut PgConnection,
    location_id: &str,
    change: Change,
    event: &Event,
    run_id: Uuid,
) -> sqlx::Result<Applied> {
    let parsed = Parsed {
        calendar_id: event.calendar_id.clone(),
        starts_at: time(&event.start_time),
        ends_at: time(&event.end_time),
        status: event.status.as_deref().and_then(AppointmentStatus::from_highlevel),
        updated_at: time(&event.date_updated).unwrap_or_else(Utc::now),
    };
    let existing = sqlx::query!(
        "select id, calendar_id, title, notes, starts_at, ends_at, status, changed_at from appointments
          where ghl_appointment_id = $1 for update",
        event.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = existing else {
        if change == Change::Deleted {
            return Ok(Applied::Skipped { reason: format!("HighLevel appointment {} is not known here", event.id) });
        }
        if let Some(id) = adopt_own_create_using(tx, location_id, event, &parsed).await? {
            note(tx, run_id, id, "echo", format!("{change:?} of Relevo's own create: HighLevel id {} recorded", event.id)).await?;
            return Ok(Applied::Unchanged { id });
        }
        return insert_using(tx, location_id, event, &parsed, run_id).await;
    };
    if change == Change::Deleted {
        if row.status == AppointmentStatus::Cancelled.as_str() {
            note(tx, run_id, row.id, "unchanged", "deleted in HighLevel; already cancelled").await?;
            return Ok(Applied::Unchanged { id: row.id });
        }
        sqlx::query!(
            "update appointments set status = 'cancelled', conflict = false, changed_at = greatest(changed_at, $2), updated_at = now()
              where id = $1",
            row.id,
            parsed.updated_at
        )
        .execute(&mut *tx)
        .await?;
        note(tx, run_id, row.id, "cancelled", "deleted in HighLevel").await?;
        return Ok(Applied::Cancelled { id: row.id });
    }
    if parsed.updated_at <= row.changed_at {
        note(tx, run_id, row.id, "stale", format!("dateUpdated {} is not newer than the stored state ({})", parsed.updated_at, row.changed_at)).await?;
        return Ok(Applied::Stale { id: row.id });
    }
    let calendar_id = parsed.calendar_id.clone().unwrap_or(row.calendar_id.clone());
    let title = event.title.clone().unwrap_or(row.title.clone());
    let notes = event.notes.clone().or(row.notes.clone());
    let starts_at = parsed.starts_at.unwrap_or(row.starts_at);
    let ends_at = parsed.ends_at.filter(|e| *e > starts_at).unwrap_or(row.ends_at.max(starts_at + chrono::Duration::minutes(1)));
    let status = parsed.status.map_or(row.status.clone(), |s| s.as_str().to_owned());
    let same = (calendar_id.as_str(), title.as_str(), notes.as_deref(), starts_at, ends_at, status.as_str())
        == (row.calendar_id.as_str(), row.title.as_str(), row.notes.as_deref(), row.starts_at, row.ends_at, row.status.as_str());
    if same {
        sqlx::query!("update appointments set changed_at = $2 where id = $1", row.id, parsed.updated_at)
            .execute(&mut *tx)
            .await?;
        note(tx, run_id, row.id, "unchanged", "the event repeats the stored state (an echo of Relevo's push, or a duplicate)").await?;
        return Ok(Applied::Unchanged { id: row.id });
    }
    let live = AppointmentStatus::parse(&status).is_some_and(AppointmentStatus::is_live);
    let conflict = live && overlaps_using(tx, &calendar_id, starts_at, ends_at, Some(row.id)).await?;
    sqlx::query!(
        "update appointments
            set calendar_id = $2, title = $3, notes = $4, starts_at = $5, ends_at = $6, status = $7, conflict = $8,
                changed_at = $9, updated_at = now()
          where id = $1",
        row.id,
        calendar_id,
        title,
        notes,
        starts_at,
        ends_at,
        status,
        conflict,
        parsed.updated_at,
    )
    .execute(&mut *tx)
    .await?;
    let detail = format!("changed in HighLevel: {} to {}, {status}{}", starts_at, ends_at, if conflict { ", overlaps (conflict)" } else { "" });
    note(tx, run_id, row.id, "updated", detail).await?;
    Ok(Applied::Updated { id: row.id, conflict })
}

/// HighLevel may announce an appointment Relevo created before the create's
/// answer was recorded: the Relevo appointment whose create went out for the
/// same calendar, contact and times takes the HighLevel id (no duplicate).
async fn adopt_own_create_using(tx: &mut PgConnection, location_id: &str, event: &Event, p: &Parsed) -> sqlx::Result<Option<Uuid>> {
    let (Some(calendar_id), Some(starts_at), Some(ends_at)) = (&p.calendar_id, p.starts_at, p.ends_at) else {
        return Ok(None);
    };
    sqlx::query_scalar!(
        "update appointments set ghl_appointment_id = $6
          where id = (select id from appointments
                       where location_id = $1 and calendar_id = $2 and contact_id = coalesce($3, contact_id)
                         and starts_at = $4 and ends_at = $5 and ghl_appointment_id is null
                         and origin = 'relevo' and create_sent_at is not null
                       limit 1 for update)
         returning id",
        location_id,
        calendar_id,
        event.contact_id,
        starts_at,
        ends_at,
        event.id,
    )
    .fetch_optional(tx)
    .await
}

async fn insert_using(tx: &mut PgConnection, location_id: &str, event: &Event, p: &Parsed, run_id: Uuid) -> sqlx::Result<Applied> {
    let (Some(calendar_id), Some(starts_at), Some(ends_at)) = (&p.calendar_id, p.starts_at, p.ends_at) else {
        return Ok(Applied::Skipped {
            reason: format!("HighLevel appointment {} lacks calendarId, startTime or endTime", event.id),
        });
    };
    if ends_at <= starts_at {
        return Ok(Applied::Skipped { reason: format!("HighLevel appointment {} ends before it starts", event.id) });
    }
    let known = sqlx::query_scalar!("select exists(select 1 from highlevel_locations where id = $1) as \"known!\"", location_id)
        .fetch_one(&mut *tx)
        .await?;
    if !known {
        return Ok(Applied::Skipped { reason: format!("HighLevel location {location_id} is not connected") });
    }
    let status = p.status.unwrap_or(AppointmentStatus::Scheduled);
    let conflict = status.is_live() && overlaps_using(tx, calendar_id, starts_at, ends_at, None).await?;
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into appointments (id, location_id, calendar_id, contact_id, title, notes, starts_at, ends_at, status,
                                   origin, ghl_appointment_id, changed_at, conflict, version, pushed_version)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'highlevel', $10, $11, $12, 1, 1)",
        id,
        location_id,
        calendar_id,
        event.contact_id.clone().unwrap_or_default(),
        event.title.clone().unwrap_or_default(),
        event.notes,
        starts_at,
        ends_at,
        status.as_str(),
        event.id,
        p.updated_at,
        conflict,
    )
    .execute(&mut *tx)
    .await?;
    let detail = format!("created in HighLevel{}", if conflict { "; overlaps another appointment (conflict)" } else { "" });
    note(tx, run_id, id, "created", detail).await?;
    Ok(Applied::Created { id, conflict })
}

async fn overlaps_using(
    tx: &mut PgConnection,
    calendar_id: &str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    except: Option<Uuid>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        "select exists(select 1 from appointments
          where calendar_id = $1 and tstzrange(starts_at, ends_at) && tstzrange($2, $3)
            and status in ('scheduled', 'confirmed') and not conflict and ($4::uuid is null or id <> $4)) as \"overlaps!\"",
        calendar_id,
        starts_at,
        ends_at,
        except
    )
    .fetch_one(tx)
    .await
}

async fn note(tx: &mut PgConnection, run_id: Uuid, id: Uuid, action: &str, detail: impl AsRef<str>) -> sqlx::Result<()> {
    sync_log::append_using(tx, id, sync_log::Direction::Webhook, action, detail.as_ref(), Some(run_id)).await
}
