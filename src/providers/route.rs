//! `Route`: what a verified provider event asks Relevo to do. Each provider's
//! pure `payload` module produces one; `workflows/mod.rs` maps each variant to
//! the flow it starts. Stored as the `route` step's checkpoint, so variants are
//! a durable contract: add variants, never change one.

use serde::{Deserialize, Serialize};

use super::payment::PaymentEvent;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    /// A payment changed (a Stripe event, or a Mercado Pago payment read from its API).
    Payment(PaymentEvent),
    /// A Mercado Pago notification: only the payment read from the API is trusted,
    /// so it must be fetched before it can be routed.
    FetchMercadoPagoPayment { payment_id: String },
    /// A WhatsApp shopper wrote (`kind`: the message type, `text` for text,
    /// button and interactive replies; `name`: the sender's profile name).
    WhatsAppMessage {
        wa_id: String,
        wamid: String,
        kind: String,
        text: Option<String>,
        name: Option<String>,
    },
    /// Meta reports what became of a message Relevo sent (`statuses[]`):
    /// `status` is Meta's (`sent`, `delivered`, `read`, `failed`, `played`),
    /// `at` its Unix seconds, the error its `errors[0]`.
    WhatsAppStatus {
        wamid: String,
        status: String,
        recipient: Option<String>,
        at: Option<i64>,
        error_code: Option<i64>,
        error_message: Option<String>,
    },
    /// A HighLevel appointment was created, changed or deleted in HighLevel.
    HighLevelAppointment {
        change: super::highlevel::payload::Change,
        location_id: String,
        appointment: super::highlevel::payload::Appointment,
    },
    /// Nothing to do for this event; the reason is kept for ops.
    Ignored { reason: String },
}

impl Route {
    pub fn ignored(reason: impl Into<String>) -> Self {
        Self::Ignored { reason: reason.into() }
    }
}
