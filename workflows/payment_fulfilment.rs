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
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    email_delivery::{EmailDelivery, EmailDeliveryInput},
    oxxo_expiry::{OxxoExpiry, OxxoExpiryInput},
    whatsapp_notice::notify_using,
};
use crate::{
    domain::{
        orders::{
            fulfilment::{self, Applied, Fulfilment, Shop},
            OrderStatus, PaymentSignal,
        },
        payments::{OxxoVoucher, PaymentUpdate},
        whatsapp::notices::Notice,
    },
    engine::{self, RunCtx, StepError, Workflow},
    providers::payment::{PaymentEvent, PaymentStatus},
};

pub struct PaymentFulfilment {
    pub shop: Arc<Shop>,
}

/// Stored with every run: a durable contract.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentFulfilmentInput {
    pub order_id: Uuid,
    pub update: PaymentUpdate,
    /// The inbound event that carried the update.
    pub event_id: Option<Uuid>,
}

impl PaymentFulfilmentInput {
    /// The input for a provider's payment event: its order is the one it
    /// references, else the one that recorded its payment id (Stripe
    /// `charge.refunded`); `None` when no order matches.
    pub async fn for_event_using(
        conn: &mut PgConnection,
        event: &PaymentEvent,
        event_id: Uuid,
    ) -> Result<Option<Self>, sqlx::Error> {
        let order_id = match (event.order_id, &event.payment_id) {
            (Some(id), _) => Some(id),
            (None, Some(reference)) => fulfilment::order_by_payment_ref(conn, reference).await?,
            (None, None) => None,
        };
        Ok(order_id.map(|order_id| Self {
            order_id,
            update: update_from(event, order_id),
            event_id: Some(event_id),
        }))
    }
}

/// A provider's payment event in the order state machine's terms.
fn update_from(event: &PaymentEvent, order_id: Uuid) -> PaymentUpdate {
    PaymentUpdate {
        order_id: Some(order_id),
        signal: match event.status {
            PaymentStatus::VoucherIssued => PaymentSignal::VoucherIssued,
            PaymentStatus::Processing => PaymentSignal::Processing,
            PaymentStatus::Succeeded => PaymentSignal::Succeeded,
            PaymentStatus::Failed => PaymentSignal::Failed,
            PaymentStatus::Canceled => PaymentSignal::Canceled,
            PaymentStatus::Refunded => PaymentSignal::Refunded,
            PaymentStatus::PartiallyRefunded => PaymentSignal::PartiallyRefunded,
        },
        amount: event.amount.clone(),
        provider: event.provider.as_str().to_owned(),
        provider_payment_id: event.payment_id.clone(),
        oxxo: event.oxxo.as_ref().map(|v| OxxoVoucher {
            number: v.number.clone(),
            hosted_voucher_url: v.hosted_voucher_url.clone(),
            expires_after: v.expires_after,
        }),
    }
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
                            engine::start_using::<OxxoExpiry>(tx, &OxxoExpiryInput { order_id, expires_at }, event_id)
                                .await?;
                        }
                        let notice = Notice::OxxoVoucher {
                            number: voucher.number.clone(),
                            hosted_voucher_url: voucher.hosted_voucher_url.clone(),
                            expires_at: voucher.expires_after,
                        };
                        notify_using(tx, order_id, notice, event_id).await?;
                    }
                    if let Applied::Moved { from, to: OrderStatus::Cancelled, .. } = &applied {
                        if *from != OrderStatus::Cancelled {
                            notify_using(tx, order_id, Notice::PaymentExpired, event_id).await?;
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
                            if let Fulfilment::Fulfilled { email_id: Some(email_id) } = &done {
                                deliver_using(tx, &shop, *email_id).await?;
                            }
                            match &done {
                                Fulfilment::Fulfilled { .. } => notify_using(tx, order_id, Notice::Paid, event_id).await?,
                                Fulfilment::NeedsAttention { .. } => {
                                    notify_using(tx, order_id, Notice::NeedsAttention, event_id).await?
                                }
                                Fulfilment::NotPaid { .. } => {}
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
async fn deliver_using(tx: &mut PgConnection, shop: &Shop, email_id: Uuid) -> Result<(), StepError> {
    if shop.smtp_configured {
        engine::start_using::<EmailDelivery>(tx, &EmailDeliveryInput { email_id }, None).await?;
    }
    Ok(())
}
