//! `[portal]`: the self-enrollment portal on the HTTP listener.

use serde::Deserialize;

/// `[portal]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalConfig {
    /// Serve the portal under `/enroll` on the `[http]` listener. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// The organisation name shown on every page. Default "rampart".
    #[serde(default = "default_title")]
    pub title: String,
    /// Minutes of inactivity after which a portal session ends. Default 15.
    #[serde(default = "default_session_minutes")]
    pub session_minutes: u64,
    /// Sign-in attempts per user name per 15 minutes. Default 5.
    #[serde(default = "default_per_user")]
    pub signin_limit_per_user: u32,
    /// Sign-in attempts per client address per 15 minutes. Default 20 (an
    /// office behind one NAT address shares it).
    #[serde(default = "default_per_address")]
    pub signin_limit_per_address: u32,
    /// ntfy server on which push enrollment creates private topics, e.g.
    /// `https://ntfy.sh`. Unset: the portal does not offer push.
    #[serde(default)]
    pub ntfy_server: Option<String>,
    /// Mark cookies `Secure` (sent over HTTPS only). Default true; turn off
    /// only for plain-HTTP tests: the session cookie is a bearer credential.
    #[serde(default = "default_true")]
    pub secure_cookies: bool,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For`
    /// names the client, for the per-address limit and the audit log.
    /// Default none: the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            enabled: false,
            title: default_title(),
            session_minutes: default_session_minutes(),
            signin_limit_per_user: default_per_user(),
            signin_limit_per_address: default_per_address(),
            ntfy_server: None,
            secure_cookies: true,
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_title() -> String {
    "rampart".into()
}
fn default_session_minutes() -> u64 {
    15
}
fn default_per_user() -> u32 {
    5
}
fn default_per_address() -> u32 {
    20
}
fn default_true() -> bool {
    true
}

impl PortalConfig {
    /// Problems as `(key, message)`, keys relative to `[portal]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.title.trim().is_empty() || self.title.len() > 80 {
            problems.push(("title".into(), "must be 1 to 80 characters".into()));
        }
        if !(1..=1440).contains(&self.session_minutes) {
            problems.push((
                "session_minutes".into(),
                "must be between 1 and 1440 minutes".into(),
            ));
        }
        if self.signin_limit_per_user == 0 {
            problems.push(("signin_limit_per_user".into(), "must be at least 1".into()));
        }
        if self.signin_limit_per_address == 0 {
            problems.push((
                "signin_limit_per_address".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(server) = &self.ntfy_server
            && !(server.starts_with("https://") || server.starts_with("http://"))
        {
            problems.push((
                "ntfy_server".into(),
                "must be an http(s) URL such as \"https://ntfy.sh\"".into(),
            ));
        }
        for proxy in &self.trusted_proxies {
            if crate::config::validate::parse_network(proxy).is_none() {
                problems.push((
                    "trusted_proxies".into(),
                    format!("{proxy:?} is not an IP address or a network such as \"10.0.0.0/8\""),
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert!(PortalConfig::default().problems().is_empty());
        let bad = PortalConfig {
            session_minutes: 0,
            signin_limit_per_user: 0,
            ntfy_server: Some("ntfy.sh".into()),
            title: String::new(),
            trusted_proxies: vec!["10.0.0.0/8".into(), "nginx.internal".into()],
            ..PortalConfig::default()
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "title",
                "session_minutes",
                "signin_limit_per_user",
                "ntfy_server",
                "trusted_proxies"
            ]
        );
    }
}
