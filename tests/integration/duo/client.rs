//! `DuoClient` through the library API against the emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart::factor::duo::DuoError;
use rampart::factor::oob::{Channel, HostedFactor, HostedOutcome};
use rampart::secret::Secret;
use serde_json::json;

use super::*;
use crate::common::duo::{Decision, DuoEmulator, Phone, Preauth, SKEY, User};

#[test]
fn approved_push_is_allowed_with_one_signed_auth_call() {
    let duo = DuoEmulator::start();
    // Characters that quoting must get right in the signed form body.
    let name = "alice o'brien+vpn@example.org/ü~";
    duo.set_user(name, User::with_phone(Phone::Approve));
    let client = client(&duo, json!({}));
    let (outcome, traces) = run(login(&client, name, PUSH, LONG));
    assert_eq!(outcome, HostedOutcome::Allow { reason: "ok" });

    let preauth = duo.calls("/auth/v2/preauth");
    assert_eq!(preauth.len(), 1);
    assert_eq!(preauth[0].param("username"), Some(name));
    assert_eq!(preauth[0].param("ipaddr"), Some("203.0.113.7"));
    let auth = duo.calls("/auth/v2/auth");
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].status, 200);
    for (key, value) in [
        ("factor", "push"),
        ("device", "auto"),
        ("async", "1"),
        ("pushinfo", "client=vpn&nas=asa-1&station=203.0.113.7"),
    ] {
        assert_eq!(auth[0].param(key), Some(value), "{key}");
    }
    assert!(duo.accepted("/auth/v2/auth_status") >= 1);
    assert_eq!(traces.metric(&duo_outcome("allow")), 1.0);
    assert_no_secrets(&traces.logs, &[SKEY]);
}

#[test]
fn denied_push_is_denied_with_duos_message() {
    let duo = DuoEmulator::start();
    duo.set_user("bob", User::with_phone(Phone::Deny));
    let (outcome, traces) = run(login(&client(&duo, json!({})), "bob", PUSH, LONG));
    assert_eq!(
        outcome,
        HostedOutcome::Deny {
            reason: "denied",
            message: Some("Login request denied.".into())
        }
    );
    assert_eq!(traces.metric(&duo_outcome("deny")), 1.0);
}

