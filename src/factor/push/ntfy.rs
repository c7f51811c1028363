//! ntfy push (<https://docs.ntfy.sh/publish/>): one notification with three
//! action buttons — Approve, Deny, Report fraud — published to the user's own
//! topic.
//!
//! Published "as JSON" (`POST /` on the server with `{"topic", "title",
//! "message", "priority", "tags", "actions"}`, docs "Publish as JSON"), so
//! nothing travels in headers that proxies log. ntfy allows at most three
//! actions (server/actions.go `actionsMax`). Each button is an `http` action:
//! the ntfy app sends the request itself when tapped — method, URL, headers
//! and body exactly as published, body `""` when none is given
//! (ntfy-android `UserActionWorker.performHttpAction`) — and with
//! `clear: true` removes the notification once the request got a 2xx.
//!
//! Where the buttons point:
//! - with `[push] reply_topic`: `POST {url}/{reply_topic}` with the signed
//!   token as the body. That publishes the token to the reply topic, which
//!   rampart reads over an outbound subscription ([`super::relay`]); the
//!   phone never talks to rampart. The app sends no credentials with action
//!   requests, so the reply topic must be writable anonymously — give it a
//!   write-only ACL (`ntfy access everyone REPLY_TOPIC write-only`) and let
//!   only rampart's token read it;
//! - otherwise `POST {public_url}/oob/v1/answer?t=TOKEN` on rampart's HTTP
//!   listener (phones must reach it: VPN, reverse proxy).
//!
//! The topic URL is the user's bearer secret (whoever reads the topic can
//! approve): it is never logged, and errors carry no URL.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::config::is_ntfy_topic;
use super::http_error;
use crate::factor::oob::{ActionLink, Approval, ProviderError, PushSender, PushTarget};
use crate::secret::Secret;

/// Notification title.
pub const TITLE: &str = "Approve sign-in?";

/// Sends pushes to ntfy topics.
pub struct NtfySender {
    http: reqwest::Client,
    server: Option<String>,
    token: Option<Secret<String>>,
    reply_topic: Option<String>,
    priority: u8,
}

impl NtfySender {
    /// A sender. `server` is `[push] url` without a trailing slash: bare
    /// topic names resolve against it, and `token` is sent to it only.
    pub fn new(
        http: reqwest::Client,
        server: Option<String>,
        token: Option<Secret<String>>,
        reply_topic: Option<String>,
        priority: u8,
    ) -> NtfySender {
        NtfySender {
            http,
            server: server.map(|s| s.trim_end_matches('/').to_string()),
            token,
            reply_topic,
            priority,
        }
    }

    fn reply_url(&self) -> Option<String> {
        let server = self.server.as_deref()?;
        Some(format!("{server}/{}", self.reply_topic.as_deref()?))
    }

    /// The JSON published for `approval` on `topic`.
    pub fn message(&self, topic: &str, approval: &Approval) -> Result<Value, ProviderError> {
        Ok(json!({
            "topic": topic,
            "title": TITLE,
            "message": format!(
                "{}.\nTap Approve only if you are signing in right now.",
                approval.message
            ),
            "priority": self.priority,
            "tags": ["closed_lock_with_key"],
            "actions": actions(approval, self.reply_url().as_deref())?,
        }))
    }
}

/// The three buttons. With `reply_url` each POSTs its token there; without,
/// each POSTs to its link on rampart's HTTP listener.
pub fn actions(approval: &Approval, reply_url: Option<&str>) -> Result<Vec<Value>, ProviderError> {
    let button = |label: &str, link: &ActionLink| match (reply_url, &link.url) {
        (Some(reply), _) => Ok(json!({
            "action": "http",
            "label": label,
            "url": reply,
            "method": "POST",
            "body": link.token,
            "clear": true,
        })),
        (None, Some(url)) => Ok(json!({
            "action": "http",
            "label": label,
            "url": url,
            "method": "POST",
            "clear": true,
        })),
        (None, None) => Err(ProviderError::NoTarget(
            "no way to answer: set [push] reply_topic or [out_of_band] public_url",
        )),
    };
    Ok(vec![
        button("Approve", &approval.approve)?,
        button("Deny", &approval.deny)?,
        button("Report fraud", &approval.fraud)?,
    ])
}

