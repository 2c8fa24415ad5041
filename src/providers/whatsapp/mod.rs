//! Meta WhatsApp Cloud API.
pub mod verify;
