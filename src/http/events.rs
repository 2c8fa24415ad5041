//! `/api/v1/events`: the inbound webhook log.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};
use serde_json::Value;
use uuid::Uuid;

use super::{auth::AdminAuth, error::ApiError, ApiTags, AppState};
use crate::ingest::events::{self, EventFilter, EventRow};

#[derive(Object, Debug)]
pub struct EventOut {
    pub id: Uuid,
    /// stripe, mercadopago, whatsapp or highlevel
    pub provider: String,
    /// The provider's id for the event (Stripe event id, wamid, webhookId, …).
    pub provider_event_id: Option<String>,
    #[oai(rename = "type")]
    pub kind: String,
    pub received_at: DateTime<Utc>,
    /// The run this event started.
    pub run_id: Uuid,
}

impl From<EventRow> for EventOut {
    fn from(e: EventRow) -> Self {
        Self {
            id: e.id,
            provider: e.provider,
            provider_event_id: e.provider_event_id,
            kind: e.kind,
            received_at: e.received_at,
            run_id: e.run_id,
        }
    }
}

#[derive(Object, Debug)]
pub struct EventDetailOut {
    #[oai(flatten)]
    pub event: EventOut,
    /// The event's JSON as received.
    pub payload: Value,
    /// Request headers kept for audit (signatures, request ids).
    pub headers: Value,
    /// Status of the run the event started.
    pub run_status: String,
}

#[derive(Object, Debug)]
pub struct EventPage {
    pub items: Vec<EventOut>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Default)]
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// List received webhook events, newest first.
    #[oai(path = "/events", method = "get", operation_id = "v1.events.list")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        provider: Query<Option<String>>,
        #[oai(name = "type")] kind: Query<Option<String>>,
        /// Received at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Received before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// Page size (1–1000, default 50).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<u32>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let cursor = super::parse_cursor(cursor.0.as_deref())?;
        let filter = EventFilter {
            provider: provider.0,
            kind: kind.0,
            since: since.0,
            until: until.0,
        };
        let (rows, next) = events::list(&state.pool, &filter, limit.0, cursor).await?;
        Ok(Json(EventPage {
            items: rows.into_iter().map(EventOut::from).collect(),
            next_cursor: next.map(|id| id.to_string()),
        }))
    }

    /// Show one event with its payload, kept headers and its run's status.
    #[oai(path = "/events/:id", method = "get", operation_id = "v1.events.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<EventDetailOut>, ApiError> {
        let detail = events::show(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("event"))?;
        Ok(Json(EventDetailOut {
            event: detail.event.into(),
            payload: detail.payload,
            headers: detail.headers,
            run_status: detail.run_status,
        }))
    }
}

fn default_limit() -> u32 {
    50
}
