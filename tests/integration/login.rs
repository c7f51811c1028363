//! Password + TOTP logins as users and NAS devices see them.

use crate::common::*;

#[test]
fn password_with_appended_code_is_accepted_through_radclient() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "correct horse");
    let reply = radclient_auth(&rampart, "alice", &format!("correct horse,{}", code(&seed)));
    reply.assert_code("Access-Accept");
    assert!(
        reply.attribute("Message-Authenticator").is_some(),
        "signed reply"
    );
}

#[test]
fn wrong_password_or_wrong_code_or_unknown_user_is_rejected() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("bob", "right-pass");
    let wrong_code = format!(
        "{:06}",
        (code(&seed).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    for (user, password) in [
        ("bob", format!("wrong-pass,{}", code(&seed))),
        ("bob", format!("right-pass,{wrong_code}")),
        ("nobody", format!("right-pass,{}", code(&seed))),
    ] {
        let reply = radclient_auth(&rampart, user, &password);
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "{user}: {}",
            reply.output
        );
    }
    assert_eq!(rampart.wait_for_decisions(3), 3);
    let logs = rampart.logs();
    for reason in ["bad_password", "bad_code", "unknown_user"] {
        assert!(
            logs.contains(&format!("reason=\"{reason}\"")),
            "audit reason {reason}: {logs}"
        );
    }
}

#[test]
fn access_challenge_round_trip_with_radclient() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("carol", "pw-carol");
    let challenge = radclient_auth(&rampart, "carol", "pw-carol");
    challenge.assert_code("Access-Challenge");
    assert_eq!(
        challenge.attribute("Reply-Message"),
        Some("Enter the 6-digit code from your authenticator app")
    );
    let state = challenge
        .attribute("State")
        .expect("State in challenge")
        .to_string();
    assert!(state.starts_with("0x") && state.len() == 2 + 64, "{state}");

    let answer = radclient_answer(&rampart, "carol", &code(&seed), &state);
    answer.assert_code("Access-Accept");

    // The State is single-use: replaying the answer with a fresh code fails.
    let replay = radclient_answer(&rampart, "carol", &code(&seed), &state);
    replay.assert_code("Access-Reject");
}

#[test]
fn challenge_state_is_bound_to_its_user() {
    let rampart = Rampart::start();
    rampart.user_with_totp("dave", "pw-dave");
    let mallory_seed = rampart.user_with_totp("mallory", "pw-mallory");
    let challenge = radclient_auth(&rampart, "dave", "pw-dave");
    let state = challenge.attribute("State").unwrap().to_string();
    // Mallory answers Dave's challenge with her own valid code.
    let stolen = radclient_answer(&rampart, "mallory", &code(&mallory_seed), &state);
    assert_eq!(stolen.code.as_deref(), Some("Access-Reject"));
    assert!(rampart.wait_for_log(
        "reason=\"state_mismatch\"",
        std::time::Duration::from_secs(5)
    ));
}

#[test]
fn a_code_is_accepted_once() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("erin", "pw-erin");
    let password = format!("pw-erin,{}", code(&seed));
    assert_eq!(
        radclient_auth(&rampart, "erin", &password).code.as_deref(),
        Some("Access-Accept")
    );
    let replay = radclient_auth(&rampart, "erin", &password);
    replay.assert_code("Access-Reject");
    assert!(
        replay
            .attribute("Reply-Message")
            .unwrap()
            .contains("already used")
    );
    assert!(rampart.wait_for_log(
        "reason=\"replayed_code\"",
        std::time::Duration::from_secs(5)
    ));
}

#[test]
fn consecutive_failures_lock_the_user_until_the_lockout_ends() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("frank", "pw-frank");
    for attempt in 1..=5 {
        let reply = radclient_auth(&rampart, "frank", "pw-frank,000000");
        assert_eq!(
            reply.code.as_deref(),
            Some("Access-Reject"),
            "attempt {attempt}"
        );
        if attempt == 5 {
            assert!(
                reply.attribute("Reply-Message").unwrap().contains("locked"),
                "{}",
                reply.output
            );
        }
    }
    // Now even the right password and code are refused.
    let locked = radclient_auth(&rampart, "frank", &format!("pw-frank,{}", code(&seed)));
    assert_eq!(locked.code.as_deref(), Some("Access-Reject"));
    assert!(
        locked
            .attribute("Reply-Message")
            .unwrap()
            .contains("Try again in 15 minute"),
        "{}",
        locked.output
    );
    assert!(rampart.wait_for_log("reason=\"locked_out\"", std::time::Duration::from_secs(5)));
    assert_eq!(rampart.metric("rampart_lockouts_total"), 1.0);

    // The admin sees it in the user list.
    let (_, listing, _) = cli(&rampart.config, &["user", "list"], "");
    let line = listing.lines().find(|l| l.starts_with("frank")).unwrap();
    assert!(line.contains('Z'), "lock time shown: {line}");
}

