//! Texts and calls when the provider fails: the Twilio emulator (Messages
//! and Calls) and a template SMS gateway, each hanging (the request is read,
//! no answer ever comes) and then answering 500, while several users log in
//! at once. Each login gets its Reject with a Reply-Message that says the
//! code or call could not be sent, within the provider's `timeout_secs`
//! (retries included) — never the whole hold; the daemon stays up; the
//! failure is counted by channel and reason and by provider and outcome,
//! and logged. `/readyz` stays 200: a provider is not part of the node (a
//! load balancer would take every node out at once, and TOTP logins still
//! work). Once the provider answers again, texts and calls go out again.

use std::time::Duration;

use super::nas::{Login, assert_rejected_within, concurrently, send};
use crate::common::faulty::{Faulty, Mode};
use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, FROM, Fault, Twilio};
use crate::common::*;

/// `timeout_secs` of every provider here: one delivery, retries included.
const PROVIDER_TIMEOUT_SECS: u64 = 3;
/// How long a held call may wait for its answer: far longer than the
/// delivery deadline, so that a Reject at the hold's end is told apart.
const HOLD_SECS: u64 = 30;
/// The provider's deadline plus a generous margin for a loaded host.
const DEADLINE: Duration = Duration::from_secs(PROVIDER_TIMEOUT_SECS + 4);
const PUBLIC_URL: &str = "https://mfa.example.test";
const PASSWORD: &str = "pw-secret";

fn start(sms: &str, phone: &str) -> Rampart {
    Rampart::start_with(Options {
        extra: format!(
            "[out_of_band]\ntimeout_secs = {HOLD_SECS}\npublic_url = \"{PUBLIC_URL}\"\nmax_per_window = 50\n\n{sms}\n{phone}\n"
        ),
        ..Options::default()
    })
}

fn twilio_section(table: &str, twilio: &Twilio, extra: &str) -> String {
    format!(
        "[{table}]\n{extra}account_sid = \"{ACCOUNT_SID}\"\nauth_token = \"{AUTH_TOKEN}\"\nfrom = \"{FROM}\"\napi_base = \"{}\"\ntimeout_secs = {PROVIDER_TIMEOUT_SECS}\n",
        twilio.api_base
    )
}

/// Adds `user` with a phone number made from `n`; returns the number.
fn enroll(rampart: &Rampart, user: &str, n: usize) -> String {
    let number = format!("+1555333{n:04}");
    rampart.add_user(user, PASSWORD);
    let (code, out, err) = cli(&rampart.config, &["enroll", "phone", user, &number], "");
    assert_eq!(code, 0, "{out} {err}");
    number
}

/// Logins of fresh users: `sms` of them ask for a text, `calls` get a call.
fn logins(rampart: &Rampart, tag: &str, sms: usize, calls: usize) -> Vec<Login> {
    (0..sms + calls)
        .map(|i| {
            let user = format!("{tag}{i}");
            enroll(rampart, &user, tag.len() * 100 + i);
            let password = if i < sms {
                format!("{PASSWORD},sms")
            } else {
                PASSWORD.to_string()
            };
            Login::new(&user, &password, true)
        })
        .collect()
}

fn metric(rampart: &Rampart, family: &str, labels: &str) -> f64 {
    rampart.metric(&format!("{family}{{{labels}}}"))
}

