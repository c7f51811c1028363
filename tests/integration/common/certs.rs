//! Test certificates made with the `openssl` CLI at test time: it is present
//! wherever ca-certificates is installed (which depends on it), so no
//! certificate crate is added, and the files are what an admin would make.
//! EC P-256 keys, valid for two days.

use std::path::{Path, PathBuf};
use std::process::Command;

/// PEM files made for one slapd.
pub struct Tls {
    /// The CA that signed the server (and client) certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing here.
    pub other_ca: PathBuf,
    /// A client certificate and key signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs: run ./scripts/test to install it");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// The test CA (`ca.pem`, "rampart test CA") and an unrelated one
/// (`other-ca.pem`) in `dir`, with their keys.
fn make_cas(dir: &Path) {
    for (name, cn) in [("ca", "rampart test CA"), ("other-ca", "unrelated CA")] {
        let (key, pem, subject) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend([
            "-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject,
        ]);
        openssl(dir, &args);
    }
}

/// Issues `NAME.pem` / `NAME.key` in `dir`, signed by the CA `ca` (`"ca"` or
/// `"other-ca"`), with `subject` and the X.509v3 extensions `ext` (openssl
/// extfile syntax, one per line). Returns (certificate, key).
pub fn issue(dir: &Path, name: &str, ca: &str, subject: &str, ext: &str) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    let mut args = vec!["req", "-new"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", subject]);
    openssl(dir, &args);
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &extfile,
        ],
    );
    (dir.join(pem), dir.join(key))
}

/// A CA, a server certificate for `localhost` only (so `127.0.0.1` is a host name
/// mismatch), a client certificate, and an unrelated CA.
pub fn make_certificates(dir: &Path) -> Tls {
    make_cas(dir);
    issue(
        dir,
        "server",
        "ca",
        "/CN=localhost",
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    let (client_cert, client_key) = issue(
        dir,
        "client",
        "ca",
        "/CN=rampart",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    Tls {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        client_cert,
        client_key,
    }
}

/// Certificates for RadSec: rampart's server certificate (`localhost` and
/// `127.0.0.1`), and NAS client certificates.
pub struct RadsecCerts {
    /// The CA rampart trusts for NAS certificates (and that signed rampart's).
    pub ca: PathBuf,
    /// rampart's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// `nas1.example.com` in subjectAltName, signed by `ca`.
    pub nas1: (PathBuf, PathBuf),
    /// `stranger.example.com`, signed by `ca`: valid, but no client's.
    pub stranger: (PathBuf, PathBuf),
    /// `nas1.example.com` again, but signed by the unrelated CA.
    pub foreign: (PathBuf, PathBuf),
}

/// Makes [`RadsecCerts`] in `dir`.
pub fn make_radsec_certificates(dir: &Path) -> RadsecCerts {
    make_cas(dir);
    // radsecproxy also checks its peer's EKU: NAS certificates carry both.
    let nas = |dns: &str| {
        format!(
            "subjectAltName=DNS:{dns}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\n"
        )
    };
    RadsecCerts {
        ca: dir.join("ca.pem"),
        server: issue(
            dir,
            "rampart",
            "ca",
            "/CN=localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        ),
        nas1: issue(dir, "nas1", "ca", "/CN=nas1", &nas("nas1.example.com")),
        stranger: issue(
            dir,
            "stranger",
            "ca",
            "/CN=stranger",
            &nas("stranger.example.com"),
        ),
        foreign: issue(
            dir,
            "foreign",
            "other-ca",
            "/CN=nas1",
            &nas("nas1.example.com"),
        ),
    }
}

/// Writes `crl.pem` in `dir`: the CRL of the test CA (`ca`) listing
/// `revoked` (certificates it issued), made with `openssl ca -gencrl` as an
/// admin would. `expired`: its nextUpdate is already past. Each call starts
/// from an empty revocation database. Returns the path.
pub fn revocation_list(dir: &Path, revoked: &[&Path], expired: bool) -> PathBuf {
    std::fs::write(dir.join("crl-index.txt"), "").unwrap();
    std::fs::write(dir.join("crl-number"), "01\n").unwrap();
    std::fs::write(
        dir.join("crl.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = crl-index.txt\ncrlnumber = crl-number\n\
         certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_days = 2\n",
    )
    .unwrap();
    for certificate in revoked {
        let certificate = certificate.to_str().unwrap();
        openssl(dir, &["ca", "-config", "crl.cnf", "-revoke", certificate]);
    }
    let mut args: Vec<String> = ["ca", "-config", "crl.cnf", "-gencrl", "-out", "crl.pem"]
        .map(String::from)
        .to_vec();
    if expired {
        // Issued two days ago, valid until yesterday (OpenSSL 3 takes GeneralizedTime).
        for (option, days_ago) in [("-crl_lastupdate", 2), ("-crl_nextupdate", 1)] {
            let out = Command::new("date")
                .args([
                    "-u",
                    "-d",
                    &format!("{days_ago} days ago"),
                    "+%Y%m%d%H%M%SZ",
                ])
                .output()
                .unwrap();
            args.push(option.into());
            args.push(String::from_utf8(out.stdout).unwrap().trim().into());
        }
    }
    openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    dir.join("crl.pem")
}
