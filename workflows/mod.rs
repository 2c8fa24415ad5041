//! The flows Relevo runs, each a file that reads as its list of steps.
//! They are registered here, in one place, at start-up.

pub mod inbound_event;
pub mod selftest;

use crate::{config::Settings, engine::Registry};

/// Every workflow this process executes.
pub fn registry(settings: &Settings) -> Registry {
    let registry = Registry::new().register(inbound_event::InboundEvent);
    if settings.enable_test_workflows {
        tracing::warn!("self-test workflows are enabled (RELEVO_ENABLE_TEST_WORKFLOWS)");
        return selftest::register(registry);
    }
    registry
}
