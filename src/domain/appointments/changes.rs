//! What the API does to appointments and locations, each in one transaction
//! with the run it starts: a stored change always has its push queued, a
//! connected location always has its token refresher. The flows themselves
//! are the workflows layer's (`SyncFlows`, implemented in `workflows/mod.rs`).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::{
        appointments::{self, Appointment, AppointmentStatus, Change, Conflicting, NewAppointment, WriteError},
        highlevel::locations::{self, Location, LocationStatus, TokenPair},
        Invalid,
    },
    sealing::Sealer,
};

/// Which change a push brings to HighLevel. Part of the push run's input: a
/// durable contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Push {
    Create,
    Update,
    Cancel,
}

/// The runs appointment and location changes start, in the caller's transaction.
pub trait SyncFlows: Send + Sync {
    /// Starts the push of `version` of appointment `id`; returns its run id.
    fn push_using<'a>(&'a self, tx: &'a mut PgConnection, id: Uuid, version: i64, push: Push) -> BoxFuture<'a, Result<Uuid, OpError>>;
    /// Starts the location's token refresher unless one is going.
    fn keep_tokens_fresh_using<'a>(&'a self, tx: &'a mut PgConnection, location: &'a str) -> BoxFuture<'a, Result<(), OpError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the slot overlaps {} appointment(s) of the calendar", .0.len())]
    Overlap(Vec<Conflicting>),
    /// The state does not allow it (e.g. changing a cancelled appointment).
    #[error("{0}")]
    Conflict(String),
    #[error("HighLevel location {0} needs to be reconnected before appointments can be pushed to it")]
    NeedsReauthorization(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A run could not be started (a bug: the flow or its input).
    #[error("{0}")]
    Flow(String),
}

/// Stores a token pair for the location (new install or reconnection) and
/// makes sure its refresher runs.
pub async fn connect_location(
    pool: &PgPool,
    sealer: &Sealer,
    flows: &dyn SyncFlows,
    id: &str,
    company_id: Option<&str>,
    pair: &TokenPair<'_>,
) -> Result<Location, OpError> {
    let mut tx = pool.begin().await?;
    locations::connect_using(&mut tx, sealer, id, company_id, pair).await?;
    flows.keep_tokens_fresh_using(&mut tx, id).await?;
    tx.commit().await?;
    locations::get(pool, id).await?.ok_or(OpError::NotFound("location"))
}

/// The API's create: validated against the location's hours and the
/// calendar's other appointments; 409 when the slot is taken.
pub async fn create(
    pool: &PgPool,
    flows: &dyn SyncFlows,
    mut new: NewAppointment,
    calendar_id: Option<String>,
) -> Result<Appointment, OpError> {
    let location = usable_location(pool, &new.location_id).await?;
    new.calendar_id = calendar_id.or(location.default_calendar_id.clone()).ok_or_else(|| {
        Invalid::new("calendar_id", "required: the location has no default_calendar_id (PATCH /api/v1/highlevel/locations/{id})")
    })?;
    appointments::validate_times(new.starts_at, new.ends_at)?;
    location.business_hours.check(location.timezone, new.starts_at, new.ends_at)?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    if let Err(e) = appointments::create_using(&mut tx, id, &new).await {
        drop(tx);
        return Err(with_conflicts(pool, e, &new.calendar_id, new.starts_at, new.ends_at, None).await);
    }
    queue_push_using(&mut tx, flows, id, 1, Push::Create).await?;
    tx.commit().await?;
    appointments::get(pool, id).await?.ok_or(OpError::NotFound("appointment"))
}

/// The API's PATCH (and cancel, with `status: cancelled`).
pub async fn update(pool: &PgPool, flows: &dyn SyncFlows, id: Uuid, change: Change) -> Result<Appointment, OpError> {
    let mut tx = pool.begin().await?;
    let current = appointments::get_using(&mut tx, id).await?.ok_or(OpError::NotFound("appointment"))?;
    if current.status() == AppointmentStatus::Cancelled {
        return Err(OpError::Conflict(format!("appointment {id} is cancelled; create a new one")));
    }
    let location = usable_location(pool, &current.location_id).await?;
    let (starts_at, ends_at) = (change.starts_at.unwrap_or(current.starts_at), change.ends_at.unwrap_or(current.ends_at));
    let moved = starts_at != current.starts_at || ends_at != current.ends_at;
    if moved {
        appointments::validate_times(starts_at, ends_at)?;
        location.business_hours.check(location.timezone, starts_at, ends_at)?;
    }
    let version = match appointments::update_using(&mut tx, &current, &change).await {
        Ok(version) => version,
        Err(e) => {
            drop(tx);
            return Err(with_conflicts(pool, e, &current.calendar_id, starts_at, ends_at, Some(id)).await);
        }
    };
    let push = if change.status == Some(AppointmentStatus::Cancelled) { Push::Cancel } else { Push::Update };
    queue_push_using(&mut tx, flows, id, version, push).await?;
    tx.commit().await?;
    appointments::get(pool, id).await?.ok_or(OpError::NotFound("appointment"))
}

pub async fn cancel(pool: &PgPool, flows: &dyn SyncFlows, id: Uuid) -> Result<Appointment, OpError> {
    update(pool, flows, id, Change { status: Some(AppointmentStatus::Cancelled), ..Change::default() }).await
}

async fn queue_push_using(tx: &mut PgConnection, flows: &dyn SyncFlows, id: Uuid, version: i64, push: Push) -> Result<(), OpError> {
    let run_id = flows.push_using(tx, id, version, push).await?;
    appointments::set_sync_run_using(tx, id, run_id).await?;
    Ok(())
}

async fn usable_location(pool: &PgPool, id: &str) -> Result<Location, OpError> {
    let location = locations::get(pool, id)
        .await?
        .ok_or_else(|| Invalid::new("location_id", format!("HighLevel location {id:?} is not connected")))?;
    if location.status == LocationStatus::NeedsReauthorization {
        return Err(OpError::NeedsReauthorization(id.to_owned()));
    }
    Ok(location)
}

/// An exclusion violation becomes 409 with the appointments in the way (read
/// after the failed transaction is gone).
async fn with_conflicts(
    pool: &PgPool,
    e: WriteError,
    calendar_id: &str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    except: Option<Uuid>,
) -> OpError {
    match e {
        WriteError::Overlap(_) => match appointments::overlapping(pool, calendar_id, starts_at, ends_at, except).await {
            Ok(list) => OpError::Overlap(list),
            Err(e) => e.into(),
        },
        WriteError::Invalid(e) => e.into(),
        WriteError::Database(e) => e.into(),
    }
}
