//! The flows Relevo runs, each a file that reads as its list of steps. This is
//! the one file that names flows: it registers them at start-up, hands ingest
//! its entry flow, and maps each provider route to the flow it starts.
//!
//! | provider event                                                    | `Route`                                             | flow started                                  |
//! |-------------------------------------------------------------------|-----------------------------------------------------|-----------------------------------------------|
//! | any stored webhook                                                | —                                                   | `inbound_event` (entry; its `route` step)     |
//! | Stripe `payment_intent.*`, `checkout.session.*`, `charge.refunded` | `Payment`                                           | `payment_fulfilment`, keyed by the order      |
//! | Mercado Pago `payment*` notification                              | `FetchMercadoPagoPayment` → `fetch_payment` → `Payment` | `payment_fulfilment`, keyed by the order  |
//! | a payment that references no known order                          | `Payment`                                           | none (`not_started`, with the reason)         |
//! | other Stripe / Mercado Pago types, WhatsApp, HighLevel            | `Ignored`                                           | none                                          |
//!
//! Flows started by other flows: `payment_fulfilment` → `oxxo_expiry` (voucher
//! timer) and `email_delivery` (when SMTP is configured).

pub mod email_delivery;
pub mod inbound_event;
pub mod oxxo_expiry;
pub mod payment_fulfilment;
pub mod selftest;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use self::{
    inbound_event::{InboundEvent, InboundEventInput},
    payment_fulfilment::{PaymentFulfilment, PaymentFulfilmentInput},
};
use crate::{
    config::Settings,
    domain::orders::fulfilment::Shop,
    engine::{self, Engine, NewRun, Registry, StepError, Workflow},
    ingest::{EntryFlow, StoredEvent},
    providers::Route,
};

/// Every workflow this process executes. Fails on an unusable SMTP_URL or EMAIL_FROM.
pub fn registry(settings: &Settings) -> Result<Registry, crate::mailer::ConfigError> {
    let mailer = match (&settings.smtp_url, &settings.email_from) {
        (Some(url), Some(from)) => Some(Arc::new(crate::mailer::Mailer::new(url, from)?)),
        _ => {
            tracing::info!("SMTP_URL/EMAIL_FROM not set: e-mails stay in the outbox as \"logged\"");
            None
        }
    };
    let shop = Arc::new(Shop {
        timezone: settings.shop_timezone,
        smtp_configured: mailer.is_some(),
    });
    let mut registry = Registry::new()
        .register(InboundEvent {
            mercadopago: settings.mercadopago_access_token.clone().map(|token| {
                Arc::new(crate::providers::mercadopago::client::Client::new(&settings.mercadopago_api_base, token))
            }),
        })
        .register(PaymentFulfilment { shop: shop.clone() })
        .register(oxxo_expiry::OxxoExpiry { shop });
    if let Some(mailer) = mailer {
        registry = registry.register(email_delivery::EmailDelivery { mailer });
    }
    if settings.enable_test_workflows {
        tracing::warn!("self-test workflows are enabled (RELEVO_ENABLE_TEST_WORKFLOWS)");
        registry = selftest::register(registry);
    }
    Ok(registry)
}

/// The flow every stored webhook starts: `inbound_event`.
pub fn entry_flow() -> Arc<dyn EntryFlow> {
    Arc::new(InboundEntry)
}

struct InboundEntry;

impl EntryFlow for InboundEntry {
    fn start_using<'a>(
        &'a self,
        engine: &'a Engine,
        conn: &'a mut PgConnection,
        events: &'a [StoredEvent],
    ) -> BoxFuture<'a, engine::Result<()>> {
        let runs: Vec<NewRun<InboundEventInput>> = events
            .iter()
            .map(|e| NewRun {
                id: e.run_id,
                input: InboundEventInput {
                    event_id: e.event_id,
                    provider: e.provider,
                    kind: e.kind.clone(),
                },
                trigger_event_id: Some(e.event_id),
            })
            .collect();
        Box::pin(async move { engine.start_many_using::<InboundEvent>(conn, &runs).await })
    }
}

/// The `route` step's checkpoint: what the event asked for, and what it started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Routed {
    pub route: Route,
    pub dispatch: Dispatch,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Dispatch {
    Started { flow: String, run_id: Uuid },
    NotStarted { reason: String },
}

/// Starts the flow `route` maps to, in the caller's transaction (the `route`
/// step's), so it starts exactly once.
async fn start_routed_using(tx: &mut PgConnection, event_id: Uuid, route: Route) -> Result<Routed, StepError> {
    let dispatch = match &route {
        Route::Payment(payment) => match PaymentFulfilmentInput::for_event_using(tx, payment, event_id).await? {
            Some(input) => started::<PaymentFulfilment>(tx, &input, event_id).await?,
            None => Dispatch::NotStarted {
                reason: "the event references no known order (metadata.order_id, external_reference)".into(),
            },
        },
        Route::FetchMercadoPagoPayment { .. } => {
            return Err(StepError::permanent("a Mercado Pago payment must be fetched before it is routed"))
        }
        Route::Ignored { reason } => Dispatch::NotStarted { reason: reason.clone() },
    };
    Ok(Routed { route, dispatch })
}

async fn started<W: Workflow>(tx: &mut PgConnection, input: &W::Input, event_id: Uuid) -> Result<Dispatch, StepError> {
    let run_id = engine::start_using::<W>(tx, input, Some(event_id)).await?;
    Ok(Dispatch::Started { flow: W::NAME.into(), run_id })
}
