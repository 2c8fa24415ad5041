//! Typed settings, read once from the environment at start-up.
//!
//! Secrets are `secrecy` types so they cannot be printed by accident.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

mod highlevel;
mod payment_links;
mod whatsapp;

pub use self::{
    highlevel::{HighLevelSettings, RateLimit, HIGHLEVEL_API_BASE},
    payment_links::{LinkProvider, PaymentLinkSettings, STRIPE_API_BASE},
    whatsapp::{WhatsAppSettings, WHATSAPP_API_BASE, WHATSAPP_API_VERSION},
};

/// Everything the service needs to start, built from environment variables.
#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`; `None` starts the private cluster in `data_dir/pg`.
    pub database_url: Option<SecretString>,
    /// `RELEVO_DATA_DIR` (default `./.relevo`).
    pub data_dir: PathBuf,
    /// `RELEVO_ADDR` (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// `RELEVO_ADMIN_TOKEN`; generated and stored in `data_dir/admin-token` when unset.
    pub admin_token: Option<SecretString>,
    /// `RELEVO_SECRET_KEY` (32 bytes, base64): seals provider tokens and signing
    /// keys at rest; generated into `data_dir/secret-key` when unset.
    pub secret_key: Option<SecretString>,
    /// `RELEVO_CONSOLE_USERS`: `name:<argon2 PHC hash>` entries separated by `;`
    /// (`relevo hash-password` makes a hash). Anyone with the admin token may
    /// also sign in to the console.
    pub console_users: Vec<ConsoleUser>,
    /// `RELEVO_PG_BIN`: directory holding `initdb`, `pg_ctl`, `postgres`.
    pub pg_bin: Option<PathBuf>,
    /// `RELEVO_DB_POOL_SIZE` (default 40): connections this process may open.
    pub db_pool_size: u32,
    /// Engine knobs.
    pub engine: EngineSettings,
    /// Inbound webhook receivers.
    pub webhooks: WebhookSettings,
    /// `RELEVO_SHOP_TIMEZONE` (default America/Mexico_City): times in customer e-mails.
    pub shop_timezone: chrono_tz::Tz,
    /// `SMTP_URL` (e.g. `smtps://user:pass@smtp.example.com`); with `EMAIL_FROM`,
    /// e-mails are sent; without, they stay in the outbox as `logged`.
    pub smtp_url: Option<SecretString>,
    /// `EMAIL_FROM`, e.g. `Tienda <ventas@example.mx>`.
    pub email_from: Option<String>,
    /// Outbound webhook delivery.
    pub outbound: OutboundSettings,
    /// `MERCADOPAGO_ACCESS_TOKEN`: reads payments (`GET /v1/payments/{id}`).
    pub mercadopago_access_token: Option<SecretString>,
    /// `MERCADOPAGO_API_BASE` (default https://api.mercadopago.com).
    pub mercadopago_api_base: String,
    /// WhatsApp Cloud API sends (replies, mark-as-read).
    pub whatsapp: WhatsAppSettings,
    /// Payment links sent to WhatsApp shoppers who confirm a quote.
    pub payment_links: PaymentLinkSettings,
    /// HighLevel appointment sync.
    pub highlevel: HighLevelSettings,
    /// `RELEVO_RUN_WORKERS` (default true): `false` makes an API-only node
    /// (receives webhooks, serves ops) while other nodes execute runs.
    pub run_workers: bool,
    /// `RELEVO_ENABLE_TEST_WORKFLOWS=1` registers the self-test workflows used by
    /// the crash tests and the engine benchmark. Off in production.
    pub enable_test_workflows: bool,
}

