//! Mercado Pago notifications and payments → `Route`. Pure. A notification is
//! only a pointer: the payment it names is read from the API
//! (`Route::FetchMercadoPagoPayment`) and only that answer is routed.

use serde_json::Value;

use super::client::Payment;
use crate::providers::{
    payment::{order_reference, PaymentEvent, PaymentStatus},
    Provider, Route,
};

/// What a stored notification asks for. `relevo_data_id` is the signed
/// `data.id` of the query string, recorded by the receiver.
pub fn route(kind: &str, payload: &Value) -> Route {
    if !kind.starts_with("payment") {
        return Route::ignored(format!("Mercado Pago {kind} notifications are not handled"));
    }
    // Only the signed `data.id` (recorded by the receiver) names the payment:
    // the body is not signed.
    match payload["relevo_data_id"].as_str() {
        Some(payment_id) => Route::FetchMercadoPagoPayment { payment_id: payment_id.to_owned() },
        None => Route::ignored("the notification carries no signed payment id (data.id)"),
    }
}

/// A payment read from the API, as a payment event.
pub fn payment_event(payment: &Payment) -> PaymentEvent {
    PaymentEvent {
        provider: Provider::MercadoPago,
        order_id: order_reference(payment.external_reference.as_deref()),
        status: status(&payment.status),
        amount: payment.amount_minor.zip(payment.currency.clone()),
        payment_id: Some(payment.id.clone()),
        oxxo: None,
    }
}

fn status(status: &str) -> PaymentStatus {
    match status {
        "approved" | "authorized" => PaymentStatus::Succeeded,
        "rejected" => PaymentStatus::Failed,
        "cancelled" => PaymentStatus::Canceled,
        "refunded" | "charged_back" => PaymentStatus::Refunded,
        _ => PaymentStatus::Processing, // pending, in_process, in_mediation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payment_statuses_map() {
        for (given, expected) in [
            ("approved", PaymentStatus::Succeeded),
            ("pending", PaymentStatus::Processing),
            ("in_process", PaymentStatus::Processing),
            ("rejected", PaymentStatus::Failed),
            ("cancelled", PaymentStatus::Canceled),
            ("refunded", PaymentStatus::Refunded),
            ("charged_back", PaymentStatus::Refunded),
        ] {
            assert_eq!(status(given), expected, "{given}");
        }
    }

    #[test]
    fn a_payment_notification_routes_to_a_fetch_of_its_signed_data_id() {
        let payload = json!({"type": "payment", "data": {"id": "999"}, "relevo_data_id": "123"});
        assert_eq!(route("payment.updated", &payload), Route::FetchMercadoPagoPayment { payment_id: "123".into() });
        let unsigned = json!({"type": "payment", "data": {"id": 999}});
        assert!(matches!(route("payment", &unsigned), Route::Ignored { .. }), "the body is not signed");
        assert!(matches!(route("merchant_order", &payload), Route::Ignored { .. }));
    }
}
