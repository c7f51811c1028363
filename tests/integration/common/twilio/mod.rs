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

mod api;
mod callee;
mod twiml;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;

pub use callee::sign;

/// The emulated account.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "emu-Tw1lio-auth-token";
/// A Twilio number of the account.
pub const FROM: &str = "+15005550006";

/// What the person at a number does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    /// Answers and presses these keys (`"#"`, `"9"`, `"4829#"`); the
    /// callback's `Digits` is what the `<Gather>` collects of them.
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

/// A lasting API fault (until cleared), unlike the one-shot `fail_next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every API request is read and never answered; nothing is created.
    Hang,
    /// Every API request is refused with this status (e.g. 500).
    Status(u16),
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
    fault: Option<Fault>,
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
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(api::messages),
            )
            .route("/2010-04-01/Accounts/{sid}/Calls.json", post(api::calls))
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

    /// From now on every API request meets `fault`; `None` ends it.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.shared.update(|s| s.fault = fault);
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
