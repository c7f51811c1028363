//! The PostgreSQL store goes away and stays away: the server is stopped
//! for several seconds while NASes keep logging in, then started again.
//! Every login is answered quickly with the same generic Reject (no
//! Reply-Message: a wrong code and a right one look alike while failures
//! cannot be counted), `/readyz` says 503 and `rampart_store_writable` 0 for
//! the whole outage, an ERROR line and `rampart_store_errors_total` name the
//! cause, and the daemon takes logins again by itself once the server is
//! back (the store's probe runs every second). The short restart is in
//! `several_nodes.rs`.

use std::time::{Duration, Instant};

use super::nas::{Load, Login, assert_answered_within, between, send};
use crate::common::postgres::{PASSWORD, Postgres};
use crate::common::*;
use rampart::factor::totp::code_at;

/// `[store] timeout_ms`: each store call's deadline.
const STORE_TIMEOUT_MS: u64 = 1000;
/// A login reads the login state, then (wrong or right) writes once: two
/// store deadlines, plus a generous margin for a loaded 2-core host. Far
/// below a NAS's 5 s × 3 tries.
const DEADLINE: Duration = Duration::from_secs(2 * STORE_TIMEOUT_MS / 1000 + 3);
/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(8);

/// A six-digit code that is not `seed`'s current one.
fn wrong_code(seed: &[u8]) -> String {
    let right: u32 = code(seed).parse().unwrap();
    format!("{:06}", (right + 1) % 1_000_000)
}

fn start(pg: &Postgres, shared: &std::path::Path) -> Rampart {
    let password_file = shared.join("pg-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    Rampart::start_with(Options {
        store: Some(format!(
            "url = \"{url}\"\npassword_file = \"{pw}\"\nkey_file = \"{key}\"\ntimeout_ms = {STORE_TIMEOUT_MS}\n",
            url = pg.url_without_password("rampart"),
            pw = password_file.display(),
            key = shared.join("rampart.key").display(),
        )),
        ..Options::default()
    })
}

/// Samples `/readyz` and `rampart_store_writable` every 250 ms for `span`;
/// returns the sampled pairs.
fn watch(rampart: &Rampart, span: Duration) -> Vec<(u16, f64)> {
    let until = Instant::now() + span;
    let mut seen = Vec::new();
    while Instant::now() < until {
        seen.push((rampart.readyz(), rampart.metric("rampart_store_writable")));
        std::thread::sleep(Duration::from_millis(250));
    }
    seen
}

/// Service is back, no restart: a wrong code is told so, the right one works.
fn assert_service_back(rampart: &Rampart, grace: &[u8]) {
    assert_eq!(rampart.metric("rampart_store_writable"), 1.0);
    let wrong = send(
        rampart.radius,
        &Login::new("grace", &format!("pw-Grace-7,{}", wrong_code(grace)), false),
        5,
    );
    assert_eq!(wrong.reply_message.as_deref(), Some("Wrong code."));
    let next = format!("pw-Grace-7,{}", code_at(grace, unix_now()));
    let accepted = send(rampart.radius, &Login::new("grace", &next, true), 5);
    assert!(accepted.accepted(), "{accepted:?}\n{}", rampart.logs());
}

#[test]
fn a_stopped_database_is_a_quick_generic_reject_until_it_is_started_again() {
    let mut pg = Postgres::start();
    pg.create_database("rampart");
    let shared = tempfile::tempdir().unwrap();
    let mut rampart = start(&pg, shared.path());
    let seed = rampart.user_with_totp("erin", "pw-Erin-5");
    rampart.add_user("frank", "pw-Frank-6");
    // Not in the load (erin is locked out by its wrong codes by then).
    let grace = rampart.user_with_totp("grace", "pw-Grace-7");
    let right = format!("pw-Erin-5,{}", code(&seed));
    send(rampart.radius, &Login::new("erin", &right, true), 5);
    assert_eq!(rampart.readyz(), 200);
    let load = Load::start(
        rampart.radius,
        &[
            Login::new("erin", &right, true),
            Login::new("erin", &format!("pw-Erin-5,{}", wrong_code(&seed)), false),
            Login::new("frank", "wrong-Pw", false),
            Login::new("nobody", "guess", false),
        ],
        Duration::from_millis(100),
    );
    std::thread::sleep(Duration::from_secs(1));

    pg.stop();
    let stopped = Instant::now();
    // One store deadline for the first failure to be seen, then 503 and 0
    // until the server is back.
    assert!(rampart.wait_for_readyz(503, DEADLINE), "{}", rampart.logs());
    let seen = watch(&rampart, OUTAGE.saturating_sub(stopped.elapsed()));
    assert!(
        seen.iter()
            .all(|&(ready, writable)| ready == 503 && writable == 0.0),
        "{seen:?}"
    );
    assert!(rampart.is_running());
    pg.start_again();
    let restarted = Instant::now();
    assert!(
        rampart.wait_for_readyz(200, Duration::from_secs(15)),
        "{}",
        rampart.logs()
    );
    let back = restarted.elapsed();
    let sent = load.finish();

    let slowest = assert_answered_within(&sent, DEADLINE);
    let during = between(&sent, stopped, restarted);
    assert!(during.len() >= 8, "{during:?}");
    for login in &during {
        assert_eq!(login.code.as_deref(), Some("Access-Reject"), "{login:?}");
        assert_eq!(login.reply_message, None, "generic: {login:?}");
    }
    assert!(rampart.metric(r#"rampart_rejects_total{reason="store_unavailable"}"#) >= 1.0);
    let errors: f64 = ["login_state", "record_failure", "probe"]
        .iter()
        .map(|op| rampart.metric(&format!("rampart_store_errors_total{{operation=\"{op}\"}}")))
        .sum();
    assert!(errors >= 1.0, "{}", rampart.metrics());
    assert!(rampart.logs().contains("store cannot be written"));
    assert!(rampart.logs().contains("store takes writes again"));

    assert_service_back(&rampart, &grace);
    assert!(rampart.is_running());
    eprintln!(
        "{} logins, {} during the {OUTAGE:?} outage, slowest answer {slowest:?}, errors {errors}, ready {back:?} after the start",
        sent.len(),
        during.len()
    );
}
