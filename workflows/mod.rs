//! The flows Relevo runs, each a file that reads as its list of steps.
//! They are registered here, in one place, at start-up.

pub mod email_delivery;
pub mod inbound_event;
pub mod oxxo_expiry;
pub mod payment_fulfilment;
pub mod selftest;

use std::sync::Arc;

use crate::{config::Settings, domain::orders::fulfilment::Shop, engine::Registry};

/// Every workflow this process executes. Fails on an unusable SMTP_URL or EMAIL_FROM.
pub fn registry(settings: &Settings) -> Result<Registry, crate::mailer::ConfigError> {
    let mailer = match (&settings.smtp_url, &settings.email_from) {
        (Some(url), Some(from)) => Some(Arc::new(crate::mailer::Mailer::new(url, from)?)),
        _ => {
            tracing::info!("SMTP_URL/EMAIL_FROM not set: e-mails stay in the outbox as \"logged\"");
            None
        }
    };
    let shop = Arc::new(Shop {
        timezone: settings.shop_timezone,
        smtp_configured: mailer.is_some(),
    });
    let mut registry = Registry::new()
        .register(inbound_event::InboundEvent {
            mercadopago: settings.mercadopago_access_token.clone().map(|token| {
                Arc::new(crate::providers::mercadopago::client::Client::new(&settings.mercadopago_api_base, token))
            }),
        })
        .register(payment_fulfilment::PaymentFulfilment { shop: shop.clone() })
        .register(oxxo_expiry::OxxoExpiry { shop });
    if let Some(mailer) = mailer {
        registry = registry.register(email_delivery::EmailDelivery { mailer });
    }
    if settings.enable_test_workflows {
        tracing::warn!("self-test workflows are enabled (RELEVO_ENABLE_TEST_WORKFLOWS)");
        registry = selftest::register(registry);
    }
    Ok(registry)
}
