//! `[phone]`: verification calls through Twilio's Calls API.
//!
//! rampart asks Twilio to call the user with an inline TwiML document
//! ([`twiml::gather`]): the login is read out, one key is collected and
//! Twilio POSTs it to `{public_url}/oob/v1/twilio/gather/{txn}`; when the call
//! ends Twilio POSTs its final status to `{public_url}/oob/v1/twilio/status/{txn}`
//! (`StatusCallbackEvent=completed`, which also reports `busy`, `no-answer`,
//! `failed` and `canceled`). Both callbacks are signed by Twilio with the auth
//! token and checked in `http::twilio`, which resolves the parked login.
//! Hence `[out_of_band] public_url` is required: it is how Twilio reaches
//! rampart, and the exact URL Twilio signs.
//!
//! ```toml
//! [phone]
//! account_sid = "AC0123456789abcdef0123456789abcdef"
//! auth_token_file = "/run/credentials/rampart.service/twilio-token"
//! from = "+15005550006"
//! pin = "optional"   # off (default) | optional | required
//! ```
//!
//! With `pin` on, users who set a PIN ([`pin`]) type it followed by `#`
//! instead of pressing `#` alone ([`twiml::gather_pin`]).

pub mod pin;
pub mod twiml;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::oob::{Approval, CallPrompt, Caller, ProviderError};
use super::twilio::{self as api, AccountKeys, TwilioClient};
use crate::secret::Secret;

pub use pin::PinMode;
pub use twiml::Voice;

/// Which service places the calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneProvider {
    /// Twilio's Calls API, or a gateway that speaks it (`api_base`).
    #[default]
    Twilio,
}

/// `[phone]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    /// `twilio` (the default and only one).
    #[serde(default)]
    pub provider: PhoneProvider,
    /// Account SID (`AC` + 32 hex digits).
    #[serde(default)]
    pub account_sid: String,
    /// Auth token, inline. Also the key Twilio signs its callbacks with.
    #[serde(default, deserialize_with = "crate::secret::deserialize_optional")]
    pub auth_token: Option<Secret<String>>,
    /// Auth token read from a file (trailing newline removed).
    #[serde(default)]
    pub auth_token_file: Option<String>,
    /// Caller ID: a Twilio number or verified caller ID, E.164.
    #[serde(default)]
    pub from: String,
    /// API base URL. Default `https://api.twilio.com`.
    #[serde(default = "api::default_api_base")]
    pub api_base: String,
    /// Seconds for the API request that places the call. Default 10.
    #[serde(default = "api::default_timeout_secs")]
    pub timeout_secs: u64,
    /// `<Say voice>`, e.g. `Polly.Joanna`; Twilio's default when unset.
    #[serde(default)]
    pub voice: Option<String>,
    /// `<Say language>`, e.g. `en-US`; Twilio's default when unset.
    #[serde(default)]
    pub language: Option<String>,
    /// Seconds the phone rings before Twilio gives up (`Timeout`). Default 30.
    #[serde(default = "default_ring_secs")]
    pub ring_secs: u64,
    /// Whether calls ask for the user's PIN: `off` (default), `optional`
    /// (users who set one), `required` (no PIN, no phone call).
    #[serde(default)]
    pub pin: PinMode,
}

fn default_ring_secs() -> u64 {
    30
}

impl PhoneConfig {
    fn account_keys(&self) -> AccountKeys<'_> {
        AccountKeys {
            account_sid: &self.account_sid,
            auth_token: self.auth_token.as_ref(),
            auth_token_file: self.auth_token_file.as_deref(),
            api_base: &self.api_base,
            timeout_secs: self.timeout_secs,
        }
    }

    /// Problems as (key, message), keys relative to `[phone]`; an empty key
    /// is about the section as a whole. `public_url` is `[out_of_band] public_url`.
    pub fn problems(&self, public_url: Option<&str>) -> Vec<(String, String)> {
        let mut problems = self.account_keys().problems();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));
        if public_url.is_none() {
            add(
                "",
                "needs out_of_band.public_url so Twilio can report the keypress".into(),
            );
        }
        if self.from.is_empty() {
            add(
                "from",
                "missing: the caller ID, E.164 (\"+15005550006\")".into(),
            );
        } else if !api::is_e164(&self.from) {
            add(
                "from",
                format!(
                    "{:?} is not an E.164 number such as \"+15005550006\"",
                    self.from
                ),
            );
        }
        // Twilio's maximum is 600 s (Call resource, `Timeout`; error 21208
        // "Invalid Timeout"); a few seconds is too short to pick up.
        if !(5..=600).contains(&self.ring_secs) {
            add("ring_secs", "must be between 5 and 600 seconds".into());
        }
        for (key, value) in [("voice", &self.voice), ("language", &self.language)] {
            if let Some(value) = value
                && (value.is_empty() || value.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                add(key, format!("{value:?} is not a voice or language name"));
            }
        }
        problems
    }
}

/// What the callback handlers need: the account the calls belong to, the
/// auth token that signs the callbacks, the public base URL they are signed
/// with, and the voice for the spoken answer.
pub struct PhoneCallbacks {
    /// Callbacks must carry this `AccountSid`.
    pub account_sid: String,
    auth_token: Secret<String>,
    public_url: String,
    /// Voice of the confirmation.
    pub voice: Voice,
}

