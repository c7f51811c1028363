//! `[phone] pin` end to end: the real `rampart` binary and `radclient`, the
//! Twilio emulator's callee typing a PIN into the `<Gather>` the call was
//! created with, the PIN set by `rampart enroll pin` (stdin) or on the portal.

use crate::common::twilio::{ACCOUNT_SID, AUTH_TOKEN, Call, Callee, FROM, Twilio};
use crate::common::web::Web;
use crate::common::*;
use crate::twilio_e2e::{enroll_phone, login};

const PUBLIC_URL: &str = "https://mfa.example.test";
/// Eight digits that appear nowhere else (not in a txn id, time or port).
const PIN: &str = "48291637";

/// rampart with `[phone] pin = "{pin}"` on the emulator; `more` is appended
/// (e.g. the portal).
fn start(twilio: &Twilio, pin: &str, more: &str) -> Rampart {
    let rampart = Rampart::start_with(Options {
        extra: format!(
            r#"
[out_of_band]
timeout_secs = 20
public_url = "{PUBLIC_URL}"
max_per_window = 10

[phone]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "{FROM}"
api_base = "{api}"
pin = "{pin}"
{more}
"#,
            api = twilio.api_base,
        ),
        ..Options::default()
    });
    twilio.deliver_callbacks_to(rampart.metrics);
    rampart
}

fn enroll_pin(rampart: &Rampart, user: &str, pin: &str) {
    let (code, out, err) = cli(
        &rampart.config,
        &["enroll", "pin", user],
        &format!("{pin}\n"),
    );
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(&format!("call PIN set for {user}")), "{out}");
    assert!(
        !out.contains(pin) && !err.contains(pin),
        "PIN echoed: {out} {err}"
    );
}

/// The PIN is in none of what rampart sent Twilio (the call's parameters,
/// its TwiML, the TwiML answering the keypress) nor in rampart's stderr.
fn assert_pin_nowhere(rampart: &Rampart, calls: &[Call], pin: &str) {
    for call in calls {
        for (name, value) in &call.params {
            assert!(!value.contains(pin), "PIN in the call's {name}: {value}");
        }
        for said in &call.said {
            assert!(!said.contains(pin), "PIN spoken: {said}");
        }
        for delivered in &call.callbacks {
            assert!(!delivered.body.contains(pin), "PIN in {}", delivered.body);
        }
    }
    assert!(!rampart.logs().contains(pin), "PIN in rampart's logs");
    assert!(!rampart.metrics().contains(pin), "PIN in the metrics");
}

