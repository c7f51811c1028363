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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
                    .route("/", post(publish_json).put(publish_json))
                    .route("/{topic}", post(publish_body).put(publish_body))
                    .route("/{topics}/json", get(subscribe))
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

// ---- errors, as server/errors.go ----

/// ntfy's `errHTTP`.
pub struct NtfyError {
    http: u16,
    code: u32,
    message: String,
}

fn error(http: u16, code: u32, message: &str) -> NtfyError {
    NtfyError {
        http,
        code,
        message: message.to_string(),
    }
}

impl IntoResponse for NtfyError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "http": self.http, "error": self.message});
        (
            StatusCode::from_u16(self.http).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    }
}

fn unauthorized() -> NtfyError {
    error(401, 40101, "unauthorized")
}
fn forbidden() -> NtfyError {
    error(403, 40301, "forbidden")
}

// ---- auth, as maybeAuthenticate / authorizeTopic* ----

enum Caller {
    Anonymous,
    Token(String),
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<Caller, NtfyError> {
    let Some(auth) = &shared.options.auth else {
        return Ok(Caller::Anonymous);
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_string();
    let lower = value.to_ascii_lowercase();
    if !(lower.starts_with("basic ") || lower.starts_with("bearer ")) {
        return Ok(Caller::Anonymous);
    }
    let token = if let Some(rest) = value.strip_prefix("Bearer") {
        rest.trim().to_string()
    } else {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value[6..].trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(unauthorized)?;
        match decoded.split_once(':') {
            // An empty user name means "the password is a token".
            Some(("", password)) => password.to_string(),
            _ => return Err(unauthorized()),
        }
    };
    if auth.tokens.iter().any(|(t, _, _)| *t == token) {
        Ok(Caller::Token(token))
    } else {
        Err(unauthorized())
    }
}

fn authorize(shared: &Shared, caller: &Caller, topic: &str, write: bool) -> Result<(), NtfyError> {
    let Some(auth) = &shared.options.auth else {
        return Ok(());
    };
    let allows = |pattern: &str, perm: Perm| {
        (pattern == "*" || pattern == topic) && if write { perm.write() } else { perm.read() }
    };
    let granted = match caller {
        Caller::Anonymous => auth.everyone.iter().any(|(t, p)| allows(t, *p)),
        Caller::Token(token) => {
            auth.tokens
                .iter()
                .any(|(t, topic, p)| t == token && allows(topic, *p))
                || auth.everyone.iter().any(|(t, p)| allows(t, *p))
        }
    };
    if granted { Ok(()) } else { Err(forbidden()) }
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

// ---- publishing ----

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Action {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<HashMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    body: String,
    #[serde(default)]
    clear: bool,
}

/// ntfy's `publishMessage` (the JSON publish body), the fields rampart uses.
#[derive(Debug, Deserialize)]
struct PublishMessage {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    actions: Vec<Action>,
}

/// actions.go `parseActions` validation.
fn check_actions(actions: &mut [Action]) -> Result<(), String> {
    for action in actions.iter_mut() {
        action.id = random_id()[..10].to_string();
        action.action = action.action.to_lowercase();
        action.method = action.method.to_uppercase();
    }
    if actions.len() > 3 {
        return Err("only 3 actions allowed".into());
    }
    for action in actions.iter() {
        if !["view", "broadcast", "http"].contains(&action.action.as_str()) {
            return Err(format!("action '{}' unknown", action.action));
        } else if action.label.is_empty() {
            return Err("parameter 'label' is required".into());
        } else if ["view", "http"].contains(&action.action.as_str()) && action.url.is_empty() {
            return Err(format!(
                "parameter 'url' is required for action '{}'",
                action.action
            ));
        } else if action.action == "http"
            && ["GET", "HEAD"].contains(&action.method.as_str())
            && !action.body.is_empty()
        {
            return Err(format!(
                "parameter 'body' cannot be set if method is {}",
                action.method
            ));
        }
    }
    Ok(())
}

fn store(shared: &Shared, mut message: PublishMessage) -> Result<Value, NtfyError> {
    if !(0..=5).contains(&message.priority) {
        return Err(error(400, 40007, "invalid priority parameter"));
    }
    if let Err(detail) = check_actions(&mut message.actions) {
        return Err(error(
            400,
            40018,
            &format!("invalid request: actions invalid, {detail}"),
        ));
    }
    if message.message.is_empty() {
        message.message = "triggered".into();
    }
    let time = now();
    let mut stored = json!({
        "id": random_id(),
        "time": time,
        "expires": time + 12 * 3600,
        "event": "message",
        "topic": message.topic,
        "message": message.message,
    });
    if !message.title.is_empty() {
        stored["title"] = json!(message.title);
    }
    if message.priority != 0 {
        stored["priority"] = json!(message.priority);
    }
    if !message.tags.is_empty() {
        stored["tags"] = json!(message.tags);
    }
    if !message.actions.is_empty() {
        stored["actions"] = json!(message.actions);
    }
    shared.lock().messages.push(stored.clone());
    let _ = shared.live.send(stored.clone());
    shared.changed.notify_waiters();
    Ok(stored)
}

fn published(stored: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{stored}\n"),
    )
        .into_response()
}

async fn publish_json(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = (|| {
        let caller = authenticate(&shared, &headers)?;
        let message: PublishMessage = serde_json::from_slice(&body).map_err(|_| {
            error(
                400,
                40024,
                "invalid request: request body must be valid JSON",
            )
        })?;
        if !valid_topic(&message.topic) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        authorize(&shared, &caller, &message.topic, true)?;
        store(&shared, message)
    })()
    .map(published)
    .unwrap_or_else(IntoResponse::into_response);
    record(
        &shared,
        "POST",
        "/",
        query,
        &headers,
        response.status().as_u16(),
    );
    shared.changed.notify_waiters();
    response
}

fn header_any(headers: &HeaderMap, names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()))
        .unwrap_or("")
        .to_string()
}

