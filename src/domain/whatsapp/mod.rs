//! The WhatsApp message log: every message both ways (`whatsapp_messages`),
//! the shoppers they were with (`whatsapp_conversations`) and Meta's delivery
//! reports (`whatsapp_statuses`). The conversation flow writes it in its steps;
//! the API reads it.

pub mod log;
pub mod notices;
pub mod queue;
pub mod read;
pub mod statuses;

use serde::{Deserialize, Serialize};

/// Where a message stands, as shown to ops: Relevo's own state (`received`,
/// `queued`, `sent`, `failed` when its run gave up) merged with Meta's later
/// reports, never moving backwards (`whatsapp_status_rank`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum MessageStatus {
    Received,
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
    /// Not sent, on purpose (outside the 24 h window without a template); the
    /// reason is the row's error message.
    Skipped,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// The status a message shows, in SQL over `whatsapp_messages m`, its
/// `whatsapp_statuses s` (left joined on wamid) and its run `r` (left joined):
/// a queued reply whose run failed, was cancelled or was since pruned shows `failed`.
pub(crate) const SHOWN_STATUS_SQL: &str = "case
        when s.status is not null and whatsapp_status_rank(s.status) > whatsapp_status_rank(m.status) then s.status
        when m.status = 'queued' and (r.id is null or r.status in ('failed', 'cancelled')) then 'failed'
        else m.status end";
