//! `[primary] backend = "ldap"` end to end: the real rampart binary against a
//! real slapd, driven by radclient, as a NAS and its users see it — plus
//! failover between two slapd servers, a dead directory, and connection reuse
//! measured with slapd's own cn=Monitor counters.

use std::time::{Duration, Instant};

use crate::common::slapd::*;
use crate::common::*;

fn start(slapd_primary: String, policy: &str) -> Rampart {
    Rampart::start_with(Options {
        primary: Some(slapd_primary),
        policy: policy.into(),
        ..Options::default()
    })
}

#[test]
fn directory_password_plus_totp_through_radclient() {
    let slapd = Slapd::start();
    let rampart = start(
        slapd.primary(&format!(
            "required_groups = [\"{VPN_USERS}\"]\nmfa_exempt_groups = [\"{MFA_EXEMPT}\"]"
        )),
        "",
    );
    // Any directory user can be enrolled: there is no local user list.
    let alice = rampart.enroll_totp(ALICE.0);
    let carol = rampart.enroll_totp(CAROL.0);

    let accept = radclient_auth(&rampart, ALICE.0, &format!("{},{}", ALICE.1, code(&alice)));
    accept.assert_code("Access-Accept");

    // Nested group member, password alone: asked for the code.
    let challenge = radclient_auth(&rampart, CAROL.0, CAROL.1);
    challenge.assert_code("Access-Challenge");
    let state = challenge.attribute("State").unwrap().to_string();
    radclient_answer(&rampart, CAROL.0, &code(&carol), &state).assert_code("Access-Accept");

    // In the exempt group: the directory password alone is enough.
    radclient_auth(&rampart, ERIN.0, ERIN.1).assert_code("Access-Accept");

    let outsider = radclient_auth(&rampart, DAVE.0, DAVE.1);
    outsider.assert_code("Access-Reject");
    assert_eq!(
        outsider.attribute("Reply-Message"),
        Some("You are not allowed to use this service")
    );
    radclient_auth(&rampart, ALICE.0, &format!("wrong,{}", code(&alice)))
        .assert_code("Access-Reject");
    radclient_auth(&rampart, "nobody", "whatever").assert_code("Access-Reject");
    radclient_auth(&rampart, "*)(uid=*", ALICE.1).assert_code("Access-Reject");

    assert_eq!(rampart.wait_for_decisions(8), 8);
    let logs = rampart.logs();
    for reason in [
        "reason=\"ok\"",
        "reason=\"mfa_exempt\"",
        "reason=\"not_in_required_group\"",
        "reason=\"bad_password\"",
        "reason=\"unknown_user\"",
    ] {
        assert!(logs.contains(reason), "{reason}: {logs}");
    }
    // Plain ldap:// is allowed but warned about; debug logs name the server,
    // never a password.
    assert!(logs.contains("LDAP without TLS"), "{logs}");
    assert!(logs.contains(&slapd.url()), "{logs}");
    for secret in [SERVICE_PASSWORD, ALICE.1, CAROL.1, ERIN.1, DAVE.1] {
        assert!(!logs.contains(secret), "{secret} in logs");
    }
}

#[test]
fn pooled_connections_are_reused_across_logins() {
    let slapd = Slapd::start();
    let rampart = start(slapd.primary(""), "unenrolled = \"allow\"");
    // The first login opens one service connection (one service bind) and one
    // bind connection.
    radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    let before = slapd.counters();
    const LOGINS: u64 = 10;
    for _ in 0..LOGINS {
        radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    }
    let after = slapd.counters();
    // Between the two readings: the first reading's own connection and bind,
    // and for the logins one search and one user bind each, on no new connection.
    assert_eq!(
        after.connections - before.connections,
        1,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.binds - before.binds,
        LOGINS + 1,
        "{before:?} {after:?}"
    );
    assert_eq!(
        after.searches - before.searches,
        LOGINS + 1,
        "{before:?} {after:?}"
    );
}

