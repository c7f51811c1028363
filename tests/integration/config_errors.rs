//! `rampart check-config`: every problem named as `FILE: key: what is wrong`.

use crate::common::*;

fn check(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut command = std::process::Command::new(BIN);
    command.arg("check-config").arg("--config").arg(&path);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr)
            .into_owned()
            .replace(&path.display().to_string(), "FILE"),
    )
}

#[test]
fn the_shipped_default_configuration_is_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(BIN)
        .args([
            "check-config",
            "--config",
            &format!("{root}/config/rampart.toml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("rampart.toml: OK\n"));
    // `testing123` on loopback, for the quickstart: allowed, with a warning.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "rampart.toml: clients[0].secret: warning: the secret is a well-known sample secret"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_problem_is_reported_with_file_and_key() {
    let (status, _, err) = check(
        r#"
[radius]
listen = "127.0.0.1"
lisen = "oops"

[[clients]]
name = "vpn"
address = "10.0.0.300"
secrett = "x"

[[clients]]
name = "vpn"
address = "10.0.0.0/24"
secret = "s1"
secret_file = "/nonexistent"

[policy]
code_separator = "1"
max_failures = 0
unenrolled = "maybe"

[totp]
skew = 3

[bogus]
x = 1
"#,
        &[],
    );
    assert_eq!(status, 2, "{err}");
    // Unknown keys and value checks in the same run.
    for line in [
        "FILE: bogus: unknown key `bogus`",
        "FILE: clients[0].secrett: unknown key `secrett`",
        "FILE: radius.lisen: unknown key `lisen`",
        "FILE: policy.unenrolled: unknown value `maybe`",
        "FILE: radius.listen: \"127.0.0.1\" is not an address:port",
        "FILE: clients[0].address: \"10.0.0.300\" is not an IP address or CIDR",
        "FILE: clients[0].secret: missing: set secret or secret_file",
        "FILE: clients[1].name: \"vpn\" is used by another client",
        "FILE: clients[1].secret: set either secret or secret_file, not both",
        "FILE: policy.code_separator: must be non-empty punctuation",
        "FILE: policy.max_failures: must be at least 1",
        "FILE: totp.skew: must be 0 or 1",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{err}"
        );
    }
}

/// RFC 2865 §3 and the review's findings: one run names the unknown key, the
/// short and sample secrets, the duplicate and the any-address client, each
/// with file and key; the SHOULD-level weaknesses are warnings only.
#[test]
fn weak_clients_are_refused_or_warned_about_in_one_run() {
    let (status, _, err) = check(
        r#"
[[clients]]
name = "vpn"
address = "10.0.0.1"
secret = "x"
secert = "typo"

[[clients]]
name = "vpn-again"
address = "10.0.0.1/32"
secret = "a-long-enough-s3cret-2"

[[clients]]
name = "lab"
address = "192.0.2.0/24"
secret = "testing123"

[[clients]]
name = "everyone"
address = "::/0"
secret = "a-long-enough-s3cret-4"

[[clients]]
name = "legacy"
address = "198.51.100.7"
secret = "Cisc0-legacy"

[[clients]]
name = "local"
address = "127.0.0.1"
secret = "testing123"
"#,
        &[],
    );
    assert_eq!(status, 2, "{err}");
    for line in [
        "FILE: clients[0].secert: unknown key `secert`",
        "FILE: clients[0].secret: the secret is 1 octet: below 6 octets",
        "FILE: clients[1].address: 10.0.0.1/32 is also the address of client \"vpn\" (clients[0])",
        "FILE: clients[2].secret: the secret is a well-known sample secret",
        "FILE: clients[3].address: ::/0 lets every address on the Internet use this client's secret",
        "FILE: clients[4].secret: warning: the secret is 12 octets: RFC 2865 §3 prefers at least 16",
        "FILE: clients[5].secret: warning: the secret is a well-known sample secret: acceptable for a test on loopback only",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{err}"
        );
    }
    assert!(!err.contains("Cisc0-legacy"), "secret echoed: {err}");

    // Warnings alone: usable (exit 0), printed; any-address needs the opt-in.
    let (status, out, err) = check(
        "[[clients]]\nname = \"all\"\naddress = \"0.0.0.0/0\"\nallow_any_address = true\nsecret = \"Cisc0-legacy\"\n",
        &[],
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.ends_with(": OK\n"), "{out}");
    assert_eq!(
        err.trim_end(),
        "FILE: clients[0].secret: warning: the secret is 12 octets: RFC 2865 §3 prefers at least 16; use a random one of 16 or more characters (e.g. `openssl rand -base64 24`) when the NAS allows"
    );
}

#[test]
fn serve_logs_the_warnings_at_start() {
    let rampart = Rampart::start_with(Options {
        extra:
            "[[clients]]\nname = \"legacy\"\naddress = \"192.0.2.7\"\nsecret = \"Cisc0-legacy\"\n"
                .into(),
        ..Options::default()
    });
    let line = "clients[1].secret: warning: the secret is 12 octets";
    assert!(
        rampart.wait_for_log(line, std::time::Duration::from_secs(5)),
        "{}",
        rampart.logs()
    );
    let logs = rampart.logs();
    assert!(
        logs.lines().any(|l| l.contains(line) && l.contains("WARN")),
        "{logs}"
    );
    assert!(!logs.contains("Cisc0-legacy"), "secret logged");
}

