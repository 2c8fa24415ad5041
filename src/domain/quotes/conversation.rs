//! A WhatsApp shopper's quotes (`quotes` table) and what a short answer to an
//! open quote means ("sí" confirms it, "no" declines it). The SQL runs in the
//! caller's transaction (the conversation flow's `quote` step).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{
    quote::{Quote, QuoteLine},
    text,
};

/// Where a stored quote stands. Stored as text (`quotes.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    Open,
    Confirmed,
    Declined,
    Expired,
    Superseded,
}

impl QuoteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Confirmed => "confirmed",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
        }
    }
}

/// A short answer to an open quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
}

const YES: &[&str] = &[
    "si", "confirmo", "confirmar", "confirmado", "dale", "acepto", "claro", "ok", "okay", "va", "sale", "perfecto",
    "listo", "yes",
];
const NO: &[&str] = &["no", "cancelar", "cancela", "cancelo", "cancelado", "nel", "nop"];
/// Words that may follow the answer without changing it ("sí, por favor").
const POLITE: &[&str] = &["por", "favor", "gracias", "muchas", "porfa", "de", "acuerdo", "ya", "mejor", "lo", "la", "quiero", "esta", "cotizacion", "pedido", "el"];

/// Whether `message` is a short yes or no (accents, case and punctuation do
/// not matter): the first word says it, the rest are courtesy words.
pub fn answer(message: &str) -> Option<Answer> {
    let folded = text::normalize(message);
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let (first, rest) = words.split_first()?;
    if words.len() > 5 || !rest.iter().all(|w| POLITE.contains(w) || YES.contains(w) || NO.contains(w)) {
        return None;
    }
    if *first == "de" && rest.first() == Some(&"acuerdo") {
        return Some(Answer::Yes);
    }
    if *first == "ya" && rest.first() == Some(&"no") {
        return Some(Answer::No);
    }
    if YES.contains(first) && !rest.iter().any(|w| NO.contains(w)) {
        Some(Answer::Yes)
    } else if NO.contains(first) {
        Some(Answer::No)
    } else {
        None
    }
}

/// A shopper's open quote.
#[derive(Clone, Debug)]
pub struct OpenQuote {
    pub id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub total_minor: i64,
    pub currency: String,
    pub lines: Vec<QuoteLine>,
}

/// The open quote of `wa_id`, locked until the transaction ends.
pub async fn get_open_quote_using(conn: &mut PgConnection, wa_id: &str) -> Result<Option<OpenQuote>, sqlx::Error> {
    let row = sqlx::query(
        "select id, expires_at, total_minor, currency::text as currency, items from quotes
          where wa_id = $1 and status = 'open' for update",
    )
    .bind(wa_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let lines = serde_json::from_value(r.get("items"))
            .map_err(|e| sqlx::Error::Decode(format!("quotes.items: {e}").into()))?;
        Ok(OpenQuote {
            id: r.get("id"),
            expires_at: r.get("expires_at"),
            total_minor: r.get("total_minor"),
            currency: r.get("currency"),
            lines,
        })
    })
    .transpose()
}

/// Moves quote `id` to `status`.
pub async fn update_quote_status_using(conn: &mut PgConnection, id: Uuid, status: QuoteStatus) -> Result<(), sqlx::Error> {
    sqlx::query("update quotes set status = $2, updated_at = now() where id = $1")
        .bind(id)
        .bind(status.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// The lines of quote `id` and the message that asked for it.
pub async fn lines_of_using(conn: &mut PgConnection, id: Uuid) -> Result<Option<(Vec<QuoteLine>, String)>, sqlx::Error> {
    let row: Option<(serde_json::Value, String)> = sqlx::query_as("select items, wamid from quotes where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(|(items, wamid)| {
        let lines = serde_json::from_value(items).map_err(|e| sqlx::Error::Decode(format!("quotes.items: {e}").into()))?;
        Ok((lines, wamid))
    })
    .transpose()
}

/// Stores `quote` as the open quote of `wa_id` (answering message `wamid`),
/// superseding the one that was open.
pub async fn insert_open_quote_using(
    conn: &mut PgConnection,
    wa_id: &str,
    wamid: &str,
    quote: &Quote,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query("update quotes set status = 'superseded', updated_at = now() where wa_id = $1 and status = 'open'")
        .bind(wa_id)
        .execute(&mut *conn)
        .await?;
    let items = serde_json::to_value(&quote.lines).expect("quote lines serialise");
    let currency = quote.totals.first().map_or("MXN", |t| t.currency.as_str());
    sqlx::query_scalar(
        "insert into quotes (wa_id, wamid, items, total_minor, currency) values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(wa_id)
    .bind(wamid)
    .bind(items)
    .bind(quote.total_minor())
    .bind(currency)
    .fetch_one(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_answers_are_understood() {
        for yes in ["sí", "Si", "SÍ!", "confirmo", "Dale", "sí, por favor", "ok gracias", "de acuerdo", "Sí confirmo"] {
            assert_eq!(answer(yes), Some(Answer::Yes), "{yes}");
        }
        for no in ["no", "No, gracias", "cancelar", "CANCELA el pedido", "ya no"] {
            assert_eq!(answer(no), Some(Answer::No), "{no}");
        }
        for other in ["Quiero 2 zapatos", "no tienen camisas rojas?", "si tienen gorras?", "", "sí pero 3 zapatos"] {
            assert_eq!(answer(other), None, "{other}");
        }
    }
}
