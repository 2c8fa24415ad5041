//! The database side of the payment flow, each function one `tx_step`: apply a
//! payment signal, fulfil a paid order (stock + e-mail + events, all or
//! nothing), restore stock after a refund, expire a voucher.

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{items_using, Decision, OrderState, OrderStatus, PaymentSignal};
use crate::domain::{
    catalog, emails,
    outbox::{self, EventType},
    payments::PaymentUpdate,
};

/// Settings the flow needs from the shop.
#[derive(Clone, Debug)]
pub struct Shop {
    pub timezone: Tz,
    pub smtp_configured: bool,
}

/// What applying a signal did (stored as the step's output).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Applied {
    UnknownOrder,
    Moved {
        from: OrderStatus,
        to: OrderStatus,
        /// The e-mail this move queued (OXXO voucher), if any.
        #[serde(default)]
        email_id: Option<Uuid>,
    },
    RefundRemembered,
    Ignored { status: OrderStatus, reason: String },
}

struct Locked {
    state: OrderState,
    /// None for a WhatsApp order: no e-mail is queued.
    email: Option<String>,
    name: String,
    amount_minor: i64,
    currency: String,
}

async fn lock_using(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Locked>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select status as "status: OrderStatus", refund_pending, customer_email, customer_name, amount_minor,
                  currency::text as "currency!"
             from orders where id = $1 for update"#,
        order_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Locked {
        state: OrderState { status: r.status, refund_pending: r.refund_pending },
        email: r.customer_email,
        name: r.customer_name,
        amount_minor: r.amount_minor,
        currency: r.currency,
    }))
}

async fn record_using(
    conn: &mut PgConnection,
    order_id: Uuid,
    from: OrderStatus,
    to: Option<OrderStatus>,
    signal: &str,
    reason: Option<&str>,
    event_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into order_transitions (order_id, from_status, to_status, signal, applied, reason, event_id)
         values ($1, $2, $3, $4, $5, $6, $7)",
        order_id,
        from as OrderStatus,
        to as Option<OrderStatus>,
        signal,
        to.is_some(),
        reason,
        event_id
    )
    .execute(&mut *conn)
    .await?;
    if let Some(to) = to {
        sqlx::query!("update orders set status = $2, updated_at = now() where id = $1", order_id, to as OrderStatus)
            .execute(conn)
            .await?;
    }
    Ok(())
}

fn signal_name(s: PaymentSignal) -> &'static str {
    match s {
        PaymentSignal::VoucherIssued => "voucher_issued",
        PaymentSignal::Processing => "processing",
        PaymentSignal::Succeeded => "succeeded",
        PaymentSignal::Failed => "failed",
        PaymentSignal::Canceled => "canceled",
        PaymentSignal::VoucherExpired => "voucher_expired",
        PaymentSignal::Refunded => "refunded",
        PaymentSignal::PartiallyRefunded => "partially_refunded",
    }
}

/// Applies one payment signal to its order under the order's row lock, records
/// the transition (applied or ignored), and writes the domain event.
pub async fn apply_signal_using(
    conn: &mut PgConnection,
    order_id: Uuid,
    update: &PaymentUpdate,
    event_id: Option<Uuid>,
    shop: &Shop,
) -> Result<Applied, sqlx::Error> {
    let Some(order) = lock_using(conn, order_id).await? else {
        return Ok(Applied::UnknownOrder);
    };
    let from = order.state.status;
    let signal = signal_name(update.signal);
    if let Some(reference) = &update.provider_payment_id {
        sqlx::query!("update orders set payment_ref = coalesce(payment_ref, $2) where id = $1", order_id, reference)
            .execute(&mut *conn)
            .await?;
    }
    Ok(match order.state.decide(update.signal) {
        Decision::Ignore(reason) => {
            record_using(conn, order_id, from, None, signal, Some(reason), event_id).await?;
            Applied::Ignored { status: from, reason: reason.into() }
        }
        Decision::RememberRefund => {
            record_using(conn, order_id, from, None, signal, Some("refund before payment: applied when paid"), event_id)
                .await?;
            set_refund_pending_using(conn, order_id, true).await?;
            Applied::RefundRemembered
        }
        Decision::PaidButRefunded => {
            let to = OrderStatus::Refunded;
            record_using(conn, order_id, from, Some(to), signal, Some("already refunded"), event_id).await?;
            set_refund_pending_using(conn, order_id, false).await?;
            publish_move_using(conn, order_id, to, update).await?;
            Applied::Moved { from, to, email_id: None }
        }
        Decision::Apply(to) => {
            record_using(conn, order_id, from, Some(to), signal, None, event_id).await?;
            publish_move_using(conn, order_id, to, update).await?;
            let email_id = match (to, &update.oxxo) {
                (OrderStatus::AwaitingOfflinePayment, Some(voucher)) => match &order.email {
                    Some(email) => {
                        let mail = emails::oxxo_voucher(&order.name, order_id, voucher, order.amount_minor, &order.currency, shop.timezone);
                        Some(emails::queue_using(conn, Some(order_id), email, &mail, shop.smtp_configured).await?)
                    }
                    None => None,
                },
                _ => None,
            };
            Applied::Moved { from, to, email_id }
        }
    })
}

