//! `whatsapp_conversation`, keyed by the shopper (`wa:<wa_id>`): one run per
//! incoming WhatsApp message; one shopper's runs never overlap and start in
//! the order they were created, which is the order the messages arrived in
//! (the `inbound_event` runs that create them are keyed by the sender too).
//!
//! 1. `mark_read` — best effort: a failure is recorded in the checkpoint and
//!    never blocks the reply.
//! 2. `quote` — understand the message and store its effect, in one
//!    transaction: a text with products becomes the shopper's open quote
//!    (superseding the previous one); "no" to the open quote declines it; "sí"
//!    places the order (see `whatsapp_checkout`), or, if the catalog moved or
//!    the quote expired, offers the quote at today's prices; other message
//!    types get the "text only" instruction. The message and the replies
//!    (`queued`) go to the message log in the same transaction. The checkpoint
//!    holds the reply texts and the order placed.
//! 3. `send_reply` (then `send_reply_2`, … for answers over 4,096 characters) —
//!    one Graph API send per part, each checkpointed, replying to the
//!    incoming wamid (`context.message_id`). Each attempt's outcome is
//!    recorded on the reply's log row (attempts, Meta's error, `sent`).
//! 4. After an order: `payment_link` (Stripe Checkout Session or Mercado Pago
//!    preference, idempotency key `run_id:payment_link`), `record_link` (the
//!    link on the order, the message queued) and `send_link`.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    whatsapp_checkout::{self as checkout, record_link_using, Checkout, Confirmed, Placed},
    whatsapp_sender::{Outgoing, Sender},
};
use crate::{
    domain::quotes::{
        conversation::{self, Answer, QuoteStatus},
        reply,
        store::{self, IndexCache},
    },
    domain::{customers, orders::from_quote, whatsapp::log},
    engine::{RetryPolicy, RunCtx, StepError, Workflow},
    providers::payment::PaymentLink,
};

/// How many catalog products the "text only" answer shows.
const EXAMPLES: usize = 2;

pub struct WhatsAppConversation {
    /// Without WHATSAPP_ACCESS_TOKEN or WHATSAPP_PHONE_NUMBER_ID quotes are
    /// still stored; sends fail permanently naming the setting.
    pub sender: Sender,
    /// Transient send failures (WHATSAPP_SEND_RETRY_SCHEDULE).
    pub retry: RetryPolicy,
    /// Orders and payment links for confirmed quotes.
    pub checkout: Arc<Checkout>,
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
    /// Before payment links: "sí" only marked the quote confirmed. Kept so
    /// checkpoints of that time still read.
    Confirmed,
    Declined,
    /// A yes/no to a quote older than 24 h: marked expired.
    Expired,
    /// A yes/no with no open quote.
    NoOpenQuote,
    /// "Sí" placed an order; its payment link follows.
    Ordered,
    /// "Sí" to a quote the catalog has moved away from (or that expired): the
    /// quote at today's prices was offered instead.
    Requoted,
    /// An image, audio, sticker, …: only text is read.
    NonText,
}

/// The `quote` checkpoint: what was understood and the reply to send.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Understood {
    pub outcome: Outcome,
    pub quote_id: Option<Uuid>,
    pub replies: Vec<String>,
    /// The order "sí" placed.
    #[serde(default)]
    pub order: Option<Placed>,
}

impl Workflow for WhatsAppConversation {
    const NAME: &'static str = "whatsapp_conversation";
    type Input = WhatsAppConversationInput;

    fn ordering_key(input: &WhatsAppConversationInput) -> Option<String> {
        Some(format!("wa:{}", input.wa_id))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone()
    }

    async fn run(&self, ctx: &mut RunCtx, input: WhatsAppConversationInput) -> Result<(), StepError> {
        let (sender, wamid) = (self.sender.clone(), input.wamid.clone());
        let _: MarkedRead = ctx
            .step("mark_read", |_| async move {
                Ok(match sender.mark_read(&wamid).await {
                    Ok(()) => MarkedRead { ok: true, error: None },
                    Err(error) => {
                        tracing::warn!(%wamid, %error, "marking a WhatsApp message read failed; replying anyway");
                        MarkedRead { ok: false, error: Some(error) }
                    }
                })
            })
            .await?;

        let pool = ctx.pool().clone();
        let message = input.clone();
        let understood: Understood = ctx
            .tx_step("quote", move |tx, info| {
                Box::pin(async move {
                    // One customer per WhatsApp number from the first message on, named as Meta last said.
                    let details = customers::Details { name: message.name.as_deref(), phone: None };
                    let customer = customers::upsert_using(tx, customers::Identity::WhatsApp(&message.wa_id), details).await?;
                    let understood = understand_using(tx, &pool, &message, &customer).await?;
                    record_using(tx, info.run_id, &message, &understood).await?;
                    Ok(understood)
                })
            })
            .await?;

        for (i, body) in understood.replies.into_iter().enumerate() {
            let reply = Outgoing::Text { body, reply_to: Some(input.wamid.clone()) };
            self.sender.send(ctx, &send_step(i), &input.wa_id, reply).await?;
        }
        let Some(placed) = understood.order else { return Ok(()) };
        let checkout = self.checkout.clone();
        let for_link = placed.clone();
        let link: PaymentLink = ctx
            .step("payment_link", |info| async move { checkout.create_link(&for_link, info.idempotency_key).await })
            .await?;
        let text = self.checkout.link_message(&placed, &link);
        let (wa_id, body) = (input.wa_id.clone(), text.clone());
        let _: bool = ctx
            .tx_step("record_link", move |tx, info| {
                Box::pin(async move {
                    record_link_using(tx, placed.order_id, &link).await?;
                    log::touch_conversation_using(tx, &wa_id, None).await?;
                    let reply = [log::Reply { step: "send_link", body: &body }];
                    log::queue_replies_using(tx, &wa_id, info.run_id, None, &reply).await?;
                    Ok(true)
                })
            })
            .await?;
        let reply = Outgoing::Text { body: text, reply_to: Some(input.wamid.clone()) };
        self.sender.send(ctx, "send_link", &input.wa_id, reply).await
    }
}

