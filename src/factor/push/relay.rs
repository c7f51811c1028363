//! The ntfy reply relay: answers come back through the push server itself,
//! over a connection rampart opens, so rampart needs nothing inbound
//! (`shared/notes/protocol.md` §3).
//!
//! The buttons publish their signed token to `[push] reply_topic`
//! ([`super::ntfy`]). This task subscribes to that topic's JSON stream
//! (`GET {url}/{reply_topic}/json`, one JSON object per line: `open` first,
//! then `message` events, and a `keepalive` every 45 s by default — docs
//! "Subscribe via API") and hands every message body to [`super::answer`].
//!
//! When the stream drops, fails, or stays silent longer than two keepalives,
//! it reconnects with exponential backoff (1 s to 30 s) and asks for what it
//! missed with `since=`: the id of the last message it saw (ntfy returns the
//! cached messages after it), or, before any message, the time of the last
//! `open` event — the server's own clock, so clock skew loses nothing — or at
//! first the unix time the relay started. A tap while the connection was
//! down still counts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::answer::{self, Via};
use super::config::{PushConfig, PushFormat};
use super::{PushConfigError, http_error, unix_now};
use crate::factor::oob::{OutOfBand, ProviderError};
use crate::secret::Secret;

/// First retry delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Silence after which the connection is presumed dead: ntfy's default
/// keepalive is 45 s (`keepalive-interval`), the Android app waits 77 s.
const IDLE_LIMIT: Duration = Duration::from_secs(100);
/// Longest line accepted (ntfy's default message limit is 4 KiB, plus JSON).
const MAX_LINE: usize = 64 * 1024;

/// Starts the relay if `[push]` is ntfy with a `reply_topic`; `None`
/// otherwise. The task runs until `cancel` fires.
pub fn spawn_reply_relay(
    config: &PushConfig,
    oob: Arc<OutOfBand>,
    cancel: CancellationToken,
) -> Result<Option<JoinHandle<()>>, PushConfigError> {
    let (PushFormat::Ntfy, Some(topic)) = (config.format, &config.reply_topic) else {
        return Ok(None);
    };
    if let Some((key, message)) = config.problems().into_iter().next() {
        return Err(PushConfigError::Invalid { key, message });
    }
    let server = config.base_url().ok_or_else(|| PushConfigError::Invalid {
        key: "url".into(),
        message: "missing".into(),
    })?;
    let token = config
        .token()
        .map_err(|(key, message)| PushConfigError::Invalid { key, message })?;
    // No overall timeout: the response is a stream that never ends.
    let http = super::http_client(None)?;
    let relay = Relay {
        http,
        url: format!("{server}/{topic}/json"),
        token,
        oob,
        last_id: None,
        since_time: unix_now(),
    };
    Ok(Some(tokio::spawn(relay.run(cancel))))
}

struct Relay {
    http: reqwest::Client,
    /// `{server}/{reply_topic}/json`: a secret, never logged.
    url: String,
    token: Option<Secret<String>>,
    oob: Arc<OutOfBand>,
    /// The id of the last `message` event handled, for `since=`.
    last_id: Option<String>,
    /// Before any message: the server time of the last `open` event (at
    /// first, our start time), for `since=`.
    since_time: u64,
}

/// One line of ntfy's JSON stream (docs "JSON message format").
#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    id: Option<String>,
    event: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    time: Option<u64>,
}

impl Relay {
    async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut opened = false;
            let ended = tokio::select! {
                _ = cancel.cancelled() => break,
                ended = self.subscribe(&mut opened) => ended,
            };
            metrics::gauge!("rampart_push_relay_connected").set(0.0);
            if opened {
                backoff = MIN_BACKOFF;
            }
            let reason = match &ended {
                Ok(()) => "closed",
                Err(error) => error.reason(),
            };
            metrics::counter!("rampart_push_relay_reconnects_total", "reason" => reason)
                .increment(1);
            match ended {
                Ok(()) => info!(
                    retry_in = ?backoff,
                    "ntfy reply relay: the server closed the stream; reconnecting"
                ),
                Err(error) => warn!(
                    %error,
                    retry_in = ?backoff,
                    "ntfy reply relay: subscription failed; retrying"
                ),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        metrics::gauge!("rampart_push_relay_connected").set(0.0);
        debug!("ntfy reply relay stopped");
    }

    /// One subscription, until the stream ends or fails. Sets `opened` once
    /// the server accepted it.
    async fn subscribe(&mut self, opened: &mut bool) -> Result<(), ProviderError> {
        let since = self
            .last_id
            .clone()
            .unwrap_or_else(|| self.since_time.to_string());
        let mut request = self.http.get(&self.url).query(&[("since", since)]);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(ProviderError::from_reqwest)?;
        if !response.status().is_success() {
            return Err(http_error(response).await);
        }
        *opened = true;
        metrics::gauge!("rampart_push_relay_connected").set(1.0);
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(IDLE_LIMIT, stream.next()).await {
                Err(_) => return Err(ProviderError::Timeout),
                Ok(None) => return Ok(()),
                Ok(Some(Err(error))) => return Err(ProviderError::from_reqwest(error)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                self.handle_line(&line);
            }
            if buffer.len() > MAX_LINE {
                return Err(ProviderError::Protocol("line too long".into()));
            }
        }
    }

    fn handle_line(&mut self, line: &[u8]) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Event>(line) else {
            warn!("ntfy reply relay: unreadable line skipped");
            return;
        };
        match event.event.as_str() {
            "message" => {
                // Message ids are short random strings (ntfy messageIDLength);
                // anything else is not worth sending back as since=.
                if let Some(id) = event.id.filter(|id| {
                    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
                }) {
                    self.last_id = Some(id);
                }
                let body = event.message.unwrap_or_default();
                let _ = answer::apply(&self.oob, body.trim(), unix_now(), Via::NtfyRelay);
            }
            "open" => {
                if let Some(time) = event.time {
                    self.since_time = time;
                }
                info!("ntfy reply relay subscribed");
            }
            // keepalive, poll_request, and whatever later versions add.
            _ => {}
        }
    }
}
