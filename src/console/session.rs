//! Console sign-in: the admin token or a named user's password (argon2), a
//! random session token in an `HttpOnly; SameSite=Strict` cookie (`Secure`
//! unless the console is reached on loopback), its sha256 in
//! `console_sessions`. Every POST must come from the console's own pages
//! (`Sec-Fetch-Site: same-origin`, else a matching `Origin`).

use argon2::{PasswordHash, PasswordVerifier};
use base64::Engine as _;
use poem::{http::header, Request};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::{config::ConsoleUser, http::AppState};

pub const COOKIE: &str = "relevo_session";
/// How long a session lasts after sign-in.
const LIFETIME_HOURS: i64 = 12;

/// Who is signed in.
#[derive(Clone, Debug)]
pub struct Session {
    pub actor: String,
}

/// Checks the credentials; returns who signed in.
pub fn authenticate(state: &AppState, users: &[ConsoleUser], user: &str, secret: &str) -> Option<String> {
    let user = user.trim();
    if user.is_empty() || user == ADMIN {
        let expected = state.admin_token.expose_secret();
        let same = expected.len() == secret.len() && bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), secret.as_bytes()));
        return same.then(|| ADMIN.to_owned());
    }
    let found = users.iter().find(|u| u.name == user)?;
    let hash = PasswordHash::new(&found.password_hash).ok()?;
    argon2::Argon2::default().verify_password(secret.as_bytes(), &hash).ok()?;
    Some(found.name.clone())
}

const ADMIN: &str = "admin";

/// What a session of `actor` is bound to: the current admin token, or the
/// user's current password hash. `None`: the actor no longer exists.
pub fn credential_of(state: &AppState, users: &[ConsoleUser], actor: &str) -> Option<Vec<u8>> {
    if actor == ADMIN {
        return Some(digest(state.admin_token.expose_secret()));
    }
    users.iter().find(|u| u.name == actor).map(|u| digest(&u.password_hash))
}

/// Starts a session bound to `credential`; returns the cookie value.
pub async fn start(pool: &PgPool, actor: &str, credential: &[u8]) -> sqlx::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query!(
        "insert into console_sessions (token_hash, actor, credential, expires_at)
         values ($1, $2, $3, now() + make_interval(hours => $4))",
        digest(&token),
        actor,
        credential,
        LIFETIME_HOURS as i32,
    )
    .execute(pool)
    .await?;
    // Expired sessions go when someone signs in; nothing else needs them.
    sqlx::query!("delete from console_sessions where expires_at < now()").execute(pool).await?;
    Ok(token)
}

pub async fn end(pool: &PgPool, token: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from console_sessions where token_hash = $1", digest(token)).execute(pool).await?;
    Ok(())
}

/// The session the request's cookie names, if it is live and its credential
/// has not changed since sign-in (a new admin token or password ends it).
pub async fn current(state: &AppState, users: &[ConsoleUser], req: &Request) -> sqlx::Result<Option<Session>> {
    let Some(token) = cookie(req) else {
        return Ok(None);
    };
    let row: Option<(String, Vec<u8>)> =
        sqlx::query_as("select actor, credential from console_sessions where token_hash = $1 and expires_at > now()")
            .bind(digest(&token))
            .fetch_optional(&state.pool)
            .await?;
    Ok(row.and_then(|(actor, credential)| {
        let still = credential_of(state, users, &actor).is_some_and(|current| bool::from(subtle::ConstantTimeEq::ct_eq(current.as_slice(), credential.as_slice())));
        still.then_some(Session { actor })
    }))
}

pub fn cookie(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for `token` (`None`: clear it).
pub fn set_cookie(req: &Request, token: Option<&str>) -> String {
    let secure = if on_loopback(req) { "" } else { "; Secure" };
    match token {
        Some(t) => format!("{COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME_HOURS * 3600),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether the browser reached the console on a loopback host (no TLS there).
fn on_loopback(req: &Request) -> bool {
    let host = host(req).unwrap_or_default();
    let name = host.rsplit_once(':').map_or(host.as_str(), |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host.as_str() });
    matches!(name, "localhost" | "127.0.0.1" | "[::1]") || name.starts_with("127.")
}

fn host(req: &Request) -> Option<String> {
    req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned)
}

/// Whether a POST comes from the console's own pages: the browser says
/// `same-origin`, or (older browsers) `Origin` names this host.
pub fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let (Some(origin), Some(host)) = (req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()), host(req)) else {
        return false;
    };
    origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) == Some(host.as_str())
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// An argon2id PHC hash of `password` for RELEVO_CONSOLE_USERS.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&{
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        b
    })?;
    Ok(argon2::Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.finish()
    }

    #[test]
    fn only_same_origin_posts_pass() {
        assert!(same_origin(&req(&[("sec-fetch-site", "same-origin"), ("host", "ops.example")])));
        assert!(!same_origin(&req(&[("sec-fetch-site", "cross-site"), ("origin", "https://ops.example"), ("host", "ops.example")])));
        assert!(same_origin(&req(&[("origin", "https://ops.example"), ("host", "ops.example")])));
        assert!(!same_origin(&req(&[("origin", "https://evil.example"), ("host", "ops.example")])));
        assert!(!same_origin(&req(&[("host", "ops.example")])), "no Origin, no Sec-Fetch-Site");
    }

    #[test]
    fn cookies_are_secure_except_on_loopback() {
        assert!(!set_cookie(&req(&[("host", "127.0.0.1:8080")]), Some("t")).contains("Secure"));
        assert!(!set_cookie(&req(&[("host", "localhost:8080")]), Some("t")).contains("Secure"));
        let remote = set_cookie(&req(&[("host", "ops.example")]), Some("t"));
        assert!(remote.contains("; Secure") && remote.contains("HttpOnly") && remote.contains("SameSite=Strict"));
    }

    #[test]
    fn hashed_passwords_verify() {
        let hash = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon2::Argon2::default().verify_password(b"wrong", &parsed).is_err());
    }
}
