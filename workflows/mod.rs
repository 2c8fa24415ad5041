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
//! | WhatsApp `message.*` (any message type)                           | `WhatsAppMessage`                                   | `whatsapp_conversation`, keyed by `wa:<wa_id>` |
//! | WhatsApp `status.*` (sent, delivered, read, failed)               | `WhatsAppStatus`                                    | none: merged into `whatsapp_statuses` (`recorded`) |
//! | HighLevel `AppointmentCreate|Update|Delete` (connected location)   | `HighLevelAppointment`                              | `highlevel_appointment`, keyed by its HighLevel id |
//! | other Stripe / Mercado Pago / HighLevel types                     | `Ignored`                                           | none                                          |
//!
//! Flows started by other flows: `payment_fulfilment` → `oxxo_expiry` (voucher
//! timer), `email_delivery` (when SMTP is configured) and `whatsapp_notice`
//! (orders from a WhatsApp quote: paid, voucher, needs attention, expired;
//! `oxxo_expiry` too).
//!
//! Flows started by API changes (`domain::appointments::changes`, through
//! `sync_flows`): `appointment_sync` (each appointment change, keyed by the
//! appointment) and `highlevel_tokens` (one recurring refresher per connected
//! location).

pub mod appointment_sync;
pub mod email_delivery;
pub mod highlevel_appointment;
pub mod highlevel_tokens;
pub mod inbound_event;
pub mod oxxo_expiry;
pub mod payment_fulfilment;
pub mod selftest;
pub mod whatsapp_checkout;
pub mod whatsapp_conversation;
pub mod whatsapp_notice;
pub mod whatsapp_sender;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use self::{
    inbound_event::{InboundEvent, InboundEventInput},
    payment_fulfilment::{PaymentFulfilment, PaymentFulfilmentInput},
    whatsapp_checkout::{Checkout, PaymentLinks},
    whatsapp_conversation::{WhatsAppConversation, WhatsAppConversationInput},
};
use crate::{
    config::Settings,
    domain::{
        appointments::changes::{OpError, Push, SyncFlows},
        highlevel::api::HighLevel,
        orders::fulfilment::Shop,
        whatsapp::statuses::{self, Reported, StatusReport},
    },
    engine::{self, Engine, NewRun, Registry, RetryPolicy, StepError, Workflow},
    ingest::{EntryFlow, StoredEvent},
    providers::Route,
};

/// Every workflow this process executes. Fails on an unusable SMTP_URL or
/// EMAIL_FROM, or an unusable RELEVO_SECRET_KEY.
pub fn registry(settings: &Settings) -> anyhow::Result<Registry> {
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
    let highlevel = highlevel(settings)?;
    let mut registry = Registry::new()
        .register(InboundEvent {
            mercadopago: settings.mercadopago_access_token.clone().map(|token| {
                Arc::new(crate::providers::mercadopago::client::Client::new(&settings.mercadopago_api_base, token))
            }),
        })
        .register(PaymentFulfilment { shop: shop.clone() })
        .register(oxxo_expiry::OxxoExpiry { shop: shop.clone() })
        .register(whatsapp_conversation(settings, shop.clone()))
        .register(whatsapp_notice(settings, shop))
        .register(appointment_sync::AppointmentSync { highlevel: highlevel.clone() })
        .register(highlevel_appointment::HighLevelAppointment)
        .register(highlevel_tokens::HighLevelTokens { highlevel });
    if let Some(mailer) = mailer {
        registry = registry.register(email_delivery::EmailDelivery { mailer });
    }
    if settings.enable_test_workflows {
        tracing::warn!("self-test workflows are enabled (RELEVO_ENABLE_TEST_WORKFLOWS)");
        registry = selftest::register(registry);
    }
    Ok(registry)
}

