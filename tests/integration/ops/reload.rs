//! SIGHUP reloads against the real daemon: clients, secrets and policy change
//! without a restart; a broken file is refused with check-config's words and
//! the running configuration keeps serving; a login held for a push across
//! the reload is still approved, with one push and the duplicate cache intact.

use std::time::{Duration, Instant};

use crate::common::ntfy::{Auth, Ntfy, Options as NtfyOptions, Perm};
use crate::common::phone::Phone;
use crate::common::*;

const PASSWORD: &str = "reload-Pw-1";
const NEW_SECRET: &str = "second-NAS-s3cret";
const NEWER_SECRET: &str = "second-NAS-s3cret-rotated";

/// One Access-Request from 127.0.0.1 with `secret`, password only; `tries`
/// sends of `timeout` seconds.
fn login(rampart: &Rampart, secret: &str, tries: u32, timeout: u32) -> RadclientReply {
    radclient(
        rampart.radius,
        secret,
        &format!(
            "User-Name = \"alice\", User-Password = \"{PASSWORD}\", Message-Authenticator = 0x00"
        ),
        tries,
        timeout,
    )
}

/// A second NAS entry for 127.0.0.1 alone: more specific than the default
/// 127.0.0.0/8 entry, so it takes over that address.
fn second_client(secret: &str) -> String {
    format!("[[clients]]\nname = \"vpn2\"\naddress = \"127.0.0.1/32\"\nsecret = \"{secret}\"\n")
}

#[test]
fn reload_adds_a_client_rotates_its_secret_and_changes_policy() {
    let base = Options {
        policy: "unenrolled = \"reject\"".into(),
        ..Options::default()
    };
    let rampart = Rampart::start_with(base.clone());
    rampart.add_user("alice", PASSWORD);

    // Policy before: no second factor enrolled means Reject.
    let reply = login(&rampart, SECRET, 2, 3);
    reply.assert_code("Access-Reject");
    // The NAS with its own secret is not a client yet: its requests fail the
    // Message-Authenticator check of the 127.0.0.0/8 entry and get no answer.
    assert_eq!(login(&rampart, NEW_SECRET, 1, 1).code, None);
    let bad_mac = "rampart_radius_dropped_total{reason=\"bad_message_authenticator\"}";
    assert!(rampart.metric(bad_mac) >= 1.0);

    let next = Options {
        policy: "unenrolled = \"allow\"".into(),
        extra: second_client(NEW_SECRET),
        ..base.clone()
    };
    assert!(rampart.reload_with(&next), "{}", rampart.logs());
    // The new client is answered, with the new policy.
    login(&rampart, NEW_SECRET, 2, 3).assert_code("Access-Accept");
    assert_eq!(
        rampart.metric("rampart_requests_total{client=\"vpn2\",outcome=\"accept\"}"),
        1.0
    );
    // 127.0.0.1 belongs to vpn2 now: the old secret no longer works from it.
    assert_eq!(login(&rampart, SECRET, 1, 1).code, None);

    // Rotating vpn2's secret: the new one works, the old one stops.
    let rotated = Options {
        extra: second_client(NEWER_SECRET),
        ..next.clone()
    };
    assert!(rampart.reload_with(&rotated), "{}", rampart.logs());
    login(&rampart, NEWER_SECRET, 2, 3).assert_code("Access-Accept");
    assert_eq!(login(&rampart, NEW_SECRET, 1, 1).code, None);

    // Policy back to reject, this time without touching the clients.
    let strict = Options {
        policy: "unenrolled = \"reject\"".into(),
        ..rotated
    };
    assert!(rampart.reload_with(&strict));
    login(&rampart, NEWER_SECRET, 2, 3).assert_code("Access-Reject");

    assert_eq!(
        rampart.metric("rampart_config_reloads_total{outcome=\"ok\"}"),
        3.0
    );
    let logs = rampart.logs();
    for secret in [SECRET, NEW_SECRET, NEWER_SECRET, PASSWORD] {
        assert!(!logs.contains(secret), "{secret:?} logged:\n{logs}");
    }
}

