//! `[push]`: where push notifications go and how they are authenticated.
//!
//! ```toml
//! [push]
//! format = "ntfy"                      # or "webhook"
//! url = "https://ntfy.example.com"     # ntfy: the server; webhook: one URL for everybody
//! token_file = "/etc/rampart/ntfy.token"
//! reply_topic = "rampart-replies-8kq2v0d7x3m9w1zt"
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

/// Which push service speaks at the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushFormat {
    /// A signed JSON POST to a URL the organisation runs (it forwards to its
    /// own app, chat, pager...). See [`super::webhook`].
    Webhook,
    /// An ntfy server (ntfy.sh or self-hosted): a notification with action
    /// buttons on the user's own topic. See [`super::ntfy`].
    Ntfy,
}

impl PushFormat {
    /// Name used in config, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            PushFormat::Webhook => "webhook",
            PushFormat::Ntfy => "ntfy",
        }
    }
}

/// Shortest reply topic accepted: the reply topic is a bearer name on a
/// server the phones can reach, so it must not be guessable (20 characters of
/// `[-_A-Za-z0-9]` are about 119 bits when random).
pub const MIN_REPLY_TOPIC_LEN: usize = 20;

/// Shortest webhook signing secret accepted (an HMAC-SHA256 key).
pub const MIN_SIGNING_SECRET_LEN: usize = 16;

/// `[push]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// `"webhook"` or `"ntfy"`. Required.
    pub format: PushFormat,
    /// Webhook: the URL every push is POSTed to (the receiver routes by
    /// `user`); users with a URL of their own in enrollment use theirs.
    /// ntfy: the server's base URL (`https://ntfy.example.com`): users'
    /// topics from enrollment may then be bare topic names, the access token
    /// is sent to this server only, and the reply topic lives here.
    #[serde(default)]
    pub url: Option<String>,
    /// Webhook: the HMAC-SHA256 key for `X-Rampart-Signature`, inline.
    #[serde(default, deserialize_with = "secret")]
    pub signing_secret: Option<Secret<String>>,
    /// Webhook: the signing key read from a file (trailing newline removed).
    #[serde(default)]
    pub signing_secret_file: Option<String>,
    /// ntfy: access token (`tk_...`), sent as `Authorization: Bearer`, inline.
    #[serde(default, deserialize_with = "secret")]
    pub token: Option<Secret<String>>,
    /// ntfy: the access token read from a file.
    #[serde(default)]
    pub token_file: Option<String>,
    /// ntfy: a long random topic on `url` that the buttons publish answers
    /// to; rampart subscribes to it over an outbound connection, so the
    /// phone never needs to reach rampart. Unset: buttons call
    /// `[out_of_band] public_url` directly.
    #[serde(default)]
    pub reply_topic: Option<String>,
    /// Seconds to wait for the push service to accept a notification.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// ntfy priority, 1 (min) to 5 (max). Default 4 (high): the user is
    /// waiting at a login prompt.
    #[serde(default = "default_priority")]
    pub priority: u8,
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The reply topic is a bearer name too: never printed.
        f.debug_struct("PushConfig")
            .field("format", &self.format)
            .field("url", &self.url)
            .field("signing_secret", &self.signing_secret)
            .field("signing_secret_file", &self.signing_secret_file)
            .field("token", &self.token)
            .field("token_file", &self.token_file)
            .field("reply_topic", &self.reply_topic.as_ref().map(|_| "***"))
            .field("timeout_secs", &self.timeout_secs)
            .field("priority", &self.priority)
            .finish()
    }
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

fn default_timeout() -> u64 {
    10
}

fn default_priority() -> u8 {
    4
}

