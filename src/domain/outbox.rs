//! Domain events for outbound webhooks, written in the transaction of the change
//! they describe (`outbox_events`).

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub async fn record_using(conn: &mut PgConnection, kind: &str, payload: Value) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query("insert into outbox_events (id, type, payload) values ($1, $2, $3)")
        .bind(id)
        .bind(kind)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(id)
}
