//! What a payment provider says about a payment, in one vocabulary for every
//! provider. Flows map it onto the order state machine; nothing here knows orders.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Provider;

/// Where the provider says the payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// An offline voucher (OXXO) was issued; the shopper pays it later.
    VoucherIssued,
    /// Created, pending or in review: nothing to act on yet.
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Refunded,
    /// Less than the whole payment was refunded.
    PartiallyRefunded,
}

/// An OXXO voucher as Stripe describes it (`oxxo_display_details`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxxoVoucher {
    pub number: String,
    pub hosted_voucher_url: Option<String>,
    pub expires_after: Option<DateTime<Utc>>,
}

/// One provider event about one payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    pub provider: Provider,
    /// The order reference Relevo put on the payment (Stripe `metadata.order_id`,
    /// Mercado Pago `external_reference`), when it is one of our ids.
    pub order_id: Option<Uuid>,
    pub status: PaymentStatus,
    /// Amount in minor units and ISO currency (upper case), for successful payments.
    pub amount: Option<(i64, String)>,
    /// PaymentIntent id (`pi_…`) or Mercado Pago payment id.
    pub payment_id: Option<String>,
    pub oxxo: Option<OxxoVoucher>,
}

/// Reads an order reference we issued: a UUID, surrounding blanks tolerated.
pub(crate) fn order_reference(raw: Option<&str>) -> Option<Uuid> {
    raw.and_then(|r| Uuid::parse_str(r.trim()).ok())
}

/// What a hosted payment page must charge: one order's lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkRequest {
    pub order_id: Uuid,
    /// ISO 4217, upper case.
    pub currency: String,
    pub lines: Vec<LinkLine>,
    /// Sent as the provider's idempotency key: a retried request gets the
    /// same link back instead of a second one.
    pub idempotency_key: String,
    /// Where the shopper returns after paying (Stripe `success_url`/`cancel_url`,
    /// Mercado Pago `back_urls`), with `?order_id=…&result=paid|cancelled` added.
    pub return_url: String,
    /// Until when the link may be paid.
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkLine {
    pub sku: String,
    pub name: String,
    pub unit_amount_minor: i64,
    pub quantity: i32,
}

/// A hosted payment page created for an order. Stored as a step checkpoint:
/// add fields with defaults, never rename one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentLink {
    pub provider: Provider,
    /// Checkout Session id (`cs_…`) or Mercado Pago preference id.
    pub id: String,
    /// Where the shopper pays (Checkout `url`, Mercado Pago `init_point`).
    pub url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl LinkRequest {
    /// `return_url` with the order and the outcome in its query.
    pub fn return_to(&self, result: &str) -> String {
        let separator = if self.return_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}order_id={}&result={result}", self.return_url, self.order_id)
    }
}
