//! The confirmation path of `whatsapp_conversation`: "sí" to an open quote →
//! the order (prices read again; a moved catalog gets the new quote instead)
//! → a payment link from Stripe or Mercado Pago, created with the step's
//! idempotency key → the link in the chat. Payment webhooks then route by
//! order id to `payment_fulfilment`, as for any order.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{
        customers::CustomerRow,
        orders::{
            from_quote::{self, FromQuote},
            fulfilment::Shop,
            links, short_ref, Order,
        },
        quotes::{conversation::OpenQuote, money, reply, Quote},
    },
    engine::StepError,
    providers::{
        mercadopago,
        payment::{LinkLine, LinkRequest, PaymentLink},
        stripe,
    },
};

/// How long a payment link may be paid (Stripe allows at most 24 h).
const LINK_VALID_HOURS: i64 = 23;

/// Who hosts payment links (RELEVO_PAYMENT_LINKS, STRIPE_API_KEY, MERCADOPAGO_ACCESS_TOKEN).
pub enum PaymentLinks {
    Stripe(Arc<stripe::client::Client>),
    MercadoPago(Arc<mercadopago::client::Client>),
    /// Why no link can be made: the run fails permanently saying so.
    Unavailable(String),
}

pub struct Checkout {
    pub links: PaymentLinks,
    /// RELEVO_CHECKOUT_RETURN_URL.
    pub return_url: String,
    pub shop: Arc<Shop>,
}

/// An order placed from a quote: part of the `quote` step's checkpoint, so
/// the link request is the same on every retry (the idempotency key's contract).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub order_id: Uuid,
    pub currency: String,
    pub total_minor: i64,
    pub lines: Vec<PlacedLine>,
    pub link_expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedLine {
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub quantity: i32,
}

impl Placed {
    fn from_order(order: &Order) -> Self {
        Self {
            order_id: order.order.id,
            currency: order.order.currency.clone(),
            total_minor: order.order.amount_minor,
            lines: order
                .items
                .iter()
                .map(|i| PlacedLine { sku: i.sku.clone(), name: i.name.clone(), unit_price_minor: i.unit_price_minor, quantity: i.quantity })
                .collect(),
            link_expires_at: Utc::now() + Duration::hours(LINK_VALID_HOURS),
        }
    }
}

/// What "sí" to an open, unexpired quote came to.
pub enum Confirmed {
    Ordered(Placed),
    /// The catalog moved: the quote as it stands now (stored as the new open
    /// quote when anything is left) and its reply.
    Requoted { quote_id: Option<Uuid>, replies: Vec<String> },
}

/// Confirms `open` for shopper `wa_id` (`customer`), in the `quote` step's
/// transaction: the order, or the new quote.
pub async fn confirm_using(
    tx: &mut PgConnection,
    wa_id: &str,
    wamid: &str,
    customer: &CustomerRow,
    open: &OpenQuote,
) -> Result<Confirmed, StepError> {
    match from_quote::confirm_using(tx, open, customer).await.map_err(order_error)? {
        FromQuote::Ordered(order) => Ok(Confirmed::Ordered(Placed::from_order(&order))),
        FromQuote::Requoted(quote) => {
            let note = "⚠️ Algunos precios o productos cambiaron desde tu cotización, así que no creé el pedido.";
            requote_using(tx, wa_id, wamid, open, quote, note).await
        }
    }
}

/// Stores `quote` (today's prices for `old`) as the shopper's open quote and
/// answers it after `note`; with nothing left to quote, closes `old` instead.
pub async fn requote_using(
    tx: &mut PgConnection,
    wa_id: &str,
    wamid: &str,
    old: &OpenQuote,
    quote: Quote,
    note: &str,
) -> Result<Confirmed, StepError> {
    use crate::domain::quotes::conversation::{self, QuoteStatus};
    if quote.lines.is_empty() {
        conversation::update_quote_status_using(tx, old.id, QuoteStatus::Expired).await?;
        let text = format!("{note} Los productos de tu cotización ya no están disponibles. Escríbeme qué otros productos quieres y te preparo una nueva cotización.");
        return Ok(Confirmed::Requoted { quote_id: None, replies: vec![text] });
    }
    let id = conversation::insert_open_quote_using(tx, wa_id, wamid, &quote).await?;
    // Split after adding the note, so no part exceeds WhatsApp's limit.
    let text = format!("{note} Esta es tu cotización actualizada:\n\n{}", reply::render_text(&quote));
    let replies = reply::split(&text, reply::MAX_MESSAGE_CHARS);
    Ok(Confirmed::Requoted { quote_id: Some(id), replies })
}

impl Checkout {
    /// Creates the order's payment link; `idempotency_key` is the step's.
    pub async fn create_link(&self, placed: &Placed, idempotency_key: String) -> Result<PaymentLink, StepError> {
        let request = LinkRequest {
            order_id: placed.order_id,
            currency: placed.currency.clone(),
            lines: placed
                .lines
                .iter()
                .map(|l| LinkLine { sku: l.sku.clone(), name: l.name.clone(), unit_amount_minor: l.unit_price_minor, quantity: l.quantity })
                .collect(),
            idempotency_key,
            return_url: self.return_url.clone(),
            expires_at: placed.link_expires_at,
        };
        match &self.links {
            PaymentLinks::Stripe(client) => client.create_checkout_session(&request).await.map_err(stripe_error),
            PaymentLinks::MercadoPago(client) => client.create_preference(&request).await.map_err(super::inbound_event::mercadopago_step_error),
            PaymentLinks::Unavailable(why) => Err(StepError::permanent(why.clone())),
        }
    }

    /// The chat message carrying the link: total, how many items, the link
    /// and until when it can be paid (shop time zone).
    pub fn link_message(&self, placed: &Placed, link: &PaymentLink) -> String {
        let items: i64 = placed.lines.iter().map(|l| i64::from(l.quantity)).sum();
        let expires = link.expires_at.unwrap_or(placed.link_expires_at).with_timezone(&self.shop.timezone);
        format!(
            "🛒 *Pedido confirmado*\nReferencia: {}\n{items} {} · Total: *{}*\n\n💳 Paga aquí: {}\n\nEl enlace es válido hasta el {} ({}).",
            short_ref(placed.order_id),
            if items == 1 { "artículo" } else { "artículos" },
            money::format(placed.total_minor, &placed.currency),
            link.url,
            expires.format("%d/%m/%Y %H:%M"),
            self.shop.timezone,
        )
    }
}

/// Records the link on its order, in the step's transaction.
pub async fn record_link_using(tx: &mut PgConnection, order_id: Uuid, link: &PaymentLink) -> Result<(), StepError> {
    let link = links::Link {
        provider: link.provider.as_str().to_owned(),
        provider_id: link.id.clone(),
        url: link.url.clone(),
        expires_at: link.expires_at,
    };
    links::record_using(tx, order_id, &link).await?;
    Ok(())
}

fn order_error(e: crate::domain::orders::Error) -> StepError {
    match e {
        crate::domain::orders::Error::Database(e) => e.into(),
        e => StepError::permanent(format!("the quote could not become an order: {e}")),
    }
}

/// 429 resumes at Retry-After; 5xx, 409 and timeouts back off; other 4xx are final.
fn stripe_error(e: stripe::client::Error) -> StepError {
    match e {
        stripe::client::Error::RateLimited { retry_after_secs, .. } => {
            StepError::rate_limited(Utc::now() + Duration::seconds(retry_after_secs), e)
        }
        e if e.is_transient() => StepError::transient(e),
        e => StepError::permanent(e),
    }
}
