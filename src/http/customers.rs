//! `/api/v1/customers`: the people orders are for, found by WhatsApp number
//! or e-mail, with their orders and WhatsApp conversation.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};
use uuid::Uuid;

use super::{
    auth::AdminAuth,
    error::ApiError,
    page::{self, Limit, Page, PageItem},
    whatsapp::ConversationOut,
    ApiTags, AppState,
};
use crate::domain::{
    customers::{self, CustomerRow},
    orders::{self, OrderRow},
    whatsapp::read,
};

/// How many of a customer's orders the detail shows.
const ORDERS_SHOWN: u32 = 100;

#[derive(Object, Debug)]
#[oai(rename = "Customer")]
pub struct CustomerRecordOut {
    pub id: Uuid,
    /// WhatsApp number (E.164 digits), for customers who wrote on WhatsApp.
    pub wa_id: Option<String>,
    /// Lowercased.
    pub email: Option<String>,
    /// WhatsApp profile name or the name given with an order.
    pub name: Option<String>,
    pub phone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CustomerRow> for CustomerRecordOut {
    fn from(c: CustomerRow) -> Self {
        Self {
            id: c.id,
            wa_id: c.wa_id,
            email: c.email,
            name: c.name,
            phone: c.phone,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl PageItem for CustomerRecordOut {
    const PAGE_NAME: &'static str = "CustomerPage";
    const CURSOR_DOC: Option<&'static str> = Some(page::NEXT_CURSOR_DOC);
}

#[derive(Object, Debug)]
pub struct CustomerOrderOut {
    pub id: Uuid,
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
    /// The WhatsApp quote it was confirmed from.
    pub quote_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<OrderRow> for CustomerOrderOut {
    fn from(o: OrderRow) -> Self {
        Self {
            id: o.id,
            status: o.status.as_str().to_owned(),
            amount_minor: o.amount_minor,
            currency: o.currency,
            quote_id: o.quote_id,
            created_at: o.created_at,
        }
    }
}

#[derive(Object, Debug)]
pub struct CustomerDetailOut {
    #[oai(flatten)]
    pub customer: CustomerRecordOut,
    /// Newest first, at most 100 (`GET /api/v1/orders/{id}` for one in full).
    pub orders: Vec<CustomerOrderOut>,
    /// Their WhatsApp conversation (`GET /api/v1/conversations/{wa_id}` for the messages).
    pub conversation: Option<ConversationOut>,
}

#[derive(Default)]
pub struct CustomersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Orders")]
impl CustomersApi {
    /// List customers, newest first.
    #[oai(path = "/customers", method = "get", operation_id = "v1.customers.list")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Data<&AppState>,
        /// Page size (1–1000, default 50).
        limit: Limit,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<Page<CustomerRecordOut>>, ApiError> {
        let cursor = page::parse_cursor(cursor.0.as_deref())?;
        let (rows, next) = customers::list(&state.pool, limit.get(), cursor).await?;
        Ok(Json(Page::from_rows(rows, next)))
    }

    /// Show a customer with their orders and WhatsApp conversation.
    #[oai(path = "/customers/:id", method = "get", operation_id = "v1.customers.show")]
    async fn show(&self, _auth: AdminAuth, state: Data<&AppState>, id: Path<Uuid>) -> Result<Json<CustomerDetailOut>, ApiError> {
        let customer = customers::get(&state.pool, id.0).await?.ok_or_else(|| ApiError::not_found("customer"))?;
        let orders = orders::of_customer(&state.pool, customer.id, ORDERS_SHOWN).await?;
        let conversation = match &customer.wa_id {
            Some(wa_id) => read::summary(&state.pool, wa_id).await?.map(Into::into),
            None => None,
        };
        Ok(Json(CustomerDetailOut {
            customer: customer.into(),
            orders: orders.into_iter().map(Into::into).collect(),
            conversation,
        }))
    }
}
