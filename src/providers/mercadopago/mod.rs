//! Mercado Pago.
pub mod verify;
