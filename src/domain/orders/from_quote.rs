//! An order from a shopper's confirmed WhatsApp quote: prices are read from
//! the catalog again, and the order is created only if the quote still holds
//! (same products, same prices); otherwise the shopper gets the quote as it
//! stands now.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{insert_using, price_lines, Customer, Error, Order};
use crate::domain::{
    catalog::{self, ProductPrice, Sku},
    customers::CustomerRow,
    quotes::{
        conversation::{self, OpenQuote, QuoteStatus},
        Quote, QuoteLine, UnmatchedLine,
    },
};

/// What confirming a quote came to.
#[derive(Clone, Debug)]
pub enum FromQuote {
    /// The order, now `pending_payment`; the quote is `confirmed`.
    Ordered(Order),
    /// A price changed or a product is gone since the quote: no order; this is
    /// the quote as it stands now (gone products in `unmatched`).
    Requoted(Quote),
}

/// The quote's lines at today's catalog prices (gone products in
/// `unmatched`), and whether that is exactly what was quoted. Locks the prices
/// (shared) until the caller's transaction ends.
pub async fn reprice_using(conn: &mut PgConnection, quote: &OpenQuote) -> Result<(Quote, bool), sqlx::Error> {
    let prices = lock_prices_of_using(conn, quote).await?;
    Ok(reprice(quote, &prices))
}

async fn lock_prices_of_using(conn: &mut PgConnection, quote: &OpenQuote) -> Result<HashMap<String, ProductPrice>, sqlx::Error> {
    let skus: Vec<&str> = quote.lines.iter().map(|l| l.sku.as_str()).collect();
    catalog::lock_prices_using(conn, &skus).await
}

fn reprice(quote: &OpenQuote, prices: &HashMap<String, ProductPrice>) -> (Quote, bool) {
    let mut now = Vec::with_capacity(quote.lines.len());
    let mut gone = Vec::new();
    for line in &quote.lines {
        match prices.get(&line.sku) {
            Some(p) => now.push(QuoteLine {
                name: p.name.clone(),
                unit_price_minor: p.price_minor,
                subtotal_minor: p.price_minor.saturating_mul(i64::from(line.quantity)),
                currency: p.currency.clone(),
                ..line.clone()
            }),
            None => gone.push(UnmatchedLine { text: line.name.clone(), quantity: Some(line.quantity), suggestions: Vec::new() }),
        }
    }
    let unchanged = gone.is_empty()
        && now.iter().zip(&quote.lines).all(|(n, q)| n.unit_price_minor == q.unit_price_minor && n.currency == q.currency);
    (Quote::from_lines(now, gone), unchanged)
}

/// Confirms `quote` for `customer` in the caller's transaction (the quote row
/// is locked by the caller): creates the order linked to both and marks the
/// quote `confirmed`, or, when the catalog moved, answers the quote as it stands.
pub async fn confirm_using(conn: &mut PgConnection, quote: &OpenQuote, customer: &CustomerRow) -> Result<FromQuote, Error> {
    let prices = lock_prices_of_using(conn, quote).await?;
    let (current, unchanged) = reprice(quote, &prices);
    if !unchanged {
        return Ok(FromQuote::Requoted(current));
    }
    let lines: Vec<(Sku, i32)> = quote
        .lines
        .iter()
        .map(|l| Ok((Sku::parse(&l.sku)?, i32::try_from(l.quantity).unwrap_or(i32::MAX))))
        .collect::<Result<_, crate::domain::Invalid>>()?;
    let priced = price_lines(&lines, &prices)?;
    let wa_id = customer.wa_id.clone().unwrap_or_default();
    let buyer = Customer {
        email: None,
        name: customer.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("WhatsApp +{wa_id}")),
        phone: Some(format!("+{wa_id}")),
    };
    let order = insert_using(conn, &buyer, customer.id, Some(quote.id), &priced).await?;
    conversation::update_quote_status_using(conn, quote.id, QuoteStatus::Confirmed).await?;
    Ok(FromQuote::Ordered(order))
}

/// The WhatsApp number to tell about `order_id`, when the order came from a
/// WhatsApp quote.
pub async fn whatsapp_of_using(conn: &mut PgConnection, order_id: uuid::Uuid) -> Result<Option<String>, sqlx::Error> {
    let wa_id = sqlx::query_scalar!(
        "select c.wa_id from orders o join customers c on c.id = o.customer_id
          where o.id = $1 and o.quote_id is not null",
        order_id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(wa_id.flatten())
}
