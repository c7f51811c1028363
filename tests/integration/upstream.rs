//! `[primary] backend = "radius"`: rampart in front of a real FreeRADIUS as the
//! upstream password check, driven by the real radclient as the NAS.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::freeradius::{FreeRadius, UPSTREAM_SECRET};
use crate::common::*;

const USERS: &str = r#"alice	Cleartext-Password := "alice-Upstream-pw"
	Class = "cls-alice", Filter-Id = "vpn-users", Session-Timeout = 3600
carol	Cleartext-Password := "carol-Upstream-pw"
	Class = "cls-carol"
"#;

/// `[primary]` for these servers: `(address, secret)` in failover order.
fn primary(servers: &[(SocketAddr, &str)], extra: &str) -> String {
    let mut text =
        format!("backend = \"radius\"\npass_through = [\"Class\", \"Filter-Id\"]\n{extra}\n");
    for (address, secret) in servers {
        text.push_str(&format!(
            "[[primary.servers]]\naddress = \"{address}\"\nsecret = \"{secret}\"\n"
        ));
    }
    text
}

fn rampart_for(servers: &[(SocketAddr, &str)], extra: &str) -> Rampart {
    Rampart::start_with(Options {
        primary: Some(primary(servers, extra)),
        ..Options::default()
    })
}

/// A port nothing listens on: the kernel answers ICMP port unreachable.
fn closed_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn hex(text: &str) -> String {
    format!("0x{}", hex::encode(text))
}

#[track_caller]
fn assert_no_secrets(logs: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!logs.contains(secret), "logs contain {secret:?}");
    }
}

#[test]
fn pap_with_appended_code_is_accepted_with_class_and_filter_id_passed_through() {
    let upstream = FreeRadius::start(USERS);
    let rampart = rampart_for(&[(upstream.address, UPSTREAM_SECRET)], "");
    let seed = rampart.enroll_totp("alice");

    let code = code(&seed);
    let reply = radclient_auth(&rampart, "alice", &format!("alice-Upstream-pw,{code}"));
    reply.assert_code("Access-Accept");
    assert_eq!(reply.attribute("Class"), Some(hex("cls-alice").as_str()));
    assert_eq!(reply.attribute("Filter-Id"), Some("vpn-users"));
    assert_eq!(
        reply.attribute("Session-Timeout"),
        None,
        "not in pass_through"
    );
    assert!(reply.attribute("Message-Authenticator").is_some());

    rampart.wait_for_decisions(1);
    assert!(
        rampart.logs().contains("reason=\"ok\""),
        "{}",
        rampart.logs()
    );
    assert_no_secrets(
        &rampart.logs(),
        &["alice-Upstream-pw", UPSTREAM_SECRET, SECRET, &code],
    );
    // The upstream saw exactly the password, without the code.
    assert!(
        upstream
            .log()
            .contains("Login OK: [alice/alice-Upstream-pw]"),
        "{}",
        upstream.log()
    );
}

#[test]
fn a_wrong_password_is_rejected_upstream_and_counted_as_bad_password() {
    let upstream = FreeRadius::start(USERS);
    let rampart = rampart_for(&[(upstream.address, UPSTREAM_SECRET)], "");
    let seed = rampart.enroll_totp("alice");

    let reply = radclient_auth(&rampart, "alice", &format!("wrong-pw,{}", code(&seed)));
    reply.assert_code("Access-Reject");
    assert_eq!(reply.attribute("Class"), None, "nothing passes on a reject");
    assert!(
        upstream.log().contains("Login incorrect"),
        "{}",
        upstream.log()
    );
    rampart.wait_for_decisions(1);
    assert!(
        rampart.logs().contains("reason=\"bad_password\""),
        "{}",
        rampart.logs()
    );
}

