//! A Twilio emulator: the two REST resources rampart uses, checked the way
//! Twilio checks them, and a scripted callee per number that "answers" calls
//! by POSTing signed callbacks back like Twilio does.
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and `.../Calls.json`
//!   need HTTP Basic `AccountSid:AuthToken` (else 401 with Twilio's error
//!   `{"code":20003,"message":"Authenticate","status":401}`), the path's
//!   AccountSid must be the authenticated one (else 404, 20404), `To` must be
//!   E.164 (21211). Messages need `From` or `MessagingServiceSid` (21603) and a
//!   `Body` (21602) of at most 1600 characters (21617). Calls need `From`
//!   (21213) and `Url` or `Twiml` (21205); an inline `Twiml` must be
//!   well-formed XML with a `<Gather>` whose `action` is absolute (12100).
//!   Success is `201 Created` with the new `sid`.
//! - A placed call runs its number's [`Callee`] script: the `<Gather action>`
//!   gets a form POST with `AccountSid`, `CallSid`, `Digits`, `From`, `To`,
//!   `CallStatus`, ... and `X-Twilio-Signature` (base64 HMAC-SHA1 keyed with
//!   the auth token over the action URL and the sorted parameters — computed
//!   here independently of rampart's code), then the `StatusCallback` gets the
//!   final status. [`Twilio::sign_with`] signs with another token, to prove
//!   forged callbacks are refused.
//!
//! Callbacks are signed for the URL rampart gave (its `public_url`), but may be
//! delivered to another address ([`Twilio::deliver_callbacks_to`]), like a
//! reverse proxy in front of rampart would.
//!
//! The server runs on its own thread and runtime (usable from sync and async
//! tests), on 127.0.0.1 port 0, and stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use hmac::{KeyInit, Mac};

/// The emulated account.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "emu-Tw1lio-auth-token";
/// A Twilio number of the account.
pub const FROM: &str = "+15005550006";

/// What the person at a number does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    /// Answers and presses this key (`"#"`, `"9"`, `"1"`).
    Press(&'static str),
    /// Answers after a while, then presses the key.
    Late(Duration, &'static str),
    /// Does not pick up: the status callback says `no-answer`.
    NoAnswer,
    /// Line busy: the status callback says `busy`.
    Busy,
    /// Answers and presses nothing (voicemail): `completed` without a gather.
    Silent,
}

/// One SMS Twilio accepted.
#[derive(Debug, Clone)]
pub struct Sms {
    pub to: String,
    /// `From` or `MessagingServiceSid`, as sent.
    pub sender: (String, String),
    pub body: String,
}

/// A callback the emulator delivered, and what rampart answered.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// `gather` or `status`.
    pub kind: &'static str,
    /// The URL signed (as given to Twilio).
    pub url: String,
    pub params: Vec<(String, String)>,
    /// rampart's HTTP status (0 when unreachable).
    pub status: u16,
    pub body: String,
}

/// One call Twilio accepted.
#[derive(Debug, Clone)]
pub struct Call {
    pub sid: String,
    pub to: String,
    pub from: String,
    /// Every form parameter of the create request.
    pub params: Vec<(String, String)>,
    /// The Gather's attributes, unescaped.
    pub gather: HashMap<String, String>,
    /// Text of every `<Say>`, unescaped.
    pub said: Vec<String>,
    pub callbacks: Vec<Delivered>,
    /// The callee script finished.
    pub finished: bool,
}

#[derive(Default)]
struct Inner {
    /// Every API request, accepted or not.
    requests: usize,
    messages: Vec<Sms>,
    calls: Vec<Call>,
    callees: HashMap<String, Callee>,
    sign_token: Option<String>,
    callback_target: Option<SocketAddr>,
    fail_next: VecDeque<(u16, Option<u64>)>,
    respond_after: Option<Duration>,
    drop_next: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    http: reqwest::Client,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let value = f(&mut self.inner.lock().unwrap());
        self.changed.notify_all();
        value
    }
}

