//! One claimed delivery, from claim to recorded outcome: end it if it cannot
//! be sent (event or subscription deleted, subscription disabled), give it
//! back if the subscription's rate limit is reached, else send it and record
//! the attempt with the delivery's next state — delivered, pending again at
//! the next retry time, or failed — then update the subscription's failure
//! streak. Every write is fenced by the claim (see `claims`).

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    attempts::AttemptResult,
    claims::{self, Claimed},
    deliveries::DeliveryStatus,
    disable, rate_limit, retry,
    send::{Failure, Outcome},
    subscriptions::SubscriptionStatus,
    worker::Worker,
    Result,
};

/// A claim whose event and subscription are still there and enabled.
#[derive(Debug, PartialEq)]
struct Sendable<'a> {
    kind: &'a str,
    payload: &'a Value,
    created_at: DateTime<Utc>,
    url: &'a str,
    /// Active signing keys, newest first; empty if none is left.
    keys: &'a [Vec<u8>],
}

/// The attempt's log row, short of how it failed.
struct Log {
    started_at: DateTime<Utc>,
    duration_ms: i32,
    status_code: Option<u16>,
    response_body: Option<String>,
}

impl Worker {
    pub(super) async fn deliver(&self, c: &Claimed) -> Result<()> {
        let target = match sendable(c) {
            Ok(t) => t,
            Err(reason) => return claims::fail_unsendable(&self.pool, c, reason).await,
        };
        if let Some(limit) = c.rate_limit_per_sec {
            if !rate_limit::take_slot(&self.pool, c.subscription_id, limit).await? {
                claims::release_throttled(&self.pool, c).await?;
                return rate_limit::prune_windows(&self.pool).await;
            }
        }
        let body = event_body(c.event_id, &target);
        let started_at = Utc::now();
        let clock = Instant::now();
        let (outcome, response_body) = self.sender.send(target.url, target.keys, c.event_id, target.kind, &body).await;
        let elapsed = clock.elapsed();
        metrics::histogram!("relevo_webhook_delivery_duration_seconds").record(elapsed.as_secs_f64());
        if let Some(code) = outcome.status() {
            metrics::counter!("relevo_webhook_delivery_http_status_total", "code" => code.to_string()).increment(1);
        }
        let log = Log { started_at, duration_ms: elapsed.as_millis() as i32, status_code: outcome.status(), response_body };
        match outcome {
            Outcome::Delivered(_) => {
                metrics::counter!("relevo_webhook_deliveries_total", "status" => DeliveryStatus::Delivered.as_str()).increment(1);
                self.record(c, log, None, DeliveryStatus::Delivered, None).await?;
                disable::note_success(&self.pool, c.subscription_id).await
            }
            Outcome::Failed(f) => self.failed(c, log, f).await,
        }
    }

    async fn failed(&self, c: &Claimed, log: Log, f: Failure) -> Result<()> {
        if f.gone {
            self.record(c, log, Some(&f), DeliveryStatus::Failed, None).await?;
            return disable::disable(&self.pool, c.subscription_id, disable::GONE).await;
        }
        let next = retry::next_attempt_at(&self.settings.retry_schedule, c.attempt, f.retry_after, retry::jitter(), Utc::now());
        match next {
            Some(at) => {
                metrics::counter!("relevo_webhook_retries_total").increment(1);
                self.record(c, log, Some(&f), DeliveryStatus::Pending, Some(at)).await?;
            }
            None => {
                metrics::counter!("relevo_webhook_deliveries_total", "status" => DeliveryStatus::Failed.as_str()).increment(1);
                self.record(c, log, Some(&f), DeliveryStatus::Failed, None).await?;
            }
        }
        disable::note_failure(&self.pool, c.subscription_id, self.settings.disable_after).await
    }

    /// Commits the attempt's log row and the delivery's new state.
    async fn record(
        &self,
        c: &Claimed,
        log: Log,
        failure: Option<&Failure>,
        status: DeliveryStatus,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.results
            .record(AttemptResult {
                delivery_id: c.id,
                attempt: c.attempt,
                status,
                status_code: log.status_code.map(i32::from),
                error: failure.map(Failure::message),
                next_attempt_at,
                started_at: log.started_at,
                duration_ms: log.duration_ms,
                error_kind: failure.map(|f| f.kind),
                response_body: log.response_body,
            })
            .await
    }
}

/// The claim's event and destination, or why it cannot be sent.
fn sendable(c: &Claimed) -> Result<Sendable<'_>, &'static str> {
    let (Some(kind), Some(payload), Some(created_at), Some(url), Some(status)) = (
        c.event_type.as_deref(),
        c.payload.as_ref(),
        c.event_created_at,
        c.url.as_deref(),
        c.subscription_status,
    ) else {
        return Err("event or subscription deleted");
    };
    if status != SubscriptionStatus::Enabled {
        return Err("subscription disabled");
    }
    Ok(Sendable { kind, payload, created_at, url, keys: c.keys.as_deref().unwrap_or_default() })
}

/// The request body: a durable contract with every subscriber.
fn event_body(event_id: Uuid, s: &Sendable<'_>) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": event_id, "type": s.kind, "created_at": s.created_at, "data": s.payload}))
        .expect("event serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed() -> Claimed {
        Claimed {
            id: Uuid::now_v7(),
            event_id: Uuid::now_v7(),
            subscription_id: Uuid::now_v7(),
            attempt: 1,
            event_type: Some("order.shipped".into()),
            payload: Some(json!({"order": 7})),
            event_created_at: Some(Utc::now()),
            url: Some("https://example.com/hook".into()),
            subscription_status: Some(SubscriptionStatus::Enabled),
            rate_limit_per_sec: None,
            keys: Some(vec![vec![1; 32]]),
        }
    }

    #[test]
    fn a_claim_with_its_event_and_an_enabled_subscription_is_sendable() {
        let c = claimed();
        let s = sendable(&c).unwrap();
        assert_eq!((s.kind, s.url, s.keys.len()), ("order.shipped", "https://example.com/hook", 1));
    }

    #[test]
    fn a_deleted_event_or_subscription_is_not_sendable() {
        let no_event = Claimed { event_type: None, payload: None, event_created_at: None, ..claimed() };
        assert_eq!(sendable(&no_event), Err("event or subscription deleted"));
        let no_subscription = Claimed { url: None, subscription_status: None, keys: None, ..claimed() };
        assert_eq!(sendable(&no_subscription), Err("event or subscription deleted"));
    }

    #[test]
    fn a_disabled_subscription_is_not_sent_to() {
        let c = Claimed { subscription_status: Some(SubscriptionStatus::Disabled), ..claimed() };
        assert_eq!(sendable(&c), Err("subscription disabled"));
    }

    #[test]
    fn no_active_key_is_left_for_the_sender_to_refuse() {
        let c = Claimed { keys: None, ..claimed() };
        assert!(sendable(&c).unwrap().keys.is_empty());
    }

    #[test]
    fn the_body_carries_id_type_creation_time_and_data() {
        let c = claimed();
        let body: Value = serde_json::from_slice(&event_body(c.event_id, &sendable(&c).unwrap())).unwrap();
        assert_eq!(
            body,
            json!({"id": c.event_id, "type": "order.shipped", "created_at": c.event_created_at, "data": {"order": 7}})
        );
    }
}