/// Searches share service connections (several outstanding on each, RFC 4511
/// §4.1.1); user binds keep one connection each. 48 logins at once with
/// `pool_size = 16`: every one accepted, the searches on at most two service
/// connections (16 searches / 8 per connection), the binds on at most 16.
#[test]
fn concurrent_logins_share_search_connections() {
    let slapd = Slapd::start();
    let rampart = start(slapd.primary("pool_size = 16"), "unenrolled = \"allow\"");
    let before = slapd.counters();
    const LOGINS: usize = 240;
    let requests: String = (0..LOGINS)
        .map(|i| {
            let (user, password) = if i % 2 == 0 { BOB } else { ALICE };
            format!(
                "User-Name = \"{user}\", User-Password = \"{password}\", Message-Authenticator = 0x00\n\n"
            )
        })
        .collect();
    let file = rampart.dir.path().join("logins.txt");
    std::fs::write(&file, requests).unwrap();
    let out = std::process::Command::new("radclient")
        .args(["-p", "48", "-r", "3", "-t", "10", "-f"])
        .arg(&file)
        .arg(rampart.radius.to_string())
        .arg("auth")
        .arg(SECRET)
        .output()
        .expect("radclient runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("Received Access-Accept").count(),
        LOGINS,
        "{stdout}"
    );
    let after = slapd.counters();
    assert_eq!(after.searches - before.searches, LOGINS as u64 + 1);
    let metrics = rampart.metrics();
    let open = |pool: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("rampart_ldap_connections{")
                    && l.contains(&format!("pool=\"{pool}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!((1.0..=2.0).contains(&open("service")), "{metrics}");
    assert!((1.0..=16.0).contains(&open("bind")), "{metrics}");
    // Every connection slapd saw (plus the counters' own two readings).
    let opened = after.connections - before.connections;
    assert!(
        opened <= 2 + 16 + 1,
        "{opened} connections: {before:?} {after:?}"
    );
}

#[test]
fn failover_to_the_second_server_and_back() {
    let mut first = Slapd::start();
    let second = Slapd::start();
    let primary = format!(
        "backend = \"ldap\"\nurls = [\"{}\", \"{}\"]\nbind_dn = \"{SERVICE_DN}\"\nbind_password = \"{SERVICE_PASSWORD}\"\nbase_dn = \"{BASE}\"\ntimeout_ms = 1000\nconnect_timeout_ms = 500",
        first.url(),
        second.url()
    );
    let rampart = start(primary, "unenrolled = \"allow\"");
    radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    let second_before = second.counters();
    assert_eq!(
        second_before.binds, 1,
        "only the counters' own bind: the first server served"
    );

    first.stop();
    for _ in 0..5 {
        radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    }
    radclient_auth(&rampart, BOB.0, "wrong").assert_code("Access-Reject");
    let second_after = second.counters();
    assert!(
        second_after.binds >= second_before.binds + 6,
        "{second_before:?} {second_after:?}"
    );
    assert!(rampart.wait_for_log("LDAP server failed", Duration::from_secs(5)));

    // The first server comes back; once its back-off ends it is tried again,
    // and preferred from then on.
    first.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rampart.logs().contains("LDAP server is answering again") {
        assert!(
            Instant::now() < deadline,
            "first server never retried: {}",
            rampart.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
        radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    }
    let first_before = first.counters();
    radclient_auth(&rampart, BOB.0, BOB.1).assert_code("Access-Accept");
    let first_after = first.counters();
    // Its own bind plus bob's.
    assert!(
        first_after.binds >= first_before.binds + 2,
        "{first_before:?} {first_after:?}"
    );
}

#[test]
fn a_dead_directory_is_a_fast_reject() {
    // One server refuses connections, the other accepts them and never answers.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = format!(
        "backend = \"ldap\"\nurls = [\"ldap://127.0.0.1:{refused}\", \"ldap://127.0.0.1:{}\"]\nbind_dn = \"{SERVICE_DN}\"\nbind_password = \"{SERVICE_PASSWORD}\"\nbase_dn = \"{BASE}\"\ntimeout_ms = 1000\nconnect_timeout_ms = 500",
        hung.local_addr().unwrap().port()
    );
    let rampart = start(primary, "");
    for attempt in 0..3 {
        let started = Instant::now();
        let reply = radclient(
            rampart.radius,
            SECRET,
            &format!(
                "User-Name = \"{}\", User-Password = \"{}\", Message-Authenticator = 0x00",
                BOB.0, BOB.1
            ),
            1,
            10,
        );
        let took = started.elapsed();
        reply.assert_code("Access-Reject");
        assert!(took < Duration::from_secs(3), "attempt {attempt}: {took:?}");
    }
    assert_eq!(rampart.wait_for_decisions(3), 3);
    let logs = rampart.logs();
    assert_eq!(
        logs.matches("reason=\"directory_unavailable\"").count(),
        3,
        "{logs}"
    );
    assert!(!logs.contains(SERVICE_PASSWORD) && !logs.contains(BOB.1));
}