#[test]
fn chap_is_checked_upstream_and_the_code_comes_by_challenge() {
    let upstream = FreeRadius::start(USERS);
    let rampart = rampart_for(&[(upstream.address, UPSTREAM_SECRET)], "");
    let seed = rampart.enroll_totp("carol");
    let chap = |password: &str| {
        radclient(
            rampart.radius,
            SECRET,
            &format!(
                "User-Name = \"carol\", CHAP-Password = \"{password}\", Message-Authenticator = 0x00"
            ),
            2,
            3,
        )
    };

    let challenge = chap("carol-Upstream-pw");
    challenge.assert_code("Access-Challenge");
    let state = challenge.attribute("State").expect("State").to_string();
    let accept = radclient_answer(&rampart, "carol", &code(&seed), &state);
    accept.assert_code("Access-Accept");
    assert_eq!(
        accept.attribute("Class"),
        Some(hex("cls-carol").as_str()),
        "upstream attributes survive the challenge"
    );

    assert!(
        upstream.log().contains("Login OK: [carol/<CHAP-Password>]"),
        "checked as CHAP upstream: {}",
        upstream.log()
    );

    chap("not-carols-pw").assert_code("Access-Reject");
}

#[test]
fn a_dead_first_server_fails_over_to_the_second() {
    let upstream = FreeRadius::start(USERS);
    let dead = closed_port();
    let rampart = rampart_for(
        &[(dead, UPSTREAM_SECRET), (upstream.address, UPSTREAM_SECRET)],
        "",
    );
    let seed = rampart.enroll_totp("alice");

    let started = Instant::now();
    let reply = radclient_auth(
        &rampart,
        "alice",
        &format!("alice-Upstream-pw,{}", code(&seed)),
    );
    reply.assert_code("Access-Accept");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no NAS retry needed"
    );
    assert!(
        upstream.log().contains("Login OK: [alice/"),
        "{}",
        upstream.log()
    );
    assert!(
        rampart.wait_for_log(&format!("server={dead}"), Duration::from_secs(2)),
        "the dead server is named: {}",
        rampart.logs()
    );
}

#[test]
fn all_servers_silent_rejects_well_before_the_nas_gives_up() {
    // Bound but never read: requests vanish, as with a firewall dropping them.
    let silent_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rampart = rampart_for(
        &[
            (silent_a.local_addr().unwrap(), UPSTREAM_SECRET),
            (silent_b.local_addr().unwrap(), UPSTREAM_SECRET),
        ],
        "timeout_ms = 300\nretries = 1",
    );
    let seed = rampart.enroll_totp("alice");
    let login = || {
        let started = Instant::now();
        let reply = radclient(
            rampart.radius,
            SECRET,
            &format!(
                "User-Name = \"alice\", User-Password = \"pw,{}\", Message-Authenticator = 0x00",
                code(&seed)
            ),
            1,
            5,
        );
        (reply, started.elapsed())
    };

    // 2 servers × 2 transmissions × 300 ms, against a NAS timeout of 5 s.
    let (reply, elapsed) = login();
    reply.assert_code("Access-Reject");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
    // Both are now marked down: the next login is refused at once.
    let (reply, elapsed) = login();
    reply.assert_code("Access-Reject");
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
    rampart.wait_for_decisions(2);
    assert_eq!(
        rampart
            .logs()
            .matches("reason=\"primary_unavailable\"")
            .count(),
        2,
        "{}",
        rampart.logs()
    );
}

#[test]
fn a_wrong_upstream_secret_is_unavailable_not_a_wrong_password() {
    let upstream = FreeRadius::start(USERS);
    let wrong = "not-the-Upstream-secret";
    let rampart = rampart_for(&[(upstream.address, wrong)], "timeout_ms = 300");
    let seed = rampart.enroll_totp("alice");

    let reply = radclient_auth(
        &rampart,
        "alice",
        &format!("alice-Upstream-pw,{}", code(&seed)),
    );
    reply.assert_code("Access-Reject");
    rampart.wait_for_decisions(1);
    let logs = rampart.logs();
    assert!(logs.contains("reason=\"primary_unavailable\""), "{logs}");
    assert!(!logs.contains("reason=\"bad_password\""), "{logs}");
    assert!(
        upstream.log().contains("Shared secret is incorrect"),
        "the upstream dropped it for its Message-Authenticator: {}",
        upstream.log()
    );
    assert_no_secrets(&logs, &[wrong, "alice-Upstream-pw"]);
}

