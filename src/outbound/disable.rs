//! Disabling subscriptions whose endpoint is gone or keeps failing. A 410
//! disables at once; otherwise a failure starts the subscription's failure
//! streak and any success ends it, and a failure once the streak is older than
//! `RELEVO_OUTBOUND_DISABLE_AFTER` disables. Each disabling is announced once,
//! as a `subscription.disabled` event written in the same transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{subscriptions, Result};

/// `disabled_reason` and the event's `reason` for a 410 answer.
pub(super) const GONE: &str = "the endpoint answered 410 Gone";
/// `disabled_reason` and the event's `reason` for a streak past the limit.
pub(super) const FAILING_TOO_LONG: &str = "failing without a success for too long";

/// A delivery succeeded: the streak, if any, is over.
pub(super) async fn note_success(pool: &PgPool, subscription: Uuid) -> Result<()> {
    subscriptions::record_success(pool, subscription).await
}

/// A delivery failed: starts the streak, or disables the subscription when the
/// running streak outlived `disable_after`.
pub(super) async fn note_failure(pool: &PgPool, subscription: Uuid, disable_after: Duration) -> Result<()> {
    if let Some(since) = subscriptions::record_failure(pool, subscription).await? {
        if outlived(since, Utc::now(), disable_after) {
            disable(pool, subscription, FAILING_TOO_LONG).await?;
        }
    }
    Ok(())
}

/// Disables the subscription if it is enabled, and then announces it.
pub(super) async fn disable(pool: &PgPool, subscription: Uuid, reason: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    if subscriptions::disable_using(&mut tx, subscription, reason).await? {
        crate::domain::outbox::record_using(
            &mut tx,
            crate::domain::outbox::EventType::SubscriptionDisabled,
            json!({"subscription_id": subscription, "reason": reason}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether a streak that started at `since` is past `disable_after` at `now`.
fn outlived(since: DateTime<Utc>, now: DateTime<Utc>, disable_after: Duration) -> bool {
    // A limit too large for chrono never expires.
    now - since > chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streak_disables_only_once_it_is_longer_than_the_limit() {
        let now = Utc::now();
        let day = Duration::from_secs(86_400);
        assert!(!outlived(now, now, day));
        assert!(!outlived(now - chrono::Duration::days(1), now, day), "exactly the limit is not past it");
        assert!(outlived(now - chrono::Duration::days(1) - chrono::Duration::seconds(1), now, day));
    }

    #[test]
    fn an_unrepresentable_limit_never_disables() {
        let now = Utc::now();
        assert!(!outlived(now - chrono::Duration::days(10_000), now, Duration::MAX));
    }
}
