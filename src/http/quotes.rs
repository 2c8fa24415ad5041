//! `POST /api/v1/quotes`: what Relevo understands of an order message and the
//! WhatsApp reply it would send. Nothing is stored.

use poem::web::Data;
use poem_openapi::{payload::Json, Object, OpenApi};

use super::{auth::AdminAuth, error::ApiError, ApiTags, AppState};
use crate::domain::quotes::{
    reply,
    store::{self, IndexCache},
    QuoteText,
};

#[derive(Object, Debug)]
pub struct QuoteIn {
    /// The shopper's message, 1–4,096 characters ("Quiero 2 zapatos y 1 camisa").
    pub text: String,
}

#[derive(Object, Debug)]
pub struct QuoteItemOut {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub subtotal_minor: i64,
    /// 1 for an exact name with a written quantity; lower for plurals, typos,
    /// partial names and assumed quantities.
    pub confidence: f64,
}

#[derive(Object, Debug)]
pub struct UnmatchedOut {
    /// The fragment as written.
    pub text: String,
    #[oai(skip_serializing_if_is_none)]
    pub quantity: Option<u32>,
    /// Skus of products the shopper may have meant.
    pub suggestions: Vec<String>,
}

#[derive(Object, Debug)]
pub struct QuoteOut {
    pub items: Vec<QuoteItemOut>,
    /// Fragments where a product was expected but the catalog has none.
    pub unmatched: Vec<UnmatchedOut>,
    /// In `currency`, minor units.
    pub total_minor: i64,
    /// ISO 4217; the catalog's usual currency when no item matched; absent
    /// with an empty catalog.
    #[oai(skip_serializing_if_is_none)]
    pub currency: Option<String>,
    /// The WhatsApp text the flow would send (split into several messages
    /// past 4,096 characters; here joined by a blank line).
    pub reply: String,
}

#[derive(Default)]
pub struct QuotesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Catalog")]
impl QuotesApi {
    /// Quote a Spanish order message against the catalog: matched products
    /// with quantities and prices, unmatched fragments with suggestions, and
    /// the reply text. Stores nothing. 422 for an empty or over-4,096-character text.
    #[oai(path = "/quotes", method = "post", operation_id = "v1.quotes.create")]
    async fn create(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<QuoteIn>) -> Result<Json<QuoteOut>, ApiError> {
        let text = QuoteText::parse(&body.text).map_err(|e| ApiError::invalid(&e))?;
        let index = IndexCache::global().current(&state.pool).await.map_err(|e| match e {
            store::Error::Database(e) => ApiError::from(e),
            e => ApiError::internal(&e),
        })?;
        let quote = store::parse_and_price(&index, text.as_str());
        Ok(Json(QuoteOut {
            total_minor: quote.total_minor(),
            currency: quote.currency(&index).map(str::to_owned),
            reply: reply::render(&quote).join("\n\n"),
            items: quote
                .lines
                .into_iter()
                .map(|l| QuoteItemOut {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                    subtotal_minor: l.subtotal_minor,
                    confidence: (f64::from(l.confidence) * 100.0).round() / 100.0,
                })
                .collect(),
            unmatched: quote
                .unmatched
                .into_iter()
                .map(|u| UnmatchedOut {
                    text: u.text,
                    quantity: u.quantity,
                    suggestions: u.suggestions.into_iter().map(|(sku, _)| sku).collect(),
                })
                .collect(),
        }))
    }
}
