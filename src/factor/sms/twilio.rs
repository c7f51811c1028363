//! `[sms] provider = "twilio"`: Twilio's Messages API.
//!
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP
//! Basic `AccountSid:AuthToken`, form fields `To`, `From` (or
//! `MessagingServiceSid`) and `Body`; Twilio answers `201 Created` with the
//! message's `sid` (twilio.com/docs/messaging/api/message-resource).

use async_trait::async_trait;
use serde::Deserialize;

use crate::factor::oob::{ProviderError, SmsSender};
use crate::factor::twilio::{self as api, AccountKeys, TwilioClient};
use crate::secret::Secret;

/// Twilio's limit for one message body (error 21617), characters.
const MAX_BODY_CHARS: usize = 1600;

/// `[sms]` with `provider = "twilio"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioSmsConfig {
    /// Account SID (`AC` + 32 hex digits).
    #[serde(default)]
    pub account_sid: String,
    /// Auth token, inline.
    #[serde(default, deserialize_with = "crate::secret::deserialize_optional")]
    pub auth_token: Option<Secret<String>>,
    /// Auth token read from a file (trailing newline removed).
    #[serde(default)]
    pub auth_token_file: Option<String>,
    /// Sender number, E.164 (`+15005550006`).
    #[serde(default)]
    pub from: Option<String>,
    /// Or a Messaging Service (`MG...`) that picks the sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// API base URL. Default `https://api.twilio.com`; set it for a
    /// Twilio-compatible gateway.
    #[serde(default = "api::default_api_base")]
    pub api_base: String,
    /// Seconds for one message, retries included. Default 10.
    #[serde(default = "api::default_timeout_secs")]
    pub timeout_secs: u64,
}

impl TwilioSmsConfig {
    fn account_keys(&self) -> AccountKeys<'_> {
        AccountKeys {
            account_sid: &self.account_sid,
            auth_token: self.auth_token.as_ref(),
            auth_token_file: self.auth_token_file.as_deref(),
            api_base: &self.api_base,
            timeout_secs: self.timeout_secs,
        }
    }

    /// Problems as (key, message), keys relative to `[sms]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = self.account_keys().problems();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));
        match (&self.from, &self.messaging_service_sid) {
            (None, None) => add(
                "from",
                "missing: set from (E.164) or messaging_service_sid".into(),
            ),
            (Some(_), Some(_)) => add(
                "from",
                "set either from or messaging_service_sid, not both".into(),
            ),
            (Some(from), None) if !api::is_e164(from) => add(
                "from",
                format!("{from:?} is not an E.164 number such as \"+15005550006\""),
            ),
            (None, Some(sid))
                if !(sid.len() == 34
                    && sid.starts_with("MG")
                    && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) =>
            {
                add(
                    "messaging_service_sid",
                    "a Messaging Service SID is \"MG\" and 32 hex digits".into(),
                )
            }
            _ => {}
        }
        problems
    }
}

/// Sends text messages through Twilio.
pub struct TwilioSms {
    client: TwilioClient,
    /// `("From", number)` or `("MessagingServiceSid", sid)`.
    sender: (&'static str, String),
}

impl TwilioSms {
    /// A sender for a validated configuration.
    pub fn new(config: &TwilioSmsConfig) -> Result<TwilioSms, String> {
        let sender = match (&config.from, &config.messaging_service_sid) {
            (Some(from), _) => ("From", from.clone()),
            (None, Some(sid)) => ("MessagingServiceSid", sid.clone()),
            (None, None) => return Err("from: missing".into()),
        };
        Ok(TwilioSms {
            client: TwilioClient::new(config.account_keys().account()?, "twilio_sms")?,
            sender,
        })
    }
}

#[async_trait]
impl SmsSender for TwilioSms {
    async fn send(&self, number: &str, text: &Secret<String>) -> Result<(), ProviderError> {
        if !api::is_e164(number) {
            return Err(ProviderError::NoTarget("phone number is not E.164"));
        }
        let body = text.expose();
        if body.chars().count() > MAX_BODY_CHARS {
            return Err(ProviderError::Protocol(format!(
                "message longer than Twilio's {MAX_BODY_CHARS} characters"
            )));
        }
        let form = [
            ("To", number),
            (self.sender.0, self.sender.1.as_str()),
            ("Body", body.as_str()),
        ];
        let sid = self.client.create("Messages", &form).await?;
        tracing::debug!(%sid, "SMS accepted by Twilio");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> TwilioSmsConfig {
        serde_json::from_value(value).unwrap()
    }

    fn keys(config: &TwilioSmsConfig) -> Vec<String> {
        config.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn sender_is_an_e164_number_or_a_messaging_service() {
        let base = serde_json::json!({
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "auth_token": "x",
        });
        let with = |key: &str, value: &str| {
            let mut v = base.clone();
            v[key] = value.into();
            config(v)
        };
        assert!(keys(&with("from", "+15005550006")).is_empty());
        assert!(
            keys(&with(
                "messaging_service_sid",
                "MG0123456789abcdef0123456789abcdef"
            ))
            .is_empty()
        );
        assert_eq!(keys(&config(base.clone())), ["from"]);
        assert_eq!(keys(&with("from", "15005550006")), ["from"]);
        assert_eq!(
            keys(&with("messaging_service_sid", "MG1")),
            ["messaging_service_sid"]
        );
        let mut both = base.clone();
        both["from"] = "+15005550006".into();
        both["messaging_service_sid"] = "MG0123456789abcdef0123456789abcdef".into();
        assert_eq!(keys(&config(both)), ["from"]);
    }
}
