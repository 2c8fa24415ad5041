//! The flows Relevo runs, each a file that reads as its list of steps.
//! They are registered here, in one place, at start-up.

pub mod inbound_event;
pub mod oxxo_expiry;
pub mod payment_fulfilment;
pub mod selftest;

use std::sync::Arc;

use crate::{config::Settings, domain::orders::fulfilment::Shop, engine::Registry};

/// Every workflow this process executes.
pub fn registry(settings: &Settings) -> Registry {
    let shop = Arc::new(Shop {
        timezone: settings.shop_timezone,
        smtp_configured: settings.smtp_url.is_some() && settings.email_from.is_some(),
    });
    let registry = Registry::new()
        .register(inbound_event::InboundEvent {
            mercadopago: settings.mercadopago_access_token.clone().map(|token| {
                Arc::new(crate::providers::mercadopago::client::Client::new(&settings.mercadopago_api_base, token))
            }),
        })
        .register(payment_fulfilment::PaymentFulfilment { shop: shop.clone() })
        .register(oxxo_expiry::OxxoExpiry { shop });
    if settings.enable_test_workflows {
        tracing::warn!("self-test workflows are enabled (RELEVO_ENABLE_TEST_WORKFLOWS)");
        return selftest::register(registry);
    }
    registry
}
