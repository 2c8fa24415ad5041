//! `POST /v1/checkout/sessions`: a hosted Checkout page for an order
//! (`../shared/providers.md` §1.2): form-encoded, `Authorization: Bearer sk_…`,
//! an `Idempotency-Key` so a retried call returns the same session.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::providers::{
    payment::{LinkRequest, PaymentLink},
    Answer, Provider,
};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    /// `payment_method_types` (e.g. card, oxxo).
    methods: Vec<String>,
}

/// Why a Checkout Session could not be created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Stripe unreachable: {0}")]
    Unreachable(String),
    #[error("Stripe rate limit: {message}")]
    RateLimited { retry_after_secs: i64, message: String },
    #[error("Stripe error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("Stripe refused the Checkout Session ({status}, {kind}): {message}")]
    Refused { status: u16, kind: String, message: String },
    #[error("Stripe answered a Checkout Session without id or url")]
    Malformed,
}

impl Error {
    /// Whether the same request may succeed later (timeouts, 5xx, 409 lock
    /// conflicts, or Stripe saying `Stripe-Should-Retry: true`).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Server { .. })
    }
}

impl Client {
    pub fn new(base: &str, key: SecretString, methods: Vec<String>) -> Self {
        Self {
            http: crate::providers::api_client(),
            base: base.trim_end_matches('/').to_owned(),
            key,
            methods,
        }
    }

    pub async fn create_checkout_session(&self, request: &LinkRequest) -> Result<PaymentLink, Error> {
        let resp = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.base))
            .bearer_auth(self.key.expose_secret())
            .header("Idempotency-Key", &request.idempotency_key)
            .form(&form(request, &self.methods))
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let should_retry = resp
            .headers()
            .get("Stripe-Should-Retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v == "true");
        let Answer { status, retry_after_secs, body } = crate::providers::read_answer(resp).await;
        let error = &body["error"];
        let message = error["message"].as_str().unwrap_or("").to_owned();
        match (status, should_retry) {
            (200, _) => {
                let (Some(id), Some(url)) = (body["id"].as_str(), body["url"].as_str()) else {
                    return Err(Error::Malformed);
                };
                Ok(PaymentLink {
                    provider: Provider::Stripe,
                    id: id.to_owned(),
                    url: url.to_owned(),
                    expires_at: body["expires_at"].as_i64().and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
                })
            }
            (429, _) => Err(Error::RateLimited { retry_after_secs: retry_after_secs.unwrap_or(10).clamp(1, 3600), message }),
            (_, Some(true)) | (409, None) => Err(Error::Server { status, message }),
            (s, None) if s >= 500 => Err(Error::Server { status, message }),
            _ => Err(Error::Refused {
                status,
                kind: error["type"].as_str().unwrap_or("unknown").to_owned(),
                message,
            }),
        }
    }
}

/// The form body: indexed line items (`line_items[0][quantity]`), the
/// payment methods as a list (`payment_method_types[]=card&payment_method_types[]=oxxo`).
fn form(request: &LinkRequest, methods: &[String]) -> Vec<(String, String)> {
    let order_id = request.order_id.to_string();
    let mut form = vec![
        ("mode".to_owned(), "payment".to_owned()),
        ("metadata[order_id]".to_owned(), order_id.clone()),
        ("payment_intent_data[metadata][order_id]".to_owned(), order_id.clone()),
        ("client_reference_id".to_owned(), order_id),
        ("success_url".to_owned(), request.return_to("paid")),
        ("cancel_url".to_owned(), request.return_to("cancelled")),
        ("expires_at".to_owned(), request.expires_at.timestamp().to_string()),
    ];
    for method in methods {
        form.push(("payment_method_types[]".to_owned(), method.clone()));
    }
    let currency = request.currency.to_ascii_lowercase();
    for (i, line) in request.lines.iter().enumerate() {
        form.push((format!("line_items[{i}][price_data][currency]"), currency.clone()));
        form.push((format!("line_items[{i}][price_data][unit_amount]"), line.unit_amount_minor.to_string()));
        form.push((format!("line_items[{i}][price_data][product_data][name]"), line.name.clone()));
        form.push((format!("line_items[{i}][quantity]"), line.quantity.to_string()));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::payment::LinkLine;

    #[test]
    fn the_form_carries_the_order_on_the_session_and_its_payment_intent() {
        let order_id = uuid::Uuid::now_v7();
        let request = LinkRequest {
            order_id,
            currency: "MXN".into(),
            lines: vec![
                LinkLine { sku: "ZAP-001".into(), name: "Zapatos".into(), unit_amount_minor: 4599, quantity: 2 },
                LinkLine { sku: "CAM-001".into(), name: "Camisa".into(), unit_amount_minor: 2550, quantity: 1 },
            ],
            idempotency_key: "k".into(),
            return_url: "https://shop.example/gracias".into(),
            expires_at: DateTime::from_timestamp(1_764_700_000, 0).unwrap(),
        };
        let form = form(&request, &["card".into(), "oxxo".into()]);
        let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("mode"), Some("payment"));
        assert_eq!(get("metadata[order_id]"), Some(order_id.to_string().as_str()));
        assert_eq!(get("payment_intent_data[metadata][order_id]"), Some(order_id.to_string().as_str()));
        let methods: Vec<&str> = form.iter().filter(|(k, _)| k == "payment_method_types[]").map(|(_, v)| v.as_str()).collect();
        assert_eq!(methods, vec!["card", "oxxo"]);
        assert_eq!(get("line_items[1][price_data][unit_amount]"), Some("2550"));
        assert_eq!(get("line_items[0][price_data][currency]"), Some("mxn"));
        assert_eq!(get("line_items[0][price_data][product_data][name]"), Some("Zapatos"));
        assert_eq!(get("line_items[0][quantity]"), Some("2"));
        assert_eq!(get("success_url"), Some(format!("https://shop.example/gracias?order_id={order_id}&result=paid").as_str()));
        assert_eq!(get("expires_at"), Some("1764700000"));
    }
}
