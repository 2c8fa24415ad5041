//! `whatsapp_notice`, keyed by the shopper (`wa:<wa_id>`, so notices and
//! conversation replies reach the chat in order): tells a WhatsApp shopper
//! that their order moved — paid, OXXO voucher issued, needs attention,
//! payment expired (then "sí" gets a new link: the quote is open again).
//!
//! 1. `compose` — the Spanish text, and how it can go: free-form inside Meta's
//!    24 h window; outside it, the WHATSAPP_TEMPLATE_ORDER_UPDATE template, or
//!    recorded as `skipped` with the reason when there is none. The message is
//!    in the log either way, in the same transaction.
//! 2. `send_notice` — through the shared sender (same errors, same log).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::whatsapp_sender::{Outgoing, Sender};
use crate::{
    domain::{
        orders::{self, from_quote, fulfilment::Shop},
        quotes::{conversation, Quote},
        whatsapp::{
            log,
            notices::{self, Notice},
        },
    },
    engine::{self, RetryPolicy, RunCtx, StepError, Workflow},
};

const STEP: &str = "send_notice";

pub struct WhatsAppNotice {
    pub sender: Sender,
    pub retry: RetryPolicy,
    pub shop: Arc<Shop>,
    /// WHATSAPP_TEMPLATE_ORDER_UPDATE and WHATSAPP_TEMPLATE_LANG.
    pub template: Option<Template>,
}

#[derive(Clone, Debug)]
pub struct Template {
    pub name: String,
    pub lang: String,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WhatsAppNoticeInput {
    pub wa_id: String,
    pub order_id: Uuid,
    pub notice: Notice,
}

/// How the notice goes out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Delivery {
    Text,
    Template { name: String, lang: String, params: Vec<String> },
    Skipped { reason: String },
}

/// The `compose` checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Composed {
    pub text: String,
    pub delivery: Delivery,
}

impl Workflow for WhatsAppNotice {
    const NAME: &'static str = "whatsapp_notice";
    type Input = WhatsAppNoticeInput;

    fn ordering_key(input: &WhatsAppNoticeInput) -> Option<String> {
        Some(format!("wa:{}", input.wa_id))
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone()
    }

    async fn run(&self, ctx: &mut RunCtx, input: WhatsAppNoticeInput) -> Result<(), StepError> {
        let (shop, template, notice) = (self.shop.clone(), self.template.clone(), input.clone());
        let composed: Composed = ctx
            .tx_step("compose", move |tx, info| {
                Box::pin(async move {
                    let order = orders::load_using(tx, notice.order_id).await.map_err(|e| match e {
                        orders::Error::Database(e) => StepError::from(e),
                        e => StepError::permanent(format!("order {}: {e}", notice.order_id)),
                    })?;
                    let text = notices::text(&notice.notice, &order, shop.timezone);
                    if notice.notice == Notice::PaymentExpired {
                        reopen_quote_using(tx, &notice.wa_id, order.order.quote_id).await?;
                    }
                    let delivery = if log::window_open_using(tx, &notice.wa_id).await? {
                        Delivery::Text
                    } else if let Some(t) = template {
                        Delivery::Template { name: t.name, lang: t.lang, params: notices::template_params(&notice.notice, &order) }
                    } else {
                        Delivery::Skipped {
                            reason: "outside WhatsApp's 24 h window and WHATSAPP_TEMPLATE_ORDER_UPDATE is not set".into(),
                        }
                    };
                    let skipped = match &delivery {
                        Delivery::Skipped { reason } => Some(reason.as_str()),
                        _ => None,
                    };
                    log::queue_notice_using(tx, &notice.wa_id, info.run_id, STEP, &text, skipped).await?;
                    Ok(Composed { text, delivery })
                })
            })
            .await?;
        let outgoing = match composed.delivery {
            Delivery::Skipped { reason } => {
                tracing::info!(order_id = %input.order_id, %reason, "WhatsApp notice recorded as skipped");
                return Ok(());
            }
            Delivery::Text => Outgoing::Text { body: composed.text, reply_to: None },
            Delivery::Template { name, lang, params } => Outgoing::Template { name, lang, params },
        };
        self.sender.send(ctx, STEP, &input.wa_id, outgoing).await
    }
}

/// The quote the expired order came from, open again at its items (so "sí"
/// orders them anew at the day's prices).
async fn reopen_quote_using(tx: &mut PgConnection, wa_id: &str, quote_id: Option<Uuid>) -> Result<(), StepError> {
    let Some(quote_id) = quote_id else { return Ok(()) };
    if let Some((lines, wamid)) = conversation::lines_of_using(tx, quote_id).await? {
        conversation::insert_open_quote_using(tx, wa_id, &wamid, &Quote::from_lines(lines, Vec::new())).await?;
    }
    Ok(())
}

/// Starts the notice about `order_id` when the order came from a WhatsApp
/// quote, in the caller's transaction (the step that moved the order).
pub async fn notify_using(tx: &mut PgConnection, order_id: Uuid, notice: Notice, event_id: Option<Uuid>) -> Result<(), StepError> {
    if let Some(wa_id) = from_quote::whatsapp_of_using(tx, order_id).await? {
        engine::start_using::<WhatsAppNotice>(tx, &WhatsAppNoticeInput { wa_id, order_id, notice }, event_id).await?;
    }
    Ok(())
}
