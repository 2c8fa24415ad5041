//! The e-mail outbox. Customer e-mails are in Spanish, HTML with a text
//! alternative. Without SMTP configured they stay here with status `logged`.

use chrono_tz::Tz;
use sqlx::PgConnection;
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
    let short = &order_id.simple().to_string()[..8];
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
    let short = &order_id.simple().to_string()[..8];
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

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EmailRow {
    pub to_address: String,
    pub subject: String,
    pub html: String,
    pub text_body: String,
    pub status: String,
}

pub async fn load(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<EmailRow>, sqlx::Error> {
    sqlx::query_as("select to_address, subject, html, text_body, status from emails where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn mark_sent_using(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update emails set status = 'sent', sent_at = coalesce(sent_at, now()) where id = $1")
        .bind(id)
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
    sqlx::query(
        "insert into emails (id, order_id, to_address, subject, kind, html, text_body, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(order_id)
    .bind(to)
    .bind(&email.subject)
    .bind(email.kind)
    .bind(&email.html)
    .bind(&email.text)
    .bind(if smtp_configured { "queued" } else { "logged" })
    .execute(conn)
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

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