/// The step that sends reply part `i` (0-based).
fn send_step(i: usize) -> String {
    if i == 0 {
        "send_reply".to_owned()
    } else {
        format!("send_reply_{}", i + 1)
    }
}

/// The message and its queued replies, in the `quote` step's transaction.
async fn record_using(
    tx: &mut PgConnection,
    run_id: Uuid,
    message: &WhatsAppConversationInput,
    understood: &Understood,
) -> Result<(), StepError> {
    log::record_incoming_using(
        tx,
        &log::Incoming {
            wa_id: &message.wa_id,
            wamid: &message.wamid,
            kind: &message.kind,
            body: message.text.as_deref(),
            name: message.name.as_deref(),
            run_id,
            quote_id: understood.quote_id,
        },
    )
    .await?;
    let steps: Vec<String> = (0..understood.replies.len()).map(send_step).collect();
    let replies: Vec<log::Reply> = steps
        .iter()
        .zip(&understood.replies)
        .map(|(step, body)| log::Reply { step, body })
        .collect();
    log::queue_replies_using(tx, &message.wa_id, run_id, understood.quote_id, &replies).await?;
    metrics::counter!("relevo_whatsapp_messages_received_total").increment(1);
    Ok(())
}

/// Decides what the message means and stores it, in the step's transaction.
async fn understand_using(
    tx: &mut PgConnection,
    pool: &PgPool,
    message: &WhatsAppConversationInput,
    customer: &customers::CustomerRow,
) -> Result<Understood, StepError> {
    let (wa_id, wamid) = (message.wa_id.as_str(), message.wamid.as_str());
    let reply = |outcome, quote_id, text: &str| Understood { outcome, quote_id, replies: vec![text.to_owned()], order: None };
    let Some(text) = message.text.clone() else {
        let examples = IndexCache::global().current(pool).await.map_err(quote_error)?.examples(EXAMPLES);
        return Ok(reply(Outcome::NonText, None, &reply::non_text(&examples)));
    };
    if let Some(answer) = conversation::answer(&text) {
        let Some(open) = conversation::get_open_quote_using(tx, wa_id).await? else {
            return Ok(reply(
                Outcome::NoOpenQuote,
                None,
                "No tienes una cotización pendiente. Escríbeme qué productos quieres y cuántos de cada uno, por ejemplo: \"2 zapatos y 1 camisa\".",
            ));
        };
        let expired = open.expires_at <= Utc::now();
        let confirmed = match (answer, expired) {
            (Answer::No, _) => {
                let status = if expired { QuoteStatus::Expired } else { QuoteStatus::Declined };
                conversation::update_quote_status_using(tx, open.id, status).await?;
                return Ok(reply(
                    Outcome::Declined,
                    Some(open.id),
                    "De acuerdo, cancelé tu cotización. 😊 Cuando quieras, escríbeme tu pedido y con gusto te preparo una nueva.",
                ));
            }
            (Answer::Yes, true) => {
                conversation::update_quote_status_using(tx, open.id, QuoteStatus::Expired).await?;
                let (today, _) = from_quote::reprice_using(tx, &open).await?;
                let note = "⌛ Tu cotización venció (es válida por 24 horas), así que no creé el pedido.";
                checkout::requote_using(tx, wa_id, wamid, &open, today, note).await?
            }
            (Answer::Yes, false) => checkout::confirm_using(tx, wa_id, wamid, customer, &open).await?,
        };
        return Ok(match confirmed {
            Confirmed::Ordered(placed) => {
                Understood { outcome: Outcome::Ordered, quote_id: Some(open.id), replies: Vec::new(), order: Some(placed) }
            }
            Confirmed::Requoted { quote_id, replies } => Understood { outcome: Outcome::Requoted, quote_id, replies, order: None },
        });
    }
    let quote = store::quote_message(pool, &text).await.map_err(quote_error)?;
    let replies = reply::render(&quote);
    if quote.lines.is_empty() {
        return Ok(Understood { outcome: Outcome::NotUnderstood, quote_id: None, replies, order: None });
    }
    let id = conversation::insert_open_quote_using(tx, wa_id, wamid, &quote).await?;
    Ok(Understood { outcome: Outcome::Quoted, quote_id: Some(id), replies, order: None })
}

fn quote_error(e: store::Error) -> StepError {
    StepError::transient(format!("quoting failed: {e}"))
}
