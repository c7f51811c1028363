//! `/metrics`, `/readyz` and the Grafana dashboard against a real daemon in
//! front of a real slapd, with push configured: every family issue 6 asks
//! for is in the scrape with the right Prometheus type, the stage latencies
//! are measured, readiness follows the directory, and every metric the
//! dashboard queries exists (so the dashboard cannot drift from the code).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::http_get as get;
use crate::common::slapd::{ALICE, BOB, Slapd};
use crate::common::*;

/// An ntfy server address where nothing listens: pushes fail to deliver.
const DEAD_NTFY: &str = "http://127.0.0.1:9";

/// rampart with LDAP (search then bind), ntfy push to a server that is not
/// there, and password-only logins allowed for users without a factor.
fn start(slapd: &Slapd) -> Rampart {
    Rampart::start_with(Options {
        primary: Some(slapd.primary("")),
        policy: "unenrolled = \"allow\"".into(),
        http_public_url: Some("https://mfa.example.test".into()),
        extra: format!("[push]\nformat = \"ntfy\"\nurl = \"{DEAD_NTFY}\"\ntimeout_secs = 2\n"),
        ..Options::default()
    })
}

/// A few logins: accepted (password alone), wrong password, unknown user,
/// and bob's push that cannot be delivered.
fn some_logins(rampart: &Rampart) {
    let (code, out, err) = cli(
        &rampart.config,
        &["enroll", "push", BOB.0, "--server", DEAD_NTFY],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    radclient_auth(rampart, ALICE.0, ALICE.1).assert_code("Access-Accept");
    radclient_auth(rampart, BOB.0, "not-bobs-password").assert_code("Access-Reject");
    radclient_auth(rampart, "nobody-here", "whatever").assert_code("Access-Reject");
    let push = radclient_auth(rampart, BOB.0, BOB.1);
    push.assert_code("Access-Reject");
    assert_eq!(rampart.wait_for_decisions(4), 4);
}

/// `# TYPE` lines of an exposition: family name → type.
fn types(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

/// GET over plain HTTP/1.1: (status, body).

#[test]
fn the_families_of_issue_6_are_exported_with_their_types() {
    let slapd = Slapd::start();
    let rampart = start(&slapd);
    some_logins(&rampart);
    let exposition = rampart.metrics();
    let types = types(&exposition);
    let expected = [
        ("rampart_requests_total", "counter"),
        ("rampart_rejects_total", "counter"),
        ("rampart_radius_dropped_total", "counter"),
        ("rampart_radius_duplicates_total", "counter"),
        ("rampart_stage_duration_seconds", "histogram"),
        ("rampart_oob_pending", "gauge"),
        ("rampart_oob_outcomes_total", "counter"),
        ("rampart_oob_delivery_failures_total", "counter"),
        ("rampart_ldap_pool_size", "gauge"),
        ("rampart_ldap_connections", "gauge"),
        ("rampart_ldap_connections_busy", "gauge"),
        ("rampart_ldap_errors_total", "counter"),
        ("rampart_lockouts_total", "counter"),
        ("rampart_fraud_reports_total", "counter"),
        ("rampart_store_errors_total", "counter"),
        ("rampart_build_info", "gauge"),
        ("rampart_config_reloads_total", "counter"),
        ("rampart_config_last_reload_successful", "gauge"),
    ];
    for (family, kind) in expected {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}:\n{exposition}"
        );
    }
    // Every exported family follows the naming rules.
    for (family, kind) in &types {
        assert!(family.starts_with("rampart_"), "{family}");
        match kind.as_str() {
            "counter" => assert!(family.ends_with("_total"), "{family}"),
            "histogram" => assert!(family.ends_with("_seconds"), "{family}"),
            _ => assert!(!family.ends_with("_total"), "{family} is a {kind}"),
        }
    }

    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        rampart.metric(&format!("rampart_build_info{{version=\"{version}\"}}")),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_requests_total{client=\"test-nas\",outcome=\"accept\"}"),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_requests_total{client=\"test-nas\",outcome=\"reject\"}"),
        3.0
    );
    assert_eq!(
        rampart.metric("rampart_rejects_total{reason=\"bad_password\"}"),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_rejects_total{reason=\"unknown_user\"}"),
        1.0
    );
    // The push that could not be sent ends the held-login family as an error.
    assert_eq!(
        rampart.metric("rampart_oob_outcomes_total{channel=\"push\",outcome=\"error\"}"),
        1.0
    );
    assert_eq!(
        rampart.metric("rampart_oob_delivery_failures_total{channel=\"push\",reason=\"connect\"}"),
        1.0
    );
    // Latency per stage, measured in the pipeline: every request has a
    // total and a primary (all four reached the directory), bob's push a factor.
    let count = |stage: &str| {
        rampart.metric(&format!(
            "rampart_stage_duration_seconds_count{{stage=\"{stage}\"}}"
        ))
    };
    assert_eq!(count("total"), 4.0);
    assert_eq!(count("primary"), 4.0);
    assert_eq!(count("factor"), 1.0);
    assert!(
        exposition
            .contains("rampart_stage_duration_seconds_bucket{stage=\"primary\",le=\"0.005\"}")
    );
    // The pool kept the connections the logins used; none is held now.
    let url = slapd.url();
    assert!(
        rampart.metric(&format!(
            "rampart_ldap_connections{{server=\"{url}\",pool=\"service\"}}"
        )) >= 1.0,
        "{exposition}"
    );
    assert_eq!(
        rampart.metric("rampart_ldap_connections_busy{pool=\"bind\"}"),
        0.0
    );
    assert_eq!(rampart.metric("rampart_ldap_pool_size{pool=\"bind\"}"), 8.0);
    // No user name in any label.
    for user in [ALICE.0, BOB.0, "nobody-here"] {
        assert!(!exposition.contains(&format!("\"{user}\"")), "{user}");
    }
}

