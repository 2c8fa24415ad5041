//! The WhatsApp conversation flow: a signed message webhook → mark-as-read,
//! a stored quote and a reply sent through the Graph API. The mock checks the
//! path, the Bearer token, `messaging_product` and the JSON shape of each
//! kind of send, and answers Meta's error envelope on demand.

use std::time::Duration;

use relevo::{config::Settings, providers::whatsapp};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::{matchers, Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

pub(crate) const APP_SECRET: &str = "meta-app-secret";
pub(crate) const TOKEN_WA: &str = "EAAG-test-token";
pub(crate) const PHONE_ID: &str = "106540352242922";
pub(crate) const WA_ID: &str = "5215512345678";
pub(crate) const MESSAGES_PATH: &str = "/v23.0/106540352242922/messages";

/// A shop that takes WhatsApp webhooks and sends through the mock `api`, with
/// fast send retries.
pub(crate) fn whatsapp_shop(api: &MockServer) -> impl FnOnce(&mut Settings) {
    let base = api.uri();
    move |s| {
        s.webhooks.whatsapp_app_secret = Some(SecretString::from(APP_SECRET));
        s.whatsapp.api_base = base;
        s.whatsapp.phone_number_id = Some(PHONE_ID.into());
        s.whatsapp.access_token = Some(SecretString::from(TOKEN_WA));
        s.whatsapp.send_retry_schedule = vec![Duration::from_millis(100); 5];
    }
}

/// A Graph API mock that accepts valid sends, and a shop using it with the test catalog.
pub(crate) async fn whatsapp_shop_with_catalog() -> (MockServer, TestDb, TestApp) {
    let api = MockServer::start().await;
    mount_defaults(&api).await;
    mount_text_ok(&api).await;
    let (db, app) = shop_on(&api).await;
    (api, db, app)
}

/// A Graph API mock whose first `times` text sends get `answer`; later ones are accepted.
pub(crate) async fn graph_api_answering_first(times: u64, answer: ResponseTemplate) -> MockServer {
    let api = MockServer::start().await;
    mount_defaults(&api).await;
    sends().and(ValidText).respond_with(answer).up_to_n_times(times).with_priority(1).mount(&api).await;
    mount_text_ok(&api).await;
    api
}

/// A shop sending through `api`, with the test catalog.
pub(crate) async fn shop_on(api: &MockServer) -> (TestDb, TestApp) {
    let db = TestDb::new().await;
    let app = shop(&db, whatsapp_shop(api)).await;
    add_catalog(&app).await;
    (db, app)
}

/// A text send as Meta requires it: recipient, `type` matching its key, a body
/// of at most 4,096 characters, and a wamid in `context` when it replies.
pub(crate) struct ValidText;

impl wiremock::Match for ValidText {
    fn matches(&self, req: &Request) -> bool {
        let Ok(b) = serde_json::from_slice::<Value>(&req.body) else { return false };
        b["messaging_product"] == "whatsapp"
            && b["recipient_type"] == "individual"
            && b["to"].as_str().is_some_and(|to| !to.is_empty() && to.bytes().all(|c| c.is_ascii_digit()))
            && b["type"] == "text"
            && b["text"]["preview_url"] == false
            && b["text"]["body"].as_str().is_some_and(|t| !t.is_empty() && t.chars().count() <= 4096)
            && (b.get("context").is_none() || b["context"]["message_id"].as_str().is_some_and(|id| id.starts_with("wamid.")))
    }
}

/// A mark-as-read as Meta requires it.
pub(crate) struct ValidRead;

impl wiremock::Match for ValidRead {
    fn matches(&self, req: &Request) -> bool {
        let Ok(b) = serde_json::from_slice::<Value>(&req.body) else { return false };
        b["messaging_product"] == "whatsapp" && b["status"] == "read" && b["message_id"].as_str().is_some()
    }
}

pub(crate) fn meta_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"message": message, "type": "OAuthException",
        "code": code, "error_data": {"messaging_product": "whatsapp", "details": message}, "fbtrace_id": "Az1"}}))
}

