//! Sends outbox e-mails over SMTP (lettre). Each message's `Message-ID` is the
//! outbox id, so a resend after a crash is recognisable as the same e-mail.

use lettre::{
    message::{header::MessageId, Mailbox, MultiPart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("SMTP_URL is not a valid SMTP URL (smtps://user:pass@host:465, smtp://host:587?tls=required): {0}")]
    Url(String),
    #[error("EMAIL_FROM is not a valid mailbox (\"Shop <sales@example.mx>\"): {0}")]
    From(String),
}

/// Why an e-mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("recipient {to:?} is not a valid address: {reason}")]
    BadRecipient { to: String, reason: String },
    #[error("cannot build the e-mail: {0}")]
    Build(String),
    /// A 5xx answer: the server will not take this message.
    #[error("SMTP refused the e-mail: {0}")]
    Refused(String),
    /// 4xx answers, timeouts, connection errors: worth trying again.
    #[error("SMTP: {0}")]
    Unavailable(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl Mailer {
    pub fn new(url: &SecretString, from: &str) -> Result<Self, ConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            // The error text may echo the URL (and its password): keep only its kind.
            .map_err(|e| ConfigError::Url(if e.is_client() { "malformed URL".into() } else { "unusable URL".into() }))?
            .timeout(Some(std::time::Duration::from_secs(20)))
            .build();
        let from = from.parse::<Mailbox>().map_err(|e| ConfigError::From(e.to_string()))?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, id: Uuid, to: &str, subject: &str, html: &str, text: &str) -> Result<(), SendError> {
        let to: Mailbox = to.parse().map_err(|e: lettre::address::AddressError| SendError::BadRecipient {
            to: to.to_owned(),
            reason: e.to_string(),
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(MessageId::from(format!("<{id}@relevo>")))
            .multipart(MultiPart::alternative_plain_html(text.to_owned(), html.to_owned()))
            .map_err(|e| SendError::Build(e.to_string()))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Refused(e.to_string())),
            Err(e) => Err(SendError::Unavailable(e.to_string())),
        }
    }
}
