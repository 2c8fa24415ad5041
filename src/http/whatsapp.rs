//! `/api/v1/conversations` and `/api/v1/whatsapp/*`: the WhatsApp message log
//! by shopper, and the reply queue (seed 003's queue status and manual retry).

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
    runs::ops_error,
    ApiTags, AppState,
};
use crate::{
    domain::whatsapp::{
        queue,
        read::{self, ConversationRow, MessageRow, QuoteRow},
    },
    engine::ops,
};

#[derive(Object, Debug)]
pub struct ConversationOut {
    /// The shopper's WhatsApp number (E.164 digits, as Meta sends it).
    pub wa_id: String,
    /// Their WhatsApp profile name, as Meta last sent it.
    pub name: Option<String>,
    pub last_message_at: DateTime<Utc>,
    /// Messages both ways.
    pub messages: i64,
    /// Their open quote, if any.
    pub open_quote_id: Option<Uuid>,
}

impl From<ConversationRow> for ConversationOut {
    fn from(c: ConversationRow) -> Self {
        Self {
            wa_id: c.wa_id,
            name: c.name,
            last_message_at: c.last_message_at,
            messages: c.messages,
            open_quote_id: c.open_quote_id,
        }
    }
}

impl PageItem for ConversationOut {
    const PAGE_NAME: &'static str = "ConversationPage";
    const CURSOR_DOC: Option<&'static str> = Some(page::NEXT_CURSOR_DOC);
}