async fn publish_body(
    State(shared): State<Arc<Shared>>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = (|| {
        let caller = authenticate(&shared, &headers)?;
        if !valid_topic(&topic) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        authorize(&shared, &caller, &topic, true)?;
        let message = String::from_utf8(body.to_vec())
            .map_err(|_| error(400, 40011, "invalid message: message must be UTF-8 encoded"))?;
        let priority = match header_any(&headers, &["x-priority", "priority", "prio", "p"]).as_str()
        {
            "" => 0,
            "1" | "min" => 1,
            "2" | "low" => 2,
            "3" | "default" => 3,
            "4" | "high" => 4,
            "5" | "max" | "urgent" => 5,
            _ => return Err(error(400, 40007, "invalid priority parameter")),
        };
        let tags = header_any(&headers, &["x-tags", "tags", "tag", "ta"]);
        let actions_text = header_any(&headers, &["x-actions", "actions", "action"]);
        let actions = if actions_text.is_empty() {
            Vec::new()
        } else {
            // The emulator reads the JSON form only, not ntfy's "simple" format.
            serde_json::from_str(&actions_text).map_err(|e| {
                error(
                    400,
                    40018,
                    &format!("invalid request: actions invalid, {e}"),
                )
            })?
        };
        store(
            &shared,
            PublishMessage {
                topic: topic.clone(),
                title: header_any(&headers, &["x-title", "title", "t"]),
                message,
                priority,
                tags: tags
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                actions,
            },
        )
    })()
    .map(published)
    .unwrap_or_else(IntoResponse::into_response);
    record(
        &shared,
        "POST",
        &format!("/{topic}"),
        query,
        &headers,
        response.status().as_u16(),
    );
    shared.changed.notify_waiters();
    response
}

// ---- subscribing ----

enum Since {
    None,
    All,
    Id(String),
    Time(i64),
}

/// server.go `parseSince`.
fn parse_since(value: Option<&str>, poll: bool) -> Result<Since, NtfyError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(if poll { Since::All } else { Since::None });
    };
    if value == "all" {
        return Ok(Since::All);
    }
    if value == "none" {
        return Ok(Since::None);
    }
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(Since::Id(value.to_string()));
    }
    if let Ok(unix) = value.parse::<i64>() {
        return Ok(Since::Time(unix));
    }
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let seconds = match (number.parse::<i64>(), unit) {
        (Ok(n), "s") => n,
        (Ok(n), "m") => n * 60,
        (Ok(n), "h") => n * 3600,
        _ => return Err(error(400, 40008, "invalid since parameter")),
    };
    Ok(Since::Time(now() - seconds))
}

