//! `[primary] backend = "ldap"`: the settings as written in the file, their
//! documented defaults, and their validation (every problem as `(key, message)`
//! so that `rampart check-config` reports them all at once).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::filter;
use super::tls;
use crate::secret::Secret;

/// How group membership is decided for `required_groups` and `mfa_exempt_groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum GroupMembership {
    /// Active Directory only: ask the directory whether the user is a member,
    /// directly or through nested groups, with the LDAP_MATCHING_RULE_IN_CHAIN
    /// rule (OID 1.2.840.113556.1.4.1941). Default when `active_directory = true`.
    #[serde(rename = "in_chain")]
    InChain,
    /// The user entry's `memberOf` values (OpenLDAP's memberof overlay, 389-DS,
    /// AD). Direct memberships only: nested groups are not followed.
    #[serde(rename = "memberof")]
    MemberOf,
    /// Search for groups with `group_filter`, then for groups containing those
    /// groups, up to `group_nesting_depth` levels. Works on any directory.
    /// Default without `active_directory`.
    #[serde(rename = "search")]
    Search,
}

/// `[primary] backend = "ldap"`: LDAP or Active Directory checks passwords.
///
/// Two ways to find the user:
/// - **search then bind** (`bind_dn` + `bind_password` or `bind_password_file`):
///   a service account searches `base_dn` with `user_filter`; exactly one entry
///   must match; then rampart binds as that entry with the user's password;
/// - **direct bind** (`bind_template`): rampart binds as
///   `"{user}@corp.example"`, `"CORP\\{user}"` or
///   `"uid={user},ou=people,dc=example,dc=org"`, then reads the user's own entry
///   (`base_dn` + `user_filter`) for attributes and groups.
///
/// Every value put into a filter is escaped per RFC 4515 §3, every value put
/// into a DN per RFC 4514 §2.4.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Server URLs, tried in order (`ldap://` or `ldaps://`); a failing server is
    /// skipped for a back-off period that doubles from 1 s up to 60 s.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4513 §3). Default false.
    #[serde(default)]
    pub starttls: bool,
    /// PEM bundle of the CA(s) that sign the servers' certificates; required
    /// with `ldaps://` or StartTLS. Host names are always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for servers that ask for one.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// Service account DN for search then bind.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Service account password, inline.
    #[serde(default, deserialize_with = "secret")]
    pub bind_password: Option<Secret<String>>,
    /// Service account password read from a file (trailing newline removed).
    #[serde(default)]
    pub bind_password_file: Option<String>,
    /// Direct bind name with `{user}`, instead of a service account.
    #[serde(default)]
    pub bind_template: Option<String>,
    /// Where users (and by default groups) live. Required.
    #[serde(default)]
    pub base_dn: String,
    /// Filter finding the user; `{user}` is the escaped user name. Default
    /// `(uid={user})`, or `(sAMAccountName={user})` with `active_directory`.
    #[serde(default)]
    pub user_filter: Option<String>,
    /// The directory is Active Directory: sAMAccountName filter, in-chain group
    /// checks, and bind errors read from the `data NNN` diagnostic. Default false.
    #[serde(default)]
    pub active_directory: bool,
    /// `in_chain`, `memberof` or `search`; default `in_chain` with
    /// `active_directory`, else `search`.
    #[serde(default)]
    pub group_membership: Option<GroupMembership>,
    /// Group search filter for `search`; `{dn}` is the escaped member DN.
    /// Default `(&(objectClass=groupOfNames)(member={dn}))`.
    #[serde(default)]
    pub group_filter: Option<String>,
    /// Where groups are searched; default `base_dn`.
    #[serde(default)]
    pub group_base_dn: Option<String>,
    /// Levels of groups-in-groups followed by `search` (0 = direct only). Default 3.
    #[serde(default = "default_nesting")]
    pub group_nesting_depth: u8,
    /// Group DNs; a user in none of them is refused. Empty (default) = no check.
    #[serde(default)]
    pub required_groups: Vec<String>,
    /// Group DNs whose members sign in with the password alone.
    #[serde(default)]
    pub mfa_exempt_groups: Vec<String>,
    /// Attribute holding the phone number for out-of-band factors. Default `mobile`.
    #[serde(default = "default_phone")]
    pub phone_attribute: String,
    /// Attribute holding the e-mail address. Default `mail`.
    #[serde(default = "default_email")]
    pub email_attribute: String,
    /// Milliseconds for one new connection: TCP, TLS handshake and, for the
    /// service pool, the service-account bind. Default 2000.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Milliseconds for each LDAP operation (bind, search), and for getting a
    /// connection from any server (failover included). Default 3000.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Operations of each kind at once: user binds, each on a connection of
    /// its own, and service-account searches, sharing connections
    /// ([`super::pool::SEARCHES_PER_CONNECTION`] on each). Default 8.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secret<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

