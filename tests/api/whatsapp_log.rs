//! The WhatsApp message log and reply queue, driven through the API as ops
//! use it: conversations with Meta's delivery reports merged (out of order,
//! repeated), queue status, manual retry, and shoppers writing at once.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::MockServer;

use crate::{helpers::*, whatsapp::*};

/// One delivery report: wamid, status, Unix seconds, Meta's error (code, details).
type Report<'a> = (&'a str, &'a str, i64, Option<(i64, &'a str)>);

/// A status webhook carrying `reports`.
fn statuses_body(reports: &[Report]) -> String {
    let statuses: Vec<Value> = reports
        .iter()
        .map(|(wamid, status, at, error)| {
            let mut s = json!({"id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": WA_ID});
            if let Some((code, details)) = error {
                s["errors"] = json!([{"code": code, "title": "Message undeliverable", "message": "Message undeliverable",
                                      "error_data": {"details": details}}]);
            }
            s
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                  "statuses": statuses}}]}]})
    .to_string()
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let resp = app.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn conversation(app: &TestApp, wa_id: &str) -> Value {
    get_json(app, &format!("/api/v1/conversations/{wa_id}")).await
}

/// The conversation once its last message shows `status`.
async fn wait_last_status(app: &TestApp, status: &str) -> Value {
    wait_for(&format!("the reply to show {status}"), Duration::from_secs(20), || async {
        let c = conversation(app, WA_ID).await;
        (c["messages"].as_array().unwrap().last().unwrap()["status"] == status).then_some(c)
    })
    .await
}

#[tokio::test]
async fn a_conversation_shows_both_ways_and_delivery_reports_never_move_backwards() {
    // Arrange: a quote answered; Meta's "read" arrives before the reply was even sent.
    let (_api, db, app) = whatsapp_shop_with_catalog().await;
    post_webhook(&app, &statuses_body(&[("wamid.OUT.1", "read", 1_749_416_400, None)])).await;
    post_webhook(&app, &message_body("wamid.LOG", "Quiero 2 zapatos y 1 camisa")).await;
    let run = conversation_run(&db, "wamid.LOG").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    // Act: older reports, out of order and repeated.
    post_webhook(
        &app,
        &statuses_body(&[
            ("wamid.OUT.1", "delivered", 1_749_416_390, None),
            ("wamid.OUT.1", "sent", 1_749_416_385, None),
            ("wamid.OUT.1", "delivered", 1_749_416_390, None),
        ]),
    )
    .await;
    post_webhook(&app, &statuses_body(&[("wamid.OUT.1", "sent", 1_749_416_385, None)])).await;

    // Assert: wait until the reports were merged (delivered_at set), then read stays.
    let c = wait_for("the delivery reports to be merged", Duration::from_secs(20), || async {
        let c = conversation(&app, WA_ID).await;
        c["messages"][1]["delivered_at"].is_string().then_some(c)
    })
    .await;
    assert_eq!(c["wa_id"], WA_ID);
    assert_eq!(c["name"], "Ana");
    let messages = c["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{c}");
    assert_eq!((messages[0]["direction"].as_str(), messages[0]["status"].as_str()), (Some("inbound"), Some("received")));
    assert_eq!(messages[0]["text"], "Quiero 2 zapatos y 1 camisa");
    assert_eq!(messages[0]["wamid"], "wamid.LOG");
    assert_eq!((messages[1]["direction"].as_str(), messages[1]["status"].as_str()), (Some("outbound"), Some("read")));
    assert_eq!(messages[1]["wamid"], "wamid.OUT.1");
    assert_eq!(messages[1]["attempts"], 1);
    assert_eq!(messages[1]["read_at"], "2025-06-08T21:00:00+00:00");
    assert!(messages[1]["text"].as_str().unwrap().contains("Cotización Generada"));
    assert_eq!(messages[0]["quote_id"], messages[1]["quote_id"]);
    assert_eq!(c["open_quote"]["total_minor"], 11748);
    assert_eq!(c["open_quote"]["id"], messages[0]["quote_id"]);
    assert_eq!(c["open_quote"]["items"][0]["sku"], "ZAP-001");

    // A later failure report is final and keeps Meta's error.
    post_webhook(&app, &statuses_body(&[("wamid.OUT.1", "failed", 1_749_416_500, Some((131026, "Receiver is incapable")))])).await;
    let c = wait_last_status(&app, "failed").await;
    assert_eq!(c["messages"][1]["error_code"], 131026);
    assert_eq!(c["messages"][1]["error_message"], "Receiver is incapable");
    post_webhook(&app, &statuses_body(&[("wamid.OUT.1", "delivered", 1_749_416_600, None)])).await;
    wait_for("the late report to be routed", Duration::from_secs(20), || async {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from engine.runs where workflow = 'inbound_event' and status <> 'succeeded'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (n == 0).then_some(())
    })
    .await;
    assert_eq!(conversation(&app, WA_ID).await["messages"][1]["status"], "failed");

    // The list: latest activity first, with the profile name.
    let list = get_json(&app, "/api/v1/conversations").await;
    assert_eq!(list["items"][0]["wa_id"], WA_ID);
    assert_eq!(list["items"][0]["name"], "Ana");
    assert_eq!(list["items"][0]["messages"], 2);
    assert_eq!(list["next_cursor"], Value::Null);
    assert_eq!(app.get("/api/v1/conversations/5210000000000").send().await.unwrap().status(), 404);
    assert_eq!(app.get("/api/v1/conversations?cursor=nope").send().await.unwrap().status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_reply_is_listed_as_failed_and_sent_after_a_manual_retry() {
    // Arrange: Meta refuses the first send (outside the 24 h window), then accepts.
    let api = graph_api_answering_first(1, meta_error(400, 131047, "Re-engagement message")).await;
    let (db, app) = shop_on(&api).await;
    post_webhook(&app, &message_body("wamid.FAIL", "Quiero 2 zapatos")).await;
    let run = conversation_run(&db, "wamid.FAIL").await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(20)).await;

    // Assert: visible in the queue with Meta's code.
    let queue = get_json(&app, "/api/v1/whatsapp/queue-status").await;
    assert_eq!((queue["queue_size"].as_i64(), queue["pending_retry"].as_i64(), queue["failed"].as_i64()), (Some(0), Some(0), Some(1)), "{queue}");
    let failed = &queue["failed_messages"][0];
    assert_eq!(failed["to"], WA_ID);
    assert_eq!(failed["attempts"], 1);
    assert!(failed["last_error"].as_str().unwrap().contains("131047"), "{queue}");
    assert_eq!(queue["success_rate"], 0.0);
    assert_eq!(conversation(&app, WA_ID).await["messages"][1]["status"], "failed");

    // Act: retry by hand.
    let resp = app.post("/api/v1/whatsapp/retry").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"messages_retried": 1}));
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;

    // Assert: sent once more, nothing else redone.
    let queue = get_json(&app, "/api/v1/whatsapp/queue-status").await;
    assert_eq!((queue["queue_size"].as_i64(), queue["failed"].as_i64()), (Some(0), Some(0)), "{queue}");
    assert_eq!(queue["success_rate"], 1.0);
    assert_eq!(queue["avg_attempts"], 2.0);
    let reply = &conversation(&app, WA_ID).await["messages"][1];
    assert_eq!((reply["status"].as_str(), reply["attempts"].as_i64()), (Some("sent"), Some(2)), "{reply}");
    let bodies = bodies(&api).await;
    assert_eq!(texts(&bodies).len(), 2);
    assert_eq!(reads(&bodies).len(), 1);
    assert_eq!(quote_rows(&db).await.len(), 1);
    let again: Value = app.post("/api/v1/whatsapp/retry").send().await.unwrap().json().await.unwrap();
    assert_eq!(again, json!({"messages_retried": 0}));
    app.stop().await;
}

