//! `GET|POST /webhooks/whatsapp`.

use poem::{web::Data, Request};
use poem_openapi::{
    param::Query,
    payload::{Binary, Json, PlainText},
    ApiResponse, OpenApi,
};
use secrecy::ExposeSecret;

use super::{Incoming, WebhookResponse};
use crate::{
    http::{
        error::{body, ErrorBody},
        ApiTags, AppState,
    },
    providers::{ct_eq_str, whatsapp::verify, Provider},
};

#[derive(Default)]
pub struct WhatsAppWebhook;

#[derive(ApiResponse)]
pub enum HandshakeResponse {
    /// The verify token matched: the challenge, echoed.
    #[oai(status = 200)]
    Challenge(PlainText<String>),
    /// Wrong mode or verify token.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// `WHATSAPP_VERIFY_TOKEN` is not configured.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WhatsAppWebhook {
    /// Meta's subscription handshake: with `hub.mode=subscribe` and the right
    /// `hub.verify_token`, echoes `hub.challenge` as text/plain.
    #[oai(path = "/webhooks/whatsapp", method = "get", operation_id = "webhooks.whatsapp.verify")]
    async fn handshake(
        &self,
        state: Data<&AppState>,
        #[oai(name = "hub.mode")] mode: Query<Option<String>>,
        #[oai(name = "hub.verify_token")] token: Query<Option<String>>,
        #[oai(name = "hub.challenge")] challenge: Query<Option<String>>,
    ) -> HandshakeResponse {
        let Some(expected) = &state.webhooks.whatsapp_verify_token else {
            return HandshakeResponse::Unavailable(body(
                "provider_not_configured",
                "whatsapp webhooks are not configured on this server",
            ));
        };
        let token_ok = token.0.as_deref().is_some_and(|t| ct_eq_str(expected.expose_secret(), t));
        match (mode.0.as_deref(), challenge.0) {
            (Some("subscribe"), Some(challenge)) if token_ok => HandshakeResponse::Challenge(PlainText(challenge)),
            _ => HandshakeResponse::Forbidden(body("verification_failed", "wrong hub.mode or hub.verify_token")),
        }
    }

    /// Meta WhatsApp Cloud API notifications (`X-Hub-Signature-256` over the raw
    /// body with `WHATSAPP_APP_SECRET`). One event per message (deduplicated on
    /// its wamid) and per status (on wamid + status), all in one commit.
    #[oai(path = "/webhooks/whatsapp", method = "post", operation_id = "webhooks.whatsapp")]
    async fn receive(&self, state: Data<&AppState>, req: &Request, body: Binary<poem::Body>) -> WebhookResponse {
        let secret = state.webhooks.whatsapp_app_secret.clone();
        let incoming = match Incoming::read(Provider::WhatsApp, secret.is_some(), &state, req, body.0).await {
            Ok(i) => i,
            Err(answer) => return answer,
        };
        let Some(secret) = secret else { unreachable!("checked by Incoming::read") };
        let events = match verify::verify(incoming.header("x-hub-signature-256"), &incoming.bytes, &secret) {
            Ok(v) => v.into_inner(),
            Err(e) => return incoming.refuse(e),
        };
        let stored = events
            .into_iter()
            .map(|e| {
                let event = incoming.event(e.dedupe_key, e.provider_event_id, e.kind, e.payload);
                match e.sender {
                    Some(sender) => event.in_sequence(format!("wa:{sender}")),
                    None => event,
                }
            })
            .collect();
        incoming.store(&state, stored).await
    }
}
