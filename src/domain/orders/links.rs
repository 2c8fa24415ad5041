//! Payment links: the hosted pages (Stripe Checkout Session, Mercado Pago
//! preference) an order can be paid through.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A link as the provider made it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Link {
    /// `stripe` or `mercadopago`.
    pub provider: String,
    pub provider_id: String,
    pub url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Records `link` for `order_id` (once per provider id).
pub async fn record_using(conn: &mut PgConnection, order_id: Uuid, link: &Link) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into payment_links (order_id, provider, provider_id, url, expires_at) values ($1, $2, $3, $4, $5)
         on conflict (provider, provider_id) do nothing",
        order_id,
        link.provider,
        link.provider_id,
        link.url,
        link.expires_at,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest link of `order_id`.
pub async fn latest_using(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        "select provider, provider_id, url, expires_at from payment_links where order_id = $1 order by id desc limit 1",
        order_id,
    )
    .fetch_optional(conn)
    .await
}