async fn set_refund_pending_using(conn: &mut PgConnection, order_id: Uuid, pending: bool) -> Result<(), sqlx::Error> {
    sqlx::query!("update orders set refund_pending = $2 where id = $1", order_id, pending)
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the domain event a payment move publishes, if it publishes one.
async fn publish_move_using(conn: &mut PgConnection, order_id: Uuid, to: OrderStatus, update: &PaymentUpdate) -> Result<(), sqlx::Error> {
    if let Some((kind, payload)) = move_event(order_id, to, update) {
        outbox::record_using(conn, kind, payload).await?;
    }
    Ok(())
}

/// The domain event (type and payload) that a payment moving an order to `to` publishes.
fn move_event(order_id: Uuid, to: OrderStatus, update: &PaymentUpdate) -> Option<(EventType, serde_json::Value)> {
    let payload = json!({"order_id": order_id, "provider": update.provider, "payment_id": update.provider_payment_id});
    match to {
        OrderStatus::Paid => Some((
            EventType::PaymentReceived,
            json!({"order_id": order_id, "amount": update.amount, "provider": update.provider}),
        )),
        OrderStatus::PaymentFailed => Some((EventType::PaymentFailed, payload)),
        OrderStatus::Cancelled => Some((EventType::SalesOrderCancelled, payload)),
        OrderStatus::Refunded => Some((EventType::PaymentRefunded, payload)),
        _ => None,
    }
}

/// How fulfilment of a paid order ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Fulfilment {
    /// `email_id`: the confirmation e-mail, when the order has an address.
    Fulfilled { email_id: Option<Uuid> },
    NeedsAttention { reason: String },
    NotPaid { status: OrderStatus },
}

/// Fulfils a `paid` order: checks the amount, takes stock for every item (all
/// or nothing), queues the confirmation e-mail and writes the events.
pub async fn fulfil_using(
    conn: &mut PgConnection,
    order_id: Uuid,
    paid: Option<&(i64, String)>,
    shop: &Shop,
) -> Result<Fulfilment, sqlx::Error> {
    let Some(order) = lock_using(conn, order_id).await? else {
        return Ok(Fulfilment::NotPaid { status: OrderStatus::PendingPayment });
    };
    if order.state.status != OrderStatus::Paid {
        return Ok(Fulfilment::NotPaid { status: order.state.status });
    }
    if let Some(reason) = amount_mismatch(paid, order.amount_minor, &order.currency) {
        return needs_attention_using(conn, order_id, reason).await;
    }
    let items = items_using(&mut *conn, order_id).await?;
    let mut wanted: std::collections::BTreeMap<String, i32> = Default::default();
    for i in &items {
        *wanted.entry(i.sku.clone()).or_default() += i.quantity;
    }
    // Lock in sku order so concurrent fulfilments never deadlock.
    for (sku, quantity) in &wanted {
        let stock = sqlx::query_scalar!("select stock from products where sku = $1 for update", sku)
            .fetch_optional(&mut *conn)
            .await?;
        match stock {
            Some(s) if s >= *quantity => {}
            Some(s) => return needs_attention_using(conn, order_id, format!("not enough stock of {sku}: {s} left, {quantity} needed")).await,
            None => return needs_attention_using(conn, order_id, format!("product {sku} no longer exists")).await,
        }
    }
    for (sku, quantity) in &wanted {
        sqlx::query!("update products set stock = stock - $2, updated_at = now() where sku = $1", sku, quantity)
            .execute(&mut *conn)
            .await?;
        catalog::record_movement_using(conn, sku, -quantity, "sale", Some(order_id)).await?;
    }
    let email_id = match &order.email {
        Some(email) => {
            let mail = emails::order_confirmation(&order.name, order_id, &items, order.amount_minor, &order.currency);
            Some(emails::queue_using(conn, Some(order_id), email, &mail, shop.smtp_configured).await?)
        }
        None => None,
    };
    record_using(conn, order_id, OrderStatus::Paid, Some(OrderStatus::Fulfilled), "fulfilment", None, None).await?;
    outbox::record_using(
        conn,
        EventType::SalesOrderConfirmed,
        json!({"order_id": order_id, "amount_minor": order.amount_minor, "currency": order.currency}),
    )
    .await?;
    Ok(Fulfilment::Fulfilled { email_id })
}

