//! The HighLevel marketplace app and its limits (HIGHLEVEL_*).

use std::time::Duration;

use secrecy::SecretString;

use super::{parse_duration, Error};

/// HighLevel's LeadConnector API.
pub const HIGHLEVEL_API_BASE: &str = "https://services.leadconnectorhq.com";

#[derive(Clone)]
pub struct HighLevelSettings {
    /// `HIGHLEVEL_API_BASE` (default https://services.leadconnectorhq.com).
    pub api_base: String,
    /// `HIGHLEVEL_CLIENT_ID` / `HIGHLEVEL_CLIENT_SECRET`: the marketplace app;
    /// without them codes cannot be exchanged nor tokens refreshed.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// `HIGHLEVEL_REDIRECT_URI`: sent with the code exchange, as registered in the app.
    pub redirect_uri: Option<String>,
    /// `HIGHLEVEL_RATE_LIMIT` (default `100/10s`): requests per window per
    /// location, shared by every node.
    pub rate_limit: RateLimit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// The spacing between two requests of one location: the window shared
    /// by 90 % of its requests. The other 10 % are margin for the delay
    /// between a request's slot and its arrival (scheduling, network), which
    /// varies per request: spaced exactly, a late one and an early one could
    /// put `requests + 1` in some window. At 100/10s: 111 ms apart, and a
    /// delay spread of up to 1.1 s still stays within the limit.
    pub fn spacing(&self) -> Duration {
        let usable = (self.requests * 9 / 10).max(1);
        self.per / usable
    }

    fn parse(raw: &str) -> Option<Self> {
        let (n, per) = raw.split_once('/')?;
        let requests: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let per = parse_duration(per).filter(|d| !d.is_zero())?;
        Some(Self { requests, per })
    }
}

impl HighLevelSettings {
    pub(super) fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let raw = get("HIGHLEVEL_RATE_LIMIT").unwrap_or_else(|| "100/10s".into());
        Ok(Self {
            api_base: get("HIGHLEVEL_API_BASE").unwrap_or_else(|| HIGHLEVEL_API_BASE.into()),
            client_id: get("HIGHLEVEL_CLIENT_ID"),
            client_secret: get("HIGHLEVEL_CLIENT_SECRET").map(SecretString::from),
            redirect_uri: get("HIGHLEVEL_REDIRECT_URI"),
            rate_limit: RateLimit::parse(&raw).ok_or(Error {
                name: "HIGHLEVEL_RATE_LIMIT",
                reason: format!("{raw:?} is not like 100/10s"),
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse_and_keep_a_tenth_as_margin() {
        let limit = RateLimit::parse("100/10s").unwrap();
        assert_eq!(limit.spacing(), Duration::from_secs(10) / 90);
        assert_eq!(RateLimit::parse("1/1s").unwrap().spacing(), Duration::from_secs(1));
        assert!(RateLimit::parse("0/10s").is_none());
        assert!(RateLimit::parse("100").is_none());
    }
}
