//! The vendor-neutral push provider (`[push]`): a notification with Approve,
//! Deny and Report-fraud buttons, delivered either as a signed webhook
//! ([`webhook`]) or through an ntfy server ([`ntfy`]).
//!
//! The provider only delivers. Answers come back as signed single-use tokens
//! ([`crate::factor::oob::token`]) through one of two doors, both ending in
//! [`answer::apply`]:
//! - rampart's HTTP listener, `POST /oob/v1/answer` (`crate::http`), when
//!   phones can reach it (`[out_of_band] public_url`);
//! - the ntfy reply topic ([`relay`]), when they cannot: the buttons publish
//!   the token to a topic rampart reads over an outbound connection.

pub mod answer;
pub mod config;
pub mod ntfy;
pub mod relay;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{PushConfig, PushFormat};
pub use relay::spawn_reply_relay;

use crate::factor::oob::{ProviderError, PushSender, PushTarget};
use crate::secret::Secret;

/// Why `[push]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PushConfigError {
    /// A key is wrong (the same problems `check-config` reports).
    #[error("push.{key}: {message}")]
    Invalid {
        /// Key relative to `[push]`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Builds the sender for `[push]`, and the default target: `url` for the
/// webhook format (one receiver routing by user). ntfy has none: every user
/// enrolls a topic of their own, because whoever reads a topic can approve.
pub fn build(
    config: &PushConfig,
) -> Result<(Arc<dyn PushSender>, Option<PushTarget>), PushConfigError> {
    if let Some((key, message)) = config.problems().into_iter().next() {
        return Err(PushConfigError::Invalid { key, message });
    }
    let invalid = |(key, message)| PushConfigError::Invalid { key, message };
    let http = http_client(Some(Duration::from_secs(config.timeout_secs)))?;
    match config.format {
        PushFormat::Webhook => {
            let secret = config.signing_secret().map_err(invalid)?.ok_or_else(|| {
                PushConfigError::Invalid {
                    key: "signing_secret".into(),
                    message: "missing".into(),
                }
            })?;
            let target = config.url.clone().map(|url| PushTarget {
                url: Secret::new(url),
            });
            Ok((Arc::new(webhook::WebhookSender::new(http, secret)), target))
        }
        PushFormat::Ntfy => {
            let sender = ntfy::NtfySender::new(
                http,
                config.base_url().map(str::to_string),
                config.token().map_err(invalid)?,
                config.reply_topic.clone(),
                config.priority,
            );
            Ok((Arc::new(sender), None))
        }
    }
}

/// The HTTP client for push services: rustls, no redirects (a redirect could
/// carry a bearer token or a topic elsewhere), rampart's user agent, and
/// `timeout` for the whole exchange when given.
pub(crate) fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, PushConfigError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5));
    if let Some(timeout) = timeout {
        builder = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)));
    }
    builder
        .build()
        .map_err(|e| PushConfigError::Client(e.without_url().to_string()))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A non-2xx answer as a [`ProviderError`]. Only the `error` field of a JSON
/// body (ntfy's error format, server/errors.go) is kept: an arbitrary body
/// could echo the request, and the request carries a topic or a token.
pub(crate) async fn http_error(response: reqwest::Response) -> ProviderError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|body| body.get("error")?.as_str().map(str::to_string))
        .map(|m| {
            m.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    ProviderError::Status {
        status: status.as_u16(),
        message,
    }
}
