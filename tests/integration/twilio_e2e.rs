//! `[phone]` and `[sms]` end to end: the real `rampart` binary, the real
//! `radclient` (retransmitting), and the Twilio emulator calling back through
//! rampart's HTTP listener as if through a proxy at `public_url`.

use std::time::{Duration, Instant};

use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, Callee, FROM, Twilio};
use crate::common::*;

const PUBLIC_URL: &str = "https://mfa.example.test";

/// rampart with `[phone]` and `[sms]` on the emulator; the phone's auth token
/// comes from a file (kept in the returned directory), the SMS one inline
/// (`sms_token`).
fn start(twilio: &Twilio, timeout_secs: u64, sms_token: &str) -> (Rampart, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("twilio-token");
    std::fs::write(&token_file, format!("{AUTH_TOKEN}\n")).unwrap();
    let rampart = Rampart::start_with(Options {
        extra: format!(
            r#"
[out_of_band]
timeout_secs = {timeout_secs}
public_url = "{PUBLIC_URL}"

[phone]
account_sid = "{ACCOUNT_SID}"
auth_token_file = "{token}"
from = "{FROM}"
api_base = "{api}"
ring_secs = 20

[sms]
provider = "twilio"
account_sid = "{ACCOUNT_SID}"
auth_token = "{sms_token}"
from = "{FROM}"
api_base = "{api}"
"#,
            token = token_file.display(),
            api = twilio.api_base,
        ),
        ..Options::default()
    });
    twilio.deliver_callbacks_to(rampart.metrics);
    (rampart, secrets)
}

pub(crate) fn enroll_phone(rampart: &Rampart, user: &str, number: &str) {
    rampart.add_user(user, "pw-secret");
    let (code, out, err) = cli(&rampart.config, &["enroll", "phone", user, number], "");
    assert_eq!(code, 0, "{out} {err}");
}

/// radclient retransmitting every 2 s, up to 4 sends.
pub(crate) fn login(rampart: &Rampart, user: &str, password: &str) -> RadclientReply {
    radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"{user}\", User-Password = \"{password}\", Calling-Station-Id = \"198.51.100.4\", Message-Authenticator = 0x00"
        ),
        3,
        2,
    )
}

fn assert_no_secrets(rampart: &Rampart, extra: &[&str]) {
    let logs = rampart.logs();
    for secret in [AUTH_TOKEN].iter().chain(extra) {
        assert!(!logs.contains(secret), "{secret:?} in rampart's logs");
    }
}

#[test]
fn call_approved_with_pound_once_despite_retransmissions() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220001";
    enroll_phone(&rampart, "alice", number);
    // The callee answers after radclient's first retransmission (at 2 s).
    twilio.set_callee(number, Callee::Late(Duration::from_secs(3), "#"));
    let reply = login(&rampart, "alice", "pw-secret");
    reply.assert_code("Access-Accept");

    let calls = twilio.wait_for_finished_calls(number, 1);
    assert_eq!(calls.len(), 1, "exactly one call: {calls:?}");
    assert!(rampart.metric(r#"rampart_radius_duplicates_total{kind="in_flight"}"#) >= 1.0);
    let gather = &calls[0].callbacks[0];
    assert_eq!((gather.kind, gather.status), ("gather", 200));
    assert!(gather.body.contains("Sign-in approved"), "{}", gather.body);
    assert!(calls[0].said[0].starts_with("Sign-in as alice to test-nas from 198.51.100.4 at "));
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(
        rampart.logs().contains("reason=\"ok\" factor=\"phone\""),
        "{}",
        rampart.logs()
    );
    assert_no_secrets(&rampart, &[]);
}

#[test]
fn pressing_9_rejects_locks_and_reports_fraud() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220002";
    enroll_phone(&rampart, "bob", number);
    twilio.set_callee(number, Callee::Press("9"));
    let reply = login(&rampart, "bob", "pw-secret,phone");
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("locked")),
        "{}",
        reply.output
    );
    assert!(rampart.wait_for_log("FRAUD REPORTED", Duration::from_secs(5)));

    // Locked: refused before any call is placed.
    let again = login(&rampart, "bob", "pw-secret,phone");
    again.assert_code("Access-Reject");
    // Two decisions and the fraud warning, all on the audit target.
    assert_eq!(rampart.wait_for_decisions(3), 3);
    assert!(rampart.logs().contains("reason=\"locked_out\""));
    assert_eq!(twilio.calls().len(), 1);
    assert!(rampart.metric(r#"rampart_fraud_reports_total{channel="phone"}"#) >= 1.0);
}

#[test]
fn any_other_key_denies() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220003";
    enroll_phone(&rampart, "erin", number);
    twilio.set_callee(number, Callee::Press("1"));
    login(&rampart, "erin", "pw-secret,phone").assert_code("Access-Reject");
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(
        rampart
            .logs()
            .contains("reason=\"denied\" factor=\"phone\"")
    );
}

