//! `Stripe-Signature` verification: `t=<unix>,v1=<hex>[,v1=…][,v0=…]`,
//! HMAC-SHA256 over `"<t>.<raw body>"` keyed with the whole `whsec_…` string.
//! Any `v1` matching any configured secret (rotation) is accepted; `v0` and
//! unknown schemes are ignored. Timestamps more than 300 s away are refused.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::providers::{hex_sig_matches, hmac_sha256_hex, Verified, VerifyError};

pub const TOLERANCE_SECS: i64 = 300;
const HEADER: &str = "Stripe-Signature";

/// The fields of a Stripe event that ingest needs; the raw body is kept too.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
}

pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now: DateTime<Utc>,
) -> Result<Verified<StripeEvent>, VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader(HEADER))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else { continue };
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| VerifyError::MalformedHeader(HEADER))?),
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or(VerifyError::MalformedHeader(HEADER))?;
    if signatures.is_empty() {
        return Err(VerifyError::MalformedHeader(HEADER));
    }
    let t_text = t.to_string();
    let matched = secrets.iter().any(|secret| {
        let expected = hmac_sha256_hex(secret.expose_secret().as_bytes(), &[t_text.as_bytes(), b".", body]);
        signatures.iter().any(|sig| hex_sig_matches(&expected, sig))
    });
    if !matched {
        return Err(VerifyError::BadSignature);
    }
    if (now.timestamp() - t).abs() > TOLERANCE_SECS {
        return Err(VerifyError::StaleTimestamp);
    }
    let event: StripeEvent = serde_json::from_slice(body).map_err(|e| VerifyError::InvalidJson(e.to_string()))?;
    Ok(Verified::new(event))
}

/// Signs like Stripe does (for tests, the benchmark and the README walkthrough).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hmac_sha256_hex(secret.as_bytes(), &[t.to_string().as_bytes(), b".", body]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":{}}}"#;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(s.to_string())).collect()
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        let h = sign(SECRET, 1_750_000_000, BODY);
        let ev = verify(Some(&h), BODY, &secrets(&[SECRET]), now()).unwrap();
        assert_eq!((ev.id.as_str(), ev.event_type.as_str()), ("evt_1", "payment_intent.succeeded"));
    }

    #[test]
    fn the_wrong_secret_is_refused() {
        let h = sign("whsec_other", 1_750_000_000, BODY);
        assert_eq!(verify(Some(&h), BODY, &secrets(&[SECRET]), now()).unwrap_err(), VerifyError::BadSignature);
    }

    #[test]
    fn a_tampered_byte_is_refused() {
        let h = sign(SECRET, 1_750_000_000, BODY);
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(verify(Some(&h), &body, &secrets(&[SECRET]), now()).unwrap_err(), VerifyError::BadSignature);
    }

    #[test]
    fn an_empty_or_truncated_v1_is_refused() {
        let full = sign(SECRET, 1_750_000_000, BODY);
        for h in ["t=1750000000,v1=".to_string(), full[..full.len() - 2].to_string()] {
            assert_eq!(verify(Some(&h), BODY, &secrets(&[SECRET]), now()).unwrap_err(), VerifyError::BadSignature);
        }
        assert_eq!(
            verify(Some("t=1750000000"), BODY, &secrets(&[SECRET]), now()).unwrap_err(),
            VerifyError::MalformedHeader(HEADER)
        );
        assert_eq!(verify(None, BODY, &secrets(&[SECRET]), now()).unwrap_err(), VerifyError::MissingHeader(HEADER));
    }

    #[test]
    fn one_good_signature_among_several_and_v0_is_ignored() {
        let good = sign(SECRET, 1_750_000_000, BODY);
        let good_sig = good.split("v1=").nth(1).unwrap();
        let h = format!("t=1750000000,v1={},v1={good_sig},v0=deadbeef", "ab".repeat(32));
        assert!(verify(Some(&h), BODY, &secrets(&[SECRET]), now()).is_ok());
        let only_v0 = format!("t=1750000000,v0={good_sig}");
        assert!(verify(Some(&only_v0), BODY, &secrets(&[SECRET]), now()).is_err());
    }

    #[test]
    fn any_configured_secret_verifies_during_rotation() {
        let h = sign("whsec_new", 1_750_000_000, BODY);
        assert!(verify(Some(&h), BODY, &secrets(&["whsec_old", "whsec_new"]), now()).is_ok());
    }

    #[test]
    fn stale_and_far_future_timestamps_are_refused() {
        for t in [1_750_000_000 - 301, 1_750_000_000 + 301] {
            let h = sign(SECRET, t, BODY);
            assert_eq!(verify(Some(&h), BODY, &secrets(&[SECRET]), now()).unwrap_err(), VerifyError::StaleTimestamp);
        }
        for t in [1_750_000_000 - 299, 1_750_000_000 + 60] {
            assert!(verify(Some(&sign(SECRET, t, BODY)), BODY, &secrets(&[SECRET]), now()).is_ok());
        }
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_a_bad_request() {
        let body = b"not json";
        let h = sign(SECRET, 1_750_000_000, body);
        let err = verify(Some(&h), body, &secrets(&[SECRET]), now()).unwrap_err();
        assert!(err.is_bad_request());
    }

    proptest! {
        #[test]
        fn no_input_makes_the_verifier_panic(header in ".*", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = verify(Some(&header), &body, &secrets(&[SECRET]), now());
        }

        #[test]
        fn no_structured_header_makes_the_verifier_panic(t in any::<i64>(), sig in "[0-9a-fA-F]{0,70}") {
            let header = format!("t={t},v1={sig}");
            let _ = verify(Some(&header), BODY, &secrets(&[SECRET]), now());
        }
    }
}