/// The one way to call HighLevel: the marketplace app's client, tokens sealed
/// with RELEVO_SECRET_KEY, HIGHLEVEL_RATE_LIMIT per location.
pub fn highlevel(settings: &Settings) -> anyhow::Result<Arc<HighLevel>> {
    let hl = &settings.highlevel;
    let app = match (&hl.client_id, &hl.client_secret) {
        (Some(client_id), Some(client_secret)) => Some(crate::providers::highlevel::client::App {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            redirect_uri: hl.redirect_uri.clone(),
        }),
        _ => None,
    };
    let client = Arc::new(crate::providers::highlevel::client::Client::new(&hl.api_base, app));
    let sealer = crate::sealing::Sealer::load(settings.secret_key.as_ref(), &settings.data_dir)?;
    Ok(HighLevel::new(client, sealer, hl.rate_limit))
}

/// The WhatsApp conversation flow: replies through the shared sender, with
/// order confirmation and payment links.
fn whatsapp_conversation(settings: &Settings, shop: Arc<Shop>) -> WhatsAppConversation {
    let checkout = Arc::new(Checkout { links: payment_links(settings), return_url: settings.payment_links.return_url.clone(), shop });
    WhatsAppConversation {
        sender: whatsapp_sender(&settings.whatsapp),
        retry: RetryPolicy::from_schedule(&settings.whatsapp.send_retry_schedule),
        checkout,
    }
}

/// Order notices in the chat: the same sender and retry schedule as replies.
fn whatsapp_notice(settings: &Settings, shop: Arc<Shop>) -> whatsapp_notice::WhatsAppNotice {
    let wa = &settings.whatsapp;
    whatsapp_notice::WhatsAppNotice {
        sender: whatsapp_sender(wa),
        retry: RetryPolicy::from_schedule(&wa.send_retry_schedule),
        shop,
        template: wa.template_order_update.clone().map(|name| whatsapp_notice::Template { name, lang: wa.template_lang.clone() }),
    }
}

/// The Graph API sender when WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID
/// are set; else one whose sends fail permanently naming what is missing.
/// Retries follow WHATSAPP_SEND_RETRY_SCHEDULE exactly (one per delay, then failed).
fn whatsapp_sender(wa: &crate::config::WhatsAppSettings) -> whatsapp_sender::Sender {
    let client = match (&wa.access_token, &wa.phone_number_id) {
        (Some(token), Some(phone_number_id)) => Ok(Arc::new(crate::providers::whatsapp::client::Client::new(
            &wa.api_base,
            &wa.api_version,
            phone_number_id,
            token.clone(),
        ))),
        (None, Some(_)) => Err("WHATSAPP_ACCESS_TOKEN is not set; set it and retry this run".to_owned()),
        (Some(_), None) => Err("WHATSAPP_PHONE_NUMBER_ID is not set; set it and retry this run".to_owned()),
        (None, None) => {
            Err("WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are not set; set them and retry this run".to_owned())
        }
    };
    whatsapp_sender::Sender { client }
}

/// Who hosts payment links: RELEVO_PAYMENT_LINKS, else Stripe when
/// STRIPE_API_KEY is set, else Mercado Pago.
fn payment_links(settings: &Settings) -> PaymentLinks {
    use crate::{
        config::LinkProvider,
        providers::{mercadopago, stripe},
    };
    let links = &settings.payment_links;
    let stripe = || {
        links.stripe_api_key.clone().map(|key| {
            PaymentLinks::Stripe(Arc::new(stripe::client::Client::new(&links.stripe_api_base, key, links.stripe_payment_methods.clone())))
        })
    };
    let mercadopago = || {
        settings.mercadopago_access_token.clone().map(|token| {
            PaymentLinks::MercadoPago(Arc::new(mercadopago::client::Client::new(&settings.mercadopago_api_base, token)))
        })
    };
    let unavailable = |why: &str| PaymentLinks::Unavailable(format!("{why}; set it and retry this run"));
    match links.provider {
        Some(LinkProvider::Stripe) => stripe().unwrap_or_else(|| unavailable("RELEVO_PAYMENT_LINKS=stripe but STRIPE_API_KEY is not set")),
        Some(LinkProvider::MercadoPago) => mercadopago()
            .unwrap_or_else(|| unavailable("RELEVO_PAYMENT_LINKS=mercadopago but MERCADOPAGO_ACCESS_TOKEN is not set")),
        None => stripe().or_else(mercadopago).unwrap_or_else(|| {
            unavailable("no payment link provider: neither STRIPE_API_KEY nor MERCADOPAGO_ACCESS_TOKEN is set")
        }),
    }
}

