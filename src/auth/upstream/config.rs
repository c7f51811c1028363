//! `[primary] backend = "radius"`: the configuration of the upstream RADIUS
//! servers (NPS, FreeRADIUS, ...) as written in the file, its defaults, and its
//! checks. Secrets are held as [`Secret`] from the moment they are read, so a
//! `Debug` print of the configuration never shows them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::pass_through::PassThrough;
use crate::secret::Secret;

/// `[primary] backend = "radius"`: check passwords by asking upstream RADIUS servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `[[primary.servers]]`, tried in order: the first one not marked down is asked.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    /// Milliseconds to wait for a reply to one transmission.
    #[serde(default = "default_timeout_ms", deserialize_with = "timeout_ms")]
    pub timeout_ms: u64,
    /// Retransmissions of the identical packet to one server before failing over (RFC 5080 §2.2.1).
    #[serde(default = "default_retries", deserialize_with = "retries")]
    pub retries: u32,
    /// Seconds a server that did not answer is skipped before it is asked again.
    #[serde(default = "default_down_secs", deserialize_with = "down_secs")]
    pub down_secs: u64,
    /// Upstream Access-Accept attributes copied into rampart's Access-Accept.
    #[serde(default = "default_pass_through")]
    pub pass_through: Vec<String>,
}

/// One `[[primary.servers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` of the server's authentication port.
    #[serde(default)]
    pub address: String,
    /// Shared secret, inline.
    #[serde(default, deserialize_with = "secret_string")]
    pub secret: Option<Secret<String>>,
    /// Shared secret read from a file (systemd credentials), trailing newline removed.
    pub secret_file: Option<String>,
    /// Discard replies without a valid Message-Authenticator (BLAST-RADIUS, CVE-2024-3596).
    #[serde(default = "default_true")]
    pub require_message_authenticator: bool,
}

fn secret_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret<String>>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
}

/// A whole number written as a number or as text: `RAMPART__PRIMARY__TIMEOUT_MS=500`
/// arrives as a string, and inside the `backend`-tagged enum serde no longer
/// lets the config crate convert it. Errors name the key, because serde's
/// error path stops at the tagged enum.
fn number<'de, D, T>(deserializer: D, key: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + std::str::FromStr,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    let invalid = || serde::de::Error::custom(format!("{key}: expected a whole number"));
    match Written::deserialize(deserializer)? {
        Written::Number(n) => T::try_from(n).map_err(|_| invalid()),
        Written::Text(text) => text.trim().parse().map_err(|_| invalid()),
        Written::Other(_) => Err(invalid()),
    }
}

fn timeout_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    number(deserializer, "timeout_ms")
}
fn retries<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    number(deserializer, "retries")
}
fn down_secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    number(deserializer, "down_secs")
}

fn default_timeout_ms() -> u64 {
    1000
}
fn default_retries() -> u32 {
    1
}
fn default_down_secs() -> u64 {
    30
}
fn default_pass_through() -> Vec<String> {
    vec!["Class".to_string()]
}
fn default_true() -> bool {
    true
}

impl UpstreamConfig {
    /// Wait for one transmission.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How long a silent server is skipped.
    pub fn down_for(&self) -> Duration {
        Duration::from_secs(self.down_secs)
    }

    /// Problems as (key, message), keys relative to `[primary]`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.servers.is_empty() {
            problems.push((
                "servers".to_string(),
                "no [[primary.servers]] configured: add one with address and secret".to_string(),
            ));
        }
        for (i, server) in self.servers.iter().enumerate() {
            let key = |field: &str| format!("servers[{i}].{field}");
            if let Err(message) = server.resolve() {
                problems.push((key("address"), message));
            }
            match server.load_secret() {
                Ok(_) => {}
                Err((field, message)) => problems.push((key(field), message)),
            }
        }
        if !(50..=30_000).contains(&self.timeout_ms) {
            problems.push((
                "timeout_ms".to_string(),
                "must be between 50 and 30000 milliseconds".to_string(),
            ));
        }
        if self.retries > 10 {
            problems.push(("retries".to_string(), "must be at most 10".to_string()));
        }
        if !(1..=3600).contains(&self.down_secs) {
            problems.push((
                "down_secs".to_string(),
                "must be between 1 and 3600 seconds".to_string(),
            ));
        }
        if let Err(errors) = PassThrough::parse(&self.pass_through) {
            for (i, message) in errors {
                problems.push((format!("pass_through[{i}]"), message));
            }
        }
        problems
    }
}

