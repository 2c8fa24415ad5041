//! HighLevel appointment sync against the HighLevel mock (tests/api/highlevel_mock.rs):
//! connecting locations, sealed tokens, single-flight rotation, the shared
//! rate limiter, validation and overlaps, pushes, and inbound webhooks.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{
    helpers::{settings, spawn_app_with, wait_for, TestApp, TestDb},
    highlevel_mock::{self as mock, HighLevelApi},
    webhooks::ghl_sign,
};

const LOC: &str = "loc-clinic";
const CAL: &str = "cal-dental";
const LONG: Duration = Duration::from_secs(60);

/// A Relevo node talking to `api`, verifying webhooks with the test key.
pub async fn hl_node(db: &TestDb, api: &HighLevelApi) -> TestApp {
    let mut s = settings(db);
    s.highlevel.api_base = api.uri();
    s.highlevel.client_id = Some(mock::CLIENT_ID.into());
    s.highlevel.client_secret = Some(mock::CLIENT_SECRET.into());
    s.highlevel.redirect_uri = Some(mock::REDIRECT_URI.into());
    s.webhooks.highlevel_public_key_pem = Some(include_str!("../fixtures/highlevel_ed25519_test_public.pem").into());
    let registry = relevo::workflows::registry(&s).unwrap();
    spawn_app_with(s, registry).await
}