pub(crate) fn sends() -> wiremock::MockBuilder {
    Mock::given(matchers::method("POST"))
        .and(matchers::path(MESSAGES_PATH))
        .and(matchers::header("Authorization", format!("Bearer {TOKEN_WA}").as_str()))
}

/// Meta's answer to an accepted send: a new wamid each time
/// (`wamid.OUT.1`, `wamid.OUT.2`, …), for the recipient the request named.
pub(crate) fn sent() -> Sent {
    Sent(std::sync::atomic::AtomicUsize::new(0))
}

pub(crate) struct Sent(std::sync::atomic::AtomicUsize);

impl wiremock::Respond for Sent {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let to = serde_json::from_slice::<Value>(&req.body).map(|b| b["to"].clone()).unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": format!("wamid.OUT.{n}")}]}))
    }
}

/// Anything malformed or unauthenticated gets Meta's error; reads succeed.
pub(crate) async fn mount_defaults(api: &MockServer) {
    Mock::given(matchers::any())
        .respond_with(meta_error(400, 100, "Invalid parameter"))
        .with_priority(10)
        .mount(api)
        .await;
    sends().and(ValidRead).respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true}))).with_priority(5).mount(api).await;
}

pub(crate) async fn mount_text_ok(api: &MockServer) {
    sends().and(ValidText).respond_with(sent()).with_priority(6).mount(api).await;
}

/// Meta escapes non-ASCII in the bodies it signs.
pub(crate) fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

pub(crate) fn message_body(wamid: &str, text: &str) -> String {
    message_from(WA_ID, "Ana", wamid, text)
}

/// A message webhook from shopper `wa_id` (profile name `name`), as Meta signs it.
pub(crate) fn message_from(wa_id: &str, name: &str, wamid: &str, text: &str) -> String {
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [{"from": wa_id, "id": wamid, "timestamp": "1749416383", "type": "text", "text": {"body": text}}]}}]}]});
    escape_non_ascii(&body.to_string())
}

