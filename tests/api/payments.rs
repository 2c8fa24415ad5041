//! Payment fulfilment end to end: signed Stripe webhooks in, orders, stock,
//! e-mails and domain events out.

use std::time::Duration;

use chrono::Utc;
use rand::seq::SliceRandom;
use relevo::{config::Settings, providers::stripe};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

const SECRET: &str = "whsec_payments";

/// Settings for a shop that takes Stripe webhooks signed with `SECRET`.
fn stripe(s: &mut Settings) {
    s.webhooks.stripe_secrets = vec![SecretString::from(SECRET)];
}

async fn product(app: &TestApp, sku: &str, price: i64, stock: i64) {
    let resp = app
        .post("/api/v1/products")
        .json(&json!({"sku": sku, "name": sku, "price_minor": price, "currency": "MXN", "stock": stock}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}

async fn order(app: &TestApp, items: Value) -> (String, i64) {
    let resp = app
        .post("/api/v1/orders")
        .json(&json!({"customer": {"email": "ana@example.mx", "name": "Ana"}, "items": items}))
        .send()
        .await
        .unwrap();
    let o: Value = resp.json().await.unwrap();
    (o["id"].as_str().unwrap().to_owned(), o["amount_minor"].as_i64().unwrap())
}

fn pi_event(event_id: &str, kind: &str, order_id: &str, amount: i64, extra: Value) -> Value {
    let mut object = json!({"object": "payment_intent", "id": format!("pi_{order_id}"), "amount": amount,
        "amount_received": amount, "currency": "mxn", "metadata": {"order_id": order_id}});
    for (k, v) in extra.as_object().unwrap() {
        object[k] = v.clone();
    }
    json!({"id": event_id, "object": "event", "type": kind, "created": 1750000000, "data": {"object": object}})
}

async fn send(app: &TestApp, event: &Value) -> u16 {
    let body = event.to_string();
    app.client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", stripe::verify::sign(SECRET, Utc::now().timestamp(), body.as_bytes()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_order(app: &TestApp, id: &str, status: &str) {
    wait_for(&format!("order {id} to be {status}"), Duration::from_secs(30), || async {
        (order_status(app, id).await == status).then_some(())
    })
    .await
}

async fn stock(app: &TestApp, sku: &str) -> i64 {
    let p: Value = app.get(&format!("/api/v1/products/{sku}")).send().await.unwrap().json().await.unwrap();
    p["stock"].as_i64().unwrap()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_paid_order_is_fulfilled_once_and_a_refund_restores_its_stock_once() {
    let db = TestDb::new().await;
    let app = shop(&db, stripe).await;
    product(&app, "ZAP-001", 4599, 10).await;
    let (id, amount) = order(&app, json!([{"sku": "ZAP-001", "quantity": 2}])).await;

    let paid = pi_event("evt_p1", "payment_intent.succeeded", &id, amount, json!({}));
    assert_eq!(send(&app, &paid).await, 200);
    assert_eq!(send(&app, &pi_event("evt_p1b", "payment_intent.succeeded", &id, amount, json!({}))).await, 200);
    wait_order(&app, &id, "fulfilled").await;
    assert_eq!(stock(&app, "ZAP-001").await, 8);

    let refund = json!({"id": "evt_r1", "type": "charge.refunded",
        "data": {"object": {"object": "charge", "id": "ch_1", "payment_intent": format!("pi_{id}")}}});
    assert_eq!(send(&app, &refund).await, 200);
    assert_eq!(send(&app, &json!({"id": "evt_r2", "type": "charge.refunded",
        "data": {"object": {"object": "charge", "id": "ch_1", "payment_intent": format!("pi_{id}")}}})).await, 200);
    wait_order(&app, &id, "refunded").await;
    wait_for("stock to be restored", Duration::from_secs(20), || async { (stock(&app, "ZAP-001").await == 10).then_some(()) }).await;
    // Give a wrongly doubled restore time to show up before asserting it did not.
    wait_for("all runs to finish", Duration::from_secs(20), || async {
        (count(&db, "select count(*) from engine.runs where status not in ('succeeded', 'failed')").await == 0).then_some(())
    })
    .await;
    assert_eq!(stock(&app, "ZAP-001").await, 10);

    let emails: Value = app.get("/api/v1/emails").send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = emails["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["order_confirmation"]);
    assert_eq!(emails["items"][0]["status"], "logged");
    assert!(emails["items"][0]["subject"].as_str().unwrap().starts_with("Confirmación de tu pedido"));
    let shown: Value = app.get(&format!("/api/v1/orders/{id}")).send().await.unwrap().json().await.unwrap();
    let applied: Vec<(String, bool)> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["signal"].as_str().unwrap().to_owned(), t["applied"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        applied,
        vec![
            ("succeeded".into(), true),
            ("fulfilment".into(), true),
            ("succeeded".into(), false),
            ("refunded".into(), true),
            ("refunded".into(), false)
        ]
    );
    for kind in ["sales_order.created", "payment.received", "sales_order.confirmed", "payment.refunded"] {
        assert_eq!(count(&db, &format!("select count(*) from outbox_events where type = '{kind}'")).await, 1, "{kind}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_amount_or_missing_stock_needs_attention_and_takes_nothing() {
    let db = TestDb::new().await;
    let app = shop(&db, stripe).await;
    product(&app, "CAM-001", 2550, 1).await;

    // Oversell: two orders for the last unit, paid at once.
    let (a, amount_a) = order(&app, json!([{"sku": "CAM-001", "quantity": 1}])).await;
    let (b, amount_b) = order(&app, json!([{"sku": "CAM-001", "quantity": 1}])).await;
    let (pay_a, pay_b) = (
        pi_event("evt_a", "payment_intent.succeeded", &a, amount_a, json!({})),
        pi_event("evt_b", "payment_intent.succeeded", &b, amount_b, json!({})),
    );
    let (ra, rb) = tokio::join!(send(&app, &pay_a), send(&app, &pay_b));
    assert_eq!((ra, rb), (200, 200));
    wait_for("both orders to settle", Duration::from_secs(30), || async {
        let mut s = vec![order_status(&app, &a).await, order_status(&app, &b).await];
        s.sort();
        (s == ["fulfilled", "needs_attention"]).then_some(())
    })
    .await;
    assert_eq!(stock(&app, "CAM-001").await, 0);

    // Paid the wrong amount.
    product(&app, "GOR-001", 1000, 5).await;
    let (c, amount_c) = order(&app, json!([{"sku": "GOR-001", "quantity": 1}])).await;
    send(&app, &pi_event("evt_c", "payment_intent.succeeded", &c, amount_c - 1, json!({}))).await;
    wait_order(&app, &c, "needs_attention").await;
    assert_eq!(stock(&app, "GOR-001").await, 5);
    assert_eq!(count(&db, "select count(*) from outbox_events where type = 'sales_order.needs_attention'").await, 2);
    assert_eq!(count(&db, "select count(*) from emails").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_oxxo_voucher_expires_into_cancelled_and_a_late_payment_still_fulfils() {
    let db = TestDb::new().await;
    let app = shop(&db, stripe).await;
    product(&app, "PAN-001", 3990, 3).await;
    let (id, amount) = order(&app, json!([{"sku": "PAN-001", "quantity": 1}])).await;
    let expires = Utc::now().timestamp() + 2;
    let voucher = json!({"status": "requires_action", "next_action": {"type": "oxxo_display_details",
        "oxxo_display_details": {"expires_after": expires, "hosted_voucher_url": "https://pay.stripe.com/v/1", "number": "98765"}}});

    send(&app, &pi_event("evt_v", "payment_intent.requires_action", &id, amount, voucher)).await;
    wait_order(&app, &id, "awaiting_offline_payment").await;
    let emails: Value = app.get("/api/v1/emails").send().await.unwrap().json().await.unwrap();
    assert_eq!(emails["items"][0]["kind"], "oxxo_voucher");
    wait_order(&app, &id, "cancelled").await;

    send(&app, &pi_event("evt_late", "payment_intent.succeeded", &id, amount, json!({}))).await;
    wait_order(&app, &id, "fulfilled").await;
    assert_eq!(stock(&app, "PAN-001").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_orders_with_shuffled_duplicated_events_end_right() {
    let db = TestDb::new().await;
    let app = shop(&db, stripe).await;
    product(&app, "CAL-001", 599, 1000).await;
    let mut orders = vec![];
    let mut events = vec![];
    for i in 0..100 {
        let qty = 1 + (i % 3);
        let (id, amount) = order(&app, json!([{"sku": "CAL-001", "quantity": qty}])).await;
        let declined = i % 4 == 0;
        let mut mine = vec![pi_event(&format!("evt_{i}_proc"), "payment_intent.processing", &id, amount, json!({}))];
        if declined {
            mine.push(pi_event(&format!("evt_{i}_fail"), "payment_intent.payment_failed", &id, amount, json!({})));
        } else {
            mine.push(pi_event(&format!("evt_{i}_ok"), "payment_intent.succeeded", &id, amount, json!({})));
        }
        let dup = mine[1].clone();
        mine.push(dup);
        events.extend(mine);
        orders.push((id, qty, declined));
    }
    events.shuffle(&mut rand::rng());

    let sends = events.chunks(25).map(|chunk| {
        let chunk = chunk.to_vec();
        let app = &app;
        async move {
            for e in &chunk {
                assert_eq!(send(app, e).await, 200);
            }
        }
    });
    futures::future::join_all(sends).await;
    wait_for("every order to settle", Duration::from_secs(90), || async {
        let open = count(&db, "select count(*) from orders where status in ('pending_payment', 'paid')").await;
        let runs = count(&db, "select count(*) from engine.runs where status not in ('succeeded', 'failed')").await;
        (open == 0 && runs == 0).then_some(())
    })
    .await;

    let mut sold = 0;
    for (id, qty, declined) in &orders {
        let expected = if *declined { "payment_failed" } else { "fulfilled" };
        assert_eq!(order_status(&app, id).await, expected, "order {id}");
        if !declined {
            sold += qty;
        }
    }
    assert_eq!(stock(&app, "CAL-001").await, 1000 - sold);
    let paid = orders.iter().filter(|o| !o.2).count() as i64;
    assert_eq!(count(&db, "select count(*) from emails where kind = 'order_confirmation'").await, paid);
    assert_eq!(count(&db, "select count(*) from engine.runs where status = 'failed'").await, 0);
    app.stop().await;
}

/// A minimal SMTP server that records each message's data; the first MAIL FROM
/// gets a 451 (try later) when `fail_first`.
async fn fake_smtp(fail_first: bool) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{atomic::{AtomicBool, Ordering}, Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicBool::new(!fail_first));
    let store = messages.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let (store, failed) = (store.clone(), failed.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        b"250 fake\r\n"
                    } else if upper.starts_with("MAIL FROM") {
                        if failed.swap(true, Ordering::SeqCst) { b"250 ok\r\n" } else { b"451 try again later\r\n" }
                    } else if upper.starts_with("DATA") {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        store.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, messages)
}

#[tokio::test]
async fn with_smtp_configured_the_confirmation_is_sent_once_after_a_temporary_refusal() {
    let db = TestDb::new().await;
    let (port, messages) = fake_smtp(true).await;
    let app = shop(&db, |s| {
        stripe(s);
        s.smtp_url = Some(SecretString::from(format!("smtp://127.0.0.1:{port}")));
        s.email_from = Some("Tienda <ventas@example.mx>".into());
    })
    .await;
    product(&app, "ZAP-001", 4599, 5).await;
    let (id, amount) = order(&app, json!([{"sku": "ZAP-001", "quantity": 1}])).await;

    send(&app, &pi_event("evt_m", "payment_intent.succeeded", &id, amount, json!({}))).await;
    wait_for("the e-mail to be sent", Duration::from_secs(30), || async {
        let e: Value = app.get("/api/v1/emails").send().await.unwrap().json().await.unwrap();
        (e["items"][0]["status"] == "sent").then_some(e)
    })
    .await;

    let email_id: uuid::Uuid = sqlx::query_scalar("select id from emails").fetch_one(&db.pool).await.unwrap();
    let sent = messages.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "one message despite the retry");
    assert!(sent[0].contains(&format!("<{email_id}@relevo>")), "{}", sent[0]);
    assert!(sent[0].contains("ana@example.mx") && sent[0].contains("multipart/alternative"));
    let attempts = count(&db, "select count(*) from engine.run_attempts a join engine.runs r on r.id = a.run_id where r.workflow = 'email_delivery'").await;
    assert_eq!(attempts, 2, "the 451 was retried");
    app.stop().await;
}

#[tokio::test]
async fn every_permutation_of_an_oxxo_payment_through_the_webhook_ends_fulfilled() {
    let db = TestDb::new().await;
    let app = shop(&db, stripe).await;
    product(&app, "GOR-001", 1500, 100).await;
    let voucher = json!({"next_action": {"type": "oxxo_display_details", "oxxo_display_details":
        {"expires_after": Utc::now().timestamp() + 3600, "hosted_voucher_url": "https://v", "number": "1"}}});
    let kinds = [
        ("payment_intent.requires_action", voucher),
        ("payment_intent.processing", json!({})),
        ("payment_intent.succeeded", json!({})),
        ("payment_intent.succeeded", json!({})), // redelivered with a new event id
    ];
    let mut orders = vec![];
    for perm in permutations(&[0usize, 1, 2, 3]) {
        let (id, amount) = order(&app, json!([{"sku": "GOR-001", "quantity": 1}])).await;
        for (n, k) in perm.iter().enumerate() {
            let (kind, extra) = &kinds[*k];
            assert_eq!(send(&app, &pi_event(&format!("evt_{id}_{n}"), kind, &id, amount, extra.clone())).await, 200);
        }
        orders.push(id);
    }
    assert_eq!(orders.len(), 24);
    wait_for("every order to settle", Duration::from_secs(60), || async {
        // The voucher timers sleep on (their vouchers expire in an hour).
        let busy = "select count(*) from engine.runs where status not in ('succeeded', 'failed')
                      and not (workflow = 'oxxo_expiry' and status = 'sleeping')";
        (count(&db, busy).await == 0).then_some(())
    })
    .await;
    for id in &orders {
        assert_eq!(order_status(&app, id).await, "fulfilled", "order {id}");
    }
    assert_eq!(stock(&app, "GOR-001").await, 100 - 24);
    assert_eq!(count(&db, "select count(*) from emails where kind = 'order_confirmation'").await, 24);
    app.stop().await;
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = vec![];
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}
