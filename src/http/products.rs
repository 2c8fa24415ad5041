//! `/api/v1/products`: the catalog.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi,
};

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{Limit, Page, PageItem},
    ApiTags, AppState,
};
use crate::domain::catalog::{self, Currency, NewProduct, Product, ProductPatch};

#[derive(Object, Debug)]
pub struct ProductIn {
    pub sku: String,
    pub name: String,
    /// Other words customers use for it ("zapato", "tenis").
    #[oai(default)]
    pub aliases: Vec<String>,
    /// Price in minor units (centavos): 4599 = $45.99.
    pub price_minor: i64,
    /// ISO 4217, e.g. MXN.
    pub currency: String,
    #[oai(default)]
    pub stock: i64,
}

#[derive(Object, Debug, Default)]
pub struct ProductPatchIn {
    pub name: Option<String>,
    pub aliases: Option<Vec<String>>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
}

#[derive(Object, Debug)]
pub struct StockIn {
    /// Units to add (negative to remove).
    pub delta: i32,
    /// Why (kept in the stock movement log).
    pub reason: String,
}

#[derive(Object, Debug)]
pub struct ProductOut {
    pub sku: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductOut {
    fn from(p: Product) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            aliases: p.aliases,
            price_minor: p.price_minor,
            currency: p.currency,
            stock: p.stock,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl PageItem for ProductOut {
    const PAGE_NAME: &'static str = "ProductPage";
}

#[derive(ApiResponse)]
pub enum CreatedProduct {
    #[oai(status = 201)]
    Created(Json<ProductOut>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted. Orders keep their copy of its name and price.
    #[oai(status = 204)]
    NoContent,
}

#[derive(Default)]
pub struct ProductsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Catalog")]
impl ProductsApi {
    /// Add a product. 409 if the sku exists; 422 for a negative price or stock,
    /// an empty name or an unknown currency.
    #[oai(path = "/products", method = "post", operation_id = "v1.products.create")]
    async fn create(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<ProductIn>) -> Result<CreatedProduct, ApiError> {
        let p = &body.0;
        let new = NewProduct::parse(&p.sku, &p.name, &p.aliases, p.price_minor, &p.currency, p.stock)
            .map_err(|e| ApiError::invalid(&e))?;
        let product = catalog::insert(&state.pool, &new).await.map_err(catalog_error)?;
        Ok(CreatedProduct::Created(Json(product.into())))
    }

    /// List products by sku.
    #[oai(path = "/products", method = "get", operation_id = "v1.products.list")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<ProductOut>>, ApiError> {
        let (rows, next) = catalog::list(&state.pool, limit.get(), cursor.0.as_deref()).await.map_err(catalog_error)?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    #[oai(path = "/products/:sku", method = "get", operation_id = "v1.products.show")]
    /// Show a product.
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, sku: Path<String>) -> Result<Json<ProductOut>, ApiError> {
        Ok(Json(catalog::get(&state.pool, &sku.0).await.map_err(catalog_error)?.into()))
    }

    /// Change name, aliases, price or currency (existing orders keep their
    /// prices). Stock changes go through `POST /products/{sku}/stock`.
    #[oai(path = "/products/:sku", method = "patch", operation_id = "v1.products.update")]
    async fn update(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        sku: Path<String>,
        body: Json<ProductPatchIn>,
    ) -> Result<Json<ProductOut>, ApiError> {
        let p = &body.0;
        let patch = ProductPatch {
            name: p.name.as_deref().map(catalog::parse_name).transpose().map_err(|e| ApiError::invalid(&e))?,
            aliases: p.aliases.as_deref().map(catalog::parse_aliases),
            price_minor: p.price_minor.map(catalog::parse_price).transpose().map_err(|e| ApiError::invalid(&e))?,
            currency: p.currency.as_deref().map(Currency::parse).transpose().map_err(|e| ApiError::invalid(&e))?,
        };
        Ok(Json(catalog::update(&state.pool, &sku.0, &patch).await.map_err(catalog_error)?.into()))
    }

    /// Delete a product.
    #[oai(path = "/products/:sku", method = "delete", operation_id = "v1.products.delete")]
    async fn delete(&self, _auth: AdminAuth, state: Data<&AppState>, sku: Path<String>) -> Result<Deleted, ApiError> {
        catalog::delete(&state.pool, &sku.0).await.map_err(catalog_error)?;
        Ok(Deleted::NoContent)
    }

    /// Add or remove stock; 409 if it would go below zero.
    #[oai(path = "/products/:sku/stock", method = "post", operation_id = "v1.products.adjust_stock")]
    async fn adjust_stock(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        sku: Path<String>,
        body: Json<StockIn>,
    ) -> Result<Json<ProductOut>, ApiError> {
        let reason = body.reason.trim();
        if reason.is_empty() {
            return Err(ApiError::invalid(&crate::domain::Invalid::new("reason", "must not be empty")));
        }
        let product = catalog::adjust_stock(&state.pool, &sku.0, body.delta, reason)
            .await
            .map_err(catalog_error)?;
        Ok(Json(product.into()))
    }
}

fn catalog_error(e: catalog::Error) -> ApiError {
    match e {
        catalog::Error::DuplicateSku(_) => ApiError::Conflict(super::error::body("duplicate_sku", e.to_string())),
        catalog::Error::NotFound(_) => ApiError::not_found("product"),
        catalog::Error::InsufficientStock { .. } => {
            ApiError::Conflict(super::error::body("insufficient_stock", e.to_string()))
        }
        catalog::Error::Database(e) => e.into(),
    }
}
