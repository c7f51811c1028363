//! An ntfy-compatible server, the subset rampart and the ntfy app use, checked
//! the way ntfy checks it (binwiederhier/ntfy server/server.go, actions.go,
//! errors.go):
//!
//! - `POST|PUT /` publish as JSON: body must be JSON (else 40024), `topic`
//!   must match `^[-_A-Za-z0-9]{1,64}$` (40009), `priority` 0..=5 (40007),
//!   at most 3 `actions`, each `view|broadcast|http` with a `label`, a `url`
//!   for view/http, and no body with GET/HEAD (40018); an empty message
//!   becomes `"triggered"`. Answers with the stored message.
//! - `POST|PUT /{topic}` publish the body as the message (`Title`,
//!   `Priority`, `Tags` headers, with or without `X-`).
//! - `GET /{topic}/json` the NDJSON stream: an `open` event, the cached
//!   messages selected by `since=` (`all`, `none`, a message id — unknown ids
//!   select all, as ntfy's `id > COALESCE(..., 0)` query does —, a unix time
//!   or a duration such as `10m`), then live messages and a `keepalive` every
//!   interval. `poll=1` returns the cached messages and closes.
//! - Auth when configured: a bad `Authorization` (Bearer token, or Basic with
//!   an empty user and the token as password) is 401 (40101) before anything
//!   else; a topic the caller may not read/write is 403 (40301). Anonymous
//!   callers get only what `everyone` grants (ntfy's `auth-default-access:
//!   deny-all`).
//!
//! Tests read messages per topic, wait for new ones, count live
//! subscriptions, see each subscription's `since`, and cut every stream to
//! simulate a network drop.

#![allow(dead_code)]

mod auth;
mod publish;
mod subscribe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};

/// What a token or `everyone` may do on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    ReadWrite,
    ReadOnly,
    WriteOnly,
}

impl Perm {
    fn read(self) -> bool {
        matches!(self, Perm::ReadWrite | Perm::ReadOnly)
    }
    fn write(self) -> bool {
        matches!(self, Perm::ReadWrite | Perm::WriteOnly)
    }
}

/// Access control, as with ntfy's `auth-file` and `auth-default-access: deny-all`.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// `(token, topic or "*", permission)`.
    pub tokens: Vec<(String, String, Perm)>,
    /// Anonymous grants: `(topic or "*", permission)`.
    pub everyone: Vec<(String, Perm)>,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// None: no auth at all (ntfy without an auth file).
    pub auth: Option<Auth>,
    /// Keepalive interval of subscriptions (ntfy default 45 s).
    pub keepalive: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: None,
            keepalive: Duration::from_secs(45),
        }
    }
}

/// One request the server saw, for tests (headers lowercased).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HashMap<String, String>,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    /// Every message, all topics, in publish order.
    messages: Vec<Value>,
    requests: Vec<Seen>,
    subscribers: usize,
}

struct Shared {
    options: Options,
    inner: Mutex<Inner>,
    changed: Notify,
    live: broadcast::Sender<Value>,
    cut: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }
}

/// The running emulator; stops when dropped.
pub struct Ntfy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ntfy {
    pub fn start() -> Ntfy {
        Ntfy::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Ntfy {
        let (live, _) = broadcast::channel(1024);
        let (cut, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            options,
            inner: Mutex::new(Inner::default()),
            changed: Notify::new(),
            live,
            cut,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        // Its own runtime on its own thread: usable from sync and async tests,
        // and independent of the runtime of the code under test.
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let cut = state.cut.clone();
                let app = Router::new()
                    .route("/", post(publish::json).put(publish::json))
                    .route("/{topic}", post(publish::body).put(publish::body))
                    .route("/{topics}/json", get(subscribe::json))
                    .with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                        // End the streams so graceful shutdown does not wait on them.
                        cut.send_modify(|n| *n += 1);
                    })
                    .await;
            });
        });
        Ntfy {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `{url}/{topic}`
    pub fn topic_url(&self, topic: &str) -> String {
        format!("{}/{topic}", self.url)
    }

    /// Messages of `topic`, oldest first.
    pub fn messages(&self, topic: &str) -> Vec<Value> {
        self.shared
            .lock()
            .messages
            .iter()
            .filter(|m| m["topic"] == topic)
            .cloned()
            .collect()
    }

    /// Waits until `topic` has more than `seen` messages; returns message `seen`.
    pub async fn next_message(&self, topic: &str, seen: usize, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(message) = self.messages(topic).get(seen) {
                return Some(message.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if tokio::time::timeout(left, notified).await.is_err() {
                return self.messages(topic).get(seen).cloned();
            }
        }
    }

    /// Live subscriptions now.
    pub fn subscribers(&self) -> usize {
        self.shared.lock().subscribers
    }

    /// Waits until exactly `n` subscriptions are open.
    pub async fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.subscribers() == n {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            if tokio::time::timeout(left, notified).await.is_err() {
                return self.subscribers() == n;
            }
        }
    }

    /// Ends every open stream, as a dropped connection would.
    pub fn cut_streams(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }
}

impl Drop for Ntfy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn valid_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    rand::random::<[u8; 12]>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn record(
    shared: &Shared,
    method: &str,
    path: &str,
    query: Option<String>,
    headers: &HeaderMap,
    status: u16,
) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    shared.lock().requests.push(Seen {
        method: method.into(),
        path: path.into(),
        query,
        headers,
        status,
    });
}
