//! One signed HTTP request to a subscriber and what its answer means. Requests
//! follow Standard Webhooks (`webhook-id` is the event id, so it is stable
//! across retries; one `v1,` signature per active key so receivers can rotate),
//! plus `X-Signature` with the newest key for simple receivers. Redirects are
//! not followed and every address is vetted by the SSRF guard: at DNS
//! resolution for host names, here for IP literals. Only the first 4 KiB of an
//! answer are kept.

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::Utc;
use uuid::Uuid;

use super::{attempts::AttemptErrorKind, signing, ssrf, OutboundSettings};

const MAX_RESPONSE_BYTES: usize = 4096;
/// A receiver cannot park a delivery for longer than this with `Retry-After`.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// How one attempt ended.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    /// A 2xx answer, with its status.
    Delivered(u16),
    Failed(Failure),
}

#[derive(Debug, PartialEq)]
pub(super) struct Failure {
    /// The answer's status, when the receiver answered.
    pub status: Option<u16>,
    pub kind: AttemptErrorKind,
    /// The receiver's `Retry-After` (429 and 503 only), capped.
    pub retry_after: Option<Duration>,
    /// 410: the endpoint is gone for good.
    pub gone: bool,
}

impl Failure {
    /// A failure before any answer (no status).
    fn unanswered(kind: AttemptErrorKind) -> Self {
        Self { status: None, kind, retry_after: None, gone: false }
    }

    /// The delivery's `last_error`.
    pub fn message(&self) -> String {
        match self.status {
            Some(s) => format!("HTTP {s}"),
            None => self.kind.as_str().to_owned(),
        }
    }
}

impl Outcome {
    /// The HTTP status, when the receiver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered(s) => Some(*s),
            Self::Failed(f) => f.status,
        }
    }
}

/// The HTTP client every delivery of a node shares.
pub(super) struct Sender {
    client: reqwest::Client,
    allow_nets: ssrf::AllowNets,
}

impl Sender {
    pub fn new(settings: &OutboundSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            // reqwest would otherwise honour HTTP(S)_PROXY / ALL_PROXY, and then
            // only the proxy's address meets the resolver below: the guard
            // would vet the proxy, never the subscriber.
            .no_proxy()
            .dns_resolver(Arc::new(ssrf::GuardedResolver { allow: Arc::new(settings.allow_nets.clone()) }))
            .user_agent(concat!("Relevo-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client builds");
        Self { client, allow_nets: settings.allow_nets.clone() }
    }

    /// Sends event `id` of type `kind` signed with `keys` (newest first); the
    /// outcome and, when the receiver answered, the start of its body.
    pub async fn send(&self, url: &str, keys: &[Vec<u8>], id: Uuid, kind: &str, body: &[u8]) -> (Outcome, Option<String>) {
        // IP-literal hosts never reach the resolver: vet them here.
        if let Some(ip) = ip_literal(url) {
            if ssrf::vet(ip, &self.allow_nets).is_err() {
                return (Outcome::Failed(Failure::unanswered(AttemptErrorKind::BlockedAddress)), None);
            }
        }
        let Some(headers) = signed_headers(keys, id, Utc::now().timestamp(), kind, body) else {
            return (Outcome::Failed(Failure::unanswered(AttemptErrorKind::NoSigningKey)), None);
        };
        let request = headers
            .into_iter()
            .fold(self.client.post(url), |r, (name, value)| r.header(name, value))
            .body(body.to_vec());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return (Outcome::Failed(Failure::unanswered(error_kind(&e))), None),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = read_capped(response).await;
        (classify(status, retry_after), Some(body))
    }
}

/// The host of `url` when it is an IP address rather than a name.
fn ip_literal(url: &str) -> Option<IpAddr> {
    match url::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// The request's headers at `timestamp`, in sending order; `None` without a
/// key to sign with.
fn signed_headers(keys: &[Vec<u8>], id: Uuid, timestamp: i64, kind: &str, body: &[u8]) -> Option<Vec<(&'static str, String)>> {
    let newest = keys.first()?;
    let webhook_id = id.to_string();
    let signature = signing::webhook_signature(keys, &webhook_id, timestamp, body);
    Some(vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", webhook_id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
        ("X-Signature", signing::x_signature(newest, body)),
        ("X-Event", kind.to_owned()),
    ])
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured), capped.
fn parse_retry_after(raw: &str) -> Option<Duration> {
    raw.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(RETRY_AFTER_CAP))
}