/// The runs appointment and location changes start (`appointment_sync`,
/// `highlevel_tokens`), handed to the API at start-up.
pub fn sync_flows() -> Arc<dyn SyncFlows> {
    Arc::new(AppointmentFlows)
}

struct AppointmentFlows;

impl SyncFlows for AppointmentFlows {
    fn push_using<'a>(&'a self, tx: &'a mut PgConnection, id: Uuid, version: i64, push: Push) -> BoxFuture<'a, Result<Uuid, OpError>> {
        let input = appointment_sync::AppointmentSyncInput { appointment_id: id, version, push };
        Box::pin(async move { engine::start_using::<appointment_sync::AppointmentSync>(tx, &input, None).await.map_err(op_error) })
    }

    fn keep_tokens_fresh_using<'a>(&'a self, tx: &'a mut PgConnection, location: &'a str) -> BoxFuture<'a, Result<(), OpError>> {
        Box::pin(async move { highlevel_tokens::ensure_using(tx, location).await.map_err(op_error) })
    }
}

/// A database error stays one (503 when it is down); anything else is a bug.
fn op_error(e: engine::Error) -> OpError {
    match e {
        engine::Error::Database(e) => OpError::Database(e),
        e => OpError::Flow(e.to_string()),
    }
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
                    sequence: e.sequence_key.clone(),
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
    /// A fact recorded in the step's transaction, no flow needed (a WhatsApp
    /// delivery report).
    Recorded { what: String },
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
        Route::WhatsAppMessage { wa_id, wamid, kind, text, name } => {
            let input = WhatsAppConversationInput {
                wa_id: wa_id.clone(),
                wamid: wamid.clone(),
                kind: kind.clone(),
                text: text.clone(),
                name: name.clone(),
                event_id: Some(event_id),
            };
            started::<WhatsAppConversation>(tx, &input, event_id).await?
        }
        Route::WhatsAppStatus { wamid, status, recipient, at, error_code, error_message } => {
            match Reported::parse(status) {
                Some(reported) => {
                    let report = StatusReport {
                        wamid: wamid.clone(),
                        status: reported,
                        recipient: recipient.clone(),
                        at: at.and_then(|secs| chrono::DateTime::from_timestamp(secs, 0)),
                        error_code: *error_code,
                        error_message: error_message.clone(),
                    };
                    statuses::apply_using(tx, &report).await?;
                    Dispatch::Recorded { what: format!("WhatsApp message {wamid}: {}", reported.as_str()) }
                }
                None => Dispatch::NotStarted { reason: format!("unknown WhatsApp status {status:?}") },
            }
        }
        Route::HighLevelAppointment { change, location_id, appointment } => {
            let input = highlevel_appointment::HighLevelAppointmentInput {
                location_id: location_id.clone(),
                change: *change,
                appointment: appointment.clone(),
            };
            started::<highlevel_appointment::HighLevelAppointment>(tx, &input, event_id).await?
        }
        Route::Ignored { reason } => Dispatch::NotStarted { reason: reason.clone() },
    };
    Ok(Routed { route, dispatch })
}

async fn started<W: Workflow>(tx: &mut PgConnection, input: &W::Input, event_id: Uuid) -> Result<Dispatch, StepError> {
    let run_id = engine::start_using::<W>(tx, input, Some(event_id)).await?;
    Ok(Dispatch::Started { flow: W::NAME.into(), run_id })
}
