//! `whatsapp_conversation`, keyed by the shopper (`wa:<wa_id>`): one run per
//! incoming WhatsApp message; one shopper's runs never overlap and start in
//! the order they were created. Known gap: runs are created by the (parallel)
//! `inbound_event` runs, so two messages of one shopper arriving within the
//! same instant may be created in either order; the message timestamp is not
//! yet used to reorder them.
//!
//! 1. `mark_read` — best effort: a failure is recorded in the checkpoint and
//!    never blocks the reply.
//! 2. `quote` — understand the message and store its effect, in one
//!    transaction: a text with products becomes the shopper's open quote
//!    (superseding the previous one); "sí" / "no" to the open quote confirms or
//!    declines it; other message types get the "text only" instruction. The
//!    checkpoint holds the reply texts.
//! 3. `send_reply` (then `send_reply_2`, … for answers over 4,096 characters) —
//!    one Graph API send per part, each checkpointed, replying to the
//!    incoming wamid (`context.message_id`).

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::quotes::{
        conversation::{self, Answer, QuoteStatus},
        money, reply,
        store::{self, IndexCache},
    },
    engine::{RetryPolicy, RunCtx, StepError, Workflow},
    providers::whatsapp::client::{self, Client, Sent},
};

/// How many catalog products the "text only" answer shows.
const EXAMPLES: usize = 2;

pub struct WhatsAppConversation {
    /// `Err` names the missing setting (WHATSAPP_ACCESS_TOKEN or
    /// WHATSAPP_PHONE_NUMBER_ID): quotes are stored, sends fail permanently.
    pub client: Result<Arc<Client>, String>,
    /// Transient send failures (WHATSAPP_SEND_RETRY_SCHEDULE).
    pub retry: RetryPolicy,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WhatsAppConversationInput {
    pub wa_id: String,
    pub wamid: String,
    /// The WhatsApp message type (`text`, `image`, `button`, …).
    pub kind: String,
    pub text: Option<String>,
    pub name: Option<String>,
    /// The inbound event that carried the message.
    pub event_id: Option<Uuid>,
}

/// The `mark_read` checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MarkedRead {
    pub ok: bool,
    pub error: Option<String>,
}

/// What the message meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new open quote.
    Quoted,
    /// No catalog product was recognised; nothing stored.
    NotUnderstood,
    Confirmed,
    Declined,
    /// A yes/no to a quote older than 24 h: marked expired.
    Expired,
    /// A yes/no with no open quote.
    NoOpenQuote,
    /// An image, audio, sticker, …: only text is read.
    NonText,
}

/// The `quote` checkpoint: what was understood and the reply to send.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Understood {
    pub outcome: Outcome,
    pub quote_id: Option<Uuid>,
    pub replies: Vec<String>,
}

impl Workflow for WhatsAppConversation {
    const NAME: &'static str = "whatsapp_conversation";
    type Input = WhatsAppConversationInput;

