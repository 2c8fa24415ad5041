//! HighLevel webhook signatures: `X-GHL-Signature` (Ed25519, base64) when
//! present, else the legacy `X-WH-Signature` (RSA-SHA256 PKCS#1 v1.5, base64);
//! `"N/A"` or absent means unsigned and is refused. Verified over the raw body.
//! Replay protection: the body's `timestamp` must be within 5 minutes.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use rsa::signature::Verifier as _;
use serde::Deserialize;

use crate::providers::{Verified, VerifyError};

const GHL_HEADER: &str = "X-GHL-Signature";
const WH_HEADER: &str = "X-WH-Signature";
pub const TOLERANCE_SECS: i64 = 300;

/// HighLevel's published Ed25519 webhook key.
pub const PUBLISHED_ED25519_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=
-----END PUBLIC KEY-----";

/// HighLevel's published legacy RSA webhook key.
pub const PUBLISHED_RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----";

/// The two public keys webhooks are checked against.
#[derive(Clone, Debug)]
pub struct Keys {
    ed25519: ed25519_dalek::VerifyingKey,
    rsa: rsa::pkcs1v15::VerifyingKey<sha2::Sha256>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {which} public key PEM: {reason}")]
pub struct KeyError {
    which: &'static str,
    reason: String,
}

impl Keys {
    /// Parses PEM public keys; `None` uses HighLevel's published key.
    pub fn from_pem(ed25519: Option<&str>, rsa: Option<&str>) -> Result<Self, KeyError> {
        let ed = ed25519_dalek::VerifyingKey::from_public_key_pem(ed25519.unwrap_or(PUBLISHED_ED25519_PEM).trim())
            .map_err(|e| KeyError { which: "Ed25519", reason: e.to_string() })?;
        let rsa = rsa::RsaPublicKey::from_public_key_pem(rsa.unwrap_or(PUBLISHED_RSA_PEM).trim())
            .map_err(|e| KeyError { which: "RSA", reason: e.to_string() })?;
        Ok(Self {
            ed25519: ed,
            rsa: rsa::pkcs1v15::VerifyingKey::new(rsa),
        })
    }
}

/// What ingest needs from a HighLevel webhook.
#[derive(Debug, Clone)]
pub struct HighLevelEvent {
    pub webhook_id: Option<String>,
    pub kind: String,
    /// The sub-account the event belongs to (`locationId`), and its agency (`companyId`).
    pub location_id: Option<String>,
    pub company_id: Option<String>,
    /// `appointment.id` of appointment events: their runs keep arrival order per appointment.
    pub appointment_id: Option<String>,
}

impl HighLevelEvent {
    /// HighLevel's key signs every account's events: only events of the
    /// connected locations (or their agencies) are ours to act on.
    pub fn belongs_to(&self, connected: &[String]) -> bool {
        [&self.location_id, &self.company_id]
            .into_iter()
            .flatten()
            .any(|id| connected.iter().any(|c| c == id))
    }
}

#[derive(Deserialize)]
struct Body {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "webhookId")]
    webhook_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default, rename = "locationId")]
    location_id: Option<String>,
    #[serde(default, rename = "companyId")]
    company_id: Option<String>,
    #[serde(default)]
    appointment: Option<AppointmentRef>,
}

#[derive(Deserialize)]
struct AppointmentRef {
    #[serde(default)]
    id: Option<String>,
}

fn present(h: Option<&str>) -> Option<&str> {
    h.map(str::trim).filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("N/A"))
}

