//! Health, metrics, docs, the committed OpenAPI document, auth and error shape.

use relevo::engine::Registry;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_committed_openapi_document_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/relevo.json")).unwrap();
    let generated = relevo::http::openapi_json();
    let a: Value = serde_json::from_str(&committed).unwrap();
    let b: Value = serde_json::from_str(&generated).unwrap();
    assert!(a == b, "openapi/relevo.json is stale: run `just openapi`");
}

#[tokio::test]
async fn health_readiness_metrics_and_docs_answer() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    let c = &app.client;

    let health: Value = c.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = c.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = c.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let docs = c.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let spec: Value = c.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["paths"]["/api/v1/runs"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn readiness_is_503_with_a_json_error_when_the_database_is_gone() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    // Make the database refuse connections and drop the live ones.
    admin_execute(format!("alter database {} allow_connections false", db.name)).await;
    admin_execute(format!(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = '{}'",
        db.name
    ))
    .await;

    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable");
    let resp = app.get("/api/v1/runs").send().await.unwrap();
    assert_eq!(resp.status(), 503, "API calls say unavailable, not 500");

    admin_execute(format!("alter database {} allow_connections true", db.name)).await;
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "ready again once the database is back");
    app.stop().await;
}

#[tokio::test]
async fn the_api_refuses_a_missing_or_wrong_token_with_a_json_401() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;

    for req in [
        app.client.get(app.url("/api/v1/runs")),
        app.client.get(app.url("/api/v1/runs")).bearer_auth("wrong-token"),
        app.client.get(app.url("/api/v1/runs")).bearer_auth(&TOKEN[..TOKEN.len() - 1]),
        app.client.get(app.url("/api/v1/stats")).header("Authorization", "Basic Zm9vOmJhcg=="),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(body["error"]["message"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_input_gets_a_4xx_json_error_never_a_500() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;

    let cases = [
        (app.get("/api/v1/runs/not-a-uuid"), 400),
        (app.get("/api/v1/runs/01a212c7-3d90-7289-a122-affbdb815422"), 404),
        (app.post("/api/v1/runs/01a212c7-3d90-7289-a122-affbdb815422/cancel"), 404),
        (app.get("/api/v1/runs?status=bogus"), 400),
        (app.get("/api/v1/runs?limit=0"), 400),
        (app.get("/api/v1/runs?limit=1001"), 400),
        (app.get("/api/v1/runs?cursor=zzz"), 400),
        (app.get("/api/v1/nope"), 404),
        (app.post("/api/v1/runs").header("content-type", "application/json").body("{not json"), 400),
        (app.post("/api/v1/runs").json(&serde_json::json!({"workflow": "nope", "input": {}})), 422),
    ];
    for (req, status) in cases {
        let resp = req.send().await.unwrap();
        let url = resp.url().to_string();
        assert_eq!(resp.status().as_u16(), status, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{url}: {body}");
        assert!(body["error"]["message"].is_string(), "{url}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_default_checkout_return_page_sends_the_shopper_back_to_whatsapp() {
    let db = TestDb::new().await;
    let app = spawn_app(&db, Registry::new()).await;
    for (query, title) in [("?order_id=x&result=paid", "¡Gracias por tu compra!"), ("?result=cancelled", "El pago no se completó"), ("", "El pago no se completó")] {
        let resp = app.client.get(app.url(&format!("/checkout/return{query}"))).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let page = resp.text().await.unwrap();
        assert!(page.contains(title) && page.contains("WhatsApp"), "{page}");
    }
    app.stop().await;
}
