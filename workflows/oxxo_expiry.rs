//! `oxxo_expiry`: a durable timer per OXXO voucher. At `expires_at` it applies
//! `voucher_expired`, which cancels the order only if it is still awaiting
//! payment (a payment that arrives later still fulfils it). Unkeyed on purpose:
//! a sleeping run must not hold up the order's payment events.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::whatsapp_notice::notify_using;
use crate::{
    domain::{
        orders::{fulfilment::{self, Applied, Shop}, OrderStatus, PaymentSignal},
        payments::PaymentUpdate,
        whatsapp::notices::Notice,
    },
    engine::{RunCtx, StepError, Workflow},
};

pub struct OxxoExpiry {
    pub shop: Arc<Shop>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OxxoExpiryInput {
    pub order_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl Workflow for OxxoExpiry {
    const NAME: &'static str = "oxxo_expiry";
    type Input = OxxoExpiryInput;

    async fn run(&self, ctx: &mut RunCtx, input: OxxoExpiryInput) -> Result<(), StepError> {
        ctx.sleep_until("until_expiry", input.expires_at).await?;
        let shop = self.shop.clone();
        let _: Applied = ctx
            .tx_step("expire", move |tx, _| {
                Box::pin(async move {
                    let update = PaymentUpdate {
                        order_id: Some(input.order_id),
                        signal: PaymentSignal::VoucherExpired,
                        amount: None,
                        provider: "relevo".into(),
                        provider_payment_id: None,
                        oxxo: None,
                    };
                    let applied = fulfilment::apply_signal_using(tx, input.order_id, &update, None, &shop).await?;
                    if let Applied::Moved { to: OrderStatus::Cancelled, .. } = &applied {
                        notify_using(tx, input.order_id, Notice::PaymentExpired, None).await?;
                    }
                    Ok(applied)
                })
            })
            .await?;
        Ok(())
    }
}
