//! `x-signature: ts=<ts>,v1=<hex>` verification. The manifest is
//! `id:<data.id from the query>;request-id:<x-request-id>;ts:<ts>;`, leaving out
//! any pair whose value is absent; HMAC-SHA256 keyed with the secret.
//!
//! UNCONFIRMED points, handled both ways (providers.md): an alphanumeric
//! `data.id` is tried as received, then lowercased; `ts` goes into the manifest
//! verbatim whether it is seconds or milliseconds (no age check: the docs make
//! it optional and retries 15 minutes apart may reuse the signature).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::providers::{hex_sig_matches, hmac_sha256_hex, Verified, VerifyError};

const HEADER: &str = "x-signature";

/// What ingest needs from a notification; the payment itself is fetched later.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Body `id` (number or string), if any.
    pub id: Option<String>,
    /// `action` (`payment.updated`) or else `type` (`payment`).
    pub kind: String,
    /// `data.id` from the query string (the resource id).
    pub data_id: Option<String>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    id: Option<Value>,
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
    let parsed: Body = serde_json::from_slice(body).map_err(|e| VerifyError::InvalidJson(e.to_string()))?;
    let kind = parsed
        .action
        .clone()
        .or(parsed.kind.clone())
        .unwrap_or_else(|| "unknown".into());
    let data_id = query_data_id
        .map(str::to_owned)
        .or_else(|| parsed.data.as_ref().and_then(|d| d.id.as_ref()).and_then(id_text));
    Ok(Verified::new(Notification {
        id: parsed.id.as_ref().and_then(id_text),
        kind,
        data_id,
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

    #[test]
    fn a_valid_signature_is_accepted_and_the_body_read() {
        let sig = sign(SECRET, Some("999999999"), Some("req-1"), "1704908010");
        let n = verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret()).unwrap();
        assert_eq!(n.id.as_deref(), Some("12345"));
        assert_eq!(n.kind, "payment.updated");
        assert_eq!(n.data_id.as_deref(), Some("999999999"));
    }

    #[test]
    fn the_manifest_drops_absent_pairs() {
        assert_eq!(manifest(Some("1"), Some("r"), "5"), "id:1;request-id:r;ts:5;");
        assert_eq!(manifest(None, Some("r"), "5"), "request-id:r;ts:5;");
        assert_eq!(manifest(None, None, "5"), "ts:5;");
        let sig = sign(SECRET, None, None, "1704908010");
        assert!(verify(Some(&sig), None, None, BODY, &secret()).is_ok());
    }

    #[test]
    fn wrong_secret_tampered_request_id_and_truncated_signature_are_refused() {
        let sig = sign("other", Some("999999999"), Some("req-1"), "1704908010");
        assert_eq!(verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret()).unwrap_err(), VerifyError::BadSignature);
        let sig = sign(SECRET, Some("999999999"), Some("req-1"), "1704908010");
        assert_eq!(verify(Some(&sig), Some("req-2"), Some("999999999"), BODY, &secret()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some(&sig[..sig.len() - 1]), Some("req-1"), Some("999999999"), BODY, &secret()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some("ts=1704908010,v1="), Some("req-1"), Some("999999999"), BODY, &secret()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(Some("v1=abc"), Some("req-1"), None, BODY, &secret()).unwrap_err(), VerifyError::MalformedHeader(HEADER));
        assert_eq!(verify(None, None, None, BODY, &secret()).unwrap_err(), VerifyError::MissingHeader(HEADER));
    }

    #[test]
    fn ts_in_seconds_or_milliseconds_is_used_verbatim() {
        for ts in ["1704908010", "1742505638683"] {
            let sig = sign(SECRET, Some("999999999"), Some("req-1"), ts);
            assert!(verify(Some(&sig), Some("req-1"), Some("999999999"), BODY, &secret()).is_ok(), "{ts}");
        }
    }

    #[test]
    fn an_uppercase_alphanumeric_id_verifies_as_sent_or_lowercased() {
        let as_sent = sign(SECRET, Some("ORD01JQ4S4KY8"), Some("req-1"), "1742505638683");
        assert!(verify(Some(&as_sent), Some("req-1"), Some("ORD01JQ4S4KY8"), BODY, &secret()).is_ok());
        let lowered = sign(SECRET, Some("ord01jq4s4ky8"), Some("req-1"), "1742505638683");
        assert!(verify(Some(&lowered), Some("req-1"), Some("ORD01JQ4S4KY8"), BODY, &secret()).is_ok());
    }

    #[test]
    fn string_ids_in_the_body_are_read() {
        let body = br#"{"id":"abc-1","type":"order","data":{"id":"ORD1"}}"#;
        let sig = sign(SECRET, Some("ORD1"), Some("r"), "1");
        let n = verify(Some(&sig), Some("r"), Some("ORD1"), body, &secret()).unwrap();
        assert_eq!((n.id.as_deref(), n.kind.as_str()), (Some("abc-1"), "order"));
    }

    proptest! {
        #[test]
        fn no_input_makes_the_verifier_panic(
            header in ".*", rid in proptest::option::of(".*"), id in proptest::option::of(".*"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = verify(Some(&header), rid.as_deref(), id.as_deref(), &body, &secret());
        }
    }
}
