//! Stripe.
pub mod verify;
