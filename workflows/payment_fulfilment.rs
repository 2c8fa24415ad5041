//! `payment_fulfilment`, keyed by order id: one run per payment event of an
//! order, in arrival order per order.
//!
//! 1. `apply_signal` — move the order through its state machine (or record why not);
//!    an OXXO voucher queues its e-mail and starts the `oxxo_expiry` timer run.
//! 2. `fulfil` — when the order just became `paid`: amount check, stock for every
//!    item, confirmation e-mail, `sales_order.confirmed` — all in one transaction.
//! 3. `restore_stock` — when a fulfilled order was refunded.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    domain::{
        orders::{
            fulfilment::{self, Applied, Fulfilment, Shop},
            OrderStatus,
        },
        payments::PaymentUpdate,
    },
    engine::{self, RunCtx, StepError, Workflow},
};

pub struct PaymentFulfilment {
    pub shop: Arc<Shop>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentFulfilmentInput {
    pub order_id: Uuid,
    pub update: PaymentUpdate,
    /// The inbound event that carried the update.
    pub event_id: Option<Uuid>,
}

impl Workflow for PaymentFulfilment {
    const NAME: &'static str = "payment_fulfilment";
    type Input = PaymentFulfilmentInput;

    fn ordering_key(input: &PaymentFulfilmentInput) -> Option<String> {
        Some(format!("order:{}", input.order_id))
    }

    async fn run(&self, ctx: &mut RunCtx, input: PaymentFulfilmentInput) -> Result<(), StepError> {
        let shop = self.shop.clone();
        let (order_id, update, event_id) = (input.order_id, input.update.clone(), input.event_id);
        let applied: Applied = ctx
            .tx_step("apply_signal", move |tx, _| {
                Box::pin(async move {
                    let applied = fulfilment::apply_signal_using(tx, order_id, &update, event_id, &shop).await?;
                    if let Applied::Moved { email_id: Some(email_id), .. } = &applied {
                        deliver_using(tx, &shop, *email_id).await?;
                    }
                    if let (Applied::Moved { to: OrderStatus::AwaitingOfflinePayment, .. }, Some(voucher)) =
                        (&applied, &update.oxxo)
                    {
                        if let Some(expires_at) = voucher.expires_after {
                            let timer = super::oxxo_expiry::OxxoExpiryInput { order_id, expires_at };
                            engine::start_using::<super::oxxo_expiry::OxxoExpiry>(tx, &timer, event_id)
                                .await
                                .map_err(StepError::transient)?;
                        }
                    }
                    Ok(applied)
                })
            })
            .await?;
        match applied {
            Applied::Moved { to: OrderStatus::Paid, .. } => {
                let (shop, amount) = (self.shop.clone(), input.update.amount.clone());
                let _: Fulfilment = ctx
                    .tx_step("fulfil", move |tx, _| {
                        Box::pin(async move {
                            let done = fulfilment::fulfil_using(tx, order_id, amount.as_ref(), &shop).await?;
                            if let Fulfilment::Fulfilled { email_id } = &done {
                                deliver_using(tx, &shop, *email_id).await?;
                            }
                            Ok(done)
                        })
                    })
                    .await?;
            }
            Applied::Moved { from, to: OrderStatus::Refunded, .. } if from != OrderStatus::Refunded => {
                let _: i64 = ctx
                    .tx_step("restore_stock", move |tx, _| {
                        Box::pin(async move { Ok(fulfilment::restore_stock_using(tx, order_id).await?) })
                    })
                    .await?;
            }
            Applied::UnknownOrder => {
                return Err(StepError::permanent(format!("order {order_id} does not exist")));
            }
            _ => {}
        }
        Ok(())
    }
}

/// With SMTP configured, starts the e-mail's delivery run in the transaction
/// that queued it.
async fn deliver_using(tx: &mut sqlx::PgConnection, shop: &Shop, email_id: Uuid) -> Result<(), StepError> {
    if shop.smtp_configured {
        let input = super::email_delivery::EmailDeliveryInput { email_id };
        engine::start_using::<super::email_delivery::EmailDelivery>(tx, &input, None)
            .await
            .map_err(StepError::transient)?;
    }
    Ok(())
}
