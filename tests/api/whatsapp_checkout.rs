//! From "SÍ" to a payment link: the order is created from the quote (prices
//! read again), a Stripe Checkout Session or Mercado Pago preference is made
//! with the step's idempotency key, and the link is sent in the chat.

use std::time::Duration;

use chrono::Utc;
use relevo::{config::Settings, providers::stripe};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::MockServer;

use crate::{helpers::*, provider_mocks::*, whatsapp::*};

const STRIPE_SECRET: &str = "whsec_checkout";

/// A shop answering on WhatsApp through `api` whose payment links come from `stripe_api`.
fn stripe_shop(api: &MockServer, stripe_api: &StripeApi) -> impl FnOnce(&mut Settings) {
    let (whatsapp, base) = (whatsapp_shop(api), stripe_api.uri());
    move |s| {
        whatsapp(s);
        s.payment_links.stripe_api_key = Some(SecretString::from(STRIPE_KEY));
        s.payment_links.stripe_api_base = base;
        s.payment_links.return_url = "https://tienda.example/gracias".into();
        s.webhooks.stripe_secrets = vec![SecretString::from(STRIPE_SECRET)];
    }
}

/// Graph API and Stripe mocks, and a shop using them with the test catalog.
async fn stripe_shop_with_catalog() -> (MockServer, StripeApi, TestDb, TestApp) {
    let (api, stripe_api) = (MockServer::start().await, StripeApi::start().await);
    mount_defaults(&api).await;
    mount_text_ok(&api).await;
    let db = TestDb::new().await;
    let app = shop(&db, stripe_shop(&api, &stripe_api)).await;
    add_catalog(&app).await;
    (api, stripe_api, db, app)
}

async fn wait_run(db: &TestDb, wamid: &str) -> uuid::Uuid {
    let run = conversation_run(db, wamid).await;
    wait_status(&db.pool, run, "succeeded", Duration::from_secs(30)).await;
    run
}

async fn say(app: &TestApp, db: &TestDb, wamid: &str, text: &str) -> uuid::Uuid {
    post_webhook(app, &message_body(wamid, text)).await;
    wait_run(db, wamid).await
}

