//! Inbound gateway: each receiver signed exactly as the provider signs, the
//! 2xx promise (stored once, run started), every refusal status, and an outage.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use base64::Engine as _;
use chrono::Utc;
use ed25519_dalek::{pkcs8::DecodePrivateKey as _, Signer as _};
use relevo::{
    engine::Registry,
    providers::{mercadopago, stripe, whatsapp},
};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

const STRIPE_SECRET: &str = "whsec_test_relevo";
const MP_SECRET: &str = "mp-secret";
const WA_SECRET: &str = "meta-app-secret";
const WA_VERIFY: &str = "verify-me";

async fn gateway(db: &TestDb) -> TestApp {
    let mut s = settings(db);
    s.webhooks.stripe_secrets = vec![SecretString::from("whsec_old"), SecretString::from(STRIPE_SECRET)];
    s.webhooks.mercadopago_secret = Some(SecretString::from(MP_SECRET));
    s.webhooks.whatsapp_app_secret = Some(SecretString::from(WA_SECRET));
    s.webhooks.whatsapp_verify_token = Some(SecretString::from(WA_VERIFY));
    s.webhooks.highlevel_public_key_pem = Some(include_str!("../fixtures/highlevel_ed25519_test_public.pem").into());
    s.webhooks.highlevel_rsa_public_key_pem = Some(include_str!("../fixtures/highlevel_rsa_test_public.pem").into());
    s.webhooks.max_body_bytes = 64 * 1024;
    let registry = relevo::workflows::registry(&s).unwrap();
    spawn_app_with(s, registry).await
}

fn stripe_body(id: &str) -> String {
    json!({"id": id, "object": "event", "type": "payment_intent.succeeded", "created": 1750000000,
           "data": {"object": {"id": "pi_1", "object": "payment_intent", "metadata": {"order_id": "o1"}}}})
    .to_string()
}

async fn post_stripe(app: &TestApp, body: &str, secret: &str, t: i64) -> reqwest::Response {
    app.client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", stripe::verify::sign(secret, t, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn stored(db: &TestDb, provider: &str) -> i64 {
    sqlx::query_scalar("select count(*) from inbound_events where provider = $1")
        .bind(provider)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn assert_json_error(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test]
async fn a_signed_stripe_event_is_stored_once_and_starts_one_run() {
    let db = TestDb::new().await;
    let app = gateway(&db).await;
    let now = Utc::now().timestamp();

    let resp = post_stripe(&app, &stripe_body("evt_1"), STRIPE_SECRET, now).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 1, "duplicate": false}));
    // Redelivery, re-signed with a fresh timestamp as Stripe does, and signed with the old secret.
    let resp = post_stripe(&app, &stripe_body("evt_1"), "whsec_old", now + 5).await;
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 0, "duplicate": true}));

    let (events, runs): (i64, i64) = sqlx::query_as(
        "select (select count(*) from inbound_events), (select count(*) from engine.runs where workflow = 'inbound_event')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((events, runs), (1, 1));

    // The ops API shows the event and its run, which completes.
    let page: Value = app.get("/api/v1/events?provider=stripe").send().await.unwrap().json().await.unwrap();
    let item = &page["items"][0];
    assert_eq!((item["provider_event_id"].as_str(), item["type"].as_str()), (Some("evt_1"), Some("payment_intent.succeeded")));
    let run_id: uuid::Uuid = item["run_id"].as_str().unwrap().parse().unwrap();
    wait_status(&db.pool, run_id, "succeeded", Duration::from_secs(20)).await;
    let detail: Value = app
        .get(&format!("/api/v1/events/{}", item["id"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["payload"]["data"]["object"]["id"], "pi_1");
    assert_eq!(detail["run_status"], "succeeded");
    assert!(detail["headers"]["stripe-signature"].is_string());
    let page: Value = app.get("/api/v1/events?type=nope").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn bad_stripe_requests_are_refused_with_json_errors_and_store_nothing() {
    let db = TestDb::new().await;
    let app = gateway(&db).await;
    let now = Utc::now().timestamp();
    let body = stripe_body("evt_2");

    assert_json_error(post_stripe(&app, &body, "whsec_wrong", now).await, 401, "invalid_signature").await;
    assert_json_error(post_stripe(&app, &body, STRIPE_SECRET, now - 301).await, 401, "invalid_signature").await;
    let resp = app.client.post(app.url("/webhooks/stripe")).body(body.clone()).send().await.unwrap();
    assert_json_error(resp, 401, "invalid_signature").await;
    // Body changed after signing.
    let resp = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", stripe::verify::sign(STRIPE_SECRET, now, body.as_bytes()))
        .body(body.replace("evt_2", "evt_3"))
        .send()
        .await
        .unwrap();
    assert_json_error(resp, 401, "invalid_signature").await;
    assert_json_error(post_stripe(&app, "not json", STRIPE_SECRET, now).await, 400, "invalid_json").await;
    let big = format!("{{\"id\":\"evt_big\",\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(70 * 1024));
    assert_json_error(post_stripe(&app, &big, STRIPE_SECRET, now).await, 413, "payload_too_large").await;

    assert_eq!(stored(&db, "stripe").await, 0);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("relevo_webhooks_received_total{provider=\"stripe\",outcome=\"rejected\"}"));
    app.stop().await;
}

#[tokio::test]
async fn an_unconfigured_provider_answers_503_and_the_others_keep_working() {
    let db = TestDb::new().await;
    let mut s = settings(&db);
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    let app = spawn_app_with(s, Registry::new().register(relevo::workflows::inbound_event::InboundEvent { mercadopago: None })).await;

    let resp = app.client.post(app.url("/webhooks/mercadopago")).body("{}").send().await.unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    assert_json_error(resp, 503, "provider_not_configured").await;
    let resp = app
        .client
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_json_error(resp, 503, "provider_not_configured").await;
    let resp = post_stripe(&app, &stripe_body("evt_9"), STRIPE_SECRET, Utc::now().timestamp()).await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn mercadopago_notifications_verify_against_the_query_data_id_and_dedupe() {
    let db = TestDb::new().await;
    let app = gateway(&db).await;
    let body = r#"{"id":12345,"live_mode":true,"type":"payment","action":"payment.updated","data":{"id":"999"}}"#;
    let send = |request_id: &'static str, sig: String| {
        app.client
            .post(app.url("/webhooks/mercadopago?data.id=999&type=payment"))
            .header("x-request-id", request_id)
            .header("x-signature", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ts = Utc::now().timestamp_millis().to_string();

    let resp = send("req-1", mercadopago::verify::sign(MP_SECRET, Some("999"), Some("req-1"), &ts)).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 1, "duplicate": false}));
    // A retry has a new request id but the same notification id.
    let resp = send("req-2", mercadopago::verify::sign(MP_SECRET, Some("999"), Some("req-2"), &ts)).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 0, "duplicate": true}));
    let resp = send("req-3", mercadopago::verify::sign(MP_SECRET, Some("998"), Some("req-3"), &ts)).await.unwrap();
    assert_json_error(resp, 401, "invalid_signature").await;

    let (kind, pid): (String, Option<String>) =
        sqlx::query_as("select type, provider_event_id from inbound_events where provider = 'mercadopago'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((kind.as_str(), pid.as_deref()), ("payment.updated", Some("12345")));
    app.stop().await;
}

