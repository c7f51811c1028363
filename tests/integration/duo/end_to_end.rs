//! The real `rampart` binary with `[duo]` pointing at the emulator, driven
//! by the real radclient as the NAS: a held push with NAS retransmissions
//! reaches Duo once; approve, deny and no answer become Accept, Reject,
//! Reject; `failmode` decides when Duo is down; passcode, push and sms
//! keywords after the password reach Duo as their factors.

use std::time::{Duration, Instant};

use crate::common::duo::{Decision, DuoEmulator, Phone, SKEY, User};
use crate::common::*;

use super::{WRONG_SKEY, assert_no_secrets};

const PASSWORD: &str = "alice-Duo-pw";

fn rampart_for(duo: &DuoEmulator, duo_extra: &str, hold_secs: u64) -> Rampart {
    let rampart = Rampart::start_with(Options {
        extra: format!(
            "{}\n[out_of_band]\ntimeout_secs = {hold_secs}\n",
            duo.config_toml(duo_extra)
        ),
        ..Options::default()
    });
    rampart.add_user("alice", PASSWORD);
    rampart
}

/// radclient as a NAS that retransmits every 2 s, up to 5 times.
fn retransmitting_login(rampart: &Rampart, password: &str) -> RadclientReply {
    radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"{password}\", Message-Authenticator = 0x00"
        ),
        5,
        2,
    )
}