/// Connects `location` to the node on `port` with the mock's tokens (an install done elsewhere).
pub async fn connect_over_http(client: &reqwest::Client, port: u16, api: &HighLevelApi, location: &str) {
    let (access, refresh) = api.add_location(location);
    let resp = client
        .post(format!("http://127.0.0.1:{port}/api/v1/highlevel/locations"))
        .bearer_auth(crate::helpers::TOKEN)
        .json(&json!({"location_id": location, "access_token": access, "refresh_token": refresh, "expires_in": 86399}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// A mock with the clinic's location and calendar, and a node connected to it.
async fn clinic(db: &TestDb) -> (HighLevelApi, TestApp) {
    let api = HighLevelApi::start().await;
    api.add_calendar(LOC, CAL, "Dental", "America/Lima");
    let app = hl_node(db, &api).await;
    connect(&app, &api, LOC).await;
    (api, app)
}

async fn connect(app: &TestApp, api: &HighLevelApi, location: &str) {
    let (access, refresh) = api.add_location(location);
    let resp = app
        .post("/api/v1/highlevel/locations")
        .json(&json!({"location_id": location, "access_token": access, "refresh_token": refresh, "expires_in": 86399,
                      "scope": mock::SCOPES}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = app
        .patch(&format!("/api/v1/highlevel/locations/{location}"))
        .json(&json!({"default_calendar_id": CAL}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn slot(day: u32, hour: u32, minute: u32, minutes: i64) -> (String, String) {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 12, day).unwrap().and_hms_opt(hour, minute, 0).unwrap();
    let end = start + chrono::Duration::minutes(minutes);
    (format!("{}-05:00", start.format("%Y-%m-%dT%H:%M:%S")), format!("{}-05:00", end.format("%Y-%m-%dT%H:%M:%S")))
}

async fn create(app: &TestApp, (start, end): &(String, String), title: &str) -> reqwest::Response {
    app.post("/api/v1/appointments")
        .json(&json!({"location_id": LOC, "contact_id": "contact-1", "title": title, "start_time": start, "end_time": end}))
        .send()
        .await
        .unwrap()
}

async fn created(app: &TestApp, slot: &(String, String), title: &str) -> String {
    let resp = create(app, slot, title).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "scheduled");
    // Its push is queued in the same transaction; it may already be done when the answer is read.
    assert!(body["sync"] == "pending" || body["sync"] == "synced", "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn appointment(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/appointments/{id}")).send().await.unwrap().json().await.unwrap()
}

async fn wait_synced(app: &TestApp, id: &str) -> Value {
    wait_for(&format!("appointment {id} to be synced"), LONG, || async {
        let a = appointment(app, id).await;
        (a["sync"] == "synced").then_some(a)
    })
    .await
}

async fn post_webhook(app: &TestApp, body: &str) -> u16 {
    app.post("/webhooks/highlevel")
        .header("X-GHL-Signature", ghl_sign(body))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_appointment_is_created_updated_and_cancelled_in_highlevel() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    let id = created(&app, &slot(10, 8, 0, 60), "Limpieza").await;
    let a = wait_synced(&app, &id).await;
    let ghl_id = a["ghl_appointment_id"].as_str().unwrap().to_owned();
    let event = api.event(&ghl_id).unwrap();
    assert_eq!((event["calendarId"].as_str(), event["contactId"].as_str(), event["title"].as_str()), (Some(CAL), Some("contact-1"), Some("Limpieza")));
    // Written with the location's offset, as HighLevel shows it.
    assert_eq!((event["startTime"].as_str(), event["endTime"].as_str()), (Some("2026-12-10T08:00:00-05:00"), Some("2026-12-10T09:00:00-05:00")));
    assert_eq!((a["start_time_local"].as_str(), a["timezone"].as_str()), (Some("2026-12-10T08:00:00-05:00"), Some("America/Lima")));
    assert_eq!(chrono::DateTime::parse_from_rfc3339(a["start_time"].as_str().unwrap()).unwrap().offset().local_minus_utc(), 0);

    let resp = app.patch(&format!("/api/v1/appointments/{id}")).json(&json!({"title": "Limpieza profunda", "start_time": "2026-12-10T09:00:00-05:00", "end_time": "2026-12-10T10:00:00-05:00", "status": "confirmed"})).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    wait_synced(&app, &id).await;
    let event = api.event(&ghl_id).unwrap();
    assert_eq!((event["title"].as_str(), event["appointmentStatus"].as_str()), (Some("Limpieza profunda"), Some("confirmed")));
    assert_eq!(chrono::DateTime::parse_from_rfc3339(event["startTime"].as_str().unwrap()).unwrap().to_utc().to_rfc3339(), "2026-12-10T14:00:00+00:00");

    let resp = app.post(&format!("/api/v1/appointments/{id}/cancel")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let a = wait_synced(&app, &id).await;
    assert_eq!(a["status"], "cancelled");
    assert_eq!(api.deleted(), vec![ghl_id.clone()]);
    let actions: Vec<&str> = a["history"].as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    // Every calendar call carried the version HighLevel requires.
    assert!(api.requests().iter().filter(|r| r.path.starts_with("/calendars")).all(|r| r.version.as_deref() == Some("2021-04-15") && r.status < 300));
    // A cancelled appointment frees its slot and cannot be changed.
    let resp = app.patch(&format!("/api/v1/appointments/{id}")).json(&json!({"title": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    created(&app, &slot(10, 9, 0, 60), "Otra").await;
    app.stop().await;
}

#[tokio::test]
async fn business_hours_are_checked_in_the_locations_zone() {
    let db = TestDb::new().await;
    let (_api, app) = clinic(&db).await;
    // Lima (UTC-5), 08:00–20:00: 19:30–20:30 is refused, 08:00–09:00 and 19:00–20:00 accepted.
    let resp = create(&app, &slot(10, 19, 30, 60), "Tarde").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!((body["error"]["code"].as_str(), body["error"]["fields"][0]["loc"].as_str()), (Some("invalid"), Some("end_time")));
    assert!(body["error"]["message"].as_str().unwrap().contains("America/Lima"));
    assert_eq!(create(&app, &slot(10, 7, 59, 30), "Temprano").await.status(), 422);
    created(&app, &slot(10, 8, 0, 60), "Primera").await;
    created(&app, &slot(10, 19, 0, 60), "Ultima").await;
    // End before start, and a time without offset.
    let (s, e) = slot(11, 10, 0, 60);
    assert_eq!(create(&app, &(e.clone(), s.clone()), "Al reves").await.status(), 422);
    assert_eq!(create(&app, &("2026-12-11T10:00:00".into(), e), "Sin zona").await.status(), 422);

    // Another zone and per-weekday hours: Madrid, Mondays 09:00–14:00, Tuesdays closed.
    let resp = app
        .patch(&format!("/api/v1/highlevel/locations/{LOC}"))
        .json(&json!({"timezone": "Europe/Madrid", "business_hours": {"mon": {"open": "09:00", "close": "14:00"}, "tue": null}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let loc: Value = resp.json().await.unwrap();
    assert_eq!((loc["business_hours"]["tue"].clone(), loc["business_hours"]["wed"]["open"].as_str()), (Value::Null, Some("08:00")));
    let at = |s: &str, e: &str| (s.to_owned(), e.to_owned());
    // 2026-12-07 is a Monday; 08:00Z is 09:00 in Madrid.
    assert_eq!(create(&app, &at("2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z"), "Lunes").await.status(), 201);
    assert_eq!(create(&app, &at("2026-12-07T13:00:00Z", "2026-12-07T13:30:00Z"), "Lunes tarde").await.status(), 422);
    let closed = create(&app, &at("2026-12-08T10:00:00Z", "2026-12-08T11:00:00Z"), "Martes").await;
    assert_eq!(closed.status(), 422);
    assert!(closed.text().await.unwrap().contains("closed on Tuesday"));
    let bad = app.patch(&format!("/api/v1/highlevel/locations/{LOC}")).json(&json!({"business_hours": {"wed": {"open": "18:00", "close": "09:00"}}})).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let bad = app.patch(&format!("/api/v1/highlevel/locations/{LOC}")).json(&json!({"timezone": "Mars/Base"})).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_creates_for_one_slot_get_one_201_and_one_409() {
    let db = TestDb::new().await;
    let (_api, app) = clinic(&db).await;
    for round in 0..5u32 {
        let s = slot(14, 8 + round, 0, 60);
        let (a, b) = tokio::join!(create(&app, &s, "A"), create(&app, &s, "B"));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "round {round}");
        let conflict: Value = if a.status() == 409 { a.json().await.unwrap() } else { b.json().await.unwrap() };
        assert_eq!(conflict["error"]["code"], "appointment_overlap");
        assert_eq!(conflict["error"]["conflicts"].as_array().unwrap().len(), 1);
    }
    // A partial overlap is refused too; touching ends are not an overlap.
    assert_eq!(create(&app, &slot(14, 8, 30, 60), "Parcial").await.status(), 409);
    assert_eq!(create(&app, &slot(14, 13, 0, 60), "Contiguo").await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn thirty_appointments_while_the_token_is_revoked_cause_exactly_one_refresh() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    api.revoke_access_token(LOC);
    let creates = (0..30u32).map(|i| {
        let app = &app;
        async move { created(app, &slot(15 + i / 10, 8 + i % 10, 0, 60), &format!("Cita {i}")).await }
    });
    let ids = futures::future::join_all(creates).await;
    for id in &ids {
        wait_synced(&app, id).await;
    }
    assert_eq!(api.refreshes(LOC), 1, "one refresh for 30 calls that saw the revoked token");
    assert_eq!(api.token_requests(), 1);
    assert_eq!(api.events(LOC).len(), 30);
    let loc: Value = app.get(&format!("/api/v1/highlevel/locations/{LOC}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(loc["status"], "connected");
    assert!(loc["token_refreshed_at"].is_string());
    assert!(loc["rate_limit_remaining"].is_i64() && loc["daily_calls_remaining"].is_i64());
    let text = loc.to_string();
    assert!(!text.contains("at-") && !text.contains("rt-"), "no token in the API: {text}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_refresh_token_asks_for_reconnection_and_reconnecting_resumes() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    api.revoke_access_token(LOC);
    api.revoke_refresh_token(LOC);
    let id = created(&app, &slot(16, 9, 0, 60), "Cita").await;
    let run = wait_for("the push to fail", LONG, || async {
        let a = appointment(&app, &id).await;
        (a["sync"] == "failed").then(|| a["sync_run_id"].as_str().unwrap().to_owned())
    })
    .await;
    let loc: Value = app.get(&format!("/api/v1/highlevel/locations/{LOC}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(loc["status"], "needs_reauthorization");
    let run: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert!(run.to_string().contains("needs to be reconnected"), "{run}");
    // New appointments are refused until the location is connected again.
    let refused = create(&app, &slot(16, 11, 0, 60), "Otra").await;
    assert_eq!(refused.status(), 409);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"]["code"], "location_needs_reauthorization");
    // Reconnecting through OAuth, then retrying the run, pushes it.
    api.issue_code("code-1", LOC);
    let resp = app.get("/highlevel/oauth/callback?code=code-1").send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let again = app.get("/highlevel/oauth/callback?code=code-1").send().await.unwrap();
    assert_eq!(again.status(), 400, "a used code connects nothing");
    let retry = app.post(&format!("/api/v1/runs/{}/retry", run["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(retry.status(), 200, "{}", retry.text().await.unwrap());
    wait_synced(&app, &id).await;
    assert_eq!(api.events(LOC).len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn calendars_are_read_live_and_tokens_are_sealed_at_rest() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    api.add_calendar(LOC, "cal-2", "Ortodoncia", "America/Lima");
    let list: Value = app.get(&format!("/api/v1/highlevel/locations/{LOC}/calendars")).send().await.unwrap().json().await.unwrap();
    assert_eq!((list["location_id"].as_str(), list["total"].as_u64()), (Some(LOC), Some(2)));
    let names: Vec<&str> = list["calendars"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Dental", "Ortodoncia"]);
    let unknown = app.get("/api/v1/highlevel/locations/nope/calendars").send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    // The stored tokens are not the tokens.
    let (access, refresh): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("select access_token, refresh_token from highlevel_locations where id = $1").bind(LOC).fetch_one(&db.pool).await.unwrap();
    let current = api.requests().iter().rev().find_map(|r| r.location.clone()).unwrap();
    assert_eq!(current, LOC);
    for sealed in [&access, &refresh] {
        assert!(!String::from_utf8_lossy(sealed).contains("-loc-clinic"), "a token is stored in clear");
        assert!(sealed.len() > 40);
    }
    // The location list shows no token either.
    let text = app.get("/api/v1/highlevel/locations").send().await.unwrap().text().await.unwrap();
    assert!(text.contains(LOC) && !text.contains("token\":\"") && !text.contains("rt-"));
    app.stop().await;
}

#[tokio::test]
async fn highlevel_webhooks_upsert_in_order_ignore_stale_and_echoes_and_flag_conflicts() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    // Relevo's own appointment, pushed; its echo changes nothing and pushes nothing.
    let ours = created(&app, &slot(17, 8, 0, 60), "Nuestra").await;
    let a = wait_synced(&app, &ours).await;
    let ghl_id = a["ghl_appointment_id"].as_str().unwrap().to_owned();
    let event = api.event(&ghl_id).unwrap();
    let calls = api.requests().len();
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentCreate", LOC, "wh-echo", event.clone())).await, 200);
    // One that HighLevel made, overlapping ours: stored, flagged.
    let theirs = |updated: &str, title: &str| {
        json!({"id": "ghl-x", "calendarId": CAL, "contactId": "k9", "title": title, "appointmentStatus": "confirmed",
               "startTime": "2026-12-17T08:30:00-05:00", "endTime": "2026-12-17T09:30:00-05:00", "dateUpdated": updated})
    };
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentCreate", LOC, "wh-1", theirs("2026-12-02T10:00:00.000Z", "De HL"))).await, 200);
    // A newer update, then an older one arriving late, then a duplicate delivery.
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentUpdate", LOC, "wh-3", theirs("2026-12-02T10:05:00.000Z", "Nuevo titulo"))).await, 200);
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentUpdate", LOC, "wh-2", theirs("2026-12-02T10:02:00.000Z", "Viejo titulo"))).await, 200);
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentUpdate", LOC, "wh-3", theirs("2026-12-02T10:05:00.000Z", "Nuevo titulo"))).await, 200);
    let list = wait_for("the HighLevel appointment to settle", LONG, || async {
        let list: Value = app.get(&format!("/api/v1/appointments?location_id={LOC}&from=2026-12-17T00:00:00Z&to=2026-12-18T00:00:00Z")).send().await.unwrap().json().await.unwrap();
        let settled: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'highlevel_appointment' and status = 'succeeded'")
            .fetch_one(&db.pool).await.unwrap();
        // The echo, wh-1, wh-3 and wh-2 (the second wh-3 is a duplicate: stored once).
        (settled == 4).then_some(list)
    })
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let hl = items.iter().find(|i| i["origin"] == "highlevel").unwrap();
    assert_eq!((hl["title"].as_str(), hl["conflict"].as_bool(), hl["status"].as_str()), (Some("Nuevo titulo"), Some(true), Some("confirmed")));
    let mine = items.iter().find(|i| i["origin"] == "relevo").unwrap();
    assert_eq!((mine["title"].as_str(), mine["conflict"].as_bool()), (Some("Nuestra"), Some(false)));
    assert_eq!(api.requests().len(), calls, "webhooks push nothing back");
    let history = appointment(&app, hl["id"].as_str().unwrap()).await["history"].clone();
    let actions: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["created", "updated", "stale"]);
    // Deleted in HighLevel → cancelled here.
    assert_eq!(post_webhook(&app, &mock::webhook_body("AppointmentDelete", LOC, "wh-4", theirs("2026-12-02T10:09:00.000Z", "Nuevo titulo"))).await, 200);
    wait_for("the deletion to apply", LONG, || async {
        (appointment(&app, hl["id"].as_str().unwrap()).await["status"] == "cancelled").then_some(())
    })
    .await;
    let echo = appointment(&app, &ours).await["history"].clone();
    assert!(echo.as_array().unwrap().iter().any(|h| h["action"] == "unchanged"), "{echo}");
    app.stop().await;
}

#[tokio::test]
async fn two_processes_share_the_rate_limit_and_never_draw_a_429() {
    // Two `relevo serve` processes on one database, one location.
    let db = TestDb::new().await;
    let api = HighLevelApi::start().await;
    api.add_calendar(LOC, CAL, "Dental", "America/Lima");
    let base = api.uri();
    let env = [("HIGHLEVEL_API_BASE", base.as_str()), ("HIGHLEVEL_CLIENT_ID", mock::CLIENT_ID), ("HIGHLEVEL_CLIENT_SECRET", mock::CLIENT_SECRET)];
    let ports: Vec<u16> = (0..2).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()).collect();
    let _nodes: Vec<_> = ports.iter().map(|port| crate::crash::start_node_with(&db, *port, &env)).collect();
    for port in &ports {
        crate::helpers::wait_ready(*port).await;
    }
    let client = reqwest::Client::new();
    connect_over_http(&client, ports[0], &api, LOC).await;

    // 150 appointments, half through each process.
    let creates = (0..150u32).map(|i| {
        let (client, port) = (&client, ports[i as usize % 2]);
        async move {
            let (start, end) = slot(1 + i / 12, 8 + i % 12, 0, 45);
            let resp = client
                .post(format!("http://127.0.0.1:{port}/api/v1/appointments"))
                .bearer_auth(crate::helpers::TOKEN)
                .json(&json!({"location_id": LOC, "calendar_id": CAL, "contact_id": "contact-1", "title": format!("Cita {i}"),
                              "start_time": start, "end_time": end}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
    });
    futures::future::join_all(creates).await;
    wait_for("150 appointments to be synced", Duration::from_secs(90), || async {
        let synced: i64 = sqlx::query_scalar("select count(*) from appointments where pushed_version >= version")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (synced == 150).then_some(())
    })
    .await;

    // HighLevel never counted more than 100 in any 10 s window, nor had to refuse one.
    assert_eq!(api.events(LOC).len(), 150);
    assert_eq!(api.rejected_429(LOC), 0);
    let most = api.max_in_window(LOC, Duration::from_secs(10));
    assert!(most <= 100, "{most} requests in one 10 s window");
    assert!(most >= 80, "the limiter lets the location use most of its allowance ({most} in the busiest window)");
    let workers: i64 = sqlx::query_scalar(
        "select count(distinct a.worker) from engine.run_attempts a join engine.runs r on r.id = a.run_id
          where r.workflow = 'appointment_sync'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(workers, 2, "both processes pushed");
    let refused: i64 = sqlx::query_scalar("select count(*) from engine.run_attempts where outcome = 'rate_limited'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // Refused runs come back spread out, not all at the moment one slot frees
    // up (about 350 refusals here; coming back together made 16,000 in 36 s).
    assert!(refused < 1_500, "{refused} rate-limited attempts for 150 appointments");
}

#[tokio::test]
async fn a_token_with_less_than_an_hour_left_is_refreshed_ahead_by_the_recurring_run() {
    let db = TestDb::new().await;
    let api = HighLevelApi::start().await;
    let app = hl_node(&db, &api).await;
    let (access, refresh) = api.add_location(LOC);
    let resp = app
        .post("/api/v1/highlevel/locations")
        .json(&json!({"location_id": LOC, "access_token": access, "refresh_token": refresh, "expires_in": 1800}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let loc = wait_for("the refresher to rotate the pair", LONG, || async {
        let loc: Value = app.get(&format!("/api/v1/highlevel/locations/{LOC}")).send().await.unwrap().json().await.unwrap();
        loc["token_refreshed_at"].is_string().then_some(loc)
    })
    .await;
    assert_eq!(api.refreshes(LOC), 1);
    let expires = chrono::DateTime::parse_from_rfc3339(loc["token_expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::hours(23), "{expires}");
    // The chain goes on: the next run sleeps until an hour before the new expiry.
    let sleeping: i64 = wait_for("the next refresher run to sleep", LONG, || async {
        let n: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'highlevel_tokens' and status = 'sleeping'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(sleeping, 1);
    // Connecting again keeps the one chain.
    let (access, refresh) = api.add_location(LOC);
    let resp = app
        .post("/api/v1/highlevel/locations")
        .json(&json!({"location_id": LOC, "access_token": access, "refresh_token": refresh, "expires_in": 86399}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let live: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'highlevel_tokens' and status in ('pending', 'running', 'sleeping')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(live, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_429_pauses_the_location_until_highlevels_interval_has_passed() {
    let db = TestDb::new().await;
    let (api, app) = clinic(&db).await;
    // Another app shares the location's allowance: HighLevel lets this one send far less than it plans.
    api.set_rate_limit(3, Duration::from_secs(1));
    let creates = (0..6u32).map(|i| {
        let app = &app;
        async move { created(app, &slot(22, 8 + i, 0, 30), &format!("Cita {i}")).await }
    });
    for id in futures::future::join_all(creates).await {
        wait_synced(&app, &id).await;
    }
    assert_eq!(api.events(LOC).len(), 6);
    assert!(api.rejected_429(LOC) >= 1, "the test must draw a 429");
    // After each 429 nothing more goes out for the location until HighLevel's
    // interval (1 s) has passed; requests already on the wire may still land.
    let calls: Vec<_> = api.requests().into_iter().filter(|r| r.path.starts_with("/calendars")).collect();
    for refused in calls.iter().filter(|r| r.status == 429) {
        let early = calls
            .iter()
            .filter(|r| r.at > refused.at + Duration::from_millis(300) && r.at < refused.at + Duration::from_millis(950))
            .count();
        assert_eq!(early, 0, "requests sent during the pause");
    }
    app.stop().await;
}