#[test]
fn type_errors_name_the_key_but_never_echo_a_secret() {
    let (status, _, err) = check(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = [\"987654321\"]\n\n[policy]\nmax_failures = \"five\"\n",
        &[],
    );
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: clients[0].secret: invalid value (not shown"),
        "{err}"
    );
    assert!(!err.contains("987654321"), "secret echoed: {err}");
    // The value checks run without the refused value; their "missing" would
    // only repeat the type error.
    assert_eq!(err.matches("clients[0].secret").count(), 1, "{err}");
    assert!(err.contains("FILE: policy.max_failures:"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let base =
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"vpn-Sh4red-s3cret-1\"\n";
    assert_eq!(check(base, &[]).0, 0);
    let (status, _, err) = check(base, &[("RAMPART__RADIUS__LISTEN", "not-an-address")]);
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: radius.listen: \"not-an-address\""),
        "{err}"
    );
    assert_eq!(check(base, &[("RAMPART__POLICY__MAX_FAILURES", "3")]).0, 0);
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("radius-secret");
    std::fs::write(&secret, "from-a-file-Sh4red-s3cret\n").unwrap();
    let text = format!(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"{}\"\n",
        secret.display()
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, _, err) = check(&text, &[]);
    assert_eq!((status, err.as_str()), (0, ""));
    // Readable by others: still usable, with a warning naming file and mode.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, _, err) = check(&text, &[]);
    assert_eq!(status, 0, "{err}");
    assert!(
        err.contains(&format!(
            "FILE: clients[0].secret_file: warning: {} has mode 0644",
            secret.display()
        )),
        "{err}"
    );
    let (status, _, err) = check(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"/nonexistent/s\"\n",
        &[],
    );
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: clients[0].secret_file: cannot read /nonexistent/s"),
        "{err}"
    );
}

#[test]
fn syntax_errors_and_missing_files_are_reported() {
    let (status, _, err) = check("[radius\nlisten = ", &[]);
    assert_eq!(status, 2);
    assert!(err.starts_with("FILE: "), "{err}");
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config", "/nonexistent/rampart.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("/nonexistent/rampart.toml: cannot read")
    );
}

#[test]
fn serve_refuses_an_invalid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[radius]\nlisten = \"nope\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("radius.listen"));
}

#[test]
fn every_documented_ldap_key_exists_and_ldap_values_are_checked() {
    // Uncomment the `key = value` examples of the ldap block in the shipped file.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rampart.toml"))
            .unwrap();
    let start = shipped
        .find("# --- backend = \"ldap\"")
        .expect("ldap block");
    let end = shipped
        .find("# --- end of backend = \"ldap\"")
        .expect("ldap block end");
    let keys: Vec<&str> = shipped[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        })
        .collect();
    assert!(keys.len() >= 20, "{keys:?}");
    let text = format!(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"vpn-Sh4red-s3cret-1\"\n\n[primary]\nbackend = \"ldap\"\n{}\n",
        keys.join("\n")
    );
    let (status, _, err) = check(&text, &[]);
    assert_eq!(status, 2, "the example CA file does not exist: {err}");
    assert!(!err.contains("unknown key"), "{err}");
    assert!(
        err.contains("FILE: primary.ca_file: cannot read /etc/rampart/ldap-ca.pem"),
        "{err}"
    );

    let (status, _, err) = check(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"vpn-Sh4red-s3cret-1\"\n\n[primary]\nbackend = \"ldap\"\nurls = [\"ldaps://dc1\"]\nbind_dn = \"cn=svc\"\nbind_pasword = \"typo-s3cret\"\n",
        &[],
    );
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: primary.bind_pasword: unknown key"),
        "{err}"
    );
    assert!(!err.contains("typo-s3cret"), "{err}");
    let (status, _, err) = check(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"vpn-Sh4red-s3cret-1\"\n\n[primary]\nbackend = \"ldap\"\nurls = [\"ldaps://dc1\"]\nbind_dn = \"cn=svc\"\nuser_filter = \"(uid=x)\"\n",
        &[],
    );
    assert_eq!(status, 2);
    for line in [
        "FILE: primary.base_dn: missing",
        "FILE: primary.bind_password: missing: set bind_password or bind_password_file",
        "FILE: primary.ca_file: missing: TLS needs the CA",
        "FILE: primary.user_filter: \"(uid=x)\" must contain {user}",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{err}"
        );
    }
}

#[test]
fn unknown_keys_inside_backend_tables_are_named_where_they_are() {
    let (status, _, err) = check(
        r#"
[[clients]]
name = "vpn"
address = "10.0.0.1"
secret = "vpn-Sh4red-s3cret-1"

[primary]
backend = "radius"

[[primary.servers]]
address = "192.0.2.10:1812"
secret = "a"

[[primary.servers]]
adress = "192.0.2.11:1812"
secret = "b"

[policy]
bogus = 2
"#,
        &[],
    );
    assert_eq!(status, 2);
    for line in [
        "FILE: primary.servers[1].adress: unknown key `adress`",
        "FILE: policy.bogus: unknown key `bogus`",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{err}"
        );
    }
}
