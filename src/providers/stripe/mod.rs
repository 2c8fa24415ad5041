//! Stripe.
pub mod client;
pub mod payload;
pub mod verify;
