//! Business logic: catalog, orders, the outboxes. Each module owns the SQL of
//! its tables; HTTP handlers convert DTOs into these types once.

pub mod catalog;
pub mod customers;
pub mod emails;
pub mod highlevel;
pub mod appointments;
pub mod orders;
pub mod payments;
pub mod outbox;
pub mod quotes;
pub mod whatsapp;

/// A field that failed validation: reported as a 422 with its location.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
