//! What a WhatsApp shopper is told when their order moves (Spanish, the
//! chat's format): paid, OXXO voucher issued, needs attention, payment
//! expired. Pure: the notice flow stores and sends them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{
    orders::{short_ref, Order},
    quotes::money,
};

/// Characters the item list of a "paid" notice may take (WhatsApp's limit is
/// 4,096 for the whole message).
const ITEMS_BUDGET: usize = 3_500;

/// Why the shopper hears from the shop. Part of a durable run input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Paid and fulfilled.
    Paid,
    /// An OXXO voucher was issued: pay it at a store.
    OxxoVoucher { number: String, hosted_voucher_url: Option<String>, expires_at: Option<DateTime<Utc>> },
    /// Paid but not fulfilled (amount mismatch, no stock): the shop will call.
    NeedsAttention,
    /// The voucher or link expired or was cancelled unpaid: answering "sí"
    /// gets a new link.
    PaymentExpired,
}

/// The chat message for `notice` about `order`; times in the shop's `tz`.
pub fn text(notice: &Notice, order: &Order, tz: Tz) -> String {
    let reference = short_ref(order.order.id);
    let total = money::format(order.order.amount_minor, &order.order.currency);
    match notice {
        Notice::Paid => {
            let mut lines = vec![format!("✅ *¡Pago recibido!*\n\nTu pedido {reference} está pagado y confirmado.\n\n📦 *Productos:*")];
            // One message holds at most 4,096 characters: a very long order
            // lists what fits and counts the rest.
            let mut length: usize = lines[0].chars().count();
            for (i, item) in order.items.iter().enumerate() {
                let line = format!("{}. {} × {}", i + 1, item.name, item.quantity);
                length += line.chars().count() + 1;
                if length > ITEMS_BUDGET {
                    lines.push(format!("… y {} productos más", order.items.len() - i));
                    break;
                }
                lines.push(line);
            }
            lines.push(format!("\n💰 *Total: {total}*\n\n¡Gracias por tu compra! 🙌"));
            lines.join("\n")
        }
        Notice::OxxoVoucher { number, hosted_voucher_url, expires_at } => {
            let mut text = format!("🧾 *Ficha de pago OXXO*\n\nPedido: {reference}\nReferencia: {number}\nMonto: *{total}*");
            if let Some(url) = hosted_voucher_url {
                text.push_str(&format!("\nFicha: {url}"));
            }
            if let Some(at) = expires_at {
                text.push_str(&format!("\nVence: {} ({tz})", at.with_timezone(&tz).format("%d/%m/%Y %H:%M")));
            }
            text.push_str("\n\nPaga en cualquier tienda OXXO; te avisamos por aquí en cuanto recibamos el pago.");
            text
        }
        Notice::NeedsAttention => format!(
            "😔 Lo sentimos: tuvimos un problema al procesar tu pedido {reference} ({total}). \
             No te preocupes, alguien de la tienda se pondrá en contacto contigo para resolverlo."
        ),
        Notice::PaymentExpired => format!(
            "⌛ El pago de tu pedido {reference} ({total}) venció y el pedido se canceló. \
             Si aún lo quieres, responde *SÍ* y te envío un enlace de pago nuevo."
        ),
    }
}

/// The body parameters of the order-update template (WHATSAPP_TEMPLATE_ORDER_UPDATE):
/// `{{1}}` the order reference, `{{2}}` what happened, in a few words.
pub fn template_params(notice: &Notice, order: &Order) -> Vec<String> {
    let what = match notice {
        Notice::Paid => "pagado y confirmado",
        Notice::OxxoVoucher { .. } => "ficha OXXO emitida, pendiente de pago",
        Notice::NeedsAttention => "en revisión; la tienda te contactará",
        Notice::PaymentExpired => "pago vencido; responde SÍ para un enlace nuevo",
    };
    vec![short_ref(order.order.id), what.to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::orders::{ItemRow, OrderRow, OrderStatus};

    fn order() -> Order {
        let at = DateTime::from_timestamp(1_764_650_000, 0).unwrap();
        Order {
            order: OrderRow {
                id: uuid::Uuid::parse_str("01a23541-2317-77db-b7f1-b0f19b7564ad").unwrap(),
                status: OrderStatus::Fulfilled,
                customer_id: None,
                quote_id: None,
                customer_email: None,
                customer_name: "Ana".into(),
                customer_phone: Some("+5215512345678".into()),
                amount_minor: 11748,
                currency: "MXN".into(),
                created_at: at,
                updated_at: at,
            },
            items: vec![
                ItemRow { sku: "ZAP-001".into(), name: "Zapatos".into(), quantity: 2, unit_price_minor: 4599 },
                ItemRow { sku: "CAM-001".into(), name: "Camisa".into(), quantity: 1, unit_price_minor: 2550 },
            ],
        }
    }

    #[test]
    fn notices_read_as_the_shop_would_write_them() {
        let tz: Tz = "America/Mexico_City".parse().unwrap();
        let paid = text(&Notice::Paid, &order(), tz);
        assert!(paid.contains("01a23541") && paid.contains("1. Zapatos × 2") && paid.contains("*Total: $117.48*"), "{paid}");
        let voucher = Notice::OxxoVoucher {
            number: "12345678901234".into(),
            hosted_voucher_url: Some("https://payments.stripe.com/oxxo/voucher/x".into()),
            expires_at: DateTime::from_timestamp(1_764_741_600, 0),
        };
        let voucher = text(&voucher, &order(), tz);
        assert!(voucher.contains("Referencia: 12345678901234") && voucher.contains("Monto: *$117.48*"), "{voucher}");
        assert!(voucher.contains("Vence: 03/12/2025 00:00 (America/Mexico_City)"), "{voucher}");
        assert!(text(&Notice::NeedsAttention, &order(), tz).contains("se pondrá en contacto"));
        assert!(text(&Notice::PaymentExpired, &order(), tz).contains("responde *SÍ*"));
        assert_eq!(template_params(&Notice::Paid, &order()), vec!["01a23541".to_owned(), "pagado y confirmado".to_owned()]);
        let mut huge = order();
        huge.items = (0..500).map(|i| ItemRow { sku: format!("SKU-{i}"), name: "Producto de prueba".into(), quantity: 1, unit_price_minor: 1 }).collect();
        let paid = text(&Notice::Paid, &huge, tz);
        assert!(paid.chars().count() <= 4096 && paid.contains("productos más"), "{}", paid.chars().count());
    }
}
