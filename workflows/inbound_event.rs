//! `inbound_event`: the run every stored webhook starts. Its `route` step reads
//! the event and starts the flow that handles it — in the same transaction as
//! the step's checkpoint, so the flow's run starts exactly once.
//!
//! - Stripe `payment_intent.*`, `checkout.session.*`, `charge.refunded` →
//!   `payment_fulfilment`, keyed by the order (`metadata.order_id`, or the order
//!   that recorded the PaymentIntent id).
//! - Mercado Pago `payment` notifications: first `fetch_payment` asks the API for
//!   the payment (the notification body is never trusted), then `route` starts
//!   `payment_fulfilment` for the order in `external_reference`.
//! - Anything else is recorded as not handled (yet).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::payment_fulfilment::{PaymentFulfilment, PaymentFulfilmentInput};
use crate::{
    domain::{orders::fulfilment, payments},
    engine::{self, RunCtx, StepError, Workflow},
    providers::mercadopago,
};

pub struct InboundEvent {
    /// `None` when MERCADOPAGO_ACCESS_TOKEN is not set.
    pub mercadopago: Option<Arc<mercadopago::client::Client>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InboundEventInput {
    pub event_id: Uuid,
    pub provider: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl Workflow for InboundEvent {
    const NAME: &'static str = "inbound_event";
    type Input = InboundEventInput;

    async fn run(&self, ctx: &mut RunCtx, input: InboundEventInput) -> Result<(), StepError> {
        let fetched = if input.provider == "mercadopago" && input.kind.starts_with("payment") {
            let (pool, client, event_id) = (ctx.pool().clone(), self.mercadopago.clone(), input.event_id);
            let payment: mercadopago::client::Payment = ctx
                .step("fetch_payment", |_| async move {
                    let client = client.ok_or_else(|| {
                        StepError::permanent("MERCADOPAGO_ACCESS_TOKEN is not set; set it and retry this run")
                    })?;
                    let payload: Value = sqlx::query_scalar("select payload from inbound_events where id = $1")
                        .bind(event_id)
                        .fetch_one(&pool)
                        .await?;
                    let id = payload["relevo_data_id"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| payload["data"]["id"].as_str().map(str::to_owned))
                        .or_else(|| payload["data"]["id"].as_i64().map(|n| n.to_string()))
                        .ok_or_else(|| StepError::permanent("the notification carries no payment id (data.id)"))?;
                    client.get_payment(&id).await
                })
                .await?;
            Some(payment)
        } else {
            None
        };
        let _: Value = ctx
            .tx_step("route", move |tx, _| {
                Box::pin(async move {
                    match fetched {
                        Some(payment) => route_mercadopago_using(tx, &input, payment).await,
                        None => route_using(tx, &input).await,
                    }
                })
            })
            .await?;
        Ok(())
    }
}

async fn route_mercadopago_using(
    tx: &mut PgConnection,
    input: &InboundEventInput,
    payment: mercadopago::client::Payment,
) -> Result<Value, StepError> {
    let order_id = payment
        .external_reference
        .as_deref()
        .and_then(|r| Uuid::parse_str(r.trim()).ok());
    let order_id = match order_id {
        Some(id) => Some(id),
        None => fulfilment::order_by_payment_ref(tx, &payment.id).await?,
    };
    let Some(order_id) = order_id else {
        return Ok(json!({"flow": null, "note": "the payment's external_reference is not an order id", "payment": payment}));
    };
    let update = payments::PaymentUpdate {
        order_id: Some(order_id),
        signal: payment.signal(),
        amount: payment.amount_minor.zip(payment.currency.clone()),
        provider: "mercadopago".into(),
        provider_payment_id: Some(payment.id.clone()),
        oxxo: None,
    };
    start_fulfilment_using(tx, input, order_id, update).await
}

async fn start_fulfilment_using(
    tx: &mut PgConnection,
    input: &InboundEventInput,
    order_id: Uuid,
    update: payments::PaymentUpdate,
) -> Result<Value, StepError> {
    let flow_input = PaymentFulfilmentInput {
        order_id,
        update,
        event_id: Some(input.event_id),
    };
    let run_id = engine::start_using::<PaymentFulfilment>(tx, &flow_input, Some(input.event_id))
        .await
        .map_err(StepError::transient)?;
    Ok(json!({"flow": PaymentFulfilment::NAME, "order_id": order_id, "run_id": run_id}))
}

async fn route_using(tx: &mut PgConnection, input: &InboundEventInput) -> Result<Value, StepError> {
    let not_handled = |note: &str| json!({"provider": input.provider, "type": input.kind, "flow": null, "note": note});
    if input.provider != "stripe" {
        return Ok(not_handled("no flow handles this provider yet"));
    }
    let payload: Value = sqlx::query_scalar("select payload from inbound_events where id = $1")
        .bind(input.event_id)
        .fetch_one(&mut *tx)
        .await?;
    let Some(update) = payments::from_stripe_event(&payload) else {
        return Ok(not_handled("event type not handled"));
    };
    let order_id = match (update.order_id, &update.provider_payment_id) {
        (Some(id), _) => Some(id),
        (None, Some(reference)) => fulfilment::order_by_payment_ref(tx, reference).await?,
        (None, None) => None,
    };
    let Some(order_id) = order_id else {
        return Ok(not_handled("the event references no known order (metadata.order_id)"));
    };
    start_fulfilment_using(tx, input, order_id, update).await
}