#[test]
fn push_reported_as_fraud_is_denied_as_fraud() {
    let duo = DuoEmulator::start();
    duo.set_user("carol", User::with_phone(Phone::Fraud));
    let (outcome, traces) = run(login(&client(&duo, json!({})), "carol", PUSH, LONG));
    assert!(
        matches!(
            outcome,
            HostedOutcome::Deny {
                reason: "fraud",
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(traces.metric(&duo_outcome("fraud")), 1.0);
}

#[test]
fn unanswered_push_times_out_at_the_deadline() {
    let duo = DuoEmulator::start();
    duo.set_user("dave", User::with_phone(Phone::Never));
    duo.set_hold(Duration::from_millis(700));
    let started = Instant::now();
    let deadline = Duration::from_secs(3);
    let (outcome, traces) = run(login(&client(&duo, json!({})), "dave", PUSH, deadline));
    let took = started.elapsed();
    assert!(
        matches!(
            outcome,
            HostedOutcome::Deny {
                reason: "timeout",
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(2),
        "{took:?}"
    );
    // Several long-polls, each held by "Duo", none failing.
    assert!(duo.accepted("/auth/v2/auth_status") >= 2);
    assert_eq!(traces.metric(&duo_outcome("timeout")), 1.0);
    assert_eq!(traces.metric(&duo_error("timeout")), 0.0);
}

#[test]
fn late_approval_is_found_by_a_later_poll() {
    let duo = DuoEmulator::start();
    duo.set_user(
        "erin",
        User::with_phone(Phone::ApproveAfter(Duration::from_millis(2500))),
    );
    duo.set_hold(Duration::from_secs(1));
    let (outcome, _) = run(login(&client(&duo, json!({})), "erin", PUSH, LONG));
    assert_eq!(outcome, HostedOutcome::Allow { reason: "ok" });
    let polls = duo.calls("/auth/v2/auth_status");
    assert!(polls.len() >= 2, "{polls:?}");
    assert!(polls.iter().all(|c| c.param("txid").is_some()));
}

#[test]
fn held_push_waits_for_the_answer() {
    let duo = Arc::new(DuoEmulator::start());
    duo.set_user("hank", User::with_phone(Phone::Hold));
    let client = client(&duo, json!({}));
    let emulator = duo.clone();
    let (outcome, _) = run(async move {
        let answer = async {
            assert!(
                emulator
                    .accepted_async("/auth/v2/auth", 1, Duration::from_secs(10))
                    .await
            );
            emulator.answer("hank", Decision::Approve);
        };
        let (outcome, ()) = tokio::join!(login(&client, "hank", PUSH, LONG), answer);
        outcome
    });
    assert_eq!(outcome, HostedOutcome::Allow { reason: "ok" });
}

#[test]
fn phone_and_auto_use_their_factor() {
    let duo = DuoEmulator::start();
    duo.set_user("ivan", User::with_phone(Phone::Approve));
    let client = client(&duo, json!({"push_type": "VPN login", "pushinfo": false}));
    let (outcomes, _) = run(async {
        (
            login(&client, "ivan", HostedFactor::Channel(Channel::Phone), LONG).await,
            login(&client, "ivan", HostedFactor::Auto, LONG).await,
        )
    });
    assert_eq!(outcomes.0, HostedOutcome::Allow { reason: "ok" });
    assert_eq!(outcomes.1, HostedOutcome::Allow { reason: "ok" });
    let auth = duo.calls("/auth/v2/auth");
    let factors: Vec<_> = auth.iter().map(|c| c.param("factor").unwrap()).collect();
    assert_eq!(factors, ["phone", "auto"]);
    assert!(auth.iter().all(|c| c.param("type") == Some("VPN login")));
    assert!(auth.iter().all(|c| c.param("pushinfo").is_none()));
}

#[test]
fn passcode_is_checked_by_duo_once() {
    let duo = DuoEmulator::start();
    let mut user = User::with_phone(Phone::Never);
    user.passcodes = vec!["123456".into()];
    duo.set_user("judy", user);
    let client = client(&duo, json!({}));
    let code = || HostedFactor::Passcode(Secret::new("123456".to_string()));
    let (outcomes, traces) = run(async {
        (
            login(&client, "judy", code(), LONG).await,
            login(&client, "judy", code(), LONG).await,
        )
    });
    assert_eq!(outcomes.0, HostedOutcome::Allow { reason: "ok" });
    assert!(
        matches!(
            outcomes.1,
            HostedOutcome::Deny {
                reason: "denied",
                ..
            }
        ),
        "{:?}",
        outcomes.1
    );
    let auth = duo.calls("/auth/v2/auth");
    assert_eq!(auth[0].param("factor"), Some("passcode"));
    assert_eq!(auth[0].param("async"), None);
    assert!(duo.calls("/auth/v2/auth_status").is_empty());
    assert_no_secrets(&traces.logs, &["123456", SKEY]);
}

#[test]
fn sms_sends_codes_and_says_so() {
    let duo = DuoEmulator::start();
    duo.set_user("kate", User::with_phone(Phone::Never));
    let (outcome, traces) = run(login(
        &client(&duo, json!({})),
        "kate",
        HostedFactor::Channel(Channel::Sms),
        LONG,
    ));
    assert_eq!(outcome, HostedOutcome::SmsSent);
    let auth = duo.calls("/auth/v2/auth");
    assert_eq!(auth[0].param("factor"), Some("sms"));
    assert_eq!(auth[0].param("device"), Some("auto"));
    assert_eq!(traces.metric(&duo_outcome("sms_sent")), 1.0);
}

#[test]
fn a_factor_no_device_supports_is_denied_without_asking_duo() {
    let duo = DuoEmulator::start();
    let mut user = User::with_phone(Phone::Approve);
    user.capabilities = vec!["mobile_otp"];
    duo.set_user("leo", user);
    let (outcome, _) = run(login(&client(&duo, json!({})), "leo", PUSH, LONG));
    assert!(
        matches!(
            outcome,
            HostedOutcome::Deny {
                reason: "no_device",
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(duo.calls("/auth/v2/auth").is_empty());
}

#[test]
fn preauth_decides_bypass_deny_and_enroll_alone() {
    let duo = DuoEmulator::start();
    duo.set_user("bypass", User::preauth(Preauth::Allow));
    duo.set_user("disabled", User::preauth(Preauth::Deny));
    duo.set_user("new", User::preauth(Preauth::Enroll));
    let client = client(&duo, json!({}));
    let (outcomes, traces) = run(async {
        [
            login(&client, "bypass", PUSH, LONG).await,
            login(&client, "disabled", PUSH, LONG).await,
            login(&client, "new", PUSH, LONG).await,
        ]
    });
    assert_eq!(outcomes[0], HostedOutcome::Allow { reason: "bypass" });
    assert_eq!(
        outcomes[1],
        HostedOutcome::Deny {
            reason: "policy",
            message: Some("Your account is disabled".into())
        }
    );
    assert_eq!(
        outcomes[2],
        HostedOutcome::Enroll {
            url: Some("https://api-emulator.duosecurity.com/portal?code=abc".into())
        }
    );
    assert!(duo.calls("/auth/v2/auth").is_empty());
    assert_eq!(traces.metric(&duo_outcome("bypass")), 1.0);
    assert_eq!(traces.metric(&duo_outcome("enroll")), 1.0);
}

#[test]
fn wrong_secret_key_is_refused_by_duo_and_unavailable_here() {
    let duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Approve));
    let client = client(&duo, json!({"skey": WRONG_SKEY}));
    let (outcome, traces) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(
        outcome,
        HostedOutcome::Unavailable {
            reason: "credentials"
        }
    );
    let preauth = duo.calls("/auth/v2/preauth");
    assert_eq!(preauth.len(), 1);
    assert_eq!((preauth[0].status, preauth[0].code), (401, Some(40103)));
    assert_eq!(traces.metric(&duo_error("credentials")), 1.0);
    assert_eq!(traces.metric(&duo_outcome("unavailable")), 1.0);
    assert!(
        traces
            .logs
            .contains("Invalid signature in request credentials"),
        "{}",
        traces.logs
    );
    assert_no_secrets(&traces.logs, &[WRONG_SKEY, SKEY]);
}

#[test]
fn unknown_integration_key_is_refused() {
    let duo = DuoEmulator::start();
    let client = client(&duo, json!({"ikey": "DIUNKNOWN00000000000"}));
    let (outcome, _) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(
        outcome,
        HostedOutcome::Unavailable {
            reason: "credentials"
        }
    );
    assert_eq!(duo.calls("/auth/v2/preauth")[0].code, Some(40102));
}

#[test]
fn duo_down_or_failing_is_unavailable() {
    let mut duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Approve));
    let client = client(&duo, json!({}));
    duo.set_failing(true);
    let (failing, traces) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(failing, HostedOutcome::Unavailable { reason: "server" });
    assert_eq!(traces.metric(&duo_error("server")), 1.0);

    duo.stop();
    let (down, traces) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(down, HostedOutcome::Unavailable { reason: "connect" });
    assert_eq!(traces.metric(&duo_error("connect")), 1.0);
}

#[test]
fn untrusted_certificate_is_unavailable() {
    let duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Approve));
    let other_ca = duo.other_ca.to_str().unwrap().to_string();
    let client = client(&duo, json!({"ca_file": other_ca}));
    let (outcome, _) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(outcome, HostedOutcome::Unavailable { reason: "connect" });
    assert!(duo.calls("/auth/v2/preauth").is_empty());
}

#[test]
fn rate_limit_is_retried_while_time_remains() {
    let duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Approve));
    let client = client(&duo, json!({}));
    duo.rate_limit_next(1);
    let (outcome, traces) = run(login(&client, "alice", PUSH, LONG));
    assert_eq!(outcome, HostedOutcome::Allow { reason: "ok" });
    let statuses: Vec<_> = duo
        .calls("/auth/v2/preauth")
        .iter()
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, [429, 200]);
    assert_eq!(traces.metric(&duo_error("rate_limited")), 1.0);

    // No time for the 1 s back-off: give up at once.
    duo.rate_limit_next(5);
    let started = Instant::now();
    let (outcome, _) = run(login(&client, "alice", PUSH, Duration::from_millis(800)));
    assert_eq!(
        outcome,
        HostedOutcome::Unavailable {
            reason: "rate_limited"
        }
    );
    assert!(started.elapsed() < Duration::from_millis(800));
}

#[test]
fn startup_check_reports_reachability_and_keys() {
    let mut duo = DuoEmulator::start();
    let good = client(&duo, json!({}));
    let bad = client(&duo, json!({"skey": WRONG_SKEY}));
    let ((good_report, bad_report), traces) = run(async {
        let good_report = good.check().await;
        let bad_report = bad.check().await;
        bad.log_check().await;
        (good_report, bad_report)
    });
    let report = good_report.unwrap();
    assert!(report.clock_skew_secs.abs() <= 2, "{report:?}");
    assert!(matches!(
        bad_report,
        Err(DuoError::Api {
            status: 401,
            code: Some(40103),
            ..
        })
    ));
    assert!(traces.logs.contains("Duo check failed at start-up"));
    assert_no_secrets(&traces.logs, &[WRONG_SKEY]);

    duo.stop();
    let (down, _) = run(good.check());
    assert_eq!(down.unwrap_err().reason(), "connect");
}
