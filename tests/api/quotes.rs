//! `POST /api/v1/quotes`: order messages quoted against the live catalog.

use relevo::engine::Registry;
use serde_json::{json, Value};

use crate::helpers::*;

async fn add_product(app: &TestApp, sku: &str, name: &str, aliases: &[&str], price_minor: i64) {
    let body = json!({"sku": sku, "name": name, "aliases": aliases, "price_minor": price_minor, "currency": "MXN", "stock": 10});
    let resp = app.post("/api/v1/products").json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{sku}");
}

async fn quote(app: &TestApp, text: &str) -> reqwest::Response {
    app.post("/api/v1/quotes").json(&json!({ "text": text })).send().await.unwrap()
}

#[tokio::test]
async fn a_message_is_quoted_with_prices_unmatched_fragments_and_the_reply() {
    // Arrange
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    add_product(&app, "ZAP-001", "Zapatos", &["zapato"], 4599).await;
    add_product(&app, "CAM-001", "Camisa", &[], 2550).await;
    add_product(&app, "GOR-001", "Gorra", &["cachucha"], 1500).await;

    // Act
    let resp = quote(&app, "Quiero 2 zapatos y 1 camisa").await;

    // Assert
    assert_eq!(resp.status(), 200);
    let q: Value = resp.json().await.unwrap();
    assert_eq!(
        q["items"],
        json!([
            {"sku": "ZAP-001", "name": "Zapatos", "quantity": 2, "unit_price_minor": 4599, "subtotal_minor": 9198, "confidence": 1.0},
            {"sku": "CAM-001", "name": "Camisa", "quantity": 1, "unit_price_minor": 2550, "subtotal_minor": 2550, "confidence": 1.0},
        ])
    );
    assert_eq!((q["total_minor"].as_i64(), q["currency"].as_str()), (Some(11748), Some("MXN")));
    assert_eq!(q["unmatched"], json!([]));
    assert_eq!(
        q["reply"],
        "✅ *Cotización Generada*\n\n📦 *Productos:*\n1. Zapatos\n   Cantidad: 2 × $45.99 = $91.98\n2. Camisa\n   Cantidad: 1 × $25.50 = $25.50\n\n💰 *Total: $117.48*\n\n¿Deseas confirmar esta cotización? Responde *SÍ* o *NO*"
    );

    let q: Value = quote(&app, "3 camizas y 2 sombreros").await.json().await.unwrap();
    assert_eq!(q["items"][0]["sku"], "CAM-001");
    assert!(q["items"][0]["confidence"].as_f64().unwrap() < 1.0);
    assert_eq!(q["unmatched"][0]["text"], "sombreros");
    assert_eq!(q["unmatched"][0]["quantity"], 2);
    assert!(q["reply"].as_str().unwrap().contains("No encontré: sombreros"));

    let resp = quote(&app, "hola!").await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    let q: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {body:?}: {e}"));
    assert_eq!((q["items"].as_array().unwrap().len(), q["total_minor"].as_i64()), (0, Some(0)));
    assert!(q["reply"].as_str().unwrap().contains("Zapatos"), "{}", q["reply"]);
}

#[tokio::test]
async fn empty_or_too_long_texts_are_refused_with_422() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;

    for text in [String::new(), "   \n".into(), "a".repeat(4097)] {
        let resp = quote(&app, &text).await;
        assert_eq!(resp.status(), 422, "{} chars", text.len());
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid");
        assert_eq!(err["error"]["fields"][0]["loc"], "text");
    }
    assert_eq!(quote(&app, &"ñ".repeat(4096)).await.status(), 200);
    let unauthenticated = app.client.post(app.url("/api/v1/quotes")).json(&json!({"text": "hola"})).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn a_catalog_change_is_picked_up_by_the_next_quote() {
    // Arrange
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    add_product(&app, "SUD-001", "Sudadera", &[], 3500).await;
    let before: Value = quote(&app, "2 buzos").await.json().await.unwrap();
    assert_eq!(before["items"], json!([]));

    // Act: a new alias, then a new product, then a price.
    let resp = app
        .client
        .patch(app.url("/api/v1/products/SUD-001"))
        .bearer_auth(TOKEN)
        .json(&json!({"aliases": ["buzo"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after_alias: Value = quote(&app, "2 buzos").await.json().await.unwrap();
    add_product(&app, "PAN-CAJA", "Pan de caja", &[], 4500).await;
    let after_product: Value = quote(&app, "2 buzos y 1 pan de caja").await.json().await.unwrap();

    // Assert
    assert_eq!(after_alias["items"][0]["sku"], "SUD-001");
    assert_eq!(after_alias["items"][0]["quantity"], 2);
    assert_eq!(after_product["total_minor"], 2 * 3500 + 4500);

    // Stock moves do not rebuild anything, but the quote stays right.
    let resp = app.post("/api/v1/products/SUD-001/stock").json(&json!({"delta": 5, "reason": "restock"})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let again: Value = quote(&app, "2 buzos").await.json().await.unwrap();
    assert_eq!(again["items"][0]["sku"], "SUD-001");
}
