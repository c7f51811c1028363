//! Push end to end: the real `rampart` binary, the real `radclient`
//! retransmitting while the login is held, the ntfy emulator and a scripted
//! phone. With ntfy the phone never reaches rampart (no public_url): the
//! answer comes back through the reply topic rampart subscribes to. With a
//! webhook the phone follows the approve link through a reverse proxy.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::ntfy::{Auth, Ntfy, Options as NtfyOptions, Perm};
use crate::common::phone::{Phone, Script, WebhookReceiver};
use crate::common::proxy::Forwarder;
use crate::common::{Options, RadclientReply, Rampart, SECRET, cli, radclient};

const REPLY_TOPIC: &str = "rampart-replies-5Jx0qW8nT2cR4vLz";
const NTFY_TOKEN: &str = "tk_e2erampartrelaytoken00000001";
const PASSWORD: &str = "correct horse";

struct Setup {
    rampart: Rampart,
    ntfy: Ntfy,
    /// alice's topic name, as enrolled.
    topic: String,
    _token_dir: tempfile::TempDir,
}

/// ntfy with access control (rampart's token reads and writes everything;
/// anyone may only write the reply topic), rampart with `[push]` ntfy and a
/// reply topic, and alice with a password and a push topic from
/// `rampart enroll push --server`.
fn start(timeout_secs: u64) -> Setup {
    start_with_token(timeout_secs, NTFY_TOKEN)
}

/// [`start`] with the access token rampart is given (the server knows
/// [`NTFY_TOKEN`] only).
fn start_with_token(timeout_secs: u64, rampart_token: &str) -> Setup {
    let ntfy = Ntfy::start_with(NtfyOptions {
        auth: Some(Auth {
            tokens: vec![(NTFY_TOKEN.into(), "*".into(), Perm::ReadWrite)],
            everyone: vec![(REPLY_TOPIC.into(), Perm::WriteOnly)],
        }),
        ..NtfyOptions::default()
    });
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("ntfy.token");
    std::fs::write(&token_file, format!("{rampart_token}\n")).unwrap();
    let rampart = Rampart::start_with(Options {
        extra: format!(
            r#"
[out_of_band]
timeout_secs = {timeout_secs}

[push]
format = "ntfy"
url = "{url}"
token_file = "{token}"
reply_topic = "{REPLY_TOPIC}"
"#,
            url = ntfy.url,
            token = token_file.display(),
        ),
        ..Options::default()
    });
    if rampart_token == NTFY_TOKEN {
        assert!(
            rampart.wait_for_log("ntfy reply relay subscribed", Duration::from_secs(10)),
            "{}",
            rampart.logs()
        );
    }
    rampart.add_user("alice", PASSWORD);
    let (code, out, err) = cli(
        &rampart.config,
        &["enroll", "push", "alice", "--server", &ntfy.url],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let url = out
        .lines()
        .find(|l| l.starts_with(&ntfy.url))
        .expect("enroll prints the topic URL")
        .trim()
        .to_string();
    let topic = url.rsplit('/').next().unwrap().to_string();
    Setup {
        rampart,
        ntfy,
        topic,
        _token_dir: token_dir,
    }
}

/// A login with `,push`, radclient retransmitting every 3 s (up to 6 sends)
/// while rampart holds it. Runs on a blocking thread; returns the reply and
/// how long it took.
async fn login(
    rampart: &Rampart,
    user: &str,
) -> tokio::task::JoinHandle<(RadclientReply, Duration)> {
    let server = rampart.radius;
    let attributes = format!(
        "User-Name = \"{user}\", User-Password = \"{PASSWORD},push\", Calling-Station-Id = \"203.0.113.7\", Message-Authenticator = 0x00"
    );
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let reply = radclient(server, SECRET, &attributes, 5, 3);
        (reply, started.elapsed())
    })
}

/// Asserts none of `secrets` reached rampart's stderr.
fn assert_not_logged(rampart: &Rampart, secrets: &[&str]) {
    // Every test made a decision; its audit line comes after the lines that
    // handle the push and the answer.
    assert!(rampart.wait_for_decisions(1) >= 1);
    let logs = rampart.logs();
    for secret in secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret),
            "{secret:?} in rampart's log:\n{logs}"
        );
    }
}

