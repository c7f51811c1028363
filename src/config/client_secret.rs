//! A `[[clients]]` shared secret: read inline or from `secret_file`, and
//! judged. RFC 2865 §3: the secret "SHOULD be at least as large and
//! unguessable as a well-chosen password. It is preferred that the secret be
//! at least 16 octets." Anyone holding one captured Access-Request can test
//! guesses offline (the Response Authenticator and User-Password hiding are
//! keyed MD5), so a short or published secret lets an attacker forge
//! Access-Accepts. It is a SHOULD, so a legacy NAS with a shorter secret must
//! still work: only what no real deployment needs is refused.

use std::os::unix::fs::PermissionsExt;

use super::file::ClientSection;
use super::validate::Problems;
use crate::secret::Secret;

/// Shorter secrets are refused: a few hours of offline guessing.
pub const MIN_SECRET_LEN: usize = 6;
/// RFC 2865 §3's preferred minimum; shorter ones are a warning.
pub const GOOD_SECRET_LEN: usize = 16;
/// Secrets from documentation and sample configurations (FreeRADIUS'
/// `testing123` first), compared ignoring ASCII case: the first guesses of
/// anyone with a captured packet.
pub const SAMPLE_SECRETS: &[&str] = &[
    "testing123",
    "secret",
    "radius",
    "password",
    "changeme",
    "sharedsecret",
];

/// What is wrong with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Weakness {
    Empty,
    Sample,
    /// Below [`MIN_SECRET_LEN`] octets.
    TooShort(usize),
    /// Below [`GOOD_SECRET_LEN`] octets.
    Short(usize),
}

fn weakness(secret: &str) -> Option<Weakness> {
    let octets = secret.len();
    if octets == 0 {
        Some(Weakness::Empty)
    } else if SAMPLE_SECRETS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(secret))
    {
        Some(Weakness::Sample)
    } else if octets < MIN_SECRET_LEN {
        Some(Weakness::TooShort(octets))
    } else if octets < GOOD_SECRET_LEN {
        Some(Weakness::Short(octets))
    } else {
        None
    }
}

/// The secret of entry `i`, if one could be read; its problems recorded under
/// `clients[i].secret` or `clients[i].secret_file`, never its value.
/// `loopback`: the entry's network is loopback only (a sample secret is then
/// only a warning: a local test).
pub(super) fn client_secret(
    i: usize,
    section: &ClientSection,
    loopback: bool,
    problems: &mut Problems,
) -> Option<Secret<Vec<u8>>> {
    let key = |field: &str| format!("clients[{i}].{field}");
    let (field, subject, secret) = match (&section.secret, &section.secret_file) {
        (Some(_), Some(_)) => {
            problems.add(key("secret"), "set either secret or secret_file, not both");
            return None;
        }
        (None, None) => {
            problems.add(key("secret"), "missing: set secret or secret_file");
            return None;
        }
        (Some(secret), None) => ("secret", "the secret".to_string(), secret.clone()),
        (None, Some(path)) => match super::read_secret_file(path) {
            Ok(secret) => {
                check_file_mode(&key("secret_file"), path, problems);
                ("secret_file", format!("the secret in {path}"), secret)
            }
            Err(message) => {
                problems.add(key("secret_file"), message);
                return None;
            }
        },
    };
    let key = key(field);
    let fix = "use a random one of 16 or more characters (e.g. `openssl rand -base64 24`)";
    match weakness(&secret) {
        None => {}
        Some(Weakness::Empty) => problems.add(key, format!("{subject} is empty")),
        Some(Weakness::Sample) if loopback => problems.warn(
            key,
            format!("{subject} is a well-known sample secret: acceptable for a test on loopback only; {fix}"),
        ),
        Some(Weakness::Sample) => problems.add(
            key,
            format!("{subject} is a well-known sample secret (such as testing123): anyone could forge answers to this NAS; {fix}"),
        ),
        Some(Weakness::TooShort(octets)) => problems.add(
            key,
            format!("{subject} is {}: below {MIN_SECRET_LEN} octets it can be guessed offline from one captured request (RFC 2865 §3); {fix}", octets_text(octets)),
        ),
        Some(Weakness::Short(octets)) => problems.warn(
            key,
            format!("{subject} is {}: RFC 2865 §3 prefers at least {GOOD_SECRET_LEN}; {fix} when the NAS allows", octets_text(octets)),
        ),
    }
    Some(Secret::new(secret.into_bytes()))
}

fn octets_text(octets: usize) -> String {
    match octets {
        1 => "1 octet".into(),
        n => format!("{n} octets"),
    }
}

/// Warns when group or others may read or change a secret file. A warning,
/// not an error (unlike `[store] key_file`, the master key): a deliberate
/// 0640 with a service group is common, and an inline `secret` in a
/// world-readable rampart.toml is no better.
fn check_file_mode(key: &str, path: &str, problems: &mut Problems) {
    let resolved = super::credential_path(path);
    let Ok(meta) = std::fs::metadata(&resolved) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        problems.warn(
            key,
            format!(
                "{} has mode {mode:04o}: group or others can read or change the shared secret; run `chmod 600 {}` (or use a systemd credential)",
                resolved.display(),
                resolved.display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_judged_by_length_and_by_being_samples() {
        assert_eq!(weakness(""), Some(Weakness::Empty));
        assert_eq!(weakness("x"), Some(Weakness::TooShort(1)));
        assert_eq!(weakness("abcde"), Some(Weakness::TooShort(5)));
        assert_eq!(weakness("abcdef"), Some(Weakness::Short(6)));
        assert_eq!(weakness("abcdefghijklmno"), Some(Weakness::Short(15)));
        assert_eq!(weakness("abcdefghijklmnop"), None);
        for sample in ["testing123", "Testing123", "SECRET", "radius"] {
            assert_eq!(weakness(sample), Some(Weakness::Sample), "{sample}");
        }
        // Octets, not characters (RFC 2865 §3): 4 characters, 8 octets.
        assert_eq!(weakness("éééé"), Some(Weakness::Short(8)));
    }

    fn section(secret_file: &str) -> ClientSection {
        ClientSection {
            name: "vpn".into(),
            address: "10.0.0.1".into(),
            allow_any_address: false,
            secret: None,
            secret_file: Some(secret_file.into()),
            require_message_authenticator: true,
            allow_app_passwords: false,
            radsec_cert_name: None,
            radsec: None,
        }
    }

    #[test]
    fn a_secret_file_readable_by_others_is_a_warning_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "a-long-enough-Secret-1\n").unwrap();
        let text = path.display().to_string();
        for (mode, warned) in [(0o600, false), (0o400, false), (0o640, true), (0o644, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let mut problems = Problems::default();
            let secret = client_secret(0, &section(&text), false, &mut problems);
            assert_eq!(secret.unwrap().expose(), b"a-long-enough-Secret-1");
            assert!(problems.errors.is_empty(), "{:?}", problems.errors);
            assert_eq!(problems.warnings.len(), usize::from(warned), "{mode:o}");
            if let Some(warning) = problems.warnings.first() {
                assert_eq!(warning.key, "clients[0].secret_file");
                assert!(warning.message.contains(&text), "{}", warning.message);
                assert!(warning.message.contains(&format!("{mode:04o}")));
                assert!(!warning.message.contains("Secret-1"), "secret echoed");
            }
        }
    }
}