#[test]
fn readyz_follows_the_directory() {
    let mut slapd = Slapd::start();
    let rampart = start(&slapd);
    assert_eq!(get(rampart.metrics, "/readyz"), (200, "ready\n".into()));
    assert_eq!(get(rampart.metrics, "/healthz").0, 200);

    slapd.stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(rampart.metrics, "/readyz");
        if status == 503 {
            assert_eq!(body, "primary backend unavailable\n");
            break;
        }
        assert!(Instant::now() < deadline, "still ready with slapd down");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Alive all the same: a load balancer takes it out, nothing restarts it.
    assert_eq!(get(rampart.metrics, "/healthz").0, 200);
    assert!(
        rampart.metric(&format!(
            "rampart_ldap_errors_total{{server=\"{}\",kind=\"connect\"}}",
            slapd.url()
        )) >= 1.0
    );

    slapd.restart();
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(rampart.metrics, "/readyz").0 != 200 {
        // The server's back-off (1 s, doubling) decides when it is tried again.
        assert!(Instant::now() < deadline, "not ready after slapd came back");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(found) = expr[i..].find("rampart_") {
        let start = i + found;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.push(expr[start..end].to_string());
        i = end;
    }
    names
}

/// Every `expr` and variable query in the dashboard.
fn queries(node: &serde_json::Value, out: &mut Vec<String>) {
    match node {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", serde_json::Value::String(text)) => {
                        out.push(text.clone())
                    }
                    _ => queries(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

#[test]
fn every_metric_the_grafana_dashboard_queries_exists() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/rampart.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");

    let slapd = Slapd::start();
    let rampart = start(&slapd);
    some_logins(&rampart);
    let types = types(&rampart.metrics());
    let mut used = std::collections::BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "a query without a rampart metric: {expr}"
        );
        for name in names {
            // Histograms are queried through their series.
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or(&name)
                .to_string();
            assert!(
                types.contains_key(&family),
                "the dashboard queries {name}, which the daemon does not export ({expr})"
            );
            used.insert(family);
        }
    }
    // What issue 6 asks the dashboard to show.
    for family in [
        "rampart_requests_total",
        "rampart_rejects_total",
        "rampart_stage_duration_seconds",
        "rampart_oob_pending",
        "rampart_oob_delivery_failures_total",
        "rampart_lockouts_total",
        "rampart_fraud_reports_total",
        "rampart_ldap_connections",
    ] {
        assert!(
            used.contains(family),
            "the dashboard does not show {family}"
        );
    }
}