/// Secrets and limits of the webhook receivers. A provider whose secret is
/// unset answers 503 `provider_not_configured`; the others keep working.
#[derive(Clone)]
pub struct WebhookSettings {
    /// `STRIPE_WEBHOOK_SECRET`: comma-separated `whsec_…` (several during rotation).
    pub stripe_secrets: Vec<SecretString>,
    /// `MERCADOPAGO_WEBHOOK_SECRET`.
    pub mercadopago_secret: Option<SecretString>,
    /// `MERCADOPAGO_MAX_AGE` (default `1h`; `30m`, `2h`, …): older signatures are
    /// refused, so a captured one cannot be replayed. Retries come 15 min apart.
    pub mercadopago_max_age: chrono::Duration,
    /// `WHATSAPP_VERIFY_TOKEN`: echoed subscription handshake.
    pub whatsapp_verify_token: Option<SecretString>,
    /// `WHATSAPP_APP_SECRET`: `X-Hub-Signature-256` key.
    pub whatsapp_app_secret: Option<SecretString>,
    /// `HIGHLEVEL_WEBHOOK_PUBLIC_KEY` (Ed25519 PEM; `\n` escapes accepted).
    /// Unset: HighLevel's published key. Parsed at start-up, which fails on a bad key.
    pub highlevel_public_key_pem: Option<String>,
    /// `HIGHLEVEL_WEBHOOK_RSA_PUBLIC_KEY` (legacy RSA PEM). Unset: the published key.
    pub highlevel_rsa_public_key_pem: Option<String>,
    /// `HIGHLEVEL_LOCATION_IDS`: comma-separated location (or company) ids whose
    /// events are acted on; other accounts' events are stored as ignored.
    /// Unset: events of every connected location are acted on.
    pub highlevel_location_ids: Vec<String>,
    /// `RELEVO_MAX_BODY_BYTES` (default 1 MiB): larger bodies get 413.
    pub max_body_bytes: usize,
    /// `RELEVO_INGEST_WRITERS` (default 8): concurrent batch commits (overlapping
    /// fsyncs; 8 measured best on 2 cores, see `just bench-ingest`).
    pub ingest_writers: usize,
}

/// Engine tuning; code defaults, each overridable from the environment.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// `RELEVO_WORKER_CONCURRENCY` (default 32): runs executed at once per workflow.
    pub concurrency: usize,
    /// `RELEVO_WORKER_BATCH` (default 32): jobs fetched per round trip (≥ concurrency).
    pub batch_size: usize,
    /// `RELEVO_LEASE_SECS` (default 30): how long a run stays claimed without a
    /// checkpoint or lease renewal before another worker may take it over.
    pub lease: Duration,
    /// `RELEVO_HEARTBEAT_SECS` (default 2): apalis worker heartbeat.
    pub heartbeat: Duration,
    /// `RELEVO_MISSED_HEARTBEATS` (default 5): heartbeats missed before apalis
    /// re-enqueues a dead worker's jobs.
    pub missed_heartbeats: usize,
    /// `RELEVO_POLL_MS` (default 1000): poll interval that backs up LISTEN/NOTIFY.
    pub poll_interval: Duration,
    /// `RELEVO_SWEEP_SECS` (default 60): how often a worker node looks for runs
    /// overdue by more than this whose queue job is gone (e.g. apalis gave a
    /// job up during a long database outage) and wakes them again.
    pub sweep: Duration,
    /// `RELEVO_RETAIN_SUCCEEDED_HOURS` / `_FAILED_HOURS` / `_EVENTS_HOURS`.
    pub retention: Retention,
}

/// How long finished runs are kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// `RELEVO_RETAIN_SUCCEEDED_HOURS` (default 168 = 7 days); also acked queue jobs.
    pub succeeded: Duration,
    /// `RELEVO_RETAIN_FAILED_HOURS` (default 720 = 30 days); failed and cancelled runs.
    pub failed: Duration,
    /// `RELEVO_RETAIN_EVENTS_HOURS` (default 2160 = 90 days): received webhooks,
    /// kept for payment audit after their runs are gone.
    pub events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            succeeded: Duration::from_secs(7 * 24 * 3600),
            failed: Duration::from_secs(30 * 24 * 3600),
            events: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            concurrency: 32,
            batch_size: 32,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            missed_heartbeats: 5,
            poll_interval: Duration::from_millis(1000),
            sweep: Duration::from_secs(60),
            retention: Retention::default(),
        }
    }
}