fn default_nesting() -> u8 {
    3
}
fn default_phone() -> String {
    "mobile".into()
}
fn default_email() -> String {
    "mail".into()
}
fn default_connect_timeout() -> u64 {
    2000
}
fn default_timeout() -> u64 {
    3000
}
fn default_pool_size() -> usize {
    8
}

/// Default group filter for `group_membership = "search"`.
pub const DEFAULT_GROUP_FILTER: &str = "(&(objectClass=groupOfNames)(member={dn}))";

impl LdapConfig {
    /// The user filter in force.
    pub fn user_filter(&self) -> &str {
        match &self.user_filter {
            Some(filter) => filter,
            None if self.active_directory => "(sAMAccountName={user})",
            None => "(uid={user})",
        }
    }

    /// The group membership strategy in force.
    pub fn group_membership(&self) -> GroupMembership {
        self.group_membership.unwrap_or(if self.active_directory {
            GroupMembership::InChain
        } else {
            GroupMembership::Search
        })
    }

    /// The group filter in force.
    pub fn group_filter(&self) -> &str {
        self.group_filter.as_deref().unwrap_or(DEFAULT_GROUP_FILTER)
    }

    /// Whether connections are encrypted (`ldaps://` or StartTLS).
    pub fn uses_tls(&self) -> bool {
        self.starttls || self.urls.iter().any(|u| u.starts_with("ldaps://"))
    }

    /// The service account password, inline or from its file.
    pub fn bind_password(&self) -> Result<Option<Secret<String>>, String> {
        match (&self.bind_password, &self.bind_password_file) {
            (Some(password), _) => Ok(Some(password.clone())),
            (None, Some(path)) => crate::config::read_secret_file(path)
                .map(|p| Some(Secret::new(p)))
                .map_err(|e| format!("bind_password_file: {e}")),
            (None, None) => Ok(None),
        }
    }

    /// Problems as (key, message), for the config validator.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut add = |key: &'static str, message: String| problems.push((key, message));

        if self.urls.is_empty() {
            add(
                "urls",
                "missing: list the directory servers, e.g. [\"ldaps://dc1.corp.example\"]".into(),
            );
        }
        for url in &self.urls {
            if let Err(message) = server_address(url) {
                add("urls", message);
            } else if self.starttls && url.starts_with("ldaps://") {
                add(
                    "starttls",
                    format!("{url} is already TLS: StartTLS applies to ldap:// URLs"),
                );
            }
        }
        if self.uses_tls() {
            match &self.ca_file {
                None => add(
                    "ca_file",
                    "missing: TLS needs the CA that signs the directory's certificate (PEM); \
                     the system bundle is /etc/ssl/certs/ca-certificates.crt"
                        .into(),
                ),
                Some(path) => {
                    if let Err(message) = tls::load_roots(path) {
                        add("ca_file", message);
                    }
                }
            }
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => add(
                "client_key_file",
                "missing: set it with client_cert_file".into(),
            ),
            (None, Some(_)) => add(
                "client_cert_file",
                "missing: set it with client_key_file".into(),
            ),
            (Some(cert), Some(key)) => {
                if !self.uses_tls() {
                    add(
                        "client_cert_file",
                        "needs TLS: use ldaps:// URLs or starttls = true".into(),
                    );
                } else if let Err(message) = tls::load_identity(cert, key) {
                    add("client_cert_file", message);
                }
            }
            (None, None) => {}
        }

