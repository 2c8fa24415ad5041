//! Catalog and orders API (the payment workflow itself is tested separately).

use relevo::engine::Registry;
use serde_json::{json, Value};

use crate::helpers::*;

async fn create_product(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/api/v1/products").json(&body).send().await.unwrap()
}

fn zapatos() -> Value {
    json!({"sku": "ZAP-001", "name": "Zapatos", "aliases": ["zapato"], "price_minor": 4599, "currency": "MXN", "stock": 50})
}

#[tokio::test]
async fn products_are_created_validated_updated_and_deleted() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;

    let resp = create_product(&app, zapatos()).await;
    assert_eq!(resp.status(), 201);
    let p: Value = resp.json().await.unwrap();
    assert_eq!((p["sku"].as_str(), p["stock"].as_i64(), p["currency"].as_str()), (Some("ZAP-001"), Some(50), Some("MXN")));

    let resp = create_product(&app, zapatos()).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "duplicate_sku");
    for (patch, loc) in [
        (json!({"price_minor": -1}), "price_minor"),
        (json!({"name": "  "}), "name"),
        (json!({"currency": "XYZ"}), "currency"),
        (json!({"stock": -3}), "stock"),
        (json!({"sku": "con espacio"}), "sku"),
    ] {
        let mut body = zapatos();
        body["sku"] = json!("OTHER-1");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = create_product(&app, body).await;
        assert_eq!(resp.status(), 422, "{loc}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid");
        assert_eq!(err["error"]["fields"][0]["loc"], loc);
    }

    let resp = app.client.patch(app.url("/api/v1/products/ZAP-001")).bearer_auth(TOKEN)
        .json(&json!({"price_minor": 4999, "name": "Zapatos de piel"})).send().await.unwrap();
    let p: Value = resp.json().await.unwrap();
    assert_eq!((p["price_minor"].as_i64(), p["name"].as_str()), (Some(4999), Some("Zapatos de piel")));

    for sku in ["CAM-001", "GOR-001", "PAN-001"] {
        let mut body = zapatos();
        body["sku"] = json!(sku);
        assert_eq!(create_product(&app, body).await.status(), 201);
    }
    let page: Value = app.get("/api/v1/products?limit=3").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    let next = page["next_cursor"].as_str().unwrap().to_owned();
    let page: Value = app.get("/api/v1/products").query(&[("cursor", next)]).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"][0]["sku"], "ZAP-001");
    assert!(page["next_cursor"].is_null());

    let resp = app.client.delete(app.url("/api/v1/products/GOR-001")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app.get("/api/v1/products/GOR-001").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn stock_never_goes_below_zero() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    create_product(&app, zapatos()).await;

    let resp = app.post("/api/v1/products/ZAP-001/stock").json(&json!({"delta": 5, "reason": "restock"})).send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["stock"], 55);
    let resp = app.post("/api/v1/products/ZAP-001/stock").json(&json!({"delta": -56, "reason": "inventory"})).send().await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "insufficient_stock");
    let p: Value = app.get("/api/v1/products/ZAP-001").send().await.unwrap().json().await.unwrap();
    assert_eq!(p["stock"], 55);
    let resp = app.post("/api/v1/products/NOPE/stock").json(&json!({"delta": 1, "reason": "x"})).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // The database refuses negative stock even if code forgot to check.
    let err = sqlx::query("update products set stock = -1 where sku = 'ZAP-001'").execute(&db.pool).await.unwrap_err();
    assert!(err.to_string().contains("check"), "{err}");
    let moves: i64 = sqlx::query_scalar("select count(*) from stock_movements where sku = 'ZAP-001'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(moves, 2, "initial stock and the restock are logged");
    app.stop().await;
}

