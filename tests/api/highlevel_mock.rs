//! HighLevel's LeadConnector API v2 as a local server that checks requests as
//! the real one does (`../shared/providers.md` §4.1, §4.3):
//!
//! - `POST /oauth/token` takes only form bodies, checks the app's credentials,
//!   exchanges each authorization code once, and rotates tokens on every
//!   refresh: the refresh token sent is spent (a second use gets
//!   `invalid_grant`) and the old access token stops working.
//! - Every calendar endpoint needs a location's current `Bearer` token and
//!   `Version: 2021-04-15`, enforces the documented required fields, the
//!   `appointmentStatus` values and ISO-8601 times with an offset, and answers
//!   DELETE with 201.
//! - Requests are counted per location in a sliding window (100 per 10 s unless
//!   a test changes it); past the limit the answer is 429. Every answer to an
//!   authenticated request carries the five `X-RateLimit-*` headers.
//!
//! Tests can revoke tokens, inject failures, hold a create's answer (to kill
//! the client mid-call), and read back what arrived, when, and what it got.
//!
//! Where HighLevel's behaviour is UNCONFIRMED in providers.md the mock takes
//! the reading that lets fewer client bugs through: no `Retry-After` on 429
//! unless a test asks for it, 400 for a missing or wrong `Version`, JSON bodies
//! only with `Content-Type: application/json`.

// Test support: each test uses only part of it.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use serde_json::{json, Map, Value};
use wiremock::{matchers, Mock, MockServer, Request, Respond, ResponseTemplate};

pub const CLIENT_ID: &str = "hl-client-id";
pub const CLIENT_SECRET: &str = "hl-client-secret";
pub const REDIRECT_URI: &str = "http://relevo.test/highlevel/oauth/callback";
pub const SCOPES: &str = "calendars.readonly calendars/events.write calendars/events.readonly";
/// The `Version` header every calendar endpoint requires.
pub const CALENDARS_VERSION: &str = "2021-04-15";

const DAILY_LIMIT: usize = 200_000;
const STATUSES: [&str; 6] = ["new", "confirmed", "cancelled", "showed", "noshow", "invalid"];
/// A calendar's default `slotDuration`: the length of an appointment created without `endTime`.
const DEFAULT_MINUTES: i64 = 30;

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The location the Bearer token was issued to (also for a stale or revoked
    /// token), or on `/oauth/token` the location granted; `None` if unknown.
    pub location: Option<String>,
    /// The status answered.
    pub status: u16,
    /// The `Version` header as sent.
    pub version: Option<String>,
    pub body: String,
}