/// A setting that is present but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct Error {
    name: &'static str,
    reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply values without
    /// touching the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let addr = get("RELEVO_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        Ok(Self {
            database_url: get("DATABASE_URL").map(SecretString::from),
            data_dir: PathBuf::from(get("RELEVO_DATA_DIR").unwrap_or_else(|| "./.relevo".into())),
            addr: addr.parse().map_err(|e| Error {
                name: "RELEVO_ADDR",
                reason: format!("{e}"),
            })?,
            admin_token: get("RELEVO_ADMIN_TOKEN").map(SecretString::from),
            secret_key: get("RELEVO_SECRET_KEY").map(SecretString::from),
            console_users: ConsoleUser::parse_list(get("RELEVO_CONSOLE_USERS").as_deref().unwrap_or(""))?,
            pg_bin: get("RELEVO_PG_BIN").map(PathBuf::from),
            db_pool_size: parse(&get, "RELEVO_DB_POOL_SIZE", 40u32)?,
            engine: EngineSettings::from_lookup(&get)?,
            webhooks: WebhookSettings::from_lookup(&get)?,
            shop_timezone: get("RELEVO_SHOP_TIMEZONE")
                .unwrap_or_else(|| "America/Mexico_City".into())
                .parse()
                .map_err(|e| Error {
                    name: "RELEVO_SHOP_TIMEZONE",
                    reason: format!("{e}"),
                })?,
            smtp_url: get("SMTP_URL").map(SecretString::from),
            email_from: get("EMAIL_FROM"),
            outbound: OutboundSettings::from_lookup(&get)
                .map_err(|(name, reason)| Error { name, reason })?,
            mercadopago_access_token: get("MERCADOPAGO_ACCESS_TOKEN").map(SecretString::from),
            mercadopago_api_base: get("MERCADOPAGO_API_BASE").unwrap_or_else(|| MERCADOPAGO_API_BASE.into()),
            whatsapp: WhatsAppSettings::from_lookup(&get)?,
            payment_links: PaymentLinkSettings::from_lookup(&get, &addr)?,
            highlevel: HighLevelSettings::from_lookup(&get)?,
            run_workers: !matches!(get("RELEVO_RUN_WORKERS").as_deref(), Some("0" | "false" | "no")),
            enable_test_workflows: matches!(
                get("RELEVO_ENABLE_TEST_WORKFLOWS").as_deref(),
                Some("1" | "true" | "yes")
            ),
        })
    }
}

/// A named console user and their argon2 password hash (PHC string).
#[derive(Clone)]
pub struct ConsoleUser {
    pub name: String,
    pub password_hash: String,
}

impl std::fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleUser").field("name", &self.name).finish_non_exhaustive()
    }
}

impl ConsoleUser {
    fn parse_list(raw: &str) -> Result<Vec<Self>, Error> {
        let bad = |reason: String| Error { name: "RELEVO_CONSOLE_USERS", reason };
        raw.split(';')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let (name, hash) = entry.split_once(':').ok_or_else(|| bad("each entry is name:<argon2 hash>".into()))?;
                argon2::PasswordHash::new(hash.trim())
                    .map_err(|e| bad(format!("the hash of {:?} is not an argon2 PHC string: {e}", name.trim())))?;
                Ok(Self { name: name.trim().to_owned(), password_hash: hash.trim().to_owned() })
            })
            .collect()
    }
}

/// Mercado Pago's production API.
pub const MERCADOPAGO_API_BASE: &str = "https://api.mercadopago.com";

impl EngineSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let defaults = Self::default();
        let engine = Self {
            concurrency: parse(get, "RELEVO_WORKER_CONCURRENCY", defaults.concurrency)?,
            batch_size: parse(get, "RELEVO_WORKER_BATCH", defaults.batch_size)?,
            lease: Duration::from_secs(parse(get, "RELEVO_LEASE_SECS", 30u64)?),
            heartbeat: Duration::from_secs(parse(get, "RELEVO_HEARTBEAT_SECS", 2u64)?),
            missed_heartbeats: parse(get, "RELEVO_MISSED_HEARTBEATS", defaults.missed_heartbeats)?,
            poll_interval: Duration::from_millis(parse(get, "RELEVO_POLL_MS", 1000u64)?),
            sweep: Duration::from_secs(parse(get, "RELEVO_SWEEP_SECS", 60u64)?.max(1)),
            retention: Retention {
                succeeded: Duration::from_secs(3600 * parse(get, "RELEVO_RETAIN_SUCCEEDED_HOURS", 168u64)?),
                failed: Duration::from_secs(3600 * parse(get, "RELEVO_RETAIN_FAILED_HOURS", 720u64)?),
                events: Duration::from_secs(3600 * parse(get, "RELEVO_RETAIN_EVENTS_HOURS", 2160u64)?),
            },
        };
        if engine.concurrency == 0 || engine.batch_size < engine.concurrency {
            return Err(Error {
                name: "RELEVO_WORKER_BATCH",
                reason: "must be at least RELEVO_WORKER_CONCURRENCY (and both > 0)".into(),
            });
        }
        Ok(engine)
    }
}

