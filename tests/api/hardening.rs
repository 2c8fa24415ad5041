//! Regression tests for the security and reliability review (one per defect).

use std::time::Duration;

use futures::{stream, StreamExt};
use relevo::{engine::retention::Retention, providers::stripe};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

const STRIPE_SECRET: &str = "whsec_hardening";

/// The app with Relevo's own flows and these settings.
async fn app_with(s: relevo::config::Settings) -> TestApp {
    let registry = relevo::workflows::registry(&s).unwrap();
    spawn_app_with(s, registry).await
}

async fn stripe_gateway(db: &TestDb) -> TestApp {
    let mut s = settings(db);
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    app_with(s).await
}

async fn post_stripe(app: &TestApp, body: String) -> (u16, Value) {
    let t = chrono::Utc::now().timestamp();
    let resp = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", stripe::verify::sign(STRIPE_SECRET, t, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn customer_event(id: &str) -> String {
    json!({"id": id, "object": "event", "type": "customer.created", "data": {"object": {"object": "customer", "id": "cus_1"}}})
        .to_string()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&db.pool).await.unwrap()
}

fn whatsapp_post(wamids: &[String]) -> String {
    let messages: Vec<Value> = wamids
        .iter()
        .map(|id| json!({"from": "5215512345678", "id": id, "timestamp": "1749416383", "type": "text",
                         "text": {"body": "Quiero 2 zapatos"}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"},
        "messages": messages}}]}]})
    .to_string()
}

async fn whatsapp_gateway(db: &TestDb) -> TestApp {
    let mut s = settings(db);
    s.webhooks.whatsapp_app_secret = Some(SecretString::from("meta-secret"));
    app_with(s).await
}

