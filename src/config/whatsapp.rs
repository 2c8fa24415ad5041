//! Sending WhatsApp messages (WHATSAPP_*).

use std::time::Duration;

use secrecy::SecretString;

use super::{list, parse_duration, Error};

/// Meta's Graph API, where WhatsApp Cloud API messages are sent.
pub const WHATSAPP_API_BASE: &str = "https://graph.facebook.com";
/// The Graph API version used for sends.
pub const WHATSAPP_API_VERSION: &str = "v23.0";

/// Sending WhatsApp messages. Without a token or phone number id, quotes are
/// still stored and the send step fails naming the missing variable.
#[derive(Clone)]
pub struct WhatsAppSettings {
    /// `WHATSAPP_API_BASE` (default https://graph.facebook.com).
    pub api_base: String,
    /// `WHATSAPP_API_VERSION` (default v23.0).
    pub api_version: String,
    /// `WHATSAPP_PHONE_NUMBER_ID`: the business number that sends.
    pub phone_number_id: Option<String>,
    /// `WHATSAPP_ACCESS_TOKEN`: Bearer token of the Graph API.
    pub access_token: Option<SecretString>,
    /// `WHATSAPP_SEND_RETRY_SCHEDULE` (default `1m,2m,4m,8m,16m`): the exact
    /// delay before each retry of a transient send failure; then the run fails.
    pub send_retry_schedule: Vec<Duration>,
    /// `WHATSAPP_TEMPLATE_ORDER_UPDATE`: an approved template (body `{{1}}` order
    /// reference, `{{2}}` what happened) for order notices outside the 24 h
    /// window; unset: such notices are recorded as skipped.
    pub template_order_update: Option<String>,
    /// `WHATSAPP_TEMPLATE_LANG` (default `es_MX`).
    pub template_lang: String,
}

impl WhatsAppSettings {
    pub(super) fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let schedule = get("WHATSAPP_SEND_RETRY_SCHEDULE").unwrap_or_else(|| "1m,2m,4m,8m,16m".into());
        let send_retry_schedule: Vec<Duration> = list(Some(schedule.clone()))
            .iter()
            .map(|s| parse_duration(s))
            .collect::<Option<_>>()
            .filter(|v: &Vec<Duration>| !v.is_empty())
            .ok_or(Error {
                name: "WHATSAPP_SEND_RETRY_SCHEDULE",
                reason: format!("{schedule:?} is not a list of durations like 1m,2m,4m"),
            })?;
        Ok(Self {
            api_base: get("WHATSAPP_API_BASE").unwrap_or_else(|| WHATSAPP_API_BASE.into()),
            api_version: get("WHATSAPP_API_VERSION").unwrap_or_else(|| WHATSAPP_API_VERSION.into()),
            phone_number_id: get("WHATSAPP_PHONE_NUMBER_ID"),
            access_token: get("WHATSAPP_ACCESS_TOKEN").map(SecretString::from),
            send_retry_schedule,
            template_order_update: get("WHATSAPP_TEMPLATE_ORDER_UPDATE").filter(|t| !t.trim().is_empty()),
            template_lang: get("WHATSAPP_TEMPLATE_LANG").unwrap_or_else(|| "es_MX".into()),
        })
    }
}