#[test]
fn unsigned_upstream_replies_are_discarded_unless_the_server_is_exempted() {
    // FreeRADIUS 3.2.1 as shipped: no Message-Authenticator in its replies.
    let upstream = FreeRadius::start_with(USERS, false);
    let strict = rampart_for(&[(upstream.address, UPSTREAM_SECRET)], "timeout_ms = 300");
    strict.enroll_totp("alice");
    let reply = radclient_auth(&strict, "alice", "alice-Upstream-pw");
    reply.assert_code("Access-Reject");
    strict.wait_for_decisions(1);
    let logs = strict.logs();
    assert!(logs.contains("reason=\"primary_unavailable\""), "{logs}");
    assert!(logs.contains("failed verification"), "{logs}");

    let lax = Rampart::start_with(Options {
        primary: Some(
            primary(&[(upstream.address, UPSTREAM_SECRET)], "")
                + "require_message_authenticator = false\n",
        ),
        ..Options::default()
    });
    lax.enroll_totp("alice");
    let reply = radclient_auth(&lax, "alice", "alice-Upstream-pw");
    reply.assert_code("Access-Challenge");
    assert!(
        lax.wait_for_log("exposed to BLAST-RADIUS", Duration::from_secs(1)),
        "the exemption is warned about"
    );
}

#[test]
fn check_config_names_every_upstream_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &Options {
            primary: Some(
                "backend = \"radius\"\ntimeout_ms = 10\npass_through = [\"Class\", \"MS-MPPE-Recv-Key\", \"Framed-Colour\"]\n\
                 [[primary.servers]]\naddress = \"192.0.2.1\"\n\
                 [[primary.servers]]\naddress = \"192.0.2.2:1812\"\nsecret = \"a\"\nsecret_file = \"/nonexistent\"\n"
                    .into(),
            ),
            ..Options::default()
        },
    );
    let (status, _, err) = cli(&config, &["check-config"], "");
    assert_ne!(status, 0);
    for expected in [
        "primary.pass_through[1]: \"MS-MPPE-Recv-Key\" cannot be passed through",
        "primary.pass_through[2]: unknown attribute \"Framed-Colour\"",
        "primary.servers[0].address: \"192.0.2.1\" has no port",
        "primary.servers[0].secret: missing",
        "primary.servers[1].secret: set either secret or secret_file",
        "primary.timeout_ms: must be between 50 and 30000",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
}

#[test]
fn the_commented_radius_example_in_the_shipped_configuration_is_valid() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rampart.toml"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("nps1-secret");
    std::fs::write(&secret_file, "from-a-file\n").unwrap();
    // Uncomment the example block that starts at `# backend = "radius"` and
    // ends before the next table, in place of `backend = "local"`.
    let mut text = String::new();
    let mut in_example = false;
    for line in shipped.lines() {
        if line == "# backend = \"radius\"" {
            in_example = true;
        } else if in_example && line.starts_with('[') {
            in_example = false;
        }
        let line = match (in_example, line) {
            (_, "backend = \"local\"") => String::new(),
            (true, line) => line
                .strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .unwrap_or(line)
                .replace("%d/nps1-secret", &secret_file.display().to_string()),
            (false, line) => line.to_string(),
        };
        text.push_str(&line);
        text.push('\n');
    }
    assert!(text.contains("\nbackend = \"radius\"\n"), "{text}");
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, &text).unwrap();
    let (status, out, err) = cli(&path, &["check-config"], "");
    assert_eq!(status, 0, "{err}\n{text}");
    assert!(out.ends_with(": OK\n"), "{out}");
}
