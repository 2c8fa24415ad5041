//! Writes to the message log, each in the conversation flow's step that owns
//! the fact: the incoming message and the queued replies in the `quote` step's
//! transaction (exactly once), a send's outcome right after the Graph API call.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An incoming message.
#[derive(Clone, Debug)]
pub struct Incoming<'a> {
    pub wa_id: &'a str,
    pub wamid: &'a str,
    pub kind: &'a str,
    pub body: Option<&'a str>,
    /// The shopper's WhatsApp profile name, when Meta sent one.
    pub name: Option<&'a str>,
    pub run_id: Uuid,
    pub quote_id: Option<Uuid>,
}

/// Records `message` and its sender's conversation (profile name, latest
/// activity). A message already recorded (same wamid) is left as it is.
pub async fn record_incoming_using(conn: &mut PgConnection, message: &Incoming<'_>) -> Result<(), sqlx::Error> {
    touch_conversation_using(conn, message.wa_id, message.name).await?;
    sqlx::query!(
        "insert into whatsapp_messages (wa_id, direction, wamid, kind, body, quote_id, run_id, status)
         values ($1, 'inbound', $2, $3, $4, $5, $6, 'received')
         on conflict (wamid) where wamid is not null do nothing",
        message.wa_id,
        message.wamid,
        message.kind,
        message.body,
        message.quote_id,
        message.run_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A reply the flow will send in step `step` of run `run_id`.
#[derive(Clone, Debug)]
pub struct Reply<'a> {
    pub step: &'a str,
    pub body: &'a str,
}

/// Queues the replies of run `run_id` to `wa_id` (one row per send step). The
/// conversation must exist (`record_incoming_using` or `touch_conversation_using`).
pub async fn queue_replies_using(
    conn: &mut PgConnection,
    wa_id: &str,
    run_id: Uuid,
    quote_id: Option<Uuid>,
    replies: &[Reply<'_>],
) -> Result<(), sqlx::Error> {
    let steps: Vec<&str> = replies.iter().map(|r| r.step).collect();
    let bodies: Vec<&str> = replies.iter().map(|r| r.body).collect();
    sqlx::query!(
        "insert into whatsapp_messages (wa_id, direction, kind, body, quote_id, run_id, step, status)
         select $1, 'outbound', 'text', body, $2, $3, step, 'queued'
           from unnest($4::text[], $5::text[]) with ordinality as t(step, body, n) order by n
         on conflict (run_id, step) where step is not null do nothing",
        wa_id,
        quote_id,
        run_id,
        &steps as &[&str],
        &bodies as &[&str],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues (or, with `skipped`, records as not sent, and why) a message to
/// `wa_id` that answers no message: an order notice sent by run `run_id`'s step `step`.
pub async fn queue_notice_using(
    conn: &mut PgConnection,
    wa_id: &str,
    run_id: Uuid,
    step: &str,
    body: &str,
    skipped: Option<&str>,
) -> Result<(), sqlx::Error> {
    touch_conversation_using(conn, wa_id, None).await?;
    sqlx::query!(
        "insert into whatsapp_messages (wa_id, direction, kind, body, run_id, step, status, error_message)
         values ($1, 'outbound', 'text', $2, $3, $4, case when $5::text is null then 'queued' else 'skipped' end, $5)
         on conflict (run_id, step) where step is not null do nothing",
        wa_id,
        body,
        run_id,
        step,
        skipped,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether Meta still takes free-form messages to `wa_id`: they wrote within
/// the last 24 hours (the customer-service window).
pub async fn window_open_using(conn: &mut PgConnection, wa_id: &str) -> Result<bool, sqlx::Error> {
    let open = sqlx::query_scalar!(
        r#"select exists(select 1 from whatsapp_messages
                          where wa_id = $1 and direction = 'inbound' and created_at > now() - interval '24 hours') as "open!""#,
        wa_id,
    )
    .fetch_one(conn)
    .await?;
    Ok(open)
}

/// What one send attempt came to.
#[derive(Clone, Debug)]
pub enum SendOutcome<'a> {
    Sent { wamid: Option<&'a str> },
    Failed { code: Option<i64>, message: &'a str },
}

/// Records one send attempt of run `run_id`'s step `step`. Best effort by
/// design: the step's checkpoint, not this row, is what keeps a reply from
/// being sent twice.
pub async fn record_send(pool: &PgPool, run_id: Uuid, step: &str, outcome: SendOutcome<'_>) -> Result<(), sqlx::Error> {
    match outcome {
        SendOutcome::Sent { wamid } => sqlx::query!(
            "update whatsapp_messages set status = 'sent', wamid = coalesce($3, wamid), attempts = attempts + 1,
                    sent_at = now(), updated_at = now()
              where run_id = $1 and step = $2",
            run_id,
            step,
            wamid,
        )
        .execute(pool)
        .await?,
        SendOutcome::Failed { code, message } => sqlx::query!(
            "update whatsapp_messages set attempts = attempts + 1, error_code = $3, error_message = $4, updated_at = now()
              where run_id = $1 and step = $2 and status = 'queued'",
            run_id,
            step,
            code.and_then(|c| i32::try_from(c).ok()),
            message,
        )
        .execute(pool)
        .await?,
    };
    Ok(())
}

/// Creates `wa_id`'s conversation or marks its latest activity now (and keeps
/// the profile name Meta last sent).
pub async fn touch_conversation_using(conn: &mut PgConnection, wa_id: &str, name: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into whatsapp_conversations (wa_id, name) values ($1, $2)
         on conflict (wa_id) do update
            set name = coalesce(excluded.name, whatsapp_conversations.name), last_message_at = now()",
        wa_id,
        name,
    )
    .execute(conn)
    .await?;
    Ok(())
}