#[test]
fn a_hung_or_failing_twilio_rejects_texts_and_calls_in_time_and_recovers() {
    let twilio = Twilio::start();
    let mut rampart = start(
        &twilio_section("sms", &twilio, "provider = \"twilio\"\n"),
        &twilio_section("phone", &twilio, "ring_secs = 20\n"),
    );
    twilio.deliver_callbacks_to(rampart.metrics);
    // In the first scrape, before any fault: an alert on them can fire.
    let metrics = rampart.metrics();
    for series in [
        r#"rampart_provider_requests_total{provider="twilio_sms",outcome="timeout"} 0"#,
        r#"rampart_provider_requests_total{provider="twilio_call",outcome="status"} 0"#,
        r#"rampart_oob_delivery_failures_total{channel="phone",reason="busy"} 0"#,
        "rampart_sms_codes_sent_total 0",
    ] {
        assert!(metrics.contains(series), "{series}: {metrics}");
    }

    let mut slowest = Vec::new();
    for (tag, fault, reason) in [
        ("hang", Fault::Hang, "timeout"),
        ("fivehundred", Fault::Status(500), "status"),
    ] {
        twilio.set_fault(Some(fault));
        let logins = logins(&rampart, tag, 2, 2);
        let sent = concurrently(rampart.radius, &logins);
        let (texts, calls) = sent.split_at(2);
        slowest.push(assert_rejected_within(
            texts,
            DEADLINE,
            "code could not be sent",
        ));
        slowest.push(assert_rejected_within(calls, DEADLINE, "could not be sent"));
        assert_eq!(
            rampart.readyz(),
            200,
            "a provider is not the node's readiness"
        );
        assert!(rampart.is_running());
        for (channel, provider) in [("sms", "twilio_sms"), ("phone", "twilio_call")] {
            assert_counted(&rampart, channel, provider, reason, 2.0);
        }
    }
    assert!(twilio.messages().is_empty() && twilio.calls().is_empty());
    let logs = rampart.logs();
    assert!(logs.contains("SMS delivery failed"), "{logs}");
    assert!(logs.contains("out-of-band delivery failed"), "{logs}");
    assert!(logs.contains("reason=\"provider_unavailable\""), "{logs}");

    // The provider is back: a text goes out, a call is answered with #.
    twilio.set_fault(None);
    let back = logins(&rampart, "back", 1, 1);
    let text = send(rampart.radius, &back[0], 10);
    assert!(
        text.reply_message
            .as_deref()
            .is_some_and(|m| m.contains("code was sent")),
        "{text:?}"
    );
    assert!(send(rampart.radius, &back[1], 20).accepted());
    assert_eq!(twilio.messages().len(), 1);
    eprintln!("Twilio: slowest answers (hang: sms, call; 500: sms, call) {slowest:?}");
}

#[test]
fn a_hung_or_failing_sms_gateway_rejects_in_time_and_recovers() {
    let gateway = Faulty::start(Mode::Hang);
    let mut rampart = start(
        &format!(
            "[sms]\nprovider = \"template\"\nurl = \"{}\"\nbody = \"to={{to}}&text={{message}}\"\ntimeout_secs = {PROVIDER_TIMEOUT_SECS}\n",
            gateway.url
        ),
        "",
    );
    let mut slowest = Vec::new();
    for (tag, mode, reason) in [
        ("hang", Mode::Hang, "timeout"),
        ("fivehundred", Mode::Status(500), "status"),
    ] {
        gateway.set_mode(mode);
        let sent = concurrently(rampart.radius, &logins(&rampart, tag, 4, 0));
        slowest.push(assert_rejected_within(
            &sent,
            DEADLINE,
            "code could not be sent",
        ));
        assert_eq!(rampart.readyz(), 200);
        assert!(rampart.is_running());
        assert_counted(&rampart, "sms", "sms_template", reason, 4.0);
    }
    assert!(rampart.logs().contains("SMS delivery failed"));

    gateway.set_mode(Mode::Status(200));
    let back = logins(&rampart, "back", 1, 0);
    let text = send(rampart.radius, &back[0], 10);
    assert!(
        text.reply_message
            .as_deref()
            .is_some_and(|m| m.contains("code was sent")),
        "{text:?}"
    );
    assert!(gateway.bodies().last().unwrap().contains("sign-in+code"));
    eprintln!("SMS gateway: slowest answers (hang, 500) {slowest:?}");
}

/// `channel`'s delivery failures and `provider`'s requests, both with
/// `reason`, were each counted at least `at_least` times.
fn assert_counted(rampart: &Rampart, channel: &str, provider: &str, reason: &str, at_least: f64) {
    let failed = metric(
        rampart,
        "rampart_oob_delivery_failures_total",
        &format!("channel=\"{channel}\",reason=\"{reason}\""),
    );
    assert!(
        failed >= at_least,
        "{channel} {reason}: {}",
        rampart.metrics()
    );
    let outcome = metric(
        rampart,
        "rampart_provider_requests_total",
        &format!("provider=\"{provider}\",outcome=\"{reason}\""),
    );
    assert!(
        outcome >= at_least,
        "{provider} {reason}: {}",
        rampart.metrics()
    );
}
