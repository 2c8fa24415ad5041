//! Standard Webhooks signing (`webhook-signature: v1,<base64>` over
//! `id.timestamp.body`), plus `X-Signature: sha256=<hex of body>` for simple
//! receivers, both keyed with the secret's raw bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::SecretString;

const PREFIX: &str = "whsec_";

/// A new random 32-byte key.
pub fn new_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// How the key is shown once to the subscriber: `whsec_` + base64.
pub fn display(key: &[u8]) -> SecretString {
    SecretString::from(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key)))
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `v1,<sig> v1,<sig>…`, one per active key.
pub fn webhook_signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    keys.iter()
        .map(|k| {
            let sig = mac(k, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(sig))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sha256=<hex>` of the body with the newest key.
pub fn x_signature(key: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(key, &[body])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes() {
        let key = new_key();
        let shown = display(&key);
        let b64 = shown.expose_secret().strip_prefix("whsec_").unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), key);
    }

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks spec test suite.
        let key = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = webhook_signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
