//! Held logins when the approval service fails: a push webhook and an ntfy
//! server that hang (the request is read, no answer comes) and answer 500,
//! and Duo hanging and answering 500 (Duo down is in `duo/end_to_end.rs`).
//! Several users log in at once. The NAS gets its Reject within the
//! provider's `timeout_secs`, long before the hold (`[out_of_band]
//! timeout_secs`) would end, with a Reply-Message saying why; nothing is
//! accepted (Duo's `failmode` is the default, secure); the daemon stays up;
//! the failure is counted by channel or provider and reason, and logged.
//! `/readyz` stays 200: the approval service is not part of the node (see
//! `docs/fault-matrix.md`). Once the service answers again, logins are held
//! for an answer again.

use std::time::{Duration, Instant};

use super::nas::{Login, assert_rejected_within, concurrently, send};
use crate::common::duo::{DuoEmulator, Phone, User};
use crate::common::faulty::{Faulty, Mode};
use crate::common::*;

/// `timeout_secs` of the push service and of Duo.
const PROVIDER_TIMEOUT_SECS: u64 = 3;
/// The hold: long enough that a Reject at its end is told apart.
const HOLD_SECS: u64 = 12;
/// The provider's deadline plus a generous margin for a loaded host.
const DEADLINE: Duration = Duration::from_secs(PROVIDER_TIMEOUT_SECS + 4);
const PASSWORD: &str = "pw-Push-secret";

/// Fresh users `tag0..tagN`; their logins ask for a push.
fn users(rampart: &Rampart, tag: &str, n: usize, ntfy: Option<&str>) -> Vec<Login> {
    (0..n)
        .map(|i| {
            let user = format!("{tag}{i}");
            rampart.add_user(&user, PASSWORD);
            if let Some(server) = ntfy {
                let (code, out, err) = cli(
                    &rampart.config,
                    &["enroll", "push", &user, "--server", server],
                    "",
                );
                assert_eq!(code, 0, "{out}{err}");
            }
            Login::new(&user, &format!("{PASSWORD},push"), true)
        })
        .collect()
}

fn push_fault_matrix(format: &str) {
    let service = Faulty::start(Mode::Hang);
    let (url, ntfy) = match format {
        "ntfy" => (service.base(), Some(service.base())),
        _ => (service.url.clone(), None),
    };
    let signing = if format == "webhook" {
        "signing_secret = \"whsec_faults_3f9c2a7d1b6e4085\"\n"
    } else {
        ""
    };
    let mut rampart = Rampart::start_with(Options {
        extra: format!(
            "[out_of_band]\ntimeout_secs = {HOLD_SECS}\npublic_url = \"https://mfa.example.test\"\n\n[push]\nformat = \"{format}\"\nurl = \"{url}\"\n{signing}timeout_secs = {PROVIDER_TIMEOUT_SECS}\n"
        ),
        ..Options::default()
    });
    let mut slowest = Vec::new();
    for (tag, mode, reason) in [
        ("hang", Mode::Hang, "timeout"),
        ("fivehundred", Mode::Status(500), "status"),
    ] {
        service.set_mode(mode);
        let logins = users(&rampart, tag, 4, ntfy.as_deref());
        let sent = concurrently(rampart.radius, &logins);
        slowest.push(assert_rejected_within(&sent, DEADLINE, "could not be sent"));
        assert_eq!(rampart.readyz(), 200);
        assert!(rampart.is_running());
        let failed = rampart.metric(&format!(
            "rampart_oob_delivery_failures_total{{channel=\"push\",reason=\"{reason}\"}}"
        ));
        assert_eq!(failed, 4.0, "{format} {reason}: {}", rampart.metrics());
    }
    assert_eq!(
        rampart.metric("rampart_oob_outcomes_total{channel=\"push\",outcome=\"error\"}"),
        8.0
    );
    assert!(rampart.logs().contains("out-of-band delivery failed"));
    assert_eq!(rampart.metric("rampart_oob_pending"), 0.0);

    // The service takes pushes again: the login is held for the phone
    // (here nobody answers) instead of failing at once.
    service.set_mode(Mode::Status(200));
    let pushes = service.bodies().len();
    let back = users(&rampart, "back", 1, ntfy.as_deref());
    let started = Instant::now();
    let held = send(rampart.radius, &back[0], 25);
    assert!(
        started.elapsed() >= Duration::from_secs(HOLD_SECS),
        "{held:?}"
    );
    assert_eq!(held.code.as_deref(), Some("Access-Reject"));
    assert_eq!(service.bodies().len(), pushes + 1);
    assert_eq!(
        rampart.metric("rampart_oob_outcomes_total{channel=\"push\",outcome=\"timeout\"}"),
        1.0
    );
    eprintln!("push {format}: slowest answers (hang, 500) {slowest:?}");
}

