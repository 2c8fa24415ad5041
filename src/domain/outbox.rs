//! Domain events for outbound webhooks, written in the transaction of the change
//! they describe (`outbox_events`).
//!
//! `outbox_events.type` stays text: API clients also publish events of their
//! own types (`source = 'api'`). The types Relevo itself emits are `EventType`.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// The event types Relevo emits. Durable contract: subscribers filter on these
/// strings, so never change one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    CustomerCreated,
    CustomerUpdated,
    SalesOrderCreated,
    SalesOrderConfirmed,
    SalesOrderCancelled,
    SalesOrderNeedsAttention,
    PaymentReceived,
    PaymentFailed,
    PaymentRefunded,
    SubscriptionDisabled,
    /// Sent to one subscription on request; never fanned out.
    RelevoTest,
}

impl EventType {
    pub const ALL: [Self; 11] = [
        Self::CustomerCreated,
        Self::CustomerUpdated,
        Self::SalesOrderCreated,
        Self::SalesOrderConfirmed,
        Self::SalesOrderCancelled,
        Self::SalesOrderNeedsAttention,
        Self::PaymentReceived,
        Self::PaymentFailed,
        Self::PaymentRefunded,
        Self::SubscriptionDisabled,
        Self::RelevoTest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CustomerCreated => "customer.created",
            Self::CustomerUpdated => "customer.updated",
            Self::SalesOrderCreated => "sales_order.created",
            Self::SalesOrderConfirmed => "sales_order.confirmed",
            Self::SalesOrderCancelled => "sales_order.cancelled",
            Self::SalesOrderNeedsAttention => "sales_order.needs_attention",
            Self::PaymentReceived => "payment.received",
            Self::PaymentFailed => "payment.failed",
            Self::PaymentRefunded => "payment.refunded",
            Self::SubscriptionDisabled => "subscription.disabled",
            Self::RelevoTest => "relevo.test",
        }
    }

    /// The event type a stored string names, if Relevo emits it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records an event in the caller's transaction.
pub async fn record_using(
    conn: &mut PgConnection,
    kind: EventType,
    payload: Value,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query!("insert into outbox_events (id, type, payload) values ($1, $2, $3)", id, kind.as_str(), payload)
        .execute(conn)
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::EventType;

    #[test]
    fn event_types_read_back_from_their_strings() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("sales_order.shipped"), None);
    }
}