/// A running emulator.
pub struct Twilio {
    /// `api_base` for rampart's config.
    pub api_base: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Twilio {
    /// Starts an emulator for [`ACCOUNT_SID`] / [`AUTH_TOKEN`].
    pub fn start() -> Twilio {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(messages))
            .route("/2010-04-01/Accounts/{sid}/Calls.json", post(calls))
            .with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // Stopping drops the runtime: open connections and running call
            // scripts end with it (no graceful wait on clients' idle connections).
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    result = axum::serve(listener, app) => result.unwrap(),
                    _ = stopped => {}
                }
            });
        });
        Twilio {
            api_base: format!("http://{address}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Sets what happens when `number` is called (default: presses `#`).
    pub fn set_callee(&self, number: &str, callee: Callee) {
        self.shared
            .update(|s| s.callees.insert(number.to_string(), callee));
    }

    /// Signs callbacks with `token` instead of the account's auth token.
    pub fn sign_with(&self, token: &str) {
        self.shared
            .update(|s| s.sign_token = Some(token.to_string()));
    }

    /// Sends callbacks to `address` (same path and query) instead of the
    /// host in the URL rampart gave; the signature still covers that URL.
    pub fn deliver_callbacks_to(&self, address: SocketAddr) {
        self.shared.update(|s| s.callback_target = Some(address));
    }

    /// The next API request is refused with `status` (and `Retry-After`).
    pub fn fail_next(&self, status: u16, retry_after: Option<u64>) {
        self.shared
            .update(|s| s.fail_next.push_back((status, retry_after)));
    }

    /// Accepted requests are answered only after `delay` (the resource is
    /// created at once, as when an answer is lost on the way back).
    pub fn respond_after(&self, delay: Duration) {
        self.shared.update(|s| s.respond_after = Some(delay));
    }

    /// The next accepted request is recorded, then its connection is closed
    /// without an answer (the answer lost on the way back).
    pub fn drop_next(&self) {
        self.shared.update(|s| s.drop_next = true);
    }

    /// API requests received, accepted or not.
    pub fn requests(&self) -> usize {
        self.shared.inner.lock().unwrap().requests
    }

    /// Every accepted SMS.
    pub fn messages(&self) -> Vec<Sms> {
        self.shared.inner.lock().unwrap().messages.clone()
    }

    /// Every accepted call.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.inner.lock().unwrap().calls.clone()
    }

    /// Waits until `done` holds over the recorded state, at most `timeout`.
    fn wait_until<T>(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Inner) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut inner = self.shared.inner.lock().unwrap();
        loop {
            if let Some(value) = done(&inner) {
                return Some(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            inner = self.shared.changed.wait_timeout(inner, left).unwrap().0;
        }
    }

    /// The body of the `n`-th SMS (1-based) to `number`, waiting up to 10 s.
    pub fn wait_for_sms(&self, number: &str, n: usize) -> Option<String> {
        self.wait_until(Duration::from_secs(10), |s| {
            s.messages
                .iter()
                .filter(|m| m.to == number)
                .nth(n - 1)
                .map(|m| m.body.clone())
        })
    }

    /// The last SMS to `number`.
    pub fn last_sms_to(&self, number: &str) -> Option<String> {
        self.messages()
            .into_iter()
            .rev()
            .find(|m| m.to == number)
            .map(|m| m.body)
    }

    /// Waits until `n` calls to `number` have run their script to the end.
    pub fn wait_for_finished_calls(&self, number: &str, n: usize) -> Vec<Call> {
        self.wait_until(Duration::from_secs(20), |s| {
            let calls: Vec<Call> = s.calls.iter().filter(|c| c.to == number).cloned().collect();
            (calls.len() >= n && calls.iter().all(|c| c.finished)).then_some(calls)
        })
        .unwrap_or_else(|| panic!("no {n} finished calls to {number}: {:?}", self.calls()))
    }
}

impl Drop for Twilio {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Twilio's signature, written independently of rampart's: base64 of
/// HMAC-SHA1(token, url + name1 + value1 + name2 + value2 ...), sorted by name.
pub fn sign(token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_string())
        .chain(sorted.into_iter().map(|(n, v)| n + &v))
        .collect();
    let mut mac = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"Twilio API\"".parse().unwrap(),
        );
    }
    response
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (2..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn random_sid(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The common front of both resources: count, injected failures, Basic auth,
/// account in the path. `Some` is the refusal to send.
fn front(shared: &Shared, path_sid: &str, headers: &HeaderMap) -> Option<Response> {
    let injected = shared.update(|s| {
        s.requests += 1;
        s.fail_next.pop_front()
    });
    if let Some((status, retry_after)) = injected {
        let status = StatusCode::from_u16(status).unwrap();
        let mut response = error(status, 20429, "Too Many Requests");
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
        }
        return Some(response);
    }
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Some(error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"));
    };
    if user != ACCOUNT_SID || password != AUTH_TOKEN {
        return Some(error(StatusCode::UNAUTHORIZED, 20003, "Authenticate"));
    }
    if path_sid != user {
        return Some(error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource /2010-04-01/Accounts/{path_sid} was not found"),
        ));
    }
    None
}

