//! The reply queue, as seed 003's ops know it: replies waiting to be sent,
//! those waiting for a retry, those whose run gave up, and a way to send
//! those again now. A reply is in the queue from the moment its message was
//! understood (`queued`) until the Graph API accepted it (`sent`). Whether a
//! reply's run gave up is read from `engine.runs` (SQL only: the domain does
//! not call the engine; the API retries those runs through `engine::ops`).

use sqlx::PgPool;
use uuid::Uuid;


/// How many failed replies `QueueStatus::failed_messages` lists.
pub const FAILED_LISTED: i64 = 100;

#[derive(Clone, Debug, PartialEq)]
pub struct QueueStatus {
    /// Replies not sent yet whose run is still trying (waiting retries
    /// included); a reply whose run was pruned is no longer in the queue.
    pub queue_size: i64,
    /// Of those, the ones that failed at least once and wait for their next try.
    pub pending_retry: i64,
    /// Replies whose run failed (`failed_runs`). A run an operator cancelled
    /// is their decision: its replies are neither queued nor counted here.
    pub failed: i64,
    /// The newest `FAILED_LISTED` of them.
    pub failed_messages: Vec<FailedMessage>,
    /// Over replies queued in the last 24 h and settled (sent or failed):
    /// the share that was sent; 1 when none settled.
    pub success_rate: f64,
    /// Over the same replies: send attempts per reply; 0 when none settled.
    pub avg_attempts: f64,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct FailedMessage {
    pub id: Uuid,
    /// The shopper's wa_id.
    pub to: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub async fn status(pool: &PgPool) -> Result<QueueStatus, sqlx::Error> {
    let counts = sqlx::query!(
        r#"select count(*) filter (where m.status = 'queued' and r.status in ('pending', 'running', 'sleeping')) as "queue_size!",
                  count(*) filter (where m.status = 'queued' and m.attempts > 0
                                      and r.status in ('pending', 'running', 'sleeping')) as "pending_retry!",
                  count(*) filter (where m.status = 'queued' and r.status = 'failed') as "failed!",
                  count(*) filter (where m.status = 'sent' and m.created_at > now() - interval '24 hours') as "sent_24h!",
                  count(*) filter (where m.status = 'queued' and r.status = 'failed'
                                      and m.created_at > now() - interval '24 hours') as "failed_24h!",
                  coalesce(sum(m.attempts) filter (where (m.status = 'sent' or r.status = 'failed')
                                                      and m.created_at > now() - interval '24 hours'), 0) as "attempts_24h!"
             from whatsapp_messages m join engine.runs r on r.id = m.run_id
            where m.direction = 'outbound' and (m.status = 'queued' or m.created_at > now() - interval '24 hours')"#,
    )
    .fetch_one(pool)
    .await?;
    let failed_messages = sqlx::query_as!(
        FailedMessage,
        r#"select m.id, m.wa_id as "to", m.attempts, coalesce(m.error_message, r.last_error_message) as last_error
             from whatsapp_messages m join engine.runs r on r.id = m.run_id
            where m.status = 'queued' and r.status = 'failed'
            order by m.id desc limit $1"#,
        FAILED_LISTED,
    )
    .fetch_all(pool)
    .await?;
    let settled = counts.sent_24h + counts.failed_24h;
    Ok(QueueStatus {
        queue_size: counts.queue_size,
        pending_retry: counts.pending_retry,
        failed: counts.failed,
        failed_messages,
        success_rate: if settled == 0 { 1.0 } else { counts.sent_24h as f64 / settled as f64 },
        avg_attempts: if settled == 0 { 0.0 } else { counts.attempts_24h as f64 / settled as f64 },
    })
}

/// The runs whose replies failed to send, with how many replies each holds
/// (what `POST /api/v1/whatsapp/retry` retries).
pub async fn failed_runs(pool: &PgPool) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let runs = sqlx::query!(
        r#"select m.run_id as "run_id!", count(*) as "replies!"
             from whatsapp_messages m join engine.runs r on r.id = m.run_id
            where m.status = 'queued' and r.status = 'failed'
            group by m.run_id order by m.run_id"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(runs.into_iter().map(|r| (r.run_id, r.replies)).collect())
}
