//! Reading the log for ops: conversations by latest activity, and one
//! conversation with its messages and open quote.

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use super::{Direction, MessageStatus, SHOWN_STATUS_SQL};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ConversationRow {
    pub wa_id: String,
    pub name: Option<String>,
    pub last_message_at: DateTime<Utc>,
    pub messages: i64,
    pub open_quote_id: Option<Uuid>,
}

/// Keyset position in the conversations list: `<micros>_<wa_id>` of the last
/// conversation of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationCursor {
    pub last_message_at: DateTime<Utc>,
    pub wa_id: String,
}

impl fmt::Display for ConversationCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.last_message_at.timestamp_micros(), self.wa_id)
    }
}

impl FromStr for ConversationCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (micros, wa_id) = s.split_once('_').ok_or(())?;
        let last_message_at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| ())?).ok_or(())?;
        Ok(Self { last_message_at, wa_id: wa_id.to_owned() })
    }
}

/// Conversations as listed; callers add conditions (`and …`).
const CONVERSATIONS: &str = "select c.wa_id, c.name, c.last_message_at,
        (select count(*) from whatsapp_messages m where m.wa_id = c.wa_id) as messages,
        (select q.id from quotes q where q.wa_id = c.wa_id and q.status = 'open') as open_quote_id
   from whatsapp_conversations c where true";

/// Conversations, latest activity first.
pub async fn list(
    pool: &PgPool,
    limit: u32,
    cursor: Option<ConversationCursor>,
) -> Result<(Vec<ConversationRow>, Option<ConversationCursor>), sqlx::Error> {
    let mut q = QueryBuilder::new(CONVERSATIONS);
    if let Some(c) = cursor {
        q.push(" and (c.last_message_at, c.wa_id) < (")
            .push_bind(c.last_message_at)
            .push(", ")
            .push_bind(c.wa_id)
            .push(")");
    }
    q.push(" order by c.last_message_at desc, c.wa_id desc limit ").push_bind(i64::from(limit) + 1);
    let rows: Vec<ConversationRow> = q.build_query_as().fetch_all(pool).await?;
    Ok(crate::db::page::split(rows, limit, |r| ConversationCursor {
        last_message_at: r.last_message_at,
        wa_id: r.wa_id.clone(),
    }))
}

/// One conversation's summary, as listed.
pub async fn summary(pool: &PgPool, wa_id: &str) -> Result<Option<ConversationRow>, sqlx::Error> {
    let mut q = QueryBuilder::new(CONVERSATIONS);
    q.push(" and c.wa_id = ").push_bind(wa_id);
    q.build_query_as().fetch_optional(pool).await
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub direction: Direction,
    pub wamid: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    pub status: MessageStatus,
    pub quote_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub attempts: i32,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct QuoteRow {
    pub id: Uuid,
    pub items: Value,
    pub total_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Conversation {
    pub wa_id: String,
    pub name: Option<String>,
    /// The latest `limit` messages, oldest first.
    pub messages: Vec<MessageRow>,
    pub open_quote: Option<QuoteRow>,
}

/// The conversation with `wa_id`, or `None` when Relevo never exchanged a message with it.
pub async fn show(pool: &PgPool, wa_id: &str, limit: u32) -> Result<Option<Conversation>, sqlx::Error> {
    let Some((name,)) = sqlx::query_as::<_, (Option<String>,)>("select name from whatsapp_conversations where wa_id = $1")
        .bind(wa_id)
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    // Only constants are formatted in: `SHOWN_STATUS_SQL`.
    let mut messages: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select m.id, m.direction, m.wamid, m.kind, m.body, ({SHOWN_STATUS_SQL}) as status, m.quote_id, m.run_id,
                m.attempts, coalesce(s.error_code, m.error_code) as error_code,
                coalesce(s.error_message, m.error_message) as error_message,
                m.created_at, coalesce(m.sent_at, s.sent_at) as sent_at, s.delivered_at, s.read_at
           from whatsapp_messages m
           left join whatsapp_statuses s on s.wamid = m.wamid and m.direction = 'outbound'
           left join engine.runs r on r.id = m.run_id
          where m.wa_id = $1
          order by m.id desc limit $2"
    )))
    .bind(wa_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    messages.reverse();
    let open_quote = sqlx::query_as(
        "select id, items, total_minor, currency::text as currency, created_at, expires_at
           from quotes where wa_id = $1 and status = 'open' and expires_at > now()",
    )
    .bind(wa_id)
    .fetch_optional(pool)
    .await?;
    Ok(Some(Conversation { wa_id: wa_id.to_owned(), name, messages, open_quote }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let cursor = ConversationCursor {
            last_message_at: DateTime::from_timestamp_micros(1_764_650_000_123_456).unwrap(),
            wa_id: "5215512345678".into(),
        };
        assert_eq!(cursor.to_string().parse::<ConversationCursor>(), Ok(cursor));
        assert!("nope".parse::<ConversationCursor>().is_err());
        assert!("x_1".parse::<ConversationCursor>().is_err());
    }
}
