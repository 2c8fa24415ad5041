//! Mercado Pago.
pub mod client;
pub mod verify;
