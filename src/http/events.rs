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

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{self, Limit, Page, PageItem},
    ApiTags, AppState,
};
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
    /// The run this event started; null when it was ignored, or when the run was
    /// pruned (`RELEVO_RETAIN_*_HOURS`) while the event is kept for audit.
    pub run_id: Option<Uuid>,
    /// Why the event was stored without starting a run (e.g. a HighLevel
    /// location that is not connected).
    pub ignored_reason: Option<String>,
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
            ignored_reason: e.ignored_reason,
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
    /// Status of the run the event started; null without a run.
    pub run_status: Option<String>,
}

impl PageItem for EventOut {
    const PAGE_NAME: &'static str = "EventPage";
    const CURSOR_DOC: Option<&'static str> = Some(page::NEXT_CURSOR_DOC);
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
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<EventOut>>, ApiError> {
        let cursor = page::parse_cursor(cursor.0.as_deref())?;
        let filter = EventFilter {
            provider: provider.0,
            kind: kind.0,
            since: since.0,
            until: until.0,
        };
        let (rows, next) = events::list(&state.pool, &filter, limit.get(), cursor).await?;
        Ok(Json(Page::from_rows(rows, next)))
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
