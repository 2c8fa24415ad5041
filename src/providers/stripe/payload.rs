//! Stripe events → `Route`. Pure: reads the verified event JSON, unknown fields
//! ignored. Orders are referenced by `metadata.order_id` on the PaymentIntent
//! or Checkout Session; `charge.refunded` carries only the PaymentIntent id.

use chrono::DateTime;
use serde_json::Value;

use crate::providers::{
    payment::{order_reference, OxxoVoucher, PaymentEvent, PaymentStatus},
    Provider, Route,
};

/// What a Stripe event asks for: a payment change, or nothing.
pub fn route(event: &Value) -> Route {
    match payment_event(event) {
        Some(payment) => Route::Payment(payment),
        None => Route::ignored(format!(
            "Stripe event type {} is not handled",
            event["type"].as_str().unwrap_or("(none)")
        )),
    }
}

/// Reads a payment event; `None` for event types no flow handles.
pub fn payment_event(event: &Value) -> Option<PaymentEvent> {
    let kind = event["type"].as_str()?;
    let object = &event["data"]["object"];
    let currency = object["currency"].as_str().map(str::to_ascii_uppercase);
    let payment_id = match object["object"].as_str() {
        Some("payment_intent") => object["id"].as_str().map(str::to_owned),
        _ => object["payment_intent"].as_str().map(str::to_owned),
    };
    let (status, amount, oxxo) = match kind {
        "payment_intent.requires_action" => match oxxo_voucher(&object["next_action"]) {
            Some(voucher) => (PaymentStatus::VoucherIssued, None, Some(voucher)),
            None => (PaymentStatus::Processing, None, None),
        },
        "payment_intent.processing" | "payment_intent.created" => (PaymentStatus::Processing, None, None),
        "payment_intent.succeeded" => {
            let amount = object["amount_received"].as_i64().or(object["amount"].as_i64());
            (PaymentStatus::Succeeded, amount.zip(currency), None)
        }
        "payment_intent.payment_failed" => (PaymentStatus::Failed, None, None),
        "payment_intent.canceled" => (PaymentStatus::Canceled, None, None),
        // OXXO through Checkout completes unpaid: the voucher comes with the PaymentIntent.
        "checkout.session.completed" if object["payment_status"] != "paid" => (PaymentStatus::Processing, None, None),
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            (PaymentStatus::Succeeded, object["amount_total"].as_i64().zip(currency), None)
        }
        "checkout.session.async_payment_failed" => (PaymentStatus::Failed, None, None),
        "checkout.session.expired" => (PaymentStatus::Canceled, None, None),
        "charge.refunded" => (refund_status(object), None, None),
        _ => return None,
    };
    Some(PaymentEvent {
        provider: Provider::Stripe,
        order_id: order_reference(object["metadata"]["order_id"].as_str()),
        status,
        amount,
        payment_id,
        oxxo,
    })
}

/// `charge.refunded` fires for partial refunds too: only `amount_refunded`
/// reaching `amount` (or `refunded: true`) is a full refund.
fn refund_status(charge: &Value) -> PaymentStatus {
    let full = match (charge["amount_refunded"].as_i64(), charge["amount"].as_i64()) {
        (Some(refunded), Some(amount)) => refunded >= amount,
        _ => charge["refunded"].as_bool().unwrap_or(true),
    };
    if full {
        PaymentStatus::Refunded
    } else {
        PaymentStatus::PartiallyRefunded
    }
}

fn oxxo_voucher(next_action: &Value) -> Option<OxxoVoucher> {
    if next_action["type"] != "oxxo_display_details" {
        return None;
    }
    let d = &next_action["oxxo_display_details"];
    Some(OxxoVoucher {
        number: d["number"].as_str().unwrap_or_default().to_owned(),
        hosted_voucher_url: d["hosted_voucher_url"].as_str().map(str::to_owned),
        expires_after: d["expires_after"].as_i64().and_then(|t| DateTime::from_timestamp(t, 0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    const ORDER: &str = "0193a5b2-0000-7000-8000-000000000001";

    #[test]
    fn stripe_events_map_to_payment_statuses() {
        let ev = json!({"type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent", "id": "pi_1",
            "amount": 11748, "amount_received": 11748, "currency": "mxn", "metadata": {"order_id": ORDER}}}});
        let p = payment_event(&ev).unwrap();
        assert_eq!(p.status, PaymentStatus::Succeeded);
        assert_eq!(p.amount, Some((11748, "MXN".into())));
        assert_eq!(p.order_id, Some(Uuid::parse_str(ORDER).unwrap()));
        assert_eq!(p.payment_id.as_deref(), Some("pi_1"));

        let ev = json!({"type": "payment_intent.requires_action", "data": {"object": {"object": "payment_intent", "id": "pi_1",
            "metadata": {"order_id": ORDER}, "next_action": {"type": "oxxo_display_details", "oxxo_display_details":
            {"expires_after": 1750300000, "hosted_voucher_url": "https://v", "number": "1234"}}}}});
        let p = payment_event(&ev).unwrap();
        assert_eq!(p.status, PaymentStatus::VoucherIssued);
        assert_eq!(p.oxxo.unwrap().number, "1234");

        let ev = json!({"type": "charge.refunded", "data": {"object": {"object": "charge", "payment_intent": "pi_1"}}});
        let p = payment_event(&ev).unwrap();
        assert_eq!((p.status, p.order_id, p.payment_id.as_deref()), (PaymentStatus::Refunded, None, Some("pi_1")));

        let partial = json!({"type": "charge.refunded", "data": {"object": {"object": "charge", "payment_intent": "pi_1",
            "amount": 11748, "amount_refunded": 1000, "refunded": false}}});
        assert_eq!(payment_event(&partial).unwrap().status, PaymentStatus::PartiallyRefunded);
        let full = json!({"type": "charge.refunded", "data": {"object": {"object": "charge", "payment_intent": "pi_1",
            "amount": 11748, "amount_refunded": 11748, "refunded": true}}});
        assert_eq!(payment_event(&full).unwrap().status, PaymentStatus::Refunded);

        let ev = json!({"type": "checkout.session.completed", "data": {"object": {"object": "checkout.session",
            "payment_status": "unpaid", "amount_total": 100, "currency": "mxn"}}});
        assert_eq!(payment_event(&ev).unwrap().status, PaymentStatus::Processing);
    }

    #[test]
    fn unhandled_event_types_are_ignored_with_their_type() {
        let route = route(&json!({"type": "customer.created", "data": {"object": {}}}));
        assert_eq!(route, Route::ignored("Stripe event type customer.created is not handled"));
    }
}