async fn respond(shared: &Shared, body: serde_json::Value) -> Response {
    let (delay, drop) = shared.update(|s| (s.respond_after, std::mem::take(&mut s.drop_next)));
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if drop {
        // Unwinding out of the handler ends hyper's connection task: the
        // client sees the connection closed with no response.
        // `resume_unwind` skips the panic hook, so nothing is printed.
        std::panic::resume_unwind(Box::new("emulated lost answer"));
    }
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = front(&shared, &sid, &headers) {
        return response;
    }
    let to = param(&params, "To").unwrap_or("");
    if !is_e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("Invalid 'To' Phone Number: {to}"),
        );
    }
    let sender = match (
        param(&params, "From"),
        param(&params, "MessagingServiceSid"),
    ) {
        (Some(from), _) if !is_e164(from) => {
            return error(StatusCode::BAD_REQUEST, 21212, "Invalid From Number");
        }
        (Some(from), _) => ("From".to_string(), from.to_string()),
        (None, Some(service)) => ("MessagingServiceSid".to_string(), service.to_string()),
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
            );
        }
    };
    let body = param(&params, "Body").unwrap_or("");
    if body.is_empty() {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if body.chars().count() > 1600 {
        return error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let sid = random_sid("SM");
    shared.update(|s| {
        s.messages.push(Sms {
            to: to.to_string(),
            sender: sender.clone(),
            body: body.to_string(),
        })
    });
    respond(
        &shared,
        serde_json::json!({
            "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "body": body,
            "status": "queued", "api_version": "2010-04-01",
        }),
    )
    .await
}

async fn calls(
    State(shared): State<Arc<Shared>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(response) = front(&shared, &sid, &headers) {
        return response;
    }
    let to = param(&params, "To").unwrap_or("");
    if !is_e164(to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("Invalid 'To' Phone Number: {to}"),
        );
    }
    let from = match param(&params, "From") {
        None | Some("") => {
            return error(
                StatusCode::BAD_REQUEST,
                21213,
                "No 'From' number is specified",
            );
        }
        Some(from) if !is_e164(from) => {
            return error(
                StatusCode::BAD_REQUEST,
                21212,
                "Invalid 'From' Phone Number",
            );
        }
        Some(from) => from,
    };
    let Some(twiml) = param(&params, "Twiml") else {
        // rampart always sends inline TwiML; a Url would be fetched here.
        return error(
            StatusCode::BAD_REQUEST,
            21205,
            "Url, Twiml or ApplicationSid parameter is required",
        );
    };
    let Some((gather, said)) = read_twiml(twiml) else {
        return error(StatusCode::BAD_REQUEST, 12100, "Document parse failure");
    };
    let action_ok = gather
        .get("action")
        .is_some_and(|a| a.starts_with("https://") || a.starts_with("http://"));
    if !action_ok || gather.get("method").is_some_and(|m| m != "POST") {
        return error(StatusCode::BAD_REQUEST, 12100, "Document parse failure");
    }
    if let Some(timeout) = param(&params, "Timeout")
        && timeout.parse::<u32>().map_or(true, |t| t == 0 || t > 600)
    {
        return error(StatusCode::BAD_REQUEST, 21208, "Invalid Timeout");
    }
    let sid = random_sid("CA");
    let call = Call {
        sid: sid.clone(),
        to: to.to_string(),
        from: from.to_string(),
        params: params.clone(),
        gather,
        said,
        callbacks: Vec::new(),
        finished: false,
    };
    let callee = shared.update(|s| {
        s.calls.push(call.clone());
        s.callees.get(to).copied().unwrap_or(Callee::Press("#"))
    });
    tokio::spawn(run_call(shared.clone(), call, callee));
    respond(
        &shared,
        serde_json::json!({
            "sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from,
            "status": "queued", "api_version": "2010-04-01",
        }),
    )
    .await
}

