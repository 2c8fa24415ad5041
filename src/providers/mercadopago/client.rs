//! `GET /v1/payments/{id}`: the only source of truth for a Mercado Pago payment
//! (never the notification body). Errors map to the engine's retry kinds:
//! 429 → rate limited (Retry-After), 5xx/timeouts → transient, 404/401 → permanent.

use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{domain::orders::PaymentSignal, engine::StepError};

pub const DEFAULT_API_BASE: &str = "https://api.mercadopago.com";

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

/// The fields of a payment the flow uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub status: String,
    pub external_reference: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
}

impl Payment {
    pub fn signal(&self) -> PaymentSignal {
        match self.status.as_str() {
            "approved" | "authorized" => PaymentSignal::Succeeded,
            "rejected" => PaymentSignal::Failed,
            "cancelled" => PaymentSignal::Canceled,
            "refunded" | "charged_back" => PaymentSignal::Refunded,
            _ => PaymentSignal::Processing, // pending, in_process, in_mediation
        }
    }
}

impl Client {
    pub fn new(base: &str, token: SecretString) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("reqwest client builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub async fn get_payment(&self, id: &str) -> Result<Payment, StepError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(StepError::permanent(format!("invalid Mercado Pago payment id {id:?}")));
        }
        let resp = self
            .http
            .get(format!("{}/v1/payments/{id}", self.base))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| StepError::transient(format!("Mercado Pago unreachable: {e}")))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let message = body["message"].as_str().unwrap_or("").to_owned();
        match status.as_u16() {
            200 => parse_payment(&body).ok_or_else(|| StepError::permanent("Mercado Pago answered a payment without id or status")),
            404 => Err(StepError::permanent(format!("Mercado Pago payment {id} not found: {message}"))),
            401 | 403 => Err(StepError::permanent(format!(
                "Mercado Pago refused MERCADOPAGO_ACCESS_TOKEN ({status}): {message}"
            ))),
            429 => Err(StepError::rate_limited(
                Utc::now() + chrono::Duration::seconds(retry_after.unwrap_or(30).clamp(1, 3600)),
                format!("Mercado Pago rate limit: {message}"),
            )),
            s if s >= 500 => Err(StepError::transient(format!("Mercado Pago error {status}: {message}"))),
            _ => Err(StepError::permanent(format!("Mercado Pago answered {status}: {message}"))),
        }
    }
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
    fn payments_parse_and_map_to_signals() {
        let p = parse_payment(&json!({"id": 999, "status": "approved", "external_reference": "o1",
            "transaction_amount": 117.48, "currency_id": "MXN"}))
        .unwrap();
        assert_eq!((p.id.as_str(), p.amount_minor, p.signal()), ("999", Some(11748), PaymentSignal::Succeeded));
        for (status, signal) in [
            ("pending", PaymentSignal::Processing),
            ("in_process", PaymentSignal::Processing),
            ("rejected", PaymentSignal::Failed),
            ("cancelled", PaymentSignal::Canceled),
            ("refunded", PaymentSignal::Refunded),
            ("charged_back", PaymentSignal::Refunded),
        ] {
            let p = parse_payment(&json!({"id": "1", "status": status})).unwrap();
            assert_eq!(p.signal(), signal, "{status}");
        }
    }
}