/// HighLevel's LeadConnector API for any number of locations (sub-accounts).
#[derive(Clone)]
pub struct HighLevelApi {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

impl HighLevelApi {
    pub async fn start() -> Self {
        let server = Arc::new(MockServer::start().await);
        let state = Arc::new(Mutex::new(State::new()));
        // One responder for every path: the limiter and the token checks span endpoints.
        Mock::given(matchers::any()).respond_with(Api(state.clone())).mount(&server).await;
        Self { server, state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Registers a location and issues it a token pair, returned as
    /// (access_token, refresh_token). For a known location the pair replaces
    /// the current one.
    pub fn add_location(&self, location_id: &str) -> (String, String) {
        self.lock().issue(location_id)
    }

    /// An authorization code that `POST /oauth/token` exchanges, once, for a new
    /// token pair of `location_id` (registered here if new).
    pub fn issue_code(&self, code: &str, location_id: &str) {
        let mut state = self.lock();
        state.locations.entry(location_id.to_owned()).or_default();
        state.codes.insert(code.to_owned(), Code { location: location_id.to_owned(), used: false });
    }

    /// A calendar of the location, listed by `GET /calendars/`. HighLevel's
    /// CalendarDTO has no timezone field (the timezone belongs to the location),
    /// so `_timezone` is not served.
    pub fn add_calendar(&self, location_id: &str, id: &str, name: &str, _timezone: &str) {
        self.lock().calendars.push(Calendar { location: location_id.to_owned(), id: id.to_owned(), name: name.to_owned() });
    }

    /// The location's current access token is refused (401) from now on; a
    /// refresh issues a working one.
    pub fn revoke_access_token(&self, location_id: &str) {
        self.lock().location(location_id).access = None;
    }

    /// The location's current refresh token is refused (`invalid_grant`) from now on.
    pub fn revoke_refresh_token(&self, location_id: &str) {
        self.lock().location(location_id).refresh = None;
    }

    /// Successful `refresh_token` grants for the location.
    pub fn refreshes(&self, location_id: &str) -> usize {
        self.lock().locations.get(location_id).map_or(0, |l| l.refreshes)
    }

    /// Every `POST /oauth/token` received, whatever it was answered.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// The location's appointments not deleted, as `GET …/appointments/{id}` returns them.
    pub fn events(&self, location_id: &str) -> Vec<Value> {
        let state = self.lock();
        state.appointments.iter().filter(|a| !a.deleted && a.json["locationId"] == location_id).map(|a| a.json.clone()).collect()
    }

    /// One appointment, deleted or not (e.g. to build a webhook body from it).
    pub fn event(&self, event_id: &str) -> Option<Value> {
        self.lock().appointments.iter().find(|a| a.json["id"] == event_id).map(|a| a.json.clone())
    }

    /// Ids deleted through `DELETE /calendars/events/{id}`, in order.
    pub fn deleted(&self) -> Vec<String> {
        self.lock().deleted.clone()
    }

    /// `POST /calendars/events/appointments` requests received, refused ones included.
    pub fn create_requests(&self) -> usize {
        self.lock().create_requests
    }

    /// The next appointment created is stored at once but answered only after `hold`.
    pub fn hold_next_create(&self, hold: Duration) {
        self.lock().hold = Some(hold);
    }

    /// The next `n` authenticated calendar requests that the limiter lets through
    /// are answered `status` with a HighLevel-shaped error body, and change nothing.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().failures = Failures { left: n, status };
    }

    /// At most `max` requests per location within any `interval` (default 100 per 10 s).
    pub fn set_rate_limit(&self, max: usize, interval: Duration) {
        self.lock().limit = Limit { max, interval };
    }

    /// Whether a 429 carries `Retry-After` (seconds until the window frees a
    /// slot). Off by default: HighLevel's 429 is UNCONFIRMED, so clients must
    /// cope without it.
    pub fn set_retry_after(&self, on: bool) {
        self.lock().retry_after = on;
    }

    /// The most authenticated requests for the location (429s included) that
    /// arrived within any span of `window`, both ends included.
    pub fn max_in_window(&self, location_id: &str, window: Duration) -> usize {
        let state = self.lock();
        let Some(arrivals) = state.locations.get(location_id).map(|l| &l.arrivals) else { return 0 };
        let (mut best, mut first) = (0, 0);
        for (last, at) in arrivals.iter().enumerate() {
            while at.duration_since(arrivals[first]) > window {
                first += 1;
            }
            best = best.max(last - first + 1);
        }
        best
    }

    /// Requests for the location answered 429 by the limiter.
    pub fn rejected_429(&self, location_id: &str) -> usize {
        self.lock().locations.get(location_id).map_or(0, |l| l.rejected_429)
    }

    /// Every request received, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Location {
    access: Option<String>,
    refresh: Option<String>,
    refreshes: usize,
    /// Authenticated calendar requests, 429s included.
    arrivals: Vec<Instant>,
    /// The requests the limiter let through: those count against the limit.
    admitted: Vec<Instant>,
    rejected_429: usize,
}

struct Code {
    location: String,
    used: bool,
}

struct Calendar {
    location: String,
    id: String,
    name: String,
}

struct Appointment {
    /// The event as `GET /calendars/events/appointments/{id}` returns it.
    json: Value,
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
    deleted: bool,
}

struct Limit {
    max: usize,
    interval: Duration,
}

struct Failures {
    left: usize,
    status: u16,
}

struct State {
    /// Makes tokens differ between servers, so a client can't guess one.
    seed: u64,
    serial: u64,
    locations: HashMap<String, Location>,
    /// Every access token ever issued → its location, to attribute stale ones.
    issued: HashMap<String, String>,
    codes: HashMap<String, Code>,
    calendars: Vec<Calendar>,
    appointments: Vec<Appointment>,
    deleted: Vec<String>,
    token_requests: usize,
    create_requests: usize,
    hold: Option<Duration>,
    failures: Failures,
    limit: Limit,
    retry_after: bool,
    requests: Vec<Recorded>,
}

/// A calendar endpoint, known before any check so an unknown path is a plain 404.
enum Route<'a> {
    Calendars,
    Create,
    Get(&'a str),
    Update(&'a str),
    Events,
    Delete(&'a str),
}

impl State {
    fn new() -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self {
            seed,
            serial: 0,
            locations: HashMap::new(),
            issued: HashMap::new(),
            codes: HashMap::new(),
            calendars: Vec::new(),
            appointments: Vec::new(),
            deleted: Vec::new(),
            token_requests: 0,
            create_requests: 0,
            hold: None,
            failures: Failures { left: 0, status: 500 },
            limit: Limit { max: 100, interval: Duration::from_secs(10) },
            retry_after: false,
            requests: Vec::new(),
        }
    }

    /// A location a test named; a typo there should fail loudly.
    fn location(&mut self, id: &str) -> &mut Location {
        self.locations.get_mut(id).unwrap_or_else(|| panic!("HighLevel mock: unknown location {id}"))
    }

    /// A fresh token pair for the location; the previous pair stops working.
    fn issue(&mut self, location_id: &str) -> (String, String) {
        self.serial += 1;
        let n = self.serial;
        let access = format!("at-{location_id}-{n}-{:08x}", scramble(self.seed ^ n));
        let refresh = format!("rt-{location_id}-{n}-{:08x}", scramble(self.seed ^ n ^ 0xa5a5));
        self.issued.insert(access.clone(), location_id.to_owned());
        let location = self.locations.entry(location_id.to_owned()).or_default();
        location.access = Some(access.clone());
        location.refresh = Some(refresh.clone());
        (access, refresh)
    }

    fn handle(&mut self, req: &Request, now: Instant) -> (Reply, Option<String>) {
        let segments: Vec<&str> = req.url.path().trim_matches('/').split('/').collect();
        // Trailing slashes are accepted, as HighLevel does for `/calendars/`.
        let route = match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["oauth", "token"]) => return self.token(req),
            ("GET", ["calendars"]) => Route::Calendars,
            ("POST", ["calendars", "events", "appointments"]) => Route::Create,
            ("GET", ["calendars", "events", "appointments", id]) => Route::Get(id),
            ("PUT", ["calendars", "events", "appointments", id]) => Route::Update(id),
            ("GET", ["calendars", "events"]) => Route::Events,
            ("DELETE", ["calendars", "events", id]) => Route::Delete(id),
            (method, _) => {
                let message = format!("Cannot {method} {}", req.url.path());
                return (Reply::new(404, json!({"statusCode": 404, "message": message, "error": "Not Found"})), None);
            }
        };
        if matches!(route, Route::Create) {
            self.create_requests += 1;
        }

        let token = bearer(req);
        let holder = token.and_then(|t| self.locations.iter().find(|(_, l)| l.access.as_deref() == Some(t))).map(|(id, _)| id.clone());
        let Some(location) = holder else {
            let unauthorized = json!({"statusCode": 401, "message": "Invalid token: access token is invalid", "error": "Unauthorized"});
            return (Reply::new(401, unauthorized), token.and_then(|t| self.issued.get(t).cloned()));
        };

        let limits = match self.admit(&location, now) {
            Ok(limits) => limits,
            Err(too_many) => return (too_many, Some(location)),
        };
        let mut reply = if self.failures.left > 0 {
            self.failures.left -= 1;
            let status = self.failures.status;
            Reply::new(status, json!({"statusCode": status, "message": reason(status)}))
        } else if header(req, "version") != Some(CALENDARS_VERSION) {
            error(400, "version header is missing or invalid")
        } else {
            match route {
                Route::Calendars => self.calendars(&location, req),
                Route::Create => self.create(&location, req),
                Route::Get(id) => match self.find(&location, id) {
                    Some(i) => Reply::new(200, json!({"event": self.appointments[i].json})),
                    None => not_found(),
                },
                Route::Update(id) => self.update(&location, id, req),
                Route::Events => self.events(&location, req),
                Route::Delete(id) => self.delete(&location, id, req),
            }
        };
        reply.headers.extend(limits);
        (reply, Some(location))
    }

