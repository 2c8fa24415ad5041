//! `POST /webhooks/mercadopago`.

use poem::{web::Data, Request};
use poem_openapi::{payload::Binary, OpenApi};

use super::{Incoming, WebhookResponse};
use crate::{
    http::{ApiTags, AppState},
    providers::{mercadopago::verify, Provider},
};

#[derive(Default)]
pub struct MercadoPagoWebhook;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl MercadoPagoWebhook {
    /// Mercado Pago notifications (`x-signature` over `id:<data.id>;request-id:<x-request-id>;ts:<ts>;`
    /// with `MERCADOPAGO_WEBHOOK_SECRET`; `data.id` in the query is required and
    /// `ts` may be at most `MERCADOPAGO_MAX_AGE` old). Deduplicated on the signed
    /// `data.id` and `ts`. The payment itself is fetched from the API later.
    #[oai(path = "/webhooks/mercadopago", method = "post", operation_id = "webhooks.mercadopago")]
    async fn receive(&self, state: Data<&AppState>, req: &Request, body: Binary<poem::Body>) -> WebhookResponse {
        let secret = state.webhooks.mercadopago_secret.clone();
        let incoming = match Incoming::read(Provider::MercadoPago, secret.is_some(), &state, req, body.0).await {
            Ok(i) => i,
            Err(answer) => return answer,
        };
        let Some(secret) = secret else { unreachable!("checked by Incoming::read") };
        let data_id = query_param(req, "data.id");
        let request_id = incoming.header("x-request-id").map(str::to_owned);
        let window = verify::Window { now: chrono::Utc::now(), max_age: state.webhooks.mercadopago_max_age };
        let n = match verify::verify(
            incoming.header("x-signature"),
            request_id.as_deref(),
            data_id.as_deref(),
            &incoming.bytes,
            &secret,
            window,
        ) {
            Ok(v) => v.into_inner(),
            Err(e) => return incoming.refuse(e),
        };
        // The payment id is the signed `data.id`, never the body's.
        let mut payload = incoming.json();
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("relevo_data_id".into(), serde_json::Value::String(n.data_id.clone()));
        }
        let stored = incoming.event(n.dedupe_key(), n.id.or(request_id), n.kind, payload);
        incoming.store(&state, vec![stored]).await
    }
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
