//! HighLevel's LeadConnector API v2, protocol only (`../shared/providers.md`
//! §4.1): the OAuth token endpoint (form-encoded, no `Version`) and the
//! calendar endpoints (`Version: 2021-04-15`, Bearer). Every answer's
//! `X-RateLimit-*` headers are returned with it; errors are classified into
//! `Error` variants that say whether retrying can help. Tokens, rate limits and
//! retries are the caller's business.

use chrono::{DateTime, FixedOffset, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The API version the calendar endpoints require.
pub const CALENDARS_VERSION: &str = "2021-04-15";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    app: Option<App>,
}

/// The marketplace app's credentials (HIGHLEVEL_CLIENT_ID / _SECRET / _REDIRECT_URI).
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: Option<String>,
}

/// What `POST /oauth/token` granted.
pub struct Grant {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: i64,
    pub scopes: Vec<String>,
    pub location_id: Option<String>,
    pub company_id: Option<String>,
}

/// HighLevel's counters from the answer's `X-RateLimit-*` headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub remaining: Option<i64>,
    pub max: Option<i64>,
    pub interval_ms: Option<i64>,
    pub daily_remaining: Option<i64>,
}

/// A calendar of the location (`GET /calendars/`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Calendar {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub timezone: Option<String>,
    pub is_active: bool,
}

/// An appointment as HighLevel holds it. A step checkpoint: add fields with
/// defaults, never rename one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(default)]
    pub calendar_id: Option<String>,
    #[serde(default)]
    pub contact_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub appointment_status: Option<String>,
}

/// The fields Relevo writes on create and update.
pub struct AppointmentWrite<'a> {
    pub calendar_id: &'a str,
    pub location_id: &'a str,
    pub contact_id: &'a str,
    pub title: &'a str,
    pub notes: Option<&'a str>,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
    /// HighLevel's `appointmentStatus` (`new`, `confirmed`, …).
    pub status: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("HighLevel unreachable: {0}")]
    Unreachable(String),
    /// The access token was refused (expired or revoked): refresh, then retry.
    #[error("HighLevel refused the access token: {0}")]
    Unauthorized(String),
    /// The refresh token or code was refused (used, revoked, expired).
    #[error("HighLevel refused the grant: {0}")]
    InvalidGrant(String),
    #[error("HighLevel rate limit: {message}")]
    RateLimited { retry_after_ms: Option<i64>, message: String },
    #[error("HighLevel has no {0}")]
    NotFound(String),
    #[error("HighLevel error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("HighLevel answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("HighLevel answered something unexpected: {0}")]
    Malformed(String),
    #[error("HIGHLEVEL_CLIENT_ID and HIGHLEVEL_CLIENT_SECRET are not set")]
    NoApp,
}

impl Error {
    /// Whether the same request may succeed later (timeouts, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Server { .. })
    }

    /// A stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound(_) => "not_found",
            Self::Server { .. } => "server_error",
            Self::Refused { .. } => "refused",
            Self::Malformed(_) => "malformed",
            Self::NoApp => "no_app",
        }
    }
}

/// An answer: HighLevel's counters, and the result.
pub type Called<T> = (Limits, Result<T, Error>);

impl Client {
    pub fn new(base: &str, app: Option<App>) -> Self {
        Self {
            http: crate::providers::api_client(),
            base: base.trim_end_matches('/').to_owned(),
            app,
        }
    }

    pub fn has_app(&self) -> bool {
        self.app.is_some()
    }