    /// Counts the request against the location's window: the `X-RateLimit-*`
    /// headers to send, or the 429 to answer.
    fn admit(&mut self, location_id: &str, now: Instant) -> Result<Vec<(&'static str, String)>, Reply> {
        let (max, interval, retry_after) = (self.limit.max, self.limit.interval, self.retry_after);
        let location = self.location(location_id);
        location.arrivals.push(now);
        // `admitted` is in arrival order, so the window is a suffix of it.
        let in_window = location.admitted.iter().rev().take_while(|t| now.duration_since(**t) < interval).count();
        let headers = |remaining: usize, used_today: usize| {
            vec![
                ("X-RateLimit-Limit-Daily", DAILY_LIMIT.to_string()),
                ("X-RateLimit-Daily-Remaining", DAILY_LIMIT.saturating_sub(used_today).to_string()),
                ("X-RateLimit-Interval-Milliseconds", interval.as_millis().to_string()),
                ("X-RateLimit-Max", max.to_string()),
                ("X-RateLimit-Remaining", remaining.to_string()),
            ]
        };
        if in_window >= max {
            location.rejected_429 += 1;
            let mut reply = Reply::new(429, json!({"statusCode": 429, "message": "Too many requests"}));
            reply.headers = headers(0, location.admitted.len());
            if retry_after {
                // The oldest request in the window leaves it first.
                let oldest = location.admitted.len().checked_sub(in_window).and_then(|i| location.admitted.get(i));
                let wait = oldest.map_or(interval, |t| interval.saturating_sub(now.duration_since(*t)));
                reply.headers.push(("Retry-After", wait.as_secs_f64().ceil().max(1.0).to_string()));
            }
            return Err(reply);
        }
        location.admitted.push(now);
        Ok(headers(max - in_window - 1, location.admitted.len()))
    }

