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

use super::{auth::AdminAuth, error::ApiError, parse_cursor, ApiTags, AppState};
use crate::{
    domain::Invalid,
    outbound::{delivery, signing, ssrf, subscriptions},
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
            status: s.status,
            rate_limit_per_sec: s.rate_limit_per_sec,
            disabled_reason: s.disabled_reason,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Shown only when a subscription is created or its secret rotated.
#[derive(Object, Debug)]
pub struct SubscriptionWithSecretOut {
    #[oai(flatten)]
    pub subscription: SubscriptionOut,
    /// `whsec_` + base64 of 32 random bytes: the HMAC key for `webhook-signature`
    /// and `X-Signature`. Store it now; it is never shown again.
    pub secret: String,
}

#[derive(Object, Debug)]
pub struct SecretOut {
    /// The new secret. The previous one keeps signing for 24 hours.
    pub secret: String,
}

#[derive(Object, Debug)]
pub struct SubscriptionPage {
    pub items: Vec<SubscriptionOut>,
    pub next_cursor: Option<String>,
}

#[derive(Object, Debug)]
pub struct OutboundEventIn {
    #[oai(rename = "type")]
    pub kind: String,
    pub payload: Value,
    /// Publishing the same key again returns the first event (200).
    pub idempotency_key: Option<String>,
}

#[derive(Object, Debug, sqlx::FromRow)]
pub struct OutboundEventOut {
    pub id: Uuid,
    #[oai(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub payload: Value,
    pub idempotency_key: Option<String>,
    /// `relevo` (its own flows) or `api`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Object, Debug)]
pub struct OutboundEventPage {
    pub items: Vec<OutboundEventOut>,
    pub next_cursor: Option<String>,
}

#[derive(Object, Debug, sqlx::FromRow)]
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

#[derive(Object, Debug, sqlx::FromRow)]
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

#[derive(Object, Debug)]
pub struct DeliveryDetailOut {
    #[oai(flatten)]
    pub delivery: DeliveryOut,
    pub attempts_log: Vec<DeliveryAttemptOut>,
}

#[derive(Object, Debug)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryOut>,
    pub next_cursor: Option<String>,
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

const DELIVERY_COLUMNS: &str = "d.id, d.event_id, e.type as event_type, d.subscription_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at";

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
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<u32>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<SubscriptionPage>, ApiError> {
        let (rows, next) = subscriptions::list(&state.pool, limit.0, parse_cursor(cursor.0.as_deref())?).await?;
        Ok(Json(SubscriptionPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next.map(|i| i.to_string()),
        }))
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
        if let Some(s) = &b.status {
            if s != "enabled" && s != "disabled" {
                return Err(ApiError::invalid(&Invalid::new("status", "must be enabled or disabled")));
            }
        }
        check_rate(b.rate_limit_per_sec)?;
        let patch = subscriptions::Patch {
            url,
            event_types: types,
            description: b.description.clone(),
            status: b.status.clone(),
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
        Ok(Json(DeliveryRef { delivery_id: delivery::send_test(&state.pool, id.0).await? }))
    }

    /// Re-queue every failed delivery of this subscription since a time.
    #[oai(path = "/subscriptions/:id/recover", method = "post", operation_id = "v1.subscriptions.recover")]
    async fn recover(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>, body: Json<RecoverIn>) -> Result<Json<RecoverOut>, ApiError> {
        subscriptions::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
        Ok(Json(RecoverOut { requeued: delivery::recover(&state.pool, id.0, body.since).await? }))
    }

    /// Publish an event from the shop's own systems to its subscribers.
    #[oai(path = "/outbound-events", method = "post", operation_id = "v1.outbound_events.publish")]
    async fn publish(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<OutboundEventIn>) -> Result<PublishedEvent, ApiError> {
        let kind = body.kind.trim();
        if kind.is_empty() || kind.len() > 200 {
            return Err(ApiError::invalid(&Invalid::new("type", "must be 1-200 characters")));
        }
        let (id, created) = delivery::publish(&state.pool, kind, &body.payload, body.idempotency_key.as_deref()).await?;
        let event: OutboundEventOut = sqlx::query_as(
            "select id, type, payload, idempotency_key, source, created_at from outbox_events where id = $1",
        )
        .bind(id)
        .fetch_one(&state.pool)
        .await?;
        Ok(if created { PublishedEvent::Created(Json(event)) } else { PublishedEvent::Existing(Json(event)) })
    }

    /// Events published to subscribers (Relevo's own and the API's), newest first.
    #[oai(path = "/outbound-events", method = "get", operation_id = "v1.outbound_events.list")]
    async fn events(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<u32>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<OutboundEventPage>, ApiError> {
        let rows: Vec<OutboundEventOut> = sqlx::query_as(
            "select id, type, payload, idempotency_key, source, created_at from outbox_events
              where ($1::uuid is null or id < $1) order by id desc limit $2",
        )
        .bind(parse_cursor(cursor.0.as_deref())?)
        .bind(i64::from(limit.0) + 1)
        .fetch_all(&state.pool)
        .await?;
        let (items, next) = crate::db::page::split(rows, limit.0, |e| e.id.to_string());
        Ok(Json(OutboundEventPage { items, next_cursor: next }))
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
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))] limit: Query<u32>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<DeliveryPage>, ApiError> {
        let sql = format!(
            "select {DELIVERY_COLUMNS} from deliveries d join outbox_events e on e.id = d.event_id
              where ($1::uuid is null or d.subscription_id = $1) and ($2::text is null or d.status = $2)
                and ($3::text is null or e.type = $3) and ($4::uuid is null or d.id < $4)
              order by d.id desc limit $5"
        );
        let rows: Vec<DeliveryOut> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(subscription_id.0)
            .bind(status.0)
            .bind(event_type.0)
            .bind(parse_cursor(cursor.0.as_deref())?)
            .bind(i64::from(limit.0) + 1)
            .fetch_all(&state.pool)
            .await?;
        let (items, next) = crate::db::page::split(rows, limit.0, |d| d.id.to_string());
        Ok(Json(DeliveryPage { items, next_cursor: next }))
    }

    /// A delivery with every attempt: time, HTTP status or error, duration, response body.
    #[oai(path = "/deliveries/:id", method = "get", operation_id = "v1.deliveries.show")]
    async fn delivery(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<DeliveryDetailOut>, ApiError> {
        let sql = format!("select {DELIVERY_COLUMNS} from deliveries d join outbox_events e on e.id = d.event_id where d.id = $1");
        let d: DeliveryOut = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&state.pool)
            .await?
            .ok_or_else(|| ApiError::not_found("delivery"))?;
        let attempts = sqlx::query_as(
            "select attempt, started_at, duration_ms, status_code, error_kind, response_body
               from delivery_attempts where delivery_id = $1 order by id",
        )
        .bind(id.0)
        .fetch_all(&state.pool)
        .await?;
        Ok(Json(DeliveryDetailOut { delivery: d, attempts_log: attempts }))
    }

    /// Send a delivery again now.
    #[oai(path = "/deliveries/:id/resend", method = "post", operation_id = "v1.deliveries.resend")]
    async fn resend(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<DeliveryRef>, ApiError> {
        if !delivery::resend(&state.pool, id.0).await? {
            return Err(ApiError::not_found("delivery"));
        }
        Ok(Json(DeliveryRef { delivery_id: id.0 }))
    }
}

fn default_limit() -> u32 {
    50
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
