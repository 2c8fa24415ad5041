//! What every request passes through before routing: a log line without the
//! query string (it can carry `hub.verify_token`), refusal of NUL in the path
//! or query (Postgres refuses it in text: a 400 here, not a 500 later), and a
//! per-address brake on failed bearer attempts, and a size limit on `/api/`
//! bodies (webhook receivers apply `RELEVO_MAX_BODY_BYTES` themselves).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use poem::{http::StatusCode, Endpoint, IntoResponse, Middleware, Request, Response};

use super::error::body;

/// Failed bearer attempts an address may make within `WINDOW` before it is
/// refused for `WINDOW` (429): slow enough to make guessing useless, short
/// enough that a typo by ops is forgotten quickly.
const MAX_FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked addresses, expired entries are dropped.
const MAX_TRACKED: usize = 10_000;
/// Largest JSON body `/api/` accepts (a product, an order, an outbound event).
pub const MAX_API_BODY: usize = 1024 * 1024;

#[derive(Clone, Default)]
pub struct Guard {
    failures: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Failures {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= WINDOW
    }
}

impl Guard {
    /// Seconds until `ip` may try again, if it is refused now.
    fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let failures = self.failures.lock().expect("guard lock");
        let f = failures.get(&ip)?;
        (f.count >= MAX_FAILURES && !f.expired(now)).then(|| (WINDOW - now.duration_since(f.since)).as_secs().max(1))
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().expect("guard lock");
        if failures.len() > MAX_TRACKED {
            failures.retain(|_, f| !f.expired(now));
        }
        let f = failures.entry(ip).or_insert(Failures { count: 0, since: now });
        if f.expired(now) {
            *f = Failures { count: 0, since: now };
        }
        f.count += 1;
    }
}

impl<E: Endpoint> Middleware<E> for Guard {
    type Output = GuardEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        GuardEndpoint { inner, guard: self.clone() }
    }
}

pub struct GuardEndpoint<E> {
    inner: E,
    guard: Guard,
}

impl<E: Endpoint> Endpoint for GuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let ip = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let api = path.starts_with("/api/");
        let answer = if has_nul(&req) {
            error_response(StatusCode::BAD_REQUEST, "invalid_request", "the path or query string contains a NUL character")
        } else if let Some(retry_after) = ip.filter(|_| api).and_then(|ip| self.guard.blocked_for(ip, started)) {
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_attempts",
                "too many requests with a wrong bearer token from this address; retry later",
            );
            resp.headers_mut().insert("retry-after", retry_after.into());
            resp
        } else if api && !limit_body(&mut req, MAX_API_BODY).await {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("the body exceeds {MAX_API_BODY} bytes"),
            )
        } else {
            match self.inner.call(req).await {
                Ok(resp) => resp.into_response(),
                Err(e) => e.into_response(),
            }
        };
        if api && answer.status() == StatusCode::UNAUTHORIZED {
            if let Some(ip) = ip {
                self.guard.record_failure(ip, started);
            }
        }
        tracing::info!(
            http.method = %method,
            http.path = %path,
            http.status = answer.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        Ok(answer)
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    body(code, message).with_status(status).into_response()
}

/// Whether the body fits in `max` bytes. A declared length is trusted (the
/// server never reads past it); a body without one (chunked, HTTP/2) is read
/// here up to the limit and handed on with its length.
async fn limit_body(req: &mut Request, max: usize) -> bool {
    use poem::http::header;
    if let Some(length) = req.headers().get(header::CONTENT_LENGTH) {
        return length.to_str().ok().and_then(|l| l.parse::<usize>().ok()).is_some_and(|l| l <= max);
    }
    if !matches!(*req.method(), poem::http::Method::POST | poem::http::Method::PUT | poem::http::Method::PATCH) {
        return true;
    }
    match req.take_body().into_bytes_limit(max).await {
        Ok(bytes) => {
            req.headers_mut().remove(header::TRANSFER_ENCODING);
            req.headers_mut().insert(header::CONTENT_LENGTH, bytes.len().into());
            req.set_body(bytes);
            true
        }
        Err(_) => false,
    }
}

/// NUL, raw or percent-encoded, anywhere in the path or query.
fn has_nul(req: &Request) -> bool {
    let uri = req.uri();
    let raw = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or_else(|| uri.path());
    raw.contains('\0') || raw.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_failures_and_forgiven_after_the_window() {
        let guard = Guard::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            guard.record_failure(ip, t0);
        }
        assert_eq!(guard.blocked_for(ip, t0), None);
        guard.record_failure(ip, t0);
        assert_eq!(guard.blocked_for(ip, t0), Some(60));
        assert_eq!(guard.blocked_for(other, t0), None);
        assert_eq!(guard.blocked_for(ip, t0 + WINDOW), None);
    }
}