#[tokio::test]
async fn a_reply_waiting_for_its_retry_is_counted_as_pending() {
    // Arrange: 500 on the first send, and a retry schedule long enough to look.
    let api = graph_api_answering_first(1, meta_error(500, 2, "Service temporarily unavailable")).await;
    let db = TestDb::new().await;
    let configure = whatsapp_shop(&api);
    let app = shop(&db, move |s| {
        configure(s);
        s.whatsapp.send_retry_schedule = vec![Duration::from_secs(3)];
    })
    .await;
    add_catalog(&app).await;

    // Act
    post_webhook(&app, &message_body("wamid.PENDING", "Quiero 1 camisa")).await;
    let queue = wait_for("the reply to wait for its retry", Duration::from_secs(20), || async {
        let q = get_json(&app, "/api/v1/whatsapp/queue-status").await;
        (q["pending_retry"] == 1).then_some(q)
    })
    .await;

    // Assert
    assert_eq!((queue["queue_size"].as_i64(), queue["failed"].as_i64()), (Some(1), Some(0)), "{queue}");
    let run = conversation_run(&db, "wamid.PENDING").await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(20)).await;
    let queue = get_json(&app, "/api/v1/whatsapp/queue-status").await;
    assert_eq!((queue["queue_size"].as_i64(), queue["pending_retry"].as_i64()), (Some(0), Some(0)), "{queue}");
    app.stop().await;
}

