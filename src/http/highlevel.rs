//! HighLevel locations: connecting one (the marketplace's OAuth redirect, or
//! tokens from an install done elsewhere), its settings, and its calendars
//! read live. Tokens go in and never come out.

use chrono::{DateTime, NaiveTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
    ApiResponse, Object, OpenApi,
};
use secrecy::SecretString;

use super::{
    auth::AdminAuth,
    error::{body, ApiError},
    ApiTags, AppState,
};
use crate::{
    domain::{
        appointments::changes,
        highlevel::{
            api::CallError,
            hours::{BusinessHours, Hours},
            locations::{self, Location, SettingsChange, TokenPair},
            tokens::TokenError,
        },
        Invalid,
    },
    providers::highlevel::client,
};

#[derive(Object, Debug, Clone)]
pub struct HoursOut {
    /// "08:00"
    pub open: String,
    /// "20:00"
    pub close: String,
}

/// Opening hours per weekday in the location's time zone; null = closed.
#[derive(Object, Debug, Clone)]
pub struct BusinessHoursOut {
    pub mon: Option<HoursOut>,
    pub tue: Option<HoursOut>,
    pub wed: Option<HoursOut>,
    pub thu: Option<HoursOut>,
    pub fri: Option<HoursOut>,
    pub sat: Option<HoursOut>,
    pub sun: Option<HoursOut>,
}

impl From<&BusinessHours> for BusinessHoursOut {
    fn from(h: &BusinessHours) -> Self {
        let day = |d: Option<Hours>| {
            d.map(|h| HoursOut { open: h.open.format("%H:%M").to_string(), close: h.close.format("%H:%M").to_string() })
        };
        Self { mon: day(h.mon), tue: day(h.tue), wed: day(h.wed), thu: day(h.thu), fri: day(h.fri), sat: day(h.sat), sun: day(h.sun) }
    }
}

