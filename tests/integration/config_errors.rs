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
    let expected = [
        "FILE: bogus: unknown key `bogus`",
        "FILE: clients[0].secrett: unknown key `secrett`",
        "FILE: radius.lisen: unknown key `lisen`",
        "FILE: policy.unenrolled: unknown value `maybe`",
    ];
    for line in expected {
        assert!(
            err.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{err}"
        );
    }
    // Unknown keys are reported all at once; after fixing them the value checks run:
    let (status, _, err) = check(
        r#"
[radius]
listen = "127.0.0.1"

[[clients]]
name = "vpn"
address = "10.0.0.300"

[[clients]]
name = "vpn"
address = "10.0.0.0/24"
secret = "s1"
secret_file = "/nonexistent"

[policy]
code_separator = "1"
max_failures = 0

[totp]
skew = 3
"#,
        &[],
    );
    assert_eq!(status, 2);
    for line in [
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
    assert!(err.contains("FILE: policy.max_failures:"), "{err}");
}

#[test]
fn environment_variables_override_the_file() {
    let base = "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n";
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
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let text = format!(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret_file = \"{}\"\n",
        secret.display()
    );
    assert_eq!(check(&text, &[]).0, 0);
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
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n\n[primary]\nbackend = \"ldap\"\n{}\n",
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
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n\n[primary]\nbackend = \"ldap\"\nurls = [\"ldaps://dc1\"]\nbind_dn = \"cn=svc\"\nbind_pasword = \"typo-s3cret\"\n",
        &[],
    );
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: primary.bind_pasword: unknown key"),
        "{err}"
    );
    assert!(!err.contains("typo-s3cret"), "{err}");
    let (status, _, err) = check(
        "[[clients]]\nname = \"vpn\"\naddress = \"10.0.0.1\"\nsecret = \"s\"\n\n[primary]\nbackend = \"ldap\"\nurls = [\"ldaps://dc1\"]\nbind_dn = \"cn=svc\"\nuser_filter = \"(uid=x)\"\n",
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
secret = "s"

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
