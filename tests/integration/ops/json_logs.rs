//! `[log] format = "json"`: one JSON object per line for collectors, the
//! audit line included, with its fields at the top level and no secret.

use crate::common::*;

#[test]
fn json_logs_carry_the_audit_decision_as_fields() {
    const PASSWORD: &str = "json-Logs-pw";
    let rampart = Rampart::start_with(Options {
        policy: "unenrolled = \"allow\"".into(),
        // The environment layer sets [log] format like the file would.
        env: vec![("RAMPART__LOG__FORMAT".into(), "json".into())],
        ..Options::default()
    });
    rampart.add_user("alice", PASSWORD);
    radclient_auth(&rampart, "alice", PASSWORD).assert_code("Access-Accept");
    radclient_auth(&rampart, "alice", "wrong").assert_code("Access-Reject");
    assert_eq!(rampart.wait_for_decisions(2), 2);

    let logs = rampart.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let audit: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "rampart::audit")
        .collect();
    assert_eq!(audit.len(), 2, "{logs}");
    let (accept, reject) = (audit[0], audit[1]);
    assert_eq!(accept["message"], "decision");
    assert_eq!(accept["level"], "INFO");
    assert_eq!(accept["user"], "alice");
    assert_eq!(accept["client"], "test-nas");
    assert_eq!(accept["outcome"], "accept");
    assert_eq!(accept["reason"], "unenrolled_allowed");
    assert!(accept["duration_ms"].is_u64(), "{accept}");
    assert!(accept["timestamp"].is_string(), "{accept}");
    assert_eq!(reject["outcome"], "reject");
    assert_eq!(reject["reason"], "bad_password");
    assert!(!logs.contains(PASSWORD) && !logs.contains(SECRET));
}
