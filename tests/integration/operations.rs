//! The admin's side: user commands, `rampart radtest`, the key file, and logs
//! that never contain a password, code, seed or shared secret.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;

fn radtest(rampart: &Rampart, user: &str, stdin: &str) -> (i32, String, String) {
    cli(
        &rampart.config,
        &["radtest", user, "--server", &rampart.radius.to_string()],
        stdin,
    )
}

#[test]
fn radtest_reports_accept_reject_and_handles_a_challenge() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("alice", "pw-alice");
    let (status, out, err) = radtest(&rampart, "alice", &format!("pw-alice,{}\n", code(&seed)));
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.starts_with("Access-Accept"), "{out}");
    assert!(out.contains("Message-Authenticator = (verified)"), "{out}");

    let (status, out, _) = radtest(&rampart, "alice", "wrong\n");
    assert_eq!(status, 1);
    assert!(out.starts_with("Access-Reject"), "{out}");

    // Password, then the code on the next line when challenged. Wait for the
    // next TOTP step so the code is not the one used above.
    let used = code(&seed);
    while code(&seed) == used {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let (status, out, err) = radtest(&rampart, "alice", &format!("pw-alice\n{}\n", code(&seed)));
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.starts_with("Access-Challenge"), "{out}");
    assert!(out.contains("Enter the 6-digit code"), "{out}");
    assert!(out.contains("\nAccess-Accept"), "{out}");
}

#[test]
fn radtest_says_when_nothing_answers() {
    let rampart = Rampart::start();
    let (status, _, err) = cli(
        &rampart.config,
        &[
            "radtest",
            "alice",
            "--server",
            "127.0.0.1:9",
            "--timeout",
            "1",
        ],
        "pw\n",
    );
    assert_eq!(status, 2);
    assert!(
        err.contains("no reply") && err.contains("client secret"),
        "{err}"
    );
}

#[test]
fn user_commands_manage_passwords_and_deletion_removes_factors() {
    let rampart = Rampart::start();
    let seed = rampart.user_with_totp("Bob", "first-pass");
    let (status, _, err) = cli(&rampart.config, &["user", "add", "bob"], "again\n");
    assert_eq!(status, 1, "duplicate refused");
    assert!(err.contains("already exists"), "{err}");
    let (status, _, err) = cli(&rampart.config, &["user", "add", "carol"], "\n");
    assert_ne!(status, 0, "empty password refused");
    assert!(err.contains("empty password"), "{err}");

    let (status, _, _) = cli(&rampart.config, &["user", "passwd", "bob"], "second-pass\n");
    assert_eq!(status, 0);
    assert_eq!(
        radclient_auth(&rampart, "BOB", &format!("first-pass,{}", code(&seed)))
            .code
            .as_deref(),
        Some("Access-Reject")
    );
    assert_eq!(
        radclient_auth(&rampart, "bob", &format!("second-pass,{}", code(&seed)))
            .code
            .as_deref(),
        Some("Access-Accept")
    );

    let (_, listing, _) = cli(&rampart.config, &["user", "list"], "");
    let line = listing
        .lines()
        .find(|l| l.starts_with("bob "))
        .expect("bob listed");
    assert!(
        line.contains("yes    yes"),
        "local password and TOTP: {line}"
    );
    assert!(!line.ends_with(" -"), "last login recorded: {line}");

    let (status, _, _) = cli(&rampart.config, &["user", "del", "bob"], "");
    assert_eq!(status, 0);
    let (status, _, err) = cli(&rampart.config, &["user", "del", "bob"], "");
    assert_eq!(status, 1);
    assert!(err.contains("no user bob"));
    // Re-created, bob has no factor from before: the old seed is gone.
    rampart.add_user("bob", "third-pass");
    let (_, listing, _) = cli(&rampart.config, &["user", "list"], "");
    let line = listing.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(
        line.contains("yes    no "),
        "no TOTP after re-create: {line}"
    );
    let (status, _, err) = cli(&rampart.config, &["enroll", "totp", "nobody"], "");
    assert_eq!(status, 1);
    assert!(err.contains("rampart user add nobody"), "{err}");
}

#[test]
fn key_file_and_database_are_private() {
    let rampart = Rampart::start();
    rampart.user_with_totp("alice", "pw");
    for file in ["var/rampart.key", "var/rampart.db"] {
        let mode = std::fs::metadata(rampart.dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} mode {mode:o}");
    }
    // The seed is not stored in clear.
    let db = std::fs::read(rampart.dir.path().join("var/rampart.db")).unwrap();
    let (_, out, _) = cli(&rampart.config, &["enroll", "totp", "alice"], "");
    let base32 = out
        .lines()
        .find_map(|l| l.strip_prefix("or add the key by hand: "))
        .unwrap();
    let seed = totp_rs::Secret::try_from_base32(base32.trim())
        .unwrap()
        .as_ref()
        .to_vec();
    let db_after = std::fs::read(rampart.dir.path().join("var/rampart.db")).unwrap();
    let wal = std::fs::read(rampart.dir.path().join("var/rampart.db-wal")).unwrap_or_default();
    for bytes in [&db, &db_after, &wal] {
        assert!(
            !bytes.windows(seed.len()).any(|w| w == seed.as_slice()),
            "seed in clear"
        );
    }
}

#[test]
fn logs_never_contain_passwords_codes_seeds_or_secrets() {
    let rampart = Rampart::start();
    let password = "Pw-Never-Logged-7";
    let seed = rampart.user_with_totp("alice", password);
    let (_, out, _) = cli(&rampart.config, &["enroll", "totp", "alice"], "");
    let base32 = out
        .lines()
        .find_map(|l| l.strip_prefix("or add the key by hand: "))
        .unwrap()
        .trim()
        .to_string();
    let seed = {
        let _ = seed;
        totp_rs::Secret::try_from_base32(&base32)
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let (_, out, _) = cli(&rampart.config, &["enroll", "recovery", "alice"], "");
    let recovery: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .map(String::from)
        .collect();

    let good_code = code(&seed);
    let mut secrets = vec![
        password.to_string(),
        SECRET.to_string(),
        base32.clone(),
        good_code.clone(),
        recovery[0].clone(),
    ];
    // Every path: accept, wrong password, wrong code, challenge + answer, recovery code, bad secret.
    radclient_auth(&rampart, "alice", &format!("{password},{good_code}"));
    radclient_auth(&rampart, "alice", "Wrong-Password-Logged-9,123456");
    secrets.push("Wrong-Password-Logged-9".into());
    let challenge = radclient_auth(&rampart, "alice", password);
    let state = challenge.attribute("State").unwrap().to_string();
    radclient(
        rampart.radius,
        SECRET,
        &format!(
            "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00",
            recovery[0]
        ),
        1,
        3,
    );
    radclient(
        rampart.radius,
        "wrong-secret",
        &format!(
            "User-Name = \"alice\", User-Password = \"{password}\", Message-Authenticator = 0x00"
        ),
        // radclient refuses -r 0 (usage and exit, racing the write to its stdin).
        1,
        1,
    );
    secrets.push(state.trim_start_matches("0x").to_string());

    assert!(rampart.wait_for_decisions(4) >= 4);
    let logs = rampart.logs().to_lowercase();
    assert!(logs.contains("debug"), "debug logging was on");
    for secret in &secrets {
        assert!(
            !logs.contains(&secret.to_lowercase()),
            "log contains a secret ({} chars)",
            secret.len()
        );
    }
    // The state and seed also not in hex or raw forms.
    assert!(!logs.contains(&hex::encode(&seed)));
}
