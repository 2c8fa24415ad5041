//! Mercado Pago.
pub mod client;
pub mod payload;
pub mod verify;
