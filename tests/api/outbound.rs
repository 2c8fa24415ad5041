//! Outbound webhooks against a real receiver that verifies every request with
//! its own Standard Webhooks implementation.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use wiremock::{matchers, Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// What the receiver saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    webhook_id: String,
    valid_with: Vec<usize>,
    x_signature_ok: bool,
    event: String,
    user_agent: String,
}

/// Verifies like a subscriber would (Standard Webhooks spec, independent of
/// Relevo's code); answers `script[n]` to the n-th request, then 200.
struct Receiver {
    keys: Arc<Mutex<Vec<Vec<u8>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Vec<u16>,
}

fn key_of(secret: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

impl Respond for Receiver {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let (id, ts, sigs) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
        let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &req.body].concat();
        let keys = self.keys.lock().unwrap().clone();
        let mut valid_with = vec![];
        for (i, key) in keys.iter().enumerate() {
            let expected = base64::engine::general_purpose::STANDARD.encode(hmac(key, &signed));
            if sigs.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|s| s.len() == expected.len() && s == expected) {
                valid_with.push(i);
            }
        }
        let ts_ok = (chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap_or(0)).abs() <= 300;
        let x_signature_ok = keys.iter().any(|k| h("x-signature") == format!("sha256={}", hex::encode(hmac(k, &req.body))));
        let mut seen = self.seen.lock().unwrap();
        seen.push(Seen {
            webhook_id: id,
            valid_with: if ts_ok { valid_with } else { vec![] },
            x_signature_ok,
            event: h("x-event"),
            user_agent: h("user-agent"),
        });
        let status = self.script.get(seen.len() - 1).copied().unwrap_or(200);
        ResponseTemplate::new(status).set_body_string(format!("answer {}", seen.len()))
    }
}

async fn app_with_outbound(db: &TestDb) -> TestApp {
    let mut s = settings(db);
    s.outbound.allow_nets = relevo::outbound::ssrf::AllowNets::parse("127.0.0.0/8").unwrap();
    s.outbound.retry_schedule = vec![Duration::from_secs(1), Duration::from_secs(1), Duration::from_secs(2)];
    spawn_app_with(s, relevo::engine::Registry::new()).await
}

async fn subscribe(app: &TestApp, url: &str, types: Value) -> (String, String) {
    let resp = app.post("/api/v1/subscriptions").json(&json!({"url": url, "event_types": types})).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let s: Value = resp.json().await.unwrap();
    (s["id"].as_str().unwrap().to_owned(), s["secret"].as_str().unwrap().to_owned())
}

async fn delivery_of(app: &TestApp, sub: &str) -> Value {
    wait_for("a delivery", Duration::from_secs(20), || async {
        let page: Value = app.get(&format!("/api/v1/deliveries?subscription_id={sub}")).send().await.unwrap().json().await.unwrap();
        page["items"].as_array().unwrap().first().cloned()
    })
    .await
}

