//! `x-signature: ts=<ts>,v1=<hex>` verification. The manifest is
//! `id:<data.id from the query>;request-id:<x-request-id>;ts:<ts>;`, leaving out
//! any pair whose value is absent; HMAC-SHA256 keyed with the secret.
//!
//! The signature covers `data.id`, `x-request-id` and `ts`, not the body, so
//! only those are trusted: a notification without `data.id` is refused, the
//! payment id is that `data.id`, the identity is `data.id` + `ts`, and a `ts`
//! older than the allowed age is refused (a captured signature cannot be
//! replayed later with another body).
//!
//! UNCONFIRMED points, handled both ways (providers.md): an alphanumeric
//! `data.id` is tried as received, then lowercased; `ts` goes into the manifest
//! verbatim whether it is seconds or milliseconds (13+ digits are read as ms for
//! the age check).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::providers::{hex_sig_matches, hmac_sha256_hex, Verified, VerifyError};

const HEADER: &str = "x-signature";

/// What ingest needs from a notification; the payment itself is fetched later.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Body `id` (number or string), if any: informative only, it is not signed.
    pub id: Option<String>,
    /// `action` (`payment.updated`) or else `type` (`payment`).
    pub kind: String,
    /// `data.id` from the query string (the resource id), as signed.
    pub data_id: String,
    /// `ts` of the signature, as signed.
    pub ts: String,
}

impl Notification {
    /// What makes a redelivery a duplicate: only signed parts.
    pub fn dedupe_key(&self) -> String {
        format!("{}:{}", self.data_id, self.ts)
    }
}

/// Oldest and newest signatures accepted, around now.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub now: DateTime<Utc>,
    pub max_age: chrono::Duration,
}

/// Future timestamps within this skew are clock drift, not forgery.
const MAX_FUTURE_SECS: i64 = 300;

/// Reads `ts` as seconds, or milliseconds when it has 13 digits or more.
fn ts_time(ts: &str) -> Option<DateTime<Utc>> {
    let n: i64 = ts.parse().ok()?;
    if ts.len() >= 13 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Builds the signed manifest; pairs with no value are dropped.
pub fn manifest(data_id: Option<&str>, request_id: Option<&str>, ts: &str) -> String {
    let mut m = String::new();
    if let Some(id) = data_id.filter(|s| !s.is_empty()) {
        m.push_str(&format!("id:{id};"));
    }
    if let Some(r) = request_id.filter(|s| !s.is_empty()) {
        m.push_str(&format!("request-id:{r};"));
    }
    m.push_str(&format!("ts:{ts};"));
    m
}

pub fn verify(
    signature: Option<&str>,
    request_id: Option<&str>,
    query_data_id: Option<&str>,
    body: &[u8],
    secret: &SecretString,
    window: Window,
) -> Result<Verified<Notification>, VerifyError> {
    let header = signature.ok_or(VerifyError::MissingHeader(HEADER))?;
    let mut ts = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k.trim() {
            "ts" => ts = Some(v.trim()),
            k if k.starts_with('v') => sigs.push(v.trim()),
            _ => {}
        }
    }
    let ts = ts.filter(|t| !t.is_empty()).ok_or(VerifyError::MalformedHeader(HEADER))?;
    if sigs.is_empty() {
        return Err(VerifyError::MalformedHeader(HEADER));
    }
    let mut candidates = vec![query_data_id.map(str::to_owned)];
    if let Some(id) = query_data_id {
        let lower = id.to_ascii_lowercase();
        if lower != id {
            candidates.push(Some(lower));
        }
    }
    let key = secret.expose_secret().as_bytes();
    let matched = candidates.iter().any(|id| {
        let expected = hmac_sha256_hex(key, &[manifest(id.as_deref(), request_id, ts).as_bytes()]);
        sigs.iter().any(|s| hex_sig_matches(&expected, s))
    });
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    let data_id = query_data_id
        .filter(|id| !id.is_empty())
        .ok_or(VerifyError::MissingSignedField("data.id query parameter"))?;
    let signed_at = ts_time(ts).ok_or(VerifyError::MalformedHeader(HEADER))?;
    if signed_at < window.now - window.max_age || signed_at > window.now + chrono::Duration::seconds(MAX_FUTURE_SECS) {
        return Err(VerifyError::StaleTimestamp);
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| VerifyError::InvalidJson(e.to_string()))?;
    let kind = parsed
        .action
        .clone()
        .or(parsed.kind.clone())
        .unwrap_or_else(|| "unknown".into());
    Ok(Verified::new(Notification {
        id: parsed.id.as_ref().and_then(id_text),
        kind,
        data_id: data_id.to_owned(),
        ts: ts.to_owned(),
    }))
}

