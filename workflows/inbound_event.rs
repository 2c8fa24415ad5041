//! `inbound_event`: the run every stored webhook starts. Its `route` step reads
//! the event and starts the flow that handles it — in the same transaction as
//! the step's checkpoint, so the flow's run starts exactly once.
//!
//! - Stripe `payment_intent.*`, `checkout.session.*`, `charge.refunded` →
//!   `payment_fulfilment`, keyed by the order (`metadata.order_id`, or the order
//!   that recorded the PaymentIntent id).
//! - Anything else is recorded as not handled (yet).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::payment_fulfilment::{PaymentFulfilment, PaymentFulfilmentInput};
use crate::{
    domain::{orders::fulfilment, payments},
    engine::{self, RunCtx, StepError, Workflow},
};

pub struct InboundEvent;

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
        let _: Value = ctx
            .tx_step("route", move |tx, _| Box::pin(async move { route_using(tx, &input).await }))
            .await?;
        Ok(())
    }
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