#[tokio::test]
async fn a_delivery_failing_twice_is_retried_and_logged_and_every_request_is_signed() {
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let keys = Arc::new(Mutex::new(vec![]));
    let seen = Arc::new(Mutex::new(vec![]));
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/hook"))
        .respond_with(Receiver { keys: keys.clone(), seen: seen.clone(), script: vec![500, 500] })
        .mount(&receiver)
        .await;
    let (sub, secret) = subscribe(&app, &format!("{}/hook", receiver.uri()), json!(["order.shipped"])).await;
    keys.lock().unwrap().push(key_of(&secret));

    let resp = app
        .post("/api/v1/outbound-events")
        .json(&json!({"type": "order.shipped", "payload": {"order": 7}, "idempotency_key": "ship-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let event: Value = resp.json().await.unwrap();
    let again = app
        .post("/api/v1/outbound-events")
        .json(&json!({"type": "order.shipped", "payload": {"order": 7}, "idempotency_key": "ship-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], event["id"]);

    let d = delivery_of(&app, &sub).await;
    let id = d["id"].as_str().unwrap().to_owned();
    let detail: Value = wait_for("the delivery to succeed", Duration::from_secs(30), || async {
        let d: Value = app.get(&format!("/api/v1/deliveries/{id}")).send().await.unwrap().json().await.unwrap();
        (d["status"] == "delivered").then_some(d)
    })
    .await;

    let codes: Vec<i64> = detail["attempts_log"].as_array().unwrap().iter().map(|a| a["status_code"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![500, 500, 200]);
    assert_eq!(detail["attempts_log"][2]["response_body"], "answer 3");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.webhook_id, event["id"].as_str().unwrap(), "webhook-id is stable across retries");
        assert_eq!(s.valid_with, vec![0], "Standard Webhooks signature verifies");
        assert!(s.x_signature_ok);
        assert_eq!(s.event, "order.shipped");
        assert!(s.user_agent.starts_with("Relevo-Webhooks/"));
    }
    // Only one subscription matched; a domain event of another type goes nowhere.
    let total: i64 = sqlx::query_scalar("select count(*) from deliveries").fetch_one(&db.pool).await.unwrap();
    assert_eq!(total, 1);
    app.stop().await;
}

#[tokio::test]
async fn during_rotation_requests_verify_with_either_secret() {
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let keys = Arc::new(Mutex::new(vec![]));
    let seen = Arc::new(Mutex::new(vec![]));
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(Receiver { keys: keys.clone(), seen: seen.clone(), script: vec![] })
        .mount(&receiver)
        .await;
    let (sub, old) = subscribe(&app, &format!("{}/hook", receiver.uri()), json!(["*"])).await;
    let rotated: Value = app.post(&format!("/api/v1/subscriptions/{sub}/rotate-secret")).send().await.unwrap().json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    keys.lock().unwrap().extend([key_of(&old), key_of(&new)]);

    let resp = app.post(&format!("/api/v1/subscriptions/{sub}/test")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_for("the test event", Duration::from_secs(20), || async { (!seen.lock().unwrap().is_empty()).then_some(()) }).await;

    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.valid_with, vec![0, 1], "one signature per active secret");
    assert_eq!(s.event, "relevo.test");
    let shown: Value = app.get(&format!("/api/v1/subscriptions/{sub}")).send().await.unwrap().json().await.unwrap();
    assert!(shown.get("secret").is_none(), "the secret is never shown again");
    app.stop().await;
}

#[tokio::test]
async fn a_410_disables_the_subscription() {
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(410)).mount(&receiver).await;
    let (sub, _) = subscribe(&app, &format!("{}/gone", receiver.uri()), json!(["*"])).await;
    app.post(&format!("/api/v1/subscriptions/{sub}/test")).send().await.unwrap();
    wait_for("the subscription to be disabled", Duration::from_secs(20), || async {
        let s: Value = app.get(&format!("/api/v1/subscriptions/{sub}")).send().await.unwrap().json().await.unwrap();
        (s["status"] == "disabled").then_some(())
    })
    .await;
    let d = delivery_of(&app, &sub).await;
    assert_eq!((d["status"].as_str(), d["last_status"].as_i64()), (Some("failed"), Some(410)));
    let disabled: i64 = sqlx::query_scalar("select count(*) from outbox_events where type = 'subscription.disabled'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(disabled, 1);
    app.stop().await;
}

#[tokio::test]
async fn urls_to_private_or_loopback_addresses_are_refused_at_creation() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::engine::Registry::new()).await; // no allowlist
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:192.168.0.1]/hook",
        "https://[64:ff9b::7f00:1]/hook",
        "http://8.8.8.8/hook",
        "not a url",
    ] {
        let resp = app.post("/api/v1/subscriptions").json(&json!({"url": url, "event_types": ["*"]})).send().await.unwrap();
        assert_eq!(resp.status(), 422, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["fields"][0]["loc"], "url", "{url}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_rate_limit_spreads_deliveries_over_seconds() {
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let resp = app
        .post("/api/v1/subscriptions")
        .json(&json!({"url": format!("{}/slow", receiver.uri()), "event_types": ["tick"], "rate_limit_per_sec": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    for i in 0..6 {
        app.post("/api/v1/outbound-events").json(&json!({"type": "tick", "payload": {"i": i}})).send().await.unwrap();
    }
    wait_for("6 deliveries", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar("select count(*) from deliveries where status = 'delivered'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 6).then_some(())
    })
    .await;

    let (max_per_second, span): (i32, f64) = sqlx::query_as(
        "select (select max(sent) from subscription_rate_windows),
                extract(epoch from max(delivered_at) - min(delivered_at))::float8 from deliveries",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(max_per_second, 2);
    assert!(span >= 1.0, "6 deliveries at 2/s cannot all land within a second ({span}s)");
    let throttled: i32 = sqlx::query_scalar("select max(attempts) from deliveries").fetch_one(&db.pool).await.unwrap();
    assert_eq!(throttled, 1, "waiting for a slot does not count as an attempt");
    app.stop().await;
}

#[tokio::test]
async fn domain_events_fan_out_and_failures_can_be_resent_recovered_or_disable_a_subscription() {
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(500)).mount(&receiver).await;
    let (sub, _) = subscribe(&app, &format!("{}/erp", receiver.uri()), json!(["sales_order.created"])).await;

    // A domain change writes its event; the trigger creates the delivery in that transaction.
    app.post("/api/v1/products")
        .json(&json!({"sku": "A-1", "name": "A", "price_minor": 100, "currency": "MXN", "stock": 1}))
        .send()
        .await
        .unwrap();
    app.post("/api/v1/orders")
        .json(&json!({"customer": {"email": "a@example.mx", "name": "A"}, "items": [{"sku": "A-1", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    let d = delivery_of(&app, &sub).await;
    assert_eq!(d["event_type"], "sales_order.created");
    let id = d["id"].as_str().unwrap().to_owned();
    wait_for("the schedule to run out", Duration::from_secs(30), || async {
        let d: Value = app.get(&format!("/api/v1/deliveries/{id}")).send().await.unwrap().json().await.unwrap();
        (d["status"] == "failed").then_some(())
    })
    .await;
    let detail: Value = app.get(&format!("/api/v1/deliveries/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["attempts_log"].as_array().unwrap().len(), 4, "first try + the 3 scheduled retries");

    // The subscription has been failing for longer than RELEVO_OUTBOUND_DISABLE_AFTER.
    sqlx::query("update subscriptions set failing_since = now() - interval '6 days'").execute(&db.pool).await.unwrap();
    // Recover and resend put the delivery back in the queue...
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let r: Value = app.post(&format!("/api/v1/subscriptions/{sub}/recover")).json(&json!({"since": since})).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["requeued"], 1);
    assert_eq!(app.post(&format!("/api/v1/deliveries/{id}/resend")).send().await.unwrap().status(), 200);

    // ...and its next failure, past RELEVO_OUTBOUND_DISABLE_AFTER, disables the subscription.
    wait_for("the subscription to be disabled", Duration::from_secs(30), || async {
        let s: Value = app.get(&format!("/api/v1/subscriptions/{sub}")).send().await.unwrap().json().await.unwrap();
        (s["status"] == "disabled").then_some(())
    })
    .await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("relevo_webhook_retries_total"), "{metrics}");
    assert!(metrics.contains("relevo_webhook_delivery_http_status_total{code=\"500\"}"));
    app.stop().await;
}

/// Encodes `value` and decodes `shown` through a Postgres `text`, as the status columns hold them.
async fn through_text<T>(db: &TestDb, value: T, shown: &str) -> (String, T)
where
    T: for<'r> sqlx::Encode<'r, sqlx::Postgres> + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: Send + Unpin,
{
    let text: String = sqlx::query_scalar("select $1::text").bind(value).fetch_one(&db.pool).await.unwrap();
    let back: T = sqlx::query_scalar("select $1::text").bind(shown).fetch_one(&db.pool).await.unwrap();
    (text, back)
}

#[tokio::test]
async fn status_enums_are_stored_as_the_text_the_api_shows() {
    use relevo::outbound::{
        attempts::AttemptErrorKind, deliveries::DeliveryStatus, events::EventSource, subscriptions::SubscriptionStatus,
    };
    let db = TestDb::new().await;

    for s in DeliveryStatus::ALL {
        assert_eq!(through_text(&db, s, s.as_str()).await, (s.as_str().to_owned(), s));
    }
    for s in SubscriptionStatus::ALL {
        assert_eq!(through_text(&db, s, s.as_str()).await, (s.as_str().to_owned(), s));
    }
    for k in AttemptErrorKind::ALL {
        assert_eq!(through_text(&db, k, k.as_str()).await, (k.as_str().to_owned(), k));
    }
    for s in [EventSource::Relevo, EventSource::Api] {
        assert_eq!(through_text(&db, s, s.as_str()).await, (s.as_str().to_owned(), s));
    }
}

#[tokio::test]
async fn a_nul_byte_in_one_answer_holds_back_no_delivery_and_each_subscriber_gets_one_request() {
    // Arrange: five ordinary subscribers and one answering with NUL bytes,
    // all for the same event, so their results reach the writer together.
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let mut receivers = vec![];
    for answer in [&b"ok"[..], b"ok", b"\0nul\0 in the \0middle\0", b"ok", b"ok", b"ok"] {
        let receiver = MockServer::start().await;
        Mock::given(matchers::method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(answer.to_vec()).set_delay(Duration::from_millis(100)))
            .expect(1)
            .named(format!("subscriber answering {answer:?}"))
            .mount(&receiver)
            .await;
        let (sub, _) = subscribe(&app, &format!("{}/hook", receiver.uri()), json!(["order.shipped"])).await;
        receivers.push((sub, receiver));
    }

    // Act
    let resp = app.post("/api/v1/outbound-events").json(&json!({"type": "order.shipped", "payload": {"order": 7}})).send().await.unwrap();
    assert_eq!(resp.status(), 201);

    // Assert: all delivered well within one lease (30 s), so none was re-sent
    // after its lease ran out.
    let statuses = wait_for("no delivery left pending or delivering", Duration::from_secs(20), || async {
        let statuses: Vec<String> = sqlx::query_scalar("select status from deliveries").fetch_all(&db.pool).await.unwrap();
        (statuses.len() == 6 && statuses.iter().all(|s| s == "delivered" || s == "failed")).then_some(statuses)
    })
    .await;
    assert_eq!(statuses, ["delivered"; 6]);
    for (_, receiver) in &receivers {
        receiver.verify().await;
    }
    let attempts: i64 = sqlx::query_scalar("select count(*) from delivery_attempts").fetch_one(&db.pool).await.unwrap();
    assert_eq!(attempts, 6, "one attempt per delivery");
    let nul_sub = &receivers[2].0;
    let d = delivery_of(&app, nul_sub).await;
    let detail: Value = app.get(&format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["attempts_log"][0]["response_body"], "\u{FFFD}nul\u{FFFD} in the \u{FFFD}middle\u{FFFD}");
    app.stop().await;
}

/// A result for `delivery` (claimed as attempt 1) that it was delivered, answering `body`.
fn delivered(delivery: uuid::Uuid, body: &str) -> relevo::outbound::attempts::AttemptResult {
    relevo::outbound::attempts::AttemptResult {
        delivery_id: delivery,
        attempt: 1,
        status: relevo::outbound::deliveries::DeliveryStatus::Delivered,
        status_code: Some(200),
        error: None,
        next_attempt_at: None,
        started_at: chrono::Utc::now(),
        duration_ms: 12,
        error_kind: None,
        response_body: Some(body.to_owned()),
    }
}

#[tokio::test]
async fn a_result_postgres_refuses_fails_alone_and_the_rest_of_its_batch_commits() {
    use relevo::outbound::{attempts, events, subscriptions};

    // Arrange: four deliveries claimed (attempt 1), no worker running.
    let db = TestDb::new().await;
    let types = vec!["order.shipped".to_owned()];
    for i in 0..4 {
        let url = format!("http://127.0.0.1:9/hook/{i}");
        let new = subscriptions::NewSubscription { url: &url, event_types: &types, description: None, rate_limit_per_sec: None };
        subscriptions::create(&db.pool, &crate::helpers::sealer(), &new).await.unwrap();
    }
    events::publish(&db.pool, "order.shipped", &json!({"order": 7}), None).await.unwrap();
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("update deliveries set status = 'delivering', attempts = 1, lease_until = now() + interval '30 seconds' returning id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(ids.len(), 4);
    let gone = uuid::Uuid::now_v7(); // a delivery deleted while it was being sent
    let batch = [
        delivered(ids[0], "fine"),
        // Valid UTF-8 that Postgres `text` refuses (22021).
        delivered(ids[1], "bad \0 byte"),
        delivered(ids[2], "fine"),
        delivered(gone, "fine"),
        delivered(ids[3], "fine"),
    ];

    // Act
    let committed = attempts::record_batch(&db.pool, &batch).await;

    // Assert: only the result for the deleted delivery failed; the refused
    // row is recorded as a failed attempt saying why.
    let failed: Vec<bool> = committed.iter().map(Result::is_err).collect();
    assert_eq!(failed, [false, false, false, true, false]);
    let rows: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("select id, status, last_error from deliveries").fetch_all(&db.pool).await.unwrap();
    for (id, status, last_error) in rows {
        if id == ids[1] {
            assert_eq!(status, "failed");
            let why = last_error.unwrap();
            assert!(why.contains("could not be stored") && why.contains("22021"), "{why}");
        } else {
            assert_eq!((status.as_str(), last_error), ("delivered", None), "{id}");
        }
    }
    let logged: Vec<(uuid::Uuid, Option<String>, Option<String>)> =
        sqlx::query_as("select delivery_id, error_kind, response_body from delivery_attempts").fetch_all(&db.pool).await.unwrap();
    assert_eq!(logged.len(), 4, "one attempt per existing delivery: {logged:?}");
    for (id, kind, body) in logged {
        let expected = if id == ids[1] { (Some("unstorable_result"), None) } else { (None, Some("fine")) };
        assert_eq!((kind.as_deref(), body.as_deref()), expected, "{id}");
    }
}

#[tokio::test]
async fn deliveries_list_newest_first_across_pages() {
    // Arrange
    let db = TestDb::new().await;
    let app = app_with_outbound(&db).await;
    let receiver = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let (sub, _) = subscribe(&app, &format!("{}/hook", receiver.uri()), json!(["tick"])).await;

    // Act: six deliveries one after another; the fourth through the test
    // endpoint, which inserts its delivery from Rust rather than the trigger.
    let mut created = vec![];
    for i in 0..6 {
        let id: uuid::Uuid = if i == 3 {
            let r: Value = app.post(&format!("/api/v1/subscriptions/{sub}/test")).send().await.unwrap().json().await.unwrap();
            r["delivery_id"].as_str().unwrap().parse().unwrap()
        } else {
            let e: Value = app.post("/api/v1/outbound-events").json(&json!({"type": "tick", "payload": {"i": i}})).send().await.unwrap().json().await.unwrap();
            let event: uuid::Uuid = e["id"].as_str().unwrap().parse().unwrap();
            sqlx::query_scalar("select id from deliveries where event_id = $1").bind(event).fetch_one(&db.pool).await.unwrap()
        };
        created.push(id.to_string());
    }
    let first: Value = app.get("/api/v1/deliveries?limit=4").send().await.unwrap().json().await.unwrap();
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let second: Value = app.get(&format!("/api/v1/deliveries?limit=4&cursor={cursor}")).send().await.unwrap().json().await.unwrap();

    // Assert
    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect()
    };
    let listed = [ids(&first), ids(&second)].concat();
    created.reverse();
    assert_eq!((ids(&first).len(), ids(&second).len()), (4, 2));
    assert_eq!(listed, created, "newest first, nothing skipped or repeated");
    assert!(second["next_cursor"].is_null());
    for id in &listed {
        let id: uuid::Uuid = id.parse().unwrap();
        assert_eq!(id.get_version_num(), 7, "{id}");
        let (secs, _) = id.get_timestamp().expect("a v7 id has a timestamp").to_unix();
        assert!(chrono::Utc::now().timestamp().abs_diff(secs as i64) < 60, "{id} carries its creation time");
    }
    app.stop().await;
}

#[tokio::test]
async fn signing_keys_stored_in_clear_are_sealed_at_start_up() {
    use relevo::outbound::subscriptions;
    let db = TestDb::new().await;
    let types = vec!["*".to_owned()];
    let new = subscriptions::NewSubscription { url: "https://example.com/hook", event_types: &types, description: None, rate_limit_per_sec: None };
    let (_, raw) = subscriptions::create(&db.pool, &sealer(), &new).await.unwrap();
    // As a node before sealing stored it: the raw key, not sealed.
    sqlx::query("update subscription_secrets set key = $1, sealed = false").bind(&raw).execute(&db.pool).await.unwrap();
    let app = spawn_app(&db, relevo::engine::Registry::new()).await;
    let (subscription, stored, sealed): (uuid::Uuid, Vec<u8>, bool) =
        sqlx::query_as("select subscription_id, key, sealed from subscription_secrets").fetch_one(&db.pool).await.unwrap();
    assert!(sealed);
    assert_ne!(stored, raw);
    let opened = sealer().open(&format!("subscription_secret:{subscription}"), &stored).unwrap();
    assert_eq!(opened, raw);
    app.stop().await;
}
