//! The e-mail outbox. Customer e-mails are in Spanish, HTML with a text
//! alternative. Without SMTP configured they stay here with status `logged`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{orders::ItemRow, payments::OxxoVoucher};

/// A rendered e-mail.
pub struct Email {
    pub kind: &'static str,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// `$1,234.56 MXN` from minor units.
pub fn money(amount_minor: i64, currency: &str) -> String {
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    let (units, cents) = (abs / 100, abs % 100);
    let mut grouped = String::new();
    for (i, c) in units.to_string().chars().rev().enumerate() {
        if i > 0 && i % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let units: String = grouped.chars().rev().collect();
    format!("{sign}${units}.{cents:02} {currency}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn order_confirmation(customer: &str, order_id: Uuid, items: &[ItemRow], amount_minor: i64, currency: &str) -> Email {
    let short = &super::orders::short_ref(order_id);
    let mut text_lines = String::new();
    let mut html_rows = String::new();
    for i in items {
        let line = money(i.unit_price_minor * i64::from(i.quantity), currency);
        text_lines.push_str(&format!("- {} x {}: {line}\n", i.quantity, i.name));
        html_rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{line}</td></tr>",
            i.quantity,
            escape(&i.name)
        ));
    }
    let total = money(amount_minor, currency);
    Email {
        kind: "order_confirmation",
        subject: format!("Confirmación de tu pedido {short}"),
        text: format!(
            "Hola {customer}:\n\nRecibimos tu pago. Tu pedido {short} está confirmado.\n\n{text_lines}\nTotal: {total}\n\n¡Gracias por tu compra!\n"
        ),
        html: format!(
            "<p>Hola {}:</p><p>Recibimos tu pago. Tu pedido <b>{short}</b> está confirmado.</p>\
             <table><tr><th>Cant.</th><th>Producto</th><th>Importe</th></tr>{html_rows}</table>\
             <p><b>Total: {total}</b></p><p>¡Gracias por tu compra!</p>",
            escape(customer)
        ),
    }
}

pub fn oxxo_voucher(customer: &str, order_id: Uuid, voucher: &OxxoVoucher, amount_minor: i64, currency: &str, tz: Tz) -> Email {
    let short = &super::orders::short_ref(order_id);
    let total = money(amount_minor, currency);
    let expiry = voucher
        .expires_after
        .map(|t| t.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string() + &format!(" ({tz})"))
        .unwrap_or_else(|| "la fecha indicada en la ficha".into());
    let url = voucher.hosted_voucher_url.clone().unwrap_or_default();
    Email {
        kind: "oxxo_voucher",
        subject: format!("Tu ficha de pago OXXO para el pedido {short}"),
        text: format!(
            "Hola {customer}:\n\nPaga tu pedido {short} en cualquier tienda OXXO.\n\nReferencia: {}\nMonto: {total}\n\
             Vence: {expiry}\nFicha: {url}\n\nTu pedido se confirma cuando recibamos el pago.\n",
            voucher.number
        ),
        html: format!(
            "<p>Hola {}:</p><p>Paga tu pedido <b>{short}</b> en cualquier tienda OXXO.</p>\
             <p>Referencia: <b>{}</b><br>Monto: <b>{total}</b><br>Vence: {expiry}</p>\
             <p><a href=\"{}\">Ver ficha de pago</a></p><p>Tu pedido se confirma cuando recibamos el pago.</p>",
            escape(customer),
            escape(&voucher.number),
            escape(&url)
        ),
    }
}

/// Where an e-mail is in the outbox. Stored as text in `emails.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmailStatus {
    /// No SMTP configured: kept here for an operator to read.
    Logged,
    /// Waiting for `email_delivery` to send it.
    Queued,
    Sent,
    Failed,
}