    /// `POST /oauth/token`.
    fn token(&mut self, req: &Request) -> (Reply, Option<String>) {
        self.token_requests += 1;
        let form_encoded = header(req, "content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if !form_encoded {
            return (oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"), None);
        }
        let form: HashMap<String, String> = form_urlencoded::parse(&req.body).into_owned().collect();
        let field = |key: &str| form.get(key).map(String::as_str).filter(|v| !v.is_empty());
        let (Some(client_id), Some(client_secret), Some(grant_type)) = (field("client_id"), field("client_secret"), field("grant_type")) else {
            return (oauth_error(400, "invalid_request", "client_id, client_secret and grant_type are required"), None);
        };
        if client_id != CLIENT_ID || client_secret != CLIENT_SECRET {
            return (oauth_error(401, "invalid_client", "Invalid client credentials"), None);
        }
        if field("user_type").is_some_and(|t| t != "Location") {
            return (oauth_error(400, "invalid_request", "this mock issues Location tokens only"), None);
        }
        let location = match grant_type {
            "authorization_code" => {
                let Some(code) = field("code") else { return (oauth_error(400, "invalid_request", "code is required"), None) };
                let Some(grant) = self.codes.get_mut(code).filter(|c| !c.used) else {
                    return (oauth_error(401, "invalid_grant", "Invalid grant: authorization code is invalid"), None);
                };
                if field("redirect_uri") != Some(REDIRECT_URI) {
                    return (oauth_error(401, "invalid_grant", "Invalid grant: redirect_uri does not match"), None);
                }
                grant.used = true;
                grant.location.clone()
            }
            "refresh_token" => {
                let Some(sent) = field("refresh_token") else {
                    return (oauth_error(400, "invalid_request", "refresh_token is required"), None);
                };
                // Only the current token of a location works: a rotated, revoked or unknown one does not.
                let holder = self.locations.iter_mut().find(|(_, l)| l.refresh.as_deref() == Some(sent));
                let Some((location, state)) = holder else {
                    return (oauth_error(401, "invalid_grant", "Invalid grant: refresh token is invalid"), None);
                };
                state.refreshes += 1;
                location.clone()
            }
            _ => return (oauth_error(400, "unsupported_grant_type", "this mock grants authorization_code and refresh_token"), None),
        };
        let (access, refresh) = self.issue(&location);
        let n = self.serial;
        let body = json!({
            "access_token": access, "token_type": "Bearer", "expires_in": 86399, "refresh_token": refresh,
            "scope": SCOPES, "userType": "Location", "locationId": location, "companyId": "company-1",
            "userId": "user-1", "refreshTokenId": format!("rtid-{n}"), "isBulkInstallation": false,
            "traceId": format!("trace-{n}"),
        });
        (Reply::new(200, body), Some(location))
    }

    /// `GET /calendars/?locationId=`.
    fn calendars(&self, location: &str, req: &Request) -> Reply {
        let query = query(req);
        let Some(asked) = query.get("locationId").filter(|l| !l.is_empty()) else {
            return unprocessable(vec!["locationId should not be empty".into()]);
        };
        if asked != location {
            return forbidden();
        }
        let calendars: Vec<Value> = self
            .calendars
            .iter()
            .filter(|c| c.location == location)
            .map(|c| json!({"id": c.id, "locationId": c.location, "name": c.name, "description": "", "isActive": true,
                            "calendarType": "event", "slotDuration": DEFAULT_MINUTES, "slotDurationUnit": "mins"}))
            .collect();
        Reply::new(200, json!({"calendars": calendars}))
    }

    /// `POST /calendars/events/appointments`.
    fn create(&mut self, location: &str, req: &Request) -> Reply {
        let body = match json_object(req) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let mut check = Check::new(&body);
        let calendar_id = check.text("calendarId", true);
        let location_id = check.text("locationId", true);
        let contact_id = check.text("contactId", true);
        let start = check.time("startTime", true);
        let end = check.time("endTime", false);
        let fields = check.optional_fields();
        let (Some(calendar_id), Some(location_id), Some(contact_id), Some((start_text, start)), true) =
            (calendar_id, location_id, contact_id, start, check.messages.is_empty())
        else {
            return unprocessable(check.messages);
        };
        if location_id != location {
            return forbidden();
        }
        if !self.has_calendar(location, &calendar_id) {
            return error(400, "Calendar not found");
        }
        let (end_text, end) = end.unwrap_or_else(|| {
            let end = start + TimeDelta::minutes(DEFAULT_MINUTES);
            (end.to_rfc3339(), end)
        });
        if end < start {
            return unprocessable(vec!["endTime must be later than startTime".into()]);
        }
        let now = now_text();
        let json = json!({
            "id": format!("ghl-appt-{}", self.appointments.len() + 1),
            "calendarId": calendar_id, "locationId": location, "contactId": contact_id, "groupId": null,
            "title": fields.title.unwrap_or_else(|| "Appointment".into()),
            "appointmentStatus": fields.status.unwrap_or_else(|| "confirmed".into()),
            "assignedUserId": fields.assigned_user_id, "users": [], "address": fields.address,
            "description": fields.description, "startTime": start_text, "endTime": end_text,
            "dateAdded": now, "dateUpdated": now, "isRecurring": false, "rrule": null,
        });
        let mut reply = Reply::new(200, summary(&json));
        self.appointments.push(Appointment { json, start, end, deleted: false });
        // Stored first, answered late: a client killed meanwhile must find it on restart.
        reply.delay = self.hold.take();
        reply
    }

    /// `PUT /calendars/events/appointments/{eventId}`: every field optional.
    fn update(&mut self, location: &str, id: &str, req: &Request) -> Reply {
        let body = match json_object(req) {
            Ok(body) => body,
            Err(reply) => return reply,
        };
        let mut check = Check::new(&body);
        let calendar_id = check.text("calendarId", false);
        let start = check.time("startTime", false);
        let end = check.time("endTime", false);
        let fields = check.optional_fields();
        if !check.messages.is_empty() {
            return unprocessable(check.messages);
        }
        let Some(index) = self.find(location, id) else { return not_found() };
        if calendar_id.as_ref().is_some_and(|c| !self.has_calendar(location, c)) {
            return error(400, "Calendar not found");
        }
        let appointment = &mut self.appointments[index];
        let new_start = start.as_ref().map_or(appointment.start, |(_, t)| *t);
        let new_end = end.as_ref().map_or(appointment.end, |(_, t)| *t);
        if new_end < new_start {
            return unprocessable(vec!["endTime must be later than startTime".into()]);
        }
        (appointment.start, appointment.end) = (new_start, new_end);
        let json = &mut appointment.json;
        let updates = [
            ("calendarId", calendar_id),
            ("startTime", start.map(|(text, _)| text)),
            ("endTime", end.map(|(text, _)| text)),
            ("title", fields.title),
            ("appointmentStatus", fields.status),
            ("description", fields.description),
            ("address", fields.address),
            ("assignedUserId", fields.assigned_user_id),
        ];
        for (key, value) in updates {
            if let Some(value) = value {
                json[key] = Value::String(value);
            }
        }
        json["dateUpdated"] = Value::String(now_text());
        Reply::new(200, summary(json))
    }

    /// `GET /calendars/events?locationId=&calendarId=&startTime=&endTime=` (times in epoch ms).
    fn events(&self, location: &str, req: &Request) -> Reply {
        let query = query(req);
        let mut messages = Vec::new();
        let text = |key: &str| query.get(key).map(String::as_str).filter(|v| !v.is_empty());
        let location_id = text("locationId");
        if location_id.is_none() {
            messages.push("locationId should not be empty".to_owned());
        }
        // HighLevel also takes userId or groupId instead; Relevo filters by calendar only.
        let calendar_id = text("calendarId");
        if calendar_id.is_none() {
            messages.push("Either of calendarId, userId or groupId is required (this mock supports calendarId)".to_owned());
        }
        let mut millis = |key: &str| {
            let parsed = text(key).and_then(|v| v.parse::<i64>().ok());
            if parsed.is_none() {
                messages.push(format!("{key} must be a number string of epoch milliseconds"));
            }
            parsed
        };
        let (from, to) = (millis("startTime"), millis("endTime"));
        let (Some(location_id), Some(calendar_id), Some(from), Some(to)) = (location_id, calendar_id, from, to) else {
            return unprocessable(messages);
        };
        if location_id != location {
            return forbidden();
        }
        let events: Vec<Value> = self
            .appointments
            .iter()
            .filter(|a| !a.deleted && a.json["locationId"] == location && a.json["calendarId"] == calendar_id)
            .filter(|a| {
                // Overlaps [from, to); an appointment with no length still occupies its instant.
                let start = a.start.timestamp_millis();
                let end = a.end.timestamp_millis().max(start + 1);
                start < to && end > from
            })
            .map(|a| a.json.clone())
            .collect();
        Reply::new(200, json!({"events": events}))
    }

    /// `DELETE /calendars/events/{eventId}`: the spec requires a JSON body (`{}`).
    fn delete(&mut self, location: &str, id: &str, req: &Request) -> Reply {
        if let Err(reply) = json_object(req) {
            return reply;
        }
        let Some(index) = self.find(location, id) else { return not_found() };
        self.appointments[index].deleted = true;
        self.deleted.push(id.to_owned());
        Reply::new(201, json!({"succeeded": true}))
    }

    /// A live appointment of the location.
    fn find(&self, location: &str, id: &str) -> Option<usize> {
        self.appointments.iter().position(|a| !a.deleted && a.json["id"] == id && a.json["locationId"] == location)
    }

    fn has_calendar(&self, location: &str, id: &str) -> bool {
        self.calendars.iter().any(|c| c.location == location && c.id == id)
    }
}

struct Api(Arc<Mutex<State>>);

impl Respond for Api {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Taken under the lock, so arrivals are recorded in order.
        let at = Instant::now();
        let (reply, location) = state.handle(req, at);
        state.requests.push(Recorded {
            at,
            method: req.method.to_string(),
            path: req.url.path().to_owned(),
            query: req.url.query().map(str::to_owned),
            location,
            status: reply.status,
            version: header(req, "version").map(str::to_owned),
            body: String::from_utf8_lossy(&req.body).into_owned(),
        });
        reply.into_template()
    }
}

/// An answer, kept as data so its status can be recorded.
struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
    delay: Option<Duration>,
}

