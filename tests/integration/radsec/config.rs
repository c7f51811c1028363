//! `rampart check-config` on `[radsec]` and the RadSec keys of `[[clients]]`:
//! every mistake named by file and key, and the shipped example block valid.

use super::*;
use crate::common::BIN;

fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("radsec.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE"),
    )
}

#[test]
fn radsec_mistakes_are_named_by_key() {
    let (status, err) = check(
        r#"
[[clients]]
name = "no-section"
radsec_cert_name = "nas1.example.com"

[[clients]]
name = "unrecognisable"
radsec = true

[[clients]]
name = "bad-name"
radsec_cert_name = "nas 1"

[[clients]]
name = "contradiction"
radsec = false
radsec_cert_name = "nas2.example.com"

[[clients]]
name = "both-without-address"
radsec_cert_name = "nas3.example.com"
secret = "vpn-Sh4red-s3cret-1"
"#,
    );
    assert_eq!(status, 2, "{err}");
    for expected in [
        "FILE: clients[0].radsec_cert_name: RadSec needs a [radsec] section with cert_file, key_file and ca_file",
        "FILE: clients[1].radsec: needs radsec_cert_name or address to recognise the NAS",
        "FILE: clients[2].radsec_cert_name: \"nas 1\" is not a host name or IP address",
        "FILE: clients[3].radsec: is false but radsec_cert_name is set",
        "FILE: clients[4].address: missing: with a secret this client also sends over UDP",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }

    let (status, err) = check(
        r#"
[[clients]]
name = "vpn"
address = "10.0.0.1"
secret = "vpn-Sh4red-s3cret-1"

[radsec]
listen = "0.0.0.0"
key_file = "/nonexistent/radsec.key"
handshake_timeout_secs = 0
idle_timeout_secs = 0
max_connections = 0
"#,
    );
    assert_eq!(status, 2, "{err}");
    for expected in [
        "FILE: radsec.listen: \"0.0.0.0\" is not an address:port such as \"0.0.0.0:2083\"",
        "FILE: radsec.cert_file: missing",
        "FILE: radsec.ca_file: missing",
        "FILE: radsec.handshake_timeout_secs: must be between 1 and 300",
        "FILE: radsec.idle_timeout_secs: must be at least 1",
        "FILE: radsec.max_connections: must be at least 1",
        "FILE: radsec: no [[clients]] entry may use RadSec",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }

    let (status, err) = check("[radsec]\nverify_client = false\n");
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: radsec.verify_client: unknown key"),
        "{err}"
    );
}

#[test]
fn certificate_files_are_checked_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_radsec_certificates(dir.path());
    let client = "[[clients]]\nname = \"nas1\"\nradsec_cert_name = \"nas1.example.com\"\n";
    let section = |cert: &Path, key: &Path, ca: &Path| {
        format!(
            "{client}\n[radsec]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n",
            cert.display(),
            key.display(),
            ca.display()
        )
    };
    let (status, err) = check(&section(&certs.server.0, &certs.server.1, &certs.ca));
    assert_eq!(status, 0, "{err}");
    // A key that belongs to another certificate.
    let (status, err) = check(&section(&certs.server.0, &certs.nas1.1, &certs.ca));
    assert_eq!(status, 2);
    assert!(
        err.contains("FILE: radsec.key_file: does not match"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    // A CA file that is not a certificate.
    let (status, err) = check(&section(&certs.server.0, &certs.server.1, &certs.server.1));
    assert_eq!(status, 2);
    assert!(err.contains("FILE: radsec.ca_file: "), "{err}");
    // A CRL file without a CRL, and one that is missing.
    let good = section(&certs.server.0, &certs.server.1, &certs.ca);
    for (crl, expected) in [
        (certs.ca.display().to_string(), "no PEM X509 CRL in it"),
        (
            "/nonexistent/crl.pem".to_string(),
            "cannot read /nonexistent/crl.pem",
        ),
    ] {
        let (status, err) = check(&format!("{good}crl_file = \"{crl}\"\n"));
        assert_eq!(status, 2);
        assert!(err.contains("FILE: radsec.crl_file: "), "{err}");
        assert!(err.contains(expected), "{expected:?} in {err}");
    }
    // A real one passes.
    let crl = crate::common::certs::revocation_list(dir.path(), &[], false);
    let (status, err) = check(&format!("{good}crl_file = \"{}\"\n", crl.display()));
    assert_eq!(status, 0, "{err}");
}

#[test]
fn the_shipped_radsec_example_is_complete() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rampart.toml"))
            .unwrap();
    let start = shipped.find("# [radsec]").expect("radsec block");
    let block: String = shipped[start..]
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with('[') || l.contains(" = "))
        .map(|l| format!("{}\n", l.split("  #").next().unwrap()))
        .collect();
    let (status, err) = check(&block);
    // Only the example certificate paths are missing.
    assert_eq!(status, 2, "{err}");
    assert!(
        err.contains("FILE: radsec.ca_file: cannot read /etc/rampart/radsec-ca.pem"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