#[tokio::test]
async fn two_shoppers_writing_at_once_each_get_their_own_answers_in_order() {
    // Arrange
    let api = MockServer::start().await;
    mount_defaults(&api).await;
    mount_text_ok(&api).await;
    let stripe_api = crate::provider_mocks::StripeApi::start().await;
    let db = TestDb::new().await;
    let (whatsapp, stripe_base) = (whatsapp_shop(&api), stripe_api.uri());
    let app = shop(&db, move |s| {
        whatsapp(s);
        s.payment_links.stripe_api_key = Some(secrecy::SecretString::from(crate::provider_mocks::STRIPE_KEY));
        s.payment_links.stripe_api_base = stripe_base;
    })
    .await;
    add_catalog(&app).await;
    const BETO: &str = "5215598765432";

    // Act: interleaved messages, in separate webhooks, without waiting for answers.
    for (wa_id, name, wamid, text) in [
        (WA_ID, "Ana", "wamid.A1", "Quiero 2 zapatos"),
        (BETO, "Beto", "wamid.B1", "1 camisa por favor"),
        (WA_ID, "Ana", "wamid.A2", "mejor 3 camisas"),
        (BETO, "Beto", "wamid.B2", "sí"),
        (WA_ID, "Ana", "wamid.A3", "no"),
    ] {
        post_webhook(&app, &message_from(wa_id, name, wamid, text)).await;
    }
    for wamid in ["wamid.A1", "wamid.A2", "wamid.A3", "wamid.B1", "wamid.B2"] {
        let run = conversation_run(&db, wamid).await;
        wait_status(&db.pool, run, "succeeded", Duration::from_secs(30)).await;
    }

    // Assert: each shopper's quotes moved in their own order.
    let quotes: Vec<(String, String, String)> =
        sqlx::query_as("select wa_id, wamid, status from quotes order by wa_id, created_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        quotes,
        vec![
            (WA_ID.into(), "wamid.A1".into(), "superseded".into()),
            (WA_ID.into(), "wamid.A2".into(), "declined".into()),
            (BETO.into(), "wamid.B1".into(), "confirmed".into()),
        ]
    );
    let bodies = bodies(&api).await;
    let answered = |to: &str| -> Vec<String> {
        texts(&bodies)
            .iter()
            .filter(|b| b["to"] == to)
            .map(|b| b["context"]["message_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(answered(WA_ID), vec!["wamid.A1", "wamid.A2", "wamid.A3"]);
    assert_eq!(answered(BETO), vec!["wamid.B1", "wamid.B2"]);
    let beto = conversation(&app, BETO).await;
    assert_eq!(beto["name"], "Beto");
    assert_eq!(beto["messages"].as_array().unwrap().len(), 4);
    assert_eq!(beto["open_quote"], Value::Null, "confirmed, no longer open");
    assert_eq!(stripe_api.sessions().len(), 1, "Beto's order got its payment link");
    let list = get_json(&app, "/api/v1/conversations?limit=1").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let next = list["next_cursor"].as_str().expect("a second page");
    let rest = get_json(&app, &format!("/api/v1/conversations?limit=1&cursor={next}")).await;
    let mut seen = vec![list["items"][0]["wa_id"].clone(), rest["items"][0]["wa_id"].clone()];
    seen.sort_by_key(|v| v.to_string());
    assert_eq!(seen, vec![json!(WA_ID), json!(BETO)]);
    assert_eq!(rest["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_one_shoppers_messages_is_answered_in_the_order_they_were_sent() {
    // Arrange: ten messages of one shopper in one webhook (Meta batches), then
    // ten more in ten webhooks, all stored before any is handled.
    let (api, db, app) = whatsapp_shop_with_catalog().await;
    let message = |n: usize| json!({"from": WA_ID, "id": format!("wamid.N{n:02}"), "timestamp": "1749416383", "type": "text",
                                    "text": {"body": format!("Quiero {n} zapatos")}});
    let batch = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
                  "contacts": [{"profile": {"name": "Ana"}, "wa_id": WA_ID}], "messages": (1..=10).map(message).collect::<Vec<_>>()}}]}]});

    // Act
    post_webhook(&app, &batch.to_string()).await;
    for n in 11..=20 {
        post_webhook(&app, &message_body(&format!("wamid.N{n:02}"), &format!("Quiero {n} zapatos"))).await;
    }
    for n in 1..=20 {
        let run = conversation_run(&db, &format!("wamid.N{n:02}")).await;
        wait_status(&db.pool, run, "succeeded", Duration::from_secs(60)).await;
    }

    // Assert: answered in order, and the last message's quote is the open one.
    let expected: Vec<String> = (1..=20).map(|n| format!("wamid.N{n:02}")).collect();
    let answered: Vec<String> = texts(&bodies(&api).await)
        .iter()
        .map(|b| b["context"]["message_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(answered, expected);
    let open: Vec<String> = sqlx::query_scalar("select wamid from quotes where status = 'open'").fetch_all(&db.pool).await.unwrap();
    assert_eq!(open, vec!["wamid.N20"]);
    app.stop().await;
}