impl Reply {
    fn new(status: u16, body: Value) -> Self {
        Self { status, body, headers: Vec::new(), delay: None }
    }

    fn into_template(self) -> ResponseTemplate {
        let mut template = ResponseTemplate::new(self.status).set_body_json(self.body);
        for (name, value) in self.headers {
            template = template.insert_header(name, value.as_str());
        }
        match self.delay {
            Some(delay) => template.set_delay(delay),
            None => template,
        }
    }
}

/// HighLevel's common error body (`common/common-schemas.json`).
fn error(status: u16, message: &str) -> Reply {
    Reply::new(status, json!({"statusCode": status, "message": message}))
}

/// A validation failure: every message at once, as HighLevel's class-validator does.
fn unprocessable(messages: Vec<String>) -> Reply {
    Reply::new(422, json!({"statusCode": 422, "message": messages, "error": "Unprocessable Entity"}))
}

fn forbidden() -> Reply {
    Reply::new(403, json!({"statusCode": 403, "message": "The token does not have access to this location.", "error": "Forbidden"}))
}

fn not_found() -> Reply {
    error(404, "Appointment not found")
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::new(status, json!({"error": error, "error_description": description}))
}

fn reason(status: u16) -> &'static str {
    match status {
        429 => "Too many requests",
        500 => "Internal server error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// The fields create and update answer with (`AppointmentSchemaResponse`).
fn summary(event: &Value) -> Value {
    let keys = ["id", "calendarId", "locationId", "contactId", "startTime", "endTime", "title", "appointmentStatus",
        "assignedUserId", "address", "isRecurring", "rrule"];
    Value::Object(keys.iter().map(|k| ((*k).to_owned(), event[*k].clone())).collect())
}

/// The optional appointment fields shared by create and update.
struct Fields {
    title: Option<String>,
    status: Option<String>,
    description: Option<String>,
    address: Option<String>,
    assigned_user_id: Option<String>,
}

/// Type checks on a JSON body in the manner of HighLevel's validators: every
/// problem is collected, and `null` counts as absent.
struct Check<'a> {
    body: &'a Map<String, Value>,
    messages: Vec<String>,
}