/// Why what the provider says was paid does not settle the order, if it does not.
/// No amount at all is a mismatch: an order is never fulfilled unchecked.
fn amount_mismatch(paid: Option<&(i64, String)>, amount_minor: i64, currency: &str) -> Option<String> {
    match paid {
        None => Some(format!(
            "the provider reported no amount; the order is {}",
            emails::money(amount_minor, currency)
        )),
        Some((paid, paid_currency)) if *paid != amount_minor || !paid_currency.eq_ignore_ascii_case(currency) => {
            Some(format!("paid {} but the order is {}", emails::money(*paid, paid_currency), emails::money(amount_minor, currency)))
        }
        Some(_) => None,
    }
}

async fn needs_attention_using(conn: &mut PgConnection, order_id: Uuid, reason: String) -> Result<Fulfilment, sqlx::Error> {
    record_using(conn, order_id, OrderStatus::Paid, Some(OrderStatus::NeedsAttention), "fulfilment", Some(&reason), None)
        .await?;
    outbox::record_using(conn, EventType::SalesOrderNeedsAttention, json!({"order_id": order_id, "reason": reason})).await?;
    Ok(Fulfilment::NeedsAttention { reason })
}

/// After a refund: puts back the stock this order took, once.
pub async fn restore_stock_using(conn: &mut PgConnection, order_id: Uuid) -> Result<i64, sqlx::Error> {
    let taken = sqlx::query!(
        r#"select sku, -sum(delta)::bigint as "taken!" from stock_movements
            where order_id = $1 and reason in ('sale', 'refund') group by sku having sum(delta) < 0"#,
        order_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut restored = 0;
    for (sku, quantity) in taken.into_iter().map(|r| (r.sku, r.taken)) {
        let quantity = i32::try_from(quantity).unwrap_or(i32::MAX);
        sqlx::query!("update products set stock = stock + $2, updated_at = now() where sku = $1", &sku, quantity)
            .execute(&mut *conn)
            .await?;
        catalog::record_movement_using(conn, &sku, quantity, "refund", Some(order_id)).await?;
        restored += i64::from(quantity);
    }
    Ok(restored)
}

/// The order a provider payment id belongs to.
pub async fn order_by_payment_ref(conn: &mut PgConnection, reference: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select id from orders where payment_ref = $1 order by created_at limit 1", reference)
        .fetch_optional(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(signal: PaymentSignal) -> PaymentUpdate {
        PaymentUpdate {
            order_id: None,
            signal,
            amount: Some((11748, "MXN".into())),
            provider: "stripe".into(),
            provider_payment_id: Some("pi_1".into()),
            oxxo: None,
        }
    }

    #[test]
    fn only_the_exact_amount_in_the_order_currency_settles_it() {
        let mxn = |n| Some((n, "MXN".to_owned()));
        assert_eq!(amount_mismatch(mxn(11748).as_ref(), 11748, "MXN"), None);
        assert_eq!(amount_mismatch(Some(&(11748, "mxn".into())), 11748, "MXN"), None);
        assert!(amount_mismatch(mxn(11747).as_ref(), 11748, "MXN").is_some());
        assert!(amount_mismatch(Some(&(11748, "USD".into())), 11748, "MXN").is_some());
        let none = amount_mismatch(None, 11748, "MXN").unwrap();
        assert!(none.contains("no amount"), "{none}");
    }

    #[test]
    fn each_payment_move_publishes_its_domain_event() {
        let order = Uuid::now_v7();
        let kind = |to| move_event(order, to, &update(PaymentSignal::Succeeded)).map(|(k, _)| k);
        assert_eq!(kind(OrderStatus::Paid), Some(EventType::PaymentReceived));
        assert_eq!(kind(OrderStatus::PaymentFailed), Some(EventType::PaymentFailed));
        assert_eq!(kind(OrderStatus::Cancelled), Some(EventType::SalesOrderCancelled));
        assert_eq!(kind(OrderStatus::Refunded), Some(EventType::PaymentRefunded));
        assert_eq!(kind(OrderStatus::AwaitingOfflinePayment), None);
        let (_, paid) = move_event(order, OrderStatus::Paid, &update(PaymentSignal::Succeeded)).unwrap();
        assert_eq!(paid["amount"], json!([11748, "MXN"]));
        let (_, refunded) = move_event(order, OrderStatus::Refunded, &update(PaymentSignal::Refunded)).unwrap();
        assert_eq!(refunded["payment_id"], "pi_1");
    }
}