#[derive(Object, Debug)]
#[oai(rename = "HighLevelLocation")]
pub struct LocationOut {
    /// HighLevel's `locationId`.
    pub id: String,
    pub company_id: Option<String>,
    /// `connected` or `needs_reauthorization` (the refresh token was refused: connect it again).
    pub status: String,
    pub status_reason: Option<String>,
    /// When the current access token expires (refreshed ahead of time).
    pub token_expires_at: DateTime<Utc>,
    pub token_refreshed_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    /// HighLevel's `X-RateLimit-Daily-Remaining`, as last seen.
    pub daily_calls_remaining: Option<i32>,
    /// HighLevel's `X-RateLimit-Remaining` (burst window), as last seen.
    pub rate_limit_remaining: Option<i32>,
    pub rate_limit_observed_at: Option<DateTime<Utc>>,
    pub default_calendar_id: Option<String>,
    /// IANA time zone of business hours (default America/Lima).
    pub timezone: String,
    pub business_hours: BusinessHoursOut,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Location> for LocationOut {
    fn from(l: Location) -> Self {
        Self {
            business_hours: (&l.business_hours).into(),
            status: l.status.as_str().to_owned(),
            timezone: l.timezone.name().to_owned(),
            id: l.id,
            company_id: l.company_id,
            status_reason: l.status_reason,
            token_expires_at: l.token_expires_at,
            token_refreshed_at: l.refreshed_at,
            scopes: l.scopes,
            daily_calls_remaining: l.daily_remaining,
            rate_limit_remaining: l.rate_remaining,
            rate_limit_observed_at: l.rate_observed_at,
            default_calendar_id: l.default_calendar_id,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct LocationList {
    pub items: Vec<LocationOut>,
}

/// Tokens of an install done elsewhere. Never returned by any endpoint.
#[derive(Object)]
pub struct ConnectIn {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub location_id: String,
    #[oai(validator(min_length = 1, max_length = 8192))]
    pub access_token: String,
    #[oai(validator(min_length = 1, max_length = 8192))]
    pub refresh_token: String,
    /// Seconds the access token has left (HighLevel grants 86399).
    #[oai(validator(minimum(value = "0"), maximum(value = "31536000")))]
    pub expires_in: i64,
    pub company_id: Option<String>,
    /// Space-separated, as HighLevel grants them.
    pub scope: Option<String>,
}

impl std::fmt::Debug for ConnectIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectIn").field("location_id", &self.location_id).finish_non_exhaustive()
    }
}

#[derive(Object, Debug, Clone)]
pub struct HoursIn {
    pub open: String,
    pub close: String,
}

/// Weekdays to change: absent keeps, null closes, hours set.
#[derive(Object, Debug, Default)]
pub struct BusinessHoursIn {
    pub mon: MaybeUndefined<HoursIn>,
    pub tue: MaybeUndefined<HoursIn>,
    pub wed: MaybeUndefined<HoursIn>,
    pub thu: MaybeUndefined<HoursIn>,
    pub fri: MaybeUndefined<HoursIn>,
    pub sat: MaybeUndefined<HoursIn>,
    pub sun: MaybeUndefined<HoursIn>,
}

#[derive(Object, Debug)]
pub struct LocationPatch {
    /// null clears it.
    pub default_calendar_id: MaybeUndefined<String>,
    /// IANA, e.g. America/Lima.
    pub timezone: Option<String>,
    pub business_hours: Option<BusinessHoursIn>,
}

#[derive(Object, Debug)]
pub struct CalendarOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub timezone: Option<String>,
    pub is_active: bool,
}

#[derive(Object, Debug)]
pub struct CalendarList {
    pub calendars: Vec<CalendarOut>,
    pub location_id: String,
    pub total: usize,
}

#[derive(Object, Debug)]
pub struct ConnectedOut {
    pub location_id: String,
    pub status: String,
    pub message: String,
}

#[derive(ApiResponse)]
pub enum Connected {
    /// Stored (tokens sealed); its refresher runs.
    #[oai(status = 201)]
    Created(Json<LocationOut>),
}

#[derive(Default)]
pub struct HighLevelApi;

#[OpenApi(tag = "ApiTags::HighLevel")]
impl HighLevelApi {
    /// The marketplace's OAuth redirect: exchanges `code` at HighLevel's
    /// `POST /oauth/token` (HIGHLEVEL_CLIENT_ID, _SECRET, _REDIRECT_URI) and
    /// connects the location it was granted for. No admin token: HighLevel
    /// sends the installer's browser here; an invalid code connects nothing.
    #[oai(path = "/highlevel/oauth/callback", method = "get", operation_id = "highlevel.oauth.callback")]
    async fn oauth_callback(
        &self,
        state: Data<&AppState>,
        code: Query<Option<String>>,
        error: Query<Option<String>>,
    ) -> Result<Json<ConnectedOut>, ApiError> {
        if let Some(error) = error.0 {
            return Err(ApiError::bad_request("authorization_denied", format!("HighLevel did not authorize the install: {error}")));
        }
        let code = code.0.filter(|c| !c.is_empty() && c.len() <= 2048).ok_or_else(|| {
            ApiError::bad_request("missing_code", "the redirect carries no `code` (start the install from HighLevel's marketplace)")
        })?;
        let grant = match state.highlevel.client.exchange_code(&code).await {
            Ok(grant) => grant,
            Err(client::Error::NoApp) => {
                return Err(ApiError::Unavailable(body(
                    "highlevel_not_configured",
                    "HIGHLEVEL_CLIENT_ID and HIGHLEVEL_CLIENT_SECRET are not set",
                )))
            }
            Err(client::Error::InvalidGrant(reason)) => {
                return Err(ApiError::bad_request("invalid_code", format!("HighLevel refused the code: {reason}")))
            }
            Err(e) => return Err(ApiError::Unavailable(body("highlevel_unavailable", e.to_string()))),
        };
        let location_id = grant.location_id.clone().ok_or_else(|| {
            ApiError::bad_request("not_a_location_install", "HighLevel granted no locationId (install the app on a sub-account)")
        })?;
        let pair = TokenPair { access: &grant.access_token, refresh: &grant.refresh_token, expires_in: grant.expires_in, scopes: &grant.scopes };
        changes::connect_location(&state.pool, &state.sealer, state.sync_flows.as_ref(), &location_id, grant.company_id.as_deref(), &pair)
            .await
            .map_err(super::appointments::op_error)?;
        tracing::info!(location = %location_id, "HighLevel location connected through OAuth");
        Ok(Json(ConnectedOut {
            message: format!("HighLevel location {location_id} is connected to Relevo."),
            location_id,
            status: "connected".into(),
        }))
    }

    /// Connect a location with tokens from an install done elsewhere (sealed at rest, never returned).
    #[oai(path = "/api/v1/highlevel/locations", method = "post", operation_id = "v1.highlevel.locations.connect")]
    async fn connect(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<ConnectIn>) -> Result<Connected, ApiError> {
        let b = body.0;
        let (access, refresh) = (SecretString::from(b.access_token), SecretString::from(b.refresh_token));
        let scopes: Vec<String> = b.scope.as_deref().unwrap_or("").split_whitespace().map(str::to_owned).collect();
        let pair = TokenPair { access: &access, refresh: &refresh, expires_in: b.expires_in, scopes: &scopes };
        let location = changes::connect_location(&state.pool, &state.sealer, state.sync_flows.as_ref(), &b.location_id, b.company_id.as_deref(), &pair)
            .await
            .map_err(super::appointments::op_error)?;
        Ok(Connected::Created(Json(location.into())))
    }

    /// Connected locations.
    #[oai(path = "/api/v1/highlevel/locations", method = "get", operation_id = "v1.highlevel.locations.list")]
    async fn list(&self, _auth: AdminAuth, state: Data<&AppState>) -> Result<Json<LocationList>, ApiError> {
        let items = locations::list(&state.pool).await?.into_iter().map(Into::into).collect();
        Ok(Json(LocationList { items }))
    }