impl<'a> Check<'a> {
    fn new(body: &'a Map<String, Value>) -> Self {
        Self { body, messages: Vec::new() }
    }

    fn text(&mut self, key: &str, required: bool) -> Option<String> {
        match self.body.get(key) {
            Some(Value::String(s)) if !s.is_empty() || !required => Some(s.clone()),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                if required {
                    self.messages.push(format!("{key} should not be empty"));
                }
                None
            }
            Some(_) => {
                self.messages.push(format!("{key} must be a string"));
                None
            }
        }
    }

    /// ISO-8601 with an offset, as HighLevel's examples (`2021-06-23T03:30:00+05:30`).
    fn time(&mut self, key: &str, required: bool) -> Option<(String, DateTime<FixedOffset>)> {
        let text = self.text(key, required)?;
        match DateTime::parse_from_rfc3339(&text) {
            Ok(time) => Some((text, time)),
            Err(_) => {
                self.messages.push(format!("{key} must be a valid ISO 8601 date string with an offset"));
                None
            }
        }
    }

    fn flag(&mut self, key: &str) {
        if !matches!(self.body.get(key), None | Some(Value::Null) | Some(Value::Bool(_))) {
            self.messages.push(format!("{key} must be a boolean value"));
        }
    }

    fn optional_fields(&mut self) -> Fields {
        let status = self.text("appointmentStatus", false);
        if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
            self.messages.push(format!("appointmentStatus must be one of the following values: {}", STATUSES.join(", ")));
        }
        for key in ["meetingLocationType", "meetingLocationId", "rrule"] {
            self.text(key, false);
        }
        for key in ["toNotify", "ignoreFreeSlotValidation", "ignoreDateRange", "overrideLocationConfig"] {
            self.flag(key);
        }
        Fields {
            title: self.text("title", false),
            status,
            description: self.text("description", false),
            address: self.text("address", false),
            assigned_user_id: self.text("assignedUserId", false),
        }
    }
}

