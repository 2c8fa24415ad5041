//! `POST /webhooks/stripe`.

use chrono::Utc;
use poem::{web::Data, Request};
use poem_openapi::{payload::Binary, OpenApi};

use super::{Incoming, WebhookResponse};
use crate::{
    http::{ApiTags, AppState},
    providers::{stripe::verify, Provider},
};

#[derive(Default)]
pub struct StripeWebhook;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl StripeWebhook {
    /// Stripe events (`Stripe-Signature`, 300 s tolerance, every configured
    /// secret in `STRIPE_WEBHOOK_SECRET` tried). Deduplicated on the event `id`.
    #[oai(path = "/webhooks/stripe", method = "post", operation_id = "webhooks.stripe")]
    async fn receive(&self, state: Data<&AppState>, req: &Request, body: Binary<poem::Body>) -> WebhookResponse {
        let configured = !state.webhooks.stripe_secrets.is_empty();
        let incoming = match Incoming::read(Provider::Stripe, configured, &state, req, body.0).await {
            Ok(i) => i,
            Err(answer) => return answer,
        };
        let event = match verify::verify(
            incoming.header("stripe-signature"),
            &incoming.bytes,
            &state.webhooks.stripe_secrets,
            Utc::now(),
        ) {
            Ok(v) => v.into_inner(),
            Err(e) => return incoming.refuse(e),
        };
        let stored = incoming.event(event.id.clone(), Some(event.id), event.event_type, incoming.json());
        incoming.store(&state, vec![stored]).await
    }
}
