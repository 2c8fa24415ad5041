//! `inbound_event`: the run every stored webhook starts (the entry flow).
//!
//! 1. The stored event is read and its provider's pure `payload` module says what
//!    it asks for (`Route`).
//! 2. `fetch_payment` — Mercado Pago only: the notification names a payment,
//!    which is read from the API (the notification body is never trusted).
//! 3. `route` — starts the flow `workflows/mod.rs` maps the route to, in the same
//!    transaction as the step's checkpoint (`Routed`), so it starts exactly once.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Routed;
use crate::{
    engine::{RunCtx, StepError, Workflow},
    ingest::events,
    providers::{mercadopago, Provider, Route},
};

pub struct InboundEvent {
    /// `None` when MERCADOPAGO_ACCESS_TOKEN is not set.
    pub mercadopago: Option<Arc<mercadopago::client::Client>>,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InboundEventInput {
    pub event_id: Uuid,
    pub provider: Provider,
    #[serde(rename = "type")]
    pub kind: String,
    /// Events sharing it (one WhatsApp sender's messages) are routed one after
    /// the other, in arrival order: the runs they start are created in that order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
}

impl Workflow for InboundEvent {
    const NAME: &'static str = "inbound_event";
    type Input = InboundEventInput;

    fn ordering_key(input: &InboundEventInput) -> Option<String> {
        input.sequence.as_ref().map(|key| format!("inbound:{key}"))
    }

    async fn run(&self, ctx: &mut RunCtx, input: InboundEventInput) -> Result<(), StepError> {
        let payload = events::payload(ctx.pool(), input.event_id).await?;
        let route = match input.provider.route(&input.kind, &payload) {
            Route::FetchMercadoPagoPayment { payment_id } => {
                let client = self.mercadopago.clone();
                let payment: mercadopago::client::Payment = ctx
                    .step("fetch_payment", |_| async move {
                        let client = client.ok_or_else(|| {
                            StepError::permanent("MERCADOPAGO_ACCESS_TOKEN is not set; set it and retry this run")
                        })?;
                        client.get_payment(&payment_id).await.map_err(mercadopago_step_error)
                    })
                    .await?;
                Route::Payment(mercadopago::payload::payment_event(&payment))
            }
            route => route,
        };
        let event_id = input.event_id;
        let _: Routed = ctx
            .tx_step("route", move |tx, _| Box::pin(super::start_routed_using(tx, event_id, route)))
            .await?;
        Ok(())
    }
}

/// 429 resumes at Retry-After; timeouts and 5xx back off; the rest will not change.
pub(super) fn mercadopago_step_error(e: mercadopago::client::Error) -> StepError {
    match e {
        mercadopago::client::Error::RateLimited { retry_after_secs, .. } => {
            StepError::rate_limited(Utc::now() + chrono::Duration::seconds(retry_after_secs), e)
        }
        e if e.is_transient() => StepError::transient(e),
        e => StepError::permanent(e),
    }
}
