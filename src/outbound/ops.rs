//! Operator actions on deliveries: send a test event, queue one delivery
//! again, or recover a subscription's failed deliveries. Each wakes the
//! workers once its change is committed, so nothing waits for the next poll.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{deliveries, Result};
use crate::domain::outbox::EventType;

/// Sends a `relevo.test` event to one subscription now.
pub async fn send_test(pool: &PgPool, subscription: Uuid) -> Result<Uuid> {
    let mut tx = pool.begin().await?;
    let event = crate::domain::outbox::record_using(
        &mut tx,
        // The fan-out trigger skips this type: it reaches only this subscription.
        EventType::RelevoTest,
        json!({"subscription_id": subscription, "message": "test event from Relevo"}),
    )
    .await?;
    let delivery = deliveries::insert_using(&mut tx, event, subscription).await?;
    deliveries::notify_workers_using(&mut tx).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Queues a delivery again now (any status); `false` if it does not exist.
pub async fn resend(pool: &PgPool, id: Uuid) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    let found = deliveries::requeue_using(&mut conn, id).await?;
    deliveries::notify_workers_using(&mut conn).await?;
    Ok(found)
}

/// Re-queues every failed delivery of a subscription created since `since`.
pub async fn recover(pool: &PgPool, subscription: Uuid, since: DateTime<Utc>) -> Result<u64> {
    let mut conn = pool.acquire().await?;
    let requeued = deliveries::requeue_failed_using(&mut conn, subscription, since).await?;
    deliveries::notify_workers_using(&mut conn).await?;
    Ok(requeued)
}