/// The tokens carried by a notification's buttons.
fn tokens(notification: &Value) -> Vec<String> {
    notification["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["body"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_relay_approve_accepts_with_one_push_despite_retransmissions() {
    let setup = start(30);
    let (rampart, ntfy) = (&setup.rampart, &setup.ntfy);
    let login = login(rampart, "alice").await;
    // The user reads the notification and taps Approve 4 s later: radclient
    // has retransmitted by then.
    let (notification, tap) = Phone::new()
        .run(
            ntfy,
            &setup.topic,
            0,
            Script::ApproveAfter(Duration::from_secs(4)),
        )
        .await;
    assert_eq!(tap.unwrap().status, 200);
    let (reply, _) = login.await.unwrap();
    reply.assert_code("Access-Accept");

    assert_eq!(ntfy.messages(&setup.topic).len(), 1, "exactly one push");
    assert!(
        rampart.metric("rampart_radius_duplicates_total{kind=\"in_flight\"}") >= 1.0,
        "radclient retransmitted during the hold"
    );
    // The buttons point at the reply topic on ntfy, never at rampart.
    for action in notification["actions"].as_array().unwrap() {
        assert_eq!(action["url"], format!("{}/{REPLY_TOPIC}", ntfy.url));
        assert!(
            !action["url"]
                .as_str()
                .unwrap()
                .contains(&rampart.metrics.to_string())
        );
    }
    assert_eq!(
        rampart.metric("rampart_oob_outcomes_total{channel=\"push\",outcome=\"approved\"}"),
        1.0
    );
    let tokens = tokens(&notification);
    let mut secrets = vec![REPLY_TOPIC, NTFY_TOKEN, setup.topic.as_str()];
    secrets.extend(tokens.iter().map(String::as_str));
    assert_not_logged(rampart, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_relay_deny_rejects_and_locks_the_user() {
    let setup = start(30);
    let (rampart, ntfy) = (&setup.rampart, &setup.ntfy);
    let login = login(rampart, "alice").await;
    let (notification, _) = Phone::new().run(ntfy, &setup.topic, 0, Script::Deny).await;
    let (reply, _) = login.await.unwrap();
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("denied")),
        "{}",
        reply.output
    );
    // Locked: the next attempt is refused without pushing again.
    let (again, _) = self::login(rampart, "alice").await.await.unwrap();
    again.assert_code("Access-Reject");
    assert_eq!(
        ntfy.messages(&setup.topic).len(),
        1,
        "no push to a locked user"
    );
    assert!(rampart.metric("rampart_lockouts_total") >= 1.0);
    let tokens = tokens(&notification);
    let mut secrets = vec![REPLY_TOPIC, NTFY_TOKEN, setup.topic.as_str()];
    secrets.extend(tokens.iter().map(String::as_str));
    assert_not_logged(rampart, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_relay_fraud_rejects_locks_warns_and_counts() {
    let setup = start(30);
    let (rampart, ntfy) = (&setup.rampart, &setup.ntfy);
    let login = login(rampart, "alice").await;
    let (notification, _) = Phone::new().run(ntfy, &setup.topic, 0, Script::Fraud).await;
    let (reply, _) = login.await.unwrap();
    reply.assert_code("Access-Reject");
    assert!(rampart.wait_for_log("FRAUD REPORTED", Duration::from_secs(5)));
    assert_eq!(
        rampart.metric("rampart_fraud_reports_total{channel=\"push\"}"),
        1.0
    );
    let (again, _) = self::login(rampart, "alice").await.await.unwrap();
    again.assert_code("Access-Reject");
    assert_eq!(ntfy.messages(&setup.topic).len(), 1);
    let tokens = tokens(&notification);
    let mut secrets = vec![REPLY_TOPIC, NTFY_TOKEN, setup.topic.as_str()];
    secrets.extend(tokens.iter().map(String::as_str));
    assert_not_logged(rampart, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_ignored_push_rejects_after_the_timeout_and_a_late_tap_is_refused() {
    let setup = start(3);
    let (rampart, ntfy) = (&setup.rampart, &setup.ntfy);
    let login = login(rampart, "alice").await;
    let phone = Phone::new();
    let (notification, tap) = phone.run(ntfy, &setup.topic, 0, Script::Ignore).await;
    assert!(tap.is_none());
    let (reply, elapsed) = login.await.unwrap();
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("No answer in time")),
        "{}",
        reply.output
    );
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_secs(12),
        "rejected after {elapsed:?}, timeout_secs = 3"
    );
    // The user wakes up and taps Approve on the stale notification.
    let before = rampart.metric("rampart_oob_answers_refused_total{reason=\"expired\"}")
        + rampart.metric("rampart_oob_answers_refused_total{reason=\"unknown_transaction\"}");
    let late = phone.tap(&notification, "Approve").await;
    assert_eq!(late.status, 200, "ntfy accepts the publish");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let now = rampart.metric("rampart_oob_answers_refused_total{reason=\"expired\"}")
            + rampart.metric("rampart_oob_answers_refused_total{reason=\"unknown_transaction\"}");
        if now > before || Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        refused,
        before + 1.0,
        "the late answer is refused and counted"
    );
    assert!(rampart.wait_for_log("out-of-band answer refused", Duration::from_secs(5)));
    let tokens = tokens(&notification);
    let mut secrets = vec![REPLY_TOPIC, NTFY_TOKEN, setup.topic.as_str()];
    secrets.extend(tokens.iter().map(String::as_str));
    assert_not_logged(rampart, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_push_approved_through_the_public_url_accepts() {
    let signing_secret = "whsec_e2e_3f9c2a7d1b6e4085";
    let receiver = WebhookReceiver::start(signing_secret);
    let proxy = Forwarder::start();
    let rampart = Rampart::start_with(Options {
        extra: format!(
            r#"
[out_of_band]
timeout_secs = 30
public_url = "{public}"

[push]
format = "webhook"
url = "{hook}"
signing_secret = "{signing_secret}"
"#,
            public = proxy.url,
            hook = receiver.url,
        ),
        ..Options::default()
    });
    proxy.set_backend(rampart.metrics);
    rampart.add_user("bob", PASSWORD);

    let login = login(&rampart, "bob").await;
    let push = receiver
        .next_push(0, Duration::from_secs(20))
        .await
        .expect("a signed push reaches the receiver");
    assert_eq!(push["user"], "bob");
    assert_eq!(push["calling_station_id"], "203.0.113.7");
    let approve = push["approve_url"].as_str().unwrap();
    assert!(approve.starts_with(&format!("{}/oob/v1/answer?t=", proxy.url)));
    let (page, answered) = Phone::new().click(approve).await;
    assert_eq!(page, 200);
    assert_eq!(answered.unwrap().0, 200);
    let (reply, _) = login.await.unwrap();
    reply.assert_code("Access-Accept");
    assert_eq!(receiver.pushes().len(), 1, "exactly one push");
    assert_eq!(receiver.refused(), 0);
    assert_not_logged(
        &rampart,
        &[
            signing_secret,
            push["approve_token"].as_str().unwrap(),
            push["deny_token"].as_str().unwrap(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_refusing_rampart_token_rejects_the_login_and_is_counted() {
    let wrong = "tk_e2ewrongtoken000000000000001";
    let setup = start_with_token(30, wrong);
    let (rampart, ntfy) = (&setup.rampart, &setup.ntfy);
    // The relay's subscription is refused (401) and retried with backoff.
    assert!(rampart.wait_for_log(
        "ntfy reply relay: subscription failed",
        Duration::from_secs(10)
    ));
    assert!(rampart.metric("rampart_push_relay_reconnects_total{reason=\"status\"}") >= 1.0);
    let started = Instant::now();
    let (reply, _) = login(rampart, "alice").await.await.unwrap();
    reply.assert_code("Access-Reject");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hold when nothing was sent"
    );
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("could not be sent")),
        "{}",
        reply.output
    );
    assert!(ntfy.messages(&setup.topic).is_empty());
    assert!(
        ntfy.requests()
            .iter()
            .any(|r| r.path == "/" && r.status == 401),
        "the emulator refused the publish"
    );
    assert_eq!(
        rampart.metric("rampart_oob_delivery_failures_total{channel=\"push\",reason=\"status\"}"),
        1.0
    );
    assert!(rampart.wait_for_log("unauthorized", Duration::from_secs(5)));
    assert_not_logged(rampart, &[wrong, REPLY_TOPIC, setup.topic.as_str()]);
}

#[test]
fn bad_push_sections_are_reported_by_key_without_their_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let check = |extra: &str| {
        let config = crate::common::write_config(
            dir.path(),
            &Options {
                extra: extra.to_string(),
                ..Options::default()
            },
        );
        let (code, out, err) = cli(&config, &["check-config"], "");
        (code, format!("{out}{err}"))
    };
    let (code, text) = check(
        r#"
[push]
format = "ntfy"
token = "tk_never_print_me_0000000000001"
reply_topic = "short"
priority = 7
"#,
    );
    assert_ne!(code, 0, "{text}");
    for expected in [
        "push.reply_topic: too short to be unguessable",
        "push.url: missing",
        "push.priority: must be between 1 (min) and 5 (max)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("tk_never_print_me"), "{text}");

    let (code, text) = check(
        r#"
[push]
format = "webhook"
url = "https://hooks.example/rampart"
reply_topic = "rampart-replies-5Jx0qW8nT2cR4vLz"
"#,
    );
    assert_ne!(code, 0, "{text}");
    for expected in [
        "push.signing_secret: missing",
        "push.reply_topic: only used with format = \"ntfy\"",
        "out_of_band.public_url: missing: webhook answers come back",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    let (code, text) = check("[push]\nformat = \"pager\"\ntopic = \"x\"\n");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("push.format"), "{text}");
}
