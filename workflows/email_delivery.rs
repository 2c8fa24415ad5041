//! `email_delivery`: sends one outbox e-mail over SMTP, then marks it sent.
//! Started in the transaction that queued the e-mail (only when SMTP is
//! configured); SMTP failures retry with the engine's backoff.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::emails,
    engine::{RunCtx, StepError, Workflow},
    mailer::Mailer,
};

pub struct EmailDelivery {
    pub mailer: Arc<Mailer>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmailDeliveryInput {
    pub email_id: Uuid,
}

impl Workflow for EmailDelivery {
    const NAME: &'static str = "email_delivery";
    type Input = EmailDeliveryInput;

    async fn run(&self, ctx: &mut RunCtx, input: EmailDeliveryInput) -> Result<(), StepError> {
        let (pool, mailer, id) = (ctx.pool().clone(), self.mailer.clone(), input.email_id);
        ctx.step("send", |_| async move {
            let email = emails::load(&pool, id)
                .await?
                .ok_or_else(|| StepError::permanent(format!("e-mail {id} is not in the outbox")))?;
            if email.status == emails::EmailStatus::Sent {
                return Ok(());
            }
            mailer
                .send(id, &email.to_address, &email.subject, &email.html, &email.text_body)
                .await
                .map_err(|e| if e.is_transient() { StepError::transient(e) } else { StepError::permanent(e) })
        })
        .await?;
        ctx.tx_step("mark_sent", move |tx, _| Box::pin(async move { Ok(emails::mark_sent_using(tx, id).await?) }))
            .await
    }
}
