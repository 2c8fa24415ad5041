//! Regression tests for the security and reliability review (one per defect).

use std::time::Duration;

use futures::{stream, StreamExt};
use relevo::{engine::retention::Retention, providers::stripe};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

const STRIPE_SECRET: &str = "whsec_hardening";

async fn stripe_gateway(db: &TestDb) -> TestApp {
    let mut s = settings(db);
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    spawn_app_with(s, relevo::workflows::registry(&relevo::config::Settings::from_lookup(|_| None).unwrap()).unwrap()).await
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
    spawn_app_with(s, relevo::workflows::registry(&relevo::config::Settings::from_lookup(|_| None).unwrap()).unwrap()).await
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
    // Arrange: real webhook runs (one of them fulfils an order), all finished.
    let db = TestDb::new().await;
    let app = stripe_gateway(&db).await;
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
    assert!(pruned.jobs >= 3, "{pruned:?}");
    assert_eq!(count(&db, "select count(*) from engine.runs").await, 0);
    assert_eq!(count(&db, "select count(*) from inbound_events where run_id is null").await, 2);
    assert_eq!(count(&db, "select count(*) from orders where status = 'fulfilled'").await, 1);

    // Events have their own retention (90 days by default).
    assert_eq!(relevo::ingest::events::prune(&db.pool, Retention::default().events).await.unwrap(), 0);
    sqlx::query("update inbound_events set received_at = now() - interval '91 days' where dedupe_key = 'evt_other'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(relevo::ingest::events::prune(&db.pool, Retention::default().events).await.unwrap(), 1);
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 1);
}

#[tokio::test]
async fn a_captured_mercadopago_signature_cannot_be_replayed_with_another_body_or_later() {
    use relevo::providers::mercadopago::verify::sign;
    // Arrange
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.webhooks.mercadopago_secret = Some(SecretString::from("mp-secret"));
    let app = spawn_app_with(s, relevo::workflows::registry(&relevo::config::Settings::from_lookup(|_| None).unwrap()).unwrap()).await;
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
    // Arrange: one signed POST with 20 messages and a status.
    let db = TestDb::new().await;
    let app = whatsapp_gateway(&db).await;
    let messages: Vec<Value> = (0..20)
        .map(|i| json!({"from": "5215512345678", "id": format!("wamid.M{i}"), "timestamp": "1749416383", "type": "text",
                         "text": {"body": "Quiero 2 zapatos"}}))
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"},
        "messages": messages, "statuses": [{"id": "wamid.S", "status": "read", "timestamp": "1749416385", "recipient_id": "5215512345678"}]}}]}]})
    .to_string();
    let sig = relevo::providers::whatsapp::verify::sign("meta-secret", body.as_bytes());

    // Act
    let resp = app
        .client
        .post(app.url("/webhooks/whatsapp"))
        .header("X-Hub-Signature-256", sig)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();

    // Assert: 21 events, one stored body, which is the request's bytes.
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 21, "duplicate": false}));
    assert_eq!(count(&db, "select count(*) from inbound_events").await, 21);
    assert_eq!(count(&db, "select count(*) from inbound_bodies").await, 1);
    assert_eq!(count(&db, "select count(distinct body_id) from inbound_events").await, 1);
    let stored: String = sqlx::query_scalar("select body from inbound_bodies").fetch_one(&db.pool).await.unwrap();
    assert_eq!(stored, body);
    app.stop().await;
}