/// Plays the callee's part of a call, then marks it finished.
async fn run_call(shared: Arc<Shared>, call: Call, callee: Callee) {
    // Let the create request's answer go out first, as with the real service.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let final_status = match callee {
        Callee::Press(key) => {
            gather(&shared, &call, key).await;
            "completed"
        }
        Callee::Late(delay, key) => {
            tokio::time::sleep(delay).await;
            gather(&shared, &call, key).await;
            "completed"
        }
        Callee::NoAnswer => "no-answer",
        Callee::Busy => "busy",
        Callee::Silent => "completed",
    };
    let events: Vec<&str> = call
        .params
        .iter()
        .filter(|(n, _)| n == "StatusCallbackEvent")
        .map(|(_, v)| v.as_str())
        .collect();
    // Without StatusCallbackEvent Twilio reports only `completed` (the end,
    // whatever the final status).
    if let Some(url) = param(&call.params, "StatusCallback")
        && (events.is_empty() || events.contains(&"completed"))
    {
        let mut params = common_params(&call, final_status);
        if final_status == "completed" {
            params.push(("CallDuration".into(), "7".into()));
        }
        params.push(("CallbackSource".into(), "call-progress-events".into()));
        params.push(("SequenceNumber".into(), "0".into()));
        deliver(&shared, &call.sid, "status", url, params).await;
    }
    shared.update(|s| {
        if let Some(c) = s.calls.iter_mut().find(|c| c.sid == call.sid) {
            c.finished = true;
        }
    });
}

