//! HighLevel (LeadConnector).
pub mod payload;
pub mod verify;
