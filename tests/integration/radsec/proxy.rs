//! `radclient` → the real radsecproxy → RADIUS/TLS → rampart.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use crate::common::radsecproxy::{PROXY_SECRET, RadsecProxy};
use crate::common::{RadclientReply, code, radclient};

const PASSWORD: &str = "correct horse";

/// radclient to radsecproxy: one try (`-r 1`), `timeout` seconds.
fn send(proxy: &RadsecProxy, attributes: &str, timeout: u32) -> RadclientReply {
    radclient(proxy.udp, PROXY_SECRET, attributes, 1, timeout)
}

/// rampart (local users), alice with a password and TOTP, and radsecproxy
/// presenting the certificate `pick` chooses.
fn start(dir: &Path, pick: fn(&RadsecCerts) -> &Identity) -> (Rampart, RadsecProxy, Vec<u8>) {
    let (rampart, certs) = start_rampart(dir, Options::default());
    let seed = rampart.user_with_totp("alice", PASSWORD);
    let proxy = RadsecProxy::start(rampart.radsec(), &certs.ca, pick(&certs));
    (rampart, proxy, seed)
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn password_and_totp_accepted_wrong_code_rejected_over_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, proxy, seed) = start(dir.path(), |c| &c.nas1);
    let good = code(&seed);
    let reply = send(
        &proxy,
        &format!(
            "User-Name = \"alice\", User-Password = \"{PASSWORD},{good}\", Message-Authenticator = 0x00"
        ),
        10,
    );
    reply.assert_code("Access-Accept");
    let bad = wrong(&good);
    let reply = send(
        &proxy,
        &format!(
            "User-Name = \"alice\", User-Password = \"{PASSWORD},{bad}\", Message-Authenticator = 0x00"
        ),
        10,
    );
    reply.assert_code("Access-Reject");

    // Both went over one RadSec connection, counted under the mapped client.
    assert_eq!(
        rampart.metric(r#"rampart_radsec_connections_total{client="nas1"}"#),
        1.0
    );
    assert_eq!(rampart.metric("rampart_radsec_open_connections"), 1.0);
    assert_eq!(
        rampart.metric(r#"rampart_requests_total{client="nas1",outcome="accept"}"#),
        1.0
    );
    assert_eq!(
        rampart.metric(r#"rampart_requests_total{client="nas1",outcome="reject"}"#),
        1.0
    );
    assert!(rampart.wait_for_decisions(2) >= 2);
    let logs = rampart.logs();
    assert!(logs.contains("RadSec connection established"), "{logs}");
    for secret in [PASSWORD, &good, &bad] {
        assert!(!logs.contains(secret), "{secret:?} logged:\n{logs}");
    }
}

#[test]
fn access_challenge_round_trip_and_proxy_state_through_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, proxy, seed) = start(dir.path(), |c| &c.nas1);
    // The password alone: rampart asks for the code. Proxy-State (added by a
    // proxy in front of radsecproxy, here radclient) comes back unchanged.
    let reply = send(
        &proxy,
        "User-Name = \"alice\", User-Password = \"correct horse\", Proxy-State = 0x6e61732d61, Message-Authenticator = 0x00",
        10,
    );
    reply.assert_code("Access-Challenge");
    let state = reply.attribute("State").expect("State").to_string();
    assert_eq!(reply.attribute("Proxy-State"), Some("0x6e61732d61"));
    let reply = send(
        &proxy,
        &format!(
            "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Proxy-State = 0x6e61732d62, Message-Authenticator = 0x00",
            code(&seed)
        ),
        10,
    );
    reply.assert_code("Access-Accept");
    assert_eq!(reply.attribute("Proxy-State"), Some("0x6e61732d62"));
    assert_eq!(
        rampart.metric(r#"rampart_requests_total{client="nas1",outcome="challenge"}"#),
        1.0
    );
}

/// Asserts radsecproxy could not get a request through, and rampart counted
/// the refusal under `reason`.
fn assert_refused(rampart: &Rampart, proxy: &RadsecProxy, reason: &str) {
    let series = format!("rampart_radsec_handshake_failures_total{{reason=\"{reason}\"}}");
    assert!(
        wait_for_metric(rampart, &series, 1.0) >= 1.0,
        "{series}\n{}\n{}",
        rampart.logs(),
        proxy.log()
    );
    let reply = send(
        proxy,
        "User-Name = \"alice\", User-Password = \"correct horse,000000\", Message-Authenticator = 0x00",
        2,
    );
    assert_eq!(reply.code, None, "{}", reply.output);
    assert!(
        reply.output.contains("No reply from server"),
        "{}",
        reply.output
    );
    let logs = rampart.logs();
    assert!(!logs.contains("RadSec connection established"), "{logs}");
    assert_eq!(rampart.decisions(), 0, "{logs}");
    assert_eq!(rampart.metric("rampart_radsec_open_connections"), 0.0);
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, proxy, _) = start(dir.path(), |c| &c.foreign);
    assert_refused(&rampart, &proxy, "unknown_ca");
    assert!(
        rampart.logs().contains("RadSec TLS handshake failed"),
        "{}",
        rampart.logs()
    );
}

#[test]
fn a_valid_certificate_of_no_configured_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (rampart, proxy, _) = start(dir.path(), |c| &c.stranger);
    assert_refused(&rampart, &proxy, "unknown_client");
    // The log says which names the certificate had, for the admin to map.
    assert!(
        rampart.logs().contains("stranger.example.com"),
        "{}",
        rampart.logs()
    );
}

/// radclient sends `count` Access-Requests at once (`-p`); radsecproxy puts
/// them on its one TLS connection; the upstream releases none until all are
/// outstanding, so every Accept proves rampart worked on all of them at once.
#[test]
fn many_concurrent_requests_on_one_connection_are_all_answered() {
    const COUNT: usize = 120;
    let upstream = HoldingUpstream::start(COUNT, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let (rampart, certs) = start_rampart(
        dir.path(),
        Options {
            primary: Some(upstream.primary()),
            policy: "unenrolled = \"allow\"".into(),
            ..Options::default()
        },
    );
    let proxy = RadsecProxy::start(rampart.radsec(), &certs.ca, &certs.nas1);
    let requests: String = (0..COUNT)
        .map(|i| {
            format!(
                "User-Name = \"user{i:03}\"\nUser-Password = \"pw-{i}\"\nMessage-Authenticator = 0x00\n\n"
            )
        })
        .collect();
    let file = dir.path().join("requests.txt");
    std::fs::write(&file, requests).unwrap();
    let child = Command::new("timeout")
        .args(["60", "radclient", "-x", "-r", "1", "-t", "40"])
        .args(["-p", &COUNT.to_string(), "-f"])
        .arg(&file)
        .arg(proxy.udp.to_string())
        .args(["auth", PROXY_SECRET])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient is installed: run ./scripts/test");
    let out = child.wait_with_output().unwrap();
    let output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let held = upstream.released.recv_timeout(Duration::from_secs(5));
    assert_eq!(held, Ok(COUNT), "outstanding at once\n{}", proxy.log());
    let accepted = output.matches("Received Access-Accept").count();
    assert_eq!(accepted, COUNT, "{output}\n{}", rampart.logs());
    assert_eq!(
        rampart.metric(r#"rampart_radsec_connections_total{client="nas1"}"#),
        1.0
    );
    assert_eq!(
        rampart.metric(r#"rampart_requests_total{client="nas1",outcome="accept"}"#),
        COUNT as f64
    );
}