fn wa_body(messages: &[&str]) -> String {
    let msgs: Vec<Value> = messages
        .iter()
        .map(|id| json!({"from": "5215512345678", "id": id, "timestamp": "1749416383", "type": "text",
                         "text": {"body": "Quiero 2 zapatos y 1 camisa"}}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "messages": msgs, "statuses": [{"id": "wamid.S", "status": "read", "timestamp": "1749416385", "recipient_id": "5215512345678"}]}}]}]})
    .to_string()
}

#[tokio::test]
async fn whatsapp_handshake_and_one_event_per_message_and_status() {
    let db = TestDb::new().await;
    let app = gateway(&db).await;

    let resp = app
        .client
        .get(app.url(&format!("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={WA_VERIFY}&hub.challenge=1158201444")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), "1158201444");
    let resp = app
        .client
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let post = |body: String, sig: String| {
        app.client
            .post(app.url("/webhooks/whatsapp"))
            .header("X-Hub-Signature-256", sig)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let b = wa_body(&["wamid.A", "wamid.B"]);
    let resp = post(b.clone(), whatsapp::verify::sign(WA_SECRET, b.as_bytes())).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 3, "duplicate": false}));
    let resp = post(b.clone(), whatsapp::verify::sign(WA_SECRET, b.as_bytes())).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 0, "duplicate": true}));
    let b2 = wa_body(&["wamid.B", "wamid.C"]);
    let resp = post(b2.clone(), whatsapp::verify::sign(WA_SECRET, b2.as_bytes())).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 1, "duplicate": false}));
    let resp = post(b2.clone(), whatsapp::verify::sign("other", b2.as_bytes())).await.unwrap();
    assert_json_error(resp, 401, "invalid_signature").await;

    let kinds: Vec<String> = sqlx::query_scalar("select type from inbound_events order by dedupe_key")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(kinds, vec!["message.text", "message.text", "message.text", "status.read"]);
    app.stop().await;
}

fn ghl_body(webhook_id: &str) -> String {
    json!({"type": "AppointmentCreate", "locationId": "L1", "webhookId": webhook_id,
           "timestamp": Utc::now().to_rfc3339(), "appointment": {"id": "a1", "calendarId": "c1"}})
    .to_string()
}

pub fn ghl_sign(body: &str) -> String {
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(include_str!("../fixtures/highlevel_ed25519_test_private.pem")).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key.sign(body.as_bytes()).to_bytes())
}

