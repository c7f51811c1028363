//! The directory fails under load: a real slapd stopped with SIGSTOP (it
//! still accepts connections in the kernel, and answers nothing), then
//! continued; a real slapd killed with SIGKILL, then started again on the
//! same port. Four NASes keep logging in the whole time. Every login is
//! answered within the LDAP deadlines, none is accepted while the
//! directory cannot have checked it, `/readyz` says 503 while it is down,
//! the cause is in `rampart_ldap_errors_total` and
//! `rampart_rejects_total{reason="directory_unavailable"}` and a WARN line,
//! and logins work again by themselves once slapd does.

use std::time::{Duration, Instant};

use super::nas::{Load, Login, Sent, assert_answered_within, between, send};
use crate::common::slapd::*;
use crate::common::*;

/// `timeout_ms`: each LDAP step (getting a connection, the search, the bind).
const LDAP_TIMEOUT_MS: u64 = 1000;
/// A login is a search then a bind, each tried at most twice (a pooled
/// connection may have gone stale), each try getting a connection and
/// running one operation within `timeout_ms`: 8 × `timeout_ms` at most.
/// Plus a margin for a loaded 2-core host. A NAS waits 5 s × 3 tries at
/// least (NPS, FreeRADIUS defaults): this is below what it needs.
const DEADLINE: Duration = Duration::from_secs(8 * LDAP_TIMEOUT_MS / 1000 + 4);
/// How long the fault lasts.
const FAULT: Duration = Duration::from_secs(8);

fn start(slapd: &Slapd) -> Rampart {
    let rampart = Rampart::start_with(Options {
        primary: Some(slapd.primary(&format!(
            "timeout_ms = {LDAP_TIMEOUT_MS}\nconnect_timeout_ms = 500"
        ))),
        policy: "unenrolled = \"allow\"".into(),
        ..Options::default()
    });
    radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    assert_eq!(rampart.readyz(), 200);
    rampart
}

/// Two right and two wrong logins, sent again and again.
fn nases(rampart: &Rampart) -> Load {
    Load::start(
        rampart.radius,
        &[
            Login::new(BOB.0, BOB.1, true),
            Login::new(ALICE.0, ALICE.1, true),
            Login::new(BOB.0, "wrong-Pw", false),
            Login::new("nobody", "whatever", false),
        ],
        Duration::from_millis(100),
    )
}

/// During the fault: not ready (within one probe of a login's deadline),
/// still running.
fn assert_down(rampart: &mut Rampart) {
    assert!(
        rampart.wait_for_readyz(503, DEADLINE),
        "/readyz while the directory is down: {}",
        rampart.logs()
    );
    assert!(rampart.is_running());
}

/// After the fault: ready again and a right login accepted, no restart.
fn assert_back(rampart: &mut Rampart) -> Duration {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(60);
    loop {
        let login = send(rampart.radius, &Login::new(BOB.0, BOB.1, true), 10);
        if login.accepted() && rampart.readyz() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back: {login:?}\n{}",
            rampart.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(rampart.is_running());
    since.elapsed()
}

/// What every fault must leave: answers in time, no Accept the directory
/// did not give, the cause counted and logged.
fn assert_failed_closed(
    rampart: &Rampart,
    slapd: &Slapd,
    sent: &[Sent],
    fault: (Instant, Instant),
) {
    let slowest = assert_answered_within(sent, DEADLINE);
    let during = between(sent, fault.0, fault.1);
    assert!(during.len() >= 4, "logins during the fault: {during:?}");
    for login in &during {
        assert_eq!(login.code.as_deref(), Some("Access-Reject"), "{login:?}");
    }
    let unavailable = rampart.metric("rampart_rejects_total{reason=\"directory_unavailable\"}");
    assert!(unavailable >= 1.0, "{}", rampart.metrics());
    let errors: f64 = ["connect", "timeout", "broken"]
        .iter()
        .map(|kind| {
            rampart.metric(&format!(
                "rampart_ldap_errors_total{{server=\"{}\",kind=\"{kind}\"}}",
                slapd.url()
            ))
        })
        .sum();
    assert!(errors >= 1.0, "{}", rampart.metrics());
    assert!(rampart.logs().contains("LDAP server failed"));
    assert!(rampart.logs().contains("reason=\"directory_unavailable\""));
    eprintln!(
        "{} logins, {} during the fault, slowest answer {slowest:?}, {unavailable} directory_unavailable, {errors} LDAP errors",
        sent.len(),
        during.len()
    );
}

#[test]
fn a_hung_directory_under_load_is_a_timely_reject_and_recovers_on_sigcont() {
    let slapd = Slapd::start();
    let mut rampart = start(&slapd);
    // No login yet: the pooled connection is open and idle, and only a
    // round trip shows that nobody answers on it.
    slapd.signal("STOP");
    let stopped = Instant::now();
    assert_down(&mut rampart);
    let load = nases(&rampart);
    std::thread::sleep(FAULT.saturating_sub(stopped.elapsed()));
    assert_eq!(rampart.readyz(), 503, "/readyz for the whole outage");
    slapd.signal("CONT");
    let continued = Instant::now();
    let back = assert_back(&mut rampart);
    let sent = load.finish();
    assert_failed_closed(&rampart, &slapd, &sent, (stopped, continued));
    eprintln!("back {back:?} after SIGCONT");
}

#[test]
fn a_killed_directory_under_load_is_a_fast_reject_and_recovers_on_restart() {
    let mut slapd = Slapd::start();
    let mut rampart = start(&slapd);
    let load = nases(&rampart);
    std::thread::sleep(Duration::from_secs(1));
    slapd.signal("KILL");
    let killed = Instant::now();
    assert_down(&mut rampart);
    std::thread::sleep(FAULT.saturating_sub(killed.elapsed()));
    assert_eq!(rampart.readyz(), 503, "/readyz for the whole outage");
    let restarting = Instant::now();
    slapd.restart();
    let back = assert_back(&mut rampart);
    let sent = load.finish();
    assert_failed_closed(&rampart, &slapd, &sent, (killed, restarting));
    // Refused connections are answered at once, not at a timeout.
    let during = between(&sent, killed + Duration::from_secs(2), restarting);
    let slowest = during.iter().map(|s| s.took).max().unwrap();
    assert!(slowest < Duration::from_secs(4), "{slowest:?}");
    eprintln!("back {back:?} after the restart; slowest while refused {slowest:?}");
}