        match (&self.bind_dn, &self.bind_template) {
            (None, None) => add(
                "bind_dn",
                "missing: set bind_dn and bind_password (search then bind) or bind_template (direct bind)"
                    .into(),
            ),
            (Some(_), Some(_)) => add(
                "bind_template",
                "set either bind_dn (search then bind) or bind_template (direct bind), not both"
                    .into(),
            ),
            (Some(dn), None) => {
                if dn.trim().is_empty() {
                    add("bind_dn", "must not be empty".into());
                }
                match (&self.bind_password, &self.bind_password_file) {
                    (Some(_), Some(_)) => add(
                        "bind_password",
                        "set either bind_password or bind_password_file, not both".into(),
                    ),
                    (None, None) => add(
                        "bind_password",
                        "missing: set bind_password or bind_password_file".into(),
                    ),
                    _ => match self.bind_password() {
                        // An empty password makes an unauthenticated bind (RFC 4513 §5.1.2).
                        Ok(Some(p)) if p.expose().is_empty() => {
                            add("bind_password", "is empty".into())
                        }
                        Ok(_) => {}
                        Err(message) => add("bind_password_file", message),
                    },
                }
            }
            (None, Some(template)) => {
                if let Err(message) = filter::check_bind_template(template) {
                    add("bind_template", message);
                }
                if self.bind_password.is_some() || self.bind_password_file.is_some() {
                    add(
                        "bind_password",
                        "is only used with bind_dn (search then bind)".into(),
                    );
                }
            }
        }

        if self.base_dn.trim().is_empty() {
            add(
                "base_dn",
                "missing: where users live, e.g. \"dc=example,dc=org\"".into(),
            );
        }
        if let Err(message) = filter::check_template(self.user_filter(), "{user}") {
            add("user_filter", message);
        }
        let membership = self.group_membership();
        if membership == GroupMembership::InChain && !self.active_directory {
            add(
                "group_membership",
                "\"in_chain\" is an Active Directory matching rule: set active_directory = true, \
                 or use \"memberof\" or \"search\""
                    .into(),
            );
        }
        if membership == GroupMembership::Search
            && let Err(message) = filter::check_template(self.group_filter(), "{dn}")
        {
            add("group_filter", message);
        }
        if self.group_nesting_depth > 10 {
            add("group_nesting_depth", "must be at most 10".into());
        }
        for (key, groups) in [
            ("required_groups", &self.required_groups),
            ("mfa_exempt_groups", &self.mfa_exempt_groups),
        ] {
            for group in groups {
                if !group.contains('=') {
                    add(
                        key,
                        format!(
                            "{group:?} is not a DN such as \"cn=vpn-users,ou=groups,dc=example,dc=org\""
                        ),
                    );
                }
            }
        }
        for (key, attribute) in [
            ("phone_attribute", &self.phone_attribute),
            ("email_attribute", &self.email_attribute),
        ] {
            if attribute.is_empty()
                || !attribute
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.')
            {
                add(key, format!("{attribute:?} is not an attribute name"));
            }
        }
        if !(100..=60_000).contains(&self.timeout_ms) {
            add("timeout_ms", "must be between 100 and 60000".into());
        }
        if self.connect_timeout_ms < 100 || self.connect_timeout_ms > self.timeout_ms {
            add(
                "connect_timeout_ms",
                "must be at least 100 and at most timeout_ms".into(),
            );
        }
        if !(1..=256).contains(&self.pool_size) {
            add("pool_size", "must be between 1 and 256".into());
        }
        problems
    }
}