/// Whether `topic` is a valid ntfy topic name (ntfy's `topicRegex`,
/// `^[-_A-Za-z0-9]{1,64}$`, server/server.go).
pub fn is_ntfy_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn inline_or_file(
    inline: &Option<Secret<String>>,
    file: &Option<String>,
    key: &'static str,
) -> Result<Option<Secret<String>>, (String, String)> {
    match (inline, file) {
        (Some(_), Some(_)) => Err((
            key.to_string(),
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => crate::config::read_secret_file(path)
            .map(|value| Some(Secret::new(value)))
            .map_err(|message| (format!("{key}_file"), message)),
        (None, None) => Ok(None),
    }
}

impl PushConfig {
    /// The webhook signing key, inline or from its file.
    pub fn signing_secret(&self) -> Result<Option<Secret<String>>, (String, String)> {
        inline_or_file(
            &self.signing_secret,
            &self.signing_secret_file,
            "signing_secret",
        )
    }

    /// The ntfy access token, inline or from its file.
    pub fn token(&self) -> Result<Option<Secret<String>>, (String, String)> {
        inline_or_file(&self.token, &self.token_file, "token")
    }

    /// `url` without a trailing slash.
    pub fn base_url(&self) -> Option<&str> {
        self.url.as_deref().map(|url| url.trim_end_matches('/'))
    }

    /// Problems as `(key, message)`, keys relative to `[push]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut add = |key: &str, message: String| problems.push((key.to_string(), message));
        if !(1..=60).contains(&self.timeout_secs) {
            add("timeout_secs", "must be between 1 and 60 seconds".into());
        }
        if let Some(url) = &self.url
            && let Err(message) = check_url(url)
        {
            add("url", message);
        }
        let signing = self.signing_secret();
        let token = self.token();
        match self.format {
            PushFormat::Webhook => {
                match signing {
                    Err((key, message)) => add(&key, message),
                    Ok(None) => add(
                        "signing_secret",
                        "missing: a webhook needs signing_secret or signing_secret_file so the receiver can tell rampart's pushes from forgeries".into(),
                    ),
                    Ok(Some(secret)) if secret.expose().len() < MIN_SIGNING_SECRET_LEN => add(
                        "signing_secret",
                        format!("too short: use at least {MIN_SIGNING_SECRET_LEN} random characters"),
                    ),
                    Ok(Some(_)) => {}
                }
                if self.token.is_some() || self.token_file.is_some() {
                    add("token", "only used with format = \"ntfy\"".into());
                }
                if self.reply_topic.is_some() {
                    add("reply_topic", "only used with format = \"ntfy\"".into());
                }
            }
            PushFormat::Ntfy => {
                if self.signing_secret.is_some() || self.signing_secret_file.is_some() {
                    add(
                        "signing_secret",
                        "only used with format = \"webhook\"".into(),
                    );
                }
                match token {
                    Err((key, message)) => add(&key, message),
                    Ok(Some(token)) if token.expose().trim().is_empty() => {
                        add("token", "is empty".into())
                    }
                    Ok(Some(_)) if self.url.is_none() => add(
                        "url",
                        "missing: the access token is sent only to this server; set url = \"https://ntfy.example.com\"".into(),
                    ),
                    Ok(_) => {}
                }
                if let Some(url) = &self.url
                    && (url.contains('?') || url.contains('#'))
                {
                    add(
                        "url",
                        "must be the server's base URL, without query or fragment".into(),
                    );
                }
                if let Some(topic) = &self.reply_topic {
                    if !is_ntfy_topic(topic) {
                        add(
                            "reply_topic",
                            "must be 1 to 64 characters of A-Z, a-z, 0-9, - and _ (an ntfy topic name)".into(),
                        );
                    } else if topic.len() < MIN_REPLY_TOPIC_LEN {
                        add(
                            "reply_topic",
                            format!(
                                "too short to be unguessable: use at least {MIN_REPLY_TOPIC_LEN} random characters"
                            ),
                        );
                    }
                    if self.url.is_none() {
                        add(
                            "url",
                            "missing: reply_topic lives on the ntfy server named by url".into(),
                        );
                    }
                }
                if !(1..=5).contains(&self.priority) {
                    add("priority", "must be between 1 (min) and 5 (max)".into());
                }
            }
        }
        problems
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// (or http:// on a trusted network)")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err("must name a host (and no user:password@)".into());
    }
    reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same serde derive as the TOML file, fed JSON for brevity.
    fn parse(json: &str) -> PushConfig {
        serde_json::from_str(json).unwrap()
    }

    fn keys(config: &PushConfig) -> Vec<String> {
        config.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn webhook_needs_a_signing_secret() {
        let config = parse(r#"{"format":"webhook","url":"https://hooks.example/push"}"#);
        assert_eq!(keys(&config), ["signing_secret"]);
        let config = parse(
            r#"{"format":"webhook","url":"https://hooks.example/push","signing_secret":"0123456789abcdef0123"}"#,
        );
        assert!(config.problems().is_empty());
        let config = parse(r#"{"format":"webhook","signing_secret":"short"}"#);
        assert_eq!(keys(&config), ["signing_secret"]);
    }

    #[test]
    fn ntfy_reply_topic_must_be_long_valid_and_on_a_server() {
        let config = parse(r#"{"format":"ntfy","reply_topic":"short"}"#);
        assert_eq!(keys(&config), ["reply_topic", "url"]);
        let config = parse(
            r#"{"format":"ntfy","url":"https://ntfy.example","reply_topic":"has/slash-and-is-long-enough"}"#,
        );
        assert_eq!(keys(&config), ["reply_topic"]);
        let config = parse(
            r#"{"format":"ntfy","url":"https://ntfy.example","reply_topic":"rampart-replies-8kq2v0d7x3m9"}"#,
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn ntfy_token_goes_to_a_named_server_only() {
        let config = parse(r#"{"format":"ntfy","token":"tk_abc"}"#);
        assert_eq!(keys(&config), ["url"]);
        let config = parse(r#"{"format":"ntfy","url":"ftp://x","priority":9}"#);
        assert_eq!(keys(&config), ["url", "priority"]);
        let config = parse(r#"{"format":"ntfy","url":"https://a@b/"}"#);
        assert_eq!(keys(&config), ["url"]);
    }

    #[test]
    fn keys_of_the_other_format_are_errors() {
        let config =
            parse(r#"{"format":"ntfy","signing_secret":"0123456789abcdef0123","timeout_secs":0}"#);
        assert_eq!(keys(&config), ["timeout_secs", "signing_secret"]);
        let config = parse(
            r#"{"format":"webhook","signing_secret":"0123456789abcdef0123","token":"tk","reply_topic":"x"}"#,
        );
        assert_eq!(keys(&config), ["token", "reply_topic"]);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let config = parse(
            r#"{"format":"webhook","signing_secret":"very-secret-signing-key","reply_topic":"secret-topic-name-here"}"#,
        );
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(!text.contains("secret-topic"), "{text}");
    }

    #[test]
    fn topic_names_follow_ntfy() {
        assert!(is_ntfy_topic("alice_phone-01"));
        assert!(!is_ntfy_topic(""));
        assert!(!is_ntfy_topic("a.b"));
        assert!(!is_ntfy_topic(&"a".repeat(65)));
    }
}
