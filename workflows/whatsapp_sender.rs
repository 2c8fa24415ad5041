//! The one durable WhatsApp sender the flows share: each send is a
//! checkpointed step (an accepted message is never sent again by a retry),
//! every attempt is noted on the message's log row, and Meta's errors become
//! step errors by code: throttling resumes later without using a retry, 5xx
//! and timeouts follow the flow's retry schedule, the rest fail at once.

use std::sync::Arc;

use chrono::Utc;
use sqlx::PgPool;

use crate::{
    domain::whatsapp::log,
    engine::{RunCtx, StepError, StepInfo},
    providers::whatsapp::client::{self, Client, Sent},
};

/// What to send.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// Free-form text, as a reply to `reply_to` (a wamid) when given.
    Text { body: String, reply_to: Option<String> },
    /// An approved template with its body parameters.
    Template { name: String, lang: String, params: Vec<String> },
}

#[derive(Clone)]
pub struct Sender {
    /// `Err` names the missing setting (WHATSAPP_ACCESS_TOKEN or
    /// WHATSAPP_PHONE_NUMBER_ID): sends fail permanently saying so.
    pub client: Result<Arc<Client>, String>,
}

impl Sender {
    /// Sends `outgoing` to `to` in step `step` of the running flow.
    pub async fn send(&self, ctx: &mut RunCtx, step: &str, to: &str, outgoing: Outgoing) -> Result<(), StepError> {
        let (client, to) = (self.client.clone(), to.to_owned());
        let pool = ctx.pool().clone();
        let _: Sent = ctx
            .step(step, |info| async move {
                let client = match client {
                    Ok(client) => client,
                    Err(missing) => {
                        note_attempt(&pool, &info, log::SendOutcome::Failed { code: None, message: &missing }).await;
                        return Err(StepError::permanent(missing));
                    }
                };
                let sent = match &outgoing {
                    Outgoing::Text { body, reply_to } => client.send_text(&to, body, reply_to.as_deref()).await,
                    Outgoing::Template { name, lang, params } => client.send_template(&to, name, lang, params).await,
                };
                record_send(&pool, &info, &sent).await;
                sent.map_err(whatsapp_step_error)
            })
            .await?;
        Ok(())
    }

    /// Marks `wamid` read; a failure is only reported (the reply matters more).
    pub async fn mark_read(&self, wamid: &str) -> Result<(), String> {
        match &self.client {
            Ok(client) => client.mark_read(wamid).await.map(|_| ()).map_err(|e| e.to_string()),
            Err(missing) => Err(missing.clone()),
        }
    }
}

/// Counts the attempt and notes it on the message's log row. A failure to note
/// it is logged and does not fail the send: the checkpoint is what counts.
async fn record_send(pool: &PgPool, info: &StepInfo, sent: &Result<Sent, client::Error>) {
    let error_text = sent.as_ref().err().map(ToString::to_string);
    let outcome = match sent {
        Ok(sent) => {
            metrics::counter!("relevo_whatsapp_replies_sent_total").increment(1);
            log::SendOutcome::Sent { wamid: sent.wamid.as_deref() }
        }
        Err(e) => {
            let code = e.code();
            let label = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
            metrics::counter!("relevo_whatsapp_replies_failed_total", "code" => label).increment(1);
            log::SendOutcome::Failed { code, message: error_text.as_deref().unwrap_or_default() }
        }
    };
    note_attempt(pool, info, outcome).await;
}

async fn note_attempt(pool: &PgPool, info: &StepInfo, outcome: log::SendOutcome<'_>) {
    if let Err(e) = log::record_send(pool, info.run_id, &info.step, outcome).await {
        tracing::warn!(run_id = %info.run_id, step = %info.step, error.message = %e, "the message's log row was not updated");
    }
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
