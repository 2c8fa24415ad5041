//! HighLevel (LeadConnector).
pub mod verify;
