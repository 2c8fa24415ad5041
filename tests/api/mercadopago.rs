//! Mercado Pago payments: the workflow trusts only `GET /v1/payments/{id}`,
//! retries 5xx and 429, and fails permanently on 404. The mock checks Bearer
//! auth and the path, and answers in Mercado Pago's error shape.

use std::time::Duration;

use chrono::Utc;
use relevo::{config::Settings, providers::mercadopago};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::{matchers, Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const SECRET: &str = "mp-webhook-secret";
const TOKEN_MP: &str = "APP_USR-test-token";

/// Settings for a shop that takes Mercado Pago notifications and reads
/// payments from the mock `api`.
fn mercado_pago(api: &MockServer) -> impl FnOnce(&mut Settings) {
    let base = api.uri();
    move |s| {
        s.webhooks.mercadopago_secret = Some(SecretString::from(SECRET));
        s.mercadopago_access_token = Some(SecretString::from(TOKEN_MP));
        s.mercadopago_api_base = base;
    }
}

/// Anything without the right token gets MP's 401; unknown ids MP's 404.
async fn mount_defaults(api: &MockServer) {
    Mock::given(matchers::any())
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"message": "invalid access token", "error": "unauthorized", "status": 401, "cause": []}),
        ))
        .with_priority(10)
        .mount(api)
        .await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path_regex(r"^/v1/payments/[0-9]+$"))
        .and(matchers::header("Authorization", format!("Bearer {TOKEN_MP}").as_str()))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"message": "Payment not found", "error": "not_found", "status": 404, "cause": []}),
        ))
        .with_priority(9)
        .mount(api)
        .await;
}

fn payment(id: u64, order: &str, amount: f64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": id, "status": "approved", "status_detail": "accredited",
        "external_reference": order, "transaction_amount": amount, "currency_id": "MXN", "live_mode": false}))
}

fn payment_mock(id: u64) -> wiremock::MockBuilder {
    Mock::given(matchers::method("GET"))
        .and(matchers::path(format!("/v1/payments/{id}")))
        .and(matchers::header("Authorization", format!("Bearer {TOKEN_MP}").as_str()))
}

async fn notify(app: &TestApp, notification_id: u64, payment_id: u64) -> uuid::Uuid {
    let body = json!({"id": notification_id, "live_mode": false, "type": "payment", "action": "payment.updated",
        "data": {"id": payment_id.to_string()}})
    .to_string();
    let request_id = format!("req-{notification_id}");
    let sig = mercadopago::verify::sign(SECRET, Some(&payment_id.to_string()), Some(&request_id), &Utc::now().timestamp().to_string());
    let resp = app
        .client
        .post(app.url(&format!("/webhooks/mercadopago?data.id={payment_id}&type=payment")))
        .header("x-signature", sig)
        .header("x-request-id", request_id)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page: Value = app.get("/api/v1/events?provider=mercadopago&limit=1").send().await.unwrap().json().await.unwrap();
    page["items"][0]["run_id"].as_str().unwrap().parse().unwrap()
}

async fn new_order(app: &TestApp) -> String {
    app.post("/api/v1/products")
        .json(&json!({"sku": "ZAP-001", "name": "Zapatos", "price_minor": 4599, "currency": "MXN", "stock": 5}))
        .send()
        .await
        .unwrap();
    let o: Value = app
        .post("/api/v1/orders")
        .json(&json!({"customer": {"email": "ana@example.mx", "name": "Ana"}, "items": [{"sku": "ZAP-001", "quantity": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    o["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_approved_payment_read_from_the_api_fulfils_its_order_after_5xx_and_429_retries() {
    let api = MockServer::start().await;
    mount_defaults(&api).await;
    let db = TestDb::new().await;
    let app = shop(&db, mercado_pago(&api)).await;
    let order = new_order(&app).await;
    payment_mock(555)
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "internal error", "status": 500})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    payment_mock(555)
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({"message": "too many requests", "status": 429})))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&api)
        .await;
    payment_mock(555).respond_with(payment(555, &order, 45.99)).with_priority(3).mount(&api).await;

    let run = notify(&app, 1001, 555).await;
    wait_for("the order to be fulfilled", Duration::from_secs(40), || async {
        (order_status(&app, &order).await == "fulfilled").then_some(())
    })
    .await;

    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<&str> = detail["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["retry", "rate_limited", "succeeded"]);
    let calls = api.received_requests().await.unwrap();
    assert_eq!(calls.len(), 3, "500, 429, 200");
    assert!(calls.iter().all(|r| r.headers["authorization"] == format!("Bearer {TOKEN_MP}").as_str()));
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_payment_fails_the_run_permanently_with_a_clear_error() {
    let api = MockServer::start().await;
    mount_defaults(&api).await;
    let db = TestDb::new().await;
    let app = shop(&db, mercado_pago(&api)).await;

    let run = notify(&app, 2002, 424242).await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(20)).await;

    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["last_error"]["kind"], "permanent");
    assert_eq!(detail["last_error"]["step"], "fetch_payment");
    assert!(detail["last_error"]["message"].as_str().unwrap().contains("424242 not found"), "{detail}");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1, "a 404 is not retried");
    app.stop().await;
}
