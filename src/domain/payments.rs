//! Provider payment events, reduced to what the order state machine needs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::orders::PaymentSignal;

/// An OXXO voucher as Stripe describes it (`oxxo_display_details`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OxxoVoucher {
    pub number: String,
    pub hosted_voucher_url: Option<String>,
    pub expires_after: Option<DateTime<Utc>>,
}

/// What one provider event says about one order's payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentUpdate {
    /// The order the payment references (`metadata.order_id`, `external_reference`),
    /// or `None` when only the provider payment id is known (Stripe `charge.refunded`).
    pub order_id: Option<Uuid>,
    pub signal: PaymentSignal,
    /// Amount and ISO currency (upper case) for successful payments.
    pub amount: Option<(i64, String)>,
    pub provider: String,
    /// PaymentIntent id (`pi_…`) or Mercado Pago payment id.
    pub provider_payment_id: Option<String>,
    pub oxxo: Option<OxxoVoucher>,
}

/// Reads a Stripe event. `Ok(None)` for event types this flow does not handle.
pub fn from_stripe_event(event: &Value) -> Option<PaymentUpdate> {
    let kind = event["type"].as_str()?;
    let object = &event["data"]["object"];
    let order_id = object["metadata"]["order_id"].as_str().and_then(|s| Uuid::parse_str(s.trim()).ok());
    let currency = object["currency"].as_str().map(str::to_ascii_uppercase);
    let pi_id = match object["object"].as_str() {
        Some("payment_intent") => object["id"].as_str().map(str::to_owned),
        _ => object["payment_intent"].as_str().map(str::to_owned),
    };
    let (signal, amount, oxxo) = match kind {
        "payment_intent.requires_action" => {
            let next = &object["next_action"];
            if next["type"] == "oxxo_display_details" {
                let d = &next["oxxo_display_details"];
                let voucher = OxxoVoucher {
                    number: d["number"].as_str().unwrap_or_default().to_owned(),
                    hosted_voucher_url: d["hosted_voucher_url"].as_str().map(str::to_owned),
                    expires_after: d["expires_after"].as_i64().and_then(|t| DateTime::from_timestamp(t, 0)),
                };
                (PaymentSignal::VoucherIssued, None, Some(voucher))
            } else {
                (PaymentSignal::Processing, None, None)
            }
        }
        "payment_intent.processing" | "payment_intent.created" => (PaymentSignal::Processing, None, None),
        "payment_intent.succeeded" => {
            let amount = object["amount_received"].as_i64().or(object["amount"].as_i64());
            (PaymentSignal::Succeeded, amount.zip(currency), None)
        }
        "payment_intent.payment_failed" => (PaymentSignal::Failed, None, None),
        "payment_intent.canceled" => (PaymentSignal::Canceled, None, None),
        "checkout.session.completed" => {
            if object["payment_status"] == "paid" {
                (PaymentSignal::Succeeded, object["amount_total"].as_i64().zip(currency), None)
            } else {
                // OXXO through Checkout: the voucher details come with the PaymentIntent.
                (PaymentSignal::Processing, None, None)
            }
        }
        "checkout.session.async_payment_succeeded" => {
            (PaymentSignal::Succeeded, object["amount_total"].as_i64().zip(currency), None)
        }
        "checkout.session.async_payment_failed" => (PaymentSignal::Failed, None, None),
        "checkout.session.expired" => (PaymentSignal::Canceled, None, None),
        "charge.refunded" => (PaymentSignal::Refunded, None, None),
        _ => return None,
    };
    Some(PaymentUpdate {
        order_id,
        signal,
        amount,
        provider: "stripe".into(),
        provider_payment_id: pi_id,
        oxxo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDER: &str = "0193a5b2-0000-7000-8000-000000000001";

    #[test]
    fn stripe_events_map_to_signals() {
        let ev = json!({"type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent", "id": "pi_1",
            "amount": 11748, "amount_received": 11748, "currency": "mxn", "metadata": {"order_id": ORDER}}}});
        let u = from_stripe_event(&ev).unwrap();
        assert_eq!(u.signal, PaymentSignal::Succeeded);
        assert_eq!(u.amount, Some((11748, "MXN".into())));
        assert_eq!(u.order_id, Some(Uuid::parse_str(ORDER).unwrap()));
        assert_eq!(u.provider_payment_id.as_deref(), Some("pi_1"));

        let ev = json!({"type": "payment_intent.requires_action", "data": {"object": {"object": "payment_intent", "id": "pi_1",
            "metadata": {"order_id": ORDER}, "next_action": {"type": "oxxo_display_details", "oxxo_display_details":
            {"expires_after": 1750300000, "hosted_voucher_url": "https://v", "number": "1234"}}}}});
        let u = from_stripe_event(&ev).unwrap();
        assert_eq!(u.signal, PaymentSignal::VoucherIssued);
        assert_eq!(u.oxxo.unwrap().number, "1234");

        let ev = json!({"type": "charge.refunded", "data": {"object": {"object": "charge", "payment_intent": "pi_1"}}});
        let u = from_stripe_event(&ev).unwrap();
        assert_eq!((u.signal, u.order_id, u.provider_payment_id.as_deref()), (PaymentSignal::Refunded, None, Some("pi_1")));

        assert!(from_stripe_event(&json!({"type": "customer.created", "data": {"object": {}}})).is_none());
    }
}