#[test]
fn unanswered_call_rejects_at_once_not_at_the_timeout() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220004";
    enroll_phone(&rampart, "carol", number);
    twilio.set_callee(number, Callee::NoAnswer);
    let started = Instant::now();
    login(&rampart, "carol", "pw-secret,phone").assert_code("Access-Reject");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(rampart.logs().contains("reason=\"not_answered\""));
    let calls = twilio.wait_for_finished_calls(number, 1);
    assert_eq!(
        calls[0].callbacks[0]
            .params
            .iter()
            .find(|(n, _)| n == "CallStatus")
            .unwrap()
            .1,
        "no-answer"
    );
    assert_eq!(calls[0].callbacks[0].status, 204);
}

#[test]
fn forged_callbacks_are_refused_and_the_login_times_out() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 4, AUTH_TOKEN);
    let number = "+15552220005";
    enroll_phone(&rampart, "dave", number);
    twilio.sign_with("guessed-token");
    let reply = radclient(
        rampart.radius,
        SECRET,
        "User-Name = \"dave\", User-Password = \"pw-secret,phone\", Message-Authenticator = 0x00",
        1,
        10,
    );
    reply.assert_code("Access-Reject");
    let calls = twilio.wait_for_finished_calls(number, 1);
    let statuses: Vec<u16> = calls[0].callbacks.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [403, 403]);
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(rampart.logs().contains("reason=\"timeout\""));
    assert!(rampart.logs().contains("X-Twilio-Signature does not match"));
    assert!(
        rampart
            .metric(r#"rampart_twilio_callbacks_total{callback="gather",outcome="bad_signature"}"#)
            >= 1.0
    );
    assert_no_secrets(&rampart, &["guessed-token"]);
}

fn six_digits(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

#[test]
fn sms_keyword_sends_a_code_that_works_once() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220016";
    enroll_phone(&rampart, "frank", number);
    let reply = login(&rampart, "frank", "pw-secret,sms");
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("code was sent to your phone ending in 16")),
        "{}",
        reply.output
    );
    let code = six_digits(&twilio.wait_for_sms(number, 1).expect("an SMS"));
    assert_eq!(
        twilio.messages().len(),
        1,
        "one SMS despite retransmissions"
    );

    login(&rampart, "frank", &format!("pw-secret,{code}")).assert_code("Access-Accept");
    login(&rampart, "frank", &format!("pw-secret,{code}")).assert_code("Access-Reject");
    assert_eq!(rampart.wait_for_decisions(3), 3);
    assert!(rampart.logs().contains("reason=\"sms_sent\""));
    assert!(rampart.logs().contains("reason=\"ok\" factor=\"sms\""));
    assert_no_secrets(&rampart, &[&code]);
}

#[test]
fn sms_code_by_access_challenge_when_preferred() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, AUTH_TOKEN);
    let number = "+15552220027";
    enroll_phone(&rampart, "grace", number);
    let (status, out, err) = cli(&rampart.config, &["enroll", "prefer", "grace", "sms"], "");
    assert_eq!(status, 0, "{out} {err}");

    let challenge = login(&rampart, "grace", "pw-secret");
    challenge.assert_code("Access-Challenge");
    assert_eq!(
        challenge.attribute("Reply-Message"),
        Some("Enter the code sent to your phone ending in 27")
    );
    let state = challenge.attribute("State").unwrap().to_string();
    let code = six_digits(&twilio.wait_for_sms(number, 1).expect("an SMS"));
    radclient_answer(&rampart, "grace", &code, &state).assert_code("Access-Accept");
    assert!(twilio.calls().is_empty());
    assert_no_secrets(&rampart, &[&code]);
}

#[test]
fn sms_gateway_refusal_rejects_counted_and_without_the_token() {
    let twilio = Twilio::start();
    let (rampart, _secrets) = start(&twilio, 30, "wrong-sms-token");
    let number = "+15552220038";
    enroll_phone(&rampart, "heidi", number);
    let reply = login(&rampart, "heidi", "pw-secret,sms");
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("could not be sent")),
        "{}",
        reply.output
    );
    assert!(twilio.messages().is_empty());
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(rampart.logs().contains("reason=\"provider_unavailable\""));
    assert!(rampart.logs().contains("Twilio error 20003: Authenticate"));
    assert!(
        rampart.metric(r#"rampart_oob_delivery_failures_total{channel="sms",reason="status"}"#)
            >= 1.0
    );
    assert!(
        rampart
            .metric(r#"rampart_provider_requests_total{provider="twilio_sms",outcome="status"}"#)
            >= 1.0
    );
    assert_no_secrets(&rampart, &["wrong-sms-token"]);
}

#[test]
fn phone_without_public_url_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &Options {
            extra: format!(
                "[phone]\naccount_sid = \"{ACCOUNT_SID}\"\nauth_token = \"x\"\nfrom = \"12345\"\n\n[sms]\nprovider = \"template\"\nurl = \"https://gw.example.com/send\"\nbody = \"to={{to}}\"\n"
            ),
            ..Options::default()
        },
    );
    let (status, _, err) = cli(&config, &["check-config"], "");
    assert_ne!(status, 0);
    let file = config.display().to_string();
    for line in [
        format!("{file}: phone: needs out_of_band.public_url so Twilio can report the keypress"),
        format!("{file}: phone.from: \"12345\" is not an E.164 number such as \"+15005550006\""),
        format!("{file}: sms.body: {{message}} appears neither in body nor in url"),
    ] {
        assert!(err.contains(&line), "{line}\nnot in:\n{err}");
    }
}
