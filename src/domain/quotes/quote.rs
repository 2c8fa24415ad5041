//! A priced quote: what the parser understood, with each product's name and
//! price from the catalog, subtotals and totals. The HTTP endpoint answers it
//! and the WhatsApp flow stores and renders it ([`super::reply::render`]).

use super::{
    index::QuoteIndex,
    parser::Parsed,
};

/// Serializable, so a workflow step can checkpoint or store it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quote {
    pub lines: Vec<QuoteLine>,
    pub unmatched: Vec<UnmatchedLine>,
    /// One total per currency, in the order the currencies first appear (one
    /// entry for a single-currency catalog; empty without lines).
    pub totals: Vec<Total>,
    /// A few catalog product names, to show a shopper who was not understood.
    pub examples: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuoteLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price_minor: i64,
    pub subtotal_minor: i64,
    pub currency: String,
    pub confidence: f32,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UnmatchedLine {
    pub text: String,
    pub quantity: Option<u32>,
    /// (sku, name) of products the shopper may have meant.
    pub suggestions: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Total {
    pub currency: String,
    pub amount_minor: i64,
}

/// How many catalog products the "not understood" answer shows.
pub const EXAMPLES: usize = 3;

impl Quote {
    /// Prices `parsed` with the catalog it was parsed against.
    pub fn price(index: &QuoteIndex, parsed: &Parsed) -> Self {
        let mut totals: Vec<Total> = Vec::new();
        let lines: Vec<QuoteLine> = parsed
            .items
            .iter()
            .map(|item| {
                let p = index.product(item.product);
                let subtotal_minor = p.price_minor.saturating_mul(i64::from(item.quantity));
                match totals.iter_mut().find(|t| t.currency == p.currency) {
                    Some(t) => t.amount_minor = t.amount_minor.saturating_add(subtotal_minor),
                    None => totals.push(Total { currency: p.currency.clone(), amount_minor: subtotal_minor }),
                }
                QuoteLine {
                    sku: p.sku.clone(),
                    name: p.name.clone(),
                    quantity: item.quantity,
                    unit_price_minor: p.price_minor,
                    subtotal_minor,
                    currency: p.currency.clone(),
                    confidence: item.confidence,
                }
            })
            .collect();
        let unmatched = parsed
            .unmatched
            .iter()
            .map(|u| UnmatchedLine {
                text: u.text.clone(),
                quantity: u.quantity,
                suggestions: u
                    .suggestions
                    .iter()
                    .map(|&s| {
                        let p = index.product(s);
                        (p.sku.clone(), p.name.clone())
                    })
                    .collect(),
            })
            .collect();
        let examples = index.examples(EXAMPLES);
        Self { lines, unmatched, totals, examples }
    }

    /// A quote of `lines` as they stand (prices already set), with totals;
    /// `unmatched` lists what could not be quoted.
    pub fn from_lines(lines: Vec<QuoteLine>, unmatched: Vec<UnmatchedLine>) -> Self {
        let mut totals: Vec<Total> = Vec::new();
        for line in &lines {
            match totals.iter_mut().find(|t| t.currency == line.currency) {
                Some(t) => t.amount_minor = t.amount_minor.saturating_add(line.subtotal_minor),
                None => totals.push(Total { currency: line.currency.clone(), amount_minor: line.subtotal_minor }),
            }
        }
        Self { lines, unmatched, totals, examples: Vec::new() }
    }

    /// The quote's currency: its first line's, else the catalog's usual one.
    pub fn currency<'a>(&'a self, index: &'a QuoteIndex) -> Option<&'a str> {
        self.totals.first().map(|t| t.currency.as_str()).or_else(|| index.default_currency())
    }

    /// The total in [`Self::currency`].
    pub fn total_minor(&self) -> i64 {
        self.totals.first().map_or(0, |t| t.amount_minor)
    }
}