pub(crate) async fn post_webhook(app: &TestApp, body: &str) -> Value {
    let resp = app
        .client
        .post(app.url("/webhooks/whatsapp"))
        .header("X-Hub-Signature-256", whatsapp::verify::sign(APP_SECRET, body.as_bytes()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub(crate) async fn add_catalog(app: &TestApp) {
    for (sku, name, aliases, price) in [("ZAP-001", "Zapatos", vec!["zapato"], 4599), ("CAM-001", "Camisa", vec![], 2550)] {
        let resp = app
            .post("/api/v1/products")
            .json(&json!({"sku": sku, "name": name, "aliases": aliases, "price_minor": price, "currency": "MXN", "stock": 10}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{sku}");
    }
}

/// The conversation run of message `wamid`, once it exists.
pub(crate) async fn conversation_run(db: &TestDb, wamid: &str) -> uuid::Uuid {
    wait_for(&format!("the conversation run of {wamid}"), Duration::from_secs(20), || async {
        sqlx::query_scalar("select id from engine.runs where workflow = 'whatsapp_conversation' and input->>'wamid' = $1")
            .bind(wamid)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
    })
    .await
}

/// The JSON bodies the mock received, in order.
pub(crate) async fn bodies(api: &MockServer) -> Vec<Value> {
    api.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

pub(crate) fn texts(bodies: &[Value]) -> Vec<&Value> {
    bodies.iter().filter(|b| b["type"] == "text").collect()
}

pub(crate) fn reads(bodies: &[Value]) -> Vec<&Value> {
    bodies.iter().filter(|b| b["status"] == "read").collect()
}

pub(crate) async fn quote_rows(db: &TestDb) -> Vec<(String, String, i64, String)> {
    sqlx::query_as("select wamid, status, total_minor, currency::text from quotes order by created_at, id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_order_message_is_read_quoted_stored_and_answered_in_reply_to_it() {
    // Arrange
    let (api, db, app) = whatsapp_shop_with_catalog().await;

    // Act
    post_webhook(&app, &message_body("wamid.E2E", "Quiero 2 zapatos y 1 camisa")).await;
    let run = conversation_run(&db, "wamid.E2E").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    // Assert: one read, one reply to the message with the quote, one open quote.
    let bodies = bodies(&api).await;
    let reads = reads(&bodies);
    assert_eq!(reads.len(), 1, "{bodies:?}");
    assert_eq!(reads[0]["message_id"], "wamid.E2E");
    let texts = texts(&bodies);
    assert_eq!(texts.len(), 1, "{bodies:?}");
    assert_eq!(texts[0]["context"]["message_id"], "wamid.E2E");
    assert_eq!(texts[0]["to"], WA_ID);
    let reply = texts[0]["text"]["body"].as_str().unwrap();
    assert!(reply.contains("Cotización Generada") && reply.contains("💰 *Total: $117.48*"), "{reply}");
    assert_eq!(quote_rows(&db).await, vec![("wamid.E2E".into(), "open".into(), 11748, "MXN".into())]);
    let items: Value = sqlx::query_scalar("select items from quotes").fetch_one(&db.pool).await.unwrap();
    assert_eq!(items[0]["sku"], "ZAP-001");
    assert_eq!(items[0]["quantity"], 2);
    app.stop().await;
}

#[tokio::test]
async fn the_same_webhook_twice_gets_one_reply() {
    // Arrange
    let (api, db, app) = whatsapp_shop_with_catalog().await;
    let body = message_body("wamid.DUP", "Quiero 2 zapatos y 1 camisa");

    // Act
    assert_eq!(post_webhook(&app, &body).await["duplicate"], false);
    assert_eq!(post_webhook(&app, &body).await["duplicate"], true);
    let run = conversation_run(&db, "wamid.DUP").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    // Assert
    let runs: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'whatsapp_conversation'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    assert_eq!(texts(&bodies(&api).await).len(), 1);
    assert_eq!(quote_rows(&db).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_reply_that_meets_500_twice_is_delivered_once_after_retries() {
    // Arrange: the first two text sends fail with 500, then Meta accepts.
    let api = graph_api_answering_first(2, meta_error(500, 1, "An unknown error occurred")).await;
    let (db, app) = shop_on(&api).await;

    // Act
    post_webhook(&app, &message_body("wamid.RETRY", "Quiero 2 zapatos y 1 camisa")).await;
    let run = conversation_run(&db, "wamid.RETRY").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(30)).await;

    // Assert: three sends of the same reply (500, 500, 200), the read and the quote once.
    let bodies = bodies(&api).await;
    let texts = texts(&bodies);
    assert_eq!(texts.len(), 3, "{bodies:?}");
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "the same reply each time");
    assert_eq!(reads(&bodies).len(), 1, "mark_read is checkpointed");
    assert_eq!(quote_rows(&db).await.len(), 1, "the quote is stored once");
    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<&str> = detail["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["retry", "retry", "succeeded"], "{detail}");
    app.stop().await;
}

#[tokio::test]
async fn no_to_an_open_quote_declines_it_politely() {
    let (api, db, app) = whatsapp_shop_with_catalog().await;
    post_webhook(&app, &message_body("wamid.Q3", "Quiero 1 camisa")).await;
    let run = conversation_run(&db, "wamid.Q3").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    post_webhook(&app, &message_body("wamid.Q4", "No, gracias")).await;
    let run = conversation_run(&db, "wamid.Q4").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    assert_eq!(quote_rows(&db).await, vec![("wamid.Q3".into(), "declined".into(), 2550, "MXN".into())]);
    let bodies = bodies(&api).await;
    let texts = texts(&bodies);
    assert_eq!(texts[1]["context"]["message_id"], "wamid.Q4");
    let last = texts[1]["text"]["body"].as_str().unwrap();
    assert!(last.contains("cancelé"), "{last}");
    app.stop().await;
}

#[tokio::test]
async fn a_new_quote_supersedes_the_open_one_in_the_order_the_messages_arrived() {
    let (api, db, app) = whatsapp_shop_with_catalog().await;
    // Back to back, in separate webhooks: the second is stored before the
    // first is routed, and must still be handled after it.
    for (wamid, text) in [("wamid.S1", "Quiero 2 zapatos"), ("wamid.S2", "mejor 3 camisas")] {
        post_webhook(&app, &message_body(wamid, text)).await;
    }
    for wamid in ["wamid.S1", "wamid.S2"] {
        let run = conversation_run(&db, wamid).await;
        wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;
    }
    assert_eq!(
        quote_rows(&db).await,
        vec![("wamid.S1".into(), "superseded".into(), 9198, "MXN".into()), ("wamid.S2".into(), "open".into(), 7650, "MXN".into())]
    );
    let replies: Vec<String> = texts(&bodies(&api).await).iter().map(|b| b["context"]["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(replies, vec!["wamid.S1", "wamid.S2"], "answered in order");
    app.stop().await;
}

#[tokio::test]
async fn outside_the_24h_window_the_send_fails_permanently_with_metas_code() {
    let api = graph_api_answering_first(u64::MAX, meta_error(400, 131047, "Re-engagement message")).await;
    let (db, app) = shop_on(&api).await;

    post_webhook(&app, &message_body("wamid.W", "Quiero 2 zapatos")).await;
    let run = conversation_run(&db, "wamid.W").await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(20)).await;

    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["last_error"]["kind"], "permanent");
    assert_eq!(detail["last_error"]["step"], "send_reply");
    let message = detail["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("131047") && message.contains("Re-engagement message"), "{message}");
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1, "not retried");
    assert_eq!(quote_rows(&db).await.len(), 1, "the quote is stored");
    app.stop().await;
}

#[tokio::test]
async fn without_an_access_token_the_quote_is_stored_and_the_send_names_the_variable() {
    let db = TestDb::new().await;
    let app = shop(&db, |s| {
        s.webhooks.whatsapp_app_secret = Some(SecretString::from(APP_SECRET));
        s.whatsapp.phone_number_id = Some(PHONE_ID.into());
    })
    .await;
    add_catalog(&app).await;

    post_webhook(&app, &message_body("wamid.NOTOKEN", "Quiero 2 zapatos y 1 camisa")).await;
    let run = conversation_run(&db, "wamid.NOTOKEN").await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(20)).await;

    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["last_error"]["step"], "send_reply");
    assert!(detail["last_error"]["message"].as_str().unwrap().contains("WHATSAPP_ACCESS_TOKEN"), "{detail}");
    assert_eq!(quote_rows(&db).await, vec![("wamid.NOTOKEN".into(), "open".into(), 11748, "MXN".into())]);
    app.stop().await;
}

#[tokio::test]
async fn a_throttled_send_resumes_later_without_burning_an_attempt() {
    // Arrange: Meta's throughput limit (130429) once, with Retry-After: 1.
    let api = graph_api_answering_first(1, meta_error(400, 130429, "Rate limit hit").insert_header("Retry-After", "1")).await;
    let (db, app) = shop_on(&api).await;

    // Act
    post_webhook(&app, &message_body("wamid.THROTTLED", "Quiero 2 zapatos")).await;
    let run = conversation_run(&db, "wamid.THROTTLED").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    // Assert
    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let outcomes: Vec<&str> = detail["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["rate_limited", "succeeded"], "{detail}");
    assert_eq!(texts(&bodies(&api).await).len(), 2);
    app.stop().await;
}
