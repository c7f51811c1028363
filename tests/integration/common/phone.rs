//! A scripted phone. With ntfy it waits for the notification on the user's
//! topic and taps a button exactly as the ntfy Android app does
//! (ntfy-android `UserActionWorker.performHttpAction`): the action's method
//! (POST when unset), its URL, its headers, its body (`""` when unset and the
//! method is not GET/HEAD), the app's User-Agent, and no credentials. With a
//! webhook it runs the receiver (verifying `X-Rampart-Signature` and
//! refusing anything unsigned), then "clicks" the approve/deny/fraud URL the
//! way a browser does: GET the confirmation page, submit its first form.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use super::ntfy::Ntfy;

/// What the phone's user does with the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Approve,
    Deny,
    Fraud,
    /// Looks at it and does nothing.
    Ignore,
    /// Reads it, hesitates, then approves.
    ApproveAfter(Duration),
}

impl Script {
    /// The ntfy button label, if the script taps one.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Script::Approve | Script::ApproveAfter(_) => Some("Approve"),
            Script::Deny => Some("Deny"),
            Script::Fraud => Some("Report fraud"),
            Script::Ignore => None,
        }
    }
}

/// One request the phone sent, kept to replay it.
#[derive(Debug, Clone)]
pub struct Tap {
    pub label: String,
    pub method: String,
    pub url: String,
    pub headers: HashMap<String, String>,
    pub body: Option<String>,
    /// The answer's status code.
    pub status: u16,
}

pub const USER_AGENT: &str = "ntfy/1.16.0 (fdroid; Android 14; SDK 34)";

pub struct Phone {
    http: reqwest::Client,
}

impl Default for Phone {
    fn default() -> Self {
        Phone::new()
    }
}

impl Phone {
    pub fn new() -> Phone {
        Phone {
            // OkHttp in the app: 15 s timeouts.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    /// Waits for notification number `seen` (0-based) on `topic`.
    pub async fn notification(&self, ntfy: &Ntfy, topic: &str, seen: usize) -> Value {
        ntfy.next_message(topic, seen, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no notification on the user's topic"))
    }

    /// Taps the button labelled `label`, as the app does.
    pub async fn tap(&self, notification: &Value, label: &str) -> Tap {
        let action = notification["actions"]
            .as_array()
            .and_then(|actions| actions.iter().find(|a| a["label"] == label))
            .unwrap_or_else(|| panic!("no {label:?} button in {notification}"));
        assert_eq!(
            action["action"], "http",
            "rampart's buttons are http actions"
        );
        let method = action["method"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or("POST")
            .to_uppercase();
        let body = match action["body"].as_str() {
            Some(body) => Some(body.to_string()),
            None if method == "GET" || method == "HEAD" => None,
            None => Some(String::new()),
        };
        let headers: HashMap<String, String> = action["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut tap = Tap {
            label: label.to_string(),
            method,
            url: action["url"].as_str().unwrap().to_string(),
            headers,
            body,
            status: 0,
        };
        tap.status = self.send(&tap).await;
        tap
    }

    /// Sends a tap's request again (a replay).
    pub async fn replay(&self, tap: &Tap) -> u16 {
        self.send(tap).await
    }

    async fn send(&self, tap: &Tap) -> u16 {
        let method = reqwest::Method::from_bytes(tap.method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, &tap.url)
            .header(reqwest::header::USER_AGENT, USER_AGENT);
        for (name, value) in &tap.headers {
            request = request.header(name, value);
        }
        if let Some(body) = &tap.body {
            request = request.body(body.clone());
        }
        match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Waits for notification `seen` on `topic` and plays `script`. Returns
    /// the notification and the tap, if any.
    pub async fn run(
        &self,
        ntfy: &Ntfy,
        topic: &str,
        seen: usize,
        script: Script,
    ) -> (Value, Option<Tap>) {
        let notification = self.notification(ntfy, topic, seen).await;
        if let Script::ApproveAfter(delay) = script {
            // The human's hesitation is the point of this script.
            tokio::time::sleep(delay).await;
        }
        let tap = match script.label() {
            Some(label) => Some(self.tap(&notification, label).await),
            None => None,
        };
        (notification, tap)
    }

    /// Clicks a link from a webhook push as a browser would: GET shows the
    /// confirmation page; its first form is submitted. Returns the GET
    /// status and, if there was a form, the POST status and page.
    pub async fn click(&self, url: &str) -> (u16, Option<(u16, String)>) {
        let page = self.http.get(url).send().await.unwrap();
        let status = page.status().as_u16();
        let html = page.text().await.unwrap();
        let (Some(token), Some(action)) = (hidden_token(&html), form_action(&html)) else {
            return (status, None);
        };
        let action = reqwest::Url::parse(url).unwrap().join(&action).unwrap();
        let answer = self
            .http
            .post(action)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!("t={token}"))
            .send()
            .await
            .unwrap();
        let code = answer.status().as_u16();
        (status, Some((code, answer.text().await.unwrap())))
    }
}

/// The value of the first form's hidden `t` input.
pub fn hidden_token(html: &str) -> Option<String> {
    let marker = "name=\"t\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_string())
}

/// The first form's `action` attribute.
pub fn form_action(html: &str) -> Option<String> {
    let marker = "<form method=\"post\" action=\"";
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(html[start..end].to_string())
}

// ---- the webhook receiver ----

#[derive(Default)]
struct Received {
    pushes: Vec<Value>,
    refused: usize,
}

struct ReceiverState {
    secret: Vec<u8>,
    received: Mutex<Received>,
    changed: Notify,
}

/// A webhook receiver as an organisation would run it: verifies
/// `X-Rampart-Signature` (HMAC-SHA256 over "t.body", 5 minutes tolerance)
/// and answers 401 otherwise.
pub struct WebhookReceiver {
    pub url: String,
    state: Arc<ReceiverState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn signature_ok(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.push(v.to_string()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if timestamp.abs_diff(super::unix_now()) > 300 {
        return false;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    signatures
        .iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())))
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = headers
        .get("x-rampart-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let status = if !signature_ok(&state.secret, header, &body) || !json {
        state.received.lock().unwrap().refused += 1;
        StatusCode::UNAUTHORIZED
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(push) if push["type"] == "rampart.push.v1" => {
                state.received.lock().unwrap().pushes.push(push);
                StatusCode::OK
            }
            _ => StatusCode::BAD_REQUEST,
        }
    };
    state.changed.notify_waiters();
    status
}

impl WebhookReceiver {
    pub fn start(secret: &str) -> WebhookReceiver {
        let state = Arc::new(ReceiverState {
            secret: secret.as_bytes().to_vec(),
            received: Mutex::new(Received::default()),
            changed: Notify::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/rampart-push", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = Router::new()
                        .route("/rampart-push", post(receive))
                        .with_state(shared);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
        });
        WebhookReceiver {
            url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Verified pushes so far.
    pub fn pushes(&self) -> Vec<Value> {
        self.state.received.lock().unwrap().pushes.clone()
    }

    /// Requests refused for a missing or wrong signature.
    pub fn refused(&self) -> usize {
        self.state.received.lock().unwrap().refused
    }

    /// Waits for verified push number `seen` (0-based).
    pub async fn next_push(&self, seen: usize, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(push) = self.pushes().get(seen) {
                return Some(push.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if tokio::time::timeout(left, notified).await.is_err() {
                return self.pushes().get(seen).cloned();
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