impl WebhookSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let pem = |name: &str| get(name).map(|v| v.replace("\\n", "\n"));
        Ok(Self {
            stripe_secrets: list(get("STRIPE_WEBHOOK_SECRET")).into_iter().map(SecretString::from).collect(),
            mercadopago_secret: get("MERCADOPAGO_WEBHOOK_SECRET").map(SecretString::from),
            mercadopago_max_age: match get("MERCADOPAGO_MAX_AGE") {
                None => chrono::Duration::hours(1),
                Some(raw) => parse_duration(&raw)
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .ok_or(Error {
                        name: "MERCADOPAGO_MAX_AGE",
                        reason: format!("{raw:?} is not a duration like 30m or 1h"),
                    })?,
            },
            whatsapp_verify_token: get("WHATSAPP_VERIFY_TOKEN").map(SecretString::from),
            whatsapp_app_secret: get("WHATSAPP_APP_SECRET").map(SecretString::from),
            highlevel_public_key_pem: pem("HIGHLEVEL_WEBHOOK_PUBLIC_KEY"),
            highlevel_rsa_public_key_pem: pem("HIGHLEVEL_WEBHOOK_RSA_PUBLIC_KEY"),
            highlevel_location_ids: list(get("HIGHLEVEL_LOCATION_IDS")),
            max_body_bytes: parse(get, "RELEVO_MAX_BODY_BYTES", 1024 * 1024usize)?,
            ingest_writers: parse(get, "RELEVO_INGEST_WRITERS", 8usize)?,
        })
    }
}

/// A comma-separated list; blanks around items and empty items are dropped.
fn list(raw: Option<String>) -> Vec<String> {
    raw.map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| Error {
            name,
            reason: e.to_string(),
        }),
    }
}

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

/// Outbound webhook delivery settings.
#[derive(Clone, Debug)]
pub struct OutboundSettings {
    /// `RELEVO_OUTBOUND_RETRY_SCHEDULE` (default `5s,5m,30m,2h,5h,10h,10h`): the wait
    /// after each failed attempt, ±20 % jitter; when exhausted the delivery fails.
    pub retry_schedule: Vec<Duration>,
    /// `RELEVO_OUTBOUND_DISABLE_AFTER` (default `5d`): a subscription failing with
    /// no success for this long is disabled.
    pub disable_after: Duration,
    /// `RELEVO_OUTBOUND_ALLOW_NETS`: CIDRs exempt from the SSRF guard.
    pub allow_nets: AllowNets,
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
            allow_nets: AllowNets::default(),
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
            s.allow_nets = AllowNets::parse(&raw).map_err(|e| ("RELEVO_OUTBOUND_ALLOW_NETS", e))?;
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

/// Networks exempt from the guard (e.g. `127.0.0.0/8` for local testing).
#[derive(Clone, Debug, Default)]
pub struct AllowNets(Vec<ipnet::IpNet>);

impl AllowNets {
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR network"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./.relevo"));
        assert!(s.database_url.is_none());
        assert!(!s.enable_test_workflows);
    }

    #[test]
    fn a_malformed_number_is_refused_with_its_name() {
        let err = Settings::from_lookup(|n| (n == "RELEVO_LEASE_SECS").then(|| "soon".into()))
            .err()
            .unwrap();
        assert!(err.to_string().contains("RELEVO_LEASE_SECS"));
    }

    #[test]
    fn batch_smaller_than_concurrency_is_refused() {
        let err = Settings::from_lookup(|n| match n {
            "RELEVO_WORKER_CONCURRENCY" => Some("64".into()),
            "RELEVO_WORKER_BATCH" => Some("8".into()),
            _ => None,
        });
        assert!(err.is_err());
    }
}
