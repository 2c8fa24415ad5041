//! Quotes from shoppers' Spanish order messages ("Quiero 2 zapatos y 1
//! camisa"): the catalog is indexed once per version ([`QuoteIndex`]), a
//! message is parsed against it ([`QuoteIndex::parse`]), priced ([`Quote`]) and
//! answered ([`reply::render`]).
//!
//! Everything but [`store`] is pure. No product word lives in code: names and
//! aliases come from the catalog; only number, unit and filler words are
//! built in ([`lexicon`]).

mod forms;
mod fuzzy;
mod index;
pub mod lexicon;
pub mod money;
mod parser;
mod quote;
pub mod reply;
pub mod conversation;
pub mod store;
pub mod text;

#[cfg(test)]
mod tests;

pub use index::{CatalogProduct, QuoteIndex};
pub use parser::{Parsed, ParsedItem, Unmatched};
pub use quote::{Quote, QuoteLine, Total, UnmatchedLine};

use super::Invalid;

/// A message to quote: 1–4,096 characters, not only white space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteText(String);

impl QuoteText {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if raw.trim().is_empty() || len > reply::MAX_MESSAGE_CHARS {
            return Err(Invalid::new(
                "text",
                format!("must be 1-{} characters and not blank", reply::MAX_MESSAGE_CHARS),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
