//! Orders: created with prices frozen from the catalog, moved by payment
//! signals through the state machine in `status`, every transition recorded.

pub mod from_quote;
pub mod fulfilment;
pub mod links;
pub mod status;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use status::{Decision, OrderState, OrderStatus, PaymentSignal};

use super::{
    catalog::{self, ProductPrice, Sku},
    customers,
    outbox::{self, EventType},
    Invalid,
};

/// The order reference shoppers see in e-mails and chats: the first eight
/// hex digits of its id.
pub fn short_ref(id: Uuid) -> String {
    id.simple().to_string()[..8].to_owned()
}

/// A plausible e-mail address (something@domain.tld, no spaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let valid = s.len() <= 254
            && !s.chars().any(char::is_whitespace)
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
            });
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("customer.email", format!("{raw:?} is not an e-mail address")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who an order is for: an e-mail, a phone, or both.
#[derive(Clone, Debug)]
pub struct Customer {
    pub email: Option<Email>,
    pub name: String,
    pub phone: Option<String>,
}

impl Customer {
    /// How the customers table recognises this person: the e-mail, else the
    /// phone as a WhatsApp number (its digits).
    pub fn identity(&self) -> (Option<String>, Option<String>) {
        match &self.email {
            Some(email) => (None, Some(email.as_str().to_owned())),
            None => (self.phone.as_deref().map(|p| p.chars().filter(char::is_ascii_digit).collect()), None),
        }
    }
}

/// A validated order request.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub customer: Customer,
    pub items: Vec<(Sku, i32)>,
}

