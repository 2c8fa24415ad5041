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

use std::time::Duration;

/// `5s`, `30m`, `2h`, `5d` → a duration.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct OutboundSettings {
    /// `RELEVO_OUTBOUND_RETRY_SCHEDULE` (default `5s,5m,30m,2h,5h,10h,10h`): the wait
    /// after each failed attempt, ±20 % jitter; when exhausted the delivery fails.
    pub retry_schedule: Vec<Duration>,
    /// `RELEVO_OUTBOUND_DISABLE_AFTER` (default `5d`): a subscription failing with
    /// no success for this long is disabled.
    pub disable_after: Duration,
    /// `RELEVO_OUTBOUND_ALLOW_NETS`: CIDRs exempt from the SSRF guard.
    pub allow_nets: ssrf::AllowNets,
    /// `RELEVO_OUTBOUND_CONCURRENCY` (default 64): deliveries in flight per node.
    pub concurrency: usize,
    /// `RELEVO_OUTBOUND_TIMEOUT` (default `10s`): the whole request.
    pub request_timeout: Duration,
    /// `RELEVO_OUTBOUND_LEASE` (default `30s`, must exceed the timeout): how long a
    /// claimed delivery stays with its sender before another node may take it.
    pub lease: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            retry_schedule: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .iter()
                .filter_map(|s| parse_duration(s))
                .collect(),
            disable_after: Duration::from_secs(5 * 86400),
            allow_nets: ssrf::AllowNets::default(),
            concurrency: 64,
            request_timeout: Duration::from_secs(10),
            lease: Duration::from_secs(30),
        }
    }
}

impl OutboundSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let mut s = Self::default();
        if let Some(raw) = get("RELEVO_OUTBOUND_RETRY_SCHEDULE") {
            s.retry_schedule = raw
                .split(',')
                .map(|p| parse_duration(p).ok_or_else(|| format!("{p:?} is not a duration like 5s, 30m, 2h")))
                .collect::<Result<_, _>>()
                .map_err(|e| ("RELEVO_OUTBOUND_RETRY_SCHEDULE", e))?;
        }
        if let Some(raw) = get("RELEVO_OUTBOUND_DISABLE_AFTER") {
            s.disable_after = parse_duration(&raw)
                .ok_or(("RELEVO_OUTBOUND_DISABLE_AFTER", format!("{raw:?} is not a duration like 5d")))?;
        }
        if let Some(raw) = get("RELEVO_OUTBOUND_ALLOW_NETS") {
            s.allow_nets = ssrf::AllowNets::parse(&raw).map_err(|e| ("RELEVO_OUTBOUND_ALLOW_NETS", e))?;
        }
        for (name, field) in [("RELEVO_OUTBOUND_TIMEOUT", &mut s.request_timeout), ("RELEVO_OUTBOUND_LEASE", &mut s.lease)] {
            if let Some(raw) = get(name) {
                *field = parse_duration(&raw).ok_or((name, format!("{raw:?} is not a duration like 10s")))?;
            }
        }
        if s.lease <= s.request_timeout {
            return Err(("RELEVO_OUTBOUND_LEASE", "must be longer than RELEVO_OUTBOUND_TIMEOUT".into()));
        }
        if let Some(raw) = get("RELEVO_OUTBOUND_CONCURRENCY") {
            s.concurrency = raw.parse().map_err(|_| ("RELEVO_OUTBOUND_CONCURRENCY", format!("{raw:?}")))?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
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
