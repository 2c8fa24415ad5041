//! `GET /v1/payments/{id}`: the only source of truth for a Mercado Pago payment
//! (never the notification body); `POST /checkout/preferences`: a hosted
//! payment page for an order. Answers are classified into `Error` variants
//! that say whether retrying can help; the flow decides what to do with them.


use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::providers::{
    payment::{LinkRequest, PaymentLink},
    Provider,
};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// The fields of a payment the flows use. Stored as a step checkpoint: add
/// fields with defaults, never rename one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub status: String,
    pub external_reference: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

/// Why a payment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Mercado Pago payment id {0:?}")]
    InvalidId(String),
    #[error("Mercado Pago unreachable: {0}")]
    Unreachable(String),
    #[error("Mercado Pago payment {id} not found: {message}")]
    NotFound { id: String, message: String },
    #[error("Mercado Pago refused MERCADOPAGO_ACCESS_TOKEN ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    #[error("Mercado Pago rate limit: {message}")]
    RateLimited { retry_after_secs: i64, message: String },
    #[error("Mercado Pago error {status}: {message}")]
    Server { status: u16, message: String },
    #[error("Mercado Pago answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("Mercado Pago answered a payment without id or status")]
    Malformed,
}

impl Error {
    /// Whether the same request may succeed later (timeouts, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Server { .. })
    }
}

impl Client {
    pub fn new(base: &str, token: SecretString) -> Self {
        Self {
            http: crate::providers::api_client(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub async fn get_payment(&self, id: &str) -> Result<Payment, Error> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::InvalidId(id.to_owned()));
        }
        let resp = self
            .http
            .get(format!("{}/v1/payments/{id}", self.base))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let crate::providers::Answer { status, retry_after_secs, body } = crate::providers::read_answer(resp).await;
        let message = body["message"].as_str().unwrap_or("").to_owned();
        match status {
            200 => parse_payment(&body).ok_or(Error::Malformed),
            404 => Err(Error::NotFound { id: id.to_owned(), message }),
            401 | 403 => Err(Error::Unauthorized { status, message }),
            429 => Err(Error::RateLimited {
                retry_after_secs: retry_after_secs.unwrap_or(30).clamp(1, 3600),
                message,
            }),
            s if s >= 500 => Err(Error::Server { status, message }),
            _ => Err(Error::Refused { status, message }),
        }
    }
}

impl Client {
    /// A Checkout Pro preference for the order (`external_reference` = order
    /// id), with `X-Idempotency-Key` so a retried call does not create a second one.
    pub async fn create_preference(&self, request: &LinkRequest) -> Result<PaymentLink, Error> {
        let resp = self
            .http
            .post(format!("{}/checkout/preferences", self.base))
            .bearer_auth(self.token.expose_secret())
            .header("X-Idempotency-Key", &request.idempotency_key)
            .json(&preference(request))
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let crate::providers::Answer { status, retry_after_secs, body } = crate::providers::read_answer(resp).await;
        let message = body["message"].as_str().unwrap_or("").to_owned();
        match status {
            200 | 201 => {
                let (Some(id), Some(url)) = (body["id"].as_str(), body["init_point"].as_str()) else {
                    return Err(Error::Malformed);
                };
                Ok(PaymentLink {
                    provider: Provider::MercadoPago,
                    id: id.to_owned(),
                    url: url.to_owned(),
                    expires_at: body["expiration_date_to"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .or(Some(request.expires_at)),
                })
            }
            401 | 403 => Err(Error::Unauthorized { status, message }),
            429 => Err(Error::RateLimited { retry_after_secs: retry_after_secs.unwrap_or(30).clamp(1, 3600), message }),
            s if s >= 500 => Err(Error::Server { status, message }),
            _ => Err(Error::Refused { status, message }),
        }
    }
}

/// The preference body: prices in major units, as Mercado Pago takes them.
fn preference(request: &LinkRequest) -> Value {
    let exponent = iso_currency::Currency::from_code(&request.currency)
        .and_then(|c| c.exponent())
        .map_or(2, i32::from);
    let major = |minor: i64| minor as f64 / 10f64.powi(exponent);
    json!({
        "items": request.lines.iter().map(|l| json!({
            "id": l.sku,
            "title": l.name,
            "quantity": l.quantity,
            "unit_price": major(l.unit_amount_minor),
            "currency_id": request.currency,
        })).collect::<Vec<_>>(),
        "external_reference": request.order_id.to_string(),
        "metadata": {"order_id": request.order_id.to_string()},
        "back_urls": {
            "success": request.return_to("paid"),
            "pending": request.return_to("pending"),
            "failure": request.return_to("cancelled"),
        },
        "expires": true,
        "expiration_date_to": request.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

fn parse_payment(body: &Value) -> Option<Payment> {
    let id = match &body["id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    Some(Payment {
        id,
        status: body["status"].as_str()?.to_owned(),
        external_reference: body["external_reference"].as_str().map(str::to_owned),
        amount_minor: body["transaction_amount"].as_f64().map(|a| (a * 100.0).round() as i64),
        currency: body["currency_id"].as_str().map(str::to_ascii_uppercase),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_preference_names_the_order_and_prices_in_major_units() {
        let order_id = uuid::Uuid::now_v7();
        let request = LinkRequest {
            order_id,
            currency: "MXN".into(),
            lines: vec![crate::providers::payment::LinkLine { sku: "ZAP-001".into(), name: "Zapatos".into(), unit_amount_minor: 4599, quantity: 2 }],
            idempotency_key: "k".into(),
            return_url: "https://shop.example/gracias".into(),
            expires_at: chrono::DateTime::from_timestamp(1_764_700_000, 0).unwrap(),
        };
        let body = preference(&request);
        assert_eq!(body["items"][0], json!({"id": "ZAP-001", "title": "Zapatos", "quantity": 2, "unit_price": 45.99, "currency_id": "MXN"}));
        assert_eq!(body["external_reference"], order_id.to_string());
        assert_eq!(body["expiration_date_to"], "2025-12-02T18:26:40.000Z");
    }

    #[test]
    fn payments_parse() {
        let p = parse_payment(&json!({"id": 999, "status": "approved", "external_reference": "o1",
            "transaction_amount": 117.48, "currency_id": "mxn"}))
        .unwrap();
        assert_eq!((p.id.as_str(), p.amount_minor, p.currency.as_deref()), ("999", Some(11748), Some("MXN")));
        assert_eq!(parse_payment(&json!({"id": "1", "status": "pending"})).unwrap().amount_minor, None);
        assert!(parse_payment(&json!({"status": "approved"})).is_none());
    }
}
