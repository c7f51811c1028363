//! User-name normalisation: one spelling per person, used for the store, the
//! lockout counter, directory look-ups and the audit log alike. Configurable in
//! `[username]`: strip a `DOMAIN\` prefix (RD Gateway sends `CORP\alice`),
//! strip an `@realm` suffix, fold case (Windows and most directories compare
//! names case-insensitively). Surrounding space is always trimmed.

use serde::Deserialize;

/// `[username]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsernameConfig {
    /// `CORP\alice` → `alice`.
    #[serde(default = "yes")]
    pub strip_domain: bool,
    /// `alice@corp.example` → `alice`.
    #[serde(default)]
    pub strip_realm: bool,
    /// `Alice` → `alice`.
    #[serde(default = "yes")]
    pub lowercase: bool,
}

fn yes() -> bool {
    true
}

impl Default for UsernameConfig {
    fn default() -> Self {
        UsernameConfig {
            strip_domain: true,
            strip_realm: false,
            lowercase: true,
        }
    }
}

impl UsernameConfig {
    /// The normalised form of a user name.
    pub fn normalize(&self, name: &str) -> String {
        let mut name = name.trim();
        if self.strip_domain
            && let Some((_, user)) = name.rsplit_once('\\')
        {
            name = user;
        }
        if self.strip_realm
            && let Some((user, _)) = name.rsplit_once('@')
        {
            name = user;
        }
        if self.lowercase {
            name.to_lowercase()
        } else {
            name.to_string()
        }
    }
}

/// Normalisation with the default settings, for the admin CLI.
pub fn normalize(name: &str) -> String {
    UsernameConfig::default().normalize(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_trim_strip_domain_and_fold_case() {
        assert_eq!(normalize("  Alice "), "alice");
        assert_eq!(normalize("CORP\\Alice"), "alice");
        assert_eq!(normalize("alice@corp.example"), "alice@corp.example");
    }

    #[test]
    fn each_rule_can_be_switched() {
        let all = UsernameConfig {
            strip_domain: true,
            strip_realm: true,
            lowercase: false,
        };
        assert_eq!(all.normalize("CORP\\Bob@Corp.Example"), "Bob");
        let none = UsernameConfig {
            strip_domain: false,
            strip_realm: false,
            lowercase: false,
        };
        assert_eq!(none.normalize("CORP\\Bob"), "CORP\\Bob");
    }
}
