//! The product catalog: SKUs, frozen-at-order prices, stock that never goes
//! negative (a CHECK constraint backs the code).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::Invalid;

/// A stock-keeping unit: 1–64 of `A–Z a–z 0–9 . _ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::new("sku", "1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 4217 currency code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        iso_currency::Currency::from_code(&raw.trim().to_ascii_uppercase())
            .map(Self)
            .ok_or_else(|| Invalid::new("currency", format!("{raw:?} is not an ISO 4217 currency code")))
    }

    pub fn code(&self) -> &'static str {
        self.0.code()
    }
}

/// A validated new product.
#[derive(Clone, Debug)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: String,
    pub aliases: Vec<String>,
    pub price_minor: i64,
    pub currency: Currency,
    pub stock: i32,
}

impl NewProduct {
    pub fn parse(
        sku: &str,
        name: &str,
        aliases: &[String],
        price_minor: i64,
        currency: &str,
        stock: i64,
    ) -> Result<Self, Invalid> {
        Ok(Self {
            sku: Sku::parse(sku)?,
            name: parse_name(name)?,
            aliases: parse_aliases(aliases),
            price_minor: parse_price(price_minor)?,
            currency: Currency::parse(currency)?,
            stock: i32::try_from(stock)
                .ok()
                .filter(|s| *s >= 0)
                .ok_or_else(|| Invalid::new("stock", "must be between 0 and 2147483647"))?,
        })
    }
}

pub fn parse_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Invalid::new("name", "must be 1-200 characters"));
    }
    Ok(name.to_owned())
}

pub fn parse_price(price_minor: i64) -> Result<i64, Invalid> {
    if price_minor < 0 {
        return Err(Invalid::new("price_minor", "must not be negative"));
    }
    Ok(price_minor)
}

pub fn parse_aliases(aliases: &[String]) -> Vec<String> {
    aliases
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Changes to a product (stock changes go through `adjust_stock`).
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub price_minor: Option<i64>,
    pub currency: Option<Currency>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a product with sku {0:?} already exists")]
    DuplicateSku(String),
    #[error("no product with sku {0:?}")]
    NotFound(String),
    #[error("stock of {sku} is {available}; it cannot go below zero")]
    InsufficientStock { sku: String, available: i32 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "sku, name, aliases, price_minor, currency::text as currency, stock, created_at, updated_at";

pub async fn insert(pool: &PgPool, p: &NewProduct) -> Result<Product, Error> {
    let sql = format!(
        "insert into products (sku, name, aliases, price_minor, currency, stock)
         values ($1, $2, $3, $4, $5, $6) returning {COLUMNS}"
    );
    let mut tx = pool.begin().await?;
    let product = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(p.sku.as_str())
        .bind(&p.name)
        .bind(&p.aliases)
        .bind(p.price_minor)
        .bind(p.currency.code())
        .bind(p.stock)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Error::DuplicateSku(p.sku.as_str().into()),
            _ => Error::Database(e),
        })?;
    if p.stock > 0 {
        record_movement_using(&mut tx, p.sku.as_str(), p.stock, "initial stock", None).await?;
    }
    tx.commit().await?;
    Ok(product)
}

pub async fn get(pool: &PgPool, sku: &str) -> Result<Product, Error> {
    let sql = format!("select {COLUMNS} from products where sku = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sku)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(sku.into()))
}

/// Products by sku; `after` is the last sku of the previous page.
pub async fn list(pool: &PgPool, limit: u32, after: Option<&str>) -> Result<(Vec<Product>, Option<String>), Error> {
    let sql = format!(
        "select {COLUMNS} from products where ($1::text is null or sku > $1) order by sku limit $2"
    );
    let rows: Vec<Product> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_all(pool)
        .await?;
    Ok(crate::db::page::split(rows, limit, |p| p.sku.clone()))
}

pub async fn update(pool: &PgPool, sku: &str, patch: &ProductPatch) -> Result<Product, Error> {
    let sql = format!(
        "update products set name = coalesce($2, name), aliases = coalesce($3, aliases),
                price_minor = coalesce($4, price_minor), currency = coalesce($5, currency), updated_at = now()
          where sku = $1 returning {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sku)
        .bind(&patch.name)
        .bind(&patch.aliases)
        .bind(patch.price_minor)
        .bind(patch.currency.map(|c| c.code()))
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| Error::NotFound(sku.into()))
}

/// Deletes a product; orders keep their frozen copy of its name and price.
pub async fn delete(pool: &PgPool, sku: &str) -> Result<(), Error> {
    let done = sqlx::query!("delete from products where sku = $1", sku).execute(pool).await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(sku.into()));
    }
    Ok(())
}

/// Adds `delta` (may be negative) to the stock; refuses to go below zero.
pub async fn adjust_stock(pool: &PgPool, sku: &str, delta: i32, reason: &str) -> Result<Product, Error> {
    let mut tx = pool.begin().await?;
    let sql = format!(
        "update products set stock = stock + $2, updated_at = now()
          where sku = $1 and stock + $2 >= 0 returning {COLUMNS}"
    );
    let updated: Option<Product> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(sku)
        .bind(delta)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(product) = updated else {
        let available = sqlx::query_scalar!("select stock from products where sku = $1", sku)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match available {
            None => Error::NotFound(sku.into()),
            Some(available) => Error::InsufficientStock { sku: sku.into(), available },
        });
    };
    record_movement_using(&mut tx, sku, delta, reason, None).await?;
    tx.commit().await?;
    Ok(product)
}

/// A product's price as an order freezes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductPrice {
    pub name: String,
    pub price_minor: i64,
    pub currency: String,
}

/// The prices of `skus` (unknown ones are absent), share-locked until the
/// caller's transaction ends so none changes before the order that reads them
/// commits.
pub async fn lock_prices_using(
    conn: &mut PgConnection,
    skus: &[&str],
) -> Result<std::collections::HashMap<String, ProductPrice>, sqlx::Error> {
    let rows: Vec<(String, String, i64, String)> =
        sqlx::query_as("select sku, name, price_minor, currency::text from products where sku = any($1) for share")
            .bind(skus)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, name, price_minor, currency)| (sku, ProductPrice { name, price_minor, currency }))
        .collect())
}

pub async fn record_movement_using(
    conn: &mut PgConnection,
    sku: &str,
    delta: i32,
    reason: &str,
    order_id: Option<uuid::Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into stock_movements (sku, delta, reason, order_id) values ($1, $2, $3, $4)",
        sku,
        delta,
        reason,
        order_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_products_are_validated() {
        let ok = NewProduct::parse("ZAP-001", " Zapatos ", &["zapato".into(), " ".into()], 4599, "mxn", 50).unwrap();
        assert_eq!((ok.name.as_str(), ok.aliases.len(), ok.currency.code()), ("Zapatos", 1, "MXN"));
        for (sku, name, price, currency, stock, field) in [
            ("", "x", 1, "MXN", 1, "sku"),
            ("a b", "x", 1, "MXN", 1, "sku"),
            ("A", " ", 1, "MXN", 1, "name"),
            ("A", "x", -1, "MXN", 1, "price_minor"),
            ("A", "x", 1, "XXQ", 1, "currency"),
            ("A", "x", 1, "MXN", -1, "stock"),
        ] {
            let err = NewProduct::parse(sku, name, &[], price, currency, stock).unwrap_err();
            assert_eq!(err.field, field);
        }
    }
}