pub fn verify(
    ghl_signature: Option<&str>,
    wh_signature: Option<&str>,
    body: &[u8],
    keys: &Keys,
    now: DateTime<Utc>,
) -> Result<Verified<HighLevelEvent>, VerifyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(sig) = present(ghl_signature) {
        let bytes = b64.decode(sig).map_err(|_| VerifyError::MalformedHeader(GHL_HEADER))?;
        let sig = ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| VerifyError::BadSignature)?;
        keys.ed25519.verify_strict(body, &sig).map_err(|_| VerifyError::BadSignature)?;
    } else if let Some(sig) = present(wh_signature) {
        let bytes = b64.decode(sig).map_err(|_| VerifyError::MalformedHeader(WH_HEADER))?;
        let sig = rsa::pkcs1v15::Signature::try_from(bytes.as_slice()).map_err(|_| VerifyError::BadSignature)?;
        keys.rsa.verify(body, &sig).map_err(|_| VerifyError::BadSignature)?;
    } else {
        return Err(VerifyError::MissingHeader(GHL_HEADER));
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| VerifyError::InvalidJson(e.to_string()))?;
    let ts = parsed
        .timestamp
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or(VerifyError::StaleTimestamp)?;
    if (now.timestamp() - ts.timestamp()).abs() > TOLERANCE_SECS {
        return Err(VerifyError::StaleTimestamp);
    }
    Ok(Verified::new(HighLevelEvent {
        webhook_id: parsed.webhook_id,
        kind: parsed.kind.unwrap_or_else(|| "unknown".into()),
        location_id: parsed.location_id,
        company_id: parsed.company_id,
        appointment_id: parsed.appointment.and_then(|a| a.id).filter(|id| !id.is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{pkcs8::DecodePrivateKey as _, Signer as _};
    use proptest::prelude::*;
    use rsa::signature::SignatureEncoding as _;

    const ED_PRIV: &str = include_str!("../../../tests/fixtures/highlevel_ed25519_test_private.pem");
    const ED_PUB: &str = include_str!("../../../tests/fixtures/highlevel_ed25519_test_public.pem");
    const RSA_PRIV: &str = include_str!("../../../tests/fixtures/highlevel_rsa_test_private.pem");
    const RSA_PUB: &str = include_str!("../../../tests/fixtures/highlevel_rsa_test_public.pem");

    fn keys() -> Keys {
        Keys::from_pem(Some(ED_PUB), Some(RSA_PUB)).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z").unwrap().to_utc()
    }

    fn body(ts: &str) -> Vec<u8> {
        format!(r#"{{"type":"AppointmentCreate","locationId":"L1","webhookId":"wh-1","timestamp":"{ts}","appointment":{{"id":"a1"}}}}"#).into_bytes()
    }

    fn ed_sign(body: &[u8]) -> String {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(ED_PRIV).unwrap();
        base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes())
    }

    fn rsa_sign(body: &[u8]) -> String {
        use rsa::pkcs8::DecodePrivateKey as _;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(RSA_PRIV).unwrap();
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
        base64::engine::general_purpose::STANDARD.encode(signer.sign(body).to_vec())
    }

    #[test]
    fn the_published_keys_parse() {
        Keys::from_pem(None, None).unwrap();
    }

    #[test]
    fn ed25519_and_legacy_rsa_signatures_are_accepted() {
        let b = body("2026-11-25T11:58:00Z");
        let ev = verify(Some(&ed_sign(&b)), None, &b, &keys(), now()).unwrap();
        assert_eq!((ev.webhook_id.as_deref(), ev.kind.as_str()), (Some("wh-1"), "AppointmentCreate"));
        assert!(verify(Some("N/A"), Some(&rsa_sign(&b)), &b, &keys(), now()).is_ok());
        assert!(verify(None, Some(&rsa_sign(&b)), &b, &keys(), now()).is_ok());
    }

    #[test]
    fn unsigned_tampered_or_truncated_requests_are_refused() {
        let b = body("2026-11-25T11:58:00Z");
        assert_eq!(verify(Some("N/A"), Some("N/A"), &b, &keys(), now()).unwrap_err(), VerifyError::MissingHeader(GHL_HEADER));
        assert_eq!(verify(None, None, &b, &keys(), now()).unwrap_err(), VerifyError::MissingHeader(GHL_HEADER));
        let mut tampered = b.clone();
        tampered[12] ^= 1;
        assert_eq!(verify(Some(&ed_sign(&b)), None, &tampered, &keys(), now()).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(verify(None, Some(&rsa_sign(&b)), &tampered, &keys(), now()).unwrap_err(), VerifyError::BadSignature);
        let sig = ed_sign(&b);
        assert!(verify(Some(&sig[..sig.len() - 4]), None, &b, &keys(), now()).is_err());
        // A bad Ed25519 signature is not rescued by a good RSA one.
        let other = ed_sign(b"something else");
        assert_eq!(verify(Some(&other), Some(&rsa_sign(&b)), &b, &keys(), now()).unwrap_err(), VerifyError::BadSignature);
        // Signed with the real key pair's counterpart? Our test signature fails the published key.
        assert!(verify(Some(&sig), None, &b, &Keys::from_pem(None, None).unwrap(), now()).is_err());
    }

    #[test]
    fn stale_future_and_missing_timestamps_are_refused() {
        for ts in ["2026-11-25T11:54:59Z", "2026-11-25T12:05:01Z"] {
            let b = body(ts);
            assert_eq!(verify(Some(&ed_sign(&b)), None, &b, &keys(), now()).unwrap_err(), VerifyError::StaleTimestamp);
        }
        let b = br#"{"type":"AppointmentCreate","webhookId":"wh-1"}"#;
        assert_eq!(verify(Some(&ed_sign(b)), None, b, &keys(), now()).unwrap_err(), VerifyError::StaleTimestamp);
    }

    #[test]
    fn a_signed_body_that_is_not_json_is_a_bad_request() {
        let b = b"{oops";
        assert!(verify(Some(&ed_sign(b)), None, b, &keys(), now()).unwrap_err().is_bad_request());
    }

    proptest! {
        #[test]
        fn no_input_makes_the_verifier_panic(
            ghl in proptest::option::of(".*"), wh in proptest::option::of("[A-Za-z0-9+/=]{0,700}"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = verify(ghl.as_deref(), wh.as_deref(), &body, &keys(), now());
        }
    }
}
