//! Graph API sends: `POST {base}/{version}/{phone_number_id}/messages` with a
//! text reply or a mark-as-read (`../shared/providers.md` §3.2). Meta's answers
//! are classified by `error.code` (not the HTTP status) into `Error` variants
//! that say whether retrying can help; the flow decides what to do with them.


use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    token: SecretString,
}

/// What Meta answered to a send. Stored as a step checkpoint: add fields with
/// defaults, never rename one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The wamid of the message sent (none for a mark-as-read).
    pub wamid: Option<String>,
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("WhatsApp Cloud API unreachable: {0}")]
    Unreachable(String),
    #[error("WhatsApp rate limit (code {code}): {message}")]
    RateLimited { code: i64, retry_after_secs: i64, message: String },
    #[error("WhatsApp Cloud API error {status} (code {code:?}): {message}")]
    Server { status: u16, code: Option<i64>, message: String },
    #[error("WhatsApp refused the message (HTTP {status}, code {code:?}): {message}")]
    Refused { status: u16, code: Option<i64>, message: String },
}

impl Error {
    /// Meta's `error.code`, when Meta answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Unreachable(_) => None,
            Self::RateLimited { code, .. } => Some(*code),
            Self::Server { code, .. } | Self::Refused { code, .. } => *code,
        }
    }

    /// Whether the same request may succeed later (timeouts, connection errors, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Server { .. })
    }
}

/// Throttling codes (retry later) and how long to wait by default.
fn rate_limit_wait_secs(code: i64) -> Option<i64> {
    match code {
        // app-level call rate; WABA rate limit
        4 | 80007 => Some(60),
        // Cloud API throughput
        130429 => Some(30),
        // pair rate limit: too many messages to this recipient just now
        131056 => Some(10),
        _ => None,
    }
}

/// Codes that will not change on retry: outside the 24 h window (131047),
/// spam limit (131048), undeliverable (131026), invalid parameter (100), token (190).
const PERMANENT_CODES: &[i64] = &[131047, 131048, 131026, 100, 190];

impl Client {
    /// `base` e.g. `https://graph.facebook.com`, `version` e.g. `v23.0`.
    pub fn new(base: &str, version: &str, phone_number_id: &str, token: SecretString) -> Self {
        Self {
            http: crate::providers::api_client(),
            url: format!("{}/{}/{}/messages", base.trim_end_matches('/'), version.trim_matches('/'), phone_number_id),
            token,
        }
    }

    /// Sends `body` to `to`, as a reply to `reply_to_wamid` when given.
    pub async fn send_text(&self, to: &str, body: &str, reply_to_wamid: Option<&str>) -> Result<Sent, Error> {
        let mut payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": body},
        });
        if let Some(id) = reply_to_wamid {
            payload["context"] = json!({"message_id": id});
        }
        let answer = self.post(&payload).await?;
        Ok(Sent { wamid: answer["messages"][0]["id"].as_str().map(str::to_owned) })
    }

    /// Sends the approved template `name` (language `lang`, e.g. `es_MX`) with
    /// `params` as its body's `{{1}}`, `{{2}}`, …: the only kind of message
    /// Meta delivers outside the 24 h customer-service window.
    pub async fn send_template(&self, to: &str, name: &str, lang: &str, params: &[String]) -> Result<Sent, Error> {
        let parameters: Vec<Value> = params.iter().map(|p| json!({"type": "text", "text": p})).collect();
        let payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {"name": name, "language": {"code": lang}, "components": [{"type": "body", "parameters": parameters}]},
        });
        let answer = self.post(&payload).await?;
        Ok(Sent { wamid: answer["messages"][0]["id"].as_str().map(str::to_owned) })
    }

    /// Marks `wamid` (and the messages before it) as read.
    pub async fn mark_read(&self, wamid: &str) -> Result<Sent, Error> {
        self.post(&json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid})).await?;
        Ok(Sent { wamid: None })
    }

    async fn post(&self, payload: &Value) -> Result<Value, Error> {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(self.token.expose_secret())
            .json(payload)
            .send()
            .await
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        let crate::providers::Answer { status, retry_after_secs, body } = crate::providers::read_answer(resp).await;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(classify(status, &body, retry_after_secs))
    }
}

/// Meta's error envelope `{"error": {"message", "code", "error_data": {"details"}}}`.
fn classify(status: u16, body: &Value, retry_after: Option<i64>) -> Error {
    let error = &body["error"];
    let code = error["code"].as_i64();
    let mut message = error["message"].as_str().unwrap_or("").to_owned();
    if let Some(details) = error["error_data"]["details"].as_str() {
        message = format!("{message} ({details})");
    }
    if let Some(wait) = code.and_then(rate_limit_wait_secs) {
        return Error::RateLimited {
            code: code.unwrap_or_default(),
            retry_after_secs: retry_after.unwrap_or(wait).clamp(1, 3600),
            message,
        };
    }
    if code.is_some_and(|c| PERMANENT_CODES.contains(&c)) {
        return Error::Refused { status, code, message };
    }
    match status {
        429 => Error::RateLimited { code: code.unwrap_or(0), retry_after_secs: retry_after.unwrap_or(30).clamp(1, 3600), message },
        s if s >= 500 => Error::Server { status, code, message },
        _ => Error::Refused { status, code, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: i64) -> Value {
        json!({"error": {"message": "m", "type": "OAuthException", "code": code, "error_data": {"messaging_product": "whatsapp", "details": "d"}, "fbtrace_id": "x"}})
    }

    #[test]
    fn errors_are_classified_by_meta_code_not_http_status() {
        for code in [4, 80007, 130429, 131056] {
            assert!(matches!(classify(400, &envelope(code), None), Error::RateLimited { .. }), "{code}");
        }
        for code in [131047, 131048, 131026, 100, 190] {
            let e = classify(500, &envelope(code), None);
            assert!(matches!(e, Error::Refused { code: Some(c), .. } if c == code), "{code}");
            assert!(e.to_string().contains(&code.to_string()) && e.to_string().contains("m (d)"));
        }
        assert!(classify(503, &Value::Null, None).is_transient());
        assert!(classify(500, &envelope(1), None).is_transient());
        assert!(!classify(400, &envelope(131009), None).is_transient());
        assert!(matches!(classify(400, &envelope(130429), Some(7)), Error::RateLimited { retry_after_secs: 7, .. }));
    }
}
