//! Hostile input: forged log lines, terminal escapes, and a login flood
//! aimed at the password hash's memory.

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use rampart::radius::attr;
use rampart::radius::crypto::{hide_password, sign_request};
use rampart::radius::{Attribute, Code};

use crate::common::*;

/// Sends one signed Access-Request with these User-Name and
/// Calling-Station-Id bytes (radclient sends string attributes as typed
/// text, not as raw octets); true if any reply came.
fn send_raw(rampart: &Rampart, user: &str, station: &str) -> bool {
    let authenticator: [u8; 16] = rand::random();
    let attributes = [
        Attribute::new(attr::USER_NAME, user),
        Attribute::new(
            attr::USER_PASSWORD,
            hide_password(b"pw", SECRET.as_bytes(), &authenticator).unwrap(),
        ),
        Attribute::new(attr::CALLING_STATION_ID, station),
    ];
    let packet = sign_request(
        Code::AccessRequest,
        7,
        &authenticator,
        &attributes,
        SECRET.as_bytes(),
        true,
    )
    .unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket.send_to(&packet, rampart.radius).unwrap();
    socket.recv(&mut [0u8; 4096]).is_ok()
}

/// A User-Name that would forge an audit line and drive the terminal.
const FORGED: &str = "mallory\r\n2026-12-07T00:00:00.000000Z  INFO rampart::audit: decision user=admin outcome=\"accept\"\u{1b}]0;owned\u{7}\u{1b}[2J";

/// The audit line about mallory: its target comes before the name.
fn is_mallory_decision(line: &str) -> bool {
    matches!(
        (line.find("rampart::audit: decision"), line.find("mallory")),
        (Some(audit), Some(name)) if audit < name
    )
}

#[test]
fn client_bytes_never_reach_the_log_or_the_admin_terminal_raw() {
    let rampart = Rampart::start();
    rampart.user_with_totp("alice", "pw-alice");
    assert!(
        send_raw(&rampart, FORGED, "10.0.0.1\n\u{0}\u{7}"),
        "answered"
    );
    // Not `wait_for_log("decision")`: debug lines carry the forged name,
    // which reads "decision" too, before the audit line is written.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !rampart.logs().lines().any(is_mallory_decision) {
        assert!(std::time::Instant::now() < deadline, "{}", rampart.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = rampart.logs();
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-12-07T00:00:00")),
        "a forged line: {logs}"
    );
    for control in ['\r', '\u{1b}', '\u{7}', '\u{0}'] {
        assert!(!logs.contains(control), "{control:?} in the log: {logs}");
    }
    let decision = logs
        .lines()
        .find(|l| is_mallory_decision(l))
        .expect("the decision line");
    assert!(decision.contains("mallory\\u{d}\\u{a}2026"), "{decision}");

    // The audit rows reach the store within a moment; the CLI shows them escaped.
    let mut audit = String::new();
    for _ in 0..50 {
        audit = cli(&rampart.config, &["audit"], "").1;
        if audit.contains("mallory") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(audit.contains("mallory\\u{d}\\u{a}2026"), "{audit}");
    assert!(audit.contains("10.0.0.1\\u{a}\\u{0}\\u{7}"), "{audit}");
    for control in ['\r', '\u{1b}', '\u{7}', '\u{0}'] {
        assert!(
            !audit.contains(control),
            "{control:?} on the terminal: {audit}"
        );
    }
    assert_eq!(audit.lines().count(), 1, "{audit}");
}

/// Resident memory of a process: (now, peak), in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 64 senders of local logins (a password spray of unknown names and
/// wrong passwords of a real user) against argon2id at 19 MiB a check:
/// peak memory stays within the worker pool's, every request is answered,
/// and what cannot be checked in time is refused and counted.
#[test]
fn a_login_flood_is_bounded_by_the_hash_workers_not_by_the_senders() {
    let rampart = Rampart::start();
    rampart.add_user("user0001", "the-real-password");
    let pid = rampart.daemon_pid();
    let (before, _) = rss_kib(pid);
    let run = Command::new(LOAD_BIN)
        .args(["radius", "--server", &rampart.radius.to_string()])
        .args([
            "--secret",
            SECRET,
            "--users",
            "500",
            "--user-format",
            "user{:04}",
        ])
        .args(["--password-format", "wrong{:04}", "--expect", "reject"])
        .args(["--concurrency", "64", "--duration", "6", "--warmup", "0"])
        .args(["--timeout-ms", "5000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}{stderr}");
    let (after, peak) = rss_kib(pid);
    eprintln!("RSS before {before} KiB, after {after} KiB, peak {peak} KiB; {stdout}");
    // One 19 MiB buffer per worker (one per core) on top of the daemon:
    // the flood took gigabytes when every check had its own thread.
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let bound = 64 * 1024 + cores * 20 * 1024;
    assert!(peak < bound, "peak RSS {peak} KiB over {bound} KiB");
    assert!(
        stdout.contains("\"timeout\":0"),
        "every request answered: {stdout}"
    );
    let refused = rampart.metric("rampart_password_checks_refused_total{reason=\"queue_full\"}")
        + rampart.metric("rampart_password_checks_refused_total{reason=\"deadline\"}");
    let rejected = rampart.metric("rampart_rejects_total{reason=\"overloaded\"}");
    assert_eq!(
        refused, rejected,
        "each refusal is one Reject, counted once"
    );
    // The real user still gets in once the flood is over.
    let reply = radclient_auth(&rampart, "user0001", "the-real-password");
    // Rejected for the missing second factor: the password itself passed.
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("second factor")),
        "{}",
        reply.output
    );
}
