//! A payment update as the order state machine consumes it. Flows build one
//! from a provider's payment event; it is part of `payment_fulfilment`'s stored
//! input, so its serialized shape is a durable contract.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::orders::PaymentSignal;

/// An OXXO voucher: what the voucher e-mail shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxxoVoucher {
    pub number: String,
    pub hosted_voucher_url: Option<String>,
    pub expires_after: Option<DateTime<Utc>>,
}

/// What one provider event says about one order's payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentUpdate {
    /// The order the payment references, or `None` when only the provider
    /// payment id is known (Stripe `charge.refunded`).
    pub order_id: Option<Uuid>,
    pub signal: PaymentSignal,
    /// Amount and ISO currency (upper case) for successful payments.
    pub amount: Option<(i64, String)>,
    pub provider: String,
    /// PaymentIntent id (`pi_…`) or Mercado Pago payment id.
    pub provider_payment_id: Option<String>,
    pub oxxo: Option<OxxoVoucher>,
}
