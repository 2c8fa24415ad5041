//! HighLevel (LeadConnector).
pub mod client;
pub mod payload;
pub mod verify;