impl ServerConfig {
    /// The server's socket address; a host name is resolved (first address wins).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        let example = "such as \"192.0.2.10:1812\" or \"nps1.example.org:1812\"";
        if self.address.trim().is_empty() {
            return Err(format!("missing: set host:port {example}"));
        }
        if let Ok(address) = self.address.parse::<SocketAddr>() {
            return Ok(address);
        }
        if !self.address.contains(':') {
            return Err(format!(
                "{:?} has no port: write host:port {example}",
                self.address
            ));
        }
        match self.address.to_socket_addrs() {
            Ok(mut addresses) => addresses
                .next()
                .ok_or_else(|| format!("{:?} resolves to no address", self.address)),
            Err(error) => Err(format!("{:?} cannot be resolved: {error}", self.address)),
        }
    }

    /// The shared secret from `secret` or `secret_file`; on error the offending field.
    pub fn load_secret(&self) -> Result<Secret<Vec<u8>>, (&'static str, String)> {
        let text = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return Err((
                    "secret",
                    "set either secret or secret_file, not both".into(),
                ));
            }
            (None, None) => return Err(("secret", "missing: set secret or secret_file".into())),
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => {
                Secret::new(crate::config::read_secret_file(path).map_err(|m| ("secret_file", m))?)
            }
        };
        if text.expose().is_empty() {
            return Err(("secret", "is empty".into()));
        }
        Ok(Secret::new(text.expose().as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(address: &str, secret: Option<&str>) -> ServerConfig {
        ServerConfig {
            address: address.into(),
            secret: secret.map(|s| Secret::new(s.to_string())),
            secret_file: None,
            require_message_authenticator: true,
        }
    }

    fn config(servers: Vec<ServerConfig>) -> UpstreamConfig {
        UpstreamConfig {
            servers,
            timeout_ms: default_timeout_ms(),
            retries: default_retries(),
            down_secs: default_down_secs(),
            pass_through: default_pass_through(),
        }
    }

    #[test]
    fn a_good_configuration_has_no_problems_and_never_prints_its_secret() {
        let good = config(vec![server("127.0.0.1:1812", Some("s3cret-value"))]);
        assert_eq!(good.problems(), Vec::<(String, String)>::new());
        assert!(!format!("{good:?}").contains("s3cret-value"));
    }

    fn parse(toml: &str) -> Result<crate::auth::PrimaryConfig, String> {
        ::config::Config::builder()
            .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_may_arrive_as_text_from_environment_variables() {
        let parsed = parse(
            "backend = \"radius\"\ntimeout_ms = \"500\"\nretries = 2\n\
             [[servers]]\naddress = \"127.0.0.1:1812\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let crate::auth::PrimaryConfig::Radius(config) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (config.timeout_ms, config.retries, config.down_secs),
            (500, 2, 30)
        );
        assert_eq!(config.pass_through, ["Class"]);
        assert!(config.servers[0].require_message_authenticator, "default");
        let error = parse("backend = \"radius\"\nretries = -1\n").unwrap_err();
        assert!(
            error.contains("retries: expected a whole number"),
            "{error}"
        );
    }

    #[test]
    fn every_problem_names_its_key() {
        let mut bad = config(vec![
            server("127.0.0.1", Some("x")),
            server("", None),
            server("127.0.0.1:1812", Some("")),
        ]);
        bad.timeout_ms = 0;
        bad.down_secs = 0;
        bad.pass_through = vec!["Class".into(), "Framed-Colour".into()];
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "servers[0].address",
                "servers[1].address",
                "servers[1].secret",
                "servers[2].secret",
                "timeout_ms",
                "down_secs",
                "pass_through[1]",
            ]
        );
        assert!(config(Vec::new()).problems()[0].0 == "servers");
    }
}
