//! Integration tests: a real Postgres (one private cluster per test binary, one
//! database per test), the real HTTP app, and the real binary for crash tests.

mod helpers;

mod apalis_pitfalls;
mod catalog_orders;
mod console;
mod crash;
mod engine_guarantees;
mod hardening;
mod highlevel;
mod highlevel_mock;
mod http_surface;
mod lifecycle;
mod mercadopago;
mod ops;
mod outbound;
mod payments;
mod pool_cancellation;
mod provider_mocks;
mod quotes;
mod sqlx_offline;
mod webhooks;
mod whatsapp;
mod whatsapp_checkout;
mod whatsapp_log;