#[tokio::test]
async fn orders_freeze_prices_and_refuse_bad_items() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    create_product(&app, zapatos()).await;
    create_product(&app, json!({"sku": "CAM-001", "name": "Camisa", "price_minor": 2550, "currency": "MXN", "stock": 50})).await;
    create_product(&app, json!({"sku": "USD-1", "name": "Import", "price_minor": 100, "currency": "USD", "stock": 5})).await;
    let customer = json!({"email": "ana@example.mx", "name": "Ana López", "phone": "+5215512345678"});

    let resp = app
        .post("/api/v1/orders")
        .json(&json!({"customer": customer, "items": [{"sku": "ZAP-001", "quantity": 2}, {"sku": "CAM-001", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let order: Value = resp.json().await.unwrap();
    assert_eq!(order["status"], "pending_payment");
    assert_eq!((order["amount_minor"].as_i64(), order["currency"].as_str()), (Some(2 * 4599 + 2550), Some("MXN")));
    assert_eq!(order["items"][0]["unit_price_minor"], 4599);
    let id = order["id"].as_str().unwrap().to_owned();

    // A later price change does not touch the order.
    app.client.patch(app.url("/api/v1/products/ZAP-001")).bearer_auth(TOKEN).json(&json!({"price_minor": 9999})).send().await.unwrap();
    let shown: Value = app.get(&format!("/api/v1/orders/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["amount_minor"], 2 * 4599 + 2550);
    assert_eq!(shown["history"], json!([]));

    for (items, loc) in [
        (json!([{"sku": "NOPE", "quantity": 1}]), "items[0].sku"),
        (json!([{"sku": "ZAP-001", "quantity": 0}]), "items[0].quantity"),
        (json!([]), "items"),
        (json!([{"sku": "ZAP-001", "quantity": 1}, {"sku": "USD-1", "quantity": 1}]), "items[1].sku"),
    ] {
        let resp = app.post("/api/v1/orders").json(&json!({"customer": customer, "items": items})).send().await.unwrap();
        assert_eq!(resp.status(), 422, "{loc}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["fields"][0]["loc"], loc);
    }
    let resp = app
        .post("/api/v1/orders")
        .json(&json!({"customer": {"email": "not-an-email", "name": "Ana"}, "items": [{"sku": "ZAP-001", "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    let page: Value = app.get("/api/v1/orders?status=pending_payment").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page: Value = app.get("/api/v1/orders?status=fulfilled").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.get("/api/v1/orders/not-a-uuid").send().await.unwrap().status(), 400);
    let created: i64 = sqlx::query_scalar("select count(*) from outbox_events where type = 'sales_order.created'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(created, 1, "the domain event was written with the order");
    let emails: Value = app.get("/api/v1/emails").send().await.unwrap().json().await.unwrap();
    assert_eq!(emails, json!({"items": [], "next_cursor": null}));
    app.stop().await;
}

#[tokio::test]
async fn an_order_needs_an_email_or_a_phone_and_finds_its_customer() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    create_product(&app, zapatos()).await;
    let order = |customer: Value| {
        let request = app.post("/api/v1/orders").json(&json!({"customer": customer, "items": [{"sku": "ZAP-001", "quantity": 1}]}));
        async move { request.send().await.unwrap() }
    };

    // By phone only: the customer is found by the number's digits.
    let resp = order(json!({"name": "Beto", "phone": "+52 1 55 9876 5432"})).await;
    assert_eq!(resp.status(), 201);
    let by_phone: Value = resp.json().await.unwrap();
    assert_eq!(by_phone["customer"]["email"], Value::Null);
    // The same e-mail in another case, then with a new name: one customer, updated once.
    let first: Value = order(json!({"email": "Ana@Example.mx", "name": "Ana"})).await.json().await.unwrap();
    let second: Value = order(json!({"email": "ana@example.mx", "name": "Ana López"})).await.json().await.unwrap();
    assert_eq!(first["customer"]["id"], second["customer"]["id"]);
    let resp = order(json!({"name": "Nadie"})).await;
    assert_eq!(resp.status(), 422);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["fields"][0]["loc"], "customer");

    let page: Value = app.get("/api/v1/customers").send().await.unwrap().json().await.unwrap();
    let customers = page["items"].as_array().unwrap();
    assert_eq!(customers.len(), 2);
    assert_eq!((customers[0]["email"].as_str(), customers[0]["name"].as_str()), (Some("ana@example.mx"), Some("Ana López")));
    assert_eq!(customers[1]["wa_id"], "5215598765432");
    let ana: Value = app.get(&format!("/api/v1/customers/{}", first["customer"]["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&Value> = ana["orders"].as_array().unwrap().iter().map(|o| &o["id"]).collect();
    assert_eq!(ids, vec![&second["id"], &first["id"]]);
    assert_eq!(ana["conversation"], Value::Null);
    assert_eq!(app.get(&format!("/api/v1/customers/{}", uuid::Uuid::now_v7())).send().await.unwrap().status(), 404);
    let events: Vec<String> = sqlx::query_scalar("select type from outbox_events where type like 'customer.%' order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(events, vec!["customer.created", "customer.created", "customer.updated"]);
    app.stop().await;
}
