//! What the outbound endpoints take and answer. Secrets shown once (creation,
//! rotation) never reach a `Debug` print.

use super::*;

#[derive(Object, Debug)]
pub struct SubscriptionIn {
    /// https URL (http only for networks in RELEVO_OUTBOUND_ALLOW_NETS).
    pub url: String,
    /// Event types to receive, or `["*"]` for all.
    pub event_types: Vec<String>,
    pub description: Option<String>,
    /// Deliveries per second to this subscription (optional).
    pub rate_limit_per_sec: Option<i32>,
}

#[derive(Object, Debug, Default)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub status: Option<String>,
    pub rate_limit_per_sec: Option<i32>,
}

#[derive(Object, Debug)]
pub struct SubscriptionOut {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub status: String,
    pub rate_limit_per_sec: Option<i32>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<subscriptions::Subscription> for SubscriptionOut {
    fn from(s: subscriptions::Subscription) -> Self {
        Self {
            id: s.id,
            url: s.url,
            event_types: s.event_types,
            description: s.description,
            status: s.status.as_str().to_owned(),
            rate_limit_per_sec: s.rate_limit_per_sec,
            disabled_reason: s.disabled_reason,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Shown only when a subscription is created or its secret rotated.
// `Debug` is written by hand: a derived one would print the secret into any
// log or panic message that formats this value.
#[derive(Object)]
pub struct SubscriptionWithSecretOut {
    #[oai(flatten)]
    pub subscription: SubscriptionOut,
    /// `whsec_` + base64 of 32 random bytes: the HMAC key for `webhook-signature`
    /// and `X-Signature`. Store it now; it is never shown again.
    pub secret: String,
}

impl std::fmt::Debug for SubscriptionWithSecretOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionWithSecretOut")
            .field("subscription", &self.subscription)
            .field("secret", &REDACTED)
            .finish()
    }
}

// `Debug` by hand, as for `SubscriptionWithSecretOut`.
#[derive(Object)]
pub struct SecretOut {
    /// The new secret. The previous one keeps signing for 24 hours.
    pub secret: String,
}

impl std::fmt::Debug for SecretOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretOut").field("secret", &REDACTED).finish()
    }
}

/// What `Debug` shows in place of a secret (as `secrecy` does).
const REDACTED: Redacted = Redacted;

struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl PageItem for SubscriptionOut {
    const PAGE_NAME: &'static str = "SubscriptionPage";
}

#[derive(Object, Debug)]
pub struct OutboundEventIn {
    #[oai(rename = "type")]
    pub kind: String,
    pub payload: Value,
    /// Publishing the same key again returns the first event (200).
    pub idempotency_key: Option<String>,
}

#[derive(Object, Debug)]
pub struct OutboundEventOut {
    pub id: Uuid,
    #[oai(rename = "type")]
    pub kind: String,
    pub payload: Value,
    pub idempotency_key: Option<String>,
    /// `relevo` (its own flows) or `api`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

impl From<events::OutboundEvent> for OutboundEventOut {
    fn from(e: events::OutboundEvent) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            payload: e.payload,
            idempotency_key: e.idempotency_key,
            source: e.source.as_str().to_owned(),
            created_at: e.created_at,
        }
    }
}

impl PageItem for OutboundEventOut {
    const PAGE_NAME: &'static str = "OutboundEventPage";
}

#[derive(Object, Debug)]
pub struct DeliveryOut {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subscription_id: Uuid,
    /// pending, delivering, delivered or failed
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<deliveries::Delivery> for DeliveryOut {
    fn from(d: deliveries::Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            subscription_id: d.subscription_id,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct DeliveryAttemptOut {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// HTTP status, when the receiver answered.
    pub status_code: Option<i32>,
    /// http_status, timeout, connect_error, blocked_address, …
    pub error_kind: Option<String>,
    /// First 4 KiB of the response body.
    pub response_body: Option<String>,
}

impl From<attempts::Attempt> for DeliveryAttemptOut {
    fn from(a: attempts::Attempt) -> Self {
        Self {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error_kind: a.error_kind.map(|k| k.as_str().to_owned()),
            response_body: a.response_body,
        }
    }
}

#[derive(Object, Debug)]
pub struct DeliveryDetailOut {
    #[oai(flatten)]
    pub delivery: DeliveryOut,
    pub attempts_log: Vec<DeliveryAttemptOut>,
}

impl PageItem for DeliveryOut {
    const PAGE_NAME: &'static str = "DeliveryPage";
}

#[derive(Object, Debug)]
pub struct RecoverIn {
    pub since: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct RecoverOut {
    pub requeued: u64,
}

#[derive(Object, Debug)]
pub struct DeliveryRef {
    pub delivery_id: Uuid,
}

#[derive(ApiResponse)]
pub enum CreatedSubscription {
    #[oai(status = 201)]
    Created(Json<SubscriptionWithSecretOut>),
}

#[derive(ApiResponse)]
pub enum PublishedEvent {
    /// Published; deliveries were created for every matching subscription.
    #[oai(status = 201)]
    Created(Json<OutboundEventOut>),
    /// This idempotency key was used before: the earlier event.
    #[oai(status = 200)]
    Existing(Json<OutboundEventOut>),
}

#[derive(ApiResponse)]
pub enum SubscriptionDeleted {
    #[oai(status = 204)]
    NoContent,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ=";

    #[test]
    fn a_created_subscription_debug_prints_without_its_secret() {
        let now = Utc::now();
        let id = Uuid::now_v7();
        let out = SubscriptionWithSecretOut {
            subscription: SubscriptionOut {
                id,
                url: "https://example.com/hook".into(),
                event_types: vec!["*".into()],
                description: None,
                status: "enabled".into(),
                rate_limit_per_sec: None,
                disabled_reason: None,
                created_at: now,
                updated_at: now,
            },
            secret: SECRET.into(),
        };
        let shown = format!("{out:?} {out:#?}");
        assert!(!shown.contains(SECRET) && !shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("[REDACTED]") && shown.contains(&id.to_string()), "{shown}");
    }

    #[test]
    fn a_rotated_secret_debug_prints_redacted() {
        let out = SecretOut { secret: SECRET.into() };
        let shown = format!("{out:?} {out:#?}");
        assert!(!shown.contains(SECRET) && !shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }
}