#[tokio::test]
async fn highlevel_webhooks_verify_ed25519_and_answer_429_when_storage_fails() {
    let db = TestDb::new().await;
    let app = gateway(&db).await;
    let post = |body: String, sig: &str| {
        app.client
            .post(app.url("/webhooks/highlevel"))
            .header("X-GHL-Signature", sig)
            .header("X-WH-Signature", "N/A")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let b = ghl_body("wh-1");
    let resp = post(b.clone(), &ghl_sign(&b)).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 1, "duplicate": false}));
    let resp = post(b.clone(), &ghl_sign(&b)).await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"received": 0, "duplicate": true}));
    assert_json_error(post(b.clone(), "N/A").await.unwrap(), 401, "invalid_signature").await;

    // Storage down: HighLevel must get 429 (it retries nothing else).
    admin_execute(format!("alter database {} allow_connections false", db.name)).await;
    admin_execute(format!("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{}'", db.name)).await;
    let b = ghl_body("wh-2");
    let resp = post(b.clone(), &ghl_sign(&b)).await.unwrap();
    assert!(resp.headers().get("retry-after").is_some());
    assert_json_error(resp, 429, "storage_unavailable").await;
    admin_execute(format!("alter database {} allow_connections true", db.name)).await;
    let resp = post(b.clone(), &ghl_sign(&b)).await.unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn when_postgres_stops_mid_stream_every_200_is_stored_and_the_rest_got_503() {
    // A cluster of its own, so stopping it does not disturb the other tests.
    let dir = tempfile::Builder::new().prefix("outage").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().to_path_buf();
    let opts = relevo::db::cluster::Options { unsafe_fast: true };
    let cluster = {
        let (data, opts) = (data.clone(), opts.clone());
        tokio::task::spawn_blocking(move || relevo::db::PrivateCluster::start(&data, None, &opts)).await.unwrap().unwrap()
    };
    relevo::db::create_database_if_missing(&cluster.connect_options("postgres"), "relevo").await.unwrap();
    let mut s = relevo::config::Settings::from_lookup(|_| None).unwrap();
    s.database_url = Some(SecretString::from(cluster.url("relevo")));
    s.addr = "127.0.0.1:0".parse().unwrap();
    s.admin_token = Some(SecretString::from(TOKEN));
    s.secret_key = Some(SecretString::from(SECRET_KEY));
    s.db_pool_size = 10;
    s.engine = fast_engine();
    s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    let app = spawn_app_with(s, Registry::new().register(relevo::workflows::inbound_event::InboundEvent { mercadopago: None })).await;
    let url = app.url("/webhooks/stripe");

    // Four senders stream webhooks while Postgres is stopped (immediate) and started again.
    let ok = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|s| {
            let (client, url, ok, unavailable) = (app.client.clone(), url.clone(), ok.clone(), unavailable.clone());
            tokio::spawn(async move {
                let mut answers = vec![];
                let mut pace = tokio::time::interval(Duration::from_millis(10));
                for i in 0..200 {
                    pace.tick().await;
                    let id = format!("evt_{s}_{i}");
                    let body = stripe_body(&id);
                    let sig = stripe::verify::sign(STRIPE_SECRET, Utc::now().timestamp(), body.as_bytes());
                    let resp = client.post(&url).header("Stripe-Signature", sig).body(body).send().await.unwrap();
                    let status = resp.status().as_u16();
                    match status {
                        200 => ok.fetch_add(1, Ordering::SeqCst),
                        _ => unavailable.fetch_add(1, Ordering::SeqCst),
                    };
                    answers.push((id, status));
                }
                answers
            })
        })
        .collect();
    wait_for("webhooks to be flowing", Duration::from_secs(30), || async {
        (ok.load(Ordering::SeqCst) >= 20).then_some(())
    })
    .await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_immediate().unwrap();
        cluster
    })
    .await
    .unwrap();
    wait_for("senders to be refused", Duration::from_secs(30), || async {
        (unavailable.load(Ordering::SeqCst) >= 8).then_some(())
    })
    .await;
    drop(cluster);
    let cluster = tokio::task::spawn_blocking(move || relevo::db::PrivateCluster::start(&data, None, &opts).unwrap())
        .await
        .unwrap();

    let mut answers = vec![];
    for s in senders {
        answers.extend(s.await.unwrap());
    }
    let others: Vec<_> = answers.iter().filter(|a| a.1 != 200 && a.1 != 503).collect();
    assert!(others.is_empty(), "only 200 or 503 allowed: {others:?}");
    assert!(answers.iter().any(|a| a.1 == 503), "the outage was noticed");
    assert_eq!(answers.last().unwrap().1, 200, "ingest resumed by itself");
    let pool = relevo::db::pool(cluster.connect_options("relevo"), 2).await.unwrap();
    let stored: std::collections::HashSet<String> =
        sqlx::query_scalar::<_, String>("select provider_event_id from inbound_events")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    for (id, _) in answers.iter().filter(|a| a.1 == 200) {
        assert!(stored.contains(id), "{id} was answered 200 but is not stored");
    }
    pool.close().await;
    app.stop().await;
    cluster.stop_immediate().unwrap();
}