#[derive(Object, Debug)]
pub struct MessageOut {
    pub id: Uuid,
    /// `inbound` (from the shopper) or `outbound` (a reply).
    pub direction: String,
    /// Meta's message id; an outbound reply has one once sent.
    pub wamid: Option<String>,
    /// `text`, `image`, `audio`, `button`, …
    #[oai(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    /// `received` (inbound); `queued`, `sent`, `delivered`, `read` or `failed`
    /// (outbound; never moves backwards); `skipped` for an order notice that
    /// could not go out (outside the 24 h window without a template), with
    /// the reason in `error_message`.
    pub status: String,
    /// The quote the message asked for or answered.
    pub quote_id: Option<Uuid>,
    /// The conversation run that received or sends it.
    pub run_id: Option<Uuid>,
    /// Send attempts (outbound).
    pub attempts: i32,
    /// Meta's error code of the last failed attempt or delivery.
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for MessageOut {
    fn from(m: MessageRow) -> Self {
        Self {
            id: m.id,
            direction: m.direction.as_str().to_owned(),
            wamid: m.wamid,
            kind: m.kind,
            text: m.body,
            status: m.status.as_str().to_owned(),
            quote_id: m.quote_id,
            run_id: m.run_id,
            attempts: m.attempts,
            error_code: m.error_code,
            error_message: m.error_message,
            created_at: m.created_at,
            sent_at: m.sent_at,
            delivered_at: m.delivered_at,
            read_at: m.read_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct OpenQuoteOut {
    pub id: Uuid,
    /// `[{sku, name, quantity, unit_price_minor, subtotal_minor, currency, confidence}]`
    pub items: Value,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    /// A "sí" after this time no longer confirms it.
    pub expires_at: DateTime<Utc>,
}

impl From<QuoteRow> for OpenQuoteOut {
    fn from(q: QuoteRow) -> Self {
        Self {
            id: q.id,
            items: q.items,
            total_minor: q.total_minor,
            currency: q.currency,
            created_at: q.created_at,
            expires_at: q.expires_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct ConversationDetailOut {
    pub wa_id: String,
    pub name: Option<String>,
    /// The latest `limit` messages, oldest first.
    pub messages: Vec<MessageOut>,
    /// The shopper's open, unexpired quote.
    pub open_quote: Option<OpenQuoteOut>,
}

#[derive(Object, Debug)]
pub struct FailedMessageOut {
    /// The reply's message id (as in the conversation).
    pub id: Uuid,
    /// The shopper's wa_id.
    pub to: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Object, Debug)]
pub struct QueueStatusOut {
    /// Replies not sent yet whose run is still trying (waiting retries included).
    pub queue_size: i64,
    /// Of those, the ones that failed at least once and wait for their next try.
    pub pending_retry: i64,
    /// Replies whose run gave up (retried by `POST /api/v1/whatsapp/retry`).
    pub failed: i64,
    /// The newest 100 failed replies.
    pub failed_messages: Vec<FailedMessageOut>,
    /// Share of replies queued in the last 24 h that were sent, of those
    /// settled (sent or failed); 1 when none settled.
    pub success_rate: f64,
    /// Send attempts per settled reply over the same 24 h; 0 when none settled.
    pub avg_attempts: f64,
}

#[derive(Object, Debug)]
pub struct RetriedOut {
    /// Failed replies put back in the queue (their runs resume at the send).
    pub messages_retried: i64,
}

#[derive(Default)]
pub struct WhatsAppApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::WhatsApp")]
impl WhatsAppApi {
    /// List WhatsApp conversations, latest activity first.
    #[oai(path = "/conversations", method = "get", operation_id = "v1.conversations.list")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<ConversationOut>>, ApiError> {
        let cursor = page::parse_cursor(cursor.0.as_deref())?;
        let (rows, next) = read::list(&state.pool, limit.get(), cursor).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Show one conversation: the shopper's latest messages both ways (with
    /// their delivery status) and their open quote.
    #[oai(path = "/conversations/:wa_id", method = "get", operation_id = "v1.conversations.show")]
    async fn show(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        wa_id: Path<String>,
        /// How many of the latest messages (1–1000, default 50).
        limit: Limit,
    ) -> Result<Json<ConversationDetailOut>, ApiError> {
        let conversation = read::show(&state.pool, &wa_id.0, limit.get())
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        Ok(Json(ConversationDetailOut {
            wa_id: conversation.wa_id,
            name: conversation.name,
            messages: conversation.messages.into_iter().map(Into::into).collect(),
            open_quote: conversation.open_quote.map(Into::into),
        }))
    }

    /// The reply queue: replies waiting to be sent, waiting for a retry, and
    /// failed (with the newest 100 failures and their last error).
    #[oai(path = "/whatsapp/queue-status", method = "get", operation_id = "v1.whatsapp.queue_status")]
    async fn queue_status(&self, _auth: AdminAuth, state: Data<&AppState>) -> Result<Json<QueueStatusOut>, ApiError> {
        let status = queue::status(&state.pool).await?;
        Ok(Json(QueueStatusOut {
            queue_size: status.queue_size,
            pending_retry: status.pending_retry,
            failed: status.failed,
            failed_messages: status
                .failed_messages
                .into_iter()
                .map(|m| FailedMessageOut { id: m.id, to: m.to, attempts: m.attempts, last_error: m.last_error })
                .collect(),
            success_rate: status.success_rate,
            avg_attempts: status.avg_attempts,
        }))
    }

    /// Send every failed reply again now: each failed conversation run
    /// resumes at its send step (nothing understood or stored is redone).
    /// Runs an operator cancelled stay cancelled.
    #[oai(path = "/whatsapp/retry", method = "post", operation_id = "v1.whatsapp.retry")]
    async fn retry(&self, _auth: AdminAuth, state: Data<&AppState>) -> Result<Json<RetriedOut>, ApiError> {
        let mut messages_retried = 0;
        for (run_id, messages) in queue::failed_runs(&state.pool).await? {
            match ops::retry(&state.pool, run_id, None, None).await {
                Ok(()) => messages_retried += messages,
                // Retried meanwhile by someone else, or pruned: nothing to do.
                Err(ops::Error::Conflict(_) | ops::Error::NotFound) => {}
                Err(e) => return Err(ops_error(e)),
            }
        }
        Ok(Json(RetriedOut { messages_retried }))
    }
}