/// Signs like Mercado Pago does (tests, README).
pub fn sign(secret: &str, data_id: Option<&str>, request_id: Option<&str>, ts: &str) -> String {
    format!("ts={ts},v1={}", hmac_sha256_hex(secret.as_bytes(), &[manifest(data_id, request_id, ts).as_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "mp-secret";
    const BODY: &[u8] = br#"{"id":12345,"live_mode":true,"type":"payment","action":"payment.updated","data":{"id":"999999999"}}"#;

    fn secret() -> SecretString {
        SecretString::from(SECRET)
    }

    /// The fixtures' timestamps are years old: these tests are not about age.
    fn any_age() -> Window {
        Window { now: Utc::now(), max_age: chrono::Duration::days(365 * 100) }
    }

    #[test]
    fn a_signature_older_than_the_window_or_from_the_future_is_refused() {
        let now = Utc::now();
        let window = Window { now, max_age: chrono::Duration::hours(1) };
        for (ts, ok) in [
            (now.timestamp().to_string(), true),
            ((now - chrono::Duration::minutes(59)).timestamp_millis().to_string(), true),
            ((now - chrono::Duration::minutes(61)).timestamp().to_string(), false),
            ((now + chrono::Duration::minutes(10)).timestamp_millis().to_string(), false),
        ] {
            let sig = sign(SECRET, Some("999999999"), Some("req-1"), &ts);
            let result = verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret(), window);
            assert_eq!(result.is_ok(), ok, "{ts}: {result:?}");
            if !ok {
                assert_eq!(result.unwrap_err(), VerifyError::StaleTimestamp);
            }
        }
    }

    #[test]
    fn a_notification_without_a_signed_data_id_is_refused_and_the_identity_is_signed_parts_only() {
        let sig = sign(SECRET, None, Some("req-1"), "1704908010");
        let err = verify(Some(&sig), Some("req-1"), None, BODY, &secret(), any_age()).unwrap_err();
        assert_eq!(err, VerifyError::MissingSignedField("data.id query parameter"));
        let sig = sign(SECRET, Some("999999999"), Some("req-1"), "1704908010");
        let n = verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).unwrap();
        assert_eq!(n.dedupe_key(), "999999999:1704908010");
    }

    #[test]
    fn a_valid_signature_is_accepted_and_the_body_read() {
        let sig = sign(SECRET, Some("999999999"), Some("req-1"), "1704908010");
        let n = verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).unwrap();
        assert_eq!(n.id.as_deref(), Some("12345"));
        assert_eq!(n.kind, "payment.updated");
        assert_eq!(n.data_id, "999999999");
    }

    #[test]
    fn the_manifest_drops_absent_pairs() {
        assert_eq!(manifest(Some("1"), Some("r"), "5"), "id:1;request-id:r;ts:5;");
        assert_eq!(manifest(None, Some("r"), "5"), "request-id:r;ts:5;");
        assert_eq!(manifest(None, None, "5"), "ts:5;");
        let sig = sign(SECRET, Some("1"), None, "1704908010");
        assert!(verify(Some(&sig), None, Some("1"), BODY, &secret(), any_age()).is_ok());
    }

    #[test]
    fn wrong_secret_tampered_request_id_and_truncated_signature_are_refused() {
        let sig = sign("other", Some("999999999"), Some("req-1"), "1704908010");
        assert_eq!(verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).unwrap_err(), VerifyError::BadSignature);
        let sig = sign(SECRET, Some("999999999"), Some("req-1"), "1704908010");
        assert_eq!(verify(Some(&sig), Some("req-2"), Some("999999999"), BODY, &secret(), any_age()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some(&sig[..sig.len() - 1]), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some("ts=1704908010,v1="), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some("v1=abc"), Some("req-1"), None, BODY, &secret(), any_age()).unwrap_err(), VerifyError::MalformedHeader(HEADER));
        assert_eq!(verify(None, None, None, BODY, &secret(), any_age()).unwrap_err(), VerifyError::MissingHeader(HEADER));
    }

    #[test]
    fn ts_in_seconds_or_milliseconds_is_used_verbatim() {
        for ts in ["1704908010", "1742505638683"] {
            let sig = sign(SECRET, Some("999999999"), Some("req-1"), ts);
            assert!(verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret(), any_age()).is_ok(), "{ts}");
        }
    }

    #[test]
    fn an_uppercase_alphanumeric_id_verifies_as_sent_or_lowercased() {
        let as_sent = sign(SECRET, Some("ORD01JQ4S4KY8"), Some("req-1"), "1742505638683");
        assert!(verify(Some(&as_sent), Some("req-1"), Some("ORD01JQ4S4KY8"), BODY, &secret(), any_age()).is_ok());
        let lowered = sign(SECRET, Some("ord01jq4s4ky8"), Some("req-1"), "1742505638683");
        assert!(verify(Some(&lowered), Some("req-1"), Some("ORD01JQ4S4KY8"), BODY, &secret(), any_age()).is_ok());
    }

    #[test]
    fn string_ids_in_the_body_are_read() {
        let body = br#"{"id":"abc-1","type":"order","data":{"id":"ORD1"}}"#;
        let sig = sign(SECRET, Some("ORD1"), Some("r"), "1");
        let n = verify(Some(&sig), Some("r"), Some("ORD1"), body, &secret(), any_age()).unwrap();
        assert_eq!((n.id.as_deref(), n.kind.as_str()), (Some("abc-1"), "order"));
    }

    proptest! {
        #[test]
        fn no_input_makes_the_verifier_panic(
            header in ".*", rid in proptest::option::of(".*"), id in proptest::option::of(".*"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = verify(Some(&header), rid.as_deref(), id.as_deref(), &body, &secret(), any_age());
        }
    }
}
