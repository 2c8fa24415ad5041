//! `appointment_sync`: pushes one local change of an appointment to
//! HighLevel. Keyed by the appointment, so its pushes run in the order the
//! changes were made; each pushes the state stored when it runs.
//!
//! - create: `create` (look the slot up first if a create request already
//!   went out, so a create cut by a crash is adopted, not repeated) → `record`
//! - update: `update` (`PUT …/appointments/{eventId}`) → `record`
//! - cancel: `delete` (`DELETE /calendars/events/{eventId}`) → `record`

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::{
        appointments::{self, changes::Push, sync_log, Appointment},
        highlevel::{
            api::{CallError, HighLevel},
            locations,
        },
    },
    engine::{RunCtx, StepError, Workflow},
    providers::highlevel::client::{self, AppointmentWrite, Event},
};

pub struct AppointmentSync {
    pub highlevel: Arc<HighLevel>,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppointmentSyncInput {
    pub appointment_id: Uuid,
    /// The appointment's `version` this push brings to HighLevel.
    pub version: i64,
    pub push: Push,
}

impl Workflow for AppointmentSync {
    const NAME: &'static str = "appointment_sync";
    type Input = AppointmentSyncInput;

    fn ordering_key(input: &AppointmentSyncInput) -> Option<String> {
        Some(format!("appointment:{}", input.appointment_id))
    }

    async fn run(&self, ctx: &mut RunCtx, input: AppointmentSyncInput) -> Result<(), StepError> {
        let (hl, pool, id) = (self.highlevel.clone(), ctx.pool().clone(), input.appointment_id);
        let (step, event) = match input.push {
            Push::Create => ("create", ctx.step("create", |_| async move { create(&hl, &pool, id).await }).await?),
            Push::Update => ("update", ctx.step("update", |_| async move { update(&hl, &pool, id).await }).await?),
            Push::Cancel => ("delete", ctx.step("delete", |_| async move { delete(&hl, &pool, id).await }).await?),
        };
        let run_id = ctx.run_id();
        ctx.tx_step("record", move |tx, _| {
            Box::pin(async move {
                appointments::record_push_using(tx, id, input.version, Some(&event.id)).await?;
                let detail = format!("{step} in HighLevel (event {}), version {}", event.id, input.version);
                sync_log::append_using(tx, id, sync_log::Direction::Push, step, &detail, Some(run_id)).await?;
                Ok(())
            })
        })
        .await
    }
}

async fn load(pool: &sqlx::PgPool, id: Uuid) -> Result<Appointment, StepError> {
    appointments::get(pool, id).await?.ok_or_else(|| StepError::permanent(format!("appointment {id} no longer exists")))
}

async fn zone_of(pool: &sqlx::PgPool, a: &Appointment) -> Result<chrono_tz::Tz, StepError> {
    Ok(locations::get(pool, &a.location_id).await?.map_or(chrono_tz::America::Lima, |l| l.timezone))
}

/// The appointment as HighLevel takes it, times written with the location's
/// offset (as HighLevel shows them).
fn write(a: &Appointment, tz: chrono_tz::Tz) -> AppointmentWrite<'_> {
    AppointmentWrite {
        calendar_id: &a.calendar_id,
        location_id: &a.location_id,
        contact_id: &a.contact_id,
        title: &a.title,
        notes: a.notes.as_deref(),
        start: a.starts_at.with_timezone(&tz).fixed_offset(),
        end: a.ends_at.with_timezone(&tz).fixed_offset(),
        status: a.status().to_highlevel(),
    }
}

async fn create(hl: &HighLevel, pool: &sqlx::PgPool, id: Uuid) -> Result<Event, StepError> {
    let a = load(pool, id).await?;
    if let Some(ghl_id) = &a.ghl_appointment_id {
        // HighLevel's webhook for this create arrived first and recorded the id.
        return Ok(Event { id: ghl_id.clone(), ..Event::default() });
    }
    if appointments::note_create_sent(pool, id).await? {
        // A create went out before and its answer was lost (a crash, a
        // timeout): if HighLevel has it, adopt it instead of booking twice.
        let found = hl
            .call(pool, &a.location_id, "find_events", |token| {
                let a = &a;
                async move { hl.client.events_between(&token, &a.location_id, &a.calendar_id, a.starts_at, a.ends_at).await }
            })
            .await
            .map_err(step_error)?;
        let same = |e: &&Event| {
            e.contact_id.as_deref() == Some(a.contact_id.as_str())
                && e.start_time.as_deref().and_then(parse_time) == Some(a.starts_at)
                && e.end_time.as_deref().and_then(parse_time).is_none_or(|end| end == a.ends_at)
        };
        if let Some(existing) = found.iter().find(same) {
            return Ok(existing.clone());
        }
    }
    let body = write(&a, zone_of(pool, &a).await?);
    hl.call(pool, &a.location_id, "create_appointment", |token| {
        let body = &body;
        async move { hl.client.create_appointment(&token, body).await }
    })
    .await
    .map_err(step_error)
}

async fn update(hl: &HighLevel, pool: &sqlx::PgPool, id: Uuid) -> Result<Event, StepError> {
    let a = load(pool, id).await?;
    let ghl_id = ghl_id(&a)?;
    let body = write(&a, zone_of(pool, &a).await?);
    hl.call(pool, &a.location_id, "update_appointment", |token| {
        let (body, ghl_id) = (&body, &ghl_id);
        async move { hl.client.update_appointment(&token, ghl_id, body).await }
    })
    .await
    .map_err(step_error)
}

async fn delete(hl: &HighLevel, pool: &sqlx::PgPool, id: Uuid) -> Result<Event, StepError> {
    let a = load(pool, id).await?;
    let ghl_id = ghl_id(&a)?;
    let deleted = hl
        .call(pool, &a.location_id, "delete_appointment", |token| {
            let ghl_id = &ghl_id;
            async move { hl.client.delete_event(&token, ghl_id).await }
        })
        .await;
    match deleted {
        // Already gone (deleted in HighLevel, or by an earlier attempt).
        Ok(()) | Err(CallError::Api(client::Error::NotFound(_))) => Ok(Event { id: ghl_id, ..Event::default() }),
        Err(e) => Err(step_error(e)),
    }
}

fn ghl_id(a: &Appointment) -> Result<String, StepError> {
    a.ghl_appointment_id.clone().ok_or_else(|| {
        StepError::permanent(format!(
            "appointment {} is not in HighLevel yet (its create push did not succeed); retry that run first",
            a.id
        ))
    })
}

fn parse_time(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.to_utc())
}

/// Rate limits resume later without using an attempt; 5xx, timeouts and
/// database trouble back off; a location that must be reconnected, and
/// HighLevel's 4xx, will not change on retry.
pub(super) fn step_error(e: CallError) -> StepError {
    match e {
        CallError::RateLimited { until, .. } => StepError::rate_limited(until, e),
        e if e.is_transient() => StepError::transient(e),
        e => StepError::permanent(e),
    }
}