    /// One location: status, token expiry, scopes, limits, settings.
    #[oai(path = "/api/v1/highlevel/locations/:id", method = "get", operation_id = "v1.highlevel.locations.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<String>) -> Result<Json<LocationOut>, ApiError> {
        let location = locations::get(&state.pool, &id.0).await?.ok_or_else(|| ApiError::not_found("HighLevel location"))?;
        Ok(Json(location.into()))
    }

    /// Change `default_calendar_id`, `timezone` or `business_hours` (per weekday).
    #[oai(path = "/api/v1/highlevel/locations/:id", method = "patch", operation_id = "v1.highlevel.locations.update")]
    async fn update(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        id: Path<String>,
        body: Json<LocationPatch>,
    ) -> Result<Json<LocationOut>, ApiError> {
        let current = locations::get(&state.pool, &id.0).await?.ok_or_else(|| ApiError::not_found("HighLevel location"))?;
        let patch = body.0;
        let timezone = match patch.timezone {
            None => None,
            Some(tz) => Some(tz.parse().map_err(|_| ApiError::invalid(&Invalid::new("timezone", format!("{tz:?} is not an IANA time zone"))))?),
        };
        let business_hours = match patch.business_hours {
            None => None,
            Some(change) => {
                let hours = merge_hours(current.business_hours.clone(), change).map_err(|e| ApiError::invalid(&e))?;
                hours.validate().map_err(|e| ApiError::invalid(&e))?;
                Some(hours)
            }
        };
        let default_calendar_id = match patch.default_calendar_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(c) => Some(Some(c)),
        };
        let change = SettingsChange { default_calendar_id, timezone, business_hours };
        let location =
            locations::update_settings(&state.pool, &id.0, &change).await?.ok_or_else(|| ApiError::not_found("HighLevel location"))?;
        Ok(Json(location.into()))
    }

    /// The location's calendars, read live from HighLevel (`GET /calendars/`).
    /// HighLevel's calendars carry no time zone of their own: `timezone` is the
    /// location's unless HighLevel gives one.
    #[oai(path = "/api/v1/highlevel/locations/:id/calendars", method = "get", operation_id = "v1.highlevel.locations.calendars")]
    async fn calendars(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<String>) -> Result<Json<CalendarList>, ApiError> {
        let location = locations::get(&state.pool, &id.0).await?.ok_or_else(|| ApiError::not_found("HighLevel location"))?;
        let hl = &state.highlevel;
        let calendars = hl
            .call(&state.pool, &id.0, "list_calendars", |token| {
                let id = &id.0;
                async move { hl.client.calendars(&token, id).await }
            })
            .await
            .map_err(call_error)?;
        let calendars: Vec<CalendarOut> = calendars
            .into_iter()
            .map(|c| CalendarOut {
                timezone: c.timezone.or_else(|| Some(location.timezone.name().to_owned())),
                id: c.id,
                name: c.name,
                description: c.description,
                is_active: c.is_active,
            })
            .collect();
        Ok(Json(CalendarList { total: calendars.len(), calendars, location_id: id.0 }))
    }
}

fn merge_hours(mut hours: BusinessHours, change: BusinessHoursIn) -> Result<BusinessHours, Invalid> {
    let parse = |day: &str, v: MaybeUndefined<HoursIn>, current: Option<Hours>| -> Result<Option<Hours>, Invalid> {
        let time = |field: &str, raw: &str| {
            NaiveTime::parse_from_str(raw, "%H:%M")
                .map_err(|_| Invalid::new(format!("business_hours.{day}.{field}"), format!("{raw:?} is not a time like 08:00")))
        };
        Ok(match v {
            MaybeUndefined::Undefined => current,
            MaybeUndefined::Null => None,
            MaybeUndefined::Value(h) => Some(Hours { open: time("open", &h.open)?, close: time("close", &h.close)? }),
        })
    };
    hours.mon = parse("mon", change.mon, hours.mon)?;
    hours.tue = parse("tue", change.tue, hours.tue)?;
    hours.wed = parse("wed", change.wed, hours.wed)?;
    hours.thu = parse("thu", change.thu, hours.thu)?;
    hours.fri = parse("fri", change.fri, hours.fri)?;
    hours.sat = parse("sat", change.sat, hours.sat)?;
    hours.sun = parse("sun", change.sun, hours.sun)?;
    Ok(hours)
}

/// A live HighLevel read that failed: the location's state says what to do.
fn call_error(e: CallError) -> ApiError {
    match e {
        CallError::Token(TokenError::UnknownLocation(_)) => ApiError::not_found("HighLevel location"),
        CallError::Token(e @ TokenError::NeedsReauthorization { .. }) => {
            ApiError::Conflict(body("location_needs_reauthorization", e.to_string()))
        }
        CallError::RateLimited { .. } => ApiError::Unavailable(body("highlevel_rate_limited", e.to_string())),
        CallError::Database(e) => ApiError::internal(&e),
        e => ApiError::Unavailable(body("highlevel_unavailable", e.to_string())),
    }
}
