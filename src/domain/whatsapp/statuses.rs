//! Meta's delivery reports (`statuses[]` in a webhook), merged per message id:
//! they arrive repeated and out of order, and a status never moves backwards
//! (read after delivered after sent; failed is final and keeps its error).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// A status Meta reports for a message Relevo sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reported {
    Sent,
    Delivered,
    /// Also Meta's `played` (a voice message listened to).
    Read,
    Failed,
}

impl Reported {
    /// Meta's `status` value; `None` for one Relevo does not know.
    pub fn parse(status: &str) -> Option<Self> {
        match status {
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" | "played" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }
}

/// One report, as the webhook carried it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub wamid: String,
    pub status: Reported,
    pub recipient: Option<String>,
    /// Meta's `timestamp`.
    pub at: Option<DateTime<Utc>>,
    /// `errors[0]` of a `failed` report.
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
}

/// Merges `report` into the message's reports, in the caller's transaction.
pub async fn apply_using(conn: &mut PgConnection, report: &StatusReport) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into whatsapp_statuses as s (wamid, recipient, status, error_code, error_message,
                                             sent_at, delivered_at, read_at, failed_at)
         values ($1, $2, $3, $4, $5,
                 case when $3 = 'sent' then $6::timestamptz end, case when $3 = 'delivered' then $6 end,
                 case when $3 = 'read' then $6 end, case when $3 = 'failed' then $6 end)
         on conflict (wamid) do update set
             status = case when whatsapp_status_rank(excluded.status) > whatsapp_status_rank(s.status)
                           then excluded.status else s.status end,
             recipient = coalesce(s.recipient, excluded.recipient),
             error_code = coalesce(excluded.error_code, s.error_code),
             error_message = coalesce(excluded.error_message, s.error_message),
             sent_at = coalesce(s.sent_at, excluded.sent_at),
             delivered_at = coalesce(s.delivered_at, excluded.delivered_at),
             read_at = coalesce(s.read_at, excluded.read_at),
             failed_at = coalesce(s.failed_at, excluded.failed_at),
             updated_at = now()",
        report.wamid,
        report.recipient,
        report.status.as_str(),
        report.error_code.and_then(|c| i32::try_from(c).ok()),
        report.error_message,
        report.at.unwrap_or_else(Utc::now),
    )
    .execute(conn)
    .await?;
    Ok(())
}
