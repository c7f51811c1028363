//! The shipped unit: `systemd-analyze security --offline=yes` rates its
//! exposure 1.5 or lower ("OK"), and it declares what the daemon implements
//! (notify protocol, reload by SIGHUP, credentials, state directory).

use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/rampart.service");

#[test]
fn systemd_analyze_rates_the_unit_exposure_at_most_1_5() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", UNIT])
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed: run ./scripts/test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // "→ Overall exposure level for rampart.service: 1.2 OK 🙂"
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for rampart.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 1.5, "exposure {score}:\n{text}");
}

#[test]
fn the_unit_uses_what_the_daemon_implements() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=rampart",
        "ConfigurationDirectory=rampart",
        "User=rampart",
    ] {
        assert!(has(line), "{line} missing from the unit");
    }
    assert!(
        unit.lines().any(|l| l.starts_with("LoadCredential=")),
        "no LoadCredential="
    );
    // The stop timeout covers the daemon's own drain (60 s) and a held login.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.parse().ok())
        .expect("TimeoutStopSec");
    assert!(stop > 60);
}