#[test]
fn a_hung_or_failing_push_webhook_rejects_held_logins_in_time_and_recovers() {
    push_fault_matrix("webhook");
}

#[test]
fn a_hung_or_failing_ntfy_server_rejects_held_logins_in_time_and_recovers() {
    push_fault_matrix("ntfy");
}

#[test]
fn a_hung_or_failing_duo_rejects_in_time_and_recovers() {
    let duo = DuoEmulator::start();
    let mut rampart = Rampart::start_with(Options {
        extra: format!(
            "{}\n[out_of_band]\ntimeout_secs = {HOLD_SECS}\n",
            duo.config_toml(&format!("timeout_secs = {PROVIDER_TIMEOUT_SECS}"))
        ),
        ..Options::default()
    });
    assert!(rampart.wait_for_log("Duo reachable", Duration::from_secs(10)));
    let metrics = rampart.metrics();
    for series in [
        r#"rampart_provider_errors_total{provider="duo",reason="timeout"} 0"#,
        r#"rampart_provider_requests_total{provider="duo",outcome="unavailable"} 0"#,
    ] {
        assert!(metrics.contains(series), "{series}: {metrics}");
    }
    let logins: Vec<Login> = (0..4)
        .map(|i| {
            let user = format!("duo{i}");
            rampart.add_user(&user, PASSWORD);
            duo.set_user(&user, User::with_phone(Phone::Approve));
            Login::new(&user, PASSWORD, true)
        })
        .collect();
    let mut slowest = Vec::new();
    for (hanging, reason) in [(true, "timeout"), (false, "server")] {
        duo.set_hanging(hanging);
        duo.set_failing(!hanging);
        let sent = concurrently(rampart.radius, &logins);
        slowest.push(assert_rejected_within(
            &sent,
            DEADLINE,
            "second-factor service is unavailable",
        ));
        assert_eq!(rampart.readyz(), 200);
        assert!(rampart.is_running());
        let errors = rampart.metric(&format!(
            "rampart_provider_errors_total{{provider=\"duo\",reason=\"{reason}\"}}"
        ));
        assert!(errors >= 4.0, "{reason}: {}", rampart.metrics());
    }
    assert_eq!(
        rampart.metric("rampart_provider_requests_total{provider=\"duo\",outcome=\"unavailable\"}"),
        8.0
    );
    assert_eq!(
        rampart.metric("rampart_failopen_total{provider=\"duo\"}"),
        0.0
    );
    assert!(rampart.logs().contains("Duo request failed"));
    assert!(rampart.logs().contains("outcome=\"unavailable\""));

    held_push_when_duo_hangs(&rampart, &duo, &logins[1]);

    duo.set_hanging(false);
    duo.set_failing(false);
    let back = send(rampart.radius, &logins[0], 20);
    assert!(back.accepted(), "{back:?}\n{}", rampart.logs());
    eprintln!("Duo: slowest answers (hang, 500) {slowest:?}");
}

