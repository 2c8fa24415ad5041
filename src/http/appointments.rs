//! `/api/v1/appointments`: appointments ("citas") of HighLevel calendars.
//! Writes are checked (times, business hours, overlaps) and each queues its
//! push to HighLevel in the same transaction; reads show times in UTC and in
//! the location's own offset, with the sync history.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
    ApiResponse, Object, OpenApi,
};
use uuid::Uuid;

use super::{
    auth::AdminAuth,
    error::{body, ApiError, ConflictingAppointment, ErrorBody, ErrorDetail},
    page::{self, Limit, Page, PageItem},
    ApiTags, AppState,
};
use crate::{
    domain::{
        appointments::{
            self,
            changes::{self, OpError},
            sync_log, Appointment, AppointmentStatus, Change, Filter, NewAppointment,
        },
        highlevel::locations,
        Invalid,
    },
};

#[derive(Object, Debug)]
#[oai(rename = "Appointment")]
pub struct AppointmentOut {
    pub id: Uuid,
    pub location_id: String,
    pub calendar_id: String,
    pub contact_id: String,
    pub title: String,
    pub notes: Option<String>,
    /// UTC.
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The same instants with the location's offset (its `timezone`).
    pub start_time_local: String,
    pub end_time_local: String,
    pub timezone: String,
    /// scheduled, confirmed, showed, noshow, cancelled, invalid.
    pub status: String,
    /// pending (a change is on its way to HighLevel), synced, failed (see `sync_run_id`).
    pub sync: String,
    pub sync_run_id: Option<Uuid>,
    pub ghl_appointment_id: Option<String>,
    /// Overlaps another appointment of the calendar (it came from HighLevel, which allowed it).
    pub conflict: bool,
    /// relevo or highlevel: where it was made.
    pub origin: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PageItem for AppointmentOut {
    const PAGE_NAME: &'static str = "AppointmentPage";
    const CURSOR_DOC: Option<&'static str> = Some(page::NEXT_CURSOR_DOC);
}

fn out(a: Appointment, tz: Tz) -> AppointmentOut {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).fixed_offset().to_rfc3339();
    AppointmentOut {
        sync: a.sync().as_str().to_owned(),
        status: a.status().as_str().to_owned(),
        start_time_local: local(a.starts_at),
        end_time_local: local(a.ends_at),
        timezone: tz.name().to_owned(),
        id: a.id,
        location_id: a.location_id,
        calendar_id: a.calendar_id,
        contact_id: a.contact_id,
        title: a.title,
        notes: a.notes,
        start_time: a.starts_at,
        end_time: a.ends_at,
        sync_run_id: a.sync_run_id,
        ghl_appointment_id: a.ghl_appointment_id,
        conflict: a.conflict,
        origin: a.origin,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

#[derive(Object, Debug)]
pub struct SyncEntryOut {
    /// push (Relevo → HighLevel) or webhook (HighLevel → Relevo).
    pub direction: String,
    pub action: String,
    pub detail: String,
    pub run_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct AppointmentDetailOut {
    #[oai(flatten)]
    pub appointment: AppointmentOut,
    /// Every push and every HighLevel event applied, oldest first.
    pub history: Vec<SyncEntryOut>,
}

#[derive(Object, Debug)]
pub struct AppointmentIn {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub location_id: String,
    /// Default: the location's `default_calendar_id`.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub calendar_id: Option<String>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub contact_id: String,
    #[oai(validator(min_length = 1, max_length = 500))]
    pub title: String,
    /// RFC 3339 with an offset, e.g. 2026-12-03T08:00:00-05:00.
    pub start_time: String,
    pub end_time: String,
    #[oai(validator(max_length = 5000))]
    pub notes: Option<String>,
}

#[derive(Object, Debug)]
pub struct AppointmentPatch {
    #[oai(validator(min_length = 1, max_length = 500))]
    pub title: Option<String>,
    /// null clears them.
    pub notes: MaybeUndefined<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// scheduled, confirmed, showed, noshow or cancelled.
    pub status: Option<String>,
}

#[derive(ApiResponse)]
pub enum CreatedAppointment {
    /// Stored; its push to HighLevel is queued (`sync: pending`).
    #[oai(status = 201)]
    Created(Json<AppointmentOut>),
}

#[derive(Default)]
pub struct AppointmentsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::HighLevel")]
impl AppointmentsApi {
    /// Create an appointment; 422 `invalid` outside business hours, 409
    /// `appointment_overlap` (with `conflicts`) when the slot is taken.
    #[oai(path = "/appointments", method = "post", operation_id = "v1.appointments.create")]
    async fn create(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<AppointmentIn>) -> Result<CreatedAppointment, ApiError> {
        let b = body.0;
        let new = NewAppointment {
            starts_at: time("start_time", &b.start_time)?,
            ends_at: time("end_time", &b.end_time)?,
            location_id: b.location_id,
            calendar_id: String::new(),
            contact_id: b.contact_id,
            title: b.title,
            notes: b.notes,
        };
        let a = changes::create(&state.pool, state.sync_flows.as_ref(), new, b.calendar_id).await.map_err(op_error)?;
        Ok(CreatedAppointment::Created(Json(with_zone(&state, a).await?)))
    }

    /// List appointments by `starts_at` (filters combine).
    #[oai(path = "/appointments", method = "get", operation_id = "v1.appointments.list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        location_id: Query<Option<String>>,
        calendar_id: Query<Option<String>>,
        /// Starting at or after (RFC 3339).
        from: Query<Option<String>>,
        /// Starting before (RFC 3339).
        to: Query<Option<String>>,
        status: Query<Option<String>>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<AppointmentOut>>, ApiError> {
        let filter = Filter {
            location_id: location_id.0,
            calendar_id: calendar_id.0,
            from: from.0.as_deref().map(|t| time("from", t)).transpose()?,
            to: to.0.as_deref().map(|t| time("to", t)).transpose()?,
            status: status.0.as_deref().map(parse_status).transpose()?,
        };
        let cursor = cursor.0.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?;
        let mut rows = appointments::list(&state.pool, &filter, cursor, limit.get() + 1).await?;
        let next = (rows.len() > limit.get() as usize).then(|| {
            rows.truncate(limit.get() as usize);
            rows.last().map(|a| format!("{}_{}", a.starts_at.timestamp_micros(), a.id))
        });
        let zones = zones(&state).await?;
        let items = rows.into_iter().map(|a| { let tz = zone_of(&zones, &a.location_id); out(a, tz) }).collect();
        Ok(Json(Page { items, next_cursor: next.flatten() }))
    }

    /// An appointment with its sync history.
    #[oai(path = "/appointments/:id", method = "get", operation_id = "v1.appointments.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<AppointmentDetailOut>, ApiError> {
        let a = appointments::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("appointment"))?;
        let history = sync_log::list(&state.pool, id.0)
            .await?
            .into_iter()
            .map(|e| SyncEntryOut { direction: e.direction, action: e.action, detail: e.detail, run_id: e.run_id, at: e.at })
            .collect();
        Ok(Json(AppointmentDetailOut { appointment: with_zone(&state, a).await?, history }))
    }

    /// Change time, title, notes or status; the change is pushed to HighLevel.
    #[oai(path = "/appointments/:id", method = "patch", operation_id = "v1.appointments.update")]
    async fn update(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<AppointmentPatch>,
    ) -> Result<Json<AppointmentOut>, ApiError> {
        let b = body.0;
        let change = Change {
            title: b.title,
            notes: match b.notes {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(n) => Some(Some(n)),
            },
            starts_at: b.start_time.as_deref().map(|t| time("start_time", t)).transpose()?,
            ends_at: b.end_time.as_deref().map(|t| time("end_time", t)).transpose()?,
            status: b.status.as_deref().map(parse_status).transpose()?,
        };
        if change.status == Some(AppointmentStatus::Invalid) {
            return Err(ApiError::invalid(&Invalid::new("status", "invalid is set by HighLevel only")));
        }
        let a = changes::update(&state.pool, state.sync_flows.as_ref(), id.0, change).await.map_err(op_error)?;
        Ok(Json(with_zone(&state, a).await?))
    }

    /// Cancel: the appointment frees its slot and is deleted in HighLevel.
    #[oai(path = "/appointments/:id/cancel", method = "post", operation_id = "v1.appointments.cancel")]
    async fn cancel(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<AppointmentOut>, ApiError> {
        let a = changes::cancel(&state.pool, state.sync_flows.as_ref(), id.0).await.map_err(op_error)?;
        Ok(Json(with_zone(&state, a).await?))
    }
}

fn time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::<FixedOffset>::parse_from_rfc3339(raw.trim())
        .map(|t| t.to_utc())
        .map_err(|_| ApiError::invalid(&Invalid::new(field, format!("{raw:?} is not an RFC 3339 time with an offset (2026-12-03T08:00:00-05:00)"))))
}

fn parse_status(raw: &str) -> Result<AppointmentStatus, ApiError> {
    AppointmentStatus::parse(raw).ok_or_else(|| {
        ApiError::invalid(&Invalid::new("status", format!("{raw:?} is not one of scheduled, confirmed, showed, noshow, cancelled")))
    })
}

fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor is not one this API returned");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

async fn zones(state: &AppState) -> Result<Vec<(String, Tz)>, ApiError> {
    Ok(locations::list(&state.pool).await?.into_iter().map(|l| (l.id, l.timezone)).collect())
}

fn zone_of(zones: &[(String, Tz)], location: &str) -> Tz {
    zones.iter().find(|(id, _)| id == location).map_or(chrono_tz::America::Lima, |(_, tz)| *tz)
}

async fn with_zone(state: &AppState, a: Appointment) -> Result<AppointmentOut, ApiError> {
    let tz = locations::get(&state.pool, &a.location_id).await?.map_or(chrono_tz::America::Lima, |l| l.timezone);
    Ok(out(a, tz))
}

/// The one place appointment and location operations become HTTP answers.
pub(super) fn op_error(e: OpError) -> ApiError {
    match e {
        OpError::NotFound(what) => ApiError::not_found(what),
        OpError::Invalid(e) => ApiError::invalid(&e),
        OpError::Overlap(list) => ApiError::Conflict(Json(ErrorBody {
            error: ErrorDetail {
                code: "appointment_overlap".into(),
                message: format!("the slot overlaps {} appointment(s) of the calendar", list.len()),
                fields: None,
                conflicts: Some(
                    list.into_iter()
                        .map(|c| ConflictingAppointment { id: c.id, title: c.title, start_time: c.starts_at, end_time: c.ends_at, status: c.status })
                        .collect(),
                ),
            },
        })),
        OpError::Conflict(message) => ApiError::conflict(message),
        e @ OpError::NeedsReauthorization(_) => ApiError::Conflict(body("location_needs_reauthorization", e.to_string())),
        OpError::Database(e) => ApiError::internal(&e),
        e @ OpError::Flow(_) => ApiError::internal(&e),
    }
}