#[test]
fn an_invalid_file_is_refused_like_check_config_and_the_old_configuration_serves() {
    let good = Options {
        policy: "unenrolled = \"allow\"".into(),
        ..Options::default()
    };
    let rampart = Rampart::start_with(good.clone());
    rampart.add_user("alice", PASSWORD);
    login(&rampart, SECRET, 2, 3).assert_code("Access-Accept");

    // A value out of range and a client without a secret (which would also
    // take 127.0.0.1 away from the client that works).
    let broken = Options {
        policy: "unenrolled = \"allow\"\nchallenge_timeout_secs = 5".into(),
        extra: "[[clients]]\nname = \"nosecret\"\naddress = \"127.0.0.1/32\"\n".into(),
        ..good.clone()
    };
    assert!(!rampart.reload_with(&broken), "{}", rampart.logs());

    // The log carries exactly what check-config prints for the same file.
    let (code, out, err) = cli(&rampart.config, &["check-config"], "");
    assert_eq!(code, 2, "{out}{err}");
    let printed: Vec<&str> = out
        .lines()
        .chain(err.lines())
        .filter(|l| l.contains("rampart.toml: "))
        .collect();
    assert!(printed.len() >= 2, "{out}{err}");
    let logs = rampart.logs();
    for line in &printed {
        assert!(logs.contains(line), "{line:?} not in the log:\n{logs}");
    }
    assert!(logs.contains("policy.challenge_timeout_secs: "), "{logs}");
    assert!(logs.contains("clients[1].secret: "), "{logs}");

    // Still the old configuration: same client, same secret, same policy.
    login(&rampart, SECRET, 2, 3).assert_code("Access-Accept");
    assert_eq!(
        rampart.metric("rampart_config_reloads_total{outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(rampart.metric("rampart_config_last_reload_successful"), 0.0);

    // Fixed: applied, and the gauge says so.
    assert!(rampart.reload_with(&good), "{}", rampart.logs());
    assert_eq!(rampart.metric("rampart_config_last_reload_successful"), 1.0);
    login(&rampart, SECRET, 2, 3).assert_code("Access-Accept");
}

#[test]
fn a_changed_listen_address_needs_a_restart_and_says_so() {
    let options = Options {
        policy: "unenrolled = \"allow\"".into(),
        ..Options::default()
    };
    let rampart = Rampart::start_with(options.clone());
    rampart.add_user("alice", PASSWORD);
    let applied = rampart.reload_after(|| {
        let text = std::fs::read_to_string(&rampart.config).unwrap();
        // [radius] listen is the first "listen" in the generated file.
        let moved = text.replacen("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"", 1);
        assert_ne!(text, moved);
        std::fs::write(&rampart.config, moved).unwrap();
    });
    assert!(applied, "{}", rampart.logs());
    assert!(
        rampart.wait_for_log("radius.listen", Duration::from_secs(5)),
        "{}",
        rampart.logs()
    );
    assert!(rampart.logs().contains("take effect only after a restart"));
    // The socket bound at start keeps serving.
    login(&rampart, SECRET, 2, 3).assert_code("Access-Accept");
}

const REPLY_TOPIC: &str = "rampart-replies-R3l0adHeldPushQ7z";
const NTFY_TOKEN: &str = "tk_reloadrampartrelaytoken000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_held_across_a_reload_is_still_approved() {
    let ntfy = Ntfy::start_with(NtfyOptions {
        auth: Some(Auth {
            tokens: vec![(NTFY_TOKEN.into(), "*".into(), Perm::ReadWrite)],
            everyone: vec![(REPLY_TOPIC.into(), Perm::WriteOnly)],
        }),
        ..NtfyOptions::default()
    });
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("ntfy.token");
    std::fs::write(&token_file, format!("{NTFY_TOKEN}\n")).unwrap();
    let push = |timeout_secs: u64| {
        format!(
            "[out_of_band]\ntimeout_secs = {timeout_secs}\n\n[push]\nformat = \"ntfy\"\nurl = \"{url}\"\ntoken_file = \"{token}\"\nreply_topic = \"{REPLY_TOPIC}\"\n",
            url = ntfy.url,
            token = token_file.display(),
        )
    };
    let options = Options {
        extra: push(30),
        ..Options::default()
    };
    let rampart = Rampart::start_with(options.clone());
    assert!(
        rampart.wait_for_log("ntfy reply relay subscribed", Duration::from_secs(10)),
        "{}",
        rampart.logs()
    );
    rampart.add_user("alice", PASSWORD);
    let (code, out, err) = cli(
        &rampart.config,
        &["enroll", "push", "alice", "--server", &ntfy.url],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let topic = out
        .lines()
        .find(|l| l.starts_with(&ntfy.url))
        .and_then(|l| l.trim().rsplit('/').next())
        .expect("enroll prints the topic URL")
        .to_string();

    // radclient retransmits every 3 s while the login is held.
    let server = rampart.radius;
    let attributes = format!(
        "User-Name = \"alice\", User-Password = \"{PASSWORD},push\", Message-Authenticator = 0x00"
    );
    let held = tokio::task::spawn_blocking(move || radclient(server, SECRET, &attributes, 6, 3));
    let phone = Phone::new();
    let notification = phone.notification(&ntfy, &topic, 0).await;
    // Parked once ntfy has accepted the push (the phone may see it first).
    let deadline = Instant::now() + Duration::from_secs(10);
    while rampart.metric("rampart_oob_pending") != 1.0 {
        assert!(Instant::now() < deadline, "the login was not parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reload while the login waits: another policy and hold time, new
    // pipeline, same relay settings.
    let next = Options {
        policy: "enroll_url = \"https://mfa.example.test/enroll\"".into(),
        extra: push(45),
        ..options
    };
    assert!(rampart.reload_with(&next), "{}", rampart.logs());
    assert!(rampart.logs().contains("parked=1"), "{}", rampart.logs());
    assert_eq!(rampart.metric("rampart_oob_pending"), 1.0);
    // A retransmission reaches the listener after the reload and is still
    // recognised as the request in flight (the duplicate cache survived).
    let duplicates = "rampart_radius_duplicates_total{kind=\"in_flight\"}";
    let before = rampart.metric(duplicates);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rampart.metric(duplicates) <= before {
        assert!(Instant::now() < deadline, "no retransmission seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tap = phone.tap(&notification, "Approve").await;
    assert_eq!(tap.status, 200);
    let reply = held.await.unwrap();
    reply.assert_code("Access-Accept");
    assert_eq!(ntfy.messages(&topic).len(), 1, "exactly one push");
    assert_eq!(
        rampart.metric("rampart_oob_outcomes_total{channel=\"push\",outcome=\"approved\"}"),
        1.0
    );
    assert_eq!(rampart.metric("rampart_oob_pending"), 0.0);
    // The factor stage covers the whole wait (seconds), not just the send.
    assert!(
        rampart.metric("rampart_stage_duration_seconds_sum{stage=\"factor\"}") >= 1.0,
        "{}",
        rampart.metrics()
    );
    // The relay kept its subscription: nothing to restart.
    assert!(!rampart.logs().contains("reply relay restarted"));
    let logs = rampart.logs();
    for secret in [NTFY_TOKEN, REPLY_TOPIC, topic.as_str(), PASSWORD] {
        assert!(!logs.contains(secret), "{secret:?} logged");
    }
}
