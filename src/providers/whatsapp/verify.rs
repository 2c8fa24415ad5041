//! `X-Hub-Signature-256: sha256=<hex>`: HMAC-SHA256 of the raw body (Meta signs
//! the `\uXXXX`-escaped bytes it sends; we never re-serialise) keyed with the app
//! secret. Also splits a verified POST into one event per message and status.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::providers::{hex_sig_matches, hmac_sha256_hex, Verified, VerifyError};

const HEADER: &str = "X-Hub-Signature-256";

/// One deduplicable thing in a WhatsApp POST.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatsAppEvent {
    /// `msg:<wamid>`, `status:<wamid>:<status>`, or `change:<sha256 of body>` for
    /// changes carrying neither.
    pub dedupe_key: String,
    /// The wamid, when there is one.
    pub provider_event_id: Option<String>,
    /// `message.text`, `status.delivered`, `change.messages`, …
    pub kind: String,
    /// The message or status object, with the change's `metadata` and `contacts`.
    pub payload: Value,
    /// A message's sender (`from`): one sender's messages are handled in the
    /// order they arrived.
    pub sender: Option<String>,
}

pub fn verify(header: Option<&str>, body: &[u8], app_secret: &SecretString) -> Result<Verified<Vec<WhatsAppEvent>>, VerifyError> {
    let header = header.ok_or(VerifyError::MissingHeader(HEADER))?;
    let sig = header.strip_prefix("sha256=").ok_or(VerifyError::MalformedHeader(HEADER))?;
    let expected = hmac_sha256_hex(app_secret.expose_secret().as_bytes(), &[body]);
    if !hex_sig_matches(&expected, sig) {
        return Err(VerifyError::BadSignature);
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| VerifyError::InvalidJson(e.to_string()))?;
    Ok(Verified::new(split(&root, body)))
}

fn split(root: &Value, body: &[u8]) -> Vec<WhatsAppEvent> {
    let mut events = Vec::new();
    let empty = Vec::new();
    for entry in root["entry"].as_array().unwrap_or(&empty) {
        for change in entry["changes"].as_array().unwrap_or(&empty) {
            let value = &change["value"];
            let context = |item: &Value| {
                serde_json::json!({
                    "entry_id": entry["id"],
                    "field": change["field"],
                    "metadata": value["metadata"],
                    "contacts": value["contacts"],
                    "item": item,
                })
            };
            for m in value["messages"].as_array().unwrap_or(&empty) {
                let Some(id) = m["id"].as_str() else { continue };
                events.push(WhatsAppEvent {
                    dedupe_key: format!("msg:{id}"),
                    provider_event_id: Some(id.to_owned()),
                    kind: format!("message.{}", m["type"].as_str().unwrap_or("unknown")),
                    payload: context(m),
                    sender: m["from"].as_str().map(str::to_owned),
                });
            }
            for s in value["statuses"].as_array().unwrap_or(&empty) {
                let (Some(id), Some(status)) = (s["id"].as_str(), s["status"].as_str()) else { continue };
                events.push(WhatsAppEvent {
                    dedupe_key: format!("status:{id}:{status}"),
                    provider_event_id: Some(id.to_owned()),
                    kind: format!("status.{status}"),
                    payload: context(s),
                    sender: None,
                });
            }
        }
    }
    if events.is_empty() {
        use sha2::Digest;
        let field = root["entry"][0]["changes"][0]["field"].as_str().unwrap_or("unknown");
        events.push(WhatsAppEvent {
            dedupe_key: format!("change:{}", hex::encode(sha2::Sha256::digest(body))),
            provider_event_id: None,
            kind: format!("change.{field}"),
            payload: root.clone(),
            sender: None,
        });
    }
    events
}

/// Signs like Meta does (tests).
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(app_secret.as_bytes(), &[body]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "meta-app-secret";

    fn secret() -> SecretString {
        SecretString::from(SECRET)
    }

    fn body() -> Vec<u8> {
        // Meta sends non-ASCII escaped: "Quiero 2 zapatos y 1 camisa, ¿envían?"
        br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"5215512345678"}],"messages":[{"from":"5215512345678","id":"wamid.A","timestamp":"1749416383","type":"text","text":{"body":"Quiero 2 zapatos y 1 camisa, \u00bfenv\u00edan?"}},{"from":"5215512345678","id":"wamid.B","timestamp":"1749416384","type":"text","text":{"body":"gracias"}}],"statuses":[{"id":"wamid.C","status":"delivered","timestamp":"1749416385","recipient_id":"5215512345678"}]}}]}]}"#.to_vec()
    }

    #[test]
    fn a_valid_signature_over_escaped_unicode_is_accepted_and_split() {
        let b = body();
        let events = verify(Some(&sign(SECRET, &b)), &b, &secret()).unwrap().into_inner();
        let keys: Vec<&str> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
        assert_eq!(keys, vec!["msg:wamid.A", "msg:wamid.B", "status:wamid.C:delivered"]);
        assert_eq!(events[0].kind, "message.text");
        assert_eq!(events[0].payload["item"]["text"]["body"], "Quiero 2 zapatos y 1 camisa, ¿envían?");
        assert_eq!(events[2].kind, "status.delivered");
    }

    #[test]
    fn re_serialised_json_does_not_verify() {
        // A verifier that parsed and re-serialised would turn \u00bf into ¿.
        let b = body();
        let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
        assert_eq!(verify(Some(&sign(SECRET, &b)), &reserialised, &secret()).unwrap_err(), VerifyError::BadSignature);
    }

    #[test]
    fn wrong_secret_tampered_byte_empty_and_truncated_signatures_are_refused() {
        let b = body();
        let good = sign(SECRET, &b);
        let mut tampered = b.clone();
        tampered[20] ^= 1;
        for (h, body) in [
            (sign("other", &b), b.clone()),
            (good.clone(), tampered),
            ("sha256=".to_string(), b.clone()),
            (good[..good.len() - 1].to_string(), b.clone()),
        ] {
            assert_eq!(verify(Some(&h), &body, &secret()).unwrap_err(), VerifyError::BadSignature);
        }
        assert_eq!(verify(Some(&good[7..]), &b, &secret()).unwrap_err(), VerifyError::MalformedHeader(HEADER));
        assert_eq!(verify(None, &b, &secret()).unwrap_err(), VerifyError::MissingHeader(HEADER));
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let b = body();
        let h = format!("sha256={}", sign(SECRET, &b)[7..].to_uppercase());
        assert!(verify(Some(&h), &b, &secret()).is_ok());
    }

    #[test]
    fn a_change_without_messages_or_statuses_is_one_event() {
        let b = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"errors":[{"code":130429,"title":"Rate limit hit"}]}}]}]}"#;
        let events = verify(Some(&sign(SECRET, b)), b, &secret()).unwrap().into_inner();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "change.messages");
        assert!(events[0].dedupe_key.starts_with("change:"));
    }

    proptest! {
        #[test]
        fn no_input_makes_the_verifier_panic(header in ".*", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = verify(Some(&header), &body, &secret());
        }

        #[test]
        fn any_signed_json_shape_splits_without_panicking(s in "\\PC{0,64}") {
            let b = serde_json::json!({"entry": [{"changes": [{"value": {"messages": [{"id": s.clone()}], "statuses": [{"id": s, "status": 1}]}}]}]}).to_string();
            let _ = verify(Some(&sign(SECRET, b.as_bytes())), b.as_bytes(), &secret());
        }
    }
}
