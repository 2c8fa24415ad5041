//! `/api/v1/subscriptions`, `/api/v1/outbound-events`, `/api/v1/deliveries`:
//! outbound signed webhooks.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi,
};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{parse_cursor, Limit, Page, PageItem},
    ApiTags, AppState,
};
use crate::{
    domain::Invalid,
    outbound::{
        self, attempts,
        deliveries::{self, DeliveryStatus},
        events, ops, signing, ssrf,
        subscriptions::{self, SubscriptionStatus},
    },
};

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

#[derive(Default)]
pub struct OutboundApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Outbound")]
impl OutboundApi {
    /// Subscribe a URL to event types. The answer holds the signing secret, shown
    /// only here. 422 when the URL is refused (not https, or resolving to a
    /// private, loopback, link-local, CGNAT or multicast address).
    #[oai(path = "/subscriptions", method = "post", operation_id = "v1.subscriptions.create")]
    async fn create(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<SubscriptionIn>) -> Result<CreatedSubscription, ApiError> {
        let b = &body.0;
        let url = check_url(&state, &b.url).await?;
        let types = check_types(&b.event_types)?;
        check_rate(b.rate_limit_per_sec)?;
        let new = subscriptions::NewSubscription {
            url: url.as_str(),
            event_types: &types,
            description: b.description.as_deref(),
            rate_limit_per_sec: b.rate_limit_per_sec,
        };
        let (sub, key) = subscriptions::create(&state.pool, &new).await?;
        Ok(CreatedSubscription::Created(Json(SubscriptionWithSecretOut {
            subscription: sub.into(),
            secret: signing::display(&key).expose_secret().to_owned(),
        })))
    }