fn failures(rampart: &Rampart, user: &str) -> serde_json::Value {
    let (code, out, err) = cli(&rampart.config, &["user", "show", user], "");
    assert_eq!(code, 0, "{out} {err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_right_pin_approves_and_is_never_sent_spoken_or_logged() {
    let twilio = Twilio::start();
    let rampart = start(&twilio, "required", "");
    let number = "+15552230001";
    enroll_phone(&rampart, "alice", number);
    enroll_pin(&rampart, "alice", PIN);
    twilio.set_callee(number, Callee::Press("48291637#"));

    login(&rampart, "alice", "pw-secret,phone").assert_code("Access-Accept");
    let calls = twilio.wait_for_finished_calls(number, 1);
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    // A PIN gather: keys until `#`, no one-key limit.
    assert_eq!(call.gather["finishOnKey"], "#");
    assert!(!call.gather.contains_key("numDigits"), "{:?}", call.gather);
    assert!(
        call.said[0].contains("enter your PIN followed by pound"),
        "{:?}",
        call.said
    );
    let gather = &call.callbacks[0];
    assert_eq!((gather.kind, gather.status), ("gather", 200));
    // The emulator did type the PIN (without the `#`), and rampart approved.
    assert!(gather.params.contains(&("Digits".into(), PIN.into())));
    assert!(gather.body.contains("Sign-in approved"), "{}", gather.body);
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(rampart.logs().contains("reason=\"ok\" factor=\"phone\""));
    assert!(
        rampart.metric(r#"rampart_twilio_callbacks_total{callback="gather",outcome="approved"}"#)
            >= 1.0
    );
    let shown = failures(&rampart, "alice");
    assert_eq!(shown["phone_pin"], true, "{shown}");
    assert_pin_nowhere(&rampart, &calls, PIN);
}

#[test]
fn a_wrong_pin_rejects_and_counts_toward_the_lockout_not_a_fraud_lock() {
    let twilio = Twilio::start();
    let rampart = start(&twilio, "optional", "");
    let number = "+15552230002";
    enroll_phone(&rampart, "bob", number);
    enroll_pin(&rampart, "bob", PIN);
    twilio.set_callee(number, Callee::Press("11112222#"));

    let reply = login(&rampart, "bob", "pw-secret,phone");
    reply.assert_code("Access-Reject");
    assert_eq!(
        reply.attribute("Reply-Message"),
        Some("Wrong PIN on the call. Sign in again to get a new call."),
        "{}",
        reply.output
    );
    assert_eq!(rampart.wait_for_decisions(1), 1);
    assert!(
        rampart
            .logs()
            .contains("reason=\"wrong_pin\" factor=\"phone\"")
    );
    // One failure counted, no lock (a deny would lock at once).
    let shown = failures(&rampart, "bob");
    assert_eq!(shown["failures"], 1, "{shown}");
    assert!(shown["locked_until"].is_null(), "{shown}");
    assert!(!rampart.logs().contains("FRAUD REPORTED"));
    assert!(
        rampart.metric(r#"rampart_oob_outcomes_total{channel="phone",outcome="wrong_pin"}"#) >= 1.0
    );

    // `[policy] max_failures = 5`: the fifth wrong PIN locks, like wrong codes.
    for _ in 2..=4 {
        login(&rampart, "bob", "pw-secret,phone").assert_code("Access-Reject");
    }
    let fifth = login(&rampart, "bob", "pw-secret,phone");
    fifth.assert_code("Access-Reject");
    assert!(
        fifth
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("account is locked for 15 minute(s)")),
        "{}",
        fifth.output
    );
    // Locked now: refused before any call.
    login(&rampart, "bob", "pw-secret,phone").assert_code("Access-Reject");
    assert_eq!(rampart.wait_for_decisions(6), 6);
    assert!(rampart.logs().contains("reason=\"locked_out\""));
    let calls = twilio.wait_for_finished_calls(number, 5);
    assert_eq!(calls.len(), 5);
    assert_pin_nowhere(&rampart, &calls, PIN);
}

#[test]
fn nine_then_pound_on_a_pin_call_reports_fraud() {
    let twilio = Twilio::start();
    let rampart = start(&twilio, "required", "");
    let number = "+15552230003";
    enroll_phone(&rampart, "carol", number);
    enroll_pin(&rampart, "carol", PIN);
    twilio.set_callee(number, Callee::Press("9#"));
    let reply = login(&rampart, "carol", "pw-secret,phone");
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("locked")),
        "{}",
        reply.output
    );
    assert!(rampart.wait_for_log("FRAUD REPORTED", std::time::Duration::from_secs(5)));
    assert!(rampart.metric(r#"rampart_fraud_reports_total{channel="phone"}"#) >= 1.0);
}

#[test]
fn required_pin_without_one_rejects_with_a_message_and_places_no_call() {
    let twilio = Twilio::start();
    let rampart = start(&twilio, "required", "");
    let number = "+15552230004";
    enroll_phone(&rampart, "dave", number);
    for typed in ["pw-secret,phone", "pw-secret"] {
        let reply = login(&rampart, "dave", typed);
        reply.assert_code("Access-Reject");
        assert!(
            reply
                .attribute("Reply-Message")
                .is_some_and(|m| m.contains("needs a call PIN")),
            "{}",
            reply.output
        );
    }
    assert_eq!(rampart.wait_for_decisions(2), 2);
    assert!(
        rampart
            .logs()
            .contains("reason=\"pin_not_enrolled\" factor=\"phone\"")
    );
    assert_eq!(twilio.requests(), 0, "no call placed: {:?}", twilio.calls());
    // Not a failed attempt: nothing counted.
    assert_eq!(failures(&rampart, "dave")["failures"], 0);
}

#[test]
fn bad_pins_are_refused_by_the_cli() {
    let twilio = Twilio::start();
    let rampart = start(&twilio, "optional", "");
    rampart.add_user("erin", "pw-secret");
    for (pin, why) in [
        ("123", "4 to 8 digits"),
        ("12a45", "4 to 8 digits"),
        ("2222", "too easy"),
    ] {
        let (code, out, err) = cli(
            &rampart.config,
            &["enroll", "pin", "erin"],
            &format!("{pin}\n"),
        );
        assert_ne!(code, 0, "{pin}: {out}");
        assert!(
            err.contains(why) && err.contains("nothing changed"),
            "{pin}: {err}"
        );
    }
    assert_eq!(failures(&rampart, "erin")["phone_pin"], false);
    // The admin reset clears a PIN.
    enroll_pin(&rampart, "erin", "0451");
    assert_eq!(failures(&rampart, "erin")["phone_pin"], true);
    let (code, out, err) = cli(&rampart.config, &["user", "reset", "erin", "pin"], "");
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(failures(&rampart, "erin")["phone_pin"], false);
}

fn sign_in(web: &mut Web, user: &str, password: &str) {
    let form = web.get("/enroll/signin");
    let csrf = form.csrf();
    web.post(
        "/enroll/signin",
        &[("csrf", &csrf), ("user", user), ("password", password)],
    );
}

#[test]
fn a_pin_set_on_the_portal_is_asked_for_on_the_next_call() {
    let twilio = Twilio::start();
    let rampart = start(
        &twilio,
        "optional",
        "\n[portal]\nenabled = true\ntitle = \"Example Corp\"\nsecure_cookies = false\n",
    );
    rampart.add_user("frank", "pw-secret");
    let mut web = Web::new(rampart.metrics);
    sign_in(&mut web, "frank", "pw-secret");
    // No [sms]: the phone page is there for the PIN alone.
    web.get("/enroll").assert_contains("no call PIN");
    let page = web.get("/enroll/phone");
    assert_eq!(page.screen(), Some("phone"), "{}", page.body);
    page.assert_contains("Set a call PIN");
    let csrf = page.csrf();

    let post = |web: &mut Web, csrf: &str, pin: &str, again: &str| {
        web.post(
            "/enroll/phone/pin",
            &[("csrf", csrf), ("pin", pin), ("pin2", again)],
        )
    };
    post(&mut web, "forged", PIN, PIN).assert_status(403);
    post(&mut web, &csrf, PIN, "48291638")
        .assert_status(422)
        .assert_contains("The two PINs differ");
    post(&mut web, &csrf, "1234", "1234")
        .assert_status(422)
        .assert_contains("too easy to guess");
    assert_eq!(failures(&rampart, "frank")["phone_pin"], false);
    post(&mut web, &csrf, PIN, PIN)
        .assert_status(200)
        .assert_contains("Your call PIN is set");
    assert_eq!(failures(&rampart, "frank")["phone_pin"], true);

    let number = "+15552230005";
    enroll_phone_only(&rampart, "frank", number);
    twilio.set_callee(number, Callee::Press("48291637#"));
    login(&rampart, "frank", "pw-secret,phone").assert_code("Access-Accept");

    // Removed (optional mode): the next call asks for `#` alone again.
    web.post("/enroll/phone/pin/remove", &[("csrf", &csrf)])
        .assert_status(200)
        .assert_contains("The call PIN was removed");
    twilio.set_callee(number, Callee::Press("#"));
    login(&rampart, "frank", "pw-secret,phone").assert_code("Access-Accept");
    let calls = twilio.wait_for_finished_calls(number, 2);
    assert_eq!(calls[0].gather["finishOnKey"], "#");
    assert_eq!(calls[1].gather["numDigits"], "1");
    assert_pin_nowhere(&rampart, &calls, PIN);
}

/// `enroll phone` for a user who already exists.
fn enroll_phone_only(rampart: &Rampart, user: &str, number: &str) {
    let (code, out, err) = cli(&rampart.config, &["enroll", "phone", user, number], "");
    assert_eq!(code, 0, "{out} {err}");
}
