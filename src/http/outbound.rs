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

mod dto;

pub use self::dto::*;

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
        let (sub, key) = subscriptions::create(&state.pool, &state.sealer, &new).await?;
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
        let key = subscriptions::rotate(&state.pool, &state.sealer, id.0).await?.ok_or_else(|| ApiError::not_found("subscription"))?;
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
