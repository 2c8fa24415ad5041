//! Meta WhatsApp Cloud API.
pub mod payload;
pub mod verify;