/// The body as a JSON object, or the 400 to answer.
fn json_object(req: &Request) -> Result<Map<String, Value>, Reply> {
    if !header(req, "content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
        return Err(error(400, "Content-Type must be application/json"));
    }
    match serde_json::from_slice(&req.body) {
        Ok(Value::Object(body)) => Ok(body),
        _ => Err(error(400, "Bad Request: the body must be a JSON object")),
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(req: &Request) -> Option<&str> {
    let (scheme, token) = header(req, "authorization")?.split_once(' ')?;
    Some(token.trim()).filter(|t| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
}

/// The query's parameters; for a repeated one, the first value.
fn query(req: &Request) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for (key, value) in req.url.query_pairs() {
        params.entry(key.into_owned()).or_insert_with(|| value.into_owned());
    }
    params
}

/// RFC 3339 UTC with milliseconds, as HighLevel writes `dateAdded`.
fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// splitmix64, cut to 32 bits: enough to make tokens look opaque.
fn scramble(x: u64) -> u32 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// A HighLevel appointment webhook body (providers.md §4.2) as compact JSON,
/// the bytes to sign: `kind` is `AppointmentCreate`, `AppointmentUpdate` or
/// `AppointmentDelete`; `timestamp` is now.
pub fn webhook_body(kind: &str, location_id: &str, webhook_id: &str, appointment: Value) -> String {
    // Written by hand to keep the documented key order whatever serde_json's features.
    format!(
        r#"{{"type":{},"locationId":{},"webhookId":{},"timestamp":{},"appointment":{}}}"#,
        Value::from(kind),
        Value::from(location_id),
        Value::from(webhook_id),
        Value::from(now_text()),
        appointment
    )
}
