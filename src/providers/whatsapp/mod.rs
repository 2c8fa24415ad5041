//! Meta WhatsApp Cloud API.
pub mod client;
pub mod payload;
pub mod verify;
