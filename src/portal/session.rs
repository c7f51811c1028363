//! Server-side portal sessions. The browser holds only a random 256-bit id
//! in an `HttpOnly; SameSite=Strict` cookie; everything else — who signed
//! in, the CSRF token, a pending TOTP seed or phone code, a push test under
//! way, fresh recovery codes — stays here, in memory, and is gone when the
//! session ends (sign-out, idle expiry, restart). That is what makes
//! "abandoning half-way leaves nothing behind" true: nothing pending ever
//! reaches the store.
//!
//! The table is keyed by SHA-256 of the id, so neither a timing difference
//! in the map lookup nor a memory dump of the keys gives out a usable id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::factor::oob::Answer;
use crate::secret::Secret;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rampart_session";
/// The sign-in form's double-submit CSRF cookie (there is no session yet).
pub const SIGNIN_COOKIE: &str = "rampart_signin";
/// Hard cap so a flood of sign-ins cannot exhaust memory.
const MAX_SESSIONS: usize = 100_000;

/// How far a session got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right, but the user already has a second factor:
    /// they must use it before they may change anything (otherwise a stolen
    /// password would be enough to enroll the thief's phone).
    SecondFactor,
    /// Fully signed in (password plus existing factor, first enrollment, or
    /// an invitation).
    Verified,
}

/// A TOTP seed shown to the user but not yet proven by a code.
pub struct PendingTotp {
    /// The seed; only a verified code stores it.
    pub seed: Secret<Vec<u8>>,
    /// Wrong codes typed for it.
    pub wrong: u32,
}

/// What a phone code was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhonePurpose {
    /// Enrolling the number under a label.
    Enroll,
    /// Confirming the sign-in (second factor).
    SignIn,
    /// "Verify now".
    Verify,
}

/// A phone number waiting for its SMS code.
pub struct PendingPhone {
    /// Why.
    pub purpose: PhonePurpose,
    /// `primary` or `backup`.
    pub label: String,
    /// E.164.
    pub number: String,
    /// Keyed hash of the code sent.
    pub code_hash: String,
    /// When the code stops working.
    pub expires: Instant,
    /// Wrong codes typed.
    pub wrong: u32,
}

/// What a test push was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushPurpose {
    /// Enrolling a new topic: approval stores it.
    Enroll,
    /// Confirming the sign-in.
    SignIn,
    /// "Verify now" of the enrolled target.
    Verify,
}

/// A push sent and waiting for its answer (a task waits on the parked
/// transaction and publishes the answer here).
pub struct PushWait {
    /// Why.
    pub purpose: PushPurpose,
    /// The answer once there is one.
    pub answer: watch::Receiver<Option<Answer>>,
}

/// A new ntfy topic shown to the user, stored only after an approved push.
pub struct PendingPush {
    /// The topic URL: a bearer secret.
    pub topic: Secret<String>,
    /// The device label.
    pub label: String,
}

/// One signed-in browser.
pub struct Session {
    /// Normalised user name.
    pub user: String,
    /// How far the sign-in got.
    pub stage: Stage,
    /// Per-session CSRF token for every form.
    pub csrf: String,
    /// The directory's phone number (E.164) from the sign-in, to prefill.
    pub phone_hint: Option<String>,
    /// Authenticator-app enrollment in progress.
    pub pending_totp: Option<PendingTotp>,
    /// Phone code in flight.
    pub pending_phone: Option<PendingPhone>,
    /// Push topic being enrolled.
    pub pending_push: Option<PendingPush>,
    /// Push sent, answer awaited.
    pub push_wait: Option<PushWait>,
    /// Recovery codes just issued: shown (and downloadable) until the user leaves the page.
    pub fresh_recovery: Option<Vec<Secret<String>>>,
    /// Wrong codes typed for the sign-in second factor or "verify now".
    pub wrong_codes: u32,
    /// A one-time message for the next page.
    pub flash: Option<String>,
}

impl Session {
    fn new(user: String, stage: Stage) -> Session {
        Session {
            user,
            stage,
            csrf: new_token(),
            phone_hint: None,
            pending_totp: None,
            pending_phone: None,
            pending_push: None,
            push_wait: None,
            fresh_recovery: None,
            wrong_codes: 0,
            flash: None,
        }
    }
}

/// A shared handle on one session.
pub type SessionRef = Arc<Mutex<Session>>;

/// Locks a session (a poisoned lock still holds a usable session).
pub fn lock(session: &SessionRef) -> MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

struct Entry {
    session: SessionRef,
    last_seen: Instant,
}

/// The table of sessions of this node.
pub struct Sessions {
    idle: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// 256 random bits, hex: session ids and CSRF tokens.
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Sessions that end after `idle` without a request.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The idle timeout.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// Starts a session; returns its id (for the cookie) and the session.
    /// `None` when the table is full of live sessions.
    pub fn create(&self, user: String, stage: Stage, now: Instant) -> Option<(String, SessionRef)> {
        let mut entries = self.entries();
        if entries.len() >= MAX_SESSIONS / 2 {
            let idle = self.idle;
            entries.retain(|_, e| now.saturating_duration_since(e.last_seen) < idle);
        }
        if entries.len() >= MAX_SESSIONS {
            return None;
        }
        let id = new_token();
        let session = Arc::new(Mutex::new(Session::new(user, stage)));
        entries.insert(
            key(&id),
            Entry {
                session: session.clone(),
                last_seen: now,
            },
        );
        Some((id, session))
    }

    /// The live session with this id, marking it used; an idle-expired one
    /// is removed and `None` returned.
    pub fn get(&self, id: &str, now: Instant) -> Option<SessionRef> {
        let mut entries = self.entries();
        let k = key(id);
        let entry = entries.get_mut(&k)?;
        if now.saturating_duration_since(entry.last_seen) >= self.idle {
            entries.remove(&k);
            return None;
        }
        entry.last_seen = now;
        Some(entry.session.clone())
    }

    /// Ends a session (sign-out).
    pub fn remove(&self, id: &str) {
        self.entries().remove(&key(id));
    }

    /// Live sessions (tests, metrics).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, and
/// `Secure` unless configured off. `value = None` deletes the cookie.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> String {
    let mut text = match value {
        Some(value) => format!("{name}={value}"),
        None => format!("{name}=; Max-Age=0"),
    };
    text.push_str("; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_activity_extends_them() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let (id, _) = sessions
            .create("alice".into(), Stage::Verified, t0)
            .unwrap();
        assert!(sessions.get(&id, t0 + Duration::from_secs(59)).is_some());
        // Used at 59 s: alive until 119 s.
        assert!(sessions.get(&id, t0 + Duration::from_secs(118)).is_some());
        assert!(sessions.get(&id, t0 + Duration::from_secs(178)).is_none());
        assert!(sessions.is_empty(), "expired session is removed");
        assert!(sessions.get("nonsense", t0).is_none());
        let (id, _) = sessions.create("bob".into(), Stage::Verified, t0).unwrap();
        sessions.remove(&id);
        assert!(sessions.get(&id, t0).is_none());
    }

    #[test]
    fn cookies_are_parsed_and_set_with_every_attribute() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; rampart_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(
            set_cookie("x", Some("v"), true),
            "x=v; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie("x", None, false),
            "x=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"
        );
    }
}
