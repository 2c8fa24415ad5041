//! Provider protocols: signature verification (pure functions), typed
//! payloads that say what an event asks for (`Route`), and API clients. Facts in
//! `../shared/providers.md`. Nothing here knows the engine, the domain or a flow:
//! clients return their own types and errors, and the workflows map them.

pub mod highlevel;
pub mod mercadopago;
pub mod payment;
mod route;
pub mod stripe;
pub mod whatsapp;

pub use route::Route;

/// A provider Relevo receives webhooks from. Its name is stored with every
/// inbound event and run input (a durable contract: never rename one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    #[serde(rename = "mercadopago")]
    MercadoPago,
    #[serde(rename = "whatsapp")]
    WhatsApp,
    #[serde(rename = "highlevel")]
    HighLevel,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Self::Stripe, Self::MercadoPago, Self::WhatsApp, Self::HighLevel];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::MercadoPago => "mercadopago",
            Self::WhatsApp => "whatsapp",
            Self::HighLevel => "highlevel",
        }
    }

    /// Request headers worth keeping for audit: signatures and request ids, never credentials.
    pub fn audit_headers(self) -> &'static [&'static str] {
        match self {
            Self::Stripe => &["content-type", "user-agent", "stripe-signature"],
            Self::MercadoPago => &["content-type", "user-agent", "x-signature", "x-request-id", "x-retry"],
            Self::WhatsApp => &["content-type", "user-agent", "x-hub-signature-256"],
            Self::HighLevel => &["content-type", "user-agent", "x-ghl-signature", "x-wh-signature"],
        }
    }

    /// What a stored event of this provider asks for. Pure: the payload was
    /// verified and stored before; Mercado Pago payments need an API read first
    /// (`Route::FetchMercadoPagoPayment`).
    pub fn route(self, kind: &str, payload: &serde_json::Value) -> Route {
        match self {
            Self::Stripe => stripe::payload::route(payload),
            Self::MercadoPago => mercadopago::payload::route(kind, payload),
            Self::WhatsApp => whatsapp::payload::route(kind, payload),
            Self::HighLevel => highlevel::payload::route(kind, payload),
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

use subtle::ConstantTimeEq;

/// A value whose origin was proven by a signature check. Only the verifiers
/// in this module tree can build one.
#[derive(Debug, Clone)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Why a webhook was refused before anything was stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("malformed {0} header")]
    MalformedHeader(&'static str),
    #[error("signature does not match")]
    BadSignature,
    #[error("timestamp outside the allowed window")]
    StaleTimestamp,
    #[error("the {0} must be present and signed")]
    MissingSignedField(&'static str),
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
}

impl VerifyError {
    /// Signature problems are 401; a signed body that is not JSON is 400.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::InvalidJson(_))
    }
}

/// Constant-time equality of two byte strings, length checked first.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Constant-time equality of two strings, length checked first.
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    ct_eq(a.as_bytes(), b.as_bytes())
}

/// Lowercase hex HMAC-SHA256.
pub(crate) fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Compares a received hex signature with the expected one; accepts either case.
pub(crate) fn hex_sig_matches(expected_lower_hex: &str, received: &str) -> bool {
    received.len() == expected_lower_hex.len()
        && ct_eq(expected_lower_hex.as_bytes(), received.to_ascii_lowercase().as_bytes())
}

/// The HTTP client for a provider's API: 15 s per call, 5 s to connect, so a
/// stuck provider fails the step (and its retry policy decides) instead of
/// holding a worker.
pub(crate) fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("reqwest client builds")
}

/// What a provider's API answered: the status, `Retry-After` in seconds, and
/// the JSON body (null when there is none or it is not JSON).
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after_secs: Option<i64>,
    pub body: serde_json::Value,
}

pub(crate) async fn read_answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let retry_after_secs = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer { status, retry_after_secs, body }
}
