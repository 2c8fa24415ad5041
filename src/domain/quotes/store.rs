//! The quote index of the live catalog, cached per database and rebuilt when
//! the catalog changes on any node: the `catalog_version` row is bumped by a
//! trigger in the transaction of every product change, so one tiny read per
//! quote tells whether the cached index is current.
//!
//! The cache is process-wide, keyed by the database the pool connects to (a
//! test process talks to many databases; a node to one).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sqlx::PgPool;

use super::{
    index::{CatalogProduct, QuoteIndex},
    Quote,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("building the quote index failed")]
    Build(#[from] tokio::task::JoinError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The catalog's current version.
pub async fn get_catalog_version(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar!("select version from catalog_version").fetch_one(pool).await?)
}

/// Every product as the quote index reads it, by sku.
pub async fn list_catalog_products(pool: &PgPool) -> Result<Vec<CatalogProduct>> {
    let rows = sqlx::query!(
        r#"select sku, name, aliases, price_minor, currency::text as "currency!" from products order by sku"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CatalogProduct { sku: r.sku, name: r.name, aliases: r.aliases, price_minor: r.price_minor, currency: r.currency })
        .collect())
}

/// Parses and prices `text` against the live catalog: what a workflow step
/// calls before storing the quote and sending [`super::reply::render`].
pub async fn quote_message(pool: &PgPool, text: &str) -> Result<Quote> {
    let index = IndexCache::global().current(pool).await?;
    Ok(parse_and_price(&index, text))
}

/// Parses `text` against `index` and prices it; the parse time goes to the
/// `relevo_quote_parse_seconds` histogram.
pub fn parse_and_price(index: &QuoteIndex, text: &str) -> Quote {
    let started = std::time::Instant::now();
    let parsed = index.parse(text);
    metrics::histogram!("relevo_quote_parse_seconds").record(started.elapsed().as_secs_f64());
    Quote::price(index, &parsed)
}

struct Cached {
    version: i64,
    index: Arc<QuoteIndex>,
}

#[derive(Default)]
pub struct IndexCache {
    slots: Mutex<HashMap<String, Cached>>,
    /// One rebuild at a time, so a burst of quotes after a catalog change
    /// builds the index once.
    rebuild: tokio::sync::Mutex<()>,
}

impl IndexCache {
    /// The process-wide cache.
    pub fn global() -> &'static IndexCache {
        static CACHE: std::sync::OnceLock<IndexCache> = std::sync::OnceLock::new();
        CACHE.get_or_init(IndexCache::default)
    }

    /// The index of the catalog `pool` sees now.
    pub async fn current(&self, pool: &PgPool) -> Result<Arc<QuoteIndex>> {
        let key = database_key(pool);
        let version = get_catalog_version(pool).await?;
        if let Some(index) = self.fresh(&key, version) {
            return Ok(index);
        }
        let _guard = self.rebuild.lock().await;
        let version = get_catalog_version(pool).await?;
        if let Some(index) = self.fresh(&key, version) {
            return Ok(index);
        }
        // The version is read before the products: a change in between makes
        // the next quote rebuild again, never keeps a stale index.
        let products = list_catalog_products(pool).await?;
        let index = Arc::new(tokio::task::spawn_blocking(move || QuoteIndex::build(products)).await?);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(key).or_insert_with(|| Cached { version, index: index.clone() });
        if slot.version <= version {
            *slot = Cached { version, index: index.clone() };
        }
        Ok(index)
    }

    fn fresh(&self, key: &str, version: i64) -> Option<Arc<QuoteIndex>> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.get(key).filter(|c| c.version == version).map(|c| c.index.clone())
    }
}

/// Which database a pool reads: host or socket, port and database name.
fn database_key(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!("{}|{:?}|{}|{:?}", o.get_host(), o.get_socket(), o.get_port(), o.get_database())
}
