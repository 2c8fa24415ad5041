//! `POST /webhooks/highlevel`.

use chrono::Utc;
use poem::{web::Data, Request};
use poem_openapi::{payload::Binary, OpenApi};

use super::{Incoming, WebhookResponse};
use crate::{
    http::{ApiTags, AppState},
    providers::{highlevel::verify, Provider},
};

#[derive(Default)]
pub struct HighLevelWebhook;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl HighLevelWebhook {
    /// HighLevel webhooks (`X-GHL-Signature` Ed25519, else legacy `X-WH-Signature`
    /// RSA; `timestamp` within 5 minutes). Deduplicated on `webhookId`. When the
    /// event cannot be stored the answer is 429, the only status HighLevel retries.
    /// Appointment events of connected locations are applied; with
    /// `HIGHLEVEL_LOCATION_IDS` set, events of other locations are stored as
    /// ignored (no run) and answered 200.
    #[oai(path = "/webhooks/highlevel", method = "post", operation_id = "webhooks.highlevel")]
    async fn receive(&self, state: Data<&AppState>, req: &Request, body: Binary<poem::Body>) -> WebhookResponse {
        let incoming = match Incoming::read(Provider::HighLevel, true, &state, req, body.0).await {
            Ok(i) => i,
            Err(answer) => return answer,
        };
        let event = match verify::verify(
            incoming.header("x-ghl-signature"),
            incoming.header("x-wh-signature"),
            &incoming.bytes,
            &state.highlevel_keys,
            Utc::now(),
        ) {
            Ok(v) => v.into_inner(),
            Err(e) => return incoming.refuse(e),
        };
        // Signed bodies carry webhookId; without one, the body itself is the identity.
        let dedupe = event.webhook_id.clone().unwrap_or_else(|| {
            use sha2::Digest;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&incoming.bytes)))
        });
        let mut stored = incoming.event(dedupe, event.webhook_id.clone(), event.kind.clone(), incoming.json());
        if let Some(appointment) = &event.appointment_id {
            // One appointment's events are routed in the order they arrived.
            stored = stored.in_sequence(format!("ghl:{appointment}"));
        }
        let allowed = &state.webhooks.highlevel_location_ids;
        if !allowed.is_empty() && !event.belongs_to(allowed) {
            // Stored for audit and answered 200 (HighLevel retries only 429), never acted on.
            let location = event.location_id.as_deref().or(event.company_id.as_deref()).unwrap_or("(none)");
            stored = stored.ignore(format!("HighLevel location {location} is not connected (HIGHLEVEL_LOCATION_IDS)"));
        }
        incoming.store(&state, vec![stored]).await
    }
}