/// The host and port of an `ldap://` or `ldaps://` URL (default ports 389 and
/// 636, RFC 4516 §2); nothing may follow but a `/`.
pub fn server_address(url: &str) -> Result<(String, u16), String> {
    let (rest, default_port) = match url.strip_prefix("ldaps://") {
        Some(rest) => (rest, 636),
        None => (
            url.strip_prefix("ldap://")
                .ok_or_else(|| format!("{url:?} must start with ldap:// or ldaps://"))?,
            389,
        ),
    };
    let wrong = || {
        format!(
            "{url:?} must be a scheme, host and optional port, e.g. \"ldaps://dc1.corp.example:636\""
        )
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '@', ' ']) {
        return Err(wrong());
    }
    // [IPv6]:port, host:port, or host alone.
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or_else(wrong)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(wrong)?,
    };
    if host.is_empty() {
        return Err(wrong());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The real loader reads TOML through the `config` crate; JSON is the same serde tree.
    fn parse(json: &str) -> LdapConfig {
        serde_json::from_str(json).unwrap()
    }

    fn keys(config: &LdapConfig) -> Vec<&'static str> {
        config.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn search_then_bind_minimal_is_valid_with_documented_defaults() {
        let config = parse(
            r#"{"urls": ["ldap://127.0.0.1:3890"], "bind_dn": "cn=svc,dc=example,dc=org",
                "bind_password": "pw", "base_dn": "dc=example,dc=org"}"#,
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.user_filter(), "(uid={user})");
        assert_eq!(config.group_membership(), GroupMembership::Search);
        assert_eq!(config.pool_size, 8);
        assert_eq!(config.timeout_ms, 3000);
        assert_eq!(
            (
                config.phone_attribute.as_str(),
                config.email_attribute.as_str()
            ),
            ("mobile", "mail")
        );
        assert_eq!(
            format!("{config:?}").matches("pw").count(),
            0,
            "password not printed"
        );
    }

    #[test]
    fn active_directory_changes_the_defaults() {
        let config = parse(
            r#"{"urls": ["ldap://dc1"], "bind_template": "{user}@corp.example",
                "base_dn": "dc=corp,dc=example", "active_directory": true}"#,
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert_eq!(config.user_filter(), "(sAMAccountName={user})");
        assert_eq!(config.group_membership(), GroupMembership::InChain);
    }

    #[test]
    fn every_problem_is_reported() {
        let config = parse(
            r#"{"urls": ["http://x", "ldaps://dc1"], "starttls": true, "bind_dn": "cn=svc",
                "user_filter": "uid=x", "group_membership": "in_chain",
                "required_groups": ["vpn"], "pool_size": 0, "timeout_ms": 50,
                "client_cert_file": "/nonexistent"}"#,
        );
        let keys = keys(&config);
        for key in [
            "urls",
            "starttls",
            "ca_file",
            "client_key_file",
            "bind_password",
            "base_dn",
            "user_filter",
            "group_membership",
            "required_groups",
            "pool_size",
            "timeout_ms",
            "connect_timeout_ms",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
    }

    #[test]
    fn one_way_to_find_the_user() {
        let neither = parse(r#"{"urls": ["ldap://h"], "base_dn": "dc=x"}"#);
        assert_eq!(keys(&neither), ["bind_dn"]);
        let both = parse(
            r#"{"urls": ["ldap://h"], "base_dn": "dc=x", "bind_dn": "cn=s", "bind_password": "p",
                "bind_template": "{user}@x"}"#,
        );
        assert_eq!(keys(&both), ["bind_template"]);
        let empty = parse(
            r#"{"urls": ["ldap://h"], "base_dn": "dc=x", "bind_dn": "cn=s", "bind_password": ""}"#,
        );
        assert_eq!(keys(&empty), ["bind_password"]);
        let no_placeholder =
            parse(r#"{"urls": ["ldap://h"], "base_dn": "dc=x", "bind_template": "cn=fixed"}"#);
        assert_eq!(keys(&no_placeholder), ["bind_template"]);
    }

    #[test]
    fn urls_need_scheme_and_host() {
        let address = |url| server_address(url).map(|(h, p)| format!("{h} {p}"));
        assert_eq!(
            address("ldap://dc1.corp.example").unwrap(),
            "dc1.corp.example 389"
        );
        assert_eq!(
            address("ldaps://dc1.corp.example").unwrap(),
            "dc1.corp.example 636"
        );
        assert_eq!(
            address("ldaps://127.0.0.1:1636/").unwrap(),
            "127.0.0.1 1636"
        );
        assert_eq!(address("ldap://[::1]:3890").unwrap(), "::1 3890");
        assert_eq!(address("ldaps://[fe80::1]").unwrap(), "fe80::1 636");
        for bad in [
            "ldap://",
            "ldap:///",
            "ldap://h/dc=example?uid",
            "dc1:389",
            "ldap://h:0",
            "ldap://h:port",
            "ldap://:389",
            "ldap://[::1",
        ] {
            assert!(server_address(bad).is_err(), "{bad}");
        }
    }
}