/// Logins in the burst: more than four rounds of delivery slots.
const BURST: u64 = 600;
/// Duo hangs while a push is held (its `auth_status` long-polls are read
/// and never answered): the NAS gets the Reject at the hold's end, never
/// later, and it is the user's timeout, not the fail mode's.
fn held_push_when_duo_hangs(rampart: &Rampart, duo: &DuoEmulator, login: &Login) {
    duo.set_hanging(false);
    duo.set_failing(false);
    duo.set_user(&login.user, User::with_phone(Phone::Hold));
    let before = duo.accepted("/auth/v2/auth");
    let (server, nas_login) = (rampart.radius, login.clone());
    let nas = std::thread::spawn(move || send(server, &nas_login, 30));
    assert!(
        duo.wait_for_accepted("/auth/v2/auth", before + 1, Duration::from_secs(10)),
        "{}",
        rampart.logs()
    );
    duo.set_hanging(true);
    let held = nas.join().unwrap();
    assert_eq!(held.code.as_deref(), Some("Access-Reject"), "{held:?}");
    let hold = Duration::from_secs(HOLD_SECS);
    assert!(held.took >= hold - Duration::from_secs(1), "{held:?}");
    assert!(held.took <= hold + Duration::from_secs(4), "{held:?}");
    assert_eq!(
        rampart.metric("rampart_provider_requests_total{provider=\"duo\",outcome=\"timeout\"}"),
        1.0
    );
    eprintln!("Duo hung during a held push: Reject after {:?}", held.took);
}

/// Seconds `rampart-load park` waits for answers after its last send: the
/// longest wait for a delivery slot, the push timeout, and a margin. One
/// provider timeout per round of slots would need 5 × 3 s here.
const PARK_WAIT_SECS: u64 = 5 + PROVIDER_TIMEOUT_SECS + 5;

/// 600 logins at once (more than the deliveries rampart runs at a time)
/// against a hung webhook, from `rampart-load park`: every one is answered
/// with a Reject within the slot wait and the push timeout plus a margin;
/// none waits round after round for a delivery slot.
#[test]
fn a_hung_push_webhook_under_a_burst_answers_every_login_in_time() {
    let service = Faulty::start(Mode::Hang);
    let mut rampart = Rampart::start_with(Options {
        primary: Some("backend = \"none\"".into()),
        extra: format!(
            "[out_of_band]\ntimeout_secs = {HOLD_SECS}\npublic_url = \"https://mfa.example.test\"\nmax_per_window = 1000\n\n[push]\nformat = \"webhook\"\nurl = \"{}\"\nsigning_secret = \"whsec_faults_3f9c2a7d1b6e4085\"\ntimeout_secs = {PROVIDER_TIMEOUT_SECS}\n",
            service.url
        ),
        ..Options::default()
    });
    let started = Instant::now();
    let run = std::process::Command::new(LOAD_BIN)
        .args(["park", "--server", &rampart.radius.to_string()])
        .args(["--secret", SECRET, "--count", &BURST.to_string()])
        .args(["--rate", &BURST.to_string()])
        .args(["--hold", &PARK_WAIT_SECS.to_string()])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    eprintln!("park burst: {report} in {took:?}");
    assert_eq!(report["sent"], BURST, "{report}");
    let in_time = report["rejected"].as_u64().unwrap();
    assert_eq!(
        in_time,
        BURST,
        "answered in time: {report}\n{}",
        rampart.logs()
    );
    assert_eq!(report["accepted"], 0, "{report}");
    assert!(rampart.is_running());
    assert_eq!(rampart.readyz(), 200);
    let failed = |reason: &str| {
        rampart.metric(&format!(
            "rampart_oob_delivery_failures_total{{channel=\"push\",reason=\"{reason}\"}}"
        ))
    };
    let (timeouts, busy) = (failed("timeout"), failed("busy"));
    assert_eq!(timeouts + busy, BURST as f64, "{}", rampart.metrics());
    assert!(busy >= 1.0, "{}", rampart.metrics());
    assert!(rampart.logs().contains("every delivery slot stayed busy"));
    eprintln!("{timeouts} push timeouts, {busy} without a delivery slot");
}