async fn post_whatsapp(app: &TestApp, body: String) -> (u16, Value) {
    let resp = app
        .client
        .post(app.url("/webhooks/whatsapp"))
        .header("X-Hub-Signature-256", relevo::providers::whatsapp::verify::sign("meta-secret", body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_same_events_sent_twice_at_once_never_deadlock_and_each_is_stored_once() {
    // Arrange: Meta delivers the same messages twice at once (two subscribed
    // apps, or a retry of a slow answer), here in opposite orders, so two
    // writer transactions insert the same keys concurrently.
    let db = TestDb::new().await;
    let app = whatsapp_gateway(&db).await;
    for round in 0..5 {
        let wamids: Vec<String> = (0..2000).map(|i| format!("wamid.R{round}.{i:04}")).collect();
        let reversed: Vec<String> = wamids.iter().rev().cloned().collect();

        // Act
        let (a, b) = tokio::join!(post_whatsapp(&app, whatsapp_post(&wamids)), post_whatsapp(&app, whatsapp_post(&reversed)));

        // Assert: no 503 (a deadlock aborts a whole batch), each message new exactly once.
        assert_eq!((a.0, b.0), (200, 200), "round {round}: {a:?} {b:?}");
        let received = a.1["received"].as_u64().unwrap() + b.1["received"].as_u64().unwrap();
        assert_eq!(received, 2000, "round {round}");
    }
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 10_000);
    assert_eq!(count(&db, "select count(*) from engine.runs where workflow = 'inbound_event'").await, 10_000);
    app.stop().await;
}

#[tokio::test]
async fn a_nul_in_one_webhook_fails_no_other_webhook_of_its_batch() {
    // Arrange: 50 normal events and one whose field carries \u0000 (jsonb refuses it).
    let db = TestDb::new().await;
    let app = stripe_gateway(&db).await;
    let mut bodies: Vec<String> = (0..50).map(|i| customer_event(&format!("evt_ok_{i}"))).collect();
    let poison = r#"{"id":"evt_nul","object":"event","type":"customer.created","data":{"object":{"object":"customer","id":"cus_1","name":"Ana\u0000"}}}"#;
    bodies.insert(25, poison.to_owned());

    // Act: all at once, so they share batches.
    let answers: Vec<(u16, Value)> =
        stream::iter(bodies).map(|body| post_stripe(&app, body)).buffer_unordered(51).collect().await;

    // Assert: every answer is 200 and every event, the odd one included, is stored.
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 51);
    let name: String = sqlx::query_scalar(
        "select payload->'data'->'object'->>'name' from inbound_events where dedupe_key = 'evt_nul'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(name, "Ana\u{FFFD}");
    let body: String = sqlx::query_scalar(
        "select b.body from inbound_events e join inbound_bodies b on b.id = e.body_id where e.dedupe_key = 'evt_nul'",
    )
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(body, poison, "the raw body is kept exactly as signed");
    app.stop().await;
}

#[tokio::test]
async fn retention_prunes_webhook_runs_and_queue_jobs_and_keeps_their_events_for_audit() {
    // Arrange: real webhook runs (one fulfils an order, whose confirmation is
    // delivered to a subscriber), all finished.
    let db = TestDb::new().await;
    let subscriber = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&subscriber)
        .await;
    let mut s = settings(&db);
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    s.outbound.allow_nets = relevo::outbound::ssrf::AllowNets::parse("127.0.0.0/8").unwrap();
    let app = app_with(s).await;
    let subscription = json!({"url": format!("{}/hooks", subscriber.uri()), "event_types": ["sales_order.confirmed"]});
    assert_eq!(app.post("/api/v1/subscriptions").json(&subscription).send().await.unwrap().status(), 201);
    let product = json!({"sku": "ZAP-1", "name": "Zapatos", "price_minor": 1000, "currency": "MXN", "stock": 5});
    assert_eq!(app.post("/api/v1/products").json(&product).send().await.unwrap().status(), 201);
    let order: Value = app
        .post("/api/v1/orders")
        .json(&json!({"customer": {"email": "ana@example.mx", "name": "Ana"}, "items": [{"sku": "ZAP-1", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();
    let paid = json!({"id": "evt_paid", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {
        "object": "payment_intent", "id": "pi_1", "amount": 1000, "amount_received": 1000, "currency": "mxn",
        "metadata": {"order_id": order_id}}}});
    assert_eq!(post_stripe(&app, paid.to_string()).await.0, 200);
    assert_eq!(post_stripe(&app, customer_event("evt_other")).await.0, 200);
    wait_for("three runs to succeed", Duration::from_secs(20), || async {
        (count(&db, "select count(*) from engine.runs where status = 'succeeded'").await == 3).then_some(())
    })
    .await;
    wait_for("the confirmation to be delivered", Duration::from_secs(20), || async {
        (count(&db, "select count(*) from deliveries where status = 'delivered'").await == 1).then_some(())
    })
    .await;
    app.stop().await;
    sqlx::query("update engine.runs set finished_at = now() - interval '200 hours'").execute(&db.pool).await.unwrap();
    sqlx::query("update apalis.jobs set done_at = now() - interval '200 hours' where done_at is not null")
        .execute(&db.pool)
        .await
        .unwrap();

    // Act
    let pruned = relevo::engine::retention::prune(&db.pool, Retention::default()).await.unwrap();

    // Assert: runs and jobs are gone, the events stay (without their runs), the order too.
    assert_eq!(pruned.runs, 3);
    // Succeeded runs deleted their queue jobs as they finished; none is left acked.
    assert_eq!(count(&db, "select count(*) from apalis.jobs where status in ('Done', 'Killed')").await, 0, "{pruned:?}");
    assert_eq!(count(&db, "select count(*) from engine.runs").await, 0);
    assert_eq!(count(&db, "select count(*) from inbound_events where run_id is null").await, 2);
    assert_eq!(count(&db, "select count(*) from orders where status = 'fulfilled'").await, 1);
    assert_eq!(count(&db, "select count(*) from deliveries where status = 'delivered'").await, 1);

    // Events have their own retention (90 days by default).
    assert_eq!(relevo::ingest::events::prune(&db.pool, Retention::default().events).await.unwrap(), 0);
    sqlx::query("update inbound_events set received_at = now() - interval '91 days' where dedupe_key = 'evt_other'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(relevo::ingest::events::prune(&db.pool, Retention::default().events).await.unwrap(), 1);
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 1);

    // The events API still shows the kept event, without a run.
    let app = stripe_gateway(&db).await;
    let page: Value = app.get("/api/v1/events").send().await.unwrap().json().await.unwrap();
    let kept = &page["items"][0];
    assert_eq!((kept["provider_event_id"].as_str(), kept["run_id"].is_null()), (Some("evt_paid"), true), "{page}");
    let shown = app.get(&format!("/api/v1/events/{}", kept["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    assert!(shown.json::<Value>().await.unwrap()["run_status"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn a_captured_mercadopago_signature_cannot_be_replayed_with_another_body_or_later() {
    use relevo::providers::mercadopago::verify::sign;
    // Arrange
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.webhooks.mercadopago_secret = Some(SecretString::from("mp-secret"));
    let app = app_with(s).await;
    let send = |query: &'static str, body_id: u64, sig: String| {
        let body = json!({"id": body_id, "type": "payment", "action": "payment.updated", "data": {"id": "777"}}).to_string();
        app.client
            .post(app.url(&format!("/webhooks/mercadopago{query}")))
            .header("x-request-id", "req-1")
            .header("x-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp().to_string();
    let captured = sign("mp-secret", Some("555"), Some("req-1"), &now);

    // Act + Assert: the original is stored; the same signature with a fresh body id is a duplicate.
    let first: Value = send("?data.id=555&type=payment", 1, captured.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(first, json!({"received": 1, "duplicate": false}));
    let replay: Value = send("?data.id=555&type=payment", 2, captured).await.unwrap().json().await.unwrap();
    assert_eq!(replay, json!({"received": 0, "duplicate": true}));
    // The payment id is the signed data.id (555), never the body's (777).
    let payment_id: String = sqlx::query_scalar("select payload->>'relevo_data_id' from inbound_events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(payment_id, "555");

    // No signed data.id: refused.
    let unsigned_id = sign("mp-secret", None, Some("req-1"), &now);
    assert_eq!(send("?type=payment", 3, unsigned_id).await.unwrap().status(), 401);
    // Signed two hours ago: refused (MERCADOPAGO_MAX_AGE defaults to 1 h).
    let old = (chrono::Utc::now() - chrono::Duration::hours(2)).timestamp().to_string();
    let stale = send("?data.id=556&type=payment", 4, sign("mp-secret", Some("556"), Some("req-1"), &old)).await.unwrap();
    assert_eq!(stale.status(), 401);
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_whatsapp_post_with_many_messages_stores_its_body_once() {
    // Arrange: one signed POST with 20 messages.
    let db = TestDb::new().await;
    let app = whatsapp_gateway(&db).await;
    let wamids: Vec<String> = (0..20).map(|i| format!("wamid.M{i}")).collect();
    let body = whatsapp_post(&wamids);

    // Act
    let (status, answer) = post_whatsapp(&app, body.clone()).await;

    // Assert: 20 events, one stored body, which is the request's bytes.
    assert_eq!((status, answer), (200, json!({"received": 20, "duplicate": false})));
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 20);
    assert_eq!(count(&db, "select count(*) from inbound_bodies").await, 1);
    assert_eq!(count(&db, "select count(distinct body_id) from inbound_events").await, 1);
    let stored: String = sqlx::query_scalar("select body from inbound_bodies").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, body);
    app.stop().await;
}

#[tokio::test]
async fn highlevel_events_of_locations_not_connected_are_stored_as_ignored_without_a_run() {
    use base64::Engine as _;
    use ed25519_dalek::{pkcs8::DecodePrivateKey as _, Signer as _};
    // Arrange: only location L1 is connected; HighLevel's key signs every account's events.
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.webhooks.highlevel_public_key_pem = Some(include_str!("../fixtures/highlevel_ed25519_test_public.pem").into());
    s.webhooks.highlevel_location_ids = vec!["L1".into()];
    let app = app_with(s).await;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(include_str!("../fixtures/highlevel_ed25519_test_private.pem")).unwrap();
    let post = |location: &str, webhook_id: &str| {
        let body = json!({"type": "AppointmentCreate", "locationId": location, "webhookId": webhook_id,
                          "timestamp": chrono::Utc::now().to_rfc3339(), "appointment": {"id": "a1"}})
        .to_string();
        let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(body.as_bytes()).to_bytes());
        app.client
            .post(app.url("/webhooks/highlevel"))
            .header("X-GHL-Signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Act
    let ours = post("L1", "wh-ours").await.unwrap();
    let foreign = post("L-OTHER", "wh-foreign").await.unwrap();

    // Assert: both 200 and stored; only ours started a run, the other says why.
    assert_eq!(ours.status(), 200);
    assert_eq!(foreign.status(), 200);
    let rows: Vec<(String, Option<uuid::Uuid>, Option<String>)> =
        sqlx::query_as("select dedupe_key, run_id, ignored_reason from inbound_events order by dedupe_key")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, "wh-foreign");
    assert!(rows[0].1.is_none());
    assert!(rows[0].2.as_deref().unwrap().contains("L-OTHER is not connected"), "{rows:?}");
    assert_eq!(rows[1].0, "wh-ours");
    assert!(rows[1].1.is_some() && rows[1].2.is_none());
    // Ours went on to its appointment flow; the foreign one started nothing.
    assert_eq!(count(&db, "select count(*) from engine.runs where workflow = 'inbound_event'").await, 1);
    app.stop().await;
}

async fn new_order(app: &TestApp, sku: &str, quantity: i32) -> String {
    let order: Value = app
        .post("/api/v1/orders")
        .json(&json!({"customer": {"email": "ana@example.mx", "name": "Ana"}, "items": [{"sku": sku, "quantity": quantity}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    order["id"].as_str().unwrap().to_owned()
}

async fn order(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/orders/{id}")).send().await.unwrap().json().await.unwrap()
}

async fn stock(app: &TestApp, sku: &str) -> i64 {
    let product: Value = app.get(&format!("/api/v1/products/{sku}")).send().await.unwrap().json().await.unwrap();
    product["stock"].as_i64().unwrap()
}

fn payment_intent(event_id: &str, order_id: &str, amount: Option<i64>) -> String {
    let mut object = json!({"object": "payment_intent", "id": format!("pi_{event_id}"), "currency": "mxn",
                            "metadata": {"order_id": order_id}});
    if let Some(amount) = amount {
        object["amount"] = json!(amount);
        object["amount_received"] = json!(amount);
    }
    json!({"id": event_id, "object": "event", "type": "payment_intent.succeeded", "data": {"object": object}}).to_string()
}

#[tokio::test]
async fn a_payment_without_an_amount_is_never_fulfilled_unchecked() {
    // Arrange
    let db = TestDb::new().await;
    let app = stripe_gateway(&db).await;
    let product = json!({"sku": "ZAP-2", "name": "Zapatos", "price_minor": 1000, "currency": "MXN", "stock": 5});
    app.post("/api/v1/products").json(&product).send().await.unwrap();
    let id = new_order(&app, "ZAP-2", 1).await;

    // Act: Stripe says paid but carries no amount.
    assert_eq!(post_stripe(&app, payment_intent("evt_noamount", &id, None)).await.0, 200);

    // Assert: needs attention, nothing taken.
    let shown = wait_for("the order to need attention", Duration::from_secs(20), || async {
        let o = order(&app, &id).await;
        (o["status"] == "needs_attention").then_some(o)
    })
    .await;
    let last = shown["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["reason"].as_str().unwrap().contains("no amount"), "{last}");
    assert_eq!(stock(&app, "ZAP-2").await, 5);
    app.stop().await;
}

#[tokio::test]
async fn a_partial_refund_is_recorded_and_changes_neither_status_nor_stock() {
    // Arrange: a fulfilled order of 2 (stock 5 -> 3).
    let db = TestDb::new().await;
    let app = stripe_gateway(&db).await;
    let product = json!({"sku": "ZAP-3", "name": "Zapatos", "price_minor": 1000, "currency": "MXN", "stock": 5});
    app.post("/api/v1/products").json(&product).send().await.unwrap();
    let id = new_order(&app, "ZAP-3", 2).await;
    assert_eq!(post_stripe(&app, payment_intent("evt_pay", &id, Some(2000))).await.0, 200);
    wait_for("the order to be fulfilled", Duration::from_secs(20), || async {
        (order(&app, &id).await["status"] == "fulfilled").then_some(())
    })
    .await;

    // Act: 5.00 of 20.00 refunded.
    let refund = json!({"id": "evt_partial", "object": "event", "type": "charge.refunded", "data": {"object": {
        "object": "charge", "id": "ch_1", "payment_intent": "pi_evt_pay", "amount": 2000, "amount_refunded": 500,
        "refunded": false, "currency": "mxn"}}});
    assert_eq!(post_stripe(&app, refund.to_string()).await.0, 200);

    // Assert: recorded in the history as not applied; still fulfilled; stock untouched.
    let shown = wait_for("the partial refund to be recorded", Duration::from_secs(20), || async {
        let o = order(&app, &id).await;
        o["history"].as_array().unwrap().iter().any(|t| t["signal"] == "partially_refunded").then_some(o)
    })
    .await;
    let partial = shown["history"].as_array().unwrap().iter().find(|t| t["signal"] == "partially_refunded").unwrap();
    assert_eq!(partial["applied"], false);
    assert_eq!(shown["status"], "fulfilled");
    assert_eq!(stock(&app, "ZAP-3").await, 3);
    app.stop().await;
}

#[tokio::test]
async fn nul_in_a_path_or_query_string_is_a_400_not_a_500() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::engine::Registry::new()).await;
    for path in ["/api/v1/products/%00", "/api/v1/products?cursor=%00", "/api/v1/events?provider=a%00b"] {
        let resp = app.get(path).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn repeated_wrong_tokens_from_one_address_are_refused_for_a_while() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::engine::Registry::new()).await;
    for _ in 0..10 {
        let resp = app.client.get(app.url("/api/v1/runs")).bearer_auth("wrong-token").send().await.unwrap();
        assert_eq!(resp.status(), 401);
    }
    // The 11th attempt, even with the right token, waits out the window.
    let resp = app.get("/api/v1/runs").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "too_many_failed_attempts");
    // Webhook receivers are not affected.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_short_admin_token_is_refused_at_start_up() {
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.admin_token = Some(SecretString::from("short-token"));
    let err = relevo::startup::Application::build(s, relevo::engine::Registry::new()).await.err().unwrap();
    assert!(err.to_string().contains("at least 32"), "{err}");
}

#[tokio::test]
async fn an_admin_token_file_readable_by_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new().await;
    let dir = tempfile::Builder::new().prefix("token").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "a-token-that-is-long-enough-0123456789").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = settings(&db);
    s.admin_token = None;
    s.data_dir = dir.path().to_path_buf();
    let app = spawn_app_with(s, relevo::engine::Registry::new()).await;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let resp = app.client.get(app.url("/api/v1/runs")).bearer_auth("a-token-that-is-long-enough-0123456789").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn api_bodies_over_the_limit_get_413_with_or_without_a_length() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::engine::Registry::new()).await;
    let big = json!({"sku": "BIG", "name": "x".repeat(2 * 1024 * 1024), "price_minor": 1, "currency": "MXN", "stock": 1})
        .to_string();
    let resp = app.post("/api/v1/products").header("content-type", "application/json").body(big.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    // Chunked: no Content-Length to trust.
    let chunks = futures::stream::iter(big.into_bytes().chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let resp = app
        .post("/api/v1/products")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn an_http2_post_without_content_type_or_length_keeps_its_body() {
    // Arrange: HTTP/2 frames bodies itself: no Content-Length, no Transfer-Encoding.
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    let app = spawn_app_with(s, relevo::engine::Registry::new()).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let body = customer_event("evt_h2");
    let sig = stripe::verify::sign(STRIPE_SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(body.clone().into_bytes())]);

    // Act
    let resp = h2
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", sig)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();

    // Assert: the signed body arrived whole (not replaced by `null`) and was stored.
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn values_postgres_cannot_store_are_a_400_not_a_500() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, relevo::engine::Registry::new()).await;
    let product = json!({"sku": "NUL-1", "name": "Zapato\u{0}", "price_minor": 1, "currency": "MXN", "stock": 1});
    let event = json!({"type": "stock.low", "payload": {"note": "a\u{0}b"}, "idempotency_key": "nul-1"});
    for (path, body) in [("/api/v1/products", product), ("/api/v1/outbound-events", event)] {
        let resp = app.post(path).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "invalid_value", "{path}");
    }
    app.stop().await;
}
