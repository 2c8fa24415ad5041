//! Webhook receivers: verify → ingest (one commit) → ack. Authenticated by the
//! providers' signatures only. The status of each answer is the one that makes
//! *that provider* behave: 2xx only once stored; 503 + Retry-After for Stripe,
//! Mercado Pago and Meta when storage fails; 429 for HighLevel (it retries only 429).

mod highlevel;
mod mercadopago;
mod stripe;
mod whatsapp;

use std::time::Instant;

use poem::{web::Data, Body, Request};
use poem_openapi::{payload::Json, ApiResponse, Object};
use serde_json::{Map, Value};

pub use highlevel::HighLevelWebhook;
pub use mercadopago::MercadoPagoWebhook;
pub use stripe::StripeWebhook;
pub use whatsapp::WhatsAppWebhook;

use super::{
    error::{body, ErrorBody},
    AppState,
};
use crate::{
    ingest::{NewEvent, RawBody},
    providers::{Provider, VerifyError},
};

/// Seconds a provider is asked to wait before retrying a webhook we could not store.
const RETRY_AFTER_SECS: u32 = 30;

#[derive(Object, Debug, serde::Serialize, serde::Deserialize)]
pub struct AckOut {
    /// Events stored by this request (0 for a redelivery).
    pub received: u32,
    /// True when every event in the request had been received before.
    pub duplicate: bool,
}

#[derive(ApiResponse)]
pub enum WebhookResponse {
    /// Stored (or already stored: `duplicate: true`). The event's run is queued.
    #[oai(status = 200)]
    Accepted(Json<AckOut>),
    /// The signed body is not valid JSON.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Signature missing, wrong or stale; nothing was stored.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Body larger than `RELEVO_MAX_BODY_BYTES`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// HighLevel only: storage failed; HighLevel retries 429 (and nothing else).
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
    /// Storage failed, or this provider is not configured; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u32),
}

/// The answer that makes `provider` retry later: HighLevel retries only 429.
fn retry_later(provider: Provider, code: &str, message: &str) -> WebhookResponse {
    match provider {
        Provider::HighLevel => WebhookResponse::TooManyRequests(body(code, message), RETRY_AFTER_SECS),
        _ => WebhookResponse::Unavailable(body(code, message), RETRY_AFTER_SECS),
    }
}

fn count(provider: Provider, outcome: &'static str) {
    metrics::counter!("relevo_webhooks_received_total", "provider" => provider.as_str(), "outcome" => outcome)
        .increment(1);
}

pub(crate) fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn kept_headers(provider: Provider, req: &Request) -> Value {
    let mut map = Map::new();
    for name in provider.audit_headers() {
        if let Some(v) = header(req, name) {
            map.insert((*name).to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(map)
}

/// The parts of a request a receiver works with.
pub(crate) struct Incoming<'a> {
    pub provider: Provider,
    pub req: &'a Request,
    pub bytes: Vec<u8>,
    /// Stored once, however many events the request carries.
    raw: std::sync::OnceLock<std::sync::Arc<RawBody>>,
    started: Instant,
}

impl<'a> Incoming<'a> {
    /// Reads the body up to the limit; refuses unconfigured providers.
    pub(crate) async fn read(
        provider: Provider,
        configured: bool,
        state: &AppState,
        req: &'a Request,
        body: Body,
    ) -> Result<Incoming<'a>, WebhookResponse> {
        let started = Instant::now();
        if !configured {
            count(provider, "unavailable");
            return Err(WebhookResponse::Unavailable(
                super::error::body(
                    "provider_not_configured",
                    format!("{} webhooks are not configured on this server", provider.as_str()),
                ),
                RETRY_AFTER_SECS,
            ));
        }
        let limit = state.webhooks.max_body_bytes;
        match body.into_bytes_limit(limit).await {
            Ok(bytes) => Ok(Self {
                provider,
                req,
                bytes: bytes.to_vec(),
                raw: Default::default(),
                started,
            }),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => {
                count(provider, "rejected");
                Err(WebhookResponse::PayloadTooLarge(super::error::body(
                    "payload_too_large",
                    format!("the body exceeds {limit} bytes"),
                )))
            }
            Err(e) => {
                count(provider, "rejected");
                Err(WebhookResponse::BadRequest(super::error::body("unreadable_body", e.to_string())))
            }
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(self.req, name)
    }

    /// Maps a verification failure: 400 for a signed non-JSON body, else 401.
    pub(crate) fn refuse(&self, e: VerifyError) -> WebhookResponse {
        count(self.provider, "rejected");
        tracing::info!(provider = self.provider.as_str(), reason = %e, "webhook refused");
        if e.is_bad_request() {
            WebhookResponse::BadRequest(body("invalid_json", e.to_string()))
        } else {
            WebhookResponse::Unauthorized(body("invalid_signature", e.to_string()))
        }
    }

    /// A `NewEvent` carrying this request's raw body and kept headers.
    pub(crate) fn event(&self, dedupe_key: String, provider_event_id: Option<String>, kind: String, payload: Value) -> NewEvent {
        NewEvent::new(
            self.provider,
            dedupe_key,
            provider_event_id,
            kind,
            kept_headers(self.provider, self.req),
            self.raw.get_or_init(|| RawBody::new(&self.bytes)).clone(),
            payload,
        )
    }

    /// The whole body as JSON (verifiers have already checked it parses).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// Stores the events in one commit and answers.
    pub(crate) async fn store(self, state: &Data<&AppState>, events: Vec<NewEvent>) -> WebhookResponse {
        let total = events.len();
        let result = state.ingest.submit(events).await;
        metrics::histogram!("relevo_ingest_seconds", "provider" => self.provider.as_str())
            .record(self.started.elapsed().as_secs_f64());
        match result {
            Ok(new) => {
                let received = new.iter().filter(|n| **n).count() as u32;
                let duplicate = received == 0 && total > 0;
                count(self.provider, if duplicate { "duplicate" } else { "accepted" });
                WebhookResponse::Accepted(Json(AckOut { received, duplicate }))
            }
            Err(e) => {
                count(self.provider, "unavailable");
                tracing::warn!(provider = self.provider.as_str(), error.message = %e, "webhook not stored; provider will retry");
                retry_later(self.provider, "storage_unavailable", "the event could not be stored; retry later")
            }
        }
    }
}