    /// `POST /oauth/token` with `grant_type=authorization_code`.
    pub async fn exchange_code(&self, code: &str) -> Result<Grant, Error> {
        let app = self.app.as_ref().ok_or(Error::NoApp)?;
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("user_type", "Location")];
        if let Some(uri) = &app.redirect_uri {
            form.push(("redirect_uri", uri));
        }
        self.token(app, &form).await
    }

    /// `POST /oauth/token` with `grant_type=refresh_token`. The answer carries
    /// the next refresh token; the one sent is spent either way.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<Grant, Error> {
        let app = self.app.as_ref().ok_or(Error::NoApp)?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("user_type", "Location"),
        ];
        self.token(app, &form).await
    }

    async fn token(&self, app: &App, form: &[(&str, &str)]) -> Result<Grant, Error> {
        let mut body: Vec<(&str, &str)> =
            vec![("client_id", app.client_id.as_str()), ("client_secret", app.client_secret.expose_secret())];
        body.extend_from_slice(form);
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .header("Accept", "application/json")
            .form(&body)
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let (_, status, body) = read(resp).await;
        match status {
            200 | 201 => {
                let text = |k: &str| body[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
                let (Some(access), Some(refresh)) = (text("access_token"), text("refresh_token")) else {
                    return Err(Error::Malformed("a token answer without access_token or refresh_token".into()));
                };
                Ok(Grant {
                    access_token: SecretString::from(access),
                    refresh_token: SecretString::from(refresh),
                    expires_in: body["expires_in"].as_i64().unwrap_or(86_399),
                    scopes: text("scope").map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default(),
                    location_id: text("locationId"),
                    company_id: text("companyId"),
                })
            }
            // A spent, revoked or unknown refresh token or code (invalid_grant);
            // wrong app credentials (invalid_client) will not change either.
            400 | 401 | 403 => Err(Error::InvalidGrant(message(&body))),
            429 => Err(Error::RateLimited { retry_after_ms: None, message: message(&body) }),
            s if s >= 500 => Err(Error::Server { status, message: message(&body) }),
            _ => Err(Error::Refused { status, message: message(&body) }),
        }
    }

    /// `GET /calendars/?locationId=`.
    pub async fn calendars(&self, token: &SecretString, location_id: &str) -> Called<Vec<Calendar>> {
        let req = self.http.get(format!("{}/calendars/", self.base)).query(&[("locationId", location_id)]);
        let (limits, answer) = self.send(token, req, "calendars").await;
        (limits, answer.map(|body| body["calendars"].as_array().map(|a| a.iter().map(calendar).collect()).unwrap_or_default()))
    }

    /// `GET /calendars/events`: the calendar's events overlapping [from, to).
    pub async fn events_between(
        &self,
        token: &SecretString,
        location_id: &str,
        calendar_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Called<Vec<Event>> {
        let req = self.http.get(format!("{}/calendars/events", self.base)).query(&[
            ("locationId", location_id),
            ("calendarId", calendar_id),
            ("startTime", &from.timestamp_millis().to_string()),
            ("endTime", &to.timestamp_millis().to_string()),
        ]);
        let (limits, answer) = self.send(token, req, "events").await;
        (limits, answer.and_then(|body| decode(&body["events"])))
    }

    /// `POST /calendars/events/appointments`.
    pub async fn create_appointment(&self, token: &SecretString, a: &AppointmentWrite<'_>) -> Called<Event> {
        let mut body = write_body(a);
        body["locationId"] = json!(a.location_id);
        body["contactId"] = json!(a.contact_id);
        let req = self.http.post(format!("{}/calendars/events/appointments", self.base)).json(&body);
        let (limits, answer) = self.send(token, req, "appointment").await;
        (limits, answer.and_then(|body| decode(appointment_of(&body))))
    }

    /// `PUT /calendars/events/appointments/{eventId}`.
    pub async fn update_appointment(&self, token: &SecretString, id: &str, a: &AppointmentWrite<'_>) -> Called<Event> {
        let req = self.http.put(format!("{}/calendars/events/appointments/{}", self.base, segment(id))).json(&write_body(a));
        let (limits, answer) = self.send(token, req, "appointment").await;
        (limits, answer.and_then(|body| decode(appointment_of(&body))))
    }

    /// `DELETE /calendars/events/{eventId}` (HighLevel answers 201; its spec
    /// requires a JSON body with no fields).
    pub async fn delete_event(&self, token: &SecretString, id: &str) -> Called<()> {
        let req = self.http.delete(format!("{}/calendars/events/{}", self.base, segment(id))).json(&json!({}));
        let (limits, answer) = self.send(token, req, "appointment").await;
        (limits, answer.map(|_| ()))
    }

    async fn send(&self, token: &SecretString, req: reqwest::RequestBuilder, what: &str) -> Called<Value> {
        let resp = match req
            .bearer_auth(token.expose_secret())
            .header("Version", CALENDARS_VERSION)
            .header("Accept", "application/json")
            .send()
            .await
        {
            Ok(resp) => resp,
            Err(e) => return (Limits::default(), Err(Error::Unreachable(e.to_string()))),
        };
        let (limits, status, body) = read(resp).await;
        let result = match status {
            200..=299 => Ok(body),
            401 => Err(Error::Unauthorized(message(&body))),
            404 => Err(Error::NotFound(format!("{what}: {}", message(&body)))),
            429 => Err(Error::RateLimited { retry_after_ms: limits.interval_ms, message: message(&body) }),
            s if s >= 500 => Err(Error::Server { status, message: message(&body) }),
            _ => Err(Error::Refused { status, message: message(&body) }),
        };
        (limits, result)
    }
}

async fn read(resp: reqwest::Response) -> (Limits, u16, Value) {
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let mut limits = Limits {
        remaining: header("x-ratelimit-remaining"),
        max: header("x-ratelimit-max"),
        interval_ms: header("x-ratelimit-interval-milliseconds"),
        daily_remaining: header("x-ratelimit-daily-remaining"),
    };
    if let (None, Some(secs)) = (limits.interval_ms, header("retry-after")) {
        limits.interval_ms = Some(secs * 1000);
    }
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (limits, status, body)
}

/// HighLevel's `message` is a string, or a list of strings on 422.
fn message(body: &Value) -> String {
    let text = match &body["message"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
        _ => body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("").to_owned(),
    };
    text.chars().take(500).collect()
}

/// The appointment in an answer: the documented top-level object, or one
/// wrapped as `{"appointment": …}` / `{"event": …}` (as the GET answer is).
fn appointment_of(body: &Value) -> &Value {
    if body.get("id").is_some() {
        return body;
    }
    ["appointment", "event"].iter().map(|k| &body[*k]).find(|v| v.get("id").is_some()).unwrap_or(body)
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, Error> {
    serde_json::from_value(camel::to_snake(v)).map_err(|e| Error::Malformed(e.to_string()))
}

/// HighLevel's JSON is camelCase; Relevo's checkpoints are snake_case.
mod camel {
    use serde_json::Value;

    pub fn to_snake(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (snake(k), to_snake(v))).collect()),
            Value::Array(items) => Value::Array(items.iter().map(to_snake).collect()),
            other => other.clone(),
        }
    }

    fn snake(key: &str) -> String {
        let mut out = String::with_capacity(key.len() + 4);
        for c in key.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

fn calendar(c: &Value) -> Calendar {
    let text = |k: &str| c[k].as_str().map(str::to_owned);
    Calendar {
        id: text("id").unwrap_or_default(),
        name: text("name").unwrap_or_default(),
        description: text("description"),
        timezone: text("timezone").or_else(|| c["calendarConfig"]["timezone"].as_str().map(str::to_owned)),
        is_active: c["isActive"].as_bool().unwrap_or(true),
    }
}

fn write_body(a: &AppointmentWrite<'_>) -> Value {
    let mut body = json!({
        "calendarId": a.calendar_id,
        "title": a.title,
        "startTime": a.start.to_rfc3339(),
        "endTime": a.end.to_rfc3339(),
        "appointmentStatus": a.status,
        // Relevo checked the slot itself (business hours, overlaps); HighLevel's
        // free-slot rules would refuse bookings its own widget would not offer.
        "ignoreFreeSlotValidation": true,
    });
    // Optional fields are left out rather than sent as null.
    if let Some(notes) = a.notes {
        body["description"] = json!(notes);
    }
    body
}

/// An id as one path segment (HighLevel ids are alphanumeric; anything else is escaped).
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_answers_decode_into_events() {
        let body = json!({"id": "e1", "calendarId": "c1", "contactId": "k1", "startTime": "2026-12-03T08:00:00-05:00",
                          "appointmentStatus": "confirmed", "extra": {"nestedKey": 1}});
        let event: Event = decode(&body).unwrap();
        assert_eq!(event.calendar_id.as_deref(), Some("c1"));
        assert_eq!(event.appointment_status.as_deref(), Some("confirmed"));
        assert!(decode::<Event>(&json!({"calendarId": "c1"})).is_err());
    }

    #[test]
    fn writes_leave_out_absent_notes_and_carry_offsets() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap();
        let mut a = AppointmentWrite {
            calendar_id: "c1",
            location_id: "L1",
            contact_id: "k1",
            title: "Consulta",
            notes: None,
            start: at("2026-12-03T08:00:00-05:00"),
            end: at("2026-12-03T09:00:00-05:00"),
            status: "new",
        };
        let body = write_body(&a);
        assert!(body.get("description").is_none(), "{body}");
        assert_eq!(body["startTime"], "2026-12-03T08:00:00-05:00");
        a.notes = Some("traer radiografías");
        assert_eq!(write_body(&a)["description"], "traer radiografías");
    }

    #[test]
    fn appointments_are_read_bare_or_wrapped() {
        for body in [json!({"id": "e1"}), json!({"appointment": {"id": "e1"}}), json!({"event": {"id": "e1"}})] {
            assert_eq!(decode::<Event>(appointment_of(&body)).unwrap().id, "e1");
        }
        assert!(decode::<Event>(appointment_of(&json!({"succeeded": true}))).is_err());
    }

    #[test]
    fn messages_are_read_from_strings_and_lists() {
        assert_eq!(message(&json!({"statusCode": 422, "message": ["a", "b"]})), "a; b");
        assert_eq!(message(&json!({"error": "invalid_grant", "error_description": "used"})), "used");
    }
}
