//! Several NASes at once: worker threads each running the real `radclient`
//! back to back (one send, no retransmission, waiting long) while a fault
//! comes and goes, recording when each login was sent, how long its answer
//! took and what it was. The fault tests then check every answer against
//! the deadline an admin configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{SECRET, radclient};

/// One login as a NAS saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Whether the password (and code, if any) was the right one.
    pub right: bool,
    pub at: Instant,
    pub took: Duration,
    /// `None`: no answer within the NAS's wait.
    pub code: Option<String>,
    pub reply_message: Option<String>,
}

impl Sent {
    pub fn answered_at(&self) -> Instant {
        self.at + self.took
    }

    pub fn accepted(&self) -> bool {
        self.code.as_deref() == Some("Access-Accept")
    }
}

/// A login a worker sends: user, password, and whether it is the right one.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub right: bool,
}

impl Login {
    pub fn new(user: &str, password: &str, right: bool) -> Login {
        Login {
            user: user.into(),
            password: password.into(),
            right,
        }
    }
}

/// Workers sending logins until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Sent>>>,
}

/// The NAS's wait for one answer: long, so that a late answer is measured
/// rather than cut off.
pub const NAS_WAIT_SECS: u32 = 30;

/// One login with the real radclient: a single send, waiting `wait_secs`.
pub fn send(server: SocketAddr, login: &Login, wait_secs: u32) -> Sent {
    let at = Instant::now();
    let reply = radclient(
        server,
        SECRET,
        &format!(
            "User-Name = \"{}\", User-Password = \"{}\", Calling-Station-Id = \"192.0.2.1\", Message-Authenticator = 0x00",
            login.user, login.password
        ),
        // One send: radclient counts the first as a try.
        1,
        wait_secs,
    );
    Sent {
        right: login.right,
        at,
        took: at.elapsed(),
        reply_message: reply.attribute("Reply-Message").map(str::to_string),
        code: reply.code,
    }
}

impl Load {
    /// One worker per entry of `logins`, each sending its login again and
    /// again, pausing `pause` between answers.
    pub fn start(server: SocketAddr, logins: &[Login], pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = logins
            .iter()
            .cloned()
            .map(|login| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut sent = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        sent.push(send(server, &login, NAS_WAIT_SECS));
                        std::thread::sleep(pause);
                    }
                    sent
                })
            })
            .collect();
        Load { stop, workers }
    }

    /// Stops the workers after their current login; every login sent.
    pub fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    }
}

/// Asserts every login was answered within `deadline`, and no wrong one was
/// accepted; returns the slowest answer.
#[track_caller]
pub fn assert_answered_within(sent: &[Sent], deadline: Duration) -> Duration {
    assert!(!sent.is_empty(), "no login was sent");
    for login in sent {
        assert!(login.code.is_some(), "no answer: {login:?}");
        assert!(
            login.took <= deadline,
            "answered after {:?} > {deadline:?}: {login:?}",
            login.took
        );
        assert!(
            login.right || !login.accepted(),
            "a wrong password was accepted: {login:?}"
        );
    }
    sent.iter().map(|s| s.took).max().unwrap()
}

/// The logins sent after `from` and answered before `until`.
pub fn between(sent: &[Sent], from: Instant, until: Instant) -> Vec<Sent> {
    sent.iter()
        .filter(|s| s.at >= from && s.answered_at() <= until)
        .cloned()
        .collect()
}

/// Sends every login at once, each from its own NAS; waits for all.
pub fn concurrently(server: SocketAddr, logins: &[Login]) -> Vec<Sent> {
    let workers: Vec<_> = logins
        .iter()
        .cloned()
        .map(|login| std::thread::spawn(move || send(server, &login, NAS_WAIT_SECS)))
        .collect();
    workers.into_iter().map(|w| w.join().unwrap()).collect()
}

/// Asserts every login got a Reject within `deadline` whose Reply-Message
/// says `message`; returns the slowest answer.
#[track_caller]
pub fn assert_rejected_within(sent: &[Sent], deadline: Duration, message: &str) -> Duration {
    let slowest = assert_answered_within(sent, deadline);
    for login in sent {
        assert_eq!(login.code.as_deref(), Some("Access-Reject"), "{login:?}");
        assert!(
            login
                .reply_message
                .as_deref()
                .is_some_and(|m| m.contains(message)),
            "{message:?}: {login:?}"
        );
    }
    slowest
}