fn cached(inner: &Inner, topics: &[String], since: &Since) -> Vec<Value> {
    let of_topics = inner
        .messages
        .iter()
        .filter(|m| topics.iter().any(|t| m["topic"] == t.as_str()));
    match since {
        Since::None => Vec::new(),
        Since::All => of_topics.cloned().collect(),
        Since::Time(t) => of_topics
            .filter(|m| m["time"].as_i64().unwrap_or(0) >= *t)
            .cloned()
            .collect(),
        Since::Id(id) => {
            let all: Vec<Value> = of_topics.cloned().collect();
            match all.iter().position(|m| m["id"] == id.as_str()) {
                Some(index) => all[index + 1..].to_vec(),
                // `id > COALESCE((SELECT id ... WHERE mid = ?), 0)`: all of them.
                None => all,
            }
        }
    }
}

fn line(value: &Value) -> Bytes {
    Bytes::from(format!("{value}\n"))
}

/// Counts a subscription while its stream lives.
struct Subscribed(Arc<Shared>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.lock().subscribers -= 1;
        self.0.changed.notify_waiters();
    }
}

struct Stream {
    queue: VecDeque<Bytes>,
    live: broadcast::Receiver<Value>,
    cut: watch::Receiver<u64>,
    keepalive: tokio::time::Interval,
    topics: Vec<String>,
    sent: HashSet<String>,
    _subscribed: Subscribed,
}

async fn subscribe(
    State(shared): State<Arc<Shared>>,
    Path(topics): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let param = |name: &str| {
        query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let path = format!("/{topics}/json");
    let prepared = (|| {
        let caller = authenticate(&shared, &headers)?;
        let topics: Vec<String> = topics.split(',').map(str::to_string).collect();
        if !topics.iter().all(|t| valid_topic(t)) {
            return Err(error(400, 40009, "invalid request: topic invalid"));
        }
        for topic in &topics {
            authorize(&shared, &caller, topic, false)?;
        }
        let poll = matches!(param("poll").as_deref(), Some("1" | "true" | "yes"));
        let since = parse_since(param("since").as_deref(), poll)?;
        Ok((topics, poll, since))
    })();
    let (topics, poll, since) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let response = error.into_response();
            record(
                &shared,
                "GET",
                &path,
                query,
                &headers,
                response.status().as_u16(),
            );
            return response;
        }
    };
    record(&shared, "GET", &path, query.clone(), &headers, 200);
    // Subscribe to live messages before reading the cache, then skip what
    // the cache already gave: nothing is lost or sent twice in between.
    let live = shared.live.subscribe();
    let cut = shared.cut.subscribe();
    let (old, subscribed) = {
        let mut inner = shared.lock();
        inner.subscribers += 1;
        (cached(&inner, &topics, &since), Subscribed(shared.clone()))
    };
    shared.changed.notify_waiters();
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    if !poll {
        queue.push_back(line(&json!({
            "id": random_id(),
            "time": now(),
            "event": "open",
            "topic": topics.join(","),
        })));
    }
    let sent: HashSet<String> = old
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    queue.extend(old.iter().map(line));
    if poll {
        drop(subscribed);
        let body: Vec<u8> = queue.into_iter().flat_map(|b| b.to_vec()).collect();
        return ndjson(Body::from(body));
    }
    let keepalive_every = shared.options.keepalive;
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + keepalive_every,
        keepalive_every,
    );
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cut = cut;
    cut.borrow_and_update();
    let stream = Stream {
        queue,
        live,
        cut,
        keepalive,
        topics,
        sent,
        _subscribed: subscribed,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        loop {
            if let Some(next) = s.queue.pop_front() {
                return Some((Ok::<Bytes, std::io::Error>(next), s));
            }
            tokio::select! {
                _ = s.cut.changed() => return None,
                message = s.live.recv() => match message {
                    Ok(m) => {
                        let id = m["id"].as_str().unwrap_or("").to_string();
                        if s.topics.iter().any(|t| m["topic"] == t.as_str()) && s.sent.insert(id) {
                            s.queue.push_back(line(&m));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = s.keepalive.tick() => {
                    s.queue.push_back(line(&json!({
                        "id": random_id(),
                        "time": now(),
                        "event": "keepalive",
                        "topic": s.topics.join(","),
                    })));
                }
            }
        }
    });
    ndjson(Body::from_stream(body))
}

fn ndjson(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")
        .body(body)
        .unwrap()
}