fn common_params(call: &Call, status: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", &call.sid),
        ("CallStatus", status),
        ("Called", &call.to),
        ("Caller", &call.from),
        ("Direction", "outbound-api"),
        ("From", &call.from),
        ("To", &call.to),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

async fn gather(shared: &Arc<Shared>, call: &Call, key: &str) {
    let mut params = common_params(call, "in-progress");
    params.push(("Digits".into(), key.into()));
    params.push(("msg".into(), "Gather End".into()));
    deliver(shared, &call.sid, "gather", &call.gather["action"], params).await;
}

/// POSTs a signed callback and records rampart's answer.
async fn deliver(
    shared: &Arc<Shared>,
    call_sid: &str,
    kind: &'static str,
    url: &str,
    params: Vec<(String, String)>,
) {
    let (token, target) = {
        let inner = shared.inner.lock().unwrap();
        (
            inner
                .sign_token
                .clone()
                .unwrap_or_else(|| AUTH_TOKEN.to_string()),
            inner.callback_target,
        )
    };
    let signature = sign(&token, url, &params);
    let send_to = match target {
        Some(address) => {
            let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
            let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
            format!("http://{address}{path}")
        }
        None => url.to_string(),
    };
    let result = shared
        .http
        .post(&send_to)
        .header("X-Twilio-Signature", signature)
        .header("I-Twilio-Idempotency-Token", random_sid(""))
        .form(&params)
        .send()
        .await;
    let (status, body) = match result {
        Ok(response) => (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    };
    shared.update(|s| {
        if let Some(call) = s.calls.iter_mut().find(|c| c.sid == call_sid) {
            call.callbacks.push(Delivered {
                kind,
                url: url.to_string(),
                params,
                status,
                body,
            });
        }
    });
}

/// Reads an inline TwiML document far enough to run it: it must be
/// well-formed (balanced tags, quoted attributes, only the five predefined
/// entities and character references) with a `<Response>` root. Returns the
/// first `<Gather>`'s attributes and the text of every `<Say>`.
fn read_twiml(doc: &str) -> Option<(HashMap<String, String>, Vec<String>)> {
    let mut rest = doc.trim();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = &after[after.find("?>")? + 2..];
    }
    let mut stack: Vec<String> = Vec::new();
    let mut gather = None;
    let mut said = Vec::new();
    let mut text = String::new();
    let mut seen_root = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let end = after.find('>')?;
            let tag = &after[..end];
            rest = &after[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop()? != name.trim() {
                    return None;
                }
                if name.trim() == "Say" {
                    said.push(std::mem::take(&mut text));
                }
                continue;
            }
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(t) => (t, true),
                None => (tag, false),
            };
            let (name, attributes) = parse_tag(tag)?;
            if stack.is_empty() {
                if seen_root || name != "Response" {
                    return None;
                }
                seen_root = true;
            }
            if name == "Gather" && gather.is_none() {
                gather = Some(attributes);
            }
            if name == "Say" {
                text.clear();
            }
            if !empty {
                stack.push(name);
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            text.push_str(&unescape(&rest[..end])?);
            rest = &rest[end..];
        }
    }
    (stack.is_empty() && seen_root).then_some(())?;
    Some((gather?, said))
}

fn parse_tag(tag: &str) -> Option<(String, HashMap<String, String>)> {
    let tag = tag.trim();
    let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
    let name = &tag[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut attributes = HashMap::new();
    let mut rest = tag[name_end..].trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let close = after[1..].find(quote)?;
        let raw = &after[1..1 + close];
        if raw.contains('<') || attributes.contains_key(key) {
            return None;
        }
        attributes.insert(key.to_string(), unescape(raw)?);
        rest = after[close + 2..].trim_start();
    }
    Some((name.to_string(), attributes))
}

/// Resolves entity and character references; a bare `&` or an unknown
/// entity is not well-formed (`None`).
fn unescape(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        out.push(match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = entity.strip_prefix('#')?;
                let code = match number.strip_prefix('x') {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)?
            }
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[test]
fn emulator_reads_twiml_strictly() {
    let (gather, said) = read_twiml(
        "<Response><Gather action=\"https://x/a?b=1&amp;c=2\" numDigits=\"1\"><Say>Hi &lt;you&gt;</Say></Gather><Say>Bye</Say></Response>",
    )
    .unwrap();
    assert_eq!(gather["action"], "https://x/a?b=1&c=2");
    assert_eq!(said, ["Hi <you>", "Bye"]);
    for bad in [
        "<Response><Gather action=\"x\"><Say>Hi</Gather></Say></Response>",
        "<Response><Gather action=x></Gather></Response>",
        "<Response><Say>a & b</Say><Gather action=\"x\"/></Response>",
        "<Response><Gather action=\"x\"/></Response><Response/>",
        "<Response><Say>no gather</Say></Response>",
    ] {
        assert!(read_twiml(bad).is_none(), "{bad}");
    }
    assert_eq!(
        sign(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &[
                ("CallSid".into(), "CA1234567890ABCDE".into()),
                ("Caller".into(), "+14158675309".into()),
                ("Digits".into(), "1234".into()),
                ("From".into(), "+14158675309".into()),
                ("To".into(), "+18005551212".into()),
            ]
        ),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}