#[test]
fn a_success_resets_the_failure_count() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("gina", "pw-gina");
    for _ in 0..4 {
        radclient_auth(&rampart, "gina", "pw-gina,000000");
    }
    assert_eq!(
        radclient_auth(&rampart, "gina", &format!("pw-gina,{}", code(&seed)))
            .code
            .as_deref(),
        Some("Access-Accept")
    );
    for _ in 0..4 {
        radclient_auth(&rampart, "gina", "pw-gina,000000");
    }
    assert_eq!(rampart.wait_for_decisions(9), 9);
    assert!(
        !rampart.logs().contains("locked_out"),
        "4 + 4 failures with a success between do not lock"
    );
}

#[test]
fn recovery_codes_work_once_each_in_place_of_a_code() {
    let rampart = Rampart::start();
    rampart.user_with_totp("hank", "pw-hank");
    let (status, out, err) = cli(&rampart.config, &["enroll", "recovery", "hank"], "");
    assert_eq!(status, 0, "{err}");
    let codes: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .collect();
    assert_eq!(codes.len(), 10, "{out}");
    let first = radclient_auth(&rampart, "hank", &format!("pw-hank,{}", codes[0]));
    first.assert_code("Access-Accept");
    assert!(first.attribute("Reply-Message").unwrap().contains("9 left"));
    let again = radclient_auth(&rampart, "hank", &format!("pw-hank,{}", codes[0]));
    assert_eq!(again.code.as_deref(), Some("Access-Reject"));
    // Upper case with spaces, as read off paper, through the challenge.
    let challenge = radclient_auth(&rampart, "hank", "pw-hank");
    let state = challenge.attribute("State").unwrap().to_string();
    let typed = codes[1].to_uppercase().replace('-', " ");
    let answer = radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"hank\", User-Password = \"{typed}\", State = {state}, Message-Authenticator = 0x00"
        ),
        2,
        3,
    );
    answer.assert_code("Access-Accept");
}

#[test]
fn unenrolled_users_are_rejected_with_enroll_hint_or_allowed_by_policy() {
    let rampart = Rampart::start_with(Options {
        policy: "enroll_url = \"https://mfa.example.org/enroll\"".into(),
        ..Options::default()
    });
    rampart.add_user("ivan", "pw-ivan");
    let reply = radclient_auth(&rampart, "ivan", "pw-ivan");
    assert_eq!(reply.code.as_deref(), Some("Access-Reject"));
    assert!(
        reply
            .attribute("Reply-Message")
            .unwrap()
            .contains("https://mfa.example.org/enroll"),
        "{}",
        reply.output
    );
    // Wrong password gives no hint about enrollment.
    let wrong = radclient_auth(&rampart, "ivan", "nope");
    assert_eq!(wrong.attribute("Reply-Message"), None);

    // With the portal on, the hint is the portal's address without any policy key.
    let portal = Rampart::start_with(Options {
        http_public_url: Some("https://mfa.example.net/".into()),
        extra: "[portal]\nenabled = true\n".into(),
        ..Options::default()
    });
    portal.add_user("kate", "pw-kate");
    let hint = radclient_auth(&portal, "kate", "pw-kate");
    assert!(
        hint.attribute("Reply-Message")
            .is_some_and(|m| m.contains("https://mfa.example.net/enroll")),
        "{}",
        hint.output
    );

    let open = Rampart::start_with(Options {
        policy: "unenrolled = \"allow\"".into(),
        ..Options::default()
    });
    open.add_user("judy", "pw-judy");
    assert_eq!(
        radclient_auth(&open, "judy", "pw-judy").code.as_deref(),
        Some("Access-Accept")
    );
    assert_eq!(
        radclient_auth(&open, "judy", "wrong").code.as_deref(),
        Some("Access-Reject")
    );
}

#[test]
fn second_factor_only_backend_takes_the_code_as_password_or_challenges() {
    // RD Gateway behind NPS: Windows checked the password; rampart checks the factor.
    let rampart = Rampart::start_with(Options {
        primary: Some("backend = \"none\"".into()),
        ..Options::default()
    });
    let seed = rampart.enroll_totp("kate");
    // NPS forwards DOMAIN\user; it is normalised to the enrolled name.
    radclient_auth(&rampart, "CORP\\Kate", &code(&seed)).assert_code("Access-Accept");
    radclient_auth(&rampart, "kate", "000000").assert_code("Access-Reject");
    let challenge = radclient(
        rampart.radius,
        SECRET,
        "User-Name = \"kate\", Message-Authenticator = 0x00",
        2,
        3,
    );
    challenge.assert_code("Access-Challenge");
    // Unenrolled users are rejected even though no password was checked.
    radclient_auth(&rampart, "nobody", &code(&seed)).assert_code("Access-Reject");
    assert!(rampart.wait_for_log("user=kate", std::time::Duration::from_secs(5)));
}
