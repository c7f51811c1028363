//! A short run of the `rampart-load` benchmark client against the real daemon
//! (`backend = "none"` + TOTP, seeds bulk-imported from `rampart-load seeds`):
//! every request is answered, verified and accepted, and no TOTP code is ever
//! sent twice — rampart's replay guard stays on and would reject it.
//! Not a timed test: nothing here depends on speed.

use std::process::Command;

use crate::common::*;

const USERS: &str = "600";

#[test]
fn load_generator_against_rampart_none_plus_totp() {
    let rampart = Rampart::start_with(Options {
        primary: Some("backend = \"none\"".into()),
        ..Options::default()
    });
    let seeds = Command::new(LOAD_BIN)
        .args(["seeds", "--users", USERS, "--user-format", "lg{:04}"])
        .args(["--totp-key", "smoke-key"])
        .output()
        .unwrap();
    assert!(seeds.status.success(), "{seeds:?}");
    let csv = rampart.dir.path().join("seeds.csv");
    std::fs::write(&csv, &seeds.stdout).unwrap();
    let (code, out, err) = cli(
        &rampart.config,
        &["enroll", "import", csv.to_str().unwrap()],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");

    // 300 outstanding: three sockets' worth of identifiers (128 each by default).
    let run = Command::new(LOAD_BIN)
        .args(["radius", "--server", &rampart.radius.to_string()])
        .args([
            "--secret",
            SECRET,
            "--users",
            USERS,
            "--user-format",
            "lg{:04}",
        ])
        .args(["--password-format", "", "--totp-key", "smoke-key"])
        .args([
            "--concurrency",
            "300",
            "--requests",
            USERS,
            "--timeout-ms",
            "20000",
        ])
        .arg("--cpu-pid")
        .arg(format!("rampart={}", rampart.pid()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let count = |key: &str| report[key].as_u64().unwrap_or(u64::MAX);
    assert_eq!(count("sent"), 600, "{report}");
    assert_eq!(count("accept"), 600, "{report}\n{}", rampart.logs());
    for key in [
        "reject",
        "challenge",
        "timeout",
        "bad_reply",
        "unexpected",
        "errors",
        "waits",
        "late",
    ] {
        assert_eq!(count(key), 0, "{key}: {report}");
    }
    assert!(report["p99_ms"].as_f64().is_some(), "{report}");
    assert!(report["cpu"]["rampart"]["cpu_s"].is_number(), "{report}");
    assert!(stderr.contains("accept 600 reject 0"), "{stderr}");

    // Every request reached the pipeline once, and none was a replay.
    assert_eq!(rampart.wait_for_decisions(600), 600);
    let logs = rampart.logs();
    assert!(!logs.contains("replayed_code"), "replay seen");
    assert!(!logs.contains("smoke-key"));
}
