//! Per-subscription rate limit shared by every node: one row per subscription
//! and wall-clock second in `subscription_rate_windows`, counting the requests
//! sent in it. Taking a slot is one upsert that only counts while under the
//! limit, so concurrent senders on any node never exceed it.

use sqlx::PgPool;
use uuid::Uuid;

use super::Result;

/// Takes one of the subscription's `limit` slots in the current second;
/// `false` when they are all taken.
pub(super) async fn take_slot(pool: &PgPool, subscription: Uuid, limit: i32) -> Result<bool> {
    let taken: Option<i32> = sqlx::query_scalar(
        "insert into subscription_rate_windows (subscription_id, window_start, sent)
         values ($1, date_trunc('second', clock_timestamp()), 1)
         on conflict (subscription_id, window_start) do update
            set sent = subscription_rate_windows.sent + 1
          where subscription_rate_windows.sent < $2
         returning sent",
    )
    .bind(subscription)
    .bind(limit)
    .fetch_optional(pool)
    .await?;
    Ok(taken.is_some())
}

/// Deletes windows over a minute old. The worker runs it when it throttles, so
/// deliveries that go out pay nothing for the cleanup.
pub(super) async fn prune_windows(pool: &PgPool) -> Result<()> {
    sqlx::query("delete from subscription_rate_windows where window_start < now() - interval '1 minute'")
        .execute(pool)
        .await?;
    Ok(())
}