fn wait_for_metric(rampart: &Rampart, series: &str, at_least: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if rampart.metric(series) >= at_least {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

const IN_FLIGHT_DUPLICATES: &str = "rampart_radius_duplicates_total{kind=\"in_flight\"}";

/// A push held at the phone while radclient retransmits; then `decision`
/// (none: never answered). Returns the reply and checks Duo saw one auth.
fn held_push(rampart: &Rampart, duo: &DuoEmulator, decision: Option<Decision>) -> RadclientReply {
    duo.set_user("alice", User::with_phone(Phone::Hold));
    let before = duo.accepted("/auth/v2/auth");
    let reply = std::thread::scope(|scope| {
        let nas = scope.spawn(|| retransmitting_login(rampart, PASSWORD));
        assert!(
            duo.wait_for_accepted("/auth/v2/auth", before + 1, Duration::from_secs(10)),
            "no auth call reached Duo: {}",
            rampart.logs()
        );
        // The NAS retransmitted while the push was held.
        let seen = rampart.metric(IN_FLIGHT_DUPLICATES);
        assert!(wait_for_metric(rampart, IN_FLIGHT_DUPLICATES, seen + 1.0));
        if let Some(decision) = decision {
            duo.answer("alice", decision);
        }
        nas.join().unwrap()
    });
    assert_eq!(
        duo.accepted("/auth/v2/auth"),
        before + 1,
        "retransmissions reached Duo"
    );
    reply
}

#[test]
fn held_push_with_retransmissions_reaches_duo_once_approve_deny_and_timeout() {
    let duo = DuoEmulator::start();
    duo.set_hold(Duration::from_secs(1));
    let rampart = rampart_for(&duo, "", 6);
    assert!(rampart.wait_for_log(
        "Duo reachable, integration key and secret key accepted",
        Duration::from_secs(10)
    ));

    held_push(&rampart, &duo, Some(Decision::Approve)).assert_code("Access-Accept");
    let auth = &duo.calls("/auth/v2/auth")[0];
    assert_eq!(auth.param("factor"), Some("auto"));
    assert_eq!(auth.param("username"), Some("alice"));
    assert_eq!(auth.param("pushinfo"), Some("client=test-nas"));

    let denied = held_push(&rampart, &duo, Some(Decision::Deny));
    denied.assert_code("Access-Reject");
    assert_eq!(
        denied.attribute("Reply-Message"),
        Some("Login request denied.")
    );

    let started = Instant::now();
    held_push(&rampart, &duo, None).assert_code("Access-Reject");
    assert!(started.elapsed() >= Duration::from_secs(6));

    for (outcome, n) in [("allow", 1.0), ("deny", 1.0), ("timeout", 1.0)] {
        assert_eq!(
            rampart.metric(&format!(
                "rampart_provider_requests_total{{provider=\"duo\",outcome=\"{outcome}\"}}"
            )),
            n,
            "{outcome}"
        );
    }
    assert_no_secrets(&rampart.logs(), &[SKEY, PASSWORD]);
}

#[test]
fn duo_down_with_failmode_safe_accepts_on_the_password_and_says_so() {
    let mut duo = DuoEmulator::start();
    duo.stop();
    let rampart = rampart_for(&duo, "failmode = \"safe\"", 10);
    assert!(rampart.wait_for_log("Duo check failed at start-up", Duration::from_secs(10)));
    assert!(
        rampart
            .logs()
            .contains("failmode = \"safe\": while Duo is unreachable")
    );

    retransmitting_login(&rampart, PASSWORD).assert_code("Access-Accept");
    assert!(
        rampart
            .logs()
            .contains("failmode = safe lets the password alone through"),
        "{}",
        rampart.logs()
    );
    assert_eq!(
        rampart.metric("rampart_failopen_total{provider=\"duo\"}"),
        1.0
    );
    assert!(
        rampart.metric("rampart_provider_errors_total{provider=\"duo\",reason=\"connect\"}") >= 1.0
    );
}

#[test]
fn duo_down_with_failmode_secure_rejects() {
    let mut duo = DuoEmulator::start();
    duo.stop();
    let rampart = rampart_for(&duo, "", 10);
    let reply = retransmitting_login(&rampart, PASSWORD);
    reply.assert_code("Access-Reject");
    assert!(
        reply
            .attribute("Reply-Message")
            .is_some_and(|m| m.contains("second-factor service is unavailable")),
        "{}",
        reply.output
    );
    assert_eq!(
        rampart.metric("rampart_failopen_total{provider=\"duo\"}"),
        0.0
    );
}

#[test]
fn passcode_push_and_sms_after_the_password_reach_duo_as_their_factors() {
    let duo = DuoEmulator::start();
    let mut alice = User::with_phone(Phone::Approve);
    alice.passcodes = vec!["480913".into()];
    duo.set_user("alice", alice);
    let rampart = rampart_for(&duo, "", 10);

    radclient_auth(&rampart, "alice", &format!("{PASSWORD},480913")).assert_code("Access-Accept");
    radclient_auth(&rampart, "alice", &format!("{PASSWORD},480913")).assert_code("Access-Reject");
    radclient_auth(&rampart, "alice", &format!("{PASSWORD},push")).assert_code("Access-Accept");
    let sms = radclient_auth(&rampart, "alice", &format!("{PASSWORD},sms"));
    sms.assert_code("Access-Reject");
    assert!(
        sms.attribute("Reply-Message")
            .is_some_and(|m| m.contains("Codes were sent by text message")),
        "{}",
        sms.output
    );
    // A wrong password never reaches Duo.
    radclient_auth(&rampart, "alice", "wrong,push").assert_code("Access-Reject");

    let auth = duo.calls("/auth/v2/auth");
    let factors: Vec<_> = auth.iter().map(|c| c.param("factor").unwrap()).collect();
    assert_eq!(factors, ["passcode", "passcode", "push", "sms"]);
    assert_eq!(auth[0].param("passcode"), Some("480913"));
    assert_eq!(duo.calls("/auth/v2/preauth").len(), 4);
    assert_no_secrets(&rampart.logs(), &[SKEY, PASSWORD, "480913"]);
}

#[test]
fn wrong_secret_key_is_refused_by_duo_rejected_counted_and_never_logged() {
    let duo = DuoEmulator::start();
    duo.set_user("alice", User::with_phone(Phone::Approve));
    let rampart = rampart_for(&duo, &format!("skey = \"{WRONG_SKEY}\""), 10);
    assert!(rampart.wait_for_log("Duo check failed at start-up", Duration::from_secs(10)));

    retransmitting_login(&rampart, PASSWORD).assert_code("Access-Reject");
    let refused = duo.calls("/auth/v2/preauth");
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].status, refused[0].code), (401, Some(40103)));
    assert_eq!(
        rampart.metric("rampart_provider_errors_total{provider=\"duo\",reason=\"credentials\"}"),
        2.0,
        "start-up check and login"
    );
    assert!(
        rampart
            .logs()
            .contains("Invalid signature in request credentials")
    );
    assert_no_secrets(&rampart.logs(), &[WRONG_SKEY, SKEY]);
}

#[test]
fn bad_duo_section_is_reported_key_by_key_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &Options {
            extra: "[duo]\napi_host = \"https://api-x.duosecurity.com\"\nikey = \"XX12\"\nskey = \"s3cr3tXY\"\nfailmode = \"open\"\n".into(),
            ..Options::default()
        },
    );
    let (code, _, err) = cli(&config, &["check-config"], "");
    assert_ne!(code, 0);
    assert!(err.contains("duo.failmode"), "{err}");

    let config = write_config(
        dir.path(),
        &Options {
            extra: "[duo]\napi_host = \"https://api-x.duosecurity.com\"\nikey = \"XX12\"\nskey = \"s3cr3tXY\"\ntimeout_secs = 0\n".into(),
            ..Options::default()
        },
    );
    let (code, _, err) = cli(&config, &["check-config"], "");
    assert_ne!(code, 0);
    for key in ["duo.api_host", "duo.ikey", "duo.skey", "duo.timeout_secs"] {
        assert!(
            err.contains(&format!("rampart.toml: {key}: ")),
            "{key}: {err}"
        );
    }
    assert!(!err.contains("s3cr3tXY"), "{err}");
}