/// The two callbacks of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// `<Gather action>`: the key pressed.
    Gather,
    /// `StatusCallback`: how the call ended.
    Status,
}

impl Callback {
    /// Path segment and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Callback::Gather => "gather",
            Callback::Status => "status",
        }
    }
}

impl PhoneCallbacks {
    /// The absolute callback URL for transaction `txn` — the exact string
    /// Twilio is given and later signs.
    pub fn url(&self, callback: Callback, txn: &str) -> String {
        format!(
            "{}/oob/v1/twilio/{}/{txn}",
            self.public_url,
            callback.as_str()
        )
    }

    /// Whether `signature` (`X-Twilio-Signature`) is Twilio's for a POST to
    /// `url` with `params`. Constant time.
    pub fn verify(&self, url: &str, params: &[(String, String)], signature: &str) -> bool {
        api::signature_matches(&self.auth_token, url, params, signature)
    }
}

/// Places verification calls through Twilio.
pub struct TwilioCaller {
    client: TwilioClient,
    from: String,
    ring_secs: String,
    callbacks: Arc<PhoneCallbacks>,
}

impl TwilioCaller {
    /// A caller for a validated configuration; `public_url` is where Twilio
    /// reaches rampart's HTTP listener.
    pub fn new(config: &PhoneConfig, public_url: &str) -> Result<TwilioCaller, String> {
        let account = config.account_keys().account()?;
        let callbacks = Arc::new(PhoneCallbacks {
            account_sid: account.account_sid.clone(),
            auth_token: account.auth_token.clone(),
            public_url: public_url.trim_end_matches('/').to_string(),
            voice: Voice {
                voice: config.voice.clone(),
                language: config.language.clone(),
            },
        });
        Ok(TwilioCaller {
            client: TwilioClient::new(account, "twilio_call")?,
            from: config.from.clone(),
            ring_secs: config.ring_secs.to_string(),
            callbacks,
        })
    }

    /// The callback checker, for the HTTP listener (`OutOfBand::phone_callbacks`).
    pub fn callbacks(&self) -> Arc<PhoneCallbacks> {
        self.callbacks.clone()
    }
}

#[async_trait]
impl Caller for TwilioCaller {
    async fn call(
        &self,
        number: &str,
        approval: &Approval,
        prompt: CallPrompt,
    ) -> Result<(), ProviderError> {
        if !api::is_e164(number) {
            return Err(ProviderError::NoTarget("phone number is not E.164"));
        }
        let action = self.callbacks.url(Callback::Gather, &approval.txn);
        let status = self.callbacks.url(Callback::Status, &approval.txn);
        let voice = &self.callbacks.voice;
        let document = match prompt {
            CallPrompt::Pound => twiml::gather(&action, &approval.message, voice),
            CallPrompt::Pin => twiml::gather_pin(&action, &approval.message, voice),
        };
        // Parameter names: twilio.com/docs/voice/api/call-resource, "Create a Call".
        let form = [
            ("To", number),
            ("From", self.from.as_str()),
            ("Twiml", document.as_str()),
            ("Timeout", self.ring_secs.as_str()),
            ("StatusCallback", status.as_str()),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "completed"),
        ];
        let sid = self.client.create("Calls", &form).await?;
        tracing::debug!(%sid, txn = %approval.txn, "call queued by Twilio");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PhoneConfig {
        serde_json::from_value(serde_json::json!({
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "auth_token": "secret-token",
            "from": "+15005550006",
        }))
        .unwrap()
    }

    #[test]
    fn defaults_and_problems() {
        let config = config();
        assert_eq!(config.ring_secs, 30);
        assert_eq!(config.timeout_secs, 10);
        assert_eq!(config.api_base, "https://api.twilio.com");
        assert_eq!(config.pin, PinMode::Off);
        assert!(config.problems(Some("https://mfa.example.com")).is_empty());
        assert!(!format!("{config:?}").contains("secret-token"));

        let problems = config.problems(None);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "");
        assert!(problems[0].1.contains("out_of_band.public_url"));

        let mut bad = config.clone();
        bad.from = "5550006".into();
        bad.ring_secs = 1;
        bad.voice = Some("a b".into());
        let keys: Vec<String> = bad
            .problems(Some("https://x"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["from", "ring_secs", "voice"]);
    }

    #[test]
    fn callback_urls_are_under_public_url() {
        let caller = TwilioCaller::new(&config(), "https://mfa.example.com/rampart/").unwrap();
        let callbacks = caller.callbacks();
        assert_eq!(
            callbacks.url(Callback::Gather, "abc"),
            "https://mfa.example.com/rampart/oob/v1/twilio/gather/abc"
        );
        assert_eq!(
            callbacks.url(Callback::Status, "abc"),
            "https://mfa.example.com/rampart/oob/v1/twilio/status/abc"
        );
        let params = vec![("Digits".to_string(), "#".to_string())];
        let url = callbacks.url(Callback::Gather, "abc");
        let good = api::signature(b"secret-token", &url, &params);
        assert!(callbacks.verify(&url, &params, &good));
        let forged = api::signature(b"other-token", &url, &params);
        assert!(!callbacks.verify(&url, &params, &forged));
    }
}
