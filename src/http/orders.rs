//! `/api/v1/orders` and `/api/v1/emails`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Enum, Object, OpenApi,
};
use uuid::Uuid;

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{parse_cursor, Limit, Page, PageItem},
    ApiTags, AppState,
};
use crate::domain::{
    emails::{self, EmailSummary},
    orders::{self, NewOrder, Order, OrderStatus, TransitionRow},
};

#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum OrderStatusDto {
    PendingPayment,
    AwaitingOfflinePayment,
    Paid,
    Fulfilled,
    PaymentFailed,
    Cancelled,
    Refunded,
    NeedsAttention,
}

impl From<OrderStatusDto> for OrderStatus {
    fn from(s: OrderStatusDto) -> Self {
        match s {
            OrderStatusDto::PendingPayment => Self::PendingPayment,
            OrderStatusDto::AwaitingOfflinePayment => Self::AwaitingOfflinePayment,
            OrderStatusDto::Paid => Self::Paid,
            OrderStatusDto::Fulfilled => Self::Fulfilled,
            OrderStatusDto::PaymentFailed => Self::PaymentFailed,
            OrderStatusDto::Cancelled => Self::Cancelled,
            OrderStatusDto::Refunded => Self::Refunded,
            OrderStatusDto::NeedsAttention => Self::NeedsAttention,
        }
    }
}

#[derive(Object, Debug)]
pub struct CustomerIn {
    /// An e-mail or a phone is required; with an e-mail the order's e-mails are sent.
    pub email: Option<String>,
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Object, Debug)]
pub struct OrderItemIn {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Object, Debug)]
pub struct OrderIn {
    pub customer: CustomerIn,
    pub items: Vec<OrderItemIn>,
}

#[derive(Object, Debug)]
pub struct CustomerOut {
    /// The customer record (`GET /api/v1/customers/{id}`).
    pub id: Option<Uuid>,
    pub email: Option<String>,
    pub name: String,
    pub phone: Option<String>,
}

#[derive(Object, Debug)]
pub struct OrderItemOut {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    /// Frozen when the order was created.
    pub unit_price_minor: i64,
    pub line_total_minor: i64,
}

#[derive(Object, Debug)]
pub struct OrderOut {
    pub id: Uuid,
    pub status: String,
    pub customer: CustomerOut,
    pub items: Vec<OrderItemOut>,
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderOut {
    fn from(o: Order) -> Self {
        let r = o.order;
        Self {
            id: r.id,
            status: r.status.as_str().to_owned(),
            customer: CustomerOut {
                id: r.customer_id,
                email: r.customer_email,
                name: r.customer_name,
                phone: r.customer_phone,
            },
            items: o
                .items
                .into_iter()
                .map(|i| OrderItemOut {
                    line_total_minor: i.unit_price_minor * i64::from(i.quantity),
                    sku: i.sku,
                    name: i.name,
                    quantity: i.quantity,
                    unit_price_minor: i.unit_price_minor,
                })
                .collect(),
            amount_minor: r.amount_minor,
            currency: r.currency,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One status change an event asked for, applied or ignored.
#[derive(Object, Debug)]
pub struct TransitionOut {
    pub from: String,
    pub to: Option<String>,
    /// The payment signal (succeeded, failed, voucher_issued, …).
    pub signal: String,
    /// False when the transition would have moved the order backwards.
    pub applied: bool,
    pub reason: Option<String>,
    /// The inbound event that caused it.
    pub event_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

impl From<TransitionRow> for TransitionOut {
    fn from(t: TransitionRow) -> Self {
        Self {
            from: t.from_status.as_str().into(),
            to: t.to_status.map(|s| s.as_str().into()),
            signal: t.signal,
            applied: t.applied,
            reason: t.reason,
            event_id: t.event_id,
            at: t.at,
        }
    }
}

#[derive(Object, Debug)]
pub struct OrderDetailOut {
    #[oai(flatten)]
    pub order: OrderOut,
    pub history: Vec<TransitionOut>,
}

impl PageItem for OrderOut {
    const PAGE_NAME: &'static str = "OrderPage";
}

#[derive(ApiResponse)]
pub enum CreatedOrder {
    /// Created in `pending_payment`, with prices frozen from the catalog.
    #[oai(status = 201)]
    Created(Json<OrderOut>),
}

#[derive(Object, Debug)]
pub struct EmailOut {
    pub id: Uuid,
    pub order_id: Option<Uuid>,
    #[oai(rename = "to")]
    pub to_address: String,
    pub subject: String,
    /// order_confirmation, oxxo_voucher, …
    pub kind: String,
    /// logged (no SMTP configured), queued, sent or failed
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<EmailSummary> for EmailOut {
    fn from(e: EmailSummary) -> Self {
        Self {
            id: e.id,
            order_id: e.order_id,
            to_address: e.to_address,
            subject: e.subject,
            kind: e.kind,
            status: e.status.as_str().to_owned(),
            created_at: e.created_at,
            sent_at: e.sent_at,
        }
    }
}

impl PageItem for EmailOut {
    const PAGE_NAME: &'static str = "EmailPage";
}

#[derive(Default)]
pub struct OrdersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Orders")]
impl OrdersApi {
    /// Create an order. 422 for an unknown sku, a quantity below 1, an invalid
    /// e-mail or items in different currencies.
    #[oai(path = "/orders", method = "post", operation_id = "v1.orders.create")]
    async fn create(&self, _auth: AdminAuth, state: Data<&AppState>, body: Json<OrderIn>) -> Result<CreatedOrder, ApiError> {
        let b = &body.0;
        let items: Vec<(String, i64)> = b.items.iter().map(|i| (i.sku.clone(), i.quantity)).collect();
        let new = NewOrder::parse(b.customer.email.as_deref(), &b.customer.name, b.customer.phone.as_deref(), &items)
            .map_err(|e| ApiError::invalid(&e))?;
        let order = orders::create(&state.pool, &new).await.map_err(order_error)?;
        Ok(CreatedOrder::Created(Json(order.into())))
    }

    /// List orders, newest first, optionally by status.
    #[oai(path = "/orders", method = "get", operation_id = "v1.orders.list")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        status: Query<Option<OrderStatusDto>>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<OrderOut>>, ApiError> {
        let cursor = parse_cursor(cursor.0.as_deref())?;
        let (rows, next) = orders::list(&state.pool, status.0.map(Into::into), limit.get(), cursor)
            .await
            .map_err(order_error)?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Show an order with its status history (each transition, its time and the
    /// provider event that caused it).
    #[oai(path = "/orders/:id", method = "get", operation_id = "v1.orders.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<OrderDetailOut>, ApiError> {
        let (order, history) = orders::get(&state.pool, id.0).await.map_err(order_error)?;
        Ok(Json(OrderDetailOut {
            order: order.into(),
            history: history.into_iter().map(TransitionOut::from).collect(),
        }))
    }

    /// The e-mail outbox, newest first.
    #[oai(path = "/emails", method = "get", operation_id = "v1.emails.list")]
    async fn emails(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        limit: Limit,
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<EmailOut>>, ApiError> {
        let cursor = parse_cursor(cursor.0.as_deref())?;
        let (rows, next) = emails::list_emails(&state.pool, limit.get(), cursor).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }
}

fn order_error(e: orders::Error) -> ApiError {
    match e {
        orders::Error::Invalid(i) => ApiError::invalid(&i),
        orders::Error::NotFound => ApiError::not_found("order"),
        orders::Error::Database(e) => e.into(),
    }
}