async fn orders_of(db: &TestDb) -> Vec<(uuid::Uuid, String, i64, Option<uuid::Uuid>, Option<uuid::Uuid>)> {
    sqlx::query_as("select id, status::text, amount_minor, quote_id, customer_id from orders order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn stripe_event(app: &TestApp, event: &Value) {
    let body = event.to_string();
    let resp = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", stripe::verify::sign(STRIPE_SECRET, Utc::now().timestamp(), body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A `payment_intent.*` event of the order's Checkout payment.
fn intent_event(id: &str, kind: &str, order_id: uuid::Uuid, amount: i64, extra: Value) -> Value {
    let mut object = json!({"object": "payment_intent", "id": "pi_chat", "amount": amount, "amount_received": amount,
        "currency": "mxn", "metadata": {"order_id": order_id.to_string()}});
    for (k, v) in extra.as_object().unwrap() {
        object[k] = v.clone();
    }
    json!({"id": id, "object": "event", "type": kind, "created": 1750000000, "data": {"object": object}})
}

/// The notice texts sent to the shopper (not replies to a message), in order.
async fn notices(api: &MockServer) -> Vec<String> {
    texts(&bodies(api).await)
        .iter()
        .filter(|b| b.get("context").is_none())
        .map(|b| b["text"]["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_notices(api: &MockServer, n: usize) -> Vec<String> {
    wait_for(&format!("{n} notices in the chat"), Duration::from_secs(30), || async {
        let sent = notices(api).await;
        (sent.len() >= n).then_some(sent)
    })
    .await
}

async fn last_text(api: &MockServer) -> String {
    texts(&bodies(api).await).last().unwrap()["text"]["body"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn si_places_the_order_sends_a_stripe_link_and_the_paid_session_fulfils_it() {
    // Arrange: an open quote.
    let (api, stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.C1", "Quiero 2 zapatos y 1 camisa").await;

    // Act: "SÍ" as Meta escapes it.
    let run = say(&app, &db, "wamid.C2", "SÍ").await;

    // Assert: one order from the quote, one session carrying it, the link in the chat.
    let orders = orders_of(&db).await;
    assert_eq!(orders.len(), 1);
    let (order_id, status, amount, quote_id, customer_id) = orders[0].clone();
    assert_eq!((status.as_str(), amount), ("pending_payment", 11748));
    let (quote_status, quote_of_order): (String, uuid::Uuid) =
        sqlx::query_as("select status, id from quotes where wamid = 'wamid.C1'").fetch_one(&db.pool).await.unwrap();
    assert_eq!((quote_status.as_str(), Some(quote_of_order)), ("confirmed", quote_id));
    let (wa_id, name): (Option<String>, Option<String>) =
        sqlx::query_as("select wa_id, name from customers where id = $1").bind(customer_id).fetch_one(&db.pool).await.unwrap();
    assert_eq!((wa_id.as_deref(), name.as_deref()), (Some(WA_ID), Some("Ana")));
    let sessions = stripe_api.sessions();
    assert_eq!(sessions.len(), 1);
    let form = &sessions[0].form;
    assert_eq!(form["metadata[order_id]"], order_id.to_string());
    assert_eq!(form["payment_intent_data[metadata][order_id]"], order_id.to_string());
    let methods: Vec<&str> =
        sessions[0].pairs.iter().filter(|(k, _)| k == "payment_method_types[]").map(|(_, v)| v.as_str()).collect();
    assert_eq!(methods, vec!["card", "oxxo"]);
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "4599");
    assert_eq!(form["line_items[0][price_data][product_data][name]"], "Zapatos");
    assert_eq!(form["line_items[0][quantity]"], "2");
    assert_eq!(form["line_items[1][price_data][currency]"], "mxn");
    assert_eq!(form["success_url"], format!("https://tienda.example/gracias?order_id={order_id}&result=paid"));
    let link_message = last_text(&api).await;
    assert!(link_message.contains("https://checkout.stripe.com/c/pay/cs_test_1"), "{link_message}");
    assert!(link_message.contains("$117.48") && link_message.contains("3 artículos"), "{link_message}");
    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let steps: Vec<&str> = detail["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["mark_read", "quote", "payment_link", "record_link", "send_link"], "{detail}");

    // Act: Stripe says the session was paid (and redelivers it).
    let event = json!({"id": "evt_cs_1", "object": "event", "type": "checkout.session.completed", "created": 1750000000,
        "data": {"object": {"object": "checkout.session", "id": "cs_test_1", "payment_status": "paid", "amount_total": 11748,
                            "currency": "mxn", "payment_intent": "pi_cs_1", "metadata": {"order_id": order_id.to_string()}}}});
    stripe_event(&app, &event).await;
    stripe_event(&app, &event).await;

    // Assert: fulfilled, stock taken once, the confirmation in the same chat once.
    let sent = wait_notices(&api, 1).await;
    assert_eq!(order_status(&app, &order_id.to_string()).await, "fulfilled");
    let stock: Vec<i32> = sqlx::query_scalar("select stock from products order by sku").fetch_all(&db.pool).await.unwrap();
    assert_eq!(stock, vec![9, 8], "CAM-001 −1, ZAP-001 −2");
    let reference = &order_id.simple().to_string()[..8];
    assert!(sent[0].contains("Pago recibido") && sent[0].contains(reference) && sent[0].contains("1. Zapatos × 2"), "{}", sent[0]);
    assert!(sent[0].contains("$117.48"), "{}", sent[0]);
    let chat: Value = wait_for("the notice to be logged as sent", Duration::from_secs(10), || async {
        let chat: Value = app.get(&format!("/api/v1/conversations/{WA_ID}")).send().await.unwrap().json().await.unwrap();
        (chat["messages"].as_array().unwrap().last().unwrap()["status"] == "sent").then_some(chat)
    })
    .await;
    assert_eq!(chat["messages"].as_array().unwrap().len(), 5, "{chat}");
    let notice_runs: i64 = sqlx::query_scalar("select count(*) from engine.runs where workflow = 'whatsapp_notice'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(notice_runs, 1, "the redelivered event starts nothing more");
    app.stop().await;
}

#[tokio::test]
async fn the_oxxo_path_sends_the_voucher_then_the_confirmation() {
    let (api, _stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.O1", "Quiero 1 camisa").await;
    say(&app, &db, "wamid.O2", "sí").await;
    let order_id = orders_of(&db).await[0].0;

    // The shopper picks OXXO: Stripe issues the voucher, later it is paid.
    let expires = 1_893_474_000; // 2030-01-01T05:00:00Z
    let voucher = json!({"status": "requires_action", "next_action": {"type": "oxxo_display_details",
        "oxxo_display_details": {"expires_after": expires, "hosted_voucher_url": "https://payments.stripe.com/oxxo/voucher/v1", "number": "98765432101234"}}});
    stripe_event(&app, &intent_event("evt_v", "payment_intent.requires_action", order_id, 2550, voucher)).await;
    let sent = wait_notices(&api, 1).await;
    assert!(sent[0].contains("Ficha de pago OXXO") && sent[0].contains("Referencia: 98765432101234"), "{}", sent[0]);
    assert!(sent[0].contains("Monto: *$25.50*") && sent[0].contains("https://payments.stripe.com/oxxo/voucher/v1"), "{}", sent[0]);
    assert!(sent[0].contains("Vence: 31/12/2029 23:00 (America/Mexico_City)"), "{}", sent[0]);
    assert_eq!(order_status(&app, &order_id.to_string()).await, "awaiting_offline_payment");

    stripe_event(&app, &intent_event("evt_p", "payment_intent.succeeded", order_id, 2550, json!({}))).await;
    let sent = wait_notices(&api, 2).await;
    assert!(sent[1].contains("Pago recibido"), "{}", sent[1]);
    assert_eq!(order_status(&app, &order_id.to_string()).await, "fulfilled");
    app.stop().await;
}

#[tokio::test]
async fn a_mismatched_payment_gets_an_apology_and_the_order_waits_for_ops() {
    let (api, _stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.A1", "Quiero 1 camisa").await;
    say(&app, &db, "wamid.A2", "sí").await;
    let order_id = orders_of(&db).await[0].0;

    stripe_event(&app, &intent_event("evt_m", "payment_intent.succeeded", order_id, 100, json!({}))).await;

    let sent = wait_notices(&api, 1).await;
    assert!(sent[0].contains("Lo sentimos") && sent[0].contains("se pondrá en contacto"), "{}", sent[0]);
    assert_eq!(order_status(&app, &order_id.to_string()).await, "needs_attention");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_payment_is_told_and_si_gets_a_new_order_and_link() {
    let (api, stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.E1", "Quiero 1 camisa").await;
    say(&app, &db, "wamid.E2", "sí").await;
    let first = orders_of(&db).await[0].0;

    // The Checkout Session expires unpaid.
    let expired = json!({"id": "evt_exp", "object": "event", "type": "checkout.session.expired", "created": 1750000000,
        "data": {"object": {"object": "checkout.session", "id": "cs_test_1", "payment_status": "unpaid", "status": "expired",
                            "metadata": {"order_id": first.to_string()}}}});
    stripe_event(&app, &expired).await;
    let sent = wait_notices(&api, 1).await;
    assert!(sent[0].contains("venció") && sent[0].contains("responde *SÍ*"), "{}", sent[0]);
    assert_eq!(order_status(&app, &first.to_string()).await, "cancelled");

    // "Sí" again: a new order from the reopened quote, and a new link.
    say(&app, &db, "wamid.E3", "sí").await;
    let orders = orders_of(&db).await;
    assert_eq!(orders.len(), 2);
    assert_eq!((orders[1].1.as_str(), orders[1].2), ("pending_payment", 2550));
    assert_eq!(stripe_api.sessions().len(), 2);
    assert!(last_text(&api).await.contains("cs_test_2"));
    app.stop().await;
}

#[tokio::test]
async fn outside_the_24h_window_a_notice_uses_the_template_or_is_recorded_as_skipped() {
    for template in [None, Some("pedido_actualizado")] {
        let (api, stripe_api) = (MockServer::start().await, StripeApi::start().await);
        mount_defaults(&api).await;
        mount_text_ok(&api).await;
        sends()
            .and(wiremock::matchers::body_partial_json(json!({"type": "template", "template": {"language": {"code": "es_MX"}}})))
            .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"messaging_product": "whatsapp",
                "contacts": [{"input": WA_ID, "wa_id": WA_ID}], "messages": [{"id": "wamid.TEMPLATE.1"}]})))
            .with_priority(4)
            .mount(&api)
            .await;
        let db = TestDb::new().await;
        let configure = stripe_shop(&api, &stripe_api);
        let app = shop(&db, move |s| {
            configure(s);
            s.whatsapp.template_order_update = template.map(str::to_owned);
        })
        .await;
        add_catalog(&app).await;
        say(&app, &db, "wamid.W1", "Quiero 1 camisa").await;
        say(&app, &db, "wamid.W2", "sí").await;
        let order_id = orders_of(&db).await[0].0;
        sqlx::query("update whatsapp_messages set created_at = now() - interval '25 hours' where direction = 'inbound'")
            .execute(&db.pool)
            .await
            .unwrap();

        stripe_event(&app, &intent_event("evt_w", "payment_intent.succeeded", order_id, 2550, json!({}))).await;

        let notice = wait_for("the notice to be settled", Duration::from_secs(30), || async {
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "select status, error_message from whatsapp_messages where step = 'send_notice' and status in ('sent', 'skipped')",
            )
            .fetch_optional(&db.pool)
            .await
            .unwrap();
            row
        })
        .await;
        let bodies = bodies(&api).await;
        let templates: Vec<&Value> = bodies.iter().filter(|b| b["type"] == "template").collect();
        match template {
            None => {
                assert_eq!(notice.0, "skipped");
                assert!(notice.1.unwrap().contains("WHATSAPP_TEMPLATE_ORDER_UPDATE"));
                assert!(templates.is_empty() && notices(&api).await.is_empty());
            }
            Some(name) => {
                assert_eq!(notice.0, "sent");
                assert_eq!(templates.len(), 1);
                assert_eq!(templates[0]["template"]["name"], name);
                let params = &templates[0]["template"]["components"][0]["parameters"];
                assert_eq!(params[0]["text"], order_id.simple().to_string()[..8]);
            }
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn si_twice_makes_one_order_and_one_link() {
    let (api, stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.T1", "Quiero 1 camisa").await;

    say(&app, &db, "wamid.T2", "sí").await;
    say(&app, &db, "wamid.T3", "Sí, confirmo").await;

    assert_eq!(orders_of(&db).await.len(), 1);
    assert_eq!(stripe_api.sessions().len(), 1);
    let answer = last_text(&api).await;
    assert!(answer.contains("No tienes una cotización pendiente"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_price_change_between_quote_and_si_offers_the_new_quote_and_no_order() {
    let (api, stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.P1", "Quiero 2 zapatos").await;
    let resp = app.client.patch(app.url("/api/v1/products/ZAP-001")).bearer_auth(TOKEN).json(&json!({"price_minor": 4999})).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    say(&app, &db, "wamid.P2", "si").await;

    assert!(orders_of(&db).await.is_empty());
    assert!(stripe_api.sessions().is_empty());
    let quotes: Vec<(String, String, i64)> =
        sqlx::query_as("select wamid, status, total_minor from quotes order by created_at").fetch_all(&db.pool).await.unwrap();
    assert_eq!(quotes, vec![("wamid.P1".into(), "superseded".into(), 9198), ("wamid.P2".into(), "open".into(), 9998)]);
    let answer = last_text(&api).await;
    assert!(answer.contains("cambiaron") && answer.contains("$99.98"), "{answer}");

    // The new quote can be confirmed.
    say(&app, &db, "wamid.P3", "sí").await;
    assert_eq!(orders_of(&db).await[0].2, 9998);
    app.stop().await;
}

#[tokio::test]
async fn si_after_24_hours_offers_a_new_quote_and_no_order() {
    let (api, _stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.X1", "Quiero 1 camisa").await;
    sqlx::query("update quotes set expires_at = now() - interval '1 minute'").execute(&db.pool).await.unwrap();

    say(&app, &db, "wamid.X2", "sí").await;

    assert!(orders_of(&db).await.is_empty());
    let quotes: Vec<(String, String)> = sqlx::query_as("select wamid, status from quotes order by created_at").fetch_all(&db.pool).await.unwrap();
    assert_eq!(quotes, vec![("wamid.X1".into(), "expired".into()), ("wamid.X2".into(), "open".into())]);
    let answer = last_text(&api).await;
    assert!(answer.contains("venció") && answer.contains("Cotización Generada"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_stripe_5xx_is_retried_with_the_same_key_and_a_4xx_fails_with_stripes_message() {
    let (_api, stripe_api, db, app) = stripe_shop_with_catalog().await;
    say(&app, &db, "wamid.R1", "Quiero 1 camisa").await;
    stripe_api.fail_next(vec![(500, json!({"error": {"type": "api_error", "message": "Something went wrong"}}))]);

    say(&app, &db, "wamid.R2", "sí").await;
    assert_eq!((stripe_api.requests(), stripe_api.sessions().len()), (2, 1));

    say(&app, &db, "wamid.R3", "Quiero 2 zapatos").await;
    stripe_api.fail_next(vec![(400, json!({"error": {"type": "invalid_request_error", "message": "Not a valid URL"}}))]);
    post_webhook(&app, &message_body("wamid.R4", "sí")).await;
    let run = conversation_run(&db, "wamid.R4").await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(30)).await;
    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(detail["last_error"]["step"], "payment_link");
    assert_eq!(detail["last_error"]["kind"], "permanent");
    assert!(detail["last_error"]["message"].as_str().unwrap().contains("Not a valid URL"), "{detail}");
    app.stop().await;
}

#[tokio::test]
async fn mercado_pago_links_carry_the_order_and_the_idempotency_key() {
    let (api, mp) = (MockServer::start().await, MercadoPagoApi::start().await);
    mount_defaults(&api).await;
    mount_text_ok(&api).await;
    let db = TestDb::new().await;
    let (whatsapp, base) = (whatsapp_shop(&api), mp.uri());
    let app = shop(&db, move |s| {
        whatsapp(s);
        s.mercadopago_access_token = Some(SecretString::from(MP_TOKEN));
        s.mercadopago_api_base = base;
    })
    .await;
    add_catalog(&app).await;
    say(&app, &db, "wamid.M1", "Quiero 2 zapatos").await;

    let run = say(&app, &db, "wamid.M2", "sí").await;

    let preferences = mp.preferences();
    assert_eq!(preferences.len(), 1);
    let (key, body) = &preferences[0];
    assert_eq!(key, &format!("{run}:payment_link"));
    let order_id = orders_of(&db).await[0].0;
    assert_eq!(body["external_reference"], order_id.to_string());
    assert_eq!(body["items"][0]["unit_price"], 45.99);
    assert!(last_text(&api).await.contains("https://www.mercadopago.com.mx/checkout/v1/redirect?pref_id=123456-pref-1"));
    app.stop().await;
}

#[tokio::test]
async fn without_a_payment_provider_the_order_waits_and_the_run_names_the_settings() {
    let (_api, db, app) = whatsapp_shop_with_catalog().await;
    say(&app, &db, "wamid.N1", "Quiero 1 camisa").await;

    post_webhook(&app, &message_body("wamid.N2", "sí")).await;
    let run = conversation_run(&db, "wamid.N2").await;
    wait_status(&db.pool, run, "failed", Duration::from_secs(30)).await;

    let detail: Value = app.get(&format!("/api/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
    let message = detail["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("STRIPE_API_KEY") && message.contains("MERCADOPAGO_ACCESS_TOKEN"), "{message}");
    assert_eq!(orders_of(&db).await.len(), 1, "the order exists; retrying the run sends its link");
    app.stop().await;
}