/// What an answer with `status` means for the delivery.
fn classify(status: u16, retry_after: Option<Duration>) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered(status);
    }
    Outcome::Failed(Failure {
        status: Some(status),
        kind: AttemptErrorKind::HttpStatus,
        // Only these two say "later" rather than "no".
        retry_after: if status == 429 || status == 503 { retry_after } else { None },
        gone: status == 410,
    })
}

fn error_kind(e: &reqwest::Error) -> AttemptErrorKind {
    if is_blocked(e) {
        AttemptErrorKind::BlockedAddress
    } else if e.is_timeout() {
        AttemptErrorKind::Timeout
    } else if e.is_connect() {
        AttemptErrorKind::ConnectError
    } else {
        AttemptErrorKind::RequestError
    }
}

/// Whether the SSRF guard refused the resolved address (somewhere in the chain).
fn is_blocked(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<ssrf::Refused>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn read_capped(mut response: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        buf.extend_from_slice(&chunk);
        if buf.len() >= MAX_RESPONSE_BYTES {
            buf.truncate(MAX_RESPONSE_BYTES);
            break;
        }
    }
    storable_text(&buf)
}

/// `bytes` as text any Postgres `text` column accepts: invalid UTF-8 and NUL
/// (valid UTF-8, yet refused by Postgres) both become U+FFFD. A subscriber
/// chooses these bytes; one NUL must not keep its attempt from being logged.
fn storable_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literal_hosts_are_found_and_names_are_left_to_the_resolver() {
        assert_eq!(ip_literal("https://10.0.0.8/hook"), Some("10.0.0.8".parse().unwrap()));
        assert_eq!(ip_literal("https://[::1]:8443/hook"), Some("::1".parse().unwrap()));
        assert_eq!(ip_literal("https://example.com/hook"), None);
        assert_eq!(ip_literal("not a url"), None);
    }

    #[test]
    fn answer_bodies_become_text_postgres_stores_with_nul_and_bad_utf8_replaced() {
        assert_eq!(storable_text(b"ok\0\0done"), "ok\u{FFFD}\u{FFFD}done");
        assert_eq!(storable_text(b"caf\xc3\xa9 \xff"), "caf\u{e9} \u{FFFD}");
        assert!(!storable_text(&[0; 16]).contains('\0'));
    }

    /// Set only in the child process of `proxy_variables_are_ignored`.
    const PROXY_PROBE: &str = "RELEVO_TEST_PROXY_PROBE";

    // Proxy variables are process-global and reqwest reads them itself, so the
    // client is built in a child process (this test binary, running only
    // `proxy_probe`) whose environment points every proxy variable at a
    // listener that counts connections. Other tests never see the variables.
    #[test]
    fn proxy_variables_are_ignored() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        // Arrange
        let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        proxy.set_nonblocking(true).unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let (connections, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let counter = {
            let (connections, stop) = (connections.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match proxy.accept() {
                        // Dropped at once: a proxy that never forwards.
                        Ok(_) => {
                            connections.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                        Err(e) => panic!("proxy listener: {e}"),
                    }
                }
            })
        };
        let probe = format!("{}::proxy_probe", module_path!().split_once("::").unwrap().1);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", &probe, "--ignored", "--test-threads=1", "--nocapture"]).env(PROXY_PROBE, "1");
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            child.env(var, &proxy_url);
        }
        for var in ["NO_PROXY", "no_proxy", "REQUEST_METHOD"] {
            child.env_remove(var);
        }

        // Act
        let out = child.output().unwrap();
        stop.store(true, Ordering::SeqCst);
        counter.join().unwrap();

        // Assert
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(connections.load(Ordering::SeqCst), 0, "the delivery went through the proxy: {log}");
        assert!(out.status.success(), "{log}");
        // Not vacuous: the probe ran (rather than being filtered out).
        assert!(log.contains("1 passed"), "{log}");
    }

    /// The child half of `proxy_variables_are_ignored`: a delivery to a local
    /// subscriber with every proxy variable set reaches the subscriber directly.
    #[tokio::test]
    #[ignore = "run by proxy_variables_are_ignored in a child process with proxy variables set"]
    async fn proxy_probe() {
        if std::env::var_os(PROXY_PROBE).is_none() {
            return;
        }
        let subscriber = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .expect(1)
            .mount(&subscriber)
            .await;
        let settings = OutboundSettings {
            allow_nets: ssrf::AllowNets::parse("127.0.0.0/8").unwrap(),
            request_timeout: Duration::from_secs(5),
            ..OutboundSettings::default()
        };

        let (outcome, _) = Sender::new(&settings)
            .send(&format!("{}/hook", subscriber.uri()), &[vec![7; 32]], Uuid::now_v7(), "order.shipped", b"{}")
            .await;

        assert_eq!(outcome, Outcome::Delivered(200));
        subscriber.verify().await;
    }

    #[test]
    fn headers_carry_one_signature_per_key_and_x_signature_with_the_newest() {
        let (newest, older) = (vec![1u8; 32], vec![2u8; 32]);
        let id = Uuid::now_v7();
        let headers = signed_headers(&[newest.clone(), older.clone()], id, 1_700_000_000, "order.shipped", b"{}").unwrap();
        let names: Vec<_> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["content-type", "webhook-id", "webhook-timestamp", "webhook-signature", "X-Signature", "X-Event"]
        );
        let get = |n: &str| headers.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert_eq!(get("webhook-id"), id.to_string());
        assert_eq!(get("webhook-timestamp"), "1700000000");
        let sig = get("webhook-signature");
        assert_eq!(sig, signing::webhook_signature(&[newest.clone(), older], &id.to_string(), 1_700_000_000, b"{}"));
        assert_eq!(sig.split(' ').count(), 2);
        assert_eq!(get("X-Signature"), signing::x_signature(&newest, b"{}"));
        assert_eq!(get("X-Event"), "order.shipped");
    }

    #[test]
    fn without_a_key_nothing_is_signed() {
        assert_eq!(signed_headers(&[], Uuid::now_v7(), 0, "t", b""), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("86400"), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn any_2xx_is_delivered() {
        assert_eq!(classify(200, None), Outcome::Delivered(200));
        assert_eq!(classify(204, Some(Duration::from_secs(1))), Outcome::Delivered(204));
    }

    #[test]
    fn retry_after_counts_only_for_429_and_503() {
        let later = Some(Duration::from_secs(30));
        for status in [429, 503] {
            let Outcome::Failed(f) = classify(status, later) else { panic!("{status} is a failure") };
            assert_eq!((f.retry_after, f.gone), (later, false));
        }
        let Outcome::Failed(f) = classify(500, later) else { panic!("500 is a failure") };
        assert_eq!((f.status, f.kind, f.retry_after, f.gone), (Some(500), AttemptErrorKind::HttpStatus, None, false));
    }

    #[test]
    fn a_410_means_gone_and_redirects_are_failures() {
        let Outcome::Failed(f) = classify(410, None) else { panic!("410 is a failure") };
        assert!(f.gone);
        let Outcome::Failed(f) = classify(301, None) else { panic!("301 is a failure") };
        assert!(!f.gone);
    }

    #[test]
    fn the_last_error_names_the_status_or_else_the_kind() {
        let Outcome::Failed(f) = classify(500, None) else { panic!("500 is a failure") };
        assert_eq!(f.message(), "HTTP 500");
        assert_eq!(Failure::unanswered(AttemptErrorKind::Timeout).message(), "timeout");
    }
}