/// Splits a user's target into `(server, topic)`: a full topic URL
/// (`https://ntfy.example.com/alice-7Gk2...`), or a bare topic name resolved
/// against `server`.
pub fn split_target(target: &str, server: Option<&str>) -> Result<(String, String), ProviderError> {
    let target = target.trim().trim_end_matches('/');
    let (base, topic) = if target.starts_with("https://") || target.starts_with("http://") {
        let (base, topic) = target
            .rsplit_once('/')
            .ok_or(ProviderError::NoTarget("ntfy topic URL has no topic"))?;
        if base.ends_with('/') || base.ends_with(':') {
            // "https://host" alone: the split found the scheme's slashes.
            return Err(ProviderError::NoTarget("ntfy topic URL has no topic"));
        }
        (base.to_string(), topic)
    } else {
        let base = server.ok_or(ProviderError::NoTarget(
            "bare ntfy topic but no [push] url to resolve it against",
        ))?;
        (base.trim_end_matches('/').to_string(), target)
    };
    if !is_ntfy_topic(topic) {
        return Err(ProviderError::NoTarget("invalid ntfy topic name"));
    }
    Ok((base, topic.to_string()))
}

/// Whether two base URLs name the same server (scheme, host, port, path).
fn same_server(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.origin() == b.origin()
                && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
        }
        _ => false,
    }
}

#[async_trait]
impl PushSender for NtfySender {
    async fn send(&self, target: &PushTarget, approval: &Approval) -> Result<(), ProviderError> {
        let (server, topic) = split_target(target.url.expose(), self.server.as_deref())?;
        let body = self.message(&topic, approval)?;
        let mut request = self.http.post(format!("{server}/")).json(&body);
        // The token is ours: it goes to the configured server only, never to
        // a server named by a user's enrollment.
        if let (Some(token), Some(configured)) = (&self.token, &self.server)
            && same_server(&server, configured)
        {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(ProviderError::from_reqwest)?;
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        // ntfy answers with the message it stored (server.go handlePublish);
        // anything else is a proxy or a wrong URL, not a delivery.
        let stored: Value = response
            .json()
            .await
            .map_err(|_| ProviderError::Protocol("answer is not an ntfy message".into()))?;
        if stored.get("id").and_then(Value::as_str).is_none() {
            return Err(ProviderError::Protocol(
                "answer is not an ntfy message".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_server_and_topic() {
        assert_eq!(
            split_target("https://ntfy.example/alice_7Gk2", None).unwrap(),
            ("https://ntfy.example".into(), "alice_7Gk2".into())
        );
        assert_eq!(
            split_target("http://127.0.0.1:8080/prefix/alice/", None).unwrap(),
            ("http://127.0.0.1:8080/prefix".into(), "alice".into())
        );
        assert_eq!(
            split_target("alice-topic", Some("https://ntfy.example/")).unwrap(),
            ("https://ntfy.example".into(), "alice-topic".into())
        );
        assert!(split_target("alice-topic", None).is_err());
        assert!(split_target("https://ntfy.example", None).is_err());
        assert!(split_target("https://ntfy.example/a.b", None).is_err());
        assert!(split_target("https://ntfy.example/", None).is_err());
    }

    #[test]
    fn same_server_compares_origin_and_path() {
        assert!(same_server("https://ntfy.example", "https://NTFY.example/"));
        assert!(same_server(
            "https://ntfy.example:443",
            "https://ntfy.example"
        ));
        assert!(!same_server("https://ntfy.example", "http://ntfy.example"));
        assert!(!same_server(
            "https://ntfy.example",
            "https://ntfy.example.evil"
        ));
        assert!(!same_server(
            "https://ntfy.example/a",
            "https://ntfy.example"
        ));
    }
}
