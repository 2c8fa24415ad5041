//! Outbound signed webhooks: subscriptions, the SSRF guard, signing, and the
//! delivery worker. Events come from `outbox_events` (domain changes and
//! `POST /api/v1/outbound-events`); a trigger creates one delivery per matching
//! subscription in the event's own transaction.
//!
//! Stored state, one module per table: `subscriptions`, `events`,
//! `deliveries`, `attempts`. The worker: `worker` (claim loop), `claims`
//! (leases), `attempt` (one delivery), `send` (the signed request), `retry`,
//! `rate_limit`, `disable`, `results` (batched commits). Operators: `ops`.

mod attempt;
pub mod attempts;
mod claims;
pub mod deliveries;
mod disable;
mod error;
pub mod events;
pub mod ops;
mod rate_limit;
mod results;
mod retry;
mod send;
pub mod signing;
pub mod ssrf;
pub mod subscriptions;
pub mod worker;

pub use error::{Error, Result};

pub use crate::config::{parse_duration, OutboundSettings};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432000)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(OutboundSettings::default().retry_schedule.len(), 7);
    }
}