impl EmailStatus {
    pub const ALL: [Self; 4] = [Self::Logged, Self::Queued, Self::Sent, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logged => "logged",
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    /// Where a new e-mail starts: SMTP sends `queued` ones, the rest stay `logged`.
    pub const fn initial(smtp_configured: bool) -> Self {
        if smtp_configured {
            Self::Queued
        } else {
            Self::Logged
        }
    }
}

impl std::fmt::Display for EmailStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value in `emails.status` that no `EmailStatus` stands for.
#[derive(Debug, thiserror::Error)]
#[error("unknown e-mail status {0:?}")]
pub struct UnknownStatus(String);

impl TryFrom<String> for EmailStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, UnknownStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or(UnknownStatus(s))
    }
}

// Lets `workflows/email_delivery.rs` keep comparing with "sent" until it
// compares with `EmailStatus::Sent`; remove then.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EmailRow {
    pub to_address: String,
    pub subject: String,
    pub html: String,
    pub text_body: String,
    #[sqlx(try_from = "String")]
    pub status: EmailStatus,
}

/// One outbox e-mail as the list shows it (without its bodies).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EmailSummary {
    pub id: Uuid,
    pub order_id: Option<Uuid>,
    pub to_address: String,
    pub subject: String,
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub status: EmailStatus,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The outbox, newest first; `cursor` is the last id of the previous page.
pub async fn list_emails(
    pool: &PgPool,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<(Vec<EmailSummary>, Option<Uuid>), sqlx::Error> {
    let rows: Vec<EmailSummary> = sqlx::query_as(
        "select id, order_id, to_address, subject, kind, status, created_at, sent_at from emails
          where ($1::uuid is null or id < $1) order by id desc limit $2",
    )
    .bind(cursor)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    Ok(crate::db::page::split(rows, limit, |e| e.id))
}

pub async fn load(pool: &PgPool, id: Uuid) -> Result<Option<EmailRow>, sqlx::Error> {
    sqlx::query_as("select to_address, subject, html, text_body, status from emails where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn mark_sent_using(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update emails set status = $2, sent_at = coalesce(sent_at, now()) where id = $1",
        id,
        EmailStatus::Sent.as_str()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Puts an e-mail in the outbox: `queued` when SMTP will send it, else `logged`.
pub async fn queue_using(
    conn: &mut PgConnection,
    order_id: Option<Uuid>,
    to: &str,
    email: &Email,
    smtp_configured: bool,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into emails (id, order_id, to_address, subject, kind, html, text_body, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        order_id,
        to,
        &email.subject,
        email.kind,
        &email.html,
        &email.text,
        EmailStatus::initial(smtp_configured).as_str()
    )
    .execute(conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn email_statuses_read_back_from_their_stored_labels() {
        for status in EmailStatus::ALL {
            assert_eq!(EmailStatus::try_from(status.as_str().to_owned()).unwrap(), status);
        }
        assert!(EmailStatus::try_from("bounced".to_owned()).is_err());
        assert_eq!((EmailStatus::initial(true), EmailStatus::initial(false)), (EmailStatus::Queued, EmailStatus::Logged));
    }

    #[test]
    fn money_is_formatted_with_grouping_and_cents() {
        assert_eq!(money(11748, "MXN"), "$117.48 MXN");
        assert_eq!(money(123456789, "MXN"), "$1,234,567.89 MXN");
        assert_eq!(money(5, "USD"), "$0.05 USD");
    }

    #[test]
    fn the_voucher_shows_expiry_in_the_shop_time_zone() {
        let v = OxxoVoucher {
            number: "12345678901234657890".into(),
            hosted_voucher_url: Some("https://pay.stripe.com/v/1".into()),
            expires_after: DateTime::from_timestamp(1_750_300_000, 0),
        };
        let e = oxxo_voucher("Ana", Uuid::nil(), &v, 11748, "MXN", chrono_tz::America::Mexico_City);
        // 1750300000 = 2025-06-19 02:26:40 UTC = 2025-06-18 20:26 in Mexico City (UTC-6).
        assert!(e.text.contains("18/06/2025 20:26"), "{}", e.text);
        assert!(e.text.contains("12345678901234657890") && e.html.contains("$117.48 MXN"));
        assert!(e.subject.starts_with("Tu ficha de pago OXXO"));
    }
}
