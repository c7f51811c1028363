//! `[sms]`: how text messages are sent. Two providers, one file each:
//! `twilio` (the Messages API, or any gateway that speaks it) and `template`
//! (any HTTP SMS gateway, described by a URL and a body template).
//!
//! Providers only deliver the text they are given; the code in it, its
//! storage and its check belong to the pipeline.
//!
//! ```toml
//! [sms]
//! provider = "twilio"
//! account_sid = "AC0123456789abcdef0123456789abcdef"
//! auth_token_file = "/run/credentials/rampart.service/twilio-token"
//! from = "+15005550006"
//! ```

pub mod template;
pub mod twilio;

use std::sync::Arc;

use serde::Deserialize;

use super::oob::SmsSender;

/// SMS sign-in codes the provider accepted (a counter).
pub const SMS_CODES_SENT: &str = "rampart_sms_codes_sent_total";

pub use template::{TemplateSms, TemplateSmsConfig};
pub use twilio::{TwilioSms, TwilioSmsConfig};

/// `[sms]`: which gateway sends text messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum SmsConfig {
    /// Twilio's Messages API (or a Twilio-compatible gateway via `api_base`).
    Twilio(TwilioSmsConfig),
    /// A generic HTTP gateway: URL, method and body template.
    Template(TemplateSmsConfig),
}

impl SmsConfig {
    /// Problems as (key, message), keys relative to `[sms]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        match self {
            SmsConfig::Twilio(config) => config.problems(),
            SmsConfig::Template(config) => config.problems(),
        }
    }

    /// The sender for this configuration (run [`SmsConfig::problems`] first).
    pub fn build(&self) -> Result<Arc<dyn SmsSender>, String> {
        Ok(match self {
            SmsConfig::Twilio(config) => Arc::new(TwilioSms::new(config)?),
            SmsConfig::Template(config) => Arc::new(TemplateSms::new(config)?),
        })
    }

    /// Provider name for logs.
    pub fn provider(&self) -> &'static str {
        match self {
            SmsConfig::Twilio(_) => "twilio",
            SmsConfig::Template(_) => "template",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_selects_the_section_shape() {
        let twilio: SmsConfig = serde_json::from_value(serde_json::json!({
            "provider": "twilio",
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "auth_token": "t0ken",
            "from": "+15005550006",
        }))
        .unwrap();
        assert_eq!(twilio.provider(), "twilio");
        assert!(twilio.problems().is_empty(), "{:?}", twilio.problems());
        assert!(!format!("{twilio:?}").contains("t0ken"));

        let template: SmsConfig = serde_json::from_value(serde_json::json!({
            "provider": "template",
            "url": "https://sms.example.com/send",
            "body": "to={to}&text={message}",
        }))
        .unwrap();
        assert_eq!(template.provider(), "template");
        assert!(template.problems().is_empty(), "{:?}", template.problems());

        let unknown = serde_json::from_value::<SmsConfig>(serde_json::json!({
            "provider": "twilio", "account_sid": "AC", "sender": "+1",
        }));
        assert!(unknown.unwrap_err().to_string().contains("sender"));
    }
}