impl NewOrder {
    /// An order needs a name and an e-mail or a phone.
    pub fn parse(email: Option<&str>, name: &str, phone: Option<&str>, items: &[(String, i64)]) -> Result<Self, Invalid> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Invalid::new("customer.name", "must not be empty"));
        }
        let phone = phone.map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
        let email = email.map(Email::parse).transpose()?;
        if email.is_none() && phone.is_none() {
            return Err(Invalid::new("customer", "an order needs an e-mail or a phone"));
        }
        if let Some(phone) = &phone {
            if !phone.chars().any(|c| c.is_ascii_digit()) || phone.len() > 32 {
                return Err(Invalid::new("customer.phone", format!("{phone:?} is not a phone number")));
            }
        }
        if items.is_empty() {
            return Err(Invalid::new("items", "an order needs at least one item"));
        }
        let mut parsed = Vec::with_capacity(items.len());
        for (i, (sku, quantity)) in items.iter().enumerate() {
            let sku = Sku::parse(sku).map_err(|e| Invalid::new(format!("items[{i}].sku"), e.message))?;
            let quantity = i32::try_from(*quantity)
                .ok()
                .filter(|q| *q >= 1)
                .ok_or_else(|| Invalid::new(format!("items[{i}].quantity"), "must be at least 1"))?;
            parsed.push((sku, quantity));
        }
        Ok(Self {
            customer: Customer { email, name: name.to_owned(), phone },
            items: parsed,
        })
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub status: OrderStatus,
    pub customer_id: Option<Uuid>,
    /// The WhatsApp quote the order was confirmed from.
    pub quote_id: Option<Uuid>,
    pub customer_email: Option<String>,
    pub customer_name: String,
    pub customer_phone: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRow {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TransitionRow {
    pub from_status: OrderStatus,
    pub to_status: Option<OrderStatus>,
    pub signal: String,
    pub applied: bool,
    pub reason: Option<String>,
    pub event_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Order {
    pub order: OrderRow,
    pub items: Vec<ItemRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const ORDER_COLUMNS: &str = "id, status, customer_id, quote_id, customer_email, customer_name, customer_phone,
    amount_minor, currency::text as currency, created_at, updated_at";

/// Creates an order with prices frozen from the catalog, and records
/// `sales_order.created` in the same transaction.
pub async fn create(pool: &PgPool, new: &NewOrder) -> Result<Order, Error> {
    let mut tx = pool.begin().await?;
    let skus: Vec<&str> = new.items.iter().map(|(s, _)| s.as_str()).collect();
    // Shared locks: a price cannot change between reading and freezing it.
    let prices = catalog::lock_prices_using(&mut tx, &skus).await?;
    let priced = price_lines(&new.items, &prices)?;
    let (wa_id, email) = new.customer.identity();
    let identity = match (&wa_id, &email) {
        (_, Some(email)) => customers::Identity::Email(email),
        (Some(wa_id), None) => customers::Identity::WhatsApp(wa_id),
        (None, None) => return Err(Invalid::new("customer", "an order needs an e-mail or a phone").into()),
    };
    let details = customers::Details { name: Some(&new.customer.name), phone: new.customer.phone.as_deref() };
    let customer = customers::upsert_using(&mut tx, identity, details).await?;
    let order = insert_using(&mut tx, &new.customer, customer.id, None, &priced).await?;
    tx.commit().await?;
    Ok(order)
}

/// Inserts an order of `customer_id` with its priced lines, and records
/// `sales_order.created`, in the caller's transaction.
pub(crate) async fn insert_using(
    conn: &mut PgConnection,
    customer: &Customer,
    customer_id: Uuid,
    quote_id: Option<Uuid>,
    priced: &PricedOrder,
) -> Result<Order, sqlx::Error> {
    let id = Uuid::now_v7();
    let order = insert_order_using(conn, id, customer, customer_id, quote_id, priced).await?;
    insert_items_using(conn, id, &priced.items).await?;
    outbox::record_using(
        conn,
        EventType::SalesOrderCreated,
        json!({
            "order_id": id,
            "customer_id": customer_id,
            "amount_minor": priced.amount_minor,
            "currency": priced.currency,
            "status": OrderStatus::PendingPayment.as_str(),
        }),
    )
    .await?;
    Ok(Order { order, items: priced.items.clone() })
}

/// Order lines with their prices frozen, and the order's currency and total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedOrder {
    pub items: Vec<ItemRow>,
    pub currency: String,
    pub amount_minor: i64,
}

/// Prices `lines` from `prices` (keyed by sku): every sku must be known, all
/// in one currency, and the total must fit in an `i64` of minor units.
pub fn price_lines(lines: &[(Sku, i32)], prices: &HashMap<String, ProductPrice>) -> Result<PricedOrder, Invalid> {
    let mut items = Vec::with_capacity(lines.len());
    let mut currency: Option<&str> = None;
    let mut amount: i64 = 0;
    for (i, (sku, quantity)) in lines.iter().enumerate() {
        let price = prices
            .get(sku.as_str())
            .ok_or_else(|| Invalid::new(format!("items[{i}].sku"), format!("unknown sku {:?}", sku.as_str())))?;
        if *currency.get_or_insert(price.currency.as_str()) != price.currency {
            return Err(Invalid::new(format!("items[{i}].sku"), "all items of an order must share one currency"));
        }
        amount = price
            .price_minor
            .checked_mul(i64::from(*quantity))
            .and_then(|line| amount.checked_add(line))
            .ok_or_else(|| Invalid::new("items", "order total is too large"))?;
        items.push(ItemRow {
            sku: sku.as_str().to_owned(),
            name: price.name.clone(),
            quantity: *quantity,
            unit_price_minor: price.price_minor,
        });
    }
    let currency = currency.ok_or_else(|| Invalid::new("items", "an order needs at least one item"))?;
    Ok(PricedOrder {
        currency: currency.to_owned(),
        items,
        amount_minor: amount,
    })
}

async fn insert_order_using(
    conn: &mut PgConnection,
    id: Uuid,
    customer: &Customer,
    customer_id: Uuid,
    quote_id: Option<Uuid>,
    priced: &PricedOrder,
) -> Result<OrderRow, sqlx::Error> {
    let sql = format!(
        "insert into orders (id, customer_email, customer_name, customer_phone, amount_minor, currency, customer_id, quote_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning {ORDER_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(customer.email.as_ref().map(Email::as_str))
        .bind(&customer.name)
        .bind(&customer.phone)
        .bind(priced.amount_minor)
        .bind(&priced.currency)
        .bind(customer_id)
        .bind(quote_id)
        .fetch_one(conn)
        .await
}

async fn insert_items_using(conn: &mut PgConnection, order_id: Uuid, items: &[ItemRow]) -> Result<(), sqlx::Error> {
    for (line, item) in items.iter().enumerate() {
        sqlx::query(
            "insert into order_items (order_id, line, sku, name, quantity, unit_price_minor)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(order_id)
        .bind(line as i32)
        .bind(&item.sku)
        .bind(&item.name)
        .bind(item.quantity)
        .bind(item.unit_price_minor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<(Order, Vec<TransitionRow>), Error> {
    let mut conn = pool.acquire().await?;
    let order = load_using(&mut conn, id).await?;
    let history = sqlx::query_as(
        "select from_status, to_status, signal, applied, reason, event_id, at
           from order_transitions where order_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok((order, history))
}

/// The order with its items, in the caller's transaction.
pub async fn load_using(conn: &mut PgConnection, id: Uuid) -> Result<Order, Error> {
    let sql = format!("select {ORDER_COLUMNS} from orders where id = $1");
    let order: OrderRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)?;
    let items = items_using(conn, id).await?;
    Ok(Order { order, items })
}

async fn items_of(pool: &PgPool, id: Uuid) -> Result<Vec<ItemRow>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    items_using(&mut conn, id).await
}

pub(crate) async fn items_using(conn: &mut PgConnection, id: Uuid) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as("select sku, name, quantity, unit_price_minor from order_items where order_id = $1 order by line")
        .bind(id)
        .fetch_all(conn)
        .await
}

/// The newest `limit` orders of a customer (without their items).
pub async fn of_customer(pool: &PgPool, customer_id: Uuid, limit: u32) -> Result<Vec<OrderRow>, sqlx::Error> {
    let sql = format!("select {ORDER_COLUMNS} from orders where customer_id = $1 order by id desc limit $2");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(customer_id).bind(i64::from(limit)).fetch_all(pool).await
}

/// Newest first; `cursor` is the last id of the previous page.
pub async fn list(
    pool: &PgPool,
    status: Option<OrderStatus>,
    limit: u32,
    cursor: Option<Uuid>,
) -> Result<(Vec<Order>, Option<Uuid>), Error> {
    let sql = format!(
        "select {ORDER_COLUMNS} from orders
          where ($1::order_status is null or status = $1) and ($2::uuid is null or id < $2)
          order by id desc limit $3"
    );
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .bind(cursor)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    let (rows, next) = crate::db::page::split(rows, limit, |r| r.id);
    let mut orders = Vec::with_capacity(rows.len());
    for order in rows {
        let items = items_of(pool, order.id).await?;
        orders.push(Order { order, items });
    }
    Ok((orders, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_requests_are_validated() {
        let ok = NewOrder::parse(Some("ana@example.mx"), "Ana", Some(" "), &[("ZAP-001".into(), 2)]).unwrap();
        assert!(ok.customer.phone.is_none());
        let by_phone = NewOrder::parse(None, "Ana", Some("+52 1 55 1234 5678"), &[("ZAP-001".into(), 2)]).unwrap();
        assert_eq!(by_phone.customer.identity(), (Some("5215512345678".into()), None));
        for (email, name, items, field) in [
            ("ana@example", "Ana", vec![("A".to_string(), 1)], "customer.email"),
            ("ana example.mx", "Ana", vec![("A".to_string(), 1)], "customer.email"),
            ("ana@example.mx", " ", vec![("A".to_string(), 1)], "customer.name"),
            ("ana@example.mx", "Ana", vec![], "items"),
            ("ana@example.mx", "Ana", vec![("A".to_string(), 0)], "items[0].quantity"),
        ] {
            assert_eq!(NewOrder::parse(Some(email), name, None, &items).unwrap_err().field, field);
        }
        let items = [("A".to_string(), 1)];
        assert_eq!(NewOrder::parse(None, "Ana", None, &items).unwrap_err().field, "customer");
        assert_eq!(NewOrder::parse(None, "Ana", Some("call me"), &items).unwrap_err().field, "customer.phone");
    }

    fn catalog(entries: &[(&str, i64, &str)]) -> HashMap<String, ProductPrice> {
        entries
            .iter()
            .map(|(sku, price, currency)| {
                let price = ProductPrice { name: format!("{sku} name"), price_minor: *price, currency: (*currency).into() };
                ((*sku).to_owned(), price)
            })
            .collect()
    }

    fn lines(entries: &[(&str, i32)]) -> Vec<(Sku, i32)> {
        entries.iter().map(|(sku, q)| (Sku::parse(sku).unwrap(), *q)).collect()
    }

    #[test]
    fn lines_are_priced_from_the_catalog_and_totalled() {
        let prices = catalog(&[("ZAP-001", 4599, "MXN"), ("CAL-002", 250, "MXN")]);

        let priced = price_lines(&lines(&[("ZAP-001", 2), ("CAL-002", 3)]), &prices).unwrap();

        assert_eq!((priced.amount_minor, priced.currency.as_str()), (2 * 4599 + 3 * 250, "MXN"));
        assert_eq!(priced.items[0], ItemRow { sku: "ZAP-001".into(), name: "ZAP-001 name".into(), quantity: 2, unit_price_minor: 4599 });
        assert_eq!(priced.items[1].sku, "CAL-002");
    }

    #[test]
    fn pricing_refuses_unknown_skus_mixed_currencies_and_overflow() {
        let prices = catalog(&[("A", 100, "MXN"), ("B", 100, "USD"), ("HUGE", i64::MAX / 2, "MXN")]);
        for (order, field, message) in [
            (lines(&[("A", 1), ("NOPE", 1)]), "items[1].sku", "unknown sku \"NOPE\""),
            (lines(&[("A", 1), ("B", 1)]), "items[1].sku", "all items of an order must share one currency"),
            (lines(&[("HUGE", 3)]), "items", "order total is too large"),
            (lines(&[("HUGE", 2), ("A", 1)]), "items", "order total is too large"),
            (lines(&[]), "items", "an order needs at least one item"),
        ] {
            assert_eq!(price_lines(&order, &prices).unwrap_err(), Invalid::new(field, message));
        }
    }
}