    /// List subscriptions (never their secrets).
    #[oai(path = "/subscriptions", method = "get", operation_id = "v1.subscriptions.list")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<SubscriptionOut>>, ApiError> {
        let (rows, next) = subscriptions::list(&state.pool, limit.get(), parse_cursor(cursor.0.as_deref())?).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Show a subscription.
    #[oai(path = "/subscriptions/:id", method = "get", operation_id = "v1.subscriptions.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<SubscriptionOut>, ApiError> {
        let sub = subscriptions::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(sub.into()))
    }

    /// Change URL, event types, description, rate limit, or enable/disable it.
    #[oai(path = "/subscriptions/:id", method = "patch", operation_id = "v1.subscriptions.update")]
    async fn update(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<SubscriptionPatch>,
    ) -> Result<Json<SubscriptionOut>, ApiError> {
        let b = &body.0;
        let url = match &b.url {
            Some(u) => Some(check_url(&state, u).await?.to_string()),
            None => None,
        };
        let types = b.event_types.as_deref().map(check_types).transpose()?;
        let status = b
            .status
            .as_deref()
            .map(|s| SubscriptionStatus::parse(s).ok_or_else(|| ApiError::invalid(&Invalid::new("status", "must be enabled or disabled"))))
            .transpose()?;
        check_rate(b.rate_limit_per_sec)?;
        let patch = subscriptions::Patch {
            url,
            event_types: types,
            description: b.description.clone(),
            status,
            rate_limit_per_sec: b.rate_limit_per_sec,
        };
        let sub = subscriptions::update(&state.pool, id.0, &patch)
            .await?
            .ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(sub.into()))
    }

    /// Delete a subscription and its pending deliveries.
    #[oai(path = "/subscriptions/:id", method = "delete", operation_id = "v1.subscriptions.delete")]
    async fn delete(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<SubscriptionDeleted, ApiError> {
        if !subscriptions::delete(&state.pool, id.0).await? {
            return Err(ApiError::not_found("subscription"));
        }
        Ok(SubscriptionDeleted::NoContent)
    }

    /// A new signing secret; the old one keeps signing alongside for 24 hours.
    #[oai(path = "/subscriptions/:id/rotate-secret", method = "post", operation_id = "v1.subscriptions.rotate_secret")]
    async fn rotate(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<SecretOut>, ApiError> {
        let key = subscriptions::rotate(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(SecretOut { secret: signing::display(&key).expose_secret().to_owned() }))
    }

    /// Send a `relevo.test` event to this subscription now.
    #[oai(path = "/subscriptions/:id/test", method = "post", operation_id = "v1.subscriptions.test")]
    async fn test(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<DeliveryRef>, ApiError> {
        subscriptions::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(DeliveryRef { delivery_id: ops::send_test(&state.pool, id.0).await? }))
    }

    /// Re-queue every failed delivery of this subscription since a time.
    #[oai(path = "/subscriptions/:id/recover", method = "post", operation_id = "v1.subscriptions.recover")]
    async fn recover(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>, body: Json<RecoverIn>) -> Result<Json<RecoverOut>, ApiError> {
        subscriptions::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(RecoverOut { requeued: ops::recover(&state.pool, id.0, body.since).await? }))
    }

    /// Publish an event from the shop's own systems to its subscribers.
    #[oai(path = "/outbound-events", method = "post", operation_id = "v1.outbound_events.publish")]
    async fn publish(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<OutboundEventIn>) -> Result<PublishedEvent, ApiError> {
        let kind = body.kind.trim();
        if kind.is_empty() || kind.len() > 200 {
            return Err(ApiError::invalid(&Invalid::new("type", "must be 1-200 characters")));
        }
        let (id, created) = events::publish(&state.pool, kind, &body.payload, body.idempotency_key.as_deref()).await?;
        let event: OutboundEventOut = events::get(&state.pool, id).await?.into();
        Ok(if created { PublishedEvent::Created(Json(event)) } else { PublishedEvent::Existing(Json(event)) })
    }

    /// Events published to subscribers (Relevo's own and the API's), newest first.
    #[oai(path = "/outbound-events", method = "get", operation_id = "v1.outbound_events.list")]
    async fn events(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<OutboundEventOut>>, ApiError> {
        let (rows, next) = events::list(&state.pool, limit.get(), parse_cursor(cursor.0.as_deref())?).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Deliveries, newest first, by subscription, status or event type.
    #[oai(path = "/deliveries", method = "get", operation_id = "v1.deliveries.list")]
    #[allow(clippy::too_many_arguments)]
    async fn deliveries(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        subscription_id: Query<Option<Uuid>>,
        status: Query<Option<String>>,
        event_type: Query<Option<String>>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<DeliveryOut>>, ApiError> {
        let cursor = parse_cursor(cursor.0.as_deref())?;
        let status = match status.0.as_deref().map(DeliveryStatus::parse) {
            None => None,
            Some(Some(s)) => Some(s),
            // No delivery has an unknown status: the page is empty, as it was
            // when the filter compared text.
            Some(None) => return Ok(Json(Page { items: vec![], next_cursor: None })),
        };
        let filter = deliveries::Filter { subscription_id: subscription_id.0, status, event_type: event_type.0 };
        let (rows, next) = deliveries::list(&state.pool, &filter, limit.get(), cursor).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// A delivery with every attempt: time, HTTP status or error, duration, response body.
    #[oai(path = "/deliveries/:id", method = "get", operation_id = "v1.deliveries.show")]
    async fn delivery(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<DeliveryDetailOut>, ApiError> {
        let d = deliveries::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
        let attempts = attempts::list_for(&state.pool, id.0).await?;
        Ok(Json(DeliveryDetailOut {
            delivery: d.into(),
            attempts_log: attempts.into_iter().map(Into::into).collect(),
        }))
    }

    /// Send a delivery again now.
    #[oai(path = "/deliveries/:id/resend", method = "post", operation_id = "v1.deliveries.resend")]
    async fn resend(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<DeliveryRef>, ApiError> {
        if !ops::resend(&state.pool, id.0).await? {
            return Err(ApiError::not_found("delivery"));
        }
        Ok(Json(DeliveryRef { delivery_id: id.0 }))
    }
}

async fn check_url(state: &AppState, raw: &str) -> Result<url::Url, ApiError> {
    ssrf::check_url(raw.trim(), &state.outbound.allow_nets)
        .await
        .map_err(|e| ApiError::invalid(&Invalid::new("url", e.to_string())))
}

fn check_types(types: &[String]) -> Result<Vec<String>, ApiError> {
    let types: Vec<String> = types.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
    if types.is_empty() {
        return Err(ApiError::invalid(&Invalid::new("event_types", "give at least one event type, or [\"*\"]")));
    }
    Ok(types)
}

fn check_rate(rate: Option<i32>) -> Result<(), ApiError> {
    match rate {
        Some(r) if r < 1 => Err(ApiError::invalid(&Invalid::new("rate_limit_per_sec", "must be at least 1"))),
        _ => Ok(()),
    }
}

impl From<outbound::Error> for ApiError {
    fn from(e: outbound::Error) -> Self {
        match e {
            // Through the sqlx error itself, which is what tells an unreachable
            // database (503) from a fault (500).
            outbound::Error::Database(e) => e.into(),
            other => Self::internal(&other),
        }
    }
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