    fn ordering_key(input: &WhatsAppConversationInput) -> Option<String> {
        Some(format!("wa:{}", input.wa_id))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    async fn run(&self, ctx: &mut RunCtx, input: WhatsAppConversationInput) -> Result<(), StepError> {
        let (client, wamid) = (self.client.clone(), input.wamid.clone());
        let _: MarkedRead = ctx
            .step("mark_read", |_| async move {
                let result = match client {
                    Ok(client) => client.mark_read(&wamid).await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(missing) => Err(missing),
                };
                Ok(match result {
                    Ok(()) => MarkedRead { ok: true, error: None },
                    Err(error) => {
                        tracing::warn!(%wamid, %error, "marking a WhatsApp message read failed; replying anyway");
                        MarkedRead { ok: false, error: Some(error) }
                    }
                })
            })
            .await?;

        let pool = ctx.pool().clone();
        let (wa_id, wamid, text) = (input.wa_id.clone(), input.wamid.clone(), input.text.clone());
        let understood: Understood = ctx
            .tx_step("quote", move |tx, _| Box::pin(async move { understand_using(tx, &pool, &wa_id, &wamid, text).await }))
            .await?;

        for (i, body) in understood.replies.into_iter().enumerate() {
            let step = if i == 0 { "send_reply".to_owned() } else { format!("send_reply_{}", i + 1) };
            let (client, to, wamid) = (self.client.clone(), input.wa_id.clone(), input.wamid.clone());
            let _: Sent = ctx
                .step(&step, |_| async move {
                    let client = client.map_err(StepError::permanent)?;
                    client.send_text(&to, &body, Some(&wamid)).await.map_err(whatsapp_step_error)
                })
                .await?;
        }
        Ok(())
    }
}

/// Decides what the message means and stores it, in the step's transaction.
async fn understand_using(
    tx: &mut PgConnection,
    pool: &PgPool,
    wa_id: &str,
    wamid: &str,
    text: Option<String>,
) -> Result<Understood, StepError> {
    let Some(text) = text else {
        let examples = IndexCache::global().current(pool).await.map_err(quote_error)?.examples(EXAMPLES);
        return Ok(Understood { outcome: Outcome::NonText, quote_id: None, replies: vec![reply::non_text(&examples)] });
    };
    if let Some(answer) = conversation::answer(&text) {
        let Some(open) = conversation::get_open_quote_using(tx, wa_id).await? else {
            return Ok(Understood {
                outcome: Outcome::NoOpenQuote,
                quote_id: None,
                replies: vec!["No tienes una cotización pendiente. Escríbeme qué productos quieres y cuántos de cada uno, por ejemplo: \"2 zapatos y 1 camisa\".".into()],
            });
        };
        let (outcome, status, answer_text) = if open.expires_at <= Utc::now() {
            (
                Outcome::Expired,
                QuoteStatus::Expired,
                "⌛ Tu cotización ya venció (es válida por 24 horas). Envíame de nuevo tu pedido y te preparo una nueva.".to_owned(),
            )
        } else {
            match answer {
                Answer::Yes => (
                    Outcome::Confirmed,
                    QuoteStatus::Confirmed,
                    format!(
                        "✅ ¡Gracias! Tu pedido por {} quedó confirmado y ya lo estamos preparando. En breve te enviamos los detalles para el pago.",
                        money::format(open.total_minor, &open.currency)
                    ),
                ),
                Answer::No => (
                    Outcome::Declined,
                    QuoteStatus::Declined,
                    "De acuerdo, cancelé tu cotización. 😊 Cuando quieras, escríbeme tu pedido y con gusto te preparo una nueva.".to_owned(),
                ),
            }
        };
        conversation::update_quote_status_using(tx, open.id, status).await?;
        return Ok(Understood { outcome, quote_id: Some(open.id), replies: vec![answer_text] });
    }
    let quote = store::quote_message(pool, &text).await.map_err(quote_error)?;
    let replies = reply::render(&quote);
    if quote.lines.is_empty() {
        return Ok(Understood { outcome: Outcome::NotUnderstood, quote_id: None, replies });
    }
    let id = conversation::insert_open_quote_using(tx, wa_id, wamid, &quote).await?;
    Ok(Understood { outcome: Outcome::Quoted, quote_id: Some(id), replies })
}

fn quote_error(e: store::Error) -> StepError {
    StepError::transient(format!("quoting failed: {e}"))
}

/// Throttling resumes later without burning an attempt; 5xx, timeouts and
/// connection errors back off; the rest (24 h window, token, …) will not change.
fn whatsapp_step_error(e: client::Error) -> StepError {
    match e {
        client::Error::RateLimited { retry_after_secs, .. } => {
            StepError::rate_limited(Utc::now() + chrono::Duration::seconds(retry_after_secs), e)
        }
        e if e.is_transient() => StepError::transient(e),
        e => StepError::permanent(e),
    }
}
